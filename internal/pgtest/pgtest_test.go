package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

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

// TestWatchdog: a cluster whose process exits without Stop is stopped and removed
// by its watchdog.
func TestWatchdog(t *testing.T) {
	if os.Getenv("PGTEST_ORPHAN") != "" {
		c, err := Start(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println("DIR", c.dir)
		os.Exit(0) // no Stop
	}
	if _, err := serverBinaries(); err != nil {
		t.Skipf("no PostgreSQL server binaries here: %v", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestWatchdog$")
	cmd.Env = append(os.Environ(), "PGTEST_ORPHAN=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("orphan: %v\n%s", err, out)
	}
	_, dir, ok := strings.Cut(strings.TrimSpace(string(out)), "DIR ")
	if !ok {
		t.Fatalf("orphan printed %q", out)
	}
	dir, _, _ = strings.Cut(dir, "\n")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			return // stopped and removed
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is still there 30s after its process exited", dir)
		}
		time.Sleep(100 * time.Millisecond) // the watchdog looks every second
	}
}
