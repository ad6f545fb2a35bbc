package jobrun_test

// Fault tests: what a user sees when the environment misbehaves (a foreign file, a
// read-only location, a handler that ignores its context, a full disk), and that the
// fault harms nothing else: earlier jobs stay intact, the runner keeps working and
// the file passes bbolt's consistency check.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"go.etcd.io/bbolt"

	"github.com/jobrun/jobrun"
)

// faultArgs are the args of the fault tests' jobs.
type faultArgs struct {
	N        int    `json:"n"`
	Stubborn bool   `json:"stubborn,omitempty"` // the handler ignores its context
	Payload  string `json:"payload,omitempty"`
}

func (faultArgs) Kind() string { return "fault" }

// faultJobs enqueues n small jobs numbered from first and returns their IDs.
func faultJobs(t *testing.T, r *jobrun.Runner, first, n int, opts ...jobrun.EnqueueOption) []jobrun.ID {
	t.Helper()
	var ids []jobrun.ID
	for i := first; i < first+n; i++ {
		ids = append(ids, enqueue(t, r, faultArgs{N: i}, opts...))
	}
	return ids
}

// wantArgs fails the test unless job id is stored with args want.
func wantArgs(t *testing.T, r *jobrun.Runner, id jobrun.ID, want faultArgs) *jobrun.Info {
	t.Helper()
	in := get(t, r, id)
	var got faultArgs
	if err := json.Unmarshal(in.RawArgs, &got); err != nil || got != want {
		t.Fatalf("job %d: args %s (%v), want %+v", id, in.RawArgs, err, want)
	}
	return in
}

// checkFile opens the bbolt file at path read-only and fails the test for every
// inconsistency tx.Check finds.
func checkFile(t *testing.T, path string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("open %s for a check: %v", path, err)
	}
	defer db.Close()
	crashRecCheckFile(t, db)
}

// openBounded is jobrun.Open that fails the test if Open does not return within a
// minute: a fault must give an error, not a hang.
func openBounded(t *testing.T, path string, opts ...jobrun.Option) (*jobrun.Runner, error) {
	t.Helper()
	type result struct {
		r   *jobrun.Runner
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := jobrun.Open(path, opts...)
		done <- result{r, err}
	}()
	select {
	case res := <-done:
		if res.r != nil {
			t.Cleanup(func() { res.r.Close() })
		}
		return res.r, res.err
	case <-time.After(time.Minute):
		t.Fatalf("Open(%s) did not return within a minute", path)
		return nil, nil
	}
}

// writable reports whether this process can create a file in dir: true for root
// whatever dir's mode, since root ignores permission bits.
func writable(dir string) bool {
	f, err := os.CreateTemp(dir, "probe")
	if err != nil {
		return false
	}
	f.Close()
	os.Remove(f.Name())
	return true
}

// run runs a command for a test setup step and returns its error with its output.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// remountReadOnly makes dir a read-only bind mount of itself until the test ends. It
// needs root (CAP_SYS_ADMIN) and Linux.
func remountReadOnly(t *testing.T, dir string) error {
	t.Helper()
	if err := run("mount", "--bind", dir, dir); err != nil {
		return err
	}
	t.Cleanup(func() {
		if err := run("umount", dir); err != nil {
			t.Error(err)
		}
	})
	return run("mount", "-o", "remount,bind,ro", dir)
}

// setImmutable sets the immutable attribute of path until the test ends: not even root
// may then write it or, for a directory, create files in it. It needs root
// (CAP_LINUX_IMMUTABLE) and a file system with attributes (not tmpfs or overlayfs).
func setImmutable(t *testing.T, path string) error {
	t.Helper()
	if err := run("chattr", "+i", path); err != nil {
		return err
	}
	t.Cleanup(func() {
		if err := run("chattr", "-i", path); err != nil {
			t.Error(err)
		}
	})
	return nil
}

