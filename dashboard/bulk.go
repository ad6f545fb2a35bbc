package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/jobrun/jobrun"
)

// Bulk actions: retry, cancel, delete or promote the jobs selected in a list, or all
// the jobs that match its filter, in one request (POST /jobs/bulk from the list's
// form, POST /api/jobs/bulk with JSON). Each job goes through the runner's own
// call (Retry, Cancel, Delete, Promote), bulkParallel at a time so that the runner's
// commit loop stores many of them per commit. A job whose state does not allow the
// action (a done job to cancel), that is gone, or whose unique key another job holds
// is skipped and counted, not an error: the answer says how many were done and how
// many skipped, and why.
//
// "All matching" walks the filter's List pages on the server, at most
// maxBulkMatching jobs and maxBulkPages pages per request (a page of a filter that
// matches few jobs, by kind or tag, may hold none after reading the runner's scan
// budget of index entries); when more may match, the answer's "next" is the cursor
// to send back to go on (the form carries it for the next submit).

// Bounds of one bulk request.
const (
	maxBulkIDs   = 1000 // selected IDs
	bulkParallel = 32   // runner calls in flight
)

// The walk of "all matching": at most maxBulkMatching jobs a request, read in List
// pages of bulkPage, and at most maxBulkPages pages, so that the work of a request
// is bounded when the pages come back short. Variables for the tests only.
var (
	maxBulkMatching = 10_000
	bulkPage        = 1000
	maxBulkPages    = 20
)

// bulkActions are the runner's calls by action name, with what each allows.
var bulkActions = map[string]struct {
	run     func(*jobrun.Runner, context.Context, jobrun.ID) error
	allowed func(can) bool
	verb    string // for notices: "retried"
}{
	"retry":   {(*jobrun.Runner).Retry, func(c can) bool { return c.Retry }, "will run again"},
	"cancel":  {(*jobrun.Runner).Cancel, func(c can) bool { return c.Cancel }, "canceled"},
	"promote": {(*jobrun.Runner).Promote, func(c can) bool { return c.Promote }, "ready to run now"},
	"delete":  {(*jobrun.Runner).Delete, func(c can) bool { return c.Delete }, "deleted"},
}

// bulkRequest is what a bulk action is asked: its name and either IDs or, with All,
// the filter of a list (and the cursor to go on from).
type bulkRequest struct {
	Action string      `json:"action"`
	IDs    []jobrun.ID `json:"ids"`
	All    bool        `json:"all"`
	Filter bulkFilter  `json:"filter"`
	Cursor string      `json:"cursor,omitempty"`
}

type bulkFilter struct {
	Queue string       `json:"queue,omitempty"`
	State jobrun.State `json:"state,omitempty"`
	Kind  string       `json:"kind,omitempty"`
	Tag   string       `json:"tag,omitempty"`
}

// bulkResult is a bulk action's answer, beside "ok".
type bulkResult struct {
	Action  string         `json:"action"`
	Done    int            `json:"done"`    // jobs the action was applied to
	Skipped int            `json:"skipped"` // jobs it did not apply to, by reason in Reasons
	Reasons map[string]int `json:"skipped_reasons"`
	Next    string         `json:"next,omitempty"` // with all: the cursor to go on from, "" when every match was walked
}

// Reasons for skipping a job.
const (
	skipState     = "state"     // its state does not allow the action
	skipNotFound  = "not_found" // deleted since, or never was
	skipDuplicate = "duplicate" // retry: another unfinished job holds its unique key
)

// readBulk reads a bulk request: JSON for a request with that Content-Type, the
// form's fields otherwise (action, ids repeated, all, queue, state, kind, tag,
// cursor).
func readBulk(r *http.Request) (*bulkRequest, error) {
	req := &bulkRequest{}
	if jsonBody(r) {
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(req); err != nil {
			if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
				return nil, fmt.Errorf("bulk request over the limit of %d bytes: %w", tooLarge.Limit, err) // 413
			}
			return nil, fmt.Errorf("%w: bulk request: %v", jobrun.ErrInvalid, err)
		}
	} else {
		f := r.PostForm
		req.Action, req.Cursor = f.Get("action"), f.Get("cursor")
		req.All, _ = strconv.ParseBool(f.Get("all"))
		req.Filter = bulkFilter{Queue: f.Get("queue"), State: jobrun.State(f.Get("state")), Kind: f.Get("kind"), Tag: f.Get("tag")}
		for _, s := range f["ids"] {
			id, ok := parseID(s)
			if !ok {
				return nil, fmt.Errorf("%w: %q is not a job ID", jobrun.ErrInvalid, s)
			}
			req.IDs = append(req.IDs, id)
		}
	}
	if _, ok := bulkActions[req.Action]; !ok {
		return nil, fmt.Errorf("%w: bulk action %q: want retry, cancel, delete or promote", jobrun.ErrInvalid, req.Action)
	}
	switch {
	case !req.All && len(req.IDs) == 0:
		return nil, fmt.Errorf("%w: no jobs selected: give ids, or all with a filter", jobrun.ErrInvalid)
	case !req.All && len(req.IDs) > maxBulkIDs:
		return nil, fmt.Errorf("%w: %d jobs selected, at most %d a request", jobrun.ErrInvalid, len(req.IDs), maxBulkIDs)
	}
	return req, nil
}

