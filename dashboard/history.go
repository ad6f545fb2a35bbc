package dashboard

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jobrun/jobrun"
)

// The history charts of the overview (every queue summed) and of a queue's page,
// and GET /api/history, read from Runner.History: the runner keeps a point per
// queue and minute with activity in the file for 7 days, stored once the minute is
// over, so the history survives restarts and shows under jobrun serve, where no job
// runs. The live chart of the overview (throughput.go) covers the current minute,
// which the history does not have yet.

// historyKept is how long the runner keeps its history (see Runner.History).
const historyKept = 7 * 24 * time.Hour

// historyRange is a span the history charts show, in buckets of Step.
type historyRange struct {
	Name  string // the query value: "1h", "24h", "7d"
	Label string // "last hour"
	Span  time.Duration
	Step  time.Duration
	Each  string        // what one bucket covers, "1 min"
	tick  time.Duration // between the labels of the time axis
	ticks string        // their format (data-local): "hm" or "dhm"
}

// historyRanges are the charts' ranges, the default first.
var historyRanges = []historyRange{
	{Name: "1h", Label: "last hour", Span: time.Hour, Step: time.Minute, Each: "1 min", tick: 15 * time.Minute, ticks: "hm"},
	{Name: "24h", Label: "last 24 hours", Span: 24 * time.Hour, Step: 15 * time.Minute, Each: "15 min", tick: 6 * time.Hour, ticks: "hm"},
	{Name: "7d", Label: "last 7 days", Span: historyKept, Step: 2 * time.Hour, Each: "2 h", tick: 48 * time.Hour, ticks: "dhm"},
}

// since is the start of hr's buckets that end with the one of the minute before
// end.
func (hr historyRange) since(end time.Time) time.Time {
	return end.Add(-time.Minute).Truncate(hr.Step).Add(-(hr.Span/hr.Step - 1) * hr.Step)
}

// parseRange returns the range a page's query names, the default for "".
func parseRange(s string) (historyRange, error) {
	if s == "" {
		return historyRanges[0], nil
	}
	for _, hr := range historyRanges {
		if hr.Name == s {
			return hr, nil
		}
	}
	return historyRange{}, fmt.Errorf("range %q: want 1h, 24h or 7d", s)
}

// bucket is the activity of one bucket of time, of one queue or of every queue:
// the sums of the points in it.
type bucket struct {
	Start                                              time.Time
	Enqueued, Started, Done, Retried, Failed, Canceled int
	WaitTotal, WaitMax                                 time.Duration
	// Ready is the queue's size at the end of the bucket: the Ready of its latest
	// point, or for a bucket without one the size carried forward from the bucket
	// before. A queue's size changes through its activity, and a minute without a
	// point had none, so the size carried forward is the size then (jobs that
	// become due in such a minute, and so ready, count in the next point). Before a
	// queue's first point in the range its size is unknown, and counts for nothing;
	// Known tells whether any queue's size is known.
	Ready int
	Known bool
}

func (b *bucket) add(p *jobrun.HistoryPoint) {
	b.Enqueued += p.Enqueued
	b.Started += p.Started
	b.Done += p.Done
	b.Retried += p.Retried
	b.Failed += p.Failed
	b.Canceled += p.Canceled
	b.WaitTotal += p.WaitTotal
	b.WaitMax = max(b.WaitMax, p.WaitMax)
}

// finished counts the attempts that ended in b.
func (b *bucket) finished() int { return b.Done + b.Retried + b.Failed + b.Canceled }

// meanWait is the mean wait from due to start of the attempts that started in b,
// from the sums of its points (not the mean of their means); false if none started.
func (b *bucket) meanWait() (time.Duration, bool) {
	if b.Started == 0 {
		return 0, false
	}
	return b.WaitTotal / time.Duration(b.Started), true
}

// historyEnd is the end of the minutes to show at now: now's minute's start, after
// the last minute that is over; or its end when points holds a point of now's
// minute, which a runner's Close stores when it stops mid-minute (a stopped
// application seen through jobrun serve).
func historyEnd(points []jobrun.HistoryPoint, now time.Time) time.Time {
	end := now.Truncate(time.Minute)
	if n := len(points); n > 0 && !points[n-1].Minute.Before(end) {
		end = end.Add(time.Minute)
	}
	return end
}

