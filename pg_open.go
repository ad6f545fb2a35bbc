package jobrun

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jobrun/jobrun/internal/sqldb"
)

// The PostgreSQL store's defaults (the pg package's options change them).
const (
	// defaultLease is how long a claim holds without its process renewing it: a
	// process that dies has its running jobs rescued this long after its last
	// renewal, which comes every third of it.
	defaultLease = 15 * time.Second
	// defaultPoll is how often a process looks for work that other processes made
	// without its notification reaching it (a dropped connection, a NOTIFY lost in
	// a failover): notifications wake processes at once, the poll is the fallback.
	defaultPoll = 5 * time.Second
	// minLease bounds the lease from below: renewals come every third of it, and a
	// commit must fit between them.
	minLease = time.Second
)

func init() {
	sqldb.Open = func(ctx context.Context, pool sqldb.Pool, opts any) (any, error) {
		return openPG(ctx, pool, opts.([]Option))
	}
	sqldb.Option = func(set func(*sqldb.Settings)) any {
		return Option(func(c *config) { set(&c.sql) })
	}
	sqldb.EnqueueTx = func(ctx context.Context, tx sqldb.Tx, r any, args any, opts any) (int64, error) {
		a, _ := args.(Args)
		id, err := r.(*Runner).enqueueSQLTx(ctx, tx, a, opts.([]EnqueueOption))
		return int64(id), err
	}
}

// openPG opens a runner on the PostgreSQL store of pool.
func openPG(ctx context.Context, pool sqldb.Pool, opts []Option) (*Runner, error) {
	cfg, err := newConfig(append([]Option{func(c *config) {
		c.sql = sqldb.Settings{Schema: "jobrun", Lease: defaultLease, Poll: defaultPoll, Migrate: true}
	}}, opts...))
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	if cfg.sql.Lease < minLease {
		return nil, fmt.Errorf("open: %w", invalidf("lease %v is shorter than %v", cfg.sql.Lease, minLease))
	}
	if cfg.sql.Poll <= 0 {
		return nil, fmt.Errorf("open: %w", invalidf("poll interval %v is not positive", cfg.sql.Poll))
	}
	st, err := openPGStore(ctx, pool, cfg, cfg.sql)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", pool.Name(), err)
	}
	r, err := newRunner(st, cfg)
	if err != nil {
		st.close()
		return nil, fmt.Errorf("open %s: %w", st.name(), err)
	}
	return r, nil
}

// errNotPG is the error of the PostgreSQL entry points on a runner of a bbolt file.
var errNotPG = errors.New("the runner's store is a bbolt file, not PostgreSQL")

// enqueueSQLTx stores a job inside tx, the application's transaction on the
// runner's PostgreSQL database (pg.EnqueueTx). Workers of every process are woken
// by a notification that PostgreSQL delivers when tx commits, and not before.
func (r *Runner) enqueueSQLTx(ctx context.Context, tx sqldb.Tx, args Args, opts []EnqueueOption) (ID, error) {
	st, ok := r.st.(*pgStore)
	switch {
	case !ok:
		return 0, fmt.Errorf("enqueue in tx: %w", invalidf("%v; use Runner.EnqueueTx", errNotPG))
	case tx == nil:
		return 0, fmt.Errorf("enqueue in tx: %w", invalidf("nil transaction"))
	}
	if err := r.txReady(ctx); err != nil {
		return 0, fmt.Errorf("enqueue in tx: %w", err)
	}
	now := time.Now()
	rec, err := r.prepare(ctx, args, opts, now)
	if err != nil {
		return 0, fmt.Errorf("enqueue in tx: %w", err)
	}
	ins, err := st.enqueueTx(ctx, tx, now, rec)
	if err != nil {
		return 0, fmt.Errorf("enqueue %s in tx: %w", rec.kind, err)
	}
	if ins.duplicate {
		return ins.id, duplicateError(rec, ins.id)
	}
	return ins.id, nil
}

// enqueueTx stores rec inside the application's transaction tx, with the
// notification that wakes the processes when it commits.
func (s *pgStore) enqueueTx(ctx context.Context, tx sqldb.Tx, now time.Time, rec *record) (inserted, error) {
	t := s.newTxn(ctx, tx, now, true)
	ins, err := t.enqueue(rec)
	if err == nil {
		err = t.flush()
	}
	if err == nil && !ins.duplicate {
		err = t.exec(`SELECT pg_notify($1, $2)`, s.channel(), s.wakePayload(rec.queue, ins.state, ins.runAt))
	}
	return ins, err
}
