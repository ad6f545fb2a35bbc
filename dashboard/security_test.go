package dashboard

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/jobrun/jobrun"
)

func TestAuth(t *testing.T) {
	f, _ := populated(t)
	basic := func(u, p string) string {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.SetBasicAuth(u, p)
		return r.Header.Get("Authorization")
	}
	byHeader := WithAuth(func(r *http.Request) bool { return r.Header.Get("X-Proxy-User") == "ops" })
	cases := []struct {
		name      string
		opts      []Option
		auth      []string // header name and value pairs
		want      int
		challenge string
	}{
		{"no auth configured", nil, nil, http.StatusOK, ""},
		{"basic, none given", []Option{WithBasicAuth("admin", "s3cret")}, nil, http.StatusUnauthorized, `Basic realm="jobrun", charset="UTF-8"`},
		{"basic, wrong password", []Option{WithBasicAuth("admin", "s3cret")}, []string{"Authorization", basic("admin", "guess")}, http.StatusUnauthorized, "Basic"},
		{"basic, wrong user", []Option{WithBasicAuth("admin", "s3cret")}, []string{"Authorization", basic("root", "s3cret")}, http.StatusUnauthorized, "Basic"},
		{"basic, right", []Option{WithBasicAuth("admin", "s3cret")}, []string{"Authorization", basic("admin", "s3cret")}, http.StatusOK, ""},
		{"bearer, none given", []Option{WithBearerToken("t0ken")}, nil, http.StatusUnauthorized, `Bearer realm="jobrun"`},
		{"bearer, wrong", []Option{WithBearerToken("t0ken")}, []string{"Authorization", "Bearer t0ke"}, http.StatusUnauthorized, "Bearer"},
		{"bearer, basic given", []Option{WithBearerToken("t0ken")}, []string{"Authorization", basic("t0ken", "t0ken")}, http.StatusUnauthorized, "Bearer"},
		{"bearer, right", []Option{WithBearerToken("t0ken")}, []string{"Authorization", "Bearer t0ken"}, http.StatusOK, ""},
		{"hook, refused", []Option{byHeader}, []string{"X-Proxy-User", "guest"}, http.StatusUnauthorized, ""},
		{"hook, allowed", []Option{byHeader}, []string{"X-Proxy-User", "ops"}, http.StatusOK, ""},
		{"any of several", []Option{byHeader, WithBearerToken("t0ken")}, []string{"Authorization", "Bearer t0ken"}, http.StatusOK, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := New(f.r, append(tc.opts, WithActions())...)
			// Pages, assets, the API and actions are all behind the check.
			for _, target := range []string{"/", "/jobs/" + idStr(f.ids["done"]), "/static/style.css", "/api/metrics", "/api/jobs/" + idStr(f.ids["done"]),
				"/events", "/api/events"} {
				res, body := do(t, h, http.MethodGet, target, nil, tc.auth...)
				if res.StatusCode != tc.want {
					t.Errorf("GET %s: status %d, want %d", target, res.StatusCode, tc.want)
				}
				if got := strings.Join(res.Header.Values("WWW-Authenticate"), ", "); !strings.Contains(got, tc.challenge) || (tc.challenge == "" && tc.want == http.StatusOK && got != "") {
					t.Errorf("GET %s: WWW-Authenticate %q, want %q", target, got, tc.challenge)
				}
				if tc.want == http.StatusUnauthorized && strings.Contains(body, "email.send") {
					t.Errorf("GET %s: a refused request shows data:\n%s", target, body)
				}
			}
			res, _ := post(t, h, "/api/queues/mail/pause", nil, tc.auth...)
			paused, _ := queueIsPaused(t.Context(), f.r, "mail")
			if tc.want == http.StatusUnauthorized && (res.StatusCode != http.StatusUnauthorized || paused) {
				t.Errorf("an unauthenticated action: status %d, queue paused %v", res.StatusCode, paused)
			}
			if tc.want == http.StatusOK && !paused {
				t.Errorf("an authenticated action: status %d, queue not paused", res.StatusCode)
			}
			f.r.Resume(t.Context(), "mail")
		})
	}
}

