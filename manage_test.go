package jobrun_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobrun/jobrun"
	"go.etcd.io/bbolt"
)

// listIDs pages through List with f and returns every job's ID in order.
func listIDs(t *testing.T, r *jobrun.Runner, f jobrun.Filter) []jobrun.ID {
	t.Helper()
	var ids []jobrun.ID
	for pages := 0; ; pages++ {
		p, err := r.List(t.Context(), f)
		if err != nil {
			t.Fatalf("list %+v: %v", f, err)
		}
		for _, in := range p.Jobs {
			ids = append(ids, in.ID)
		}
		if p.Next == "" {
			return ids
		}
		if pages > 1000 {
			t.Fatal("List never ends")
		}
		f.Cursor = p.Next
	}
}

func TestListFiltersPagesAndOrders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t, jobrun.WithQueue("img", 2, nil))
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			if j.Args.To == "fail" {
				return jobrun.Permanent(errors.New("bounced"))
			}
			return nil
		})
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[resize]) error { return nil })
		var mails, fails, images, tagged []jobrun.ID
		for i := range 12 {
			to := "ok"
			if i%4 == 0 {
				to = "fail"
			}
			var opts []jobrun.EnqueueOption
			if i%3 == 0 {
				opts = append(opts, jobrun.Tags("user-7", "batch"))
			}
			id := enqueue(t, r, email{To: to}, opts...)
			mails = append(mails, id)
			if to == "fail" {
				fails = append(fails, id)
			}
			if i%3 == 0 {
				tagged = append(tagged, id)
			}
			images = append(images, enqueue(t, r, resize{Image: fmt.Sprint(i)}, jobrun.Queue("img")))
		}
		later := enqueue(t, r, email{To: "later"}, jobrun.Delay(time.Hour), jobrun.Tags("user-7"))
		runUntilIdle(t, r)

		all := slices.Concat(mails, images, []jobrun.ID{later})
		slices.Sort(all)
		if got := listIDs(t, r, jobrun.Filter{Oldest: true, Limit: 5}); !slices.Equal(got, all) {
			t.Fatalf("all, oldest first, pages of 5: %v, want %v", got, all)
		}
		newest := slices.Clone(all)
		slices.Reverse(newest)
		if got := listIDs(t, r, jobrun.Filter{Limit: 7}); !slices.Equal(got, newest) {
			t.Fatalf("all, newest first: %v, want %v", got, newest)
		}
		if got := listIDs(t, r, jobrun.Filter{Queue: "img", Oldest: true}); !slices.Equal(got, images) {
			t.Fatalf("queue img: %v, want %v", got, images)
		}
		if got := listIDs(t, r, jobrun.Filter{Kind: "email", State: jobrun.StateFailed, Oldest: true, Limit: 2}); !slices.Equal(got, fails) {
			t.Fatalf("failed emails: %v, want %v", got, fails)
		}
		if got := listIDs(t, r, jobrun.Filter{State: jobrun.StateScheduled}); !slices.Equal(got, []jobrun.ID{later}) {
			t.Fatalf("scheduled: %v, want [%d]", got, later)
		}
		wantTagged := append(slices.Clone(tagged), later)
		if got := listIDs(t, r, jobrun.Filter{Tag: "user-7", Oldest: true, Limit: 1}); !slices.Equal(got, wantTagged) {
			t.Fatalf("tag user-7: %v, want %v", got, wantTagged)
		}
		if got := listIDs(t, r, jobrun.Filter{Tag: "user-7", State: jobrun.StateDone}); len(got) != len(tagged)-1 {
			// tagged holds IDs 1, 7, 13, 19 (i = 0, 3, 6, 9); i = 0 failed.
			t.Fatalf("tag user-7, done: %v", got)
		}
		if got := listIDs(t, r, jobrun.Filter{Tag: "nobody"}); len(got) != 0 {
			t.Fatalf("unknown tag: %v", got)
		}
		in := get(t, r, tagged[1])
		if !slices.Equal(in.Tags, []string{"user-7", "batch"}) {
			t.Fatalf("tags: %v", in.Tags)
		}

		for _, f := range []jobrun.Filter{{Limit: -1}, {Limit: 1001}, {State: "lost"}, {Cursor: "%%"}} {
			if _, err := r.List(t.Context(), f); !errors.Is(err, jobrun.ErrInvalid) {
				t.Errorf("List(%+v): %v, want ErrInvalid", f, err)
			}
		}
		for _, tags := range [][]string{{""}, {"a\n"}, make([]string, 17)} {
			for i := range tags {
				if tags[i] == "" && len(tags) == 17 {
					tags[i] = fmt.Sprint(i)
				}
			}
			if _, err := r.Enqueue(t.Context(), email{}, jobrun.Tags(tags...)); !errors.Is(err, jobrun.ErrInvalid) {
				t.Errorf("Tags(%q): %v, want ErrInvalid", tags, err)
			}
		}
	})
}

func TestCancelWaitingJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		ran := false
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error { ran = true; return nil })
		id := enqueue(t, r, email{To: "x"}, jobrun.Delay(time.Minute), jobrun.UniqueKey("k"))
		if err := r.Cancel(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
		runUntilIdle(t, r)
		in := get(t, r, id)
		if in.State != jobrun.StateCanceled || in.FinishedAt.IsZero() || ran {
			t.Fatalf("got %s (finished %v), ran %v; want canceled, not run", in.State, in.FinishedAt, ran)
		}
		wantCounts(t, r, "", map[jobrun.State]int{jobrun.StateCanceled: 1})
		if err := r.Cancel(t.Context(), id); !errors.Is(err, jobrun.ErrState) {
			t.Fatalf("second cancel: %v, want ErrState", err)
		}
		if err := r.Cancel(t.Context(), 999); !errors.Is(err, jobrun.ErrNotFound) {
			t.Fatalf("cancel of an unknown job: %v, want ErrNotFound", err)
		}
		if _, err := r.Enqueue(t.Context(), email{}, jobrun.UniqueKey("k")); err != nil {
			t.Fatalf("the canceled job still holds its unique key: %v", err)
		}
	})
}

func TestCancelReachesRunningHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t, jobrun.WithQueue("one", 1, nil))
		var causes []error
		started := 0
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			started++
			<-ctx.Done()
			causes = append(causes, context.Cause(ctx))
			return ctx.Err()
		}, jobrun.Queue("one"))
		running := enqueue(t, r, email{To: "running"})
		claimed := enqueue(t, r, email{To: "claimed, not started"})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		synctest.Wait()
		// The second job is claimed ahead of the one worker, and reads as ready: it
		// has not started.
		if in := get(t, r, claimed); in.State != jobrun.StateReady || started != 1 {
			t.Fatalf("the second job is %s with %d started; want it ready, claimed ahead of the one worker", in.State, started)
		}
		if in := get(t, r, running); in.State != jobrun.StateRunning {
			t.Fatalf("the first job is %s, want running", in.State)
		}
		for _, id := range []jobrun.ID{claimed, running} {
			if err := r.Cancel(t.Context(), id); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		for _, id := range []jobrun.ID{running, claimed} {
			if in := get(t, r, id); in.State != jobrun.StateCanceled {
				t.Fatalf("job %d: %s, want canceled", id, in.State)
			}
		}
		if started != 1 || len(causes) != 1 || !errors.Is(causes[0], jobrun.ErrCanceled) {
			t.Fatalf("started %d, causes %v; want the running handler canceled with ErrCanceled and the other never started", started, causes)
		}
		if in := get(t, r, running); in.Attempt != 1 || !bytes.Contains([]byte(in.LastError), []byte("canceled")) {
			t.Fatalf("running job after cancel: attempt %d, last error %q", in.Attempt, in.LastError)
		}
		wantCounts(t, r, "one", map[jobrun.State]int{jobrun.StateCanceled: 2})
		cancel()
		<-done
	})
}

func TestCancelOfRunningJobSurvivesCrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, path := openRunner(t)
		release := make(chan struct{})
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			<-release // ignores its context: still running when the "crash" comes
			return nil
		})
		id := enqueue(t, r, email{})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		synctest.Wait()
		if err := r.Cancel(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		// A backup is the file as a crash at this commit would leave it.
		crashed := path + ".crashed"
		var buf bytes.Buffer
		if _, err := r.Backup(t.Context(), &buf); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(crashed, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		close(release)
		cancel()
		<-done

		r2 := reopen(t, crashed)
		in := get(t, r2, id)
		if in.State != jobrun.StateCanceled {
			t.Fatalf("after the crash the job is %s, want canceled", in.State)
		}
		wantCounts(t, r2, "", map[jobrun.State]int{jobrun.StateCanceled: 1})
	})
}

func TestRetryAndRetryFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		failing := true
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			if failing {
				return fmt.Errorf("attempt %d failed", j.Attempt)
			}
			return j.SetResult("sent")
		}, jobrun.MaxAttempts(1))
		var ids []jobrun.ID
		for i := range 5 {
			ids = append(ids, enqueue(t, r, email{To: fmt.Sprint(i)}, jobrun.UniqueKey(fmt.Sprint(i))))
		}
		runUntilIdle(t, r)
		wantCounts(t, r, "", map[jobrun.State]int{jobrun.StateFailed: 5})
		if err := r.Retry(t.Context(), 999); !errors.Is(err, jobrun.ErrNotFound) {
			t.Fatalf("retry of an unknown job: %v", err)
		}
		// Job 0's key was taken by a new job meanwhile: retrying it would make two.
		holder := enqueue(t, r, email{To: "holder"}, jobrun.UniqueKey("0"), jobrun.Delay(time.Hour))
		if err := r.Retry(t.Context(), ids[0]); !errors.Is(err, jobrun.ErrDuplicate) {
			t.Fatalf("retry while another job holds the key: %v, want ErrDuplicate", err)
		}
		if err := r.Retry(t.Context(), holder); !errors.Is(err, jobrun.ErrState) {
			t.Fatalf("retry of a scheduled job: %v, want ErrState", err)
		}

		failing = false
		if err := r.Retry(t.Context(), ids[1]); err != nil {
			t.Fatal(err)
		}
		if in := get(t, r, ids[1]); in.State != jobrun.StateReady || in.Attempt != 0 || len(in.Errors) != 1 {
			t.Fatalf("retried job: %s attempt %d errors %d; want ready, attempt 0, history kept", in.State, in.Attempt, len(in.Errors))
		}
		n, err := r.RetryFailed(t.Context(), "")
		if err != nil || n != 3 {
			t.Fatalf("RetryFailed: %d, %v; want 3 (job 0's key is held)", n, err)
		}
		runUntilIdle(t, r)
		for _, id := range ids[1:] {
			if in := get(t, r, id); in.State != jobrun.StateDone || string(in.Result) != `"sent"` {
				t.Fatalf("job %d: %s result %s", id, in.State, in.Result)
			}
		}
		wantCounts(t, r, "", map[jobrun.State]int{jobrun.StateFailed: 1, jobrun.StateDone: 4, jobrun.StateScheduled: 1})
		if _, err := r.RetryFailed(t.Context(), "bad\x00queue"); !errors.Is(err, jobrun.ErrInvalid) {
			t.Fatalf("RetryFailed of a bad queue name: %v", err)
		}
	})
}

