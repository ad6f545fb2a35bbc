package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/pg"
)

// With -dsn, the commands on a database file work on the jobs of a PostgreSQL
// database (package pg) instead, while the applications that share it run:
// PostgreSQL has no file lock. A command that only reads opens the runner
// read-only, which neither migrates the schema nor writes anything.

// dsnEnv is the environment variable that -dsn defaults to.
const dsnEnv = "JOBRUN_DSN"

// pgFlags defines -dsn and -schema.
func (c *fileCmd) pgFlags() {
	c.dsn = c.fs.String("dsn", "", "work on the jobs in the PostgreSQL database at `DSN` (a postgres:// URL or key=value\n"+
		"string, as pgx takes) instead of on FILE; default: $"+dsnEnv)
	c.schema = c.fs.String("schema", "jobrun", "with -dsn, the PostgreSQL `schema` of the runner's tables (pg.WithSchema)")
}

// dsnValue is -dsn, or the environment variable JOBRUN_DSN.
func (c *fileCmd) dsnValue() string {
	if c.dsn == nil {
		return ""
	}
	if *c.dsn != "" {
		return *c.dsn
	}
	return os.Getenv(dsnEnv)
}

// onPG reports whether the command works on a PostgreSQL database (-dsn).
func (c *fileCmd) onPG() bool { return c.dsnValue() != "" }

// pgName names the database in messages: host, port, database and schema, no
// password.
func (c *fileCmd) pgName() string {
	cfg, err := pgxpool.ParseConfig(c.dsnValue())
	if err != nil {
		return "the -dsn database"
	}
	cc := cfg.ConnConfig
	return fmt.Sprintf("postgres://%s:%d/%s (schema %s)", cc.Host, cc.Port, cc.Database, *c.schema)
}

// withPG calls fn with a runner on the -dsn database opened for acc, as withFile
// opens a file.
func (c *fileCmd) withPG(acc access, fn func(r *jobrun.Runner) error) (err error) {
	ctx := context.Background()
	name := c.pgName()
	pool, err := pgxpool.New(ctx, c.dsnValue())
	if err != nil {
		return &worded{fmt.Sprintf("-dsn: %v", err), err}
	}
	defer pool.Close()
	opts := []jobrun.Option{jobrun.WithStrictKinds(false), pg.WithSchema(*c.schema)}
	switch acc {
	case readAccess:
		opts = append(opts, jobrun.WithReadOnly())
	case manageAccess:
		opts = append(opts, jobrun.WithServices(false))
	}
	r, err := pg.Open(ctx, pool, opts...)
	if errors.Is(err, jobrun.ErrSchema) {
		return &worded{name + ": " + message(err), err}
	}
	if err != nil {
		return &worded{fmt.Sprintf("%s: %v", name, err), err}
	}
	defer func() {
		if cerr := r.Close(); err == nil {
			err = cerr
		}
	}()
	return fn(r)
}
