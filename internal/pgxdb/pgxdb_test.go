package pgxdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jobrun/jobrun/internal/pgtest"
	"github.com/jobrun/jobrun/internal/sqldb"
)

// shared is the cluster the tests of this package share, started by the first.
var shared struct {
	once    sync.Once
	cluster *pgtest.Cluster
	pool    *pgxpool.Pool
	err     error
	tables  atomic.Int64
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.pool != nil {
		shared.pool.Close()
	}
	if shared.cluster != nil {
		shared.cluster.Stop()
	}
	os.Exit(code)
}

// testPool returns the shared pool (of at most two connections, so a connection
// left in a transaction would show) and a table of its own, (id int primary key,
// v text), with a deferred unique constraint on v.
func testPool(t *testing.T) (Pool, string) {
	t.Helper()
	shared.once.Do(func() {
		ctx := context.Background()
		c, err := pgtest.Start(ctx)
		if err != nil {
			shared.err = err
			return
		}
		cfg, err := pgxpool.ParseConfig(c.DSN("postgres"))
		if err != nil {
			c.Stop()
			shared.err = err
			return
		}
		cfg.MaxConns = 2
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			c.Stop()
			shared.err = err
			return
		}
		shared.cluster, shared.pool = c, pool
	})
	if errors.Is(shared.err, pgtest.ErrNoServer) {
		t.Skipf("PostgreSQL not tested: %v", shared.err)
	}
	if shared.err != nil {
		t.Fatalf("start PostgreSQL: %v", shared.err)
	}
	table := fmt.Sprintf("t%d", shared.tables.Add(1))
	_, err := shared.pool.Exec(t.Context(), `CREATE TABLE `+table+` (id int PRIMARY KEY, v text,
		CONSTRAINT `+table+`_v UNIQUE (v) DEFERRABLE INITIALLY DEFERRED)`)
	if err != nil {
		t.Fatal(err)
	}
	return Pool{shared.pool}, table
}

