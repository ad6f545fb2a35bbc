// Package pgxdb adapts a pgx connection pool to the interfaces of internal/sqldb,
// for the pg package and for package jobrun's tests: package jobrun itself does not
// import pgx.
package pgxdb

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jobrun/jobrun/internal/sqldb"
)

// Pool is a pgxpool.Pool as an sqldb.Pool.
type Pool struct{ P *pgxpool.Pool }

// Begin takes a connection for a transaction whose BEGIN is sent with its first
// statements, in their round trip (see poolTx).
func (p Pool) Begin(ctx context.Context) (sqldb.Tx, error) {
	c, err := p.P.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &poolTx{c: c}, nil
}

// Exec runs one statement outside a transaction.
func (p Pool) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	tag, err := p.P.Exec(ctx, sql, args...)
	return tag.RowsAffected(), err
}

// Listen listens on channel on a connection of its own, held until ctx ends.
func (p Pool) Listen(ctx context.Context, channel string, fn func(payload string)) (<-chan error, error) {
	conn, err := p.P.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		conn.Release()
		return nil, err
	}
	done := make(chan error, 1)
	go func() {
		defer close(done)
		for {
			n, err := conn.Conn().WaitForNotification(ctx)
			if err != nil {
				// The connection is in an unknown state (a wait cut by ctx leaves it
				// mid-protocol): close it rather than return it to the pool.
				conn.Hijack().Close(context.Background())
				done <- err
				return
			}
			fn(n.Payload)
		}
	}()
	return done, nil
}

// Code is the SQLSTATE of a server error.
func (Pool) Code(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// Name names the database without its password.
func (p Pool) Name() string {
	c := p.P.Config().ConnConfig
	return fmt.Sprintf("postgres://%s:%d/%s", c.Host, c.Port, c.Database)
}

// Tx is a pgx.Tx as an sqldb.Tx: the application's transaction, for EnqueueTx.
type Tx struct{ T pgx.Tx }

// Exec runs a statement.
func (t Tx) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	tag, err := t.T.Exec(ctx, sql, args...)
	return tag.RowsAffected(), err
}

// Query runs a statement that returns rows.
func (t Tx) Query(ctx context.Context, sql string, args ...any) (sqldb.Rows, error) {
	rows, err := t.T.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

// QueryRow runs a statement that returns at most one row.
func (t Tx) QueryRow(ctx context.Context, sql string, args ...any) sqldb.Row {
	return row{t.T.QueryRow(ctx, sql, args...)}
}

// Batch sends stmts in one round trip (pgx's pipeline) and reads their results
// in order.
func (t Tx) Batch(ctx context.Context, stmts []sqldb.Statement) (int, error) {
	var b pgx.Batch
	for _, st := range stmts {
		b.Queue(st.SQL, st.Args...)
	}
	br := t.T.SendBatch(ctx, &b)
	for i := range stmts {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return i, err
		}
	}
	return -1, br.Close()
}

// CommitWith runs stmts and commits.
func (t Tx) CommitWith(ctx context.Context, stmts []sqldb.Statement) (int, error) {
	if len(stmts) > 0 {
		if i, err := t.Batch(ctx, stmts); err != nil {
			return i, err
		}
	}
	return -1, t.T.Commit(ctx)
}

// Rollback rolls the transaction back.
func (t Tx) Rollback(ctx context.Context) error { return t.T.Rollback(ctx) }

type row struct{ r pgx.Row }

func (r row) Scan(dest ...any) error {
	err := r.r.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return sqldb.ErrNoRows
	}
	return err
}

// poolTx is a transaction on a connection of the pool that saves the round trips
// of BEGIN and COMMIT: BEGIN goes in front of the first statements sent, COMMIT
// behind the last (CommitWith), each in the same pipeline. An enqueue of one job
// is then one round trip instead of three, and a store's transactions spend
// their time in statements rather than in waiting for the network and the
// scheduler. (An application's pgx transaction is Tx.)
type poolTx struct {
	c     *pgxpool.Conn
	begun bool // BEGIN sent
	ended bool // committed or rolled back, the connection released
}

// beginStatements start every transaction of the store, with sequential scans
// priced out of its plans. The jobs table grows from empty to millions of rows
// and back, and a statement's generic plan, which the connection caches after its
// fifth run, is costed against the table as it was then: on a table of a few
// pages, a sequential scan for a lookup by ID, used statement after statement
// until the next ANALYZE (3,277 of them in one run of W6, 28M rows read). Custom
// plans avoid that but plan every statement anew, 16% of both cores in W6. With
// enable_seqscan off a plan made on a small table takes the index the statement
// was written for, as each of the store's claims, outcomes and lookups has; where
// no index applies (a search by kind, say) the planner still scans the table.
var beginStatements = []string{"BEGIN", "SET LOCAL enable_seqscan = off"}

