package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/time/rate"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/client"
	"github.com/jobrun/jobrun/dashboard"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The application's kinds.
type (
	welcome struct {
		To string `json:"to"`
	}
	flaky  struct{ N int }
	report struct{}
)

func (welcome) Kind() string { return "welcome" }
func (flaky) Kind() string   { return "flaky" }
func (report) Kind() string  { return "report" }

const token = "s3cret-t0ken"

// app is a running application as a test sees it: its runner on a temp file, its
// dashboard served by httptest with a token, actions and enqueue, and a client of
// it.
type app struct {
	r   *jobrun.Runner
	c   *client.Client
	url string
	n   atomic.Int64 // requests the dashboard received
}

// startApp starts the application on a new file with the dashboard options opts
// (default: the token, actions and enqueue).
func startApp(t *testing.T, opts ...dashboard.Option) *app {
	t.Helper()
	return startAppOn(t, filepath.Join(t.TempDir(), "jobs.db"), opts...)
}

// startAppOn is startApp on the file path, which may hold what an earlier run of
// the application left.
func startAppOn(t *testing.T, path string, opts ...dashboard.Option) *app {
	t.Helper()
	r, err := jobrun.Open(path, jobrun.WithQueue("mail", 2, rate.NewLimiter(5, 2)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[welcome]) error {
		j.Log("sent to " + j.Args.To)
		return j.SetResult(map[string]string{"sent": j.Args.To})
	}, jobrun.Queue("mail"), jobrun.Tags("onboarding"))
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[flaky]) error { return errors.New("down\nfor maintenance") },
		jobrun.MaxAttempts(1))
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[report]) error {
		if err := j.SetProgress(map[string]int{"pages": 3}); err != nil {
			return err
		}
		_, err := jobrun.Step(ctx, "render", func(ctx context.Context) (map[string]any, error) {
			return map[string]any{"pages": 3, "title": "<b>Month</b>"}, nil
		})
		return err
	}, jobrun.On("month/closed"))
	if opts == nil {
		opts = []dashboard.Option{dashboard.WithBearerToken(token), dashboard.WithActions(), dashboard.WithEnqueue()}
	}
	a := &app{r: r}
	dash := dashboard.New(r, opts...)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		a.n.Add(1)
		dash.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	a.url = srv.URL + "/"
	a.c = a.client(t, client.WithBearerToken(token))
	return a
}

