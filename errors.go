package jobrun

import (
	"errors"
	"fmt"
	"time"
)

// Errors returned by the runner. Every error it returns wraps one of these (or an error of
// bbolt or encoding/json), so callers can test with [errors.Is].
var (
	// ErrClosed is returned by every method called after Close or Shutdown, and by Run
	// when Close or Shutdown ended it.
	ErrClosed = errors.New("jobrun: runner closed")

	// ErrNotFound is returned for a job ID or a schedule name that does not exist; the
	// message says which.
	ErrNotFound = errors.New("jobrun: not found")

	// ErrUnknownKind is returned by Enqueue for a kind with no handler registered
	// through Handle, unless the runner was opened WithStrictKinds(false).
	ErrUnknownKind = errors.New("jobrun: unknown job kind")

	// ErrInvalid is wrapped by every error about bad input: an invalid option value,
	// an empty kind, args that do not encode or exceed 1 MiB. The message says
	// which value is wrong.
	ErrInvalid = errors.New("jobrun: invalid argument")

	// ErrLocked is returned by Open when another process (or another Open in this
	// process) holds the file and the lock timeout passed.
	ErrLocked = errors.New("jobrun: database file is locked by another process")

	// ErrState is returned for an operation the job's state does not allow, such as
	// promoting a job that is not waiting. The message names the state.
	ErrState = errors.New("jobrun: job is not in a state that allows this")

	// ErrDuplicate is returned by Enqueue for a job refused by its UniqueKey or
	// Throttle: the ID returned with it is the existing job's.
	ErrDuplicate = errors.New("jobrun: duplicate job")

	// ErrCanceled is the cause of a handler's context when Cancel stopped its job:
	// context.Cause(ctx) returns it.
	ErrCanceled = errors.New("jobrun: job canceled")

	// ErrCorrupt is returned for a database file that is damaged (truncated, or with
	// pages that bbolt cannot read) or is not a bbolt file at all, by Open and by any
	// call that meets the damage later; a runner whose commit loop meets it stops, and
	// its Run returns the error. The message says what was wrong and what to do:
	// restore a backup, or copy out every readable job with Salvage.
	ErrCorrupt = errors.New("jobrun: database file is damaged")

	// ErrNoWorkers is returned by RunUntilIdle when ready jobs wait in queues that the
	// runner has no workers for (see WithQueue); the message names the queues.
	ErrNoWorkers = errors.New("jobrun: queue has no workers in this runner")

	// ErrReadOnly is returned by every call that would write to a runner opened
	// WithReadOnly (or by New on a read-only database).
	ErrReadOnly = errors.New("jobrun: runner is read-only")

	// ErrSchema is returned by Open and New for a file whose runner data was written by
	// a newer version of jobrun, or is not runner data at all.
	ErrSchema = errors.New("jobrun: incompatible runner data")
)

// invalidf returns an error wrapping ErrInvalid with a message that names the problem.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// permanentError ends a job for good: no more attempts.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return "permanent: " + e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that a handler returning it ends the job in StateFailed
// without further attempts, whatever attempts remain. A nil err is reported as
// "permanent failure".
func Permanent(err error) error {
	if err == nil {
		err = errors.New("permanent failure")
	}
	return &permanentError{err: err}
}

// snoozeError reschedules a job without spending an attempt.
type snoozeError struct{ d time.Duration }

func (e *snoozeError) Error() string { return fmt.Sprintf("snoozed for %v", e.d) }

// Snooze returns an error that, returned by a handler, puts the job back to
// StateScheduled to run again after d, without spending an attempt. Use it when the
// work cannot proceed yet: a remote side answered "rate limited, retry after d", a
// resource is busy. A negative d is treated as 0 (run again as soon as possible).
func Snooze(d time.Duration) error {
	return &snoozeError{d: max(d, 0)}
}

// timeoutError is the cause of a canceled attempt context when the attempt's
// Timeout passed.
type timeoutError struct{ d time.Duration }

func (e *timeoutError) Error() string { return fmt.Sprintf("jobrun: attempt timed out after %v", e.d) }
