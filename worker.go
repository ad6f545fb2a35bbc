package jobrun

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"time"
)

// session is one Run or RunUntilIdle: the workers of every configured queue and the
// contexts of their handlers.
type session struct {
	ctx       context.Context
	cancel    context.CancelCauseFunc
	untilIdle bool
	queues    []*sessionQueue
	active    group         // workers holding a slot: what a graceful stop waits for
	all       group         // every worker goroutine, abandoned ones included: what Close waits for
	idle      chan struct{} // closed by the loop when nothing is due or running (untilIdle)
	forced    chan struct{} // closed by the loop when it interrupted the running jobs
	ended     chan struct{} // closed when the session is over

	stopMu   sync.Mutex
	stopping bool
	endOnce  sync.Once

	// stoppedEarly is set by the loop when a drain or force for this session arrives
	// before its start (Shutdown racing Run): the start then only releases the
	// workers.
	stoppedEarly bool
}

type sessionQueue struct {
	name    string
	workers int
	line    *lineup // claimed jobs, fed by the loop
}

func newSession(ctx context.Context, cfg *config, untilIdle bool) *session {
	sctx, cancel := context.WithCancelCause(ctx)
	s := &session{
		ctx: sctx, cancel: cancel, untilIdle: untilIdle,
		idle: make(chan struct{}), forced: make(chan struct{}), ended: make(chan struct{}),
	}
	for _, name := range cfg.order {
		q := cfg.queues[name]
		s.queues = append(s.queues, &sessionQueue{name: name, workers: q.workers, line: newLineup()})
	}
	return s
}

// A queue claims jobs ahead of its workers, so that a worker that finishes takes the
// next job from memory instead of waiting for a commit. A job spans two commits (its
// claim, and its outcome with the next claims), so the window that keeps every worker
// busy is about workers × 2 × commit time / job run time: wide for short jobs, which
// are then claimed and recorded in large batches, and narrow for slow ones, which
// would otherwise sit claimed while higher-priority work arrives.

// lineup holds a queue's claimed jobs that no worker has started: the claim-ahead
// window. Workers take the best job first, by priority then ID, so a job claimed in
// a later commit with a higher priority starts before the lower ones claimed earlier.
// The loop pushes and takes back; workers take. A few hundred jobs at most, so a
// sorted slice does.
type lineup struct {
	mu     sync.Mutex
	cond   sync.Cond
	jobs   []*execution // worst first: the next to start is last
	closed bool         // no more jobs: workers exit once it is empty
}

func newLineup() *lineup {
	l := &lineup{}
	l.cond.L = &l.mu
	return l
}

// runsBefore reports whether a starts before b: higher priority, then lower ID.
func runsBefore(a, b *execution) bool {
	if a.rec.priority != b.rec.priority {
		return a.rec.priority > b.rec.priority
	}
	return a.id < b.id
}

// push adds claimed jobs and wakes a worker for each.
func (l *lineup) push(es []*execution) {
	if len(es) == 0 {
		return
	}
	l.mu.Lock()
	l.jobs = append(l.jobs, es...)
	slices.SortFunc(l.jobs, func(a, b *execution) int {
		switch {
		case runsBefore(a, b):
			return 1
		case runsBefore(b, a):
			return -1
		}
		return 0
	})
	l.mu.Unlock()
	for range es {
		l.cond.Signal()
	}
}

// take returns the best job, waiting for one; false once the lineup is closed and
// empty.
func (l *lineup) take() (*execution, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.jobs) == 0 && !l.closed {
		l.cond.Wait()
	}
	if len(l.jobs) == 0 {
		return nil, false
	}
	e := l.jobs[len(l.jobs)-1]
	l.jobs = l.jobs[:len(l.jobs)-1]
	return e, true
}

// takeWorst removes and returns up to n jobs, the worst first; n < 0 takes all.
func (l *lineup) takeWorst(n int) []*execution {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n < 0 || n > len(l.jobs) {
		n = len(l.jobs)
	}
	out := slices.Clone(l.jobs[:n])
	l.jobs = slices.Delete(l.jobs, 0, n)
	return out
}

