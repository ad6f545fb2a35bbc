package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.etcd.io/bbolt"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/internal/pgtest"
	"github.com/jobrun/jobrun/pg"
)

const (
	benchSynopsis = "usage: jobrun bench [flags]"
	benchDoc      = `Bench measures jobrun on the workloads the project defines in docs/WORKLOADS.md,
each run against a fresh database file in a temporary directory that is removed
afterwards. Every job goes to one queue, "bench", run by 16 workers; handlers only
record completion; docs/PERFORMANCE.md records the figures of a full run.

  W1 enqueue-seq   20,000 jobs; 1 producer, Enqueue one at a time
  W2 enqueue-conc  50,000 jobs; 16 producers, Enqueue one at a time
  W3 enqueue-bulk  100,000 jobs; 1 producer, EnqueueMany in batches of 1,000
  W4 drain         100,000 jobs inserted beforehand (untimed); from Run until the
                   last completion is committed
  W5 latency       5,000 jobs enqueued at a steady 500/s while the workers run;
                   p50/p95/p99 of handler start minus the instant before Enqueue
  W6 e2e           50,000 jobs; 4 producers and the workers at once, until the last
                   completion is committed
  W7 steps         20,000 runs inserted beforehand, each a handler of three Steps
                   (no-ops returning a small struct); until the last run is done
  W8 fan-out       2,000 events sent one at a time while the workers run, each
                   starting a run of each of the 10 functions on its name; until
                   the last of the 20,000 runs is done
  W9 run-latency   2,000 events sent at a steady 100/s while the workers run, each
                   starting a run of three steps; p50/p95/p99 of its first step's
                   call, and of its done commit, minus the instant before Send

In the same run it measures raw bbolt on the same disk, each on a fresh file, as
the reference every workload is compared to:

  a    one Put per Update, from 1 goroutine                            (for W1)
  b16  group commit of single Puts from 16 goroutines: one committer
       takes every queued Put and commits them in one Update           (for W2)
  b4   the same from 4 goroutines                                      (for W6)
  s16  runs of four sequential Puts (three steps, a completion) from 16
       goroutines through the same group commit                        (for W7)
  d    the least a job's life takes, in batches of 1,000 per
       transaction: insert record and ready key; claim (ready key to
       active key); complete (delete active key, rewrite the record)   (for W3, W4)

Three more sets of measurements run only when -workloads names them:

  scale  for 10,000 and for 1,000,000 jobs waiting in 100 queues (q00 to q99; a
         fresh file each, filled untimed, job i in queue i mod 100): the time
         jobrun.Open takes on the closed file, and until the first handler starts;
         claim and complete, 10 rounds of 2,000 jobs run by 1 worker per queue, each
         round refilled (untimed) after it, so the waiting count stays put; 2,000
         single Enqueues on top, and 50,000 more in EnqueueMany batches of 1,000 (to
         a queue "bulk" that no worker runs); then every job of the 100 queues
         drained while the Go heap and the process RSS are sampled every 10 ms. The
         two sizes take turns, round by round and batch by batch, so that a change
         in the machine's load falls on both alike
  conc   W4 with 1, 4, 16 and 64 workers
  size   W1, W3 and W4 with args of 100 B and of 10 KiB (JSON)

Every measurement prints one JSON line on stdout (system "jobrun", or "bbolt" for a
reference), with extra fields where the set needs them (waiting, workers,
payload_bytes, the memory peaks); a table of the medians, with each workload's ratio
to its reference (or, for the sets, to its first size), follows unless -json is set.
`
)

// The shape every workload shares (docs/WORKLOADS.md).
const (
	benchQueue   = "bench"
	benchWorkers = 16   // total concurrency of the workers
	benchBatch   = 1000 // jobs per EnqueueMany, and per transaction of reference d
	w5Rate       = 500  // jobs per second W5's producer offers

	// refValueSize is the size of the value the references store per job: about what
	// the payload takes as JSON.
	refValueSize = 70

	// storedPoll is how often a workload polls the counters once every handler has
	// run, until the last completion is committed: it bounds the measuring error.
	storedPoll = 100 * time.Microsecond
)

// benchConfig is what the bench's flags set.
type benchConfig struct {
	quick      bool
	runs       int
	specs      []*benchSpec  // the workloads to run, in table order
	suites     []*benchSuite // the other sets to run, in table order
	nosync     bool
	json       bool
	dir        string
	scale      int
	cpuprofile string
	river      bool   // -river: River on PostgreSQL too
	store      string // -store: "bolt" or "pg"
}

// size is the number of jobs a measurement of full size n runs with these flags.
func (c *benchConfig) size(n int) int {
	if c.quick {
		n /= 10
	}
	return max(n/c.scale, 1)
}

// syncConfig names the durability setting in the "config" field of every line.
func (c *benchConfig) syncConfig() string {
	if c.store == "pg" {
		return "postgresql"
	}
	if c.nosync {
		return "nosync"
	}
	return "fsync"
}

