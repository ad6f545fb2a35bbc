package dashboard

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/internal/wire"
)

// The routes that feed the application new work, enabled by WithEnqueue: POST
// /api/jobs enqueues a job, POST /api/events sends an event. Their bodies are JSON
// (wire.Enqueue, wire.Event), and they answer 201 Created with the job or the
// event, as GET /api/jobs/{id} and GET /api/events/{seq} show them.

// maxEnqueueSize bounds the body of POST /api/jobs and /api/events: the args or
// data, which the runner limits to 1 MiB as JSON, with room for the options and
// for indentation.
const maxEnqueueSize = 1<<20 + 64<<10

// enqueueAllowed reports whether the request may enqueue, or answers why not: the
// routes need WithEnqueue, and authentication unless WithUnauthenticatedEnqueue;
// a browser's cross-origin request is refused, as for the actions; the body must
// be JSON, which a cross-site form cannot send. It bounds the body.
func (d *dashboard) enqueueAllowed(w http.ResponseWriter, r *http.Request) bool {
	switch {
	case !d.cfg.enqueue:
		d.fail(w, r, http.StatusForbidden, "enqueue is disabled: the application enables POST /api/jobs "+
			"and /api/events with dashboard.WithEnqueue")
		return false
	case len(d.cfg.auth) == 0 && !d.cfg.openEnqueue:
		d.fail(w, r, http.StatusForbidden, "enqueue needs authentication, and this dashboard has none: "+
			"the application configures it with dashboard.WithBearerToken, WithBasicAuth or WithAuth "+
			"(jobrun serve: -token), or opts out with dashboard.WithUnauthenticatedEnqueue")
		return false
	}
	if err := d.cop.Check(r); err != nil {
		d.fail(w, r, http.StatusForbidden, "cross-origin request refused: "+err.Error())
		return false
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		d.fail(w, r, http.StatusUnsupportedMediaType, `the body must be JSON, sent with "Content-Type: application/json"`)
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxEnqueueSize)
	return true
}

// readRequest reads the body of a request that enqueues into v, or answers why the
// request is refused or the body cannot be read.
func (d *dashboard) readRequest(w http.ResponseWriter, r *http.Request, v any) bool {
	if !d.enqueueAllowed(w, r) {
		return false
	}
	err := wire.Decode(r.Body, v)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		d.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over the limit of %d bytes", tooLarge.Limit))
	case err != nil:
		d.failErr(w, r, err)
	default:
		return true
	}
	return false
}

// apiEnqueue enqueues the job the body describes (wire.Enqueue) through
// Runner.Enqueue, so that the runner's rules apply as in the application: the
// kind's defaults, strict kinds (422 for a kind without handler), the limits of
// args and options (400). It answers 201 Created with {"ok": true, "id": n, "job":
// {...}}; a job refused by its key, 409 with the existing job's "id" beside the
// error.
func (d *dashboard) apiEnqueue(w http.ResponseWriter, r *http.Request) {
	var req wire.Enqueue
	if !d.readRequest(w, r, &req) {
		return
	}
	opts, err := req.EnqueueOptions()
	if err != nil {
		d.failErr(w, r, err)
		return
	}
	ctx := r.Context()
	id, err := d.r.Enqueue(ctx, req.JobArgs(), opts...)
	if errors.Is(err, jobrun.ErrDuplicate) {
		writeJSON(w, errorCode(err), apiError{Error: err.Error(), Code: wire.Code(err), ID: id})
		return
	}
	if err != nil {
		d.failErr(w, r, err)
		return
	}
	res := &actionResult{OK: true, ID: id}
	if in, err := d.r.Get(ctx, id); err == nil {
		res.Job = d.jobJSON(ctx, in)
	}
	w.Header().Set("Location", "jobs/"+idStr(id))
	writeJSON(w, http.StatusCreated, res)
}

// apiSend sends the event the body describes (wire.Event) through Runner.Send and
// answers 201 Created with it as GET /api/events/{seq} shows it: the event with
// "jobs", what became of its runs.
func (d *dashboard) apiSend(w http.ResponseWriter, r *http.Request) {
	var req wire.Event
	if !d.readRequest(w, r, &req) {
		return
	}
	ev := jobrun.Event{Name: req.Name, ID: req.ID}
	if req.Data != nil {
		ev.Data = req.Data
	}
	ctx := r.Context()
	info, err := d.r.Send(ctx, ev)
	if err != nil {
		d.failErr(w, r, err)
		return
	}
	out, err := d.eventDetail(ctx, info)
	if err != nil {
		d.failErr(w, r, err)
		return
	}
	w.Header().Set("Location", "events/"+strconv.FormatUint(info.Seq, 10))
	writeJSON(w, http.StatusCreated, out)
}
