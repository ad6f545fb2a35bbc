package jobruntest_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/jobruntest"
)

type welcome struct{ To string }

func (welcome) Kind() string { return "welcome" }

func TestDelayedRetryOnFakeClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := jobruntest.Open(t)
		calls := 0
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[welcome]) error {
			calls++
			if calls == 1 {
				return errors.New("mail server down")
			}
			return nil
		})
		id, err := r.Enqueue(t.Context(), welcome{To: "ada@example.com"}, jobrun.Delay(time.Hour), jobrun.Backoff(time.Minute, time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		jobruntest.RunUntilIdle(t, r)
		if calls != 0 {
			t.Fatalf("a job delayed by an hour ran at once")
		}
		time.Sleep(time.Hour)
		jobruntest.RunUntilIdle(t, r)
		time.Sleep(time.Minute)
		jobruntest.RunUntilIdle(t, r)
		in, err := r.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if in.State != jobrun.StateDone || in.Attempt != 2 || calls != 2 {
			t.Fatalf("got %s after %d attempts (%d calls), want done after 2", in.State, in.Attempt, calls)
		}
	})
}
