package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/time/rate"

	"github.com/jobrun/jobrun"
)

const (
	demoSynopsis = "usage: jobrun demo [flags]"
	demoDoc      = `Demo enqueues a few hundred simulated jobs of three kinds into a database file and
runs them, showing the number of jobs in each state as they go:

  email.send       fast; queue "email", 8 workers; enqueued in one EnqueueMany batch
  image.resize     slow; reports its progress step by step and stores a result;
                   queue "images", 3 workers; some jump the queue with a priority
  webhook.deliver  about 40% of attempts fail and are retried with backoff, 4
                   attempts at most; a few fail for good (410 Gone); queue
                   "webhooks", 4 workers; some are delayed

Once they have finished, it sends three "user/signed-up" events (one a duplicate by
its ID) to a durable function, user.onboard on queue "onboarding": a step, a sleep of
a second that holds no worker, another step; and shows a run's steps.

It stops once every job and run has finished and prints a summary. The file is kept: run the
demo again to see the jobs of earlier runs still there, or press Ctrl-C mid-run to
stop gracefully and see the unfinished jobs resume at the next run. The progress
line counts the jobs of this run (and those an earlier run left unfinished), not
the ones earlier runs finished.

With -store pg the jobs live in PostgreSQL instead (package pg): in schema "demo" of
the database -dsn, or, without -dsn, of a throwaway cluster that the demo starts from
Debian's server binaries and removes at the end.

While it runs, the demo serves the dashboard on 127.0.0.1, on a free port, and
prints its URL: open it to watch the queues, retry a failed webhook, pause a queue.
The dashboard stops with the demo, a few seconds after it starts: with -keep the
demo goes on running, and serving, after the jobs finish, until Ctrl-C; "jobrun
serve FILE" shows the file later. A queue of the demo left paused in the file (from
the dashboard, in an earlier run) is resumed at the start, and the demo says so;
one paused during the run holds its jobs, and the demo, until it is resumed.

Exit status: 0 once every job has finished, 130 after Ctrl-C (with -keep too),
1 if the demo failed, 2 for bad arguments.
`
)

const (
	// shutdownTimeout is how long running handlers get to finish when the demo stops.
	shutdownTimeout = 5 * time.Second

	// refreshPeriod is how often the live view reads the counts.
	refreshPeriod = 100 * time.Millisecond
)

// The demo's queues, their workers, and the attempts a webhook gets.
const (
	emailQueue   = "email"
	imageQueue   = "images"
	webhookQueue = "webhooks"
	emailWorkers = 8
	imageWorkers = 3
	hookWorkers  = 4
	webhookTries = 4

	// The webhooks' remote side takes at most hookRate calls a second (times -speed),
	// in bursts of hookBurst: a rate limiter on the queue keeps to it.
	hookRate  = 40
	hookBurst = 5

	// A cron schedule runs a rollup job every second on a queue of its own, so its jobs
	// stay out of the counts of the jobs the demo enqueues.
	rollupQueue    = "reports"
	rollupSchedule = "metrics-rollup"
	rollupSpec     = "@every 1s"
)

// jobQueues are the queues of the jobs the demo enqueues and waits for.
var jobQueues = []string{emailQueue, imageQueue, webhookQueue}

// demoConfig is what the demo's flags set.
type demoConfig struct {
	db    string  // database file
	n     int     // jobs to enqueue
	speed float64 // divides every simulated duration
	reset bool    // delete the file first
	dash  bool    // serve the dashboard while running
	keep  bool    // keep running and serving after the jobs finish, until interrupted
	store string  // "bolt" or "pg"
	dsn   string  // with store pg: the database; "" for a throwaway cluster
}

