package dashboard

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobrun/jobrun"
)

// histArgs is the job of the history tests: it succeeds, fails for good (Fail), or
// fails its first attempt and waits an hour to be retried (Retry).
type histArgs struct {
	Fail  bool `json:"fail,omitempty"`
	Retry bool `json:"retry,omitempty"`
}

func (histArgs) Kind() string { return "hist" }

// openHistory opens a runner on path with the queues mail and other, histArgs
// going to mail unless told otherwise.
func openHistory(t *testing.T, path string, opts ...jobrun.Option) *jobrun.Runner {
	t.Helper()
	r, err := jobrun.Open(path, append([]jobrun.Option{jobrun.WithQueue("mail", 2, nil), jobrun.WithQueue("other", 1, nil)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[histArgs]) error {
		switch {
		case j.Args.Fail:
			return jobrun.Permanent(errors.New("bounced"))
		case j.Args.Retry && j.Attempt == 1:
			return errors.New("try again")
		}
		return nil
	}, jobrun.Queue("mail"), jobrun.Backoff(time.Hour, time.Hour), jobrun.Jitter(0))
	return r
}

// makeHistory runs jobs through r in a synctest bubble that starts at 2000-01-01
// 00:00 UTC, and leaves it at 00:02:30 with the two minutes stored:
//
//	00:00  mail: 3 enqueued; 1 waits 30s (its queue paused) and is done, 1 fails
//	       for good, 1 fails and is retried in an hour; a mean wait of 10s.
//	       other (paused): 2 enqueued, ready: its size is 2 from then on.
//	00:01  mail: 1 enqueued and done at once.
func makeHistory(t *testing.T, r *jobrun.Runner) {
	t.Helper()
	ctx := t.Context()
	run := func() {
		t.Helper()
		if err := r.RunUntilIdle(ctx); err != nil {
			t.Fatal(err)
		}
	}
	enqueue := func(args histArgs, opts ...jobrun.EnqueueOption) {
		t.Helper()
		if _, err := r.Enqueue(ctx, args, opts...); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{"mail", "other"} {
		if err := r.Pause(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	enqueue(histArgs{})
	enqueue(histArgs{}, jobrun.Queue("other"))
	enqueue(histArgs{}, jobrun.Queue("other"))
	time.Sleep(30 * time.Second)
	if err := r.Resume(ctx, "mail"); err != nil {
		t.Fatal(err)
	}
	run()
	enqueue(histArgs{Fail: true})
	enqueue(histArgs{Retry: true})
	run()
	time.Sleep(time.Minute) // 00:01:30
	enqueue(histArgs{})
	run()
	time.Sleep(time.Minute) // 00:02:30: the minute is over, and stored
	synctest.Wait()
}

// TestHistoryPages: the overview's history charts sum every queue and a queue's
// page shows its own, from what a real runner stored, in the three ranges; they
// survive a restart, and a minute that Close stored before it was over shows.
func TestHistoryPages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "jobs.db")
		r := openHistory(t, path)
		defer func() { r.Close() }()
		h := New(r)

		body := get(t, h, "/", http.StatusOK)
		contains(t, "overview without history", body, `<section id="history" class="panel history" data-live data-range="1h">`,
			`<p class="empty" id="history-empty">No activity recorded in the last hour.</p>`)
		lacks(t, "overview without history", body, `<svg class="hchart"`)
		contains(t, "queue without history", get(t, h, "/queues/mail", http.StatusOK), `No activity recorded in the last hour.`)

		makeHistory(t, r)
		const done0 = `: 1 done, 1 retried, 1 failed, 0 canceled; 5 enqueued`
		for _, tc := range []struct {
			target  string
			columns int      // per chart
			want    []string // of the page
		}{
			{"/", 60, []string{
				`data-range="1h"`, `<a href="./?range=24h" data-range="24h">last 24 hours</a>`,
				`<a href="./" data-range="1h" aria-current="true">last hour</a>`,
				// The minute 00:00, every queue summed: its title in UTC, which the
				// script writes in the browser's zone.
				`<title datetime="2000-01-01T00:00:00Z" data-local="dhm" data-suffix="` + done0 + `">Sat 1 00:00 UTC` + done0 + `</title>`,
				`data-suffix=": 1 done, 0 retried, 0 failed, 0 canceled; 1 enqueued"`, // 00:01
				`data-suffix=": mean 10s, longest 30s (3 started)"`,
				`data-suffix=": mean 0s, longest 0s (1 started)"`,
				// The size: mail's 0 and other's 2, carried into 00:01.
				`data-suffix=": 2 ready"`,
				`aria-label="Throughput of every queue, last hour in buckets of 1 min: 2 done, 1 retried, 1 failed, 0 canceled, 6 enqueued"`,
				`aria-label="Wait from due to start in every queue, last hour in buckets of 1 min: mean 7.5s, longest 30s over 4 starts"`,
				`<path class="line ready"`, `<path class="line mean"`, `<path class="line enqueued"`,
				`<rect class="done"`, `<rect class="retrying"`, `<rect class="failed"`,
				`<text class="x" x="`, `data-local="hm">23:15</text>`,
				`the live chart above has the current one`,
			}},
			// 24 hours: one bucket from 00:00 to 00:15, its mean wait from the sums
			// (30s over 4 starts), not the mean of the minutes' (10s and 0s).
			{"/?range=24h", 96, []string{
				`data-range="24h"`, `<a href="./?range=24h" data-range="24h" aria-current="true">`,
				`data-suffix=": mean 7.5s, longest 30s (4 started)"`,
				`data-suffix=": 2 done, 1 retried, 1 failed, 0 canceled; 6 enqueued"`,
			}},
			{"/?range=7d", 84, []string{`data-range="7d"`, `data-suffix=": mean 7.5s, longest 30s (4 started)"`, `data-local="dhm">`}},
			// A queue's page: its own history, the range kept by its links.
			{"/queues/other?range=24h&state=ready", 96, []string{
				`aria-label="Throughput of queue other, last 24 hours in buckets of 15 min: 0 done, 0 retried, 0 failed, 0 canceled, 2 enqueued"`,
				`aria-label="Queue size (ready jobs) of queue other, last 24 hours: latest 2, peak 2"`,
				`data-suffix=": none started"`,
				`<a href="queues/other?range=7d&amp;state=ready" data-range="7d">`,
				`<a href="queues/other?range=24h&amp;state=scheduled"`, // a tab
				`<input type="hidden" name="range" value="24h">`,
			}},
			{"/queues/other", 60, []string{`data-suffix=": 2 ready"`}},
		} {
			body := get(t, h, tc.target, http.StatusOK)
			contains(t, tc.target, body, tc.want...)
			if got := strings.Count(body, `<g class="col">`); got != 3*tc.columns {
				t.Errorf("%s: %d columns, want %d in each of 3 charts", tc.target, got, tc.columns)
			}
		}
		// A queue's size is carried forward from its latest point: other's 2, set at
		// 00:00, is its size at 00:01 too; before 00:00 it is unknown.
		other := get(t, h, "/queues/other", http.StatusOK)
		if got := strings.Count(other, `data-suffix=": 2 ready"`); got != 2 {
			t.Errorf("other's size is 2 in %d minutes, want 2 (00:00, and 00:01 carried forward)", got)
		}
		if got := strings.Count(other, `data-suffix=": size unknown"`); got != 58 {
			t.Errorf("other's size is unknown in %d minutes, want the 58 before 00:00", got)
		}
		lacks(t, "the live chart's note", other, `the live chart above`)
		for _, bad := range []string{"/?range=3d", "/queues/mail?range=1m"} {
			contains(t, bad, get(t, h, bad, http.StatusBadRequest), `bad query: range`)
		}

		// A minute that Close stores before it is over shows: the application
		// stopped, and jobrun serve opens its file read-only.
		if _, err := r.Enqueue(t.Context(), histArgs{}); err != nil {
			t.Fatal(err)
		}
		if err := r.RunUntilIdle(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		r = openHistory(t, path, jobrun.WithReadOnly())
		h = New(r)
		body = get(t, h, "/", http.StatusOK)
		contains(t, "after a restart", body, `data-suffix="`+done0+`"`,
			`<title datetime="2000-01-01T00:02:00Z" data-local="dhm" data-suffix=": 1 done, 0 retried, 0 failed, 0 canceled; 1 enqueued"`)
		lacks(t, "after a restart", body, `datetime="2000-01-01T00:03:00Z" data-local="dhm"`)
	})
}

// TestBucketize sums points into the buckets of each range: aligned on the bucket
// in UTC, the window's edges respected, counts added, the longest wait kept, the
// mean wait from the sums, and each queue's size carried forward and summed.
func TestBucketize(t *testing.T) {
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	points := []jobrun.HistoryPoint{
		{Queue: "a", Minute: at("2025-03-04T09:59:00Z"), Done: 100, Ready: 50}, // before since: left out
		{Queue: "a", Minute: at("2025-03-04T10:03:00Z"), Started: 1, Done: 1, WaitTotal: 10 * time.Second, WaitMax: 10 * time.Second, Ready: 7},
		{Queue: "b", Minute: at("2025-03-04T10:03:00Z"), Enqueued: 4, Ready: 3},
		{Queue: "a", Minute: at("2025-03-04T10:14:00Z"), Started: 9, Done: 8, Retried: 1, WaitTotal: 9 * time.Second, WaitMax: 2 * time.Second, Ready: 1},
		{Queue: "b", Minute: at("2025-03-04T10:31:00Z"), Failed: 2, Canceled: 1, Ready: 0},
		{Queue: "a", Minute: at("2025-03-04T10:40:00Z"), Done: 5}, // at end: left out
	}
	since, end := at("2025-03-04T10:00:30Z"), at("2025-03-04T10:40:00Z")

	t.Run("1m", func(t *testing.T) {
		bs := bucketize(points, since, end, time.Minute)
		if len(bs) != 40 || !bs[0].Start.Equal(at("2025-03-04T10:00:00Z")) || !bs[39].Start.Equal(at("2025-03-04T10:39:00Z")) {
			t.Fatalf("%d buckets from %v to %v, want 40 from 10:00 to 10:39", len(bs), bs[0].Start, bs[len(bs)-1].Start)
		}
		for i, want := range map[int]bucket{
			0:  {},                                            // the point of 09:59 is before since
			3:  {Enqueued: 4, Started: 1, Done: 1, Ready: 10}, // a's 7 and b's 3
			4:  {Ready: 10},                                   // carried forward
			14: {Started: 9, Done: 8, Retried: 1, Ready: 4},   // a's 1, b's 3 carried
			31: {Failed: 2, Canceled: 1, Ready: 1},            // a's 1 carried, b's 0
			39: {Ready: 1},
		} {
			b := bs[i]
			want.Start, want.Known = b.Start, i >= 3
			want.WaitTotal, want.WaitMax = b.WaitTotal, b.WaitMax
			if b != want {
				t.Errorf("bucket %d: %+v, want %+v", i, b, want)
			}
		}
		if m, ok := bs[14].meanWait(); !ok || m != time.Second {
			t.Errorf("bucket 14's mean wait: %v, %v; want 1s", m, ok)
		}
		if _, ok := bs[4].meanWait(); ok {
			t.Error("a bucket without starts has a mean wait")
		}
	})
	t.Run("15m", func(t *testing.T) {
		bs := bucketize(points, since, end, 15*time.Minute)
		if len(bs) != 3 || !bs[0].Start.Equal(at("2025-03-04T10:00:00Z")) {
			t.Fatalf("%d buckets from %v, want 3 from 10:00", len(bs), bs[0].Start)
		}
		b := bs[0]
		// The mean of the sums, 19s over 10 starts; the minutes' means are 10s and 1s.
		if m, _ := b.meanWait(); m != 1900*time.Millisecond || b.WaitMax != 10*time.Second || b.Done != 9 || b.Enqueued != 4 {
			t.Errorf("10:00–10:15: mean wait %v, %+v; want 1.9s, the longest 10s, 9 done, 4 enqueued", m, b)
		}
		if b.Ready != 4 || !b.Known || bs[1].Ready != 4 || bs[2].Ready != 1 {
			t.Errorf("sizes %d, %d, %d; want 4 (a's latest 1 and b's 3), 4 carried, 1", b.Ready, bs[1].Ready, bs[2].Ready)
		}
	})
	t.Run("2h", func(t *testing.T) {
		bs := bucketize(points, at("2025-02-25T10:00:00Z"), end, 2*time.Hour)
		if len(bs) != 85 || !bs[84].Start.Equal(at("2025-03-04T10:00:00Z")) {
			t.Fatalf("%d buckets to %v, want 85 to 10:00", len(bs), bs[len(bs)-1].Start)
		}
		if b := bs[83]; b.Done != 100 || b.Ready != 50 || !b.Known || bs[82].Known {
			t.Errorf("08:00–10:00: %+v; want 09:59's point, the first size known", b)
		}
		if b := bs[84]; b.Done != 9 || b.Failed != 2 || b.Ready != 1 {
			t.Errorf("10:00–12:00: %+v", b)
		}
	})
	t.Run("unsorted", func(t *testing.T) {
		rev := []jobrun.HistoryPoint{points[4], points[1]}
		bs := bucketize(rev, since, end, time.Minute)
		if bs[31].Failed != 2 || bs[3].Done != 1 || bs[31].Ready != 7 { // a's 7 carried, b's 0
			t.Errorf("points out of order: %+v, %+v", bs[3], bs[31])
		}
	})
	if bs := bucketize(points, end, end, time.Minute); bs != nil {
		t.Errorf("no minute between since and end: %d buckets", len(bs))
	}
}

// TestHistoryEnd: the charts end with the minute before now's, or with now's when
// a point of it is stored (a runner's Close stored it early).
func TestHistoryEnd(t *testing.T) {
	now := time.Date(2025, 3, 4, 10, 40, 30, 0, time.UTC)
	minute := now.Truncate(time.Minute)
	for _, tc := range []struct {
		latest time.Time
		want   time.Time
	}{
		{time.Time{}, minute},
		{minute.Add(-5 * time.Minute), minute},
		{minute, minute.Add(time.Minute)},
	} {
		var points []jobrun.HistoryPoint
		if !tc.latest.IsZero() {
			points = []jobrun.HistoryPoint{{Minute: tc.latest}}
		}
		if got := historyEnd(points, now); !got.Equal(tc.want) {
			t.Errorf("latest point %v: end %v, want %v", tc.latest, got, tc.want)
		}
	}
	for _, hr := range historyRanges {
		since := hr.since(minute)
		if n := len(bucketize(nil, since, minute, hr.Step)); n != int(hr.Span/hr.Step) {
			t.Errorf("range %s: %d buckets, want %d", hr.Name, n, hr.Span/hr.Step)
		}
	}
}

// TestHistoryQuery checks the values of since and bucket that GET /api/history takes.
func TestHistoryQuery(t *testing.T) {
	now := time.Date(2025, 3, 4, 10, 40, 30, 0, time.UTC)
	for s, want := range map[string]time.Time{
		"":                          {},
		"90m":                       now.Add(-90 * time.Minute),
		"24h":                       now.Add(-24 * time.Hour),
		"7d":                        now.Add(-7 * 24 * time.Hour),
		"0s":                        now,
		"2025-03-04T09:00:00Z":      time.Date(2025, 3, 4, 9, 0, 0, 0, time.UTC),
		"2025-03-04T11:00:00+02:00": time.Date(2025, 3, 4, 9, 0, 0, 0, time.UTC),
	} {
		if got, err := parseSince(s, now); err != nil || !got.Equal(want) {
			t.Errorf("since %q: %v, %v; want %v", s, got, err, want)
		}
	}
	for _, bad := range []string{"yesterday", "-1h", "-7d", "7.5d", "1w", "2025-03-04", "d", "99999999d"} {
		if _, err := parseSince(bad, now); err == nil {
			t.Errorf("since %q accepted", bad)
		}
	}
	for s, want := range map[string]time.Duration{"1m": time.Minute, "15m": 15 * time.Minute, "2h": 2 * time.Hour, "24h": 24 * time.Hour} {
		if got, err := parseBucket(s); err != nil || got != want {
			t.Errorf("bucket %q: %v, %v", s, got, err)
		}
	}
	for _, bad := range []string{"0", "0m", "-1m", "30s", "7m", "90s", "48h", "1x"} {
		if _, err := parseBucket(bad); err == nil {
			t.Errorf("bucket %q accepted", bad)
		}
	}
}

// TestAPIHistory: GET /api/history answers the runner's points, or with bucket
// their sums by bucket, and refuses bad values with 400 and the code invalid.
func TestAPIHistory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := openHistory(t, filepath.Join(t.TempDir(), "jobs.db"))
		defer r.Close()
		h := New(r)
		var empty map[string]any
		getJSON(t, h, "/api/history", http.StatusOK, &empty)
		if got := mustMarshal(t, empty); got != `{"points":[],"queue":"","since":"0001-01-01T00:00:00Z"}` {
			t.Errorf("no history: %s", got)
		}
		makeHistory(t, r)

		// The points, as Runner.History returns them.
		want, err := r.History(t.Context(), "", time.Time{})
		if err != nil || len(want) != 3 {
			t.Fatalf("the runner's history: %+v, %v", want, err)
		}
		var raw pointsJSON
		getJSON(t, h, "/api/history", http.StatusOK, &raw)
		if mustMarshal(t, raw.Points) != mustMarshal(t, want) {
			t.Errorf("GET /api/history: %s\nwant the points %s", mustMarshal(t, raw), mustMarshal(t, want))
		}
		var m map[string]any
		getJSON(t, h, "/api/history?queue=other", http.StatusOK, &m)
		point := m["points"].([]any)[0].(map[string]any)
		if len(m["points"].([]any)) != 1 || mustMarshal(t, point) !=
			`{"canceled":0,"done":0,"enqueued":2,"failed":0,"minute":"2000-01-01T00:00:00Z","queue":"other","ready":2,"retried":0,"started":0,"wait_max":0,"wait_total":0}` {
			t.Errorf("other's points: %s", mustMarshal(t, m))
		}
		for _, since := range []string{"1m30s", "2000-01-01T00:01:00Z", "2000-01-01T00:01:59.9Z"} {
			getJSON(t, h, "/api/history?queue=mail&since="+since, http.StatusOK, &raw)
			if len(raw.Points) != 1 || raw.Points[0].Done != 1 || !raw.Since.Equal(time.Date(2000, 1, 1, 0, 1, 0, 0, time.UTC)) {
				t.Errorf("mail since %s: %s", since, mustMarshal(t, raw))
			}
		}

		// Buckets: every one from since's to the last minute stored, ready null
		// until a point tells it.
		var b bucketsJSON
		getJSON(t, h, "/api/history?since=1h&bucket=15m", http.StatusOK, &b)
		if len(b.Buckets) != 5 || b.Bucket != "15m" || !b.Until.Equal(time.Date(2000, 1, 1, 0, 2, 0, 0, time.UTC)) {
			t.Fatalf("15m buckets: %s", mustMarshal(t, b))
		}
		last := b.Buckets[4]
		if got := mustMarshal(t, last); got != `{"start":"2000-01-01T00:00:00Z","enqueued":6,"started":4,"done":2,"retried":1,"failed":1,"canceled":0,`+
			`"wait_total":30000000000,"wait_max":30000000000,"wait_mean":7500000000,"ready":2}` {
			t.Errorf("the bucket of 00:00: %s", got)
		}
		if first := b.Buckets[0]; first.Ready != nil || first.WaitMean != nil || !first.Start.Equal(time.Date(1999, 12, 31, 23, 0, 0, 0, time.UTC)) {
			t.Errorf("the first bucket: %s", mustMarshal(t, first))
		}
		getJSON(t, h, "/api/history?queue=other&since=2000-01-01T00:00:00Z&bucket=1m", http.StatusOK, &b)
		if len(b.Buckets) != 2 || *b.Buckets[0].Ready != 2 || *b.Buckets[1].Ready != 2 || b.Buckets[1].Enqueued != 0 {
			t.Errorf("other by the minute (its size carried forward): %s", mustMarshal(t, b))
		}
		// Without since, or before what is kept: the 7 days kept.
		getJSON(t, h, "/api/history?bucket=2h", http.StatusOK, &b)
		if len(b.Buckets) != 85 || b.Buckets[84].Done != 2 {
			t.Errorf("2h buckets of the week kept: %d, the last %s", len(b.Buckets), mustMarshal(t, b.Buckets[len(b.Buckets)-1]))
		}
		getJSON(t, h, "/api/history?bucket=24h&since=1990-01-01T00:00:00Z", http.StatusOK, &b)
		if len(b.Buckets) != 8 {
			t.Errorf("days since 1990: %d buckets, want the 8 days of the week kept", len(b.Buckets))
		}

		for target, msg := range map[string]string{
			"/api/history?since=yesterday": `since "yesterday"`,
			"/api/history?since=-1h":       "negative",
			"/api/history?bucket=7m":       `bucket "7m": want a whole number of minutes that divides a day`,
			"/api/history?bucket=0":        `bucket "0"`,
			"/api/history?queue=%20bad":    "queue",
		} {
			res, body := do(t, h, http.MethodGet, target, nil)
			mustAPIError(t, target, res, body, http.StatusBadRequest, "invalid", msg)
		}
	})
}
