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

// orderArgs is the data of an "order/placed" event: the args of the runs of its
// functions, fulfilArgs' and auditArgs'.
type orderArgs struct {
	OrderID int    `json:"order_id"`
	Email   string `json:"email"`
	Card    string `json:"card,omitempty"`
}

// fulfilArgs goes through every kind of step: two steps, the second failing for a
// declined card, a SendEvent, a WaitFor of the order's shipment and a Sleep.
type fulfilArgs orderArgs

func (fulfilArgs) Kind() string { return "order.fulfil" }

// auditArgs is the second function of "order/placed", which succeeds.
type auditArgs orderArgs

func (auditArgs) Kind() string { return "order.audit" }

// shipmentArgs is the function of "order/shipped".
type shipmentArgs struct {
	OrderID int `json:"order_id"`
}

func (shipmentArgs) Kind() string { return "shipment.notify" }

// fixture is a runner holding jobs in every state but running, which only a
// runner running in the background can hold (see startRunning).
type fixture struct {
	path string // the runner's file
	r    *jobrun.Runner
	ids  map[string]jobrun.ID // by the state the fixture put them in: "done", "failed", ...
	seqs map[string]uint64    // the events of populateEvents, by what they are

	mu      sync.Mutex
	runs    map[jobrun.ID]int // flakyArgs' runs by job
	started chan jobrun.ID    // blockArgs' jobs, as they start
	release chan struct{}     // closed to let blockArgs' jobs return
}

// openFixture opens a runner with the fixture's queues and handlers and no job; the
// test creates its dashboard, then calls populate.
func openFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{path: filepath.Join(t.TempDir(), "jobs.db"), ids: map[string]jobrun.ID{}, seqs: map[string]uint64{},
		runs: map[jobrun.ID]int{}, started: make(chan jobrun.ID, 8), release: make(chan struct{})}
	f.open(t)
	t.Cleanup(func() {
		f.unblock()
		if err := f.r.Close(); err != nil && !errors.Is(err, jobrun.ErrClosed) {
			t.Error(err)
		}
	})
	return f
}

// reopen closes the fixture's runner and opens its file again, as an application
// restarts; Close stores the minute of history it cuts. No job may be running.
func (f *fixture) reopen(t *testing.T) {
	t.Helper()
	if err := f.r.Close(); err != nil {
		t.Fatal(err)
	}
	f.open(t)
}

// open opens the fixture's runner on its file, with its queues and handlers.
func (f *fixture) open(t *testing.T) {
	t.Helper()
	r, err := jobrun.Open(f.path,
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
	f.r = r

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

	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[fulfilArgs]) error {
		if _, err := jobrun.Step(ctx, "reserve", func(ctx context.Context) (map[string]bool, error) {
			return map[string]bool{"reserved": true}, nil
		}); err != nil {
			return err
		}
		if _, err := jobrun.Step(ctx, "charge", func(ctx context.Context) (string, error) {
			if job.Args.Card == "declined" {
				return "", jobrun.Permanent(errors.New("card declined\nby the bank"))
			}
			return "ch_1", nil
		}); err != nil {
			return err
		}
		if _, err := jobrun.SendEvent(ctx, "notify", jobrun.Event{Name: "order/charged",
			Data: map[string]int{"order_id": job.Args.OrderID}}); err != nil {
			return err
		}
		_, shipped, err := jobrun.WaitFor[shipmentArgs](ctx, "wait-shipment", "order/shipped",
			jobrun.Match("order_id", job.Args.OrderID), 7*24*time.Hour)
		if err != nil || !shipped {
			return err
		}
		return jobrun.Sleep(ctx, "cool-off", 24*time.Hour)
	}, jobrun.On("order/placed"))
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[auditArgs]) error {
		return job.SetResult("logged")
	}, jobrun.On("order/placed"))
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[shipmentArgs]) error {
		return nil
	}, jobrun.On("order/shipped"))
}

