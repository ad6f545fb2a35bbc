package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/jobrun/jobrun"
)

// damagedFixture writes a file of 300 ready jobs and returns its path and the root
// pages of its ready index (whose damage leaves every job readable) and of its jobs.
func damagedFixture(t *testing.T) (path string, ready, jobs uint64, pageSize int) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "jobs.db")
	r, err := jobrun.Open(path, jobrun.WithStrictKinds(false))
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]jobrun.Args, 300)
	for i := range batch {
		batch[i] = adminEmail{To: strings.Repeat("x", 60)}
	}
	if _, err := r.EnqueueMany(t.Context(), batch, jobrun.Queue("mail")); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bbolt.Tx) error {
		ready = uint64(tx.Bucket([]byte("jobrun")).Bucket([]byte("ready")).Root())
		jobs = uint64(tx.Bucket([]byte("jobrun")).Bucket([]byte("jobs")).Root())
		return nil
	})
	if ready == 0 || jobs == 0 {
		t.Fatal("the ready index or the jobs bucket is inline")
	}
	return path, ready, jobs, db.Info().PageSize
}

// zeroPage zeroes page p of the file at path.
func zeroPage(t *testing.T, path string, p uint64, pageSize int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, pageSize), int64(p)*int64(pageSize)); err != nil {
		t.Fatal(err)
	}
}

// noStack fails the test if the output holds a stack trace.
func noStack(t *testing.T, out string) {
	t.Helper()
	if strings.Contains(out, "goroutine ") || strings.Contains(out, "panic") {
		t.Errorf("output holds a stack trace:\n%s", out)
	}
}

// TestAdminOnDamagedFile: every admin command on a damaged file prints the error,
// which says what to do, without a stack trace, and exits 1.
func TestAdminOnDamagedFile(t *testing.T) {
	path, ready, _, ps := damagedFixture(t)
	zeroPage(t, path, ready, ps)
	truncated := filepath.Join(t.TempDir(), "truncated.db")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(truncated, b[:len(b)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"stats", truncated}, {"list", truncated}, {"show", truncated, "1"}, {"schedules", truncated},
		{"retry", truncated, "-failed"}, {"cancel", truncated, "1"}, {"delete", truncated, "1"},
		{"pause", truncated, "mail"}, {"resume", truncated, "mail"},
		{"list", path, "-state", "ready"}, {"cancel", path, "5"},
	} {
		_, errs := cli(t, 1, args...)
		noStack(t, errs)
		for _, want := range []string{"jobrun " + args[0] + ": ", args[1], "database file is damaged", "jobrun salvage"} {
			mustContain(t, errs, want)
		}
		if args[1] == truncated {
			mustContain(t, errs, "it was truncated")
		}
	}
}

// TestSalvageCommand copies the jobs of a damaged file into a new one that the
// other commands read, and refuses what it cannot do.
func TestSalvageCommand(t *testing.T) {
	path, ready, jobs, ps := damagedFixture(t)
	lost := filepath.Join(t.TempDir(), "lost.db")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lost, b, 0o600); err != nil {
		t.Fatal(err)
	}
	zeroPage(t, path, ready, ps)
	zeroPage(t, lost, jobs, ps)
	out := filepath.Join(t.TempDir(), "salvaged.db")

	stdout, _ := cli(t, 0, "salvage", path, out)
	mustContain(t, stdout, "Salvaged 300 jobs and 0 schedules from "+path+" into "+out+".")
	mustContain(t, stdout, "jobrun stats "+out)
	stdout, _ = cli(t, 0, "stats", out)
	mustContain(t, stdout, "mail     0          300")
	stdout, _ = cli(t, 0, "list", out, "-state", "ready", "-limit", "1")
	mustContain(t, stdout, "ready")

	var rep jobrun.SalvageReport
	stdout, _ = cli(t, 0, "salvage", path, out+".2", "-json")
	decode(t, stdout, &rep)
	if rep.Jobs != 300 || rep.Lost != 0 || rep.Unreadable != 0 || len(rep.Damage) != 0 {
		t.Errorf("salvage -json: %+v, want 300 jobs, none lost", rep)
	}

	// Jobs on a damaged page: what was lost is named.
	stdout, _ = cli(t, 0, "salvage", lost, lost+".out")
	mustContain(t, stdout, "Salvaged 0 jobs")
	mustContain(t, stdout, "Lost 300 jobs that "+lost+" counted.")
	mustContain(t, stdout, "Could not read:\n  jobs with IDs 1 to 300 (the last ID given): on unreadable pages\n")

	for _, tc := range []struct {
		args []string
		code int
		errs string
	}{
		{[]string{"salvage"}, 2, "missing DAMAGED"},
		{[]string{"salvage", path}, 2, "missing NEW"},
		{[]string{"salvage", path, out, "extra"}, 2, "unexpected argument"},
		{[]string{"salvage", path, out}, 1, out + " exists: salvage writes a new file"},
		{[]string{"salvage", filepath.Join(t.TempDir(), "none.db"), out + ".3"}, 1, "no such file"},
		{[]string{"salvage", out + ".x", out + ".4"}, 1, "no such file"},
	} {
		_, errs := cli(t, tc.code, tc.args...)
		mustContain(t, errs, tc.errs)
		noStack(t, errs)
	}
	// Nothing readable: the header pages are gone.
	junk := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(junk, make([]byte, 6600), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errs := cli(t, 1, "salvage", junk, junk+".out")
	mustContain(t, errs, "not a jobrun or bbolt database")
	if _, err := os.Stat(junk + ".out"); err == nil {
		t.Errorf("salvage that failed left %s", junk+".out")
	}

	stdout, _ = cli(t, 0, "help", "salvage")
	mustContain(t, stdout, salvageSynopsis)
	mustContain(t, stdout, "never writes to DAMAGED")
}
