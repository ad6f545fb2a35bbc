package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/jobrun/jobrun"
)

// bulkAnswer is the API's answer to a bulk action.
type bulkAnswer struct {
	OK bool `json:"ok"`
	bulkResult
}

// postBulkJSON posts a JSON bulk request to /api/jobs/bulk as a script would.
func postBulkJSON(t *testing.T, h http.Handler, req bulkRequest, want int) (bulkAnswer, string) {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/api/jobs/bulk", bytes.NewReader(b))
	r.Host = testHost
	r.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != want {
		t.Fatalf("POST /api/jobs/bulk %+v: status %d, want %d\n%s", req, rec.Code, want, rec.Body)
	}
	var res bulkAnswer
	if want == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
	}
	return res, rec.Body.String()
}

// TestBulkIDs runs bulk actions on selected jobs through the form and the API, and
// checks the counts of the jobs done and skipped, and why.
func TestBulkIDs(t *testing.T) {
	f, h := populated(t, WithActions())
	ids := func(names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, idStr(f.ids[n]))
		}
		return out
	}

	// The form: two failed jobs retried, a ready one and a missing one skipped.
	form := url.Values{"action": {"retry"}, "ids": append(ids("failed", "flaky", "ready"), "99999"), "return": {"jobs?state=failed"}}
	res, body := post(t, h, "/jobs/bulk", form)
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "../jobs?state=failed&") {
		t.Fatalf("bulk retry: status %d to %q\n%s", res.StatusCode, loc, body)
	}
	u, _ := url.Parse(loc)
	q := u.Query()
	if q.Get("done") != "bulk" || q.Get("bulk") != "retry" || q.Get("n") != "2" || q.Get("skipped") != "2" ||
		q.Get("skipped_state") != "1" || q.Get("skipped_not_found") != "1" {
		t.Errorf("bulk retry redirected to %q", loc)
	}
	page := get(t, h, strings.TrimPrefix(loc, ".."), http.StatusOK)
	contains(t, "list after bulk retry", page,
		"2 jobs will run again; 2 skipped (1 not in a state that allows it, 1 no longer there).")
	f.mustState(t, f.ids["failed"], jobrun.StateReady)
	f.mustState(t, f.ids["flaky"], jobrun.StateReady)
	f.mustState(t, f.ids["ready"], jobrun.StateReady)

	// The API, with JSON: two waiting jobs canceled, a done one skipped.
	var want []jobrun.ID
	for _, n := range []string{"scheduled", "retrying", "done"} {
		want = append(want, f.ids[n])
	}
	got, _ := postBulkJSON(t, h, bulkRequest{Action: "cancel", IDs: want}, http.StatusOK)
	if !got.OK || got.Action != "cancel" || got.Done != 2 || got.Skipped != 1 ||
		got.Reasons[skipState] != 1 || got.Next != "" {
		t.Errorf("bulk cancel answered %+v", got)
	}
	f.mustState(t, f.ids["scheduled"], jobrun.StateCanceled)
	f.mustState(t, f.ids["retrying"], jobrun.StateCanceled)
	f.mustState(t, f.ids["done"], jobrun.StateDone)

	// The API with a form: delete and promote.
	var del bulkAnswer
	postJSON(t, h, "/api/jobs/bulk", url.Values{"action": {"delete"}, "ids": ids("scheduled", "retrying")}, http.StatusOK, &del)
	if del.Done != 2 || del.Skipped != 0 {
		t.Errorf("bulk delete answered %+v", del)
	}
	for _, n := range []string{"scheduled", "retrying"} {
		if _, err := f.r.Get(t.Context(), f.ids[n]); err == nil {
			t.Errorf("job %s was not deleted", n)
		}
	}
	id, err := f.r.Enqueue(t.Context(), okArgs{To: "later@example.com"}, jobrun.Queue("idle"), jobrun.Delay(1<<40))
	if err != nil {
		t.Fatal(err)
	}
	got, _ = postBulkJSON(t, h, bulkRequest{Action: "promote", IDs: []jobrun.ID{id, f.ids["done"]}}, http.StatusOK)
	if got.Done != 1 || got.Reasons[skipState] != 1 {
		t.Errorf("bulk promote answered %+v", got)
	}
	f.mustState(t, id, jobrun.StateReady)
}

