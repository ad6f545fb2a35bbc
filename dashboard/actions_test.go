package dashboard

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/jobrun/jobrun"
)

// post sends an action to h as a same-origin browser would, and returns the status
// and body.
func post(t *testing.T, h http.Handler, target string, form url.Values, header ...string) (*http.Response, string) {
	t.Helper()
	if form == nil {
		form = url.Values{}
	}
	return do(t, h, http.MethodPost, target, form, append([]string{"Sec-Fetch-Site", "same-origin"}, header...)...)
}

// TestJobActions runs every job action through its form route and its API route.
func TestJobActions(t *testing.T) {
	for _, api := range []bool{false, true} {
		name := map[bool]string{false: "form", true: "api"}[api]
		t.Run(name, func(t *testing.T) {
			f, h := populated(t, WithActions())
			prefix := map[bool]string{false: "", true: "/api"}[api]
			cases := []struct {
				job, action string
				want        jobrun.State // "" for deleted
				next        string       // where the form route redirects
				notice      string
			}{
				{"failed", "retry", jobrun.StateReady, "../../jobs/%d?done=retry&job=%d", "Job #%d will run again."},
				{"scheduled", "promote", jobrun.StateReady, "../../jobs/%d?done=promote&job=%d", "Job #%d is ready to run now."},
				{"retrying", "cancel", jobrun.StateCanceled, "../../jobs/%d?done=cancel&job=%d", "Job #%d: canceled"},
				{"canceled", "delete", "", "../../queues/mail?done=delete&job=%d", "Job #%d deleted."},
			}
			for _, tc := range cases {
				id := f.ids[tc.job]
				res, body := post(t, h, prefix+"/jobs/"+idStr(id)+"/"+tc.action, nil)
				if api {
					if res.StatusCode != http.StatusOK {
						t.Fatalf("%s %s: status %d\n%s", tc.action, tc.job, res.StatusCode, body)
					}
					var got actionResult
					if err := json.Unmarshal([]byte(body), &got); err != nil {
						t.Fatal(err)
					}
					if !got.OK || (tc.want != "" && (got.Job == nil || got.Job.ID != id || got.Job.State != tc.want)) {
						t.Errorf("%s %s answered %s", tc.action, tc.job, body)
					}
				} else {
					loc := res.Header.Get("Location")
					want := strings.ReplaceAll(tc.next, "%d", idStr(id))
					if res.StatusCode != http.StatusSeeOther || loc != want {
						t.Fatalf("%s %s: status %d to %q, want 303 to %q\n%s", tc.action, tc.job, res.StatusCode, loc, want, body)
					}
					// The page redirected to shows what happened.
					page := get(t, h, strings.TrimPrefix(strings.TrimPrefix(loc, "../.."), ""), http.StatusOK)
					contains(t, "page after "+tc.action, page, strings.ReplaceAll(tc.notice, "%d", idStr(id)))
				}
				if tc.want == "" {
					if _, err := f.r.Get(t.Context(), id); err == nil {
						t.Errorf("job %d still exists after delete", id)
					}
					continue
				}
				f.mustState(t, id, tc.want)
			}
		})
	}
}

