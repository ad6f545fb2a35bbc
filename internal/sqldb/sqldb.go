// Package sqldb is what jobrun's PostgreSQL store needs of a database connection,
// in the standard library's terms: the store's SQL lives in package jobrun, beside
// the bbolt store, so that both run the same engine over the same unexported seam,
// and the driver (pgx, which package jobrun must not import) is adapted to these
// interfaces by internal/pgxdb for the pg package and the tests.
package sqldb

import (
	"context"
	"errors"
	"time"
)

// ErrNoRows is the error of Row.Scan when the query found no row.
var ErrNoRows = errors.New("sqldb: no rows")

// Pool is a pool of connections to one PostgreSQL database.
type Pool interface {
	// Begin starts a transaction at the server's default isolation (read committed).
	Begin(ctx context.Context) (Tx, error)
	// Exec runs one statement outside a transaction.
	Exec(ctx context.Context, sql string, args ...any) (int64, error)
	// Listen calls fn with the payload of every notification on channel until ctx
	// ends or the connection fails; it returns once it listens, with the wait
	// running on a goroutine that done is closed after.
	Listen(ctx context.Context, channel string, fn func(payload string)) (done <-chan error, err error)
	// Code is the SQLSTATE of an error the server returned, "" for any other error.
	Code(err error) string
	// Name names the database in messages (host, port and database; no password).
	Name() string
}

// Tx is a transaction.
type Tx interface {
	// Exec runs a statement and returns how many rows it affected.
	Exec(ctx context.Context, sql string, args ...any) (int64, error)
	// Query runs a statement that returns rows.
	Query(ctx context.Context, sql string, args ...any) (Rows, error)
	// QueryRow runs a statement that returns at most one row; Scan of a missing
	// row returns ErrNoRows.
	QueryRow(ctx context.Context, sql string, args ...any) Row
	// Batch runs stmts in order in one round trip and returns the index of the
	// one that failed with its error, or -1 and nil.
	Batch(ctx context.Context, stmts []Statement) (int, error)
	// CommitWith runs stmts (none is fine) and commits, in one round trip where
	// the driver can: it returns the index of the statement that failed
	// (len(stmts) for the commit) with its error, or -1 and nil.
	CommitWith(ctx context.Context, stmts []Statement) (int, error)
	// Rollback rolls back what was not committed; after a commit it does nothing.
	Rollback(ctx context.Context) error
}

// Statement is a statement of a Batch.
type Statement struct {
	SQL  string
	Args []any
}

// Rows is the result of Query.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Row is the result of QueryRow.
type Row interface {
	Scan(dest ...any) error
}

// Settings are the PostgreSQL store's options, set through the pg package's
// options.
type Settings struct {
	Schema   string        // the PostgreSQL schema of the store's tables
	Lease    time.Duration // how long a claim holds without a heartbeat
	Poll     time.Duration // the fallback poll for work other processes made
	Migrate  bool          // create or upgrade the tables at open
	Readonly bool
}

// The pg package reaches package jobrun through these, which jobrun sets in an
// init function: they are not part of its public API.
var (
	// Open opens a runner (a *jobrun.Runner) on pool with opts ([]jobrun.Option).
	Open func(ctx context.Context, pool Pool, opts any) (any, error)
	// Option makes a jobrun.Option that changes the store's settings.
	Option func(set func(*Settings)) any
	// EnqueueTx enqueues a job (args a jobrun.Args, opts []jobrun.EnqueueOption)
	// on runner r inside tx, the application's transaction on r's database.
	EnqueueTx func(ctx context.Context, tx Tx, r any, args any, opts any) (int64, error)
)
