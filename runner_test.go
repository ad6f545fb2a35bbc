package jobrun_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.etcd.io/bbolt"
	"go.uber.org/goleak"
	"golang.org/x/time/rate"

	"github.com/jobrun/jobrun"
)

func TestMain(m *testing.M) {
	code := m.Run()
	// The PostgreSQL cluster of the store's tests is stopped before the leak check,
	// which its pool's goroutines would fail.
	jobrun.StopTestServers()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on a successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

type email struct {
	To string `json:"to"`
}

func (email) Kind() string { return "email" }

type resize struct {
	Image string `json:"image"`
}

func (resize) Kind() string { return "resize" }

// openRunner opens a runner on a new file in a temp dir and closes it at the end.
func openRunner(t *testing.T, opts ...jobrun.Option) (*jobrun.Runner, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jobs.db")
	r, err := jobrun.Open(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, path
}

func enqueue(t *testing.T, r *jobrun.Runner, args jobrun.Args, opts ...jobrun.EnqueueOption) jobrun.ID {
	t.Helper()
	id, err := r.Enqueue(t.Context(), args, opts...)
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	return id
}

func get(t *testing.T, r *jobrun.Runner, id jobrun.ID) *jobrun.Info {
	t.Helper()
	in, err := r.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("get %d: %v", id, err)
	}
	return in
}

func runUntilIdle(t *testing.T, r *jobrun.Runner) {
	t.Helper()
	if err := r.RunUntilIdle(t.Context()); err != nil {
		t.Fatalf("run until idle: %v", err)
	}
}

func wantState(t *testing.T, in *jobrun.Info, want jobrun.State, attempt int) {
	t.Helper()
	if in.State != want || in.Attempt != attempt {
		t.Fatalf("job %d: got state %s attempt %d, want %s attempt %d (last error %q)",
			in.ID, in.State, in.Attempt, want, attempt, in.LastError)
	}
}

func wantCounts(t *testing.T, r *jobrun.Runner, queue string, want map[jobrun.State]int) {
	t.Helper()
	got, err := r.Counts(t.Context(), queue)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range jobrun.States {
		if got[s] != want[s] {
			t.Fatalf("counts of %q: got %v, want %v", queue, got, want)
		}
	}
}

func TestEnqueueRunDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		var got []string
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			got = append(got, j.Args.To)
			if j.Attempt != 1 || j.State != jobrun.StateRunning || j.Kind != "email" {
				return fmt.Errorf("handler saw attempt %d state %s kind %s", j.Attempt, j.State, j.Kind)
			}
			return j.SetResult(map[string]string{"sent": j.Args.To})
		})
		id := enqueue(t, r, email{To: "a@example.com"})
		if in := get(t, r, id); in.State != jobrun.StateReady || in.Queue != jobrun.DefaultQueue {
			t.Fatalf("before run: got %s in %q, want ready in default", in.State, in.Queue)
		}
		runUntilIdle(t, r)

		in := get(t, r, id)
		wantState(t, in, jobrun.StateDone, 1)
		if string(in.Result) != `{"sent":"a@example.com"}` || string(in.RawArgs) != `{"to":"a@example.com"}` {
			t.Fatalf("got result %s args %s", in.Result, in.RawArgs)
		}
		if in.FinishedAt.IsZero() || in.StartedAt.IsZero() || in.CreatedAt.IsZero() {
			t.Fatalf("times not set: %+v", in)
		}
		if !slices.Equal(got, []string{"a@example.com"}) {
			t.Fatalf("handler ran with %v", got)
		}
		wantCounts(t, r, "", map[jobrun.State]int{jobrun.StateDone: 1})
	})
}

func TestConcurrencyLimitHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const workers, jobs = 3, 40
		r, _ := openRunner(t, jobrun.WithQueue("mail", workers, nil))
		var running, peak atomic.Int64
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(time.Duration(1+j.ID%5) * time.Millisecond) // fake time: lets others start
			running.Add(-1)
			return nil
		}, jobrun.Queue("mail"))
		batch := make([]jobrun.Args, jobs)
		for i := range batch {
			batch[i] = email{To: fmt.Sprint(i)}
		}
		if _, err := r.EnqueueMany(t.Context(), batch); err != nil {
			t.Fatal(err)
		}
		runUntilIdle(t, r)
		if p := peak.Load(); p != workers {
			t.Fatalf("peak concurrency %d, want exactly %d", p, workers)
		}
		wantCounts(t, r, "mail", map[jobrun.State]int{jobrun.StateDone: jobs})
	})
}

func TestRetriesFollowConstantBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		var starts []time.Time
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			starts = append(starts, time.Now())
			return fmt.Errorf("smtp down (attempt %d)", j.Attempt)
		}, jobrun.Backoff(10*time.Second, 10*time.Second), jobrun.MaxAttempts(3))
		id := enqueue(t, r, email{To: "x"})
		runUntilIdle(t, r)
		wantState(t, get(t, r, id), jobrun.StateRetrying, 1)

		for range 2 {
			time.Sleep(10 * time.Second)
			runUntilIdle(t, r)
		}
		in := get(t, r, id)
		wantState(t, in, jobrun.StateFailed, 3)
		if len(starts) != 3 {
			t.Fatalf("ran %d times, want 3", len(starts))
		}
		for i := 1; i < len(starts); i++ {
			if d := starts[i].Sub(starts[i-1]); d != 10*time.Second {
				t.Fatalf("attempt %d started %v after the previous one, want 10s", i+1, d)
			}
		}
		if len(in.Errors) != 3 || in.Errors[2].Attempt != 3 || in.LastError != "smtp down (attempt 3)" {
			t.Fatalf("error history %+v, last %q", in.Errors, in.LastError)
		}
		wantCounts(t, r, "", map[jobrun.State]int{jobrun.StateFailed: 1})
	})
}

func TestRetriesRunInBackground(t *testing.T) {
	// Run (not RunUntilIdle) must wake by itself for a retry: one timer, no polling.
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		done := make(chan time.Time, 1)
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			if j.Attempt < 2 {
				return errors.New("flaky")
			}
			done <- time.Now()
			return nil
		}, jobrun.Backoff(time.Minute, time.Minute))
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.Run(ctx)
		start := time.Now()
		id := enqueue(t, r, email{})
		at := <-done
		if d := at.Sub(start); d != time.Minute {
			t.Fatalf("retry ran %v after enqueue, want 1m", d)
		}
		synctest.Wait()
		wantState(t, get(t, r, id), jobrun.StateDone, 2)
	})
}

func TestExponentialBackoffBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		var starts []time.Time
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			starts = append(starts, time.Now())
			return errors.New("fail")
		}, jobrun.Backoff(time.Second, 8*time.Second), jobrun.MaxAttempts(6))
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.Run(ctx)
		id := enqueue(t, r, email{})
		for get(t, r, id).State != jobrun.StateFailed {
			time.Sleep(time.Second)
			synctest.Wait()
		}
		if len(starts) != 6 {
			t.Fatalf("ran %d times, want 6", len(starts))
		}
		for i := 1; i < len(starts); i++ {
			base := time.Second << (i - 1)
			base = min(base, 8*time.Second)
			lo, hi := base/2, base*3/2
			if d := starts[i].Sub(starts[i-1]); d < lo || d > hi {
				t.Fatalf("delay before attempt %d: %v, want within [%v, %v]", i+1, d, lo, hi)
			}
		}
	})
}

type customRetry struct{}

func (customRetry) Kind() string { return "custom-retry" }

func (customRetry) RetryDelay(attempt int, err error) time.Duration {
	return time.Duration(attempt) * time.Hour
}

func TestCustomRetryDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[customRetry]) error {
			return errors.New("no")
		})
		id := enqueue(t, r, customRetry{})
		start := time.Now()
		runUntilIdle(t, r)
		if in := get(t, r, id); in.RunAt.Sub(start) != time.Hour {
			t.Fatalf("next run %v after start, want 1h from RetryDelay", in.RunAt.Sub(start))
		}
	})
}

func TestPermanentAndSnooze(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		var snoozedRuns []int
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			switch j.Args.To {
			case "gone":
				return jobrun.Permanent(errors.New("mailbox deleted"))
			case "busy":
				snoozedRuns = append(snoozedRuns, j.Attempt)
				if len(snoozedRuns) < 3 {
					return jobrun.Snooze(30 * time.Second)
				}
			}
			return nil
		})
		gone := enqueue(t, r, email{To: "gone"})
		busy := enqueue(t, r, email{To: "busy"})
		runUntilIdle(t, r)
		in := get(t, r, gone)
		wantState(t, in, jobrun.StateFailed, 1)
		if !strings.Contains(in.LastError, "mailbox deleted") {
			t.Fatalf("last error %q", in.LastError)
		}
		if in := get(t, r, busy); in.State != jobrun.StateScheduled || in.Attempt != 0 {
			t.Fatalf("snoozed job: got %s attempt %d, want scheduled attempt 0", in.State, in.Attempt)
		}
		time.Sleep(29 * time.Second)
		runUntilIdle(t, r)
		if len(snoozedRuns) != 1 {
			t.Fatalf("snoozed job ran %d times before its time, want 1", len(snoozedRuns))
		}
		for range 2 {
			time.Sleep(30 * time.Second)
			runUntilIdle(t, r)
		}
		wantState(t, get(t, r, busy), jobrun.StateDone, 1)
		if !slices.Equal(snoozedRuns, []int{1, 1, 1}) {
			t.Fatalf("snoozed job ran as attempts %v, want [1 1 1]: a snooze spends no attempt", snoozedRuns)
		}
	})
}

func TestPanicIsAFailedAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			if j.Args.To == "nil" {
				panic(nil)
			}
			panic("boom")
		}, jobrun.MaxAttempts(1))
		boom := enqueue(t, r, email{To: "boom"})
		nilPanic := enqueue(t, r, email{To: "nil"})
		runUntilIdle(t, r)
		in := get(t, r, boom)
		wantState(t, in, jobrun.StateFailed, 1)
		if !strings.Contains(in.LastError, "panic: boom") || !strings.Contains(in.LastError, "runner_test.go") {
			t.Fatalf("last error lacks the panic value or its stack: %q", in.LastError)
		}
		in = get(t, r, nilPanic)
		wantState(t, in, jobrun.StateFailed, 1)
		if !strings.Contains(in.LastError, "panic") {
			t.Fatalf("panic(nil) recorded as %q", in.LastError)
		}
	})
}

func TestTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t, jobrun.WithQueue(jobrun.DefaultQueue, 1, nil))
		release := make(chan struct{})
		var stubbornReturned atomic.Bool
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			switch j.Args.To {
			case "polite":
				<-ctx.Done()
				return ctx.Err()
			case "cause":
				<-ctx.Done()
				return fmt.Errorf("sending: %w", context.Cause(ctx))
			case "stubborn":
				<-release // ignores ctx
				stubbornReturned.Store(true)
				return nil
			}
			return nil
		}, jobrun.Timeout(5*time.Second), jobrun.MaxAttempts(1))
		polite := enqueue(t, r, email{To: "polite"})
		cause := enqueue(t, r, email{To: "cause"})
		stubborn := enqueue(t, r, email{To: "stubborn"})
		after := enqueue(t, r, email{To: "after"})
		start := time.Now()
		runUntilIdle(t, r) // must not wait for the stubborn handler: its slot is replaced

		in := get(t, r, polite)
		wantState(t, in, jobrun.StateFailed, 1)
		if strings.Count(in.LastError, "timed out after 5s") != 1 {
			t.Fatalf("polite: last error %q", in.LastError)
		}
		// A handler that returns the context's cause does not get the timeout twice.
		// (Its own error or the timeout's, whichever was recorded first: they come at
		// the same instant.)
		in = get(t, r, cause)
		wantState(t, in, jobrun.StateFailed, 1)
		if strings.Count(in.LastError, "timed out") != 1 {
			t.Fatalf("cause: last error %q", in.LastError)
		}
		in = get(t, r, stubborn)
		wantState(t, in, jobrun.StateFailed, 1)
		if !strings.Contains(in.LastError, "timed out after 5s") {
			t.Fatalf("stubborn: last error %q", in.LastError)
		}
		wantState(t, get(t, r, after), jobrun.StateDone, 1)
		if d := time.Since(start); d != 15*time.Second {
			t.Fatalf("took %v, want 15s: three timeouts in a row on one worker", d)
		}
		if stubbornReturned.Load() {
			t.Fatal("the stubborn handler returned before it was released")
		}
		close(release)
		synctest.Wait()
		wantState(t, get(t, r, stubborn), jobrun.StateFailed, 1) // its late success is ignored
	})
}

func TestUnknownKind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		strict, _ := openRunner(t)
		if _, err := strict.Enqueue(t.Context(), email{}); !errors.Is(err, jobrun.ErrUnknownKind) {
			t.Fatalf("strict enqueue of unregistered kind: got %v, want ErrUnknownKind", err)
		}

		r, _ := openRunner(t, jobrun.WithStrictKinds(false))
		id := enqueue(t, r, email{To: "nobody handles me"}, jobrun.Backoff(time.Minute, time.Minute))
		runUntilIdle(t, r)
		in := get(t, r, id)
		wantState(t, in, jobrun.StateRetrying, 1)
		if !strings.Contains(in.LastError, `unknown job kind "email"`) {
			t.Fatalf("last error %q", in.LastError)
		}
	})
}

