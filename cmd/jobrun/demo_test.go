package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/internal/pgtest"
)

// fastDemo are the flags of a quick demo run on db.
func fastDemo(db string, n int) []string {
	return []string{"-db", db, "-n", strconv.Itoa(n), "-speed", "20"}
}

func TestDemoPersistsAcrossRuns(t *testing.T) {
	db := filepath.Join(t.TempDir(), "demo.db")

	out := runDemoOK(t, t.Context(), fastDemo(db, 30), new(output))
	mustContain(t, out, "holds no jobs yet")
	first := readCounts(t, db)
	mustAllFinish(t, first, 30)
	mustContain(t, out, "All 30 jobs of this run finished in ")
	mustContain(t, out, fmt.Sprintf(": %d done, %d failed, ", first[jobrun.StateDone], first[jobrun.StateFailed]))
	// The image job shows what its handler recorded while running and on success.
	mustContain(t, out, `{"of":5,"step":5}`)
	mustContain(t, out, `{"thumbnails":["thumbs/IMG_`)
	// The durable function: a duplicate event starts nothing; a run's steps and sleep.
	mustContain(t, out, `(the third a duplicate by ID, which started nothing); 2 onboarding runs`)
	mustContain(t, out, "  step welcome-email         done   \"sent to ada\"\n  step let-them-look-around  sleep  slept ")

	out = runDemoOK(t, t.Context(), fastDemo(db, 30), new(output))
	held := fmt.Sprintf("already holds 30 jobs: done %d", first[jobrun.StateDone])
	if n := first[jobrun.StateFailed]; n > 0 {
		held += fmt.Sprintf(", failed %d", n)
	}
	mustContain(t, out, held+"\n")
	mustContain(t, out, "; 2 onboarding runs") // each run's events have IDs of their own
	second := readCounts(t, db)
	mustAllFinish(t, second, 60)
	mustContain(t, out, fmt.Sprintf(": %d done, %d failed, ",
		second[jobrun.StateDone]-first[jobrun.StateDone], second[jobrun.StateFailed]-first[jobrun.StateFailed]))
}

func TestDemoInterruptedResumes(t *testing.T) {
	db := filepath.Join(t.TempDir(), "demo.db")

	// Interrupt as soon as the jobs are enqueued, as a Ctrl-C would; at full speed
	// the image jobs alone take longer than that.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := runDemoInterrupted(t, ctx, []string{"-db", db, "-n", "30"}, onOutput("enqueued 30 jobs", cancel))
	mustContain(t, out, "interrupted: stopping gracefully")

	counts := readCounts(t, db)
	left := pending(counts)
	if left == 0 {
		mustContain(t, out, "stopped: every job had finished")
	} else {
		m := regexp.MustCompile(`stopped: (\d+) jobs will resume at the next run`).FindStringSubmatch(out)
		if m == nil || m[1] != strconv.Itoa(left) {
			t.Errorf("the file holds %d unfinished jobs, the output says %q", left, m)
		}
	}
	if counts[jobrun.StateRunning] != 0 {
		t.Errorf("%d jobs still running after a graceful stop", counts[jobrun.StateRunning])
	}

	// A run that enqueues nothing finishes what the interrupted one left.
	out = runDemoOK(t, t.Context(), fastDemo(db, 0), new(output))
	mustContain(t, out, "already holds 30 jobs")
	if left > 0 {
		mustContain(t, out, fmt.Sprintf("%d of them did not finish in an earlier run", left))
		mustContain(t, out, fmt.Sprintf("The %d jobs left unfinished by an earlier run finished", left))
	}
	mustAllFinish(t, readCounts(t, db), 30)
}

func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	runCases(t, []cliCase{
		{args: nil, code: 2, errs: "jobrun <command> [flags]"},
		{args: []string{"help"}, code: 0, stdout: "\tdemo        enqueue"},
		{args: []string{"help", "demo"}, code: 0, stdout: "-speed factor"},
		{args: []string{"demo", "-h"}, code: 0, stdout: "usage: jobrun demo [flags]"},
		{args: []string{"help", "frobnicate"}, code: 2, errs: `unknown command "frobnicate"`},
		{args: []string{"frobnicate"}, code: 2, errs: `unknown command "frobnicate"`},
		{args: []string{"demo", "-nope"}, code: 2, errs: "flag provided but not defined: -nope"},
		{args: []string{"demo", "now"}, code: 2, errs: `unexpected argument "now"`},
		{args: []string{"demo", "-n", "-1"}, code: 2, errs: "-n must not be negative"},
		{args: []string{"demo", "-speed", "0"}, code: 2, errs: "-speed must be above 0"},
		// A directory is no database file: the command fails and says why.
		{args: []string{"demo", "-db", dir}, code: 1, errs: "jobrun demo: " + dir + " is a directory\n"},
	})
}