// runDemo is the demo command: it parses args and runs the demo, writing to stdout.
// After an interruption through ctx, once the runner has stopped gracefully and the
// demo has said what is left, it returns an interruptError.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg demoConfig
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.StringVar(&cfg.db, "db", filepath.Join(os.TempDir(), "jobrun-demo.db"),
		"database file `path`, created if missing and reused if present")
	fs.IntVar(&cfg.n, "n", 300, "number of jobs to enqueue")
	fs.Float64Var(&cfg.speed, "speed", 1,
		"speed-up `factor` of the simulated work, delays and retry backoff (4 runs 4 times as fast)")
	fs.BoolVar(&cfg.reset, "reset", false, "delete the database file first, to start from an empty one")
	fs.BoolVar(&cfg.dash, "dashboard", true, "serve the dashboard on 127.0.0.1, on a free port, while the demo runs")
	fs.BoolVar(&cfg.keep, "keep", false, "once every job has finished, keep running and serving the dashboard until Ctrl-C")
	fs.StringVar(&cfg.store, "store", "bolt", "`store` of the jobs: bolt (the -db file) or pg: PostgreSQL (package pg), in the\n"+
		"database -dsn, or without it on a throwaway cluster (Debian's server binaries), removed at the end")
	fs.StringVar(&cfg.dsn, "dsn", "", "with -store pg, the PostgreSQL database (`DSN`) whose schema \"demo\" holds the jobs")
	if err := parseFlags(fs, demoSynopsis, demoDoc, args, stdout, stderr); err != nil {
		return err
	}
	var bad error
	switch {
	case cfg.n < 0:
		bad = fmt.Errorf("-n must not be negative, got %d", cfg.n)
	case !(cfg.speed > 0 && cfg.speed <= 1000):
		bad = fmt.Errorf("-speed must be above 0 and at most 1000, got %v", cfg.speed)
	case cfg.keep && !cfg.dash:
		bad = errors.New("-keep serves the dashboard: it needs -dashboard")
	case cfg.store != "bolt" && cfg.store != "pg":
		bad = fmt.Errorf("-store must be bolt or pg, got %q", cfg.store)
	case cfg.dsn != "" && cfg.store != "pg":
		bad = errors.New("-dsn goes with -store pg")
	}
	if bad != nil {
		fmt.Fprintf(stderr, "jobrun demo: %v\n%s\nRun \"jobrun help demo\" for details.\n", bad, demoSynopsis)
		return &usageError{bad}
	}
	return demo(ctx, cfg, stdout)
}

