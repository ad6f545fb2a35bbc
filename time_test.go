package jobrun

import (
	"context"
	"math"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"
)

// TestStoredTimesAtTheEdges: every time the file stores goes through storedNanos;
// outside what int64 nanoseconds hold, time.UnixNano wraps, and once stored a run-at
// of 1616 as 2200.
func TestStoredTimesAtTheEdges(t *testing.T) {
	cases := []struct {
		name string
		in   time.Time
		want time.Time // as read back; zero for the zero time
	}{
		{"zero", time.Time{}, time.Time{}},
		{"1616", time.Date(1616, 4, 23, 0, 0, 0, 0, time.UTC), minStoredTime},
		{"year 1", time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC), minStoredTime},
		{"earliest", minStoredTime, minStoredTime},
		{"1969", time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC), time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC)},
		{"now", time.Date(2026, 12, 2, 3, 4, 5, 6, time.UTC), time.Date(2026, 12, 2, 3, 4, 5, 6, time.UTC)},
		{"latest", maxFireTime, maxFireTime},
		{"2300", time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), maxFireTime},
		{"year 9999", time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), maxFireTime},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &record{kind: "k", queue: "q", state: stReady, runAt: tc.in, createdAt: tc.in, finishedAt: tc.in}
			got, err := decodeRecord(r.encode())
			if err != nil {
				t.Fatal(err)
			}
			for _, at := range []time.Time{got.runAt, got.createdAt, got.finishedAt} {
				if !at.Equal(tc.want) {
					t.Fatalf("stored %v, read back %v, want %v", tc.in, at, tc.want)
				}
			}
			// Index keys hold unsigned nanoseconds: times before 1970 sort first.
			k, _, _ := parseTimeKey(timeKey(tc.in, 1))
			wantKey := tc.want
			if tc.want.Before(time.Unix(0, 0)) || tc.want.IsZero() {
				wantKey = time.Unix(0, 0)
			}
			if !k.Equal(wantKey) {
				t.Fatalf("key time of %v: %v, want %v", tc.in, k, wantKey)
			}
		})
	}
	if n := unixNanos(maxFireTime); n != math.MaxInt64 {
		t.Fatalf("unixNanos of the latest time: %d", n)
	}
}

type timeArgs struct{}

func (timeArgs) Kind() string { return "time" }

// TestTimesFarFromNow: At in the far past means now; a snooze of centuries, a
// throttle period of centuries and Clean's before far in the future or past stay
// within what the file stores, and do what they say.
func TestTimesFarFromNow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, err := Open(filepath.Join(t.TempDir(), "jobs.db"), WithQueue(DefaultQueue, 1, nil))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		snoozes := 0
		Handle(r, func(ctx context.Context, j *Job[timeArgs]) error {
			if j.Attempt == 1 && snoozes == 0 {
				snoozes++
				return Snooze(290 * 365 * 24 * time.Hour)
			}
			return nil
		})
		ctx := t.Context()
		now := time.Now()
		old, err := r.Enqueue(ctx, timeArgs{}, At(time.Date(1616, 4, 23, 0, 0, 0, 0, time.UTC)))
		if err != nil {
			t.Fatal(err)
		}
		in, err := r.Get(ctx, old)
		if err != nil {
			t.Fatal(err)
		}
		if in.State != StateReady || !in.RunAt.Equal(now) {
			t.Fatalf("At(1616): %s, run at %v; want ready, due now (%v)", in.State, in.RunAt, now)
		}
		if _, err := r.Enqueue(ctx, timeArgs{}, At(time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC))); err == nil {
			t.Fatal("At(2300) was accepted; the file cannot store it")
		}
		if err := r.RunUntilIdle(ctx); err != nil {
			t.Fatal(err)
		}
		in, _ = r.Get(ctx, old)
		if in.State != StateScheduled || !in.RunAt.Equal(maxFireTime) {
			t.Fatalf("after a snooze of 290 years: %s, run at %v; want scheduled at %v", in.State, in.RunAt, maxFireTime)
		}
		if _, err := r.Enqueue(ctx, timeArgs{}, Throttle("k", 290*365*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Enqueue(ctx, timeArgs{}, Throttle("k", time.Hour)); err == nil {
			t.Fatal("a throttle of 290 years let a second job in")
		}
		if err := r.RunUntilIdle(ctx); err != nil {
			t.Fatal(err)
		}
		if n, err := r.Clean(ctx, "", StateDone, time.Date(1616, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil || n != 0 {
			t.Fatalf("Clean before 1616: %d deleted (%v), want 0", n, err)
		}
		if n, err := r.Clean(ctx, "", StateDone, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil || n != 1 {
			t.Fatalf("Clean before 9999: %d deleted (%v), want 1", n, err)
		}
	})
}

// TestRetentionOfCenturies: the longest retention age (292 years, past 2262) keeps jobs, and the cleaner's
// next look, far in the future, neither wraps nor spins.
func TestRetentionOfCenturies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, err := Open(filepath.Join(t.TempDir(), "jobs.db"),
			WithRetention("", Retention{Done: time.Duration(math.MaxInt64)}))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		Handle(r, func(ctx context.Context, j *Job[timeArgs]) error { return nil })
		id, err := r.Enqueue(t.Context(), timeArgs{})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.RunUntilIdle(t.Context()); err != nil {
			t.Fatal(err)
		}
		cycles := r.cycles.Load()
		time.Sleep(10 * 365 * 24 * time.Hour)
		synctest.Wait()
		if in, err := r.Get(t.Context(), id); err != nil || in.State != StateDone {
			t.Fatalf("after ten years under a retention of 292 years: %v, %v", in, err)
		}
		if n := r.cycles.Load() - cycles; n > 2 {
			t.Fatalf("the loop ran %d cycles in ten idle years", n)
		}
	})
}
