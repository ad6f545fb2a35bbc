package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.etcd.io/bbolt"

	"github.com/jobrun/jobrun"
)

func TestBackup(t *testing.T) {
	db := appFile(t)
	sum := fileSum(t, db)
	dest := filepath.Join(t.TempDir(), "backup.db")

	out, _ := cli(t, 0, "backup", db, dest, "-json")
	var got struct {
		File, Backup string
		Bytes        int64
	}
	decode(t, out, &got)
	if fi, err := os.Stat(dest); err != nil || got.File != db || got.Backup != dest || got.Bytes != fi.Size() {
		t.Errorf("backup -json: %+v; the backup: %v, %v", got, fi, err)
	}
	if state := readState(t, dest); !state.equal(appState()) {
		t.Errorf("the backup holds\n%v\nwant\n%v", state, appState())
	}

	// An existing DEST is kept unless -force, which replaces it whole.
	if err := os.WriteFile(dest, []byte("older backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errs := cli(t, 1, "backup", db, dest)
	mustEqual(t, errs, "jobrun backup: "+dest+" exists; -force replaces it\n")
	if b, err := os.ReadFile(dest); err != nil || string(b) != "older backup" {
		t.Errorf("a refused backup changed DEST: %q, %v", b, err)
	}
	out, _ = cli(t, 0, "backup", db, dest, "-force")
	mustContain(t, out, "Wrote a backup of "+db+" to "+dest+" (")
	if state := readState(t, dest); !state.equal(appState()) {
		t.Errorf("the forced backup holds\n%v\nwant\n%v", state, appState())
	}
	if entries, err := os.ReadDir(filepath.Dir(dest)); err != nil || len(entries) != 1 {
		t.Errorf("the backup's directory holds %v (%v), want the backup alone", entries, err)
	}
	if fileSum(t, db) != sum {
		t.Error("backup changed FILE")
	}

	runCases(t, []cliCase{
		{args: []string{"backup", db}, code: 2, errs: "jobrun backup: missing DEST\n"},
		{args: []string{"backup", db, db, "-force"}, code: 2, errs: "jobrun backup: DEST " + db + " is FILE itself\n"},
		{args: []string{"backup", db, filepath.Join(t.TempDir(), "no", "dir.db")}, code: 1, errs: "no such file or directory"},
	})
}

// damageCounts sets the stored count of the done jobs of queue default to n behind
// the runner's back, as only something other than jobrun could.
func damageCounts(t *testing.T, path string, n byte) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		counts := tx.Bucket([]byte("jobrun")).Bucket([]byte("counts"))
		return counts.Put(append([]byte{byte(len("default"))}, "default\x05"...), []byte{0, 0, 0, 0, 0, 0, 0, n})
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestCheck(t *testing.T) {
	db := copyFile(t, appFile(t))
	out, _ := cli(t, 0, "check", db)
	mustEqual(t, out, "The counts of "+db+" agree with its jobs.\n")

	damageCounts(t, db, 99)
	sum := fileSum(t, db)
	out, errs := cli(t, 1, "check", db)
	mustEqual(t, out, "QUEUE    STATE  COUNTER  JOBS\ndefault  done   99       10\n")
	mustEqual(t, errs, "jobrun check: 1 counter of "+db+" disagree with its jobs; jobrun check -repair rewrites them\n")
	out, errs = cli(t, 1, "check", db, "-json")
	var report struct {
		Mismatches []jobrun.CountMismatch
		Repaired   bool
	}
	decode(t, out, &report)
	want := []jobrun.CountMismatch{{Queue: "default", State: jobrun.StateDone, Stored: 99, Actual: 10}}
	if !slices.Equal(report.Mismatches, want) || report.Repaired {
		t.Errorf("check -json: %+v, want %v not repaired", report, want)
	}
	var e struct{ Error string }
	decode(t, errs, &e)
	if !strings.Contains(e.Error, "jobrun check -repair rewrites them") {
		t.Errorf("check -json's error: %+v", e)
	}
	if fileSum(t, db) != sum {
		t.Fatal("check without -repair changed the file")
	}

	out, _ = cli(t, 0, "check", db, "-repair")
	mustEqual(t, out, "QUEUE    STATE  COUNTER  JOBS\ndefault  done   99       10\nRepaired 1 counter: they now hold the number of jobs.\n")
	if got := readState(t, db); !got.equal(appState()) { // readState checks the counts too
		t.Errorf("after check -repair the file holds\n%v\nwant\n%v", got, appState())
	}
	out, _ = cli(t, 0, "check", db, "-json")
	mustEqual(t, out, "{\n  \"mismatches\": [],\n  \"repaired\": false\n}\n")
}

// TestCompact deletes most jobs of a file and checks that compact shrinks it and
// keeps what is left.
func TestCompact(t *testing.T) {
	db := filepath.Join(t.TempDir(), "big.db")
	r, err := jobrun.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[adminEmail]) error { return nil })
	batch := make([]jobrun.Args, 2000)
	for i := range batch {
		batch[i] = adminEmail{To: fmt.Sprintf("%04d-%s@example.com", i, strings.Repeat("x", 1000))}
	}
	if _, err := r.EnqueueMany(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	if err := r.RunUntilIdle(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Enqueue(t.Context(), adminEmail{To: "kept@example.com"}, jobrun.Delay(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	out, _ := cli(t, 0, "clean", db, "-state", "done")
	mustEqual(t, out, "Deleted 2000 done jobs.\n")
	before := readState(t, db)
	sizeBefore, err := fileSize(db)
	if err != nil {
		t.Fatal(err)
	}

	out, _ = cli(t, 0, "compact", db, "-json")
	var sizes map[string]any
	decode(t, out, &sizes)
	sizeAfter, err := fileSize(db)
	if err != nil {
		t.Fatal(err)
	}
	if sizes["file"] != db || sizes["bytes_before"] != float64(sizeBefore) || sizes["bytes_after"] != float64(sizeAfter) {
		t.Errorf("compact -json: %v; the file was %d bytes, is %d", sizes, sizeBefore, sizeAfter)
	}
	if sizeAfter >= sizeBefore/2 {
		t.Errorf("compact left the file at %d bytes, from %d", sizeAfter, sizeBefore)
	}
	if after := readState(t, db); !after.equal(before) || len(after.jobs) != 1 {
		t.Errorf("after compact the file holds\n%v\nwant\n%v", after, before)
	}
	if _, err := os.Stat(db + ".compact"); !os.IsNotExist(err) {
		t.Errorf("compact left %s.compact: %v", db, err)
	}
	out, _ = cli(t, 0, "compact", db)
	mustContain(t, out, "Compacted "+db+" from ")
}

// TestNewCommandsErrors checks the usage errors and failures of promote, clean and
// unschedule.
func TestNewCommandsErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := adminFixture(t)
		for _, tc := range []struct {
			args []string
			code int
			errs string
		}{
			{[]string{"promote", db, "1"}, 1, "jobrun promote: job 1 is done; only scheduled and retrying jobs can be promoted\n"},
			{[]string{"promote", db, "99"}, 1, "jobrun promote: " + db + " holds no job 99\n"},
			{[]string{"promote", db}, 2, "jobrun promote: missing ID\n"},
			{[]string{"unschedule", db, "weekly"}, 1, "jobrun unschedule: no schedule named \"weekly\"\n"},
			{[]string{"unschedule", db}, 2, "jobrun unschedule: missing NAME\n"},
			{[]string{"clean", db, "-state", "ready"}, 2, "jobrun clean: -state must be done, failed or canceled, got \"ready\"\n"},
			{[]string{"clean", db, "-before", "yesterday"}, 2, "jobrun clean: -before must be an age such as 24h or an RFC 3339 time"},
			{[]string{"clean", db, "-before", "-1h"}, 2, "jobrun clean: -before must be an age"},
			{[]string{"clean", db, "-queue", "nosuch"}, 1, "jobrun clean: " + db + " has no queue \"nosuch\""},
			{[]string{"check", db, "x"}, 2, "jobrun check: unexpected argument \"x\"\n"},
			{[]string{"compact", db, "-json", "x"}, 2, ""},
		} {
			_, errs := cli(t, tc.code, tc.args...)
			if !strings.HasPrefix(errs, tc.errs) {
				t.Errorf("jobrun %s: stderr\n%s\nwant it to start with\n%s", strings.Join(tc.args, " "), errs, tc.errs)
			}
		}
		out, _ := cli(t, 0, "promote", db, "4", "-json")
		var j jobrun.Info
		decode(t, out, &j)
		if j.ID != 4 || j.State != jobrun.StateReady {
			t.Errorf("promote -json: %+v", j)
		}
		out, _ = cli(t, 0, "unschedule", db, "nightly")
		mustEqual(t, out, "Removed schedule nightly; the jobs it enqueued stay.\n")
		out, _ = cli(t, 0, "schedules", db)
		mustEqual(t, out, "No schedules.\n")
		// Every time in the bubble is t0: the jobs finished at t0 are not before t0, but
		// a clean without -before deletes them too.
		type cleaned struct {
			Deleted int
			Queue   string
			State   string
			Before  *time.Time
		}
		out, _ = cli(t, 0, "clean", db, "-queue", "images", "-before", "0s", "-json")
		var got cleaned
		decode(t, out, &got)
		if got.Deleted != 0 || got.Queue != "images" || got.Before == nil || !got.Before.Equal(t0) {
			t.Errorf("clean -before 0s -json: %+v, want 0 deleted in images before %v", got, t0)
		}
		out, _ = cli(t, 0, "clean", db, "-queue", "default", "-json")
		got = cleaned{}
		decode(t, out, &got)
		if got.Deleted != 2 || got.Queue != "default" || got.Before != nil {
			t.Errorf("clean -json: %+v, want 2 deleted in default", got)
		}
		out, _ = cli(t, 0, "clean", db, "-state", "done", "-before", "2000-01-01T00:00:01Z")
		mustEqual(t, out, "Deleted 1 done job that finished before "+formatTime(t0.Add(time.Second))+".\n")
	})
}

func TestParseBefore(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                          now.Add(time.Nanosecond),
		"0s":                        now,
		"24h":                       now.Add(-24 * time.Hour),
		"90m":                       now.Add(-90 * time.Minute),
		"2026-01-02T15:04:05Z":      time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC),
		"2026-01-02T15:04:05+02:00": time.Date(2026, 1, 2, 13, 4, 5, 0, time.UTC),
	} {
		if got, err := parseBefore(in, now); err != nil || !got.Equal(want) {
			t.Errorf("parseBefore(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"-1h", "1d", "2026-01-02", "soon"} {
		if got, err := parseBefore(in, now); err == nil {
			t.Errorf("parseBefore(%q) = %v, want an error", in, got)
		}
	}
}

func TestVersion(t *testing.T) {
	out, _ := cli(t, 0, "version")
	if !strings.HasPrefix(out, "jobrun ") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("version printed %q", out)
	}
	out, _ = cli(t, 0, "version", "-json")
	var v versionInfo
	decode(t, out, &v)
	if v.Version == "" || v.Go != runtime.Version() || v.OS != runtime.GOOS || v.Arch != runtime.GOARCH {
		t.Errorf("version -json: %+v", v)
	}
	runCases(t, []cliCase{
		{args: []string{"help", "version"}, code: 0, stdout: "usage: jobrun version [-json]"},
		{args: []string{"version", "now"}, code: 2, errs: "jobrun version: unexpected argument \"now\"\n"},
	})

	for _, tc := range []struct {
		bi   *debug.BuildInfo
		want string
	}{
		{&debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: modulePath, Version: "v1.2.0"},
			Settings: []debug.BuildSetting{{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm64"}}},
			"jobrun v1.2.0 (go1.26.0 linux/arm64)"},
		{&debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: modulePath, Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"},
				{Key: "GOOS", Value: "darwin"}, {Key: "GOARCH", Value: "amd64"}}},
			"jobrun (devel) commit 0123456789ab, modified (go1.26.0 darwin/amd64)"},
		{&debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "example.com/app", Version: "v0.1.0"},
			Deps:     []*debug.Module{{Path: "golang.org/x/time", Version: "v0.5.0"}, {Path: modulePath, Version: "v1.3.1"}},
			Settings: []debug.BuildSetting{{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "amd64"}}},
			"jobrun v1.3.1 (go1.26.0 linux/amd64)"},
	} {
		if got := buildVersion(tc.bi, true).String(); got != tc.want {
			t.Errorf("buildVersion: %s, want %s", got, tc.want)
		}
	}
	if got := buildVersion(nil, false); got.Version != "(devel)" || got.Go != runtime.Version() {
		t.Errorf("without build information: %+v", got)
	}
}
