package jobrun

import (
	"context"
	"fmt"
	"slices"
	"time"

	"golang.org/x/time/rate"
)

// mutate runs fn in the commit loop's next commit and returns its answer.
func (r *Runner) mutate(ctx context.Context, fn func(w storeWriter, en *engine) (answer, fatal error), after func(en *engine)) error {
	op := &mutateOp{fn: fn, after: after, reply: make(chan error, 1)}
	return r.send(ctx, op, op.reply)
}

// Promote makes a scheduled or retrying job ready now, as if its time had come. It
// returns an error wrapping ErrState if the job is not waiting for a time.
func (r *Runner) Promote(ctx context.Context, id ID) error {
	err := r.mutate(ctx, func(w storeWriter, _ *engine) (error, error) {
		rec, err := w.get(id)
		if err != nil {
			return err, nil
		}
		if _, running := w.claimedSince(id); running || (rec.state != stScheduled && rec.state != stRetrying) {
			return fmt.Errorf("%w: job %d is %s; only scheduled and retrying jobs can be promoted",
				ErrState, id, stateOf(w, id, rec)), nil
		}
		_, err = w.apply(id, rec, ending{outcome: outcomeDue})
		return nil, err
	}, nil)
	if err != nil {
		return fmt.Errorf("promote job %d: %w", id, err)
	}
	return nil
}

// Pause stops the queue's jobs from starting, in this process and, because it is
// stored in the file, after a restart too, until Resume. Running jobs finish; jobs
// claimed but not started are handed back. Enqueueing into a paused queue still works.
func (r *Runner) Pause(ctx context.Context, queue string) error {
	return r.setPaused(ctx, queue, true)
}

// Resume lets a paused queue's jobs start again.
func (r *Runner) Resume(ctx context.Context, queue string) error {
	return r.setPaused(ctx, queue, false)
}

func (r *Runner) setPaused(ctx context.Context, queue string, paused bool) error {
	verb := map[bool]string{true: "pause", false: "resume"}[paused]
	if err := validateName("queue", queue); err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	err := r.mutate(ctx, func(w storeWriter, _ *engine) (error, error) {
		return nil, w.setPaused(queue, paused)
	}, func(en *engine) {
		en.paused[queue] = paused
		if q := en.queues[queue]; q != nil {
			if paused {
				en.takeBack(q)
			} else {
				q.mayReady = true
				en.fresh = true
			}
		}
	})
	if err != nil {
		return fmt.Errorf("%s queue %s: %w", verb, queue, err)
	}
	return nil
}

// Cancel stops a job. A job waiting to run (scheduled, ready or retrying) is canceled
// at once. For a running job, Cancel records the request durably and cancels the
// handler's context, whose context.Cause is then ErrCanceled; the job ends canceled
// when the handler returns an error (or at once if it had not started), and done if
// the handler returns nil anyway. A running job whose process dies after Cancel ends
// canceled at the next Open instead of running again. It returns an error wrapping
// ErrState for a job that already finished.
func (r *Runner) Cancel(ctx context.Context, id ID) error {
	var running *execution
	err := r.mutate(ctx, func(w storeWriter, en *engine) (error, error) {
		rec, err := w.get(id)
		if err != nil {
			return err, nil
		}
		if _, active := w.claimedSince(id); active {
			if e := en.inflight[id]; e != nil {
				// Mark the loop's copy, which later progress writes and the outcome
				// start from, so the request is not overwritten.
				e.rec.cancel = true
				running = e
				return nil, w.put(id, e.rec)
			}
			if lw, ok := w.(leaseWriter); ok && lw.claimedElsewhere(id) {
				// Another process runs it: its next renewal finds the request and
				// stops the handler, which the poke brings forward.
				rec.cancel = true
				lw.poke()
				return nil, w.put(id, rec)
			}
			// Running in no session: nothing to stop, the record is all there is. Its
			// attempt ends as one that Cancel reached before it started.
			_, err := w.apply(id, rec, ending{outcome: outcomeCanceled})
			return nil, err
		}
		if final(rec.state) {
			return fmt.Errorf("%w: job %d is %s; only unfinished jobs can be canceled", ErrState, id, stateNames[rec.state]), nil
		}
		_, err = w.apply(id, rec, ending{outcome: outcomeCancel})
		return nil, err
	}, func(*engine) {
		if running != nil {
			running.requestCancel()
		}
	})
	if err != nil {
		return fmt.Errorf("cancel job %d: %w", id, err)
	}
	return nil
}

// stateOf is a job's state as Get reports it: running once its handler started.
func stateOf(t storeReader, id ID, rec *record) State {
	if at, claimed := t.claimedSince(id); claimed && !at.IsZero() {
		return StateRunning
	}
	return stateNames[rec.state]
}

// Retry runs a finished job (failed, canceled or done) again: it becomes ready now
// with a fresh set of attempts, keeping its error history and log. A job with a unique
// key takes the key back, or Retry fails with ErrDuplicate if another unfinished job
// holds it. It returns an error wrapping ErrState for a job that has not finished
// (Promote runs a waiting job now).
func (r *Runner) Retry(ctx context.Context, id ID) error {
	err := r.mutate(ctx, func(w storeWriter, _ *engine) (error, error) {
		rec, err := w.get(id)
		if err != nil {
			return err, nil
		}
		if _, active := w.claimedSince(id); active || !final(rec.state) {
			return fmt.Errorf("%w: job %d is %s; only finished jobs can be retried", ErrState, id, stateOf(w, id, rec)), nil
		}
		if err := w.takeUnique(id, rec); err != nil {
			return err, nil
		}
		_, err = w.apply(id, rec, ending{outcome: outcomeRetry})
		return nil, err
	}, nil)
	if err != nil {
		return fmt.Errorf("retry job %d: %w", id, err)
	}
	return nil
}

