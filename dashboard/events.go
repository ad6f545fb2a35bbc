package dashboard

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/internal/wire"
)

// The events sent to the runner (Runner.Send, SendEvent): their list and the page of
// one event with the runs it started, and the same in the JSON API.
//
// An event's data is the args of the runs it starts, so WithRedactedArgs hides it as
// it hides theirs: always without kinds; with kinds, when one of its runs is of a
// redacted kind or can no longer be read (a run retention or Delete removed, whose
// kind is unknown).

// eventRun is a run an event started: its job, nil if the job was deleted since.
type eventRun struct {
	ID  jobrun.ID
	Job *jobRow
}

// eventRuns reads the runs of ev.
func (d *dashboard) eventRuns(ctx context.Context, ev *jobrun.EventInfo) ([]eventRun, error) {
	runs := make([]eventRun, 0, len(ev.Runs))
	now := time.Now()
	for _, id := range ev.Runs {
		in, err := d.r.Get(ctx, id)
		switch {
		case errors.Is(err, jobrun.ErrNotFound):
			runs = append(runs, eventRun{ID: id})
		case err != nil:
			return nil, err
		default:
			row := d.jobRow(in, now)
			runs = append(runs, eventRun{ID: id, Job: &row})
		}
	}
	return runs, nil
}

// runsRedact reports whether the data of an event whose runs are runs is hidden.
func (c *config) runsRedact(runs []eventRun) bool {
	if c.redactAll {
		return true
	}
	if len(c.redactKinds) == 0 {
		return false
	}
	for _, run := range runs {
		if run.Job == nil || c.redactKinds[run.Job.Kind] {
			return true
		}
	}
	return false
}

// eventRedacted reports whether ev's data is hidden. It reads ev's runs only when
// WithRedactedArgs names kinds; if it cannot, the data is hidden.
func (d *dashboard) eventRedacted(ctx context.Context, ev *jobrun.EventInfo) bool {
	if d.cfg.redactAll || len(d.cfg.redactKinds) == 0 {
		return d.cfg.redactAll
	}
	runs, err := d.eventRuns(ctx, ev)
	return err != nil || d.cfg.runsRedact(runs)
}

// seqRedacted reports whether the data of event seq is hidden, for a step that
// received it; an event that cannot be read is hidden when kinds are redacted.
func (d *dashboard) seqRedacted(ctx context.Context, seq uint64) bool {
	if d.cfg.redactAll || len(d.cfg.redactKinds) == 0 {
		return d.cfg.redactAll
	}
	ev, err := d.r.GetEvent(ctx, seq)
	return err != nil || d.eventRedacted(ctx, ev)
}

// parseSeq parses an event's Seq from a path or query value.
func parseSeq(s string) (uint64, bool) {
	n, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(s), "#"), 10, 64)
	return n, err == nil && n > 0
}

// errBadSeq is returned for an event Seq that does not parse.
var errBadSeq = errors.New("no such event: an event's seq is a positive number")

// eventFilter reads an event list's filter from r's query; the pages leave the
// limit to Events' default.
func eventFilter(r *http.Request) (jobrun.EventFilter, error) {
	q := r.URL.Query()
	f := jobrun.EventFilter{Name: q.Get("name"), Cursor: q.Get("cursor")}
	if s := q.Get("oldest"); s != "" {
		var err error
		if f.Oldest, err = strconv.ParseBool(s); err != nil {
			return f, err
		}
	}
	return f, nil
}

type eventsData struct {
	Name     string
	Oldest   bool
	SeqQuery string
	NotFound bool // the searched Seq is no event
	Events   []eventRow
	Pager    *pager
}

func (*eventsData) title() string { return "Events" }

// eventRow is an event as the list shows it.
type eventRow struct {
	*jobrun.EventInfo
	Data     string // on one line, "" when redacted
	Redacted bool
}

// eventsPage lists the events, newest first, of one name or of all, a page at a
// time; a search by Seq goes to the event's page.
func (d *dashboard) eventsPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f, err := eventFilter(r)
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, "bad query: "+err.Error())
		return
	}
	data := &eventsData{Name: f.Name, Oldest: f.Oldest, SeqQuery: strings.TrimSpace(r.URL.Query().Get("seq"))}
	if data.SeqQuery != "" {
		if seq, ok := parseSeq(data.SeqQuery); ok {
			if _, err := d.r.GetEvent(ctx, seq); err == nil {
				redirect(w, r, "events/"+strconv.FormatUint(seq, 10))
				return
			} else if !errors.Is(err, jobrun.ErrNotFound) {
				d.failErr(w, r, err)
				return
			}
		}
		data.NotFound = true
	}
	page, err := d.r.Events(ctx, f)
	if err != nil {
		d.failErr(w, r, err)
		return
	}
	data.Pager = newPager(r.URL.Query(), f.Cursor, page.Next, func(cursor string, prev []string, n int) string {
		v := url.Values{}
		if f.Name != "" {
			v.Set("name", f.Name)
		}
		if f.Oldest {
			v.Set("oldest", "true")
		}
		pageQuery(v, cursor, prev, n)
		if len(v) == 0 {
			return "events"
		}
		return "events?" + v.Encode()
	}, f.Oldest)
	for _, ev := range page.Events {
		row := eventRow{EventInfo: ev, Redacted: d.eventRedacted(ctx, ev)}
		if !row.Redacted {
			row.Data = firstLine(compactJSON(ev.Data), 200)
		}
		data.Events = append(data.Events, row)
	}
	d.render(w, r, http.StatusOK, "events", data)
}

