package dashboard

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

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
	contains(t, "second page", body, `id="first-page">« newest</a>`, `href="events?name=order%2Fplaced"`,
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
// with kinds, also when a run is gone (its kind unknown).
func TestEventRedaction(t *testing.T) {
	f := openFixture(t)
	all := New(f.r, WithRedactedArgs())
	audit := New(f.r, WithRedactedArgs("order.audit"))
	shipment := New(f.r, WithRedactedArgs("shipment.notify"))
	other := New(f.r, WithRedactedArgs("email.send"))
	f.populateEvents(t)
	placed2, placed1, shipped := seqStr(f.seqs["placed2"]), seqStr(f.seqs["placed1"]), seqStr(f.seqs["shipped"])

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

	}
}
