package dashboard

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "time/tzdata" // the fixture's schedule is in Europe/Paris, whatever the machine has

	"golang.org/x/time/rate"

	"github.com/jobrun/jobrun"
)

// The fixture's job kinds.

// okArgs succeeds, reporting progress, logging and storing a result.
type okArgs struct {
	To   string `json:"to"`
	Note string `json:"note,omitempty"`
}

func (okArgs) Kind() string { return "email.send" }

// boomArgs panics, so that its error carries a stack.
type boomArgs struct {
	Image string `json:"image"`
}

func (boomArgs) Kind() string { return "image.resize" }

// flakyArgs fails its first run and succeeds afterwards: the job to retry.
type flakyArgs struct {
	URL string `json:"url"`
}

func (flakyArgs) Kind() string { return "webhook.deliver" }

// retryArgs always fails, and waits an hour between attempts.
type retryArgs struct {
	Account int `json:"account"`
}

func (retryArgs) Kind() string { return "crm.sync" }

// blockArgs runs until the fixture releases it: a job that stays running.
type blockArgs struct{}

func (blockArgs) Kind() string { return "report.build" }

// fixture is a runner holding jobs in every state but running, which only a
// runner running in the background can hold (see startRunning).
type fixture struct {
	r   *jobrun.Runner
	ids map[string]jobrun.ID // by the state the fixture put them in: "done", "failed", ...

	mu      sync.Mutex
	runs    map[jobrun.ID]int // flakyArgs' runs by job
	started chan jobrun.ID    // blockArgs' jobs, as they start
	release chan struct{}     // closed to let blockArgs' jobs return
}

// openFixture opens a runner with the fixture's queues and handlers and no job; the
// test creates its dashboard, then calls populate.
func openFixture(t *testing.T) *fixture {
	t.Helper()
	r, err := jobrun.Open(filepath.Join(t.TempDir(), "jobs.db"),
		jobrun.WithQueue(jobrun.DefaultQueue, 4, nil),
		jobrun.WithQueue("mail", 2, rate.NewLimiter(50, 10)),
		jobrun.WithQueue("webhooks", 2, rate.NewLimiter(20, 5)),
		jobrun.WithQueue("reports", 1, rate.NewLimiter(0.5, 1)),
		jobrun.WithQueue("paused", 1, nil),
		// "idle" is left out: this runner does not run it, so its jobs stay ready.
	)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{r: r, ids: map[string]jobrun.ID{}, runs: map[jobrun.ID]int{},
		started: make(chan jobrun.ID, 8), release: make(chan struct{})}
	t.Cleanup(func() {
		f.unblock()
		if err := r.Close(); err != nil && !errors.Is(err, jobrun.ErrClosed) {
			t.Error(err)
		}
	})

	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[okArgs]) error {
		for i := 1; i <= 4; i++ {
			if err := job.SetProgress(map[string]int{"step": i, "of": 4}); err != nil {
				return err
			}
		}
		job.Log(fmt.Sprintf("connecting to smtp.example.com for %s", job.Args.To))
		job.Log("250 OK: queued as 7F3A2")
		return job.SetResult(map[string]any{"message_id": "7F3A2", "accepted": true})
	}, jobrun.Queue("mail"))
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[boomArgs]) error {
		job.Log(fmt.Sprintf("decoding %s", job.Args.Image))
		var sizes map[string]int
		sizes["thumbnail"] = 160 // a nil map: panics
		return nil
	}, jobrun.MaxAttempts(1))
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[flakyArgs]) error {
		f.mu.Lock()
		f.runs[job.ID]++
		n := f.runs[job.ID]
		f.mu.Unlock()
		if n == 1 {
			return jobrun.Permanent(errors.New("remote answered 410 Gone"))
		}
		job.Log(fmt.Sprintf("delivered to %s", job.Args.URL))
		return job.SetResult(map[string]int{"status": 200})
	}, jobrun.Queue("webhooks"))
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[retryArgs]) error {
		return fmt.Errorf("crm answered 503 Service Unavailable for account %d", job.Args.Account)
	}, jobrun.MaxAttempts(5), jobrun.Backoff(time.Hour, 2*time.Hour))
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[blockArgs]) error {
		job.Log("collecting last month's orders")
		if err := job.SetProgress(40); err != nil {
			return err
		}
		f.started <- job.ID
		select {
		case <-f.release:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}, jobrun.Queue("reports"))
	return f
}

