package jobrun_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobrun/jobrun"
)

type call struct {
	Customer string `json:"customer"`
	N        int    `json:"n"`
}

func (call) Kind() string { return "call" }

// keyTracker records which jobs of each key run at once.
type keyTracker struct {
	mu      sync.Mutex
	running map[string]int
	most    map[string]int
	order   map[string][]int
	release map[string]chan struct{} // a key's handlers wait on it, if set
}

func newKeyTracker() *keyTracker {
	return &keyTracker{running: map[string]int{}, most: map[string]int{}, order: map[string][]int{},
		release: map[string]chan struct{}{}}
}

func (k *keyTracker) handle(ctx context.Context, j *jobrun.Job[call]) error {
	c := j.Args.Customer
	k.mu.Lock()
	k.running[c]++
	k.most[c] = max(k.most[c], k.running[c])
	k.order[c] = append(k.order[c], j.Args.N)
	wait := k.release[c]
	k.mu.Unlock()
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
		}
	}
	k.mu.Lock()
	k.running[c]--
	k.mu.Unlock()
	return ctx.Err()
}

func TestKeyConcurrencyOneAtATimePerKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t, jobrun.WithQueue("api", 4, nil), jobrun.WithKeyLimits("api", 1, 0, 0))
		k := newKeyTracker()
		blockA := make(chan struct{})
		k.release["A"] = blockA
		jobrun.Handle(r, k.handle, jobrun.Queue("api"))
		var a []jobrun.ID
		for n := range 3 {
			a = append(a, enqueue(t, r, call{"A", n}, jobrun.ConcurrencyKey("A")))
			enqueue(t, r, call{"B", n}, jobrun.ConcurrencyKey("B"))
			enqueue(t, r, call{"none", n})
		}
		// The queue's ready index holds one job per key; the rest wait for a slot
		// but are ready all the same.
		wantCounts(t, r, "api", map[jobrun.State]int{jobrun.StateReady: 9})
		if got := listIDs(t, r, jobrun.Filter{Queue: "api", State: jobrun.StateReady}); len(got) != 9 {
			t.Fatalf("List of ready jobs: %d, want 9", len(got))
		}

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		synctest.Wait()
		k.mu.Lock()
		gotB, gotNone, gotA := slices.Clone(k.order["B"]), len(k.order["none"]), slices.Clone(k.order["A"])
		k.mu.Unlock()
		// A's first job holds A's only slot; B and the keyless jobs are not held up.
		if !slices.Equal(gotA, []int{0}) || !slices.Equal(gotB, []int{0, 1, 2}) || gotNone != 3 {
			t.Fatalf("while A's first job runs: A ran %v, B ran %v, %d keyless ran", gotA, gotB, gotNone)
		}
		if in := get(t, r, a[1]); in.State != jobrun.StateReady || in.ConcurrencyKey != "A" {
			t.Fatalf("A's second job is %s while the first runs", in.State)
		}
		// Canceling a job that waits for a slot frees nothing it did not hold.
		if err := r.Cancel(t.Context(), a[1]); err != nil {
			t.Fatal(err)
		}
		close(blockA)
		synctest.Wait()
		cancel()
		<-done
		if !slices.Equal(k.order["A"], []int{0, 2}) || k.most["A"] != 1 || k.most["B"] != 1 {
			t.Fatalf("A ran %v (at most %d at once), B at most %d at once", k.order["A"], k.most["A"], k.most["B"])
		}
		wantCounts(t, r, "api", map[jobrun.State]int{jobrun.StateDone: 8, jobrun.StateCanceled: 1})
		if m, err := r.CheckCounts(t.Context(), false); err != nil || len(m) != 0 {
			t.Fatalf("counts: %v %v", m, err)
		}
	})
}

func TestKeyConcurrencyHoldsAcrossRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := []jobrun.Option{jobrun.WithQueue("api", 4, nil), jobrun.WithKeyLimits("api", 2, 0, 0)}
		r, path := openRunner(t, opts...)
		k := newKeyTracker()
		k.release["A"] = make(chan struct{}) // never closed: Close interrupts them
		jobrun.Handle(r, k.handle, jobrun.Queue("api"))
		for n := range 6 {
			enqueue(t, r, call{"A", n}, jobrun.ConcurrencyKey("A"))
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		synctest.Wait()
		k.mu.Lock()
		got := slices.Sorted(slices.Values(k.order["A"])) // two workers start them at once
		k.mu.Unlock()
		if !slices.Equal(got, []int{0, 1}) {
			t.Fatalf("first run: A ran %v, want its first two", got)
		}
		cancel()
		<-done
		r.Close()

		r2 := reopen(t, path, opts...)
		k2 := newKeyTracker()
		jobrun.Handle(r2, k2.handle, jobrun.Queue("api"))
		runUntilIdle(t, r2)
		if k2.most["A"] > 2 || !slices.Equal(slices.Sorted(slices.Values(k2.order["A"])), []int{0, 1, 2, 3, 4, 5}) {
			t.Fatalf("after restart: A ran %v, at most %d at once", k2.order["A"], k2.most["A"])
		}
		wantCounts(t, r2, "api", map[jobrun.State]int{jobrun.StateDone: 6})
	})
}

func TestKeyLimitsRaisedAtRestartAdmitWaitingJobs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, path := openRunner(t, jobrun.WithQueue("api", 8, nil), jobrun.WithKeyLimits("api", 1, 0, 0), jobrun.WithStrictKinds(false))
		for n := range 4 {
			enqueue(t, r, call{"A", n}, jobrun.ConcurrencyKey("A"), jobrun.Queue("api"))
		}
		r.Close()
		r2 := reopen(t, path, jobrun.WithQueue("api", 8, nil), jobrun.WithKeyLimits("api", 3, 0, 0))
		k := newKeyTracker()
		k.release["A"] = make(chan struct{})
		jobrun.Handle(r2, k.handle, jobrun.Queue("api"))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- r2.Run(ctx) }()
		synctest.Wait()
		k.mu.Lock()
		running := k.running["A"]
		k.mu.Unlock()
		if running != 3 {
			t.Fatalf("%d of key A run at once after raising its limit to 3", running)
		}
		close(k.release["A"])
		synctest.Wait()
		cancel()
		<-done
		wantCounts(t, r2, "api", map[jobrun.State]int{jobrun.StateDone: 4})
	})
}

func TestKeyRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Per key: 2 starts a second, bursts of 1; the queue itself is not limited.
		r, _ := openRunner(t, jobrun.WithQueue("api", 8, nil), jobrun.WithKeyLimits("api", 8, 2, 1))
		var mu sync.Mutex
		starts := map[string][]time.Time{}
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[call]) error {
			mu.Lock()
			starts[j.Args.Customer] = append(starts[j.Args.Customer], time.Now())
			mu.Unlock()
			return nil
		}, jobrun.Queue("api"))
		for n := range 10 {
			enqueue(t, r, call{"A", n}, jobrun.ConcurrencyKey("A"))
			enqueue(t, r, call{"B", n}, jobrun.ConcurrencyKey("B"))
		}
		for n := range 10 {
			enqueue(t, r, call{"free", n})
		}
		start := time.Now()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		if len(starts["free"]) != 10 || !starts["free"][9].Equal(start) {
			t.Fatalf("keyless jobs were held up: %d started, last at +%v", len(starts["free"]), starts["free"][len(starts["free"])-1].Sub(start))
		}
		for _, key := range []string{"A", "B"} {
			got := starts[key]
			if len(got) != 10 {
				t.Fatalf("key %s: %d of 10 started in 10s at 2/s", key, len(got))
			}
			// In any window of one second, at most burst + rate = 3 starts.
			for i := range got {
				n := 0
				for _, at := range got[i:] {
					if at.Sub(got[i]) < time.Second {
						n++
					}
				}
				if n > 3 {
					t.Fatalf("key %s: %d starts within a second from +%v", key, n, got[i].Sub(start))
				}
			}
		}
	})
}

