package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/jobrun/jobrun/internal/pgtest"
)

// River is measured on a throwaway PostgreSQL cluster on the same disk, at the
// server's defaults (synchronous_commit on), for W1, W4 and W6: the reference that a
// PostgreSQL store of jobrun is to be compared with. Each measurement gets a fresh
// database, migrated by River's own migrator.

// riverArgs are River's job args: the payload of jobrun's W1-W6 jobs.
type riverArgs struct {
	benchArgs
}

func (riverArgs) Kind() string { return "bench" }

// riverWorker completes every job at once, as jobrun's bench handlers do.
type riverWorker struct {
	river.WorkerDefaults[riverArgs]
}

func (riverWorker) Work(context.Context, *river.Job[riverArgs]) error { return nil }

// riverFetchCooldown is the shortest River allows: at its default of 100 ms the
// workers idle between fetches and W4 measures the cooldown (about 160 jobs/s).
const riverFetchCooldown = time.Millisecond

// riverSpec is one River measurement.
type riverSpec struct {
	id   string // the workload it mirrors
	name string
	size int
	run  func(ctx context.Context, pool *pgxpool.Pool, n int) (time.Duration, error)
}

var riverSpecs = []riverSpec{
	{"W1", "enqueue-seq", 20_000, riverEnqueueSeq},
	{"W4", "drain", 100_000, riverDrain},
	{"W6", "e2e", 50_000, riverE2E},
}

// benchRiver measures River on the workloads of cfg that it mirrors, cfg.runs times
// each, and prints a JSON line per measurement and, unless cfg.json, a table of the
// medians beside jobrun's.
func benchRiver(ctx context.Context, cfg benchConfig, cluster *pgtest.Cluster, jobrun map[string][]benchResult, stdout, stderr io.Writer) error {
	var specs []riverSpec
	for _, s := range riverSpecs {
		if slices.ContainsFunc(cfg.specs, func(w *benchSpec) bool { return w.id == s.id }) {
			specs = append(specs, s)
		}
	}
	if len(specs) == 0 {
		return nil
	}
	if cluster == nil { // jobrun measured on a file: River gets a cluster of its own
		c, err := pgtest.Start(ctx)
		if errors.Is(err, pgtest.ErrNoServer) {
			fmt.Fprintf(stderr, "jobrun bench: -river skipped: %v\n", err)
			return nil
		}
		if err != nil {
			return err
		}
		defer c.Stop()
		cluster = c
	}
	results := map[string][]benchLine{}
	db := 0
	for range cfg.runs {
		for _, s := range specs {
			db++
			n := cfg.size(s.size)
			elapsed, err := riverMeasure(ctx, cluster, fmt.Sprintf("bench%d", db), s, n)
			if err != nil {
				return fmt.Errorf("river %s: %w", s.id, err)
			}
			line := benchLine{System: "river", Config: "postgresql", Workload: s.id + "-" + s.name, N: n,
				Seconds: elapsed.Seconds(), JobsPerS: float64(n) / elapsed.Seconds()}
			results[s.id] = append(results[s.id], line)
			if err := json.NewEncoder(stdout).Encode(line); err != nil {
				return err
			}
		}
	}
	if cfg.json {
		return nil
	}
	fmt.Fprintf(stdout, "\nRiver %s (riverpgxv5, fetch cooldown %v) on PostgreSQL at its defaults, a throwaway cluster on this disk; median of %d:\n\n",
		riverVersion, riverFetchCooldown, cfg.runs)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "workload\tn\triver jobs/s\tjobrun (%s) jobs/s\tratio\t\n", map[string]string{"bolt": "bbolt", "pg": "PostgreSQL"}[cfg.store])
	for _, s := range specs {
		lines := results[s.id]
		jobsPerS := make([]float64, len(lines))
		for i, l := range lines {
			jobsPerS[i] = l.JobsPerS
		}
		slices.Sort(jobsPerS)
		ours, ratio := "-", "-"
		theirs := jobsPerS[len(jobsPerS)/2]
		if rs := jobrun[s.id+"-"+s.name]; len(rs) > 0 {
			m := medianOf(rs).JobsPerS
			ours, ratio = fmt.Sprintf("%.0f", m), fmt.Sprintf("%.2f", m/theirs)
		}
		fmt.Fprintf(tw, "%s-%s\t%d\t%.0f\t%s\t%s\t\n", s.id, s.name, lines[0].N, theirs, ours, ratio)
	}
	return tw.Flush()
}

// riverVersion is the River module the bench is built with.
const riverVersion = "v0.51.2"

// riverMeasure creates database name on the cluster, migrates it and runs s.
func riverMeasure(ctx context.Context, cluster *pgtest.Cluster, name string, s riverSpec, n int) (time.Duration, error) {
	admin, err := pgx.Connect(ctx, cluster.DSN("postgres"))
	if err != nil {
		return 0, err
	}
	_, err = admin.Exec(ctx, "create database "+name)
	admin.Close(ctx)
	if err != nil {
		return 0, err
	}
	pool, err := pgxpool.New(ctx, cluster.DSN(name))
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return 0, err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return 0, err
	}
	return s.run(ctx, pool, n)
}

