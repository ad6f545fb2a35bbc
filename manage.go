package jobrun

import (
	"context"
	"fmt"
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
		if err := t.makeReady(id, rec, from, res); err != nil {
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
