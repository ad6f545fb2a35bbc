// Package pg runs jobrun on PostgreSQL: the same *jobrun.Runner, with its jobs in
// the tables of one PostgreSQL schema, for applications that outgrow one process
// or one machine. Every process that opens the same database and schema shares
// its queues: a job is claimed by one process (FOR UPDATE SKIP LOCKED), new work
// wakes the others at once (LISTEN/NOTIFY, with a poll behind it), a process that
// dies has its running jobs rescued when their leases lapse, and cron schedules
// fire once per fire time across all of them.
//
// Switching an application from a bbolt file is one call:
//
//	r, err := jobrun.Open("jobs.db", opts...)        // one process
//	r, err := pg.Open(ctx, pool, opts...)            // many
//
// What differs from a bbolt file, and why, is in docs/POSTGRES.md: Backup and
// Compact are left to PostgreSQL's own tools (pg_dump, autovacuum) and return
// errors wrapping errors.ErrUnsupported, Runner.DB is nil, and a job is enqueued
// in the application's transaction with EnqueueTx here, which takes a pgx.Tx.
package pg

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/internal/pgxdb"
	"github.com/jobrun/jobrun/internal/sqldb"
)

// Open returns a runner whose jobs live in pool's database, in the tables of
// schema "jobrun" (WithSchema), which it creates or upgrades first (a schema of
// a newer jobrun is refused with an error wrapping jobrun.ErrSchema). It takes
// every jobrun.Option, and the options of this package. The runner takes from the
// pool a connection held for LISTEN, one for its commit loop's commits, up to four
// for enqueues (which run beside the loop, concurrent callers batched), one for
// notifications, and one per read in progress: give it a pool of at least 4
// (pgxpool's default is the larger of 4 and the CPUs); a smaller one makes them
// queue for connections. Close leaves the pool open.
//
// Opening rescues the jobs whose processes stopped renewing their claims; jobs
// that live processes run are theirs.
func Open(ctx context.Context, pool *pgxpool.Pool, opts ...jobrun.Option) (*jobrun.Runner, error) {
	if pool == nil {
		return nil, fmt.Errorf("open: %w: nil pool", jobrun.ErrInvalid)
	}
	r, err := sqldb.Open(ctx, pgxdb.Pool{P: pool}, opts)
	if err != nil {
		return nil, err
	}
	return r.(*jobrun.Runner), nil
}

// EnqueueTx stores a job inside tx, the application's transaction on the
// runner's database: the job exists if and only if tx commits, and the workers of
// every process are woken when it does (by a notification that PostgreSQL
// delivers at commit). On an error other than jobrun.ErrDuplicate, roll tx back.
// The runner's change hook (WithChangeHook) does not see jobs enqueued so.
func EnqueueTx(ctx context.Context, tx pgx.Tx, r *jobrun.Runner, args jobrun.Args, opts ...jobrun.EnqueueOption) (jobrun.ID, error) {
	if tx == nil || r == nil {
		return 0, fmt.Errorf("enqueue in tx: %w: nil transaction or runner", jobrun.ErrInvalid)
	}
	id, err := sqldb.EnqueueTx(ctx, pgxdb.Tx{T: tx}, r, args, opts)
	return jobrun.ID(id), err
}

// WithSchema keeps the runner's tables in the PostgreSQL schema name instead of
// "jobrun", so that applications (or environments) can share a database: runners
// of different schemas do not see each other's jobs. Name it as a queue is named.
func WithSchema(name string) jobrun.Option {
	return option(func(s *sqldb.Settings) { s.Schema = name })
}

// WithLease sets how long a claim holds without its process renewing it (15s by
// default, at least 1s). Processes renew every third of it; the jobs of a process
// that dies are rescued, without spending an attempt, within the lease and a
// poll. A shorter lease rescues sooner, at the cost of more renewals; a process
// whose commits stall past it loses its claims (its late outcomes are refused).
func WithLease(d time.Duration) jobrun.Option {
	return option(func(s *sqldb.Settings) { s.Lease = d })
}

// WithPoll sets how often an idle process looks for work that no notification
// announced (5s by default): notifications wake processes at once, so this is the
// bound on the wait when one is lost.
func WithPoll(d time.Duration) jobrun.Option {
	return option(func(s *sqldb.Settings) { s.Poll = d })
}

// WithMigrate(false) refuses a database whose schema is missing or older instead
// of creating or upgrading it, for applications whose migrations run apart.
func WithMigrate(migrate bool) jobrun.Option {
	return option(func(s *sqldb.Settings) { s.Migrate = migrate })
}

func option(set func(*sqldb.Settings)) jobrun.Option { return sqldb.Option(set).(jobrun.Option) }
