package dashboard

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jobrun/jobrun"
)

// action is one state-changing operation. Its form route (pattern) redirects to a
// page; its API route ("/api" + pattern) answers the actionResult as JSON.
type action struct {
	name    string
	pattern string
	run     func(ctx context.Context, d *dashboard, r *http.Request) (*actionResult, error)
}

// actionResult is what an action answers: the JSON of its API route, and where its
// form route redirects.
type actionResult struct {
	OK          bool      `json:"ok"`
	Job         *jobJSON  `json:"job,omitempty"`   // the job after the action, for job actions but delete
	ID          jobrun.ID `json:"id,omitempty"`    // the job a schedule's "run now" enqueued
	Count       *int      `json:"count,omitempty"` // jobs retried or deleted by retry-failed or clean
	*bulkResult           // a bulk action's counts

	next string // the page to show after a form's action, relative to the mount point
}

// actions lists every action; routes registers each twice (form and API).
var actions = []action{
	{"retry", "/jobs/{id}/retry", jobAction((*jobrun.Runner).Retry)},
	{"cancel", "/jobs/{id}/cancel", jobAction((*jobrun.Runner).Cancel)},
	{"promote", "/jobs/{id}/promote", jobAction((*jobrun.Runner).Promote)},
	{"delete", "/jobs/{id}/delete", deleteJob},
	{"pause", "/queues/{queue}/pause", queueAction((*jobrun.Runner).Pause)},
	{"resume", "/queues/{queue}/resume", queueAction((*jobrun.Runner).Resume)},
	{"retry-failed", "/queues/{queue}/retry-failed", retryFailed},
	{"retry-failed", "/retry-failed", retryFailed},
	{"clean", "/queues/{queue}/clean", clean},
	{"clean", "/clean", clean},
	{"run", "/schedules/{name}/run", runSchedule},
	{"unschedule", "/schedules/{name}/delete", scheduleAction((*jobrun.Runner).Unschedule)},
	{"pause-schedule", "/schedules/{name}/pause", scheduleAction((*jobrun.Runner).PauseSchedule)},
	{"resume-schedule", "/schedules/{name}/resume", scheduleAction((*jobrun.Runner).ResumeSchedule)},
	{"bulk", "/jobs/bulk", bulk},
}

// confirms are the questions the form routes of some actions ask before they act,
// by action name: they return "" when there is nothing to ask. A form that posts
// confirm=1 is answered (dashboard.js sets it once the browser's own confirmation
// was accepted); without it the route answers a page that asks, whose button posts
// the same form with confirm=1. The API routes never ask.
var confirms = map[string]func(ctx context.Context, d *dashboard, r *http.Request) (string, error){
	"retry": confirmRetry,
	"bulk":  confirmBulk,
}

// maxFormSize bounds an action's request body; the forms hold a few short fields.
const maxFormSize = 64 << 10

// action returns the handler of a's form route, or with api of its API route. It
// refuses the action unless actions are enabled and the request is not a browser's
// cross-origin request; authentication was checked before.
func (d *dashboard) action(a action, api bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !d.cfg.actions {
			d.failCode(w, r, http.StatusForbidden, "read_only", "actions are disabled: this dashboard is read-only")
			return
		}
		if err := d.cop.Check(r); err != nil {
			d.fail(w, r, http.StatusForbidden, "cross-origin request refused: "+err.Error())
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormSize)
		if err := r.ParseForm(); err != nil {
			d.fail(w, r, http.StatusBadRequest, "bad form: "+err.Error())
			return
		}
		if ask := confirms[a.name]; ask != nil && !api && r.PostForm.Get("confirm") != "1" {
			question, err := ask(r.Context(), d, r)
			if err != nil {
				d.fail(w, r, errorCode(err), err.Error())
				return
			}
			if question != "" {
				d.askConfirm(w, r, question)
				return
			}
		}
		res, err := a.run(r.Context(), d, r)
		if err != nil {
			d.failErr(w, r, err)
			return
		}
		res.OK = true
		if api {
			writeJSON(w, http.StatusOK, res)
			return
		}
		next := res.next
		if ret := r.PostForm.Get("return"); safeReturn(ret) {
			next = ret
		}
		q := url.Values{"done": {a.name}}
		switch {
		case res.ID != 0:
			q.Set("job", idStr(res.ID))
		case res.Count != nil:
			q.Set("n", strconv.Itoa(*res.Count))
		case res.bulkResult != nil:
			b := res.bulkResult
			q.Set("bulk", b.Action)
			q.Set("n", strconv.Itoa(b.Done))
			q.Set("skipped", strconv.Itoa(b.Skipped))
			for reason, n := range b.Reasons {
				q.Set("skipped_"+reason, strconv.Itoa(n))
			}
			if b.Next != "" {
				q.Set("resume", b.Next)
			}
		case r.PathValue("id") != "":
			q.Set("job", r.PathValue("id"))
		}
		sep := "?"
		if strings.Contains(next, "?") {
			sep = "&"
		}
		redirect(w, r, next+sep+q.Encode())
	}
}

