package jobrun

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/time/rate"
)

type sleepArgs struct{}

func (sleepArgs) Kind() string { return "sleep" }

// TestBusyRateLimitedQueueDoesNotSpin: once a rate-limited queue's workers are all
// busy, the loop must sleep until a worker finishes, not wake for a token time that
// has passed.
func TestBusyRateLimitedQueueDoesNotSpin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lim := rate.NewLimiter(rate.Every(time.Second), 1)
		r, err := Open(filepath.Join(t.TempDir(), "jobs.db"), WithQueue("q", 2, lim))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		Handle(r, func(ctx context.Context, j *Job[sleepArgs]) error {
			select {
			case <-time.After(time.Hour):
			case <-ctx.Done():
			}
			return nil
		}, Queue("q"))
		for range 10 {
			if _, err := r.Enqueue(t.Context(), sleepArgs{}); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.Run(ctx)
		time.Sleep(time.Minute + time.Second) // tokens for all claims, the minute's history stored, workers busy for an hour
		synctest.Wait()
		before := r.cycles.Load()
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		if n := r.cycles.Load() - before; n > 0 {
			t.Fatalf("the loop ran %d cycles while every worker was busy and nothing changed", n)
		}
	})
}

// TestIdleRunnerSleeps: with nothing to do, the loop blocks; time passing wakes it
// only for a scheduled job (and once, a minute after activity, to store the
// minute's history).
func TestIdleRunnerSleeps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, err := Open(filepath.Join(t.TempDir(), "jobs.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		Handle(r, func(ctx context.Context, j *Job[sleepArgs]) error { return nil })
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.Run(ctx)
		if _, err := r.Enqueue(t.Context(), sleepArgs{}, Delay(time.Hour)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute + time.Second) // the enqueue's minute ends: its history is stored
		synctest.Wait()
		before := r.cycles.Load()
		time.Sleep(58 * time.Minute)
		synctest.Wait()
		if n := r.cycles.Load() - before; n != 0 {
			t.Fatalf("an idle runner ran %d cycles", n)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		// The promotion and claim, the start note, the outcome: each may have a
		// cycle of its own, and a start note that arrives after its job's outcome
		// wakes the loop for nothing (engine.cycle drops it), which -race's
		// scheduling makes common.
		if n := r.cycles.Load() - before; n == 0 || n > 4 {
			t.Fatalf("the delayed job took %d cycles, want 1 to 4", n)
		}
		c, _ := r.Counts(ctx, "")
		if c[StateDone] != 1 {
			t.Fatalf("counts %v, want the delayed job done", c)
		}
	})
}

// TestConcurrentEnqueuesShareCommits: producers that wait for their own durable
// commit still share fsyncs, because the loop commits whatever arrived while the
// previous commit ran.
func TestConcurrentEnqueuesShareCommits(t *testing.T) {
	r, err := Open(filepath.Join(t.TempDir(), "jobs.db"), WithStrictKinds(false))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const producers, each = 16, 50
	before := r.commits.Load()
	var wg sync.WaitGroup
	for range producers {
		wg.Go(func() {
			for range each {
				if _, err := r.Enqueue(t.Context(), sleepArgs{}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	commits := r.commits.Load() - before
	if commits*2 > producers*each {
		t.Fatalf("%d enqueues took %d commits: concurrent producers should share them", producers*each, commits)
	}
	t.Logf("%d enqueues from %d producers in %d commits", producers*each, producers, commits)
	c, _ := r.Counts(t.Context(), "")
	if c[StateReady] != producers*each {
		t.Fatalf("counts %v, want %d ready", c, producers*each)
	}
}

func TestClaimAheadWindowFollowsRunTime(t *testing.T) {
	q := &queueState{workers: 16, prefetch: initialPrefetch(16), maxPrefetch: maxPrefetchOf(16)}
	if q.prefetch != 32 {
		t.Fatalf("initial window %d, want 2 per worker", q.prefetch)
	}
	const commit = 700 * time.Microsecond
	for _, c := range []struct {
		run  time.Duration
		want int
	}{
		{10 * time.Microsecond, 128}, // far shorter than a commit: the widest window
		{time.Millisecond, 23},       // 16 workers × 2 × 0.7 ms / 1 ms, plus one
		{time.Second, minPrefetch},   // slow jobs: barely any claimed ahead
	} {
		q.runTime = c.run
		q.resize(commit)
		if q.prefetch != c.want {
			t.Errorf("jobs of %v: window %d, want %d", c.run, q.prefetch, c.want)
		}
	}
	q.runTime = 0
	q.resize(commit)
	if q.prefetch != minPrefetch {
		t.Errorf("an unmeasured run time changed the window to %d", q.prefetch)
	}
	if n := maxPrefetchOf(100); n != maxPrefetch {
		t.Errorf("window of 100 workers %d, want the cap %d", n, maxPrefetch)
	}
}
