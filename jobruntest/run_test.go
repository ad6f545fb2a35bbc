package jobruntest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/jobruntest"
)

// task is a job that fails its first Fail attempts, or ends with Permanent if
// Permanent is set. Its behaviour depends only on the stored attempt, so it holds
// across restarts.
type task struct {
	Name      string
	Fail      int
	Permanent bool
}

func (task) Kind() string { return "task" }

// runs records when each job ran, in fake time since the bubble began. Handlers run
// concurrently: read at only while no runner runs.
type runs struct {
	start time.Time
	mu    sync.Mutex
	at    map[jobrun.ID][]time.Duration
}

func newRuns() *runs { return &runs{start: time.Now(), at: map[jobrun.ID][]time.Duration{}} }

// handle registers a task handler on r that records its runs.
func (rs *runs) handle(r *jobrun.Runner) {
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[task]) error {
		rs.mu.Lock()
		rs.at[j.ID] = append(rs.at[j.ID], time.Since(rs.start))
		rs.mu.Unlock()
		switch {
		case j.Args.Permanent:
			return jobrun.Permanent(errors.New("bad input"))
		case j.Attempt <= j.Args.Fail:
			return fmt.Errorf("attempt %d: remote down", j.Attempt)
		}
		return nil
	})
}

func (rs *runs) elapsed() time.Duration { return time.Since(rs.start) }

func get(t *testing.T, r *jobrun.Runner, id jobrun.ID) *jobrun.Info {
	t.Helper()
	in, err := r.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func enqueue(t *testing.T, r *jobrun.Runner, args jobrun.Args, opts ...jobrun.EnqueueOption) jobrun.ID {
	t.Helper()
	id, err := r.Enqueue(t.Context(), args, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// The case of the issue, and the package doc's example: after time.Sleep(3 *
// time.Hour), RunUntilIdle ran one attempt and left the job retrying. RunFor runs
// every attempt at its time.
func TestRunForRunsRetriesAtTheirTimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := jobruntest.Open(t)
		rs := newRuns()
		rs.handle(r)
		id := enqueue(t, r, task{Fail: 2}, jobrun.Delay(time.Hour), jobrun.Backoff(time.Minute, time.Minute))

		jobruntest.RunFor(t, r, 3*time.Hour)

		in := get(t, r, id)
		if in.State != jobrun.StateDone || in.Attempt != 3 || len(in.Errors) != 2 {
			t.Errorf("got %s, attempt %d, %d errors; want done, attempt 3, 2 errors", in.State, in.Attempt, len(in.Errors))
		}
		if want := []time.Duration{time.Hour, time.Hour + time.Minute, time.Hour + 2*time.Minute}; !slices.Equal(rs.at[id], want) {
			t.Errorf("ran at %v, want %v: each retry a minute after its failure", rs.at[id], want)
		}
		if got := rs.elapsed(); got != 3*time.Hour {
			t.Errorf("the clock moved %v, want 3h: RunFor leaves it at the horizon", got)
		}
	})
}

func TestRunForExponentialBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := jobruntest.Open(t)
		rs := newRuns()
		rs.handle(r)
		// Backoff(1s, 1h), the default, with its jitter: 12 failures wait about 1h8m in
		// all, at most 1.5 times that.
		id := enqueue(t, r, task{Fail: 12})

		jobruntest.RunFor(t, r, 3*time.Hour)

		in := get(t, r, id)
		if in.State != jobrun.StateDone || in.Attempt != 13 || len(rs.at[id]) != 13 {
			t.Fatalf("got %s after %d attempts (%d runs), want done after 13", in.State, in.Attempt, len(rs.at[id]))
		}
		if !slices.IsSorted(rs.at[id]) || rs.at[id][12] < 30*time.Minute {
			t.Errorf("ran at %v: want increasing times, the last after 30m of backoff", rs.at[id])
		}
	})
}

