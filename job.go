package jobrun

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Args is what a job carries: a Go value encoded as JSON in the database. Kind names the
// job type; it is persisted with every job and selects the handler, so it must be
// constant for the type (it is called on the zero value) and never change once jobs of
// that kind exist in a file.
type Args interface {
	Kind() string
}

// RetryDelayer may be implemented by an Args type to choose the delay before the next
// attempt itself, instead of the stored Backoff policy. attempt is the attempt that just
// failed (1 for the first run) and err what the handler returned.
type RetryDelayer interface {
	RetryDelay(attempt int, err error) time.Duration
}

// ID identifies a job in its database file. IDs increase in enqueue order and are never
// reused.
type ID uint64

// State is where a job is in its life:
//
//	           Enqueue
//	              │
//	  ┌─ delay ───┴── now ─┐
//	  ▼                    ▼
//	scheduled ──due──▶ ready ──claim──▶ running ──ok──────────▶ done
//	  ▲                  ▲                 │ ├──error, attempts left──▶ retrying ──due──▶ ready
//	  └──────Snooze──────┼─────────────────┘ ├──error, none left / Permanent──▶ failed
//	                     └──interrupted──────┘
//
// Jobs that a crash or shutdown interrupted go back to ready without spending an
// attempt. done, failed and canceled are final. Cancel ends any unfinished job as
// canceled (a running one once its handler returns); Retry takes a finished job back
// to ready; Delete, Clean and retention remove finished jobs.
//
//	scheduled, ready, retrying ──Cancel──▶ canceled ◀──Cancel, handler returns── running
//	done, failed, canceled ──Retry──▶ ready
//
// A queue claims jobs ahead of its workers, in the same commit that records earlier
// ones done, so that a worker never waits for a commit between jobs. The window
// follows the jobs' run time: up to 8 per worker (at most 256) for jobs much shorter
// than a commit, down to 2 for jobs that take longer than one. Claimed jobs stay
// ready until a worker starts them, so no queue ever shows more running jobs than it
// has workers. A start is recorded by a commit once the handler has run for about a
// commit's time; a handler that returns sooner has its start recorded with its
// outcome, so short jobs cost no commit for their start and may never read as
// running. Workers
// take the best claimed job first, and a job that outranks the window's worst is
// claimed past the window (the worst handed back), so a job enqueued with a higher
// priority starts before every lower-priority job of its queue that has not
// started. A graceful stop hands back the claimed jobs no worker started, without
// spending an attempt.
type State string

// The states of a job.
const (
	StateScheduled State = "scheduled" // waiting for its run time (Delay, At, Snooze)
	StateReady     State = "ready"     // due, waiting for a worker (perhaps claimed ahead of one, see below)
	StateRunning   State = "running"   // its handler started and has run for about a commit's time (see below)
	StateRetrying  State = "retrying"  // failed an attempt, waiting for the next one
	StateDone      State = "done"      // succeeded
	StateFailed    State = "failed"    // attempts exhausted or ended by Permanent: the dead-letter state
	StateCanceled  State = "canceled"  // canceled before it finished
)

// States lists every State in lifecycle order.
var States = []State{StateScheduled, StateReady, StateRunning, StateRetrying, StateDone, StateFailed, StateCanceled}

// AttemptError records one failed attempt.
type AttemptError struct {
	Attempt   int       `json:"attempt"`             // the attempt that failed, 1 for the first run
	StartedAt time.Time `json:"started_at,omitzero"` // when the attempt started; zero if unknown (a crash, or stored before jobrun kept it)
	At        time.Time `json:"at"`                  // when the failure was recorded
	Error     string    `json:"error"`               // the handler's error, or the panic value with its stack
}

// Info is everything the runner knows about a job, as returned by Get and embedded in
// the Job a handler receives. Its JSON form (the field tags) is the one shape of a job
// that the jobrun command's -json output and the dashboard's API print.
type Info struct {
	ID             ID                `json:"id"`
	Kind           string            `json:"kind"`
	Queue          string            `json:"queue"`
	State          State             `json:"state"`
	Priority       int               `json:"priority"`
	Attempt        int               `json:"attempt"` // attempts spent; while running, the attempt in progress (1 on the first run)
	MaxAttempts    int               `json:"max_attempts"`
	CreatedAt      time.Time         `json:"created_at"`           // when Enqueue was called (the insert commits a moment later)
	RunAt          time.Time         `json:"run_at"`               // when the job became or becomes due
	StartedAt      time.Time         `json:"started_at,omitzero"`  // start of the latest attempt
	FinishedAt     time.Time         `json:"finished_at,omitzero"` // when it reached a final state
	LastError      string            `json:"last_error,omitempty"` // the latest entry of Errors, "" if none
	Errors         []AttemptError    `json:"errors,omitempty"`
	RawArgs        json.RawMessage   `json:"args"`
	Progress       json.RawMessage   `json:"progress,omitempty"`        // the latest value given to SetProgress
	Result         json.RawMessage   `json:"result,omitempty"`          // the value given to SetResult on success
	UniqueKey      string            `json:"unique_key,omitempty"`      // the key of UniqueKey, Throttle or Debounce, "" if none
	Schedule       string            `json:"schedule,omitempty"`        // the cron schedule that enqueued the job, "" if none
	FireAt         time.Time         `json:"fire_at,omitzero"`          // the schedule's fire time this job is for
	Tags           []string          `json:"tags,omitempty"`            // the job's Tags
	ConcurrencyKey string            `json:"concurrency_key,omitempty"` // the job's ConcurrencyKey, "" if none
	Logs           []LogLine         `json:"logs,omitempty"`            // the lines the handler logged with Job.Log, the latest 50
	Steps          []StepInfo        `json:"steps,omitempty"`           // the steps the handler stored with Step, by name; only Get reads them
	Event          uint64            `json:"event,omitempty"`           // the Seq of the event that started this run (Send), 0 if none
	EventName      string            `json:"event_name,omitempty"`      // that event's name
	Parent         ID                `json:"parent,omitempty"`          // for a child run (Invoke): the job that waits for it
	Metadata       map[string]string `json:"metadata,omitempty"`        // the job's Metadata and what enqueue hooks added
}

