package jobrun

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"time"

	"golang.org/x/time/rate"
)

// Limits of one commit-loop cycle, so that one commit (and the latency of everything
// waiting for it) stays bounded under load.
const (
	maxOpsPerCycle     = 4096
	maxPromotePerCycle = 1000
	maxCommitBackoff   = time.Second
)

// Operations sent to the commit loop, besides *execution (a finished attempt).
type enqueueOp struct {
	recs  []*record
	event *storedEvent // Send: the event that recs are the runs of
	ids   []ID
	dups  []bool // refused by the unique key: ids holds the existing job's
	reply chan error
}

type progressOp struct{ e *execution }

// startOp tells the loop that a worker started a claimed job's handler.
type startOp struct{ e *execution }

// returnOp tells the loop that the handler of an attempt abandoned at its timeout
// returned at last: its concurrency key's slot is free.
type returnOp struct{ e *execution }

// mutateOp runs fn inside the loop's next commit, for management calls (Promote,
// Pause, Schedule, ...). fn checks before it writes and returns the caller's answer:
// an answer such as ErrNotFound does not abort the commit, a fatal error does. after,
// if set, updates the loop's memory once the commit succeeded and the answer is nil.
type mutateOp struct {
	fn     func(w storeWriter, en *engine) (answer, fatal error)
	after  func(en *engine)
	answer error
	reply  chan error
}

const (
	ctlStart   = iota + 1 // begin feeding a session's workers
	ctlDrain              // stop claiming; unclaim what workers have not started
	ctlForce              // record every running job as interrupted; cancel handlers
	ctlBarrier            // reply once everything sent before is committed
	ctlClose              // final commit, then exit
)

type controlOp struct {
	kind  int
	s     *session
	reply chan error
}

// The commit loop.

// queueState is the loop's view of one configured queue.
type queueState struct {
	name        string
	workers     int
	prefetch    int           // the claim-ahead window, resized as jobs finish (worker.go)
	maxPrefetch int           // the widest it gets
	runTime     time.Duration // moving average of its handlers' run time
	limiter     *rate.Limiter
	inflight    int       // claimed and not yet committed as finished
	mayReady    bool      // it may hold ready jobs: false once a claim came back short
	starved     time.Time // when the limiter has a token again, if it ran out
	line        *lineup   // the current session's claimed jobs
}

type engine struct {
	r        *Runner
	queues   map[string]*queueState
	order    []*queueState
	s        *session // the session being fed, nil if none
	feeding  bool     // s is set and not draining
	inflight map[ID]*execution
	timer    *time.Timer

	// The timed services (services.go).
	promoter promoter
	firer    firer
	cleaner  cleaner
	history  historian
	poller   poller

	// Gathered for the next commit.
	fresh    bool // something arrived since the last cycle
	enqueues []*enqueueOp
	done     []*execution
	starts   []*execution // started since the last commit: to record as running
	returns  []*execution // abandoned handlers that returned: to free their key slots
	progress map[*execution]bool
	steps    []*stepOp // steps of running attempts, to store and answer
	controls []*controlOp
	mutates  []*mutateOp
	closing  bool

	answeredSteps bool            // the last commit answered steps: their handlers are about to send the next ones
	paused        map[string]bool // as stored

	keyLimiters keyLimiters // rate limiters of concurrency keys

	commitTime time.Duration // moving average of a commit's duration
	changes    []jobChange   // reused for each commit's changes

	// Outcomes recorded alongside the loop's commits (completer.go).
	completed    chan completion // the running completion's result; nil if outcomes go in the loop's commits
	completing   []*execution    // the outcomes a completion records now
	completeTime time.Duration   // moving average of a completion's duration

	failures     int       // consecutive failed commits
	backoffUntil time.Time // no retry of a failed commit before this, unless new work arrives
}

