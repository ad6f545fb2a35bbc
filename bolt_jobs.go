package jobrun

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/bbolt"
)

func (t *txn) get(id ID) (*record, error) {
	v := t.jobs().Get(idKey(id))
	if v == nil {
		return nil, ErrNotFound
	}
	return decodeRecord(v)
}

func (t *txn) put(id ID, r *record) error {
	return t.jobs().Put(idKey(id), r.encode())
}

// insert stores a new job, ready or scheduled by its run time, and returns its ID.
func (t *txn) insert(r *record) (ID, error) {
	seq, err := t.jobs().NextSequence()
	if err != nil {
		return 0, err
	}
	id := ID(seq)
	if _, err := transition(r, ending{outcome: outcomeEnqueued}, t.now); err != nil {
		return 0, err
	}
	if r.state == stReady {
		err = t.enterReady(id, r)
	} else {
		err = t.addScheduled(id, r)
	}
	if err != nil {
		return 0, err
	}
	if err := t.put(id, r); err != nil {
		return 0, err
	}
	for _, tag := range r.tags {
		if err := t.tags().Put(tagKey(tag, id), nil); err != nil {
			return 0, err
		}
	}
	for _, c := range r.cancelOn {
		if err := t.bucket(bEventCancels).Put(eventWaitKey(c.event, c.field, c.value, id), nil); err != nil {
			return 0, err
		}
	}
	t.count(r.queue, 0, r.state)
	t.log(changeOf(changeInserted, id, r, 0))
	return id, nil
}

// pending is the change this transaction made to queue's count of state st and has
// not written yet: the counters it reads add it, so that a write reads its own.
func (t *txn) pending(queue string, st byte) int64 {
	if d := t.deltas[queue]; d != nil {
		return d[st]
	}
	return 0
}

// flush writes the gathered count changes; call it last in every write transaction.
func (t *txn) flush() error {
	for queue, d := range t.deltas {
		for st := stScheduled; st < numStates; st++ {
			if d[st] == 0 {
				continue
			}
			k := countKey(queue, st)
			n, _ := parseCount(t.counts().Get(k))
			if err := t.counts().Put(k, countValue(n+d[st])); err != nil {
				return err
			}
		}
	}
	t.deltas = nil
	for kind, d := range t.suspendedDeltas {
		if d == 0 || kind == 0 {
			continue
		}
		b := t.bucket(bSuspended)
		n, _ := parseCount(b.Get([]byte{byte(kind)}))
		if err := b.Put([]byte{byte(kind)}, countValue(n+d)); err != nil {
			return err
		}
	}
	t.suspendedDeltas = [numSuspended]int64{}
	return nil
}

// suspendedCounts reads how many jobs are suspended in each way, with this
// transaction's changes.
func (t *txn) suspendedCounts() [numSuspended]int {
	var out [numSuspended]int
	b := t.bucket(bSuspended)
	for kind := suspendedSleep; kind < numSuspended; kind++ {
		var n int64
		if b != nil {
			n, _ = parseCount(b.Get([]byte{kind}))
		}
		out[kind] = int(n + t.suspendedDeltas[kind])
	}
	return out
}

// readCounts returns the counters of one queue, or of all queues summed if queue is "".
func (t *txn) queueCounts(queue string) map[State]int {
	out := make(map[State]int, len(States))
	for _, s := range States {
		out[s] = 0
	}
	c := t.counts().Cursor()
	var prefix []byte
	if queue != "" {
		prefix = queuePrefix(queue)
	}
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		_, st, ok := parseCountKey(k)
		n, nok := parseCount(v)
		if ok && nok && st > 0 && st < numStates {
			out[stateNames[st]] += int(n)
		}
	}
	t.addPending(out, queue)
	return out
}

// queueNames returns every queue that has counters, in byte order of their names.
func (t *txn) queueNames() []string {
	var names []string
	c := t.counts().Cursor()
	for k, _ := c.First(); k != nil; {
		q, _, ok := cutName(k)
		if !ok {
			k, _ = c.Next() // not a counter's key
			continue
		}
		names = append(names, q)
		// Skip the queue's other state keys.
		k, _ = c.Seek(append(queuePrefix(q), 0xff))
	}
	names = t.addNewQueues(names)
	slices.Sort(names) // the counters' keys put shorter names first
	return names
}

