package jobrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jobrun/jobrun/internal/sqldb"
)

// The PostgreSQL store keeps the jobs of one runner, or of many processes' runners,
// in the tables of one PostgreSQL schema (sqldb.Settings.Schema). It implements the
// same seam as the bbolt store (storage.go), over internal/sqldb's interfaces: the
// pg package adapts a pgx pool to them, so that package jobrun does not import pgx.
//
// A job is one row of jobs: its record (record.go, the encoding the bbolt store
// writes) and, beside it, the columns its indexes need, derived from the record at
// every write. What the bbolt store keeps as index buckets are those columns and
// partial indexes on them:
//
//	jobs (queue, priority DESC, id) WHERE lane = 1 AND claim = 0   ready: the next job of a queue
//	jobs (queue, conc_key, priority DESC, id) WHERE lane = 2       ready, waiting for a key slot
//	jobs (run_at, id) WHERE state IN (scheduled, retrying)         due first
//	jobs (state, finished_at, id) WHERE state >= done              retention, dead letters, lists
//	jobs (lease_until) WHERE claim > 0                             claimed: rescues of lapsed leases
//	jobs USING gin (tags) WHERE cardinality(tags) > 0             tagged: lists by tag
//
// A claim and an outcome each write a new version of the job's row, with an
// entry in every index whose predicate it meets: so there is no index of all
// jobs by queue or by kind, which would take two entries at every write (in a W4
// drain, the claims' and outcomes' updates cost the server 18% and 20% less
// without them). A list filtered by queue or kind reads its state's index, or the
// IDs, and filters.
//
// A transaction's writes to jobs rows are gathered in memory and written in one
// statement per kind (insert, update, delete) before the next read of the jobs
// table and at commit, so that a commit of many jobs costs a few round trips, not
// a few per job; the counters' changes are written once, at commit.
const pgSchemaVersion = 1

