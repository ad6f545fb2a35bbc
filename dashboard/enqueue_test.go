package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.etcd.io/bbolt"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/internal/wire"
)

// postBody posts body, as JSON unless header sets another Content-Type, to h as a
// script would (no browser headers), and returns the status and body.
func postBody(t *testing.T, h http.Handler, target, body string, header ...string) (*http.Response, string) {
	t.Helper()
	return doBody(t, h, http.MethodPost, target, strings.NewReader(body), "application/json", header...)
}

// mustAPIError decodes an error answer and checks its status and code.
func mustAPIError(t *testing.T, what string, res *http.Response, body string, status int, code, msg string) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, body)
	}
	if res.StatusCode != status || e.Code != code || !strings.Contains(e.Error, msg) {
		t.Errorf("%s: status %d, %+v; want %d, code %q, an error mentioning %q", what, res.StatusCode, e, status, code, msg)
	}
	return e
}

// TestEnqueueRefusals: POST /api/jobs and /api/events need WithEnqueue, and
// authentication unless WithUnauthenticatedEnqueue; a browser's cross-origin
// request and a body that is not JSON are refused; none of them stores anything.
func TestEnqueueRefusals(t *testing.T) {
	f := openFixture(t)
	const job = `{"kind": "email.send", "args": {"to": "ada@example.com"}}`
	const event = `{"name": "order/placed", "data": {"order_id": 9}}`
	bearer := []string{"Authorization", "Bearer t0ken"}
	for _, tc := range []struct {
		name   string
		opts   []Option
		header []string
		status int
		code   string
		msg    string
	}{
		{"not enabled", []Option{WithActions(), WithBearerToken("t0ken")}, bearer, 403, "forbidden", "dashboard.WithEnqueue"},
		{"no authentication", []Option{WithEnqueue()}, nil, 403, "forbidden", "enqueue needs authentication"},
		{"token missing", []Option{WithEnqueue(), WithBearerToken("t0ken")}, nil, 401, "unauthorized", "authentication required"},
		{"cross-origin", []Option{WithEnqueue(), WithBearerToken("t0ken")}, append([]string{"Sec-Fetch-Site", "cross-site"}, bearer...),
			403, "forbidden", "cross-origin request refused"},
		{"not JSON", []Option{WithEnqueue(), WithBearerToken("t0ken")}, append([]string{"Content-Type", "text/plain"}, bearer...),
			415, "invalid", "Content-Type: application/json"},
		{"form", []Option{WithEnqueue(), WithUnauthenticatedEnqueue()}, []string{"Content-Type", "application/x-www-form-urlencoded"},
			415, "invalid", "must be JSON"},
	} {
		h := New(f.r, tc.opts...)
		for _, target := range []string{"/api/jobs", "/api/events"} {
			body := map[string]string{"/api/jobs": job, "/api/events": event}[target]
			res, answer := postBody(t, h, target, body, tc.header...)
			mustAPIError(t, tc.name+": POST "+target, res, answer, tc.status, tc.code, tc.msg)
		}
	}
	if c, _ := f.r.Counts(t.Context(), ""); c[jobrun.StateReady] != 0 {
		t.Errorf("refused requests enqueued %d jobs", c[jobrun.StateReady])
	}
	if page, _ := f.r.Events(t.Context(), jobrun.EventFilter{}); len(page.Events) != 0 {
		t.Errorf("refused requests sent %d events", len(page.Events))
	}

	// What is let in: a token, any auth option, or the opt-out on loopback.
	for name, h := range map[string]http.Handler{
		"token":             New(f.r, WithEnqueue(), WithBearerToken("t0ken")),
		"unauthenticated":   New(f.r, WithEnqueue(), WithUnauthenticatedEnqueue()),
		"json with charset": New(f.r, WithEnqueue(), WithUnauthenticatedEnqueue()),
	} {
		header := bearer
		if name == "json with charset" {
			header = []string{"Content-Type", "application/json; charset=utf-8"}
		}
		res, answer := postBody(t, h, "/api/jobs", job, header...)
		if res.StatusCode != http.StatusCreated {
			t.Errorf("%s: status %d\n%s", name, res.StatusCode, answer)
		}
	}
}