// claim takes up to n ready jobs of queue, best first, and up to extra more that
// outrank priority beat, moves them to the active index as claimed (not started) and
// returns them. take, if not nil, is asked before each job with its concurrency key:
// ok false skips the job (its key is rate limited), stop ends the claim (the queue's
// limiter is out of tokens). A record that cannot be decoded is failed on the spot.
func (t *txn) claim(queue string, n, extra int, beat int64, take func(key []byte) (ok, stop bool)) ([]claimedJob, error) {
	if v := t.queues().Get([]byte(queue)); len(v) > 0 && v[0]&queuePaused != 0 {
		return nil, nil // paused, maybe by another runner of the file since this one looked
	}
	prefix := queuePrefix(queue)
	c := t.ready().Cursor()
	type entry struct{ k, key []byte }
	var entries []entry
	skipped := 0
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(entries) < n+extra; k, v = c.Next() {
		if _, p, _, ok := parseReadyKey(k); len(entries) >= n && (!ok || p <= beat) {
			break // the index is in priority order: nothing further outranks beat
		}
		if take != nil {
			ok, stop := take(v)
			if stop {
				break
			}
			if !ok {
				if skipped++; skipped == claimSkipBudget {
					break
				}
				continue
			}
		}
		entries = append(entries, entry{bytes.Clone(k), bytes.Clone(v)})
	}
	claimed := make([]claimedJob, 0, len(entries))
	stamp := activeValue(time.Time{}, queue) // claimed, not started
	for _, en := range entries {
		k := en.k
		if err := t.ready().Delete(k); err != nil {
			return nil, err
		}
		_, _, id, _ := parseReadyKey(k) // the loop above only takes the queue's keys
		r, err := t.get(id)
		if err != nil {
			if err := t.quarantine(id, queue, stReady, err); err != nil {
				return nil, err
			}
			if len(en.key) > 0 {
				// The record is gone but the index names its key: free the slot.
				if err := t.releaseSlot(queue, string(en.key)); err != nil {
					return nil, err
				}
			}
			continue
		}
		if err := t.active().Put(idKey(id), stamp); err != nil {
			return nil, err
		}
		claimed = append(claimed, claimedJob{id, r})
	}
	return claimed, nil
}

// logStart logs the start at at of claimed job id, which was due at rec's run time.
func (t *txn) logStart(id ID, rec *record, at time.Time) {
	c := changeOf(changeStarted, id, rec, stReady)
	c.wait = max(at.Sub(rec.runAt), 0)
	t.log(c)
}

// markStarted records that a claimed job's handler started at: it counts as running.
func (t *txn) markStarted(id ID, rec *record, at time.Time) error {
	if err := t.active().Put(idKey(id), activeValue(at, rec.queue)); err != nil {
		return err
	}
	t.count(rec.queue, stReady, stRunning)
	t.logStart(id, rec, at)
	return nil
}

// quarantine handles a job whose record is missing or cannot be decoded: the raw bytes
// move to the corrupt bucket and the job is stored as failed with the reason, so it
// stays visible and the runner goes on with other jobs.
func (t *txn) quarantine(id ID, queue string, from byte, cause error) error {
	raw := t.jobs().Get(idKey(id))
	if raw == nil {
		// An index entry without a job: nothing to keep.
		t.count(queue, from, 0)
		return nil
	}
	if err := t.corrupt().Put(idKey(id), bytes.Clone(raw)); err != nil {
		return err
	}
	r := &record{queue: queue, state: stFailed, maxAttempts: 1, finishedAt: t.now}
	r.appendError(0, time.Time{}, t.now, fmt.Sprintf("stored job record is unreadable (%v); its bytes are kept in the corrupt bucket", cause))
	if err := t.put(id, r); err != nil {
		return err
	}
	t.count(queue, from, stFailed)
	t.log(changeOf(changeQuarantined, id, r, from))
	return t.addFinished(id, r)
}

