package jobrun_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobrun/jobrun"
)

type welcomeFailed struct{ jobrun.Failure }

func (welcomeFailed) Kind() string { return "welcome-failed" }

func TestOnFailureEnqueuesWithTheFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t, jobrun.WithQueue("alerts", 1, nil), jobrun.WithQueue("mail", 1, nil))
		var mu sync.Mutex
		failures := map[string]jobrun.Info{}
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[welcomeFailed]) error {
			mu.Lock()
			defer mu.Unlock()
			var u userCreated
			if err := json.Unmarshal(j.Args.Job.RawArgs, &u); err != nil {
				return err
			}
			failures[u.User] = j.Args.Job
			return nil
		}, jobrun.Queue("alerts"))
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[userCreated]) error {
			switch j.Args.User {
			case "permanent":
				return jobrun.Permanent(errors.New("no such mailbox"))
			case "ok":
				return nil
			}
			return errors.New("smtp down")
		}, jobrun.On("user/created"), jobrun.Queue("mail"), jobrun.MaxAttempts(2), jobrun.Backoff(time.Second, time.Second),
			jobrun.OnFailure("welcome-failed"))
		var ids []jobrun.ID
		for _, u := range []string{"permanent", "flaky", "ok"} {
			ids = append(ids, send(t, r, jobrun.Event{Name: "user/created", Data: userCreated{User: u}}).Runs[0])
		}
		for range 5 {
			runUntilIdle(t, r)
			time.Sleep(time.Second)
		}
		if len(failures) != 2 {
			t.Fatalf("failure jobs for %v, want permanent and flaky", failures)
		}
		if f := failures["permanent"]; f.ID != ids[0] || f.State != jobrun.StateFailed || f.Attempt != 1 ||
			!strings.Contains(f.LastError, "no such mailbox") || f.EventName != "user/created" {
			t.Errorf("the permanent failure: %+v", f)
		}
		if f := failures["flaky"]; f.ID != ids[1] || f.Attempt != 2 || !strings.Contains(f.LastError, "smtp down") {
			t.Errorf("the spent failure: %+v", f)
		}
		// A canceled job enqueues no failure job.
		id := enqueue(t, r, userCreated{User: "cancel me"}, jobrun.Delay(time.Hour))
		if err := r.Cancel(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		runUntilIdle(t, r)
		if counts, _ := r.Counts(t.Context(), "alerts"); counts[jobrun.StateDone] != 2 {
			t.Errorf("alerts: %v, want the 2 failure jobs", counts)
		}
	})
}

func TestOnFailureRefusesAnUnknownKind(t *testing.T) {
	r, _ := openRunner(t)
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[signup]) error { return nil })
	if _, err := r.Enqueue(t.Context(), signup{}, jobrun.OnFailure("nobody")); !errors.Is(err, jobrun.ErrUnknownKind) {
		t.Errorf("OnFailure of a kind without a handler: %v", err)
	}
	if _, err := r.Enqueue(t.Context(), signup{}, jobrun.OnFailure("")); !errors.Is(err, jobrun.ErrInvalid) {
		t.Errorf("OnFailure of no kind: %v", err)
	}
}

type profileSync struct {
	User string `json:"user"`
	Tier int    `json:"tier"`
}

func (profileSync) Kind() string { return "profile-sync" }

func TestCancelOnEvent(t *testing.T) {
	r, _ := openRunner(t)
	var started atomic.Int64
	running := make(chan struct{}, 1)
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[profileSync]) error {
		started.Add(1)
		if j.Args.User == "runs" {
			running <- struct{}{}
			<-ctx.Done()
			return context.Cause(ctx)
		}
		return jobrun.Sleep(ctx, "nap", 24*time.Hour)
	}, jobrun.On("user/updated"), jobrun.CancelOn("user/deleted", "user"))
	sleeper := send(t, r, jobrun.Event{Name: "user/updated", Data: profileSync{User: "sleeps"}}).Runs[0]
	other := send(t, r, jobrun.Event{Name: "user/updated", Data: profileSync{User: "stays"}}).Runs[0]
	runUntilIdle(t, r)
	if get(t, r, sleeper).State != jobrun.StateScheduled {
		t.Fatal("the run does not sleep")
	}
	send(t, r, jobrun.Event{Name: "user/deleted", Data: map[string]string{"user": "sleeps"}})
	if in := get(t, r, sleeper); in.State != jobrun.StateCanceled {
		t.Errorf("the sleeping run after user/deleted: %s", in.State)
	}
	if in := get(t, r, other); in.State != jobrun.StateScheduled {
		t.Errorf("the other user's run: %s", in.State)
	}
	// A running one: its handler's context ends.
	runner := send(t, r, jobrun.Event{Name: "user/updated", Data: profileSync{User: "runs"}}).Runs[0]
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-running
	send(t, r, jobrun.Event{Name: "user/deleted", Data: map[string]string{"user": "runs"}})
	changes, err := r.Watch(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	for get(t, r, runner).State != jobrun.StateCanceled {
		<-changes
	}
	cancel()
	<-done
}

func TestKeysFromArgs(t *testing.T) {
	r, _ := openRunner(t)
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[profileSync]) error { return nil },
		jobrun.On("user/updated"), jobrun.ConcurrencyKey("user-{user}"), jobrun.Debounce("{user}", time.Minute),
		jobrun.PriorityFrom("tier"))
	a := send(t, r, jobrun.Event{Name: "user/updated", Data: profileSync{User: "ada", Tier: 3}})
	b := send(t, r, jobrun.Event{Name: "user/updated", Data: profileSync{User: "ada", Tier: 3}})
	c := send(t, r, jobrun.Event{Name: "user/updated", Data: profileSync{User: "bob", Tier: -1}})
	if a.Runs[0] != b.Runs[0] {
		t.Errorf("debounced by user: runs %v and %v, want one", a.Runs, b.Runs)
	}
	in := get(t, r, a.Runs[0])
	if in.ConcurrencyKey != "user-ada" || in.UniqueKey != "ada" || in.Priority != 3 {
		t.Errorf("ada's run: key %q, unique %q, priority %d", in.ConcurrencyKey, in.UniqueKey, in.Priority)
	}
	if in := get(t, r, c.Runs[0]); in.ConcurrencyKey != "user-bob" || in.Priority != -1 {
		t.Errorf("bob's run: key %q, priority %d", in.ConcurrencyKey, in.Priority)
	}
	if _, err := r.Send(t.Context(), jobrun.Event{Name: "user/updated", Data: map[string]int{"tier": 1}}); !errors.Is(err, jobrun.ErrInvalid) {
		t.Errorf("data without the key's field: %v", err)
	}
	if _, err := r.Send(t.Context(), jobrun.Event{Name: "user/updated", Data: map[string]any{"user": "x", "tier": "high"}}); !errors.Is(err, jobrun.ErrInvalid) {
		t.Errorf("a priority that is not an integer: %v", err)
	}
}