// cycleResult is what one commit did, applied to the loop's memory only once the
// commit succeeded.
type cycleResult struct {
	now     time.Time
	claims  map[*queueState]queueClaim
	started []*execution // starts this commit recorded
	effects              // derived from the store's changes once it committed

	// What the timed services wrote (services.go).
	promoted   bool                 // the promoter ran: nextDue is its answer
	nextDue    time.Time            // when the earliest waiting job is due, as the promoter found
	looked     []string             // the due schedules this commit handled
	fires      map[string]time.Time // their next fire; a schedule missing here is gone
	cleanAfter [numStates][]byte    // where the cleaner resumes, if it ran
	sent       bool                 // events were sent
	polled     *pollResult          // what the poller read, if it ran
	rescued    [2]int               // jobs it rescued: made ready, ended
}

func newEngine(r *Runner) *engine {
	en := &engine{r: r, queues: map[string]*queueState{}, inflight: map[ID]*execution{},
		progress: map[*execution]bool{}}
	for _, name := range r.cfg.order {
		c := r.cfg.queues[name]
		q := &queueState{name: name, workers: c.workers, prefetch: initialPrefetch(c.workers), limiter: c.limiter,
			maxPrefetch: maxPrefetchOf(c.workers)}
		if en.completesAlongside() {
			// An attempt holds its place from its claim's commit until its
			// completion's (completer.go): two commits, so twice the window.
			q.maxPrefetch = min(2*q.maxPrefetch, 2*maxPrefetch)
		}
		en.queues[name] = q
		en.order = append(en.order, q)
	}
	if en.completesAlongside() {
		en.completed = make(chan completion, 1)
	}
	if ss, ok := r.st.(sharedStore); ok && !r.cfg.noServices {
		en.poller.every = ss.pollEvery()
		en.poller.next = time.Now().Add(en.poller.every)
	}
	return en
}

func (en *engine) loop() {
	defer close(en.r.loopDone)
	en.timer = time.NewTimer(0)
	en.cleaner.next = time.Now() // one look at start
	en.history.off = en.r.cfg.noServices || en.r.cfg.readOnly
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true)) // see guard
	err := en.r.st.view(func(t storeReader) error {
		en.promoter.next = t.nextDue()
		en.paused = t.pausedQueues()
		en.firer.fires = loadFires(t)
		return nil
	})
	if err != nil {
		en.stop(err)
		en.exit()
		return
	}
	for {
		if en.answeredSteps {
			en.answeredSteps = false
			en.lingerForSteps()
		}
		if !en.fresh {
			select {
			case op := <-en.r.ops:
				en.take(op)
			case <-en.r.wake:
				en.takeWake()
			case c := <-en.completed:
				en.takeCompletion(c)
			case <-en.timer.C:
			}
		}
	gather:
		for n := 0; n < maxOpsPerCycle; n++ {
			select {
			case op := <-en.r.ops:
				en.take(op)
			case <-en.r.wake:
				en.takeWake()
			case c := <-en.completed:
				en.takeCompletion(c)
			default:
				break gather
			}
		}
		en.cycle()
		if en.closing {
			en.exit()
			return
		}
	}
}

// lingerForSteps lets the handlers whose steps the last commit answered run before
// the next cycle gathers: a handler of steps sends its next step (or its outcome)
// microseconds after its answer, and a cycle that starts at once commits without
// it, so the steps of concurrent jobs would alternate between a full commit and an
// almost empty one. Yielding the processor while ops keep arriving, a few times at
// most, is no timer: it lasts as long as the handlers are runnable, and a loop with
// nothing to wait for goes on at once. On this disk W7 stores 2.9 runs per commit
// with it and 2.5 without, and runs 15% faster (docs/PERFORMANCE.md).
func (en *engine) lingerForSteps() {
	n := len(en.r.ops)
	for range maxStepLinger {
		runtime.Gosched()
		m := len(en.r.ops)
		if m == n {
			return
		}
		n = m
	}
}

// maxStepLinger bounds lingerForSteps' yields.
const maxStepLinger = 16