// addReady puts a job in the ready index; a keyed job must hold a slot (enterReady).
func (t *txn) addReady(id ID, r *record) error {
	return t.ready().Put(readyKey(r.queue, r.priority, id), []byte(r.concKey))
}

func (t *txn) addScheduled(id ID, r *record) error {
	return t.scheduled().Put(timeKey(r.runAt, id), scheduledValue(r.state, r.queue))
}

func (t *txn) addFinished(id ID, r *record) error {
	return t.finished().Put(finishedKey(r.state, r.finishedAt, id), []byte(r.queue))
}

func (t *txn) removeActive(id ID) error { return t.active().Delete(idKey(id)) }

// promoteDue makes up to n scheduled jobs whose time has come ready and returns when
// the next scheduled job is due (zero if none).
func (t *txn) promoteDue(n int) (next time.Time, err error) {
	c := t.scheduled().Cursor()
	now := t.now
	type due struct{ key, val []byte }
	var dues []due
	k, v := c.First()
	for ; k != nil && len(dues) < n; k, v = c.Next() {
		if at, _, ok := parseTimeKey(k); ok && at.After(now) {
			break
		}
		dues = append(dues, due{bytes.Clone(k), bytes.Clone(v)}) // a malformed key is removed
	}
	if at, _, ok := parseTimeKey(k); ok {
		next = at
	}
	for _, d := range dues {
		if err := t.scheduled().Delete(d.key); err != nil {
			return time.Time{}, err
		}
		_, id, ok := parseTimeKey(d.key)
		if !ok {
			continue
		}
		r, err := t.get(id)
		if err != nil {
			from, queue, ok := parseScheduledValue(d.val)
			if !ok {
				from = stScheduled
			}
			if err := t.quarantine(id, queue, from, err); err != nil {
				return time.Time{}, err
			}
			continue
		}
		if _, err := t.applyDetached(id, r, ending{outcome: outcomeDue}, r.state); err != nil {
			return time.Time{}, err
		}
	}
	if len(dues) == n && next.IsZero() && k != nil {
		// Stopped at the batch size before an entry it cannot read: more may be due now.
		next = t.now
	}
	return next, nil
}

// nextDue returns when the earliest scheduled job is due, zero if none is.
func (t *txn) nextDue() time.Time {
	k, _ := t.scheduled().Cursor().First()
	at, _, _ := parseTimeKey(k)
	return at
}

// recoverAtOpen recovers what a process that died left: its claimed jobs
// (recoverActive) and the key slots of its abandoned handlers (releaseAllHeld), then
// fills every key's free slots (admitAll).
func (t *txn) recoverAtOpen(limit int) (ready, ended int, err error) {
	if ready, ended, err = t.recoverActive(limit); err != nil {
		return ready, ended, err
	}
	if err := t.releaseAllHeld(); err != nil {
		return ready, ended, err
	}
	return ready, ended, t.admitAll()
}

// recoverActive makes every job left running by a process that died ready again
// without spending an attempt, or fails it once it has been recovered more than limit
// times, or cancels it if Cancel asked while it ran. It returns how many it made ready
// and how many it ended.
func (t *txn) recoverActive(limit int) (ready, failed int, err error) {
	type entry struct {
		id    ID
		queue string
		from  byte // counted as running, or as ready if it never started
	}
	var entries []entry
	c := t.active().Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		id, ok := parseIDKey(k)
		if _, queue, vok := parseActiveValue(v); ok && vok {
			entries = append(entries, entry{id, queue, activeState(v)})
		}
	}
	for _, e := range entries {
		id := e.id
		if err := t.removeActive(id); err != nil {
			return ready, failed, err
		}
		r, err := t.get(id)
		if err != nil {
			if err := t.quarantine(id, e.queue, e.from, err); err != nil {
				return ready, failed, err
			}
			failed++
			continue
		}
		nx, err := t.applyDetached(id, r, ending{outcome: outcomeRecovered, recoveries: limit}, e.from)
		if err != nil {
			return ready, failed, err
		}
		if nx.ended {
			failed++
		} else {
			ready++
		}
	}
	return ready, failed, nil
}