// count returns the rows of table, read outside any transaction.
func count(t *testing.T, p Pool, table string) int {
	t.Helper()
	var n int
	if err := p.P.QueryRow(t.Context(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// idle fails t unless every connection of the pool is back in it and idle: a
// transaction that leaked its connection or left it inside a transaction.
func idle(t *testing.T, p Pool) {
	t.Helper()
	if n := p.P.Stat().AcquiredConns(); n != 0 {
		t.Fatalf("%d connections still acquired", n)
	}
	conns := p.P.AcquireAllIdle(t.Context())
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for _, c := range conns {
		if s := c.Conn().PgConn().TxStatus(); s != 'I' {
			t.Fatalf("a pooled connection is in transaction state %q", s)
		}
	}
}

func insert(table string, id int, v string) sqldb.Statement {
	return sqldb.Statement{SQL: `INSERT INTO ` + table + ` (id, v) VALUES ($1, $2)`, Args: []any{id, v}}
}

func TestTxNothingSent(t *testing.T) {
	p, _ := testPool(t)
	ctx := t.Context()
	tx, err := p.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if i, err := tx.CommitWith(ctx, nil); i != -1 || err != nil {
		t.Fatalf("commit of nothing: %d, %v", i, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatalf("rollback after commit: %v", err)
	}
	idle(t, p)

	tx, err = p.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatalf("rollback of nothing: %v", err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1`); !errors.Is(err, pgx.ErrTxClosed) {
		t.Fatalf("exec after rollback: %v, want ErrTxClosed", err)
	}
	idle(t, p)
}

func TestTxFirstStatement(t *testing.T) {
	p, table := testPool(t)
	ctx := t.Context()

	// Exec first: its rows affected, inside the transaction.
	tx, _ := p.Begin(ctx)
	n, err := tx.Exec(ctx, `INSERT INTO `+table+` (id, v) VALUES (1, 'a'), (2, 'b')`)
	if err != nil || n != 2 {
		t.Fatalf("exec: %d, %v", n, err)
	}
	if got := count(t, p, table); got != 0 {
		t.Fatalf("uncommitted rows seen outside: %d", got)
	}
	if n, err := tx.Exec(ctx, `UPDATE `+table+` SET v = v || '!'`); err != nil || n != 2 {
		t.Fatalf("second exec: %d, %v", n, err)
	}
	if i, err := tx.CommitWith(ctx, []sqldb.Statement{insert(table, 3, "c")}); i != -1 || err != nil {
		t.Fatalf("commit: %d, %v", i, err)
	}
	if got := count(t, p, table); got != 3 {
		t.Fatalf("rows after commit: %d, want 3", got)
	}

	// Query first, then QueryRow.
	tx, _ = p.Begin(ctx)
	rows, err := tx.Query(ctx, `SELECT id FROM `+table+` ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil || fmt.Sprint(ids) != "[1 2 3]" {
		t.Fatalf("query: %v, %v", ids, err)
	}
	var v string
	if err := tx.QueryRow(ctx, `SELECT v FROM `+table+` WHERE id = 1`).Scan(&v); err != nil || v != "a!" {
		t.Fatalf("query row: %q, %v", v, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	// QueryRow first, finding nothing.
	tx, _ = p.Begin(ctx)
	if err := tx.QueryRow(ctx, `SELECT v FROM `+table+` WHERE id = 99`).Scan(&v); !errors.Is(err, sqldb.ErrNoRows) {
		t.Fatalf("query row of nothing: %v, want ErrNoRows", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	idle(t, p)
}

func TestTxRollback(t *testing.T) {
	p, table := testPool(t)
	ctx := t.Context()
	tx, _ := p.Begin(ctx)
	if i, err := tx.Batch(ctx, []sqldb.Statement{insert(table, 1, "a"), insert(table, 2, "b")}); i != -1 || err != nil {
		t.Fatalf("batch: %d, %v", i, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := count(t, p, table); got != 0 {
		t.Fatalf("rows after rollback: %d", got)
	}
	idle(t, p)
}

// A failed statement reports its index; the transaction is then aborted, its
// commit fails, and Rollback returns a clean connection to the pool.
func TestTxStatementFails(t *testing.T) {
	p, table := testPool(t)
	ctx := t.Context()
	for _, commit := range []bool{false, true} {
		t.Run(fmt.Sprintf("commit=%v", commit), func(t *testing.T) {
			tx, _ := p.Begin(ctx)
			stmts := []sqldb.Statement{insert(table, 1, "a"), insert(table, 1, "dup"), insert(table, 2, "b")}
			var i int
			var err error
			if commit {
				i, err = tx.CommitWith(ctx, stmts)
			} else {
				i, err = tx.Batch(ctx, stmts)
			}
			if i != 1 || err == nil {
				t.Fatalf("got %d, %v; want the second statement's error", i, err)
			}
			if !commit {
				if i, err := tx.CommitWith(ctx, nil); err == nil {
					t.Fatalf("commit of an aborted transaction succeeded (%d)", i)
				}
			}
			if err := tx.Rollback(ctx); err != nil {
				t.Fatalf("rollback: %v", err)
			}
			if got := count(t, p, table); got != 0 {
				t.Fatalf("rows after a failed transaction: %d", got)
			}
			idle(t, p)
		})
	}
}

// A commit that fails (a deferred constraint) reports the index past the
// statements.
func TestTxCommitFails(t *testing.T) {
	p, table := testPool(t)
	ctx := t.Context()
	tx, _ := p.Begin(ctx)
	stmts := []sqldb.Statement{insert(table, 1, "same"), insert(table, 2, "same")}
	if i, err := tx.CommitWith(ctx, stmts); i != len(stmts) || err == nil {
		t.Fatalf("got %d, %v; want the commit's error at %d", i, err, len(stmts))
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if got := count(t, p, table); got != 0 {
		t.Fatalf("rows after a failed commit: %d", got)
	}
	idle(t, p)
}

// A transaction's first statement may set its isolation (BEGIN and the plan
// setting went before it); inside, sequential scans are priced out.
func TestTxSettings(t *testing.T) {
	p, _ := testPool(t)
	ctx := t.Context()
	tx, _ := p.Begin(ctx)
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`); err != nil {
		t.Fatalf("set isolation first: %v", err)
	}
	var iso, ro, seqscan string
	if err := tx.QueryRow(ctx, `SELECT current_setting('transaction_isolation'),
		current_setting('transaction_read_only'), current_setting('enable_seqscan')`).Scan(&iso, &ro, &seqscan); err != nil {
		t.Fatal(err)
	}
	if iso != "repeatable read" || ro != "on" || seqscan != "off" {
		t.Fatalf("inside: isolation %q, read only %q, enable_seqscan %q", iso, ro, seqscan)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// SET LOCAL ends with the transaction.
	if err := p.P.QueryRow(ctx, `SELECT current_setting('enable_seqscan')`).Scan(&seqscan); err != nil || seqscan != "on" {
		t.Fatalf("outside: enable_seqscan %q, %v", seqscan, err)
	}
	idle(t, p)
}

// The application's transaction (EnqueueTx's) commits with statements too.
func TestAppTxCommitWith(t *testing.T) {
	p, table := testPool(t)
	ctx := t.Context()
	ptx, err := p.P.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx := Tx{ptx}
	if i, err := tx.CommitWith(ctx, []sqldb.Statement{insert(table, 1, "a")}); i != -1 || err != nil {
		t.Fatalf("commit: %d, %v", i, err)
	}
	if got := count(t, p, table); got != 1 {
		t.Fatalf("rows: %d, want 1", got)
	}
	idle(t, p)
}

// A statement's generic plan, which a connection caches after five runs, made
// while its table was small, still finds rows by index once the table has grown:
// with sequential scans at their usual price it would scan the table for each.
func TestGenericPlanOnGrownTable(t *testing.T) {
	p, table := testPool(t)
	ctx := t.Context()
	if _, err := p.Exec(ctx, `INSERT INTO `+table+` SELECT i, 'v' || i FROM generate_series(1, 50) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exec(ctx, `ANALYZE `+table); err != nil {
		t.Fatal(err)
	}
	tx, _ := p.Begin(ctx)
	defer tx.Rollback(ctx)
	stmt := table + "_lookup"
	if _, err := tx.Exec(ctx, `PREPARE `+stmt+`(int[]) AS SELECT v FROM `+table+` WHERE id = ANY($1)`); err != nil {
		t.Fatal(err)
	}
	defer p.P.Exec(context.Background(), `DEALLOCATE `+stmt)
	for range 6 {
		if _, err := tx.Exec(ctx, `EXECUTE `+stmt+`('{1,2,3}')`); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+table+` SELECT i, 'v' || i FROM generate_series(51, 20000) AS i`); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query(ctx, `EXPLAIN EXECUTE `+stmt+`('{1,2,3}')`)
	if err != nil {
		t.Fatal(err)
	}
	var plan strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(line + "\n")
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan.String(), "Index") || strings.Contains(plan.String(), "Seq Scan") {
		t.Fatalf("the cached plan of a lookup by ID on %s:\n%s", table, plan.String())
	}
}
