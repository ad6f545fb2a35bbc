package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"golang.org/x/time/rate"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/internal/wire"
)

// maxArgsSize is the runner's limit on a job's args as JSON.
const maxArgsSize = 1 << 20

// Enqueue enqueues a job of args' kind (args.Kind()) with args encoded as JSON, as
// Runner.Enqueue does in the application (POST /api/jobs), and returns its ID once
// the job is durable there. A job refused by its key (UniqueKey, Throttle) returns
// the existing job's ID with an error wrapping jobrun.ErrDuplicate. args need not be
// the application's own type: any value whose Kind is the kind's name and whose
// JSON the kind's handler decodes will do. A nil args, an empty kind or args over
// 1 MiB are refused before any request, with jobrun.ErrInvalid.
//
// If ctx ends or the connection fails before the answer, the job may or may not
// have been stored: give it a UniqueKey to enqueue it again safely.
func (c *Client) Enqueue(ctx context.Context, args jobrun.Args, opts ...EnqueueOption) (jobrun.ID, error) {
	if args == nil {
		return 0, fmt.Errorf("enqueue: %w: nil args", jobrun.ErrInvalid)
	}
	kind := args.Kind()
	if kind == "" {
		return 0, fmt.Errorf("enqueue: %w: empty kind name", jobrun.ErrInvalid)
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return 0, fmt.Errorf("enqueue %s: %w: encode args: %w", kind, jobrun.ErrInvalid, err)
	}
	if len(raw) > maxArgsSize {
		return 0, fmt.Errorf("enqueue %s: %w: args encode to %d bytes, over the limit of %d", kind, jobrun.ErrInvalid, len(raw), maxArgsSize)
	}
	req := wire.Enqueue{Kind: kind, Args: raw}
	for _, opt := range opts {
		opt(&req.Options)
	}
	var res struct {
		ID jobrun.ID `json:"id"`
	}
	err = c.postJSON(ctx, "api/jobs", &req, &res)
	if e := (*Error)(nil); errors.As(err, &e) && errors.Is(err, jobrun.ErrDuplicate) {
		return e.ID, err
	}
	return res.ID, err
}

// Get returns the job id as the dashboard shows it (GET /api/jobs/{id}), steps
// included; an error wrapping jobrun.ErrNotFound if there is none.
func (c *Client) Get(ctx context.Context, id jobrun.ID) (*jobrun.Info, error) {
	if id == 0 {
		return nil, errNoID("get job")
	}
	var in jobrun.Info
	if err := c.get(ctx, "api/jobs/"+idStr(id), nil, &in); err != nil {
		return nil, err
	}
	return normalize(&in), nil
}

// List returns one page of the jobs f selects, as Runner.List does (GET /api/jobs).
func (c *Client) List(ctx context.Context, f jobrun.Filter) (*jobrun.Page, error) {
	q := pageQuery(f.Oldest, f.Limit, f.Cursor)
	set(q, "queue", f.Queue)
	set(q, "kind", f.Kind)
	set(q, "state", string(f.State))
	set(q, "tag", f.Tag)
	var page struct {
		Jobs []*jobrun.Info `json:"jobs"`
		Next string         `json:"next"`
	}
	if err := c.get(ctx, "api/jobs", q, &page); err != nil {
		return nil, err
	}
	for _, in := range page.Jobs {
		normalize(in)
	}
	return &jobrun.Page{Jobs: page.Jobs, Next: page.Next}, nil
}

// pageQuery is the query of a page of a list: its order, limit and cursor.
func pageQuery(oldest bool, limit int, cursor string) url.Values {
	q := url.Values{}
	if oldest {
		q.Set("oldest", "true")
	}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	set(q, "cursor", cursor)
	return q
}

// set sets the parameter name of q to value, unless value is "".
func set(q url.Values, name, value string) {
	if value != "" {
		q.Set(name, value)
	}
}

// normalize makes in as the runner returns it: its JSON values without the
// indentation of the API's answer.
func normalize(in *jobrun.Info) *jobrun.Info {
	in.RawArgs, in.Progress, in.Result = compactJSON(in.RawArgs), compactJSON(in.Progress), compactJSON(in.Result)
	for i := range in.Steps {
		in.Steps[i].Result = compactJSON(in.Steps[i].Result)
	}
	return in
}

