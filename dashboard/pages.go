package dashboard

import (
	"bytes"
	"cmp"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jobrun/jobrun"
)

//go:embed assets
var assets embed.FS

// templates holds one template per page, each the layout plus the page's content.
var templates = parseTemplates()

var funcs = template.FuncMap{
	"ago":        func(t time.Time) string { return relative(time.Now(), t) },
	"abs":        absolute,
	"milli":      milli,
	"iso":        machine,
	"seg":        seg,
	"id":         idStr,
	"actionsFor": actionsFor,
}

// jobActions is what the "job-actions" template needs: the job, what its state
// allows, and the page to return to ("" for the job's own).
type jobActions struct {
	ID jobrun.ID
	can
	Return string
}

func actionsFor(v any, ret string) jobActions {
	switch j := v.(type) {
	case jobRow:
		return jobActions{ID: j.ID, can: j.can, Return: ret}
	case *jobData:
		return jobActions{ID: j.ID, can: j.can, Return: ret}
	}
	panic(fmt.Sprintf("dashboard: actionsFor(%T)", v))
}

func parseTemplates() map[string]*template.Template {
	layout := template.Must(template.New("").Funcs(funcs).ParseFS(assets, "assets/layout.html", "assets/history.html"))
	pages, err := fs.Glob(assets, "assets/pages/*.html")
	if err != nil {
		panic(err)
	}
	out := map[string]*template.Template{}
	for _, p := range pages {
		name := strings.TrimSuffix(p[strings.LastIndexByte(p, '/')+1:], ".html")
		out[name] = template.Must(template.Must(layout.Clone()).ParseFS(assets, p))
	}
	return out
}

// page is what the layout shows around every page's content.
type page struct {
	Title   string
	Nav     string // the navigation entry of the page
	Root    string // the relative reference to the mount point, for <base>
	Refresh int    // live refresh period in milliseconds, 0 for none
	Actions bool
	Now     time.Time
	Notice  string
	States  []jobrun.State
	Data    any
}

