package jobrun

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jobrun/jobrun/internal/sqldb"
)

// The jobs of a PostgreSQL store, as bolt_jobs.go and bolt_keys.go keep them in
// bbolt: the same decisions (transition, the key slots, the unique keys) over the
// columns of a jobs row instead of index buckets.

// pgIDBlock is how many job IDs a store reserves from the sequence at once: one
// round trip per block, not per job. IDs stay increasing within a process, which
// is what FIFO order needs; between processes, order is that of their blocks.
const pgIDBlock = 256

// nextID returns a new job ID.
func (t *pgTxn) nextID() (ID, error) {
	s := t.s
	s.idMu.Lock()
	defer s.idMu.Unlock()
	if len(s.ids) == 0 {
		rows, err := t.tx.Query(t.ctx, s.q(`SELECT nextval('{s}.job_ids') FROM generate_series(1, $1)`), pgIDBlock)
		err = scanRows(pgRows{rows, err}, func(rows sqldb.Rows) error {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return err
			}
			s.ids = append(s.ids, ID(id))
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("reserve job IDs: %w", err)
		}
		slices.Sort(s.ids)
	}
	id := s.ids[0]
	s.ids = s.ids[1:]
	return id, nil
}

// insert stores a new job, ready or scheduled by its run time, and returns its ID.
func (t *pgTxn) insert(rec *record) (ID, error) {
	id, err := t.nextID()
	if err != nil {
		return 0, err
	}
	if _, err := transition(rec, ending{outcome: outcomeEnqueued}, t.now); err != nil {
		return 0, err
	}
	r := &pgRow{}
	r.setRecord(rec)
	t.rows[id] = r
	t.touch(id, r, pgInsert)
	if rec.state == stReady {
		if err := t.enterReady(id, rec); err != nil {
			return 0, err
		}
	}
	for _, c := range rec.cancelOn {
		if err := t.exec(`INSERT INTO {s}.event_cancels (name, field, value, job) VALUES ($1, $2, $3, $4)
			ON CONFLICT DO NOTHING`, c.event, c.field, c.value, int64(id)); err != nil {
			return 0, err
		}
	}
	t.count(rec.queue, 0, rec.state)
	t.log(changeOf(changeInserted, id, rec, 0))
	return id, nil
}

func (t *pgTxn) queueCounts(queue string) map[State]int {
	out := make(map[State]int, len(States))
	for _, s := range States {
		out[s] = 0
	}
	stmt, args := `SELECT state, sum(n) FROM {s}.counts GROUP BY state`, []any(nil)
	if queue != "" {
		stmt, args = `SELECT state, sum(n) FROM {s}.counts WHERE queue = $1 GROUP BY state`, []any{queue}
	}
	err := scanRows(t.query(stmt, args...), func(rows sqldb.Rows) error {
		var st int16
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return err
		}
		if st > 0 && st < int16(numStates) {
			out[stateNames[st]] += int(n)
		}
		return nil
	})
	if err != nil {
		t.s.cfg.logger.Error("jobrun: read counters", "error", err)
	}
	t.addPending(out, queue)
	return out
}

func (t *pgTxn) queueNames() []string {
	var names []string
	err := scanRows(t.query(`SELECT DISTINCT queue COLLATE "C" FROM {s}.counts ORDER BY 1`), func(rows sqldb.Rows) error {
		var q string
		err := rows.Scan(&q)
		names = append(names, q)
		return err
	})
	if err != nil {
		t.s.cfg.logger.Error("jobrun: read queue names", "error", err)
	}
	names = t.addNewQueues(names)
	slices.Sort(names)
	return names
}