// activeSince reports whether a job is claimed (in the active index) and, if its
// handler started, when; the zero time while it waits in its queue's lineup.
func (t *txn) claimedSince(id ID) (time.Time, bool) {
	started, _, ok := parseActiveValue(t.active().Get(idKey(id)))
	return started, ok
}

// infoOf reads the public view of a job, with its running state from the active
// index: a claimed job that has not started is ready.
func (t *txn) info(id ID) (*Info, error) {
	r, err := t.get(id)
	if err != nil {
		return nil, err
	}
	in := r.info(id)
	if at, ok := t.claimedSince(id); ok && !at.IsZero() {
		in.State = StateRunning
		in.Attempt++
		in.StartedAt = at
	}
	return &in, nil
}

func (t *txn) pausedQueues() map[string]bool {
	paused := map[string]bool{}
	t.queues().ForEach(func(k, v []byte) error {
		if len(v) > 0 && v[0]&queuePaused != 0 {
			paused[string(k)] = true
		}
		return nil
	})
	return paused
}

func (t *txn) setPaused(queue string, paused bool) error {
	var flags byte
	if v := t.queues().Get([]byte(queue)); len(v) > 0 {
		flags = v[0]
	}
	if paused {
		flags |= queuePaused
	} else {
		flags &^= queuePaused
	}
	return t.queues().Put([]byte(queue), []byte{flags})
}

// settle writes what transition decided for a job that left its index: its
// concurrency key's slot, its new index entry, its unique key and the counters, from
// state from.
func (t *txn) settle(id ID, rec *record, nx next, from byte) error {
	if rec.concKey != "" {
		var err error
		switch nx.slot {
		case slotRelease:
			err = t.releaseSlot(rec.queue, rec.concKey)
		case slotHold:
			err = t.holdSlot(id, rec.queue, rec.concKey)
		}
		if err != nil {
			return err
		}
	}
	var err error
	switch {
	case nx.ended:
		err = t.addFinished(id, rec)
		if err == nil {
			err = t.releaseUnique(id, rec)
		}
		if err == nil && rec.parent != 0 {
			err = t.childEnded(id, rec)
		}
		if err == nil && rec.invoker {
			err = t.cancelChildren(id)
		}
		if err == nil && len(rec.cancelOn) > 0 {
			err = t.unindexCancels(id, rec)
		}
		if err == nil && rec.state == stFailed && len(rec.onFailure) > 0 {
			err = t.enqueueFailure(id, rec)
		}
	case rec.state == stReady && nx.readyK:
		err = t.addReady(id, rec)
	case rec.state == stReady:
		err = t.enterReady(id, rec)
	default:
		err = t.addScheduled(id, rec)
	}
	if err != nil {
		return err
	}
	t.count(rec.queue, from, rec.state)
	return nil
}

// enqueue stores a new job, unless its unique key refuses it or, for Debounce, merges
// it into the job waiting under the same key.
func (t *txn) enqueue(r *record) (inserted, error) {
	var uk []byte
	if r.uniqueMode != uniqueNone {
		uk = uniqueIndexKey(r.kind, r.uniqueKey)
		if held, until, ok := parseUniqueValue(t.unique().Get(uk)); ok {
			if ins, done, err := t.applyUnique(r, held, until); done || err != nil {
				return ins, err
			}
		}
	}
	id, err := t.insert(r)
	if err != nil {
		return inserted{}, err
	}
	if uk != nil {
		var until time.Time
		if r.uniqueMode == uniqueThrottle {
			until = r.createdAt.Add(r.uniqueFor)
		}
		if err := t.unique().Put(uk, uniqueValue(id, until)); err != nil {
			return inserted{}, err
		}
	}
	return inserted{id: id, state: r.state, runAt: r.runAt}, nil
}