// errorCode maps the runner's errors, and a body over its limit, to HTTP status
// codes.
func errorCode(err error) int {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, jobrun.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, jobrun.ErrState), errors.Is(err, jobrun.ErrDuplicate):
		return http.StatusConflict
	case errors.Is(err, jobrun.ErrUnknownKind):
		return http.StatusUnprocessableEntity
	case errors.Is(err, jobrun.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, jobrun.ErrReadOnly):
		return http.StatusForbidden
	case errors.Is(err, jobrun.ErrClosed):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// safeReturn reports whether s may be used as the page to return to after an
// action: a path relative to the mount point, so that no form can send the browser
// elsewhere.
func safeReturn(s string) bool {
	if s == "" || strings.Contains(s, "\\") || strings.HasPrefix(s, "/") || strings.Contains(s, "..") {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "" && u.Opaque == "" && u.Host == "" && u.User == nil && u.Fragment == ""
}

// errBadID is returned for a job ID that does not parse.
var errBadID = fmt.Errorf("%w: not a job ID", jobrun.ErrNotFound)

// jobAction adapts a runner method on one job.
func jobAction(fn func(*jobrun.Runner, context.Context, jobrun.ID) error) func(context.Context, *dashboard, *http.Request) (*actionResult, error) {
	return func(ctx context.Context, d *dashboard, r *http.Request) (*actionResult, error) {
		id, ok := parseID(r.PathValue("id"))
		if !ok {
			return nil, errBadID
		}
		if err := fn(d.r, ctx, id); err != nil {
			return nil, err
		}
		res := &actionResult{next: "jobs/" + idStr(id)}
		if in, err := d.r.Get(ctx, id); err == nil {
			res.Job = d.jobJSON(ctx, in)
		}
		return res, nil
	}
}

func deleteJob(ctx context.Context, d *dashboard, r *http.Request) (*actionResult, error) {
	id, ok := parseID(r.PathValue("id"))
	if !ok {
		return nil, errBadID
	}
	in, err := d.r.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := d.r.Delete(ctx, id); err != nil {
		return nil, err
	}
	return &actionResult{next: "queues/" + url.PathEscape(in.Queue)}, nil
}

// queueAction adapts a runner method on one queue.
func queueAction(fn func(*jobrun.Runner, context.Context, string) error) func(context.Context, *dashboard, *http.Request) (*actionResult, error) {
	return func(ctx context.Context, d *dashboard, r *http.Request) (*actionResult, error) {
		q := r.PathValue("queue")
		if err := fn(d.r, ctx, q); err != nil {
			return nil, err
		}
		return &actionResult{next: "queues/" + url.PathEscape(q)}, nil
	}
}

// listPage is the page of queue's jobs in state, or of every queue's for "".
func listPage(queue string, state jobrun.State) string {
	p := "jobs"
	if queue != "" {
		p = "queues/" + url.PathEscape(queue)
	}
	if state != "" {
		p += "?state=" + url.QueryEscape(string(state))
	}
	return p
}

func retryFailed(ctx context.Context, d *dashboard, r *http.Request) (*actionResult, error) {
	q := r.PathValue("queue")
	n, err := d.r.RetryFailed(ctx, q)
	if err != nil {
		return nil, err
	}
	return &actionResult{Count: &n, next: listPage(q, jobrun.StateReady)}, nil
}

// clean deletes finished jobs: form field "state" (done, failed or canceled; empty
// for all three), and either "older_than" (a Go duration such as "24h"; empty for
// all) or "before" (an RFC 3339 time: those that finished before it, as
// Runner.Clean's before).
func clean(ctx context.Context, d *dashboard, r *http.Request) (*actionResult, error) {
	q := r.PathValue("queue")
	state := jobrun.State(r.Form.Get("state"))
	switch state {
	case "", jobrun.StateDone, jobrun.StateFailed, jobrun.StateCanceled:
	default:
		return nil, fmt.Errorf("%w: state %q is not a finished state (done, failed or canceled)", jobrun.ErrInvalid, state)
	}
	before := time.Now()
	age, at := r.Form.Get("older_than"), r.Form.Get("before")
	switch {
	case age != "" && at != "":
		return nil, fmt.Errorf("%w: older_than and before: give one of them", jobrun.ErrInvalid)
	case age != "":
		d, err := time.ParseDuration(age)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("%w: older_than %q is not a duration of at least 0 (\"24h\")", jobrun.ErrInvalid, age)
		}
		before = before.Add(-d)
	case at != "":
		var err error
		if before, err = time.Parse(time.RFC3339Nano, at); err != nil {
			return nil, fmt.Errorf("%w: before %q is not an RFC 3339 time (\"2026-01-02T15:04:05Z\")", jobrun.ErrInvalid, at)
		}
	}
	n, err := d.r.Clean(ctx, q, state, before)
	if err != nil {
		return nil, err
	}
	return &actionResult{Count: &n, next: listPage(q, state)}, nil
}

