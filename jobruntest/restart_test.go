package jobruntest_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/jobruntest"
)

func TestReopenKeepsJobsAndSchedules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := jobruntest.Open(t)
		rs := newRuns()
		rs.handle(r)
		retry := jobrun.Backoff(time.Hour, time.Hour)
		ids := []jobrun.ID{
			enqueue(t, r, task{Name: "done"}),
			enqueue(t, r, task{Name: "failed", Permanent: true}),
			enqueue(t, r, task{Name: "retrying", Fail: 1}, retry),
			enqueue(t, r, task{Name: "scheduled"}, jobrun.Delay(2*time.Hour)),
		}
		if err := r.Schedule(t.Context(), "every", "@every 90m", task{Name: "cron"}); err != nil {
			t.Fatal(err)
		}
		jobruntest.RunUntilIdle(t, r)
		var before []*jobrun.Info
		for _, id := range ids {
			before = append(before, get(t, r, id))
		}
		if got, want := states(before), []jobrun.State{jobrun.StateDone, jobrun.StateFailed, jobrun.StateRetrying, jobrun.StateScheduled}; !slices.Equal(got, want) {
			t.Fatalf("before the restart: %v, want %v", got, want)
		}
		path := r.DB().Path()

		r = jobruntest.Reopen(t, r)

		if got := r.DB().Path(); got != path {
			t.Errorf("reopened %s, want the same file %s", got, path)
		}
		for i, id := range ids {
			in, was := get(t, r, id), before[i]
			if in.State != was.State || in.Attempt != was.Attempt || in.LastError != was.LastError || !in.RunAt.Equal(was.RunAt) {
				t.Errorf("job %d after the restart: %s, attempt %d, error %q, due %v; before: %s, %d, %q, %v",
					id, in.State, in.Attempt, in.LastError, in.RunAt, was.State, was.Attempt, was.LastError, was.RunAt)
			}
		}
		scheds, err := r.Schedules(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(scheds) != 1 || scheds[0].Next.Sub(rs.start) != 90*time.Minute {
			t.Fatalf("schedules after the restart: %+v, want every, next at +1h30m", scheds)
		}

		// The new runner runs what the old one left, once it has the handler.
		rs.handle(r)
		jobruntest.RunFor(t, r, 2*time.Hour)
		for i, id := range ids[2:] {
			if in := get(t, r, id); in.State != jobrun.StateDone {
				t.Errorf("job %s: %s after 2h on the new runner, want done", []string{"retrying", "scheduled"}[i], in.State)
			}
		}
		if page, err := r.List(t.Context(), jobrun.Filter{Kind: "task", State: jobrun.StateDone}); err != nil || len(page.Jobs) != 4 {
			t.Errorf("done jobs: %v (%v), want 4: the done job, the retried and scheduled ones, the fire at 1h30m", page, err)
		}
	})
}

func states(ins []*jobrun.Info) []jobrun.State {
	var out []jobrun.State
	for _, in := range ins {
		out = append(out, in.State)
	}
	return out
}

// blocker is a job whose handler signals started and waits for release; if
// watchCtx, it also returns when its context ends, as handlers should.
type blocker struct{}

func (blocker) Kind() string { return "blocker" }

func handleBlocker(r *jobrun.Runner, started, release chan struct{}, watchCtx bool) {
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[blocker]) error {
		started <- struct{}{}
		if !watchCtx {
			<-release
			return nil
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

// runInBackground runs r until t ends or r closes.
func runInBackground(t *testing.T, r *jobrun.Runner) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(t.Context())
	}()
	t.Cleanup(func() { <-done })
}

// A restart through Close records the running job as ready again: every time, it
// never counts as a crash.
func TestReopenRequeuesRunningJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := []jobrun.Option{jobrun.WithMaxRecoveries(1)}
		r := jobruntest.Open(t, opts...)
		started, release := make(chan struct{}), make(chan struct{})
		defer close(release)
		handleBlocker(r, started, release, true)
		id := enqueue(t, r, blocker{})
		for restart := 1; restart <= 3; restart++ {
			runInBackground(t, r)
			<-started
			synctest.Wait() // the commit that records the start
			if in := get(t, r, id); in.State != jobrun.StateRunning {
				t.Fatalf("restart %d: the job is %s before it, want running", restart, in.State)
			}

			r = jobruntest.Reopen(t, r, opts...)

			if in := get(t, r, id); in.State != jobrun.StateReady || in.Attempt != 0 {
				t.Fatalf("restart %d: %s, attempt %d; want ready, attempt 0: Close records it as ready, no attempt spent",
					restart, in.State, in.Attempt)
			}
			handleBlocker(r, started, release, true)
		}
	})
}