// runBench is the bench command: it parses args, runs the measurements and prints
// them to stdout. An interruption through ctx stops it with an error, since the
// figures are then incomplete; the temporary files are removed either way.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := benchConfig{dir: os.TempDir()}
	var names string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.BoolVar(&cfg.quick, "quick", false, "divide every size by 10, for smoke tests")
	fs.IntVar(&cfg.runs, "runs", 3, "run every measurement `n` times and report each run and the median")
	fs.StringVar(&names, "workloads", "W1,W2,W3,W4,W5,W6,W7,W8,W9",
		"comma-separated `list` of the workloads to run: W1 to W9, scale, conc, size")
	fs.BoolVar(&cfg.nosync, "nosync", false,
		`open the files with bbolt's NoSync: commits are not fsynced (config "nosync")`)
	fs.BoolVar(&cfg.json, "json", false, "print the JSON lines only, without the table")
	fs.StringVar(&cfg.dir, "dir", cfg.dir, "`directory` for the temporary database files: the disk measured")
	fs.IntVar(&cfg.scale, "scale", 1, "divide every size by `k` too (at least 1 job each), for tests")
	fs.StringVar(&cfg.store, "store", "bolt",
		"`store` of the runners measured: bolt (a file in -dir), or pg: PostgreSQL, on a throwaway cluster\n"+
			"(server binaries needed) at its defaults, a fresh database per measurement (config \"postgresql\");\n"+
			"the raw-bbolt references and the sets are bbolt's and are left out; with W4, W4's drain by 1, 2\n"+
			"and 4 runners sharing a database follows")
	fs.BoolVar(&cfg.river, "river", false,
		"also measure River on a throwaway PostgreSQL cluster (server binaries needed) for W1, W4 and W6,\n"+
			"after jobrun's runs, and print its medians beside jobrun's")
	fs.StringVar(&cfg.cpuprofile, "cpuprofile", "",
		"write a CPU profile to `file`: of the timed part of the first W4 run or, without W4, of the\n"+
			"first scale run from its claims to its drains of every job, labelled by size and step\n"+
			"(\"go tool pprof -tags file\"; -tagfocus 'phase=claims' -tagignore 'waiting=(10k)')")
	if err := parseFlags(fs, benchSynopsis, benchDoc, args, stdout, stderr); err != nil {
		return err
	}
	var bad error
	cfg.specs, cfg.suites, bad = selectWorkloads(names)
	switch {
	case bad != nil:
	case cfg.runs < 1:
		bad = fmt.Errorf("-runs must be at least 1, got %d", cfg.runs)
	case cfg.scale < 1:
		bad = fmt.Errorf("-scale must be at least 1, got %d", cfg.scale)
	case cfg.store != "bolt" && cfg.store != "pg":
		bad = fmt.Errorf("-store must be bolt or pg, got %q", cfg.store)
	case cfg.store == "pg" && cfg.nosync:
		bad = errors.New("-nosync is bbolt's: PostgreSQL is measured at its defaults")
	case cfg.cpuprofile != "" && !slices.Contains(cfg.specs, w4) && !slices.Contains(cfg.suites, scaleSuite):
		bad = errors.New("-cpuprofile profiles W4 or the scale set, which -workloads leaves out")
	}
	if bad != nil {
		fmt.Fprintf(stderr, "jobrun bench: %v\n%s\nRun \"jobrun help bench\" for details.\n", bad, benchSynopsis)
		return &usageError{bad}
	}
	return bench(ctx, cfg, stdout, stderr)
}

// selectWorkloads parses the -workloads list: IDs like "W4" and set names like
// "scale", in any case and order. They run in table order whatever the order of the
// list: W1 to W6, then scale, conc and size.
func selectWorkloads(list string) ([]*benchSpec, []*benchSuite, error) {
	want := map[*benchSpec]bool{}
	wantSuite := map[*benchSuite]bool{}
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		if i := slices.IndexFunc(workloads, func(s *benchSpec) bool { return strings.EqualFold(s.id, name) }); i >= 0 {
			want[workloads[i]] = true
			continue
		}
		i := slices.IndexFunc(suites, func(s *benchSuite) bool { return strings.EqualFold(s.name, name) })
		if i < 0 {
			return nil, nil, fmt.Errorf("-workloads: unknown workload %q (want W1 to W9, scale, conc or size)", name)
		}
		wantSuite[suites[i]] = true
	}
	var specs []*benchSpec
	for _, s := range workloads {
		if want[s] {
			specs = append(specs, s)
		}
	}
	var sets []*benchSuite
	for _, s := range suites {
		if wantSuite[s] {
			sets = append(sets, s)
		}
	}
	return specs, sets, nil
}

