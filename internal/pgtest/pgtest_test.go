package pgtest

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestCluster: a started cluster takes connections on its port with PostgreSQL's
// durable defaults, and Stop stops it and removes its directory.
func TestCluster(t *testing.T) {
	ctx := t.Context()
	c, err := Start(ctx)
	if errors.Is(err, ErrNoServer) {
		t.Skipf("no PostgreSQL server binaries here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		c.Stop()
		t.Fatal(err)
	}
	var sync, fsync string
	err = conn.QueryRow(ctx, "select current_setting('synchronous_commit'), current_setting('fsync')").Scan(&sync, &fsync)
	conn.Close(ctx)
	if err != nil || sync != "on" || fsync != "on" {
		t.Errorf("synchronous_commit %q, fsync %q, %v; want on, on", sync, fsync, err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the cluster's directory is still there: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if conn, err := pgx.Connect(cctx, c.DSN("postgres")); err == nil {
		conn.Close(ctx)
		t.Error("the server still takes connections after Stop")
	}
}
