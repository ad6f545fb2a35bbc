package jobrun

import (
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

// defaultRetention is the retention of every queue unless WithRetention changes it:
// done jobs are kept a day, failed and canceled jobs (the dead-letter set and what
// someone stopped) a week, with no count limit.
var defaultRetention = Retention{Done: 24 * time.Hour, Failed: 7 * 24 * time.Hour, Canceled: 7 * 24 * time.Hour}

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
		d := defaultRetention
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