// benchSpec is one measurement: a jobrun workload or a raw-bbolt reference.
type benchSpec struct {
	id     string // "W1", or the reference's letter
	name   string // what it is, for the workload field: "drain"
	system string // "jobrun", or "bbolt" for a reference
	size   int    // jobs at full size
	ref    *benchSpec
	run    runFunc

	// For the conc and size sets, which print them in the JSON line.
	workers int // total concurrency of the workers, if not benchWorkers
	payload int // bytes of each job's args as JSON, if not the standard payload
	steps   int // steps per run (W7 and its reference), for runs_per_s and steps_per_s
	fanout  int // runs per event (W8), for runs_per_s and events_per_s
}

// workload is the value of the JSON line's "workload" field.
func (s *benchSpec) workload() string {
	if s.system == "bbolt" {
		return "ref-" + s.id + "-" + s.name
	}
	return s.id + "-" + s.name
}

// The references (the raw-bbolt measurements), sized like the workloads they serve.
var (
	refA   = &benchSpec{id: "a", name: "put-per-update", system: "bbolt", size: 20_000, run: refPutPerUpdate}
	refB16 = &benchSpec{id: "b16", name: "group-commit", system: "bbolt", size: 50_000, run: refGroupCommit(16)}
	refB4  = &benchSpec{id: "b4", name: "group-commit", system: "bbolt", size: 50_000, run: refGroupCommit(4)}
	refD   = &benchSpec{id: "d", name: "lifecycle-batch", system: "bbolt", size: 100_000, run: refLifecycle}
	refS16 = &benchSpec{id: "s16", name: "step-writes", system: "bbolt", size: 20_000, steps: 3, run: refSteps(16, 4)}
)

// The workloads of docs/WORKLOADS.md, in table order.
var (
	w4 = &benchSpec{id: "W4", name: "drain", system: "jobrun", size: 100_000, ref: refD,
		run: drainWith(benchWorkers, newBenchArgs)}
	workloads = []*benchSpec{
		{id: "W1", name: "enqueue-seq", system: "jobrun", size: 20_000, ref: refA, run: enqueueSeqWith(newBenchArgs)},
		{id: "W2", name: "enqueue-conc", system: "jobrun", size: 50_000, ref: refB16, run: benchEnqueueConc},
		{id: "W3", name: "enqueue-bulk", system: "jobrun", size: 100_000, ref: refD, run: enqueueBulkWith(newBenchArgs)},
		w4,
		{id: "W5", name: "latency", system: "jobrun", size: 5_000, run: benchLatency},
		{id: "W6", name: "e2e", system: "jobrun", size: 50_000, ref: refB4, run: benchE2E},
		{id: "W7", name: "steps", system: "jobrun", size: 20_000, ref: refS16, steps: 3, run: benchSteps},
		{id: "W8", name: "fan-out", system: "jobrun", size: 2_000, fanout: w8Functions, run: benchFanOut},
		{id: "W9", name: "run-latency", system: "jobrun", size: 2_000, run: benchRunLatency},
	}
)

// benchEnv is what one measurement runs in.
type benchEnv struct {
	dir     string          // a fresh temporary directory, removed after the measurement
	nosync  bool            // open bbolt with NoSync
	profile io.Writer       // if not nil, W4 (or the scale set) writes a CPU profile of its timed part here
	warn    io.Writer       // for what makes a figure doubtful
	pg      *pgtest.Cluster // -store pg: the runners' database server
}

// benchSample is what one measurement found.
type benchSample struct {
	n       int
	elapsed time.Duration
	commits int64           // bbolt write transactions during the timed part
	pages   int64           // pages bbolt wrote in them
	latency []time.Duration // per job, W5 and W9 only
	// per run, W9 only: from Send to the commit of its done state
	doneLatency []time.Duration
}

// benchLine is one JSON line, in the format of docs/WORKLOADS.md.
type benchLine struct {
	System   string   `json:"system"`
	Config   string   `json:"config"`
	Workload string   `json:"workload"`
	N        int      `json:"n"`
	Seconds  float64  `json:"seconds"`
	JobsPerS float64  `json:"jobs_per_s"`
	P50ms    *float64 `json:"p50_ms"`
	P95ms    *float64 `json:"p95_ms"`
	P99ms    *float64 `json:"p99_ms"`

	// W7 and its reference: runs of a handler of steps (each run a job), and steps
	// stored, per second.
	RunsPerS  float64 `json:"runs_per_s,omitempty"`
	StepsPerS float64 `json:"steps_per_s,omitempty"`

	// W8: events sent per second (each starting fanout runs). W9: the latencies from
	// Send to each run's completion, besides P50ms..P99ms to its first step.
	EventsPerS float64  `json:"events_per_s,omitempty"`
	DoneP50ms  *float64 `json:"done_p50_ms,omitempty"`
	DoneP95ms  *float64 `json:"done_p95_ms,omitempty"`
	DoneP99ms  *float64 `json:"done_p99_ms,omitempty"`

	// Extra fields of the scale, conc and size sets; omitted when zero.
	Waiting      int     `json:"waiting,omitempty"`       // jobs waiting in the file when the measurement began
	Workers      int     `json:"workers,omitempty"`       // total concurrency of the workers
	PayloadBytes int     `json:"payload_bytes,omitempty"` // each job's args, as JSON
	FileMiB      float64 `json:"file_mib,omitempty"`      // size of the database file
	*MemoryPeak          // scale's drain of every job only
}