// TestEnqueueErrors: bad bodies and the runner's refusals answer their status and
// code, with the runner's own words.
func TestEnqueueErrors(t *testing.T) {
	f := openFixture(t)
	h := New(f.r, WithEnqueue(), WithUnauthenticatedEnqueue())
	for _, tc := range []struct {
		body   string
		status int
		code   string
		msg    string
	}{
		{`{"kind": "email.send"`, 400, "invalid", "unexpected EOF"},
		{`{"kind": "email.send"} {}`, 400, "invalid", "more than one JSON value"},
		{`{"kind": "email.send", "delay_seconds": 5}`, 400, "invalid", `unknown field "delay_seconds"`},
		{`{"kind": "email.send", "priority": "high"}`, 400, "invalid", "priority"},
		{`{"args": {}}`, 400, "invalid", "empty kind name"},
		{`{"kind": "no.such.kind"}`, 422, "unknown_kind", `unknown job kind "no.such.kind": register a handler`},
		{`{"kind": "email.send", "delay": "5 min"}`, 400, "invalid", `delay "5 min" is not a duration`},
		{`{"kind": "email.send", "delay": "-5s"}`, 400, "invalid", "negative delay"},
		{`{"kind": "email.send", "run_at": "tomorrow"}`, 400, "invalid", `run_at "tomorrow" is not an RFC 3339 time`},
		{`{"kind": "email.send", "run_at": "2030-01-01T00:00:00Z", "delay": "1h"}`, 400, "invalid", "run_at and delay: give one"},
		{`{"kind": "email.send", "unique_key": "a", "throttle": {"key": "a", "period": "1h"}}`, 400, "invalid", "give one of them"},
		{`{"kind": "email.send", "throttle": {"key": "a"}}`, 400, "invalid", `throttle period "" is not a duration`},
		{`{"kind": "email.send", "max_attempts": 0}`, 400, "invalid", "max attempts must be between 1"},
		{`{"kind": "email.send", "backoff": {"min": "1h", "max": "1s"}}`, 400, "invalid", "backoff needs"},
		{`{"kind": "email.send", "jitter": 2}`, 400, "invalid", "jitter must be between 0 and 1"},
		{`{"kind": "email.send", "queue": " mail"}`, 400, "invalid", "queue name"},
		{`{"kind": "email.send", "priority_from": "rank"}`, 400, "invalid", "rank"},
		{`{"kind": "email.send", "metadata": {" key": "v"}}`, 400, "invalid", "metadata key"},
		{`{"kind": "email.send", "metadata": {"key": 1}}`, 400, "invalid", "metadata"},
		{`{"kind": "email.send", "on_failure": {"kind": "email.send", "delay": "x"}}`, 400, "invalid", `on_failure: jobrun: invalid argument: delay "x"`},
		{`{"kind": "email.send", "on_failure": {"kind": "email.send", "args": {}}}`, 400, "invalid", `unknown field "args"`},
		{`{"kind": "email.send", "args": "` + strings.Repeat("x", 1<<20) + `"}`, 400, "invalid", "over the limit of 1048576"},
		{`{"kind": "email.send", "args": "` + strings.Repeat("x", maxEnqueueSize) + `"}`, 413, "too_large", "over the limit of 1114112 bytes"},
	} {
		res, body := postBody(t, h, "/api/jobs", tc.body)
		mustAPIError(t, firstLine(tc.body, 80), res, body, tc.status, tc.code, tc.msg)
	}
	if c, _ := f.r.Counts(t.Context(), ""); c[jobrun.StateReady]+c[jobrun.StateScheduled] != 0 {
		t.Errorf("refused bodies enqueued jobs: %v", c)
	}

	// A job refused by its key: 409, with the job that holds the key.
	res, body := postBody(t, h, "/api/jobs", `{"kind": "email.send", "unique_key": "welcome-1"}`)
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("status %d\n%s", res.StatusCode, body)
	}
	var first actionResult
	json.Unmarshal([]byte(body), &first)
	res, body = postBody(t, h, "/api/jobs", `{"kind": "email.send", "unique_key": "welcome-1"}`)
	if e := mustAPIError(t, "duplicate", res, body, 409, "duplicate", `holds key "welcome-1"`); e.ID != first.ID || e.ID == 0 {
		t.Errorf("duplicate: id %d, want the first job's, %d", e.ID, first.ID)
	}

	// A read-only runner: 403 with its error.
	ro, err := jobrun.New(readOnlyDB(t, f.r), jobrun.WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	h = New(ro, WithEnqueue(), WithUnauthenticatedEnqueue())
	res, body = postBody(t, h, "/api/jobs", `{"kind": "email.send"}`)
	mustAPIError(t, "read-only runner", res, body, 403, "read_only", "read-only")
	res, body = postBody(t, h, "/api/events", `{"name": "order/placed"}`)
	mustAPIError(t, "read-only runner, send", res, body, 403, "read_only", "read-only")
}