// render writes the page name with data, or an error if it fails.
func (d *dashboard) render(w http.ResponseWriter, r *http.Request, code int, name string, data any) {
	p := &page{
		Nav: name, Root: root(r), Actions: d.cfg.actions, Now: time.Now(),
		Refresh: int(max(d.cfg.refresh, 0) / time.Millisecond), Notice: notice(r.URL.Query()),
		States: jobrun.States, Data: data,
	}
	if code >= 400 {
		p.Refresh = 0
	}
	if t, ok := data.(interface{ title() string }); ok {
		p.Title = t.title()
	}
	var b bytes.Buffer
	if err := templates[name].ExecuteTemplate(&b, "layout", p); err != nil {
		http.Error(w, "render page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

// notices are the messages shown after an action, by the action's name; %s is the
// job ID or the count the redirect carries, checked to be a number.
var notices = map[string]string{
	"retry":        "Job #%s will run again.",
	"cancel":       "Job #%s: canceled (a running job stops when its handler returns).",
	"promote":      "Job #%s is ready to run now.",
	"delete":       "Job #%s deleted.",
	"pause":        "Queue paused: its jobs do not start until it is resumed.",
	"resume":       "Queue resumed.",
	"retry-failed": "%s failed jobs will run again.",
	"clean":        "%s finished jobs deleted.",
	"run":          "Schedule run now: job #%s enqueued.",
	"unschedule":   "Schedule removed.",

	"pause-schedule":  "Schedule paused: it does not fire until it is resumed.",
	"resume-schedule": "Schedule resumed: it fires from its next time on.",
}

func notice(q url.Values) string {
	if q.Get("done") == "bulk" {
		return bulkNotice(q)
	}
	msg, ok := notices[q.Get("done")]
	if !ok {
		return ""
	}
	if !strings.Contains(msg, "%s") {
		return msg
	}
	n := cmp.Or(q.Get("job"), q.Get("n"))
	if _, err := strconv.ParseUint(n, 10, 64); err != nil {
		return ""
	}
	return fmt.Sprintf(msg, n)
}

type errorPage struct {
	Code    int
	Status  string
	Message string
}

func (e *errorPage) title() string { return e.Status }

// stateCount is a number of jobs in a state, with the list it links to.
type stateCount struct {
	State jobrun.State
	N     int
	Href  string
}

func stateCounts(counts map[jobrun.State]int, queue string) []stateCount {
	out := make([]stateCount, len(jobrun.States))
	for i, s := range jobrun.States {
		out[i] = stateCount{State: s, N: counts[s], Href: listPage(queue, s)}
	}
	return out
}

type overviewData struct {
	History    *historyData
	Queues     []queueRow
	Totals     []stateCount
	Total      int
	Chart      *chart
	LastMinute tally
	Schedules  int
	Missed     int
}

func (*overviewData) title() string { return "Queues" }

type queueRow struct {
	Info       jobrun.QueueInfo
	Href       string
	Limit      string
	Counts     []stateCount
	Spark      *chart
	LastMinute tally
}

// The charts: the overview's shows the last 5 minutes in bars of 5 seconds; each
// queue's sparkline the same in bars of 10 seconds.
const (
	chartBars, chartStep = 60, 5
	sparkBars, sparkStep = 30, 10
)

func (d *dashboard) overviewPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	hr, err := parseRange(r.URL.Query().Get("range"))
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, "bad query: "+err.Error())
		return
	}
	infos, err := d.r.Queues(ctx)
	if err != nil {
		d.failErr(w, r, err)
		return
	}
	scheds, err := d.r.Schedules(ctx)
	if err != nil {
		d.failErr(w, r, err)
		return
	}
	now := time.Now()
	hist, err := d.history(ctx, "", hr, "", r.URL.Query(), now)
	if err != nil {
		d.failErr(w, r, err)
		return
	}
	data := &overviewData{
		History:    hist,
		Chart:      newChart(d.stats.bars("", now, chartBars, chartStep), 720, 120, chartStep),
		LastMinute: d.stats.lastMinute("", now),
		Schedules:  len(scheds),
		Missed:     d.stats.missedEvents(),
	}
	totals := map[jobrun.State]int{}
	for _, qi := range infos {
		for s, n := range qi.Counts {
			totals[s] += n
			data.Total += n
		}
		data.Queues = append(data.Queues, queueRow{
			Info: qi, Href: listPage(qi.Name, ""), Limit: limitText(qi),
			Counts:     stateCounts(qi.Counts, qi.Name),
			Spark:      newChart(d.stats.bars(qi.Name, now, sparkBars, sparkStep), 120, 24, sparkStep),
			LastMinute: d.stats.lastMinute(qi.Name, now),
		})
	}
	data.Totals = stateCounts(totals, "")
	d.render(w, r, http.StatusOK, "overview", data)
}

type jobsData struct {
	History    *historyData // a queue's, nil for every queue's list
	Range      string       // the history's range when not the default, for the links
	Queue      string       // "" for every queue
	Paused     bool
	State      jobrun.State
	Kind, Tag  string
	IDQuery    string
	NotFound   bool // the searched ID is no job
	Tabs       []tab
	Jobs       []jobRow
	Self       string // this list's path and query, relative to the mount point
	Action     string // the search form's target
	Pager      *pager
	Matching   int    // jobs that match the filter, -1 if unknown (a kind or tag)
	Resume     string // where a bulk action on all matching jobs stopped, to go on from
	Finished   bool   // State is a final state: offer to clean
	FailedHere int    // failed jobs in this list's queue(s): offer to retry them
}

func (j *jobsData) title() string {
	if j.Queue != "" {
		return "Queue " + j.Queue
	}
	return "Jobs"
}

type tab struct {
	Label   string
	State   jobrun.State
	N       int
	Href    string
	Current bool
}