// benchResult is one measurement's line with what the table shows besides.
type benchResult struct {
	benchLine
	commits, pages int64
}

// bench runs every selected workload cfg.runs times, each followed in every run by its
// reference (once per run when two workloads share one), so that a workload and its
// reference see the disk in the same state, and prints a line per measurement as it
// comes.
func bench(ctx context.Context, cfg benchConfig, stdout, stderr io.Writer) error {
	var profile *os.File
	if cfg.cpuprofile != "" {
		f, err := os.Create(cfg.cpuprofile)
		if err != nil {
			return err
		}
		profile = f
		defer func() {
			if profile != nil { // an error path: the profile is incomplete anyway
				profile.Close()
			}
		}()
	}
	var cluster *pgtest.Cluster
	if cfg.store == "pg" {
		c, err := pgtest.Start(ctx)
		if err != nil {
			return fmt.Errorf("-store pg: %w", err)
		}
		defer c.Stop()
		cluster = c
		cfg.suites = nil // the sets measure bbolt files
	}
	var order []*benchSpec
	for _, s := range cfg.specs {
		order = append(order, s)
		if s.ref != nil && cluster == nil && !slices.Contains(order, s.ref) {
			order = append(order, s.ref)
		}
	}
	results := map[string][]benchResult{} // by workload
	enc := json.NewEncoder(stdout)
	emit := func(res benchResult) error {
		results[res.Workload] = append(results[res.Workload], res)
		return enc.Encode(res.benchLine)
	}
	for run := range cfg.runs {
		for _, s := range order {
			env := &benchEnv{nosync: cfg.nosync, warn: stderr, pg: cluster}
			if s == w4 && run == 0 && profile != nil {
				env.profile = profile
			}
			res, err := measure(ctx, cfg, s, env)
			if err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("interrupted during %s: %w", s.workload(), context.Cause(ctx))
				}
				return fmt.Errorf("%s (run %d): %w", s.workload(), run+1, err)
			}
			if err := emit(res); err != nil {
				return err
			}
		}
		for _, su := range cfg.suites {
			env := &benchEnv{nosync: cfg.nosync, warn: stderr}
			if su == scaleSuite && run == 0 && profile != nil && !slices.Contains(cfg.specs, w4) {
				env.profile = profile
			}
			if err := su.run(ctx, cfg, env, emit); err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("interrupted during the %s set: %w", su.name, context.Cause(ctx))
				}
				return fmt.Errorf("%s set (run %d): %w", su.name, run+1, err)
			}
		}
	}
	if profile != nil {
		err := profile.Close()
		profile = nil
		if err != nil {
			return err
		}
	}
	if !cfg.json {
		if len(cfg.specs) > 0 {
			printBenchTable(stdout, cfg, results)
		}
		for _, su := range cfg.suites {
			su.table(stdout, cfg, results)
		}
	}
	if cluster != nil && slices.Contains(cfg.specs, w4) {
		if err := benchPGScaling(ctx, cfg, cluster, stdout); err != nil {
			return err
		}
	}
	if cfg.river {
		return benchRiver(ctx, cfg, cluster, results, stdout, stderr)
	}
	return nil
}

// measure runs one measurement in a fresh temporary directory and removes it after.
func measure(ctx context.Context, cfg benchConfig, s *benchSpec, env *benchEnv) (benchResult, error) {
	dir, err := os.MkdirTemp(cfg.dir, "jobrun-bench-")
	if err != nil {
		return benchResult{}, err
	}
	defer os.RemoveAll(dir)
	env.dir = dir
	smp, err := s.run(ctx, env, cfg.size(s.size))
	if err != nil {
		return benchResult{}, err
	}
	secs := smp.elapsed.Seconds()
	res := benchResult{
		benchLine: benchLine{
			System: s.system, Config: cfg.syncConfig(), Workload: s.workload(), N: smp.n,
			Seconds: round(secs, 4), JobsPerS: round(float64(smp.n)/secs, 0),
			Workers: s.workers, PayloadBytes: s.payload,
		},
		commits: smp.commits, pages: smp.pages,
	}
	if s.steps > 0 {
		res.RunsPerS, res.StepsPerS = res.JobsPerS, round(float64(smp.n*s.steps)/secs, 0)
	}
	if s.fanout > 0 {
		res.RunsPerS, res.EventsPerS = res.JobsPerS, round(float64(smp.n/s.fanout)/secs, 0)
	}
	if smp.doneLatency != nil {
		slices.Sort(smp.doneLatency)
		res.DoneP50ms = msPtr(percentile(smp.doneLatency, 50))
		res.DoneP95ms = msPtr(percentile(smp.doneLatency, 95))
		res.DoneP99ms = msPtr(percentile(smp.doneLatency, 99))
	}
	if smp.latency != nil {
		slices.Sort(smp.latency)
		res.P50ms = msPtr(percentile(smp.latency, 50))
		res.P95ms = msPtr(percentile(smp.latency, 95))
		res.P99ms = msPtr(percentile(smp.latency, 99))
	}
	return res, nil
}

