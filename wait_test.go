package jobrun_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobrun/jobrun"
)

type order struct {
	ID int `json:"id"`
}

func (order) Kind() string { return "order" }

type payment struct {
	Order struct {
		ID float64 `json:"id"`
	} `json:"order"`
	Amount int `json:"amount"`
}

// waitResult is what a waiting handler's WaitFor returned on its last run.
type waitResult struct {
	mu       sync.Mutex
	pay      payment
	ok       bool
	runs     int
	reached  chan struct{} // a run reached the wait
	beforeIt func()        // called between WaitFor and the handler's return
}

func handleOrder(r *jobrun.Runner, w *waitResult, timeout time.Duration) {
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[order]) error {
		w.mu.Lock()
		w.runs++
		w.mu.Unlock()
		pay, ok, err := jobrun.WaitFor[payment](ctx, "wait-payment", "payment/received", jobrun.Match("order.id", j.Args.ID), timeout)
		if err != nil {
			if w.beforeIt != nil {
				w.beforeIt()
			}
			if w.reached != nil {
				w.reached <- struct{}{}
			}
			return err
		}
		w.mu.Lock()
		w.pay, w.ok = pay, ok
		w.mu.Unlock()
		return nil
	})
}

func paid(id any, amount int) jobrun.Event {
	return jobrun.Event{Name: "payment/received", Data: map[string]any{"order": map[string]any{"id": id}, "amount": amount}}
}

func TestWaitForReceivesTheMatchingEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		w := &waitResult{}
		handleOrder(r, w, 7*24*time.Hour)
		id := enqueue(t, r, order{ID: 42})
		runUntilIdle(t, r)
		in := get(t, r, id)
		if in.State != jobrun.StateScheduled || len(in.Steps) != 1 || in.Steps[0].State != "waiting" ||
			in.Steps[0].WaitEvent != "payment/received" || in.Steps[0].WaitMatch != "order.id=42" {
			t.Fatalf("the waiting job: %s, steps %+v", in.State, in.Steps)
		}
		if want := in.Steps[0].StartedAt.Add(7 * 24 * time.Hour); !in.RunAt.Equal(want) || !in.Steps[0].FinishedAt.Equal(want) {
			t.Errorf("runs at %v, step until %v; want the timeout, %v", in.RunAt, in.Steps[0].FinishedAt, want)
		}
		send(t, r, paid(41, 1))                                                    // another order
		send(t, r, jobrun.Event{Name: "payment/refunded", Data: paid(42, 1).Data}) // another name
		runUntilIdle(t, r)
		if in := get(t, r, id); in.State != jobrun.StateScheduled {
			t.Fatalf("woken by an event it does not wait for: %s", in.State)
		}
		sent := send(t, r, paid(42.0, 30)) // 42.0 is 42
		if in := get(t, r, id); in.State != jobrun.StateReady {
			t.Fatalf("after the matching event: %s, want ready in the same commit", in.State)
		}
		runUntilIdle(t, r)
		in = get(t, r, id)
		if in.State != jobrun.StateDone || !w.ok || w.pay.Amount != 30 || w.runs != 2 {
			t.Fatalf("job %s, WaitFor %v %+v after %d runs", in.State, w.ok, w.pay, w.runs)
		}
		if s := in.Steps[0]; s.State != "done" || s.Event != sent.Seq || string(s.Result) != string(sent.Data) {
			t.Errorf("the received wait: %+v", s)
		}
		if in.Attempt != 1 {
			t.Errorf("%d attempts spent, want 1: a wait spends none", in.Attempt)
		}
		// A second event finds nothing waiting.
		send(t, r, paid(42, 31))
		if w.runs != 2 || get(t, r, id).State != jobrun.StateDone {
			t.Error("a second event woke a finished wait")
		}
	})
}

func TestWaitForTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		w := &waitResult{}
		handleOrder(r, w, time.Hour)
		id := enqueue(t, r, order{ID: 7})
		runUntilIdle(t, r)
		time.Sleep(time.Hour)
		runUntilIdle(t, r)
		in := get(t, r, id)
		if in.State != jobrun.StateDone || w.ok || w.runs != 2 {
			t.Fatalf("after the timeout: job %s, WaitFor ok %v after %d runs", in.State, w.ok, w.runs)
		}
		if s := in.Steps[0]; s.State != "timed_out" {
			t.Errorf("the step: %+v", s)
		}
		send(t, r, paid(7, 1))
		if get(t, r, id).State != jobrun.StateDone || w.runs != 2 {
			t.Error("an event after the timeout reached the job")
		}
	})
}

