package client_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/jobrun/jobrun"
)

// TestHistory: History answers the application's per-minute history as
// Runner.History does there, here what an earlier run of the application stored
// when it stopped; by queue and since, and a bad queue name is jobrun.ErrInvalid.
func TestHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.db")
	first := startAppOn(t, path)
	ctx := t.Context()
	if got, err := first.c.History(ctx, "", time.Time{}); err != nil || len(got) != 0 {
		t.Fatalf("a new file's history: %+v, %v", got, err)
	}
	for _, args := range []jobrun.Args{welcome{To: "ada@example.com"}, welcome{To: "bob@example.com"}, flaky{}} {
		if _, err := first.c.Enqueue(ctx, args); err != nil {
			t.Fatal(err)
		}
	}
	first.run(t)
	if err := first.r.Close(); err != nil { // stores the minute it cuts
		t.Fatal(err)
	}

	a := startAppOn(t, path)
	want, err := a.r.History(ctx, "", time.Time{})
	if err != nil || len(want) == 0 {
		t.Fatalf("the runner's history: %+v, %v", want, err)
	}
	for i := range want {
		want[i].Minute = want[i].Minute.UTC() // as the API's JSON has it
	}
	got, err := a.c.History(ctx, "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	same(t, "History", got, want)
	// The jobs may have run in two minutes: add them up.
	mail, err := a.c.History(ctx, "mail", want[0].Minute)
	var sum jobrun.HistoryPoint
	for _, p := range mail {
		if p.Queue != "mail" {
			t.Errorf("a point of %s in mail's history", p.Queue)
		}
		sum.Enqueued, sum.Started, sum.Done = sum.Enqueued+p.Enqueued, sum.Started+p.Started, sum.Done+p.Done
	}
	if err != nil || sum.Enqueued != 2 || sum.Started != 2 || sum.Done != 2 {
		t.Errorf("mail's history: %+v, %v; want 2 enqueued, started and done", mail, err)
	}
	last := want[len(want)-1].Minute
	if later, err := a.c.History(ctx, "", last.Add(time.Minute)); err != nil || len(later) != 0 {
		t.Errorf("since the minute after the last: %+v, %v", later, err)
	}
	if _, err := a.c.History(ctx, " mail", time.Time{}); !errors.Is(err, jobrun.ErrInvalid) {
		t.Errorf("a bad queue name: %v, want jobrun.ErrInvalid", err)
	}
}
