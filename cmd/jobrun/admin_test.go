package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobrun/jobrun"
)

type adminEmail struct {
	To string `json:"to"`
}

func (adminEmail) Kind() string { return "email" }

type adminResize struct {
	Image string `json:"image"`
}

func (adminResize) Kind() string { return "image.resize" }

// adminFixture writes a database file and returns its path. Inside a synctest
// bubble every time in it is the bubble's start, t0:
//
//	1 email         default  done    tag signup
//	2 email         default  failed  tag signup, error "no address" on two lines, a log line
//	3 image.resize  images   done    progress and result
//	4 image.resize  images   scheduled for t0+1h, unique key "b", concurrency key "png", metadata request=r-42
//
// with the schedule "nightly" and the queue "images" paused.
func adminFixture(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jobs.db")
	r, err := jobrun.Open(path, jobrun.WithQueue("images", 2, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[adminEmail]) error {
		if j.Args.To == "" {
			j.Log("looked for an address")
			return errors.New("no address\nin the args")
		}
		return nil
	}, jobrun.MaxAttempts(1), jobrun.Tags("signup"))
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[adminResize]) error {
		if err := j.SetProgress(map[string]int{"step": 5}); err != nil {
			return err
		}
		return j.SetResult("thumb.png")
	}, jobrun.Queue("images"))
	ctx := t.Context()
	for _, args := range []jobrun.Args{adminEmail{To: "ada@example.com"}, adminEmail{}, adminResize{Image: "a.png"}} {
		if _, err := r.Enqueue(ctx, args); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Enqueue(ctx, adminResize{Image: "b.png"}, jobrun.Delay(time.Hour), jobrun.UniqueKey("b"), jobrun.ConcurrencyKey("png"),
		jobrun.Metadata(map[string]string{"request": "r-42"})); err != nil {
		t.Fatal(err)
	}
	if err := r.Schedule(ctx, "nightly", "0 3 * * *", adminEmail{To: "ops@example.com"}, jobrun.SkipMissed()); err != nil {
		t.Fatal(err)
	}
	if err := r.RunUntilIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Pause(ctx, "images"); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// cli runs a command line in-process, checks its exit code and returns its output.
// It works inside a synctest bubble, where runCases (subtests) cannot.
func cli(t *testing.T, code int, args ...string) (stdout, stderr string) {
	t.Helper()
	var out, errs bytes.Buffer
	if got := run(t.Context(), args, &out, &errs); got != code {
		t.Fatalf("jobrun %s: exit code %d, want %d\nstdout:\n%s\nstderr:\n%s",
			strings.Join(args, " "), got, code, &out, &errs)
	}
	return out.String(), errs.String()
}

// decode parses the JSON document s into v, which must hold all of it.
func decode(t *testing.T, s string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	if dec.More() {
		t.Fatalf("more than one JSON document:\n%s", s)
	}
}

// compact is the JSON value v without the indentation the output gave it.
func compact(t *testing.T, v json.RawMessage) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// mustJSON is v as compact JSON.
func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustEqual(t *testing.T, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// t0 is the start of a synctest bubble, as the tables print it.
var t0 = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func TestAdminStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := adminFixture(t)
		out, _ := cli(t, 0, "stats", db)
		mustEqual(t, out, `QUEUE    SCHEDULED  READY  RUNNING  RETRYING  DONE  FAILED  CANCELED  TOTAL  PAUSED
default  0          0      0        0         1     1       0         2      no
images   1          0      0        0         1     0       0         2      yes
TOTAL    1          0      0        0         2     1       0         4
`)

		out, _ = cli(t, 0, "stats", "-json", db)
		var got struct {
			Queues []queueStats
			Total  map[jobrun.State]int
		}
		decode(t, out, &got)
		if len(got.Queues) != 2 || got.Queues[1].Name != "images" || !got.Queues[1].Paused ||
			got.Queues[1].Counts[jobrun.StateScheduled] != 1 || got.Queues[1].Total != 2 || got.Queues[0].Paused {
			t.Errorf("queues: %+v", got.Queues)
		}
		if got.Total[jobrun.StateDone] != 2 || got.Total[jobrun.StateFailed] != 1 || len(got.Total) != len(jobrun.States) {
			t.Errorf("total: %v", got.Total)
		}
	})
}