func TestEnqueueTx(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		ran := make(chan string, 2)
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			ran <- j.Args.To
			return nil
		})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.Run(ctx)

		var committed jobrun.ID
		err := r.DB().Update(func(tx *bbolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("users"))
			if err != nil {
				return err
			}
			if err := b.Put([]byte("u1"), []byte("ada")); err != nil {
				return err
			}
			committed, err = r.EnqueueTx(ctx, tx, email{To: "ada"})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		errRollback := errors.New("roll back")
		var rolledBack jobrun.ID
		err = r.DB().Update(func(tx *bbolt.Tx) error {
			var err error
			if rolledBack, err = r.EnqueueTx(ctx, tx, email{To: "ghost"}); err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			t.Fatalf("got %v", err)
		}
		if got := <-ran; got != "ada" {
			t.Fatalf("ran %q, want ada", got)
		}
		synctest.Wait()
		wantState(t, get(t, r, committed), jobrun.StateDone, 1)
		if _, err := r.Get(ctx, rolledBack); !errors.Is(err, jobrun.ErrNotFound) {
			t.Fatalf("rolled-back job: got %v, want ErrNotFound", err)
		}
		if len(ran) != 0 {
			t.Fatalf("the rolled-back job ran: %q", <-ran)
		}
		wantCounts(t, r, "", map[jobrun.State]int{jobrun.StateDone: 1})

		err = r.DB().View(func(tx *bbolt.Tx) error {
			_, err := r.EnqueueTx(ctx, tx, email{})
			return err
		})
		if !errors.Is(err, jobrun.ErrInvalid) {
			t.Fatalf("EnqueueTx in a read-only tx: got %v, want ErrInvalid", err)
		}
	})
}

func TestEnqueueManyAndPriorities(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t, jobrun.WithQueue(jobrun.DefaultQueue, 1, nil))
		var order []string
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			order = append(order, j.Args.To)
			return nil
		})
		ids, err := r.EnqueueMany(t.Context(), []jobrun.Args{email{"low1"}, email{"low2"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != 2 || ids[1] != ids[0]+1 {
			t.Fatalf("ids %v, want two consecutive", ids)
		}
		enqueue(t, r, email{"high"}, jobrun.Priority(10))
		enqueue(t, r, email{"negative"}, jobrun.Priority(-1))
		enqueue(t, r, email{"low3"})
		runUntilIdle(t, r)
		want := []string{"high", "low1", "low2", "low3", "negative"}
		if !slices.Equal(order, want) {
			t.Fatalf("ran in order %v, want %v", order, want)
		}
	})
}

func TestDelayAndAt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t, jobrun.WithQueue(jobrun.DefaultQueue, 1, nil))
		ran := map[string]time.Time{}
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			ran[j.Args.To] = time.Now()
			return nil
		})
		start := time.Now()
		enqueue(t, r, email{"later"}, jobrun.Delay(time.Hour))
		past := enqueue(t, r, email{"past"}, jobrun.At(start.Add(-time.Hour)))
		wantState(t, get(t, r, past), jobrun.StateReady, 0)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.Run(ctx)
		synctest.Wait()
		if _, ok := ran["later"]; ok || ran["past"] != start {
			t.Fatalf("after start: ran %v", ran)
		}
		wantCounts(t, r, "", map[jobrun.State]int{jobrun.StateScheduled: 1, jobrun.StateDone: 1})
		time.Sleep(time.Hour)
		synctest.Wait()
		if got := ran["later"].Sub(start); got != time.Hour {
			t.Fatalf("delayed job ran %v after enqueue, want 1h", got)
		}
	})
}

func TestRateLimitedQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lim := rate.NewLimiter(rate.Every(100*time.Millisecond), 2)
		r, _ := openRunner(t, jobrun.WithQueue("api", 4, lim))
		var starts []time.Time
		var mu sync.Mutex
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			mu.Lock()
			starts = append(starts, time.Now())
			mu.Unlock()
			return nil
		}, jobrun.Queue("api"))
		batch := make([]jobrun.Args, 12)
		for i := range batch {
			batch[i] = email{fmt.Sprint(i)}
		}
		start := time.Now()
		if _, err := r.EnqueueMany(t.Context(), batch); err != nil {
			t.Fatal(err)
		}
		runUntilIdle(t, r)
		if len(starts) != 12 {
			t.Fatalf("ran %d jobs, want 12", len(starts))
		}
		// Burst 2 at once, then one per 100ms: job i starts at (i-1)*100ms.
		for i, at := range starts {
			want := time.Duration(max(i-1, 0)) * 100 * time.Millisecond
			if got := at.Sub(start); got != want {
				t.Fatalf("job %d started at +%v, want +%v", i, got, want)
			}
		}
	})
}

func TestResultAndProgressLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		var errs []error
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[resize]) error {
			huge := strings.Repeat("x", jobrun.MaxArgsSize)
			errs = append(errs, j.SetResult(huge), j.SetProgress(huge), j.SetResult(make(chan int)))
			return j.SetResult("small")
		})
		id := enqueue(t, r, resize{})
		runUntilIdle(t, r)
		for i, err := range errs {
			if !errors.Is(err, jobrun.ErrInvalid) {
				t.Errorf("call %d: got %v, want ErrInvalid", i, err)
			}
		}
		if in := get(t, r, id); in.State != jobrun.StateDone || string(in.Result) != `"small"` {
			t.Fatalf("got %s with result %s", in.State, in.Result)
		}
	})
}

func TestProgressVisibleWhileRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		step := make(chan struct{})
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[resize]) error {
			for i := 1; i <= 3; i++ {
				if err := j.SetProgress(map[string]int{"step": i}); err != nil {
					return err
				}
			}
			<-step
			return nil
		})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.Run(ctx)
		id := enqueue(t, r, resize{"a.png"})
		synctest.Wait()
		in := get(t, r, id)
		if in.State != jobrun.StateRunning || string(in.Progress) != `{"step":3}` || in.Attempt != 1 {
			t.Fatalf("while running: state %s attempt %d progress %s", in.State, in.Attempt, in.Progress)
		}
		wantCounts(t, r, "", map[jobrun.State]int{jobrun.StateRunning: 1})
		close(step)
		synctest.Wait()
		in = get(t, r, id)
		wantState(t, in, jobrun.StateDone, 1)
		if string(in.Progress) != `{"step":3}` {
			t.Fatalf("progress after done: %s", in.Progress)
		}
	})
}

func TestShutdownWaitsForHandlers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, path := openRunner(t)
		started := make(chan struct{})
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			close(started)
			time.Sleep(time.Minute) // ignores ctx, but finishes within the grace period
			return nil
		})
		runErr := make(chan error, 1)
		go func() { runErr <- r.Run(context.Background()) }()
		id := enqueue(t, r, email{})
		<-started
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
		if err := <-runErr; !errors.Is(err, jobrun.ErrClosed) {
			t.Fatalf("Run returned %v, want ErrClosed", err)
		}
		if _, err := r.Enqueue(t.Context(), email{}); !errors.Is(err, jobrun.ErrClosed) {
			t.Fatalf("enqueue after shutdown: got %v, want ErrClosed", err)
		}
		r2 := reopen(t, path)
		wantState(t, get(t, r2, id), jobrun.StateDone, 1)
	})
}

func TestShutdownDeadlineInterruptsWithoutSpendingAnAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, path := openRunner(t, jobrun.WithQueue(jobrun.DefaultQueue, 2, nil))
		started := make(chan struct{}, 2)
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		})
		go r.Run(context.Background())
		var ids []jobrun.ID
		for i := range 5 { // 2 running, the rest claimed ahead or ready
			ids = append(ids, enqueue(t, r, email{To: fmt.Sprint(i)}))
		}
		<-started
		<-started
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("shutdown: got %v, want DeadlineExceeded", err)
		}
		r2 := reopen(t, path)
		for _, id := range ids {
			in := get(t, r2, id)
			wantState(t, in, jobrun.StateReady, 0)
		}
		wantCounts(t, r2, "", map[jobrun.State]int{jobrun.StateReady: 5})
	})
}

func TestRunContextCancelIsHardStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		started := make(chan struct{})
		var runs atomic.Int64
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			if runs.Add(1) > 1 {
				return nil
			}
			close(started)
			<-ctx.Done()
			return ctx.Err()
		})
		ctx, cancel := context.WithCancel(t.Context())
		runErr := make(chan error, 1)
		go func() { runErr <- r.Run(ctx) }()
		id := enqueue(t, r, email{})
		<-started
		cancel()
		if err := <-runErr; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v, want context.Canceled", err)
		}
		synctest.Wait()
		wantState(t, get(t, r, id), jobrun.StateReady, 0)
		// The runner can run again after its context ended; the interrupted run spent
		// no attempt.
		runUntilIdle(t, r)
		wantState(t, get(t, r, id), jobrun.StateDone, 1)
	})
}