// Counts returns how many jobs of queue are in each state, every State present;
// with queue "" it sums all queues (GET /api/metrics).
func (c *Client) Counts(ctx context.Context, queue string) (map[jobrun.State]int, error) {
	var m struct {
		Queues map[string]map[jobrun.State]int `json:"queues"`
		Totals map[jobrun.State]int            `json:"totals"`
	}
	if err := c.get(ctx, "api/metrics", nil, &m); err != nil {
		return nil, err
	}
	got := m.Totals
	if queue != "" {
		got = m.Queues[queue]
	}
	counts := make(map[jobrun.State]int, len(jobrun.States))
	for _, s := range jobrun.States {
		counts[s] = got[s]
	}
	return counts, nil
}

// Queues describes every queue of the application as Runner.Queues does there (GET
// /api/queues): Workers and the rate limit are those of the application's runner.
func (c *Client) Queues(ctx context.Context) ([]jobrun.QueueInfo, error) {
	var out struct {
		Queues []struct {
			Name    string               `json:"name"`
			Workers int                  `json:"workers"`
			Rate    *float64             `json:"rate"`
			Burst   int                  `json:"burst"`
			Paused  bool                 `json:"paused"`
			Counts  map[jobrun.State]int `json:"counts"`
		} `json:"queues"`
	}
	if err := c.get(ctx, "api/queues", nil, &out); err != nil {
		return nil, err
	}
	infos := make([]jobrun.QueueInfo, 0, len(out.Queues))
	for _, q := range out.Queues {
		qi := jobrun.QueueInfo{Name: q.Name, Workers: q.Workers, Burst: q.Burst, Paused: q.Paused, Counts: q.Counts}
		if q.Rate != nil {
			qi.Rate = rate.Limit(*q.Rate)
		}
		infos = append(infos, qi)
	}
	return infos, nil
}

