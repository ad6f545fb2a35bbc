package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/dashboard"
)

const testToken = "t0ken-of-the-test"

// servedApp serves the dashboard of a runner on the file at path as an
// application would: with the token, actions and enqueue unless opts say
// otherwise. Like jobrun serve, its runner knows no kinds and runs no services, so
// that it changes the file as the commands on a file do. It returns the URL.
func servedApp(t *testing.T, path string, opts ...dashboard.Option) string {
	t.Helper()
	r, err := jobrun.Open(path, jobrun.WithStrictKinds(false), jobrun.WithServices(false))
	if err != nil {
		t.Fatal(err)
	}
	if opts == nil {
		opts = []dashboard.Option{dashboard.WithBearerToken(testToken), dashboard.WithActions(), dashboard.WithEnqueue()}
	}
	srv := httptest.NewServer(dashboard.New(r, opts...))
	t.Cleanup(func() {
		srv.Close()
		r.Close()
	})
	return srv.URL + "/"
}

// noLeaks fails the test if goroutines it starts outlive it and its cleanups.
func noLeaks(t *testing.T) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// times matches the times the commands print, as text and as JSON, which differ
// between two files where the same jobs were enqueued a moment apart.
var timesRE = regexp.MustCompile(`\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?`)

// TestURLSameOutput runs each command on a file and, with -url, through the
// dashboard of a copy of it, and checks that both print the same, errors
// included, and leave the same jobs: the output with -url is the file's.
func TestURLSameOutput(t *testing.T) {
	noLeaks(t)
	db := adminFixture(t)
	url := servedApp(t, copyFile(t, db))
	backup := filepath.Join(t.TempDir(), "x.bak")
	for _, tc := range []struct {
		args []string // FILE stands for the file or -url URL
		code int
	}{
		{[]string{"stats", "FILE"}, 0},
		{[]string{"stats", "-json", "FILE"}, 0},
		{[]string{"list", "FILE"}, 0},
		{[]string{"list", "FILE", "-json", "-oldest"}, 0},
		{[]string{"list", "FILE", "-limit", "2", "-state", "done"}, 0},
		{[]string{"list", "FILE", "-cursor", "xx"}, 2},
		{[]string{"list", "FILE", "-json", "-tag", "none"}, 0},
		{[]string{"show", "FILE", "2"}, 0},
		{[]string{"show", "FILE", "3", "-json"}, 0},
		{[]string{"show", "FILE", "4"}, 0},
		{[]string{"show", "FILE", "99"}, 1},
		{[]string{"show", "FILE", "99", "-json"}, 1},
		{[]string{"events", "FILE"}, 0},
		{[]string{"send", "FILE", "user/created", `{"id": 7}`, "-id", "user-7"}, 0},
		{[]string{"send", "FILE", "user/created", `{"id": 7}`, "-id", "user-7", "-json"}, 0},
		{[]string{"send", "FILE", "user/created", `{"id": 7}`, "-id", " bad"}, 2},
		{[]string{"events", "FILE", "-json"}, 0},
		{[]string{"events", "FILE", "1"}, 0},
		{[]string{"events", "FILE", "9"}, 1},
		{[]string{"enqueue", "FILE", "email", `{"to": "x@example.com"}`, "-queue", "images", "-delay", "1h", "-tag", "t1", "-tag", "t2"}, 0},
		{[]string{"enqueue", "FILE", "email", "-unique-key", "k", "-priority", "3", "-max-attempts", "2", "-json"}, 0},
		{[]string{"enqueue", "FILE", "email", "-unique-key", "k"}, 1},
		{[]string{"enqueue", "FILE", "email", "-delay", "-1s"}, 2},
		{[]string{"show", "FILE", "6"}, 0},
		{[]string{"enqueue", "FILE", "email", "-metadata", "request_id=r-9", "-json"}, 0},
		{[]string{"show", "FILE", "7"}, 0},
		{[]string{"retry", "FILE", "2"}, 0},
		{[]string{"retry", "FILE", "4"}, 1},
		{[]string{"retry", "FILE", "-failed", "-json"}, 0},
		{[]string{"retry", "FILE", "-failed", "-queue", "nosuch"}, 1},
		{[]string{"cancel", "FILE", "4", "-json"}, 0},
		{[]string{"cancel", "FILE", "4"}, 1},
		{[]string{"promote", "FILE", "5"}, 0},
		{[]string{"delete", "FILE", "4"}, 0},
		{[]string{"delete", "FILE", "4"}, 1},
		{[]string{"clean", "FILE", "-state", "done", "-before", "1h"}, 0},
		{[]string{"clean", "FILE", "-queue", "images", "-json"}, 0},
		{[]string{"schedules", "FILE"}, 0},
		{[]string{"schedules", "FILE", "-json"}, 0},
		{[]string{"schedules", "FILE", "-run", "nightly"}, 0},
		{[]string{"schedules", "FILE", "-run", "weekly"}, 1},
		{[]string{"schedules", "FILE", "-pause", "nightly"}, 0},
		{[]string{"schedules", "FILE"}, 0},
		{[]string{"schedules", "FILE", "-resume", "nightly", "-json"}, 0},
		{[]string{"schedules", "FILE", "-pause", "weekly"}, 1},
		{[]string{"unschedule", "FILE", "nightly", "-json"}, 0},
		{[]string{"unschedule", "FILE", "nightly"}, 1},
		{[]string{"pause", "FILE", "default"}, 0},
		{[]string{"resume", "FILE", "images", "-json"}, 0},
		{[]string{"pause", "FILE", "nosuch"}, 1},
		{[]string{"check", "FILE"}, 0},
		{[]string{"check", "FILE", "-json"}, 0},
		{[]string{"stats", "FILE"}, 0},
		{[]string{"list", "FILE", "-json"}, 0},
		{[]string{"backup", "FILE", backup}, 0},
		{[]string{"backup", "FILE", backup}, 1},
	} {
		onFile := slices.Clone(tc.args)
		onURL := slices.Clone(tc.args)
		i := slices.Index(tc.args, "FILE")
		onFile[i] = db
		onURL = slices.Replace(onURL, i, i+1, "-url", url)
		onURL = append(onURL, "-token", testToken)
		if tc.args[0] == "backup" {
			onURL[len(onURL)-3] = backup + ".url" // DEST, which the first backup makes exist
		}
		fileOut, fileErr := cli(t, tc.code, onFile...)
		urlOut, urlErr := cli(t, tc.code, onURL...)
		same := func(s string) string {
			s = strings.ReplaceAll(s, "jobrun list "+db, "jobrun list -url "+url)
			s = strings.ReplaceAll(s, db, url)
			s = strings.ReplaceAll(s, backup+".url", backup)
			return timesRE.ReplaceAllString(s, "TIME")
		}
		if tc.args[0] == "backup" {
			// The sizes of two files may differ by their free pages.
			sizes := regexp.MustCompile(`\(\d+(\.\d)? [KM]?i?B\)`)
			fileOut, urlOut = sizes.ReplaceAllString(fileOut, "(SIZE)"), sizes.ReplaceAllString(urlOut, "(SIZE)")
		}
		if same(fileOut) != same(urlOut) || same(fileErr) != same(urlErr) {
			t.Errorf("jobrun %s: on the file\n%s%s\nwith -url\n%s%s", strings.Join(tc.args, " "), fileOut, fileErr, urlOut, urlErr)
		}
	}
	// The backup through the dashboard opens as the file's.
	for _, path := range []string{backup, backup + ".url"} {
		out, _ := cli(t, 0, "list", path)
		mustIDs(t, out, "8", "7", "6", "5", "2", "1")
	}
}