func (en *engine) take(op any) {
	en.fresh = true
	switch op := op.(type) {
	case *enqueueOp:
		en.enqueues = append(en.enqueues, op)
	case *execution:
		en.done = append(en.done, op)
	case progressOp:
		en.progress[op.e] = true
	case *stepOp:
		en.steps = append(en.steps, op)
	case startOp:
		en.starts = append(en.starts, op.e)
	case returnOp:
		en.returns = append(en.returns, op.e)
	case *controlOp:
		en.control(op)
		en.controls = append(en.controls, op)
	case *mutateOp:
		en.mutates = append(en.mutates, op)
	}
}

// takeWake picks up what EnqueueTx committed.
func (en *engine) takeWake() {
	en.fresh = true
	r := en.r
	r.wakeMu.Lock()
	for name := range r.woken {
		if q := en.queues[name]; q != nil {
			q.mayReady = true
		}
		delete(r.woken, name)
	}
	en.promoter.dueBy(r.wokenDue)
	r.wokenDue = time.Time{}
	if r.wokenSent && en.cleaner.next.IsZero() {
		en.cleaner.next = time.Now() // the first event to expire may be new
	}
	r.wokenSent = false
	if r.wokenPoll {
		en.poller.dueBy(time.Now())
		r.wokenPoll = false
	}
	en.history.count(r.wokenJobs, time.Now()) // committed by the application's transaction
	r.wokenJobs = nil
	r.wakeMu.Unlock()
}

// control applies the in-memory part of a control operation; its reply waits for the
// commit.
func (en *engine) control(op *controlOp) {
	switch op.kind {
	case ctlStart:
		if op.s.stoppedEarly {
			for _, sq := range op.s.queues {
				sq.line.close()
			}
			return
		}
		en.s, en.feeding = op.s, true
		for _, sq := range op.s.queues {
			q := en.queues[sq.name]
			q.line, q.mayReady, q.starved = sq.line, true, time.Time{}
		}
	case ctlDrain:
		if en.s != op.s {
			op.s.stoppedEarly = true
			return
		}
		if !en.feeding {
			return
		}
		en.feeding = false
		for _, q := range en.order {
			en.drain(q)
		}
	case ctlForce:
		if en.s != op.s {
			op.s.stoppedEarly = true
			en.markForced(op.s)
			return
		}
		if en.feeding {
			en.feeding = false
			for _, q := range en.order {
				en.drain(q)
			}
		}
		for _, e := range en.inflight {
			if e.status.CompareAndSwap(execRunning, execInterrupted) {
				e.outcome = outcomeInterrupted
				en.done = append(en.done, e)
			}
		}
		en.markForced(op.s)
	case ctlClose:
		en.closing = true
	}
}

// markForced tells the session's stopper that its running jobs were interrupted and
// cancels their contexts.
func (en *engine) markForced(s *session) {
	select {
	case <-s.forced:
	default:
		close(s.forced)
	}
	s.cancel(ErrClosed)
}

// takeBack hands back the jobs a queue's workers have not started, without stopping
// the workers: a paused queue runs what it started and nothing more.
func (en *engine) takeBack(q *queueState) {
	if q.line != nil {
		en.handBack(q.line.takeWorst(-1))
	}
}

// handBack records claimed jobs that no worker started as ready again, with the next
// commit, without spending an attempt.
func (en *engine) handBack(es []*execution) {
	for _, e := range es {
		if e.status.CompareAndSwap(execRunning, execInterrupted) {
			e.outcome = outcomeInterrupted
			en.done = append(en.done, e)
			en.fresh = true
		}
	}
}

// drain takes back the jobs a queue's workers have not started and closes its
// lineup, so the workers exit after their current job.
func (en *engine) drain(q *queueState) {
	if q.line == nil {
		return
	}
	en.takeBack(q)
	q.line.close()
	q.line = nil
}