// mountTmpfs mounts a tmpfs of size bytes on a new temp dir until the test ends, or
// skips the test with the reason. It needs root (CAP_SYS_ADMIN) and Linux.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root to mount a small tmpfs; running as uid %d", os.Geteuid())
	}
	dir := t.TempDir()
	if err := run("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := run("umount", dir); err != nil {
			t.Error(err)
		}
	})
	return dir
}

// dumpBuckets returns every key and value of the file's top-level buckets other than
// the runner's, nested buckets and bucket sequences included, as path → value.
func dumpBuckets(t *testing.T, db *bbolt.DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(prefix string, b *bbolt.Bucket) error
	walk = func(prefix string, b *bbolt.Bucket) error {
		out[prefix+"#seq"] = fmt.Sprint(b.Sequence())
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				return walk(prefix+"/"+string(k), b.Bucket(k))
			}
			out[prefix+"/"+string(k)] = string(v)
			return nil
		})
	}
	err := db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			if string(name) == "jobrun" {
				return nil
			}
			return walk(string(name), b)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// topBuckets returns the names of the file's top-level buckets.
func topBuckets(t *testing.T, db *bbolt.DB) []string {
	t.Helper()
	var names []string
	db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
			names = append(names, string(name))
			return nil
		})
	})
	return names
}

// foreignFile creates the bbolt file of another application at path, fills it with
// buckets, nested buckets, values and sequences, and returns their dump.
func foreignFile(t *testing.T, path string, fill func(tx *bbolt.Tx) error) map[string]string {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		users, err := tx.CreateBucket([]byte("users"))
		if err != nil {
			return err
		}
		for i := range 500 { // a few pages, so the runner's writes share the file's pages
			id, _ := users.NextSequence()
			if err := users.Put(fmt.Appendf(nil, "user-%04d", id), fmt.Appendf(nil, `{"name":"user %d"}`, i)); err != nil {
				return err
			}
		}
		prefs, err := users.CreateBucket([]byte("prefs"))
		if err != nil {
			return err
		}
		if err := prefs.Put([]byte("theme"), []byte("dark")); err != nil {
			return err
		}
		config, err := tx.CreateBucket([]byte("config"))
		if err != nil {
			return err
		}
		if err := config.Put([]byte("blob"), bytes.Repeat([]byte{0xab}, 20000)); err != nil { // an overflow page
			return err
		}
		if fill != nil {
			return fill(tx)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dumpBuckets(t, db)
}

// TestForeignBboltFile: Open on the bbolt file of another application adds the runner's
// bucket, runs jobs, and leaves every bucket, value and sequence of the application as
// it was, through a restart.
func TestForeignBboltFile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "app.db")
		before := foreignFile(t, path, nil)

		r, err := jobrun.Open(path)
		if err != nil {
			t.Fatalf("open of another application's bbolt file: %v", err)
		}
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[faultArgs]) error {
			return j.SetResult(j.Args.N * 2)
		})
		ids := faultJobs(t, r, 0, 20)
		runUntilIdle(t, r)
		later := enqueue(t, r, faultArgs{N: 99}, jobrun.Delay(time.Hour))
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}

		r = reopen(t, path)
		for i, id := range ids {
			if in := wantArgs(t, r, id, faultArgs{N: i}); in.State != jobrun.StateDone || string(in.Result) != fmt.Sprint(2*i) {
				t.Fatalf("job %d after restart: %s with result %s, want done with %d", id, in.State, in.Result, 2*i)
			}
		}
		wantState(t, get(t, r, later), jobrun.StateScheduled, 0)
		wantCounts(t, r, "", map[jobrun.State]int{jobrun.StateDone: 20, jobrun.StateScheduled: 1})
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}

		db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		crashRecCheckFile(t, db)
		if got := topBuckets(t, db); !slices.Equal(got, []string{"config", "jobrun", "users"}) {
			t.Fatalf("top-level buckets %v, want [config jobrun users]", got)
		}
		if after := dumpBuckets(t, db); !maps.Equal(after, before) {
			t.Fatalf("the application's buckets changed: %d entries before, %d after", len(before), len(after))
		}
	})
}