// pgSchema creates the tables of schema version 1; {s} is the schema.
var pgSchema = []string{
	`CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value bigint NOT NULL)`,
	`CREATE SEQUENCE IF NOT EXISTS {s}.job_ids`,
	`CREATE TABLE IF NOT EXISTS {s}.jobs (
		id          bigint PRIMARY KEY,
		queue       text NOT NULL,
		kind        text NOT NULL,
		state       smallint NOT NULL,
		priority    bigint NOT NULL,
		run_at      bigint NOT NULL,
		finished_at bigint NOT NULL,
		lane        smallint NOT NULL,
		claim       smallint NOT NULL,
		started_at  bigint NOT NULL,
		conc_key    text NOT NULL,
		tags        text[] NOT NULL,
		suspended   smallint NOT NULL,
		owner       bigint NOT NULL,
		lease_until bigint NOT NULL,
		fence       bigint NOT NULL,
		cancel      boolean NOT NULL,
		rec         bytea NOT NULL)`,
	`CREATE INDEX IF NOT EXISTS jobs_ready ON {s}.jobs (queue, priority DESC, id) WHERE lane = 1 AND claim = 0`,
	`CREATE INDEX IF NOT EXISTS jobs_keywait ON {s}.jobs (queue, conc_key, priority DESC, id) WHERE lane = 2`,
	`CREATE INDEX IF NOT EXISTS jobs_due ON {s}.jobs (run_at, id) WHERE state IN (1, 4)`,
	`CREATE INDEX IF NOT EXISTS jobs_finished ON {s}.jobs (state, finished_at, id) WHERE state >= 5`,
	`CREATE INDEX IF NOT EXISTS jobs_claimed ON {s}.jobs (lease_until) WHERE claim > 0`,
	`CREATE INDEX IF NOT EXISTS jobs_tags ON {s}.jobs USING gin (tags) WHERE cardinality(tags) > 0`,
	`CREATE TABLE IF NOT EXISTS {s}.corrupt (id bigint PRIMARY KEY, raw bytea NOT NULL)`,
	// Counters are sharded: each transaction adds its changes to a shard it picks
	// at random, so that transactions committing at once (of many processes, or the
	// enqueues of one) rarely queue for one row per queue and state.
	`CREATE TABLE IF NOT EXISTS {s}.counts (queue text NOT NULL, state smallint NOT NULL, shard smallint NOT NULL,
		n bigint NOT NULL, PRIMARY KEY (queue, state, shard))`,
	`CREATE TABLE IF NOT EXISTS {s}.suspended (kind smallint NOT NULL, shard smallint NOT NULL, n bigint NOT NULL,
		PRIMARY KEY (kind, shard))`,
	`CREATE TABLE IF NOT EXISTS {s}.queues (queue text PRIMARY KEY, paused boolean NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS {s}.uniques (kind text NOT NULL, key text NOT NULL, job bigint NOT NULL,
		until bigint NOT NULL, PRIMARY KEY (kind, key))`,
	`CREATE TABLE IF NOT EXISTS {s}.key_slots (queue text NOT NULL, key text NOT NULL, n bigint NOT NULL,
		PRIMARY KEY (queue, key))`,
	`CREATE TABLE IF NOT EXISTS {s}.held (job bigint PRIMARY KEY, queue text NOT NULL, key text NOT NULL,
		owner bigint NOT NULL, lease_until bigint NOT NULL)`,
	// Schedule names and history queues sort as bytes, as the bbolt store's keys do.
	`CREATE TABLE IF NOT EXISTS {s}.schedules (name text COLLATE "C" PRIMARY KEY, data bytea NOT NULL)`,
	// A row per fire time a schedule enqueued for: the primary key, not a process's
	// view of the schedule, is what keeps two processes from enqueueing one twice.
	`CREATE TABLE IF NOT EXISTS {s}.schedule_fires (name text NOT NULL, fire_at bigint NOT NULL,
		PRIMARY KEY (name, fire_at))`,
	`CREATE TABLE IF NOT EXISTS {s}.steps (job bigint NOT NULL, key text NOT NULL, data bytea NOT NULL,
		PRIMARY KEY (job, key))`,
	`CREATE SEQUENCE IF NOT EXISTS {s}.event_seqs`,
	`CREATE TABLE IF NOT EXISTS {s}.events (seq bigint PRIMARY KEY, name text NOT NULL, event_id text NOT NULL,
		sent_at bigint NOT NULL, data bytea NOT NULL)`,
	`CREATE INDEX IF NOT EXISTS events_name ON {s}.events (name, seq)`,
	`CREATE TABLE IF NOT EXISTS {s}.event_ids (event_id text PRIMARY KEY, seq bigint NOT NULL, sent_at bigint NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS {s}.event_waits (name text NOT NULL, field text NOT NULL, value bytea NOT NULL,
		job bigint NOT NULL, step text NOT NULL, PRIMARY KEY (name, field, value, job))`,
	`CREATE INDEX IF NOT EXISTS event_waits_job ON {s}.event_waits (job)`,
	`CREATE TABLE IF NOT EXISTS {s}.event_cancels (name text NOT NULL, field text NOT NULL, value bytea NOT NULL,
		job bigint NOT NULL, PRIMARY KEY (name, field, value, job))`,
	`CREATE TABLE IF NOT EXISTS {s}.functions (kind text PRIMARY KEY, data bytea NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS {s}.history (minute bigint NOT NULL, queue text COLLATE "C" NOT NULL, data bytea NOT NULL,
		PRIMARY KEY (minute, queue))`,
}

// pgShards is how many shards the counters have.
const pgShards = 16

// pgStore is the store over a PostgreSQL schema.
type pgStore struct {
	pool   sqldb.Pool
	cfg    *config
	set    sqldb.Settings
	schema string // quoted

	ctx    context.Context // every statement's: canceled at close
	cancel context.CancelFunc

	queries sync.Map // statement with {s} → with the schema

	idMu sync.Mutex
	ids  []ID // job IDs reserved from the sequence, increasing

	enqMu      sync.Mutex
	enqPending []*pgEnqueue // enqueues waiting for a transaction
	enqActive  int          // transactions of enqueueBatches running

	owner   int64 // this store's ID in the claims it makes (pg_shared.go)
	fenceMu sync.Mutex
	fences  map[ID]int64 // the fence of every claim this store holds

	notes      chan []string // notifications to send after commits
	notesDone  chan struct{} // closed when sendNotes returned
	listenDone chan struct{} // closed when the listener returned; nil if none
}