// LogLine is one line a handler logged with Job.Log.
type LogLine struct {
	At      time.Time `json:"at"`
	Message string    `json:"message"`
}

// Job is what a handler receives: the job's Info as of the start of this attempt, and
// its decoded Args.
type Job[T Args] struct {
	Info
	Args T

	exec *execution
}

// SetResult records v, encoded as JSON (at most 1 MiB), as the job's result. It is stored with the
// job's success in the same commit, so it is visible exactly when the job is done; it
// is not stored if the attempt fails. Calling it again replaces the value.
func (j *Job[T]) SetResult(v any) error {
	b, err := encodeValue(v)
	if err != nil {
		return fmt.Errorf("set result of job %d: %w", j.ID, err)
	}
	j.exec.mu.Lock()
	j.exec.result = b
	j.exec.mu.Unlock()
	return nil
}

// SetProgress records v, encoded as JSON (at most 1 MiB), as the job's progress (a percentage, "step 3
// of 10", any JSON value), visible to Get while the job runs. Writes are coalesced: the
// runner stores the latest value with its next commit, so calling it often costs no
// more than calling it once per commit. It returns once the value is queued, before it
// is durable.
func (j *Job[T]) SetProgress(v any) error {
	b, err := encodeValue(v)
	if err != nil {
		return fmt.Errorf("set progress of job %d: %w", j.ID, err)
	}
	if j.exec.setProgress(b) {
		j.exec.r.notify(progressOp{j.exec})
	}
	return nil
}

// Log appends a line to the job's log, visible to Get while and after the job runs, as
// BullMQ's job.log. Lines longer than 1 KiB are cut; the job keeps its latest 50 lines
// across attempts. Like SetProgress, lines are stored with the runner's next commit,
// so a chatty handler costs no extra fsyncs.
func (j *Job[T]) Log(msg string) {
	if len(msg) > maxLogLen {
		msg = msg[:maxLogLen] + "… (truncated)"
	}
	if j.exec.addLog(LogLine{At: time.Now(), Message: msg}) {
		j.exec.r.notify(progressOp{j.exec})
	}
}

// encodeValue encodes a result or progress value, refusing one so large that its
// commit could fail and hold up every other change sharing that commit.
func encodeValue(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: encode: %w", ErrInvalid, err)
	}
	if len(b) > maxArgsSize {
		return nil, invalidf("value encodes to %d bytes, over the limit of %d", len(b), maxArgsSize)
	}
	return b, nil
}

// handler is a registered handler with the type erased.
type handler struct {
	order    int // registration order: a function's runs of one event are enqueued in it
	kind     string
	defaults []EnqueueOption
	decode   func(raw []byte) (Args, error)
	call     func(ctx context.Context, e *execution, args Args) error
	wrappers []Middleware // WithMiddleware's for the kind, outermost first
}

// Handle registers fn as the handler of the jobs whose args have type T, under the kind
// T's Kind method returns. defaults apply to every job of that kind enqueued through
// this runner; options given to Enqueue override them. With On among the defaults,
// fn is also a function of those events: Send enqueues a run of it for each.
//
// Handle panics if the kind is empty or already registered, if a default is invalid, or
// if the runner has started running jobs: handlers are set up once, before Run, as with
// [net/http.ServeMux.Handle].
func Handle[T Args](r *Runner, fn func(ctx context.Context, job *Job[T]) error, defaults ...EnqueueOption) {
	var zero T
	kind := zero.Kind()
	if err := validateKind(kind); err != nil {
		panic(fmt.Sprintf("jobrun: Handle[%s]: %v", reflect.TypeFor[T](), err))
	}
	if fn == nil {
		panic("jobrun: Handle " + kind + ": nil handler")
	}
	var o enqueueOptions
	o.apply(defaults)
	if o.err != nil {
		panic(fmt.Sprintf("jobrun: Handle %s: %v", kind, o.err))
	}
	h := &handler{
		kind:     kind,
		defaults: defaults,
		decode: func(raw []byte) (Args, error) {
			var args T
			if err := json.Unmarshal(raw, &args); err != nil {
				return nil, fmt.Errorf("decode args of kind %s: %w", kind, err)
			}
			return args, nil
		},
		call: func(ctx context.Context, e *execution, args Args) error {
			return fn(ctx, &Job[T]{Info: e.info, Args: args.(T), exec: e})
		},
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.started:
		panic("jobrun: Handle " + kind + " after the runner started running jobs")
	case r.handlers[kind] != nil:
		panic("jobrun: Handle " + kind + ": kind already registered")
	}
	h.order = len(r.handlers)
	h.wrappers = r.cfg.chain(kind)
	r.handlers[kind] = h
	for _, name := range slices.Compact(slices.Sorted(slices.Values(o.on))) {
		r.triggers[name] = append(r.triggers[name], h)
	}
}

