package jobruntest

// Tests of how the helpers fail their test: with a fake testing.TB that records the
// failure instead.

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.etcd.io/bbolt"

	"github.com/jobrun/jobrun"
)

// fatalRecorder is a testing.TB whose Fatal and Fatalf record the message and end the
// calling goroutine, as testing's do, without failing the test. The rest is t's.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fatalRecorder) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

// fatalOf runs fn in a goroutine of its own with a fatalRecorder and returns the
// message fn failed with, "" if it did not.
func fatalOf(t testing.TB, fn func(tb testing.TB)) string {
	f := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f.msg
}

type nap struct{}

func (nap) Kind() string { return "nap" }

func TestRunForRoundGuard(t *testing.T) {
	if maxRounds < 100 {
		t.Errorf("maxRounds = %d: too few for an hourly schedule over days", maxRounds)
	}
	synctest.Test(t, func(t *testing.T) {
		r := Open(t)
		runs := 0
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[nap]) error {
			runs++ // one worker runs it at a time: a job runs once per round
			return jobrun.Snooze(time.Second)
		})
		if _, err := r.Enqueue(t.Context(), nap{}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()

		msg := fatalOf(t, func(tb testing.TB) { runFor(tb, r, time.Hour, 20) })

		for _, want := range []string{"RunFor(1h0m0s): 20 rounds", "job 1 (kind nap, scheduled", "snooze"} {
			if !strings.Contains(msg, want) {
				t.Errorf("failure %q does not say %q", msg, want)
			}
		}
		if runs != 20 || time.Since(start) != 19*time.Second {
			t.Errorf("the job ran %d times, and the clock moved %v; want 20 times in 19s: the guard stops at once",
				runs, time.Since(start))
		}
	})
}

func TestRunForOutsideBubble(t *testing.T) {
	r := Open(t)
	msg := fatalOf(t, func(tb testing.TB) { RunFor(tb, r, time.Hour) })
	if !strings.Contains(msg, "outside a testing/synctest bubble") {
		t.Errorf("RunFor outside a bubble failed with %q, want a message that says so", msg)
	}
}

func TestRunForNegative(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := Open(t)
		msg := fatalOf(t, func(tb testing.TB) { RunFor(tb, r, -time.Second) })
		if !strings.Contains(msg, "negative duration") {
			t.Errorf("RunFor(-1s) failed with %q, want a message about the negative duration", msg)
		}
	})
}

// Reopen and Crash refuse a runner that shares the application's database: its file
// stays open, so opening it again would wait for the lock, or, for Crash, replace the
// file under the application.
func TestRestartOfSharedDatabase(t *testing.T) {
	for name, restart := range map[string]func(testing.TB, *jobrun.Runner, ...jobrun.Option) *jobrun.Runner{
		"Reopen": Reopen, "Crash": Crash,
	} {
		t.Run(name, func(t *testing.T) {
			db, err := bbolt.Open(filepath.Join(t.TempDir(), "app.db"), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			r, err := jobrun.New(db)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()

			msg := fatalOf(t, func(tb testing.TB) { restart(tb, r) })

			if !strings.Contains(msg, "made by jobrun.New") {
				t.Errorf("%s of a runner of jobrun.New failed with %q, want a message that names the cause", name, msg)
			}
			if err := db.View(func(*bbolt.Tx) error { return nil }); err != nil {
				t.Errorf("the application's database: %v, want it left open", err)
			}
			if left, _ := filepath.Glob(db.Path() + "*.crash"); len(left) > 0 {
				t.Errorf("left behind %v", left)
			}
		})
	}
}

func TestCrashOfClosedRunner(t *testing.T) {
	r := Open(t)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	msg := fatalOf(t, func(tb testing.TB) { Crash(tb, r) })
	if !strings.Contains(msg, "the runner is closed") {
		t.Errorf("Crash of a closed runner failed with %q, want a message that says it is closed", msg)
	}
}