// TestForeignBucketNamedJobrun: an application that already uses a top-level bucket
// named "jobrun" for something else gets ErrSchema from Open, and that bucket, like
// the rest of the file, is left as it was.
func TestForeignBucketNamedJobrun(t *testing.T) {
	for name, fill := range map[string]func(b *bbolt.Bucket) error{
		// One of the runner's bucket names holds a value.
		"value where the runner keeps a bucket": func(b *bbolt.Bucket) error {
			return b.Put([]byte("jobs"), []byte("the application's own list of jobs"))
		},
		// Nothing of the runner at all: the application's own keys.
		"unrelated keys": func(b *bbolt.Bucket) error {
			if err := b.Put([]byte("owner"), []byte("ci")); err != nil {
				return err
			}
			_, err := b.CreateBucket([]byte("history"))
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.db")
			before := foreignFile(t, path, func(tx *bbolt.Tx) error {
				b, err := tx.CreateBucket([]byte("jobrun"))
				if err != nil {
					return err
				}
				return fill(b)
			})
			db, err := bbolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			theirs := dumpJobrunBucket(t, db)
			db.Close()

			r, err := openBounded(t, path)
			if !errors.Is(err, jobrun.ErrSchema) {
				if r != nil {
					r.Close()
				}
				t.Fatalf("open: got %v, want ErrSchema", err)
			}
			t.Logf("the user sees: %v", err)

			db, err = bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			crashRecCheckFile(t, db)
			if after := dumpBuckets(t, db); !maps.Equal(after, before) {
				t.Fatal("the application's buckets changed")
			}
			if after := dumpJobrunBucket(t, db); !maps.Equal(after, theirs) {
				t.Fatalf("the application's jobrun bucket changed:\n got %v\nwant %v", after, theirs)
			}
		})
	}
}

// dumpJobrunBucket returns the keys of the top-level "jobrun" bucket as path → value
// ("" for a nested bucket).
func dumpJobrunBucket(t *testing.T, db *bbolt.DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("jobrun"))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			out[string(k)] = string(v)
			return nil
		})
	})
	return out
}

// TestOpenInReadOnlyDirectory: Open of a new file in a directory the process cannot
// write to fails at once with an error naming the path and the cause, and creates
// nothing. Root ignores permission bits, so as root the directory is made a read-only
// bind mount instead (skipped where mounting is not allowed).
func TestOpenInReadOnlyDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	how := "mode 0500"
	if writable(dir) { // root: try the ways that bind root too
		if err := remountReadOnly(t, dir); err == nil {
			how = "read-only bind mount"
		} else if err2 := setImmutable(t, dir); err2 == nil {
			how = "immutable directory"
		} else {
			t.Skipf("running as root, which ignores mode 0500, and the directory cannot be made read-only otherwise: %v; %v", err, err2)
		}
	}
	path := filepath.Join(dir, "jobs.db")
	r, err := openBounded(t, path)
	if err == nil {
		t.Fatalf("open in a read-only directory (%s): no error", how)
	}
	if r != nil {
		t.Fatalf("open failed but returned a runner: %v", err)
	}
	if !errors.Is(err, fs.ErrPermission) && !errors.Is(err, syscall.EROFS) {
		t.Errorf("open in a read-only directory (%s): got %v, want a permission or read-only file system error", how, err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
	t.Logf("%s: the user sees: %v", how, err)
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed open left a file behind: %v", err)
	}
}

