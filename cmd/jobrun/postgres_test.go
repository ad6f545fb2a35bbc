package main

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/jobrun/jobrun/internal/pgtest"
)

// TestDSNCommands: with -dsn, the commands work on the jobs of a PostgreSQL
// database: a command that only reads creates nothing there, one that writes
// creates the tables and works as on a file, and the commands that rewrite a file
// refuse the database.
func TestDSNCommands(t *testing.T) {
	cluster, err := pgtest.Start(t.Context())
	if errors.Is(err, pgtest.ErrNoServer) {
		t.Skipf("PostgreSQL not tested: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cluster.Stop() })
	noLeaks(t)
	dsn := cluster.DSN("postgres")

	_, errs := cli(t, 1, "list", "-dsn", dsn)
	mustContain(t, errs, "holds no jobrun tables")
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	var schemas int
	err = conn.QueryRow(t.Context(), `SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'jobrun'`).Scan(&schemas)
	conn.Close(context.Background())
	if err != nil || schemas != 0 {
		t.Fatalf("a read-only command created %d schemas (%v)", schemas, err)
	}

	out, _ := cli(t, 0, "enqueue", "-dsn", dsn, "email", `{"to": "ada@example.com"}`, "-queue", "mail")
	mustContain(t, out, "Enqueued job 1 (email): it is ready")
	out, _ = cli(t, 0, "list", "-dsn", dsn)
	mustContain(t, out, "email")
	out, _ = cli(t, 0, "show", "-dsn", dsn, "1")
	mustContain(t, out, "ada@example.com")
	cli(t, 0, "pause", "-dsn", dsn, "mail")
	out, _ = cli(t, 0, "stats", "-dsn", dsn)
	mustContain(t, out, "mail     0          1      0        0         0     0       0         1      yes")
	out, _ = cli(t, 0, "enqueue", "-dsn", dsn, "-schema", "other", "email", `{}`)
	mustContain(t, out, "Enqueued job 1 (email)") // another schema, other jobs

	runCases(t, []cliCase{
		{args: []string{"compact", "-dsn", dsn}, code: 2, errs: "it works on a bbolt file only"},
		{args: []string{"list", "-dsn", dsn, "-url", "http://127.0.0.1:1/"}, code: 2, errs: "give one"},
		{args: []string{"list", "-dsn", dsn, "jobs.db"}, code: 2, errs: "not on a FILE"},
	})
}
