package dashboard

import (
	"slices"
	"strings"
	"time"

	"github.com/jobrun/jobrun"
)

// attemptRow is one attempt of a job as its page's table shows it: each failed
// attempt from Info.Errors (its start is AttemptError.StartedAt, its end At), and
// the latest attempt from Info.StartedAt when it did not fail: running, done or
// canceled.
type attemptRow struct {
	Attempt  int
	Start    time.Time // zero if unknown (a crash, or an attempt stored before jobrun kept starts)
	End      time.Time // zero while running
	Duration string
	Outcome  string // failed, done, running, canceled
	Class    string // the outcome's color, as a job state
	Summary  string // the error's first line
	Detail   string // the lines after it, a stack
	Last     bool   // the latest attempt: its details are open
}

func attemptRows(in *jobrun.Info, now time.Time) []attemptRow {
	var rows []attemptRow
	for _, e := range in.Errors {
		row := attemptRow{Attempt: e.Attempt, Start: e.StartedAt, End: e.At, Outcome: "failed", Class: "failed"}
		row.Summary, row.Detail, _ = strings.Cut(e.Error, "\n")
		if !e.StartedAt.IsZero() && !e.At.Before(e.StartedAt) {
			row.Duration = formatDuration(e.At.Sub(e.StartedAt))
		}
		rows = append(rows, row)
	}
	// The latest attempt, unless it is the failure recorded last.
	latestFailed := len(in.Errors) > 0 && !in.Errors[len(in.Errors)-1].At.Before(in.StartedAt)
	if !in.StartedAt.IsZero() && !latestFailed {
		row := attemptRow{Attempt: in.Attempt, Start: in.StartedAt}
		switch in.State {
		case jobrun.StateRunning:
			row.Outcome, row.Class = "running", "running"
			row.Duration = "for " + formatDuration(now.Sub(in.StartedAt).Truncate(time.Second))
		case jobrun.StateDone, jobrun.StateCanceled:
			row.Outcome, row.Class, row.End = string(in.State), string(in.State), in.FinishedAt
			if !in.FinishedAt.Before(in.StartedAt) {
				row.Duration = formatDuration(in.FinishedAt.Sub(in.StartedAt))
			}
		default:
			row = attemptRow{} // handed back (interrupted) or snoozed: no outcome of its own
		}
		if row.Outcome != "" {
			rows = append(rows, row)
		}
	}
	slices.SortStableFunc(rows, func(a, b attemptRow) int { return began(a).Compare(began(b)) })
	if len(rows) > 0 {
		rows[len(rows)-1].Last = true
	}
	return rows
}

// began is when an attempt began, or ended if its start is unknown.
func began(a attemptRow) time.Time {
	if a.Start.IsZero() {
		return a.End
	}
	return a.Start
}
