package jobrun

import (
	"fmt"
	"slices"
	"time"
)

// The timed services of the commit loop. Each says when it is next due and writes
// what it has to do into the commit of the cycle in which it is due; the loop sets
// its timer to the earliest of them (finishCycle).

// promoter makes the jobs whose time has come (scheduled, retrying, snoozed) ready.
type promoter struct {
	next time.Time // when the earliest waiting job is due; zero if none waits
}

// dueBy brings the promoter's next look forward to at, if at is earlier.
func (p *promoter) dueBy(at time.Time) {
	if !at.IsZero() && (p.next.IsZero() || at.Before(p.next)) {
		p.next = at
	}
}

func (p *promoter) due(now time.Time) bool { return !p.next.IsZero() && !now.Before(p.next) }

func (p *promoter) write(w storeWriter, res *cycleResult) error {
	if !p.due(res.now) {
		return nil
	}
	next, err := w.promoteDue(maxPromotePerCycle)
	if err != nil {
		return fmt.Errorf("promote due jobs: %w", err)
	}
	res.promoted, res.nextDue = true, next
	return nil
}

// applied takes the store's answer, if the promoter ran, and the run times of the
// jobs the commit made wait.
func (p *promoter) applied(res *cycleResult) {
	if res.promoted {
		p.next = res.nextDue
	}
	p.dueBy(res.due)
}

// firer fires the stored schedules when their time comes.
type firer struct {
	fires map[string]time.Time // each schedule's next fire, as stored
}

// loadFires reads every readable schedule's next fire; an unreadable one is left
// out, and fireDue logs it if it is ever looked at.
func loadFires(t storeReader) map[string]time.Time {
	fires := map[string]time.Time{}
	t.eachSchedule(func(name string, s *storedSchedule, err error) error {
		if err == nil && !s.Paused {
			fires[name] = time.Unix(0, s.Next)
		}
		return nil
	})
	return fires
}

// due lists the schedules whose next fire has come, in a stable order.
func (c *firer) due(now time.Time) []string {
	var due []string
	for name, at := range c.fires {
		if !at.After(now) {
			due = append(due, name)
		}
	}
	slices.Sort(due)
	return due
}

// next is the earliest next fire, zero if no schedule is stored.
func (c *firer) next() time.Time {
	var next time.Time
	for _, at := range c.fires {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next
}

func (c *firer) write(w storeWriter, res *cycleResult, log func(msg string, args ...any)) error {
	due := c.due(res.now)
	if len(due) == 0 {
		return nil
	}
	fires, err := w.fireDue(due, log)
	if err != nil {
		return fmt.Errorf("fire schedules: %w", err)
	}
	res.looked, res.fires = due, fires
	return nil
}

func (c *firer) applied(res *cycleResult) {
	for _, name := range res.looked {
		if at, ok := res.fires[name]; ok {
			c.fires[name] = at
		} else {
			delete(c.fires, name) // unscheduled, or unreadable: nothing to wake for
		}
	}
}

// cleaner deletes the finished jobs that retention expired, a batch per commit.
type cleaner struct {
	next     time.Time         // when it looks again; zero until jobs finish
	cleaning bool              // this cycle's commit deletes
	after    [numStates][]byte // where it resumes in each final state
}

// plan decides, before a cycle's commit, whether it deletes: once the cleaner's time
// came, a read transaction finds whether anything expired and, if not, when it will.
func (c *cleaner) plan(st store, now time.Time) bool {
	c.cleaning = false
	if c.next.IsZero() || now.Before(c.next) {
		return false
	}
	var next time.Time
	st.view(func(t storeReader) error {
		var events bool
		var eventsNext time.Time
		c.cleaning, next = t.retentionDue()
		if events, eventsNext = t.eventsDue(); events {
			c.cleaning = true
		} else if !eventsNext.IsZero() && (next.IsZero() || eventsNext.Before(next)) {
			next = eventsNext
		}
		return nil
	})
	if !c.cleaning {
		c.next = next
	}
	return c.cleaning
}

func (c *cleaner) write(w storeWriter, res *cycleResult) error {
	if !c.cleaning {
		return nil
	}
	for _, st := range []byte{stDone, stFailed, stCanceled} {
		next, err := w.retain(st, c.after[st], cleanBatch)
		if err != nil {
			return fmt.Errorf("retention: %w", err)
		}
		res.cleanAfter[st] = next
	}
	if err := w.retainEvents(cleanBatch); err != nil {
		return fmt.Errorf("event retention: %w", err)
	}
	return nil
}

// applied goes on with the next batch after a commit that deleted; after one in
// which jobs finished, it looks soon, rather than at every commit: a count limit may
// be exceeded, or the first expiry is new.
func (c *cleaner) applied(countLimits bool, now time.Time, res *cycleResult) {
	switch {
	case c.cleaning:
		// The next cycle, after whatever else is waiting; once the cleaner is
		// through, that cycle's plan finds the next expiry.
		c.cleaning = false
		c.after = res.cleanAfter
		c.next = now
	case res.finished && (c.next.IsZero() || c.next.After(now.Add(cleanLook))):
		if countLimits || c.next.IsZero() {
			c.next = now.Add(cleanLook)
		}
	case res.sent && c.next.IsZero():
		c.next = now.Add(cleanLook) // the first event to expire may be new
	}
}

// poller looks, on a store that other processes share, for what their commits did
// that no notification announced, and renews this process's leases, rescuing the
// jobs of processes whose leases lapsed (pg_shared.go). A store only this process
// writes has no poller (every zero).
type poller struct {
	every time.Duration
	next  time.Time
}

// pollResult is what a poll read, for the loop's memory.
type pollResult struct {
	paused map[string]bool
	fires  map[string]time.Time
}

func (p *poller) due(now time.Time) bool { return p.every > 0 && !now.Before(p.next) }

// dueBy brings the next poll forward to at.
func (p *poller) dueBy(at time.Time) {
	if p.every > 0 && at.Before(p.next) {
		p.next = at
	}
}

func (p *poller) write(w storeWriter, res *cycleResult, held []ID) error {
	lw, ok := w.(leaseWriter)
	if !ok || !p.due(res.now) {
		return nil
	}
	ready, ended, err := lw.renew(maxPromotePerCycle, held)
	if err != nil {
		return err
	}
	if ready+ended > 0 {
		res.rescued = [2]int{ready, ended}
	}
	res.polled = &pollResult{paused: w.pausedQueues(), fires: loadFires(w)}
	return nil
}

// applyPoll takes what the poll of a committed cycle read: pauses and schedules
// that other processes changed.
func (en *engine) applyPoll(now time.Time, res *cycleResult) {
	if res.polled == nil {
		return
	}
	en.poller.next = now.Add(en.poller.every)
	for name, paused := range res.polled.paused {
		if q := en.queues[name]; q != nil && paused && !en.paused[name] {
			en.takeBack(q)
		}
	}
	for name, was := range en.paused {
		if q := en.queues[name]; q != nil && was && !res.polled.paused[name] {
			// Resumed elsewhere: this commit's claims still saw it paused.
			q.mayReady, en.fresh = true, true
		}
	}
	en.paused = res.polled.paused
	en.firer.fires = res.polled.fires
	if n := res.rescued; n[0]+n[1] > 0 {
		en.r.log.Warn("jobrun: rescued jobs whose process stopped renewing its claims",
			"ready_again", n[0], "failed", n[1])
	}
}