// readOnlyDB closes r and opens its file read-only with bbolt, for a read-only
// runner (jobrun.New on a read-only database).
func readOnlyDB(t *testing.T, r *jobrun.Runner) *bbolt.DB {
	t.Helper()
	path := r.DB().Path()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// enqueueJSON posts body to POST /api/jobs, wants 201, and returns the stored job,
// read with Runner.Get.
func enqueueJSON(t *testing.T, r *jobrun.Runner, h http.Handler, body string) *jobrun.Info {
	t.Helper()
	res, answer := postBody(t, h, "/api/jobs", body)
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("POST /api/jobs %s: status %d\n%s", body, res.StatusCode, answer)
	}
	var got actionResult
	if err := json.Unmarshal([]byte(answer), &got); err != nil {
		t.Fatal(err)
	}
	if !got.OK || got.ID == 0 || got.Job == nil || got.Job.ID != got.ID || res.Header.Get("Location") != "jobs/"+idStr(got.ID) {
		t.Errorf("POST /api/jobs: %s, Location %q", answer, res.Header.Get("Location"))
	}
	in, err := r.Get(t.Context(), got.ID)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// The kinds of TestEnqueueOptions.
type (
	optOK    struct{ Rank int }
	optFail  struct{ User int }
	optBlock struct{}
	optAlarm struct{ jobrun.Failure }
)

func (optOK) Kind() string    { return "opt.ok" }
func (optFail) Kind() string  { return "opt.fail" }
func (optBlock) Kind() string { return "opt.block" }
func (optAlarm) Kind() string { return "opt.alarm" }

// TestEnqueueOptions enqueues through POST /api/jobs with every option and checks
// what the runner stored, or, for those Info does not show (backoff, jitter,
// timeout, cancel_on, on_failure), what they do; the kind's defaults apply beneath.
func TestEnqueueOptions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, err := jobrun.Open(filepath.Join(t.TempDir(), "jobs.db"), jobrun.WithQueue("other", 1, nil))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		ctx := t.Context()
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[optOK]) error { return nil }, jobrun.MaxAttempts(3), jobrun.Tags("default-tag"))
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[optFail]) error { return errors.New("down") })
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[optBlock]) error {
			<-ctx.Done()
			return context.Cause(ctx)
		})
		alarms := 0
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[optAlarm]) error { alarms++; return nil }, jobrun.Queue("other"))
		h := New(r, WithEnqueue(), WithUnauthenticatedEnqueue())
		now := time.Now()

		// Defaults: the kind's, then jobrun's.
		in := enqueueJSON(t, r, h, `{"kind": "opt.ok"}`)
		if in.Queue != jobrun.DefaultQueue || in.MaxAttempts != 3 || in.Priority != 0 || !slices.Equal(in.Tags, []string{"default-tag"}) ||
			!in.RunAt.Equal(now) || string(in.RawArgs) != "{}" || in.State != jobrun.StateReady {
			t.Errorf("defaults: %+v", in)
		}
		// The options Info shows.
		in = enqueueJSON(t, r, h, `{"kind": "opt.ok", "args": {"Rank": 7}, "queue": "other", "priority": -2, "max_attempts": 9,
			"delay": "1h30m", "unique_key": "u-{Rank}", "concurrency_key": "c-1", "tags": ["a", "b"],
			"metadata": {"request_id": "r-1", "user": "ada"}}`)
		if in.Queue != "other" || in.Priority != -2 || in.MaxAttempts != 9 || !in.RunAt.Equal(now.Add(90*time.Minute)) ||
			in.UniqueKey != "u-7" || in.ConcurrencyKey != "c-1" || !slices.Equal(in.Tags, []string{"default-tag", "a", "b"}) ||
			len(in.Metadata) != 2 || in.Metadata["request_id"] != "r-1" || in.Metadata["user"] != "ada" ||
			string(in.RawArgs) != `{"Rank":7}` || in.State != jobrun.StateScheduled {
			t.Errorf("options: %+v", in)
		}
		at := now.Add(48 * time.Hour).UTC()
		in = enqueueJSON(t, r, h, `{"kind": "opt.ok", "run_at": "`+at.Format(time.RFC3339)+`", "args": {"Rank": 4}, "priority_from": "Rank"}`)
		if !in.RunAt.Equal(at) || in.Priority != 4 {
			t.Errorf("run_at and priority_from: %+v", in)
		}
		in = enqueueJSON(t, r, h, `{"kind": "opt.ok", "throttle": {"key": "daily", "period": "24h"}}`)
		if in.UniqueKey != "daily" {
			t.Errorf("throttle: %+v", in)
		}
		res, body := postBody(t, h, "/api/jobs", `{"kind": "opt.ok", "throttle": {"key": "daily", "period": "24h"}}`)
		mustAPIError(t, "throttled", res, body, http.StatusConflict, "duplicate", "daily")
		in = enqueueJSON(t, r, h, `{"kind": "opt.ok", "debounce": {"key": "burst", "period": "10m"}}`)
		again := enqueueJSON(t, r, h, `{"kind": "opt.ok", "args": {"Rank": 2}, "debounce": {"key": "burst", "period": "10m"}}`)
		if in.UniqueKey != "burst" || again.ID != in.ID || string(again.RawArgs) != `{"Rank":2}` || !again.RunAt.Equal(now.Add(10*time.Minute)) {
			t.Errorf("debounce: first %+v, then %+v", in, again)
		}
		for _, id := range []jobrun.ID{in.ID} {
			if err := r.Cancel(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := r.Clean(ctx, "", "", time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}

		// Backoff and jitter: from an hour, without jitter, the first retry is exactly an hour
		// after the failure.
		fail := enqueueJSON(t, r, h, `{"kind": "opt.fail", "args": {"User": 1}, "backoff": {"min": "1h", "max": "4h"}, "jitter": 0, "max_attempts": 2,
			"cancel_on": [{"event": "user/deleted", "field": "User"}], "on_failure": {"kind": "opt.alarm", "priority": 3}}`)
		if err := r.RunUntilIdle(ctx); err != nil {
			t.Fatal(err)
		}
		in, _ = r.Get(ctx, fail.ID)
		if in.State != jobrun.StateRetrying || !in.RunAt.Equal(in.Errors[0].At.Add(time.Hour)) {
			t.Errorf("after one failure with backoff from 1h, jitter 0: %s, runs at %v, failed at %v", in.State, in.RunAt, in.Errors[0].At)
		}
		// on_failure: the last attempt fails for good and enqueues the alarm.
		if err := r.Promote(ctx, fail.ID); err != nil {
			t.Fatal(err)
		}
		if err := r.RunUntilIdle(ctx); err != nil {
			t.Fatal(err)
		}
		page, err := r.List(ctx, jobrun.Filter{Kind: "opt.alarm"})
		if err != nil || len(page.Jobs) != 1 || page.Jobs[0].Priority != 3 || page.Jobs[0].State != jobrun.StateDone || alarms != 1 {
			t.Errorf("on_failure: %v %v, %d alarms run", page, err, alarms)
		}
		// cancel_on: an event about the same user cancels a waiting job.
		waiting := enqueueJSON(t, r, h, `{"kind": "opt.fail", "args": {"User": 5}, "delay": "1h", "cancel_on": [{"event": "user/deleted", "field": "User"}]}`)
		if _, err := r.Send(ctx, jobrun.Event{Name: "user/deleted", Data: map[string]int{"User": 5}}); err != nil {
			t.Fatal(err)
		}
		if in, _ := r.Get(ctx, waiting.ID); in.State != jobrun.StateCanceled {
			t.Errorf("cancel_on: the job is %s after the event", in.State)
		}
		// timeout: the attempt's context ends after it.
		block := enqueueJSON(t, r, h, `{"kind": "opt.block", "timeout": "90s", "max_attempts": 1}`)
		start := time.Now()
		if err := r.RunUntilIdle(ctx); err != nil {
			t.Fatal(err)
		}
		in, _ = r.Get(ctx, block.ID)
		if in.State != jobrun.StateFailed || !in.FinishedAt.Equal(start.Add(90*time.Second)) {
			t.Errorf("timeout 90s: %s, finished %v after the start", in.State, in.FinishedAt.Sub(start))
		}
	})
}

