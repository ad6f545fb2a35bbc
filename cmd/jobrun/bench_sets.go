package main

import (
	"context"
	"errors"
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