func runSchedule(ctx context.Context, d *dashboard, r *http.Request) (*actionResult, error) {
	id, err := d.r.TriggerSchedule(ctx, r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	res := &actionResult{ID: id, next: "schedules"}
	if in, err := d.r.Get(ctx, id); err == nil {
		res.Job = d.jobJSON(ctx, in)
	}
	return res, nil
}

// scheduleAction adapts a runner method on one schedule: Unschedule, PauseSchedule,
// ResumeSchedule.
func scheduleAction(fn func(*jobrun.Runner, context.Context, string) error) func(context.Context, *dashboard, *http.Request) (*actionResult, error) {
	return func(ctx context.Context, d *dashboard, r *http.Request) (*actionResult, error) {
		if err := fn(d.r, ctx, r.PathValue("name")); err != nil {
			return nil, err
		}
		return &actionResult{next: "schedules"}, nil
	}
}

// confirmPage asks before an action: a done job to run again.
type confirmPage struct {
	Question string
	Action   string // the action's path, relative to the mount point
	Fields   []formField
	Back     string
}

type formField struct{ Name, Value string }

func (*confirmPage) title() string { return "Confirm" }

// askConfirm answers a form's action with a page that asks question, whose button
// posts the same form again with confirm=1.
func (d *dashboard) askConfirm(w http.ResponseWriter, r *http.Request, question string) {
	p := &confirmPage{Question: question, Action: strings.TrimPrefix(r.URL.EscapedPath(), "/"), Back: "./"}
	for _, name := range slices.Sorted(maps.Keys(r.PostForm)) {
		if name == "confirm" {
			continue
		}
		for _, v := range r.PostForm[name] {
			p.Fields = append(p.Fields, formField{name, v})
		}
	}
	if ret := r.PostForm.Get("return"); safeReturn(ret) {
		p.Back = ret
	} else if id := r.PathValue("id"); id != "" {
		p.Back = "jobs/" + url.PathEscape(id)
	}
	d.render(w, r, http.StatusOK, "confirm", p)
}

// confirmRetry asks before running a done job again: it succeeded.
func confirmRetry(ctx context.Context, d *dashboard, r *http.Request) (string, error) {
	id, ok := parseID(r.PathValue("id"))
	if !ok {
		return "", errBadID
	}
	in, err := d.r.Get(ctx, id)
	if err != nil {
		return "", err
	}
	if in.State != jobrun.StateDone {
		return "", nil
	}
	return fmt.Sprintf("Job #%s (%s) succeeded. Run it again?", idStr(id), in.Kind), nil
}

// confirmBulk asks before a bulk retry that may run done jobs again: selected jobs
// of which one is done, or all the jobs of a filter that does not rule done out. A
// JSON body is no browser's form, and is left for the action to read: it asks
// nothing, as the API routes do.
func confirmBulk(ctx context.Context, d *dashboard, r *http.Request) (string, error) {
	if jsonBody(r) {
		return "", nil
	}
	req, err := readBulk(r)
	if err != nil || req.Action != "retry" {
		return "", err
	}
	if req.All {
		if req.Filter.State != "" && req.Filter.State != jobrun.StateDone {
			return "", nil
		}
		return "Retry every job that matches this filter? Done jobs among them, which succeeded, will run again.", nil
	}
	done := 0
	for _, id := range req.IDs {
		if in, err := d.r.Get(ctx, id); err == nil && in.State == jobrun.StateDone {
			done++
		}
	}
	if done == 0 {
		return "", nil
	}
	return fmt.Sprintf("Retry the %d selected jobs? %d of them succeeded (done) and will run again.", len(req.IDs), done), nil
}