// TestSendEndpoint: POST /api/events sends the event as Runner.Send does, and
// answers it as GET /api/events/{seq} shows it.
func TestSendEndpoint(t *testing.T) {
	f := openFixture(t)
	h := New(f.r, WithEnqueue(), WithBearerToken("t0ken"))
	auth := []string{"Authorization", "Bearer t0ken"}
	res, body := postBody(t, h, "/api/events", `{"name": "order/placed", "id": "order-9", "data": {"order_id": 9, "email": "a@example.com"}}`, auth...)
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("status %d\n%s", res.StatusCode, body)
	}
	var got eventDetailJSON
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Name != "order/placed" || got.ID != "order-9" || compact(got.Data) != `{"order_id":9,"email":"a@example.com"}` ||
		len(got.Runs) != 2 || len(got.Jobs) != 2 || got.Jobs[0].State != "ready" || res.Header.Get("Location") != "events/"+seqStr(got.Seq) {
		t.Errorf("POST /api/events answered %s, Location %q", body, res.Header.Get("Location"))
	}
	if _, shown := do(t, h, http.MethodGet, "/api/events/"+seqStr(got.Seq), nil, auth...); compact(json.RawMessage(shown)) != compact(json.RawMessage(body)) {
		t.Errorf("POST answered\n%s\nGET shows\n%s", body, shown)
	}
	for _, run := range got.Runs {
		if in, err := f.r.Get(t.Context(), run); err != nil || in.Event != got.Seq {
			t.Errorf("run %d: %+v, %v", run, in, err)
		}
	}
	// The same ID again: a duplicate, which starts nothing new.
	_, body = postBody(t, h, "/api/events", `{"name": "order/placed", "id": "order-9", "data": {"order_id": 9}}`, auth...)
	var dup eventDetailJSON
	json.Unmarshal([]byte(body), &dup)
	if dup.DuplicateOf != got.Seq || !slices.Equal(dup.Runs, got.Runs) {
		t.Errorf("duplicate: %s", body)
	}
	// No data is {}; bad ones are the runner's ErrInvalid.
	_, body = postBody(t, h, "/api/events", `{"name": "nobody/listens"}`, auth...)
	var empty eventDetailJSON
	json.Unmarshal([]byte(body), &empty)
	if compact(empty.Data) != "{}" || len(empty.Runs) != 0 || len(empty.Jobs) != 0 || empty.Jobs == nil {
		t.Errorf("an event without data and functions: %s", body)
	}
	for _, tc := range []struct{ body, msg string }{
		{`{"name": "x", "data": [1]}`, "not a JSON object"},
		{`{"data": {}}`, "empty event name"},
		{`{"name": "x", "data": {}, "seq": 4}`, `unknown field "seq"`},
	} {
		res, answer := postBody(t, h, "/api/events", tc.body, auth...)
		mustAPIError(t, tc.body, res, answer, http.StatusBadRequest, "invalid", tc.msg)
	}
}

