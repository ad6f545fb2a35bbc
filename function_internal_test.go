package jobrun

import (
	"context"
	"path/filepath"
	"testing"
)

type tableArgs struct{}

func (tableArgs) Kind() string { return "table" }

// TestStoreFunctionsCommitsOnlyAChange: the first Run stores the function table in
// a commit only when it differs from the stored one.
func TestStoreFunctionsCommitsOnlyAChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.db")
	run := func(on bool) uint64 {
		t.Helper()
		r, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var opts []EnqueueOption
		if on {
			opts = append(opts, On("table/changed"))
		}
		Handle(r, func(ctx context.Context, j *Job[tableArgs]) error { return nil }, opts...)
		if err := r.RunUntilIdle(t.Context()); err != nil {
			t.Fatal(err)
		}
		return r.commits.Load()
	}
	base := run(false) // the commits of a run that stores nothing (its session's own)
	for i, tc := range []struct {
		on    bool
		extra uint64
	}{{true, 1}, {true, 0}, {false, 1}, {false, 0}} {
		if got := run(tc.on); got != base+tc.extra {
			t.Errorf("run %d (a function: %v): %d commits, want %d", i+1, tc.on, got, base+tc.extra)
		}
	}
}