func TestAuthOptionsPanicOnEmptySecrets(t *testing.T) {
	for name, fn := range map[string]func(){
		"bearer": func() { WithBearerToken("") },
		"basic":  func() { WithBasicAuth("admin", "") },
		"hook":   func() { New(nil, WithAuth(nil)) },
		"origin": func() { New(openFixture(t).r, WithTrustedOrigins("not an origin")) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			fn()
		}()
	}
}

// TestReadOnly checks that without WithActions no action runs, by form or API, and
// the pages offer none.
func TestReadOnly(t *testing.T) {
	f, h := populated(t)
	for _, a := range []struct{ target, job string }{
		{"/jobs/%d/retry", "failed"}, {"/api/jobs/%d/retry", "failed"}, {"/jobs/%d/cancel", "scheduled"},
		{"/api/jobs/%d/delete", "done"}, {"/jobs/%d/promote", "scheduled"},
		{"/queues/mail/pause", ""}, {"/api/retry-failed", ""}, {"/clean", ""}, {"/api/schedules/digest/run", ""},
	} {
		target := strings.ReplaceAll(a.target, "%d", idStr(f.ids[a.job]))
		res, body := post(t, h, target, nil)
		if res.StatusCode != http.StatusForbidden || !strings.Contains(body, "read-only") {
			t.Errorf("POST %s: status %d, want 403 read-only\n%s", target, res.StatusCode, body)
		}
	}
	f.mustState(t, f.ids["failed"], jobrun.StateFailed)
	f.mustState(t, f.ids["scheduled"], jobrun.StateScheduled)
	f.mustState(t, f.ids["done"], jobrun.StateDone)
	if p, _ := queueIsPaused(t.Context(), f.r, "mail"); p {
		t.Error("a read-only dashboard paused a queue")
	}
	if c, _ := f.r.Counts(t.Context(), ""); c[jobrun.StateFailed] != 2 {
		t.Errorf("failed jobs after a refused retry-failed: %d, want 2", c[jobrun.StateFailed])
	}
	f.populateEvents(t)
	for _, page := range []string{"/", "/jobs", "/queues/default?state=failed", "/jobs/" + idStr(f.ids["failed"]), "/schedules",
		"/events", "/events/1", "/jobs/" + idStr(f.ids["shipped1"])} {
		body := get(t, h, page, http.StatusOK)
		lacks(t, page, body, `method="post"`, `data-action=`)
		contains(t, page, body, `<span class="mode" id="mode">read-only</span>`)
	}
}

