package dashboard

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/jobrun/jobrun"
)

// testHost is the Host of the tests' requests unless they give one: a loopback
// name, as a browser on the dashboard's machine sends (httptest.NewRequest's own
// default, "example.com", is a name the dashboard refuses without authentication).
const testHost = "localhost"

// do sends a request to h and returns the response with its body read. header holds
// name and value pairs; a "Host" pair sets the request's Host (testHost otherwise).
func do(t *testing.T, h http.Handler, method, target string, form url.Values, header ...string) (*http.Response, string) {
	t.Helper()
	if form == nil {
		return doBody(t, h, method, target, nil, "", header...)
	}
	return doBody(t, h, method, target, strings.NewReader(form.Encode()), "application/x-www-form-urlencoded", header...)
}

// doBody is do with a body of Content-Type ctype ("" for none), which header may
// set otherwise.
func doBody(t *testing.T, h http.Handler, method, target string, body io.Reader, ctype string, header ...string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, target, body)
	req.Host = testHost
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if http.CanonicalHeaderKey(header[i]) == "Host" {
			req.Host = header[i+1]
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

// get fetches target and fails the test unless it answers want.
func get(t *testing.T, h http.Handler, target string, want int) string {
	t.Helper()
	res, body := do(t, h, http.MethodGet, target, nil)
	if res.StatusCode != want {
		t.Fatalf("GET %s: status %d, want %d\n%s", target, res.StatusCode, want, body)
	}
	return body
}

// getJSON fetches target, checks the status and decodes the answer into v.
func getJSON(t *testing.T, h http.Handler, target string, want int, v any) {
	t.Helper()
	res, body := do(t, h, http.MethodGet, target, nil)
	if res.StatusCode != want {
		t.Fatalf("GET %s: status %d, want %d\n%s", target, res.StatusCode, want, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("GET %s: Content-Type %q", target, ct)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v\n%s", target, err, body)
	}
}

func contains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q", what, sub)
		}
	}
}

func lacks(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			t.Errorf("%s contains %q", what, sub)
		}
	}
}

// populated returns a fixture with its jobs and the dashboard of its runner.
func populated(t *testing.T, opts ...Option) (*fixture, http.Handler) {
	t.Helper()
	f := openFixture(t)
	h := New(f.r, opts...)
	f.populate(t)
	return f, h
}

func TestOverviewPage(t *testing.T) {
	_, h := populated(t)
	res, body := do(t, h, http.MethodGet, "/", nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d\n%s", res.StatusCode, body)
	}
	for k, want := range map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Content-Security-Policy": contentSecurityPolicy,
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Cache-Control":           "no-store",
	} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	contains(t, "overview", body,
		`<base href="./">`,
		`<a href="queues/mail">mail</a>`,
		`<a href="queues/idle">idle</a>`,
		`<a href="queues/paused">paused</a> <span class="badge paused">paused</span>`,
		`<a href="queues/default?state=failed" data-state="failed">1</a>`,
		`50/s, burst 10`, // mail's limiter
		`1 per 2s, burst 1`,
		`unlimited`,
		`title="this process does not run the queue"`, // idle
		`<svg class="chart"`,
		`<a href="schedules">2 schedules</a>`,
		`data-refresh="2000"`,
		`read-only`,
	)
	lacks(t, "read-only overview", body, `method="post"`)
}