// pgStatementTimeout bounds a transaction's time, so that a server that stops
// answering fails the commit (which the engine retries) instead of holding it.
const pgStatementTimeout = time.Minute

// openPGStore opens the store in set.Schema of pool's database, creating or
// upgrading its tables if set.Migrate.
func openPGStore(ctx context.Context, pool sqldb.Pool, cfg *config, set sqldb.Settings) (*pgStore, error) {
	if set.Schema == "" {
		set.Schema = "jobrun"
	}
	if err := validateName("schema", set.Schema); err != nil {
		return nil, err
	}
	s := &pgStore{pool: pool, cfg: cfg, set: set, schema: quoteIdent(set.Schema),
		owner: rand.Int64N(1<<62) + 1, fences: map[ID]int64{}, notes: make(chan []string, 256), notesDone: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.prepare(ctx); err != nil {
		s.cancel()
		return nil, err
	}
	go s.sendNotes()
	return s, nil
}

// quoteIdent quotes a PostgreSQL identifier.
func quoteIdent(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// q returns statement with its {s} replaced by the schema.
func (s *pgStore) q(statement string) string {
	if v, ok := s.queries.Load(statement); ok {
		return v.(string)
	}
	v := strings.ReplaceAll(statement, "{s}", s.schema)
	s.queries.Store(statement, v)
	return v
}

// prepare checks the schema's version and, for a store that writes, creates or
// upgrades its tables.
func (s *pgStore) prepare(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer tx.Rollback(ctx)
	var version int64
	err = tx.QueryRow(ctx, s.q(`SELECT value FROM {s}.meta WHERE key = 'schema'`)).Scan(&version)
	switch {
	case err == nil && version > pgSchemaVersion:
		return fmt.Errorf("%w: schema %s has version %d, this build of jobrun reads up to %d; upgrade jobrun",
			ErrSchema, s.set.Schema, version, pgSchemaVersion)
	case err == nil && version == pgSchemaVersion:
		return nil
	case err == nil, errors.Is(err, sqldb.ErrNoRows), s.pool.Code(err) == "42P01" || s.pool.Code(err) == "3F000":
		// Older, empty or missing: created below.
	default:
		return fmt.Errorf("read the schema version: %w", err)
	}
	if s.cfg.readOnly || !s.set.Migrate {
		return fmt.Errorf("%w: schema %s holds no jobrun tables of this version; open it once with a runner that migrates",
			ErrSchema, s.set.Schema)
	}
	tx.Rollback(ctx)
	if tx, err = s.pool.Begin(ctx); err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	// Two processes opening a new database at once: one creates, the other waits.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "jobrun schema "+s.set.Schema); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, s.q(`CREATE SCHEMA IF NOT EXISTS {s}`)); err != nil {
		return fmt.Errorf("create schema %s: %w", s.set.Schema, err)
	}
	for _, stmt := range pgSchema {
		if _, err := tx.Exec(ctx, s.q(stmt)); err != nil {
			return fmt.Errorf("create the tables of schema %s: %w", s.set.Schema, err)
		}
	}
	if _, err := tx.Exec(ctx, s.q(`INSERT INTO {s}.meta VALUES ('schema', $1)
		ON CONFLICT (key) DO UPDATE SET value = GREATEST({s}.meta.value, excluded.value)`), int64(pgSchemaVersion)); err != nil {
		return err
	}
	_, err = tx.CommitWith(ctx, nil)
	return err
}

func (s *pgStore) name() string { return s.pool.Name() + "?schema=" + s.set.Schema }

func (s *pgStore) close() error {
	s.cancel()
	<-s.notesDone
	if s.listenDone != nil {
		<-s.listenDone
	}
	return nil
}

// pgRetries is how many times update runs fn again after the server aborted its
// transaction for a conflict with another process's (a serialization failure or
// a deadlock): each time it starts over from a fresh transaction.
const pgRetries = 5

func (s *pgStore) update(now time.Time, buf []jobChange, fn func(w storeWriter) error) ([]jobChange, error) {
	return s.updateCtx(s.ctx, now, buf, fn)
}

// updateCtx is update bounded by ctx too.
func (s *pgStore) updateCtx(ctx context.Context, now time.Time, buf []jobChange, fn func(w storeWriter) error) ([]jobChange, error) {
	for try := 0; ; try++ {
		changes, err := s.updateOnce(ctx, now, buf, fn)
		if code := s.pool.Code(err); (code == "40001" || code == "40P01") && try < pgRetries {
			continue
		}
		return changes, err
	}
}

func (s *pgStore) updateOnce(ctx context.Context, now time.Time, buf []jobChange, fn func(w storeWriter) error) ([]jobChange, error) {
	ctx, cancel := context.WithTimeout(ctx, pgStatementTimeout)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel) // the store closes
	defer stop()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	t := s.newTxn(ctx, tx, now, true)
	t.changes = buf[:0]
	if err := fn(t); err != nil {
		return nil, err
	}
	if err := t.commit(); err != nil {
		return nil, err
	}
	t.commitFences()
	s.notifyAfter(t.changes, t.poked)
	return t.changes, nil
}

