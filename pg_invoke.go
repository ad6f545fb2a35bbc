package jobrun

import (
	"fmt"

	"github.com/jobrun/jobrun/internal/sqldb"
)

// A job waiting in Invoke keeps its children in its step, as in the bbolt store
// (bolt_invoke.go): a child's record names the job and the step, so a child that
// ends writes its part of the step in the same commit, and the last one makes the
// job ready. A job that ends while children of its run are unfinished cancels them.
//
// Children of one step end in transactions of their own, maybe of other processes,
// so each reads the step FOR UPDATE: the second waits for the first and reads the
// step it wrote. Each takes the parent's row first, then the step, as the parent's
// own suspension does (finish, then invoke), so that the two wait for each other
// instead of deadlocking.

// invoke stores the suspension of job id (its record rec, as finish writes it) in
// the Invoke step s: with children, it enqueues them as the step's children; without,
// the job suspends again in the step as stored (it ran again early, Promote), which
// its children may have ended since. It returns the step to store; one whose
// children have all ended is due now.
func (t *pgTxn) invoke(id ID, rec *record, s *step, children []*record) (*step, error) {
	if len(children) == 0 {
		stored, err := t.lockStep(id, s.key)
		if stored == nil || err != nil {
			return s, err
		}
		return decodeStep(s.key, stored)
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

// lockStep reads the encoding of job id's step key, locked until the commit; nil if
// there is none.
func (t *pgTxn) lockStep(id ID, key string) ([]byte, error) {
	var data []byte
	err := t.queryRowOther(`SELECT data FROM {s}.steps WHERE job = $1 AND key = $2 FOR UPDATE`, int64(id), key).Scan(&data)
	if err == sqldb.ErrNoRows {
		return nil, nil
	}
	return data, err
}

// childEnded writes the end of child run id, whose record is rec, into its parent's
// Invoke step; when it is the last of the step's children to end, the parent, if it
// waits in the step, becomes ready.
func (t *pgTxn) childEnded(id ID, rec *record) error {
	r, err := t.row(rec.parent)
	if err != nil || r == nil {
		return err // nil: the parent is gone
	}
	parent, err := decodeRecord(r.raw)
	if err != nil {
		return nil
	}
	v, err := t.lockStep(rec.parent, rec.parentStep)
	if v == nil || err != nil {
		return err
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
	due := false
	if allEnded(s.children) {
		s.state, s.finishedAt, s.woke = stepDone, t.now, parent.attempt
		_, claimed := t.claimedSince(rec.parent)
		due = parent.state == stScheduled && !claimed
	}
	if err := t.putStep(rec.parent, s); err != nil {
		return err
	}
	if due {
		_, err = t.apply(rec.parent, parent, ending{outcome: outcomeDue})
	}
	return err
}

// cancelChildren cancels the unfinished children of job id's Invoke steps: one that
// waits at once, one that runs once its handler returns (the engine stops it). The
// query returns the Invoke steps alone (the state is the encoding's second byte),
// and the children's rows are read in one more.
func (t *pgTxn) cancelChildren(id ID) error {
	var children []ID
	err := scanRows(t.queryOther(`SELECT key, data FROM {s}.steps WHERE job = $1 AND substring(data FROM 2 FOR 1) = $2
		ORDER BY key COLLATE "C"`, int64(id), []byte{stepInvoking}), func(rows sqldb.Rows) error {
		var key string
		var data []byte
		if err := rows.Scan(&key, &data); err != nil {
			return err
		}
		if s, err := decodeStep(key, data); err == nil {
			for _, run := range s.children {
				if run.state == 0 {
					children = append(children, run.id)
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := t.lockRows(children); err != nil {
		return err
	}
	for _, child := range children {
		if err := t.cancelJob(child); err != nil {
			return err
		}
	}
	return nil
}
