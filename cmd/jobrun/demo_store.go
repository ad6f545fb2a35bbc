package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/internal/pgtest"
	"github.com/jobrun/jobrun/pg"
)

// demoStore is where the demo keeps its jobs: the -db file, or PostgreSQL.
type demoStore struct {
	name  string // for "database NAME holds ..."
	after string // what the summary's last lines say of the jobs kept
	open  func(opts ...jobrun.Option) (*jobrun.Runner, error)
	close func()
}

// demoSchema is the PostgreSQL schema of the demo's jobs.
const demoSchema = "demo"

// openDemoStore prepares cfg's store, emptied first with -reset.
func openDemoStore(ctx context.Context, cfg *demoConfig) (*demoStore, error) {
	if cfg.store != "pg" {
		if cfg.reset {
			if err := os.Remove(cfg.db); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, err
			}
		}
		return &demoStore{
			name: cfg.db,
			after: fmt.Sprintf("The jobs stay in %s: run the demo again to add to them, or with -reset to start over;\n"+
				"\"jobrun serve %s\" shows them in the dashboard.", cfg.db, cfg.db),
			open:  func(opts ...jobrun.Option) (*jobrun.Runner, error) { return jobrun.Open(cfg.db, opts...) },
			close: func() {},
		}, nil
	}
	dsn, stop := cfg.dsn, func() {}
	after := fmt.Sprintf("The jobs stay in schema %q of the database: run the demo again with the same -dsn to add to\n"+
		"them, or with -reset to start over; \"jobrun stats -dsn DSN -schema %s\" counts them.", demoSchema, demoSchema)
	if dsn == "" {
		cluster, err := pgtest.Start(ctx)
		if err != nil {
			return nil, fmt.Errorf("-store pg without -dsn starts a throwaway PostgreSQL cluster: %w", err)
		}
		dsn, stop = cluster.DSN("postgres"), func() { cluster.Stop() }
		after = "The throwaway cluster and its jobs are removed now; with -dsn the jobs stay in a database of yours."
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		stop()
		return nil, fmt.Errorf("-dsn: %w", err)
	}
	if cfg.reset {
		if _, err := pool.Exec(ctx, `DROP SCHEMA IF EXISTS `+demoSchema+` CASCADE`); err != nil {
			pool.Close()
			stop()
			return nil, fmt.Errorf("-reset: %w", err)
		}
	}
	c := pool.Config().ConnConfig
	return &demoStore{
		name:  fmt.Sprintf("postgres://%s:%d/%s (schema %s)", c.Host, c.Port, c.Database, demoSchema),
		after: after,
		open: func(opts ...jobrun.Option) (*jobrun.Runner, error) {
			return pg.Open(context.WithoutCancel(ctx), pool, append(opts, pg.WithSchema(demoSchema))...)
		},
		close: func() {
			pool.Close()
			stop()
		},
	}, nil
}
