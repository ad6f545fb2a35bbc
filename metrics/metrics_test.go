package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"go.uber.org/goleak"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/metrics"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// work runs for its Seconds of (fake) time and then fails if Fail is set.
type work struct {
	Seconds int  `json:"seconds"`
	Fail    bool `json:"fail"`
}

func (work) Kind() string { return "work" }

// report is a second kind, so that the kind label is seen to vary.
type report struct{}

func (report) Kind() string { return "report" }

func openRunner(t *testing.T, opts ...jobrun.Option) *jobrun.Runner {
	t.Helper()
	r, err := jobrun.Open(filepath.Join(t.TempDir(), "jobs.db"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[work]) error {
		time.Sleep(time.Duration(job.Args.Seconds) * time.Second)
		if job.Args.Fail {
			return errors.New("boom")
		}
		return nil
	})
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[report]) error { return nil })
	return r
}

func enqueue(t *testing.T, r *jobrun.Runner, args jobrun.Args, opts ...jobrun.EnqueueOption) jobrun.ID {
	t.Helper()
	id, err := r.Enqueue(t.Context(), args, opts...)
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	return id
}

func runUntilIdle(t *testing.T, r *jobrun.Runner) {
	t.Helper()
	if err := r.RunUntilIdle(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestEvents drives jobs through every outcome on fake time and checks every metric,
// the histograms' sums to the second.
func TestEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := openRunner(t, jobrun.WithQueue("slow", 2, nil))
		c, err := metrics.New(t.Context(), r, metrics.WithRunBuckets(1, 5), metrics.WithWaitBuckets(1, 10))
		if err != nil {
			t.Fatal(err)
		}

		// Waits 4s in a paused queue, then runs 3s.
		if err := r.Pause(t.Context(), "slow"); err != nil {
			t.Fatal(err)
		}
		enqueue(t, r, work{Seconds: 3}, jobrun.Queue("slow"))
		time.Sleep(4 * time.Second)
		if err := r.Resume(t.Context(), "slow"); err != nil {
			t.Fatal(err)
		}
		runUntilIdle(t, r)

		// Runs 2s and fails, is retried 10s later without waiting, runs 2s and fails
		// for good: two runs, two waits of 0.
		enqueue(t, r, work{Seconds: 2, Fail: true}, jobrun.MaxAttempts(2), jobrun.Backoff(10*time.Second, 10*time.Second))
		runUntilIdle(t, r)
		time.Sleep(10 * time.Second)
		runUntilIdle(t, r)

		// Canceled before it runs: counted, not timed.
		id := enqueue(t, r, report{}, jobrun.Delay(time.Hour))
		if err := r.Cancel(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		enqueue(t, r, report{})
		runUntilIdle(t, r)

		synctest.Wait() // the collector has taken every event
		const want = `
# HELP jobrun_jobs_done_total Jobs that succeeded.
# TYPE jobrun_jobs_done_total counter
jobrun_jobs_done_total{kind="report",queue="default"} 1
jobrun_jobs_done_total{kind="work",queue="slow"} 1
# HELP jobrun_jobs_failed_total Jobs that failed for good: attempts exhausted or Permanent.
# TYPE jobrun_jobs_failed_total counter
jobrun_jobs_failed_total{kind="work",queue="default"} 1
# HELP jobrun_jobs_retried_total Failed attempts followed by another attempt.
# TYPE jobrun_jobs_retried_total counter
jobrun_jobs_retried_total{kind="work",queue="default"} 1
# HELP jobrun_jobs_canceled_total Jobs canceled, waiting or running.
# TYPE jobrun_jobs_canceled_total counter
jobrun_jobs_canceled_total{kind="report",queue="default"} 1
# HELP jobrun_job_run_seconds Run time of attempts that ended done, failed, retrying or snoozed, from their start.
# TYPE jobrun_job_run_seconds histogram
jobrun_job_run_seconds_bucket{kind="report",queue="default",le="1"} 1
jobrun_job_run_seconds_bucket{kind="report",queue="default",le="5"} 1
jobrun_job_run_seconds_bucket{kind="report",queue="default",le="+Inf"} 1
jobrun_job_run_seconds_sum{kind="report",queue="default"} 0
jobrun_job_run_seconds_count{kind="report",queue="default"} 1
jobrun_job_run_seconds_bucket{kind="work",queue="default",le="1"} 0
jobrun_job_run_seconds_bucket{kind="work",queue="default",le="5"} 2
jobrun_job_run_seconds_bucket{kind="work",queue="default",le="+Inf"} 2
jobrun_job_run_seconds_sum{kind="work",queue="default"} 4
jobrun_job_run_seconds_count{kind="work",queue="default"} 2
jobrun_job_run_seconds_bucket{kind="work",queue="slow",le="1"} 0
jobrun_job_run_seconds_bucket{kind="work",queue="slow",le="5"} 1
jobrun_job_run_seconds_bucket{kind="work",queue="slow",le="+Inf"} 1
jobrun_job_run_seconds_sum{kind="work",queue="slow"} 3
jobrun_job_run_seconds_count{kind="work",queue="slow"} 1
# HELP jobrun_job_wait_seconds Queue latency: time from ready to started.
# TYPE jobrun_job_wait_seconds histogram
jobrun_job_wait_seconds_bucket{kind="report",queue="default",le="1"} 1
jobrun_job_wait_seconds_bucket{kind="report",queue="default",le="10"} 1
jobrun_job_wait_seconds_bucket{kind="report",queue="default",le="+Inf"} 1
jobrun_job_wait_seconds_sum{kind="report",queue="default"} 0
jobrun_job_wait_seconds_count{kind="report",queue="default"} 1
jobrun_job_wait_seconds_bucket{kind="work",queue="default",le="1"} 2
jobrun_job_wait_seconds_bucket{kind="work",queue="default",le="10"} 2
jobrun_job_wait_seconds_bucket{kind="work",queue="default",le="+Inf"} 2
jobrun_job_wait_seconds_sum{kind="work",queue="default"} 0
jobrun_job_wait_seconds_count{kind="work",queue="default"} 2
jobrun_job_wait_seconds_bucket{kind="work",queue="slow",le="1"} 0
jobrun_job_wait_seconds_bucket{kind="work",queue="slow",le="10"} 1
jobrun_job_wait_seconds_bucket{kind="work",queue="slow",le="+Inf"} 1
jobrun_job_wait_seconds_sum{kind="work",queue="slow"} 4
jobrun_job_wait_seconds_count{kind="work",queue="slow"} 1
# HELP jobrun_events_missed_total Job events the metrics collector dropped because it fell behind.
# TYPE jobrun_events_missed_total counter
jobrun_events_missed_total 0
`
		if err := testutil.CollectAndCompare(c, strings.NewReader(want),
			"jobrun_jobs_done_total", "jobrun_jobs_failed_total", "jobrun_jobs_retried_total",
			"jobrun_jobs_canceled_total", "jobrun_job_run_seconds", "jobrun_job_wait_seconds",
			"jobrun_events_missed_total"); err != nil {
			t.Error(err)
		}
	})
}

