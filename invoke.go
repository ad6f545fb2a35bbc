package jobrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// maxChildren bounds the children one Invoke step starts.
const maxChildren = 1000

// Child is how a child run that InvokeAll waited for ended.
type Child[R any] struct {
	ID     ID
	State  State // done, failed or canceled
	Result R     // the value the child's handler gave SetResult, if it is done
	Err    error // for a failed or canceled child: its last error
}

// Invoke enqueues args as a child run of the job whose handler ctx belongs to, as
// the step called name, and suspends the job until the child ends: like Sleep, it
// returns an error that the handler must return, and the job leaves its worker,
// spending no attempt. When the child ends, the job runs again from the top and
// Invoke returns the child's result (the value its handler gave SetResult) decoded
// into R. The child is enqueued in the same commit as the suspension, so it is
// started exactly once per Invoke, across crashes.
//
// A child that fails (or is canceled) fails the step: Invoke returns its error,
// which fails the attempt, and on the job's next attempt Invoke enqueues a new
// child, so the child is retried by the parent's policy (its MaxAttempts and
// Backoff), as in Inngest's step.invoke. Use InvokeAll to look at a failed child
// instead. A job that ends (done, failed, canceled) while a child of it has not
// ended cancels the child; a child's Info names its Parent. opts apply to the child
// as to Enqueue. Names follow Step's rules.
func Invoke[R any](ctx context.Context, name string, args Args, opts ...EnqueueOption) (R, error) {
	var zero R
	children, err := invoke[R](ctx, "invoke", name, []Args{args}, opts, true)
	if err != nil {
		return zero, err
	}
	c := children[0]
	if c.State != StateDone {
		return zero, c.Err // not reached: invoke fails the step first
	}
	return c.Result, nil
}

// InvokeAll is Invoke for many children, started together in one commit and waited
// for together (fan-out, fan-in): the job runs again once every child has ended,
// and InvokeAll returns how each ended, in the order of batch, failed ones
// included; it fails only if a result does not decode into R (a Permanent error).
// One step starts at most 1,000 children.
func InvokeAll[R any](ctx context.Context, name string, batch []Args, opts ...EnqueueOption) ([]Child[R], error) {
	return invoke[R](ctx, "invoke all", name, batch, opts, false)
}

func invoke[R any](ctx context.Context, verb, name string, batch []Args, opts []EnqueueOption, failOnChild bool) ([]Child[R], error) {
	e, err := stepCaller(ctx, verb, name)
	if err != nil {
		return nil, err
	}
	if len(batch) == 0 || len(batch) > maxChildren {
		return nil, Permanent(invalidf("%s %q: %d children; give 1 to %d", verb, name, len(batch), maxChildren))
	}
	key, saved, err := e.r.reachStep(e, name)
	if err != nil {
		return nil, err
	}
	switch {
	case saved == nil:
		return nil, e.r.suspendInvoke(ctx, e, key, batch, opts, false)
	case saved.call() != callInvoke:
		return nil, saved.reusedBy(callInvoke)
	case saved.state == stepInvoking:
		// Run again before its children ended (Promote): it waits on.
		return nil, &sleepError{e: e, s: saved, keepSpent: true}
	case len(saved.children) != len(batch):
		return nil, Permanent(fmt.Errorf("%s %q: the step stored under that name has %d children, this call %d",
			verb, key, len(saved.children), len(batch)))
	}
	out := make([]Child[R], len(saved.children))
	failed := false
	for i, c := range saved.children {
		out[i] = Child[R]{ID: c.id, State: stateNames[c.state]}
		switch {
		case c.state == stDone && len(c.result) > 0:
			if err := json.Unmarshal(c.result, &out[i].Result); err != nil {
				return nil, Permanent(fmt.Errorf("%s %q: the result of child %d does not decode into %T: %w",
					verb, key, c.id, out[i].Result, err))
			}
		case c.state != stDone:
			failed = true
			msg := c.err
			if msg == "" {
				msg = string(out[i].State)
			}
			out[i].Err = fmt.Errorf("child job %d %s: %s", c.id, out[i].State, msg)
		}
	}
	if !failOnChild || !failed {
		return out, nil
	}
	if int64(e.info.Attempt-1) == saved.woke {
		// The first run since the child ended: the step fails with its error.
		var errs []error
		for _, c := range out {
			if c.Err != nil {
				errs = append(errs, c.Err)
			}
		}
		return nil, fmt.Errorf("%s %q: %w", verb, key, errors.Join(errs...))
	}
	// A later attempt: the step is retried with a new child.
	return nil, e.r.suspendInvoke(ctx, e, key, batch, opts, true)
}

// suspendInvoke prepares the children of e's Invoke step key and returns the
// suspension that enqueues them; again keeps the attempts spent (a retry of the
// step).
func (r *Runner) suspendInvoke(ctx context.Context, e *execution, key string, batch []Args, opts []EnqueueOption, again bool) error {
	now := time.Now()
	recs := make([]*record, len(batch))
	for i, args := range batch {
		rec, err := r.prepare(ctx, args, opts, now)
		if err != nil {
			return Permanent(fmt.Errorf("invoke %q: child %d: %w", key, i, err))
		}
		recs[i] = rec
	}
	e.steps.mu.Lock()
	attempts := int64(e.info.Attempt - e.steps.spent)
	e.steps.mu.Unlock()
	s := &step{key: key, state: stepInvoking, attempts: attempts, startedAt: now, finishedAt: maxFireTime}
	return &sleepError{e: e, s: s, children: recs, keepSpent: again}
}

func allEnded(children []childRun) bool {
	for _, c := range children {
		if c.state == 0 {
			return false
		}
	}
	return true
}
