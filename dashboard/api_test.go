package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/jobrun/jobrun"
)

// TestAPIJob checks the shape of GET /api/jobs/{id}: jobrun.Info's JSON, the keys
// it always has present, the optional ones only when set, with the aliases data and
// failed_reason beside.
func TestAPIJob(t *testing.T) {
	f, h := populated(t)
	keys := func(id jobrun.ID) map[string]json.RawMessage {
		t.Helper()
		var m map[string]json.RawMessage
		getJSON(t, h, "/api/jobs/"+idStr(id), http.StatusOK, &m)
		for _, k := range []string{"id", "kind", "queue", "state", "priority", "attempt", "max_attempts",
			"created_at", "run_at", "args", "data", "failed_reason"} {
			if _, ok := m[k]; !ok {
				t.Errorf("job %d: no key %q in %v", id, k, m)
			}
		}
		return m
	}

	failed := f.mustState(t, f.ids["failed"], jobrun.StateFailed)
	m := keys(failed.ID)
	var j jobJSON
	getJSON(t, h, "/api/jobs/"+idStr(failed.ID), http.StatusOK, &j)
	if j.ID != failed.ID || j.State != jobrun.StateFailed || j.FailedReason == nil || *j.FailedReason != failed.LastError ||
		j.LastError != failed.LastError || compact(j.Data) != `{"image":"uploads/IMG_0042.jpg"}` || compact(j.RawArgs) != compact(j.Data) ||
		len(j.Errors) != 1 || j.Errors[0].Attempt != 1 || j.FinishedAt.IsZero() {
		t.Errorf("failed job: %+v", j)
	}
	for _, k := range []string{"result", "progress", "tags", "unique_key", "concurrency_key"} {
		if v, ok := m[k]; ok {
			t.Errorf("failed job: %s is %s, want it left out (unset)", k, v)
		}
	}

	m = keys(f.ids["done"])
	getJSON(t, h, "/api/jobs/"+idStr(f.ids["done"]), http.StatusOK, &j)
	if string(m["failed_reason"]) != "null" || compact(j.Result) != `{"accepted":true,"message_id":"7F3A2"}` ||
		compact(j.Progress) != `{"of":4,"step":4}` || len(j.Logs) != 2 || !slices.Equal(j.Tags, []string{"customer-42"}) {
		t.Errorf("done job: %s", mustMarshal(t, j))
	}
	m = keys(f.ids["scheduled"])
	if _, ok := m["finished_at"]; ok {
		t.Error("a scheduled job has a finished_at")
	}

	// The shape is Info's: the API's job decodes into jobrun.Info field for field as
	// Get returns it, the concurrency key included.
	id, err := f.r.Enqueue(t.Context(), okArgs{To: "key@example.com"}, jobrun.Queue("idle"), jobrun.ConcurrencyKey("customer-7"),
		jobrun.UniqueKey("k7"), jobrun.Tags("t7"), jobrun.Delay(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want, err := f.r.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	var in jobrun.Info
	getJSON(t, h, "/api/jobs/"+idStr(id), http.StatusOK, &in)
	if mustMarshal(t, in) != mustMarshal(t, want) || in.ConcurrencyKey != "customer-7" {
		t.Errorf("API job\n%s\nwant Get's\n%s", mustMarshal(t, in), mustMarshal(t, want))
	}

	var e apiError
	getJSON(t, h, "/api/jobs/99999", http.StatusNotFound, &e)
	getJSON(t, h, "/api/jobs/x", http.StatusNotFound, &e)
}

func TestAPIListsAndOverview(t *testing.T) {
	f, h := populated(t)
	ctx := t.Context()

	// Pages of one job follow the cursor to the end, newest first, as List does.
	var ids []jobrun.ID
	cursor := ""
	for range 100 {
		var p pageJSON
		getJSON(t, h, "/api/queues/mail/jobs?limit=1&cursor="+cursor, http.StatusOK, &p)
		for _, j := range p.Jobs {
			ids = append(ids, j.ID)
		}
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	page, err := f.r.List(ctx, jobrun.Filter{Queue: "mail", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var want []jobrun.ID
	for _, in := range page.Jobs {
		want = append(want, in.ID)
	}
	if !slices.Equal(ids, want) || !slices.IsSortedFunc(ids, func(a, b jobrun.ID) int { return int(b) - int(a) }) {
		t.Errorf("paged mail jobs %v, want %v newest first", ids, want)
	}
	var p pageJSON
	getJSON(t, h, "/api/jobs?state=failed&oldest=true", http.StatusOK, &p)
	// The two fail on different queues at about the same moment: either may be first.
	if len(p.Jobs) != 2 || p.Jobs[0].FinishedAt.After(p.Jobs[1].FinishedAt) ||
		!slices.Equal(slices.Sorted(slices.Values([]jobrun.ID{p.Jobs[0].ID, p.Jobs[1].ID})),
			slices.Sorted(slices.Values([]jobrun.ID{f.ids["failed"], f.ids["flaky"]}))) {
		t.Errorf("failed jobs oldest first: %s", mustMarshal(t, p))
	}
	getJSON(t, h, "/api/jobs?queue=idle", http.StatusOK, &p)
	if len(p.Jobs) != 1 || p.Jobs[0].ID != f.ids["ready"] {
		t.Errorf("jobs of idle: %s", mustMarshal(t, p))
	}
	var e apiError
	getJSON(t, h, "/api/jobs?limit=0x", http.StatusBadRequest, &e)
	getJSON(t, h, "/api/jobs?limit=5000", http.StatusBadRequest, &e)
	getJSON(t, h, "/api/jobs?state=nope", http.StatusBadRequest, &e)
	getJSON(t, h, "/api/jobs?cursor=!!", http.StatusBadRequest, &e)

	// The overview and the metrics agree with Counts.
	totals, err := f.r.Counts(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var q queuesJSON
	getJSON(t, h, "/api/queues", http.StatusOK, &q)
	var names []string
	for _, qj := range q.Queues {
		names = append(names, qj.Name)
		switch qj.Name {
		case "mail":
			if qj.Rate == nil || *qj.Rate != 50 || qj.Burst != 10 || qj.Workers != 2 {
				t.Errorf("mail: %+v", qj)
			}
		case "paused":
			if !qj.Paused {
				t.Error("queue paused is not paused")
			}
		case "idle":
			if qj.Workers != 0 || qj.Rate != nil || qj.Counts[jobrun.StateReady] != 1 {
				t.Errorf("idle: %+v", qj)
			}
		}
	}
	if !slices.Equal(names, []string{"default", "idle", "mail", "paused", "reports", "webhooks"}) {
		t.Errorf("queues %v", names)
	}
	var m metricsJSON
	getJSON(t, h, "/api/metrics", http.StatusOK, &m)
	for _, s := range jobrun.States {
		if m.Totals[s] != totals[s] || q.Totals[s] != totals[s] {
			t.Errorf("%s: metrics total %d, overview total %d, Counts %d", s, m.Totals[s], q.Totals[s], totals[s])
		}
	}
	if m.Queues["mail"][jobrun.StateDone] != 7 || m.Queues["default"][jobrun.StateFailed] != 1 || m.Throughput.WindowSeconds != 60 {
		t.Errorf("metrics: %s", mustMarshal(t, m))
	}

	var s struct{ Schedules []scheduleJSON }
	getJSON(t, h, "/api/schedules", http.StatusOK, &s)
	if len(s.Schedules) != 2 {
		t.Fatalf("schedules: %s", mustMarshal(t, s))
	}
	d, mr := s.Schedules[0], s.Schedules[1]
	if d.Name != "digest" || !d.SkipMissed || d.TimeZone != "" || mr.Name != "monthly-report" || mr.TimeZone != "Europe/Paris" ||
		!mr.SkipOverlapAlias || !mr.SkipOverlap || mr.Spec != "0 6 1 * *" || compact(mr.Args) != `{"to":"board@example.com"}` || mr.Next.Before(time.Now()) ||
		mr.SpecWords != "on the 1st of every month at 06:00 Europe/Paris" || d.SpecWords != "every hour" {
		t.Errorf("schedules: %s", mustMarshal(t, s))
	}
}

// TestThroughput checks that the jobs that end are counted per queue, from the
// runner's events, in the API and on the overview's chart.
func TestThroughput(t *testing.T) {
	f := openFixture(t)
	h := New(f.r)
	f.populate(t)
	st := h.(*dashboard).stats
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// 7 mail jobs done, the image job and the webhook failed, the crm job retried.
	want := tally{Done: 7, Retrying: 1, Failed: 2}
	if err := st.wait(ctx, func() bool { return st.lastMinute("", time.Now()) == want }); err != nil {
		t.Fatalf("last minute: %+v, want %+v", st.lastMinute("", time.Now()), want)
	}
	var m metricsJSON
	getJSON(t, h, "/api/metrics", http.StatusOK, &m)
	if got := m.Throughput.tallyJSON; got != toTallyJSON(want) {
		t.Errorf("metrics throughput %+v, want %+v", got, want)
	}
	var q queuesJSON
	getJSON(t, h, "/api/queues", http.StatusOK, &q)
	for _, qj := range q.Queues {
		if qj.Name == "mail" && qj.LastMinute.Done != 7 {
			t.Errorf("mail's last minute: %+v", qj.LastMinute)
		}
	}
	body := get(t, h, "/", http.StatusOK)
	contains(t, "overview", body, `class="done"`, `class="retrying"`, `class="failed"`, "done 7", "retried 1", "failed 2")
}

func TestRing(t *testing.T) {
	var r ring
	t0 := time.Unix(1_000_000, 0)
	r.add(t0, tally{Done: 1})
	r.add(t0.Add(500*time.Millisecond), tally{Failed: 1})
	r.add(t0.Add(2*time.Second), tally{Done: 3})
	r.add(t0.Add(-historySeconds*time.Second), tally{Done: 100}) // a lap before t0: dropped
	r.add(t0.Add(4*time.Second), tally{Retrying: 2})

	now := t0.Add(4 * time.Second)
	got := r.bars(now, 5, 1)
	want := []tally{{Done: 1, Failed: 1}, {}, {Done: 3}, {}, {Retrying: 2}}
	if !slices.Equal(got, want) {
		t.Errorf("bars of 1s: %v, want %v", got, want)
	}
	if got := r.bars(now, 2, 3); !slices.Equal(got, []tally{{Done: 1, Failed: 1}, {Done: 3, Retrying: 2}}) {
		t.Errorf("bars of 3s: %v", got)
	}
	// A lap later every slot is stale.
	if got := r.bars(now.Add(historySeconds*time.Second), 5, 1); !slices.Equal(got, make([]tally, 5)) {
		t.Errorf("a lap later: %v", got)
	}
	// t0's slot holds t0's count only.
	if got := r.bars(t0, 1, 1); got[0] != (tally{Done: 1, Failed: 1}) {
		t.Errorf("t0: %v", got)
	}
}

func TestChart(t *testing.T) {
	c := newChart([]tally{{}, {Done: 2, Failed: 2}, {Done: 1}}, 300, 100, 5)
	if c.Max != 4 || c.Sum != (tally{Done: 3, Failed: 2}) || c.Span != "15s" || c.Step != "5s" {
		t.Errorf("chart %+v", c)
	}
	want := []chartRect{
		{X: 100, Y: 50, W: 99, H: 50, Class: "done", Title: "5s ago: 2 done"},
		{X: 100, Y: 0, W: 99, H: 50, Class: "failed", Title: "5s ago: 2 failed"},
		{X: 200, Y: 75, W: 99, H: 25, Class: "done", Title: "0s ago: 1 done"},
	}
	if !slices.Equal(c.Rects, want) {
		t.Errorf("rects %+v, want %+v", c.Rects, want)
	}
	if c := newChart(make([]tally, 3), 300, 100, 5); len(c.Rects) != 0 || c.Max != 0 {
		t.Errorf("empty chart %+v", c)
	}
}

func TestParseProgress(t *testing.T) {
	for in, want := range map[string]*progressBar{
		`40`:                          {Value: 40, Max: 100, Label: "40%"},
		`12.5`:                        {Value: 12.5, Max: 100, Label: "12.5%"},
		`{"step":3,"of":5}`:           {Value: 3, Max: 5, Label: "3 of 5"},
		`{"done":30,"total":120}`:     {Value: 30, Max: 120, Label: "30 of 120"},
		`{"percent":75,"phase":"up"}`: {Value: 75, Max: 100, Label: "75%"},
		`150`:                         nil,
		`"half"`:                      nil,
		`{"step":6,"of":5}`:           nil,
		`{"phase":"upload"}`:          nil,
		``:                            nil,
	} {
		got := parseProgress(json.RawMessage(in))
		if (got == nil) != (want == nil) || got != nil && *got != *want {
			t.Errorf("parseProgress(%s) = %+v, want %+v", in, got, want)
		}
	}
}

func TestUnescapeHTML(t *testing.T) {
	for in, want := range map[string]string{
		`"\u003cb\u003e \u0026 \u003C"`: `"<b> & <"`,
		`"\\u003cb"`:                    `"\\u003cb"`, // an escaped backslash, then text
		`"\\\u003c"`:                    `"\\<"`,
		`"\u00e9\n"`:                    `"\u00e9\n"`,
		`"end\`:                         `"end\`,
	} {
		if got := unescapeHTML([]byte(in)); got != want {
			t.Errorf("unescapeHTML(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestTimeline(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	in := &jobrun.Info{
		State: jobrun.StateRetrying, Attempt: 2, CreatedAt: t0, StartedAt: t0.Add(2 * time.Minute), RunAt: t0.Add(time.Hour),
		Errors: []jobrun.AttemptError{
			{Attempt: 1, At: t0.Add(time.Second), Error: "boom\nstack"},
			{Attempt: 2, At: t0.Add(2*time.Minute + time.Second), Error: "again"},
		},
	}
	var got []string
	for _, e := range timeline(in, t0.Add(3*time.Minute)) {
		got = append(got, e.Label+"|"+e.Detail+"|"+map[bool]string{true: "future"}[e.Future])
	}
	want := []string{"enqueued||", "attempt 1 failed|boom|", "latest attempt started||", "attempt 2 failed|again|", "next attempt due||future"}
	if !slices.Equal(got, want) {
		t.Errorf("timeline:\n%q\nwant\n%q", got, want)
	}
}

func compact(v json.RawMessage) string { return compactJSON(v) }

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