// worst returns the job that would start last and how many wait, nil if none.
func (l *lineup) worst() (*execution, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.jobs) == 0 {
		return nil, 0
	}
	return l.jobs[0], len(l.jobs)
}

// close lets the workers exit once they find it empty.
func (l *lineup) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.cond.Broadcast()
}

// initialPrefetch is the window before any job's run time is known.
func initialPrefetch(workers int) int { return min(max(2*workers, 4), maxPrefetchOf(workers)) }

// maxPrefetchOf is the widest window of a queue, for jobs much shorter than a commit.
func maxPrefetchOf(workers int) int { return min(max(8*workers, 8), maxPrefetch) }

// resize sets the queue's window from the run time of its jobs and the commit time.
func (q *queueState) resize(commit time.Duration) {
	if q.runTime <= 0 || commit <= 0 {
		return // not measured yet (or on a fake clock): keep the window
	}
	want := float64(q.workers)*2*float64(commit)/float64(q.runTime) + 1
	q.prefetch = int(min(max(want, minPrefetch), float64(q.maxPrefetch)))
}

// ewma folds a sample into a moving average that weighs the latest eighth.
func ewma(avg, sample time.Duration) time.Duration {
	if avg <= 0 {
		return sample
	}
	return avg + (sample-avg)/8
}

// group counts goroutines and signals when none is left.
type group struct {
	mu   sync.Mutex
	n    int
	zero chan struct{}
}

func (g *group) add() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n == 0 {
		g.zero = make(chan struct{})
	}
	g.n++
}

func (g *group) exit() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n--; g.n == 0 {
		close(g.zero)
	}
}

func (g *group) done() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.zero == nil {
		g.zero = make(chan struct{})
		close(g.zero)
	}
	return g.zero
}

// Workers.

func (r *Runner) startWorker(s *session, q *sessionQueue, handlers map[string]*handler) {
	s.active.add()
	s.all.add()
	go func() {
		defer s.all.exit()
		var once sync.Once
		leave := func() { once.Do(s.active.exit) }
		defer leave()
		for {
			e, ok := q.line.take()
			if !ok || !r.execute(s, q, handlers, e, leave) {
				return
			}
		}
	}()
}

// execute runs one attempt and reports its outcome to the commit loop. It returns
// false when the attempt timed out while the handler ignored its context: a
// replacement worker took this one's slot (leave gave it up), so this goroutine ends
// once the handler returns.
func (r *Runner) execute(s *session, q *sessionQueue, handlers map[string]*handler, e *execution, leave func()) bool {
	if s.ctx.Err() != nil {
		// The session is ending: hand the job back unstarted.
		if e.status.CompareAndSwap(execRunning, execInterrupted) {
			e.outcome = outcomeInterrupted
			r.report(e)
		}
		return true
	}
	if e.status.Load() != execRunning {
		return true // interrupted before it started
	}
	if e.isCanceled() {
		if e.status.CompareAndSwap(execRunning, execReturned) {
			e.outcome = outcomeCanceled
			r.report(e)
		}
		return true
	}
	e.startedAt = time.Now()
	e.info.StartedAt = e.startedAt
	stopNote := r.startNote(e)
	ctx, cancel := context.WithCancelCause(s.ctx)
	defer cancel(nil)
	e.started(cancel)
	var stopTimeout func() bool
	if d := e.timeout; d > 0 {
		var cancelTimeout context.CancelFunc
		ctx, cancelTimeout = context.WithTimeoutCause(ctx, d, &timeoutError{d: d})
		defer cancelTimeout()
		attemptCtx := ctx
		stopTimeout = context.AfterFunc(attemptCtx, func() {
			var te *timeoutError
			if !errors.As(context.Cause(attemptCtx), &te) || !e.status.CompareAndSwap(execRunning, execTimedOut) {
				return
			}
			// The handler has not returned: fail the attempt now and give its slot to a
			// new worker, so a handler that ignores its context cannot hold the queue.
			e.outcome, e.err, e.abandoned = outcomeFailed, te, true
			r.reportError(attemptCtx, e, te)
			r.report(e)
			r.startWorker(s, q, handlers)
			leave()
		})
	}
	h := handlers[e.kind]
	var rd RetryDelayer
	e.attemptCtx, e.sessionCtx = ctx, s.ctx
	err := callHandler(ctx, h, e, &rd)
	ended := time.Now()
	stopNote()
	if stopTimeout != nil {
		stopTimeout()
	}
	if !e.status.CompareAndSwap(execRunning, execReturned) {
		if e.status.Load() != execTimedOut {
			return true
		}
		if e.concKey != "" {
			r.notify(returnOp{e}) // the key's slot it kept is free now
		}
		return false
	}
	e.endedAt = ended
	c := e.classify(ctx, s.ctx.Err() != nil, err)
	switch e.outcome = c.outcome; e.outcome {
	case outcomeCanceled, outcomePermanent:
		e.err = err
	case outcomeFailed:
		e.err = err
		if te := c.timeout; te != nil {
			// The handler's own error, unless it only repeats the timeout.
			e.err = fmt.Errorf("%w: %w", te, err)
			if errors.Is(err, te) || err == context.DeadlineExceeded {
				e.err = err
				if err == context.DeadlineExceeded {
					e.err = te
				}
			}
		}
	case outcomeSlept:
		e.sleep, e.children, e.keepSpent = c.sleep.s, c.sleep.children, c.sleep.keepSpent
	case outcomeSnoozed:
		e.snooze = c.snooze.d
	}
	if rd != nil && (e.outcome == outcomeFailed) {
		e.retryDelay, e.customDelay = max(rd.RetryDelay(e.info.Attempt, err), 0), true
	}
	if e.outcome == outcomeFailed || e.outcome == outcomePermanent {
		r.reportError(ctx, e, e.err)
	}
	r.report(e)
	return true
}

