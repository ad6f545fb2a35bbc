package jobrun_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobrun/jobrun"
)

// ranked is a job whose handler records its name in the order the jobs start; the
// job named "blocker" waits until release is closed.
type ranked struct {
	Name string `json:"name"`
}

func (ranked) Kind() string { return "ranked" }

// startOrder registers a ranked handler on queue "one" and returns a channel that
// receives the name of each job as it starts, and release, which lets the job named
// "blocker" return.
func startOrder(r *jobrun.Runner) (starts <-chan string, release func()) {
	names, unblock := make(chan string, 100), make(chan struct{})
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[ranked]) error {
		names <- j.Args.Name
		if j.Args.Name == "blocker" {
			<-unblock
		}
		return nil
	}, jobrun.Queue("one"))
	return names, sync.OnceFunc(func() { close(unblock) })
}

// priorityRace runs the case of a one-worker queue busy with a job while four jobs of
// priority 0 are claimed ahead of it, then one of priority 10 arrives: that one must
// start next, and the queue must never count more running jobs than its worker.
func priorityRace(t *testing.T, settle func()) {
	r, _ := openRunner(t, jobrun.WithQueue("one", 1, nil))
	starts, release := startOrder(r)
	defer release()
	enqueue(t, r, ranked{Name: "blocker"})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	order := []string{<-starts}
	for _, name := range []string{"low1", "low2", "low3", "low4"} {
		enqueue(t, r, ranked{Name: name})
	}
	settle() // the four are claimed ahead of the busy worker
	enqueue(t, r, ranked{Name: "high"}, jobrun.Priority(10))
	counts, err := r.Counts(t.Context(), "one")
	if err != nil {
		t.Fatal(err)
	}
	if counts[jobrun.StateRunning] > 1 || counts[jobrun.StateRunning]+counts[jobrun.StateReady] != 6 {
		t.Fatalf("one worker, one job started, five waiting: counts %v", counts)
	}
	release()
	for len(order) < 6 {
		order = append(order, <-starts)
	}
	if got, want := order, []string{"blocker", "high", "low1", "low2", "low3", "low4"}; !slices.Equal(got, want) {
		t.Fatalf("start order %v, want %v", got, want)
	}
}

func TestPriorityBeatsClaimAheadWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { priorityRace(t, synctest.Wait) })
}

func TestPriorityBeatsClaimAheadWindowRealTime(t *testing.T) {
	// No settling: Enqueue returns once its job is in the lineup if it was claimed,
	// so the order holds whatever the commits' timing.
	priorityRace(t, func() {})
}

// TestRunningNeverExceedsWorkers: at every commit, the queue's running count (what
// Counts, Queues, the dashboard and the metrics show) is at most its workers,
// while jobs of mixed priorities are claimed ahead and finish.
func TestRunningNeverExceedsWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const workers = 3
		var r *jobrun.Runner
		var mu sync.Mutex
		most, commits := 0, 0
		r, _ = openRunner(t, jobrun.WithQueue("one", workers, nil), jobrun.WithChangeHook(func(ev jobrun.Change) {
			infos, err := r.Queues(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			for _, qi := range infos {
				if qi.Name == "one" {
					mu.Lock()
					most, commits = max(most, qi.Counts[jobrun.StateRunning]), commits+1
					mu.Unlock()
				}
			}
		}))
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[ranked]) error {
			time.Sleep(time.Duration(len(j.Args.Name)) * time.Millisecond)
			return nil
		}, jobrun.Queue("one"))
		for i := range 300 {
			enqueue(t, r, ranked{Name: strings.Repeat("x", i%7)}, jobrun.Priority(i%5))
		}
		runUntilIdle(t, r)
		wantCounts(t, r, "one", map[jobrun.State]int{jobrun.StateDone: 300})
		if most > workers || most == 0 || commits == 0 {
			t.Fatalf("running peaked at %d over %d events, want 1 to %d", most, commits, workers)
		}
	})
}