func TestWaitForPromoteEndsTheWait(t *testing.T) {
	r, _ := openRunner(t)
	w := &waitResult{}
	handleOrder(r, w, 24*time.Hour)
	id := enqueue(t, r, order{ID: 7})
	runUntilIdle(t, r)
	if err := r.Promote(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	runUntilIdle(t, r)
	if in := get(t, r, id); in.State != jobrun.StateDone || w.ok || in.Steps[0].State != "timed_out" {
		t.Fatalf("after Promote: %s, ok %v, steps %+v", in.State, w.ok, in.Steps)
	}
}

// TestWaitForLookback sends the event after WaitFor is reached and before the job's
// suspension commits: the suspension finds it, and the job runs again at once.
func TestWaitForLookback(t *testing.T) {
	r, _ := openRunner(t)
	w := &waitResult{}
	w.beforeIt = func() {
		if _, err := r.Send(context.Background(), paid(9, 5)); err != nil {
			t.Error(err)
		}
	}
	handleOrder(r, w, 24*time.Hour)
	id := enqueue(t, r, order{ID: 9})
	runUntilIdle(t, r)
	if in := get(t, r, id); in.State != jobrun.StateDone || !w.ok || w.pay.Amount != 5 || w.runs != 2 {
		t.Fatalf("job %s, WaitFor %v %+v after %d runs; want the event sent before the suspension received",
			in.State, w.ok, w.pay, w.runs)
	}
}

// TestWaitForCountsAnEventSentAfterAnInterruptedCall holds WaitFor's doc to "an event
// counts if it is sent after WaitFor is first called": the event is sent after the
// first call, and the attempt that made it is cut off (a hard stop here; a SIGKILL
// in TestCrashFlows) before its suspension commits. The run calls WaitFor again after
// the restart, and the wait must take the event. It fails today: the second call
// looks back only to its own time, and the wait runs to its timeout.
func TestWaitForCountsAnEventSentAfterAnInterruptedCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		reached, release := make(chan struct{}), make(chan struct{})
		first := true
		w := &waitResult{beforeIt: func() {
			if first {
				first = false
				close(reached)
				<-release // the attempt stops here, its suspension not yet committed
			}
		}}
		handleOrder(r, w, time.Hour)
		id := enqueue(t, r, order{ID: 42})
		ctx, cancel := context.WithCancel(t.Context())
		ran := make(chan error)
		go func() { ran <- r.Run(ctx) }()
		<-reached
		send(t, r, paid(42, 7)) // after WaitFor was first called
		cancel()                // a hard stop: the attempt is interrupted, its job ready again
		close(release)
		<-ran
		time.Sleep(time.Second) // the restart comes later
		runUntilIdle(t, r)
		if in := get(t, r, id); in.State != jobrun.StateDone || !w.ok || w.pay.Amount != 7 {
			t.Fatalf("after the restart: job %s, WaitFor %v %+v, its wait %+v; want the event sent after the first "+
				"call received", in.State, w.ok, w.pay, in.Steps)
		}
	})
}

func TestWaitForAnyEventOfTheName(t *testing.T) {
	r, _ := openRunner(t)
	var got bool
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[signup]) error {
		_, ok, err := jobrun.WaitFor[map[string]any](ctx, "any", "ping", jobrun.EventMatch{}, time.Hour)
		got = ok
		return err
	})
	id := enqueue(t, r, signup{User: "ada"})
	runUntilIdle(t, r)
	first := send(t, r, jobrun.Event{Name: "ping", ID: "p"})
	send(t, r, jobrun.Event{Name: "ping", ID: "p"}) // a duplicate: no second wake
	runUntilIdle(t, r)
	if in := get(t, r, id); in.State != jobrun.StateDone || !got || in.Steps[0].Event != first.Seq {
		t.Fatalf("job %s, ok %v, steps %+v", in.State, got, in.Steps)
	}
}