// Batches of the bulk management calls: each is one commit, so workers and producers
// share the commit loop with a long RetryFailed or Clean.
const (
	bulkBatch  = 1000
	bulkBudget = 20 * bulkBatch
)

// RetryFailed retries every failed job of queue ("" for every queue), the dead-letter
// set, as Retry does, and returns how many it retried. It works in batches of 1,000
// jobs per commit, so it never holds up the workers for long; jobs that fail again
// while it runs are not retried twice. Failed jobs whose unique key another job holds
// now stay failed.
func (r *Runner) RetryFailed(ctx context.Context, queue string) (int, error) {
	// Up to and including now: a job that fails again gets a later finish time.
	n, err := r.bulk(ctx, stFailed, queue, time.Now().Add(time.Nanosecond), func(w storeWriter, id ID, rec *record) (bool, error) {
		if w.takeUnique(id, rec) != nil {
			return false, nil
		}
		_, err := w.apply(id, rec, ending{outcome: outcomeRetry})
		return true, err
	})
	if err != nil {
		return n, fmt.Errorf("retry failed jobs: %w", err)
	}
	return n, nil
}

// Delete removes a job that is not running, with its index entries; its unique key,
// if it held one, is free again. It returns an error wrapping ErrState for a running
// job (Cancel it first) and ErrNotFound for an unknown ID.
func (r *Runner) Delete(ctx context.Context, id ID) error {
	err := r.mutate(ctx, func(w storeWriter, _ *engine) (error, error) {
		rec, err := w.get(id)
		if err != nil {
			return err, nil
		}
		if _, active := w.claimedSince(id); active {
			return fmt.Errorf("%w: job %d is running; cancel it first", ErrState, id), nil
		}
		return nil, w.remove(id, rec)
	}, nil)
	if err != nil {
		return fmt.Errorf("delete job %d: %w", id, err)
	}
	return nil
}

// Clean deletes the jobs of queue ("" for every queue) in final state state
// (StateDone, StateFailed or StateCanceled; "" for all three) that finished before
// before, and returns how many it deleted. Clean(ctx, q, StateFailed, time.Now())
// purges the dead-letter set. Like RetryFailed it works in batches, one commit each.
func (r *Runner) Clean(ctx context.Context, queue string, state State, before time.Time) (int, error) {
	states := []byte{stDone, stFailed, stCanceled}
	if state != "" {
		st, ok := stateCode(state)
		if !ok || !final(st) {
			return 0, fmt.Errorf("clean: %w", invalidf("state %q is not final; Clean takes done, failed, canceled or \"\"", state))
		}
		states = []byte{st}
	}
	total := 0
	for _, st := range states {
		n, err := r.bulk(ctx, st, queue, before, func(w storeWriter, id ID, rec *record) (bool, error) {
			return true, w.remove(id, rec)
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("clean: %w", err)
		}
	}
	return total, nil
}

// bulk applies fn to the jobs of queue in final state st that finished before before,
// a batch per commit, and returns how many fn reported done.
func (r *Runner) bulk(ctx context.Context, st byte, queue string, before time.Time,
	fn func(w storeWriter, id ID, rec *record) (bool, error)) (int, error) {
	if queue != "" {
		if err := validateName("queue", queue); err != nil {
			return 0, err
		}
	}
	total := 0
	var after []byte
	for {
		n := 0
		err := r.mutate(ctx, func(w storeWriter, _ *engine) (error, error) {
			n = 0
			next, err := w.sweep(st, queue, before, after, bulkBatch, bulkBudget, func(id ID, rec *record) error {
				ok, err := fn(w, id, rec)
				if ok {
					n++
				}
				return err
			})
			after = next
			return nil, err
		}, nil)
		if err != nil {
			return total, err
		}
		total += n
		if after == nil {
			return total, nil
		}
	}
}

// QueueInfo describes one queue: its configuration in this runner, whether it is
// paused, and its counts.
type QueueInfo struct {
	Name    string        `json:"name"`
	Workers int           `json:"workers"`         // concurrency in this runner; 0 if this runner does not run the queue
	Rate    rate.Limit    `json:"rate,omitempty"`  // the limiter's rate, 0 if the queue has no limiter
	Burst   int           `json:"burst,omitempty"` // the limiter's burst
	Paused  bool          `json:"paused"`
	Counts  map[State]int `json:"counts"`
}

// Queues describes every queue that has held jobs, that is paused or that this
// runner runs, in byte order of their names, from one consistent snapshot. For
// totals alone, Counts is cheaper.
func (r *Runner) Queues(ctx context.Context) ([]QueueInfo, error) {
	var out []QueueInfo
	err := r.view(ctx, func(t storeReader) error {
		names := t.queueNames()
		for name := range r.cfg.queues {
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
		paused := t.pausedQueues()
		for name := range paused {
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		for _, name := range names {
			qi := QueueInfo{Name: name, Paused: paused[name], Counts: t.queueCounts(name)}
			if c := r.cfg.queues[name]; c != nil {
				qi.Workers = c.workers
				if c.limiter != nil {
					qi.Rate, qi.Burst = c.limiter.Limit(), c.limiter.Burst()
				}
			}
			out = append(out, qi)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queues: %w", err)
	}
	return out, nil
}