// jobRow is a job as a list shows it.
type jobRow struct {
	*jobrun.Info
	When         time.Time // the time that matters in its state
	WhenLabel    string
	Args         string // a preview on one line, "" when redacted
	Redacted     bool
	RunTime      string       // how long its latest attempt ran, or has run for while running
	Progress     *progressBar // a running job's progress, if it tells a fraction
	ProgressJSON string       // a running job's progress otherwise, on one line
	Error        string       // the first line of its last error
	Failing      bool         // it failed and has not succeeded since: the error shows in red
	can
}

// can says which actions a job's state allows.
type can struct {
	Retry, Cancel, Promote, Delete bool
	ConfirmRetry                   bool // retry asks first: the job is done
}

func allowed(s jobrun.State) can {
	return can{
		Retry:   s == jobrun.StateDone || s == jobrun.StateFailed || s == jobrun.StateCanceled,
		Cancel:  s == jobrun.StateScheduled || s == jobrun.StateReady || s == jobrun.StateRunning || s == jobrun.StateRetrying,
		Promote: s == jobrun.StateScheduled || s == jobrun.StateRetrying,
		Delete:  s != jobrun.StateRunning,

		ConfirmRetry: s == jobrun.StateDone,
	}
}

// Lengths of a list row's previews, in runes.
const (
	rowArgs  = 60
	rowError = 120
)

// jobRow lays out a job for a list at now.
func (d *dashboard) jobRow(in *jobrun.Info, now time.Time) jobRow {
	row := jobRow{Info: in, Error: firstLine(in.LastError, rowError), can: allowed(in.State),
		Redacted: d.cfg.redacted(in.Kind)}
	if !row.Redacted {
		row.Args = firstLine(compactJSON(in.RawArgs), rowArgs)
	}
	switch in.State {
	case jobrun.StateScheduled, jobrun.StateRetrying:
		row.When, row.WhenLabel = in.RunAt, "due"
	case jobrun.StateRunning:
		row.When, row.WhenLabel = in.StartedAt, "started"
	case jobrun.StateDone, jobrun.StateFailed, jobrun.StateCanceled:
		row.When, row.WhenLabel = in.FinishedAt, "finished"
	default:
		row.When, row.WhenLabel = in.RunAt, "ready"
	}
	switch {
	case in.State == jobrun.StateRunning && !in.StartedAt.IsZero():
		row.RunTime = "for " + formatDuration(now.Sub(in.StartedAt).Truncate(time.Second))
		if row.Progress = parseProgress(in.Progress); row.Progress == nil && len(in.Progress) > 0 {
			row.ProgressJSON = firstLine(compactJSON(in.Progress), rowArgs)
		}
	case !in.FinishedAt.IsZero() && !in.StartedAt.IsZero() && !in.FinishedAt.Before(in.StartedAt):
		row.RunTime = formatDuration(in.FinishedAt.Sub(in.StartedAt))
	}
	// A done job that failed before its last attempt succeeded is not failing, nor
	// is a canceled one: its error shows muted. A job waiting to run again (ready
	// or scheduled after a failure, or running it) still is.
	row.Failing = in.LastError != "" && in.State != jobrun.StateDone && in.State != jobrun.StateCanceled
	return row
}

