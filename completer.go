package jobrun

import (
	"errors"
	"fmt"
	"time"
)

// Outcomes alongside the commit loop.
//
// On a store whose transactions run side by side (concurrentStore: PostgreSQL),
// the outcomes of finished attempts are recorded by a transaction of their own, a
// completion, while the loop's commits go on claiming and starting jobs, as
// River's completer does beside its producer. A commit then waits for the server
// either to claim or to record, not for both in turn: with the claims' commits,
// which answer no one, not waiting for the disk (lazyCommitter), a drain on
// PostgreSQL goes at the pace of the completions' commits alone. A bbolt store
// has one writer at a time, and records outcomes in the loop's commit.
//
// One completion runs at a time, with every outcome gathered when it begins;
// those that arrive meanwhile wait for the next. Its jobs stay in the loop's
// inflight map, and count against their queues' capacity, until it committed and
// the loop took its result (takeCompletion), as they would until the loop's own
// commit. The loop's commits meanwhile leave those jobs alone: their starts and
// progress are the completion's to write (completing), a renewal skips their
// leases, and management calls wait for its end, so that a Cancel finds a job the
// completion finished finished, as in one commit's order.

// completion is a completion's result, for the loop.
type completion struct {
	batch   []*execution
	changes []jobChange
	now     time.Time
	took    time.Duration
	err     error
}

// completesAlongside reports whether outcomes are recorded beside the loop's
// commits.
func (en *engine) completesAlongside() bool {
	_, ok := en.r.st.(concurrentStore)
	return ok
}

// startCompletion hands the gathered outcomes to a completion, unless one runs.
func (en *engine) startCompletion() {
	if en.completed == nil || en.completing != nil || len(en.done) == 0 {
		return
	}
	if en.failures > 0 && time.Now().Before(en.backoffUntil) {
		return // a failed commit's backoff holds for completions too
	}
	var batch, dropped []*execution
	for _, e := range en.done {
		if en.superseded(e) {
			dropped = append(dropped, e)
			continue
		}
		e.completing = true
		batch = append(batch, e)
	}
	en.done = nil
	en.settleOutcomes(dropped)
	if len(batch) == 0 {
		return
	}
	en.completing = batch
	ids := make([]ID, len(batch))
	for i, e := range batch {
		ids[i] = e.id
	}
	go func() {
		now := time.Now()
		changes, err := en.r.st.update(now, nil, func(w storeWriter) error {
			if p, ok := w.(prefetcher); ok {
				if err := p.prefetch(ids); err != nil {
					return fmt.Errorf("read the jobs of the completion: %w", err)
				}
			}
			for _, e := range batch {
				if err := en.finish(w, e); err != nil {
					return fmt.Errorf("record outcome of job %d: %w", e.id, err)
				}
			}
			return nil
		})
		en.completed <- completion{batch: batch, changes: changes, now: now, took: time.Since(now), err: err}
	}()
}

// awaitCompletion waits for the running completion, if any, and takes its result:
// the cycle's own commit then records the outcomes gathered since, before it
// answers a control operation (a session's barrier: everything its workers
// reported is recorded when Run returns) or closes.
func (en *engine) awaitCompletion() {
	if en.completing != nil {
		en.takeCompletion(<-en.completed)
	}
}

// takeCompletion applies a completion's result to the loop's memory, as applied
// does a commit's outcomes; a completion that failed gives its outcomes back to
// the next one (or to the loop's last commit), after the failure's backoff.
func (en *engine) takeCompletion(c completion) {
	en.fresh = true
	en.completing = nil
	for _, e := range c.batch {
		e.completing = false
	}
	if errors.Is(c.err, ErrCorrupt) {
		en.stop(fmt.Errorf("%s: %w", en.r.st.name(), c.err))
		return
	}
	if c.err != nil {
		en.done = append(c.batch, en.done...)
		wait := en.backOff(time.Now())
		en.r.log.Error("jobrun: recording outcomes failed; retrying", "error", c.err, "retry_in", wait,
			"completions", len(c.batch))
		return
	}
	en.failures = 0
	en.r.commits.Add(1)
	en.completeTime = ewma(en.completeTime, c.took)
	res := &cycleResult{now: c.now}
	res.absorb(c.changes, c.now, en.r.events.wanted())
	en.r.events.emit(res.events)
	en.history.count(c.changes, c.now)
	en.r.wakeWaiters(c.changes)
	en.settleOutcomes(c.batch)
	for name := range res.touched {
		if q := en.queues[name]; q != nil {
			q.mayReady = true
		}
	}
	en.promoter.applied(res)
	en.cleaner.applied(en.r.cfg.anyCountLimit(), time.Now(), res)
}

// settleOutcomes takes recorded outcomes out of the loop's inflight map, freeing
// their queues' capacity, and logs the failures. The map may name a newer claim
// of the job by then: a completion that made its job ready again (a retry, a
// hand-back) commits before the loop takes its result, and the loop's commits
// meanwhile may claim the job anew. That claim keeps its entry; the capacity the
// ended attempt held is freed all the same.
func (en *engine) settleOutcomes(done []*execution) {
	for _, e := range done {
		if en.inflight[e.id] == e {
			delete(en.inflight, e.id)
		}
		if q := en.queues[e.rec.queue]; q != nil {
			q.inflight--
			if !e.endedAt.IsZero() {
				q.runTime = ewma(q.runTime, e.endedAt.Sub(e.startedAt))
				q.resize(en.commitTime + en.completeTime)
			}
		}
		en.logOutcome(e)
	}
}
