package jobrun_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobrun/jobrun"
)

type ctxKey string

// TestMiddlewareWrapsAttempts: runner-wide and per-kind middleware wrap every
// attempt in the order given, pass their context to the handler (steps included),
// see the job, and can change the outcome either way.
func TestMiddlewareWrapsAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var trail []string
		note := func(s string) {
			mu.Lock()
			defer mu.Unlock()
			trail = append(trail, s)
		}
		named := func(name string) jobrun.Middleware {
			return func(ctx context.Context, job *jobrun.Info, next func(context.Context) error) error {
				note(fmt.Sprintf("%s>%s#%d", name, job.Kind, job.Attempt))
				err := next(ctx)
				note("<" + name)
				return err
			}
		}
		outer := func(ctx context.Context, job *jobrun.Info, next func(context.Context) error) error {
			err := next(context.WithValue(ctx, ctxKey("from"), "outer"))
			switch {
			case err != nil && err.Error() == "forgive me":
				return nil
			case err == nil && strings.HasPrefix(string(job.RawArgs), `{"to":"stop`):
				return jobrun.Permanent(errors.New("refused by middleware"))
			}
			return err
		}
		r, _ := openRunner(t,
			jobrun.WithMiddleware(outer),
			jobrun.WithMiddleware(named("a")),
			jobrun.WithMiddleware(named("mail"), "email"),
			jobrun.WithMiddleware(named("b")),
		)
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			if got := ctx.Value(ctxKey("from")); got != "outer" {
				t.Errorf("handler's context value %v, want the middleware's", got)
			}
			if _, err := jobrun.Step(ctx, "step", func(context.Context) (int, error) { return 1, nil }); err != nil {
				return err
			}
			note("email " + j.Args.To)
			if j.Args.To == "forgiven" {
				return errors.New("forgive me")
			}
			return nil
		}, jobrun.MaxAttempts(5))
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[resize]) error {
			note("resize")
			return nil
		})
		plain := enqueue(t, r, email{To: "plain"})
		runUntilIdle(t, r)
		resized := enqueue(t, r, resize{Image: "x"})
		runUntilIdle(t, r)
		want := []string{"a>email#1", "mail>email#1", "b>email#1", "email plain", "<b", "<mail", "<a",
			"a>resize#1", "b>resize#1", "resize", "<b", "<a"}
		if !slices.Equal(trail, want) {
			t.Errorf("trail\n%q\nwant\n%q", trail, want)
		}
		forgiven := enqueue(t, r, email{To: "forgiven"})
		stopped := enqueue(t, r, email{To: "stop"})
		runUntilIdle(t, r)
		wantState(t, get(t, r, plain), jobrun.StateDone, 1)
		wantState(t, get(t, r, resized), jobrun.StateDone, 1)
		wantState(t, get(t, r, forgiven), jobrun.StateDone, 1)
		in := get(t, r, stopped)
		wantState(t, in, jobrun.StateFailed, 1)
		if !strings.Contains(in.LastError, "refused by middleware") {
			t.Errorf("stopped job's error %q", in.LastError)
		}
	})
}

// TestMiddlewarePanicIsTheAttempts: a panicking middleware fails the attempt as a
// panicking handler does.
func TestMiddlewarePanicIsTheAttempts(t *testing.T) {
	r, _ := openRunner(t, jobrun.WithMiddleware(func(ctx context.Context, job *jobrun.Info, next func(context.Context) error) error {
		panic("middleware down")
	}))
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error { return nil }, jobrun.MaxAttempts(1))
	id := enqueue(t, r, email{To: "x"})
	runUntilIdle(t, r)
	in := get(t, r, id)
	wantState(t, in, jobrun.StateFailed, 1)
	if !strings.HasPrefix(in.LastError, "panic: middleware down") {
		t.Errorf("error %q", in.LastError)
	}
}