func TestJobsPage(t *testing.T) {
	f, h := populated(t)
	body := get(t, h, "/queues/default?state=failed", http.StatusOK)
	contains(t, "failed list", body,
		`<base href="../">`,
		`Queue <span class="qname">default</span>`,
		`<a href="jobs/`+idStr(f.ids["failed"])+`">#`+idStr(f.ids["failed"])+`</a>`,
		`aria-current="page" class="tab state-failed">failed <span class="n">1</span>`,
		`panic: assignment to entry in nil map`,
	)
	lacks(t, "failed list", body, `href="jobs/`+idStr(f.ids["retrying"])+`"`)

	// Every queue, newest first.
	body = get(t, h, "/jobs", http.StatusOK)
	if i, j := strings.Index(body, `data-id="`+idStr(f.ids["paused"])+`"`), strings.Index(body, `data-id="`+idStr(f.ids["done"])+`"`); i < 0 || j < 0 || i > j {
		t.Errorf("the newer job %d is not listed before the older %d", f.ids["paused"], f.ids["done"])
	}
	contains(t, "all jobs", body, `<a href="queues/idle">idle</a>`, `<span class="tag">customer-42</span>`)

	// Search by kind and tag.
	body = get(t, h, "/jobs?kind=crm.sync", http.StatusOK)
	contains(t, "kind search", body, `data-id="`+idStr(f.ids["retrying"])+`"`)
	lacks(t, "kind search", body, `data-id="`+idStr(f.ids["done"])+`"`)
	body = get(t, h, "/jobs?tag=customer-42", http.StatusOK)
	contains(t, "tag search", body, `data-id="`+idStr(f.ids["done"])+`"`)
	lacks(t, "tag search", body, `data-id="`+idStr(f.ids["failed"])+`"`)

	// Search by ID: the job's page, or a message.
	res, _ := do(t, h, http.MethodGet, "/queues/mail?id="+idStr(f.ids["failed"]), nil)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "../jobs/"+idStr(f.ids["failed"]) {
		t.Errorf("search by ID: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	body = get(t, h, "/jobs?id=99999", http.StatusOK)
	contains(t, "missing ID", body, `No job has the ID 99999.`)

	// Pagination: one job a page would need the API's limit; the pages use 50, so
	// make the cursor come from the API and follow it on a page.
	var p pageJSON
	getJSON(t, h, "/api/jobs?limit=2", http.StatusOK, &p)
	if len(p.Jobs) != 2 || p.Next == "" {
		t.Fatalf("first API page: %d jobs, next %q", len(p.Jobs), p.Next)
	}
	body = get(t, h, "/jobs?cursor="+url.QueryEscape(p.Next), http.StatusOK)
	contains(t, "second page", body, `id="first-page"`)
	lacks(t, "second page", body, `data-id="`+idStr(p.Jobs[0].ID)+`"`, `data-id="`+idStr(p.Jobs[1].ID)+`"`)
	get(t, h, "/jobs?state=bogus", http.StatusBadRequest)
}

func TestJobPage(t *testing.T) {
	f, h := populated(t)
	failed := f.mustState(t, f.ids["failed"], jobrun.StateFailed)
	body := get(t, h, "/jobs/"+idStr(failed.ID), http.StatusOK)
	contains(t, "failed job", body,
		`<base href="../">`,
		`<span id="job-state" class="badge state-failed" data-state="failed">failed</span>`,
		`<a href="queues/default">default</a>`,
		"&#34;image&#34;: &#34;uploads/IMG_0042.jpg&#34;", // indented JSON, escaped
		`panic: assignment to entry in nil map`,
		`<pre class="stack">`, "goroutine ", // the stack
		`decoding uploads/IMG_0042.jpg`, // the log
		`<strong>enqueued</strong>`, `<strong>attempt 1 failed</strong>`, `<strong>failed</strong>`,
		// Absolute times in UTC, which dashboard.js writes in the browser's zone.
		`<time datetime="`+machine(failed.CreatedAt)+`" title="`+absolute(failed.CreatedAt)+`" data-local="s">`+absolute(failed.CreatedAt)+`</time>`,
		`<time datetime="`+machine(failed.Logs[0].At)+`" title="`+absolute(failed.Logs[0].At)+`" data-local="ms">`+milli(failed.Logs[0].At)+`</time>`,
	)

	body = get(t, h, "/jobs/"+idStr(f.ids["done"]), http.StatusOK)
	contains(t, "done job", body,
		`<progress value="4" max="4">100%</progress> <span>4 of 4 (100%)</span>`,
		"&#34;message_id&#34;: &#34;7F3A2&#34;",
		`250 OK: queued as 7F3A2`,
		`<a class="tag" href="jobs?tag=customer-42">customer-42</a>`,
		`<dt>Priority</dt><dd>5</dd>`,
		`<tr data-attempt="1" data-outcome="done">`,
	)

	body = get(t, h, "/jobs/"+idStr(f.ids["retrying"]), http.StatusOK)
	contains(t, "retrying job", body, `<strong>next attempt due</strong>`, `crm answered 503`)

	get(t, h, "/jobs/99999", http.StatusNotFound)
	body = get(t, h, "/jobs/abc", http.StatusNotFound)
	contains(t, "bad ID", body, `<h1>404 Not Found</h1>`)
}

func TestSchedulesPage(t *testing.T) {
	_, h := populated(t)
	body := get(t, h, "/schedules", http.StatusOK)
	contains(t, "schedules", body,
		`<td class="name">monthly-report</td>`, `<code>0 6 1 * *</code>`, `<td>Europe/Paris</td>`,
		`<span class="words">on the 1st of every month at 06:00 Europe/Paris</span>`,
		`<span class="words">every hour</span>`,
		`skip while running`, `run missed fires once`,
		`<td class="name">digest</td>`, `<code>@every 1h</code>`, `<td>local</td>`, `skip missed fires`,
		"<code class=\"args\">{&#34;to&#34;:&#34;board@example.com&#34;}</code>",
	)
}

func TestStaticAndUnknownRoutes(t *testing.T) {
	_, h := populated(t)
	for file, ct := range map[string]string{
		"style.css": "text/css; charset=utf-8", "dashboard.js": "text/javascript; charset=utf-8", "favicon.svg": "image/svg+xml",
	} {
		res, body := do(t, h, http.MethodGet, "/static/"+file, nil)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != ct || body == "" {
			t.Errorf("%s: status %d, Content-Type %q, %d bytes", file, res.StatusCode, res.Header.Get("Content-Type"), len(body))
		}
		// Revalidation answers 304 while the file is unchanged.
		res, _ = do(t, h, http.MethodGet, "/static/"+file, nil, "If-None-Match", res.Header.Get("ETag"))
		if res.StatusCode != http.StatusNotModified {
			t.Errorf("%s revalidated: status %d, want 304", file, res.StatusCode)
		}
	}
	get(t, h, "/static/nope.js", http.StatusNotFound)
	get(t, h, "/nope", http.StatusNotFound)
	var e apiError
	getJSON(t, h, "/api/nope", http.StatusNotFound, &e)
	if e.Error == "" {
		t.Error("an unknown API route answers no error message")
	}
}

func TestActionsArePostOnly(t *testing.T) {
	f, h := populated(t, WithActions())
	for _, target := range []string{"/jobs/" + idStr(f.ids["failed"]) + "/retry", "/api/jobs/" + idStr(f.ids["failed"]) + "/retry"} {
		if res, _ := do(t, h, http.MethodGet, target, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", target, res.StatusCode)
		}
	}
	f.mustState(t, f.ids["failed"], jobrun.StateFailed)
}

// TestMountedUnderPrefix serves the dashboard under a prefix, as an application
// does, and follows its links and redirects through a real server.
func TestMountedUnderPrefix(t *testing.T) {
	f, h := populated(t, WithActions())
	mux := http.NewServeMux()
	mux.Handle("/admin/jobs/", http.StripPrefix("/admin/jobs", h))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := srv.Client()

	res, err := client.Get(srv.URL + "/admin/jobs/queues/default?state=failed")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	contains(t, "prefixed list", string(b), `<base href="../">`, `href="jobs/`+idStr(f.ids["failed"])+`"`)
	// What the browser resolves the job link to.
	link, _ := url.Parse(srv.URL + "/admin/jobs/queues/default?state=failed")
	link = link.ResolveReference(&url.URL{Path: "../"}).ResolveReference(&url.URL{Path: "jobs/" + idStr(f.ids["failed"])})
	if want := "/admin/jobs/jobs/" + idStr(f.ids["failed"]); link.Path != want {
		t.Fatalf("the job link resolves to %s, want %s", link.Path, want)
	}

	// An action from the list returns to the list, under the prefix.
	form := url.Values{"return": {"queues/default?state=failed"}}
	res, err = client.PostForm(srv.URL+"/admin/jobs/jobs/"+idStr(f.ids["failed"])+"/retry", form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("retry: status %d\n%s", res.StatusCode, b)
	}
	if want := "/admin/jobs/queues/default"; res.Request.URL.Path != want || res.Request.URL.Query().Get("done") != "retry" {
		t.Errorf("retry redirected to %s, want %s?...done=retry", res.Request.URL, want)
	}
	contains(t, "list after retry", string(b), `Job #`+idStr(f.ids["failed"])+` will run again.`)
	f.mustState(t, f.ids["failed"], jobrun.StateReady)

	// Without a return page, a job action shows the job.
	res, err = client.PostForm(srv.URL+"/admin/jobs/jobs/"+idStr(f.ids["scheduled"])+"/promote", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if want := "/admin/jobs/jobs/" + idStr(f.ids["scheduled"]); res.Request.URL.Path != want {
		t.Errorf("promote redirected to %s, want %s", res.Request.URL.Path, want)
	}
}

func TestRoot(t *testing.T) {
	for path, want := range map[string]string{
		"/": "./", "/jobs": "./", "/schedules": "./", "/jobs/12": "../", "/queues/a%2Fb": "../",
		"/jobs/12/retry": "../../", "/api/queues/x/jobs": "../../../", "/events": "./", "/events/5": "../",
	} {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		if got := root(r); got != want {
			t.Errorf("root(%s) = %q, want %q", path, got, want)
		}
	}
}

func TestQueueNameWithSlash(t *testing.T) {
	f := openFixture(t)
	h := New(f.r, WithActions())
	id, err := f.r.Enqueue(t.Context(), okArgs{To: "a@example.com"}, jobrun.Queue("team/a"))
	if err != nil {
		t.Fatal(err)
	}
	body := get(t, h, "/", http.StatusOK)
	contains(t, "overview", body, `<a href="queues/team%2Fa">team/a</a>`)
	body = get(t, h, "/queues/team%2Fa", http.StatusOK)
	contains(t, "queue page", body, `data-id="`+idStr(id)+`"`, `<base href="../">`)
	res, _ := do(t, h, http.MethodPost, "/queues/team%2Fa/pause", url.Values{})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("pause: status %d", res.StatusCode)
	}
	if paused, err := queueIsPaused(t.Context(), f.r, "team/a"); err != nil || !paused {
		t.Errorf("queue team/a paused: %v, %v", paused, err)
	}
}

func TestRefreshOption(t *testing.T) {
	f := openFixture(t)
	body := get(t, New(f.r, WithRefresh(250_000_000)), "/", http.StatusOK)
	contains(t, "page", body, `data-refresh="250"`, `id="live"`)
	body = get(t, New(f.r, WithRefresh(0)), "/", http.StatusOK)
	contains(t, "page", body, `data-refresh="0"`)
	lacks(t, "page", body, `id="live"`)
}
