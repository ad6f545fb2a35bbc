package jobrun_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.etcd.io/bbolt"

	"github.com/jobrun/jobrun"
)

// fileSum is the SHA-256 of the file at path.
func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// crashedFile makes the file of an application that keeps finished jobs forever and
// recovers a crashed job up to 100 times: 10 done jobs, an hourly schedule, and a
// job that was running when the process died (a backup taken while it ran is the
// file such a crash leaves). It returns the path, the running job's ID and the
// application's options.
func crashedFile(t *testing.T) (string, jobrun.ID, []jobrun.Option) {
	t.Helper()
	appOpts := []jobrun.Option{
		jobrun.WithRetention("", jobrun.Retention{Done: -1, Failed: -1, Canceled: -1}),
		jobrun.WithMaxRecoveries(100),
	}
	r, _ := openRunner(t, appOpts...)
	started := make(chan struct{})
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error { return nil })
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[resize]) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	})
	for range 10 {
		enqueue(t, r, email{To: "ada@example.com"})
	}
	runUntilIdle(t, r)
	if err := r.Schedule(t.Context(), "rollup", "@every 1h", email{To: "ops@example.com"}); err != nil {
		t.Fatal(err)
	}
	running := enqueue(t, r, resize{Image: "a.png"})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-started
	synctest.Wait() // the commit that records the start
	path := filepath.Join(t.TempDir(), "crashed.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Backup(t.Context(), f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	return path, running, appOpts
}

// TestReadOnlyRunnerChangesNothing: a runner opened WithReadOnly reads everything and
// leaves the file byte for byte as it was, though the tool's default retention would
// delete the application's done jobs, its schedule is due and a crashed job waits for
// recovery; every write is refused with ErrReadOnly.
func TestReadOnlyRunnerChangesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path, running, _ := crashedFile(t)
		before := fileSum(t, path)
		time.Sleep(48 * time.Hour) // past the default retention and many fires

		r, err := jobrun.Open(path, jobrun.WithReadOnly())
		if err != nil {
			t.Fatal(err)
		}
		wantCounts(t, r, "", map[jobrun.State]int{jobrun.StateDone: 10, jobrun.StateRunning: 1})
		page, err := r.List(t.Context(), jobrun.Filter{State: jobrun.StateDone})
		if err != nil || len(page.Jobs) != 10 {
			t.Fatalf("list of done jobs: %d jobs (%v), want 10", len(page.Jobs), err)
		}
		if in := get(t, r, running); in.State != jobrun.StateRunning {
			t.Fatalf("the crashed job reads as %s, want running", in.State)
		}
		if mm, err := r.CheckCounts(t.Context(), false); err != nil || len(mm) != 0 {
			t.Fatalf("check counts: %v %v", mm, err)
		}
		scheds, err := r.Schedules(t.Context())
		if err != nil || len(scheds) != 1 {
			t.Fatalf("schedules: %v %v", scheds, err)
		}
		writes := map[string]error{}
		_, writes["Enqueue"] = r.Enqueue(t.Context(), email{}, jobrun.Queue("x"))
		writes["Retry"] = r.Retry(t.Context(), 1)
		writes["Cancel"] = r.Cancel(t.Context(), running)
		writes["Delete"] = r.Delete(t.Context(), 1)
		writes["Pause"] = r.Pause(t.Context(), jobrun.DefaultQueue)
		writes["Unschedule"] = r.Unschedule(t.Context(), "rollup")
		_, writes["TriggerSchedule"] = r.TriggerSchedule(t.Context(), "rollup")
		_, writes["CheckCounts(repair)"] = r.CheckCounts(t.Context(), true)
		writes["Compact"] = r.Compact(t.Context())
		writes["RunUntilIdle"] = r.RunUntilIdle(t.Context())
		for name, err := range writes {
			if !errors.Is(err, jobrun.ErrReadOnly) {
				t.Errorf("%s on a read-only runner: got %v, want ErrReadOnly", name, err)
			}
		}
		time.Sleep(time.Hour) // the runner's loop has its chance to fire or clean
		synctest.Wait()
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if fileSum(t, path) != before {
			t.Fatal("a read-only runner changed the file")
		}
	})
}

// TestRunnerWithoutServicesWritesOnlyWhatItIsAsked: a tool's runner (WithServices
// false) on the same file deletes no jobs, fires no schedule, recovers no crashed
// job and admits nothing: it writes the pause it was asked for, and the application
// then recovers its job under its own limit.
func TestRunnerWithoutServicesWritesOnlyWhatItIsAsked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path, running, appOpts := crashedFile(t)
		time.Sleep(48 * time.Hour)

		r, err := jobrun.Open(path, jobrun.WithServices(false), jobrun.WithStrictKinds(false))
		if err != nil {
			t.Fatal(err)
		}
		before, err := r.Schedules(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Pause(t.Context(), jobrun.DefaultQueue); err != nil {
			t.Fatal(err)
		}
		if err := r.RunUntilIdle(t.Context()); !errors.Is(err, jobrun.ErrInvalid) {
			t.Errorf("RunUntilIdle without services: got %v, want ErrInvalid", err)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		wantCounts(t, r, "", map[jobrun.State]int{jobrun.StateDone: 10, jobrun.StateRunning: 1})
		after, err := r.Schedules(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !after[0].Next.Equal(before[0].Next) || !after[0].Last.Equal(before[0].Last) {
			t.Errorf("the schedule moved: next %v last %v, was next %v last %v", after[0].Next, after[0].Last, before[0].Next, before[0].Last)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}

		app := reopen(t, path, appOpts...)
		if paused, err := queueIsPaused(t.Context(), app, jobrun.DefaultQueue); err != nil || !paused {
			t.Fatalf("the pause was not stored: %v %v", paused, err)
		}
		in := get(t, app, running)
		if in.State != jobrun.StateReady {
			t.Fatalf("the crashed job is %s after the application's open, want ready", in.State)
		}
	})
}