// TestMetadata: metadata from Handle's defaults, Enqueue and the enqueue hooks is
// stored with the job, read by Get after a reopen, seen by the handler, and given to
// the runs of events, the children of Invoke (with the handler's context) and the
// fires of a schedule.
func TestMetadata(t *testing.T) {
	var mu sync.Mutex
	hooked := map[string]int{}
	errRefused := errors.New("resize refused")
	hook := func(ctx context.Context, job *jobrun.Info) error {
		mu.Lock()
		hooked[job.Kind]++
		mu.Unlock()
		if job.Kind == "resize" && strings.Contains(string(job.RawArgs), "refuse") {
			return errRefused
		}
		if from, ok := ctx.Value(ctxKey("from")).(string); ok {
			job.Metadata["from"] = from
		}
		delete(job.Metadata, "drop")
		job.Metadata["hooked"] = job.Kind
		return nil
	}
	opts := []jobrun.Option{
		jobrun.WithEnqueueHook(hook),
		jobrun.WithMiddleware(func(ctx context.Context, job *jobrun.Info, next func(context.Context) error) error {
			return next(context.WithValue(ctx, ctxKey("from"), fmt.Sprintf("job %d", job.ID)))
		}),
	}
	r, path := openRunner(t, opts...)
	var seen map[string]string
	var parent jobrun.ID
	handlers := func(r *jobrun.Runner) {
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			j.Metadata["changed"] = "by the handler" // its own copy
			mu.Lock()
			if j.Args.To == "a" {
				seen = j.Metadata
			}
			mu.Unlock()
			if j.Args.To == "parent" {
				mu.Lock()
				parent = j.ID
				mu.Unlock()
				_, err := jobrun.Invoke[struct{}](ctx, "child", resize{Image: "child"})
				return err
			}
			return nil
		}, jobrun.Metadata(map[string]string{"team": "growth", "drop": "x"}), jobrun.On("user/created"))
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[resize]) error { return nil })
	}
	handlers(r)
	ctx := context.WithValue(t.Context(), ctxKey("from"), "request 7")
	id, err := r.Enqueue(ctx, email{To: "a"}, jobrun.Metadata(map[string]string{"team": "ops", "request": "r1"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Enqueue(t.Context(), resize{Image: "refuse"}); !errors.Is(err, errRefused) {
		t.Fatalf("refused by the hook: %v", err)
	}
	if n, _ := r.Counts(t.Context(), ""); n[jobrun.StateReady] != 1 {
		t.Fatalf("counts after a refusal %v, want the one job", n)
	}
	ev, err := r.Send(ctx, jobrun.Event{Name: "user/created", Data: map[string]any{"to": "event"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Schedule(t.Context(), "nightly", "@daily", resize{Image: "cron"}, jobrun.Metadata(map[string]string{"origin": "cron"})); err != nil {
		t.Fatal(err)
	}
	fired, err := r.TriggerSchedule(t.Context(), "nightly")
	if err != nil {
		t.Fatal(err)
	}
	enqueue(t, r, email{To: "parent"})
	runUntilIdle(t, r)

	want := map[string]string{"team": "ops", "request": "r1", "from": "request 7", "hooked": "email"}
	if in := get(t, r, id); !maps.Equal(in.Metadata, want) {
		t.Errorf("Get: metadata %v, want %v", in.Metadata, want)
	}
	if in := get(t, r, ev.Runs[0]); !maps.Equal(in.Metadata, map[string]string{"team": "growth", "from": "request 7", "hooked": "email"}) {
		t.Errorf("event's run: metadata %v", in.Metadata)
	}
	if in := get(t, r, fired); !maps.Equal(in.Metadata, map[string]string{"origin": "cron"}) {
		t.Errorf("cron fire (not hooked): metadata %v", in.Metadata)
	}
	page, err := r.List(t.Context(), jobrun.Filter{Kind: "resize", State: jobrun.StateDone})
	if err != nil {
		t.Fatal(err)
	}
	var child *jobrun.Info
	for _, in := range page.Jobs {
		if in.Parent != 0 {
			child = get(t, r, in.ID)
		}
	}
	if child == nil || child.Metadata["from"] != fmt.Sprintf("job %d", parent) || child.Metadata["hooked"] != "resize" {
		t.Errorf("Invoke's child: %+v", child)
	}
	if seen["changed"] != "by the handler" || seen["request"] != "r1" {
		t.Errorf("the handler's metadata %v", seen)
	}

	// Stored: a new runner on the file reads the same.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r2, err := jobrun.Open(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if in := get(t, r2, id); !maps.Equal(in.Metadata, want) {
		t.Errorf("after reopen: metadata %v, want %v", in.Metadata, want)
	}
}

// TestMetadataRefused: metadata out of bounds, from an option or a hook, and nil
// hooks and middleware are refused with ErrInvalid.
func TestMetadataRefused(t *testing.T) {
	many := map[string]string{}
	for i := range 65 {
		many[fmt.Sprint("k", i)] = "v"
	}
	for name, md := range map[string]map[string]string{
		"empty key":          {"": "v"},
		"key with a space":   {" k": "v"},
		"value not UTF-8":    {"k": "\xff"},
		"65 entries":         many,
		"over 8 KiB of them": {"k": strings.Repeat("v", 8<<10)},
	} {
		r, _ := openRunner(t, jobrun.WithStrictKinds(false))
		if _, err := r.Enqueue(t.Context(), email{}, jobrun.Metadata(md)); !errors.Is(err, jobrun.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
		r2, _ := openRunner(t, jobrun.WithStrictKinds(false), jobrun.WithEnqueueHook(func(ctx context.Context, job *jobrun.Info) error {
			maps.Copy(job.Metadata, md)
			return nil
		}))
		if _, err := r2.Enqueue(t.Context(), email{}); !errors.Is(err, jobrun.ErrInvalid) {
			t.Errorf("%s from a hook: %v, want ErrInvalid", name, err)
		}
	}
	for name, opt := range map[string]jobrun.Option{
		"nil hook":           jobrun.WithEnqueueHook(nil),
		"nil middleware":     jobrun.WithMiddleware(nil),
		"middleware of kind": jobrun.WithMiddleware(func(ctx context.Context, job *jobrun.Info, next func(context.Context) error) error { return next(ctx) }, ""),
	} {
		if _, err := jobrun.Open(t.TempDir()+"/jobs.db", opt); !errors.Is(err, jobrun.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

// TestAttemptStartTimes: every failed attempt's start is kept with its error, so
// its duration is known.
func TestAttemptStartTimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			time.Sleep(3 * time.Second) // the fake clock: the attempt lasts 3 s
			if j.Attempt < 3 {
				return errors.New("not yet")
			}
			return nil
		}, jobrun.Backoff(time.Second, time.Second))
		id := enqueue(t, r, email{To: "x"})
		in := runUntilState(t, r, id, jobrun.StateDone)
		if len(in.Errors) != 2 {
			t.Fatalf("errors %+v", in.Errors)
		}
		for i, e := range in.Errors {
			if e.StartedAt.Before(in.CreatedAt) || e.At.Sub(e.StartedAt) < 3*time.Second {
				t.Errorf("attempt %d started %v, failed %v (created %v)", i+1, e.StartedAt, e.At, in.CreatedAt)
			}
		}
		if !in.Errors[1].StartedAt.After(in.Errors[0].At) || !in.StartedAt.After(in.Errors[1].At) {
			t.Errorf("attempts out of order: %+v, last started %v", in.Errors, in.StartedAt)
		}
	})
}

// TestEnqueueHookOncePerSentEvent: a SendEvent step replayed by a later attempt
// stores no run, so the hooks do not see one.
func TestEnqueueHookOncePerSentEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		hooked := map[string]int{}
		r, _ := openRunner(t, jobrun.WithEnqueueHook(func(ctx context.Context, job *jobrun.Info) error {
			mu.Lock()
			defer mu.Unlock()
			hooked[job.Kind]++
			return nil
		}))
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			if _, err := jobrun.SendEvent(ctx, "notify", jobrun.Event{Name: "user/notified"}); err != nil {
				return err
			}
			if j.Attempt == 1 {
				return errors.New("after the send")
			}
			return nil
		}, jobrun.Backoff(time.Second, time.Second))
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[resize]) error { return nil }, jobrun.On("user/notified"))
		id := enqueue(t, r, email{To: "a"})
		runUntilState(t, r, id, jobrun.StateDone)
		if hooked["email"] != 1 || hooked["resize"] != 1 {
			t.Errorf("hooked %v, want the job and the event's one run once each", hooked)
		}
	})
}

