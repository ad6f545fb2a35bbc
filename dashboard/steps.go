package dashboard

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jobrun/jobrun"
)

// A job's steps (Step, Sleep, WaitFor, SendEvent, Invoke) as its page shows them: in the
// order they started, each with a bar on one time axis shared by all of them.

// stepView is one step of a job's page.
type stepView struct {
	jobrun.StepInfo
	Class    string // the state's color, as a job state: done, failed, scheduled (sleep, waiting), canceled (timed out)
	Duration string // how long it took, "" while it holds the job or if Promote ended it early
	Holds    bool   // a sleep or a wait the job is suspended in now
	Promoted bool   // a sleep that ended before its wake-up: Promote
	Result   string // on one line; a received event's data, "" when redacted
	Redacted bool   // the data a wait received is hidden (WithRedactedArgs)
	Received bool   // a WaitFor that received event Event
	Sent     bool   // a SendEvent that sent event Event
	SentRuns []jobrun.ID
	Summary  string // the first line of the error of a failed step
	Detail   string // the lines after it
	Bar      stepBar
}

// stepBar is a step's bar on the steps' time axis, 0 to stepAxis.
type stepBar struct {
	X, W float64
}

// stepAxis is the width of the steps' time axis in the bars' viewBox.
const stepAxis = 1000

// stepClasses colors step states as the job states they resemble.
var stepClasses = map[string]string{"done": "done", "failed": "failed", "sleep": "scheduled", "waiting": "scheduled",
	"timed_out": "canceled", "invoking": "scheduled"}

// stepViews orders in's steps by start and lays out their bars, from the first
// start to the latest end; a step that holds the job ends now on the axis.
func (d *dashboard) stepViews(ctx context.Context, in *jobrun.Info, now time.Time) []stepView {
	if len(in.Steps) == 0 {
		return nil
	}
	views := make([]stepView, 0, len(in.Steps))
	for _, s := range in.Steps {
		v := stepView{StepInfo: s, Class: stepClasses[s.State]}
		switch s.State {
		case "waiting", "invoking":
			v.Holds = true
		case "sleep":
			v.Holds = in.State == jobrun.StateScheduled && in.RunAt.Equal(s.FinishedAt)
			v.Promoted = !v.Holds && s.FinishedAt.After(now)
		case "failed":
			v.Summary, v.Detail, _ = strings.Cut(s.Error, "\n")
		}
		if !v.Holds && !v.Promoted && !s.FinishedAt.IsZero() {
			v.Duration = formatDuration(s.FinishedAt.Sub(s.StartedAt))
		}
		switch {
		case s.State == "done" && s.WaitEvent != "":
			v.Received = true
			if v.Redacted = d.seqRedacted(ctx, s.Event); !v.Redacted {
				v.Result = firstLine(compactJSON(s.Result), 200)
			}
		case s.State == "done" && s.Event != 0:
			v.Sent = true
			var sent struct{ Runs []jobrun.ID }
			if json.Unmarshal(s.Result, &sent) == nil {
				v.SentRuns = sent.Runs
			}
		case len(s.Result) > 0:
			v.Result = firstLine(compactJSON(s.Result), 200)
		}
		views = append(views, v)
	}
	slices.SortStableFunc(views, func(a, b stepView) int { return a.StartedAt.Compare(b.StartedAt) })

	end := func(v stepView) time.Time {
		if v.Holds || v.Promoted || v.FinishedAt.IsZero() {
			return now
		}
		return v.FinishedAt
	}
	first, last := views[0].StartedAt, views[0].StartedAt
	for _, v := range views {
		if e := end(v); e.After(last) {
			last = e
		}
	}
	span := float64(last.Sub(first))
	for i := range views {
		v := &views[i]
		if span <= 0 {
			v.Bar = stepBar{X: 0, W: stepAxis}
			continue
		}
		x := stepAxis * float64(v.StartedAt.Sub(first)) / span
		w := stepAxis * float64(end(*v).Sub(v.StartedAt)) / span
		w = max(w, 4) // a step of no measurable time is a tick, not nothing
		v.Bar = stepBar{X: math.Round(10*min(x, stepAxis-w)) / 10, W: math.Round(10*w) / 10}
	}
	return views
}

// formatDuration writes d for people: to the microsecond under a millisecond, the
// millisecond under a minute, the second above.
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Minute:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