// demo opens the file, enqueues cfg.n jobs, runs them all with a live view and
// prints a summary; if ctx ends first, it stops gracefully, reports what is left and
// returns an interruptError.
func demo(ctx context.Context, cfg demoConfig, out io.Writer) (err error) {
	st, err := openDemoStore(ctx, &cfg)
	if err != nil {
		return err
	}
	defer st.close()
	r, err := st.open(
		jobrun.WithQueue(emailQueue, emailWorkers, nil),
		jobrun.WithQueue(imageQueue, imageWorkers, nil),
		jobrun.WithQueue(webhookQueue, hookWorkers, rate.NewLimiter(rate.Limit(hookRate*cfg.speed), hookBurst)),
		jobrun.WithQueue(rollupQueue, 1, nil),
		jobrun.WithQueue(onboardingQueue, onboardingWorkers, nil),
	)
	if err != nil {
		return err
	}
	// A safety net for the error paths; after Shutdown it only returns ErrClosed.
	defer r.Close()

	sim := simulation{speed: cfg.speed}
	sim.register(r)

	// ctx ending means "stop", but the runner calls that stopping takes (reading
	// counts, Shutdown) must still work, so they use a context it does not cancel.
	bg := context.WithoutCancel(ctx)

	// Declared at every start, as an application does: the stored timetable is kept.
	if err := r.Schedule(bg, rollupSchedule, rollupSpec, rollup{}, jobrun.Queue(rollupQueue), jobrun.SkipOverlap()); err != nil {
		return err
	}
	// A queue paused in an earlier run (the demo suggests trying it on the dashboard)
	// would hold its jobs, and the demo, forever.
	if err := resumeQueues(bg, r, out); err != nil {
		return err
	}
	// The dashboard starts before the jobs are enqueued, so that its throughput chart
	// has them all.
	var dashURL string
	if cfg.dash {
		ds, err := startDashboard(r, "127.0.0.1:0", true, "", nil)
		if err != nil {
			return fmt.Errorf("serve the dashboard: %w", err)
		}
		// Deferred after r.Close, so it runs before: the server stops first.
		defer ds.stop()
		dashURL = ds.url
	}
	before, err := jobCounts(bg, r)
	if err != nil {
		return err
	}
	rollupsBefore, err := r.Counts(bg, rollupQueue)
	if err != nil {
		return err
	}
	printHeld(out, st.name, before)
	if dashURL != "" {
		if cfg.keep {
			fmt.Fprintf(out, "dashboard: %s (until Ctrl-C)\n", dashURL)
		} else {
			fmt.Fprintf(out, "dashboard: %s (until the jobs finish; -keep keeps it up until Ctrl-C)\n", dashURL)
		}
	}
	if cfg.n == 0 && pending(before) == 0 {
		fmt.Fprintln(out, "nothing to run: -n is 0 and every job has finished")
		return r.Close()
	}

	enqStart := time.Now()
	jobs, err := sim.enqueue(ctx, r, cfg.n)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(out, "interrupted while enqueuing; the jobs enqueued so far are stored")
			return stopEarly(ctx, r, st, out)
		}
		return err
	}
	if cfg.n > 0 {
		fmt.Fprintf(out, "enqueued %d jobs in %s: %d email.send (one EnqueueMany batch), %d image.resize (%d with priority), %d webhook.deliver (%d delayed)\n",
			cfg.n, formatDuration(time.Since(enqStart)), len(jobs.emails), len(jobs.images), jobs.prioritized,
			len(jobs.webhooks), jobs.delayed)
	}
	fmt.Fprintf(out, "webhooks are rate limited to %v calls/s; cron schedule %q (%s) runs a rollup on queue %q\n",
		hookRate*cfg.speed, rollupSchedule, rollupSpec, rollupQueue)
	fmt.Fprintln(out)

	// Run gets a context of its own: when ctx ends, Run would stop at once, and the
	// demo wants the graceful Shutdown instead.
	runCtx, cancelRun := context.WithCancel(bg)
	defer cancelRun()
	runErr := make(chan error, 1)
	start := time.Now()
	go func() { runErr <- r.Run(runCtx) }()

	// Jobs that an earlier run left unfinished resume now, so they count in the total.
	w := watcher{
		r: r, ctx: bg, out: out, view: newLiveView(out, start),
		before: before, total: cfg.n + pending(before), paused: map[string]bool{},
	}
	allDone, err := w.watch(ctx, runErr)
	if err != nil {
		return err
	}
	if !allDone {
		return stopEarly(ctx, r, st, out)
	}
	elapsed := time.Since(start)
	var functions bytes.Buffer // printed after the jobs' summary
	if err := demoFunctions(ctx, r, &functions, sim); err != nil {
		if ctx.Err() != nil {
			return stopEarly(ctx, r, st, out)
		}
		return err
	}

	// Get fails once the runner is closed, so the jobs are read before Shutdown.
	infos, err := getAll(bg, r, jobs.all())
	if err != nil {
		return err
	}
	rollupsAfter, err := r.Counts(bg, rollupQueue)
	if err != nil {
		return err
	}
	if cfg.keep {
		// The summary is of the run that just ended: what is done on the dashboard
		// from now on is not in it.
		fmt.Fprintf(out, "every job has finished; the runner and the dashboard at %s go on until Ctrl-C\n", dashURL)
		<-ctx.Done()
	}
	if err := shutdown(r, out); err != nil {
		return err
	}
	<-runErr // ErrClosed: Shutdown ended it
	defer func() {
		if err == nil && ctx.Err() != nil {
			err = interrupted(ctx) // -keep ended by Ctrl-C
		}
	}()

	printSummary(out, jobs, infos, w.finishedCount, elapsed)
	if len(jobs.images) > 0 {
		fmt.Fprintln(out)
		printJob(out, "An image job", infos[jobs.images[0]])
	}
	if in := mostRetriedFailure(jobs.webhooks, infos); in != nil {
		fmt.Fprintln(out)
		printJob(out, "A failed webhook job", in)
	} else if len(jobs.webhooks) > 0 {
		fmt.Fprintln(out, "\nNo webhook job failed this time: failures are random, a larger -n makes them likely.")
	}
	out.Write(functions.Bytes())
	fmt.Fprintf(out, "\nCron: schedule %q (%s) ran %d rollups during this run; it is stored in the file and keeps its timetable across runs.\n",
		rollupSchedule, rollupSpec, rollupsAfter[jobrun.StateDone]-rollupsBefore[jobrun.StateDone])
	fmt.Fprintf(out, "\n%s\n", st.after)
	return nil
}

// jobCounts sums the counts of the queues of the jobs the demo enqueues.
func jobCounts(ctx context.Context, r *jobrun.Runner) (map[jobrun.State]int, error) {
	sum := map[jobrun.State]int{}
	for _, q := range jobQueues {
		c, err := r.Counts(ctx, q)
		if err != nil {
			return nil, err
		}
		for s, n := range c {
			sum[s] += n
		}
	}
	return sum, nil
}