// runDemoInterrupted runs the demo command line in-process with args, as main does,
// and returns what it printed to out, failing the test unless it exits with 130, the
// exit code of a command Ctrl-C interrupted, without writing to stderr.
func runDemoInterrupted(t *testing.T, ctx context.Context, args []string, out *output) string {
	t.Helper()
	var stderr bytes.Buffer
	if code := run(ctx, append([]string{"demo"}, args...), out, &stderr); code != 130 {
		t.Errorf("demo %v: exit code %d, want 130\noutput:\n%s", args, code, out)
	}
	if stderr.Len() > 0 {
		t.Errorf("demo %v wrote to stderr:\n%s", args, &stderr)
	}
	t.Logf("demo %v:\n%s", args, out)
	return out.String()
}

// runDemoOK runs the demo command in-process with args and returns what it printed to
// out, failing the test if it returns an error or writes to stderr.
func runDemoOK(t *testing.T, ctx context.Context, args []string, out *output) string {
	t.Helper()
	var stderr bytes.Buffer
	if err := runDemo(ctx, args, out, &stderr); err != nil {
		t.Fatalf("demo %v: %v\noutput:\n%s", args, err, out)
	}
	if stderr.Len() > 0 {
		t.Errorf("demo %v wrote to stderr:\n%s", args, &stderr)
	}
	t.Logf("demo %v:\n%s", args, out)
	return out.String()
}

// output collects what the demo prints and calls the func of each mark once, after
// the first write that contains its text, to act at a given point of the demo.
type output struct {
	bytes.Buffer
	marks []mark
}

type mark struct {
	text string
	fn   func()
}

// onOutput is an output that calls fn after the first write that contains text.
func onOutput(text string, fn func()) *output {
	return &output{marks: []mark{{text, fn}}}
}

func (o *output) Write(p []byte) (int, error) {
	n, err := o.Buffer.Write(p)
	for i, m := range o.marks {
		if m.fn != nil && bytes.Contains(p, []byte(m.text)) {
			o.marks[i].fn = nil
			m.fn()
		}
	}
	return n, err
}