// classified is how an attempt ended, with the control error that says so.
type classified struct {
	outcome outcome
	timeout *timeoutError // outcomeFailed by the attempt's timeout
	sleep   *sleepError   // outcomeSlept
	snooze  *snoozeError  // outcomeSnoozed
}

// classify says how e's attempt ends when its handler returns err: ctx is the
// attempt's context, and ending reports that the session is ending. Cancel comes
// first, then the session's end (the job is handed back), then the timeout.
func (e *execution) classify(ctx context.Context, ending bool, err error) classified {
	var (
		c  classified
		pe *permanentError
	)
	switch {
	case err == nil:
		c.outcome = outcomeDone
	case e.isCanceled():
		c.outcome = outcomeCanceled
	case ending:
		c.outcome = outcomeInterrupted
	case errors.As(context.Cause(ctx), &c.timeout):
		c.outcome = outcomeFailed
	case errors.As(err, &c.sleep) && c.sleep.e == e:
		c.outcome = outcomeSlept
	case errors.As(err, &c.snooze):
		c.outcome = outcomeSnoozed
	case errors.As(err, &pe):
		c.outcome = outcomePermanent
	default:
		c.outcome = outcomeFailed
	}
	return c
}

// AttemptOutcome says how the attempt whose context ctx is (a handler's or a
// middleware's) ends if the handler returns err, as the runner is about to record
// it: ChangeDone; ChangeRetrying, or ChangeFailed once its attempts are spent (a
// step's attempts, with steps) or for Permanent; ChangeSnoozed for Snooze and for
// the steps that suspend the job without spending an attempt (Sleep, WaitFor,
// Invoke); ChangeCanceled when Cancel came first; ChangeReady when the runner is
// shutting down and hands the job back. It is for middleware that reports
// outcomes, such as a tracer; outside an attempt it returns "".
func AttemptOutcome(ctx context.Context, err error) ChangeType {
	e, _ := ctx.Value(execKey{}).(*execution)
	if e == nil || e.attemptCtx == nil {
		return ""
	}
	switch e.classify(e.attemptCtx, e.sessionCtx.Err() != nil, err).outcome {
	case outcomeDone:
		return ChangeDone
	case outcomeCanceled:
		return ChangeCanceled
	case outcomeInterrupted:
		return ChangeReady
	case outcomeSlept, outcomeSnoozed:
		return ChangeSnoozed
	case outcomePermanent:
		return ChangeFailed
	}
	e.steps.mu.Lock()
	attempt := e.info.Attempt - e.steps.spent
	e.steps.mu.Unlock()
	if attempt >= max(e.info.MaxAttempts, 1) {
		return ChangeFailed
	}
	return ChangeRetrying
}