// cycle commits everything gathered, plus what the timed services and the claims
// have to do, in one transaction, then applies the result.
func (en *engine) cycle() {
	en.r.cycles.Add(1)
	if en.closing || len(en.controls) > 0 {
		// The last commit, or a session's barrier, a drain or a start: this commit
		// records every outcome reported before it, as the controls' callers expect.
		en.awaitCompletion()
	} else {
		en.startCompletion()
	}
	if en.completing != nil {
		// Outcomes wait for the next completion, management calls for this one's
		// end (completer.go).
		done, mutates := en.done, en.mutates
		en.done, en.mutates = nil, nil
		defer func() { en.done, en.mutates = append(done, en.done...), append(mutates, en.mutates...) }()
	}
	now := time.Now()
	en.fresh = false
	// A start note that lost the race with its job's outcome has nothing to record.
	en.starts = slices.DeleteFunc(en.starts, func(e *execution) bool { return en.inflight[e.id] != e })
	pending := len(en.enqueues) + len(en.done) + len(en.starts) + len(en.returns) + len(en.progress) + len(en.mutates) + len(en.steps)
	if en.failures > 0 && now.Before(en.backoffUntil) && len(en.enqueues)+len(en.mutates)+len(en.steps) == 0 {
		// After a failed commit (a full disk), wait out the backoff unless a caller is
		// waiting: due promotions, fires and the cleaner would fail the same way.
		en.finishCycle(now, nil)
		return
	}
	if en.r.cfg.noServices {
		// A tool's runner writes what it is asked and nothing else.
		en.promoter.next, en.cleaner.next = time.Time{}, time.Time{}
		clear(en.firer.fires)
	}
	poll := en.poller.due(now)
	if poll {
		// Other processes may have made work that no notification announced.
		for _, q := range en.order {
			q.mayReady = true
		}
		en.promoter.dueBy(now)
	}
	promote, fire := en.promoter.due(now), len(en.firer.due(now)) > 0
	clean := en.cleaner.plan(en.r.st, now)
	history := en.history.due(now, en.closing)
	if pending == 0 && !poll && !promote && !fire && !clean && !history && !en.claiming(pending) {
		en.finishCycle(now, nil)
		return
	}
	var res *cycleResult
	began := time.Now()
	changes, err := en.r.st.update(now, en.changes, func(w storeWriter) error {
		res = &cycleResult{now: now, claims: map[*queueState]queueClaim{}}
		return en.commit(w, res, pending > 0)
	})
	if errors.Is(err, ErrCorrupt) {
		en.stop(fmt.Errorf("%s: %w", en.r.st.name(), err))
		return
	}
	if err != nil {
		wait := en.backOff(now)
		en.r.log.Error("jobrun: commit failed; retrying", "error", err, "retry_in", wait,
			"enqueues", len(en.enqueues), "completions", len(en.done))
		en.refuseWaiting(err)
		en.finishCycle(now, err)
		return
	}
	en.failures = 0
	en.r.commits.Add(1)
	en.commitTime = ewma(en.commitTime, time.Since(began))
	en.r.commitNanos.Store(int64(en.commitTime))
	res.absorb(changes, now, en.r.events.wanted())
	en.history.applied() // before this commit's changes are counted: at close it stored every minute
	en.history.count(changes, now)
	en.r.wakeWaiters(changes)
	en.changes = changes[:0] // the next commit's buffer
	en.applied(now, res)
	en.finishCycle(now, nil)
}

// backOff counts a failed commit (or completion) and sets how long the next waits.
func (en *engine) backOff(now time.Time) time.Duration {
	en.failures++
	wait := min(10*time.Millisecond<<min(en.failures, 10), maxCommitBackoff)
	en.backoffUntil = now.Add(wait)
	return wait
}