// jsonBody reports whether r's body is JSON, which a browser's form does not send.
func jsonBody(r *http.Request) bool {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return ct == "application/json"
}

// bulk is the action of /jobs/bulk: with All the filter's matches (IDs ignored),
// else the IDs.
func bulk(ctx context.Context, d *dashboard, r *http.Request) (*actionResult, error) {
	req, err := readBulk(r)
	if err != nil {
		return nil, err
	}
	res := &bulkResult{Action: req.Action, Reasons: map[string]int{}}
	op := bulkActions[req.Action]
	var mu sync.Mutex
	count := func(reason string) {
		mu.Lock()
		defer mu.Unlock()
		if reason == "" {
			res.Done++
			return
		}
		res.Skipped++
		res.Reasons[reason]++
	}
	apply := func(ids []jobrun.ID) error {
		return forEach(ctx, ids, func(id jobrun.ID) error {
			reason, err := skipReason(op.run(d.r, ctx, id))
			if err == nil {
				count(reason)
			}
			return err
		})
	}
	if !req.All {
		err = apply(req.IDs)
	} else {
		f := jobrun.Filter{Queue: req.Filter.Queue, State: req.Filter.State, Kind: req.Filter.Kind, Tag: req.Filter.Tag,
			Cursor: req.Cursor}
		for walked, pages := 0, 0; err == nil; {
			f.Limit = min(bulkPage, maxBulkMatching-walked)
			var page *jobrun.Page
			if page, err = d.r.List(ctx, f); err != nil {
				break
			}
			var ids []jobrun.ID
			for _, in := range page.Jobs {
				if op.allowed(allowed(in.State)) {
					ids = append(ids, in.ID)
				} else {
					count(skipState) // as the runner would answer, without a commit
				}
			}
			if err = apply(ids); err != nil || page.Next == "" {
				break
			}
			f.Cursor = page.Next
			walked, pages = walked+len(page.Jobs), pages+1
			if walked >= maxBulkMatching || pages >= maxBulkPages {
				res.Next = page.Next
				break
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bulk %s after %d jobs: %w", req.Action, res.Done, err)
	}
	next := listPage(req.Filter.Queue, req.Filter.State)
	return &actionResult{bulkResult: res, next: next}, nil
}

// skipReason sorts a runner call's error: nil for success, a reason to skip the job
// for a refusal about this job, or the error for anything else (the runner closed).
func skipReason(err error) (string, error) {
	switch {
	case err == nil:
		return "", nil
	case errors.Is(err, jobrun.ErrState):
		return skipState, nil
	case errors.Is(err, jobrun.ErrNotFound):
		return skipNotFound, nil
	case errors.Is(err, jobrun.ErrDuplicate):
		return skipDuplicate, nil
	}
	return "", err
}

// forEach calls fn for each ID, bulkParallel at a time, and returns the first error;
// after one, the IDs not started are left.
func forEach(ctx context.Context, ids []jobrun.ID, fn func(jobrun.ID) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan jobrun.ID)
	var wg sync.WaitGroup
	for range min(bulkParallel, len(ids)) {
		wg.Go(func() {
			for id := range work {
				if err := fn(id); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for _, id := range ids {
		select {
		case work <- id:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// bulkNotice writes the notice after a bulk action from the redirect's query:
// "3 jobs will run again; 2 skipped (not in a state that allows it)."
func bulkNotice(q map[string][]string) string {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	op, ok := bulkActions[get("bulk")]
	n, err1 := strconv.Atoi(get("n"))
	skipped, err2 := strconv.Atoi(get("skipped"))
	if !ok || err1 != nil || err2 != nil {
		return ""
	}
	msg := fmt.Sprintf("%d %s %s", n, plural(n, "job", "jobs"), op.verb)
	if skipped > 0 {
		var why []string
		for _, r := range []struct{ key, text string }{
			{skipState, "not in a state that allows it"}, {skipNotFound, "no longer there"},
			{skipDuplicate, "its unique key held by another job"},
		} {
			if k, err := strconv.Atoi(get("skipped_" + r.key)); err == nil && k > 0 {
				why = append(why, itoa(k)+" "+r.text)
			}
		}
		msg += fmt.Sprintf("; %d skipped", skipped)
		if len(why) > 0 {
			msg += " (" + strings.Join(why, ", ") + ")"
		}
	}
	msg += "."
	if get("resume") != "" {
		msg += fmt.Sprintf(" More jobs match than one request takes (%d): submit “all matching” again to go on.", maxBulkMatching)
	}
	return msg
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
