package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobrun/jobrun"
)

// The jobs of appFile, by ID, and its names.
const (
	appDone1, appDone10    jobrun.ID = 1, 10
	appFailed1, appFailed2 jobrun.ID = 11, 12
	appLater1, appLater2   jobrun.ID = 13, 14
	appReport, appCrashed  jobrun.ID = 15, 16
	appFirstNewJob         jobrun.ID = 17 // the next job a command enqueues

	appDoneCount      = 10
	appCrashImage     = "crash.png"
	appPausedQueue    = "reports"
	appScheduledQueue = "images"
)

// appFile makes the file of an application that keeps its finished jobs forever, as
// a crash leaves it, and returns its path. It is built in a synctest bubble, so every
// time in it is t0 (2000-01-01): in real time the jobrun command's own defaults
// would delete its finished jobs (retention), fire its schedules, promote its
// delayed jobs and recover its crashed job.
//
//	1-10  email   default  done
//	11-12 email   default  failed ("no address"), one attempt each
//	13-14 resize  images   scheduled for t0+1h and t0+2h
//	15    email   reports  ready; queue reports is paused and no runner runs it
//	16    resize  images   running: the process died while it ran
//
// with the schedules "hourly" (@every 1h) and "nightly" (0 3 * * *).
func appFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.db")
	synctest.Test(t, func(t *testing.T) {
		const keep = -1 // finished jobs are kept forever
		r, err := jobrun.Open(filepath.Join(t.TempDir(), "live.db"),
			jobrun.WithRetention("", jobrun.Retention{Done: keep, Failed: keep, Canceled: keep}),
			jobrun.WithQueue(appScheduledQueue, 1, nil))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		started := make(chan struct{})
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[adminEmail]) error {
			if j.Args.To == "" {
				return errors.New("no address")
			}
			return nil
		}, jobrun.MaxAttempts(1))
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[adminResize]) error {
			if j.Args.Image == appCrashImage {
				close(started)
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}, jobrun.Queue(appScheduledQueue))
		ctx := t.Context()
		enqueue := func(args jobrun.Args, opts ...jobrun.EnqueueOption) {
			t.Helper()
			if _, err := r.Enqueue(ctx, args, opts...); err != nil {
				t.Fatal(err)
			}
		}
		for i := range appDoneCount {
			enqueue(adminEmail{To: fmt.Sprintf("user%d@example.com", i)})
		}
		enqueue(adminEmail{})
		enqueue(adminEmail{})
		if err := r.RunUntilIdle(ctx); err != nil {
			t.Fatal(err)
		}
		enqueue(adminResize{Image: "later1.png"}, jobrun.Delay(time.Hour))
		enqueue(adminResize{Image: "later2.png"}, jobrun.Delay(2*time.Hour))
		enqueue(adminEmail{To: "boss@example.com"}, jobrun.Queue(appPausedQueue))
		if err := r.Pause(ctx, appPausedQueue); err != nil {
			t.Fatal(err)
		}
		for name, spec := range map[string]string{"hourly": "@every 1h", "nightly": "0 3 * * *"} {
			if err := r.Schedule(ctx, name, spec, adminEmail{To: "ops@example.com"}); err != nil {
				t.Fatal(err)
			}
		}
		enqueue(adminResize{Image: appCrashImage})

		// A backup taken while the handler runs is the file the process leaves if it
		// dies at that moment.
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(runCtx) }()
		<-started
		synctest.Wait() // the commit that records the start
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Backup(ctx, f); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		cancel()
		<-done
	})
	want := appState()
	if got := readState(t, path); !got.equal(want) {
		t.Fatalf("the fixture holds\n%v\nwant\n%v", got, want)
	}
	return path
}

// fileState is what a file holds, as the tests compare it: each job's state, each
// schedule's next and last fire, the paused queues.
type fileState struct {
	jobs      map[jobrun.ID]jobrun.State
	schedules map[string]string // "next last"
	paused    map[string]bool
}

// appState is what appFile holds.
func appState() fileState {
	s := fileState{jobs: map[jobrun.ID]jobrun.State{}, paused: map[string]bool{appPausedQueue: true}}
	for id := appDone1; id <= appDone10; id++ {
		s.jobs[id] = jobrun.StateDone
	}
	s.jobs[appFailed1], s.jobs[appFailed2] = jobrun.StateFailed, jobrun.StateFailed
	s.jobs[appLater1], s.jobs[appLater2] = jobrun.StateScheduled, jobrun.StateScheduled
	s.jobs[appReport], s.jobs[appCrashed] = jobrun.StateReady, jobrun.StateRunning
	hourly := t0.Add(time.Hour)
	nightly := time.Date(t0.Local().Year(), t0.Local().Month(), t0.Local().Day(), 3, 0, 0, 0, time.Local)
	if !nightly.After(t0) {
		nightly = nightly.AddDate(0, 0, 1)
	}
	s.schedules = map[string]string{"hourly": fireTimes(hourly, time.Time{}), "nightly": fireTimes(nightly, time.Time{})}
	return s
}