// TestOpenReadOnlyFile: a runner file that cannot be opened for writing gives a clear
// error, and its jobs are intact when it is writable again. The file is made read-only
// each way this process can: mode 0400 (not for root), a read-only bind mount and the
// immutable attribute (root only), and a read-only bbolt handle given to New (always).
func TestOpenReadOnlyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "jobs.db")
	r, err := jobrun.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[faultArgs]) error { return nil })
	ids := faultJobs(t, r, 0, 3)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	original, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	wantRefused := func(t *testing.T, how string, err error, want ...error) {
		t.Helper()
		if err == nil {
			t.Fatalf("open of a %s: no error", how)
		}
		if !slices.ContainsFunc(want, func(w error) bool { return errors.Is(err, w) }) {
			t.Errorf("open of a %s: got %v, want an error wrapping one of %v", how, err, want)
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("error %q does not name the file", err)
		}
		t.Logf("%s: the user sees: %v", how, err)
	}

	t.Run("mode 0400", func(t *testing.T) {
		if err := os.Chmod(path, 0o400); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(path, 0o600)
		if f, err := os.OpenFile(path, os.O_RDWR, 0); err == nil {
			f.Close()
			t.Skip("running as root, which ignores permission bits: a 0400 file opens for writing")
		}
		_, err := openBounded(t, path)
		wantRefused(t, "file with mode 0400", err, fs.ErrPermission)
	})

	t.Run("read-only mount", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to bind-mount the directory read-only")
		}
		if err := remountReadOnly(t, dir); err != nil {
			t.Skipf("cannot make a read-only bind mount: %v", err)
		}
		_, err := openBounded(t, path)
		wantRefused(t, "file on a read-only file system", err, syscall.EROFS)
	})

	t.Run("immutable file", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to set the immutable attribute")
		}
		if err := setImmutable(t, path); err != nil {
			t.Skipf("cannot set the immutable attribute: %v", err)
		}
		_, err := openBounded(t, path)
		wantRefused(t, "file with the immutable attribute", err, fs.ErrPermission)
	})

	t.Run("read-only bbolt handle", func(t *testing.T) {
		// New makes a read-only runner of it: reads work, writes are refused.
		db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		r, err := jobrun.New(db)
		if err != nil {
			t.Fatalf("New on a read-only handle: %v", err)
		}
		defer r.Close()
		wantArgs(t, r, ids[0], faultArgs{N: 0})
		if _, err := r.Enqueue(t.Context(), faultArgs{N: 9}); !errors.Is(err, jobrun.ErrReadOnly) {
			t.Errorf("enqueue on a read-only runner: got %v, want ErrReadOnly", err)
		}
		if err := r.RunUntilIdle(t.Context()); !errors.Is(err, jobrun.ErrReadOnly) {
			t.Errorf("run on a read-only runner: got %v, want ErrReadOnly", err)
		}
	})

	if now, err := os.ReadFile(path); err != nil || !bytes.Equal(now, original) {
		t.Fatalf("the refused opens changed the file (%v)", err)
	}
	checkFile(t, path)
	r = reopen(t, path)
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[faultArgs]) error { return nil })
	for i, id := range ids {
		wantArgs(t, r, id, faultArgs{N: i})
	}
	runUntilIdle(t, r)
	for _, id := range ids {
		wantState(t, get(t, r, id), jobrun.StateDone, 1)
	}
}

