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

// Begin starts a transaction.
func (p Pool) Begin(ctx context.Context) (sqldb.Tx, error) {
	tx, err := p.P.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return Tx{tx}, nil
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

// Tx is a pgx.Tx as an sqldb.Tx.
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

// Commit commits the transaction.
func (t Tx) Commit(ctx context.Context) error { return t.T.Commit(ctx) }

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
