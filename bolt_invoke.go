package jobrun

import (
	"bytes"
	"fmt"
)

// A job waiting in Invoke keeps its children in its step, with each one's final
// state and result once it ends; a child's record names the job and the step, so a
// child that ends writes its part of the step in the same commit, and the last one
// makes the job ready. A job that ends while children of its run are unfinished
// cancels them.

// invoke stores the suspension of job id (its record rec, as finish writes it) in
// the Invoke step s: with children, it enqueues them as the step's children; without,
// the job suspends again in the step as stored (it ran again early, Promote), which
// its children may have ended since. It returns the step to store; one whose
// children have all ended is due now.
func (t *txn) invoke(id ID, rec *record, s *step, children []*record) (*step, error) {
	if len(children) == 0 {
		v := t.bucket(bSteps).Get(stepKey(id, s.key))
		if v == nil {
			return s, nil
		}
		return decodeStep(s.key, v)
	}
	s = &step{key: s.key, state: stepInvoking, attempts: s.attempts, startedAt: s.startedAt, finishedAt: s.finishedAt}
	for _, c := range children {
		c.parent, c.parentStep = id, s.key
		ins, err := t.enqueue(c)
		if err != nil {
			return nil, fmt.Errorf("child %s: %w", c.kind, err)
		}
		run := childRun{id: ins.id}
		if ins.duplicate {
			run.state, run.err = stFailed, fmt.Sprintf("refused by its unique key: job %d holds key %q", ins.id, c.uniqueKey)
		}
		s.children = append(s.children, run)
	}
	rec.invoker = true
	if allEnded(s.children) {
		s.state, s.finishedAt, s.woke = stepDone, t.now, rec.attempt
	}
	return s, nil
}

// childEnded writes the end of child run id, whose record is rec, into its parent's
// Invoke step; when it is the last of the step's children to end, the parent, if it
// waits in the step, becomes ready.
func (t *txn) childEnded(id ID, rec *record) error {
	v := t.bucket(bSteps).Get(stepKey(rec.parent, rec.parentStep))
	if v == nil {
		return nil // the parent is gone
	}
	s, err := decodeStep(rec.parentStep, v)
	if err != nil || s.state != stepInvoking {
		return nil // unreadable, or its wait is over (the child of an earlier Invoke of the step)
	}
	i := -1
	for j := range s.children {
		if s.children[j].id == id {
			i = j
		}
	}
	if i < 0 {
		return nil
	}
	c := &s.children[i]
	c.state, c.result, c.err = rec.state, rec.result, ""
	if n := len(rec.errors); n > 0 && rec.state != stDone {
		c.err = rec.errors[n-1].Error
	}
	parent, err := t.get(rec.parent)
	if err != nil {
		return nil
	}
	due := false
	if allEnded(s.children) {
		s.state, s.finishedAt, s.woke = stepDone, t.now, parent.attempt
		_, claimed := t.claimedSince(rec.parent)
		due = parent.state == stScheduled && !claimed
	}
	if err := t.bucket(bSteps).Put(stepKey(rec.parent, rec.parentStep), s.encode()); err != nil {
		return err
	}
	if due {
		_, err = t.apply(rec.parent, parent, ending{outcome: outcomeDue})
	}
	return err
}

// cancelChildren cancels the unfinished children of job id's Invoke steps: one that
// waits at once, one that runs once its handler returns (the engine stops it).
func (t *txn) cancelChildren(id ID) error {
	prefix := idKey(id)
	var children []ID
	c := t.bucket(bSteps).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(v) < 2 || v[1] != stepInvoking {
			continue
		}
		if _, key, ok := parseStepKey(k); ok {
			if s, err := decodeStep(key, v); err == nil {
				for _, run := range s.children {
					if run.state == 0 {
						children = append(children, run.id)
					}
				}
			}
		}
	}
	for _, child := range children {
		if err := t.cancelJob(child); err != nil {
			return err
		}
	}
	return nil
}