// commit writes one cycle into w. The order of its steps is what the cycle means:
//
//  1. Enqueues first, so that this commit's claims can take the new jobs.
//  2. Starts before outcomes: a job whose start and outcome meet here goes from
//     running to its outcome.
//  3. Outcomes before the returns of abandoned handlers (an abandoned attempt's
//     outcome comes before its return), and before the claims, to which they free
//     capacity.
//  4. Management calls after the outcomes, so they find finished jobs finished.
//  5. Progress after both: the progress of a job that ended is not written. Steps
//     after progress, so that a step's record (its attempt count restarted) is the
//     last written.
//  6. The timed services: due jobs, due schedules, retention, the history of
//     the minutes that ended.
//  7. Claims last, so they see every job that became ready in this commit.
func (en *engine) commit(w storeWriter, res *cycleResult, pending bool) error {
	if p, ok := w.(prefetcher); ok {
		if err := p.prefetch(en.running()); err != nil {
			return fmt.Errorf("read the jobs of the commit: %w", err)
		}
	}
	if lc, ok := w.(lazyCommitter); ok && len(en.enqueues)+len(en.done)+len(en.returns)+len(en.mutates)+len(en.steps)+len(en.controls) == 0 {
		lc.lazy() // nothing in it is answered: a commit lost with the server is redone
	}
	if err := en.writeEnqueues(w); err != nil {
		return err
	}
	finished := make(map[*execution]bool, len(en.done))
	for _, e := range en.done {
		finished[e] = true
	}
	if err := en.writeStarts(w, res, finished); err != nil {
		return err
	}
	freed, err := en.writeOutcomes(w)
	if err != nil {
		return err
	}
	for _, e := range en.returns {
		if err := w.releaseHeld(e.id); err != nil {
			return fmt.Errorf("free the key slot of job %d: %w", e.id, err)
		}
	}
	for _, op := range en.mutates {
		if op.fn == nil {
			continue
		}
		answer, err := op.fn(w, en)
		if err != nil {
			return err
		}
		op.answer = answer
	}
	if err := en.writeProgress(w, finished); err != nil {
		return err
	}
	if err := en.writeSteps(w, finished); err != nil {
		return err
	}
	if err := en.poller.write(w, res, en.claimed(res.now)); err != nil {
		return err
	}
	if err := en.promoter.write(w, res); err != nil {
		return err
	}
	if err := en.firer.write(w, res, en.r.log.Warn); err != nil {
		return err
	}
	if err := en.cleaner.write(w, res); err != nil {
		return err
	}
	if err := en.history.write(w, res.now, en.closing); err != nil {
		return err
	}
	// A queue may have got ready jobs from what was pending, or from the services.
	return en.writeClaims(w, res, freed, pending || res.promoted || len(res.looked) > 0)
}

// superseded reports whether a finished attempt's claim was replaced by a later
// claim of its job by this runner: on a shared store, a claim that lapsed (the
// loop stalled past the lease) is rescued by another process, and the job may come
// back to this one while the first handler still runs. The store's fence is the
// job's latest claim's, so the first attempt's outcome would be taken for the
// second's: it is dropped instead, as a rescued claim's outcome is, and only its
// capacity is freed.
func (en *engine) superseded(e *execution) bool { return en.inflight[e.id] != e }

// claimed lists the claimed jobs the engine holds, in its lineups or running, for a
// poll's renewal of their leases; nil when no poll is due at now.
func (en *engine) claimed(now time.Time) []ID {
	if !en.poller.due(now) {
		return nil
	}
	ids := make([]ID, 0, len(en.inflight))
	for id, e := range en.inflight {
		if !e.completing { // a completion holds its row: it ends the claim
			ids = append(ids, id)
		}
	}
	return ids
}

// running lists the claimed jobs whose starts, outcomes, progress and steps the
// next commit writes.
func (en *engine) running() []ID {
	ids := make([]ID, 0, len(en.done)+len(en.starts)+len(en.progress)+len(en.steps))
	for _, e := range en.done {
		ids = append(ids, e.id)
	}
	for _, e := range en.starts {
		ids = append(ids, e.id)
	}
	for e := range en.progress {
		ids = append(ids, e.id)
	}
	for _, op := range en.steps {
		ids = append(ids, op.e.id)
	}
	return ids
}

// writeEnqueues inserts the gathered jobs, noting each one's ID for its caller, and
// the events sent with their runs.
func (en *engine) writeEnqueues(w storeWriter) error {
	for _, op := range en.enqueues {
		if op.event != nil {
			if err := w.sendEvent(op.event, op.recs, en.r.cfg.eventDedup); err != nil {
				return fmt.Errorf("store event %s: %w", op.event.name, err)
			}
			continue
		}
		op.ids, op.dups = make([]ID, len(op.recs)), make([]bool, len(op.recs))
		for i, rec := range op.recs {
			ins, err := w.enqueue(rec)
			if err != nil {
				return fmt.Errorf("insert job: %w", err)
			}
			op.ids[i], op.dups[i] = ins.id, ins.duplicate
		}
	}
	return nil
}