func TestQueueAndScheduleActions(t *testing.T) {
	f, h := populated(t, WithActions())
	ctx := t.Context()

	// Pause and resume, through the form and the API.
	res, _ := post(t, h, "/queues/mail/pause", url.Values{"return": {"./"}})
	if loc := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || loc != "../.././?done=pause" {
		t.Errorf("pause: status %d to %q", res.StatusCode, loc)
	}
	if p, _ := queueIsPaused(ctx, f.r, "mail"); !p {
		t.Error("mail is not paused")
	}
	body := get(t, h, "/?done=pause", http.StatusOK)
	contains(t, "overview after pause", body, `Queue paused`, `<a href="queues/mail">mail</a> <span class="badge paused">paused</span>`)
	var ok actionResult
	postJSON(t, h, "/api/queues/mail/resume", nil, http.StatusOK, &ok)
	if p, _ := queueIsPaused(ctx, f.r, "mail"); p || !ok.OK {
		t.Errorf("mail is paused after resume (answer %+v)", ok)
	}

	// Retry failed: the default queue's one, then the rest.
	var n actionResult
	postJSON(t, h, "/api/queues/default/retry-failed", nil, http.StatusOK, &n)
	if n.Count == nil || *n.Count != 1 {
		t.Errorf("retry-failed of default: count %v, want 1", n.Count)
	}
	f.mustState(t, f.ids["failed"], jobrun.StateReady)
	f.mustState(t, f.ids["flaky"], jobrun.StateFailed)
	res, _ = post(t, h, "/retry-failed", nil)
	if loc := res.Header.Get("Location"); loc != "./jobs?state=ready&done=retry-failed&n=1" {
		t.Errorf("retry-failed of all: to %q", loc)
	}
	contains(t, "list after retry-failed", get(t, h, "/jobs?state=ready&done=retry-failed&n=1", http.StatusOK), "1 failed jobs will run again.")
	f.mustState(t, f.ids["flaky"], jobrun.StateReady)

	// Clean: done jobs of mail older than a day (none), then all of them.
	postJSON(t, h, "/api/queues/mail/clean", url.Values{"state": {"done"}, "older_than": {"24h"}}, http.StatusOK, &n)
	if *n.Count != 0 {
		t.Errorf("clean of day-old done jobs: %d deleted, want 0", *n.Count)
	}
	done, _ := f.r.Counts(ctx, "mail")
	postJSON(t, h, "/api/queues/mail/clean", url.Values{"state": {"done"}}, http.StatusOK, &n)
	if *n.Count != done[jobrun.StateDone] || *n.Count == 0 {
		t.Errorf("clean of done jobs: %d deleted, want %d", *n.Count, done[jobrun.StateDone])
	}
	postJSON(t, h, "/api/clean", nil, http.StatusOK, &n) // the canceled one
	if *n.Count != 1 {
		t.Errorf("clean of every finished job: %d deleted, want 1", *n.Count)
	}

	// Run a schedule now, then remove it.
	res, _ = post(t, h, "/schedules/digest/run", nil)
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "../../schedules?done=run&job=") {
		t.Fatalf("run schedule: status %d to %q", res.StatusCode, loc)
	}
	id, _ := parseID(loc[strings.LastIndexByte(loc, '=')+1:])
	in := f.mustState(t, id, jobrun.StateReady)
	if in.Schedule != "digest" {
		t.Errorf("the job run now has schedule %q, want digest", in.Schedule)
	}
	contains(t, "schedules after run", get(t, h, "/schedules?done=run&job="+idStr(id), http.StatusOK), "Schedule run now: job #"+idStr(id)+" enqueued.")
	var run actionResult
	postJSON(t, h, "/api/schedules/digest/run", nil, http.StatusOK, &run)
	if run.ID == 0 || run.Job == nil || run.Job.ID != run.ID {
		t.Errorf("API run answered %+v", run)
	}
	postJSON(t, h, "/api/schedules/digest/delete", nil, http.StatusOK, &ok)
	if s, _ := f.r.Schedules(ctx); len(s) != 1 || s[0].Name != "monthly-report" {
		t.Errorf("schedules after removing digest: %v", s)
	}
}