// openBolt opens a fresh bbolt file. The runners of the workloads use it too (with
// jobrun.New) rather than jobrun.Open, so that the fsync and nosync configurations
// differ in NoSync only; the other options are those jobrun.Open uses.
func (env *benchEnv) openBolt() (*bbolt.DB, error) {
	return bbolt.Open(filepath.Join(env.dir, "bench.db"), 0o600,
		&bbolt.Options{Timeout: time.Second, NoSync: env.nosync})
}

// timed runs fn and returns how long it took for n jobs, and the commits and page
// writes bbolt made meanwhile, from which the table derives jobs per commit.
func timed(db *bbolt.DB, n int, fn func() error) (benchSample, error) {
	if db == nil { // PostgreSQL: its commits are not counted
		start := time.Now()
		err := fn()
		return benchSample{n: n, elapsed: time.Since(start)}, err
	}
	tx0, pages0, err := boltCounters(db)
	if err != nil {
		return benchSample{}, err
	}
	start := time.Now()
	if err := fn(); err != nil {
		return benchSample{}, err
	}
	elapsed := time.Since(start)
	tx1, pages1, err := boltCounters(db)
	if err != nil {
		return benchSample{}, err
	}
	return benchSample{n: n, elapsed: elapsed, commits: tx1 - tx0, pages: pages1 - pages0}, nil
}

// boltCounters returns the ID of the last committed write transaction, which every
// commit increments, and the pages written so far.
func boltCounters(db *bbolt.DB) (txid, pages int64, err error) {
	err = db.View(func(tx *bbolt.Tx) error {
		txid = int64(tx.ID())
		return nil
	})
	stats := db.Stats()
	return txid, stats.TxStats.GetWrite(), err
}

// The jobrun workloads.

// benchArgs is the payload of docs/WORKLOADS.md, about 70 bytes as JSON:
// {"to":"user-<i>@example.com","subject":"hello","n":<i>}.
type benchArgs struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
	N       int    `json:"n"`
	Pad     string `json:"pad,omitempty"` // the size set's filler; empty in W1-W6
}

func (benchArgs) Kind() string { return "bench" }

func newBenchArgs(i int) benchArgs {
	return benchArgs{To: "user-" + strconv.Itoa(i) + "@example.com", Subject: "hello", N: i}
}

// padding is what sizedArgs pads with, shared by every job.
var padding = strings.Repeat("x", 10<<10)

// sizedArgs returns a maker of job i's payload padded to encode to size bytes of JSON
// (size at most 10 KiB; a size the unpadded payload reaches gets it unpadded).
func sizedArgs(size int) func(i int) benchArgs {
	return func(i int) benchArgs {
		a := newBenchArgs(i)
		// {"to":"user-<i>@example.com","subject":"hello","n":<i>} plus ,"pad":"<pad>".
		plain := len(`{"to":"user-@example.com","subject":"hello","n":}`) + 2*len(strconv.Itoa(i))
		if pad := size - plain - len(`,"pad":""`); pad > 0 {
			a.Pad = padding[:pad]
		}
		return a
	}
}

// fixture is a runner on a fresh file whose handler records completions and, for W5,
// when each job started.
type fixture struct {
	db   *bbolt.DB     // nil on PostgreSQL
	pool *pgxpool.Pool // the runner's, on PostgreSQL
	r    *jobrun.Runner
	n    int

	t0      time.Time     // the origin of started
	started []int64       // nanoseconds from t0 to the start of job i's handler; W5 only
	ran     atomic.Int64  // handlers that returned
	allRan  chan struct{} // closed when ran reaches n

	steps int // Steps each handler stores before it returns (W7)

	runDone chan struct{} // closed when Run returned, if it was started
	runErr  error
}

func newFixture(env *benchEnv, n, workers int, trackStarts bool) (*fixture, error) {
	f, err := newFixtureWith(env, n, workers, trackStarts)
	if err != nil {
		return nil, err
	}
	jobrun.Handle(f.r, f.handle, jobrun.Queue(benchQueue))
	return f, nil
}

// newFixtureWith is newFixture with opts and no handler: the workload registers its
// own, which calls f.finished.
func newFixtureWith(env *benchEnv, n, workers int, trackStarts bool, opts ...jobrun.Option) (*fixture, error) {
	opts = append([]jobrun.Option{jobrun.WithQueue(benchQueue, workers, nil)}, opts...)
	if env.pg != nil {
		pool, err := benchDatabase(context.Background(), env.pg)
		if err != nil {
			return nil, err
		}
		r, err := pg.Open(context.Background(), pool, opts...)
		if err != nil {
			pool.Close()
			return nil, err
		}
		return newFixtureOf(nil, pool, r, n, trackStarts), nil
	}
	db, err := env.openBolt()
	if err != nil {
		return nil, err
	}
	r, err := jobrun.New(db, opts...)
	if err != nil {
		db.Close()
		return nil, err
	}
	return newFixtureOf(db, nil, r, n, trackStarts), nil
}

