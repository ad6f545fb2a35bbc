package jobrun

import (
	"bytes"
	"fmt"
	"time"
)

// Retention says how long finished jobs are kept before the runner deletes them.
// Ages count from when a job finished; counts are per queue and state, the oldest
// deleted first. A zero age takes the default, a negative one keeps jobs forever; a
// zero count sets no count limit.
type Retention struct {
	Done, Failed, Canceled          time.Duration
	MaxDone, MaxFailed, MaxCanceled int
}

// DefaultRetention is the retention of every queue unless WithRetention changes it:
// done jobs are kept a day, failed and canceled jobs (the dead-letter set and what
// someone stopped) a week, with no count limit.
var DefaultRetention = Retention{Done: 24 * time.Hour, Failed: 7 * 24 * time.Hour, Canceled: 7 * 24 * time.Hour}

// WithRetention sets the retention of queue's finished jobs, or with queue "" the
// retention of every queue not given its own. A background cleaner in the commit
// loop deletes expired jobs in batches of a few hundred per commit, so it never holds
// the workers up for long; freed pages are reused by later jobs, so under a steady
// stream the file stops growing. Clean deletes on demand.
func WithRetention(queue string, r Retention) Option {
	return func(c *config) {
		if queue != "" {
			if err := validateName("queue", queue); err != nil {
				c.err = err
				return
			}
		}
		if r.MaxDone < 0 || r.MaxFailed < 0 || r.MaxCanceled < 0 {
			c.err = invalidf("retention of queue %q: negative count limit", queue)
			return
		}
		d := DefaultRetention
		for _, p := range []struct{ v, def *time.Duration }{{&r.Done, &d.Done}, {&r.Failed, &d.Failed}, {&r.Canceled, &d.Canceled}} {
			if *p.v == 0 {
				*p.v = *p.def
			}
		}
		if queue == "" {
			c.retention = r
			return
		}
		if c.queueRetention == nil {
			c.queueRetention = map[string]Retention{}
		}
		c.queueRetention[queue] = r
	}
}

// limits returns the age (negative: forever) and count limit (0: none) of state st.
func (r Retention) limits(st byte) (time.Duration, int) {
	switch st {
	case stDone:
		return r.Done, r.MaxDone
	case stFailed:
		return r.Failed, r.MaxFailed
	default:
		return r.Canceled, r.MaxCanceled
	}
}

// Cleaner pacing: a batch per commit while there is work; after jobs finish, a look
// within cleanLook (a count limit may be passed, or the first expiry is new); after a
// look that ran out of budget, another within cleanInterval; else a sleep until the
// next expiry. A look costs a read transaction and O(queues) counter reads.
const (
	cleanBatch    = 500
	cleanBudget   = 10 * cleanBatch
	cleanLook     = 100 * time.Millisecond
	cleanInterval = time.Second
)

// retentionOf returns the retention of queue.
func (c *config) retentionOf(queue string) Retention {
	if r, ok := c.queueRetention[queue]; ok {
		return r
	}
	return c.retention
}

// anyCountLimit reports whether some policy limits the count of some final state.
func (c *config) anyCountLimit() bool {
	for _, st := range []byte{stDone, stFailed, stCanceled} {
		if _, counted := c.retentionBounds(st); counted {
			return true
		}
	}
	return false
}

// retentionBounds returns the shortest age limit of state st over every policy (zero
// if jobs are kept forever everywhere) and whether any policy limits its count.
func (c *config) retentionBounds(st byte) (minAge time.Duration, counted bool) {
	consider := func(r Retention) {
		age, n := r.limits(st)
		if age > 0 && (minAge == 0 || age < minAge) {
			minAge = age
		}
		counted = counted || n > 0
	}
	consider(c.retention)
	for _, r := range c.queueRetention {
		consider(r)
	}
	return minAge, counted
}

// retentionDue reports whether the cleaner has anything to delete and, if not, when
// it will (zero: nothing finished expires), by planning one deletion per state: a
// queue over its count limit has one at once; otherwise the plan reads from the
// oldest job of each state, at most cleanBudget entries (then it answers "not due,
// look again in a second").
func (t *txn) retentionDue(c *config) (bool, time.Time) {
	var next time.Time
	for _, st := range []byte{stDone, stFailed, stCanceled} {
		victims, resume, at := t.retainPlan(c, st, nil, 1)
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

// countOf reads one counter.
func (t *txn) countOf(queue string, st byte) int {
	n, _ := parseCount(t.counts.Get(countKey(queue, st)))
	return int(n)
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
	cur := t.finished.Cursor()
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
func (t *txn) retain(c *config, st byte, after []byte, limit int, res *cycleResult) ([]byte, error) {
	victims, resume, _ := t.retainPlan(c, st, after, limit)
	for _, vi := range victims {
		if err := t.remove(vi.id, t.finishedRecord(vi), res); err != nil {
			return nil, fmt.Errorf("delete expired job %d: %w", vi.id, err)
		}
	}
	return resume, nil
}
