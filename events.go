package jobrun

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ChangeType names a committed change of a job.
type ChangeType string

// The changes of a job's life, one per committed state change.
const (
	ChangeEnqueued ChangeType = "enqueued" // stored, ready or scheduled
	ChangeReady    ChangeType = "ready"    // became ready again: due, promoted, retried by Retry, handed back at shutdown
	ChangeStarted  ChangeType = "started"  // its handler started: recorded once it ran a commit's time, or with its outcome (see StateRunning)
	ChangeProgress ChangeType = "progress" // progress or log lines stored
	ChangeSnoozed  ChangeType = "snoozed"  // the handler returned Snooze
	ChangeRetrying ChangeType = "retrying" // an attempt failed and another one is scheduled
	ChangeDone     ChangeType = "done"
	ChangeFailed   ChangeType = "failed" // attempts exhausted, or Permanent
	ChangeCanceled ChangeType = "canceled"
	ChangeDeleted  ChangeType = "deleted" // by Delete, Clean or retention
)

// Change is one committed change of a job, as delivered to WithChangeHook and Watch.
type Change struct {
	Type    ChangeType
	ID      ID
	Kind    string
	Queue   string
	State   State     // the job's state after the change
	Attempt int       // attempts spent; for ChangeStarted, the attempt starting
	At      time.Time // when the change was committed
	Error   string    // for ChangeRetrying, ChangeFailed and ChangeCanceled: the attempt's error, if any

	// Missed is, for a watcher, how many changes were dropped before this one
	// because its channel was full.
	Missed int
}

// WithChangeHook calls fn with every committed change of every job, in commit order
// (so in order per job), after the commit is durable and before the callers waiting
// for that commit (Enqueue, Cancel, ...) return. fn runs on the runner's commit
// goroutine: it must be quick and must not call the runner's write methods (Enqueue,
// Cancel, ...), which wait for that goroutine, nor Watch; reads (Get, List,
// Counts) are fine.
// Jobs enqueued with EnqueueTx are reported from the goroutine that commits the
// application's transaction. Changes made while opening the file (jobs recovered
// after a crash) are logged, not reported.
func WithChangeHook(fn func(Change)) Option {
	return func(c *config) {
		if fn == nil {
			c.err = invalidf("nil change hook")
			return
		}
		c.changeHook = fn
	}
}

// Watch returns a channel that receives every committed change of every job, in
// commit order, from now until ctx ends or the runner closes; then the channel is
// closed. buffer is the channel's capacity (at least 1). A watcher that falls
// behind never slows the runner: when its channel is full, changes are dropped, and
// the next change it receives counts them in Missed.
func (r *Runner) Watch(ctx context.Context, buffer int) (<-chan Change, error) {
	if buffer < 1 {
		return nil, invalidf("watch: buffer must be at least 1, got %d", buffer)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sub := &watcher{ch: make(chan Change, buffer)}
	ev := &r.events
	ev.mu.Lock()
	if ev.closed {
		ev.mu.Unlock()
		return nil, ErrClosed
	}
	ev.subs = append(ev.subs, sub)
	ev.listening.Store(true)
	// Registered under the lock, so that close never sees a watcher without it;
	// if ctx is already done, the unwatch waits for the lock.
	sub.stop = context.AfterFunc(ctx, func() { ev.unwatch(sub) })
	ev.mu.Unlock()
	return sub.ch, nil
}

type watcher struct {
	ch     chan Change
	missed int
	stop   func() bool
}

// emitter delivers changes to the hook, the watchers and the debug log.
type emitter struct {
	hook func(Change)
	log  *slog.Logger

	mu        sync.Mutex // serializes delivery: the loop and EnqueueTx commits
	subs      []*watcher
	closed    bool
	listening atomic.Bool // subs is not empty
}

// wanted reports whether events need to be built at all.
func (ev *emitter) wanted() bool {
	return ev.hook != nil || ev.listening.Load() || ev.log.Enabled(context.Background(), slog.LevelDebug)
}

func (ev *emitter) emit(events []Change) {
	if len(events) == 0 {
		return
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	debug := ev.log.Enabled(context.Background(), slog.LevelDebug)
	for _, e := range events {
		if ev.hook != nil {
			ev.hook(e)
		}
		for _, sub := range ev.subs {
			e.Missed = sub.missed
			select {
			case sub.ch <- e:
				sub.missed = 0
			default:
				sub.missed++
			}
		}
		if debug {
			ev.log.Debug("jobrun: job "+string(e.Type), "id", uint64(e.ID), "kind", e.Kind, "queue", e.Queue,
				"attempt", e.Attempt, "state", string(e.State))
		}
	}
}

func (ev *emitter) unwatch(sub *watcher) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for i, s := range ev.subs {
		if s == sub {
			ev.subs = append(ev.subs[:i], ev.subs[i+1:]...)
			close(sub.ch)
			break
		}
	}
	ev.listening.Store(len(ev.subs) > 0)
}

// close ends every watch; called once the commit loop has exited.
func (ev *emitter) close() {
	ev.mu.Lock()
	subs := ev.subs
	ev.closed = true
	ev.mu.Unlock()
	for _, sub := range subs {
		sub.stop()
		ev.unwatch(sub)
	}
}

// effects is what the engine derives from the changes a commit made: the events to
// deliver, the queues that got ready jobs, the earliest time a job now waits for,
// and whether a job ended.
type effects struct {
	events   []Change
	touched  map[string]bool
	due      time.Time
	finished bool
	cancels  []ID // claimed jobs whose handlers are to stop
}

// absorb derives the effects of changes committed at at; events only if wanted.
func (fx *effects) absorb(changes []jobChange, at time.Time, wanted bool) {
	for _, c := range changes {
		switch c.what {
		case changeInserted, changeMerged, changeMoved, changeAdmitted:
			switch {
			case c.to == stReady:
				if fx.touched == nil {
					fx.touched = map[string]bool{}
				}
				fx.touched[c.queue] = true
			case c.to == stScheduled || c.to == stRetrying:
				if fx.due.IsZero() || c.runAt.Before(fx.due) {
					fx.due = c.runAt
				}
			case final(c.to):
				fx.finished = true
			}
		}
		if c.what == changeCancelAsked {
			fx.cancels = append(fx.cancels, c.id)
		}
		if wanted {
			if typ := eventType(c); typ != "" {
				fx.events = append(fx.events, eventOf(c, typ, at))
			}
		}
	}
}

// eventType is the event a change makes, "" for none.
func eventType(c jobChange) ChangeType {
	switch c.what {
	case changeInserted, changeMerged:
		return ChangeEnqueued
	case changeStarted:
		return ChangeStarted
	case changeProgress:
		return ChangeProgress
	case changeRemoved:
		return ChangeDeleted
	case changeMoved:
		return outcomeEvent(c.outcome, c.to)
	}
	return "" // admissions and quarantines are not a job's events
}

// eventOf is the event of change c, committed at at.
func eventOf(c jobChange, typ ChangeType, at time.Time) Change {
	e := Change{Type: typ, ID: c.id, Kind: c.kind, Queue: c.queue, State: stateNames[c.to],
		Attempt: int(c.attempt), At: at}
	switch typ {
	case ChangeStarted, ChangeProgress:
		// The record is as claimed: the attempt in progress is not counted in it yet.
		e.State, e.Attempt = StateRunning, e.Attempt+1
	case ChangeDeleted:
		e.State = ""
	case ChangeRetrying, ChangeFailed, ChangeCanceled:
		e.Error = c.err
	}
	return e
}
