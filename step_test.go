package jobrun_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobrun/jobrun"
)

type signup struct {
	User string `json:"user"`
}

func (signup) Kind() string { return "signup" }

// runUntilState runs r until job id reaches state, moving the bubble's clock past
// each retry's backoff.
func runUntilState(t *testing.T, r *jobrun.Runner, id jobrun.ID, want jobrun.State) *jobrun.Info {
	t.Helper()
	for range 100 {
		runUntilIdle(t, r)
		if in := get(t, r, id); in.State == want || in.State == jobrun.StateFailed {
			return in
		}
		time.Sleep(time.Second) // the fake clock: the next retry is due
	}
	t.Fatalf("job %d never reached %s", id, want)
	return nil
}

func TestStepRetriesPerStep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		var calls [3]atomic.Int64
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[signup]) error {
			for i, name := range []string{"a", "b", "c"} {
				_, err := jobrun.Step(ctx, name, func(ctx context.Context) (string, error) {
					// Each step fails twice before it succeeds: nine attempts in all,
					// which MaxAttempts(3) allows only because each step gets three.
					if calls[i].Add(1) < 3 {
						return "", fmt.Errorf("%s is flaky", name)
					}
					return name + "-result", nil
				})
				if err != nil {
					return err
				}
			}
			return nil
		}, jobrun.MaxAttempts(3), jobrun.Backoff(time.Second, time.Second))
		id := enqueue(t, r, signup{User: "ada"})
		in := runUntilState(t, r, id, jobrun.StateDone)
		if in.State != jobrun.StateDone {
			t.Fatalf("state %s, last error %q", in.State, in.LastError)
		}
		for i := range calls {
			if n := calls[i].Load(); n != 3 {
				t.Errorf("step %d ran %d times, want 3", i, n)
			}
		}
		if len(in.Steps) != 3 {
			t.Fatalf("steps: %+v", in.Steps)
		}
		for i, s := range in.Steps {
			name := []string{"a", "b", "c"}[i]
			if s.Name != name || s.State != "done" || s.Attempts != 3 || string(s.Result) != `"`+name+`-result"` {
				t.Errorf("step %d: %+v", i, s)
			}
		}
		if in.Attempt != 1 {
			t.Errorf("attempt %d after the last step, want 1 (the count restarts at each step)", in.Attempt)
		}
	})
}

func TestStepNotRunAgainAfterRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "jobs.db")
		var first, second atomic.Int64
		register := func(r *jobrun.Runner, block bool) {
			jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[signup]) error {
				v, err := jobrun.Step(ctx, "first", func(ctx context.Context) (int, error) {
					return int(first.Add(1)) * 10, nil
				})
				if err != nil {
					return err
				}
				if v != 10 {
					return jobrun.Permanent(fmt.Errorf("step first returned %d, want the stored 10", v))
				}
				_, err = jobrun.Step(ctx, "second", func(ctx context.Context) (bool, error) {
					second.Add(1)
					if block {
						<-ctx.Done() // the process goes away in this step
						return false, ctx.Err()
					}
					return true, nil
				})
				return err
			})
		}
		r, err := jobrun.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		register(r, true)
		id := enqueue(t, r, signup{User: "ada"})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		for second.Load() == 0 {
			synctest.Wait()
		}
		cancel()
		<-done
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}

		r, err = jobrun.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		register(r, false)
		runUntilIdle(t, r)
		in := get(t, r, id)
		wantState(t, in, jobrun.StateDone, 1)
		if first.Load() != 1 || second.Load() != 2 {
			t.Fatalf("first ran %d times, second %d: want 1 and 2", first.Load(), second.Load())
		}
	})
}

func TestStepPermanentErrorIsStored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		var calls, attempts atomic.Int64
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[signup]) error {
			_, err := jobrun.Step(ctx, "charge", func(ctx context.Context) (int, error) {
				calls.Add(1)
				return 0, jobrun.Permanent(errors.New("card declined"))
			})
			if attempts.Add(1) == 1 {
				// The handler goes on past the failed step, then fails: the retry must
				// get the stored error without charging again.
				return errors.New("later failure")
			}
			return err
		}, jobrun.Backoff(time.Second, time.Second))
		id := enqueue(t, r, signup{})
		in := runUntilState(t, r, id, jobrun.StateFailed)
		if in.State != jobrun.StateFailed || calls.Load() != 1 || attempts.Load() != 2 {
			t.Fatalf("state %s, step ran %d times in %d attempts", in.State, calls.Load(), attempts.Load())
		}
		if len(in.Steps) != 1 || in.Steps[0].State != "failed" || in.Steps[0].Error != "card declined" {
			t.Fatalf("steps: %+v", in.Steps)
		}
	})
}

func TestStepRepeatedNames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		var attempt atomic.Int64
		var stepErrs []error
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[signup]) error {
			n := attempt.Add(1)
			for i := range 3 {
				if _, err := jobrun.Step(ctx, "item", func(ctx context.Context) (int, error) { return i, nil }); err != nil {
					return err
				}
			}
			if n == 1 {
				return errors.New("run again")
			}
			// Two more uses in the second attempt: new steps, after the stored three.
			for range 2 {
				_, err := jobrun.Step(ctx, "item", func(ctx context.Context) (string, error) { return "", nil })
				stepErrs = append(stepErrs, err)
			}
			return nil
		}, jobrun.Backoff(time.Second, time.Second))
		id := enqueue(t, r, signup{})
		in := runUntilState(t, r, id, jobrun.StateDone)
		var names []string
		for _, s := range in.Steps {
			names = append(names, s.Name+"="+string(s.Result))
		}
		want := "[item=0 item#2=1 item#3=2 item#4=\"\" item#5=\"\"]"
		if fmt.Sprint(names) != want {
			t.Fatalf("steps %v, want %s", names, want)
		}
		if err := errors.Join(stepErrs...); err != nil || len(stepErrs) != 2 {
			t.Fatalf("the new steps: %v (%d calls)", err, len(stepErrs))
		}
	})
}