// TestBulkAllMatching runs bulk actions on every job a filter matches, walked on
// the server a page at a time, and over several requests when more match than one
// takes.
func TestBulkAllMatching(t *testing.T) {
	f, h := populated(t, WithActions())
	batch := make([]jobrun.Args, 25)
	for i := range batch {
		batch[i] = okArgs{To: "many@example.com"}
	}
	if _, err := f.r.EnqueueMany(t.Context(), batch, jobrun.Queue("idle")); err != nil {
		t.Fatal(err)
	}
	counts := func(queue string) map[jobrun.State]int {
		c, err := f.r.Counts(t.Context(), queue)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// One request, with the bound lowered: 10 jobs walked a request, in pages of 4.
	maxBulkMatching, bulkPage = 10, 4
	t.Cleanup(func() { maxBulkMatching, bulkPage = 10_000, 1000 })
	req := bulkRequest{Action: "cancel", All: true, Filter: bulkFilter{Queue: "idle"}}
	total := 0
	for n := 1; ; n++ {
		got, _ := postBulkJSON(t, h, req, http.StatusOK)
		total += got.Done
		if got.Skipped != 0 {
			t.Errorf("request %d skipped %d ready jobs", n, got.Skipped)
		}
		if got.Next == "" {
			break
		}
		if n > 5 {
			t.Fatal("the walk never ends")
		}
		req.Cursor = got.Next
	}
	if c := counts("idle"); total != 26 || c[jobrun.StateCanceled] != 26 || c[jobrun.StateReady] != 0 {
		t.Errorf("canceled %d of idle's 26 ready jobs; counts now %v", total, c)
	}

	// The form goes on where the walk stopped: the list carries the cursor.
	form := url.Values{"action": {"delete"}, "all": {"true"}, "queue": {"idle"}, "state": {"canceled"},
		"return": {"queues/idle?state=canceled"}}
	res, _ := post(t, h, "/jobs/bulk", form)
	loc := res.Header.Get("Location")
	u, _ := url.Parse(loc)
	resume := u.Query().Get("resume")
	if res.StatusCode != http.StatusSeeOther || resume == "" || u.Query().Get("n") != "10" {
		t.Fatalf("bulk delete of all matching: status %d to %q", res.StatusCode, loc)
	}
	page := get(t, h, "/queues/idle?"+u.RawQuery, http.StatusOK)
	contains(t, "list after a partial bulk delete", page, "10 jobs deleted.", "submit “all matching” again to go on",
		`<input type="hidden" name="cursor" value="`+resume+`">`)
	maxBulkMatching, bulkPage = 10_000, 1000
	form.Set("cursor", resume)
	res, _ = post(t, h, "/jobs/bulk", form)
	u, _ = url.Parse(res.Header.Get("Location"))
	if u.Query().Get("n") != "16" || u.Query().Get("resume") != "" {
		t.Errorf("the rest of the bulk delete: redirected to %s", u)
	}
	if c := counts("idle"); c[jobrun.StateCanceled] != 0 {
		t.Errorf("idle still holds %d canceled jobs", c[jobrun.StateCanceled])
	}

	// All matching a filter by kind, skipping what the state does not allow.
	got, _ := postBulkJSON(t, h, bulkRequest{Action: "retry", All: true, Filter: bulkFilter{Kind: "crm.sync"}}, http.StatusOK)
	if got.Done != 0 || got.Skipped != 1 || got.Reasons[skipState] != 1 {
		t.Errorf("retry of every crm.sync job (one retrying): %+v", got)
	}
	got, _ = postBulkJSON(t, h, bulkRequest{Action: "retry", All: true, Filter: bulkFilter{State: jobrun.StateFailed}}, http.StatusOK)
	if got.Done != 2 {
		t.Errorf("retry of every failed job: %+v", got)
	}
	if c := counts(""); c[jobrun.StateFailed] != 0 {
		t.Errorf("%d failed jobs left", c[jobrun.StateFailed])
	}
}

// TestBulkAllBoundedPages: a walk of all matching stops after maxBulkPages List
// pages, however few jobs they held (a filter by kind or tag reads up to the
// runner's scan budget for each page without filling it), and says where to go on.
func TestBulkAllBoundedPages(t *testing.T) {
	f, h := populated(t, WithActions())
	batch := make([]jobrun.Args, 25)
	for i := range batch {
		batch[i] = okArgs{To: "many@example.com"}
	}
	if _, err := f.r.EnqueueMany(t.Context(), batch, jobrun.Queue("idle")); err != nil {
		t.Fatal(err)
	}
	maxBulkMatching, bulkPage, maxBulkPages = 100, 4, 2
	t.Cleanup(func() { maxBulkMatching, bulkPage, maxBulkPages = 10_000, 1000, 20 })
	req := bulkRequest{Action: "cancel", All: true, Filter: bulkFilter{Queue: "idle"}}
	got, _ := postBulkJSON(t, h, req, http.StatusOK)
	if got.Done != 8 || got.Next == "" {
		t.Fatalf("first request: %d canceled, next %q; want 8 (2 pages of 4) and a cursor", got.Done, got.Next)
	}
	total := got.Done
	for n := 0; got.Next != ""; n++ {
		if n > 5 {
			t.Fatal("the walk never ends")
		}
		req.Cursor = got.Next
		got, _ = postBulkJSON(t, h, req, http.StatusOK)
		total += got.Done
	}
	if total != 26 {
		t.Errorf("canceled %d of idle's 26 ready jobs", total)
	}
}

func TestBulkRefusals(t *testing.T) {
	f, h := populated(t, WithActions())
	failed := idStr(f.ids["failed"])
	for _, tc := range []struct {
		form url.Values
		msg  string
	}{
		{url.Values{"action": {"frobnicate"}, "ids": {failed}}, "want retry, cancel, delete or promote"},
		{url.Values{"action": {"retry"}}, "no jobs selected"},
		{url.Values{"action": {"retry"}, "ids": {"x"}}, "not a job ID"},
		{url.Values{"action": {"retry"}, "all": {"true"}, "state": {"bogus"}}, "unknown state"},
		{url.Values{"action": {"retry"}, "ids": strings.Split(strings.Repeat("1,", maxBulkIDs+1), ",")[:maxBulkIDs+1]}, "at most 1000"},
	} {
		var e apiError
		postJSON(t, h, "/api/jobs/bulk", tc.form, http.StatusBadRequest, &e)
		if !strings.Contains(e.Error, tc.msg) {
			t.Errorf("bulk %v: error %q, want it to mention %q", tc.form, e.Error, tc.msg)
		}
	}
	_, body := postBulkJSON(t, h, bulkRequest{Action: "retry", IDs: []jobrun.ID{1}, Filter: bulkFilter{Queue: "x"}}, http.StatusOK)
	if !strings.Contains(body, `"skipped_reasons"`) {
		t.Errorf("answer without skipped_reasons: %s", body)
	}
	b := bytes.NewBufferString(`{"action":"retry","idz":[1]}`)
	r := httptest.NewRequest(http.MethodPost, "/api/jobs/bulk", b)
	r.Host, r.Header["Content-Type"] = testHost, []string{"application/json"}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "idz") {
		t.Errorf("unknown JSON field: status %d %s", rec.Code, rec.Body)
	}

	// Read-only, and cross-origin: refused before anything is read.
	ro := New(f.r)
	for _, target := range []string{"/jobs/bulk", "/api/jobs/bulk"} {
		res, _ := post(t, ro, target, url.Values{"action": {"retry"}, "ids": {failed}})
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("read-only %s: status %d, want 403", target, res.StatusCode)
		}
		res, _ = do(t, h, http.MethodPost, target, url.Values{"action": {"retry"}, "ids": {failed}}, "Sec-Fetch-Site", "cross-site")
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("cross-origin %s: status %d, want 403", target, res.StatusCode)
		}
	}
	f.mustState(t, f.ids["failed"], jobrun.StateFailed)
	// The list offers the form only with actions.
	contains(t, "list with actions", get(t, h, "/jobs", http.StatusOK), `<form id="bulk"`, `name="ids" value="`+failed+`" form="bulk"`)
	lacks(t, "read-only list", get(t, ro, "/jobs", http.StatusOK), `id="bulk"`, `name="ids"`)
}

