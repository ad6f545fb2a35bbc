package jobruntest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/jobrun/jobrun"
)

// Open opens a runner on a new file in t's temp dir and closes it when t ends. It
// fails t if the runner cannot be opened. opts are passed to [jobrun.Open].
func Open(t testing.TB, opts ...jobrun.Option) *jobrun.Runner {
	t.Helper()
	return open(t, filepath.Join(t.TempDir(), "jobs.db"), opts)
}

// Reopen closes r and opens its file again with opts, as a restart of the process
// does, and closes the new runner when t ends. The file keeps every job with its
// state, attempts and errors, and every schedule; handlers and options are the
// process's, not the file's: register the handlers on the new runner again, and pass
// the options again ([jobrun.WithQueue], for instance).
//
// Closing records the jobs r was running as ready again, without spending an
// attempt, as Close does: it cancels their handlers and waits for them to return, up
// to a second (Close's grace) for a handler that ignores its context. To test what a crash leaves
// instead, use [Crash]. r must own its file ([jobrun.Open] or
// [Open]), not share an application's database ([jobrun.New]), which Close leaves open.
// r may be closed already, by Shutdown say, if this package opened it: bbolt forgets
// a closed database's path, and this package remembers the files it opened.
func Reopen(t testing.TB, r *jobrun.Runner, opts ...jobrun.Option) *jobrun.Runner {
	t.Helper()
	db := r.DB()
	path := pathOf(r)
	if err := r.Close(); err != nil && !errors.Is(err, jobrun.ErrClosed) {
		t.Fatalf("jobruntest: reopen %s: close: %v", path, err)
		return nil
	}
	if !released(t, db, "reopen") {
		return nil
	}
	if path == "" {
		t.Fatalf("jobruntest: reopen: the runner was closed, and a closed runner's database no longer knows its path: " +
			"Reopen a closed runner only if this package opened it (Open, Reopen, Crash)")
		return nil
	}
	return open(t, path, opts)
}

// Crash simulates a crash of r, the process dying at once, and the restart that
// follows: it copies r's file as r's latest commit left it, stops r, puts the copy in
// the file's place and opens it with opts, closing the new runner when t ends. The
// jobs r was running are recorded as running in the copy, as a killed process leaves
// them, so the new runner recovers them: ready again without spending an attempt,
// or failed once found running more often than [jobrun.WithMaxRecoveries] allows.
//
// r is stopped with [jobrun.Runner.Shutdown] and a canceled context: its handlers are canceled, not
// waited for. A handler that ignores its context keeps running until it returns,
// and the outcome it reports is dropped; in a testing/synctest bubble, let it return
// before the test ends. As with [Reopen], the new runner has no handlers yet, and r
// must own its file; unlike Reopen, r must still be open.
func Crash(t testing.TB, r *jobrun.Runner, opts ...jobrun.Option) *jobrun.Runner {
	t.Helper()
	db := r.DB()
	path := db.Path()
	if path == "" {
		t.Fatalf("jobruntest: crash: the runner is closed; only an open runner can crash (Reopen restarts a closed one)")
		return nil
	}
	image := path + ".crash"
	defer os.Remove(image) // if it is not renamed into place
	// A read transaction sees the latest commit whole, as the file holds it for a
	// process that dies now.
	err := db.View(func(tx *bbolt.Tx) error { return tx.CopyFile(image, 0o600) })
	if err != nil {
		t.Fatalf("jobruntest: crash %s: copy the file: %v", path, err)
		return nil
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Shutdown(canceled); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("jobruntest: crash %s: stop the runner: %v", path, err)
		return nil
	}
	if !released(t, db, "crash") {
		return nil
	}
	if err := os.Rename(image, path); err != nil {
		t.Fatalf("jobruntest: crash %s: %v", path, err)
		return nil
	}
	return open(t, path, opts)
}

// released reports whether db, a closed runner's database, is closed too, failing t
// if it is not: the runner did not own it, so its file cannot be opened again.
func released(t testing.TB, db *bbolt.DB, op string) bool {
	t.Helper()
	if db.View(func(*bbolt.Tx) error { return nil }) == nil {
		t.Fatalf("jobruntest: %s %s: the database is still open after the runner closed: the runner was made by jobrun.New, "+
			"and the file belongs to the application; use a runner of jobrun.Open or jobruntest.Open", op, db.Path())
		return false
	}
	return true
}

// paths holds the file of each runner open opened, until its test ends: bbolt clears
// a database's path when it closes, and Reopen may be given a closed runner.
var paths sync.Map // *jobrun.Runner → string

// pathOf returns the path of r's file, "" if r is closed and open did not open it.
func pathOf(r *jobrun.Runner) string {
	if p := r.DB().Path(); p != "" {
		return p
	}
	p, _ := paths.Load(r)
	s, _ := p.(string)
	return s
}

// open opens a runner on path and closes it when t ends.
func open(t testing.TB, path string, opts []jobrun.Option) *jobrun.Runner {
	t.Helper()
	r, err := jobrun.Open(path, opts...)
	if err != nil {
		t.Fatalf("jobruntest: open runner: %v", err)
		return nil
	}
	paths.Store(r, path)
	t.Cleanup(func() {
		r.Close()
		paths.Delete(r)
	})
	return r
}