// TestStubbornHandlerPastTimeout: a handler that ignores its context past its Timeout
// fails its attempt with a timeout error at the deadline; its worker slot goes to the
// next job, neither lost (jobs behind it run) nor doubled (the queue's one worker stays
// one); and Shutdown returns when its context ends while handlers are still stuck.
func TestStubbornHandlerPastTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, path := openRunner(t, jobrun.WithQueue(jobrun.DefaultQueue, 1, nil))
		release := make(chan struct{})
		free := sync.OnceFunc(func() { close(release) })
		t.Cleanup(free) // before the runner's Close, which waits for handlers
		var stuck, ran atomic.Int64
		started := make(chan jobrun.ID, 8)
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[faultArgs]) error {
			if !j.Args.Stubborn {
				ran.Add(1)
				return nil
			}
			stuck.Add(1)
			defer stuck.Add(-1)
			started <- j.ID
			<-release // ignores ctx
			return nil
		}, jobrun.Timeout(5*time.Second), jobrun.MaxAttempts(1))
		runErr := make(chan error, 1)
		go func() { runErr <- r.Run(context.Background()) }()

		stubborn := enqueue(t, r, faultArgs{N: 1, Stubborn: true})
		<-started
		waiting := faultJobs(t, r, 10, 3)
		start := time.Now()
		synctest.Wait()
		if n := ran.Load(); n != 0 {
			t.Fatalf("%d jobs ran while the stubborn handler held the queue's only slot", n)
		}

		time.Sleep(5 * time.Second)
		synctest.Wait()
		in := get(t, r, stubborn)
		wantState(t, in, jobrun.StateFailed, 1)
		if !strings.Contains(in.LastError, "jobrun: attempt timed out after 5s") {
			t.Fatalf("stubborn job: last error %q, want the timeout", in.LastError)
		}
		if !in.FinishedAt.Equal(start.Add(5 * time.Second)) {
			t.Fatalf("stubborn job failed at %v, want at its deadline %v", in.FinishedAt, start.Add(5*time.Second))
		}
		for _, id := range waiting {
			wantState(t, get(t, r, id), jobrun.StateDone, 1)
		}
		if n := stuck.Load(); n != 1 {
			t.Fatalf("%d handlers stuck, want the abandoned one", n)
		}
		wantCounts(t, r, "", map[jobrun.State]int{jobrun.StateFailed: 1, jobrun.StateDone: 3})

		// The replacement worker took the slot, not an extra one: a second stubborn
		// job holds the queue again.
		second := enqueue(t, r, faultArgs{N: 2, Stubborn: true})
		<-started
		behind := enqueue(t, r, faultArgs{N: 20})
		synctest.Wait()
		if n := ran.Load(); n != 3 {
			t.Fatalf("%d jobs ran, want 3: the abandoned handler's slot was given twice", n)
		}

		// Shutdown with two handlers stuck (one abandoned, one within its timeout)
		// returns when its context ends.
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		stop := time.Now()
		if err := r.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("shutdown: got %v, want DeadlineExceeded", err)
		}
		if d := time.Since(stop); d != time.Second {
			t.Fatalf("shutdown took %v, want its 1s deadline", d)
		}
		if err := <-runErr; !errors.Is(err, jobrun.ErrClosed) {
			t.Fatalf("Run returned %v, want ErrClosed", err)
		}
		if n := stuck.Load(); n != 2 {
			t.Fatalf("%d handlers stuck, want 2", n)
		}

		r2 := reopen(t, path)
		wantState(t, get(t, r2, second), jobrun.StateReady, 0) // interrupted: no attempt spent
		wantState(t, get(t, r2, behind), jobrun.StateReady, 0)
		wantState(t, get(t, r2, stubborn), jobrun.StateFailed, 1)
		wantCounts(t, r2, "", map[jobrun.State]int{jobrun.StateFailed: 1, jobrun.StateDone: 3, jobrun.StateReady: 2})
		r2.Close()
		checkFile(t, path)

		free()
		synctest.Wait()
		if n := stuck.Load(); n != 0 {
			t.Fatalf("%d handlers still stuck after the release", n)
		}
	})
}

// TestCloseWithAbandonedHandler: Close cancels handlers and waits for them to return,
// so a handler abandoned after its Timeout, which ignores its context, holds Close
// until it returns; Close then returns at once and the job stays failed.
func TestCloseWithAbandonedHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, path := openRunner(t, jobrun.WithQueue(jobrun.DefaultQueue, 1, nil))
		release := make(chan struct{})
		free := sync.OnceFunc(func() { close(release) })
		t.Cleanup(free)
		started := make(chan struct{})
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[faultArgs]) error {
			close(started)
			<-release // ignores ctx
			return nil
		}, jobrun.Timeout(5*time.Second), jobrun.MaxAttempts(1))
		go r.Run(context.Background())
		id := enqueue(t, r, faultArgs{Stubborn: true})
		<-started
		time.Sleep(5 * time.Second)
		synctest.Wait()
		wantState(t, get(t, r, id), jobrun.StateFailed, 1)

		closed := make(chan error, 1)
		go func() { closed <- r.Close() }()
		synctest.Wait()
		select {
		case err := <-closed:
			t.Logf("Close returned %v with the abandoned handler still stuck", err)
			free()
		default:
			t.Log("Close waits for the abandoned handler, as documented")
			free()
			synctest.Wait()
			select {
			case err := <-closed:
				if err != nil {
					t.Fatalf("close: %v", err)
				}
			default:
				t.Fatal("Close did not return after the stuck handler did")
			}
		}
		r2 := reopen(t, path)
		wantState(t, get(t, r2, id), jobrun.StateFailed, 1)
	})
}