// claim takes up to n ready jobs of queue, best first, and up to extra more that
// outrank priority beat, as claimed (not started). Rows another process's claim
// holds are skipped (SKIP LOCKED); take is asked as in the bbolt store, and a
// nil take (no limiter) claims in one statement (claimAll).
func (t *pgTxn) claim(queue string, n, extra int, beat int64, take func(key []byte) (ok, stop bool)) ([]claimedJob, error) {
	if take == nil {
		return t.claimAll(queue, n, extra, beat)
	}
	var claimed []claimedJob
	skipped := 0
	afterPrio, afterID := int64(math.MaxInt64), int64(0)
	for page := 0; len(claimed) < n+extra; page++ {
		want := n + extra - len(claimed) + min(skipped+16, claimSkipBudget)
		var ids []ID
		var rows []*pgRow
		err := scanRows(t.query(`SELECT `+pgJobColumns+` FROM {s}.jobs
			WHERE queue = $1 AND lane = 1 AND claim = 0 AND (priority < $2 OR priority = $2 AND id > $3)
				AND NOT EXISTS (SELECT 1 FROM {s}.queues WHERE queue = $1 AND paused)
			ORDER BY priority DESC, id LIMIT $4 FOR UPDATE SKIP LOCKED`, queue, afterPrio, afterID, want),
			func(rs sqldb.Rows) error {
				id, r, err := t.scanRow(rs)
				ids, rows = append(ids, id), append(rows, r)
				return err
			})
		if err != nil {
			return nil, err
		}
		stop := len(rows) < want
		for i, r := range rows {
			id := ids[i]
			afterPrio, afterID = r.priority, int64(id)
			if len(claimed) >= n && r.priority <= beat {
				return claimed, nil // in priority order: nothing further outranks beat
			}
			if len(claimed) == n+extra {
				return claimed, nil
			}
			ok, end := take([]byte(r.concKey))
			if end {
				return claimed, nil
			}
			if !ok {
				if skipped++; skipped == claimSkipBudget {
					return claimed, nil
				}
				continue
			}
			rec, err := t.decodeClaimed(id, queue, r)
			if err != nil {
				return nil, err
			}
			if rec == nil {
				continue // quarantined
			}
			r.claim, r.startedAt = pgClaimed, 0
			t.claimLease(id, r)
			t.touch(id, r, pgUpdate)
			claimed = append(claimed, claimedJob{id, rec})
		}
		if stop {
			break
		}
	}
	return claimed, nil
}

// claimAll is claim with no limiter to ask: the best n ready jobs, and up to
// extra more that outrank beat, each claimed by one statement that takes and
// updates the rows together, rather than a lock of each row and a write of it
// later (docs/PERFORMANCE.md).
func (t *pgTxn) claimAll(queue string, n, extra int, beat int64) ([]claimedJob, error) {
	claimed, last, err := t.claimRows(queue, math.MaxInt64, 0, nil, n)
	if err != nil || extra == 0 || len(claimed) < n {
		return claimed, err
	}
	if n == 0 {
		last = pgPlace{priority: math.MaxInt64} // the beginning of the queue
	}
	more, _, err := t.claimRows(queue, last.priority, int64(last.id), &beat, extra)
	return append(claimed, more...), err
}

// pgPlace is a job's place in its queue's order.
type pgPlace struct {
	id       ID
	priority int64
}

// claimRows claims up to limit ready jobs of queue that come after (afterPrio,
// afterID) in the queue's order and, if outrank is set, have a higher priority,
// and returns them with the last one's place.
func (t *pgTxn) claimRows(queue string, afterPrio, afterID int64, outrank *int64, limit int) ([]claimedJob, pgPlace, error) {
	var last pgPlace
	if limit <= 0 {
		return nil, last, nil
	}
	args := []any{queue, afterPrio, afterID, t.s.owner, storedNanos(t.now.Add(t.s.set.Lease)), limit}
	above := ""
	if outrank != nil {
		args = append(args, *outrank)
		above = " AND priority > $7"
	}
	var ids []ID
	var rows []*pgRow
	err := scanRows(t.query(`UPDATE {s}.jobs j SET claim = 1, started_at = 0, owner = $4, fence = j.fence + 1, lease_until = $5
		FROM (SELECT id FROM {s}.jobs
			WHERE queue = $1 AND lane = 1 AND claim = 0 AND (priority < $2 OR priority = $2 AND id > $3)`+above+`
				AND NOT EXISTS (SELECT 1 FROM {s}.queues WHERE queue = $1 AND paused)
			ORDER BY priority DESC, id LIMIT $6 FOR UPDATE SKIP LOCKED) c
		WHERE j.id = c.id RETURNING `+pgJobColumnsOf("j"), args...),
		func(rs sqldb.Rows) error {
			id, r, err := t.scanWritten(rs)
			ids, rows = append(ids, id), append(rows, r)
			return err
		})
	if err != nil {
		return nil, last, err
	}
	// The statement returns its rows in no order: the lineup sorts them, and the
	// claim goes on after the last in the queue's.
	var claimed []claimedJob
	for i, r := range rows {
		id := ids[i]
		if i == 0 || r.priority < last.priority || r.priority == last.priority && id > last.id {
			last = pgPlace{id, r.priority}
		}
		t.setFence(id, r.fence)
		rec, err := t.decodeClaimed(id, queue, r)
		if err != nil {
			return nil, last, err
		}
		if rec != nil {
			claimed = append(claimed, claimedJob{id, rec})
		}
	}
	return claimed, last, nil
}

