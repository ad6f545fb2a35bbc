package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/jobrun/jobrun"
	"go.etcd.io/bbolt"
)

const (
	benchSynopsis = "usage: jobrun bench [flags]"
	benchDoc      = `Bench measures jobrun on the standard workloads (WORKLOADS.md), each run against a
fresh database file in a temporary directory that is removed afterwards. Every job
goes to one queue, "bench", run by 16 workers; handlers only record completion.

  W1 enqueue-seq   20,000 jobs; 1 producer, Enqueue one at a time
  W2 enqueue-conc  50,000 jobs; 16 producers, Enqueue one at a time
  W3 enqueue-bulk  100,000 jobs; 1 producer, EnqueueMany in batches of 1,000
  W4 drain         100,000 jobs inserted beforehand (untimed); from Run until the
                   last completion is committed
  W5 latency       5,000 jobs enqueued at a steady 500/s while the workers run;
                   p50/p95/p99 of handler start minus the instant before Enqueue
  W6 e2e           50,000 jobs; 4 producers and the workers at once, until the last
                   completion is committed

In the same run it measures raw bbolt on the same disk, each on a fresh file, as
the reference every workload is compared to:

  a    one Put per Update, from 1 goroutine                            (for W1)
  b16  group commit of single Puts from 16 goroutines: one committer
       takes every queued Put and commits them in one Update           (for W2)
  b4   the same from 4 goroutines                                      (for W6)
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

// The shape every workload shares (WORKLOADS.md).
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
	fs.StringVar(&names, "workloads", "W1,W2,W3,W4,W5,W6",
		"comma-separated `list` of the workloads to run: W1 to W6, scale, conc, size")
	fs.BoolVar(&cfg.nosync, "nosync", false,
		`open the files with bbolt's NoSync: commits are not fsynced (config "nosync")`)
	fs.BoolVar(&cfg.json, "json", false, "print the JSON lines only, without the table")
	fs.StringVar(&cfg.dir, "dir", cfg.dir, "`directory` for the temporary database files: the disk measured")
	fs.IntVar(&cfg.scale, "scale", 1, "divide every size by `k` too (at least 1 job each), for tests")
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
			return nil, nil, fmt.Errorf("-workloads: unknown workload %q (want W1 to W6, scale, conc or size)", name)
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
)

// The workloads of WORKLOADS.md, in table order.
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
	}
)

// benchEnv is what one measurement runs in.
type benchEnv struct {
	dir     string    // a fresh temporary directory, removed after the measurement
	nosync  bool      // open bbolt with NoSync
	profile io.Writer // if not nil, W4 (or the scale set) writes a CPU profile of its timed part here
	warn    io.Writer // for what makes a figure doubtful
}

// benchSample is what one measurement found.
type benchSample struct {
	n       int
	elapsed time.Duration
	commits int64           // bbolt write transactions during the timed part
	pages   int64           // pages bbolt wrote in them
	latency []time.Duration // per job, W5 only
}

