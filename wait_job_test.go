package jobrun_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobrun/jobrun"
)

type receipt struct {
	Total int `json:"total"`
}

func TestWaitReturnsWhenTheJobFinishes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			if j.Args.To == "bad" {
				return jobrun.Permanent(errors.New("no such mailbox"))
			}
			return j.SetResult(receipt{Total: 42})
		})
		ok := enqueue(t, r, email{To: "ada@example.com"}, jobrun.Delay(time.Hour))
		bad := enqueue(t, r, email{To: "bad"}, jobrun.Delay(time.Hour))
		type answer struct {
			in  *jobrun.Info
			err error
		}
		waited := make(chan answer, 2)
		for _, id := range []jobrun.ID{ok, bad} {
			go func() {
				in, err := r.Wait(t.Context(), id)
				waited <- answer{in, err}
			}()
		}
		synctest.Wait() // both are waiting, and nothing finished
		select {
		case a := <-waited:
			t.Fatalf("Wait returned before the job ran: %+v", a)
		default:
		}
		time.Sleep(time.Hour)
		go func() { _ = r.Run(t.Context()) }()
		got := map[jobrun.ID]*jobrun.Info{}
		for range 2 {
			a := <-waited
			if a.err != nil {
				t.Fatal(a.err)
			}
			got[a.in.ID] = a.in
		}
		v, err := jobrun.Result[receipt](got[ok])
		if err != nil || v.Total != 42 || got[ok].State != jobrun.StateDone {
			t.Errorf("the done job: %s, result %+v, %v", got[ok].State, v, err)
		}
		if got[bad].State != jobrun.StateFailed {
			t.Errorf("the failed job: %s", got[bad].State)
		}
		if _, err := jobrun.Result[receipt](got[bad]); !errors.Is(err, jobrun.ErrState) {
			t.Errorf("the result of a failed job: %v, want ErrState", err)
		}
		// A finished job: at once.
		if in, err := r.Wait(t.Context(), ok); err != nil || in.State != jobrun.StateDone {
			t.Errorf("wait for a finished job: %v, %v", in, err)
		}
		r.Close()
	})
}

func TestWaitErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error { return nil })
		if _, err := r.Wait(t.Context(), 99); !errors.Is(err, jobrun.ErrNotFound) {
			t.Errorf("wait for no job: %v", err)
		}
		id := enqueue(t, r, email{}, jobrun.Delay(time.Hour))
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if _, err := r.Wait(ctx, id); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("wait past its context: %v", err)
		}
		// Canceled meanwhile: it finished.
		done := make(chan error, 1)
		go func() {
			in, err := r.Wait(t.Context(), id)
			if err == nil && in.State != jobrun.StateCanceled {
				err = errors.New(string(in.State))
			}
			done <- err
		}()
		synctest.Wait()
		if err := r.Cancel(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Errorf("wait for a job canceled meanwhile: %v", err)
		}
		// The runner closes under a wait.
		other := enqueue(t, r, email{}, jobrun.Delay(time.Hour))
		go func() {
			_, err := r.Wait(t.Context(), other)
			done <- err
		}()
		synctest.Wait()
		r.Close()
		if err := <-done; !errors.Is(err, jobrun.ErrClosed) {
			t.Errorf("wait when the runner closes: %v", err)
		}
		if _, err := jobrun.Result[int](nil); !errors.Is(err, jobrun.ErrInvalid) {
			t.Errorf("result of nil: %v", err)
		}
		if _, err := jobrun.Result[int](&jobrun.Info{State: jobrun.StateDone}); !errors.Is(err, jobrun.ErrNotFound) {
			t.Errorf("result of a job that stored none: %v", err)
		}
		if _, err := jobrun.Result[int](&jobrun.Info{State: jobrun.StateDone, Result: []byte(`"x"`)}); !errors.Is(err, jobrun.ErrInvalid) {
			t.Errorf("result of another type: %v", err)
		}
	})
}
