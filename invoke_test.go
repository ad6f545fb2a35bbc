package jobrun_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobrun/jobrun"
)

type thumbnail struct {
	URL  string `json:"url"`
	Fail bool   `json:"fail,omitempty"`
}

func (thumbnail) Kind() string { return "thumbnail" }

type thumbs struct {
	Count int `json:"count"`
}

type album struct {
	URLs []string `json:"urls"`
}

func (album) Kind() string { return "album" }

// handleThumbnail registers a child that returns the length of its URL, or fails.
func handleThumbnail(r *jobrun.Runner, runs *atomic.Int64, opts ...jobrun.EnqueueOption) {
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[thumbnail]) error {
		runs.Add(1)
		if j.Args.Fail {
			return jobrun.Permanent(errors.New("cannot decode " + j.Args.URL))
		}
		return j.SetResult(thumbs{Count: len(j.Args.URL)})
	}, opts...)
}

func TestInvokeWaitsForTheChild(t *testing.T) {
	r, _ := openRunner(t)
	var childRuns, parentRuns atomic.Int64
	handleThumbnail(r, &childRuns)
	var got thumbs
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[album]) error {
		parentRuns.Add(1)
		res, err := jobrun.Invoke[thumbs](ctx, "resize", thumbnail{URL: j.Args.URLs[0]})
		if err != nil {
			return err
		}
		got = res
		return nil
	})
	id := enqueue(t, r, album{URLs: []string{"https://x/a.png"}})
	runUntilIdle(t, r)
	in := get(t, r, id)
	if in.State != jobrun.StateDone || got.Count != len("https://x/a.png") || childRuns.Load() != 1 || parentRuns.Load() != 2 {
		t.Fatalf("parent %s, result %+v, %d child runs, %d parent runs", in.State, got, childRuns.Load(), parentRuns.Load())
	}
	if len(in.Steps) != 1 || in.Steps[0].State != "done" || len(in.Steps[0].Children) != 1 {
		t.Fatalf("steps %+v", in.Steps)
	}
	child := get(t, r, in.Steps[0].Children[0])
	if child.Parent != id || child.Kind != "thumbnail" || child.State != jobrun.StateDone {
		t.Errorf("the child: parent %d, %s %s", child.Parent, child.Kind, child.State)
	}
	if in.Attempt != 1 {
		t.Errorf("the parent spent %d attempts, want 1", in.Attempt)
	}
}

func TestInvokeAllFansOutAndIn(t *testing.T) {
	r, _ := openRunner(t, jobrun.WithQueue(jobrun.DefaultQueue, 4, nil))
	var childRuns atomic.Int64
	handleThumbnail(r, &childRuns)
	var children []jobrun.Child[thumbs]
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[album]) error {
		batch := make([]jobrun.Args, len(j.Args.URLs))
		for i, u := range j.Args.URLs {
			batch[i] = thumbnail{URL: u, Fail: strings.HasSuffix(u, ".bad")}
		}
		var err error
		children, err = jobrun.InvokeAll[thumbs](ctx, "resize-all", batch)
		return err
	})
	id := enqueue(t, r, album{URLs: []string{"a", "bb", "c.bad", "dddd"}})
	runUntilIdle(t, r)
	if in := get(t, r, id); in.State != jobrun.StateDone {
		t.Fatalf("parent %s: %s", in.State, in.LastError)
	}
	if len(children) != 4 || childRuns.Load() != 4 {
		t.Fatalf("%d children, %d runs", len(children), childRuns.Load())
	}
	for i, want := range []int{1, 2, 0, 4} {
		c := children[i]
		if i == 2 {
			if c.State != jobrun.StateFailed || c.Err == nil || !strings.Contains(c.Err.Error(), "cannot decode c.bad") {
				t.Errorf("the failed child: %+v", c)
			}
			continue
		}
		if c.State != jobrun.StateDone || c.Result.Count != want || c.Err != nil {
			t.Errorf("child %d: %+v", i, c)
		}
	}
}

// TestInvokeRetriesAFailedChildByTheParentsPolicy: a child that fails fails the
// parent's attempt; each retry of the parent invokes a new child, until the
// parent's attempts are spent.
func TestInvokeRetriesAFailedChildByTheParentsPolicy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		var childRuns atomic.Int64
		handleThumbnail(r, &childRuns)
		var lastErr error
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[album]) error {
			_, err := jobrun.Invoke[thumbs](ctx, "resize", thumbnail{URL: "x", Fail: true})
			lastErr = err
			return err
		}, jobrun.MaxAttempts(3), jobrun.Backoff(time.Second, time.Second))
		id := enqueue(t, r, album{})
		in := runUntilState(t, r, id, jobrun.StateFailed)
		if in.State != jobrun.StateFailed || in.Attempt != 3 {
			t.Fatalf("parent %s after %d attempts", in.State, in.Attempt)
		}
		if n := childRuns.Load(); n != 3 {
			t.Errorf("%d children ran, want one per parent attempt: 3", n)
		}
		if lastErr == nil || !strings.Contains(in.LastError, "cannot decode x") {
			t.Errorf("the parent's last error %q, want the child's", in.LastError)
		}
	})
}

