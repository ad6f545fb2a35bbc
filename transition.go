package jobrun

import (
	"fmt"
	"time"
)

// outcome is how a claimed job's attempt ended, or what ended it from outside.
type outcome uint8

// The outcomes, decided by the worker (or, for outcomeRecovered, by the open that
// finds a job a dead process left running) and applied by transition.
const (
	outcomeDone        outcome = iota + 1 // handler returned nil
	outcomeFailed                         // handler failed: retry or dead-letter by attempts
	outcomePermanent                      // handler returned Permanent
	outcomeSnoozed                        // handler returned Snooze
	outcomeInterrupted                    // shutdown: back to ready, no attempt spent
	outcomeCanceled                       // Cancel reached the handler, or came before it started
	outcomeRecovered                      // found running at open: its process died
	outcomeSlept                          // handler returned Sleep's error: it waits for its wake-up, no attempt spent

	// Changes of a job that is not claimed, after it left its index (or, for
	// outcomeEnqueued, before it has one).
	outcomeEnqueued // a new job: ready now, or scheduled for its run time
	outcomeDue      // a scheduled or retrying job's time came, or Promote brought it forward
	outcomeCancel   // Cancel of a job that waits (or that no session runs): canceled
	outcomeRetry    // Retry of a finished job: ready again with fresh attempts
)

// slotFate is what becomes of the concurrency-key slot a claimed job holds.
type slotFate uint8

const (
	slotKeep    slotFate = iota // it stays ready in the index: the slot is still its own
	slotRelease                 // it stopped: the slot goes to the key's next job
	slotHold                    // its abandoned handler runs on: the slot is freed when it returns
)

// ending is what the engine knows of how an attempt ended, for transition.
type ending struct {
	outcome    outcome
	err        error         // the handler's error (failed, permanent, canceled)
	started    time.Time     // when the handler started; zero if it never did
	snooze     time.Duration // outcomeSnoozed
	retryDelay time.Duration // from the args' RetryDelayer, if custom
	custom     bool
	abandoned  bool // the attempt timed out while its handler ran on
	result     []byte
	recoveries int       // outcomeRecovered: the limit (WithMaxRecoveries)
	sleep      *step     // outcomeSlept: the sleep step to store, its wake-up as finishedAt
	children   []*record // outcomeSlept in Invoke: the children to enqueue
	keepSpent  bool      // outcomeSlept: the attempts spent stay
}

// next is what a transition decided beyond the record itself.
type next struct {
	slot   slotFate
	ended  bool // a final state: the unique key is free, retention may look
	readyK bool // ready again with the slot it held (slotKeep), not through its key's line
}