func TestStepStoredResultOfAnotherType(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		var attempt atomic.Int64
		var second error
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[signup]) error {
			if attempt.Add(1) == 1 {
				if _, err := jobrun.Step(ctx, "s", func(ctx context.Context) (int, error) { return 7, nil }); err != nil {
					return err
				}
				return errors.New("again")
			}
			_, second = jobrun.Step(ctx, "s", func(ctx context.Context) (string, error) { return "x", nil })
			return second
		}, jobrun.Backoff(time.Second, time.Second))
		id := enqueue(t, r, signup{})
		in := runUntilState(t, r, id, jobrun.StateFailed)
		// Failed at the second attempt, with attempts left: the mismatch is permanent.
		if in.State != jobrun.StateFailed || second == nil || in.Attempt != 2 {
			t.Fatalf("state %s, error %v", in.State, second)
		}
	})
}

func TestStepBadInput(t *testing.T) {
	if _, err := jobrun.Step(t.Context(), "x", func(context.Context) (int, error) { return 1, nil }); !errors.Is(err, jobrun.ErrInvalid) {
		t.Fatalf("Step outside a handler: %v", err)
	}
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		var empty, huge, ch error
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[signup]) error {
			_, empty = jobrun.Step(ctx, "", func(context.Context) (int, error) { return 1, nil })
			_, huge = jobrun.Step(ctx, "huge", func(context.Context) (string, error) {
				return string(make([]byte, 2<<20)), nil
			})
			_, ch = jobrun.Step(ctx, "chan", func(context.Context) (chan int, error) { return make(chan int), nil })
			return nil
		})
		enqueue(t, r, signup{})
		runUntilIdle(t, r)
		for name, err := range map[string]error{"empty name": empty, "huge result": huge, "unencodable": ch} {
			if !errors.Is(err, jobrun.ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", name, err)
			}
		}
	})
}

func TestSleepHoldsNoWorkerAndWakesOnceAcrossRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "jobs.db")
		var before, after, runs atomic.Int64
		register := func(r *jobrun.Runner) {
			jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[signup]) error {
				runs.Add(1)
				if _, err := jobrun.Step(ctx, "before", func(ctx context.Context) (int, error) {
					return int(before.Add(1)), nil
				}); err != nil {
					return err
				}
				if err := jobrun.Sleep(ctx, "wait-a-day", 24*time.Hour); err != nil {
					return err
				}
				_, err := jobrun.Step(ctx, "after", func(ctx context.Context) (int, error) {
					return int(after.Add(1)), nil
				})
				return err
			})
		}
		r, err := jobrun.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		register(r)
		start := time.Now()
		id := enqueue(t, r, signup{User: "ada"})
		runUntilIdle(t, r) // returns: the sleeping job holds no worker and is not due
		in := get(t, r, id)
		if in.State != jobrun.StateScheduled || !in.RunAt.Equal(start.Add(24*time.Hour)) || in.Attempt != 0 {
			t.Fatalf("after the first run: %s, run at %v (want %v), attempt %d", in.State, in.RunAt, start.Add(24*time.Hour), in.Attempt)
		}
		if len(in.Steps) != 2 || in.Steps[1].Name != "wait-a-day" || in.Steps[1].State != "sleep" {
			t.Fatalf("steps: %+v", in.Steps)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}

		time.Sleep(12 * time.Hour) // the fake clock: half the sleep, then a restart
		r, err = jobrun.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		register(r)
		runUntilIdle(t, r)
		if runs.Load() != 1 {
			t.Fatalf("the job ran %d times before its wake-up", runs.Load())
		}
		time.Sleep(12 * time.Hour)
		runUntilIdle(t, r)
		in = get(t, r, id)
		wantState(t, in, jobrun.StateDone, 1)
		if before.Load() != 1 || after.Load() != 1 || runs.Load() != 2 {
			t.Fatalf("before ran %d times, after %d, the handler %d: want 1, 1, 2", before.Load(), after.Load(), runs.Load())
		}
	})
}

func TestSleepPromotedEarly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		var woke atomic.Int64
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[signup]) error {
			if err := jobrun.Sleep(ctx, "nap", time.Hour); err != nil {
				return err
			}
			woke.Add(1)
			return nil
		})
		id := enqueue(t, r, signup{})
		runUntilIdle(t, r)
		if err := r.Promote(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		runUntilIdle(t, r)
		wantState(t, get(t, r, id), jobrun.StateDone, 1)
		if woke.Load() != 1 {
			t.Fatalf("woke %d times", woke.Load())
		}
	})
}

func TestStepNameOfASleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, path := openRunner(t)
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[signup]) error {
			return jobrun.Sleep(ctx, "x", time.Hour)
		})
		id := enqueue(t, r, signup{})
		runUntilIdle(t, r)
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		// A new version of the handler uses the sleep's name for a step.
		r, err := jobrun.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var got error
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[signup]) error {
			_, got = jobrun.Step(ctx, "x", func(context.Context) (int, error) { return 1, nil })
			return got
		})
		if err := r.Promote(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		runUntilIdle(t, r)
		if in := get(t, r, id); in.State != jobrun.StateFailed || got == nil || !strings.Contains(got.Error(), "is a Sleep") {
			t.Fatalf("state %s, step error %v", in.State, got)
		}
	})
}