// decodeClaimed decodes the record of a job being claimed; one that cannot be
// decoded is quarantined, its key slot freed, and nil returned.
func (t *pgTxn) decodeClaimed(id ID, queue string, r *pgRow) (*record, error) {
	rec, err := decodeRecord(r.raw)
	if err == nil {
		return rec, nil
	}
	if err := t.quarantine(id, queue, stReady, err); err != nil {
		return nil, err
	}
	if r.concKey != "" {
		return nil, t.releaseSlot(queue, r.concKey)
	}
	return nil, nil
}

func (t *pgTxn) logStart(id ID, rec *record, at time.Time) {
	c := changeOf(changeStarted, id, rec, stReady)
	c.wait = max(at.Sub(rec.runAt), 0)
	t.log(c)
}

func (t *pgTxn) markStarted(id ID, rec *record, at time.Time) error {
	if ok, err := t.owns(id); !ok || err != nil {
		return err // rescued meanwhile: the run that followed counts
	}
	if err := t.setClaim(id, pgStarted, storedNanos(at)); err != nil {
		return err
	}
	t.count(rec.queue, stReady, stRunning)
	t.logStart(id, rec, at)
	return nil
}

// quarantine fails a job whose record cannot be decoded, keeping its bytes in the
// corrupt table.
func (t *pgTxn) quarantine(id ID, queue string, from byte, why error) error {
	r, err := t.row(id)
	if err != nil {
		return err
	}
	if r == nil {
		t.count(queue, from, 0)
		return nil
	}
	if err := t.exec(`INSERT INTO {s}.corrupt (id, raw) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET raw = excluded.raw`,
		int64(id), r.raw); err != nil {
		return err
	}
	rec := &record{queue: queue, state: stFailed, maxAttempts: 1, finishedAt: t.now}
	rec.appendError(0, time.Time{}, t.now, fmt.Sprintf("stored job record is unreadable (%v); its bytes are kept in the corrupt table", why))
	r.claim, r.startedAt = pgUnclaimed, 0
	if err := t.put(id, rec); err != nil {
		return err
	}
	t.count(queue, from, stFailed)
	t.log(changeOf(changeQuarantined, id, rec, from))
	return nil
}

func (t *pgTxn) promoteDue(n int) (time.Time, error) {
	var ids []ID
	var rows []*pgRow
	err := scanRows(t.query(`SELECT `+pgJobColumns+` FROM {s}.jobs WHERE state IN (1, 4) AND run_at <= $1
		ORDER BY run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED`, storedNanos(t.now), n), func(rs sqldb.Rows) error {
		id, r, err := t.scanRow(rs)
		ids, rows = append(ids, id), append(rows, r)
		return err
	})
	if err != nil {
		return time.Time{}, err
	}
	for i, id := range ids {
		rec, err := decodeRecord(rows[i].raw)
		if err != nil {
			if err := t.quarantine(id, rows[i].queue, rows[i].state, err); err != nil {
				return time.Time{}, err
			}
			continue
		}
		if _, err := t.applyDetached(id, rec, ending{outcome: outcomeDue}, rec.state); err != nil {
			return time.Time{}, err
		}
	}
	return t.nextDueErr()
}

