package oteljobrun

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/jobrun/jobrun"
)

// The outcomes of an attempt, the values of jobrun.outcome (see the package doc).
const (
	outcomeDone        = "done"
	outcomeRetrying    = "retrying"
	outcomeFailed      = "failed"
	outcomeSnoozed     = "snoozed"
	outcomeSuspended   = "suspended"
	outcomeCanceled    = "canceled"
	outcomeInterrupted = "interrupted"
)

// classify says how the runner ends an attempt of job whose middleware chain
// returned err, ctx being the attempt's context as the middleware received it, in
// the order the runner decides: success, Cancel, the runner stopping, the attempt's
// timeout, a suspension, Snooze, Permanent, attempts left. For a failure it also
// returns the error.type.
func classify(ctx context.Context, job *jobrun.Info, err error) (outcome, errType string) {
	if err == nil {
		return outcomeDone, ""
	}
	if ctx.Err() != nil {
		cause := context.Cause(ctx)
		switch {
		case errors.Is(cause, jobrun.ErrCanceled):
			return outcomeCanceled, ""
		case !isTimeout(cause):
			return outcomeInterrupted, ""
		}
		return failure(job), "timeout"
	}
	switch {
	case anyInTree(err, isSuspension):
		return outcomeSuspended, ""
	case anyInTree(err, isSnooze):
		return outcomeSnoozed, ""
	case anyInTree(err, isPermanent):
		return outcomeFailed, rootType(err)
	}
	return failure(job), rootType(err)
}

// failure is the outcome of a failed attempt of job that is not Permanent.
func failure(job *jobrun.Info) string {
	if job.Attempt >= max(job.MaxAttempts, 1) {
		return outcomeFailed
	}
	return outcomeRetrying
}

// The runner's control errors have unexported types, which errors.As cannot name
// from here. So an error is taken for one only if its type is jobrun's and its
// message has that error's shape, checked whole: an application's error never
// passes, whatever it says. TestClassifyKnowsTheRunnersErrors pins each check to
// what jobrun returns. An exported predicate in jobrun would replace them.

// isTimeout reports whether cause is the cause the runner gives an attempt's
// context when its Timeout passes.
func isTimeout(cause error) bool {
	return ofJobrun(cause) && strings.HasPrefix(cause.Error(), "jobrun: attempt timed out after ")
}

// isSnooze reports whether err is Snooze's error itself: "snoozed for <d>".
func isSnooze(err error) bool {
	d, ok := strings.CutPrefix(err.Error(), "snoozed for ")
	if !ok || !ofJobrun(err) {
		return false
	}
	_, perr := time.ParseDuration(d)
	return perr == nil
}

// isSuspension reports whether err is the error Sleep, SleepUntil, WaitFor, Invoke
// and InvokeAll return for the handler to return.
func isSuspension(err error) bool {
	msg := err.Error()
	return ofJobrun(err) && strings.HasPrefix(msg, "jobrun: sleeping in step ") &&
		strings.HasSuffix(msg, " (return this error from the handler)")
}

// isPermanent reports whether err is Permanent's error itself: "permanent: "
// followed by the message of the error it wraps.
func isPermanent(err error) bool {
	inner := errors.Unwrap(err)
	return inner != nil && ofJobrun(err) && err.Error() == "permanent: "+inner.Error()
}

// jobrunPath is the import path of the package whose errors the checks look for.
var jobrunPath = reflect.TypeFor[jobrun.Info]().PkgPath()

// ofJobrun reports whether err's type, or the type its pointer points to, is
// declared in package jobrun.
func ofJobrun(err error) bool {
	t := reflect.TypeOf(err)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.PkgPath() == jobrunPath
}

// anyInTree reports whether match holds for err or any error it wraps, the tree
// that errors.As searches.
func anyInTree(err error, match func(error) bool) bool {
	if err == nil {
		return false
	}
	if match(err) {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return anyInTree(u.Unwrap(), match)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if anyInTree(e, match) {
				return true
			}
		}
	}
	return false
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