func TestActionErrors(t *testing.T) {
	f, h := populated(t, WithActions())
	for _, tc := range []struct {
		target string
		form   url.Values
		code   int
		msg    string
	}{
		{"/api/jobs/" + idStr(f.ids["ready"]) + "/retry", nil, http.StatusConflict, "is not in a state"},
		{"/api/jobs/" + idStr(f.ids["done"]) + "/cancel", nil, http.StatusConflict, "is not in a state"},
		{"/api/jobs/" + idStr(f.ids["done"]) + "/promote", nil, http.StatusConflict, "only scheduled and retrying"},
		{"/api/jobs/99999/retry", nil, http.StatusNotFound, "not found"},
		{"/api/jobs/abc/delete", nil, http.StatusNotFound, "not a job ID"},
		{"/api/jobs/1/frobnicate", nil, http.StatusNotFound, "no such API route"},
		{"/api/clean", url.Values{"state": {"ready"}}, http.StatusBadRequest, "not a finished state"},
		{"/api/clean", url.Values{"older_than": {"-1h"}}, http.StatusBadRequest, "older_than"},
		{"/api/schedules/nope/run", nil, http.StatusNotFound, "not found"},
		{"/api/queues/" + url.PathEscape("a\x01b") + "/pause", nil, http.StatusBadRequest, "control character"},
	} {
		var e apiError
		postJSON(t, h, tc.target, tc.form, tc.code, &e)
		if !strings.Contains(e.Error, tc.msg) {
			t.Errorf("POST %s: error %q, want it to mention %q", tc.target, e.Error, tc.msg)
		}
	}
	// The form route shows the error as a page.
	res, body := post(t, h, "/jobs/"+idStr(f.ids["ready"])+"/retry", nil)
	if res.StatusCode != http.StatusConflict || !strings.Contains(body, "<h1>409 Conflict</h1>") {
		t.Errorf("form retry of a ready job: status %d\n%s", res.StatusCode, body)
	}
	// A return page elsewhere is ignored.
	for _, ret := range []string{"https://evil.example/", "//evil.example/x", "/etc", "../../x", `\\evil.example`, "javascript:alert(1)"} {
		res, _ := post(t, h, "/jobs/"+idStr(f.ids["failed"])+"/retry", url.Values{"return": {ret}})
		if loc := res.Header.Get("Location"); !strings.HasPrefix(loc, "../../jobs/") {
			t.Errorf("return %q: redirected to %q", ret, loc)
		}
		if err := f.r.Cancel(t.Context(), f.ids["failed"]); err != nil { // back to a finished state
			t.Fatal(err)
		}
	}
}

func TestSafeReturn(t *testing.T) {
	for s, want := range map[string]bool{
		"./": true, "jobs?state=failed": true, "queues/mail?state=done&cursor=AAAB": true, "queues/a%2Fb": true,
		"queues/a:b": true, "jobs:x": false, "mailto:x@example.com": false,
		"": false, "/": false, "//evil.example": false, "https://evil.example": false, "javascript:alert(1)": false,
		"../x": false, `\evil`: false, "jobs#x": false,
	} {
		if got := safeReturn(s); got != want {
			t.Errorf("safeReturn(%q) = %v, want %v", s, got, want)
		}
	}
}

// postJSON posts form to an API route and decodes the answer.
func postJSON(t *testing.T, h http.Handler, target string, form url.Values, want int, v any) {
	t.Helper()
	res, body := post(t, h, target, form)
	if res.StatusCode != want {
		t.Fatalf("POST %s: status %d, want %d\n%s", target, res.StatusCode, want, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("POST %s: Content-Type %q", target, ct)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("POST %s: %v\n%s", target, err, body)
	}
}

// TestEveryActionRoute posts to each action's form and API route and checks that it
// reaches its action: the answer is the action's, not the catch-all's 404.
func TestEveryActionRoute(t *testing.T) {
	f, h := populated(t, WithActions())
	for _, a := range actions {
		target := strings.NewReplacer("{id}", idStr(f.ids["done"]), "{queue}", "mail", "{name}", "digest").Replace(a.pattern)
		var form url.Values
		if a.name == "bulk" {
			form = url.Values{"action": {"promote"}, "ids": {idStr(f.ids["scheduled"])}}
		}
		for _, prefix := range []string{"", "/api"} {
			res, body := post(t, h, prefix+target, form)
			if prefix == "" && res.StatusCode == http.StatusOK && strings.Contains(body, `id="confirm-question"`) {
				continue // retry of a done job asks first
			}
			if strings.Contains(body, "page not found") || strings.Contains(body, "no such API route") || res.StatusCode >= 500 {
				t.Errorf("POST %s%s (%s): status %d\n%s", prefix, target, a.name, res.StatusCode, body)
			}
			if prefix == "" && res.StatusCode != http.StatusSeeOther && res.StatusCode != http.StatusConflict && res.StatusCode != http.StatusNotFound {
				t.Errorf("POST %s (%s): status %d, want a redirect or the runner's refusal", target, a.name, res.StatusCode)
			}
		}
	}
}
