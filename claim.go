package jobrun

import (
	"fmt"
	"time"

	"golang.org/x/time/rate"
)

// Claiming: which queues take ready jobs in a commit, and how many.

// claimable reports whether the queue may claim jobs now: a session feeds it, the
// session's context is alive and the queue is not paused.
func (en *engine) claimable(q *queueState) bool {
	return q.line != nil && en.s.ctx.Err() == nil && !en.paused[q.name]
}

// capacity is how many more jobs a claimable queue can take, prefetch included.
func (en *engine) capacity(q *queueState) int {
	return q.workers + q.prefetch - q.inflight
}

// queueClaim is what one commit claimed of a queue.
type queueClaim struct {
	jobs  []claimedJob
	extra int  // claimed past the window for their priority (see writeClaims)
	more  bool // the claim filled its capacity or ran out of tokens: more may be ready
}

// claiming reports whether any queue may take jobs in this cycle: a session feeds it,
// it has capacity, and it may hold ready jobs or something pending may make some.
func (en *engine) claiming(pending int) bool {
	if !en.feeding {
		return false
	}
	for _, q := range en.order {
		if en.claimable(q) && en.capacity(q) > 0 && (q.mayReady || pending > 0) {
			return true
		}
	}
	return false
}

// writeClaims claims each fed queue's share of ready jobs, last in a commit: the
// queue's workers and claim-ahead window, plus the slots this commit's outcomes
// freed, within the queue's rate limit and its keys' limits. A full window does not
// keep out better work: jobs that outrank the worst one waiting in the lineup are
// claimed past it, and as many of the worst are handed back once the commit is
// applied. woken says that this commit may have made jobs ready (enqueues, outcomes,
// due jobs, fires), so that a queue that came back empty before is looked at again.
func (en *engine) writeClaims(w storeWriter, res *cycleResult, freed map[*queueState]int, woken bool) error {
	if !en.feeding {
		return nil
	}
	for _, q := range en.order {
		if !en.claimable(q) {
			continue
		}
		n := max(en.capacity(q)+freed[q], 0)
		var outrank int64
		worst, extra := q.line.worst()
		if worst != nil {
			outrank = worst.rec.priority
		}
		if n+extra == 0 || !(q.mayReady || woken) {
			continue
		}
		c, err := en.claimQueue(w, q, res.now, n, extra, outrank)
		if err != nil {
			return fmt.Errorf("claim jobs of queue %s: %w", q.name, err)
		}
		res.claims[q] = c
	}
	return nil
}

// claimQueue claims up to n jobs of q, and up to extra more that outrank priority
// outrank, asking q's limiter and its keys' limiters before each. A queue out of
// tokens notes when it has one again (q.starved), for the loop's timer.
func (en *engine) claimQueue(w storeWriter, q *queueState, now time.Time, n, extra int, outrank int64) (queueClaim, error) {
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
			rv = q.limiter.ReserveN(now, 1)
			if d := rv.DelayFrom(now); !rv.OK() || d > 0 {
				rv.CancelAt(now)
				starved = true
				if rv.OK() {
					wakeAt(now.Add(d))
				}
				return false, true
			}
		}
		if len(key) > 0 {
			if ok, at := en.keyLimiters.allow(q.name, string(key), keyLim, now); !ok {
				// This key waits for a token; the queue's other keys go on.
				if rv != nil {
					rv.CancelAt(now)
				}
				starved = true
				wakeAt(at)
				return false, false
			}
		}
		return true, false
	}
	if q.limiter == nil && (keyLim.rate <= 0 || keyLim.rate == rate.Inf) {
		take = nil // nothing to ask: a store claims without a call per job
	}
	claimed, err := w.claim(q.name, n, extra, outrank, take)
	if err != nil {
		return queueClaim{}, err
	}
	return queueClaim{jobs: claimed, extra: max(len(claimed)-n, 0), more: len(claimed) >= n || starved}, nil
}