// reopen opens the file at path again, as a restarted process would.
func reopen(t *testing.T, path string, opts ...jobrun.Option) *jobrun.Runner {
	t.Helper()
	r, err := jobrun.Open(path, append([]jobrun.Option{jobrun.WithStrictKinds(false)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRestartResumesJobs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, path := openRunner(t, jobrun.WithQueue(jobrun.DefaultQueue, 2, nil))
		block := make(chan struct{})
		started := make(chan struct{}, 2)
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			started <- struct{}{}
			select {
			case <-block:
			case <-ctx.Done():
			}
			return ctx.Err()
		})
		go r.Run(context.Background())
		var ids []jobrun.ID
		for i := range 10 {
			ids = append(ids, enqueue(t, r, email{To: fmt.Sprint(i)}))
		}
		<-started
		<-started
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}

		r2, err := jobrun.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer r2.Close()
		var ran atomic.Int64
		jobrun.Handle(r2, func(ctx context.Context, j *jobrun.Job[email]) error {
			if j.Attempt != 1 {
				return fmt.Errorf("attempt %d after a restart, want 1", j.Attempt)
			}
			ran.Add(1)
			return nil
		})
		runUntilIdle(t, r2)
		for _, id := range ids {
			wantState(t, get(t, r2, id), jobrun.StateDone, 1)
		}
		if n := ran.Load(); n != 10 {
			t.Fatalf("ran %d jobs after restart, want 10", n)
		}
	})
}

func TestNewSharesTheDatabase(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db, err := bbolt.Open(filepath.Join(t.TempDir(), "app.db"), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.Update(func(tx *bbolt.Tx) error {
			b, err := tx.CreateBucket([]byte("app"))
			if err != nil {
				return err
			}
			return b.Put([]byte("k"), []byte("v"))
		}); err != nil {
			t.Fatal(err)
		}
		r, err := jobrun.New(db)
		if err != nil {
			t.Fatal(err)
		}
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error { return nil })
		id := enqueue(t, r, email{})
		runUntilIdle(t, r)
		wantState(t, get(t, r, id), jobrun.StateDone, 1)
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		// The database is still open, and the application's bucket is untouched.
		err = db.View(func(tx *bbolt.Tx) error {
			if v := tx.Bucket([]byte("app")).Get([]byte("k")); string(v) != "v" {
				return fmt.Errorf("app value %q", v)
			}
			var names []string
			tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
				names = append(names, string(name))
				return nil
			})
			if !slices.Equal(names, []string{"app", "jobrun"}) {
				return fmt.Errorf("top-level buckets %v, want [app jobrun]", names)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestBadInput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error { return nil })
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[unencodable]) error { return nil })
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[big]) error { return nil })
		for _, tc := range []struct {
			name string
			args jobrun.Args
			opts []jobrun.EnqueueOption
			want string
		}{
			{"nil args", nil, nil, "nil args"},
			{"empty queue", email{}, []jobrun.EnqueueOption{jobrun.Queue("")}, "empty queue name"},
			{"control char in queue", email{}, []jobrun.EnqueueOption{jobrun.Queue("a\nb")}, "control character"},
			{"negative delay", email{}, []jobrun.EnqueueOption{jobrun.Delay(-time.Second)}, "negative delay"},
			{"zero max attempts", email{}, []jobrun.EnqueueOption{jobrun.MaxAttempts(0)}, "max attempts"},
			{"backoff min over max", email{}, []jobrun.EnqueueOption{jobrun.Backoff(time.Hour, time.Second)}, "backoff"},
			{"zero timeout", email{}, []jobrun.EnqueueOption{jobrun.Timeout(0)}, "timeout must be positive"},
			{"zero At", email{}, []jobrun.EnqueueOption{jobrun.At(time.Time{})}, "zero time"},
			{"args that do not encode", unencodable{F: math.NaN()}, nil, "encode args"},
			{"args too large", big{B: strings.Repeat("x", jobrun.MaxArgsSize)}, nil, "over the limit of 1048576"},
		} {
			_, err := r.Enqueue(t.Context(), tc.args, tc.opts...)
			if !errors.Is(err, jobrun.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: got %v, want ErrInvalid mentioning %q", tc.name, err, tc.want)
			}
		}
		if _, err := r.Get(t.Context(), 12345); !errors.Is(err, jobrun.ErrNotFound) {
			t.Errorf("get of a missing id: got %v, want ErrNotFound", err)
		}
		if _, err := r.EnqueueMany(t.Context(), []jobrun.Args{email{}, nil}); !errors.Is(err, jobrun.ErrInvalid) {
			t.Errorf("enqueue many with a nil: got %v, want ErrInvalid", err)
		}
		wantCounts(t, r, "", nil) // nothing was stored

		for _, opt := range []jobrun.Option{
			jobrun.WithQueue("q", 0, nil),
			jobrun.WithQueue("", 1, nil),
			jobrun.WithQueue("q", 1, rate.NewLimiter(0, 0)),
			jobrun.WithLockTimeout(0),
			jobrun.WithMaxRecoveries(0),
			jobrun.WithLogger(nil),
		} {
			if _, err := jobrun.Open(filepath.Join(t.TempDir(), "x.db"), opt); !errors.Is(err, jobrun.ErrInvalid) {
				t.Errorf("open with a bad option: got %v, want ErrInvalid", err)
			}
		}
		if _, err := jobrun.New(nil); !errors.Is(err, jobrun.ErrInvalid) {
			t.Errorf("New(nil): got %v, want ErrInvalid", err)
		}
	})
}