// send runs stmts in one pipeline, after BEGIN unless begun and before COMMIT if
// commit. It returns the index of the statement that failed (len(stmts) for the
// commit) with its error, or -1 and nil. A query's rows, if query, are returned
// open with the pipeline: closing them closes it.
func (t *poolTx) send(ctx context.Context, stmts []sqldb.Statement, commit, query bool) (int, *batchRows, error) {
	if t.ended {
		return 0, nil, pgx.ErrTxClosed
	}
	var b pgx.Batch
	if !t.begun {
		for _, sql := range beginStatements {
			b.Queue(sql)
		}
	}
	for _, st := range stmts {
		b.Queue(st.SQL, st.Args...)
	}
	if commit {
		b.Queue("COMMIT")
	}
	br := t.c.SendBatch(ctx, &b)
	if !t.begun {
		t.begun = true
		for range beginStatements {
			if _, err := br.Exec(); err != nil {
				br.Close()
				return 0, nil, err
			}
		}
	}
	for i := range stmts {
		if query && i == len(stmts)-1 {
			rows, err := br.Query()
			return -1, &batchRows{Rows: rows, br: br}, err
		}
		if _, err := br.Exec(); err != nil {
			br.Close()
			return i, nil, err
		}
	}
	if commit {
		tag, err := br.Exec()
		if err == nil && tag.String() == "ROLLBACK" {
			err = pgx.ErrTxCommitRollback // the server had aborted the transaction
		}
		if err != nil {
			br.Close()
			return len(stmts), nil, err
		}
	}
	if err := br.Close(); err != nil {
		return len(stmts), nil, err
	}
	if commit {
		t.release()
	}
	return -1, nil, nil
}

// Exec runs a statement.
func (t *poolTx) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	if t.begun && !t.ended {
		tag, err := t.c.Exec(ctx, sql, args...)
		return tag.RowsAffected(), err
	}
	_, rows, err := t.send(ctx, []sqldb.Statement{{SQL: sql, Args: args}}, false, true)
	if err != nil {
		if rows != nil {
			rows.Close()
		}
		return 0, err
	}
	for rows.Next() {
	}
	rows.Close()
	return rows.CommandTag().RowsAffected(), rows.Err()
}

// Query runs a statement that returns rows.
func (t *poolTx) Query(ctx context.Context, sql string, args ...any) (sqldb.Rows, error) {
	if t.begun && !t.ended {
		rows, err := t.c.Query(ctx, sql, args...)
		if err != nil {
			return nil, err
		}
		return rows, nil
	}
	_, rows, err := t.send(ctx, []sqldb.Statement{{SQL: sql, Args: args}}, false, true)
	if err != nil {
		if rows != nil {
			rows.Close()
		}
		return nil, err
	}
	return rows, nil
}

// QueryRow runs a statement that returns at most one row.
func (t *poolTx) QueryRow(ctx context.Context, sql string, args ...any) sqldb.Row {
	rows, err := t.Query(ctx, sql, args...)
	return queriedRow{rows, err}
}

// Batch sends stmts in one round trip and reads their results in order.
func (t *poolTx) Batch(ctx context.Context, stmts []sqldb.Statement) (int, error) {
	i, _, err := t.send(ctx, stmts, false, false)
	return i, err
}

// CommitWith runs stmts and commits, in one round trip.
func (t *poolTx) CommitWith(ctx context.Context, stmts []sqldb.Statement) (int, error) {
	if !t.begun && len(stmts) == 0 {
		t.release() // nothing was sent: nothing to commit
		return -1, nil
	}
	i, _, err := t.send(ctx, stmts, true, false)
	return i, err
}

// Rollback rolls the transaction back; after a commit it does nothing.
func (t *poolTx) Rollback(ctx context.Context) error {
	if t.ended {
		return nil
	}
	var err error
	if t.begun && t.c.Conn().PgConn().TxStatus() != 'I' {
		_, err = t.c.Exec(ctx, "ROLLBACK")
	}
	t.release() // the pool closes a connection left in a transaction
	return err
}

func (t *poolTx) release() {
	t.ended = true
	t.c.Release()
}

// batchRows are a query's rows read from a pipeline, which closing them closes.
type batchRows struct {
	pgx.Rows
	br  pgx.BatchResults
	err error
}

func (r *batchRows) Close() {
	if r.br == nil {
		return
	}
	r.Rows.Close()
	r.err = r.br.Close()
	r.br = nil
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// queriedRow is the first row of a query's rows, as QueryRow's.
type queriedRow struct {
	rows sqldb.Rows
	err  error
}

func (r queriedRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return sqldb.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}
