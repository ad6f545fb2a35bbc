package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jobrun/jobrun"
)

// withEvents returns a fixture holding populateEvents' jobs and events, and the
// dashboard of its runner.
func withEvents(t *testing.T, opts ...Option) (*fixture, http.Handler) {
	t.Helper()
	f := openFixture(t)
	h := New(f.r, opts...)
	f.populateEvents(t)
	return f, h
}

func seqStr(seq uint64) string { return strconv.FormatUint(seq, 10) }

// rowOf returns the table row of a page that starts with the given attribute.
func rowOf(page, attr string) string {
	_, rest, ok := strings.Cut(page, "<tr "+attr)
	if !ok {
		return ""
	}
	row, _, _ := strings.Cut(rest, "</tr>")
	return row
}

func TestEventsPage(t *testing.T) {
	f, h := withEvents(t)
	body := get(t, h, "/events", http.StatusOK)
	placed1, dup, shipped := seqStr(f.seqs["placed1"]), seqStr(f.seqs["duplicate"]), seqStr(f.seqs["shipped"])
	contains(t, "events", body,
		`<a href="events" aria-current="page">Events</a>`,
		`<a href="events/`+placed1+`">#`+placed1+`</a>`,
		`<a href="events?name=order%2fplaced">order/placed</a>`,
		`<code>order-1</code>`,
		`<span class="badge duplicate">duplicate</span> of <a href="events/`+placed1+`">#`+placed1+`</a>`,
		`<a href="jobs/`+idStr(f.ids["notified"])+`">#`+idStr(f.ids["notified"])+`</a>`,
		"<code class=\"args\">{&#34;order_id&#34;:1,&#34;email&#34;:&#34;buyer1@example.com&#34;}</code>",
	)
	contains(t, "event with no run", rowOf(body, `data-seq="`+seqStr(f.seqs["charged1"])+`"`), `<span class="muted">none</span>`)
	// Newest first.
	if i, j := strings.Index(body, `data-seq="`+dup+`"`), strings.Index(body, `data-seq="`+placed1+`"`); i < 0 || j < 0 || i > j {
		t.Errorf("the newer event %s is not listed before the older %s", dup, placed1)
	}
	// Every page links to the events.
	for _, page := range []string{"/", "/jobs", "/schedules", "/jobs/" + idStr(f.ids["shipped1"])} {
		contains(t, page, get(t, h, page, http.StatusOK), `<a href="events">Events</a>`)
	}

	// By name.
	body = get(t, h, "/events?name=order/shipped", http.StatusOK)
	contains(t, "name filter", body, `data-seq="`+shipped+`"`, `value="order/shipped"`, `<a href="events">clear</a>`)
	lacks(t, "name filter", body, `data-seq="`+placed1+`"`)
	body = get(t, h, "/events?name=nothing/here", http.StatusOK)
	contains(t, "no match", body, `No events called nothing/here.`)

	// Search by Seq: the event's page, or a message.
	res, _ := do(t, h, http.MethodGet, "/events?seq=%23"+shipped, nil)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "./events/"+shipped {
		t.Errorf("search by seq: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	body = get(t, h, "/events?seq=99999", http.StatusOK)
	contains(t, "missing seq", body, `No event has the seq 99999.`)

	// Pages: the cursor of the API's first page is the page's too.
	var p eventsPageJSON
	getJSON(t, h, "/api/events?limit=2&name=order/placed", http.StatusOK, &p)
	if len(p.Events) != 2 || p.Next == "" {
		t.Fatalf("first API page: %d events, next %q", len(p.Events), p.Next)
	}
	body = get(t, h, "/events?name=order/placed&cursor="+url.QueryEscape(p.Next), http.StatusOK)
	contains(t, "second page", body, `<a href="events?name=order%2Fplaced" id="prev-page" rel="prev">« newer</a>`,
		`<a class="page" href="events?name=order%2Fplaced" data-page="1" id="first-page">1</a>`,
		`<span class="page" aria-current="page">2</span>`,
		`data-seq="`+seqStr(f.seqs["placed3"])+`"`)
	lacks(t, "second page", body, `data-seq="`+dup+`"`, `data-seq="`+seqStr(f.seqs["placed4"])+`"`)
	body = get(t, h, "/events?oldest=true", http.StatusOK)
	if i, j := strings.Index(body, `data-seq="`+placed1+`"`), strings.Index(body, `data-seq="`+dup+`"`); i < 0 || j < 0 || i > j {
		t.Errorf("oldest first: %s is not listed before %s", placed1, dup)
	}
	get(t, h, "/events?oldest=maybe", http.StatusBadRequest)
	get(t, h, "/events?cursor=!!", http.StatusBadRequest)
}

func TestEventPage(t *testing.T) {
	f, h := withEvents(t)
	placed1 := seqStr(f.seqs["placed1"])
	body := get(t, h, "/events/"+placed1, http.StatusOK)
	fulfil, audit := idStr(f.ids["shipped1"]), idStr(f.ids["audit1"])
	contains(t, "event", body,
		`<base href="../">`,
		`<title>Event #`+placed1+` · jobrun</title>`,
		`<h1>Event #`+placed1+` <span class="kind">order/placed</span></h1>`,
		`<dt>ID</dt><dd><code>order-1</code></dd>`,
		`<h2>Runs <small>2</small></h2>`,
		"&#34;email&#34;: &#34;buyer1@example.com&#34;", // indented JSON, escaped
		`<td class="kind">order.fulfil</td>`,
		`deleted: retention or Delete removed the job`,
	)
	contains(t, "the live run", rowOf(body, `data-id="`+fulfil+`"`), `<a href="jobs/`+fulfil+`">#`+fulfil+`</a>`,
		`<span class="badge state-scheduled">scheduled</span>`, `<a href="queues/default">default</a>`)
	contains(t, "the deleted run", rowOf(body, `data-id="`+audit+`"`), `data-state="deleted"`, `#`+audit)
	lacks(t, "the deleted run", rowOf(body, `data-id="`+audit+`"`), `href="jobs/`+audit+`"`)
	lacks(t, "event", body, "duplicate")

	body = get(t, h, "/events/"+seqStr(f.seqs["duplicate"]), http.StatusOK)
	contains(t, "duplicate", body,
		`<span class="badge duplicate">duplicate</span>`,
		`<dd id="duplicate-of"><a href="events/`+placed1+`">event #`+placed1+`</a>, sent with the same ID within the dedup window`,
		`<h2>Runs of event #`+placed1+` <small>2</small></h2>`,
	)
	body = get(t, h, "/events/"+seqStr(f.seqs["charged1"]), http.StatusOK)
	contains(t, "event without runs", body, `<h2>Runs <small>0</small></h2>`, `It started no run: no function was registered on its name`)
	body = get(t, h, "/events/"+seqStr(f.seqs["placed2"]), http.StatusOK)
	contains(t, "event of a failed run", rowOf(body, `data-id="`+idStr(f.ids["declined"])+`"`), `<span class="badge state-failed">failed</span>`)

	get(t, h, "/events/99999", http.StatusNotFound)
	body = get(t, h, "/events/abc", http.StatusNotFound)
	contains(t, "bad seq", body, `<h1>404 Not Found</h1>`, "an event&#39;s seq is a positive number")
}

func TestJobPageStepsAndEvent(t *testing.T) {
	f, h := withEvents(t)
	body := get(t, h, "/jobs/"+idStr(f.ids["shipped1"]), http.StatusOK)
	placed1, shipped, charged := seqStr(f.seqs["placed1"]), seqStr(f.seqs["shipped"]), seqStr(f.seqs["charged1"])
	contains(t, "job", body,
		`<dt>Event</dt><dd id="job-event"><a href="events/`+placed1+`">#`+placed1+`</a> <span class="kind">order/placed</span></dd>`,
		`<h2>Steps <small>5, in the order they started</small></h2>`,
	)
	// In the order they started, not by name.
	var order []string
	for _, part := range strings.Split(section(body, "steps"), `<tr data-step="`)[1:] {
		name, _, _ := strings.Cut(part, `"`)
		order = append(order, name)
	}
	if want := []string{"reserve", "charge", "notify", "wait-shipment", "cool-off"}; !slices.Equal(order, want) {
		t.Errorf("steps in the order %v, want %v", order, want)
	}
	contains(t, "step reserve", rowOf(body, `data-step="reserve"`), `<span class="badge state-done">done</span>`,
		`<td class="num">1</td>`, "<code class=\"args\">{&#34;reserved&#34;:true}</code>", `<rect class="done" x="0"`)
	contains(t, "step notify", rowOf(body, `data-step="notify"`), `sent <a href="events/`+charged+`">event #`+charged+`</a>`)
	contains(t, "step wait-shipment", rowOf(body, `data-step="wait-shipment"`),
		`received <a href="events/`+shipped+`">event #`+shipped+`</a> <code>order/shipped</code>`,
		"<code class=\"args\">{&#34;order_id&#34;:1}</code>")
	sleep := rowOf(body, `data-step="cool-off"`)
	contains(t, "step cool-off", sleep, `<span class="badge state-scheduled">sleep</span>`, `sleeps until `, `in 24.0 h`,
		`<rect class="scheduled holds"`, `<span class="muted">–</span>`)

	body = get(t, h, "/jobs/"+idStr(f.ids["declined"]), http.StatusOK)
	contains(t, "failed step", rowOf(body, `data-step="charge"`), `<span class="badge state-failed">failed</span>`,
		`<span class="error">card declined</span><details><summary>more</summary><pre class="stack">by the bank</pre></details>`)
	body = get(t, h, "/jobs/"+idStr(f.ids["waiting"]), http.StatusOK)
	contains(t, "waiting step", rowOf(body, `data-step="wait-shipment"`), `<span class="badge state-scheduled">waiting</span>`,
		`waits for <a href="events?name=order%2fshipped"><code>order/shipped</code></a> where <code>order_id=3</code> until `, `in 6 days`)
	body = get(t, h, "/jobs/"+idStr(f.ids["timedout"]), http.StatusOK)
	contains(t, "timed-out step", rowOf(body, `data-step="wait-shipment"`), `<span class="badge state-canceled">timed_out</span>`,
		`no <a href="events?name=order%2fshipped"><code>order/shipped</code></a> where <code>order_id=4</code> by `, `: timed out`)

	// A job that no event started and that has no steps shows neither.
	body = get(t, h, "/jobs/"+idStr(f.ids["notified"]), http.StatusOK)
	contains(t, "job of order/shipped", body, `<span class="kind">order/shipped</span>`)
	lacks(t, "job without steps", body, `id="steps"`)
}

func TestAPIEvents(t *testing.T) {
	f, h := withEvents(t)
	ctx := t.Context()

	// Pages of one event follow the cursor to the end, newest first, as Events does.
	var seqs []uint64
	cursor := ""
	for range 100 {
		var p eventsPageJSON
		getJSON(t, h, "/api/events?limit=1&cursor="+cursor, http.StatusOK, &p)
		for _, ev := range p.Events {
			seqs = append(seqs, ev.Seq)
		}
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	page, err := f.r.Events(ctx, jobrun.EventFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var want []uint64
	for _, ev := range page.Events {
		want = append(want, ev.Seq)
	}
	if !slices.Equal(seqs, want) || len(seqs) != 9 || !slices.IsSortedFunc(seqs, func(a, b uint64) int { return int(b) - int(a) }) {
		t.Errorf("paged events %v, want %v newest first", seqs, want)
	}
	var p eventsPageJSON
	getJSON(t, h, "/api/events?name=order/placed&oldest=true", http.StatusOK, &p)
	seqs = nil
	for _, ev := range p.Events {
		seqs = append(seqs, ev.Seq)
	}
	if !slices.Equal(seqs, []uint64{f.seqs["placed1"], f.seqs["placed2"], f.seqs["placed3"], f.seqs["placed4"], f.seqs["duplicate"]}) {
		t.Errorf("order/placed oldest first: %v", seqs)
	}

	// An event is EventInfo's JSON, field for field as GetEvent returns it.
	for name, seq := range f.seqs {
		want, err := f.r.GetEvent(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		getJSON(t, h, "/api/events/"+seqStr(seq), http.StatusOK, &m)
		jobs := m["jobs"]
		delete(m, "jobs")
		b, _ := json.Marshal(m)
		var got jobrun.EventInfo
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if mustMarshal(t, got) != mustMarshal(t, want) || len(m) != len(mustKeys(t, want)) {
			t.Errorf("event %s: API\n%s\nwant GetEvent's\n%s", name, b, mustMarshal(t, want))
		}
		if jobs == nil {
			t.Errorf("event %s: no jobs", name)
		}
	}
	var ev eventDetailJSON
	getJSON(t, h, "/api/events/"+seqStr(f.seqs["placed1"]), http.StatusOK, &ev)
	if want := []runJSON{{f.ids["shipped1"], "order.fulfil", "default", "scheduled"}, {ID: f.ids["audit1"], State: "deleted"}}; !slices.Equal(ev.Jobs, want) {
		t.Errorf("jobs of placed1: %+v, want %+v", ev.Jobs, want)
	}
	_, body := do(t, h, http.MethodGet, "/api/events/"+seqStr(f.seqs["charged1"]), nil)
	contains(t, "event without runs", body, `"jobs": []`)
	lacks(t, "event without runs", body, `"runs"`, `"duplicate_of"`, `"id":`, `data_redacted`)

	var e apiError
	getJSON(t, h, "/api/events/99999", http.StatusNotFound, &e)
	getJSON(t, h, "/api/events/x", http.StatusNotFound, &e)
	if !strings.Contains(e.Error, "positive number") {
		t.Errorf("bad seq: %q", e.Error)
	}
	getJSON(t, h, "/api/events?limit=0x", http.StatusBadRequest, &e)
	getJSON(t, h, "/api/events?limit=5000", http.StatusBadRequest, &e)
	getJSON(t, h, "/api/events?oldest=maybe", http.StatusBadRequest, &e)
	getJSON(t, h, "/api/events?cursor=!!", http.StatusBadRequest, &e)

	// A job's event and steps are Info's, in Info's order.
	id := f.ids["shipped1"]
	in, err := f.r.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var got jobrun.Info
	getJSON(t, h, "/api/jobs/"+idStr(id), http.StatusOK, &got)
	if mustMarshal(t, got) != mustMarshal(t, in) || got.Event != f.seqs["placed1"] || got.EventName != "order/placed" || len(got.Steps) != 5 {
		t.Errorf("API job\n%s\nwant Get's\n%s", mustMarshal(t, got), mustMarshal(t, in))
	}
}

// mustKeys returns the keys of v's JSON object.
func mustKeys(t *testing.T, v any) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(mustMarshal(t, v)), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestEventRedaction: an event's data is the args of its runs, hidden with them;
// with kinds, also when a run is gone (its kind unknown), and in the steps that
// received it.
func TestEventRedaction(t *testing.T) {
	f := openFixture(t)
	all := New(f.r, WithRedactedArgs())
	audit := New(f.r, WithRedactedArgs("order.audit"))
	shipment := New(f.r, WithRedactedArgs("shipment.notify"))
	other := New(f.r, WithRedactedArgs("email.send"))
	f.populateEvents(t)
	placed2, placed1, shipped := seqStr(f.seqs["placed2"]), seqStr(f.seqs["placed1"]), seqStr(f.seqs["shipped"])
	job := "/jobs/" + idStr(f.ids["shipped1"])

	for _, tc := range []struct {
		name                  string
		h                     http.Handler
		placed2, placed1, got bool // hidden: an event with a run of each kind, one whose audit run is deleted, the shipment
	}{
		{"all", all, true, true, true},
		{"order.audit", audit, true, true, false},
		{"shipment.notify", shipment, false, true, true},
		{"another kind", other, false, true, false},
	} {
		for seq, hidden := range map[string]bool{placed2: tc.placed2, placed1: tc.placed1, shipped: tc.got} {
			data := section(get(t, tc.h, "/events/"+seq, http.StatusOK), "data")
			if hidden != strings.Contains(data, `redacted`) || hidden == strings.Contains(data, "order_id") {
				t.Errorf("%s: event %s's data hidden %v:\n%s", tc.name, seq, !hidden, data)
			}
			var ev eventDetailJSON
			getJSON(t, tc.h, "/api/events/"+seq, http.StatusOK, &ev)
			if hidden != ev.DataRedacted || hidden != (string(ev.Data) == "null") {
				t.Errorf("%s: API event %s: data %s, data_redacted %v", tc.name, seq, ev.Data, ev.DataRedacted)
			}
			row := rowOf(get(t, tc.h, "/events", http.StatusOK), `data-seq="`+seq+`"`)
			if hidden != strings.Contains(row, "redacted") || hidden == strings.Contains(row, "order_id") {
				t.Errorf("%s: the list shows event %s's data: %v\n%s", tc.name, seq, !hidden, row)
			}
		}
		var p eventsPageJSON
		getJSON(t, tc.h, "/api/events?name=order/shipped", http.StatusOK, &p)
		if len(p.Events) != 1 || p.Events[0].DataRedacted != tc.got {
			t.Errorf("%s: API list of order/shipped: %s", tc.name, mustMarshal(t, p))
		}

		// The step that received the shipment shows its data as the event's page does.
		row := rowOf(get(t, tc.h, job, http.StatusOK), `data-step="wait-shipment"`)
		if tc.got != strings.Contains(row, "data redacted") || tc.got == strings.Contains(row, "order_id") {
			t.Errorf("%s: the received step shows data: %v\n%s", tc.name, !tc.got, row)
		}
		var m struct{ Steps []stepJSON }
		getJSON(t, tc.h, "/api"+job, http.StatusOK, &m)
		for _, s := range m.Steps {
			switch {
			case s.Name == "wait-shipment" && (s.ResultRedacted != tc.got || tc.got != (s.Result == nil)):
				t.Errorf("%s: API step %s: result %s, result_redacted %v", tc.name, s.Name, s.Result, s.ResultRedacted)
			case s.Name == "reserve" && (s.ResultRedacted || s.Result == nil):
				t.Errorf("%s: API step %s hides a step's own result", tc.name, s.Name)
			}
		}
	}
}

func TestStepViews(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	d := &dashboard{cfg: &config{}}
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	in := &jobrun.Info{State: jobrun.StateScheduled, RunAt: sec(1000), Steps: []jobrun.StepInfo{ // by name, as Info lists them
		{Name: "a-last", State: "sleep", StartedAt: sec(60), FinishedAt: sec(1000)},
		{Name: "b-first", State: "done", StartedAt: sec(0), FinishedAt: sec(20), Result: []byte(`{"n": 1}`)},
		{Name: "c-second", State: "failed", StartedAt: sec(20), FinishedAt: sec(20), Error: "no\nmore"},
		{Name: "d-woken", State: "sleep", StartedAt: sec(30), FinishedAt: sec(500)}, // Promote ended it at 40
		{Name: "e-waited", State: "timed_out", StartedAt: sec(40), FinishedAt: sec(50), WaitEvent: "x"},
	}}
	views := d.stepViews(t.Context(), in, sec(100))
	var got []string
	for _, v := range views {
		got = append(got, v.Name+"|"+v.Class+"|"+v.Duration+"|"+v.Result+v.Summary+"|"+
			strconv.FormatFloat(v.Bar.X, 'f', -1, 64)+"+"+strconv.FormatFloat(v.Bar.W, 'f', -1, 64)+
			map[bool]string{true: "|holds"}[v.Holds]+map[bool]string{true: "|promoted"}[v.Promoted])
	}
	want := []string{
		"b-first|done|20s|{\"n\":1}|0+200",
		"c-second|failed|0s|no|200+4", // a tick at its time
		"d-woken|scheduled|||300+700|promoted",
		"e-waited|canceled|10s||400+100",
		"a-last|scheduled|||600+400|holds", // ends now on the axis
	}
	if !slices.Equal(got, want) {
		t.Errorf("step views:\n%q\nwant\n%q", got, want)
	}
	if v := d.stepViews(t.Context(), &jobrun.Info{Steps: []jobrun.StepInfo{{State: "done", StartedAt: t0, FinishedAt: t0}}}, t0); v[0].Bar != (stepBar{0, stepAxis}) {
		t.Errorf("a single instant step: %+v", v[0].Bar)
	}
	for d, want := range map[time.Duration]string{1500 * time.Nanosecond: "2µs", 1500 * time.Microsecond: "2ms", 90 * time.Second: "1m30s"} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %s, want %s", d, got, want)
		}
	}
}

type galleryArgs struct{}

func (galleryArgs) Kind() string { return "gallery.build" }

// TestJobPageChildren: a parent's Invoke step links its children while it waits for
// them, and a child's page links its parent.
func TestJobPageChildren(t *testing.T) {
	r, err := jobrun.Open(filepath.Join(t.TempDir(), "jobs.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[okArgs]) error { return nil }, jobrun.Queue("mail"))
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[galleryArgs]) error {
		_, err := jobrun.InvokeAll[int](ctx, "send-all", []jobrun.Args{okArgs{To: "a"}, okArgs{To: "b"}}, jobrun.Queue("mail"))
		return err
	})
	parent, err := r.Enqueue(t.Context(), galleryArgs{})
	if err != nil {
		t.Fatal(err)
	}
	// No worker runs "mail": the parent waits for its children.
	if err := r.RunUntilIdle(t.Context()); !errors.Is(err, jobrun.ErrNoWorkers) {
		t.Fatal(err)
	}
	h := New(r)
	body := get(t, h, "/jobs/"+idStr(parent), http.StatusOK)
	kids := rowOf(body, `data-step="send-all"`)
	contains(t, "invoke step", kids, `<span class="badge state-scheduled">invoking</span>`,
		`waits for <a href="jobs/`+idStr(parent+1)+`">#`+idStr(parent+1)+`</a> <a href="jobs/`+idStr(parent+2)+`">`)
	contains(t, "invoking parent", body, `<dt>Run at</dt><dd id="job-run-at">when its children end</dd>`)
	body = get(t, h, "/jobs/"+idStr(parent+1), http.StatusOK)
	contains(t, "child", body, `<dt>Parent</dt><dd id="job-parent"><a href="jobs/`+idStr(parent)+`">#`+idStr(parent)+`</a>`)
}