func fireTimes(next, last time.Time) string {
	return next.UTC().Format(time.RFC3339) + " " + last.UTC().Format(time.RFC3339)
}

func (s fileState) clone() fileState {
	return fileState{jobs: maps.Clone(s.jobs), schedules: maps.Clone(s.schedules), paused: maps.Clone(s.paused)}
}

func (s fileState) equal(o fileState) bool {
	return maps.Equal(s.jobs, o.jobs) && maps.Equal(s.schedules, o.schedules) && maps.Equal(s.paused, o.paused)
}

func (s fileState) String() string {
	var b strings.Builder
	for _, id := range slices.Sorted(maps.Keys(s.jobs)) {
		fmt.Fprintf(&b, "job %d %s\n", id, s.jobs[id])
	}
	for _, name := range slices.Sorted(maps.Keys(s.schedules)) {
		fmt.Fprintf(&b, "schedule %s %s\n", name, s.schedules[name])
	}
	fmt.Fprintf(&b, "paused %v\n", slices.Sorted(maps.Keys(s.paused)))
	return b.String()
}

// readState reads the state of the file at path, read-only, and checks that its
// counters agree with its jobs.
func readState(t *testing.T, path string) fileState {
	t.Helper()
	r, err := jobrun.Open(path, jobrun.WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := t.Context()
	s := fileState{jobs: map[jobrun.ID]jobrun.State{}, schedules: map[string]string{}, paused: map[string]bool{}}
	page, err := r.List(ctx, jobrun.Filter{Limit: 1000})
	if err != nil || page.Next != "" {
		t.Fatalf("list: %v (next %q)", err, page.Next)
	}
	for _, j := range page.Jobs {
		s.jobs[j.ID] = j.State
	}
	scheds, err := r.Schedules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range scheds {
		s.schedules[sc.Name] = fireTimes(sc.Next, sc.Last)
	}
	queues, err := r.Queues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range queues {
		if q.Paused {
			s.paused[q.Name] = true
		}
	}
	if mm, err := r.CheckCounts(ctx, false); err != nil || len(mm) != 0 {
		t.Fatalf("counts disagree with the jobs: %v %v", mm, err)
	}
	return s
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// copyFile copies the file at path to a new file and returns the copy's path.
func copyFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestReadCommandsChangeNothing runs every command that only reads on the file of an
// application the tool's defaults would change, and checks that the file's bytes
// stay the same.
func TestReadCommandsChangeNothing(t *testing.T) {
	db := appFile(t)
	sum := fileSum(t, db)
	backup := filepath.Join(t.TempDir(), "backup.db")
	for _, args := range [][]string{
		{"stats", db}, {"stats", db, "-json"},
		{"list", db}, {"list", db, "-state", "done", "-json"}, {"list", db, "-queue", appScheduledQueue, "-oldest"},
		{"show", db, fmt.Sprint(appCrashed)}, {"show", db, fmt.Sprint(appDone1), "-json"},
		{"events", db}, {"events", db, "-json", "-name", "order/placed"},
		{"schedules", db}, {"schedules", db, "-json"},
		{"check", db}, {"check", db, "-json"},
		{"backup", db, backup},
	} {
		out, _ := cli(t, 0, args...)
		if args[0] == "show" && args[2] == fmt.Sprint(appCrashed) {
			mustContain(t, out, "State:     running\n")
		}
		if fileSum(t, db) != sum {
			t.Fatalf("jobrun %s changed the file", strings.Join(args, " "))
		}
	}

	if got := readState(t, backup); !got.equal(appState()) {
		t.Errorf("the backup holds\n%v\nwant\n%v", got, appState())
	}

	url, _, stop := startServe(t, db, "-readonly", "-addr", "127.0.0.1:0")
	for _, page := range []string{"", "api/jobs", "api/queues", "api/schedules", fmt.Sprintf("jobs/%d", appCrashed), "events", "api/events"} {
		if code, body := fetch(t, http.MethodGet, url+page); code != http.StatusOK {
			t.Errorf("GET /%s: status %d\n%s", page, code, body)
		}
	}
	if code, body := fetch(t, http.MethodPost, url+"api/queues/"+appPausedQueue+"/resume"); code != http.StatusForbidden {
		t.Errorf("resume on serve -readonly: status %d\n%s", code, body)
	}
	if c := stop(); c != 0 {
		t.Errorf("serve -readonly stopped with exit code %d, want 0", c)
	}
	if fileSum(t, db) != sum {
		t.Fatal("serve -readonly changed the file")
	}
}

// manageCase is a command that changes a file and the change it must make to
// appFile's state, all the change: nothing else may differ.
type manageCase struct {
	args   []string // after the command's name, with FILE for the file
	change func(s *fileState)
}

// manageCases are the commands that change a file, each with what it changes.
var manageCases = []manageCase{
	{[]string{"retry", "FILE", fmt.Sprint(appFailed1)}, func(s *fileState) { s.jobs[appFailed1] = jobrun.StateReady }},
	{[]string{"retry", "FILE", "-failed"}, func(s *fileState) {
		s.jobs[appFailed1], s.jobs[appFailed2] = jobrun.StateReady, jobrun.StateReady
	}},
	{[]string{"retry", "FILE", "-failed", "-queue", jobrun.DefaultQueue}, func(s *fileState) {
		s.jobs[appFailed1], s.jobs[appFailed2] = jobrun.StateReady, jobrun.StateReady
	}},
	{[]string{"cancel", "FILE", fmt.Sprint(appLater1)}, func(s *fileState) { s.jobs[appLater1] = jobrun.StateCanceled }},
	// The application registered no function: the event starts nothing.
	{[]string{"send", "FILE", "order/placed", `{"order_id": 1}`, "-id", "o1"}, func(s *fileState) {}},
	{[]string{"delete", "FILE", fmt.Sprint(appFailed2)}, func(s *fileState) { delete(s.jobs, appFailed2) }},
	{[]string{"pause", "FILE", jobrun.DefaultQueue}, func(s *fileState) { s.paused[jobrun.DefaultQueue] = true }},
	{[]string{"resume", "FILE", appPausedQueue}, func(s *fileState) { delete(s.paused, appPausedQueue) }},
	{[]string{"schedules", "FILE", "-run", "hourly"}, func(s *fileState) { s.jobs[appFirstNewJob] = jobrun.StateReady }},
	{[]string{"promote", "FILE", fmt.Sprint(appLater1)}, func(s *fileState) { s.jobs[appLater1] = jobrun.StateReady }},
	{[]string{"clean", "FILE", "-state", "failed"}, func(s *fileState) { delete(s.jobs, appFailed1); delete(s.jobs, appFailed2) }},
	{[]string{"clean", "FILE", "-queue", jobrun.DefaultQueue, "-state", "done", "-before", "1h"}, func(s *fileState) {
		for id := appDone1; id <= appDone10; id++ {
			delete(s.jobs, id)
		}
	}},
	{[]string{"clean", "FILE", "-before", "1999-12-31T23:00:00Z"}, func(s *fileState) {}},
	{[]string{"clean", "FILE", "-before", "2000-01-01T01:00:00Z"}, deleteFinished},
	{[]string{"clean", "FILE"}, deleteFinished},
	{[]string{"unschedule", "FILE", "nightly"}, func(s *fileState) { delete(s.schedules, "nightly") }},
	{[]string{"compact", "FILE"}, func(s *fileState) {}},
	{[]string{"check", "FILE", "-repair"}, func(s *fileState) {}},
}

// deleteFinished is the change of a clean of every finished job of appFile.
func deleteFinished(s *fileState) {
	for id := appDone1; id <= appFailed2; id++ {
		delete(s.jobs, id)
	}
}

// TestManageCommandsWriteOnlyWhatIsAsked runs each command that changes a file on a
// copy of the file of an application the tool's defaults would change, and checks
// that it made its change and no other: the done jobs are all there, the schedules
// did not fire, the due delayed jobs were not promoted, the crashed job still runs.
func TestManageCommandsWriteOnlyWhatIsAsked(t *testing.T) {
	app := appFile(t)
	for _, tc := range manageCases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			db := copyFile(t, app)
			args := slices.Clone(tc.args)
			args[slices.Index(args, "FILE")] = db
			cli(t, 0, args...)
			want := appState()
			tc.change(&want)
			if got := readState(t, db); !got.equal(want) {
				t.Errorf("after jobrun %s the file holds\n%v\nwant\n%v", strings.Join(args, " "), got, want)
			}
		})
	}
}