// transition applies how a claimed job's attempt ended, or another change, to rec, a
// copy of its record, at now, and says what follows. It decides every change of a
// job's state: the outcomes of attempts, interruptions, abandoned timeouts, the
// recovery at open of jobs a dead process ran, a waiting job's time coming (or
// Promote), Cancel, Retry and where a new job begins; only removal (Delete, Clean,
// retention) and the quarantine of an unreadable record are outside it. It is pure but for writing rec.
// The caller removed the job from its index before, and writes the indexes, the slot,
// the unique key and the counters that the returned next and rec's state call for
// (txn.settle).
func transition(rec *record, e ending, now time.Time) (next, error) {
	o := e.outcome
	if (o == outcomeInterrupted || o == outcomeRecovered) && rec.cancel {
		o = outcomeCanceled // Cancel came first: the job does not run again
	}
	attempt := rec.attempt + 1
	nx := next{slot: slotRelease}
	rec.suspended = 0 // every change ends a suspension; a new one begins below
	switch o {
	case outcomeInterrupted:
		rec.state, nx.slot, nx.readyK = stReady, slotKeep, true
	case outcomeRecovered:
		rec.recoveries++
		if rec.recoveries <= int64(max(e.recoveries, 1)) {
			rec.state, nx.slot, nx.readyK = stReady, slotKeep, true
			break
		}
		// Its start is unknown: the record's may be an earlier attempt's.
		rec.appendError(int(attempt), time.Time{}, now, fmt.Sprintf(
			"jobrun: the process exited while this job ran, %d times; failed to stop a crash loop (see WithMaxRecoveries)",
			rec.recoveries))
		rec.state, rec.finishedAt = stFailed, now
	case outcomeCanceled:
		if e.outcome == outcomeRecovered {
			rec.recoveries++
		}
		if !e.started.IsZero() {
			rec.attempt, rec.startedAt = attempt, e.started
		}
		if e.err != nil {
			rec.appendError(int(attempt), e.started, now, "canceled: "+e.err.Error())
		}
		rec.state, rec.finishedAt = stCanceled, now
	case outcomeEnqueued:
		wait(rec, stScheduled, rec.runAt, now)
		nx.slot = slotKeep // it holds none yet: it queues for one
	case outcomeDue:
		if rec.runAt.After(now) {
			rec.runAt = now // Promote: brought forward
		}
		rec.state, nx.slot = stReady, slotKeep // it holds no slot: it queues for one
	case outcomeCancel:
		// Its slot, if it held one, went with its index entry (txn.unindex).
		rec.state, rec.finishedAt, nx.slot = stCanceled, now, slotKeep
	case outcomeRetry:
		rec.attempt, rec.recoveries, rec.cancel = 0, 0, false
		rec.finishedAt, rec.runAt = time.Time{}, now
		rec.result, rec.progress = nil, nil
		rec.state, nx.slot = stReady, slotKeep // it holds none: it queues for one
	case outcomeDone:
		rec.attempt, rec.startedAt, rec.finishedAt, rec.state = attempt, e.started, now, stDone
		rec.result = e.result
	case outcomeSnoozed:
		rec.startedAt = e.started
		wait(rec, stScheduled, now.Add(e.snooze), now)
	case outcomeSlept:
		// Every step before the sleep is stored: the next one gets fresh attempts,
		// unless it invokes again a child that failed: that is a retry of its step.
		rec.startedAt = e.started
		if !e.keepSpent {
			rec.attempt = 0
		}
		wait(rec, stScheduled, e.sleep.finishedAt, now)
		if rec.state == stScheduled {
			rec.suspended = suspensionOf(e.sleep.state)
		}
	case outcomeFailed, outcomePermanent:
		rec.attempt, rec.startedAt = attempt, e.started
		rec.appendError(int(attempt), e.started, now, e.err.Error())
		if o == outcomePermanent || attempt >= max(rec.maxAttempts, 1) {
			rec.state, rec.finishedAt = stFailed, now
			break
		}
		delay := e.retryDelay
		if !e.custom {
			delay = rec.backoff.delay(int(attempt))
		}
		wait(rec, stRetrying, now.Add(delay), now)
	default:
		return next{}, fmt.Errorf("unknown outcome %d", e.outcome)
	}
	if nx.slot == slotRelease && e.abandoned {
		nx.slot = slotHold
	}
	nx.ended = final(rec.state)
	return nx, nil
}

// wait makes rec wait in state until at, or ready now if at has come; a wait of
// centuries ends at the last storable time.
func wait(rec *record, state byte, at, now time.Time) {
	if at.After(maxFireTime) {
		at = maxFireTime
	}
	rec.runAt = at
	if at.After(now) {
		rec.state = state
		return
	}
	rec.state = stReady
}

// outcomeEvent is the event of an attempt's outcome that left the job in state.
func outcomeEvent(o outcome, state byte) ChangeType {
	switch {
	case state == stDone:
		return ChangeDone
	case state == stFailed:
		return ChangeFailed
	case state == stCanceled:
		return ChangeCanceled
	case o == outcomeEnqueued:
		return ChangeEnqueued
	case o == outcomeSnoozed || o == outcomeSlept:
		return ChangeSnoozed
	case o == outcomeInterrupted || o == outcomeRecovered || o == outcomeRetry || o == outcomeDue:
		return ChangeReady
	}
	return ChangeRetrying
}

// suspensionOf is how a job scheduled by a step in state st is suspended.
func suspensionOf(st byte) byte {
	switch st {
	case stepSleep:
		return suspendedSleep
	case stepWait:
		return suspendedWait
	case stepInvoking:
		return suspendedInvoke
	}
	return 0
}

func final(state byte) bool { return state == stDone || state == stFailed || state == stCanceled }