// bucketize sums points (oldest first, as Runner.History returns them) into
// buckets of step, aligned on step in UTC (step divides a day), from the one of
// since's minute to the one of the minute before end; points outside are left out.
func bucketize(points []jobrun.HistoryPoint, since, end time.Time, step time.Duration) []bucket {
	from := since.Truncate(time.Minute)
	if !end.After(from) {
		return nil
	}
	first := from.Truncate(step)
	n := int(end.Add(-time.Minute).Truncate(step).Sub(first)/step) + 1
	out := make([]bucket, n)
	for i := range out {
		out[i].Start = first.Add(time.Duration(i) * step)
	}
	if !slices.IsSortedFunc(points, func(a, b jobrun.HistoryPoint) int { return a.Minute.Compare(b.Minute) }) {
		points = slices.Clone(points)
		slices.SortStableFunc(points, func(a, b jobrun.HistoryPoint) int { return a.Minute.Compare(b.Minute) })
	}
	// Each queue's latest size, carried from bucket to bucket and summed in each.
	ready := map[string]int{}
	j := 0
	for i := range out {
		for ; j < len(points) && points[j].Minute.Before(out[i].Start.Add(step)); j++ {
			p := &points[j]
			if p.Minute.Before(from) || !p.Minute.Before(end) {
				continue
			}
			out[i].add(p)
			ready[p.Queue] = p.Ready
		}
		for _, n := range ready {
			out[i].Ready += n
		}
		out[i].Known = len(ready) > 0
	}
	return out
}

// historyCache keeps what Runner.History answered for a page's range for a few
// seconds: a page refreshes itself every DefaultRefresh, and the history changes
// once a minute, while 7 days of several queues are thousands of points to read.
type historyCache struct {
	mu      sync.Mutex
	entries map[historyKey]historyEntry
}

type historyKey struct{ queue, rng string }

type historyEntry struct {
	at     time.Time
	since  time.Time
	points []jobrun.HistoryPoint
}

// Bounds of the cache: how long an answer serves, and how many are kept (a page
// exists for any queue name asked for).
const (
	historyTTL     = 10 * time.Second
	historyEntries = 64
)

// points returns the points of queue from since on, read again if the cached ones
// are older than historyTTL or start later than since.
func (c *historyCache) points(ctx context.Context, r *jobrun.Runner, queue string, hr historyRange, since, now time.Time) ([]jobrun.HistoryPoint, error) {
	k := historyKey{queue, hr.Name}
	c.mu.Lock()
	e, ok := c.entries[k]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < historyTTL && !now.Before(e.at) && !e.since.After(since) {
		return e.points, nil
	}
	points, err := r.History(ctx, queue, since)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[historyKey]historyEntry{}
	}
	for key, old := range c.entries {
		if now.Sub(old.at) >= historyTTL {
			delete(c.entries, key)
		}
	}
	if len(c.entries) < historyEntries {
		c.entries[k] = historyEntry{at: now, since: since, points: points}
	}
	return points, nil
}

// historyData is the history section of the overview and of a queue's page.
type historyData struct {
	Range      historyRange
	Ranges     []rangeLink
	Live       bool // the page has the live chart, which shows the current minute
	Empty      bool // no point in the range
	Throughput *timeChart
	Size       *timeChart
	Wait       *timeChart
}

type rangeLink struct {
	historyRange
	Href    string
	Current bool
}

// history lays out the history section of queue ("" for every queue) for range
// hr at now, on the page of path (relative to the mount point) and query q.
func (d *dashboard) history(ctx context.Context, queue string, hr historyRange, path string, q url.Values, now time.Time) (*historyData, error) {
	// The end is now's minute, or the one after if a point of it is stored: read
	// from the since of the earlier.
	points, err := d.hist.points(ctx, d.r, queue, hr, hr.since(now.Truncate(time.Minute)), now)
	if err != nil {
		return nil, err
	}
	end := historyEnd(points, now)
	bs := bucketize(points, hr.since(end), end, hr.Step)
	// Every bucket after a point knows a size: the last knows none if none has one.
	hd := &historyData{Range: hr, Live: queue == "", Empty: len(bs) == 0 || !bs[len(bs)-1].Known}
	q = maps.Clone(q) // Del and Set replace q's entries, not the slices they share
	for _, k := range []string{"range", "done", "job", "n", "id"} {
		q.Del(k) // the range; an action's notice and a search by ID, shown once
	}
	for _, o := range historyRanges {
		v := maps.Clone(q)
		if o.Name != historyRanges[0].Name {
			v.Set("range", o.Name)
		}
		href := cmp.Or(path, "./")
		if len(v) > 0 {
			href += "?" + v.Encode()
		}
		hd.Ranges = append(hd.Ranges, rangeLink{historyRange: o, Href: href, Current: o.Name == hr.Name})
	}
	what := "every queue"
	if queue != "" {
		what = "queue " + queue
	}
	axis := newTimeAxis(bs, hr)
	hd.Throughput = throughputChart(bs, axis, what)
	hd.Size = sizeChart(bs, axis, what)
	hd.Wait = waitChart(bs, axis, what)
	return hd, nil
}