func newFixtureOf(db *bbolt.DB, pool *pgxpool.Pool, r *jobrun.Runner, n int, trackStarts bool) *fixture {
	f := &fixture{db: db, pool: pool, r: r, n: n, t0: time.Now(), allRan: make(chan struct{})}
	if trackStarts {
		f.started = make([]int64, n)
	}
	return f
}

// handle is the handler of every workload: it records that the job ran, and nothing
// else, so that what is measured is the runner.
func (f *fixture) handle(ctx context.Context, job *jobrun.Job[benchArgs]) error {
	if f.started != nil {
		// Each job has its own slot; the reader waits for allRan, which the atomic
		// counter orders after this write.
		f.started[job.Args.N] = int64(time.Since(f.t0))
	}
	for i := range f.steps {
		if _, err := jobrun.Step(ctx, stepNames[i], noStep); err != nil {
			return err
		}
	}
	f.finished()
	return nil
}

// finished counts a handler that returned.
func (f *fixture) finished() {
	if f.ran.Add(1) == int64(f.n) {
		close(f.allRan)
	}
}

// run starts the workers.
func (f *fixture) run(ctx context.Context) {
	f.runDone = make(chan struct{})
	go func() {
		f.runErr = f.r.Run(ctx)
		close(f.runDone)
	}()
}

// waitStored returns once every job's completion is committed: first every handler
// has returned, then the counters, which each commit updates, say done for all.
// Handlers returning is not enough, since their completions are committed after.
func (f *fixture) waitStored(ctx context.Context) error {
	select {
	case <-f.allRan:
	case <-f.runDone:
		return fmt.Errorf("the runner stopped: %w", f.runErr)
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	for {
		counts, err := f.r.Counts(ctx, benchQueue)
		if err != nil {
			return err
		}
		if counts[jobrun.StateDone] == f.n {
			return nil
		}
		if n := counts[jobrun.StateRetrying] + counts[jobrun.StateFailed]; n > 0 {
			return fmt.Errorf("%d jobs failed an attempt: %v", n, counts)
		}
		time.Sleep(storedPoll)
	}
}

// close stops the runner, gracefully if it is running, and closes the file.
func (f *fixture) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := f.r.Shutdown(ctx)
	if f.runDone != nil {
		<-f.runDone
		if !errors.Is(f.runErr, jobrun.ErrClosed) && !errors.Is(f.runErr, context.Canceled) {
			err = errors.Join(err, f.runErr)
		}
	}
	if f.pool != nil {
		f.pool.Close()
		return err
	}
	return errors.Join(err, f.db.Close())
}

// withFixture runs fn on a new fixture whose queue has workers workers and closes it,
// returning the first error.
func withFixture(env *benchEnv, n, workers int, trackStarts bool, fn func(f *fixture) (benchSample, error)) (smp benchSample, err error) {
	f, err := newFixture(env, n, workers, trackStarts)
	if err != nil {
		return benchSample{}, err
	}
	defer func() {
		if cerr := f.close(); err == nil && cerr != nil {
			smp, err = benchSample{}, cerr
		}
	}()
	return fn(f)
}