// TestServeRunsNoServices: serve without -services writes only the actions taken on
// the dashboard; with -services it runs the runner's services (the crashed job is
// recovered at open).
func TestServeRunsNoServices(t *testing.T) {
	app := appFile(t)
	db := copyFile(t, app)
	url, _, stop := startServe(t, db, "-addr", "127.0.0.1:0")
	if code, body := fetch(t, http.MethodPost, url+"api/jobs/"+fmt.Sprint(appLater2)+"/promote"); code != http.StatusOK {
		t.Errorf("promote: status %d\n%s", code, body)
	}
	if c := stop(); c != 0 {
		t.Errorf("serve stopped with exit code %d, want 0", c)
	}
	want := appState()
	want.jobs[appLater2] = jobrun.StateReady
	if got := readState(t, db); !got.equal(want) {
		t.Errorf("after serve the file holds\n%v\nwant\n%v", got, want)
	}

	db = copyFile(t, app)
	_, _, stop = startServe(t, db, "-services", "-addr", "127.0.0.1:0")
	if c := stop(); c != 0 {
		t.Errorf("serve -services stopped with exit code %d, want 0", c)
	}
	if got := readState(t, db); got.jobs[appCrashed] != jobrun.StateReady {
		t.Errorf("after serve -services the crashed job is %s, want ready (recovered)", got.jobs[appCrashed])
	}
	runCases(t, []cliCase{{args: []string{"serve", db, "-readonly", "-services"}, code: 2, errs: "-services writes to FILE"}})
}