// TestParentEndCancelsChildren: a parent canceled while it waits cancels its
// children, the one that runs included (its handler's context ends).
func TestParentEndCancelsChildren(t *testing.T) {
	// One worker for the children: "slow" runs, "later" waits in line.
	r, _ := openRunner(t, jobrun.WithQueue("children", 1, nil))
	started := make(chan struct{})
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[thumbnail]) error {
		if j.Args.URL == "slow" {
			close(started)
			<-ctx.Done()
			return context.Cause(ctx)
		}
		return nil
	}, jobrun.Queue("children"))
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[album]) error {
		_, err := jobrun.InvokeAll[thumbs](ctx, "both", []jobrun.Args{thumbnail{URL: "slow"}, thumbnail{URL: "later"}},
			jobrun.Queue("children"))
		return err
	})
	id := enqueue(t, r, album{})
	changes, err := r.Watch(t.Context(), 100)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	runDone := make(chan error, 1)
	go func() { runDone <- r.Run(ctx) }()
	defer func() { cancel(); <-runDone }()
	<-started
	if err := r.Cancel(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	in := get(t, r, id)
	if in.State != jobrun.StateCanceled || len(in.Steps) != 1 {
		t.Fatalf("parent %s, steps %+v", in.State, in.Steps)
	}
	canceled := map[jobrun.ID]bool{}
	for c := range changes {
		if c.Type == jobrun.ChangeCanceled && c.Kind == "thumbnail" {
			canceled[c.ID] = true
		}
		if len(canceled) == 2 {
			break
		}
	}
	for _, k := range in.Steps[0].Children {
		if child := get(t, r, k); child.State != jobrun.StateCanceled || !canceled[k] {
			t.Errorf("child %d: %s", k, child.State)
		}
	}
}

func TestInvokeRefusals(t *testing.T) {
	r, _ := openRunner(t)
	if _, err := jobrun.Invoke[int](t.Context(), "i", thumbnail{}); !errors.Is(err, jobrun.ErrInvalid) {
		t.Errorf("outside a handler: %v", err)
	}
	var runs atomic.Int64
	handleThumbnail(r, &runs)
	errs := make(chan error, 3)
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[album]) error {
		_, err := jobrun.InvokeAll[int](ctx, "none", nil)
		errs <- err
		_, err = jobrun.Invoke[int](ctx, "nil", nil)
		errs <- err
		_, err = jobrun.Invoke[int](ctx, "bad option", thumbnail{}, jobrun.Queue(""))
		errs <- err
		return nil
	})
	enqueue(t, r, album{})
	runUntilIdle(t, r)
	for _, what := range []string{"no children", "nil args", "a bad option"} {
		if err := <-errs; !errors.Is(err, jobrun.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", what, err)
		}
	}
}

// TestFunctionStatsCountSuspensions: the counters of suspended runs follow each
// suspension and wake-up, and agree with a recount.
func TestFunctionStatsCountSuspensions(t *testing.T) {
	r, _ := openRunner(t)
	var runs atomic.Int64
	handleThumbnail(r, &runs, jobrun.Queue("nobody")) // no worker runs the children
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[album]) error {
		switch j.Args.URLs[0] {
		case "sleep":
			return jobrun.Sleep(ctx, "s", time.Hour)
		case "wait":
			_, _, err := jobrun.WaitFor[int](ctx, "w", "go", jobrun.EventMatch{}, time.Hour)
			return err
		}
		_, err := jobrun.Invoke[thumbs](ctx, "i", thumbnail{URL: "x"})
		return err
	})
	for _, what := range []string{"sleep", "wait", "invoke"} {
		enqueue(t, r, album{URLs: []string{what}})
	}
	if err := r.RunUntilIdle(t.Context()); !errors.Is(err, jobrun.ErrNoWorkers) {
		t.Fatalf("run until idle: %v, want ErrNoWorkers for the children's queue", err)
	}
	check := func(sleeping, waiting, invoking int) {
		t.Helper()
		st, err := r.FunctionStats(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.Sleeping != sleeping || st.Waiting != waiting || st.Invoking != invoking {
			t.Errorf("stats %+v, want %d sleeping, %d waiting, %d invoking", st, sleeping, waiting, invoking)
		}
		if bad, err := r.CheckCounts(t.Context(), false); err != nil || len(bad) > 0 {
			t.Errorf("recount: %+v, %v", bad, err)
		}
	}
	check(1, 1, 1)
	send(t, r, jobrun.Event{Name: "go"})
	check(1, 0, 1)
	page, err := r.List(t.Context(), jobrun.Filter{Kind: "album", State: jobrun.StateScheduled})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range page.Jobs {
		if err := r.Cancel(t.Context(), in.ID); err != nil {
			t.Fatal(err)
		}
	}
	check(0, 0, 0)
}