// printHeld reports what the file holds before this run adds to it, to show that the
// jobs of earlier runs persisted.
func printHeld(out io.Writer, db string, counts map[jobrun.State]int) {
	total := 0
	for _, n := range counts {
		total += n
	}
	if total == 0 {
		fmt.Fprintf(out, "database %s holds no jobs yet\n", db)
		return
	}
	fmt.Fprintf(out, "database %s already holds %d jobs: %s\n", db, total, formatCounts(counts, jobrun.States))
	if n := pending(counts); n > 0 {
		fmt.Fprintf(out, "%d of them did not finish in an earlier run: they resume now\n", n)
	}
}

// watcher follows a running runner until every job of its file has finished.
type watcher struct {
	r      *jobrun.Runner
	ctx    context.Context // for the runner calls; not canceled by an interrupt
	out    io.Writer
	view   *liveView
	before map[jobrun.State]int // the counts when the run began
	total  int                  // jobs to finish in this run
	paused map[string]bool      // the demo's queues seen paused, reported once each

	finishedCount int // jobs this run finished
}

// watch refreshes the view until no job of the file is pending, ctx ends, or Run
// fails. It reports whether every job finished. It waits for all the file's jobs,
// not only those this run enqueued, so that jobs an earlier run left unfinished
// finish too; nothing else enqueues into the demo's file. A queue paused meanwhile
// (on the dashboard) holds its jobs until it is resumed: the view says so.
func (w *watcher) watch(ctx context.Context, runErr <-chan error) (bool, error) {
	tick := time.NewTicker(refreshPeriod)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			w.view.interrupt()
			return false, nil
		case err := <-runErr:
			w.view.interrupt()
			return false, fmt.Errorf("runner stopped: %w", err)
		case now := <-tick.C:
			counts, err := jobCounts(w.ctx, w.r)
			if err == nil {
				err = w.notePaused()
			}
			if err != nil {
				w.view.interrupt()
				return false, err
			}
			run := thisRun(counts, w.before)
			w.finishedCount = finished(run)
			if pending(counts) == 0 {
				w.view.finish(now, w.finishedCount, w.total, run)
				return true, nil
			}
			w.view.update(now, w.finishedCount, w.total, run)
		}
	}
}

// notePaused reports, once, each of the demo's queues that is paused.
func (w *watcher) notePaused() error {
	paused, err := pausedQueues(w.ctx, w.r)
	if err != nil {
		return err
	}
	for _, q := range jobQueues {
		p := paused[q]
		if p && !w.paused[q] {
			w.view.note(fmt.Sprintf("queue %s is paused: its jobs wait, and so does the demo, until it is resumed on the dashboard", q))
		}
		w.paused[q] = p
	}
	return nil
}

// thisRun is counts, the file's, less the jobs earlier runs finished (before): the
// jobs of this run, and those an earlier run left unfinished, in each state.
func thisRun(counts, before map[jobrun.State]int) map[jobrun.State]int {
	run := maps.Clone(counts)
	for _, s := range finalStates {
		run[s] = max(counts[s]-before[s], 0) // jobs deleted on the dashboard: not below 0
	}
	return run
}

// pausedQueues returns the file's paused queues.
func pausedQueues(ctx context.Context, r *jobrun.Runner) (map[string]bool, error) {
	queues, err := r.Queues(ctx)
	if err != nil {
		return nil, err
	}
	paused := map[string]bool{}
	for _, q := range queues {
		paused[q.Name] = q.Paused
	}
	return paused, nil
}

// resumeQueues resumes the demo's queues that are paused, saying so.
func resumeQueues(ctx context.Context, r *jobrun.Runner, out io.Writer) error {
	paused, err := pausedQueues(ctx, r)
	if err != nil {
		return err
	}
	for _, q := range append(slices.Clone(jobQueues), rollupQueue) {
		if !paused[q] {
			continue
		}
		if err := r.Resume(ctx, q); err != nil {
			return err
		}
		fmt.Fprintf(out, "queue %s was paused (on the dashboard of an earlier run?): resumed it so that its jobs run\n", q)
	}
	return nil
}

// shutdown stops the runner gracefully, giving running handlers shutdownTimeout to
// finish. A handler still running then is interrupted, and its job runs again at the
// next start: that is reported, not an error.
func shutdown(r *jobrun.Runner, out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := r.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintf(out, "some jobs were still running after %v: they were interrupted and will run again\n", shutdownTimeout)
		return nil
	}
	return err
}

