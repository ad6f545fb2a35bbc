package oteljobrun

import (
	"context"
	"errors"
	"fmt"

	"github.com/jobrun/jobrun"
)

// The outcomes of an attempt, the values of jobrun.outcome (see the package doc).
const (
	outcomeDone        = "done"
	outcomeRetrying    = "retrying"
	outcomeFailed      = "failed"
	outcomeSnoozed     = "snoozed"
	outcomeCanceled    = "canceled"
	outcomeInterrupted = "interrupted"
)

// classify says how the runner ends an attempt of job whose middleware chain
// returned err, as jobrun.AttemptOutcome tells it, ctx being the attempt's context
// as the middleware received it. For a failure it also returns the error.type: the
// timeout, or the Go type of err's root cause.
func classify(ctx context.Context, job *jobrun.Info, err error) (outcome, errType string) {
	switch jobrun.AttemptOutcome(ctx, err) {
	case jobrun.ChangeDone:
		return outcomeDone, ""
	case jobrun.ChangeSnoozed:
		return outcomeSnoozed, ""
	case jobrun.ChangeCanceled:
		return outcomeCanceled, ""
	case jobrun.ChangeReady:
		return outcomeInterrupted, ""
	case jobrun.ChangeRetrying:
		outcome = outcomeRetrying
	case jobrun.ChangeFailed:
		outcome = outcomeFailed
	default: // not in an attempt of a runner
		outcome = failure(job)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return outcome, "timeout"
	}
	return outcome, rootType(err)
}

// failure is the outcome of a failed attempt of job that is not Permanent, where
// AttemptOutcome cannot tell (a panic, which the middleware sees before the runner).
func failure(job *jobrun.Info) string {
	if job.Attempt >= max(job.MaxAttempts, 1) {
		return outcomeFailed
	}
	return outcomeRetrying
}

// rootType is the Go type of err's root cause, following the chain of single
// Unwraps, for error.type: the wrappers (fmt.Errorf's, Permanent's) say nothing of
// what failed.
func rootType(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return fmt.Sprintf("%T", err)
		}
		err = next
	}
}