func TestAdminList(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := adminFixture(t)
		at := formatTime(t0)
		out, _ := cli(t, 0, "list", db)
		mustEqual(t, out, strings.NewReplacer("T0", at, "T1", formatTime(t0.Add(time.Hour))).Replace(
			`ID  STATE      QUEUE    KIND          ATTEMPT  CREATED              WHEN                          LAST ERROR
4   scheduled  images   image.resize  0/25     T0  runs T1      -
3   done       images   image.resize  1/25     T0  finished T0  -
2   failed     default  email         1/1      T0  finished T0  no address…
1   done       default  email         1/1      T0  finished T0  -
`))

		// Filters, flags after the file as before it.
		out, _ = cli(t, 0, "list", db, "-state", "failed")
		mustIDs(t, out, "2")
		out, _ = cli(t, 0, "list", "-queue=images", db, "-oldest")
		mustIDs(t, out, "3", "4")
		out, _ = cli(t, 0, "list", db, "-kind", "email", "-tag", "signup")
		mustIDs(t, out, "2", "1")
		out, _ = cli(t, 0, "list", db, "-tag", "none")
		mustEqual(t, out, "No jobs match.\n")

		// Pages: the text prints the next command line, which works as printed.
		out, _ = cli(t, 0, "list", db, "-limit", "3", "-cursor", "")
		mustIDs(t, out, "4", "3", "2")
		m := regexp.MustCompile(`\nMore jobs: jobrun (list .* -limit 3 -cursor (\S+))\n$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no next page line:\n%s", out)
		}
		out, _ = cli(t, 0, strings.Fields(m[1])...)
		mustIDs(t, out, "1")
		if strings.Contains(out, "More jobs") {
			t.Errorf("the last page points to another:\n%s", out)
		}

		// -json pages chain through next until it is "".
		var ids []jobrun.ID
		cursor := ""
		for range 5 {
			out, _ = cli(t, 0, "list", db, "-json", "-oldest", "-limit", "2", "-cursor", cursor)
			var page struct {
				Jobs []jobrun.Info
				Next string
			}
			decode(t, out, &page)
			for _, j := range page.Jobs {
				ids = append(ids, j.ID)
				// Each job as show -json prints it.
				show, _ := cli(t, 0, "show", db, fmt.Sprint(j.ID), "-json")
				if got, want := mustJSON(t, j), compact(t, json.RawMessage(show)); got != want {
					t.Errorf("list -json's job:\n%s\nshow -json:\n%s", got, want)
				}
			}
			if cursor = page.Next; cursor == "" {
				break
			}
		}
		if !slices.Equal(ids, []jobrun.ID{1, 2, 3, 4}) {
			t.Errorf("list -json pages gave IDs %v, want 1 2 3 4", ids)
		}
		out, _ = cli(t, 0, "list", db, "-json", "-tag", "none")
		mustEqual(t, out, "{\n  \"jobs\": [],\n  \"next\": \"\"\n}\n")
	})
}

// mustIDs checks the IDs of list's table, in order.
func mustIDs(t *testing.T, out string, want ...string) {
	t.Helper()
	var got []string
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) > 0 && f[0] != "ID" && f[0] != "More" {
			got = append(got, f[0])
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("IDs %v, want %v, in:\n%s", got, want, out)
	}
}

func TestAdminShow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := adminFixture(t)
		at := formatTime(t0)
		out, _ := cli(t, 0, "show", db, "2")
		mustEqual(t, out, strings.ReplaceAll(`Job:       2
Kind:      email
Queue:     default
State:     failed
Priority:  0
Attempts:  1 of 1
Created:   T0
Run at:    T0
Started:   T0
Finished:  T0
Tags:      signup
Args:      {"to":""}

Errors:
  attempt 1 at T0 after 0s: no address
    in the args

Log:
  T0  looked for an address
`, "T0", at))
		out, _ = cli(t, 0, "show", db, "3")
		mustContain(t, out, "Progress:  {\"step\":5}\nResult:    \"thumb.png\"\n")
		out, _ = cli(t, 0, "show", db, "4")
		mustContain(t, out, "Unique key:        b\nConcurrency key:   png\n")
		mustContain(t, out, "Metadata request:  r-42\n")

		out, _ = cli(t, 0, "show", db, "2", "-json")
		var j jobrun.Info
		decode(t, out, &j)
		if j.ID != 2 || j.State != jobrun.StateFailed || compact(t, j.RawArgs) != `{"to":""}` || !j.CreatedAt.Equal(t0) ||
			len(j.Errors) != 1 || j.Errors[0].Error != "no address\nin the args" ||
			len(j.Logs) != 1 || j.Logs[0].Message != "looked for an address" {
			t.Errorf("show -json: %+v", j)
		}

		// The one shape of a job: jobrun.Info's JSON, the concurrency key included.
		r, err := jobrun.Open(db, jobrun.WithReadOnly())
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for _, id := range []jobrun.ID{1, 2, 3, 4} {
			want, err := r.Get(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			out, _ = cli(t, 0, "show", db, fmt.Sprint(id), "-json")
			if got := compact(t, json.RawMessage(out)); got != mustJSON(t, want) {
				t.Errorf("show %d -json:\n%s\nwant Info's JSON:\n%s", id, got, mustJSON(t, want))
			}
		}
		mustContain(t, out, `"concurrency_key": "png"`)
		_, errs := cli(t, 1, "show", db, "99")
		mustContain(t, errs, "jobrun show: "+db+" holds no job 99\n")
	})
}

func TestAdminChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := adminFixture(t)
		_, errs := cli(t, 1, "retry", db, "4")
		mustContain(t, errs, "job 4 is scheduled; only finished jobs can be retried")
		out, _ := cli(t, 0, "retry", db, "2")
		mustEqual(t, out, "Retried job 2: it is ready and runs when an application runs queue default.\n")
		out, _ = cli(t, 0, "retry", db, "-failed")
		mustEqual(t, out, "Retried 0 failed jobs: they run when an application runs their queue.\n")

		out, _ = cli(t, 0, "cancel", db, "4", "-json")
		var changed jobrun.Info
		decode(t, out, &changed)
		if changed.ID != 4 || changed.State != jobrun.StateCanceled || changed.Queue != "images" {
			t.Errorf("cancel -json: %+v", changed)
		}
		_, errs = cli(t, 1, "cancel", db, "4")
		mustContain(t, errs, "job 4 is canceled; only unfinished jobs can be canceled")
		out, _ = cli(t, 0, "delete", db, "4")
		mustEqual(t, out, "Deleted job 4.\n")
		_, errs = cli(t, 1, "delete", db, "4")
		mustContain(t, errs, "holds no job 4")

		// The dead-letter set of one queue.
		out, _ = cli(t, 0, "retry", db, "-failed", "-queue", "images", "-json")
		var retried struct {
			Retried int
			Queue   string
		}
		decode(t, out, &retried)
		if retried.Retried != 0 || retried.Queue != "images" {
			t.Errorf("retry -failed -json: %+v", retried)
		}

		out, _ = cli(t, 0, "pause", db, "default")
		mustContain(t, out, "Paused queue default")
		out, _ = cli(t, 0, "resume", db, "images", "-json")
		mustEqual(t, out, "{\n  \"paused\": false,\n  \"queue\": \"images\"\n}\n")

		// What the file holds now, read by the library.
		r, err := jobrun.Open(db, jobrun.WithStrictKinds(false))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if j, err := r.Get(t.Context(), 2); err != nil || j.State != jobrun.StateReady || j.Attempt != 0 {
			t.Errorf("job 2 after retry: %+v, %v; want ready with fresh attempts", j, err)
		}
		if _, err := r.Get(t.Context(), 4); !errors.Is(err, jobrun.ErrNotFound) {
			t.Errorf("job 4 after delete: %v, want ErrNotFound", err)
		}
		for queue, want := range map[string]bool{"default": true, "images": false} {
			if paused, err := queueIsPaused(t.Context(), r, queue); err != nil || paused != want {
				t.Errorf("queue %s paused %v, %v; want %v", queue, paused, err, want)
			}
		}
	})
}

func TestAdminSchedules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := adminFixture(t)
		next := t0.Local()
		next = time.Date(next.Year(), next.Month(), next.Day(), 3, 0, 0, 0, time.Local)
		if !next.After(t0) {
			next = next.AddDate(0, 0, 1)
		}
		out, _ := cli(t, 0, "schedules", db)
		mustEqual(t, out, `NAME     SPEC       KIND   NEXT                 LAST  LAST JOB  OPTIONS
nightly  0 3 * * *  email  `+formatTime(next)+`  -     -         skip missed
`)
		out, _ = cli(t, 0, "schedules", db, "-run", "nightly")
		mustEqual(t, out, "Enqueued job 5 for schedule nightly: it runs when an application runs its queue.\n")
		_, errs := cli(t, 1, "schedules", db, "-run", "weekly")
		mustContain(t, errs, `no schedule named "weekly"`)

		out, _ = cli(t, 0, "schedules", "-json", db)
		var list []jobrun.ScheduleInfo
		decode(t, out, &list)
		if len(list) != 1 || list[0].Name != "nightly" || list[0].Kind != "email" || !list[0].Next.Equal(next) ||
			!list[0].SkipMissed || compact(t, list[0].Args) != `{"to":"ops@example.com"}` {
			t.Errorf("schedules -json: %+v", list)
		}
		out, _ = cli(t, 0, "show", db, "5", "-json")
		var j jobrun.Info
		decode(t, out, &j)
		if j.Schedule != "nightly" || j.State != jobrun.StateReady {
			t.Errorf("the job -run enqueued: %+v", j)
		}

		out, _ = cli(t, 0, "schedules", db, "-pause", "nightly")
		mustEqual(t, out, "Paused schedule nightly: it does not fire until resumed.\n")
		out, _ = cli(t, 0, "schedules", db)
		mustContain(t, out, "nightly  0 3 * * *  email  paused ")
		out, _ = cli(t, 0, "schedules", db, "-resume", "nightly", "-json")
		mustEqual(t, out, "{\n  \"paused\": false,\n  \"schedule\": \"nightly\"\n}\n")
		out, _ = cli(t, 0, "schedules", db)
		mustContain(t, out, "nightly  0 3 * * *  email  "+formatTime(next))
		_, errs = cli(t, 2, "schedules", db, "-pause", "nightly", "-resume", "nightly")
		mustContain(t, errs, "-run, -pause and -resume exclude each other")
		_, errs = cli(t, 1, "schedules", db, "-pause", "weekly")
		mustContain(t, errs, `no schedule named "weekly"`)
	})
}

// TestAdminLocked: a file an application holds gets a clear message, not a wait,
// from a command that opens it read-only (bbolt's shared lock waits for the
// application's exclusive one) as from one that writes.
func TestAdminLocked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := adminFixture(t)
		r, err := jobrun.Open(db)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for _, args := range [][]string{{"list", db}, {"pause", db, "images"}, {"events", db}, {"send", db, "a", "{}"}} {
			start := time.Now()
			_, errs := cli(t, 1, args...)
			mustContain(t, errs, "jobrun "+args[0]+": "+db+" is in use by a running application")
			mustContain(t, errs, "embed the dashboard\n(github.com/jobrun/jobrun/dashboard)")
			mustContain(t, errs, "stop the application")
			if d := time.Since(start); d > time.Second {
				t.Errorf("%s waited %v for the lock", args[0], d)
			}
		}
	})
}

func TestAdminMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.db")
	var cases []cliCase
	for _, args := range [][]string{
		{"stats", missing}, {"list", missing}, {"show", missing, "1"}, {"events", missing}, {"events", missing, "1"},
		{"send", missing, "user/created", "{}"}, {"retry", missing, "1"},
		{"retry", missing, "-failed"}, {"cancel", missing, "1"}, {"delete", missing, "1"},
		{"schedules", missing}, {"pause", missing, "q"}, {"resume", missing, "q"},
		{"promote", missing, "1"}, {"clean", missing}, {"unschedule", missing, "s"}, {"check", missing},
		{"check", missing, "-repair"}, {"backup", missing, missing + ".bak"}, {"compact", missing},
	} {
		cases = append(cases, cliCase{args: args, code: 1, errs: "jobrun " + args[0] + ": " + missing + ": no such file\n"})
	}
	runCases(t, cases)
	for _, path := range []string{missing, missing + ".bak"} {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the commands created %s: %v", path, err)
		}
	}
}

func TestAdminUsage(t *testing.T) {
	db := filepath.Join(t.TempDir(), "jobs.db")
	if err := os.WriteFile(db, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	usage := func(cmd string) string { return "Run \"jobrun help " + cmd + "\" for details.\n" }
	cases := []cliCase{
		{args: []string{"help"}, code: 0, stdout: "\tschedules   list the cron schedules, or run one now\n\tunschedule  remove a cron schedule\n"},
		{args: []string{"help", "list"}, code: 0, stdout: "usage: jobrun list (FILE | -url URL) [-queue q]"},
		{args: []string{"list", "-h"}, code: 0, stdout: "  -state state\n"},
		{args: []string{"show", "--help"}, code: 0, stdout: "Show prints everything stored about job ID"},
		{args: []string{"retry", "-help"}, code: 0, stdout: "with -failed, only the failed jobs of this queue"},
		{args: []string{"stats"}, code: 2, errs: "jobrun stats: missing FILE\nusage: jobrun stats (FILE | -url URL)"},
		{args: []string{"stats", db, "extra"}, code: 2, errs: "jobrun stats: unexpected argument \"extra\"\n"},
		{args: []string{"stats", "-verbose", db}, code: 2, errs: "flag provided but not defined: -verbose\n" +
			"usage: jobrun stats (FILE | -url URL) [-json]\n" + usage("stats")},
		{args: []string{"show", db}, code: 2, errs: "jobrun show: missing ID\n"},
		{args: []string{"show", db, "x1"}, code: 2, errs: "jobrun show: job ID must be a positive number, got \"x1\"\n"},
		{args: []string{"cancel", db, "0"}, code: 2, errs: "job ID must be a positive number"},
		{args: []string{"delete", db, "-1"}, code: 2, errs: "flag provided but not defined: -1"},
		{args: []string{"delete", db, "--", "-1"}, code: 2, errs: "job ID must be a positive number, got \"-1\""},
		{args: []string{"list", db, "-state", "dead"}, code: 2, errs: "unknown state \"dead\"; the states are scheduled, "},
		{args: []string{"list", db, "-limit", "0"}, code: 2, errs: "-limit must be between 1 and 1000, got 0\n"},
		{args: []string{"list", db, "-limit", "1001"}, code: 2, errs: usage("list")},
		{args: []string{"retry", db}, code: 2, errs: "jobrun retry: give either a job ID or -failed\n"},
		{args: []string{"retry", db, "1", "-failed"}, code: 2, errs: "give either a job ID or -failed"},
		{args: []string{"retry", db, "1", "-queue", "q"}, code: 2, errs: "jobrun retry: -queue goes with -failed\n"},
		{args: []string{"pause", db}, code: 2, errs: "jobrun pause: missing QUEUE\n"},
		{args: []string{"resume", db, "a", "b"}, code: 2, errs: "unexpected argument \"b\""},
		{args: []string{"schedules", db, "-run"}, code: 2, errs: "flag needs an argument: -run"},
		{args: []string{"help", "events"}, code: 0, stdout: "usage: jobrun events (FILE | -url URL) [SEQ] [-name n]"},
		{args: []string{"events", db, "x"}, code: 2, errs: "jobrun events: event SEQ must be a positive number, got \"x\"\n"},
		{args: []string{"events", db, "0"}, code: 2, errs: "event SEQ must be a positive number"},
		{args: []string{"events", db, "1", "-limit", "5"}, code: 2, errs: "jobrun events: -limit: the list's flags do not go with SEQ\n"},
		{args: []string{"events", db, "-limit", "0"}, code: 2, errs: "-limit must be between 1 and 1000, got 0\n"},
		{args: []string{"events", db, "1", "2"}, code: 2, errs: "unexpected argument \"2\""},
		{args: []string{"send", db, "user/created"}, code: 2, errs: "jobrun send: missing JSON\n"},
		{args: []string{"send", db, "user/created", "[]"}, code: 2, errs: "JSON must be a JSON object"},
		{args: []string{"send", db, "user/created", "{}", "-id"}, code: 2, errs: "flag needs an argument: -id"},
	}
	runCases(t, cases)
}

func TestNextPageArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"jobs.db"}, "jobs.db -cursor NEXT"},
		{[]string{"my jobs.db", "-cursor", "OLD", "-queue", "it's"}, `'my jobs.db' -queue 'it'\''s' -cursor NEXT`},
		{[]string{"-cursor=OLD", "jobs.db", "--cursor", "OLD", "-oldest"}, "jobs.db -oldest -cursor NEXT"},
		// After "--" every argument is positional: the cursor goes before it.
		{[]string{"-limit", "1", "--", "-jobs.db"}, "-limit 1 -cursor NEXT -- -jobs.db"},
		{[]string{"-url", "http://admin:pw@host/", "-url=http://admin:pw@host/"},
			"-url http://admin:xxxxx@host/ -url=http://admin:xxxxx@host/ -cursor NEXT"},
	} {
		if got := nextPageArgs(tc.args, "NEXT"); got != tc.want {
			t.Errorf("nextPageArgs(%q) = %s, want %s", tc.args, got, tc.want)
		}
	}
}

