package jobrun_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/jobrun/jobrun"
	"go.etcd.io/bbolt"
)

// TestSoak pushes a stream of jobs through a runner with retention on and checks that
// what a long-running service cares about stays flat: goroutines, Go heap, file size.
// It runs 100,000 jobs by default (10,000 with -short); JOBRUN_SOAK_JOBS sets the
// number, e.g. 1000000 for the figures in docs/RELIABILITY.md.
func TestSoak(t *testing.T) {
	total := 100_000
	if testing.Short() {
		total = 10_000
	}
	if s := os.Getenv("JOBRUN_SOAK_JOBS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 10_000 {
			t.Fatalf("JOBRUN_SOAK_JOBS=%q: want a number of jobs >= 10000", s)
		}
		total = n
	}
	const batch = 1000
	var (
		window = min(20*batch, total/5) // jobs enqueued and not yet done, at most
		keep   = min(5000, total/20)    // done jobs retention keeps per queue
	)
	// Each done event returns a token; the producer takes one per job it enqueues
	// beyond the window, so the backlog stays bounded without polling.
	tokens := make(chan struct{}, window)
	r, path := openRunner(t, jobrun.WithQueue("soak", 16, nil),
		jobrun.WithRetention("", jobrun.Retention{MaxDone: keep}),
		jobrun.WithChangeHook(func(e jobrun.Change) {
			if e.Type == jobrun.ChangeDone {
				tokens <- struct{}{}
			}
		}))
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
		return j.SetResult(len(j.Args.To))
	}, jobrun.Queue("soak"))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()

	type sample struct {
		jobs       int
		goroutines int
		heapMiB    float64
		usedMiB    float64
		fileMiB    float64 // bbolt grows the file ahead of use, doubling up to 1 GiB
	}
	var samples []sample
	measure := func(jobs int) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		var used int64 // the pages in use up to the highest one: what the file needs
		r.DB().View(func(tx *bbolt.Tx) error {
			used = tx.Size()
			return nil
		})
		samples = append(samples, sample{jobs, runtime.NumGoroutine(), float64(ms.HeapInuse) / (1 << 20),
			float64(used) / (1 << 20), float64(fi.Size()) / (1 << 20)})
	}
	args := make([]jobrun.Args, batch)
	for sent := 0; sent < total; sent += batch {
		for i := range args {
			args[i] = email{To: fmt.Sprintf("user-%d@example.com", sent+i)}
		}
		if sent >= window {
			for range batch {
				<-tokens
			}
		}
		if _, err := r.EnqueueMany(t.Context(), args); err != nil {
			t.Fatal(err)
		}
		if (sent+batch)%(total/10) == 0 {
			measure(sent + batch)
		}
	}
	for range min(total, window) {
		<-tokens
	}
	cancel()
	<-done

	for _, s := range samples {
		t.Logf("soak: %8d jobs enqueued: %3d goroutines, heap in use %5.1f MiB, pages in use %6.1f MiB, file %6.1f MiB",
			s.jobs, s.goroutines, s.heapMiB, s.usedMiB, s.fileMiB)
	}
	// From the third sample on, the runner is in its steady state: retention deletes
	// as many jobs as finish.
	base, last := samples[2], samples[len(samples)-1]
	if last.goroutines > base.goroutines+2 {
		t.Errorf("goroutines grew from %d to %d", base.goroutines, last.goroutines)
	}
	if last.heapMiB > 2*base.heapMiB+8 {
		t.Errorf("heap grew from %.1f to %.1f MiB", base.heapMiB, last.heapMiB)
	}
	// Over a million jobs the pages in use stayed within 4% of the third sample; the
	// margin leaves room for bbolt's free pages fragmenting as job IDs move on.
	if last.usedMiB > 1.25*base.usedMiB+1 {
		t.Errorf("pages in use grew from %.1f to %.1f MiB with retention on", base.usedMiB, last.usedMiB)
	}
	counts, err := r.Counts(t.Context(), "soak")
	if err != nil {
		t.Fatal(err)
	}
	if counts[jobrun.StateDone] > keep+window {
		t.Errorf("%d done jobs kept; retention keeps %d", counts[jobrun.StateDone], keep)
	}
}