// pointsJSON is the answer of GET /api/history: the points as Runner.History
// returns them.
type pointsJSON struct {
	Queue  string                `json:"queue"` // "" for every queue
	Since  time.Time             `json:"since"` // since's minute: the first asked for
	Points []jobrun.HistoryPoint `json:"points"`
}

// bucketsJSON is the answer of GET /api/history?bucket=: the points summed by
// bucket, every bucket from since's to the one of the minute before until.
type bucketsJSON struct {
	Queue   string       `json:"queue"`
	Since   time.Time    `json:"since"`
	Until   time.Time    `json:"until"` // the end of the last minute stored
	Bucket  string       `json:"bucket"`
	Buckets []bucketJSON `json:"buckets"`
}

// bucketJSON is one bucket of GET /api/history?bucket=: the sums of its points,
// durations in nanoseconds as in jobrun.HistoryPoint.
type bucketJSON struct {
	Start     time.Time      `json:"start"`
	Enqueued  int            `json:"enqueued"`
	Started   int            `json:"started"`
	Done      int            `json:"done"`
	Retried   int            `json:"retried"`
	Failed    int            `json:"failed"`
	Canceled  int            `json:"canceled"`
	WaitTotal time.Duration  `json:"wait_total"`
	WaitMax   time.Duration  `json:"wait_max"`
	WaitMean  *time.Duration `json:"wait_mean"` // wait_total / started; null when none started
	Ready     *int           `json:"ready"`     // the size at the bucket's end (see bucket); null while unknown
}

// apiHistory answers the history of a queue (query: queue, since, bucket; see the
// package doc).
func (d *dashboard) apiHistory(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	now := time.Now()
	since, err := parseSince(q.Get("since"), now)
	var step time.Duration
	if err == nil && q.Get("bucket") != "" {
		step, err = parseBucket(q.Get("bucket"))
	}
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, "bad query: "+err.Error())
		return
	}
	queue := q.Get("queue")
	if kept := now.Truncate(time.Minute).Add(-historyKept); step > 0 && since.Before(kept) {
		since = kept // what is kept: at most a week of buckets
	}
	points, err := d.r.History(r.Context(), queue, since)
	if err != nil {
		d.failErr(w, r, err)
		return
	}
	since = since.Truncate(time.Minute).UTC()
	if step == 0 {
		out := pointsJSON{Queue: queue, Since: since, Points: []jobrun.HistoryPoint{}}
		for _, p := range points {
			p.Minute = p.Minute.UTC()
			out.Points = append(out.Points, p)
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	end := historyEnd(points, now).UTC()
	out := bucketsJSON{Queue: queue, Since: since, Until: end, Bucket: shortDuration(step), Buckets: []bucketJSON{}}
	for _, b := range bucketize(points, since, end, step) {
		bj := bucketJSON{Start: b.Start.UTC(), Enqueued: b.Enqueued, Started: b.Started, Done: b.Done, Retried: b.Retried,
			Failed: b.Failed, Canceled: b.Canceled, WaitTotal: b.WaitTotal, WaitMax: b.WaitMax}
		if mean, ok := b.meanWait(); ok {
			bj.WaitMean = &mean
		}
		if b.Known {
			bj.Ready = &b.Ready
		}
		out.Buckets = append(out.Buckets, bj)
	}
	writeJSON(w, http.StatusOK, out)
}

// parseSince reads the since of GET /api/history: an RFC 3339 time, or a duration
// before now ("90m", "24h", or days: "7d"); "" is the zero time, all that is kept.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 16)
		if err != nil {
			return time.Time{}, fmt.Errorf("since %q: want an RFC 3339 time or a duration such as 90m, 24h or 7d", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return time.Time{}, fmt.Errorf("since %q: want an RFC 3339 time or a duration such as 90m, 24h or 7d", s)
		}
	}
	if d < 0 {
		return time.Time{}, fmt.Errorf("since %q: a duration before now is not negative", s)
	}
	return now.Add(-d), nil
}

// errBucket is the error of a bucket that is no whole number of minutes dividing a
// day.
var errBucket = errors.New("want a whole number of minutes that divides a day, such as 1m, 15m or 2h")

// parseBucket reads the bucket of GET /api/history.
func parseBucket(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d%time.Minute != 0 || 24*time.Hour%d != 0 {
		return 0, fmt.Errorf("bucket %q: %w", s, errBucket)
	}
	return d, nil
}