func TestDeleteAndClean(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		block := make(chan struct{})
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			switch j.Args.To {
			case "fail":
				return jobrun.Permanent(errors.New("no"))
			case "block":
				<-block
			}
			return nil
		})
		early := []jobrun.ID{enqueue(t, r, email{}, jobrun.Tags("t")), enqueue(t, r, email{To: "fail"}), enqueue(t, r, email{})}
		runUntilIdle(t, r)
		time.Sleep(time.Hour)
		cut := time.Now()
		late := enqueue(t, r, email{})
		runUntilIdle(t, r)

		if err := r.Delete(t.Context(), early[0]); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Get(t.Context(), early[0]); !errors.Is(err, jobrun.ErrNotFound) {
			t.Fatalf("get after delete: %v", err)
		}
		if got := listIDs(t, r, jobrun.Filter{Tag: "t"}); len(got) != 0 {
			t.Fatalf("the tag index still lists the deleted job: %v", got)
		}
		if err := r.Delete(t.Context(), early[0]); !errors.Is(err, jobrun.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		n, err := r.Clean(t.Context(), "", jobrun.StateDone, cut)
		if err != nil || n != 1 {
			t.Fatalf("clean done before the cut: %d, %v; want 1", n, err)
		}
		if _, err := r.Get(t.Context(), late); err != nil {
			t.Fatalf("the job finished after the cut was cleaned: %v", err)
		}
		if n, err := r.Clean(t.Context(), "", jobrun.StateFailed, time.Now()); err != nil || n != 1 {
			t.Fatalf("purge failed: %d, %v", n, err)
		}
		wantCounts(t, r, "", map[jobrun.State]int{jobrun.StateDone: 1})
		if _, err := r.Clean(t.Context(), "", jobrun.StateReady, time.Now()); !errors.Is(err, jobrun.ErrInvalid) {
			t.Fatalf("clean of ready jobs: %v, want ErrInvalid", err)
		}

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		blocked := enqueue(t, r, email{To: "block"})
		synctest.Wait()
		if err := r.Delete(t.Context(), blocked); !errors.Is(err, jobrun.ErrState) {
			t.Fatalf("delete of a running job: %v, want ErrState", err)
		}
		close(block)
		synctest.Wait()
		cancel()
		<-done
		if n, err := r.Clean(t.Context(), "", "", time.Now().Add(time.Second)); err != nil || n != 2 {
			t.Fatalf("clean everything finished: %d, %v", n, err)
		}
		wantCounts(t, r, "", nil)
		if mismatches, err := r.CheckCounts(t.Context(), false); err != nil || len(mismatches) != 0 {
			t.Fatalf("counts after deletes: %v, %v", mismatches, err)
		}
	})
}

func TestChangesInCommitOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var hooked []jobrun.Change
		r, _ := openRunner(t, jobrun.WithChangeHook(func(e jobrun.Change) {
			mu.Lock()
			hooked = append(hooked, e)
			mu.Unlock()
		}))
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			if j.Attempt == 1 {
				return errors.New("flaky")
			}
			return j.SetProgress(100)
		}, jobrun.Backoff(time.Minute, time.Minute))
		slow, err := r.Watch(t.Context(), 1)
		if err != nil {
			t.Fatal(err)
		}
		id := enqueue(t, r, email{})
		runUntilIdle(t, r)
		time.Sleep(time.Minute)
		runUntilIdle(t, r)

		mu.Lock()
		var got []string
		total := len(hooked)
		for _, e := range hooked {
			if e.ID != id {
				t.Fatalf("event of another job: %+v", e)
			}
			got = append(got, fmt.Sprintf("%s/%s/%d", e.Type, e.State, e.Attempt))
		}
		mu.Unlock()
		want := []string{"enqueued/ready/0", "started/running/1", "retrying/retrying/1", "ready/ready/1",
			"started/running/2", "done/done/2"}
		// The progress is stored with the outcome, or in a commit of its own if the
		// loop took it first.
		got = slices.DeleteFunc(got, func(s string) bool { return s == "progress/running/2" })
		if !slices.Equal(got, want) {
			t.Fatalf("events:\n got %v\nwant %v", got, want)
		}
		// The subscriber's buffer of 1 held the first event; the rest were dropped
		// and are counted on the next one it gets.
		if e := <-slow; e.Type != jobrun.ChangeEnqueued || e.Missed != 0 {
			t.Fatalf("first event: %+v", e)
		}
		enqueue(t, r, email{})
		if e := <-slow; e.Type != jobrun.ChangeEnqueued || e.Missed != total-1 {
			t.Fatalf("after falling behind: %+v, want an enqueued event with Missed %d", e, total-1)
		}
		if _, err := r.Watch(t.Context(), 0); !errors.Is(err, jobrun.ErrInvalid) {
			t.Fatalf("Watch with no buffer: %v", err)
		}
	})
}

func TestWatchEndsWithContextAndClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		ctx, cancel := context.WithCancel(t.Context())
		first, _ := r.Watch(ctx, 4)
		second, _ := r.Watch(t.Context(), 4)
		cancel()
		if _, ok := <-first; ok {
			t.Fatal("the subscription outlived its context")
		}
		r.Close()
		if _, ok := <-second; ok {
			t.Fatal("the subscription outlived the runner")
		}
		if _, err := r.Watch(t.Context(), 1); !errors.Is(err, jobrun.ErrClosed) {
			t.Fatalf("Watch after Close: %v", err)
		}
	})
}

func TestJobLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		proceed := make(chan struct{})
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			for i := range 60 {
				j.Log(fmt.Sprintf("line %d", i))
			}
			<-proceed
			j.Log(string(bytes.Repeat([]byte("x"), 5000)))
			return nil
		})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		id := enqueue(t, r, email{})
		synctest.Wait()
		in := get(t, r, id)
		if in.State != jobrun.StateRunning || len(in.Logs) != 50 || in.Logs[0].Message != "line 10" || in.Logs[49].Message != "line 59" {
			t.Fatalf("while running: %s with %d lines", in.State, len(in.Logs))
		}
		close(proceed)
		synctest.Wait()
		cancel()
		<-done
		in = get(t, r, id)
		last := in.Logs[len(in.Logs)-1].Message
		if in.State != jobrun.StateDone || len(in.Logs) != 50 || len(last) > 1100 || in.Logs[0].Message != "line 11" {
			t.Fatalf("after done: %s, %d lines, last line %d bytes", in.State, len(in.Logs), len(last))
		}
	})
}

func TestRetentionDeletesByAgeAndCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t, jobrun.WithQueue("few", 1, nil),
			jobrun.WithRetention("", jobrun.Retention{Done: time.Hour}),
			jobrun.WithRetention("few", jobrun.Retention{Done: -1, MaxDone: 3}))
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			if j.Args.To == "fail" {
				return jobrun.Permanent(errors.New("no"))
			}
			return nil
		})
		var few []jobrun.ID
		for range 5 {
			enqueue(t, r, email{})
			few = append(few, enqueue(t, r, email{}, jobrun.Queue("few")))
		}
		failed := enqueue(t, r, email{To: "fail"})
		runUntilIdle(t, r)
		time.Sleep(2 * time.Minute) // the cleaner looks within a minute of jobs finishing
		synctest.Wait()
		wantCounts(t, r, "few", map[jobrun.State]int{jobrun.StateDone: 3})
		if got := listIDs(t, r, jobrun.Filter{Queue: "few", Oldest: true}); !slices.Equal(got, few[2:]) {
			t.Fatalf("queue few kept %v, want the newest 3 %v", got, few[2:])
		}
		wantCounts(t, r, "default", map[jobrun.State]int{jobrun.StateDone: 5, jobrun.StateFailed: 1})
		time.Sleep(time.Hour)
		synctest.Wait()
		wantCounts(t, r, "default", map[jobrun.State]int{jobrun.StateFailed: 1})
		wantCounts(t, r, "few", map[jobrun.State]int{jobrun.StateDone: 3})
		time.Sleep(7 * 24 * time.Hour)
		synctest.Wait()
		if _, err := r.Get(t.Context(), failed); !errors.Is(err, jobrun.ErrNotFound) {
			t.Fatalf("a failed job outlived the default week: %v", err)
		}
		for _, bad := range []jobrun.Option{
			jobrun.WithRetention("", jobrun.Retention{MaxDone: -1}),
			jobrun.WithRetention("bad\x00", jobrun.Retention{}),
		} {
			if _, err := jobrun.Open(t.TempDir()+"/x.db", bad); !errors.Is(err, jobrun.ErrInvalid) {
				t.Errorf("bad retention: %v, want ErrInvalid", err)
			}
		}
	})
}