// TestAttemptOutcome: what AttemptOutcome tells a middleware is what the runner
// then records for the attempt.
func TestAttemptOutcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		said := map[jobrun.ID][]jobrun.ChangeType{}
		recorded := map[jobrun.ID][]jobrun.ChangeType{}
		r, _ := openRunner(t,
			jobrun.WithMiddleware(func(ctx context.Context, job *jobrun.Info, next func(context.Context) error) error {
				err := next(context.WithValue(ctx, ctxKey("a"), "b")) // a derived context still knows
				mu.Lock()
				said[job.ID] = append(said[job.ID], jobrun.AttemptOutcome(ctx, err))
				mu.Unlock()
				return err
			}),
			jobrun.WithChangeHook(func(c jobrun.Change) {
				switch c.Type {
				case jobrun.ChangeEnqueued, jobrun.ChangeStarted, jobrun.ChangeProgress, jobrun.ChangeReady:
					return // not an attempt's outcome (ready: a retry or a wake-up due)
				}
				mu.Lock()
				recorded[c.ID] = append(recorded[c.ID], c.Type)
				mu.Unlock()
			}))
		started := make(chan jobrun.ID, 1)
		var snoozed atomic.Bool
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			switch j.Args.To {
			case "flaky":
				if j.Attempt == 1 {
					return errors.New("once")
				}
			case "bad":
				return errors.New("always")
			case "permanent":
				return jobrun.Permanent(errors.New("no"))
			case "snooze":
				if snoozed.CompareAndSwap(false, true) {
					return jobrun.Snooze(time.Minute)
				}
			case "sleep":
				return jobrun.Sleep(ctx, "nap", time.Minute)
			case "slow":
				<-ctx.Done()
				return ctx.Err()
			case "cancel":
				started <- j.ID
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}, jobrun.MaxAttempts(2), jobrun.Backoff(time.Second, time.Second))
		if got := jobrun.AttemptOutcome(t.Context(), nil); got != "" {
			t.Errorf("outside an attempt: %q", got)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		var ids []jobrun.ID
		for _, to := range []string{"ok", "flaky", "bad", "permanent", "snooze", "sleep"} {
			ids = append(ids, enqueue(t, r, email{To: to}))
		}
		ids = append(ids, enqueue(t, r, email{To: "slow"}, jobrun.Timeout(time.Second), jobrun.MaxAttempts(1)))
		c := enqueue(t, r, email{To: "cancel"})
		if err := r.Cancel(t.Context(), <-started); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c)
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		// Shutdown: the job running then is handed back.
		handed := enqueue(t, r, email{To: "cancel"})
		<-started
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(said[handed], []jobrun.ChangeType{jobrun.ChangeReady}) {
			t.Errorf("the job running at shutdown: AttemptOutcome said %v, want ready (handed back)", said[handed])
		}
		for _, id := range ids {
			if len(said[id]) == 0 || !slices.Equal(said[id], recorded[id]) {
				t.Errorf("job %d: AttemptOutcome said %v, the runner recorded %v", id, said[id], recorded[id])
			}
		}
	})
}
