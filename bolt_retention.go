package jobrun

import (
	"bytes"
	"fmt"
	"time"
)

// retentionDue reports whether the cleaner has anything to delete and, if not, when
// it will (zero: nothing finished expires), by planning one deletion per state: a
// queue over its count limit has one at once; otherwise the plan reads from the
// oldest job of each state, at most cleanBudget entries (then it answers "not due,
// look again in a second").
func (t *txn) retentionDue() (bool, time.Time) {
	var next time.Time
	for _, st := range []byte{stDone, stFailed, stCanceled} {
		victims, resume, at := t.retainPlan(t.cfg, st, nil, 1)
		switch {
		case len(victims) > 0:
			return true, time.Time{}
		case resume != nil:
			at = t.now.Add(cleanInterval)
		}
		if !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	return false, next
}

// countOf reads one counter, with this transaction's changes to it.
func (t *txn) countOf(queue string, st byte) int {
	n, _ := parseCount(t.counts().Get(countKey(queue, st)))
	return int(n + t.pending(queue, st))
}

// retainPlan finds up to limit jobs of final state st to delete, oldest first,
// resuming after the index key after. It returns where to resume (nil once it reached
// the jobs that finished too recently to expire, or the end) and, when it got there,
// the earliest time a job it kept expires (zero if none does).
func (t *txn) retainPlan(c *config, st byte, after []byte, limit int) (victims []finishedEntry, resume []byte, next time.Time) {
	minAge, counted := c.retentionBounds(st)
	if counted {
		// Only a queue over its limit makes the whole index worth scanning; otherwise
		// the ages alone decide, and they stop at the first job too young to expire.
		counted = false
		for _, q := range t.queueNames() {
			if _, keep := c.retentionOf(q).limits(st); keep > 0 && t.countOf(q, st) > keep {
				counted = true
				break
			}
		}
	}
	if minAge == 0 && !counted {
		return nil, nil, time.Time{}
	}
	excess := map[string]int{}
	over := func(q string) int {
		n, ok := excess[q]
		if !ok {
			if _, keep := c.retentionOf(q).limits(st); keep > 0 {
				n = max(t.countOf(q, st)-keep, 0)
			}
			excess[q] = n
		}
		return n
	}
	expires := func(at time.Time) {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	prefix := []byte{st}
	cur := t.finished().Cursor()
	k, v := seekPast(cur, prefix, after)
	for n := 0; ; k, v = cur.Next() {
		_, at, _, ok := parseFinishedKey(k)
		if k == nil || !bytes.HasPrefix(k, prefix) || !ok {
			return victims, nil, next
		}
		if !counted && minAge > 0 && at.Add(minAge).After(t.now) {
			expires(at.Add(minAge)) // everything after finished later still
			return victims, nil, next
		}
		if len(victims) == limit || n == cleanBudget {
			return victims, resume, time.Time{}
		}
		n++
		resume = bytes.Clone(k)
		q := string(v)
		age, _ := c.retentionOf(q).limits(st)
		if excessive := over(q) > 0; excessive {
			excess[q]--
		} else if age <= 0 || at.Add(age).After(t.now) {
			if age > 0 {
				expires(at.Add(age))
			}
			continue
		}
		victims = append(victims, entryOf(k, v))
	}
}

// retain deletes up to limit expired jobs of final state st, oldest first, resuming
// after the index key after, and returns where to resume (nil: done for now).
func (t *txn) retain(st byte, after []byte, limit int) ([]byte, error) {
	victims, resume, _ := t.retainPlan(t.cfg, st, after, limit)
	for _, vi := range victims {
		if err := t.remove(vi.id, t.finishedRecord(vi)); err != nil {
			return nil, fmt.Errorf("delete expired job %d: %w", vi.id, err)
		}
	}
	return resume, nil
}
