package jobrun

import (
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"time"

	"go.etcd.io/bbolt"
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
	fn     func(t *txn, res *cycleResult) (answer, fatal error)
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
	name     string
	workers  int
	prefetch int           // the claim-ahead window, resized as jobs finish (worker.go)
	runTime  time.Duration // moving average of its handlers' run time
	limiter  *rate.Limiter
	inflight int       // claimed and not yet committed as finished
	mayReady bool      // it may hold ready jobs: false once a claim came back short
	starved  time.Time // when the limiter has a token again, if it ran out
	line     *lineup   // the current session's claimed jobs
}

type engine struct {
	r        *Runner
	queues   map[string]*queueState
	order    []*queueState
	s        *session // the session being fed, nil if none
	feeding  bool     // s is set and not draining
	inflight map[ID]*execution
	nextDue  time.Time
	timer    *time.Timer

	// Gathered for the next commit.
	fresh    bool // something arrived since the last cycle
	enqueues []*enqueueOp
	done     []*execution
	starts   []*execution // started since the last commit: to record as running
	returns  []*execution // abandoned handlers that returned: to free their key slots
	progress map[*execution]bool
	controls []*controlOp
	mutates  []*mutateOp
	closing  bool
	paused   map[string]bool      // persisted in the queues bucket
	fires    map[string]time.Time // each schedule's next fire, persisted in the schedules bucket

	nextClean  time.Time         // when the retention cleaner looks again
	cleaning   bool              // this cycle deletes expired jobs
	cleanAfter [numStates][]byte // where the cleaner resumes in each final state

	keyLimiters keyLimiters // rate limiters of concurrency keys

	commitTime time.Duration // moving average of a commit's duration

	failures     int       // consecutive failed commits
	backoffUntil time.Time // no retry of a failed commit before this, unless new work arrives
}

// queueClaim is what one commit claimed of a queue.
type queueClaim struct {
	jobs  []*execution
	extra int  // claimed past the window for their priority (see commit)
	more  bool // the claim filled its capacity or ran out of tokens: more may be ready
}

// cycleResult is what one commit did, applied to the loop's memory only once the
// commit succeeded.
type cycleResult struct {
	touched map[string]bool // queues that got ready jobs
	claims  map[*queueState]queueClaim
	started []*execution // starts this commit recorded
	nextDue time.Time
	looked  []string             // the due schedules this commit handled
	fires   map[string]time.Time // their next fire; a schedule missing here is gone

	en         *engine // for management calls that reach running jobs
	cleanAfter [numStates][]byte
	finished   bool // a job reached a final state

	now      time.Time
	eventsOn bool
	events   []Event // delivered once the commit succeeded
}

func newEngine(r *Runner) *engine {
	en := &engine{r: r, queues: map[string]*queueState{}, inflight: map[ID]*execution{},
		progress: map[*execution]bool{}}
	for _, name := range r.cfg.order {
		c := r.cfg.queues[name]
		q := &queueState{name: name, workers: c.workers, prefetch: initialPrefetch(c.workers), limiter: c.limiter}
		en.queues[name] = q
		en.order = append(en.order, q)
	}
	return en
}

