package dashboard

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/internal/wire"
)

// The JSON API mirrors the pages: GET /api/queues (overview), GET /api/metrics,
// GET /api/jobs and /api/queues/{queue}/jobs (lists), GET /api/jobs/{id} (one job),
// GET /api/events and /api/events/{seq} (events.go), GET /api/schedules, GET
// /api/check and GET /api/backup; every action has a POST route under /api too (see
// actions), and WithEnqueue adds POST /api/jobs and /api/events (enqueue.go).
// Field names are snake_case; times are RFC 3339. A job is jobrun.Info as its field
// tags put it, the shape the jobrun command's -json prints too, with BullMQ-style
// aliases beside; a schedule is jobrun.ScheduleInfo likewise.

// apiError is the body of an error answer: {"error": "...", "code": "..."}.
type apiError = wire.Error

// jobJSON is a job as the API shows it: jobrun.Info's JSON, and beside it data (the
// args, as BullMQ calls them; null with args when redacted) and failed_reason (the
// last error of a failed job, else null).
type jobJSON struct {
	jobrun.Info
	Steps        []stepJSON      `json:"steps,omitempty"` // Info's steps, in Info's order
	Data         json.RawMessage `json:"data"`
	DataRedacted bool            `json:"data_redacted,omitempty"`
	FailedReason *string         `json:"failed_reason"`
}

// stepJSON is a step as the API shows it: jobrun.StepInfo's JSON, and for a WaitFor
// whose received data is hidden (it is an event's, see eventRedacted), result null
// with result_redacted true.
type stepJSON struct {
	jobrun.StepInfo
	ResultRedacted bool `json:"result_redacted,omitempty"`
}

func (d *dashboard) jobJSON(ctx context.Context, in *jobrun.Info) *jobJSON {
	j := &jobJSON{Info: *in}
	j.RawArgs, j.Progress, j.Result = wire.JSONValue(in.RawArgs), wire.JSONValue(in.Progress), wire.JSONValue(in.Result)
	j.Data = j.RawArgs
	if d.cfg.redacted(in.Kind) {
		j.RawArgs, j.Data, j.DataRedacted = nil, nil, true
	}
	if in.State == jobrun.StateFailed {
		reason := in.LastError
		j.FailedReason = &reason
	}
	for _, s := range in.Steps {
		sj := stepJSON{StepInfo: s}
		sj.Result = wire.JSONValue(s.Result)
		if s.State == "done" && s.WaitEvent != "" && d.seqRedacted(ctx, s.Event) {
			sj.Result, sj.ResultRedacted = nil, true
		}
		j.Steps = append(j.Steps, sj)
	}
	return j
}

type countsJSON map[jobrun.State]int

type tallyJSON struct {
	Done     int `json:"done"`
	Retrying int `json:"retrying"` // attempts that failed and will be retried
	Failed   int `json:"failed"`
}

func toTallyJSON(t tally) tallyJSON {
	return tallyJSON{Done: t.Done, Retrying: t.Retrying, Failed: t.Failed}
}

type queueJSON struct {
	Name       string     `json:"name"`
	Workers    int        `json:"workers"` // 0 if this process does not run the queue
	Rate       *float64   `json:"rate"`    // jobs per second; null if unlimited
	Burst      int        `json:"burst"`
	Paused     bool       `json:"paused"`
	Counts     countsJSON `json:"counts"`
	LastMinute tallyJSON  `json:"last_minute"`
}

type queuesJSON struct {
	Queues     []queueJSON `json:"queues"`
	Totals     countsJSON  `json:"totals"`
	LastMinute tallyJSON   `json:"last_minute"`
}