// TestURLErrors: what goes wrong with -url says what to do.
func TestURLErrors(t *testing.T) {
	noLeaks(t)
	db := adminFixture(t)
	url := servedApp(t, copyFile(t, db))
	readOnly := servedApp(t, copyFile(t, db), dashboard.WithBearerToken(testToken))
	open := servedApp(t, copyFile(t, db), dashboard.WithActions(), dashboard.WithEnqueue())
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL + "/"
	down.Close()
	for _, tc := range []struct {
		args []string
		code int
		errs string // stderr, all of it or, for a usage error, its start
	}{
		{[]string{"list", "-url", url}, 1, "jobrun list: " + url + ": authentication required: give the dashboard's token with -token or JOBRUN_TOKEN\n"},
		{[]string{"list", "-url", url, "-token", "guess"}, 1, "jobrun list: " + url + ": authentication required"},
		{[]string{"stats", "-url", downURL}, 1, "jobrun stats: " + downURL + ": dial tcp "},
		{[]string{"stats", "-url", "localhost:8080"}, 1, `jobrun stats: -url localhost:8080: client: URL "localhost:8080": the scheme must be http or https` + "\n"},
		{[]string{"stats", db, "-token", testToken}, 2, "jobrun stats: -token goes with -url\n"},
		{[]string{"show", db, "2", "-url", url}, 2, `jobrun show: unexpected argument "` + db + `": with -url the command works on the application at URL, not on a FILE` + "\n"},
		{[]string{"show", "-url", url}, 2, "jobrun show: missing ID\n"},
		{[]string{"compact", "-url", url}, 2, "jobrun compact: -url: compact rewrites the file: it works on a file only, with its application stopped\n"},
		{[]string{"salvage", "-url", url, "new.db"}, 2, "jobrun salvage: -url: salvage reads a damaged file: it works on a file only"},
		{[]string{"check", "-url", url, "-repair", "-token", testToken}, 2, "jobrun check: -url: check -repair rewrites the counters of the file: it works on a file only"},
		{[]string{"pause", "-url", readOnly, "images", "-token", testToken}, 1, "jobrun pause: actions are disabled: this dashboard is read-only\n"},
		{[]string{"enqueue", "-url", readOnly, "email", "-token", testToken}, 1, "jobrun enqueue: enqueue is disabled: the application enables POST /api/jobs and /api/events with dashboard.WithEnqueue\n"},
		{[]string{"send", "-url", open, "x", "{}"}, 1, "jobrun send: enqueue needs authentication, and this dashboard has none"},
		{[]string{"list", "-url", url, "-json"}, 1, `{` + "\n" + `  "error": "` + url + `: authentication required: give the dashboard's token with -token or JOBRUN_TOKEN"` + "\n}\n"},
	} {
		_, errs := cli(t, tc.code, tc.args...)
		if !strings.HasPrefix(errs, tc.errs) {
			t.Errorf("jobrun %s: stderr\n%s\nwant it to start with\n%s", strings.Join(tc.args, " "), errs, tc.errs)
		}
	}

	// JOBRUN_TOKEN stands for -token, which the next page's command line leaves out.
	t.Setenv(tokenEnv, testToken)
	out, _ := cli(t, 0, "list", "-url", url, "-limit", "1")
	mustIDs(t, out, "4")
	if !strings.Contains(out, "\nMore jobs: jobrun list -url "+url+" -limit 1 -cursor ") {
		t.Errorf("next page:\n%s", out)
	}
	out, _ = cli(t, 0, "list", "-url", url, "-token", testToken, "-limit", "1")
	if strings.Contains(out, testToken) {
		t.Errorf("the token is printed:\n%s", out)
	}
	out, _ = cli(t, 0, "help", "list")
	if strings.Contains(out, testToken) {
		t.Errorf("the usage prints the token of JOBRUN_TOKEN:\n%s", out)
	}
}