// jobsPage lists jobs newest first, of one queue (/queues/{queue}) or of all (/jobs),
// by state, kind and tag, a page at a time; a search by ID goes to the job's page.
func (d *dashboard) jobsPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f, err := listFilter(r)
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, "bad query: "+err.Error())
		return
	}
	q := r.URL.Query()
	hr, err := parseRange(q.Get("range"))
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, "bad query: "+err.Error())
		return
	}
	data := &jobsData{Queue: f.Queue, State: f.State, Kind: f.Kind, Tag: f.Tag, IDQuery: strings.TrimSpace(q.Get("id"))}
	if hr.Name != historyRanges[0].Name {
		data.Range = hr.Name
	}
	if data.IDQuery != "" {
		if id, ok := parseID(data.IDQuery); ok {
			if _, err := d.r.Get(ctx, id); err == nil {
				redirect(w, r, "jobs/"+idStr(id))
				return
			} else if !errors.Is(err, jobrun.ErrNotFound) {
				d.failErr(w, r, err)
				return
			}
		}
		data.NotFound = true
	}
	counts, err := d.r.Counts(ctx, f.Queue)
	if err != nil {
		d.failErr(w, r, err)
		return
	}
	if f.Queue != "" {
		queues, err := d.r.Queues(ctx)
		if err != nil {
			d.failErr(w, r, err)
			return
		}
		for _, q := range queues {
			if q.Name == f.Queue {
				data.Paused = q.Paused
			}
		}
	}
	page, err := d.r.List(ctx, f)
	if err != nil {
		d.failErr(w, r, err)
		return
	}

	base := listPage(f.Queue, "")
	data.Action = base
	href := func(state jobrun.State, cursor string, prev []string, n int) string {
		v := url.Values{}
		for k, s := range map[string]string{"state": string(state), "kind": f.Kind, "tag": f.Tag, "range": data.Range} {
			if s != "" {
				v.Set(k, s)
			}
		}
		pageQuery(v, cursor, prev, n)
		if len(v) == 0 {
			return base
		}
		return base + "?" + v.Encode()
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	data.Tabs = append(data.Tabs, tab{Label: "all", N: total, Href: href("", "", nil, 1), Current: f.State == ""})
	for _, s := range jobrun.States {
		data.Tabs = append(data.Tabs, tab{Label: string(s), State: s, N: counts[s], Href: href(s, "", nil, 1), Current: f.State == s})
	}
	data.Pager = newPager(q, f.Cursor, page.Next, func(cursor string, prev []string, n int) string {
		return href(f.State, cursor, prev, n)
	}, false)
	data.Self = data.Pager.Self
	data.Matching = -1
	if f.Kind == "" && f.Tag == "" {
		data.Matching = total
		if f.State != "" {
			data.Matching = counts[f.State]
		}
	}
	data.Resume = q.Get("resume")
	data.Finished = f.State == jobrun.StateDone || f.State == jobrun.StateFailed || f.State == jobrun.StateCanceled
	data.FailedHere = counts[jobrun.StateFailed]
	now := time.Now()
	for _, in := range page.Jobs {
		data.Jobs = append(data.Jobs, d.jobRow(in, now))
	}
	if f.Queue != "" {
		if data.History, err = d.history(ctx, f.Queue, hr, base, q, now); err != nil {
			d.failErr(w, r, err)
			return
		}
	}
	d.render(w, r, http.StatusOK, "jobs", data)
}

type jobData struct {
	*jobrun.Info
	Args         string
	ArgsRedacted bool
	Result       string
	ProgressJSON string
	Progress     *progressBar
	Attempts     []attemptRow // every attempt, oldest first
	Metadata     []keyValue   // Info.Metadata by key
	Timeline     []timelineEntry
	StepRows     []stepView // Info's steps in the order they started
	Invoking     bool       // scheduled until its children end, not for a time
	QueueHref    string
	can
}

type keyValue struct{ Key, Value string }

func (j *jobData) title() string { return "Job #" + idStr(j.ID) }

// timelineEntry is one step of a job's life, from its timestamps and error history.
type timelineEntry struct {
	At     time.Time
	Label  string
	Detail string
	FireAt time.Time // the schedule's fire an enqueue was for, shown after Detail
	Class  string    // a state, for the dot's color
	Future bool
}