func TestWaitForRefusals(t *testing.T) {
	r, _ := openRunner(t)
	if _, _, err := jobrun.WaitFor[int](t.Context(), "w", "e", jobrun.EventMatch{}, time.Hour); !errors.Is(err, jobrun.ErrInvalid) {
		t.Errorf("outside a handler: %v", err)
	}
	errs := make(chan error, 4)
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[signup]) error {
		for _, call := range []func() error{
			func() error {
				_, _, err := jobrun.WaitFor[int](ctx, "w", "", jobrun.EventMatch{}, time.Hour)
				return err
			},
			func() error {
				_, _, err := jobrun.WaitFor[int](ctx, "w", "e", jobrun.Match("", 1), time.Hour)
				return err
			},
			func() error {
				_, _, err := jobrun.WaitFor[int](ctx, "w", "e", jobrun.Match("f", make([]byte, 600)), time.Hour)
				return err
			},
			func() error {
				_, _, err := jobrun.WaitFor[int](ctx, "w", "e", jobrun.Match("f", func() {}), time.Hour)
				return err
			},
		} {
			errs <- call()
		}
		return nil
	})
	enqueue(t, r, signup{User: "ada"})
	runUntilIdle(t, r)
	for _, what := range []string{"empty event name", "empty field", "huge value", "value that does not encode"} {
		if err := <-errs; !errors.Is(err, jobrun.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", what, err)
		}
	}
}

// TestWaitForAcrossRestarts: a wait survives a restart, and so does its timeout,
// which passes while the process is down and ends the wait once.
func TestWaitForAcrossRestarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, path := openRunner(t)
		w := &waitResult{}
		handleOrder(r, w, time.Hour)
		received := enqueue(t, r, order{ID: 1})
		timedOut := enqueue(t, r, order{ID: 2})
		runUntilIdle(t, r)
		r.Close()

		r = reopen(t, path)
		handleOrder(r, w, time.Hour)
		send(t, r, paid(1, 10))
		runUntilIdle(t, r)
		if in := get(t, r, received); in.State != jobrun.StateDone || !w.ok || w.pay.Amount != 10 {
			t.Fatalf("after a restart and the event: %s, ok %v", in.State, w.ok)
		}
		r.Close()

		time.Sleep(2 * time.Hour) // the timeout passes while no process runs
		r = reopen(t, path)
		handleOrder(r, w, time.Hour)
		runUntilIdle(t, r)
		in := get(t, r, timedOut)
		if in.State != jobrun.StateDone || w.ok || in.Steps[0].State != "timed_out" {
			t.Fatalf("after the timeout passed while down: %s, ok %v, steps %+v", in.State, w.ok, in.Steps)
		}
		if w.runs != 4 {
			t.Errorf("%d runs, want 4: each job once to wait and once to end", w.runs)
		}
	})
}

// TestWaitForSkipsEventsTheRunHasSeen: the lookback does not give a second wait the
// event an earlier one received, nor a function the event that started it.
func TestWaitForSkipsEventsTheRunHasSeen(t *testing.T) {
	r, _ := openRunner(t)
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[signup]) error {
		for _, name := range []string{"first", "second"} {
			if _, _, err := jobrun.WaitFor[map[string]any](ctx, name, "ping", jobrun.EventMatch{}, time.Hour); err != nil {
				return err
			}
		}
		return nil
	}, jobrun.On("ping"))
	started := send(t, r, jobrun.Event{Name: "ping", Data: signup{User: "ada"}})
	runUntilIdle(t, r)
	id := started.Runs[0]
	if in := get(t, r, id); in.State != jobrun.StateScheduled || in.Steps[0].State != "waiting" {
		t.Fatalf("the run took the event that started it: %s, %+v", in.State, in.Steps)
	}
	// That event starts another run of the function, which waits too; the first
	// run's first wait takes it.
	second := send(t, r, jobrun.Event{Name: "ping", Data: signup{User: "bob"}})
	runUntilIdle(t, r)
	in := get(t, r, id)
	if len(in.Steps) != 2 || in.Steps[0].Event != second.Seq || in.Steps[1].State != "waiting" {
		t.Fatalf("after a second event: %s, steps %+v; want the second wait waiting", in.State, in.Steps)
	}
}