// client is a client of a's dashboard with opts, on the test server's transport.
func (a *app) client(t *testing.T, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(a.url, append([]client.Option{client.WithHTTPClient(&http.Client{})}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// run runs the due jobs.
func (a *app) run(t *testing.T) {
	t.Helper()
	if err := a.r.RunUntilIdle(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// same fails unless got and want encode to the same JSON.
func same(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g, w) {
		t.Errorf("%s:\ngot  %s\nwant %s", what, g, w)
	}
}

func TestNew(t *testing.T) {
	for _, bad := range []string{"", "127.0.0.1:8080", "ftp://host/", "http://", "http://host/?x=1", "http://host/#top", "http://host/?", "http://[::1"} {
		if _, err := client.New(bad); err == nil {
			t.Errorf("New(%q) accepted it", bad)
		}
	}
	for _, bad := range []string{"http://admin:hunter2@host/?x", "http://admin:hunter2@host/%zz"} {
		_, err := client.New(bad)
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("New(%q): an error that shows the password: %v", bad, err)
		}
	}
	for _, good := range []string{"http://127.0.0.1:8080", "https://app.internal/jobs", "https://app.internal/jobs/"} {
		if _, err := client.New(good); err != nil {
			t.Errorf("New(%q): %v", good, err)
		}
	}
}

// TestEnqueue: a job enqueued through the client is stored as Runner.Enqueue
// stores it in the application, with every option, the kind's defaults beneath;
// Get returns it as the runner's Get does.
func TestEnqueue(t *testing.T) {
	a := startApp(t)
	ctx := t.Context()
	at := time.Now().Add(time.Hour).Truncate(time.Second)
	id, err := a.c.Enqueue(ctx, welcome{To: "ada@example.com"}, client.Priority(3), client.MaxAttempts(4),
		client.At(at), client.UniqueKey("welcome-{to}"), client.ConcurrencyKey("smtp"), client.Tags("vip", "eu"),
		client.Timeout(time.Minute), client.Backoff(time.Second, time.Minute), client.Jitter(0.1),
		client.OnFailure("flaky", client.Queue("mail")), client.CancelOn("user/deleted", "to"),
		client.Metadata(map[string]string{"request_id": "r-1", "user": "bob"}), client.Metadata(map[string]string{"user": "ada"}))
	if err != nil {
		t.Fatal(err)
	}
	in, err := a.r.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if in.Kind != "welcome" || in.Queue != "mail" || in.Priority != 3 || in.MaxAttempts != 4 || !in.RunAt.Equal(at) ||
		in.UniqueKey != "welcome-ada@example.com" || in.ConcurrencyKey != "smtp" ||
		!slices.Equal(in.Tags, []string{"onboarding", "vip", "eu"}) || string(in.RawArgs) != `{"to":"ada@example.com"}` ||
		len(in.Metadata) != 2 || in.Metadata["request_id"] != "r-1" || in.Metadata["user"] != "ada" {
		t.Errorf("stored job: %+v", in)
	}
	got, err := a.c.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "Get", got, in)

	// The same key again: the existing job's ID, with ErrDuplicate.
	again, err := a.c.Enqueue(ctx, welcome{To: "ada@example.com"}, client.UniqueKey("welcome-{to}"))
	if !errors.Is(err, jobrun.ErrDuplicate) || again != id {
		t.Errorf("a duplicate: %d, %v; want %d and ErrDuplicate", again, err, id)
	}
	// Options that replace each other: the last one given, as in jobrun.
	at2 := time.Now().Add(2 * time.Hour).Truncate(time.Second)
	id2, err := a.c.Enqueue(ctx, welcome{To: "bob@example.com"}, client.Delay(time.Minute), client.At(at2),
		client.UniqueKey("u"), client.Throttle("t", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if in, _ := a.r.Get(ctx, id2); !in.RunAt.Equal(at2) || in.UniqueKey != "t" {
		t.Errorf("Delay then At, UniqueKey then Throttle: runs at %v, key %q", in.RunAt, in.UniqueKey)
	}
	if _, err := a.c.Enqueue(ctx, welcome{To: "carol@example.com"}, client.Throttle("t", time.Hour)); !errors.Is(err, jobrun.ErrDuplicate) {
		t.Errorf("throttled: %v", err)
	}
	id3, err := a.c.Enqueue(ctx, welcome{}, client.Debounce("d", time.Minute), client.Tags())
	if in, _ := a.r.Get(ctx, id3); err != nil || in.UniqueKey != "d" || !in.RunAt.After(time.Now()) {
		t.Errorf("debounce: %+v, %v", in, err)
	}
}

// rawArgs are args of any kind, given as JSON: how a process without the
// application's types enqueues.
type rawArgs struct {
	kind string
	json.RawMessage
}

func (a rawArgs) Kind() string { return a.kind }

// TestEnqueueErrors: the application's refusals come back as its sentinel
// errors; bad input that needs no server is refused without a request.
func TestEnqueueErrors(t *testing.T) {
	a := startApp(t)
	ctx := t.Context()
	for _, tc := range []struct {
		args jobrun.Args
		opts []client.EnqueueOption
		want error
		msg  string
	}{
		{rawArgs{"no.such.kind", json.RawMessage(`{}`)}, nil, jobrun.ErrUnknownKind, `unknown job kind "no.such.kind"`},
		{welcome{}, []client.EnqueueOption{client.Delay(-time.Second)}, jobrun.ErrInvalid, "negative delay"},
		{welcome{}, []client.EnqueueOption{client.Queue("")}, nil, ""}, // "" is the kind's default queue
		{welcome{}, []client.EnqueueOption{client.MaxAttempts(0)}, jobrun.ErrInvalid, "max attempts"},
		{welcome{}, []client.EnqueueOption{client.At(time.Time{})}, jobrun.ErrInvalid, "zero time"},
		{welcome{}, []client.EnqueueOption{client.PriorityFrom("rank")}, jobrun.ErrInvalid, "rank"},
		{rawArgs{"welcome", json.RawMessage(`{"to": "x"}`)}, []client.EnqueueOption{client.Tags(" padded")}, jobrun.ErrInvalid, "tag name"},
	} {
		_, err := a.c.Enqueue(ctx, tc.args, tc.opts...)
		var e *client.Error
		switch {
		case tc.want == nil && err != nil:
			t.Errorf("Enqueue(%v): %v", tc.args, err)
		case tc.want != nil && (!errors.Is(err, tc.want) || !errors.As(err, &e) || !strings.Contains(err.Error(), tc.msg)):
			t.Errorf("Enqueue(%v): %v; want %v mentioning %q", tc.args, err, tc.want, tc.msg)
		}
	}
	before := a.n.Load()
	for _, args := range []jobrun.Args{nil, rawArgs{"", json.RawMessage(`{}`)}, rawArgs{"big", json.RawMessage(`"` + strings.Repeat("x", 1<<20) + `"`)},
		rawArgs{"bad", json.RawMessage(`{`)}} {
		if _, err := a.c.Enqueue(ctx, args); !errors.Is(err, jobrun.ErrInvalid) {
			t.Errorf("Enqueue(%.40v): %v, want ErrInvalid", args, err)
		}
	}
	if _, err := a.c.Send(ctx, jobrun.Event{}); !errors.Is(err, jobrun.ErrInvalid) {
		t.Errorf("Send without name: %v", err)
	}
	if _, err := a.c.Get(ctx, 0); !errors.Is(err, jobrun.ErrNotFound) {
		t.Errorf("Get(0): %v", err)
	}
	if _, err := a.c.GetEvent(ctx, 0); !errors.Is(err, jobrun.ErrNotFound) {
		t.Errorf("GetEvent(0): %v", err)
	}
	for name, err := range map[string]error{"Retry(0)": a.c.Retry(ctx, 0), "Pause(\"\")": a.c.Pause(ctx, ""),
		"Unschedule(\"\")":    a.c.Unschedule(ctx, ""),
		"PauseSchedule(\"\")": a.c.PauseSchedule(ctx, ""), "ResumeSchedule(\"\")": a.c.ResumeSchedule(ctx, "")} {
		if !errors.Is(err, jobrun.ErrNotFound) && !errors.Is(err, jobrun.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if n := a.n.Load() - before; n != 0 {
		t.Errorf("bad input sent %d requests", n)
	}
}

// TestErrorsAcrossTheWire: the errors of the application's runner are the same
// sentinels through the client; the API's own refusals are *Error without one.
func TestErrorsAcrossTheWire(t *testing.T) {
	a := startApp(t)
	ctx := t.Context()
	ready, err := a.c.Enqueue(ctx, welcome{To: "ada@example.com"}, client.Queue("nobody-runs-this"))
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, err, want error, status int) {
		t.Helper()
		var e *client.Error
		if !errors.As(err, &e) || e.StatusCode != status || (want != nil && !errors.Is(err, want)) || (want == nil && errors.Unwrap(err) != nil) {
			t.Errorf("%s: %v (%#v); want status %d and %v", what, err, e, status, want)
		}
	}
	_, err = a.c.Get(ctx, 999)
	check("Get(999)", err, jobrun.ErrNotFound, 404)
	check("Retry of a ready job", a.c.Retry(ctx, ready), jobrun.ErrState, 409)
	check("Promote of a ready job", a.c.Promote(ctx, ready), jobrun.ErrState, 409)
	check("Delete(999)", a.c.Delete(ctx, 999), jobrun.ErrNotFound, 404)
	_, err = a.c.TriggerSchedule(ctx, "nope")
	check("TriggerSchedule", err, jobrun.ErrNotFound, 404)
	check("Unschedule", a.c.Unschedule(ctx, "nope"), jobrun.ErrNotFound, 404)
	check("PauseSchedule", a.c.PauseSchedule(ctx, "nope"), jobrun.ErrNotFound, 404)
	_, err = a.c.List(ctx, jobrun.Filter{Cursor: "xx"})
	check("List with a bad cursor", err, jobrun.ErrInvalid, 400)
	_, err = a.c.List(ctx, jobrun.Filter{Limit: 5000})
	check("List with a limit over 1000", err, jobrun.ErrInvalid, 400)
	_, err = a.c.Events(ctx, jobrun.EventFilter{Cursor: "xx"})
	check("Events with a bad cursor", err, jobrun.ErrInvalid, 400)
	_, err = a.c.Clean(ctx, "", jobrun.StateReady, time.Now())
	check("Clean of ready jobs", err, jobrun.ErrInvalid, 400)

	// Without the token, 401; with a wrong one too.
	_, err = a.client(t).List(ctx, jobrun.Filter{})
	check("no token", err, nil, 401)
	_, err = a.client(t, client.WithBearerToken("guess")).Enqueue(ctx, welcome{})
	check("a wrong token", err, nil, 401)

	// A read-only dashboard, and one without enqueue.
	ro := startApp(t, dashboard.WithBearerToken(token))
	check("an action on a read-only dashboard", ro.c.Pause(ctx, "mail"), jobrun.ErrReadOnly, 403)
	_, err = ro.c.Enqueue(ctx, welcome{})
	check("enqueue without WithEnqueue", err, nil, 403)
	open := startApp(t, dashboard.WithEnqueue())
	_, err = open.c.Enqueue(ctx, welcome{})
	check("enqueue without authentication", err, nil, 403)
	if !strings.Contains(err.Error(), "enqueue needs authentication") {
		t.Errorf("the refusal says: %v", err)
	}
}

// TestReads: List, Counts, Queues, Schedules and CheckCounts answer what the
// runner's own methods answer in the application.
func TestReads(t *testing.T) {
	a := startApp(t)
	ctx := t.Context()
	for i := range 5 {
		if _, err := a.c.Enqueue(ctx, welcome{To: fmt.Sprintf("user%d@example.com", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.c.Enqueue(ctx, flaky{N: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.c.Enqueue(ctx, welcome{To: "later@example.com"}, client.Delay(time.Hour), client.Tags("later")); err != nil {
		t.Fatal(err)
	}
	if err := a.r.Schedule(ctx, "nightly", "0 3 * * *", welcome{To: "ops@example.com"}, jobrun.SkipOverlap()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.c.Send(ctx, jobrun.Event{Name: "month/closed", Data: map[string]string{"month": "2026-11"}}); err != nil {
		t.Fatal(err)
	}
	a.run(t)
	// Every job, with its result, progress, logs, errors and steps, as Get has it.
	all, err := a.r.List(ctx, jobrun.Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range all.Jobs {
		got, err := a.c.Get(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := a.r.Get(ctx, j.ID)
		same(t, fmt.Sprintf("Get(%d)", j.ID), got, want)
	}
	if err := a.r.Pause(ctx, "idle"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []jobrun.Filter{{}, {Queue: "mail"}, {State: jobrun.StateFailed}, {Kind: "welcome", Oldest: true},
		{Tag: "later"}, {Limit: 2}, {State: jobrun.StateDone, Oldest: true, Limit: 3}} {
		for {
			got, err := a.c.List(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			want, err := a.r.List(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			same(t, fmt.Sprintf("List(%+v)", f), got, want)
			if got.Next == "" {
				break
			}
			f.Cursor = got.Next
		}
	}
	for _, q := range []string{"", "mail", "default", "none"} {
		got, err := a.c.Counts(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := a.r.Counts(ctx, q)
		same(t, "Counts("+q+")", got, want)
	}
	gotQ, err := a.c.Queues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantQ, _ := a.r.Queues(ctx)
	same(t, "Queues", gotQ, wantQ)
	if gotQ[1].Name != "idle" || !gotQ[1].Paused || gotQ[2].Rate != 5 || gotQ[2].Burst != 2 || gotQ[2].Workers != 2 {
		t.Errorf("Queues: %+v", gotQ)
	}
	gotS, err := a.c.Schedules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantS, _ := a.r.Schedules(ctx)
	same(t, "Schedules", gotS, wantS)
	mm, err := a.c.CheckCounts(ctx)
	if err != nil || mm == nil || len(mm) != 0 {
		t.Errorf("CheckCounts: %v, %v", mm, err)
	}
}

// TestActions: the changes go through to the application's runner.
func TestActions(t *testing.T) {
	a := startApp(t)
	ctx := t.Context()
	failed, _ := a.c.Enqueue(ctx, flaky{N: 1})
	failed2, _ := a.c.Enqueue(ctx, flaky{N: 2}, client.Queue("mail"))
	later, _ := a.c.Enqueue(ctx, welcome{To: "x@example.com"}, client.Delay(time.Hour))
	a.run(t)
	state := func(id jobrun.ID) jobrun.State {
		in, err := a.r.Get(ctx, id)
		if err != nil {
			return "deleted"
		}
		return in.State
	}
	if err := a.c.Retry(ctx, failed); err != nil || state(failed) != jobrun.StateReady {
		t.Errorf("Retry: %v, %s", err, state(failed))
	}
	if err := a.c.Cancel(ctx, failed); err != nil || state(failed) != jobrun.StateCanceled {
		t.Errorf("Cancel: %v, %s", err, state(failed))
	}
	if err := a.c.Delete(ctx, failed); err != nil || state(failed) != "deleted" {
		t.Errorf("Delete: %v, %s", err, state(failed))
	}
	if err := a.c.Promote(ctx, later); err != nil || state(later) != jobrun.StateReady {
		t.Errorf("Promote: %v, %s", err, state(later))
	}
	if n, err := a.c.RetryFailed(ctx, "default"); err != nil || n != 0 {
		t.Errorf("RetryFailed(default): %d, %v", n, err)
	}
	if n, err := a.c.RetryFailed(ctx, ""); err != nil || n != 1 || state(failed2) != jobrun.StateReady {
		t.Errorf("RetryFailed: %d, %v, %s", n, err, state(failed2))
	}
	a.run(t)
	if n, err := a.c.Clean(ctx, "mail", jobrun.StateDone, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Errorf("Clean of an hour ago: %d, %v", n, err)
	}
	if n, err := a.c.Clean(ctx, "mail", jobrun.StateFailed, time.Now().Add(time.Second)); err != nil || n != 1 || state(failed2) != "deleted" {
		t.Errorf("Clean: %d, %v, %s", n, err, state(failed2))
	}
	if n, err := a.c.Clean(ctx, "", "", time.Now().Add(time.Second)); err != nil || n != 1 || state(later) != "deleted" {
		t.Errorf("Clean of all: %d, %v, %s", n, err, state(later))
	}
	if err := a.c.Pause(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	if qs, _ := a.r.Queues(ctx); qs[0].Name != "a/b" || !qs[0].Paused {
		t.Errorf("Pause(a/b): %+v", qs)
	}
	if err := a.c.Resume(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	if err := a.r.Schedule(ctx, "every hour", "@every 1h", welcome{To: "ops@example.com"}); err != nil {
		t.Fatal(err)
	}
	id, err := a.c.TriggerSchedule(ctx, "every hour")
	if in, _ := a.r.Get(ctx, id); err != nil || in.Schedule != "every hour" {
		t.Errorf("TriggerSchedule: %d, %v", id, err)
	}
	if err := a.c.PauseSchedule(ctx, "every hour"); err != nil {
		t.Fatal(err)
	}
	if s, _ := a.r.Schedules(ctx); len(s) != 1 || !s[0].Paused {
		t.Errorf("schedules after PauseSchedule: %+v", s)
	}
	if err := a.c.ResumeSchedule(ctx, "every hour"); err != nil {
		t.Fatal(err)
	}
	if s, _ := a.r.Schedules(ctx); len(s) != 1 || s[0].Paused {
		t.Errorf("schedules after ResumeSchedule: %+v", s)
	}
	if err := a.c.Unschedule(ctx, "every hour"); err != nil {
		t.Fatal(err)
	}
	if s, _ := a.r.Schedules(ctx); len(s) != 0 {
		t.Errorf("schedules after Unschedule: %v", s)
	}
}

// TestEvents: Send starts the runs of the functions on the event's name, and
// Events and GetEvent answer what the runner's do.
func TestEvents(t *testing.T) {
	a := startApp(t)
	ctx := t.Context()
	ev, err := a.c.Send(ctx, jobrun.Event{Name: "month/closed", Data: map[string]string{"month": "2026-11"}, ID: "2026-11"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Runs) != 1 || string(ev.Data) != `{"month":"2026-11"}` || ev.ID != "2026-11" {
		t.Errorf("Send: %+v", ev)
	}
	if in, err := a.r.Get(ctx, ev.Runs[0]); err != nil || in.Kind != "report" || in.Event != ev.Seq {
		t.Errorf("the run: %+v, %v", in, err)
	}
	dup, err := a.c.Send(ctx, jobrun.Event{Name: "month/closed", ID: "2026-11"})
	if err != nil || dup.DuplicateOf != ev.Seq {
		t.Errorf("a duplicate: %+v, %v", dup, err)
	}
	if _, err := a.c.Send(ctx, jobrun.Event{Name: "x", Data: []int{1}}); !errors.Is(err, jobrun.ErrInvalid) {
		t.Errorf("data that is no object: %v", err)
	}
	if _, err := a.c.Send(ctx, jobrun.Event{Name: "x", Data: func() {}}); !errors.Is(err, jobrun.ErrInvalid) {
		t.Errorf("data that does not encode: %v", err)
	}
	got, err := a.c.GetEvent(ctx, ev.Seq)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := a.r.GetEvent(ctx, ev.Seq)
	same(t, "GetEvent", got, want)
	same(t, "Send", ev, want)
	if _, err := a.c.GetEvent(ctx, 99); !errors.Is(err, jobrun.ErrNotFound) {
		t.Errorf("GetEvent(99): %v", err)
	}
	for _, f := range []jobrun.EventFilter{{}, {Name: "month/closed"}, {Oldest: true, Limit: 1}} {
		got, err := a.c.Events(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := a.r.Events(ctx, f)
		same(t, fmt.Sprintf("Events(%+v)", f), got, want)
	}
}

// TestBackup: the copy opens with every job; a dashboard that hides args refuses
// it.
func TestBackup(t *testing.T) {
	a := startApp(t)
	ctx := t.Context()
	if _, err := a.c.Enqueue(ctx, welcome{To: "ada@example.com"}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "copy.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := a.c.Backup(ctx, f)
	if err != nil || n == 0 {
		t.Fatalf("Backup: %d, %v", n, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	cp, err := jobrun.Open(path, jobrun.WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if in, err := cp.Get(ctx, 1); err != nil || in.Kind != "welcome" {
		t.Errorf("the copy's job 1: %+v, %v", in, err)
	}
	hidden := startApp(t, dashboard.WithRedactedArgs())
	var e *client.Error
	if _, err := hidden.c.Backup(ctx, &bytes.Buffer{}); !errors.As(err, &e) || e.StatusCode != 403 {
		t.Errorf("Backup of a dashboard that hides args: %v", err)
	}
}

// TestNotTheDashboard: a URL that is not a dashboard's gives an error that says
// so, not a decoding error.
func TestNotTheDashboard(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/ok/") {
			w.Write([]byte("<html>hello</html>"))
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	c, _ := client.New(srv.URL+"/jobs", client.WithHTTPClient(&http.Client{}))
	_, err := c.List(t.Context(), jobrun.Filter{})
	var e *client.Error
	if !errors.As(err, &e) || e.StatusCode != 404 || e.Code != "" ||
		!strings.Contains(err.Error(), "GET "+srv.URL+"/jobs/api/jobs: 404 Not Found: 404 page not found (is "+srv.URL+"/jobs/ the URL of a jobrun dashboard") {
		t.Errorf("a 404 of another server: %v", err)
	}
	c, _ = client.New(srv.URL+"/ok/", client.WithHTTPClient(&http.Client{}))
	if _, err := c.Queues(t.Context()); err == nil || !strings.Contains(err.Error(), "not the dashboard API's JSON") {
		t.Errorf("an HTML answer: %v", err)
	}
}

// TestMountedUnderPrefix: the client reaches a dashboard mounted under a prefix,
// with basic authentication from the URL.
func TestMountedUnderPrefix(t *testing.T) {
	a := startApp(t)
	mux := http.NewServeMux()
	dash := dashboard.New(a.r, dashboard.WithBasicAuth("admin", "pw"), dashboard.WithActions(), dashboard.WithEnqueue())
	mux.Handle("/admin/jobs/", http.StripPrefix("/admin/jobs", dash))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c, err := client.New(strings.Replace(srv.URL, "http://", "http://admin:pw@", 1)+"/admin/jobs", client.WithHTTPClient(&http.Client{}))
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.Enqueue(t.Context(), welcome{To: "ada@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if in, err := c.Get(t.Context(), id); err != nil || in.Kind != "welcome" {
		t.Errorf("Get: %+v, %v", in, err)
	}
}