// TestOneRunnerPerDatabase: a second runner on a database that has one would take
// the first one's running jobs for crashed ones, so New refuses it until the first
// is closed.
func TestOneRunnerPerDatabase(t *testing.T) {
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "app.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	first, err := jobrun.New(db)
	if err != nil {
		t.Fatal(err)
	}
	if second, err := jobrun.New(db); !errors.Is(err, jobrun.ErrInvalid) {
		if second != nil {
			second.Close()
		}
		t.Fatalf("a second runner on one database: got %v, want ErrInvalid", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := jobrun.New(db)
	if err != nil {
		t.Fatalf("a runner after the first closed: %v", err)
	}
	again.Close()
}

// TestQueueWithoutWorkersIsReported: a kind handled on a queue the runner does not
// run gets a warning at start, and RunUntilIdle names the queue instead of returning
// nil with the job waiting forever; a paused queue is not reported.
func TestQueueWithoutWorkersIsReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs strings.Builder
		r, _ := openRunner(t, jobrun.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error { return nil }, jobrun.Queue("email"))
		id := enqueue(t, r, email{To: "ada@example.com"})
		err := r.RunUntilIdle(t.Context())
		if !errors.Is(err, jobrun.ErrNoWorkers) || !strings.Contains(err.Error(), `"email" (1 ready)`) {
			t.Fatalf("run until idle: got %v, want ErrNoWorkers naming queue email", err)
		}
		if !strings.Contains(logs.String(), "kind=email queue=email") {
			t.Fatalf("no warning about kind email's queue in the log:\n%s", logs.String())
		}
		if in := get(t, r, id); in.State != jobrun.StateReady {
			t.Fatalf("the job is %s, want ready", in.State)
		}
		if err := r.Pause(t.Context(), "email"); err != nil {
			t.Fatal(err)
		}
		if err := r.RunUntilIdle(t.Context()); err != nil {
			t.Fatalf("run until idle with the queue paused: %v", err)
		}
	})
}

// TestCloseReturnsDespiteStubbornHandler: Close waits CloseGrace for a handler that
// ignores its canceled context, then returns; the job is recorded ready again
// without spending an attempt, as an abandoned timeout's is.
func TestCloseReturnsDespiteStubbornHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, path := openRunner(t)
		started, stuck := make(chan struct{}), make(chan struct{})
		defer close(stuck)
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[email]) error {
			close(started)
			<-stuck
			return nil
		})
		id := enqueue(t, r, email{})
		go r.Run(context.Background())
		<-started
		begin := time.Now()
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(begin); waited != jobrun.CloseGrace {
			t.Fatalf("Close returned after %v, want CloseGrace (%v)", waited, jobrun.CloseGrace)
		}
		again := reopen(t, path)
		if in := get(t, again, id); in.State != jobrun.StateReady || in.Attempt != 0 {
			t.Fatalf("after Close: %s, attempt %d; want ready, attempt 0", in.State, in.Attempt)
		}
	})
}

// TestReadOnlyOpensEarlierFile: a file an earlier jobrun wrote lacks the buckets added
// since; a read-only runner reads it without writing, a tool's runner writes only what
// it is asked, and the application's next open adds them.
func TestReadOnlyOpensEarlierFile(t *testing.T) {
	r, path := openRunner(t, jobrun.WithStrictKinds(false))
	id := enqueue(t, r, email{To: "ada@example.com"})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error { return tx.Bucket([]byte("jobrun")).DeleteBucket([]byte("held")) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before := fileSum(t, path)

	ro, err := jobrun.Open(path, jobrun.WithReadOnly())
	if err != nil {
		t.Fatalf("read-only open of a file without the held bucket: %v", err)
	}
	if in := get(t, ro, id); in.State != jobrun.StateReady {
		t.Fatalf("job %d: %s", id, in.State)
	}
	ro.Close()
	if fileSum(t, path) != before {
		t.Fatal("the read-only open changed the file")
	}
	tool, err := jobrun.Open(path, jobrun.WithServices(false), jobrun.WithStrictKinds(false))
	if err != nil {
		t.Fatal(err)
	}
	if err := tool.Cancel(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	tool.Close()
	app := reopen(t, path)
	if in := get(t, app, id); in.State != jobrun.StateCanceled {
		t.Fatalf("job %d after the tool's cancel: %s", id, in.State)
	}
}