// TestRetentionKeepsFileSizeBounded runs a steady stream of jobs with retention on:
// once the first jobs expire, the cleaner frees as many pages as new jobs take, and
// bbolt reuses them, so the file stops growing.
func TestRetentionKeepsFileSizeBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, path := openRunner(t, jobrun.WithRetention("", jobrun.Retention{Done: 10 * time.Minute}))
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error { return j.SetResult(j.Args.To) })
		size := func() int64 {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			return fi.Size()
		}
		batch := make([]jobrun.Args, 500)
		for i := range batch {
			batch[i] = email{To: fmt.Sprintf("user-%d@example.com", i)}
		}
		var warm int64
		const rounds = 60
		for round := range rounds {
			if _, err := r.EnqueueMany(t.Context(), batch); err != nil {
				t.Fatal(err)
			}
			runUntilIdle(t, r)
			time.Sleep(time.Minute)
			synctest.Wait()
			if round == 20 {
				warm = size()
			}
		}
		counts, _ := r.Counts(t.Context(), "")
		if counts[jobrun.StateDone] > 11*len(batch) {
			t.Fatalf("%d done jobs kept; retention of 10 minutes at %d a minute keeps at most %d",
				counts[jobrun.StateDone], len(batch), 11*len(batch))
		}
		if end := size(); end > warm+warm/10 {
			t.Fatalf("file grew from %d bytes after 20 rounds to %d after %d: retention does not bound it", warm, end, rounds)
		}
		t.Logf("file size after 20 rounds %d bytes, after %d rounds %d bytes (%d jobs run)", warm, rounds, size(), rounds*len(batch))
	})
}

func TestBackupAndCompact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, path := openRunner(t)
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error { return nil })
		batch := make([]jobrun.Args, 5000)
		for i := range batch {
			batch[i] = email{To: fmt.Sprintf("user-%d@example.com", i)}
		}
		if _, err := r.EnqueueMany(t.Context(), batch); err != nil {
			t.Fatal(err)
		}
		keep := enqueue(t, r, email{To: "keep"}, jobrun.Delay(time.Hour))
		runUntilIdle(t, r)
		if n, err := r.Clean(t.Context(), "", jobrun.StateDone, time.Now().Add(time.Second)); err != nil || n != len(batch) {
			t.Fatalf("clean: %d, %v", n, err)
		}
		before, _ := os.Stat(path)

		var buf bytes.Buffer
		n, err := r.Backup(t.Context(), &buf)
		if err != nil || n != int64(buf.Len()) {
			t.Fatalf("backup: %d bytes, %v", n, err)
		}
		copyPath := path + ".backup"
		os.WriteFile(copyPath, buf.Bytes(), 0o600)
		b := reopen(t, copyPath)
		if in := get(t, b, keep); in.State != jobrun.StateScheduled {
			t.Fatalf("the backup holds the job as %s", in.State)
		}

		if err := r.Compact(t.Context()); err != nil {
			t.Fatal(err)
		}
		after, _ := os.Stat(path)
		if after.Size() >= before.Size() {
			t.Fatalf("compaction did not shrink the file: %d → %d bytes", before.Size(), after.Size())
		}
		if in := get(t, r, keep); in.State != jobrun.StateScheduled {
			t.Fatalf("after compaction the job is %s", in.State)
		}
		// The runner goes on with the new file.
		id := enqueue(t, r, email{To: "after"})
		runUntilIdle(t, r)
		wantState(t, get(t, r, id), jobrun.StateDone, 1)
		if err := r.DB().View(func(tx *bbolt.Tx) error {
			for err := range tx.Check() {
				return err
			}
			return nil
		}); err != nil {
			t.Fatalf("compacted file fails bbolt's check: %v", err)
		}
		t.Logf("compaction: %d → %d bytes", before.Size(), after.Size())

		db, err := bbolt.Open(path+".shared", 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		shared, err := jobrun.New(db)
		if err != nil {
			t.Fatal(err)
		}
		defer shared.Close()
		if err := shared.Compact(t.Context()); !errors.Is(err, jobrun.ErrInvalid) {
			t.Fatalf("compact of a runner from New: %v, want ErrInvalid", err)
		}
	})
}