// pgEnqueuers bounds the enqueue transactions of one store that run at once. An
// enqueue that finds them all busy joins the next batch of a running one, so that
// many concurrent callers cost few transactions (W2: 16 producers), while a few
// callers still commit side by side, which the server's group commit flushes
// together (W6: 4 producers beside the workers' commits).
const pgEnqueuers = 4

// pgMaxEnqueueBatch bounds the jobs of one enqueue transaction.
const pgMaxEnqueueBatch = 1000

// pgEnqueue is a caller's enqueue waiting for a transaction.
type pgEnqueue struct {
	recs    []*record
	now     time.Time
	ins     []inserted
	changes []jobChange
	err     error
	done    chan struct{}
}

func (s *pgStore) enqueueNow(ctx context.Context, now time.Time, recs []*record) ([]inserted, []jobChange, error) {
	e := &pgEnqueue{recs: recs, now: now, done: make(chan struct{})}
	s.enqMu.Lock()
	s.enqPending = append(s.enqPending, e)
	lead := s.enqActive < pgEnqueuers
	if lead {
		s.enqActive++
	}
	s.enqMu.Unlock()
	if lead {
		s.enqueueBatches()
	}
	select {
	case <-e.done:
		return e.ins, e.changes, e.err
	case <-ctx.Done():
		return nil, nil, ctx.Err() // its batch may yet commit it
	}
}

// enqueueBatches runs the waiting enqueues, as many as a batch holds in each
// transaction, until none waits. The caller that runs it waits for its own
// enqueue among them.
func (s *pgStore) enqueueBatches() {
	for {
		s.enqMu.Lock()
		n, jobs := 0, 0
		for n < len(s.enqPending) && (n == 0 || jobs+len(s.enqPending[n].recs) <= pgMaxEnqueueBatch) {
			jobs += len(s.enqPending[n].recs)
			n++
		}
		batch := s.enqPending[:n:n]
		s.enqPending = s.enqPending[n:]
		if n == 0 {
			s.enqActive--
			s.enqMu.Unlock()
			return
		}
		s.enqMu.Unlock()
		s.enqueueBatch(batch)
	}
}

// enqueueBatch stores the jobs of batch in one transaction, at the time of its
// first enqueue, and answers each with what enqueue did with its jobs.
func (s *pgStore) enqueueBatch(batch []*pgEnqueue) {
	changes, err := s.updateCtx(s.ctx, batch[0].now, nil, func(w storeWriter) error {
		for _, e := range batch {
			e.ins = make([]inserted, len(e.recs))
			for i, rec := range e.recs {
				var err error
				if e.ins[i], err = w.enqueue(rec); err != nil {
					return err
				}
			}
		}
		return nil
	})
	for _, e := range batch {
		e.err = err
		if err == nil && len(batch) == 1 {
			e.changes = changes
		} else if err == nil {
			e.changes = changesOf(changes, e.ins)
		}
		close(e.done)
	}
}