// riverClient makes a River client; with workers, it works the default queue with
// that many.
func riverClient(pool *pgxpool.Pool, workers int) (*river.Client[pgx.Tx], error) {
	// River warns of every completion event its full subscription buffer drops;
	// riverRun counts the table for those, so the warnings are noise here.
	cfg := &river.Config{FetchCooldown: riverFetchCooldown, FetchPollInterval: 100 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)}
	if workers > 0 {
		ws := river.NewWorkers()
		river.AddWorker(ws, riverWorker{})
		cfg.Workers = ws
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: workers}}
	}
	return river.NewClient(riverpgxv5.New(pool), cfg)
}

// riverEnqueueSeq is W1: one producer inserts n jobs one at a time, each insert
// returning once committed.
func riverEnqueueSeq(ctx context.Context, pool *pgxpool.Pool, n int) (time.Duration, error) {
	c, err := riverClient(pool, 0)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	for i := range n {
		if _, err := c.Insert(ctx, riverArgs{newBenchArgs(i)}, nil); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// riverDrain is W4: n jobs inserted beforehand in batches of 1,000 (untimed), then
// 16 workers from their start until the last completion.
func riverDrain(ctx context.Context, pool *pgxpool.Pool, n int) (time.Duration, error) {
	ins, err := riverClient(pool, 0)
	if err != nil {
		return 0, err
	}
	for from := 0; from < n; from += 1000 {
		batch := make([]river.InsertManyParams, 0, 1000)
		for i := from; i < min(from+1000, n); i++ {
			batch = append(batch, river.InsertManyParams{Args: riverArgs{newBenchArgs(i)}})
		}
		if _, err := ins.InsertMany(ctx, batch); err != nil {
			return 0, err
		}
	}
	return riverRun(ctx, pool, n, nil)
}

// riverE2E is W6: 4 producers insert n jobs one at a time while 16 workers run,
// until the last completion.
func riverE2E(ctx context.Context, pool *pgxpool.Pool, n int) (time.Duration, error) {
	return riverRun(ctx, pool, n, func(c *river.Client[pgx.Tx]) error {
		const producers = 4
		var next atomic.Int64
		errs := make(chan error, producers)
		var wg sync.WaitGroup
		for range producers {
			wg.Go(func() {
				for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
					if _, err := c.Insert(ctx, riverArgs{newBenchArgs(i)}, nil); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		return <-errs
	})
}

// riverRun starts a client of 16 workers, runs produce (if not nil) and returns the
// time from the start until n jobs have completed.
func riverRun(ctx context.Context, pool *pgxpool.Pool, n int, produce func(*river.Client[pgx.Tx]) error) (time.Duration, error) {
	c, err := riverClient(pool, benchWorkers)
	if err != nil {
		return 0, err
	}
	completed, stop := c.Subscribe(river.EventKindJobCompleted)
	defer stop()
	start := time.Now()
	if err := c.Start(ctx); err != nil {
		return 0, err
	}
	defer c.Stop(context.WithoutCancel(ctx))
	ctx, cancel := context.WithCancel(ctx)
	produced := make(chan error, 1)
	defer func() {
		// On an error the producers stop with ctx; the measurement waits for them.
		cancel()
		if produced != nil {
			<-produced
		}
	}()
	go func() {
		if produce == nil {
			produced <- nil
			return
		}
		produced <- produce(c)
	}()
	// Events can be dropped when their channel is full: count them, and look at the
	// table now and then for what they missed.
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	seen := 0
	for {
		select {
		case <-completed:
			seen++
		case err := <-produced:
			if err != nil {
				return 0, err
			}
			produced = nil
		case <-poll.C:
			var done int
			if err := pool.QueryRow(ctx, "select count(*) from river_job where state = 'completed'").Scan(&done); err != nil {
				return 0, err
			}
			seen = max(seen, done)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if seen >= n {
			return time.Since(start), nil
		}
	}
}

// benchDatabases counts the databases benchDatabase made, for their names.
var benchDatabases atomic.Int64

// benchDatabase creates a fresh database on cluster for one measurement of jobrun
// on PostgreSQL and returns a pool on it, of pgxpool's default size.
func benchDatabase(ctx context.Context, cluster *pgtest.Cluster) (*pgxpool.Pool, error) {
	name := fmt.Sprintf("jobrun%d", benchDatabases.Add(1))
	admin, err := pgx.Connect(ctx, cluster.DSN("postgres"))
	if err != nil {
		return nil, err
	}
	_, err = admin.Exec(ctx, "create database "+name)
	admin.Close(ctx)
	if err != nil {
		return nil, err
	}
	return pgxpool.New(ctx, cluster.DSN(name))
}