// TestAdminErrors checks how failures read: the command's name once, then the
// problem, without the library's own prefixes; a malformed cursor is a usage error;
// a queue the file does not know is an error, not a silent success; with -json,
// errors are a JSON object on stderr.
func TestAdminErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := adminFixture(t)
		bad := filepath.Join(t.TempDir(), "bad.db")
		if err := os.WriteFile(bad, []byte("not a database, but long enough to look like a header\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		// A queue that never held a job but is paused is known: resume finds it.
		r, err := jobrun.Open(db, jobrun.WithServices(false))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Pause(t.Context(), "idle"); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}

		noQueue := func(q, queues string) string {
			return db + ` has no queue "` + q + `": no job was ever in it and it is not paused; its queues are ` + queues + "\n"
		}
		for _, tc := range []struct {
			args []string
			code int
			errs string // all of stderr, or its start for a usage error
		}{
			{[]string{"list", db, "-cursor", "xx"}, 2, "jobrun list: malformed cursor \"xx\"\n" + listSynopsis + "\n"},
			{[]string{"events", db, "-cursor", "xx"}, 2, "jobrun events: malformed cursor \"xx\"\n" + eventsSynopsis + "\n"},
			{[]string{"events", db, "1"}, 1, "jobrun events: " + db + " holds no event 1: it was never sent, or retention deleted it\n"},
			{[]string{"retry", db, "4"}, 1, "jobrun retry: job 4 is scheduled; only finished jobs can be retried\n"},
			{[]string{"cancel", db, "1"}, 1, "jobrun cancel: job 1 is done; only unfinished jobs can be canceled\n"},
			{[]string{"schedules", db, "-run", "weekly"}, 1, "jobrun schedules: no schedule named \"weekly\"\n"},
			{[]string{"stats", bad}, 1, "jobrun stats: " + bad + ": database file is damaged: not a jobrun or bbolt database file"},
			{[]string{"pause", db, "nosuch"}, 1, "jobrun pause: " + noQueue("nosuch", "default, idle, images")},
			{[]string{"resume", db, "nosuch"}, 1, "jobrun resume: " + noQueue("nosuch", "default, idle, images")},
			{[]string{"retry", db, "-failed", "-queue", "nosuch"}, 1, "jobrun retry: " + noQueue("nosuch", "default, idle, images")},
			{[]string{"stats", "-verbose", db}, 2, "jobrun stats: flag provided but not defined: -verbose\n" + statsSynopsis + "\n"},
		} {
			_, errs := cli(t, tc.code, tc.args...)
			if !strings.HasPrefix(errs, tc.errs) {
				t.Errorf("jobrun %s: stderr\n%s\nwant it to start with\n%s", strings.Join(tc.args, " "), errs, tc.errs)
			}
			if strings.Contains(errs, "jobrun: ") {
				t.Errorf("jobrun %s: a library prefix in\n%s", strings.Join(tc.args, " "), errs)
			}
		}
		// Known queues: the default one, which every runner runs, and a paused one.
		cli(t, 0, "pause", db, "default")
		cli(t, 0, "resume", db, "idle")
		cli(t, 0, "retry", db, "-failed", "-queue", "images")

		// With -json, an error is one JSON object on stderr, and a usage error names the
		// usage; -json counts wherever it is, even after a bad flag.
		for _, tc := range []struct {
			args         []string
			code         int
			error, usage string
		}{
			{[]string{"show", db, "99", "-json"}, 1, db + " holds no job 99", ""},
			{[]string{"pause", "-json", db, "nosuch"}, 1, strings.TrimSuffix(noQueue("nosuch", "default, images"), "\n"), ""},
			{[]string{"list", db, "-json", "-cursor", "xx"}, 2, `malformed cursor "xx"`, listSynopsis},
			{[]string{"stats", "-verbose", db, "-json"}, 2, "flag provided but not defined: -verbose", statsSynopsis},
			{[]string{"show", db, "x", "--json=true"}, 2, `job ID must be a positive number, got "x"`, showSynopsis},
		} {
			out, errs := cli(t, tc.code, tc.args...)
			var got struct{ Error, Usage string }
			decode(t, errs, &got)
			if got.Error != tc.error || got.Usage != tc.usage || out != "" {
				t.Errorf("jobrun %s: stdout %q, stderr %+v; want error %q, usage %q", strings.Join(tc.args, " "), out, got, tc.error, tc.usage)
			}
		}
		if _, errs := cli(t, 2, "show", db, "x", "-json=false"); !strings.HasPrefix(errs, "jobrun show: ") {
			t.Errorf("-json=false gives JSON errors:\n%s", errs)
		}
	})
}