// changesOf picks from a batch's changes those of the jobs ins names.
func changesOf(changes []jobChange, ins []inserted) []jobChange {
	ids := make(map[ID]bool, len(ins))
	for _, in := range ins {
		ids[in.id] = true
	}
	var out []jobChange
	for _, c := range changes {
		if ids[c.id] {
			out = append(out, c)
		}
	}
	return out
}

func (s *pgStore) view(fn func(r storeReader) error) error {
	ctx, cancel := context.WithTimeout(s.ctx, pgStatementTimeout)
	defer cancel()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	// One snapshot for every read of fn, as a bbolt read transaction has.
	if _, err := tx.Exec(ctx, `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`); err != nil {
		return err
	}
	return fn(s.newTxn(ctx, tx, time.Now(), false))
}

// errPGUnsupported is the error of what a PostgreSQL store leaves to the server's
// own tools.
var errPGUnsupported = fmt.Errorf("%w on a PostgreSQL store", errors.ErrUnsupported)

func (s *pgStore) backup(context.Context, io.Writer) (int64, error) {
	return 0, fmt.Errorf("backup: %w: use pg_dump (or the server's backups) for schema %s", errPGUnsupported, s.set.Schema)
}

func (s *pgStore) compact() error {
	return fmt.Errorf("compact: %w: PostgreSQL reclaims space with (auto)vacuum", errPGUnsupported)
}

// pgTxn is one transaction of a pgStore, read or write.
type pgTxn struct {
	s      *pgStore
	ctx    context.Context
	tx     sqldb.Tx
	now    time.Time
	cfg    *config
	writes bool

	rows  map[ID]*pgRow // the jobs rows read or written in this transaction
	dirty []ID          // rows with writes not yet sent, in order
	countDeltas
	changes    []jobChange
	poked      bool         // the other processes are to poll after the commit
	removed    []int64      // jobs remove deleted: their steps, waits and kept bytes are to go
	lazyCommit bool         // the commit need not wait for the disk (lazyCommitter)
	shard      int16        // the counters' shard this transaction adds to
	fences     map[ID]int64 // the fences it noted, the store's once it commits (setFence)
}

func (s *pgStore) newTxn(ctx context.Context, tx sqldb.Tx, now time.Time, writes bool) *pgTxn {
	return &pgTxn{s: s, ctx: ctx, tx: tx, now: now, cfg: s.cfg, writes: writes, rows: map[ID]*pgRow{},
		shard: int16(rand.IntN(pgShards))}
}

func (t *pgTxn) log(c jobChange) { t.changes = append(t.changes, c) }

// exec runs a statement that does not touch the jobs table.
func (t *pgTxn) exec(stmt string, args ...any) error {
	_, err := t.tx.Exec(t.ctx, t.s.q(stmt), args...)
	return err
}

// query runs a query, after sending the gathered writes to jobs rows: the query
// may read them.
func (t *pgTxn) query(stmt string, args ...any) pgRows {
	if err := t.sendRows(); err != nil {
		return pgRows{err: err}
	}
	rows, err := t.tx.Query(t.ctx, t.s.q(stmt), args...)
	return pgRows{rows, err}
}

// pgRows is the result of a query, or the error it failed with.
type pgRows struct {
	rows sqldb.Rows
	err  error
}

// queryRow is query for one row.
func (t *pgTxn) queryRow(stmt string, args ...any) sqldb.Row {
	if err := t.sendRows(); err != nil {
		return errRow{err}
	}
	return t.tx.QueryRow(t.ctx, t.s.q(stmt), args...)
}