// timeline orders what a job's Info tells of its life. jobrun keeps the start of the
// latest attempt only, so earlier attempts show by their failures.
func timeline(in *jobrun.Info, now time.Time) []timelineEntry {
	var tl []timelineEntry
	enq := timelineEntry{At: in.CreatedAt, Label: "enqueued", Class: "ready"}
	if in.Schedule != "" {
		enq.Detail, enq.FireAt = "by schedule "+in.Schedule, in.FireAt
	}
	tl = append(tl, enq)
	for _, e := range in.Errors {
		tl = append(tl, timelineEntry{At: e.At, Label: "attempt " + itoa(e.Attempt) + " failed",
			Detail: firstLine(e.Error, 160), Class: "failed"})
	}
	if !in.StartedAt.IsZero() {
		label := "attempt " + itoa(in.Attempt) + " started"
		if in.State == jobrun.StateReady || in.State == jobrun.StateScheduled || in.State == jobrun.StateRetrying {
			label = "latest attempt started"
		}
		tl = append(tl, timelineEntry{At: in.StartedAt, Label: label, Class: "running"})
	}
	switch in.State {
	case jobrun.StateScheduled, jobrun.StateRetrying, jobrun.StateReady:
		if in.RunAt.Sub(in.CreatedAt) >= time.Second {
			label := "due"
			if in.State == jobrun.StateRetrying {
				label = "next attempt due"
			}
			tl = append(tl, timelineEntry{At: in.RunAt, Label: label, Class: string(in.State), Future: in.RunAt.After(now)})
		}
	case jobrun.StateDone, jobrun.StateFailed, jobrun.StateCanceled:
		e := timelineEntry{At: in.FinishedAt, Label: string(in.State), Class: string(in.State)}
		if in.State == jobrun.StateFailed {
			e.Detail = firstLine(in.LastError, 160)
		}
		tl = append(tl, e)
	}
	slices.SortStableFunc(tl, func(a, b timelineEntry) int { return a.At.Compare(b.At) })
	return tl
}

func (d *dashboard) jobPage(w http.ResponseWriter, r *http.Request) {
	in, ok := d.pathJob(w, r)
	if !ok {
		return
	}
	now := time.Now()
	data := &jobData{
		Info: in, Result: indentJSON(in.Result), ProgressJSON: indentJSON(in.Progress),
		Progress: parseProgress(in.Progress), Timeline: timeline(in, now), StepRows: d.stepViews(r.Context(), in, now),
		QueueHref: listPage(in.Queue, ""), can: allowed(in.State),
	}
	for _, s := range in.Steps {
		data.Invoking = data.Invoking || s.State == "invoking" && in.State == jobrun.StateScheduled
	}
	if d.cfg.redacted(in.Kind) {
		data.ArgsRedacted = true
	} else {
		data.Args = indentJSON(in.RawArgs)
	}
	data.Attempts = attemptRows(in, now)
	for _, k := range slices.Sorted(maps.Keys(in.Metadata)) {
		data.Metadata = append(data.Metadata, keyValue{k, in.Metadata[k]})
	}
	d.render(w, r, http.StatusOK, "job", data)
}

type schedulesData struct {
	Schedules []scheduleRow
}

func (*schedulesData) title() string { return "Schedules" }

type scheduleRow struct {
	jobrun.ScheduleInfo
	Zone      string
	Words     string // the spec in words, "" if they would only repeat it
	NextLocal string // the next fire in the schedule's zone
	Args      string
	Redacted  bool
}

func (d *dashboard) schedulesPage(w http.ResponseWriter, r *http.Request) {
	infos, err := d.r.Schedules(r.Context())
	if err != nil {
		d.failErr(w, r, err)
		return
	}
	data := &schedulesData{}
	for _, s := range infos {
		row := scheduleRow{ScheduleInfo: s, Zone: cmp.Or(scheduleZone(s), "local"), Redacted: d.cfg.redacted(s.Kind)}
		if !s.Next.IsZero() {
			row.NextLocal = inZone(s.Next, scheduleZone(s))
		}
		if w := specInWords(s.Spec, s.TimeZone); w != s.Spec {
			row.Words = w
		}
		if !row.Redacted {
			row.Args = firstLine(compactJSON(s.Args), 200)
		}
		data.Schedules = append(data.Schedules, row)
	}
	d.render(w, r, http.StatusOK, "schedules", data)
}