// benchLine is one JSON line, in the format of WORKLOADS.md.
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
	var order []*benchSpec
	for _, s := range cfg.specs {
		order = append(order, s)
		if s.ref != nil && !slices.Contains(order, s.ref) {
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
			env := &benchEnv{nosync: cfg.nosync, warn: stderr}
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

// benchArgs is the payload of WORKLOADS.md, about 70 bytes as JSON:
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
	db *bbolt.DB
	r  *jobrun.Runner
	n  int

	t0      time.Time     // the origin of started
	started []int64       // nanoseconds from t0 to the start of job i's handler; W5 only
	ran     atomic.Int64  // handlers that returned
	allRan  chan struct{} // closed when ran reaches n

	runDone chan struct{} // closed when Run returned, if it was started
	runErr  error
}

func newFixture(env *benchEnv, n, workers int, trackStarts bool) (*fixture, error) {
	db, err := env.openBolt()
	if err != nil {
		return nil, err
	}
	r, err := jobrun.New(db, jobrun.WithQueue(benchQueue, workers, nil))
	if err != nil {
		db.Close()
		return nil, err
	}
	f := &fixture{db: db, r: r, n: n, t0: time.Now(), allRan: make(chan struct{})}
	if trackStarts {
		f.started = make([]int64, n)
	}
	jobrun.Handle(r, f.handle, jobrun.Queue(benchQueue))
	return f, nil
}

// handle is the handler of every workload: it records that the job ran, and nothing
// else, so that what is measured is the runner.
func (f *fixture) handle(ctx context.Context, job *jobrun.Job[benchArgs]) error {
	if f.started != nil {
		// Each job has its own slot; the reader waits for allRan, which the atomic
		// counter orders after this write.
		f.started[job.Args.N] = int64(time.Since(f.t0))
	}
	if f.ran.Add(1) == int64(f.n) {
		close(f.allRan)
	}
	return nil
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

// benchLatency is W5: with the workers running, one producer offers a job every 2 ms
// (500/s) and each job's latency is its handler's start minus the instant just before
// its Enqueue call.
func benchLatency(ctx context.Context, env *benchEnv, n int) (benchSample, error) {
	return withFixture(env, n, benchWorkers, true, func(f *fixture) (benchSample, error) {
		f.run(ctx)
		enqueued := make([]int64, n) // nanoseconds from f.t0 to just before Enqueue
		const interval = time.Second / w5Rate
		var late time.Duration // the latest a job was offered behind its slot
		smp, err := timed(f.db, n, func() error {
			start := time.Now()
			for i := range n {
				// An open-loop generator: each job has its due instant, so a slow Enqueue
				// delays the next call but not the schedule.
				due := start.Add(time.Duration(i) * interval)
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
				now := time.Now()
				late = max(late, now.Sub(due))
				enqueued[i] = int64(now.Sub(f.t0))
				if _, err := f.r.Enqueue(ctx, newBenchArgs(i)); err != nil {
					return err
				}
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

// The raw-bbolt references: what the disk and bbolt allow for the same work, with no
// job system around them.

var (
	refJobs   = []byte("jobs")
	refReady  = []byte("ready")
	refActive = []byte("active")
)

// openRef opens a fresh bbolt file holding the references' buckets.
func openRef(env *benchEnv) (*bbolt.DB, error) {
	db, err := env.openBolt()
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{refJobs, refReady, refActive} {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// withRef runs fn on a fresh reference file and closes it, returning the first error.
func withRef(env *benchEnv, fn func(db *bbolt.DB) (benchSample, error)) (smp benchSample, err error) {
	db, err := openRef(env)
	if err != nil {
		return benchSample{}, err
	}
	defer func() {
		if cerr := db.Close(); err == nil && cerr != nil {
			smp, err = benchSample{}, cerr
		}
	}()
	return fn(db)
}

func refKey(i int) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(i)) }

// refValue is job i's payload as JSON, padded with spaces to refValueSize bytes.
func refValue(i int) []byte {
	b := make([]byte, 0, refValueSize)
	b = append(b, `{"to":"user-`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `@example.com","subject":"hello","n":`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, '}')
	for len(b) < refValueSize {
		b = append(b, ' ')
	}
	return b
}

// refPutPerUpdate is reference a: one Put per Update, from one goroutine.
func refPutPerUpdate(ctx context.Context, env *benchEnv, n int) (benchSample, error) {
	return withRef(env, func(db *bbolt.DB) (benchSample, error) {
		return timed(db, n, func() error {
			for i := range n {
				if err := ctx.Err(); err != nil {
					return err
				}
				err := db.Update(func(tx *bbolt.Tx) error {
					return tx.Bucket(refJobs).Put(refKey(i), refValue(i))
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// putRequest is one Put waiting for the group committer.
type putRequest struct {
	key, value []byte
	done       chan error
}

// refGroupCommit returns reference b for k goroutines: each sends one Put at a time to
// a committer and waits for its commit; the committer takes the first request waiting,
// then every other one already queued, without waiting for more, and commits them all
// in one Update. It is the least a group commit can do: no timer, no batching limit.
func refGroupCommit(k int) func(ctx context.Context, env *benchEnv, n int) (benchSample, error) {
	return func(ctx context.Context, env *benchEnv, n int) (benchSample, error) {
		return withRef(env, func(db *bbolt.DB) (benchSample, error) {
			requests := make(chan putRequest, k) // each goroutine has at most one waiting
			committed := make(chan struct{})
			go func() {
				defer close(committed)
				var batch []putRequest
				for first := range requests {
					batch = append(batch[:0], first)
				drain:
					for {
						select {
						case req, ok := <-requests:
							if !ok {
								break drain
							}
							batch = append(batch, req)
						default:
							break drain
						}
					}
					err := db.Update(func(tx *bbolt.Tx) error {
						b := tx.Bucket(refJobs)
						for _, req := range batch {
							if err := b.Put(req.key, req.value); err != nil {
								return err
							}
						}
						return nil
					})
					for _, req := range batch {
						req.done <- err
					}
				}
			}()
			smp, err := timed(db, n, func() error {
				var next atomic.Int64
				errs := make(chan error, k)
				for range k {
					go func() {
						done := make(chan error, 1)
						for {
							i := int(next.Add(1) - 1)
							if i >= n || ctx.Err() != nil {
								errs <- ctx.Err()
								return
							}
							requests <- putRequest{refKey(i), refValue(i), done}
							if err := <-done; err != nil {
								next.Store(int64(n)) // stops the other goroutines
								errs <- err
								return
							}
						}
					}()
				}
				var first error
				for range k {
					if err := <-errs; first == nil {
						first = err
					}
				}
				return first
			})
			close(requests)
			<-committed
			return smp, err
		})
	}
}

// refLifecycle is reference d: the minimal life of a job, a transaction per step for
// each batch of 1,000: insert the records and their ready keys; claim them (delete the
// ready key, put an active key); complete them (delete the active key, rewrite the
// record). Jobs per second over the whole life.
func refLifecycle(ctx context.Context, env *benchEnv, n int) (benchSample, error) {
	return withRef(env, func(db *bbolt.DB) (benchSample, error) {
		return timed(db, n, func() error {
			for lo := 0; lo < n; lo += benchBatch {
				if err := ctx.Err(); err != nil {
					return err
				}
				hi := min(lo+benchBatch, n)
				err := db.Update(func(tx *bbolt.Tx) error {
					jobs, ready := tx.Bucket(refJobs), tx.Bucket(refReady)
					for i := lo; i < hi; i++ {
						if err := jobs.Put(refKey(i), refValue(i)); err != nil {
							return err
						}
						if err := ready.Put(refKey(i), nil); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					return err
				}
				// The claim finds its jobs with a cursor, as a job system must.
				var claimed [][]byte
				err = db.Update(func(tx *bbolt.Tx) error {
					ready, active := tx.Bucket(refReady), tx.Bucket(refActive)
					c := ready.Cursor()
					for k, _ := c.First(); k != nil && len(claimed) < hi-lo; k, _ = c.Next() {
						claimed = append(claimed, slices.Clone(k))
					}
					stamp := binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano()))
					for _, k := range claimed {
						if err := ready.Delete(k); err != nil {
							return err
						}
						if err := active.Put(k, stamp); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					return err
				}
				err = db.Update(func(tx *bbolt.Tx) error {
					jobs, active := tx.Bucket(refJobs), tx.Bucket(refActive)
					for _, k := range claimed {
						if err := active.Delete(k); err != nil {
							return err
						}
						v := refValue(int(binary.BigEndian.Uint64(k)))
						v[len(v)-1] = 'D' // the record says done
						if err := jobs.Put(k, v); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// The sets beyond W1-W6: scale, conc and size.

// benchSuite is a set of measurements that -workloads selects by name. run makes one
// run of all of them, in env (dir unset: each measurement makes its own), handing
// every line to emit; table prints the medians of the lines emitted across runs.
type benchSuite struct {
	name  string
	run   func(ctx context.Context, cfg benchConfig, env *benchEnv, emit func(benchResult) error) error
	table func(w io.Writer, cfg benchConfig, results map[string][]benchResult)
}

var (
	scaleSuite = &benchSuite{name: "scale", run: runScale, table: printScaleTable}
	suites     = []*benchSuite{
		scaleSuite,
		{name: "conc", run: specsRun(concSpecs), table: printConcTable},
		{name: "size", run: specsRun(sizeSpecs), table: printSizeTable},
	}
)

// specsRun returns a suite's run that measures specs one after the other, each in a
// fresh directory, as the workloads are.
func specsRun(specs []*benchSpec) func(context.Context, benchConfig, *benchEnv, func(benchResult) error) error {
	return func(ctx context.Context, cfg benchConfig, env *benchEnv, emit func(benchResult) error) error {
		for _, s := range specs {
			res, err := measure(ctx, cfg, s, &benchEnv{nosync: env.nosync, warn: env.warn})
			if err != nil {
				return fmt.Errorf("%s: %w", s.workload(), err)
			}
			if err := emit(res); err != nil {
				return err
			}
		}
		return nil
	}
}

// concSpecs is the conc set: W4 with a total concurrency of 1, 4, 16 (W4 itself) and
// 64 workers.
var concSpecs = func() []*benchSpec {
	var specs []*benchSpec
	for _, c := range []int{1, 4, 16, 64} {
		specs = append(specs, &benchSpec{id: "conc-" + strconv.Itoa(c), name: "drain", system: "jobrun",
			size: w4.size, workers: c, run: drainWith(c, newBenchArgs)})
	}
	return specs
}()

// sizePayloads are the sizes of the size set, in bytes of JSON args.
var sizePayloads = []int{100, 10 << 10}

// sizeSpecs is the size set: W1, W3 and W4 with args of each of sizePayloads.
var sizeSpecs = func() []*benchSpec {
	var specs []*benchSpec
	for _, w := range []struct {
		name string
		size int
		run  func(newArgs func(int) benchArgs) runFunc
	}{
		{"enqueue-seq", 20_000, enqueueSeqWith},
		{"enqueue-bulk", 100_000, enqueueBulkWith},
		{"drain", w4.size, func(newArgs func(int) benchArgs) runFunc { return drainWith(benchWorkers, newArgs) }},
	} {
		for _, p := range sizePayloads {
			specs = append(specs, &benchSpec{id: "size-" + strings.ReplaceAll(bytesLabel(p), " ", ""), name: w.name,
				system: "jobrun", size: w.size, payload: p, run: w.run(sizedArgs(p))})
		}
	}
	return specs
}()

// bytesLabel writes a payload size for people: "100 B", "10 KiB".
func bytesLabel(n int) string {
	if n >= 1<<10 && n%(1<<10) == 0 {
		return strconv.Itoa(n>>10) + " KiB"
	}
	return strconv.Itoa(n) + " B"
}

// The scale set: how the cost per job changes with the number of jobs waiting.

const (
	scaleQueues    = 100    // the waiting jobs are spread over this many queues
	scaleFillTx    = 10_000 // jobs per transaction of the untimed fill and refills
	scaleRound     = 2_000  // jobs claimed and completed per round, refilled after it
	scaleRounds    = 10     // rounds per size
	scaleSeq       = 2_000  // single Enqueues on top of the waiting jobs
	scaleChunks    = 10     // in this many chunks
	scaleBulk      = 50_000 // jobs enqueued on top in EnqueueMany batches of benchBatch (50 commits)
	scaleBulkQueue = "bulk" // their queue, which no worker runs
	memoryEvery    = 10 * time.Millisecond
)

// scaleSizes are the numbers of waiting jobs the scale set compares, at full size.
var scaleSizes = []int{10_000, 1_000_000}

// scaleQueueNames are the queues of the waiting jobs: job i is in q(i mod 100).
var scaleQueueNames = func() []string {
	names := make([]string, scaleQueues)
	for i := range names {
		names[i] = fmt.Sprintf("q%02d", i)
	}
	return names
}()

// scaleWorkload names a scale measurement at n jobs waiting: "scale-1M-drain".
func scaleWorkload(n int, what string) string { return "scale-" + countLabel(n) + "-" + what }

// countLabel writes n short where it is round: 10k, 1M.
func countLabel(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1_000 && n%1_000 == 0:
		return strconv.Itoa(n/1_000) + "k"
	}
	return strconv.Itoa(n)
}

// runScale is the scale set: a fresh file for each of scaleSizes, holding that many
// waiting jobs, measured in turns, a round or a batch of one size after the same of
// the other, so that a change in the machine's load meanwhile falls on both alike.
// Each step runs with the pprof labels "waiting" (10k, 1M) and "phase" (claims,
// refill, enqueue-seq, enqueue-bulk, drain-all, fill, open): the goroutines of the
// runners started in it inherit them, so a profile splits by size and phase with
// -tagfocus.
func runScale(ctx context.Context, cfg benchConfig, env *benchEnv, emit func(benchResult) error) (err error) {
	var files []*scaleFile
	defer func() {
		for _, sf := range files {
			if sf.enq != nil { // an error in the enqueues
				err = errors.Join(err, sf.enq.Close())
			}
			if sf.db != nil {
				err = errors.Join(err, sf.db.Close())
			}
			os.RemoveAll(sf.env.dir)
		}
	}()
	for _, full := range scaleSizes {
		dir, err := os.MkdirTemp(cfg.dir, "jobrun-bench-")
		if err != nil {
			return err
		}
		files = append(files, &scaleFile{cfg: cfg, env: &benchEnv{dir: dir, nosync: env.nosync, warn: env.warn},
			n: cfg.size(full), emit: emit})
	}
	each := func(what string, fn func(sf *scaleFile, ctx context.Context) error) error {
		for _, sf := range files {
			var err error
			labels := pprof.Labels("waiting", countLabel(sf.n), "phase", what)
			pprof.Do(ctx, labels, func(ctx context.Context) { err = fn(sf, ctx) })
			if err != nil {
				return fmt.Errorf("%s waiting: %s: %w", countLabel(sf.n), what, err)
			}
		}
		return nil
	}
	if err := each("fill", (*scaleFile).fill); err != nil {
		return err
	}
	if err := each("open", (*scaleFile).measureOpen); err != nil {
		return err
	}
	if err := each("open", (*scaleFile).openDB); err != nil {
		return err
	}
	if env.profile != nil {
		if err := pprof.StartCPUProfile(env.profile); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	for range scaleRounds {
		if err := each("claims", (*scaleFile).claimRound); err != nil {
			return err
		}
	}
	if err := each("claims", (*scaleFile).emitClaims); err != nil {
		return err
	}
	// Each kind of enqueue has its own runner, so that its commit loop has its label.
	if err := each("enqueue-seq", (*scaleFile).startEnqueues); err != nil {
		return err
	}
	for range scaleChunks {
		if err := each("enqueue-seq", (*scaleFile).enqueueChunk); err != nil {
			return err
		}
	}
	if err := each("enqueue-seq", (*scaleFile).endEnqueues); err != nil {
		return err
	}
	if err := each("enqueue-bulk", (*scaleFile).startEnqueues); err != nil {
		return err
	}
	for range (cfg.size(scaleBulk) + benchBatch - 1) / benchBatch {
		if err := each("enqueue-bulk", (*scaleFile).enqueueBatch); err != nil {
			return err
		}
	}
	if err := each("enqueue-bulk", (*scaleFile).endEnqueues); err != nil {
		return err
	}
	// The drains of every job run one file at a time, with the other closed, so that
	// the RSS holds no page of it.
	if err := each("close", (*scaleFile).closeDB); err != nil {
		return err
	}
	return each("drain-all", (*scaleFile).measureDrainAll)
}

// scaleFile is one size of the scale set: a file that holds n waiting jobs spread
// over scaleQueues queues, job i in queue i mod scaleQueues, in ID order, as if they
// had come over time; and the figures gathered on it so far.
type scaleFile struct {
	cfg  benchConfig
	env  *benchEnv
	n    int // jobs waiting after the fill
	next int // index of the next job to insert
	db   *bbolt.DB
	emit func(benchResult) error

	claims, seq, bulk benchSample
	enq               *jobrun.Runner // the enqueues' runner, not running
}

// result is the line of a scale measurement that began with waiting jobs waiting.
func (sf *scaleFile) result(what string, waiting int, smp benchSample) benchResult {
	secs := smp.elapsed.Seconds()
	return benchResult{
		benchLine: benchLine{
			System: "jobrun", Config: sf.cfg.syncConfig(), Workload: scaleWorkload(sf.n, what), N: smp.n,
			Seconds: round(secs, 4), JobsPerS: round(float64(smp.n)/secs, 0),
			Waiting: waiting, Workers: scaleQueues,
		},
		commits: smp.commits, pages: smp.pages,
	}
}

// add sums the samples of the parts of one measurement.
func (smp *benchSample) add(part benchSample) {
	smp.n += part.n
	smp.elapsed += part.elapsed
	smp.commits += part.commits
	smp.pages += part.pages
}

// scaleOptions configures every queue of the waiting jobs with one worker, 100 in
// all; the bulk queue has none.
func scaleOptions() []jobrun.Option {
	opts := make([]jobrun.Option, 0, scaleQueues)
	for _, q := range scaleQueueNames {
		opts = append(opts, jobrun.WithQueue(q, 1, nil))
	}
	return opts
}

// newScaleRunner returns a runner of the scale queues on db, handling jobs with g.
func newScaleRunner(db *bbolt.DB, g *gate) (*jobrun.Runner, error) {
	r, err := jobrun.New(db, scaleOptions()...)
	if err != nil {
		return nil, err
	}
	jobrun.Handle(r, g.handle)
	return r, nil
}

func (sf *scaleFile) openDB(ctx context.Context) (err error) {
	sf.db, err = sf.env.openBolt()
	return err
}

func (sf *scaleFile) closeDB(ctx context.Context) error {
	err := sf.db.Close()
	sf.db = nil
	return err
}

// fill writes the n waiting jobs to the fresh file, untimed, and closes it, synced
// even with -nosync, so that Open's first commit does not flush the fill's pages.
func (sf *scaleFile) fill(ctx context.Context) error {
	if err := sf.openDB(ctx); err != nil {
		return err
	}
	err := sf.insert(ctx, sf.n)
	if err == nil {
		err = sf.db.Sync()
	}
	return errors.Join(err, sf.closeDB(ctx))
}

// insert adds n jobs to the queues in big transactions of EnqueueTx calls, the one
// way to spread a batch over queues in one commit (EnqueueMany puts a batch in one
// queue), continuing the spread where it stopped.
func (sf *scaleFile) insert(ctx context.Context, n int) error {
	r, err := newScaleRunner(sf.db, newGate(0))
	if err != nil {
		return err
	}
	for n > 0 {
		k := min(n, scaleFillTx)
		err = sf.db.Update(func(tx *bbolt.Tx) error {
			for i := sf.next; i < sf.next+k; i++ {
				_, err := r.EnqueueTx(ctx, tx, newBenchArgs(i), jobrun.Queue(scaleQueueNames[i%scaleQueues]))
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			break
		}
		sf.next += k
		n -= k
	}
	return errors.Join(err, r.Close())
}

// measureOpen opens the closed file with jobrun.Open and times it until Open returns,
// and until the first handler starts. jobrun.Open syncs whatever -nosync says, so
// these lines say "fsync".
func (sf *scaleFile) measureOpen(ctx context.Context) error {
	path := filepath.Join(sf.env.dir, "bench.db")
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	g := newGate(0) // every job is held: the file keeps its n waiting
	start := time.Now()
	r, err := jobrun.Open(path, scaleOptions()...)
	if err != nil {
		return err
	}
	opened := time.Since(start)
	jobrun.Handle(r, g.handle)
	rn := startRunning(ctx, r)
	select {
	case <-g.first:
	case <-rn.done:
	case <-ctx.Done():
	}
	first := time.Since(start)
	if err := errors.Join(rn.stop(), context.Cause(ctx)); err != nil {
		return err
	}
	for _, m := range []struct {
		what string
		d    time.Duration
	}{{"open", opened}, {"first-claim", first}} {
		res := sf.result(m.what, sf.n, benchSample{n: sf.n, elapsed: m.d})
		res.Config = "fsync"
		res.FileMiB = round(float64(fi.Size())/(1<<20), 1)
		if err := sf.emit(res); err != nil {
			return err
		}
	}
	return nil
}

// claimRound claims and completes scaleRound jobs on a new runner, timed from Run
// until its last completion is committed, and refills as many untimed, so that n jobs
// wait at the start of every round.
func (sf *scaleFile) claimRound(ctx context.Context) error {
	per := min(sf.cfg.size(scaleRound), sf.n)
	smp, _, err := sf.drain(ctx, per, false)
	if err != nil {
		return err
	}
	sf.claims.add(smp)
	pprof.Do(ctx, pprof.Labels("phase", "refill"), func(ctx context.Context) { err = sf.insert(ctx, per) })
	if err != nil {
		return fmt.Errorf("refill: %w", err)
	}
	return nil
}

func (sf *scaleFile) emitClaims(ctx context.Context) error {
	return sf.emit(sf.result("drain", sf.n, sf.claims))
}

// The enqueues on top, each kind on a runner of its own that is not running:
// scaleSeq single Enqueues spread over the queues, in scaleChunks chunks, then
// scaleBulk jobs in EnqueueMany batches to the bulk queue.

func (sf *scaleFile) startEnqueues(ctx context.Context) (err error) {
	sf.enq, err = newScaleRunner(sf.db, newGate(0))
	return err
}

func (sf *scaleFile) enqueueChunk(ctx context.Context) error {
	total := sf.cfg.size(scaleSeq)
	k := min(max(total/scaleChunks, 1), total-sf.seq.n)
	smp, err := timed(sf.db, k, func() error {
		for i := sf.next; i < sf.next+k; i++ {
			if _, err := sf.enq.Enqueue(ctx, newBenchArgs(i), jobrun.Queue(scaleQueueNames[i%scaleQueues])); err != nil {
				return err
			}
		}
		return nil
	})
	sf.seq.add(smp)
	sf.next += smp.n
	return err
}

func (sf *scaleFile) enqueueBatch(ctx context.Context) error {
	k := min(benchBatch, sf.cfg.size(scaleBulk)-sf.bulk.n)
	smp, err := timed(sf.db, k, func() error {
		return enqueueBatches(ctx, sf.enq, k, newBenchArgs, jobrun.Queue(scaleBulkQueue))
	})
	sf.bulk.add(smp)
	return err
}

func (sf *scaleFile) endEnqueues(ctx context.Context) error {
	err := sf.enq.Close()
	sf.enq = nil
	if err != nil {
		return err
	}
	if sf.bulk.n == 0 {
		return sf.emit(sf.result("enqueue-seq", sf.n, sf.seq))
	}
	return sf.emit(sf.result("enqueue-bulk", sf.n+sf.seq.n, sf.bulk))
}

// measureDrainAll drains every job of the queues (all but the bulk queue's) while it
// samples the Go heap and the process's RSS, with the file opened afresh.
func (sf *scaleFile) measureDrainAll(ctx context.Context) (err error) {
	if err := sf.openDB(ctx); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, sf.closeDB(ctx)) }()
	r, err := newScaleRunner(sf.db, newGate(0))
	if err != nil {
		return err
	}
	all, err := r.Counts(ctx, "")
	if err == nil {
		var bulk map[jobrun.State]int
		bulk, err = r.Counts(ctx, scaleBulkQueue)
		all[jobrun.StateReady] -= bulk[jobrun.StateReady]
	}
	if err = errors.Join(err, r.Close()); err != nil {
		return err
	}
	smp, mem, err := sf.drain(ctx, all[jobrun.StateReady], true)
	if err != nil {
		return err
	}
	res := sf.result("drain-all", all[jobrun.StateReady]+sf.bulk.n, smp)
	res.MemoryPeak = mem
	return sf.emit(res)
}

// drain runs a new runner until limit more jobs are completed and committed, timed
// from Run, then closes it, handing back the jobs it holds. With watch, it samples the
// memory meanwhile, from a collected heap.
func (sf *scaleFile) drain(ctx context.Context, limit int, watch bool) (benchSample, *MemoryPeak, error) {
	g := newGate(limit)
	r, err := newScaleRunner(sf.db, g)
	if err != nil {
		return benchSample{}, nil, err
	}
	counts, err := r.Counts(ctx, "")
	if err != nil {
		return benchSample{}, nil, errors.Join(err, r.Close())
	}
	want := counts[jobrun.StateDone] + limit
	var stopWatch func() *MemoryPeak
	if watch {
		runtime.GC()
		debug.FreeOSMemory()
		stopWatch = watchMemory(memoryEvery)
	}
	var rn *running
	smp, err := timed(sf.db, limit, func() error {
		rn = startRunning(ctx, r)
		return rn.waitDone(ctx, g, want)
	})
	var mem *MemoryPeak
	if watch {
		mem = stopWatch()
	}
	if rn != nil {
		err = errors.Join(err, rn.stop())
	} else {
		err = errors.Join(err, r.Close())
	}
	return smp, mem, err
}

// gate is the scale set's handler: it lets limit jobs complete, then holds every
// further job until its context ends (at the runner's Close), so that a drain stops
// at an exact count and the jobs held go back to ready without spending an attempt.
type gate struct {
	limit     int64
	started   atomic.Int64
	firstOnce sync.Once
	first     chan struct{} // closed when the first handler starts
	reached   chan struct{} // closed when the limit-th job is let through
}

func newGate(limit int) *gate {
	return &gate{limit: int64(limit), first: make(chan struct{}), reached: make(chan struct{})}
}

func (g *gate) handle(ctx context.Context, job *jobrun.Job[benchArgs]) error {
	g.firstOnce.Do(func() { close(g.first) })
	n := g.started.Add(1)
	if n > g.limit {
		<-ctx.Done()
		return context.Cause(ctx)
	}
	if n == g.limit {
		close(g.reached)
	}
	return nil
}

// running is a runner whose Run is in progress.
type running struct {
	r    *jobrun.Runner
	done chan struct{} // closed when Run returned
	err  error
}

func startRunning(ctx context.Context, r *jobrun.Runner) *running {
	rn := &running{r: r, done: make(chan struct{})}
	go func() {
		rn.err = r.Run(ctx)
		close(rn.done)
	}()
	return rn
}

// waitDone returns once the gate let its jobs through and the counters say want jobs
// are done, which means committed.
func (rn *running) waitDone(ctx context.Context, g *gate, want int) error {
	select {
	case <-g.reached:
	case <-rn.done:
		return fmt.Errorf("the runner stopped: %w", rn.err)
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	for {
		counts, err := rn.r.Counts(ctx, "")
		if err != nil {
			return err
		}
		if counts[jobrun.StateDone] >= want {
			return nil
		}
		if n := counts[jobrun.StateRetrying] + counts[jobrun.StateFailed]; n > 0 {
			return fmt.Errorf("%d jobs failed an attempt: %v", n, counts)
		}
		time.Sleep(storedPoll)
	}
}

// stop closes the runner, which hands back the jobs it holds, and waits for Run.
func (rn *running) stop() error {
	err := rn.r.Close()
	<-rn.done
	if !errors.Is(rn.err, jobrun.ErrClosed) && !errors.Is(rn.err, context.Canceled) {
		err = errors.Join(err, rn.err)
	}
	return err
}

// MemoryPeak is the most memory a measurement saw, in MiB; the RSS figures are left
// out where /proc/self/status is not available.
type MemoryPeak struct {
	HeapInuse float64 `json:"heap_inuse_max_mib"`         // spans of the heap in use: objects and their free slots
	HeapAlloc float64 `json:"heap_alloc_max_mib"`         // heap objects, live or not yet swept
	HeapLive  float64 `json:"heap_live_max_mib"`          // the live heap the last GC marked
	GoTotal   float64 `json:"go_total_max_mib"`           // everything the Go runtime mapped
	RSS       float64 `json:"rss_max_mib,omitempty"`      // VmRSS, sampled
	RSSAnon   float64 `json:"rss_anon_max_mib,omitempty"` // RssAnon: heap, stacks, runtime
	RSSFile   float64 `json:"rss_file_max_mib,omitempty"` // RssFile: mostly bbolt's mmap of the file
	HWM       float64 `json:"vm_hwm_mib,omitempty"`       // VmHWM, reset at the start where Linux allows
	Samples   int     `json:"memory_samples"`
}

// watchMemory samples the memory every interval until stop, which returns the peaks.
func watchMemory(every time.Duration) (stop func() *MemoryPeak) {
	// Writing 5 to clear_refs resets VmHWM (Linux 4.0+), so that it covers this part.
	hwmReset := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	peak := &MemoryPeak{}
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/total:bytes"},
	}
	mib := func(i int) float64 {
		if samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return float64(samples[i].Value.Uint64()) / (1 << 20)
	}
	sample := func() {
		metrics.Read(samples)
		peak.HeapAlloc = max(peak.HeapAlloc, mib(0))
		peak.HeapInuse = max(peak.HeapInuse, mib(0)+mib(1))
		peak.HeapLive = max(peak.HeapLive, mib(2))
		peak.GoTotal = max(peak.GoTotal, mib(3))
		st := procStatus()
		peak.RSS = max(peak.RSS, st["VmRSS"])
		peak.RSSAnon = max(peak.RSSAnon, st["RssAnon"])
		peak.RSSFile = max(peak.RSSFile, st["RssFile"])
		peak.Samples++
	}
	quit, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			sample()
			select {
			case <-quit:
				return
			case <-t.C:
			}
		}
	}()
	return func() *MemoryPeak {
		close(quit)
		<-exited
		sample()
		if hwmReset {
			peak.HWM = procStatus()["VmHWM"]
		}
		for _, p := range []*float64{&peak.HeapInuse, &peak.HeapAlloc, &peak.HeapLive, &peak.GoTotal,
			&peak.RSS, &peak.RSSAnon, &peak.RSSFile, &peak.HWM} {
			*p = round(*p, 1)
		}
		return peak
	}
}

// procStatus returns the memory lines of /proc/self/status in MiB, none if it cannot
// be read.
func procStatus() map[string]float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil
	}
	m := map[string]float64{}
	for line := range strings.Lines(string(b)) {
		name, rest, ok := strings.Cut(line, ":")
		f := strings.Fields(rest)
		if !ok || len(f) != 2 || f[1] != "kB" {
			continue
		}
		if kB, err := strconv.ParseFloat(f[0], 64); err == nil {
			m[name] = kB / 1024
		}
	}
	return m
}

// The tables of the sets.

// printSetHeader starts the table of a set.
func printSetHeader(w io.Writer, cfg benchConfig, title string) {
	fmt.Fprintf(w, "\njobrun bench %s: config %s, median of %d run(s), GOMAXPROCS %d, %s\n\n",
		title, cfg.syncConfig(), cfg.runs, runtime.GOMAXPROCS(0), runtime.Version())
}

// printScaleTable prints each scale measurement at both sizes side by side, with the
// ratio of the larger to the smaller.
func printScaleTable(w io.Writer, cfg benchConfig, results map[string][]benchResult) {
	small, large := cfg.size(scaleSizes[0]), cfg.size(scaleSizes[1])
	printSetHeader(w, cfg, "scale")
	perJob := func(r benchResult) float64 { return r.Seconds / float64(r.N) * 1e6 }
	ms := func(r benchResult) float64 { return r.Seconds * 1e3 }
	perCommitOf := func(r benchResult) float64 { return float64(r.N) / float64(r.commits) }
	pagesOf := func(r benchResult) float64 { return float64(r.pages) / float64(r.commits) }
	mem := func(f func(*MemoryPeak) float64) func(benchResult) float64 {
		return func(r benchResult) float64 {
			if r.MemoryPeak == nil {
				return math.NaN()
			}
			return f(r.MemoryPeak)
		}
	}
	rows := []struct {
		label, what, unit string
		value             func(benchResult) float64
	}{
		{"enqueue, one at a time (" + countLabel(cfg.size(scaleSeq)) + ")", "enqueue-seq", "µs/job", perJob},
		{"  pages per commit", "enqueue-seq", "", pagesOf},
		{"enqueue, batches of 1,000 (" + countLabel(cfg.size(scaleBulk)) + ")", "enqueue-bulk", "µs/job", perJob},
		{"  pages per commit", "enqueue-bulk", "", pagesOf},
		{"claim + complete (" + countLabel(scaleRounds*cfg.size(scaleRound)) + ")", "drain", "µs/job", perJob},
		{"  jobs per commit", "drain", "", perCommitOf},
		{"  pages per commit", "drain", "", pagesOf},
		{"drain of every job", "drain-all", "µs/job", perJob},
		{"  jobs per commit", "drain-all", "", perCommitOf},
		{"  pages per commit", "drain-all", "", pagesOf},
		{"jobrun.Open", "open", "ms", ms},
		{"Open to first handler start", "first-claim", "ms", ms},
		{"file size", "open", "MiB", func(r benchResult) float64 { return r.FileMiB }},
		{"while draining every job:", "", "", nil},
		{"  Go heap in use, max", "drain-all", "MiB", mem(func(m *MemoryPeak) float64 { return m.HeapInuse })},
		{"  Go heap objects, max", "drain-all", "MiB", mem(func(m *MemoryPeak) float64 { return m.HeapAlloc })},
		{"  Go heap live (last GC), max", "drain-all", "MiB", mem(func(m *MemoryPeak) float64 { return m.HeapLive })},
		{"  Go runtime total, max", "drain-all", "MiB", mem(func(m *MemoryPeak) float64 { return m.GoTotal })},
		{"  RSS, max", "drain-all", "MiB", mem(func(m *MemoryPeak) float64 { return m.RSS })},
		{"    anonymous", "drain-all", "MiB", mem(func(m *MemoryPeak) float64 { return m.RSSAnon })},
		{"    file-backed (bbolt's mmap)", "drain-all", "MiB", mem(func(m *MemoryPeak) float64 { return m.RSSFile })},
		{"  VmHWM", "drain-all", "MiB", mem(func(m *MemoryPeak) float64 { return m.HWM })},
	}
	var buf strings.Builder
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-34s\t\t%s waiting\t%s waiting\t%s / %s\t\n", "measurement", countLabel(small), countLabel(large),
		countLabel(large), countLabel(small))
	for _, row := range rows {
		if row.value == nil {
			fmt.Fprintf(tw, "%-34s\t\t\t\t\t\n", row.label)
			continue
		}
		a := medianValue(results[scaleWorkload(small, row.what)], row.value)
		b := medianValue(results[scaleWorkload(large, row.what)], row.value)
		ratio := "-"
		if a > 0 && b > 0 {
			ratio = fmt.Sprintf("%.2f", b/a)
		}
		fmt.Fprintf(tw, "%-34s\t%s\t%s\t%s\t%s\t\n", row.label, row.unit, figure(a), figure(b), ratio)
	}
	tw.Flush()
	for line := range strings.Lines(buf.String()) {
		fmt.Fprintln(w, strings.TrimRight(line, " \n")) // the label-only rows pad empty cells
	}
	fmt.Fprintf(w, "\n%d queues, 1 worker each. Claims: %d rounds of %s jobs, each on a new runner timed from\n"+
		"Run until its last completion is committed, refilled after it. Enqueues: on a runner not\n"+
		"running, to the queues one at a time, then to a %q queue. Open: jobrun.Open of the closed\n"+
		"file, fsync whatever -nosync says. Memory: sampled every %v, from a collected heap.\n",
		scaleQueues, scaleRounds, thousands(float64(cfg.size(scaleRound))), scaleBulkQueue, memoryEvery)
}

// medianValue is the median of f over rs, NaN if rs is empty or f has no value.
func medianValue(rs []benchResult, f func(benchResult) float64) float64 {
	var v []float64
	for _, r := range rs {
		if x := f(r); !math.IsNaN(x) && !math.IsInf(x, 0) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// figure writes x with three significant digits or as an integer, "-" if it is NaN.
func figure(x float64) string {
	switch {
	case math.IsNaN(x):
		return "-"
	case x >= 1000:
		return thousands(x)
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	}
	return fmt.Sprintf("%.2f", x)
}

// printConcTable prints W4 by concurrency, with each rate over the first one's.
func printConcTable(w io.Writer, cfg benchConfig, results map[string][]benchResult) {
	printSetHeader(w, cfg, "conc")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "workers\tn\tseconds\tjobs/s\truns (jobs/s)\tjobs/commit\tpages/commit\tvs %d\t\n", concSpecs[0].workers)
	base := medianOf(results[concSpecs[0].workload()])
	for _, s := range concSpecs {
		rs := results[s.workload()]
		m := medianOf(rs)
		fmt.Fprintf(tw, "%d\t%s\t%.3f\t%s\t%s\t%s\t%s\t%.2f\t\n", s.workers, thousands(float64(m.N)), m.Seconds,
			thousands(m.JobsPerS), runRates(rs), perCommit(m), pagesPerCommit(m), m.JobsPerS/base.JobsPerS)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nW4 (jobs inserted untimed, then timed from Run until the last completion is committed),\n"+
		"one queue run by that many workers; 16 is W4 itself.\n")
}

// printSizeTable prints W1, W3 and W4 by payload size, with each rate over the
// smallest payload's.
func printSizeTable(w io.Writer, cfg benchConfig, results map[string][]benchResult) {
	printSetHeader(w, cfg, "size")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-14s\tpayload\tn\tseconds\tjobs/s\tMiB/s\truns (jobs/s)\tjobs/commit\tpages/commit\tvs %s\t\n",
		"workload", bytesLabel(sizePayloads[0]))
	var base float64
	for _, s := range sizeSpecs {
		rs := results[s.workload()]
		m := medianOf(rs)
		if s.payload == sizePayloads[0] {
			base = m.JobsPerS
		}
		fmt.Fprintf(tw, "%-14s\t%s\t%s\t%.3f\t%s\t%.1f\t%s\t%s\t%s\t%.2f\t\n", s.name, bytesLabel(s.payload),
			thousands(float64(m.N)), m.Seconds, thousands(m.JobsPerS), m.JobsPerS*float64(s.payload)/(1<<20),
			runRates(rs), perCommit(m), pagesPerCommit(m), m.JobsPerS/base)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nenqueue-seq is W1, enqueue-bulk W3, drain W4, with args padded to encode to the payload\n"+
		"size as JSON; MiB/s counts the args only.\n")
}

// The table.

// printBenchTable prints the median of every measurement, each workload next to its
// reference, then the references.
func printBenchTable(w io.Writer, cfg benchConfig, results map[string][]benchResult) {
	fmt.Fprintf(w, "\njobrun bench: config %s, median of %d run(s), GOMAXPROCS %d, %s\n\n",
		cfg.syncConfig(), cfg.runs, runtime.GOMAXPROCS(0), runtime.Version())
	var refs []*benchSpec
	for _, s := range cfg.specs {
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
		if s.ref != nil {
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