// queryOther is query for a statement that reads no jobs row: the gathered writes
// to them wait for the next query that does, or the commit, so that a commit that
// also reads steps or events still sends its jobs in a few statements.
func (t *pgTxn) queryOther(stmt string, args ...any) pgRows {
	rows, err := t.tx.Query(t.ctx, t.s.q(stmt), args...)
	return pgRows{rows, err}
}

// queryRowOther is queryOther for one row.
func (t *pgTxn) queryRowOther(stmt string, args ...any) sqldb.Row {
	return t.tx.QueryRow(t.ctx, t.s.q(stmt), args...)
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// scanRows calls fn for every row of rs and closes them.
func scanRows(rs pgRows, fn func(rows sqldb.Rows) error) error {
	if rs.err != nil {
		return rs.err
	}
	defer rs.rows.Close()
	for rs.rows.Next() {
		if err := fn(rs.rows); err != nil {
			return err
		}
	}
	return rs.rows.Err()
}

// pgTime is the time of stored Unix nanoseconds, zero for 0.
func pgTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// flush sends what is left of the writes and the counters' changes, in one round
// trip: EnqueueTx's, before the application commits.
func (t *pgTxn) flush() error { return t.sendWith(t.lastStatements()) }

// commit sends what is left of the writes and the counters' changes and commits,
// in one round trip: update's.
func (t *pgTxn) commit() error {
	stmts := append(t.rowStatements(), t.lastStatements()...)
	if i, err := t.tx.CommitWith(t.ctx, t.batch(stmts)); err != nil {
		if i < 0 || i >= len(stmts) {
			return fmt.Errorf("commit: %w", err)
		}
		return fmt.Errorf("%s: %w", stmts[i].what, err)
	}
	return nil
}

// lastStatements take the counters' changes as statements, and the transaction's
// settings for its commit.
func (t *pgTxn) lastStatements() []pgStatement {
	var more []pgStatement
	var queues []string
	var states []int16
	var ns []int64
	// In one order in every transaction, so that two that picked one shard wait
	// for each other's rows rather than deadlock over them.
	for _, queue := range slices.Sorted(maps.Keys(t.deltas)) {
		d := t.deltas[queue]
		for st := stScheduled; st < numStates; st++ {
			if d[st] != 0 {
				queues, states, ns = append(queues, queue), append(states, int16(st)), append(ns, d[st])
			}
		}
	}
	t.deltas = nil
	if len(queues) > 0 {
		more = append(more, pgStatement{"write counters", `INSERT INTO {s}.counts (queue, state, shard, n)
			SELECT q, st, $4, n FROM unnest($1::text[], $2::smallint[], $3::bigint[]) AS d(q, st, n)
			ON CONFLICT (queue, state, shard) DO UPDATE SET n = {s}.counts.n + excluded.n`,
			[]any{queues, states, ns, t.shard}})
	}
	var kinds []int16
	var kn []int64
	for kind, d := range t.suspendedDeltas {
		if d != 0 && kind != 0 {
			kinds, kn = append(kinds, int16(kind)), append(kn, d)
		}
	}
	t.suspendedDeltas = [numSuspended]int64{}
	if len(kinds) > 0 {
		more = append(more, pgStatement{"write suspension counters", `INSERT INTO {s}.suspended (kind, shard, n)
			SELECT k, $3, n FROM unnest($1::smallint[], $2::bigint[]) AS d(k, n)
			ON CONFLICT (kind, shard) DO UPDATE SET n = {s}.suspended.n + excluded.n`,
			[]any{kinds, kn, t.shard}})
	}
	if t.lazyCommit {
		more = append(more, pgStatement{"commit lazily", `SET LOCAL synchronous_commit = off`, nil})
	}
	return more
}

func (t *pgTxn) lazy() { t.lazyCommit = true }

var (
	_ store           = (*pgStore)(nil)
	_ sharedStore     = (*pgStore)(nil)
	_ concurrentStore = (*pgStore)(nil)
	_ storeWriter     = (*pgTxn)(nil)
	_ leaseWriter     = (*pgTxn)(nil)
	_ lazyCommitter   = (*pgTxn)(nil)
	_ prefetcher      = (*pgTxn)(nil)
)
