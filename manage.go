package jobrun

import (
	"context"
	"fmt"
	"slices"
	"time"

	"golang.org/x/time/rate"
)

// mutate runs fn in the commit loop's next commit and returns its answer.
func (r *Runner) mutate(ctx context.Context, fn func(t *txn, res *cycleResult) (answer, fatal error), after func(en *engine)) error {
	op := &mutateOp{fn: fn, after: after, reply: make(chan error, 1)}
	return r.send(ctx, op, op.reply)
}

// Promote makes a scheduled or retrying job ready now, as if its time had come. It
// returns an error wrapping ErrState if the job is not waiting for a time.
func (r *Runner) Promote(ctx context.Context, id ID) error {
	err := r.mutate(ctx, func(t *txn, res *cycleResult) (error, error) {
		rec, err := t.get(id)
		if err != nil {
			return err, nil
		}
		if _, running := t.activeSince(id); running || (rec.state != stScheduled && rec.state != stRetrying) {
			return fmt.Errorf("%w: job %d is %s; only scheduled and retrying jobs can be promoted",
				ErrState, id, t.stateOf(id, rec)), nil
		}
		if err := t.scheduled.Delete(timeKey(rec.runAt, id)); err != nil {
			return nil, err
		}
		from := rec.state
		rec.runAt = t.now
		if err := t.change(id, rec, outcomeDue, from, res); err != nil {
			return nil, err
		}
		return nil, nil
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

// Paused reports whether queue is paused.
func (r *Runner) Paused(ctx context.Context, queue string) (bool, error) {
	var paused bool
	err := r.view(ctx, func(t *txn) error {
		paused = t.pausedQueues()[queue]
		return nil
	})
	return paused, err
}

func (r *Runner) setPaused(ctx context.Context, queue string, paused bool) error {
	verb := map[bool]string{true: "pause", false: "resume"}[paused]
	if err := validateName("queue", queue); err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	err := r.mutate(ctx, func(t *txn, res *cycleResult) (error, error) {
		return nil, t.setPaused(queue, paused)
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
	err := r.mutate(ctx, func(t *txn, res *cycleResult) (error, error) {
		rec, err := t.get(id)
		if err != nil {
			return err, nil
		}
		if at, active := t.activeSince(id); active {
			if e := res.en.inflight[id]; e != nil {
				// Mark the loop's copy, which later progress writes and the outcome
				// start from, so the request is not overwritten.
				e.rec.cancel = true
				running = e
				return nil, t.put(id, e.rec)
			}
			// Running in no session: nothing to stop, the record is all there is. Its
			// attempt ends as one that Cancel reached before it started.
			if err := t.removeActive(id); err != nil {
				return nil, err
			}
			from := stRunning
			if at.IsZero() {
				from = stReady // claimed, never started
			}
			return nil, t.change(id, rec, outcomeCanceled, from, res)
		}
		if final(rec.state) {
			return fmt.Errorf("%w: job %d is %s; only unfinished jobs can be canceled", ErrState, id, stateNames[rec.state]), nil
		}
		if err := t.unindex(id, rec, res); err != nil {
			return nil, err
		}
		return nil, t.change(id, rec, outcomeCancel, rec.state, res)
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

// change applies an outcome to a job that is not claimed and left its index (due,
// Cancel, Retry), counted until now in state from, and stores it.
func (t *txn) change(id ID, rec *record, o outcome, from byte, res *cycleResult) error {
	nx, err := transition(rec, ending{outcome: o}, t.now)
	if err == nil {
		err = t.settle(id, rec, nx, from, res)
	}
	if err != nil {
		return err
	}
	res.event(id, rec, nx.event)
	return t.put(id, rec)
}

// Retry runs a finished job (failed, canceled or done) again: it becomes ready now
// with a fresh set of attempts, keeping its error history and log. A job with a unique
// key takes the key back, or Retry fails with ErrDuplicate if another unfinished job
// holds it. It returns an error wrapping ErrState for a job that has not finished
// (Promote runs a waiting job now).
func (r *Runner) Retry(ctx context.Context, id ID) error {
	err := r.mutate(ctx, func(t *txn, res *cycleResult) (error, error) {
		rec, err := t.get(id)
		if err != nil {
			return err, nil
		}
		if _, active := t.activeSince(id); active || !final(rec.state) {
			return fmt.Errorf("%w: job %d is %s; only finished jobs can be retried", ErrState, id, t.stateOf(id, rec)), nil
		}
		if err := t.takeUnique(id, rec); err != nil {
			return err, nil
		}
		return nil, t.retry(id, rec, res)
	}, nil)
	if err != nil {
		return fmt.Errorf("retry job %d: %w", id, err)
	}
	return nil
}

// retry makes a finished job ready again.
func (t *txn) retry(id ID, rec *record, res *cycleResult) error {
	if err := t.unindex(id, rec, res); err != nil {
		return err
	}
	return t.change(id, rec, outcomeRetry, rec.state, res)
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
	n, err := r.bulk(ctx, stFailed, queue, time.Now().Add(time.Nanosecond), func(t *txn, id ID, rec *record, res *cycleResult) (bool, error) {
		if t.takeUnique(id, rec) != nil {
			return false, nil
		}
		return true, t.retry(id, rec, res)
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
	err := r.mutate(ctx, func(t *txn, res *cycleResult) (error, error) {
		rec, err := t.get(id)
		if err != nil {
			return err, nil
		}
		if _, active := t.activeSince(id); active {
			return fmt.Errorf("%w: job %d is running; cancel it first", ErrState, id), nil
		}
		return nil, t.remove(id, rec, res)
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
		n, err := r.bulk(ctx, st, queue, before, func(t *txn, id ID, rec *record, res *cycleResult) (bool, error) {
			return true, t.remove(id, rec, res)
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
	fn func(t *txn, id ID, rec *record, res *cycleResult) (bool, error)) (int, error) {
	if queue != "" {
		if err := validateName("queue", queue); err != nil {
			return 0, err
		}
	}
	total := 0
	var after []byte
	for {
		n := 0
		err := r.mutate(ctx, func(t *txn, res *cycleResult) (error, error) {
			n = 0
			next, err := t.sweep(st, queue, before, after, bulkBatch, bulkBudget, func(id ID, rec *record) error {
				ok, err := fn(t, id, rec, res)
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

// QueueInfos describes every queue that holds jobs or that this runner runs, in
// byte order of their names, from one consistent snapshot.
func (r *Runner) QueueInfos(ctx context.Context) ([]QueueInfo, error) {
	var out []QueueInfo
	err := r.view(ctx, func(t *txn) error {
		names := t.queueNames()
		for name := range r.cfg.queues {
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		paused := t.pausedQueues()
		for _, name := range names {
			qi := QueueInfo{Name: name, Paused: paused[name], Counts: t.readCounts(name)}
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
		return nil, fmt.Errorf("queue infos: %w", err)
	}
	return out, nil
}
