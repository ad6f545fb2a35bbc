package jobruntest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobrun/jobrun"
)

// RunUntilIdle runs every due job of r and returns when none is due or running,
// failing t on error. It runs one layer of work: a job that fails and retries later,
// or a delay that ends later, waits for the next call; [RunFor] follows them on fake
// time.
func RunUntilIdle(t testing.TB, r *jobrun.Runner) {
	t.Helper()
	if err := r.RunUntilIdle(t.Context()); err != nil {
		t.Fatalf("jobruntest: run until idle: %v", err)
	}
}

// maxRounds bounds the rounds of one RunFor call: the distinct moments before the
// horizon at which something is due. A job that snoozes or retries every second, or a
// schedule firing every second, would otherwise take hours of real time to reach a
// far horizon.
const maxRounds = 1000

// RunFor runs r for d of fake time, as a process running r would: it runs r until
// idle, moves the clock to the moment the next thing is due (a delayed, snoozed or
// retrying job, or a cron schedule's next fire), runs r until idle again, and so on,
// so each job runs at its own time and each retry counts from its failure. It
// returns when nothing more is due before the horizon, now + d at the call, with the
// clock at the horizon; work due at the horizon itself has run. It fails t on error.
//
// RunFor must be called inside a testing/synctest bubble ([synctest.Test]), with r
// opened inside it: it moves time with time.Sleep, which only a bubble's fake clock
// makes instant. Called outside a bubble, it fails t instead of sleeping on the real
// clock. It starts with [synctest.Wait], so the bubble's other goroutines settle
// first.
//
// The clock ends later than the horizon only if a handler itself spends fake time
// (a time.Sleep, a [jobrun.Timeout]) across it. Jobs of a paused queue, or of a
// queue r does not run ([jobrun.WithQueue]), become ready when due and stay ready;
// RunFor does not wait for them. Jobs other goroutines enqueue while RunFor sleeps
// wait for the next round or call.
//
// RunFor fails t after 1,000 rounds with work still due before the horizon, naming
// that work: a job that snoozes or retries with a short delay forever, or a schedule
// that fires too often for d. It cannot stop a job that snoozes for 0 forever: that
// keeps [jobrun.Runner.RunUntilIdle] itself busy at one instant, and only the test's
// timeout ends it.
func RunFor(t testing.TB, r *jobrun.Runner, d time.Duration) {
	t.Helper()
	runFor(t, r, d, maxRounds)
}

// runFor is RunFor with the bound on rounds as a parameter, for tests. It returns
// after failing t, so that a fake t whose Fatalf returns stops it too.
func runFor(t testing.TB, r *jobrun.Runner, d time.Duration, rounds int) {
	t.Helper()
	if d < 0 {
		t.Fatalf("jobruntest: RunFor(%v): negative duration", d)
		return
	}
	if !inBubble() {
		t.Fatalf("jobruntest: RunFor(%v) called outside a testing/synctest bubble: call it inside synctest.Test, where time is fake; here it would sleep on the real clock", d)
		return
	}
	start := time.Now()
	horizon := start.Add(d)
	for round := 1; ; round++ {
		if err := r.RunUntilIdle(t.Context()); err != nil {
			t.Fatalf("jobruntest: RunFor(%v): run until idle at +%v: %v", d, time.Since(start), err)
			return
		}
		now := time.Now()
		next, what, err := nextDue(t.Context(), r, now)
		if err != nil {
			t.Fatalf("jobruntest: RunFor(%v): at +%v: %v", d, now.Sub(start), err)
			return
		}
		if next.IsZero() || next.After(horizon) {
			break
		}
		if round == rounds {
			t.Fatalf("jobruntest: RunFor(%v): %d rounds, and %s is due again at +%v, %v before the horizon: "+
				"does a job snooze or retry with a short delay forever, or a schedule fire too often for %v?",
				d, rounds, what, next.Sub(start), horizon.Sub(next), d)
			return
		}
		time.Sleep(next.Sub(now))
	}
	if now := time.Now(); now.Before(horizon) {
		time.Sleep(horizon.Sub(now))
	}
}

// inBubble reports whether the calling goroutine is in a testing/synctest bubble.
// synctest has no query for it, but Wait panics outside a bubble: "goroutine is not
// in a bubble". Its other panic, another goroutine of the bubble being in Wait,
// means a bubble too.
func inBubble() (in bool) {
	defer func() {
		if v := recover(); v != nil {
			in = !strings.Contains(fmt.Sprint(v), "not in a bubble")
		}
	}()
	synctest.Wait()
	return true
}

// nextDue returns the earliest moment after now at which something of r is due: a
// scheduled or retrying job's run time, or a schedule's next fire; zero if nothing
// is. what names it, for messages. Moments at or before now are left out: r has just
// been idle at now, so what they belong to is something r does not run, such as a
// schedule whose spec no longer parses.
func nextDue(ctx context.Context, r *jobrun.Runner, now time.Time) (next time.Time, what string, err error) {
	consider := func(at time.Time, w func() string) {
		if at.After(now) && (next.IsZero() || at.Before(next)) {
			next, what = at, w()
		}
	}
	for _, st := range []jobrun.State{jobrun.StateScheduled, jobrun.StateRetrying} {
		// With a State and Oldest, List reads the scheduled index by run time: the
		// first job listed is the earliest due. A page may come back empty with a
		// Next (List reads at most so many index entries per call): keep paging.
		f := jobrun.Filter{State: st, Oldest: true, Limit: 1}
		for {
			page, err := r.List(ctx, f)
			if err != nil {
				return time.Time{}, "", err
			}
			if len(page.Jobs) == 1 && page.Jobs[0].RunAt.After(now) {
				in := page.Jobs[0]
				consider(in.RunAt, func() string {
					return fmt.Sprintf("job %d (kind %s, %s, attempt %d)", in.ID, in.Kind, in.State, in.Attempt)
				})
				break
			}
			if page.Next == "" {
				break
			}
			f.Cursor = page.Next
		}
	}
	schedules, err := r.Schedules(ctx)
	if err != nil {
		return time.Time{}, "", err
	}
	for _, s := range schedules {
		consider(s.Next, func() string { return fmt.Sprintf("schedule %s (%s)", s.Name, s.Spec) })
	}
	return next, what, nil
}