// produce enqueues jobs 0 to n-1, made by newArgs, from k producers, each one Enqueue
// at a time, and returns the first error.
func produce(ctx context.Context, r *jobrun.Runner, k, n int, newArgs func(int) benchArgs) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range k {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if _, err := r.Enqueue(ctx, newArgs(i)); err != nil {
					cancel(err) // stops the other producers
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// enqueueBatches enqueues jobs 0 to n-1, made by newArgs, with EnqueueMany,
// benchBatch at a time, with opts.
func enqueueBatches(ctx context.Context, r *jobrun.Runner, n int, newArgs func(int) benchArgs, opts ...jobrun.EnqueueOption) error {
	batch := make([]jobrun.Args, 0, benchBatch)
	for lo := 0; lo < n; lo += benchBatch {
		batch = batch[:0]
		for i := lo; i < min(lo+benchBatch, n); i++ {
			batch = append(batch, newArgs(i))
		}
		if _, err := r.EnqueueMany(ctx, batch, opts...); err != nil {
			return err
		}
	}
	return nil
}

// runFunc is a measurement of n jobs in env.
type runFunc func(ctx context.Context, env *benchEnv, n int) (benchSample, error)

// enqueueSeqWith returns W1 with the args newArgs makes: one producer, each Enqueue
// durable before the next.
func enqueueSeqWith(newArgs func(int) benchArgs) runFunc {
	return func(ctx context.Context, env *benchEnv, n int) (benchSample, error) {
		return withFixture(env, n, benchWorkers, false, func(f *fixture) (benchSample, error) {
			return timed(f.db, n, func() error { return produce(ctx, f.r, 1, n, newArgs) })
		})
	}
}

// benchEnqueueConc is W2: 16 producers, one Enqueue at a time each.
func benchEnqueueConc(ctx context.Context, env *benchEnv, n int) (benchSample, error) {
	return withFixture(env, n, benchWorkers, false, func(f *fixture) (benchSample, error) {
		return timed(f.db, n, func() error { return produce(ctx, f.r, 16, n, newBenchArgs) })
	})
}

// enqueueBulkWith returns W3 with the args newArgs makes: one producer, EnqueueMany
// in batches of 1,000.
func enqueueBulkWith(newArgs func(int) benchArgs) runFunc {
	return func(ctx context.Context, env *benchEnv, n int) (benchSample, error) {
		return withFixture(env, n, benchWorkers, false, func(f *fixture) (benchSample, error) {
			return timed(f.db, n, func() error { return enqueueBatches(ctx, f.r, n, newArgs) })
		})
	}
}

// drainWith returns W4 with workers workers and the args newArgs makes: the jobs are
// inserted untimed, then timed from Run's start until the last completion is
// committed.
func drainWith(workers int, newArgs func(int) benchArgs) runFunc {
	return func(ctx context.Context, env *benchEnv, n int) (benchSample, error) {
		return withFixture(env, n, workers, false, func(f *fixture) (benchSample, error) {
			if err := enqueueBatches(ctx, f.r, n, newArgs); err != nil {
				return benchSample{}, err
			}
			if env.profile != nil {
				if err := pprof.StartCPUProfile(env.profile); err != nil {
					return benchSample{}, err
				}
				defer pprof.StopCPUProfile()
			}
			return timed(f.db, n, func() error {
				f.run(ctx)
				return f.waitStored(ctx)
			})
		})
	}
}

// benchSteps is W7: n runs of a handler of three steps, inserted beforehand
// (untimed); timed from Run until the last run's completion is committed.
func benchSteps(ctx context.Context, env *benchEnv, n int) (benchSample, error) {
	return withFixture(env, n, benchWorkers, false, func(f *fixture) (benchSample, error) {
		f.steps = 3
		if err := enqueueBatches(ctx, f.r, n, newBenchArgs); err != nil {
			return benchSample{}, err
		}
		return timed(f.db, n, func() error {
			f.run(ctx)
			return f.waitStored(ctx)
		})
	})
}

// stepResult is what each of W7's steps returns: a small struct.
type stepResult struct {
	OK bool `json:"ok"`
	N  int  `json:"n"`
}

var stepNames = [...]string{"first", "second", "third"}

func noStep(context.Context) (stepResult, error) { return stepResult{OK: true, N: 1}, nil }

// benchLatency is W5: with the workers running, one producer offers a job every 2 ms
// (500/s) and each job's latency is its handler's start minus the instant just before
// its Enqueue call.
func benchLatency(ctx context.Context, env *benchEnv, n int) (benchSample, error) {
	return withFixture(env, n, benchWorkers, true, func(f *fixture) (benchSample, error) {
		f.run(ctx)
		enqueued := make([]int64, n) // nanoseconds from f.t0 to just before Enqueue
		var late time.Duration       // the latest a job was offered behind its slot
		smp, err := timed(f.db, n, func() error {
			var err error
			late, err = openLoop(n, time.Second/w5Rate, func(i int, now time.Time) error {
				enqueued[i] = int64(now.Sub(f.t0))
				_, err := f.r.Enqueue(ctx, newBenchArgs(i))
				return err
			})
			if err != nil {
				return err
			}
			return f.waitStored(ctx)
		})
		if err != nil {
			return benchSample{}, err
		}
		// Falling far behind means the rate offered was not 500/s, so the latencies are
		// not those of that load.
		if late > 100*time.Millisecond {
			fmt.Fprintf(env.warn, "jobrun bench: W5: the producer fell up to %v behind its %d/s schedule\n",
				late.Round(time.Millisecond), w5Rate)
		}
		smp.latency = make([]time.Duration, n)
		for i := range n {
			smp.latency[i] = time.Duration(f.started[i] - enqueued[i])
		}
		return smp, nil
	})
}

// openLoop calls offer n times, call i at its due instant i × interval after the
// start (with that instant's time), and returns how far behind its instant the
// latest call came. Open loop: a slow call delays the next one but not the
// schedule, so the rate offered stays the rate asked for.
func openLoop(n int, interval time.Duration, offer func(i int, now time.Time) error) (late time.Duration, err error) {
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		now := time.Now()
		late = max(late, now.Sub(due))
		if err := offer(i, now); err != nil {
			return late, err
		}
	}
	return late, nil
}

// benchE2E is W6: with the workers running, 4 producers enqueue one at a time; timed
// until the last completion is committed.
func benchE2E(ctx context.Context, env *benchEnv, n int) (benchSample, error) {
	return withFixture(env, n, benchWorkers, false, func(f *fixture) (benchSample, error) {
		f.run(ctx)
		return timed(f.db, n, func() error {
			if err := produce(ctx, f.r, 4, n, newBenchArgs); err != nil {
				return err
			}
			return f.waitStored(ctx)
		})
	})
}

// The table.

// printBenchTable prints the median of every measurement, each workload next to its
// reference, then the references.
func printBenchTable(w io.Writer, cfg benchConfig, results map[string][]benchResult) {
	fmt.Fprintf(w, "\njobrun bench: config %s, median of %d run(s), GOMAXPROCS %d, %s\n\n",
		cfg.syncConfig(), cfg.runs, runtime.GOMAXPROCS(0), runtime.Version())
	var refs []*benchSpec
	for _, s := range cfg.specs {
		if s.ref != nil && len(results[s.ref.workload()]) == 0 {
			s = &benchSpec{} // -store pg: the raw-bbolt references were not run
		}
		if s.ref != nil && !slices.Contains(refs, s.ref) {
			refs = append(refs, s.ref)
		}
	}
	// Numbers read best right-aligned; the names are padded to one width so that
	// right alignment leaves them flush left.
	width := len("reference (raw bbolt)")
	for _, s := range cfg.specs {
		width = max(width, len(s.workload()))
	}
	name := func(s string) string { return fmt.Sprintf("%-*s", width, s) }

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tn\tseconds\tjobs/s\truns (jobs/s)\tjobs/commit\tpages/commit\treference\tref jobs/s\tratio\tp50/p95/p99 ms\t\n",
		name("workload"))
	for _, s := range cfg.specs {
		rs := results[s.workload()]
		m := medianOf(rs)
		ref, refRate, ratio := "-", "-", "-"
		if s.ref != nil && len(results[s.ref.workload()]) > 0 {
			rm := medianOf(results[s.ref.workload()])
			ref, refRate = s.ref.id, thousands(rm.JobsPerS)
			ratio = fmt.Sprintf("%.2f", m.JobsPerS/rm.JobsPerS)
		}
		lat := "-"
		if m.P50ms != nil {
			lat = fmt.Sprintf("%.2f / %.2f / %.2f", *m.P50ms, *m.P95ms, *m.P99ms)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.3f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name(s.workload()), thousands(float64(m.N)),
			m.Seconds, thousands(m.JobsPerS), runRates(rs), perCommit(m), pagesPerCommit(m), ref, refRate, ratio, lat)
	}
	tw.Flush()
	if len(refs) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tn\tseconds\tjobs/s\truns (jobs/s)\tjobs/commit\tpages/commit\t\n", name("reference (raw bbolt)"))
	for _, s := range refs {
		rs := results[s.workload()]
		m := medianOf(rs)
		fmt.Fprintf(tw, "%s\t%s\t%.3f\t%s\t%s\t%s\t%s\t\n", name(s.id+" "+s.name), thousands(float64(m.N)),
			m.Seconds, thousands(m.JobsPerS), runRates(rs), perCommit(m), pagesPerCommit(m))
	}
	tw.Flush()
	fmt.Fprint(w, "\nratio: the workload's jobs/s over its reference's. jobs/commit: jobs over bbolt write\n"+
		"transactions in the timed part (reference d commits 3 times per 1,000 jobs by construction);\n"+
		"pages/commit: bbolt page writes (pwrite calls, meta page not counted) per transaction.\n")
}