type eventData struct {
	*jobrun.EventInfo
	Data     string // indented JSON, "" when redacted
	Redacted bool
	Jobs     []eventRun
}

func (e *eventData) title() string { return "Event #" + strconv.FormatUint(e.Seq, 10) }

// eventPage shows one event: its data and the runs it started, with their state.
func (d *dashboard) eventPage(w http.ResponseWriter, r *http.Request) {
	ev, ok := d.pathEvent(w, r)
	if !ok {
		return
	}
	runs, err := d.eventRuns(r.Context(), ev)
	if err != nil {
		d.failErr(w, r, err)
		return
	}
	data := &eventData{EventInfo: ev, Jobs: runs, Redacted: d.cfg.runsRedact(runs)}
	if !data.Redacted {
		data.Data = indentJSON(ev.Data)
	}
	d.render(w, r, http.StatusOK, "event", data)
}

// pathEvent reads the event the request's path names, or answers with the error and
// returns false.
func (d *dashboard) pathEvent(w http.ResponseWriter, r *http.Request) (*jobrun.EventInfo, bool) {
	seq, ok := parseSeq(r.PathValue("seq"))
	if !ok {
		d.fail(w, r, http.StatusNotFound, errBadSeq.Error())
		return nil, false
	}
	ev, err := d.r.GetEvent(r.Context(), seq)
	if err != nil {
		d.failErr(w, r, err)
		return nil, false
	}
	return ev, true
}

// eventJSON is an event as the API shows it: jobrun.EventInfo's JSON, the shape the
// jobrun command's -json prints too, its data null with data_redacted true when
// redacted.
type eventJSON struct {
	jobrun.EventInfo
	DataRedacted bool `json:"data_redacted,omitempty"`
}

func newEventJSON(ev *jobrun.EventInfo, redacted bool) *eventJSON {
	e := &eventJSON{EventInfo: *ev}
	e.Data = wire.JSONValue(ev.Data)
	if redacted {
		e.Data, e.DataRedacted = nil, true
	}
	return e
}

// eventDetailJSON is one event as GET /api/events/{seq} answers it: its JSON, with
// what became of its runs beside them, as jobrun events FILE SEQ -json prints it.
type eventDetailJSON struct {
	eventJSON
	Jobs []runJSON `json:"jobs"`
}

// runJSON is a run of an event: its job's kind, queue and state, or the state
// "deleted" for a job no longer stored.
type runJSON struct {
	ID    jobrun.ID `json:"id"`
	Kind  string    `json:"kind,omitempty"`
	Queue string    `json:"queue,omitempty"`
	State string    `json:"state"`
}

type eventsPageJSON struct {
	Events []*eventJSON `json:"events"`
	Next   string       `json:"next"` // the cursor of the next page, "" after the last
}

// apiEvents mirrors the events page: query parameters name, oldest, limit (at most
// 1,000) and cursor.
func (d *dashboard) apiEvents(w http.ResponseWriter, r *http.Request) {
	f, err := eventFilter(r)
	if err == nil {
		if s := r.FormValue("limit"); s != "" {
			f.Limit, err = strconv.Atoi(s)
		}
	}
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, "bad query: "+err.Error())
		return
	}
	page, err := d.r.Events(r.Context(), f)
	if err != nil {
		d.failErr(w, r, err)
		return
	}
	out := eventsPageJSON{Events: []*eventJSON{}, Next: page.Next}
	for _, ev := range page.Events {
		out.Events = append(out.Events, newEventJSON(ev, d.eventRedacted(r.Context(), ev)))
	}
	writeJSON(w, http.StatusOK, out)
}

// apiEvent mirrors the page of one event.
func (d *dashboard) apiEvent(w http.ResponseWriter, r *http.Request) {
	ev, ok := d.pathEvent(w, r)
	if !ok {
		return
	}
	out, err := d.eventDetail(r.Context(), ev)
	if err != nil {
		d.failErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// eventDetail is ev as GET /api/events/{seq} answers it, with what became of its
// runs.
func (d *dashboard) eventDetail(ctx context.Context, ev *jobrun.EventInfo) (*eventDetailJSON, error) {
	runs, err := d.eventRuns(ctx, ev)
	if err != nil {
		return nil, err
	}
	out := &eventDetailJSON{eventJSON: *newEventJSON(ev, d.cfg.runsRedact(runs)), Jobs: []runJSON{}}
	for _, run := range runs {
		if run.Job == nil {
			out.Jobs = append(out.Jobs, runJSON{ID: run.ID, State: "deleted"})
			continue
		}
		out.Jobs = append(out.Jobs, runJSON{ID: run.ID, Kind: run.Job.Kind, Queue: run.Job.Queue, State: string(run.Job.State)})
	}
	return out, nil
}