func (t *pgTxn) nextDue() time.Time {
	at, err := t.nextDueErr()
	if err != nil {
		t.s.cfg.logger.Error("jobrun: read the next due job", "error", err)
	}
	return at
}

func (t *pgTxn) nextDueErr() (time.Time, error) {
	var at int64
	err := t.queryRow(`SELECT run_at FROM {s}.jobs WHERE state IN (1, 4) ORDER BY run_at, id LIMIT 1`).Scan(&at)
	if err == sqldb.ErrNoRows {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return pgTime(at), nil
}

// recoverAtOpen rescues the claims that lapsed, as a bbolt store recovers every
// claim at open: on a shared database, a claim whose lease holds is a live
// process's. It then fills every key's free slots (key limits may have grown).
func (t *pgTxn) recoverAtOpen(limit int) (ready, ended int, err error) {
	if ready, ended, err = t.rescue(math.MaxInt32); err != nil {
		return ready, ended, err
	}
	return ready, ended, t.admitAll()
}

func (t *pgTxn) claimedSince(id ID) (time.Time, bool) {
	r, err := t.row(id)
	if err != nil || r == nil || r.claim == pgUnclaimed {
		return time.Time{}, false
	}
	if r.claim == pgStarted {
		return pgTime(r.startedAt), true
	}
	return time.Time{}, true
}

func (t *pgTxn) info(id ID) (*Info, error) {
	rec, err := t.get(id)
	if err != nil {
		return nil, err
	}
	in := rec.info(id)
	if at, ok := t.claimedSince(id); ok && !at.IsZero() {
		in.State = StateRunning
		in.Attempt++
		in.StartedAt = at
	}
	return &in, nil
}

func (t *pgTxn) pausedQueues() map[string]bool {
	paused := map[string]bool{}
	err := scanRows(t.query(`SELECT queue FROM {s}.queues WHERE paused`), func(rows sqldb.Rows) error {
		var q string
		err := rows.Scan(&q)
		paused[q] = true
		return err
	})
	if err != nil {
		t.s.cfg.logger.Error("jobrun: read paused queues", "error", err)
	}
	return paused
}

// setPaused pauses or resumes a queue, and has the other processes poll: a claim
// reads the pause from the row, but a process whose claim found the queue paused
// looks again only when something wakes it.
func (t *pgTxn) setPaused(queue string, paused bool) error {
	t.poke()
	return t.exec(`INSERT INTO {s}.queues (queue, paused) VALUES ($1, $2)
		ON CONFLICT (queue) DO UPDATE SET paused = excluded.paused`, queue, paused)
}

// settle writes what transition decided for a job that left its place: its key's
// slot, its new place, its unique key and the counters, from state from.
func (t *pgTxn) settle(id ID, rec *record, nx next, from byte) error {
	if rec.concKey != "" {
		var err error
		switch nx.slot {
		case slotRelease:
			err = t.releaseSlot(rec.queue, rec.concKey)
		case slotHold:
			err = t.exec(`INSERT INTO {s}.held (job, queue, key, owner, lease_until) VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (job) DO UPDATE SET queue = excluded.queue, key = excluded.key, owner = excluded.owner,
					lease_until = excluded.lease_until`,
				int64(id), rec.queue, rec.concKey, t.s.owner, storedNanos(t.now.Add(t.s.set.Lease)))
		}
		if err != nil {
			return err
		}
	}
	if err := t.put(id, rec); err != nil {
		return err
	}
	var err error
	switch {
	case nx.ended:
		err = t.releaseUnique(id, rec)
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
		err = t.setLane(id, pgLaneReady)
	case rec.state == stReady:
		err = t.enterReady(id, rec)
	}
	if err != nil {
		return err
	}
	t.count(rec.queue, from, rec.state)
	return nil
}

func (t *pgTxn) enqueue(rec *record) (inserted, error) {
	if rec.uniqueMode != uniqueNone {
		held, until, err := t.lockUnique(rec)
		if err != nil {
			return inserted{}, err
		}
		if held != 0 {
			if ins, done, err := t.applyUnique(rec, held, until); done || err != nil {
				return ins, err
			}
		}
	}
	id, err := t.insert(rec)
	if err != nil {
		return inserted{}, err
	}
	if rec.uniqueMode != uniqueNone {
		var until time.Time
		if rec.uniqueMode == uniqueThrottle {
			until = rec.createdAt.Add(rec.uniqueFor)
		}
		if err := t.exec(`UPDATE {s}.uniques SET job = $3, until = $4 WHERE kind = $1 AND key = $2`,
			rec.kind, rec.uniqueKey, int64(id), storedNanos(until)); err != nil {
			return inserted{}, err
		}
	}
	return inserted{id: id, state: rec.state, runAt: rec.runAt}, nil
}

// lockUnique locks the row of rec's unique key, making it (held by no job) if
// there is none, and returns the job that holds the key (0: none) and until when,
// for a throttle. A row that exists is locked by the update, one that does not by
// the insert: either way another process's enqueue of the key waits for this
// transaction, and then sees what it did. (A SELECT FOR UPDATE locks no row that
// does not exist yet: two processes would both find the key free.)
func (t *pgTxn) lockUnique(rec *record) (held ID, until time.Time, err error) {
	var job, at int64
	err = t.queryRow(`INSERT INTO {s}.uniques (kind, key, job, until) VALUES ($1, $2, 0, 0)
		ON CONFLICT (kind, key) DO UPDATE SET job = {s}.uniques.job RETURNING job, until`,
		rec.kind, rec.uniqueKey).Scan(&job, &at)
	return ID(job), pgTime(at), err
}

// applyUnique decides what a new job does when job held has its key.
func (t *pgTxn) applyUnique(rec *record, held ID, until time.Time) (ins inserted, done bool, err error) {
	old, err := t.get(held)
	if err != nil {
		return inserted{}, false, nil // a stale entry: the key is free
	}
	_, running := t.claimedSince(held)
	switch rec.uniqueMode {
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
			return inserted{}, false, nil
		}
		old.args, old.runAt = rec.args, rec.runAt
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
func (t *pgTxn) releaseUnique(id ID, rec *record) error {
	if rec.uniqueMode == uniqueNone || rec.uniqueMode == uniqueThrottle {
		return nil
	}
	return t.exec(`DELETE FROM {s}.uniques WHERE kind = $1 AND key = $2 AND job = $3`, rec.kind, rec.uniqueKey, int64(id))
}

func (t *pgTxn) takeUnique(id ID, rec *record) error {
	if rec.uniqueMode != uniqueUnfinished && rec.uniqueMode != uniqueDebounce {
		return nil
	}
	held, _, err := t.lockUnique(rec)
	if err != nil {
		return err
	}
	if held != 0 && held != id {
		if old, err := t.get(held); err == nil {
			if _, running := t.claimedSince(held); running || !final(old.state) {
				return fmt.Errorf("%w: job %d holds key %q", ErrDuplicate, held, rec.uniqueKey)
			}
		}
	}
	return t.exec(`UPDATE {s}.uniques SET job = $3, until = 0 WHERE kind = $1 AND key = $2`, rec.kind, rec.uniqueKey, int64(id))
}

// unindex takes a job that is not running out of its place: a ready one out of
// its queue's lineup or its key's line, freeing its slot.
func (t *pgTxn) unindex(id ID, rec *record) error {
	if rec.state == stReady {
		return t.leaveReady(id, rec)
	}
	return nil
}

func (t *pgTxn) remove(id ID, rec *record) error {
	if err := t.unindex(id, rec); err != nil {
		return err
	}
	if err := t.releaseUnique(id, rec); err != nil {
		return err
	}
	t.removed = append(t.removed, int64(id)) // its steps, waits and kept bytes go with its row
	if err := t.unindexCancels(id, rec); err != nil {
		return err
	}
	t.countSuspended(rec.suspended, 0)
	t.count(rec.queue, rec.state, 0)
	t.log(changeOf(changeRemoved, id, rec, rec.state))
	return t.deleteRow(id)
}

func (t *pgTxn) apply(id ID, rec *record, e ending) (next, error) {
	r, err := t.row(id)
	if err != nil {
		return next{}, err
	}
	if r != nil && r.claim != pgUnclaimed {
		// A claim of this store, or of another process (a Cancel of a job that no
		// session runs): ended here either way.
		t.setFence(id, r.fence)
		r.owner = t.s.owner
		return t.finish(id, rec, e, r.claim == pgStarted)
	}
	if err := t.unindex(id, rec); err != nil {
		return next{}, err
	}
	return t.applyDetached(id, rec, e, rec.state)
}

// finish records the outcome of a claim this store holds; the outcome of a claim
// that lapsed and was rescued, or that another process ended, is dropped.
func (t *pgTxn) finish(id ID, rec *record, e ending, started bool) (next, error) {
	ok, err := t.owns(id)
	if err == nil && !ok {
		t.forget(id) // rescued or ended elsewhere: this store's fence is stale
	}
	if err != nil || !ok {
		return next{}, err
	}
	t.forget(id)
	t.keepCancel(id, rec)
	if r := t.rows[id]; r != nil {
		// The row says whether the start was stored, and so which counter the
		// job leaves: the engine's belief can be a start it sent that the store
		// refused (a claim rescued and given back to this process since).
		started = r.claim == pgStarted
	}
	from := stRunning
	if !started {
		from = stReady
		if !e.started.IsZero() {
			t.logStart(id, rec, e.started)
		}
	}
	if r := t.rows[id]; r != nil {
		r.claim, r.startedAt, r.owner, r.leaseUntil = pgUnclaimed, 0, 0, 0
		t.touch(id, r, pgUpdate)
	}
	if e.outcome == outcomeSlept {
		var s *step
		var err error
		switch e.sleep.state {
		case stepWait:
			s, err = t.suspendWait(id, rec, e.sleep)
		case stepInvoking:
			s, err = t.invoke(id, rec, e.sleep, e.children)
		}
		if err != nil {
			return next{}, err
		}
		if s != nil {
			e.sleep = s
		}
		if err := t.putStep(id, e.sleep); err != nil {
			return next{}, err
		}
	}
	return t.applyDetached(id, rec, e, from)
}

func (t *pgTxn) applyDetached(id ID, rec *record, e ending, from byte) (next, error) {
	was := rec.suspended
	nx, err := transition(rec, e, t.now)
	if err == nil && was != rec.suspended {
		t.countSuspended(was, rec.suspended)
	}
	if err == nil {
		err = t.settle(id, rec, nx, from)
	}
	if err != nil {
		return next{}, err
	}
	c := changeOf(changeMoved, id, rec, from)
	c.outcome = e.outcome
	t.log(c)
	return nx, nil
}

func (t *pgTxn) saveProgress(id ID, rec *record) error {
	if ok, err := t.owns(id); !ok || err != nil {
		return err
	}
	t.keepCancel(id, rec)
	if err := t.put(id, rec); err != nil {
		return err
	}
	t.log(changeOf(changeProgress, id, rec, rec.state))
	return nil
}

// Key slots.

func (t *pgTxn) releaseHeld(id ID) error {
	var queue, key string
	err := t.queryRow(`DELETE FROM {s}.held WHERE job = $1 RETURNING queue, key`, int64(id)).Scan(&queue, &key)
	if err == sqldb.ErrNoRows {
		return nil
	}
	if err != nil {
		return err
	}
	return t.releaseSlot(queue, key)
}

// slotsOf returns how many slots of a key are held, locking the key's row (made
// if missing, as lockUnique does) so that two processes' transactions count one
// key's slots one after the other.
func (t *pgTxn) slotsOf(queue, key string) (int, error) {
	var n int64
	err := t.queryRow(`INSERT INTO {s}.key_slots (queue, key, n) VALUES ($1, $2, 0)
		ON CONFLICT (queue, key) DO UPDATE SET n = {s}.key_slots.n RETURNING n`, queue, key).Scan(&n)
	return int(n), err
}

func (t *pgTxn) setSlots(queue, key string, n int) error {
	if n <= 0 {
		return t.exec(`DELETE FROM {s}.key_slots WHERE queue = $1 AND key = $2`, queue, key)
	}
	return t.exec(`INSERT INTO {s}.key_slots (queue, key, n) VALUES ($1, $2, $3)
		ON CONFLICT (queue, key) DO UPDATE SET n = excluded.n`, queue, key, int64(n))
}

func (t *pgTxn) keyConcurrency(queue string) int {
	if t.cfg == nil {
		return 0
	}
	return t.cfg.keyLimits[queue].concurrency
}

// enterReady makes a job ready: claimable, or for a keyed job whose key has no
// free slot, in its key's waiting line.
func (t *pgTxn) enterReady(id ID, rec *record) error {
	if rec.concKey == "" {
		return t.setLane(id, pgLaneReady)
	}
	slots, err := t.slotsOf(rec.queue, rec.concKey)
	if err != nil {
		return err
	}
	if n := t.keyConcurrency(rec.queue); n > 0 && slots >= n {
		return t.setLane(id, pgLaneKeyWait)
	}
	if err := t.setSlots(rec.queue, rec.concKey, slots+1); err != nil {
		return err
	}
	return t.setLane(id, pgLaneReady)
}

func (t *pgTxn) releaseSlot(queue, key string) error {
	slots, err := t.slotsOf(queue, key)
	if err != nil {
		return err
	}
	slots = max(slots-1, 0)
	if err := t.setSlots(queue, key, slots); err != nil {
		return err
	}
	return t.admitWaiting(queue, key, slots)
}

// admitWaiting makes a key's waiting jobs claimable while it has free slots.
func (t *pgTxn) admitWaiting(queue, key string, slots int) error {
	limit := t.keyConcurrency(queue)
	want := math.MaxInt32
	if limit > 0 {
		want = limit - slots
	}
	if want <= 0 {
		return nil
	}
	var ids []ID
	err := scanRows(t.query(`SELECT `+pgJobColumns+` FROM {s}.jobs WHERE lane = 2 AND queue = $1 AND conc_key = $2
		ORDER BY priority DESC, id LIMIT $3 FOR UPDATE`, queue, key, want), func(rs sqldb.Rows) error {
		id, _, err := t.scanRow(rs)
		ids = append(ids, id)
		return err
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := t.setLane(id, pgLaneReady); err != nil {
			return err
		}
		t.log(jobChange{what: changeAdmitted, id: id, queue: queue, from: stReady, to: stReady})
	}
	if len(ids) == 0 {
		return nil
	}
	return t.setSlots(queue, key, slots+len(ids))
}

// leaveReady takes a ready job out of its queue's lineup, freeing its slot, or out
// of its key's line.
func (t *pgTxn) leaveReady(id ID, rec *record) error {
	r, err := t.row(id)
	if err != nil || r == nil {
		return err
	}
	lane := r.lane
	r.lane = pgLaneNone
	t.touch(id, r, pgUpdate)
	if lane == pgLaneReady && rec.concKey != "" {
		return t.releaseSlot(rec.queue, rec.concKey)
	}
	return nil
}

// admitAll fills every key's free slots from its waiting line.
func (t *pgTxn) admitAll() error {
	type line struct{ queue, key string }
	var lines []line
	err := scanRows(t.query(`SELECT DISTINCT queue, conc_key FROM {s}.jobs WHERE lane = 2`), func(rows sqldb.Rows) error {
		var l line
		err := rows.Scan(&l.queue, &l.key)
		lines = append(lines, l)
		return err
	})
	if err != nil {
		return err
	}
	for _, l := range lines {
		slots, err := t.slotsOf(l.queue, l.key)
		if err != nil {
			return err
		}
		if err := t.admitWaiting(l.queue, l.key, slots); err != nil {
			return fmt.Errorf("admit waiting jobs of key %q in queue %s: %w", l.key, l.queue, err)
		}
	}
	return nil
}

// Counters.

func (t *pgTxn) recount() ([]CountMismatch, error) { return t.checkCounts(false) }

func (t *pgTxn) repairCounts() ([]CountMismatch, error) { return t.checkCounts(true) }

func (t *pgTxn) checkCounts(repair bool) ([]CountMismatch, error) {
	actual := map[string]*[numStates]int{}
	err := scanRows(t.query(`SELECT queue, CASE WHEN claim = 2 THEN 3 ELSE state END, count(*) FROM {s}.jobs GROUP BY 1, 2`),
		func(rows sqldb.Rows) error {
			var q string
			var st int16
			var n int64
			if err := rows.Scan(&q, &st, &n); err != nil {
				return err
			}
			if st > 0 && st < int16(numStates) {
				if actual[q] == nil {
					actual[q] = new([numStates]int)
				}
				actual[q][st] = int(n)
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	out, err := t.checkSuspended(repair)
	if err != nil {
		return nil, err
	}
	stored := map[string]map[State]int{}
	countOf := func(q string, st byte) int {
		if stored[q] == nil {
			stored[q] = t.queueCounts(q)
		}
		return stored[q][stateNames[st]]
	}
	var fix func(q string, st byte, n int) error
	if repair {
		fix = func(q string, st byte, n int) error {
			if err := t.exec(`DELETE FROM {s}.counts WHERE queue = $1 AND state = $2`, q, int16(st)); err != nil {
				return err
			}
			return t.exec(`INSERT INTO {s}.counts (queue, state, shard, n) VALUES ($1, $2, $3, $4)`,
				q, int16(st), t.shard, int64(n))
		}
	}
	mm, err := t.compareCounts(actual, t.queueNames(), countOf, fix)
	return append(out, mm...), err
}

func (t *pgTxn) suspendedCounts() [numSuspended]int {
	var out [numSuspended]int
	err := scanRows(t.query(`SELECT kind, sum(n) FROM {s}.suspended GROUP BY kind`), func(rows sqldb.Rows) error {
		var kind int16
		var n int64
		if err := rows.Scan(&kind, &n); err != nil {
			return err
		}
		if kind > 0 && kind < int16(numSuspended) {
			out[kind] = int(n)
		}
		return nil
	})
	if err != nil {
		t.s.cfg.logger.Error("jobrun: read suspension counters", "error", err)
	}
	for kind := suspendedSleep; kind < numSuspended; kind++ {
		out[kind] += int(t.suspendedDeltas[kind])
	}
	return out
}

func (t *pgTxn) checkSuspended(repair bool) ([]CountMismatch, error) {
	var actual [numSuspended]int
	err := scanRows(t.query(`SELECT suspended, count(*) FROM {s}.jobs WHERE state IN (1, 4) AND suspended > 0 GROUP BY 1`),
		func(rows sqldb.Rows) error {
			var kind int16
			var n int64
			if err := rows.Scan(&kind, &n); err != nil {
				return err
			}
			if kind > 0 && kind < int16(numSuspended) {
				actual[kind] = int(n)
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	stored := t.suspendedCounts()
	var out []CountMismatch
	for kind := suspendedSleep; kind < numSuspended; kind++ {
		if stored[kind] == actual[kind] {
			continue
		}
		out = append(out, CountMismatch{State: suspensionNames[kind], Stored: stored[kind], Actual: actual[kind]})
		if repair {
			if err := t.exec(`DELETE FROM {s}.suspended WHERE kind = $1`, int16(kind)); err != nil {
				return nil, err
			}
			if err := t.exec(`INSERT INTO {s}.suspended (kind, shard, n) VALUES ($1, $2, $3)`,
				int16(kind), t.shard, int64(actual[kind])); err != nil {
				return nil, err
			}
			t.suspendedDeltas[kind] = 0
		}
	}
	return out, nil
}

// keepCancel carries a Cancel that another process stored while this one ran the
// job into rec, the running job's record, which would otherwise overwrite it, and
// tells the engine to stop the handler.
func (t *pgTxn) keepCancel(id ID, rec *record) {
	if r := t.rows[id]; r != nil && r.cancel && !rec.cancel {
		rec.cancel = true
		t.log(changeOf(changeCancelAsked, id, rec, rec.state))
	}
}