// medianOf returns the median of each figure across runs.
func medianOf(rs []benchResult) benchResult {
	m := rs[0]
	m.Seconds = median(rs, func(r benchResult) float64 { return r.Seconds })
	m.JobsPerS = median(rs, func(r benchResult) float64 { return r.JobsPerS })
	m.commits = int64(median(rs, func(r benchResult) float64 { return float64(r.commits) }))
	m.pages = int64(median(rs, func(r benchResult) float64 { return float64(r.pages) }))
	if m.P50ms != nil {
		p50 := median(rs, func(r benchResult) float64 { return *r.P50ms })
		p95 := median(rs, func(r benchResult) float64 { return *r.P95ms })
		p99 := median(rs, func(r benchResult) float64 { return *r.P99ms })
		m.P50ms, m.P95ms, m.P99ms = &p50, &p95, &p99
	}
	return m
}

func median(rs []benchResult, f func(benchResult) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func runRates(rs []benchResult) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, thousands(r.JobsPerS))
	}
	return strings.Join(parts, " ")
}

func perCommit(r benchResult) string {
	if r.commits <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(r.N)/float64(r.commits))
}

func pagesPerCommit(r benchResult) string {
	if r.commits <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(r.pages)/float64(r.commits))
}

// percentile returns the p-th percentile of sorted by the nearest-rank method.
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100 // ceil(len·p/100), the rank
	return sorted[max(i-1, 0)]
}

func msPtr(d time.Duration) *float64 {
	ms := round(float64(d)/float64(time.Millisecond), 3)
	return &ms
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

// thousands formats x rounded to an integer with thousands separators: 81,300.
func thousands(x float64) string {
	s := strconv.FormatInt(int64(math.Round(x)), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