// TestRetryDoneConfirm checks that retrying a done job asks first on the form
// routes, with a page whose button posts the same form confirmed, and never on the
// API routes.
func TestRetryDoneConfirm(t *testing.T) {
	f, h := populated(t, WithActions())
	done := idStr(f.ids["done"])
	contains(t, "done job", get(t, h, "/jobs/"+done, http.StatusOK),
		`<form method="post" action="jobs/`+done+`/retry" data-confirm="Job #`+done+` succeeded. Run it again?">`)
	lacks(t, "failed job", get(t, h, "/jobs/"+idStr(f.ids["failed"]), http.StatusOK), `succeeded. Run it again?`)

	res, body := post(t, h, "/jobs/"+done+"/retry", url.Values{"return": {"jobs?state=done"}})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("retry of a done job: status %d, want 200 (a question)", res.StatusCode)
	}
	contains(t, "question", body, `<p id="confirm-question">Job #`+done+` (email.send) succeeded. Run it again?</p>`,
		`<form method="post" action="jobs/`+done+`/retry">`, `<input type="hidden" name="return" value="jobs?state=done">`,
		`<input type="hidden" name="confirm" value="1">`, `<a class="btn" href="jobs?state=done" id="confirm-no">`, `<base href="../../">`)
	f.mustState(t, f.ids["done"], jobrun.StateDone)
	res, _ = post(t, h, "/jobs/"+done+"/retry", url.Values{"return": {"jobs?state=done"}, "confirm": {"1"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirmed retry: status %d", res.StatusCode)
	}
	f.mustState(t, f.ids["done"], jobrun.StateReady)

	// A failed job is not asked about; the API never asks.
	if res, _ := post(t, h, "/jobs/"+idStr(f.ids["failed"])+"/retry", nil); res.StatusCode != http.StatusSeeOther {
		t.Errorf("retry of a failed job: status %d, want 303", res.StatusCode)
	}
	other := f.mustState(t, f.ids["flaky"], jobrun.StateFailed)
	var ok actionResult
	postJSON(t, h, "/api/jobs/"+idStr(other.ID)+"/retry", nil, http.StatusOK, &ok)

	// A bulk retry asks when a selected job is done, or a filter may match done jobs.
	if err := f.r.RunUntilIdle(t.Context()); err != nil && !errors.Is(err, jobrun.ErrNoWorkers) {
		t.Fatal(err)
	}
	f.mustState(t, f.ids["done"], jobrun.StateDone)
	form := url.Values{"action": {"retry"}, "ids": {done, idStr(f.ids["canceled"])}}
	res, body = post(t, h, "/jobs/bulk", form)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("bulk retry with a done job: status %d", res.StatusCode)
	}
	contains(t, "bulk question", body, "Retry the 2 selected jobs? 1 of them succeeded (done) and will run again.",
		`<input type="hidden" name="ids" value="`+done+`">`, `<input type="hidden" name="action" value="retry">`)
	res, body = post(t, h, "/jobs/bulk", url.Values{"action": {"retry"}, "all": {"true"}})
	contains(t, "bulk question for all", body, "Done jobs among them, which succeeded, will run again.")
	for _, form := range []url.Values{
		{"action": {"retry"}, "all": {"true"}, "state": {"failed"}},
		{"action": {"retry"}, "ids": {idStr(f.ids["canceled"])}},
		{"action": {"delete"}, "ids": {done}},
	} {
		if res, _ := post(t, h, "/jobs/bulk", form); res.StatusCode != http.StatusSeeOther {
			t.Errorf("bulk %v: status %d, want 303 without a question", form, res.StatusCode)
		}
	}
}