// populateEvents sends the fixture's events and runs their runs, which leaves the
// jobs (in f.ids) and events (in f.seqs):
//
//	placed1   order 1, ID "order-1": runs shipped1 (order.fulfil, sleeping after its
//	          wait received event shipped) and audit1 (order.audit, deleted)
//	charged1  sent by shipped1's step notify, no runs
//	placed2   order 2, a declined card: runs declined (failed at its step charge)
//	          and audit2
//	placed3   order 3: runs waiting (waiting for order/shipped)
//	placed4   order 4: runs timedout (promoted while waiting: its wait timed out, done)
//	shipped   order/shipped for order 1, ID "ship-1": runs notified (shipment.notify)
//	duplicate order/placed with ID "order-1" again
func (f *fixture) populateEvents(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	runIdle := func() {
		t.Helper()
		if err := f.r.RunUntilIdle(ctx); err != nil && !errors.Is(err, jobrun.ErrNoWorkers) {
			t.Fatal(err)
		}
	}
	send := func(name string, ev jobrun.Event, runs ...string) {
		t.Helper()
		info, err := f.r.Send(ctx, ev)
		if err != nil {
			t.Fatalf("send %s: %v", name, err)
		}
		f.seqs[name] = info.Seq
		if len(info.Runs) != len(runs) && info.DuplicateOf == 0 {
			t.Fatalf("event %s started %v, want %d runs", name, info.Runs, len(runs))
		}
		for i, run := range runs {
			f.ids[run] = info.Runs[i]
		}
		runIdle()
	}
	placed := func(id int, card string) jobrun.Event {
		return jobrun.Event{Name: "order/placed", Data: orderArgs{OrderID: id, Email: fmt.Sprintf("buyer%d@example.com", id), Card: card}}
	}
	first := placed(1, "")
	first.ID = "order-1"
	send("placed1", first, "shipped1", "audit1")
	f.seqs["charged1"] = f.seqs["placed1"] + 1
	send("placed2", placed(2, "declined"), "declined", "audit2")
	send("placed3", placed(3, ""), "waiting", "audit3")
	send("placed4", placed(4, ""), "timedout", "audit4")
	if err := f.r.Promote(ctx, f.ids["timedout"]); err != nil {
		t.Fatal(err)
	}
	runIdle()
	send("shipped", jobrun.Event{Name: "order/shipped", ID: "ship-1", Data: shipmentArgs{OrderID: 1}}, "notified")
	send("duplicate", first)
	if err := f.r.Delete(ctx, f.ids["audit1"]); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]jobrun.State{
		"shipped1": jobrun.StateScheduled, "declined": jobrun.StateFailed, "waiting": jobrun.StateScheduled,
		"timedout": jobrun.StateDone, "audit2": jobrun.StateDone, "notified": jobrun.StateDone,
	} {
		f.mustState(t, f.ids[name], want)
	}
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

// waitJob waits until job id satisfies cond, checking after each change the runner
// commits (Runner.Watch), and returns it; it never sleeps.
func (f *fixture) waitJob(t *testing.T, id jobrun.ID, cond func(*jobrun.Info) bool) *jobrun.Info {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	changes, err := f.r.Watch(ctx, 64)
	if err != nil {
		t.Fatal(err)
	}
	for {
		in, err := f.r.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(in) {
			return in
		}
		select {
		case <-changes:
		case <-ctx.Done():
			t.Fatalf("job %d: the awaited change never came (it is %s)", id, in.State)
		}
	}
}

// retryFlaky retries the fixture's flaky job, which failed its first run, and runs
// it: it succeeds, done with its first attempt's error. The runner must not be
// running (RunUntilIdle).
func (f *fixture) retryFlaky(t *testing.T) *jobrun.Info {
	t.Helper()
	if err := f.r.Retry(t.Context(), f.ids["flaky"]); err != nil {
		t.Fatal(err)
	}
	if err := f.r.RunUntilIdle(t.Context()); err != nil && !errors.Is(err, jobrun.ErrNoWorkers) {
		t.Fatal(err)
	}
	in := f.mustState(t, f.ids["flaky"], jobrun.StateDone)
	if len(in.Errors) != 1 || in.LastError == "" {
		t.Fatalf("the retried flaky job's errors: %+v", in.Errors)
	}
	return in
}