// Claim status of an execution, raced for by the worker (handler returned), the
// attempt's timeout and a forced shutdown; the winner reports the outcome.
const (
	execRunning int32 = iota
	execReturned
	execTimedOut
	execInterrupted
)

// execution is one claimed job on its way through a worker. The commit loop owns rec;
// the worker owns info and the outcome fields until it hands the execution back.
type execution struct {
	r       *Runner
	id      ID
	rec     *record // as stored; the loop applies the outcome to a copy
	kind    string
	timeout time.Duration
	concKey string
	info    Info // what the handler sees

	status atomic.Int32

	// Set by whoever wins status, read by the loop after it receives the execution.
	outcome     outcome
	err         error
	snooze      time.Duration
	sleep       *step         // outcomeSlept: the Sleep step that suspends the job
	children    []*record     // outcomeSlept in Invoke: the children to enqueue with the suspension
	keepSpent   bool          // outcomeSlept: the attempts spent stay (Invoke again after a failed child)
	retryDelay  time.Duration // from the args' RetryDelayer, if customDelay
	customDelay bool
	abandoned   bool // the attempt timed out while its handler ran on
	startedAt   time.Time
	endedAt     time.Time // when the handler returned, zero if it did not (interrupted, abandoned)

	// The attempt's context and its session's, set before the handler is called,
	// for AttemptOutcome to decide as execute does.
	attemptCtx, sessionCtx context.Context

	unsaved    bool // loop only: rec holds progress or log lines a failed commit did not store
	startSaved bool // loop only: its start is committed, so it counts as running
	endState   byte // loop only: the state its outcome left it in, for the log
	completing bool // loop only: a completion records its outcome now (completer.go)

	mu          sync.Mutex
	result      []byte
	progress    []byte
	progressSet bool      // progress changed since the loop last took it
	logs        []LogLine // lines the loop has not taken yet
	canceled    bool      // Cancel asked for this attempt to stop
	cancelFn    context.CancelCauseFunc

	steps steps // the worker's: Step's view of the job's steps (step.go)
}

// setProgress stores the latest progress and reports whether the commit loop must be
// told: only the first change since the last commit needs a message.
func (e *execution) setProgress(b []byte) (notify bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	notify = !e.progressSet && len(e.logs) == 0
	e.progress, e.progressSet = b, true
	return notify
}

// addLog queues a log line, dropping the oldest beyond what a record keeps, and
// reports whether the commit loop must be told.
func (e *execution) addLog(l LogLine) (notify bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	notify = !e.progressSet && len(e.logs) == 0
	e.logs = append(e.logs, l)
	if over := len(e.logs) - maxLogLines; over > 0 {
		e.logs = append(e.logs[:0:0], e.logs[over:]...)
	}
	return notify
}

// takeUpdates moves the progress and log lines set since the last call into rec and
// reports whether there were any. Only the loop calls it.
func (e *execution) takeUpdates(rec *record) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	took := e.progressSet || len(e.logs) > 0
	if e.progressSet {
		rec.progress = e.progress
	}
	rec.appendLogs(e.logs)
	e.progressSet, e.logs = false, nil
	return took
}

// peekUpdates applies the pending progress and log lines to rec, a copy, leaving them
// pending in case the commit fails.
func (e *execution) peekUpdates(rec *record) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.progressSet {
		rec.progress = e.progress
	}
	rec.appendLogs(e.logs)
}

// requestCancel marks the attempt canceled and cancels the handler's context if it
// has started.
func (e *execution) requestCancel() {
	if cancel := e.markCanceled(); cancel != nil {
		cancel(ErrCanceled)
	}
}

// markCanceled marks the attempt canceled and returns its handler's cancel
// function, nil if the handler has not started (it then sees the mark at once).
func (e *execution) markCanceled() context.CancelCauseFunc {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.canceled = true
	return e.cancelFn
}

// started gives the execution its handler's cancel function; if Cancel came first it
// cancels at once.
func (e *execution) started(cancel context.CancelCauseFunc) {
	e.mu.Lock()
	e.cancelFn = cancel
	canceled := e.canceled
	e.mu.Unlock()
	if canceled {
		cancel(ErrCanceled)
	}
}

func (e *execution) isCanceled() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.canceled
}