// apiQueues mirrors the overview.
func (d *dashboard) apiQueues(w http.ResponseWriter, r *http.Request) {
	infos, err := d.r.Queues(r.Context())
	if err != nil {
		d.failErr(w, r, err)
		return
	}
	now := time.Now()
	out := queuesJSON{Queues: []queueJSON{}, Totals: countsJSON{}, LastMinute: toTallyJSON(d.stats.lastMinute("", now))}
	for _, s := range jobrun.States {
		out.Totals[s] = 0
	}
	for _, qi := range infos {
		q := queueJSON{Name: qi.Name, Workers: qi.Workers, Paused: qi.Paused, Counts: qi.Counts,
			LastMinute: toTallyJSON(d.stats.lastMinute(qi.Name, now))}
		if lim := float64(qi.Rate); lim > 0 && !math.IsInf(lim, 1) {
			q.Rate, q.Burst = &lim, qi.Burst
		}
		for s, n := range qi.Counts {
			out.Totals[s] += n
		}
		out.Queues = append(out.Queues, q)
	}
	writeJSON(w, http.StatusOK, out)
}

type metricsJSON struct {
	Queues       map[string]countsJSON `json:"queues"`
	Totals       countsJSON            `json:"totals"`
	Throughput   throughputJSON        `json:"throughput"`
	MissedEvents int                   `json:"missed_events"` // changes the dashboard could not keep up with
}

type throughputJSON struct {
	WindowSeconds int `json:"window_seconds"`
	tallyJSON
}

// apiMetrics answers the counts per queue and state, their totals, and the attempts
// that ended in the last minute.
func (d *dashboard) apiMetrics(w http.ResponseWriter, r *http.Request) {
	infos, err := d.r.Queues(r.Context())
	if err != nil {
		d.failErr(w, r, err)
		return
	}
	out := metricsJSON{Queues: map[string]countsJSON{}, Totals: countsJSON{},
		Throughput:   throughputJSON{WindowSeconds: 60, tallyJSON: toTallyJSON(d.stats.lastMinute("", time.Now()))},
		MissedEvents: d.stats.missedEvents()}
	for _, s := range jobrun.States {
		out.Totals[s] = 0
	}
	for _, qi := range infos {
		out.Queues[qi.Name] = qi.Counts
		for s, n := range qi.Counts {
			out.Totals[s] += n
		}
	}
	writeJSON(w, http.StatusOK, out)
}

type pageJSON struct {
	Jobs []*jobJSON `json:"jobs"`
	Next string     `json:"next"` // the cursor of the next page, "" after the last
}

// apiJobs mirrors the job lists: query parameters queue (on /api/jobs), state, kind,
// tag, oldest, limit (at most 1,000) and cursor.
func (d *dashboard) apiJobs(w http.ResponseWriter, r *http.Request) {
	f, err := listFilter(r)
	if err == nil {
		if s := r.FormValue("limit"); s != "" {
			f.Limit, err = strconv.Atoi(s)
		}
	}
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, "bad query: "+err.Error())
		return
	}
	page, err := d.r.List(r.Context(), f)
	if err != nil {
		d.failErr(w, r, err)
		return
	}
	out := pageJSON{Jobs: []*jobJSON{}, Next: page.Next}
	for _, in := range page.Jobs {
		out.Jobs = append(out.Jobs, d.jobJSON(r.Context(), in))
	}
	writeJSON(w, http.StatusOK, out)
}

// listFilter reads a job list's filter from r's path and query.
func listFilter(r *http.Request) (jobrun.Filter, error) {
	q := r.URL.Query()
	f := jobrun.Filter{
		Queue:  r.PathValue("queue"),
		State:  jobrun.State(q.Get("state")),
		Kind:   q.Get("kind"),
		Tag:    q.Get("tag"),
		Cursor: q.Get("cursor"),
	}
	if f.Queue == "" {
		f.Queue = q.Get("queue")
	}
	if s := q.Get("oldest"); s != "" {
		var err error
		if f.Oldest, err = strconv.ParseBool(s); err != nil {
			return f, err
		}
	}
	return f, nil
}

// apiJob mirrors the page of one job.
func (d *dashboard) apiJob(w http.ResponseWriter, r *http.Request) {
	in, ok := d.pathJob(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, d.jobJSON(r.Context(), in))
}