// writeStarts records the handlers that started as running, unless their outcome is
// in this commit too (finish records the start then).
func (en *engine) writeStarts(w storeWriter, res *cycleResult, finished map[*execution]bool) error {
	for _, e := range en.starts {
		if en.inflight[e.id] != e || finished[e] || e.completing {
			continue // handed back, recorded before, or recorded now by finish
		}
		if err := w.markStarted(e.id, e.rec, e.startedAt); err != nil {
			return fmt.Errorf("record start of job %d: %w", e.id, err)
		}
		res.started = append(res.started, e)
	}
	return nil
}

// writeOutcomes records the finished attempts and returns the slots they free in
// each queue, for this commit's claims.
func (en *engine) writeOutcomes(w storeWriter) (map[*queueState]int, error) {
	freed := map[*queueState]int{}
	for _, e := range en.done {
		if en.inflight[e.id] != e {
			continue // a later claim of the job replaced it (superseded)
		}
		if q := en.queues[e.rec.queue]; q != nil {
			freed[q]++
		}
		if err := en.finish(w, e); err != nil {
			return nil, fmt.Errorf("record outcome of job %d: %w", e.id, err)
		}
	}
	return freed, nil
}

// writeProgress stores the progress and log lines of running jobs.
func (en *engine) writeProgress(w storeWriter, finished map[*execution]bool) error {
	for e := range en.progress {
		if finished[e] || en.inflight[e.id] != e || e.completing {
			continue
		}
		if !e.takeUpdates(e.rec) && !e.unsaved {
			continue
		}
		e.unsaved = true // until this commit succeeds
		if err := w.saveProgress(e.id, e.rec); err != nil {
			return fmt.Errorf("record progress of job %d: %w", e.id, err)
		}
	}
	return nil
}

// writeSteps stores the steps of attempts still running. A step of an attempt that
// ended (handed back, abandoned at its timeout, or returned while a goroutine of its
// handler ran a step) is refused: the job's next attempt must not find it.
func (en *engine) writeSteps(w storeWriter, finished map[*execution]bool) error {
	for _, op := range en.steps {
		e := op.e
		if finished[e] || en.inflight[e.id] != e || e.completing || e.status.Load() != execRunning {
			op.s = nil
			continue
		}
		if op.event != nil {
			if err := w.sendEvent(op.event, op.runs, en.r.cfg.eventDedup); err != nil {
				return fmt.Errorf("send event %s of step %q of job %d: %w", op.event.name, op.s.key, e.id, err)
			}
			op.s.result, op.s.event = sentResult(op.event), op.event.seq
		}
		var rec *record
		if e.rec.attempt != 0 {
			rec = e.rec.clone()
			rec.attempt = 0 // each step gets the job's attempts afresh
		}
		if err := w.saveStep(e.id, rec, op.s); err != nil {
			return fmt.Errorf("record step %q of job %d: %w", op.s.key, e.id, err)
		}
	}
	return nil
}

// finish records the outcome of an attempt, as transition decides it. It works on a
// copy of the claimed record, so a commit that fails can be retried with the same
// outcome.
func (en *engine) finish(w storeWriter, e *execution) error {
	rec := e.rec.clone()
	e.peekUpdates(rec)
	end := ending{outcome: e.outcome, err: e.err, snooze: e.snooze, sleep: e.sleep, children: e.children,
		keepSpent: e.keepSpent, retryDelay: e.retryDelay,
		custom: e.customDelay, abandoned: e.abandoned}
	if e.outcome != outcomeInterrupted {
		// The worker reported it, after it wrote these. (An interruption comes from the
		// loop, possibly while the worker starts the handler.)
		end.started = e.startedAt
		e.mu.Lock()
		end.result = e.result
		e.mu.Unlock()
	}
	if _, err := w.finish(e.id, rec, end, e.startSaved); err != nil {
		return err
	}
	e.endState = rec.state
	return nil
}