// stopEarly handles an interruption through ctx: it shuts the runner down gracefully,
// reports how many jobs will resume at the next run and returns an interruptError.
func stopEarly(ctx context.Context, r *jobrun.Runner, st *demoStore, out io.Writer) error {
	fmt.Fprintf(out, "interrupted: stopping gracefully, running jobs get up to %v to finish...\n", shutdownTimeout)
	if err := shutdown(r, out); err != nil {
		return err
	}
	// Counts fails once the runner is closed: read them from the store again.
	again, err := st.open()
	if err != nil {
		return fmt.Errorf("reopen to count the unfinished jobs: %w", err)
	}
	counts, err := jobCounts(context.Background(), again)
	if cerr := again.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("count the unfinished jobs: %w", err)
	}
	n := pending(counts)
	if n == 0 {
		fmt.Fprintln(out, "stopped: every job had finished")
	} else {
		fmt.Fprintf(out, "stopped: %d jobs will resume at the next run (%s)\n", n, formatCounts(counts, pendingStates))
	}
	return interrupted(ctx)
}

// getAll reads the jobs with the given IDs.
func getAll(ctx context.Context, r *jobrun.Runner, ids []jobrun.ID) (map[jobrun.ID]*jobrun.Info, error) {
	infos := make(map[jobrun.ID]*jobrun.Info, len(ids))
	for _, id := range ids {
		in, err := r.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		infos[id] = in
	}
	return infos, nil
}

// kindStats sums the outcomes of one kind's jobs.
type kindStats struct {
	done, failed, canceled, retries int
}

func (s *kindStats) add(in *jobrun.Info) {
	switch in.State {
	case jobrun.StateDone:
		s.done++
	case jobrun.StateFailed:
		s.failed++
	case jobrun.StateCanceled:
		s.canceled++
	}
	s.retries += max(in.Attempt-1, 0)
}

// printSummary prints the outcome of this run's jobs, in total and by kind.
// finishedCount includes the jobs of earlier runs that finished in this one.
func printSummary(out io.Writer, jobs demoJobs, infos map[jobrun.ID]*jobrun.Info, finishedCount int, elapsed time.Duration) {
	kinds := []struct {
		name string
		ids  []jobrun.ID
	}{{"email.send", jobs.emails}, {"image.resize", jobs.images}, {"webhook.deliver", jobs.webhooks}}
	var total kindStats
	byKind := make([]kindStats, len(kinds))
	for i, k := range kinds {
		for _, id := range k.ids {
			byKind[i].add(infos[id])
			total.add(infos[id])
		}
	}

	rate := float64(finishedCount) / elapsed.Seconds()
	earlier := finishedCount - len(infos)
	if len(infos) == 0 {
		fmt.Fprintf(out, "\nThe %d jobs left unfinished by an earlier run finished in %s (%.1f jobs/s)\n",
			earlier, formatDuration(elapsed), rate)
		return
	}
	fmt.Fprintf(out, "\nAll %d jobs of this run finished in %s: %d done, %d failed, %d retries (%.1f jobs/s)\n",
		len(infos), formatDuration(elapsed), total.done, total.failed, total.retries, rate)
	if earlier > 0 {
		fmt.Fprintf(out, "along with %d jobs left unfinished by an earlier run\n", earlier)
	}
	const row = "  %-16s %6v %6v %6v %7v\n"
	fmt.Fprintf(out, row, "", "jobs", "done", "failed", "retries")
	for i, k := range kinds {
		s := byKind[i]
		fmt.Fprintf(out, row, k.name, len(k.ids), s.done, s.failed, s.retries)
	}
	if total.canceled > 0 {
		fmt.Fprintf(out, "%d jobs were canceled\n", total.canceled)
	}
}

// mostRetriedFailure returns the failed job with the longest error history among ids,
// the most telling one to show, or nil if none failed.
func mostRetriedFailure(ids []jobrun.ID, infos map[jobrun.ID]*jobrun.Info) *jobrun.Info {
	var best *jobrun.Info
	for _, id := range ids {
		in := infos[id]
		if in.State == jobrun.StateFailed && (best == nil || len(in.Errors) > len(best.Errors)) {
			best = in
		}
	}
	return best
}