func TestKeyLimitsBadInput(t *testing.T) {
	for _, opt := range []jobrun.Option{
		jobrun.WithKeyLimits("api", 0, 0, 0),
		jobrun.WithKeyLimits("api", 1, -1, 1),
		jobrun.WithKeyLimits("api", 1, 5, 0),
		jobrun.WithKeyLimits("", 1, 0, 0),
	} {
		if _, err := jobrun.Open(t.TempDir()+"/jobs.db", opt); !errors.Is(err, jobrun.ErrInvalid) {
			t.Errorf("bad key limits: %v, want ErrInvalid", err)
		}
	}
	r, _ := openRunner(t, jobrun.WithStrictKinds(false))
	if _, err := r.Enqueue(t.Context(), call{}, jobrun.ConcurrencyKey("")); !errors.Is(err, jobrun.ErrInvalid) {
		t.Errorf("empty concurrency key: %v", err)
	}
}

// TestKeyLimitCountsAbandonedHandler: a handler that ignores its context past its
// Timeout is abandoned (its attempt fails, its worker slot goes to the next job), but
// it still runs, so its concurrency key's slot stays taken until it returns: with a
// limit of 1, no other job of the key starts meanwhile. A restart frees the slot of
// a handler the old process abandoned.
func TestKeyLimitCountsAbandonedHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := []jobrun.Option{jobrun.WithQueue("api", 4, nil), jobrun.WithKeyLimits("api", 1, 0, 0)}
		r, path := openRunner(t, opts...)
		var mu sync.Mutex
		running, most, started := 0, 0, 0
		stuck := make(chan struct{})
		defer close(stuck)
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[call]) error {
			mu.Lock()
			running++
			most, started = max(most, running), started+1
			mu.Unlock()
			defer func() {
				mu.Lock()
				running--
				mu.Unlock()
			}()
			if j.Args.N == 0 {
				<-stuck // ignores its context
			}
			return nil
		}, jobrun.Queue("api"), jobrun.Timeout(time.Second), jobrun.MaxAttempts(1))
		first := enqueue(t, r, call{"A", 0}, jobrun.ConcurrencyKey("A"))
		second := enqueue(t, r, call{"A", 1}, jobrun.ConcurrencyKey("A"))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		time.Sleep(time.Minute) // long past the first job's timeout
		synctest.Wait()
		if in := get(t, r, first); in.State != jobrun.StateFailed {
			t.Fatalf("the abandoned job is %s, want failed", in.State)
		}
		mu.Lock()
		n := started
		mu.Unlock()
		if n != 1 {
			t.Fatalf("%d jobs of key A started while the abandoned handler still runs, want 1", n)
		}
		if in := get(t, r, second); in.State != jobrun.StateReady {
			t.Fatalf("the key's next job is %s, want ready, waiting for the slot", in.State)
		}
		// The application stops with the handler still stuck; the next process does
		// not have it, so its slot is free there.
		cancel()
		<-done
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		r = reopen(t, path, opts...)
		ran := make(chan int, 1)
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[call]) error {
			ran <- j.Args.N
			return nil
		}, jobrun.Queue("api"))
		runUntilIdle(t, r)
		if got := <-ran; got != 1 {
			t.Fatalf("after the restart job %d ran, want 1", got)
		}
		if most != 1 {
			t.Fatalf("%d jobs of key A ran at once, want 1", most)
		}
	})
}

// TestKeySlotFreedWhenAbandonedHandlerReturns: once the abandoned handler returns,
// its slot goes to the key's next job at once.
func TestKeySlotFreedWhenAbandonedHandlerReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t, jobrun.WithQueue("api", 4, nil), jobrun.WithKeyLimits("api", 1, 0, 0))
		stuck := make(chan struct{})
		var order []int
		var mu sync.Mutex
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[call]) error {
			mu.Lock()
			order = append(order, j.Args.N)
			mu.Unlock()
			if j.Args.N == 0 {
				<-stuck
			}
			return nil
		}, jobrun.Queue("api"), jobrun.Timeout(time.Second), jobrun.MaxAttempts(1))
		enqueue(t, r, call{"A", 0}, jobrun.ConcurrencyKey("A"))
		second := enqueue(t, r, call{"A", 1}, jobrun.ConcurrencyKey("A"))
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		time.Sleep(time.Minute)
		synctest.Wait()
		close(stuck)
		synctest.Wait()
		if in := get(t, r, second); in.State != jobrun.StateDone {
			t.Fatalf("after the abandoned handler returned, the key's next job is %s, want done", in.State)
		}
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(order, []int{0, 1}) {
			t.Fatalf("order %v", order)
		}
		cancel()
		<-done
	})
}