// TestBulkFormRouteJSON: JSON posted to the form route is read once, whether or
// not the route asks first: the question is for browsers' forms, which send none.
func TestBulkFormRouteJSON(t *testing.T) {
	f, h := populated(t, WithActions())
	for _, tc := range []struct {
		action, job string
		want        jobrun.State
	}{
		{"cancel", "scheduled", jobrun.StateCanceled},
		{"retry", "failed", jobrun.StateReady},
	} {
		body := `{"action": "` + tc.action + `", "ids": [` + idStr(f.ids[tc.job]) + `]}`
		res, page := doBody(t, h, http.MethodPost, "/jobs/bulk", strings.NewReader(body), "application/json",
			"Sec-Fetch-Site", "same-origin")
		if res.StatusCode != http.StatusSeeOther {
			t.Errorf("bulk %s as JSON on the form route: status %d, want 303\n%s", tc.action, res.StatusCode, page)
		}
		f.mustState(t, f.ids[tc.job], tc.want)
	}
}

// TestBulkJSONTooLarge: a JSON bulk body over the limit of an action's body is 413
// too_large, as for POST /api/jobs, not a malformed request.
func TestBulkJSONTooLarge(t *testing.T) {
	_, h := populated(t, WithActions())
	body := `{"action": "retry", "ids": [` + strings.Repeat("1, ", maxFormSize/3) + `1]}`
	res, answer := postBody(t, h, "/api/jobs/bulk", body)
	mustAPIError(t, "bulk over the limit", res, answer, http.StatusRequestEntityTooLarge, "too_large", "over the limit")
}