// applyUnique decides what a new job does when job held has its key: done reports
// that the new job is settled (refused or merged) and must not be inserted.
func (t *txn) applyUnique(r *record, held ID, until time.Time) (ins inserted, done bool, err error) {
	old, err := t.get(held)
	if err != nil {
		return inserted{}, false, nil // a stale entry: the key is free
	}
	_, running := t.claimedSince(held)
	switch r.uniqueMode {
	case uniqueThrottle:
		if t.now.Before(until) {
			return inserted{id: held, duplicate: true}, true, nil
		}
	case uniqueUnfinished:
		if running || !final(old.state) {
			return inserted{id: held, duplicate: true}, true, nil
		}
	case uniqueDebounce:
		if running || old.state != stScheduled {
			return inserted{}, false, nil // it started or ended: the new job stands alone
		}
		if err := t.scheduled().Delete(timeKey(old.runAt, held)); err != nil {
			return inserted{}, false, err
		}
		old.args, old.runAt = r.args, r.runAt
		if err := t.addScheduled(held, old); err != nil {
			return inserted{}, false, err
		}
		if err := t.put(held, old); err != nil {
			return inserted{}, false, err
		}
		t.log(changeOf(changeMerged, held, old, old.state))
		return inserted{id: held, state: stScheduled, runAt: old.runAt}, true, nil
	}
	return inserted{}, false, nil
}

// releaseUnique frees a finished job's unique key, unless a throttle period holds it
// or another job took it over.
func (t *txn) releaseUnique(id ID, r *record) error {
	if r.uniqueMode == uniqueNone || r.uniqueMode == uniqueThrottle {
		return nil
	}
	uk := uniqueIndexKey(r.kind, r.uniqueKey)
	if held, _, ok := parseUniqueValue(t.unique().Get(uk)); ok && held == id {
		return t.unique().Delete(uk)
	}
	return nil
}

// unindex removes a job that is not running from its state's index.
func (t *txn) unindex(id ID, r *record) error {
	switch r.state {
	case stReady:
		return t.leaveReady(id, r)
	case stScheduled, stRetrying:
		return t.scheduled().Delete(timeKey(r.runAt, id))
	case stDone, stFailed, stCanceled:
		return t.finished().Delete(finishedKey(r.state, r.finishedAt, id))
	}
	return nil
}

// remove deletes a job that is not running, with every index entry that names it.
func (t *txn) remove(id ID, r *record) error {
	if err := t.unindex(id, r); err != nil {
		return err
	}
	if err := t.releaseUnique(id, r); err != nil {
		return err
	}
	for _, tag := range r.tags {
		if err := t.tags().Delete(tagKey(tag, id)); err != nil {
			return err
		}
	}
	if err := t.corrupt().Delete(idKey(id)); err != nil {
		return err
	}
	if err := t.removeSteps(id); err != nil {
		return err
	}
	if err := t.unindexCancels(id, r); err != nil {
		return err
	}
	t.countSuspended(r.suspended, 0)
	t.count(r.queue, r.state, 0)
	t.log(changeOf(changeRemoved, id, r, r.state))
	return t.jobs().Delete(idKey(id))
}

// takeUnique gives a job that runs again (Retry) its unique key back. It fails with
// ErrDuplicate if another unfinished job holds the key now.
func (t *txn) takeUnique(id ID, r *record) error {
	if r.uniqueMode != uniqueUnfinished && r.uniqueMode != uniqueDebounce {
		return nil
	}
	uk := uniqueIndexKey(r.kind, r.uniqueKey)
	if held, _, ok := parseUniqueValue(t.unique().Get(uk)); ok {
		if held != id {
			if old, err := t.get(held); err == nil {
				if _, running := t.claimedSince(held); running || !final(old.state) {
					return fmt.Errorf("%w: job %d holds key %q", ErrDuplicate, held, r.uniqueKey)
				}
			}
		}
	}
	return t.unique().Put(uk, uniqueValue(id, time.Time{}))
}