// printJob prints everything Get returned about a job.
func printJob(out io.Writer, title string, in *jobrun.Info) {
	fmt.Fprintf(out, "%s: #%d, %s on queue %q\n", title, in.ID, in.Kind, in.Queue)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  args\t%s\n", in.RawArgs)
	fmt.Fprintf(tw, "  state\t%s, attempt %d of at most %d\n", in.State, in.Attempt, in.MaxAttempts)
	if in.Priority != 0 {
		fmt.Fprintf(tw, "  priority\t%d\n", in.Priority)
	}
	if len(in.Progress) > 0 {
		fmt.Fprintf(tw, "  progress\t%s\n", in.Progress)
	}
	if len(in.Result) > 0 {
		fmt.Fprintf(tw, "  result\t%s\n", in.Result)
	}
	if !in.FinishedAt.IsZero() {
		fmt.Fprintf(tw, "  timing\tfinished %s after it was enqueued; its last attempt took %s\n",
			formatDuration(in.FinishedAt.Sub(in.CreatedAt)), formatDuration(in.FinishedAt.Sub(in.StartedAt)))
	}
	for i, e := range in.Errors {
		label := ""
		if i == 0 {
			label = "errors"
		}
		fmt.Fprintf(tw, "  %s\tattempt %d, %s after enqueue: %s\n", label, e.Attempt,
			formatDuration(e.At.Sub(in.CreatedAt)), e.Error)
	}
	for i, l := range in.Logs {
		label := ""
		if i == 0 {
			label = "log"
		}
		fmt.Fprintf(tw, "  %s\t%s after enqueue: %s\n", label, formatDuration(l.At.Sub(in.CreatedAt)), l.Message)
	}
	tw.Flush()
}

// The demo's job kinds. Their Kind strings are stored with every job, so they must not
// change once a demo file holds jobs.

type sendEmail struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
}

func (sendEmail) Kind() string { return "email.send" }

type resizeImage struct {
	Image string `json:"image"`
	Sizes int    `json:"sizes"` // how many thumbnail widths to produce
}

func (resizeImage) Kind() string { return "image.resize" }

type deliverWebhook struct {
	URL   string `json:"url"`
	Event string `json:"event"`
}

func (deliverWebhook) Kind() string { return "webhook.deliver" }

// rollup is the job of the demo's cron schedule.
type rollup struct{}

func (rollup) Kind() string { return "metrics.rollup" }

// simulation provides handlers that pretend to work. speed divides every duration, so
// that tests (and impatient people) can run the demo faster.
type simulation struct{ speed float64 }

// scale divides d by the speed. It never returns 0 for a positive d, since Backoff
// refuses a zero minimum.
func (s simulation) scale(d time.Duration) time.Duration {
	return max(time.Duration(float64(d)/s.speed), time.Microsecond)
}

// work pretends to work for a random duration between lo and hi (scaled). Like a real
// handler it gives up when its context ends, which happens when the runner has to
// interrupt the attempt (a forced shutdown, a timeout).
func (s simulation) work(ctx context.Context, lo, hi time.Duration) error {
	t := time.NewTimer(s.scale(lo + rand.N(hi-lo+1)))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// register sets up the handlers; each kind's defaults put its jobs on its queue.
func (s simulation) register(r *jobrun.Runner) {
	jobrun.Handle(r, s.sendEmail, jobrun.Queue(emailQueue))
	jobrun.Handle(r, s.resizeImage, jobrun.Queue(imageQueue))
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[rollup]) error {
		return s.work(ctx, time.Millisecond, 5*time.Millisecond)
	}, jobrun.Queue(rollupQueue))
	jobrun.Handle(r, s.deliverWebhook, jobrun.Queue(webhookQueue),
		jobrun.Backoff(s.scale(50*time.Millisecond), s.scale(400*time.Millisecond)),
		jobrun.MaxAttempts(webhookTries))
	jobrun.Handle(r, s.onboard, jobrun.On(signedUp), jobrun.Queue(onboardingQueue))
}

func (s simulation) sendEmail(ctx context.Context, job *jobrun.Job[sendEmail]) error {
	return s.work(ctx, 2*time.Millisecond, 8*time.Millisecond)
}

// thumbnailWidths are the widths resizeImage produces, the first Sizes of them.
var thumbnailWidths = []int{160, 320, 640, 1280, 2560}