func TestRunForLeavesLaterWorkScheduled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := jobruntest.Open(t)
		rs := newRuns()
		rs.handle(r)
		atHorizon := enqueue(t, r, task{Name: "at the horizon"}, jobrun.Delay(3*time.Hour))
		later := enqueue(t, r, task{Name: "later"}, jobrun.Delay(5*time.Hour))

		jobruntest.RunFor(t, r, 3*time.Hour)

		if got := rs.elapsed(); got != 3*time.Hour {
			t.Errorf("the clock moved %v, want 3h", got)
		}
		if in := get(t, r, atHorizon); in.State != jobrun.StateDone || !slices.Equal(rs.at[atHorizon], []time.Duration{3 * time.Hour}) {
			t.Errorf("job due at the horizon: %s, ran at %v; want done, run at 3h", in.State, rs.at[atHorizon])
		}
		if in := get(t, r, later); in.State != jobrun.StateScheduled || len(rs.at[later]) != 0 {
			t.Errorf("job due after the horizon: %s, ran at %v; want scheduled, not run", in.State, rs.at[later])
		}

		jobruntest.RunFor(t, r, 2*time.Hour)

		if in := get(t, r, later); in.State != jobrun.StateDone || !slices.Equal(rs.at[later], []time.Duration{5 * time.Hour}) {
			t.Errorf("second call: %s, ran at %v; want done, run at 5h", in.State, rs.at[later])
		}
	})
}

func TestRunForFiresSchedules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := jobruntest.Open(t)
		var mu sync.Mutex // handlers run concurrently
		fired := map[string][]time.Duration{}
		start := time.Now() // midnight UTC: the bubble's epoch
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[task]) error {
			if ran, due := time.Since(start), j.FireAt.Sub(start); ran != due {
				t.Errorf("schedule %s: the fire of +%v ran at +%v", j.Schedule, due, ran)
			}
			mu.Lock()
			fired[j.Schedule] = append(fired[j.Schedule], time.Since(start))
			mu.Unlock()
			return nil
		})
		if err := r.Schedule(t.Context(), "hourly", "0 * * * *", task{}, jobrun.TimeZone("UTC")); err != nil {
			t.Fatal(err)
		}
		if err := r.Schedule(t.Context(), "every", "@every 90m", task{}); err != nil {
			t.Fatal(err)
		}

		jobruntest.RunFor(t, r, 3*time.Hour+30*time.Minute)

		h := time.Hour
		if want := []time.Duration{h, 2 * h, 3 * h}; !slices.Equal(fired["hourly"], want) {
			t.Errorf("0 * * * * fired at %v, want %v", fired["hourly"], want)
		}
		if want := []time.Duration{h + h/2, 3 * h}; !slices.Equal(fired["every"], want) {
			t.Errorf("@every 90m fired at %v, want %v", fired["every"], want)
		}
		scheds, err := r.Schedules(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range scheds {
			want := map[string]time.Duration{"hourly": 4 * h, "every": 4*h + h/2}[s.Name]
			if got := s.Next.Sub(start); got != want {
				t.Errorf("schedule %s: next fire at +%v, want +%v", s.Name, got, want)
			}
		}
	})
}

// Jobs of a paused queue become ready when due and stay so: RunFor must neither run
// them nor wait for them.
func TestRunForPausedQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := jobruntest.Open(t)
		rs := newRuns()
		rs.handle(r)
		if err := r.Pause(t.Context(), jobrun.DefaultQueue); err != nil {
			t.Fatal(err)
		}
		id := enqueue(t, r, task{}, jobrun.Delay(time.Hour))
		if err := r.Schedule(t.Context(), "every", "@every 1h", task{}); err != nil {
			t.Fatal(err)
		}

		jobruntest.RunFor(t, r, 3*time.Hour)

		if got := rs.elapsed(); got != 3*time.Hour {
			t.Errorf("the clock moved %v, want 3h", got)
		}
		if len(rs.at) != 0 {
			t.Errorf("jobs of a paused queue ran: %v", rs.at)
		}
		counts, err := r.Counts(t.Context(), jobrun.DefaultQueue)
		if err != nil {
			t.Fatal(err)
		}
		if counts[jobrun.StateReady] != 4 {
			t.Errorf("%d jobs ready, want 4: the delayed job and 3 fires", counts[jobrun.StateReady])
		}

		if err := r.Resume(t.Context(), jobrun.DefaultQueue); err != nil {
			t.Fatal(err)
		}
		jobruntest.RunFor(t, r, 0)

		if in := get(t, r, id); in.State != jobrun.StateDone || len(rs.at) != 4 {
			t.Errorf("after Resume: %s, %d jobs ran; want done, 4", in.State, len(rs.at))
		}
	})
}