// applied updates the loop's memory after a successful commit and hands the claimed
// jobs to the workers.
func (en *engine) applied(now time.Time, res *cycleResult) {
	en.r.events.emit(res.events)
	for _, e := range res.started {
		e.startSaved = true
	}
	en.starts = en.starts[:0]
	en.returns = en.returns[:0]
	// Claimed jobs reach their workers before the enqueues that made them ready
	// return, so that a job enqueued with a higher priority is in the lineup by then.
	// What a claim past the window displaced is handed back after this commit's
	// outcomes are cleared, to go with the next one.
	var surplus []*execution
	defer func() { en.handBack(surplus) }()
	for q, c := range res.claims {
		q.mayReady = c.more
		claimed := make([]*execution, len(c.jobs))
		for i, j := range c.jobs {
			e := &execution{r: en.r, id: j.id, rec: j.rec, kind: j.rec.kind, timeout: j.rec.timeout, concKey: j.rec.concKey}
			e.info = j.rec.info(j.id)
			e.info.State, e.info.Attempt, e.info.StartedAt = StateRunning, int(j.rec.attempt)+1, now
			en.inflight[e.id] = e
			q.inflight++
			claimed[i] = e
		}
		q.line.push(claimed)
		if over := min(q.inflight-(q.workers+q.prefetch), c.extra); over > 0 {
			surplus = append(surplus, q.line.takeWorst(over)...)
		}
	}
	for _, op := range en.enqueues {
		res.sent = res.sent || op.event != nil
		op.reply <- nil
	}
	en.enqueues = nil
	en.settleOutcomes(en.done)
	en.done = en.done[:0]
	for e := range en.progress {
		e.unsaved = false
	}
	clear(en.progress)
	for _, op := range en.steps {
		if op.s == nil {
			op.reply <- errAttemptOver
			continue
		}
		op.e.rec.attempt = 0
		en.r.stepsDone.Add(1)
		if op.s.attempts > 1 {
			en.r.stepsRetried.Add(1)
		}
		op.reply <- nil
	}
	en.answeredSteps = len(en.steps) > 0
	en.steps = en.steps[:0]
	for _, op := range en.mutates {
		if op.answer == nil && op.after != nil {
			op.after(en)
		}
		op.reply <- op.answer
	}
	en.mutates = nil
	for name := range res.touched {
		if q := en.queues[name]; q != nil {
			q.mayReady = true
		}
	}
	// Every execution is marked before any handler is stopped: a worker freed by
	// the first handler's end could otherwise start the next job of the list (a
	// parent's children, claimed in one lineup) before its mark, and run it.
	var stop []context.CancelCauseFunc
	for _, id := range res.cancels {
		if e := en.inflight[id]; e != nil && !e.completing {
			e.rec.cancel = true // as Cancel does: later writes start from this copy
			if cancel := e.markCanceled(); cancel != nil {
				stop = append(stop, cancel)
			}
		}
	}
	for _, cancel := range stop {
		cancel(ErrCanceled)
	}
	en.applyPoll(now, res)
	en.promoter.applied(res)
	en.cleaner.applied(en.r.cfg.anyCountLimit(), now, res)
	en.firer.applied(res)
}

func (en *engine) logOutcome(e *execution) {
	if e.outcome != outcomeFailed && e.outcome != outcomePermanent {
		return
	}
	attrs := []any{"id", uint64(e.id), "kind", e.rec.kind, "queue", e.rec.queue,
		"attempts", e.rec.attempt + 1, "max_attempts", e.rec.maxAttempts, "error", e.err}
	if e.endState == stFailed {
		en.r.log.Error("jobrun: job failed for good; it stays failed (the dead-letter set) until retried or cleaned", attrs...)
		return
	}
	en.r.log.Warn("jobrun: attempt failed; the job will retry", attrs...)
}