// action posts to the action route path with form, and returns its answer.
func (c *Client) action(ctx context.Context, path string, form url.Values) (*actionResult, error) {
	var res actionResult
	if err := c.postForm(ctx, path, form, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// actionResult is what the dashboard's actions answer.
type actionResult struct {
	ID    jobrun.ID `json:"id"`
	Count int       `json:"count"`
}

// jobAction runs the action of one job.
func (c *Client) jobAction(ctx context.Context, op string, id jobrun.ID) error {
	if id == 0 {
		return errNoID(op + " job")
	}
	_, err := c.action(ctx, "api/jobs/"+idStr(id)+"/"+op, nil)
	return err
}

// Retry makes a finished job ready again with a fresh set of attempts, as
// Runner.Retry does.
func (c *Client) Retry(ctx context.Context, id jobrun.ID) error { return c.jobAction(ctx, "retry", id) }

// Cancel cancels a job that has not finished, as Runner.Cancel does.
func (c *Client) Cancel(ctx context.Context, id jobrun.ID) error {
	return c.jobAction(ctx, "cancel", id)
}

// Promote makes a scheduled or retrying job ready now, as Runner.Promote does.
func (c *Client) Promote(ctx context.Context, id jobrun.ID) error {
	return c.jobAction(ctx, "promote", id)
}

// Delete removes a job that is not running, as Runner.Delete does.
func (c *Client) Delete(ctx context.Context, id jobrun.ID) error {
	return c.jobAction(ctx, "delete", id)
}

// queuePath is the path of an action on queue, or on every queue for "".
func queuePath(queue, action string) string {
	if queue == "" {
		return "api/" + action
	}
	return "api/queues/" + seg(queue) + "/" + action
}

// RetryFailed retries every failed job of queue ("" for every queue), as
// Runner.RetryFailed does, and returns how many it retried.
func (c *Client) RetryFailed(ctx context.Context, queue string) (int, error) {
	res, err := c.action(ctx, queuePath(queue, "retry-failed"), nil)
	if err != nil {
		return 0, err
	}
	return res.Count, nil
}

// Clean deletes the jobs of queue ("" for every queue) in final state state (""
// for all three) that finished before before, as Runner.Clean does, and returns
// how many it deleted. Finish times are the application's clock.
func (c *Client) Clean(ctx context.Context, queue string, state jobrun.State, before time.Time) (int, error) {
	form := url.Values{"before": {before.Format(time.RFC3339Nano)}}
	if state != "" {
		form.Set("state", string(state))
	}
	res, err := c.action(ctx, queuePath(queue, "clean"), form)
	if err != nil {
		return 0, err
	}
	return res.Count, nil
}

// queueAction runs the action of one queue.
func (c *Client) queueAction(ctx context.Context, op, queue string) error {
	if queue == "" {
		return fmt.Errorf("%s: %w: empty queue name", op, jobrun.ErrInvalid)
	}
	_, err := c.action(ctx, queuePath(queue, op), nil)
	return err
}

// Pause stops the jobs of queue from starting, as Runner.Pause does.
func (c *Client) Pause(ctx context.Context, queue string) error {
	return c.queueAction(ctx, "pause", queue)
}

// Resume lets the jobs of a paused queue start again, as Runner.Resume does.
func (c *Client) Resume(ctx context.Context, queue string) error {
	return c.queueAction(ctx, "resume", queue)
}

// Schedules lists the application's cron schedules, as Runner.Schedules does (GET
// /api/schedules).
func (c *Client) Schedules(ctx context.Context) ([]jobrun.ScheduleInfo, error) {
	var out struct {
		Schedules []jobrun.ScheduleInfo `json:"schedules"`
	}
	if err := c.get(ctx, "api/schedules", nil, &out); err != nil {
		return nil, err
	}
	for i := range out.Schedules {
		out.Schedules[i].Args = compactJSON(out.Schedules[i].Args)
	}
	return out.Schedules, nil
}

// TriggerSchedule enqueues the job of schedule name now, as Runner.TriggerSchedule
// does, and returns its ID.
func (c *Client) TriggerSchedule(ctx context.Context, name string) (jobrun.ID, error) {
	if name == "" {
		return 0, fmt.Errorf("trigger schedule: %w: empty schedule name", jobrun.ErrInvalid)
	}
	res, err := c.action(ctx, "api/schedules/"+seg(name)+"/run", nil)
	if err != nil {
		return 0, err
	}
	return res.ID, nil
}

// Unschedule removes schedule name, as Runner.Unschedule does.
func (c *Client) Unschedule(ctx context.Context, name string) error {
	if name == "" {
		return fmt.Errorf("unschedule: %w: empty schedule name", jobrun.ErrInvalid)
	}
	_, err := c.action(ctx, "api/schedules/"+seg(name)+"/delete", nil)
	return err
}

// PauseSchedule stops schedule name from firing until ResumeSchedule, as
// Runner.PauseSchedule does.
func (c *Client) PauseSchedule(ctx context.Context, name string) error {
	return c.scheduleAction(ctx, "pause schedule", name, "pause")
}

// ResumeSchedule lets a paused schedule fire again from its next time, as
// Runner.ResumeSchedule does.
func (c *Client) ResumeSchedule(ctx context.Context, name string) error {
	return c.scheduleAction(ctx, "resume schedule", name, "resume")
}

func (c *Client) scheduleAction(ctx context.Context, what, name, action string) error {
	if name == "" {
		return fmt.Errorf("%s: %w: empty schedule name", what, jobrun.ErrInvalid)
	}
	_, err := c.action(ctx, "api/schedules/"+seg(name)+"/"+action, nil)
	return err
}

// Backup writes a consistent copy of the application's database file to w, as
// Runner.Backup does there (GET /api/backup), and returns the number of bytes
// written. A copy cut short (the application stopped, ctx ended) returns an error
// with what was written: discard it.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	res, err := c.request(ctx, http.MethodGet, "api/backup", "", nil)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	n, err := io.Copy(w, res.Body)
	if err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	if msg := res.Trailer.Get(wire.BackupErrorTrailer); msg != "" {
		return n, fmt.Errorf("backup: cut short after %d bytes: %s", n, msg)
	}
	if size := res.Trailer.Get(wire.BackupSizeTrailer); size != strconv.FormatInt(n, 10) {
		return n, fmt.Errorf("backup: cut short after %d bytes", n)
	}
	return n, nil
}

// CheckCounts recounts the jobs of every queue and state and returns the counters
// that disagree, as Runner.CheckCounts does without repair (GET /api/check).
func (c *Client) CheckCounts(ctx context.Context) ([]jobrun.CountMismatch, error) {
	var out wire.Check
	if err := c.get(ctx, "api/check", nil, &out); err != nil {
		return nil, err
	}
	return out.Mismatches, nil
}

func idStr(id jobrun.ID) string { return strconv.FormatUint(uint64(id), 10) }
