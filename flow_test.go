package jobrun_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobrun/jobrun"
)

func TestPromote(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		var failed atomic.Bool
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			if j.Args.To == "flaky" && !failed.Swap(true) {
				return errors.New("first attempt fails")
			}
			return nil
		}, jobrun.Backoff(time.Hour, time.Hour))
		later := enqueue(t, r, email{To: "later"}, jobrun.Delay(24*time.Hour))
		flaky := enqueue(t, r, email{To: "flaky"})
		runUntilIdle(t, r)
		wantState(t, get(t, r, flaky), jobrun.StateRetrying, 1)
		wantState(t, get(t, r, later), jobrun.StateScheduled, 0)

		for _, id := range []jobrun.ID{later, flaky} {
			if err := r.Promote(t.Context(), id); err != nil {
				t.Fatal(err)
			}
		}
		wantState(t, get(t, r, later), jobrun.StateReady, 0)
		runUntilIdle(t, r)
		wantState(t, get(t, r, later), jobrun.StateDone, 1)
		wantState(t, get(t, r, flaky), jobrun.StateDone, 2)
		wantCounts(t, r, "", map[jobrun.State]int{jobrun.StateDone: 2})

		if err := r.Promote(t.Context(), later); !errors.Is(err, jobrun.ErrState) {
			t.Fatalf("promote of a done job: got %v, want ErrState", err)
		}
		if err := r.Promote(t.Context(), 999); !errors.Is(err, jobrun.ErrNotFound) {
			t.Fatalf("promote of a missing job: got %v, want ErrNotFound", err)
		}
	})
}

func TestPauseResumePersists(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, path := openRunner(t, jobrun.WithQueue("mail", 2, nil))
		var ran atomic.Int64
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			ran.Add(1)
			return nil
		}, jobrun.Queue("mail"))
		if err := r.Pause(t.Context(), "mail"); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			enqueue(t, r, email{}) // enqueueing into a paused queue works
		}
		runUntilIdle(t, r)
		if n := ran.Load(); n != 0 {
			t.Fatalf("a paused queue ran %d jobs", n)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}

		r2, err := jobrun.Open(path, jobrun.WithQueue("mail", 2, nil))
		if err != nil {
			t.Fatal(err)
		}
		defer r2.Close()
		jobrun.Handle(r2, func(ctx context.Context, j *jobrun.Job[email]) error {
			ran.Add(1)
			return nil
		}, jobrun.Queue("mail"))
		if paused, err := queueIsPaused(t.Context(), r2, "mail"); err != nil || !paused {
			t.Fatalf("after restart: paused %v (%v), want true", paused, err)
		}
		runUntilIdle(t, r2)
		if n := ran.Load(); n != 0 {
			t.Fatalf("a paused queue ran %d jobs after a restart", n)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r2.Run(ctx)
		synctest.Wait()
		if err := r2.Resume(t.Context(), "mail"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if n := ran.Load(); n != 3 {
			t.Fatalf("after resume ran %d jobs, want 3", n)
		}
	})
}

func TestPauseHandsBackClaimedJobs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t, jobrun.WithQueue("slow", 1, nil))
		started := make(chan struct{}, 10)
		release := make(chan struct{})
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			started <- struct{}{}
			<-release
			return nil
		}, jobrun.Queue("slow"))
		for range 5 {
			enqueue(t, r, email{})
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.Run(ctx)
		<-started
		synctest.Wait() // the worker runs one job; more are claimed ahead
		if err := r.Pause(t.Context(), "slow"); err != nil {
			t.Fatal(err)
		}
		close(release)
		synctest.Wait()
		wantCounts(t, r, "slow", map[jobrun.State]int{jobrun.StateDone: 1, jobrun.StateReady: 4})
		if len(started) != 0 {
			t.Fatalf("%d jobs started after the pause", len(started))
		}
	})
}

func TestUniqueKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, path := openRunner(t)
		var ran atomic.Int64
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			ran.Add(1)
			return nil
		})
		first := enqueue(t, r, email{To: "a"}, jobrun.UniqueKey("user-1"))
		id, err := r.Enqueue(t.Context(), email{To: "b"}, jobrun.UniqueKey("user-1"))
		if !errors.Is(err, jobrun.ErrDuplicate) || id != first {
			t.Fatalf("duplicate: got id %d err %v, want id %d and ErrDuplicate", id, err, first)
		}
		other := enqueue(t, r, email{To: "c"}, jobrun.UniqueKey("user-2"))
		ids, err := r.EnqueueMany(t.Context(), []jobrun.Args{email{}, email{}}, jobrun.UniqueKey("user-2"))
		if !errors.Is(err, jobrun.ErrDuplicate) || ids[0] != other || ids[1] != other {
			t.Fatalf("enqueue many: got %v %v", ids, err)
		}
		if in := get(t, r, first); in.UniqueKey != "user-1" || string(in.RawArgs) != `{"to":"a"}` {
			t.Fatalf("the first job changed: %+v", in)
		}
		if err := r.Close(); err != nil { // the index survives a restart
			t.Fatal(err)
		}
		r = reopen(t, path)
		if id, err := r.Enqueue(t.Context(), email{}, jobrun.UniqueKey("user-1")); !errors.Is(err, jobrun.ErrDuplicate) || id != first {
			t.Fatalf("after restart: got %d %v", id, err)
		}
		wantCounts(t, r, "", map[jobrun.State]int{jobrun.StateReady: 2})
	})
}

func TestUniqueKeyFreedWhenFinished(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t, jobrun.WithStrictKinds(false))
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error { return nil })
		first := enqueue(t, r, email{}, jobrun.UniqueKey("k"))
		runUntilIdle(t, r)
		second := enqueue(t, r, email{}, jobrun.UniqueKey("k"))
		if second == first {
			t.Fatal("a finished job still held its unique key")
		}
		// Keys are per kind.
		enqueue(t, r, resize{}, jobrun.UniqueKey("k"))
	})
}

func TestThrottle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error { return nil })
		daily := jobrun.Throttle("digest", 24*time.Hour)
		first := enqueue(t, r, email{}, daily)
		runUntilIdle(t, r)
		time.Sleep(23 * time.Hour)
		if id, err := r.Enqueue(t.Context(), email{}, daily); !errors.Is(err, jobrun.ErrDuplicate) || id != first {
			t.Fatalf("within the period, after the job finished: got %d %v, want %d and ErrDuplicate", id, err, first)
		}
		time.Sleep(time.Hour)
		if second := enqueue(t, r, email{}, daily); second == first {
			t.Fatal("the period ended but the key was still held")
		}
	})
}

func TestDebounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		var got []string
		var at []time.Time
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			got, at = append(got, j.Args.To), append(at, time.Now())
			return nil
		})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.Run(ctx)
		start := time.Now()
		var ids []jobrun.ID
		for _, to := range []string{"v1", "v2", "v3"} {
			ids = append(ids, enqueue(t, r, email{To: to}, jobrun.Debounce("search-index", 10*time.Second)))
			time.Sleep(5 * time.Second) // each enqueue comes before the previous delay ran out
		}
		if ids[1] != ids[0] || ids[2] != ids[0] {
			t.Fatalf("debounced enqueues got ids %v, want one job", ids)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if len(got) != 1 || got[0] != "v3" || at[0].Sub(start) != 20*time.Second {
			t.Fatalf("ran %v at %v after start, want [v3] once at 20s", got, at)
		}
		// After it ran, the next enqueue is a new job.
		if next := enqueue(t, r, email{To: "v4"}, jobrun.Debounce("search-index", time.Second)); next == ids[0] {
			t.Fatal("a debounce after the job ran reused it")
		}
	})
}