func (en *engine) loop() {
	defer close(en.r.loopDone)
	en.timer = time.NewTimer(0)
	en.nextClean = time.Now()                                // one look at start
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true)) // see guard
	err := viewGuarded(en.r.db, func(tx *bbolt.Tx) error {
		if t, err := openTxn(tx, time.Now()); err == nil {
			en.nextDue = t.nextDue()
			en.paused = t.pausedQueues()
			en.fires = t.loadFires()
		}
		return nil
	})
	if err != nil {
		en.stop(err)
		en.exit()
		return
	}
	for {
		if !en.fresh {
			select {
			case op := <-en.r.ops:
				en.take(op)
			case <-en.r.wake:
				en.takeWake()
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

func (en *engine) take(op any) {
	en.fresh = true
	switch op := op.(type) {
	case *enqueueOp:
		en.enqueues = append(en.enqueues, op)
	case *execution:
		en.done = append(en.done, op)
	case progressOp:
		en.progress[op.e] = true
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
	if !r.wokenDue.IsZero() && (en.nextDue.IsZero() || r.wokenDue.Before(en.nextDue)) {
		en.nextDue = r.wokenDue
	}
	r.wokenDue = time.Time{}
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

// cycle commits everything gathered, plus due promotions and claims, in one
// transaction, then applies the result.
func (en *engine) cycle() {
	en.r.cycles.Add(1)
	now := time.Now()
	en.fresh = false
	// A start note that lost the race with its job's outcome has nothing to record.
	en.starts = slices.DeleteFunc(en.starts, func(e *execution) bool { return en.inflight[e.id] != e })
	pending := len(en.enqueues) + len(en.done) + len(en.starts) + len(en.returns) + len(en.progress) + len(en.mutates)
	if en.failures > 0 && now.Before(en.backoffUntil) && len(en.enqueues)+len(en.mutates) == 0 {
		// After a failed commit (a full disk), wait out the backoff unless a caller is
		// waiting: due promotions, fires and the cleaner would fail the same way.
		en.finishCycle(now, nil)
		return
	}
	promote := !en.nextDue.IsZero() && !now.Before(en.nextDue)
	due := en.dueFires(now)
	if en.r.cfg.noServices {
		// A tool's runner writes what it is asked and nothing else.
		promote, due, en.nextDue, en.nextClean = false, nil, time.Time{}, time.Time{}
		clear(en.fires)
	}
	claim := false
	if en.feeding {
		for _, q := range en.order {
			claim = claim || en.claimable(q) && en.capacity(q) > 0 && (q.mayReady || pending > 0)
		}
	}
	if !en.nextClean.IsZero() && !now.Before(en.nextClean) {
		var next time.Time
		if en.cleaning, next = en.retentionDue(now); !en.cleaning {
			en.nextClean = next
		}
	}
	if pending == 0 && !promote && !claim && len(due) == 0 && !en.cleaning {
		en.finishCycle(now, nil)
		return
	}
	var res *cycleResult
	began := time.Now()
	err := updateGuarded(en.r.db, func(tx *bbolt.Tx) error {
		res = &cycleResult{touched: map[string]bool{}, claims: map[*queueState]queueClaim{},
			nextDue: en.nextDue, en: en, now: now, eventsOn: en.r.events.wanted()}
		t, err := openTxn(tx, now)
		if err != nil {
			return err
		}
		t.cfg = en.r.cfg
		return en.commit(t, res, promote, due)
	})
	if errors.Is(err, ErrCorrupt) {
		en.stop(fmt.Errorf("%s: %w", en.r.db.Path(), err))
		return
	}
	if err != nil {
		en.failures++
		wait := min(10*time.Millisecond<<min(en.failures, 10), maxCommitBackoff)
		en.backoffUntil = now.Add(wait)
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
	en.applied(now, res)
	en.finishCycle(now, nil)
}

// claimable reports whether the queue may claim jobs now: a session feeds it, the
// session's context is alive and the queue is not paused.
func (en *engine) claimable(q *queueState) bool {
	return q.line != nil && en.s.ctx.Err() == nil && !en.paused[q.name]
}

// capacity is how many more jobs a claimable queue can take, prefetch included.
func (en *engine) capacity(q *queueState) int {
	return q.workers + q.prefetch - q.inflight
}

// commit writes one cycle's changes into t.
func (en *engine) commit(t *txn, res *cycleResult, promote bool, due []string) error {
	for _, op := range en.enqueues {
		op.ids, op.dups = make([]ID, len(op.recs)), make([]bool, len(op.recs))
		for i, rec := range op.recs {
			ins, err := t.enqueue(rec)
			if err != nil {
				return fmt.Errorf("insert job: %w", err)
			}
			op.ids[i], op.dups[i] = ins.id, ins.duplicate
			if !ins.duplicate {
				res.event(ins.id, rec, EventEnqueued)
			}
			switch {
			case ins.duplicate:
			case ins.state == stReady:
				res.touched[rec.queue] = true
			default:
				res.due(ins.runAt)
			}
		}
	}
	finished := make(map[*execution]bool, len(en.done))
	for _, e := range en.done {
		finished[e] = true
	}
	// Starts before outcomes. A job that also finished in this commit goes from
	// ready to its outcome at once, and finish reports its start.
	for _, e := range en.starts {
		if en.inflight[e.id] != e || finished[e] {
			continue // handed back, recorded before, or recorded now by finish
		}
		res.event(e.id, e.rec, EventStarted)
		if err := t.markStarted(e.id, e.rec.queue, e.startedAt); err != nil {
			return fmt.Errorf("record start of job %d: %w", e.id, err)
		}
		res.started = append(res.started, e)
	}
	freed := map[*queueState]int{} // slots this commit frees, for its own claims
	for _, e := range en.done {
		if q := en.queues[e.rec.queue]; q != nil && en.inflight[e.id] == e {
			freed[q]++
		}
		if err := en.finish(t, e, res); err != nil {
			return fmt.Errorf("record outcome of job %d: %w", e.id, err)
		}
	}
	for _, e := range en.returns {
		// After the outcomes: an abandoned attempt's outcome comes before its return.
		if err := t.releaseHeld(e.id, res); err != nil {
			return fmt.Errorf("free the key slot of job %d: %w", e.id, err)
		}
	}
	for _, op := range en.mutates {
		if op.fn == nil {
			continue
		}
		answer, err := op.fn(t, res)
		if err != nil {
			return err
		}
		op.answer = answer
	}
	for e := range en.progress {
		if finished[e] || en.inflight[e.id] != e {
			continue
		}
		if !e.takeUpdates(e.rec) && !e.unsaved {
			continue
		}
		e.unsaved = true // until this commit succeeds
		if err := t.put(e.id, e.rec); err != nil {
			return fmt.Errorf("record progress of job %d: %w", e.id, err)
		}
		res.event(e.id, e.rec, EventProgress)
	}
	if promote {
		next, err := t.promote(maxPromotePerCycle, res)
		if err != nil {
			return fmt.Errorf("promote due jobs: %w", err)
		}
		res.nextDue = next
	}
	if len(due) > 0 {
		fires, err := t.fireDue(due, res, en.r.log.Warn)
		if err != nil {
			return fmt.Errorf("fire schedules: %w", err)
		}
		res.looked, res.fires = due, fires
	}
	if en.cleaning {
		for _, st := range []byte{stDone, stFailed, stCanceled} {
			next, err := t.retain(en.r.cfg, st, en.cleanAfter[st], cleanBatch, res)
			if err != nil {
				return fmt.Errorf("retention: %w", err)
			}
			res.cleanAfter[st] = next
		}
	}
	if en.feeding {
		for _, q := range en.order {
			if !en.claimable(q) {
				continue
			}
			n := max(en.capacity(q)+freed[q], 0)
			// A full window does not keep out better work: jobs that outrank the worst
			// one waiting in the lineup are claimed past it, and as many of the worst
			// are handed back once the commit is applied.
			var outrank int64
			worst, extra := q.line.worst()
			if worst != nil {
				outrank = worst.rec.priority
			}
			if n+extra == 0 || !(q.mayReady || res.touched[q.name]) {
				continue
			}
			starved := false
			q.starved = time.Time{}
			wakeAt := func(at time.Time) {
				if !at.IsZero() && (q.starved.IsZero() || at.Before(q.starved)) {
					q.starved = at
				}
			}
			keyLim := en.r.cfg.keyLimits[q.name]
			take := func(key []byte) (ok, stop bool) {
				var rv *rate.Reservation
				if q.limiter != nil {
					rv = q.limiter.ReserveN(t.now, 1)
					if d := rv.DelayFrom(t.now); !rv.OK() || d > 0 {
						rv.CancelAt(t.now)
						starved = true
						if rv.OK() {
							wakeAt(t.now.Add(d))
						}
						return false, true
					}
				}
				if len(key) > 0 {
					if ok, at := en.keyLimiters.allow(q.name, string(key), keyLim, t.now); !ok {
						// This key waits for a token; the queue's other keys go on.
						if rv != nil {
							rv.CancelAt(t.now)
						}
						starved = true
						wakeAt(at)
						return false, false
					}
				}
				return true, false
			}
			claimed, err := t.claim(q.name, n, extra, outrank, take)
			if err != nil {
				return fmt.Errorf("claim jobs of queue %s: %w", q.name, err)
			}
			res.claims[q] = queueClaim{jobs: claimed, extra: max(len(claimed)-n, 0), more: len(claimed) >= n || starved}
		}
	}
	return t.flush()
}

func (res *cycleResult) due(at time.Time) {
	if res.nextDue.IsZero() || at.Before(res.nextDue) {
		res.nextDue = at
	}
}

// finish records the outcome of an attempt, as transition decides it. It works on a
// copy of the claimed record, so a commit that fails can be retried with the same
// outcome.
func (en *engine) finish(t *txn, e *execution, res *cycleResult) error {
	rec := e.rec.clone()
	e.peekUpdates(rec)
	if err := t.removeActive(e.id); err != nil {
		return err
	}
	end := ending{outcome: e.outcome, err: e.err, snooze: e.snooze, retryDelay: e.retryDelay,
		custom: e.customDelay, abandoned: e.abandoned}
	if e.outcome != outcomeInterrupted {
		// The worker reported it, after it wrote these. (An interruption comes from the
		// loop, possibly while the worker starts the handler.)
		end.started = e.startedAt
		e.mu.Lock()
		end.result = e.result
		e.mu.Unlock()
	}
	nx, err := transition(rec, end, t.now)
	if err != nil {
		return err
	}
	from := stReady // claimed, and its start not recorded: it counted as ready
	if e.startSaved {
		from = stRunning
	}
	if err := t.settle(e.id, rec, nx, from, res); err != nil {
		return err
	}
	e.endState = rec.state
	if !e.startSaved && !end.started.IsZero() {
		// A short handler: its start was not recorded on its own (startNote).
		res.event(e.id, e.rec, EventStarted)
	}
	res.event(e.id, rec, nx.event)
	return t.put(e.id, rec)
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
		claimed := c.jobs
		q.mayReady = c.more
		for _, e := range claimed {
			e.r = en.r
			e.kind, e.timeout, e.concKey = e.rec.kind, e.rec.timeout, e.rec.concKey
			e.info = e.rec.info(e.id)
			e.info.State, e.info.Attempt, e.info.StartedAt = StateRunning, int(e.rec.attempt)+1, now
			en.inflight[e.id] = e
			q.inflight++
		}
		q.line.push(claimed)
		if over := min(q.inflight-(q.workers+q.prefetch), c.extra); over > 0 {
			surplus = append(surplus, q.line.takeWorst(over)...)
		}
	}
	for _, op := range en.enqueues {
		op.reply <- nil
	}
	en.enqueues = nil
	for _, e := range en.done {
		if en.inflight[e.id] == e {
			delete(en.inflight, e.id)
			if q := en.queues[e.rec.queue]; q != nil {
				q.inflight--
				if !e.endedAt.IsZero() {
					q.runTime = ewma(q.runTime, e.endedAt.Sub(e.startedAt))
					q.resize(en.commitTime)
				}
			}
		}
		en.logOutcome(e)
	}
	en.done = en.done[:0]
	for e := range en.progress {
		e.unsaved = false
	}
	clear(en.progress)
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
	en.nextDue = res.nextDue
	switch {
	case en.cleaning:
		// Go on with the next cycle, after whatever else is waiting; once the cleaner
		// is through, that cycle's check finds the next expiry.
		en.cleaning = false
		en.cleanAfter = res.cleanAfter
		en.nextClean = now
	case res.finished && (en.nextClean.IsZero() || en.nextClean.After(now.Add(cleanLook))):
		// Jobs finished: a count limit may be exceeded, or the first expiry is new.
		// Look soon, rather than at every commit.
		if en.r.cfg.anyCountLimit() || en.nextClean.IsZero() {
			en.nextClean = now.Add(cleanLook)
		}
	}
	for _, name := range res.looked {
		if at, ok := res.fires[name]; ok {
			en.fires[name] = at
		} else {
			delete(en.fires, name) // unscheduled, or unreadable: nothing to wake for
		}
	}
}

// retentionDue reports whether the retention cleaner has work and, if not, when it
// will, from a read transaction.
func (en *engine) retentionDue(now time.Time) (due bool, next time.Time) {
	viewGuarded(en.r.db, func(tx *bbolt.Tx) error {
		if t, err := openTxn(tx, now); err == nil {
			due, next = t.retentionDue(en.r.cfg)
		}
		return nil
	})
	return due, next
}

// dueFires lists the schedules whose next fire has come.
func (en *engine) dueFires(now time.Time) []string {
	var due []string
	for name, at := range en.fires {
		if !at.After(now) {
			due = append(due, name)
		}
	}
	slices.Sort(due) // fire in a stable order
	return due
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
	earliest(en.nextDue)
	earliest(en.nextClean)
	for _, at := range en.fires {
		earliest(at)
	}
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
	if len(en.inflight) > 0 || len(en.done) > 0 || len(en.enqueues) > 0 || len(en.mutates) > 0 || en.failures > 0 {
		return false
	}
	if !en.nextDue.IsZero() && !now.Before(en.nextDue) || len(en.dueFires(now)) > 0 {
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
			}
		default:
			return
		}
	}
}