// TestBackupAndCheck: GET /api/backup streams a file that opens with every job,
// its size in the trailer; a dashboard that hides args refuses it. GET /api/check
// answers the counters that disagree.
func TestBackupAndCheck(t *testing.T) {
	f, h := populated(t)
	req := httptest.NewRequest(http.MethodGet, "/api/backup", nil)
	req.Host = testHost
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("GET /api/backup: status %d, Content-Type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	b, _ := io.ReadAll(res.Body)
	if got := res.Trailer.Get(wire.BackupSizeTrailer); got != itoa(len(b)) || res.Trailer.Get(wire.BackupErrorTrailer) != "" {
		t.Errorf("trailer %v for %d bytes", res.Trailer, len(b))
	}
	if err := os.WriteFile(copyPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cp, err := jobrun.Open(copyPath, jobrun.WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	want, _ := f.r.Counts(t.Context(), "")
	if got, err := cp.Counts(t.Context(), ""); err != nil || !equalCounts(got, want) {
		t.Errorf("the backup's counts %v, %v; want %v", got, err, want)
	}

	res, body := do(t, New(f.r, WithRedactedArgs("crm.sync")), http.MethodGet, "/api/backup", nil)
	mustAPIError(t, "backup with redaction", res, body, http.StatusForbidden, "forbidden", "hides args")

	var check wire.Check
	getJSON(t, h, "/api/check", http.StatusOK, &check)
	if check.Mismatches == nil || len(check.Mismatches) != 0 {
		t.Errorf("GET /api/check: %+v", check)
	}
}

func equalCounts(a, b map[jobrun.State]int) bool {
	for _, s := range jobrun.States {
		if a[s] != b[s] {
			return false
		}
	}
	return true
}

// TestErrorCodes: every error answer of the API has a code, that of the runner's
// sentinel error where there is one, which the client maps back.
func TestErrorCodes(t *testing.T) {
	f, h := populated(t, WithActions())
	for _, tc := range []struct {
		method, target string
		status         int
		code           string
	}{
		{"GET", "/api/jobs/99999", 404, "not_found"},
		{"GET", "/api/jobs/abc", 404, "not_found"},
		{"GET", "/api/events/99999", 404, "not_found"},
		{"GET", "/api/jobs?cursor=xx", 400, "invalid"},
		{"GET", "/api/jobs?limit=x", 400, "invalid"},
		{"GET", "/api/nothing", 404, "no_route"},
		{"POST", "/api/jobs/" + idStr(f.ids["ready"]) + "/retry", 409, "state"},
		{"POST", "/api/schedules/nope/run", 404, "not_found"},
		{"POST", "/api/clean?state=ready", 400, "invalid"},
	} {
		var res *http.Response
		var body string
		if tc.method == "POST" {
			res, body = post(t, h, tc.target, nil)
		} else {
			res, body = do(t, h, tc.method, tc.target, nil)
		}
		mustAPIError(t, tc.method+" "+tc.target, res, body, tc.status, tc.code, "")
	}
	res, body := post(t, New(f.r), "/api/queues/mail/pause", nil)
	mustAPIError(t, "read-only dashboard", res, body, 403, "read_only", "read-only")
}

// TestCleanBefore: the clean action takes "before", an RFC 3339 time, as
// Runner.Clean does, besides "older_than".
func TestCleanBefore(t *testing.T) {
	f, h := populated(t, WithActions())
	var res actionResult
	postJSON(t, h, "/api/clean", url.Values{"state": {"done"}, "before": {"2000-01-01T00:00:00Z"}}, http.StatusOK, &res)
	if res.Count == nil || *res.Count != 0 {
		t.Errorf("clean before 2000: %+v", res)
	}
	postJSON(t, h, "/api/clean", url.Values{"state": {"done"}, "before": {time.Now().Add(time.Minute).Format(time.RFC3339Nano)}}, http.StatusOK, &res)
	if res.Count == nil || *res.Count == 0 {
		t.Errorf("clean before now: %+v", res)
	}
	if _, err := f.r.Get(t.Context(), f.ids["done"]); !errors.Is(err, jobrun.ErrNotFound) {
		t.Errorf("the done job after clean: %v", err)
	}
	var e apiError
	postJSON(t, h, "/api/clean", url.Values{"before": {"yesterday"}}, http.StatusBadRequest, &e)
	postJSON(t, h, "/api/clean", url.Values{"before": {"2000-01-01T00:00:00Z"}, "older_than": {"1h"}}, http.StatusBadRequest, &e)
	if !strings.Contains(e.Error, "give one of them") {
		t.Errorf("before and older_than: %q", e.Error)
	}
}