// callHandler decodes the args and runs the handler, turning a panic into an error
// that carries the stack. It sets *rd if the args choose their own retry delay.
func callHandler(ctx context.Context, h *handler, e *execution, rd *RetryDelayer) (err error) {
	if h == nil {
		return fmt.Errorf("%w %q: no handler registered in this process", ErrUnknownKind, e.kind)
	}
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	args, err := h.decode(e.info.RawArgs)
	if err != nil {
		return err
	}
	*rd, _ = args.(RetryDelayer)
	ctx = context.WithValue(ctx, execKey{}, e)
	if len(h.wrappers) == 0 {
		return h.call(ctx, e, args)
	}
	job := e.info
	return wrap(h.wrappers, &job, func(ctx context.Context) error { return h.call(ctx, e, args) })(ctx)
}

// report hands a finished attempt to the commit loop. If the loop has exited the
// outcome is dropped: the job is still recorded as running and is recovered, without
// spending an attempt, at the next open.
func (r *Runner) report(e *execution) {
	select {
	case r.ops <- e:
	case <-r.loopDone:
	}
}

// startNote tells the loop that e's handler started, so that a commit records it
// running, once it has run for about a commit's time: the outcome of a shorter
// handler records its start itself, in the commit that records its end, so short
// jobs cost no commit (and no wake-up of the loop) for their start. The returned
// func cancels the note if it has not gone yet.
func (r *Runner) startNote(e *execution) (stop func() bool) {
	after := time.Duration(r.commitNanos.Load())
	if after <= 0 {
		r.notify(startOp{e})
		return func() bool { return false }
	}
	return time.AfterFunc(after, func() { r.notify(startOp{e}) }).Stop
}

// notify hands the loop a note to store with its next commit: a start or progress.
func (r *Runner) notify(op any) {
	select {
	case r.ops <- op:
	case <-r.loopDone:
	}
}

// PanicError is the error of an attempt whose handler panicked: the value it
// panicked with and the stack, as WithErrorHook receives it. Its message, which the
// job's error history stores, is the value and the stack.
type PanicError struct {
	Value any
	Stack []byte
}

// Error is the panic value and the stack, as the job's error history stores them.
func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v\n\n%s", e.Value, e.Stack) }

// WithErrorHook calls fn for every failed attempt, on the worker's goroutine before
// the failure is recorded: with the attempt's context (its values, such as a trace
// span, included; it may be canceled, as at a timeout), the job as its handler saw
// it, and the error the handler returned, a *PanicError for a panic, or the timeout's
// error. It is the place to send errors to Sentry and the like. Unlike
// WithChangeHook and Watch, which report committed state changes after the commit
// (a string for the error), it sees the error value itself, and every failed
// attempt, retried or not; unlike OnFailure, which enqueues a durable job once a job
// has failed for good, it runs in memory, at most once per attempt, and is lost if
// the process dies. A panic in fn is recovered and logged; fn should be quick, as
// the worker waits for it.
func WithErrorHook(fn func(ctx context.Context, job *Info, err error)) Option {
	return func(c *config) {
		if fn == nil {
			c.err = invalidf("nil error hook")
			return
		}
		c.errorHook = fn
	}
}

// reportError calls the error hook, if any, for e's failed attempt.
func (r *Runner) reportError(ctx context.Context, e *execution, err error) {
	hook := r.cfg.errorHook
	if hook == nil || err == nil {
		return
	}
	defer func() {
		if v := recover(); v != nil {
			r.log.Error("jobrun: the error hook panicked", "panic", v, "id", uint64(e.id), "kind", e.kind)
		}
	}()
	in := e.info
	hook(ctx, &in, err)
}