// TestGauges reads the queues' counts at each scrape, whether or not events flow.
func TestGauges(t *testing.T) {
	r := openRunner(t, jobrun.WithQueue("mail", 3, nil))
	ctx, cancel := context.WithCancel(t.Context())
	c, err := metrics.New(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	cancel() // the gauges do not depend on the events
	enqueue(t, r, report{}, jobrun.Queue("mail"))
	enqueue(t, r, report{}, jobrun.Queue("mail"))
	enqueue(t, r, report{}, jobrun.Queue("mail"), jobrun.Delay(time.Hour))
	enqueue(t, r, report{}, jobrun.Queue("other"))
	// No worker runs "other": its job stays ready, and RunUntilIdle says so.
	if err := r.RunUntilIdle(t.Context()); !errors.Is(err, jobrun.ErrNoWorkers) {
		t.Fatalf("run until idle: got %v, want ErrNoWorkers for queue other", err)
	}
	if err := r.Pause(t.Context(), "other"); err != nil {
		t.Fatal(err)
	}

	const want = `
# HELP jobrun_jobs Jobs in each state, per queue.
# TYPE jobrun_jobs gauge
jobrun_jobs{queue="default",state="scheduled"} 0
jobrun_jobs{queue="default",state="ready"} 0
jobrun_jobs{queue="default",state="running"} 0
jobrun_jobs{queue="default",state="retrying"} 0
jobrun_jobs{queue="default",state="done"} 0
jobrun_jobs{queue="default",state="failed"} 0
jobrun_jobs{queue="default",state="canceled"} 0
jobrun_jobs{queue="mail",state="scheduled"} 1
jobrun_jobs{queue="mail",state="ready"} 0
jobrun_jobs{queue="mail",state="running"} 0
jobrun_jobs{queue="mail",state="retrying"} 0
jobrun_jobs{queue="mail",state="done"} 2
jobrun_jobs{queue="mail",state="failed"} 0
jobrun_jobs{queue="mail",state="canceled"} 0
jobrun_jobs{queue="other",state="scheduled"} 0
jobrun_jobs{queue="other",state="ready"} 1
jobrun_jobs{queue="other",state="running"} 0
jobrun_jobs{queue="other",state="retrying"} 0
jobrun_jobs{queue="other",state="done"} 0
jobrun_jobs{queue="other",state="failed"} 0
jobrun_jobs{queue="other",state="canceled"} 0
# HELP jobrun_queue_paused 1 if the queue is paused, else 0.
# TYPE jobrun_queue_paused gauge
jobrun_queue_paused{queue="default"} 0
jobrun_queue_paused{queue="mail"} 0
jobrun_queue_paused{queue="other"} 1
# HELP jobrun_queue_workers Workers of the queue in this runner, 0 if it does not run the queue.
# TYPE jobrun_queue_workers gauge
jobrun_queue_workers{queue="default"} 10
jobrun_queue_workers{queue="mail"} 3
jobrun_queue_workers{queue="other"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"jobrun_jobs", "jobrun_queue_paused", "jobrun_queue_workers"); err != nil {
		t.Error(err)
	}

	// A registry's consistency checks and the naming lint accept the collector.
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Errorf("gather: %v", err)
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}

	// A closed runner's gauges are left out of the scrape, which still succeeds.
	r.Close()
	if n := testutil.CollectAndCount(c, "jobrun_jobs", "jobrun_queue_paused", "jobrun_queue_workers"); n != 0 {
		t.Errorf("a closed runner gave %d gauge samples, want 0", n)
	}
	if _, err := reg.Gather(); err != nil {
		t.Errorf("gather after close: %v", err)
	}
}

// TestStopsWhenContextEnds: the goroutine ends with ctx, and the counters stop.
func TestStopsWhenContextEnds(t *testing.T) {
	r := openRunner(t)
	runnerGoroutines := goleak.IgnoreCurrent()
	ctx, cancel := context.WithCancel(t.Context())
	c, err := metrics.New(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	// goleak retries until the collector's goroutine is gone, or fails.
	if err := goleak.Find(runnerGoroutines); err != nil {
		t.Fatal(err)
	}
	enqueue(t, r, report{})
	runUntilIdle(t, r)
	if n := testutil.CollectAndCount(c, "jobrun_jobs_done_total"); n != 0 {
		t.Errorf("%d done samples after ctx ended, want 0", n)
	}
	// The gauges are still read from the runner.
	out, err := testutil.CollectAndFormat(c, expfmt.TypeTextPlain, "jobrun_jobs")
	if err != nil {
		t.Fatal(err)
	}
	if line := `jobrun_jobs{queue="default",state="done"} 1`; !strings.Contains(string(out), line+"\n") {
		t.Errorf("the scrape lacks %s:\n%s", line, out)
	}
}

// TestStopsWhenRunnerCloses: the goroutine ends with the runner (synctest.Test fails
// on a goroutine left blocked), and New refuses a closed runner.
func TestStopsWhenRunnerCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := openRunner(t)
		if _, err := metrics.New(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := metrics.New(context.Background(), r); !errors.Is(err, jobrun.ErrClosed) {
			t.Errorf("New on a closed runner: got %v, want ErrClosed", err)
		}
	})
}

// TestForgetsOldest: with room for one start time, a job whose start was pushed out
// by a later one is counted but not timed.
func TestForgetsOldest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := openRunner(t, jobrun.WithQueue("q", 2, nil))
		c, err := metrics.New(t.Context(), r, metrics.WithMaxTracked(1), metrics.WithRunBuckets(5))
		if err != nil {
			t.Fatal(err)
		}
		// Both run at once; whichever start came first is forgotten when the other's
		// arrives (the two starts may be recorded in either order).
		enqueue(t, r, work{Seconds: 1}, jobrun.Queue("q"))
		enqueue(t, r, work{Seconds: 2}, jobrun.Queue("q"))
		runUntilIdle(t, r)
		synctest.Wait()
		want := func(timed int) string {
			return fmt.Sprintf(`
# HELP jobrun_jobs_done_total Jobs that succeeded.
# TYPE jobrun_jobs_done_total counter
jobrun_jobs_done_total{kind="work",queue="q"} 2
# HELP jobrun_job_run_seconds Run time of attempts that ended done, failed, retrying or snoozed, from their start.
# TYPE jobrun_job_run_seconds histogram
jobrun_job_run_seconds_bucket{kind="work",queue="q",le="5"} 1
jobrun_job_run_seconds_bucket{kind="work",queue="q",le="+Inf"} 1
jobrun_job_run_seconds_sum{kind="work",queue="q"} %d
jobrun_job_run_seconds_count{kind="work",queue="q"} 1
`, timed)
		}
		err1 := testutil.CollectAndCompare(c, strings.NewReader(want(1)), "jobrun_jobs_done_total", "jobrun_job_run_seconds")
		err2 := testutil.CollectAndCompare(c, strings.NewReader(want(2)), "jobrun_jobs_done_total", "jobrun_job_run_seconds")
		if err1 != nil && err2 != nil {
			t.Errorf("want two done and one of the two runs timed:\n%v", err2)
		}
	})
}

func TestOptionErrors(t *testing.T) {
	r := openRunner(t)
	for name, opt := range map[string]metrics.Option{
		"max tracked 0":        metrics.WithMaxTracked(0),
		"buffer 0":             metrics.WithBuffer(0),
		"no run buckets":       metrics.WithRunBuckets(),
		"decreasing buckets":   metrics.WithWaitBuckets(2, 1),
		"repeated run buckets": metrics.WithRunBuckets(1, 1),
	} {
		if _, err := metrics.New(t.Context(), r, opt); err == nil {
			t.Errorf("%s: New succeeded, want an error", name)
		}
	}
	if _, err := metrics.New(t.Context(), nil); err == nil {
		t.Error("New with a nil runner succeeded, want an error")
	}
}

type nap struct{ Long bool }

func (nap) Kind() string { return "nap" }

// TestFunctionMetrics: the runs suspended in steps, by suspension, and the steps
// stored.
func TestFunctionMetrics(t *testing.T) {
	synctest.Test(t, testFunctionMetrics)
}

func testFunctionMetrics(t *testing.T) {
	r := openRunner(t)
	c, err := metrics.New(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	tries := 0
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[nap]) error {
		if _, err := jobrun.Step(ctx, "flaky", func(ctx context.Context) (int, error) {
			if job.Args.Long {
				return 1, nil // tries is the short job's alone
			}
			if tries++; tries == 1 {
				return 0, errors.New("once")
			}
			return 1, nil
		}); err != nil {
			return err
		}
		if job.Args.Long {
			if _, _, err := jobrun.WaitFor[int](ctx, "wait", "never", jobrun.EventMatch{}, time.Hour); err != nil {
				return err
			}
		}
		return jobrun.Sleep(ctx, "nap", time.Hour)
	})
	enqueue(t, r, nap{}, jobrun.Backoff(time.Second, time.Second))
	enqueue(t, r, nap{Long: true})
	for range 2 { // the failed step's retry is due a second later
		if err := r.RunUntilIdle(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
	}
	const want = `
# HELP jobrun_runs_suspended Runs of durable functions suspended in a step: sleeping (Sleep), waiting (WaitFor) or invoking (waiting for child runs).
# TYPE jobrun_runs_suspended gauge
jobrun_runs_suspended{suspension="invoking"} 0
jobrun_runs_suspended{suspension="sleeping"} 1
jobrun_runs_suspended{suspension="waiting"} 1
# HELP jobrun_steps_total Steps this runner stored (Step, SendEvent), by outcome: done (every stored step) or retried (stored after more than one attempt).
# TYPE jobrun_steps_total counter
jobrun_steps_total{outcome="done"} 2
jobrun_steps_total{outcome="retried"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "jobrun_runs_suspended", "jobrun_steps_total"); err != nil {
		t.Error(err)
	}
}