// readCounts opens the demo's file, as the next run would, and returns the counts of
// the demo's job queues (not the cron rollups).
func readCounts(t *testing.T, db string) map[jobrun.State]int {
	t.Helper()
	r, err := jobrun.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	counts, err := jobCounts(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

// mustAllFinish checks that the file holds total jobs, every one in a final state.
func mustAllFinish(t *testing.T, counts map[jobrun.State]int, total int) {
	t.Helper()
	if n := finished(counts); n != total || pending(counts) != 0 {
		t.Errorf("want all %d jobs finished, the file holds %v", total, counts)
	}
}

func mustContain(t *testing.T, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Errorf("output does not contain %q:\n%s", sub, s)
	}
}

// TestDemoServesDashboard opens the dashboard the demo serves while it runs.
func TestDemoServesDashboard(t *testing.T) {
	db := filepath.Join(t.TempDir(), "demo.db")
	var status int
	var page string
	out := &output{}
	out.marks = []mark{{"dashboard: http://127.0.0.1:", func() {
		// Called from the demo's own write, once the server is up and before any job
		// is enqueued.
		m := regexp.MustCompile(`dashboard: (http://\S+)`).FindStringSubmatch(out.String())
		if m == nil {
			t.Errorf("no URL in %q", out.String())
			return
		}
		res, err := http.Get(m[1] + "api/queues")
		if err != nil {
			t.Error(err)
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		status, page = res.StatusCode, string(b)
	}}}
	runDemoOK(t, t.Context(), fastDemo(db, 30), out)
	mustContain(t, out.String(), " (until the jobs finish; -keep keeps it up until Ctrl-C)\n")
	if status != http.StatusOK || !strings.Contains(page, `"name": "webhooks"`) {
		t.Errorf("the dashboard's /api/queues answered %d:\n%s", status, page)
	}
	mustContain(t, out.String(), `"jobrun serve `+db+`" shows them in the dashboard.`)

	// Without the dashboard, no URL.
	noDash := runDemoOK(t, t.Context(), append(fastDemo(db, 0), "-dashboard=false"), new(output))
	if strings.Contains(noDash, "dashboard: http") {
		t.Errorf("-dashboard=false still serves it:\n%s", noDash)
	}
	runCases(t, []cliCase{{args: []string{"demo", "-keep", "-dashboard=false"}, code: 2, errs: "-keep serves the dashboard"}})
}

// TestDemoKeep runs the demo with -keep: it goes on serving after the jobs finish,
// until interrupted, then prints its summary and exits with 130.
func TestDemoKeep(t *testing.T) {
	db := filepath.Join(t.TempDir(), "demo.db")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := onOutput("every job has finished; the runner and the dashboard at", cancel)
	got := runDemoInterrupted(t, ctx, append(fastDemo(db, 20), "-keep"), out)
	mustContain(t, got, " (until Ctrl-C)\n")
	mustContain(t, got, "All 20 jobs of this run finished in ")
}

// TestDemoPausedQueues: a queue of the demo paused in the file is resumed at the
// start, with a line saying so; one paused during the run holds the demo, which says
// so, until it is resumed (here on the dashboard, as a user would).
func TestDemoPausedQueues(t *testing.T) {
	db := filepath.Join(t.TempDir(), "demo.db")
	runDemoOK(t, t.Context(), append(fastDemo(db, 10), "-dashboard=false"), new(output))
	r, err := jobrun.Open(db, jobrun.WithServices(false))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{imageQueue, rollupQueue} {
		if err := r.Pause(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	out := runDemoOK(t, t.Context(), append(fastDemo(db, 10), "-dashboard=false"), new(output))
	for _, q := range []string{imageQueue, rollupQueue} {
		mustContain(t, out, "queue "+q+" was paused (on the dashboard of an earlier run?): resumed it so that its jobs run\n")
	}
	mustAllFinish(t, readCounts(t, db), 20)

	// Paused on the dashboard before the jobs are enqueued, resumed there once the
	// demo says it waits.
	var url string
	post := func(path string) {
		req, err := http.NewRequest(http.MethodPost, url+path, nil)
		if err != nil {
			t.Error(err)
			return
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("POST %s: status %d", path, res.StatusCode)
		}
	}
	live := &output{}
	live.marks = []mark{
		{"dashboard: http://", func() {
			url = regexp.MustCompile(`dashboard: (http://\S+)`).FindStringSubmatch(live.String())[1]
			post("api/queues/" + imageQueue + "/pause")
		}},
		{"queue " + imageQueue + " is paused: its jobs wait", func() { post("api/queues/" + imageQueue + "/resume") }},
	}
	out = runDemoOK(t, t.Context(), fastDemo(db, 20), live)
	mustContain(t, out, "queue "+imageQueue+" is paused: its jobs wait, and so does the demo, until it is resumed on the dashboard\n")
	mustAllFinish(t, readCounts(t, db), 40)
}

// TestDemoProgressCountsThisRun: on a file that holds the jobs of an earlier run,
// the progress line counts the jobs of this run, not the file's totals.
func TestDemoProgressCountsThisRun(t *testing.T) {
	db := filepath.Join(t.TempDir(), "demo.db")
	runDemoOK(t, t.Context(), append(fastDemo(db, 30), "-dashboard=false"), new(output))
	first := readCounts(t, db)
	out := runDemoOK(t, t.Context(), append(fastDemo(db, 20), "-dashboard=false"), new(output))
	second := readCounts(t, db)
	// The output is no terminal: the view prints plain lines, the last one final.
	lines := regexp.MustCompile(`(\d+)/(\d+) finished .* done=(\d+) failed=(\d+) canceled=(\d+)`).FindAllStringSubmatch(out, -1)
	if len(lines) == 0 {
		t.Fatalf("no progress line in:\n%s", out)
	}
	last := lines[len(lines)-1]
	want := []string{"20", "20", strconv.Itoa(second[jobrun.StateDone] - first[jobrun.StateDone]),
		strconv.Itoa(second[jobrun.StateFailed] - first[jobrun.StateFailed]), "0"}
	if !slices.Equal(last[1:], want) {
		t.Errorf("final progress line %q: finished, total, done, failed, canceled %v, want %v", last[0], last[1:], want)
	}
}

// TestDemoOnPostgres: with -store pg, the demo runs its jobs and its durable
// function on PostgreSQL, and a second run with the same -dsn finds the first's
// jobs there; -reset empties the demo's schema.
func TestDemoOnPostgres(t *testing.T) {
	cluster, err := pgtest.Start(t.Context())
	if errors.Is(err, pgtest.ErrNoServer) {
		t.Skipf("PostgreSQL not tested: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cluster.Stop() })
	dsn := cluster.DSN("postgres")
	args := []string{"-store", "pg", "-dsn", dsn, "-n", "30", "-speed", "20", "-dashboard=false"}
	out := runDemoOK(t, t.Context(), args, new(output))
	mustContain(t, out, "(schema demo) holds no jobs yet")
	mustContain(t, out, "All 30 jobs of this run finished in ")
	mustContain(t, out, "; 2 onboarding runs")
	mustContain(t, out, `schema "demo" of the database`)
	out = runDemoOK(t, t.Context(), args, new(output))
	mustContain(t, out, "(schema demo) already holds 30 jobs")
	out = runDemoOK(t, t.Context(), append(args, "-reset"), new(output))
	mustContain(t, out, "(schema demo) holds no jobs yet")
}
