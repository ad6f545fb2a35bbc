package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/internal/pgtest"
	"github.com/jobrun/jobrun/pg"
)

// The scaling of jobrun on PostgreSQL with the number of worker processes: W4's
// drain, of jobs enqueued first, by 1, 2 and 4 runners on one database, each with
// its own pool and W4's 16 workers, as processes would be (each claims with its
// own leases and commits on its own connections; they share this machine's cores,
// as processes on it would).

// pgScaleRunners are the numbers of runners measured.
var pgScaleRunners = []int{1, 2, 4}

// benchPGScaling measures the drain for each number of runners cfg.runs times and
// prints a JSON line per measurement and, unless cfg.json, a table of medians.
func benchPGScaling(ctx context.Context, cfg benchConfig, cluster *pgtest.Cluster, stdout io.Writer) error {
	n := cfg.size(w4.size)
	results := map[int][]float64{}
	for range cfg.runs {
		for _, k := range pgScaleRunners {
			elapsed, err := pgDrainBy(ctx, cluster, k, n)
			if err != nil {
				return fmt.Errorf("drain by %d runners: %w", k, err)
			}
			rate := float64(n) / elapsed.Seconds()
			results[k] = append(results[k], rate)
			line := benchLine{System: "jobrun", Config: "postgresql", Workload: fmt.Sprintf("W4-drain-%drunners", k),
				N: n, Seconds: round(elapsed.Seconds(), 4), JobsPerS: round(rate, 0), Workers: k * benchWorkers}
			if err := json.NewEncoder(stdout).Encode(line); err != nil {
				return err
			}
		}
	}
	if cfg.json {
		return nil
	}
	fmt.Fprintf(stdout, "\nW4 drain on PostgreSQL by runners sharing one database (each its own pool and %d workers); median of %d:\n\n",
		benchWorkers, cfg.runs)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "runners\tn\tjobs/s\tvs 1 runner\t\n")
	var one float64
	for _, k := range pgScaleRunners {
		rs := slices.Clone(results[k])
		slices.Sort(rs)
		m := rs[len(rs)/2]
		if k == 1 {
			one = m
		}
		fmt.Fprintf(tw, "%d\t%d\t%.0f\t%.2f\t\n", k, n, m, m/one)
	}
	return tw.Flush()
}

// pgDrainBy enqueues n jobs on a fresh database and returns how long k runners
// take to run them all.
func pgDrainBy(ctx context.Context, cluster *pgtest.Cluster, k, n int) (time.Duration, error) {
	first, err := benchDatabase(ctx, cluster)
	if err != nil {
		return 0, err
	}
	pools := []*pgxpool.Pool{first}
	defer func() {
		for _, p := range pools {
			p.Close()
		}
	}()
	var ran atomic.Int64
	allRan := make(chan struct{})
	var runners []*jobrun.Runner
	defer func() {
		for _, r := range runners {
			r.Close()
		}
	}()
	for i := range k {
		pool := first
		if i > 0 {
			if pool, err = pgxpool.NewWithConfig(ctx, first.Config().Copy()); err != nil {
				return 0, err
			}
			pools = append(pools, pool)
		}
		r, err := pg.Open(ctx, pool, jobrun.WithQueue(benchQueue, benchWorkers, nil))
		if err != nil {
			return 0, err
		}
		runners = append(runners, r)
		jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[benchArgs]) error {
			if ran.Add(1) == int64(n) {
				close(allRan)
			}
			return nil
		}, jobrun.Queue(benchQueue))
	}
	if err := enqueueBatches(ctx, runners[0], n, newBenchArgs); err != nil {
		return 0, err
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	start := time.Now()
	for _, r := range runners {
		wg.Go(func() { r.Run(rctx) })
	}
	defer wg.Wait()
	defer stop()
	select {
	case <-allRan:
	case <-ctx.Done():
		return 0, context.Cause(ctx)
	}
	for { // every completion committed, as waitStored waits for
		counts, err := runners[0].Counts(ctx, benchQueue)
		if err != nil {
			return 0, err
		}
		if counts[jobrun.StateDone] == n {
			return time.Since(start), nil
		}
		if counts[jobrun.StateRetrying]+counts[jobrun.StateFailed] > 0 {
			return 0, errors.New("jobs failed an attempt")
		}
		time.Sleep(storedPoll)
	}
}