type unencodable struct{ F float64 }

func (unencodable) Kind() string { return "unencodable" }

type big struct{ B string }

func (big) Kind() string { return "big" }

func TestClosedRunner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error { return nil })
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()
		checks := map[string]error{
			"Close":        r.Close(),
			"Run":          r.Run(ctx),
			"RunUntilIdle": r.RunUntilIdle(ctx),
			"Shutdown":     r.Shutdown(ctx),
		}
		_, checks["Enqueue"] = r.Enqueue(ctx, email{})
		_, checks["EnqueueMany"] = r.EnqueueMany(ctx, []jobrun.Args{email{}})
		_, checks["Get"] = r.Get(ctx, 1)
		_, checks["Counts"] = r.Counts(ctx, "")
		for name, err := range checks {
			if !errors.Is(err, jobrun.ErrClosed) {
				t.Errorf("%s after Close: got %v, want ErrClosed", name, err)
			}
		}
	})
}

func TestHandlePanicsOnMisuse(t *testing.T) {
	r, _ := openRunner(t)
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error { return nil })
	wantPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: no panic", name)
			}
		}()
		f()
	}
	wantPanic("duplicate kind", func() {
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error { return nil })
	})
	wantPanic("invalid default", func() {
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[resize]) error { return nil }, jobrun.MaxAttempts(-1))
	})
	wantPanic("nil handler", func() { jobrun.Handle[resize](r, nil) })
	if err := r.RunUntilIdle(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantPanic("after running", func() {
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[resize]) error { return nil })
	})
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "jobs.db")
	r, err := jobrun.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
	if _, err := jobrun.Open(path, jobrun.WithLockTimeout(100*time.Millisecond)); !errors.Is(err, jobrun.ErrLocked) {
		t.Fatalf("second open: got %v, want ErrLocked", err)
	}

	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a database ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := jobrun.Open(junk); !errors.Is(err, jobrun.ErrCorrupt) || !strings.Contains(err.Error(), "not a jobrun or bbolt database") {
		t.Fatalf("open of a non-bbolt file: got %v", err)
	}

	newer := filepath.Join(dir, "newer.db")
	db, err := bbolt.Open(newer, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		root, _ := tx.CreateBucket([]byte("jobrun"))
		meta, _ := root.CreateBucket([]byte("meta"))
		return meta.Put([]byte("schema"), []byte{99})
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jobrun.Open(newer); !errors.Is(err, jobrun.ErrSchema) || !strings.Contains(err.Error(), "version 99") {
		t.Fatalf("open of a newer schema: got %v, want ErrSchema naming version 99", err)
	}

	if _, err := jobrun.Open(filepath.Join(dir, "missing", "dir", "jobs.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open in a missing directory: got %v, want ErrNotExist", err)
	}
}