// TestEnqueueCommand: every flag of enqueue is the option of its name, as the job
// in the file shows; bad values are usage errors.
func TestEnqueueCommand(t *testing.T) {
	db := adminFixture(t)
	at := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	out, _ := cli(t, 0, "enqueue", db, "email", `{"to": "ada@example.com"}`, "-queue", "mail", "-priority", "-4",
		"-max-attempts", "7", "-delay", "1h", "-at", at.Format(time.RFC3339), "-timeout", "30s", "-unique-key", "u",
		"-throttle", "welcome-{to}=24h", "-concurrency-key", "smtp-{to}", "-tag", "a", "-tag", "b",
		"-backoff", "1s,1m", "-jitter", "0.2", "-on-failure", "alert", "-metadata", "trace=a=b", "-metadata", "user=ada", "-json")
	var j jobrun.Info
	decode(t, out, &j)
	r, err := jobrun.Open(db, jobrun.WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	in, err := r.Get(t.Context(), j.ID)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := mustJSON(t, jobOut(in)), compact(t, json.RawMessage(out)); got != want {
		t.Errorf("enqueue -json printed\n%s\nthe file holds\n%s", want, got)
	}
	if in.Kind != "email" || in.Queue != "mail" || in.Priority != -4 || in.MaxAttempts != 7 || !in.RunAt.Equal(at) ||
		in.UniqueKey != "welcome-ada@example.com" || in.ConcurrencyKey != "smtp-ada@example.com" ||
		!slices.Equal(in.Tags, []string{"a", "b"}) || string(in.RawArgs) != `{"to":"ada@example.com"}` || in.State != jobrun.StateScheduled ||
		len(in.Metadata) != 2 || in.Metadata["trace"] != "a=b" || in.Metadata["user"] != "ada" {
		t.Errorf("enqueued: %+v", in)
	}
	out, _ = cli(t, 0, "enqueue", db, "report")
	mustEqual(t, out, "Enqueued job 6 (report): it is ready and runs when an application runs queue default.\n")
	out, _ = cli(t, 0, "enqueue", "-debounce", "d=10m", db, "report", "[1, 2]")
	mustContain(t, out, "Enqueued job 7 (report): it is scheduled for ")
	out, _ = cli(t, 0, "enqueue", "-debounce", "d=10m", db, "report", "[3]")
	mustContain(t, out, "Enqueued job 7 (report)")
	_, errs := cli(t, 1, "enqueue", db, "email", `{"to": "ada@example.com"}`, "-throttle", "welcome-{to}=1h")
	mustEqual(t, errs, "jobrun enqueue: not enqueued: job 5 holds key \"welcome-ada@example.com\"\n")

	runCases(t, []cliCase{
		{args: []string{"enqueue", db}, code: 2, errs: "jobrun enqueue: missing KIND\n"},
		{args: []string{"enqueue", db, "k", "{"}, code: 2, errs: "jobrun enqueue: JSON is not valid JSON"},
		{args: []string{"enqueue", db, "k", "{}", "x"}, code: 2, errs: `unexpected argument "x"`},
		{args: []string{"enqueue", db, " k"}, code: 2, errs: "jobrun enqueue: kind name"},
		{args: []string{"enqueue", db, "k", "-priority", "high"}, code: 2, errs: `invalid value "high" for flag -priority`},
		{args: []string{"enqueue", db, "k", "-delay", "5"}, code: 2, errs: `invalid value "5" for flag -delay`},
		{args: []string{"enqueue", db, "k", "-at", "tomorrow"}, code: 2, errs: `invalid value "tomorrow" for flag -at`},
		{args: []string{"enqueue", db, "k", "-throttle", "24h"}, code: 2, errs: "want key=period, such as report=24h"},
		{args: []string{"enqueue", db, "k", "-backoff", "1s"}, code: 2, errs: "want two durations, min,max"},
		{args: []string{"enqueue", db, "k", "-max-attempts", "0"}, code: 2, errs: "jobrun enqueue: max attempts must be between 1"},
		{args: []string{"enqueue", db, "k", "-jitter", "3"}, code: 2, errs: "jitter must be between 0 and 1, got 3"},
		{args: []string{"enqueue", db, "k", "-tag", ""}, code: 2, errs: "tag name"},
		{args: []string{"enqueue", db, "k", "-metadata", "novalue"}, code: 2, errs: "want key=value"},
		{args: []string{"help", "enqueue"}, code: 0, stdout: "usage: jobrun enqueue (FILE | -url URL) KIND [JSON]"},
	})
}

// TestURLPasswordNotPrinted: a -url with basic authentication's password in it
// does not show the password in errors or in the next page's command line, as
// -token does not.
func TestURLPasswordNotPrinted(t *testing.T) {
	noLeaks(t)
	const pass = "s3cret-pass"
	db := adminFixture(t)
	base := servedApp(t, copyFile(t, db), dashboard.WithBasicAuth("admin", pass))
	withPass := strings.Replace(base, "http://", "http://admin:"+pass+"@", 1)
	wrongPass := strings.Replace(base, "http://", "http://admin:wrong-"+pass+"@", 1)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"show", "-url", withPass, "99"}, 1},
		{[]string{"show", "-url", withPass, "99", "-json"}, 1},
		{[]string{"events", "-url", withPass, "99"}, 1},
		{[]string{"list", "-url", wrongPass}, 1},
		{[]string{"list", "-url", withPass, "-limit", "1"}, 0},
		{[]string{"list", "-url=" + withPass, "-limit", "1"}, 0},
		{[]string{"stats", "-url", "http://admin:" + pass + "@127.0.0.1:1/%zz"}, 1},
		{[]string{"stats", "-url", "http://admin:" + pass + "@127.0.0.1:1/?q=1"}, 1},
	} {
		out, errs := cli(t, tc.code, tc.args...)
		if strings.Contains(out+errs, pass) {
			t.Errorf("jobrun %s: the password is printed:\nstdout:\n%s\nstderr:\n%s", strings.Join(tc.args, " "), out, errs)
		}
	}
}
