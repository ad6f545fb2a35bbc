package jobrun_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobrun/jobrun"
)

// TestErrorHook: every failed attempt reaches the hook with its context, the job and
// the error value: the handler's own, a *PanicError, or the timeout's; successes do
// not.
func TestErrorHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type call struct {
			job jobrun.Info
			err error
		}
		var mu sync.Mutex
		var calls []call
		errDown := errors.New("smtp down")
		r, _ := openRunner(t, jobrun.WithErrorHook(func(ctx context.Context, job *jobrun.Info, err error) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, call{*job, err})
		}))
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			switch j.Args.To {
			case "panic":
				panic("boom")
			case "slow":
				<-ctx.Done()
				return ctx.Err()
			case "ok":
				return nil
			}
			if j.Attempt == 1 {
				return errDown
			}
			return nil
		}, jobrun.Backoff(time.Second, time.Second), jobrun.MaxAttempts(1))
		flaky := enqueue(t, r, email{To: "flaky"}, jobrun.MaxAttempts(2))
		panicky := enqueue(t, r, email{To: "panic"})
		slow := enqueue(t, r, email{To: "slow"}, jobrun.Timeout(time.Minute))
		enqueue(t, r, email{To: "ok"})
		runUntilState(t, r, flaky, jobrun.StateDone)
		runUntilIdle(t, r)

		byID := map[jobrun.ID]call{}
		for _, c := range calls {
			if _, dup := byID[c.job.ID]; dup {
				t.Errorf("job %d reached the hook twice", c.job.ID)
			}
			byID[c.job.ID] = c
		}
		if len(calls) != 3 {
			t.Fatalf("%d hook calls, want one per failed attempt (3): %+v", len(calls), calls)
		}
		if c := byID[flaky]; !errors.Is(c.err, errDown) || c.job.Attempt != 1 || c.job.Kind != "email" {
			t.Errorf("the flaky job's failure: %+v", c)
		}
		var pe *jobrun.PanicError
		if c := byID[panicky]; !errors.As(c.err, &pe) || pe.Value != "boom" || !strings.Contains(string(pe.Stack), "error_hook_test.go") {
			t.Errorf("the panic: %#v", c.err)
		}
		if in := get(t, r, panicky); !strings.HasPrefix(in.LastError, "panic: boom\n\n") {
			t.Errorf("the panic as the job's error history stores it: %q", in.LastError)
		}
		if c := byID[slow]; c.err == nil || !strings.Contains(c.err.Error(), "timed out after 1m0s") {
			t.Errorf("the timeout: %v", c.err)
		}
	})
	if _, err := jobrun.Open(t.TempDir()+"/x.db", jobrun.WithErrorHook(nil)); !errors.Is(err, jobrun.ErrInvalid) {
		t.Errorf("a nil hook: %v", err)
	}
}