// finishCycle replies to control operations, signals idleness and sets the timer.
func (en *engine) finishCycle(now time.Time, err error) {
	for _, op := range en.controls {
		op.reply <- err
	}
	en.controls = en.controls[:0]

	if s := en.s; s != nil && s.untilIdle && en.feeding && en.isIdle(now) {
		select {
		case <-s.idle:
		default:
			close(s.idle)
		}
	}
	if en.s != nil && !en.feeding {
		select {
		case <-en.s.ended:
			en.s = nil
		default:
		}
	}

	var wake time.Time
	earliest := func(t time.Time) {
		if !t.IsZero() && (wake.IsZero() || t.Before(wake)) {
			wake = t
		}
	}
	earliest(en.promoter.next)
	earliest(en.poller.next)
	earliest(en.cleaner.next)
	earliest(en.firer.next())
	earliest(en.history.next())
	if len(en.done)+len(en.progress) > 0 {
		earliest(en.backoffUntil)
	}
	if en.feeding {
		for _, q := range en.order {
			if q.mayReady && !q.starved.IsZero() {
				earliest(q.starved)
			}
		}
	}
	if en.failures > 0 && !wake.IsZero() && wake.Before(en.backoffUntil) {
		wake = en.backoffUntil // whatever is due waits out the backoff
	}
	if wake.IsZero() {
		en.timer.Stop()
	} else {
		en.timer.Reset(max(wake.Sub(now), 0))
	}
}

// isIdle reports that nothing is running, claimable or due: RunUntilIdle can return.
// Jobs of a paused queue wait for Resume, so they do not count.
func (en *engine) isIdle(now time.Time) bool {
	if len(en.inflight) > 0 || len(en.done) > 0 || len(en.enqueues) > 0 || len(en.mutates) > 0 || len(en.steps) > 0 || en.failures > 0 {
		return false
	}
	if en.promoter.due(now) || len(en.firer.due(now)) > 0 {
		return false
	}
	for _, q := range en.order {
		if q.mayReady && !en.paused[q.name] {
			return false
		}
	}
	return true
}

// refuseWaiting answers the enqueues and management calls gathered for a commit that
// failed with its error.
func (en *engine) refuseWaiting(err error) {
	for _, op := range en.enqueues {
		op.reply <- err
	}
	en.enqueues = nil
	for _, op := range en.mutates {
		op.reply <- err
	}
	en.mutates = nil
	for _, op := range en.steps {
		op.reply <- err
	}
	en.steps = nil
}

// stop ends the runner on an error it cannot go past, a damaged file: every caller
// waiting for the commit gets the error, the session's handlers are canceled and its
// workers released, and the loop exits. Attempts that finished and were not recorded
// stay recorded as running, and run again at the next open of a mended file.
func (en *engine) stop(err error) {
	en.r.fatal.Store(&err)
	en.r.log.Error("jobrun: the database file is damaged; the runner stopped", "error", err)
	en.refuseWaiting(err)
	for _, op := range en.controls {
		if op.kind == ctlStart {
			// Taken already: the drain below ends the session's queues, and its Run
			// sees the loop end. An error would tell startSession that the loop never
			// took it, and have it release the queues a second time.
			op.reply <- nil
			continue
		}
		op.reply <- err
	}
	en.controls = nil
	if s := en.s; s != nil {
		for _, q := range en.order {
			en.drain(q)
		}
		en.feeding = false
		en.markForced(s)
	}
	en.done = nil
	en.closing = true
}

// exit ends the loop after its final commit: every operation still queued gets
// ErrClosed (or the error that stopped the runner); finished attempts still queued
// stay recorded as running and are recovered at the next open.
func (en *engine) exit() {
	en.timer.Stop()
	if en.completing != nil {
		<-en.completed // a completion after a fatal error: its goroutine ends
		en.completing = nil
	}
	closed := en.r.closedErr()
	for {
		select {
		case op := <-en.r.ops:
			switch op := op.(type) {
			case *enqueueOp:
				op.reply <- closed
			case *controlOp:
				op.reply <- closed
			case *mutateOp:
				op.reply <- closed
			case *stepOp:
				op.reply <- closed
			}
		default:
			return
		}
	}
}