// Reopen takes a runner closed already: here by a graceful Shutdown, which lets the
// running job finish.
func TestReopenAfterShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := jobruntest.Open(t)
		started, release := make(chan struct{}), make(chan struct{})
		handleBlocker(r, started, release, true)
		id := enqueue(t, r, blocker{})
		runInBackground(t, r)
		<-started
		go func() {
			time.Sleep(time.Minute)
			close(release)
		}()
		if err := r.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}

		r = jobruntest.Reopen(t, r)

		if in := get(t, r, id); in.State != jobrun.StateDone || in.Attempt != 1 {
			t.Errorf("after Shutdown and Reopen: %s, attempt %d; want done, attempt 1", in.State, in.Attempt)
		}
	})
}

// A crash leaves the running job recorded as running: the next open recovers it,
// and counts it, so a job found running after too many crashes fails.
func TestCrashRecoversRunningJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := []jobrun.Option{jobrun.WithMaxRecoveries(1)}
		r := jobruntest.Open(t, opts...)
		started, release := make(chan struct{}), make(chan struct{})
		defer close(release) // the crashed runners' handlers ignore their context
		handleBlocker(r, started, release, false)
		id := enqueue(t, r, blocker{})
		runInBackground(t, r)
		<-started

		r = jobruntest.Crash(t, r, opts...) // returns with the handler still running

		if in := get(t, r, id); in.State != jobrun.StateReady || in.Attempt != 0 {
			t.Fatalf("after a crash: %s, attempt %d; want ready, attempt 0", in.State, in.Attempt)
		}
		handleBlocker(r, started, release, false)
		runInBackground(t, r)
		<-started

		r = jobruntest.Crash(t, r, opts...)

		in := get(t, r, id)
		if in.State != jobrun.StateFailed || !strings.Contains(in.LastError, "the process exited while this job ran, 2 times") {
			t.Fatalf("after a second crash with WithMaxRecoveries(1): %s, %q; want failed, with the crash loop error",
				in.State, in.LastError)
		}
	})
}

type crashLooped struct{ jobrun.Failure }

func (crashLooped) Kind() string { return "crash-looped" }

// TestCrashLoopEnqueuesTheFailureJob: the crash-loop guard fails a job for good, and
// its OnFailure job is enqueued in the same commit, at the open that finds it.
func TestCrashLoopEnqueuesTheFailureJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := []jobrun.Option{jobrun.WithMaxRecoveries(1)}
		r := jobruntest.Open(t, opts...)
		started, release := make(chan struct{}), make(chan struct{})
		defer close(release) // the crashed runners' handlers ignore their context
		register := func(r *jobrun.Runner) {
			handleBlocker(r, started, release, false)
			jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[crashLooped]) error { return nil })
		}
		register(r)
		id := enqueue(t, r, blocker{}, jobrun.OnFailure("crash-looped"))
		for range 2 {
			runInBackground(t, r)
			<-started
			r = jobruntest.Crash(t, r, opts...)
			register(r)
		}
		if in := get(t, r, id); in.State != jobrun.StateFailed {
			t.Fatalf("after two crashes: %s", in.State)
		}
		page, err := r.List(t.Context(), jobrun.Filter{Kind: "crash-looped"})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Jobs) != 1 {
			t.Fatalf("%d failure jobs, want 1", len(page.Jobs))
		}
		var f jobrun.Failure
		if err := json.Unmarshal(page.Jobs[0].RawArgs, &f); err != nil || f.Job.ID != id ||
			!strings.Contains(f.Job.LastError, "the process exited while this job ran") {
			t.Errorf("the failure job's args: %s, %v", page.Jobs[0].RawArgs, err)
		}
	})
}