// unblock lets the running jobs return; it may be called more than once.
func (f *fixture) unblock() {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.release:
	default:
		close(f.release)
	}
}

// populate enqueues the fixture's jobs and schedule and runs what is due, leaving a
// job in every state but running.
func (f *fixture) populate(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	r := f.r
	enqueue := func(name string, args jobrun.Args, opts ...jobrun.EnqueueOption) jobrun.ID {
		t.Helper()
		id, err := r.Enqueue(ctx, args, opts...)
		if err != nil {
			t.Fatalf("enqueue %s: %v", name, err)
		}
		if name != "" {
			f.ids[name] = id
		}
		return id
	}
	for i := range 6 {
		enqueue("", okArgs{To: fmt.Sprintf("user%d@example.com", i)})
	}
	enqueue("done", okArgs{To: "ada@example.com"}, jobrun.Tags("customer-42"), jobrun.Priority(5))
	enqueue("failed", boomArgs{Image: "uploads/IMG_0042.jpg"})
	enqueue("flaky", flakyArgs{URL: "https://hooks.example.com/orders"})
	enqueue("retrying", retryArgs{Account: 7})
	enqueue("scheduled", okArgs{To: "later@example.com"}, jobrun.Delay(time.Hour))
	canceled := enqueue("canceled", okArgs{To: "nobody@example.com"}, jobrun.Delay(time.Hour))
	enqueue("ready", okArgs{To: "idle@example.com"}, jobrun.Queue("idle"))
	if err := r.Pause(ctx, "paused"); err != nil {
		t.Fatal(err)
	}
	enqueue("paused", okArgs{To: "paused@example.com"}, jobrun.Queue("paused"))
	if err := r.Schedule(ctx, "monthly-report", "0 6 1 * *", okArgs{To: "board@example.com"},
		jobrun.TimeZone("Europe/Paris"), jobrun.SkipOverlap()); err != nil {
		t.Fatal(err)
	}
	if err := r.Schedule(ctx, "digest", "@every 1h", okArgs{To: "digest@example.com"}, jobrun.SkipMissed()); err != nil {
		t.Fatal(err)
	}
	if err := r.Cancel(ctx, canceled); err != nil {
		t.Fatal(err)
	}
	// The "idle" queue has no workers here: its ready job waits, as the fixture means.
	if err := r.RunUntilIdle(ctx); err != nil && !errors.Is(err, jobrun.ErrNoWorkers) {
		t.Fatal(err)
	}
	for name, want := range map[string]jobrun.State{
		"done": jobrun.StateDone, "failed": jobrun.StateFailed, "flaky": jobrun.StateFailed,
		"retrying": jobrun.StateRetrying, "scheduled": jobrun.StateScheduled, "canceled": jobrun.StateCanceled,
		"ready": jobrun.StateReady, "paused": jobrun.StateReady,
	} {
		f.mustState(t, f.ids[name], want)
	}
}

// startRunning runs the runner in the background with a job that stays running
// until the test ends, and returns that job's ID. The runner keeps running: jobs
// that become due (a retried one) run at once.
func (f *fixture) startRunning(t *testing.T) jobrun.ID {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.r.Run(ctx) }()
	t.Cleanup(func() {
		f.unblock()
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, jobrun.ErrClosed) {
			t.Errorf("run: %v", err)
		}
	})
	id, err := f.r.Enqueue(t.Context(), blockArgs{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-f.started:
		if got != id {
			t.Fatalf("job %d started, want %d", got, id)
		}
	case <-t.Context().Done():
		t.Fatal("the blocking job never started")
	}
	f.ids["running"] = id
	return id
}

func (f *fixture) mustState(t *testing.T, id jobrun.ID, want jobrun.State) *jobrun.Info {
	t.Helper()
	in, err := f.r.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if in.State != want {
		t.Fatalf("job %d (%s) is %s, want %s", id, in.Kind, in.State, want)
	}
	return in
}