// sweep calls fn for up to limit jobs in final state st, oldest first, that finished
// before before and belong to queue ("" for any), starting after the index key after
// (nil: from the oldest). It looks at no more than budget index entries, so one call
// stays short even when most entries belong to other queues, and returns the key to
// resume after, nil when no entry before the cut is left.
func (t *txn) sweep(st byte, queue string, before time.Time, after []byte, limit, budget int,
	fn func(id ID, r *record) error) (resume []byte, err error) {
	c := t.finished().Cursor()
	prefix := []byte{st}
	k, v := seekPast(c, prefix, after)
	cut := unixNanos(before)
	var hits []finishedEntry
	for n := 0; ; k, v = c.Next() {
		_, at, _, ok := parseFinishedKey(k)
		if k == nil || !bytes.HasPrefix(k, prefix) || !ok || unixNanos(at) >= cut {
			resume = nil
			break
		}
		if len(hits) == limit || n == budget {
			break
		}
		n++
		resume = bytes.Clone(k)
		if queue == "" || string(v) == queue {
			hits = append(hits, entryOf(k, v))
		}
	}
	for _, h := range hits {
		if err := fn(h.id, t.finishedRecord(h)); err != nil {
			return nil, err
		}
	}
	return resume, nil
}

// finishedEntry is what an entry of the finished index says of a job.
type finishedEntry struct {
	id    ID
	state byte
	queue string
	at    time.Time
}

func entryOf(k, v []byte) finishedEntry {
	st, at, id, _ := parseFinishedKey(k)
	return finishedEntry{id, st, string(v), at}
}

// finishedRecord reads the job of a finished-index entry or, if its record is
// unreadable, returns a stand-in that names the entry, so that it can be removed.
func (t *txn) finishedRecord(e finishedEntry) *record {
	r, err := t.get(e.id)
	if err != nil {
		return &record{queue: e.queue, state: e.state, finishedAt: e.at}
	}
	return r
}

// seekPast positions c at the first key with prefix, or with after set, at the first
// key past after (which may be gone since).
func seekPast(c *bbolt.Cursor, prefix, after []byte) (k, v []byte) {
	if after == nil {
		return c.Seek(prefix)
	}
	if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
		k, v = c.Next()
	}
	return k, v
}

// apply takes a job out of where it is (the active index if it is claimed, else its
// state's index) and moves it as transition decides for e.
func (t *txn) apply(id ID, rec *record, e ending) (next, error) {
	if v := t.active().Get(idKey(id)); v != nil {
		return t.finish(id, rec, e, activeState(v) == stRunning)
	}
	if err := t.unindex(id, rec); err != nil {
		return next{}, err
	}
	return t.applyDetached(id, rec, e, rec.state)
}

func (t *txn) finish(id ID, rec *record, e ending, started bool) (next, error) {
	from := stRunning
	if !started {
		from = stReady // claimed jobs count as ready until their start is recorded
		if !e.started.IsZero() {
			// A short handler: it started and ended since the last commit, and its
			// start is recorded with its outcome.
			t.logStart(id, rec, e.started)
		}
	}
	if err := t.active().Delete(idKey(id)); err != nil {
		return next{}, err
	}
	if e.outcome == outcomeSlept {
		var s *step
		var err error
		switch e.sleep.state {
		case stepWait:
			s, err = t.suspendWait(id, rec, e.sleep) // done if received already: due now
		case stepInvoking:
			s, err = t.invoke(id, rec, e.sleep, e.children) // done if its children ended: due now
		}
		if err != nil {
			return next{}, err
		}
		if s != nil {
			e.sleep = s
		}
		if err := t.bucket(bSteps).Put(stepKey(id, e.sleep.key), e.sleep.encode()); err != nil {
			return next{}, err
		}
	}
	return t.applyDetached(id, rec, e, from)
}

// applyDetached is apply for a job already out of its index, counted in state from.
func (t *txn) applyDetached(id ID, rec *record, e ending, from byte) (next, error) {
	was := rec.suspended
	nx, err := transition(rec, e, t.now)
	if err == nil && was != rec.suspended {
		t.countSuspended(was, rec.suspended)
	}
	if err == nil {
		err = t.settle(id, rec, nx, from)
	}
	if err == nil {
		err = t.put(id, rec)
	}
	if err != nil {
		return next{}, err
	}
	c := changeOf(changeMoved, id, rec, from)
	c.outcome = e.outcome
	t.log(c)
	return nx, nil
}

// saveProgress stores a claimed job's record with its progress and log lines.
func (t *txn) saveProgress(id ID, rec *record) error {
	if err := t.put(id, rec); err != nil {
		return err
	}
	t.log(changeOf(changeProgress, id, rec, rec.state))
	return nil
}