// TestStopWhileRunStarts: Shutdown or Close racing Run's start must stop the session,
// not wait out Shutdown's context or hang in Close. The race needs real interleavings,
// so this runs outside a bubble, varying how long Run gets before the stop; a stop
// that waits for its hour-long deadline is the failure.
func TestStopWhileRunStarts(t *testing.T) {
	iterations := 300
	if testing.Short() {
		iterations = 50
	}
	dir := t.TempDir()
	for i := range iterations {
		r, err := jobrun.Open(filepath.Join(dir, fmt.Sprint(i, ".db")), jobrun.WithQueue("wide", 100, nil))
		if err != nil {
			t.Fatal(err)
		}
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error { return nil })
		for range 5 {
			enqueue(t, r, email{})
		}
		runDone := make(chan struct{})
		go func() {
			defer close(runDone)
			r.Run(context.Background())
		}()
		for spin := range i % 40 * 200 { // vary where the stop lands in Run's start
			_ = spin
		}
		stopped := make(chan error, 1)
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		go func() {
			if i%2 == 0 {
				stopped <- r.Close()
			} else {
				stopped <- r.Shutdown(ctx)
			}
		}()
		select {
		case err := <-stopped:
			if err != nil {
				t.Fatalf("iteration %d: stop returned %v", i, err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("iteration %d: stop still blocked after a minute", i)
		}
		cancel()
		<-runDone
	}
}

// TestExactBackoff: Backoff(2s, ...) with Jitter(0) retries after exactly 2s, 4s and
// 8s, as a port of BullMQ's {type: 'exponential', delay: 2000} expects.
func TestExactBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		var runs []time.Time
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			runs = append(runs, time.Now())
			if len(runs) < 4 {
				return errors.New("not yet")
			}
			return nil
		})
		id := enqueue(t, r, email{}, jobrun.Backoff(2*time.Second, time.Minute), jobrun.Jitter(0))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		time.Sleep(time.Minute)
		synctest.Wait()
		cancel()
		<-done
		wantState(t, get(t, r, id), jobrun.StateDone, 4)
		for i, want := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second} {
			if got := runs[i+1].Sub(runs[i]); got != want {
				t.Fatalf("retry %d after %v, want %v", i+1, got, want)
			}
		}
		if _, err := r.Enqueue(t.Context(), email{}, jobrun.Jitter(1.5)); !errors.Is(err, jobrun.ErrInvalid) {
			t.Fatalf("Jitter(1.5): got %v, want ErrInvalid", err)
		}
	})
}

// TestDeadLetterIsLogged: at the info level, a failed attempt that will retry is a
// warning and a job that fails for good an error, with its id, kind, queue, attempts
// and error; starts and completions are not logged.
func TestDeadLetterIsLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs strings.Builder
		r, _ := openRunner(t, jobrun.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))))
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			if j.Args.To == "ok" {
				return nil
			}
			return errors.New("mailbox full")
		}, jobrun.MaxAttempts(2), jobrun.Backoff(time.Second, time.Second))
		id := enqueue(t, r, email{To: "x"})
		enqueue(t, r, email{To: "ok"})
		runUntilIdle(t, r)
		time.Sleep(time.Second)
		runUntilIdle(t, r)
		out := logs.String()
		want := []string{
			fmt.Sprintf(`level=WARN msg="jobrun: attempt failed; the job will retry" id=%d kind=email queue=default attempts=1 max_attempts=2 error="mailbox full"`, id),
			fmt.Sprintf(`level=ERROR msg="jobrun: job failed for good; it stays failed (the dead-letter set) until retried or cleaned" id=%d kind=email queue=default attempts=2 max_attempts=2 error="mailbox full"`, id),
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("the log lacks %s; it holds:\n%s", w, out)
			}
		}
		if n := strings.Count(out, "\n"); n != 2 {
			t.Errorf("%d log lines at info level, want the 2 about the failing job:\n%s", n, out)
		}
	})
}

// TestNewNamesTheFile: New's errors name the database's file, as Open's do: a
// second runner on it, and a database whose "jobrun" bucket holds other data.
func TestNewNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r, err := jobrun.New(db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jobrun.New(db); !errors.Is(err, jobrun.ErrInvalid) || !strings.Contains(err.Error(), path) {
		t.Errorf("a second runner: %v; want ErrInvalid naming %s", err, path)
	}
	r.Close()

	other := filepath.Join(t.TempDir(), "other.db")
	db2, err := bbolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if err := db2.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte("jobrun"))
		if err != nil {
			return err
		}
		return b.Put([]byte("theirs"), []byte("x"))
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := jobrun.New(db2); !errors.Is(err, jobrun.ErrSchema) || !strings.Contains(err.Error(), other) {
		t.Errorf("a foreign jobrun bucket: %v; want ErrSchema naming %s", err, other)
	}
}