func (s simulation) resizeImage(ctx context.Context, job *jobrun.Job[resizeImage]) error {
	const steps = 5 // decode, then one step per output batch
	for i := 1; i <= steps; i++ {
		if err := s.work(ctx, 40*time.Millisecond, 120*time.Millisecond); err != nil {
			return err
		}
		if err := job.SetProgress(map[string]any{"step": i, "of": steps}); err != nil {
			return err
		}
		job.Log(fmt.Sprintf("step %d of %d done", i, steps))
	}
	base := strings.TrimSuffix(path.Base(job.Args.Image), path.Ext(job.Args.Image))
	var thumbs []string
	for _, w := range thumbnailWidths[:min(max(job.Args.Sizes, 0), len(thumbnailWidths))] {
		thumbs = append(thumbs, fmt.Sprintf("thumbs/%s_%dw.webp", base, w))
	}
	return job.SetResult(map[string]any{"thumbnails": thumbs})
}

// transientStatuses are what a flaky endpoint answers; 503 is the most common.
var transientStatuses = []string{"503 Service Unavailable", "503 Service Unavailable", "502 Bad Gateway", "504 Gateway Timeout"}

func (s simulation) deliverWebhook(ctx context.Context, job *jobrun.Job[deliverWebhook]) error {
	if err := s.work(ctx, 5*time.Millisecond, 30*time.Millisecond); err != nil {
		return err
	}
	switch p := rand.Float64(); {
	case p < 0.03:
		// The endpoint is gone: retrying cannot help, so the job fails at once.
		return jobrun.Permanent(errors.New("remote answered 410 Gone"))
	case p < 0.43:
		return fmt.Errorf("remote answered %s", transientStatuses[rand.IntN(len(transientStatuses))])
	}
	return nil
}

// demoJobs are the jobs one run enqueued, by kind.
type demoJobs struct {
	emails, images, webhooks []jobrun.ID
	prioritized, delayed     int
}

func (j demoJobs) all() []jobrun.ID {
	return append(append(append([]jobrun.ID(nil), j.emails...), j.images...), j.webhooks...)
}

var (
	subjects  = []string{"Welcome aboard", "Reset your password", "Your receipt", "Your weekly digest", "Confirm your address"}
	customers = []string{"acme", "globex", "initech", "umbrella", "hooli"}
	events    = []string{"order.created", "order.shipped", "invoice.paid", "user.signed_up"}
)

// enqueue enqueues n jobs: 55% emails, 15% images, 30% webhooks.
func (s simulation) enqueue(ctx context.Context, r *jobrun.Runner, n int) (demoJobs, error) {
	var jobs demoJobs
	nImages, nWebhooks := n*15/100, n*30/100
	nEmails := n - nImages - nWebhooks

	// Emails come in bulk (a newsletter, say): one transaction, one fsync for all.
	batch := make([]jobrun.Args, nEmails)
	for i := range batch {
		batch[i] = sendEmail{
			To:      fmt.Sprintf("user%04d@example.com", rand.IntN(10000)),
			Subject: subjects[rand.IntN(len(subjects))],
		}
	}
	var err error
	if jobs.emails, err = r.EnqueueMany(ctx, batch); err != nil {
		return jobs, err
	}

	for i := range nImages {
		var opts []jobrun.EnqueueOption
		if i%5 == 0 {
			// An avatar whose owner is watching a spinner jumps the queue.
			opts = append(opts, jobrun.Priority(10))
			jobs.prioritized++
		}
		args := resizeImage{Image: fmt.Sprintf("uploads/IMG_%04d.jpg", rand.IntN(10000)), Sizes: 2 + rand.IntN(4)}
		id, err := r.Enqueue(ctx, args, opts...)
		if err != nil {
			return jobs, err
		}
		jobs.images = append(jobs.images, id)
	}

	for i := range nWebhooks {
		var opts []jobrun.EnqueueOption
		if i%4 == 0 {
			// Some events are only sent once a grace period has passed.
			opts = append(opts, jobrun.Delay(s.scale(200*time.Millisecond+rand.N(1300*time.Millisecond))))
			jobs.delayed++
		}
		args := deliverWebhook{
			URL:   fmt.Sprintf("https://hooks.%s.example/jobrun", customers[rand.IntN(len(customers))]),
			Event: events[rand.IntN(len(events))],
		}
		id, err := r.Enqueue(ctx, args, opts...)
		if err != nil {
			return jobs, err
		}
		jobs.webhooks = append(jobs.webhooks, id)
	}
	return jobs, nil
}