func TestCheckCountsRepairs(t *testing.T) {
	r, path := openRunner(t)
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error { return nil })
	enqueue(t, r, email{})
	enqueue(t, r, email{}, jobrun.Delay(time.Hour))
	runUntilIdle(t, r)
	r.Close()

	// Damage the counters behind the runner's back.
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		counts := tx.Bucket([]byte("jobrun")).Bucket([]byte("counts"))
		return counts.Put(append([]byte{byte(len("default"))}, "default\x05"...), []byte{0, 0, 0, 0, 0, 0, 0, 9})
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	r = reopen(t, path)
	got, err := r.CheckCounts(t.Context(), true)
	want := []jobrun.CountMismatch{{Queue: "default", State: jobrun.StateDone, Stored: 9, Actual: 1}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("check: %v, %v; want %v", got, err, want)
	}
	wantCounts(t, r, "", map[jobrun.State]int{jobrun.StateDone: 1, jobrun.StateScheduled: 1})
	if got, err := r.CheckCounts(t.Context(), false); err != nil || len(got) != 0 {
		t.Fatalf("after repair: %v, %v", got, err)
	}
}

// TestSchemaOneFileIsMigrated rewrites a file's finished index in schema 1's layout
// (finished-at ‖ id → ∅) and checks that opening it migrates the index.
func TestSchemaOneFileIsMigrated(t *testing.T) {
	r, path := openRunner(t)
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
		if j.Args.To == "fail" {
			return jobrun.Permanent(errors.New("no"))
		}
		return nil
	})
	ok := enqueue(t, r, email{})
	bad := enqueue(t, r, email{To: "fail"})
	runUntilIdle(t, r)
	r.Close()

	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		root := tx.Bucket([]byte("jobrun"))
		finished := root.Bucket([]byte("finished"))
		var keys [][]byte
		finished.ForEach(func(k, _ []byte) error { keys = append(keys, bytes.Clone(k)); return nil })
		for _, k := range keys {
			finished.Delete(k)
			finished.Put(k[1:], nil)
		}
		return root.Bucket([]byte("meta")).Put([]byte("schema"), []byte{1})
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	r = reopen(t, path)
	if got := listIDs(t, r, jobrun.Filter{State: jobrun.StateDone}); !slices.Equal(got, []jobrun.ID{ok}) {
		t.Fatalf("done after migration: %v", got)
	}
	if got := listIDs(t, r, jobrun.Filter{State: jobrun.StateFailed}); !slices.Equal(got, []jobrun.ID{bad}) {
		t.Fatalf("failed after migration: %v", got)
	}
	if n, err := r.Clean(t.Context(), "", "", time.Now().Add(time.Second)); err != nil || n != 2 {
		t.Fatalf("clean after migration: %d, %v", n, err)
	}
}

func TestCompactWhileJobsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		var mu sync.Mutex
		ran := map[string]int{}
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			mu.Lock()
			ran[j.Args.To]++
			mu.Unlock()
			return nil
		})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		const producers, each = 4, 200
		var wg sync.WaitGroup
		for p := range producers {
			wg.Go(func() {
				for i := range each {
					if _, err := r.Enqueue(t.Context(), email{To: fmt.Sprintf("%d-%d", p, i)}); err != nil {
						t.Errorf("enqueue during compaction: %v", err)
						return
					}
				}
			})
		}
		for range 3 {
			if err := r.Compact(t.Context()); err != nil {
				t.Fatalf("compact while jobs run: %v", err)
			}
		}
		wg.Wait()
		synctest.Wait()
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		if len(ran) != producers*each {
			t.Fatalf("%d of %d jobs ran", len(ran), producers*each)
		}
		wantCounts(t, r, "", map[jobrun.State]int{jobrun.StateDone: producers * each})
		if m, err := r.CheckCounts(t.Context(), false); err != nil || len(m) != 0 {
			t.Fatalf("counts after compactions: %v %v", m, err)
		}
	})
}