// scheduleJSON is a schedule as the API shows it: jobrun.ScheduleInfo's JSON, with
// its spec in words and skip_if_running (the option's former name) beside
// skip_overlap.
type scheduleJSON struct {
	jobrun.ScheduleInfo
	SpecWords        string `json:"spec_words"` // the spec in English, or the spec itself
	ArgsRedacted     bool   `json:"args_redacted,omitempty"`
	SkipOverlapAlias bool   `json:"skip_if_running"`
}

// apiSchedules mirrors the schedules page.
func (d *dashboard) apiSchedules(w http.ResponseWriter, r *http.Request) {
	infos, err := d.r.Schedules(r.Context())
	if err != nil {
		d.failErr(w, r, err)
		return
	}
	out := []scheduleJSON{}
	for _, s := range infos {
		sj := scheduleJSON{ScheduleInfo: s, SpecWords: specInWords(s.Spec, s.TimeZone), SkipOverlapAlias: s.SkipOverlap}
		sj.Args = wire.JSONValue(s.Args)
		if d.cfg.redacted(s.Kind) {
			sj.Args, sj.ArgsRedacted = nil, true
		}
		out = append(out, sj)
	}
	writeJSON(w, http.StatusOK, map[string]any{"schedules": out})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(apiError{Error: "encode answer: " + err.Error()})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// pathJob reads the job the request's path names, or answers with the error and
// returns false.
func (d *dashboard) pathJob(w http.ResponseWriter, r *http.Request) (*jobrun.Info, bool) {
	id, ok := parseID(r.PathValue("id"))
	if !ok {
		d.fail(w, r, http.StatusNotFound, errBadID.Error())
		return nil, false
	}
	in, err := d.r.Get(r.Context(), id)
	if err != nil {
		d.failErr(w, r, err)
		return nil, false
	}
	return in, true
}

// apiBackup streams a consistent copy of the database file (Runner.Backup), which
// Open accepts, while the jobs keep running. The copy's size follows it in the
// trailer wire.BackupSizeTrailer; a copy cut short has wire.BackupErrorTrailer
// instead. A dashboard that hides args (WithRedactedArgs) refuses it with 403
// Forbidden: the copy holds them all.
func (d *dashboard) apiBackup(w http.ResponseWriter, r *http.Request) {
	if d.cfg.redactAll || len(d.cfg.redactKinds) > 0 {
		d.fail(w, r, http.StatusForbidden, "backup refused: this dashboard hides args (WithRedactedArgs), and a copy of the file holds them all")
		return
	}
	h := w.Header()
	h.Set("Trailer", wire.BackupSizeTrailer+", "+wire.BackupErrorTrailer)
	cw := &countingWriter{w: w, header: func() {
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", `attachment; filename="jobs-backup.db"`)
		h.Set("Cache-Control", "no-store")
	}}
	n, err := d.r.Backup(r.Context(), cw)
	switch {
	case err != nil && cw.n == 0:
		d.failErr(w, r, err)
	case err != nil:
		h.Set(wire.BackupErrorTrailer, err.Error())
	default:
		h.Set(wire.BackupSizeTrailer, strconv.FormatInt(n, 10))
	}
}

// countingWriter counts what goes through it to w, calling header before the first
// write.
type countingWriter struct {
	w      io.Writer
	header func()
	n      int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.n == 0 && c.header != nil {
		c.header()
		c.header = nil
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// apiCheck recounts the jobs of every queue and state and answers the counters
// that disagree (Runner.CheckCounts without repair): {"mismatches": [...]}.
func (d *dashboard) apiCheck(w http.ResponseWriter, r *http.Request) {
	mm, err := d.r.CheckCounts(r.Context(), false)
	if err != nil {
		d.failErr(w, r, err)
		return
	}
	if mm == nil {
		mm = []jobrun.CountMismatch{}
	}
	writeJSON(w, http.StatusOK, wire.Check{Mismatches: mm})
}