// TestCrossOrigin checks that a browser's cross-origin POST is refused, however the
// browser tells it, and that same-origin and non-browser requests are not.
func TestCrossOrigin(t *testing.T) {
	f, h := populated(t, WithActions(), WithTrustedOrigins("https://admin.example.com"))
	ctx := t.Context()
	for _, tc := range []struct {
		name   string
		header []string
		want   int
	}{
		{"sec-fetch-site cross-site", []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"sec-fetch-site same-site", []string{"Sec-Fetch-Site", "same-site"}, http.StatusForbidden},
		{"origin of another host", []string{"Origin", "https://evil.example"}, http.StatusForbidden},
		{"origin of another port", []string{"Origin", "http://" + testHost + ":8080"}, http.StatusForbidden},
		{"origin null", []string{"Origin", "null"}, http.StatusForbidden},
		{"trusted origin", []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://admin.example.com"}, http.StatusOK},
		{"origin of its own host", []string{"Origin", "http://" + testHost}, http.StatusOK},
		{"sec-fetch-site same-origin", []string{"Sec-Fetch-Site", "same-origin"}, http.StatusOK},
		{"no browser headers (curl)", nil, http.StatusOK},
	} {
		for _, target := range []string{"/api/queues/mail/pause", "/queues/mail/pause"} {
			res, body := do(t, h, http.MethodPost, target, url.Values{}, tc.header...)
			paused, _ := queueIsPaused(ctx, f.r, "mail")
			switch {
			case tc.want == http.StatusForbidden && (res.StatusCode != http.StatusForbidden || paused ||
				!strings.Contains(body, "cross-origin request refused")):
				t.Errorf("%s, POST %s: status %d, queue paused %v; want refused\n%s", tc.name, target, res.StatusCode, paused, body)
			case tc.want == http.StatusOK && (res.StatusCode >= 400 || !paused):
				t.Errorf("%s, POST %s: status %d, queue paused %v; want it paused\n%s", tc.name, target, res.StatusCode, paused, body)
			}
			if err := f.r.Resume(ctx, "mail"); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestHosts checks that a dashboard without authentication answers loopback Host
// names and the hosts of WithAllowedHosts only, and that with authentication any
// Host is answered unless WithAllowedHosts is given: a page that rebinds its own
// name to 127.0.0.1 must neither read the jobs nor run an action, even with the
// Origin and Sec-Fetch-Site of its own, same, origin.
func TestHosts(t *testing.T) {
	const attacker = "rebind.attacker.example:8080"
	allowed := WithAllowedHosts("Dash.Example.com", "*.internal.example", "192.168.1.20")
	basic := WithBasicAuth("admin", "s3cret")
	creds := func() []string {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.SetBasicAuth("admin", "s3cret")
		return []string{"Authorization", r.Header.Get("Authorization")}
	}()
	cases := []struct {
		host   string
		opts   []Option
		header []string // besides Host, Origin and Sec-Fetch-Site
		want   int      // of every request; actions succeed when 200
	}{
		{"localhost", nil, nil, http.StatusOK},
		{"localhost:8080", nil, nil, http.StatusOK},
		{"LocalHost:8080", nil, nil, http.StatusOK},
		{"localhost.", nil, nil, http.StatusOK},
		{"jobs.localhost:8080", nil, nil, http.StatusOK},
		{"127.0.0.1", nil, nil, http.StatusOK},
		{"127.0.0.1:8080", nil, nil, http.StatusOK},
		{"127.1.2.3:8080", nil, nil, http.StatusOK},
		{"[::1]", nil, nil, http.StatusOK},
		{"[::1]:8080", nil, nil, http.StatusOK},
		{"::1", nil, nil, http.StatusOK},
		{"[::ffff:127.0.0.1]:8080", nil, nil, http.StatusOK},

		{attacker, nil, nil, http.StatusForbidden},
		{"rebind.attacker.example", nil, nil, http.StatusForbidden},
		{"localhost.attacker.example", nil, nil, http.StatusForbidden},
		{"127.0.0.1.attacker.example:8080", nil, nil, http.StatusForbidden},
		{"notlocalhost:8080", nil, nil, http.StatusForbidden},
		{"", nil, nil, http.StatusForbidden},
		{"[::1", nil, nil, http.StatusForbidden},
		{"[::1]x", nil, nil, http.StatusForbidden},
		{"localhost:8080:1", nil, nil, http.StatusForbidden},
		{"0.0.0.0:8080", nil, nil, http.StatusForbidden},
		{"192.168.1.20:8080", nil, nil, http.StatusForbidden},
		{"dash.example.com", nil, nil, http.StatusForbidden},

		// WithAllowedHosts: exact names and addresses, case-insensitive, any port;
		// "*." for the names under one; loopback names still.
		{"dash.example.com", []Option{allowed}, nil, http.StatusOK},
		{"DASH.EXAMPLE.COM:8443", []Option{allowed}, nil, http.StatusOK},
		{"dash.example.com.", []Option{allowed}, nil, http.StatusOK},
		{"192.168.1.20:8080", []Option{allowed}, nil, http.StatusOK},
		{"a.internal.example", []Option{allowed}, nil, http.StatusOK},
		{"a.b.internal.example:8080", []Option{allowed}, nil, http.StatusOK},
		{"localhost:8080", []Option{allowed}, nil, http.StatusOK},
		{"internal.example", []Option{allowed}, nil, http.StatusForbidden},
		{"evilinternal.example", []Option{allowed}, nil, http.StatusForbidden},
		{"example.com", []Option{allowed}, nil, http.StatusForbidden},
		{"dash.example.com.attacker.example", []Option{allowed}, nil, http.StatusForbidden},
		{attacker, []Option{allowed}, nil, http.StatusForbidden},

		// With authentication the Host is not checked, unless WithAllowedHosts is
		// given; a refused Host is refused before the credentials are looked at.
		{attacker, []Option{basic}, creds, http.StatusOK},
		{attacker, []Option{basic}, nil, http.StatusUnauthorized},
		{attacker, []Option{basic, allowed}, creds, http.StatusForbidden},
		{"dash.example.com", []Option{basic, allowed}, creds, http.StatusOK},
		{"localhost", []Option{basic, WithAllowedHosts()}, creds, http.StatusOK},
		{"dash.example.com", []Option{basic, WithAllowedHosts()}, creds, http.StatusForbidden},
	}
	for _, tc := range cases {
		f, h := populated(t, append(tc.opts, WithActions())...)
		name := fmt.Sprintf("Host %q, %d options", tc.host, len(tc.opts))
		// What a browser at the page of that host sends.
		header := append([]string{"Host", tc.host, "Origin", "http://" + tc.host, "Sec-Fetch-Site", "same-origin"}, tc.header...)
		done := idStr(f.ids["done"])
		for _, target := range []string{"/", "/jobs/" + done, "/static/style.css", "/api/jobs", "/api/jobs/" + done} {
			res, body := do(t, h, http.MethodGet, target, nil, header...)
			if res.StatusCode != tc.want {
				t.Errorf("%s: GET %s: status %d, want %d\n%s", name, target, res.StatusCode, tc.want, body)
			}
			switch {
			case tc.want == http.StatusForbidden:
				if ct := res.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" ||
					!strings.Contains(body, "is not allowed") || !strings.Contains(body, "DNS rebinding") ||
					!strings.Contains(body, "WithAllowedHosts") {
					t.Errorf("%s: GET %s: %s answer does not say why:\n%s", name, target, ct, body)
				}
				lacks(t, name+": GET "+target, body, "ada@example.com", "email.send")
			case tc.want == http.StatusOK && target == "/api/jobs":
				contains(t, name+": GET "+target, body, "ada@example.com")
			}
		}

		before, err := f.r.Counts(t.Context(), "")
		if err != nil {
			t.Fatal(err)
		}
		res, body := do(t, h, http.MethodPost, "/api/clean", url.Values{}, header...)
		if res.StatusCode != tc.want {
			t.Errorf("%s: POST /api/clean: status %d, want %d\n%s", name, res.StatusCode, tc.want, body)
		}
		after, err := f.r.Counts(t.Context(), "")
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.r.Get(t.Context(), f.ids["done"])
		if tc.want == http.StatusOK {
			if !errors.Is(err, jobrun.ErrNotFound) || after[jobrun.StateDone] != 0 {
				t.Errorf("%s: an allowed clean left %d done jobs (%v)", name, after[jobrun.StateDone], err)
			}
			continue
		}
		if err != nil || !maps.Equal(before, after) || before[jobrun.StateDone] == 0 {
			t.Errorf("%s: a refused clean changed the counts from %v to %v (done job: %v)", name, before, after, err)
		}
	}
}

// TestHostsAndCrossOrigin checks that the Host check and the cross-origin
// protection of the actions add up: a request passes only if both let it.
func TestHostsAndCrossOrigin(t *testing.T) {
	f, h := populated(t, WithActions(), WithAllowedHosts("dash.example.com"))
	ctx := t.Context()
	for _, tc := range []struct {
		name   string
		header []string
		want   string // "" for the queue paused, or what the refusal says
	}{
		{"allowed host, same origin", []string{"Host", "dash.example.com", "Origin", "http://dash.example.com"}, ""},
		{"allowed host, other origin", []string{"Host", "dash.example.com", "Origin", "https://evil.example"}, "cross-origin request refused"},
		{"allowed host, cross-site", []string{"Host", "dash.example.com", "Sec-Fetch-Site", "cross-site"}, "cross-origin request refused"},
		{"loopback host, attacker origin", []string{"Host", "127.0.0.1:8080", "Origin", "http://rebind.attacker.example:8080"}, "cross-origin request refused"},
		{"loopback host, same origin", []string{"Host", "127.0.0.1:8080", "Origin", "http://127.0.0.1:8080"}, ""},
		{"attacker host, its own origin", []string{"Host", "rebind.attacker.example:8080", "Origin", "http://rebind.attacker.example:8080"}, "is not allowed"},
	} {
		res, body := do(t, h, http.MethodPost, "/api/queues/mail/pause", url.Values{}, tc.header...)
		paused, err := queueIsPaused(ctx, f.r, "mail")
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case tc.want == "" && (res.StatusCode != http.StatusOK || !paused):
			t.Errorf("%s: status %d, queue paused %v; want it paused\n%s", tc.name, res.StatusCode, paused, body)
		case tc.want != "" && (res.StatusCode != http.StatusForbidden || paused || !strings.Contains(body, tc.want)):
			t.Errorf("%s: status %d, queue paused %v; want 403 %q\n%s", tc.name, res.StatusCode, paused, tc.want, body)
		}
		if err := f.r.Resume(ctx, "mail"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAllowedHostsPanicsOnBadHosts(t *testing.T) {
	for _, h := range []string{"", "example.com:8080", "[::1]:8080", "http://example.com", "example.com/jobs",
		"*", "*.", "a.*.example", "*example.com", "*.10.0.0.1", "[10.0.0.1]", "exa mple.com", ":8080", "admin@example.com"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("WithAllowedHosts(%q): no panic", h)
				}
			}()
			WithAllowedHosts("example.org", h)
		}()
	}
	// These are fine.
	New(openFixture(t).r, WithAllowedHosts("example.com", "Example.COM.", "*.example.com", "10.0.0.1", "::1", "[fe80::1]"))
}

// TestEscaping stores a job whose every shown value is markup, and checks that no
// page renders it as markup.
func TestEscaping(t *testing.T) {
	f := openFixture(t)
	h := New(f.r, WithActions())
	const evil = `<script>alert("x")</script>`
	ctx := t.Context()
	queue := `<i>q</i>`
	id, err := f.r.Enqueue(ctx, okArgs{To: evil, Note: `"><img src=x onerror=alert(1)>`}, jobrun.Queue(queue), jobrun.Tags("<b>tag</b>"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.r.Schedule(ctx, `<svg onload=alert(1)>`, "@daily", okArgs{To: evil}); err != nil {
		t.Fatal(err)
	}
	// A job that ran logs the markup too.
	ran, err := f.r.Enqueue(ctx, okArgs{To: evil})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.r.RunUntilIdle(ctx); err != nil && !errors.Is(err, jobrun.ErrNoWorkers) {
		t.Fatal(err)
	}
	// An event whose name, ID and data are markup.
	ev, err := f.r.Send(ctx, jobrun.Event{Name: "<b>tag</b>", ID: `"><img src=x>`, Data: map[string]string{"to": evil}})
	if err != nil {
		t.Fatal(err)
	}
	pages := map[string]string{
		"events":      get(t, h, "/events", http.StatusOK),
		"event":       get(t, h, "/events/"+strconv.FormatUint(ev.Seq, 10), http.StatusOK),
		"event name":  get(t, h, "/events?name="+url.QueryEscape("<b>tag</b>")+"&seq="+url.QueryEscape(evil), http.StatusOK),
		"event error": get(t, h, "/events/"+url.PathEscape(evil), http.StatusNotFound),
		"overview":    get(t, h, "/", http.StatusOK),
		"queue":       get(t, h, "/queues/"+url.PathEscape(queue), http.StatusOK),
		"all":         get(t, h, "/jobs?kind="+url.QueryEscape(evil)+"&tag="+url.QueryEscape(evil), http.StatusOK),
		"job":         get(t, h, "/jobs/"+idStr(id), http.StatusOK),
		"ran":         get(t, h, "/jobs/"+idStr(ran), http.StatusOK),
		"schedules":   get(t, h, "/schedules", http.StatusOK),
		"notfound":    get(t, h, "/jobs?id="+url.QueryEscape(evil), http.StatusOK),
		"error":       get(t, h, "/jobs/"+url.PathEscape(evil), http.StatusNotFound),
	}
	for name, body := range pages {
		lacks(t, name, body, "<script>alert", "<img src=x", "<svg onload", "<i>q</i>", "<b>tag</b>")
	}
	contains(t, "queue page", pages["queue"], `&lt;i&gt;q&lt;/i&gt;`, `&lt;b&gt;tag&lt;/b&gt;`)
	contains(t, "overview", pages["overview"], `href="queues/%3Ci%3Eq%3C%2Fi%3E"`)
	contains(t, "job page", pages["job"], `&lt;script&gt;alert(\&#34;x\&#34;)&lt;/script&gt;`)
	contains(t, "job log", pages["ran"], `for &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</td>`)
	contains(t, "schedules", pages["schedules"], `&lt;svg onload=alert(1)&gt;`, `action="schedules/%3Csvg%20onload=alert%281%29%3E/run"`)
	contains(t, "search", pages["all"], `value="&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"`)
	contains(t, "events", pages["events"], `<a href="events?name=%3cb%3etag%3c%2fb%3e">&lt;b&gt;tag&lt;/b&gt;</a>`,
		`<code>&#34;&gt;&lt;img src=x&gt;</code>`, `&lt;script&gt;alert(\&#34;x\&#34;)&lt;/script&gt;`)
	contains(t, "event", pages["event"], `<span class="kind">&lt;b&gt;tag&lt;/b&gt;</span>`, `&lt;script&gt;alert(\&#34;x\&#34;)&lt;/script&gt;`)
	contains(t, "event search", pages["event name"], `value="&lt;b&gt;tag&lt;/b&gt;"`, `No event has the seq &lt;script&gt;`)

	// The JSON API escapes markup too, so that a page showing it as HTML by mistake
	// would not run it.
	_, body := do(t, h, http.MethodGet, "/api/jobs/"+idStr(id), nil)
	lacks(t, "API answer", body, "<script>")
	var j jobJSON
	if err := json.Unmarshal([]byte(body), &j); err != nil || !strings.Contains(string(j.Data), `\u003cscript\u003e`) {
		t.Errorf("API data %s (%v)", j.Data, err)
	}
}

func TestRedaction(t *testing.T) {
	f := openFixture(t)
	all := New(f.r, WithRedactedArgs())
	some := New(f.r, WithRedactedArgs("image.resize"))
	f.populate(t)
	done, failed := idStr(f.ids["done"]), idStr(f.ids["failed"])

	// The args are hidden; the rest, the log that names the address included, is not.
	body := get(t, all, "/jobs/"+done, http.StatusOK)
	lacks(t, "redacted job's args", section(body, "args"), "ada@example.com")
	contains(t, "redacted job", body, `<p class="muted redacted">redacted</p>`, "7F3A2")
	body = get(t, all, "/schedules", http.StatusOK)
	lacks(t, "redacted schedules", body, "board@example.com")
	contains(t, "redacted schedules", body, "args redacted")
	var j jobJSON
	getJSON(t, all, "/api/jobs/"+done, http.StatusOK, &j)
	if string(j.Data) != "null" || string(j.RawArgs) != "null" || !j.DataRedacted {
		t.Errorf("API of a redacted job: data %s, args %s, data_redacted %v", j.Data, j.RawArgs, j.DataRedacted)
	}
	var p pageJSON
	getJSON(t, all, "/api/jobs", http.StatusOK, &p)
	for _, j := range p.Jobs {
		if string(j.Data) != "null" || string(j.RawArgs) != "null" || !j.DataRedacted {
			t.Errorf("API list: job %d shows data %s, args %s", j.ID, j.Data, j.RawArgs)
		}
	}
	var s struct{ Schedules []scheduleJSON }
	getJSON(t, all, "/api/schedules", http.StatusOK, &s)
	if string(s.Schedules[0].Args) != "null" || !s.Schedules[0].ArgsRedacted {
		t.Errorf("API schedules show args %s", s.Schedules[0].Args)
	}

	// By kind: only image.resize's args are hidden.
	contains(t, "other kind", section(get(t, some, "/jobs/"+done, http.StatusOK), "args"), "ada@example.com")
	body = section(get(t, some, "/jobs/"+failed, http.StatusOK), "args")
	lacks(t, "redacted kind", body, "IMG_0042")
	contains(t, "redacted kind", body, "redacted")
}

// section returns the part of a page in the section with the given id.
func section(page, id string) string {
	_, rest, ok := strings.Cut(page, `<section class="panel" id="`+id+`">`)
	if !ok {
		return ""
	}
	s, _, _ := strings.Cut(rest, "</section>")
	return s
}