// TestDiskFullWhileEnqueueing: on a full disk Enqueue returns the write error (no
// panic, no hang); the jobs acknowledged before are intact, a failed EnqueueMany
// stores none of its batch, the runner keeps working once space is freed, and the
// file passes bbolt's check. It needs root to mount a small tmpfs (skipped otherwise).
func TestDiskFullWhileEnqueueing(t *testing.T) {
	dir := mountTmpfs(t, 4<<20)
	filler := filepath.Join(dir, "filler") // freed later to make room
	if err := os.WriteFile(filler, bytes.Repeat([]byte{1}, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "jobs.db")
	r, err := jobrun.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[faultArgs]) error { return nil })
	// A full disk must give an error, not a hang: bound every call.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	small := faultJobs(t, r, 0, 3)

	// Large jobs on a queue no worker runs, until the disk is full.
	payload := strings.Repeat("x", 64<<10)
	var big []jobrun.ID
	var fullErr error
	for i := range 200 { // 12.5 MiB in all: more than the tmpfs holds
		id, err := r.Enqueue(ctx, faultArgs{N: 1000 + i, Payload: payload}, jobrun.Queue("fill"))
		if err != nil {
			fullErr = err
			break
		}
		big = append(big, id)
	}
	if fullErr == nil {
		t.Fatal("200 jobs of 64 KiB fit on a 4 MiB file system")
	}
	if !errors.Is(fullErr, syscall.ENOSPC) || !strings.Contains(fullErr.Error(), path) {
		t.Fatalf("enqueue on a full disk: got %v, want ENOSPC naming the file", fullErr)
	}
	t.Logf("after %d large jobs the user sees: %v", len(big), fullErr)
	if len(big) == 0 {
		t.Fatal("no large job fit: the test proved nothing")
	}

	batch := make([]jobrun.Args, 8)
	for i := range batch {
		batch[i] = faultArgs{N: 2000 + i, Payload: payload}
	}
	if ids, err := r.EnqueueMany(ctx, batch, jobrun.Queue("fill")); !errors.Is(err, syscall.ENOSPC) || ids != nil {
		t.Fatalf("enqueue many on a full disk: got %v, %v, want ENOSPC and no IDs", ids, err)
	}
	wantCounts(t, r, "", map[jobrun.State]int{jobrun.StateReady: len(small) + len(big)})
	for i, id := range small {
		wantArgs(t, r, id, faultArgs{N: i})
	}
	for i, id := range big {
		wantArgs(t, r, id, faultArgs{N: 1000 + i, Payload: payload})
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	more := enqueue(t, r, faultArgs{N: 3})
	if _, err := r.EnqueueMany(ctx, batch[:4], jobrun.Queue("fill")); err != nil {
		t.Fatalf("enqueue many after freeing space: %v", err)
	}
	// The "fill" queue has no workers here: its jobs wait, and RunUntilIdle says so.
	if err := r.RunUntilIdle(t.Context()); !errors.Is(err, jobrun.ErrNoWorkers) || !strings.Contains(err.Error(), `"fill"`) {
		t.Fatalf("run until idle with ready jobs in a queue without workers: got %v, want ErrNoWorkers naming it", err)
	}
	for _, id := range append(small, more) {
		wantState(t, get(t, r, id), jobrun.StateDone, 1)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	checkFile(t, path)
	r = reopen(t, path)
	wantCounts(t, r, "", map[jobrun.State]int{jobrun.StateDone: len(small) + 1, jobrun.StateReady: len(big) + 4})
	wantCounts(t, r, "fill", map[jobrun.State]int{jobrun.StateReady: len(big) + 4})
	for i, id := range big {
		wantArgs(t, r, id, faultArgs{N: 1000 + i, Payload: payload})
	}
}
