package jobrun_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"go.etcd.io/bbolt"

	"github.com/jobrun/jobrun"
)

// TestHistory: every queue's minute of enqueues, starts, outcomes and waits is
// stored once the minute ends (or at close), read back after a reopen, even
// read-only, and kept for a week; a tool's runner stores none.
func TestHistory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now() // 2000-01-01 00:00:00 UTC in the bubble
		opts := []jobrun.Option{jobrun.WithQueue("mail", 4, nil), jobrun.WithQueue("other", 1, nil)}
		r, path := openRunner(t, opts...)
		handle := func(r *jobrun.Runner) {
			jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
				switch {
				case j.Args.To == "flaky" && j.Attempt == 1:
					return errors.New("try again")
				case j.Args.To == "bad":
					return jobrun.Permanent(errors.New("no such address"))
				}
				return nil
			}, jobrun.Queue("mail"), jobrun.Backoff(90*time.Second, 90*time.Second), jobrun.Jitter(0))
		}
		handle(r)
		ctx := t.Context()
		for _, q := range []string{"mail", "other"} {
			if err := r.Pause(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		flaky := enqueue(t, r, email{To: "flaky"})
		enqueue(t, r, email{To: "ok"})
		enqueue(t, r, email{To: "bad"})
		enqueue(t, r, email{To: "later"}, jobrun.Queue("other"))
		enqueue(t, r, email{To: "later"}, jobrun.Queue("other"))
		time.Sleep(10 * time.Second)
		if err := r.Resume(ctx, "mail"); err != nil {
			t.Fatal(err)
		}
		in := runUntilState(t, r, flaky, jobrun.StateDone) // its retry runs at 00:01:40
		if !in.FinishedAt.After(t0.Add(time.Minute)) {
			t.Fatalf("the retry ran at %v, want the second minute", in.FinishedAt)
		}
		if err := r.Close(); err != nil { // stores the minute in progress
			t.Fatal(err)
		}

		ro, err := jobrun.Open(path, jobrun.WithReadOnly())
		if err != nil {
			t.Fatal(err)
		}
		points, err := ro.History(ctx, "", time.Time{})
		ro.Close()
		if err != nil {
			t.Fatal(err)
		}
		want := []jobrun.HistoryPoint{
			{Queue: "mail", Minute: t0, Enqueued: 3, Started: 3, Done: 1, Retried: 1, Failed: 1,
				WaitTotal: 30 * time.Second, WaitMax: 10 * time.Second},
			{Queue: "other", Minute: t0, Enqueued: 2, Ready: 2},
			{Queue: "mail", Minute: t0.Add(time.Minute), Started: 1, Done: 1},
		}
		if len(points) != len(want) {
			t.Fatalf("history %+v, want %+v", points, want)
		}
		for i := range want {
			if p := points[i]; p != want[i] && !(p.Minute.Equal(want[i].Minute) && equalButMinute(p, want[i])) {
				t.Errorf("point %d: %+v, want %+v", i, p, want[i])
			}
		}
		if only, err := jobrun.Open(path, jobrun.WithReadOnly()); err == nil {
			mail, _ := only.History(ctx, "mail", t0.Add(time.Minute))
			only.Close()
			if len(mail) != 1 || mail[0].Done != 1 {
				t.Errorf("mail since 00:01: %+v", mail)
			}
		}

		// A tool's runner stores nothing of what it is asked.
		tool, err := jobrun.Open(path, append(opts, jobrun.WithServices(false), jobrun.WithStrictKinds(false))...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tool.Enqueue(ctx, email{To: "x"}, jobrun.Queue("other")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		tool.Close()

		// A week later the old minutes are gone.
		r2, err := jobrun.Open(path, opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer r2.Close()
		handle(r2)
		if got, _ := r2.History(ctx, "", time.Time{}); len(got) != 3 {
			t.Fatalf("after a tool's runner: %d points, want the 3 as before: %+v", len(got), got)
		}
		time.Sleep(historyWeek)
		enqueue(t, r2, email{To: "ok"})
		runUntilIdle(t, r2)
		time.Sleep(time.Minute) // the minute ends: stored, and the expired ones deleted
		synctest.Wait()
		got, err := r2.History(ctx, "", time.Time{})
		if err != nil || len(got) != 1 || got[0].Done != 1 || got[0].Queue != "mail" || !got[0].Minute.After(t0.Add(historyWeek)) {
			t.Fatalf("a week later: %+v, %v", got, err)
		}
		if _, err := r2.History(ctx, " bad", time.Time{}); !errors.Is(err, jobrun.ErrInvalid) {
			t.Errorf("bad queue name: %v", err)
		}
	})
}

const historyWeek = 7*24*time.Hour + time.Hour

func equalButMinute(a, b jobrun.HistoryPoint) bool {
	a.Minute, b.Minute = time.Time{}, time.Time{}
	return a == b
}

// TestHistoryCountsTransactions: jobs stored by the application's own transaction
// (EnqueueTx, SendTx) count in their minute's history too.
func TestHistoryCountsTransactions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t, jobrun.WithQueue("mail", 1, nil))
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error { return nil }, jobrun.Queue("mail"))
		if err := r.DB().Update(func(tx *bbolt.Tx) error {
			for range 3 {
				if _, err := r.EnqueueTx(t.Context(), tx, email{To: "tx"}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		runUntilIdle(t, r)
		time.Sleep(time.Minute + time.Second)
		synctest.Wait()
		got, err := r.History(t.Context(), "mail", time.Time{})
		if err != nil || len(got) != 1 || got[0].Enqueued != 3 || got[0].Done != 3 {
			t.Fatalf("history %+v, %v; want 3 enqueued and done", got, err)
		}
	})
}
