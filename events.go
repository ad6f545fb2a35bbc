package jobrun

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// EventType names a committed change of a job.
type EventType string

// The events of a job's life, one per committed state change.
const (
	EventEnqueued EventType = "enqueued" // stored, ready or scheduled
	EventReady    EventType = "ready"    // became ready again: due, promoted, retried by Retry, handed back at shutdown
	EventStarted  EventType = "started"  // its handler started: recorded once it ran a commit's time, or with its outcome (see StateRunning)
	EventProgress EventType = "progress" // progress or log lines stored
	EventSnoozed  EventType = "snoozed"  // the handler returned Snooze
	EventRetrying EventType = "retrying" // an attempt failed and another one is scheduled
	EventDone     EventType = "done"
	EventFailed   EventType = "failed" // attempts exhausted, or Permanent
	EventCanceled EventType = "canceled"
	EventDeleted  EventType = "deleted" // by Delete, Clean or retention
)

// Event is one committed change of a job, as delivered to WithEventHook and Subscribe.
type Event struct {
	Type    EventType
	ID      ID
	Kind    string
	Queue   string
	State   State     // the job's state after the change
	Attempt int       // attempts spent; for EventStarted, the attempt starting
	At      time.Time // when the change was committed
	Error   string    // for EventRetrying, EventFailed and EventCanceled: the attempt's error, if any

	// Missed is, for a subscriber, how many events were dropped before this one
	// because its channel was full.
	Missed int
}

// WithEventHook calls fn with every committed change of every job, in commit order
// (so in order per job), after the commit is durable and before the callers waiting
// for that commit (Enqueue, Cancel, ...) return. fn runs on the runner's commit
// goroutine: it must be quick and must not call the runner's write methods (Enqueue,
// Cancel, ...), which wait for that goroutine, nor Subscribe; reads (Get, List,
// Counts) are fine.
// Jobs enqueued with EnqueueTx are reported from the goroutine that commits the
// application's transaction. Changes made while opening the file (jobs recovered
// after a crash) are logged, not reported.
func WithEventHook(fn func(Event)) Option {
	return func(c *config) {
		if fn == nil {
			c.err = invalidf("nil event hook")
			return
		}
		c.eventHook = fn
	}
}

// Subscribe returns a channel that receives every committed change of every job, in
// commit order, from now until ctx ends or the runner closes; then the channel is
// closed. buffer is the channel's capacity (at least 1). A subscriber that falls
// behind never slows the runner: when its channel is full, events are dropped, and
// the next event it receives counts them in Missed.
func (r *Runner) Subscribe(ctx context.Context, buffer int) (<-chan Event, error) {
	if buffer < 1 {
		return nil, invalidf("subscribe: buffer must be at least 1, got %d", buffer)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sub := &subscriber{ch: make(chan Event, buffer)}
	ev := &r.events
	ev.mu.Lock()
	if ev.closed {
		ev.mu.Unlock()
		return nil, ErrClosed
	}
	ev.subs = append(ev.subs, sub)
	ev.listening.Store(true)
	// Registered under the lock, so that close never sees a subscriber without it;
	// if ctx is already done, the unsubscribe waits for the lock.
	sub.stop = context.AfterFunc(ctx, func() { ev.unsubscribe(sub) })
	ev.mu.Unlock()
	return sub.ch, nil
}

type subscriber struct {
	ch     chan Event
	missed int
	stop   func() bool
}

// emitter delivers events to the hook, the subscribers and the debug log.
type emitter struct {
	hook func(Event)
	log  *slog.Logger

	mu        sync.Mutex // serializes delivery: the loop and EnqueueTx commits
	subs      []*subscriber
	closed    bool
	listening atomic.Bool // subs is not empty
}

// wanted reports whether events need to be built at all.
func (ev *emitter) wanted() bool {
	return ev.hook != nil || ev.listening.Load() || ev.log.Enabled(context.Background(), slog.LevelDebug)
}

func (ev *emitter) emit(events []Event) {
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

func (ev *emitter) unsubscribe(sub *subscriber) {
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

// close ends every subscription; called once the commit loop has exited.
func (ev *emitter) close() {
	ev.mu.Lock()
	subs := ev.subs
	ev.closed = true
	ev.mu.Unlock()
	for _, sub := range subs {
		sub.stop()
		ev.unsubscribe(sub)
	}
}

// effects is what the engine derives from the changes a commit made: the events to
// deliver, the queues that got ready jobs, the earliest time a job now waits for,
// and whether a job ended.
type effects struct {
	events   []Event
	touched  map[string]bool
	due      time.Time
	finished bool
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
		if wanted {
			if typ := eventType(c); typ != "" {
				fx.events = append(fx.events, eventOf(c, typ, at))
			}
		}
	}
}

// eventType is the event a change makes, "" for none.
func eventType(c jobChange) EventType {
	switch c.what {
	case changeInserted, changeMerged:
		return EventEnqueued
	case changeStarted:
		return EventStarted
	case changeProgress:
		return EventProgress
	case changeRemoved:
		return EventDeleted
	case changeMoved:
		return outcomeEvent(c.outcome, c.to)
	}
	return "" // admissions and quarantines are not a job's events
}

// eventOf is the event of change c, committed at at.
func eventOf(c jobChange, typ EventType, at time.Time) Event {
	e := Event{Type: typ, ID: c.id, Kind: c.kind, Queue: c.queue, State: stateNames[c.to],
		Attempt: int(c.attempt), At: at}
	switch typ {
	case EventStarted, EventProgress:
		// The record is as claimed: the attempt in progress is not counted in it yet.
		e.State, e.Attempt = StateRunning, e.Attempt+1
	case EventDeleted:
		e.State = ""
	case EventRetrying, EventFailed, EventCanceled:
		e.Error = c.err
	}
	return e
}
