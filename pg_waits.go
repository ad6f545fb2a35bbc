package jobrun

import (
	"slices"

	"github.com/jobrun/jobrun/internal/sqldb"
)

// A job suspended in WaitFor has its wait step in steps, like any step, and a row
// of event_waits under the event's name, the field its data must have and the
// value, naming the step; a job enqueued with CancelOn has a row of event_cancels
// per rule (insert writes them). An event finds the rows it matches by a lookup
// per field awaited on its name, as in the bbolt store's eventwaits and
// eventcancels indexes (bolt_waits.go). A wait's row goes when the wait ends: an
// event received, its timeout stored (saveStep), or the job removed.

// suspendWait stores the wait step s of job id (record rec), which leaves its worker
// now, with its row of event_waits; unless an event it takes was sent since it was
// reached (the lookback), which it receives at once: the step returned is then
// done, due now.
func (t *pgTxn) suspendWait(id ID, rec *record, s *step) (*step, error) {
	if err := t.exec(`SELECT pg_advisory_xact_lock(hashtext($1))`, t.eventLock(s.waitEvent)); err != nil {
		return nil, err
	}
	if se, err := t.sentSince(s, rec.event); err != nil || se != nil {
		if err != nil {
			return nil, err
		}
		return received(s, se, t.now), nil
	}
	return s, t.exec(`INSERT INTO {s}.event_waits (name, field, value, job, step) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (name, field, value, job) DO UPDATE SET step = excluded.step`,
		s.waitEvent, s.waitField, pgBytes(s.waitValue), int64(id), s.key)
}

// eventLock is the text whose hash is the advisory lock a send of event name and a
// wait for it (suspendWait) take, each in a statement before it reads what the
// other writes (a statement sees what committed before it began): the send reads
// the waits stored, the wait the events sent since it was reached. Two
// transactions committing at once would otherwise each miss the other's write,
// and the wait its event; the bbolt store's one writer orders them itself.
func (t *pgTxn) eventLock(name string) string { return "jobrun event " + t.s.schema + "." + name }

// pgBytes is b as a bytea that is not NULL, which pgx sends for a nil slice: the
// value of a wait for any event of a name is empty.
func pgBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// sentSince finds the first event sent since the wait step s could have been
// reached (s.since: the end of the run's previous step, or its creation) that it
// takes, but own, the event that started the run, and the events its earlier steps
// received or sent (s.seen). It reads the events of the name that the bbolt store
// reads newest first: those after the last one sent before that time less
// lookbackSkew (for the times out of order), which the subquery finds by the
// (name, seq) index from the newest.
func (t *pgTxn) sentSince(s *step, own uint64) (*storedEvent, error) {
	since := s.since
	if since.IsZero() {
		since = s.startedAt
	}
	var found *storedEvent
	err := scanRows(t.queryOther(`SELECT seq, data FROM {s}.events WHERE name = $1
			AND seq > COALESCE((SELECT max(seq) FROM {s}.events WHERE name = $1 AND sent_at < $2), 0)
		ORDER BY seq`, s.waitEvent, storedNanos(since.Add(-lookbackSkew))), func(rows sqldb.Rows) error {
		var seq int64
		var data []byte
		if err := rows.Scan(&seq, &data); err != nil {
			return err
		}
		se, err := decodeEvent(uint64(seq), data)
		if err != nil {
			return err
		}
		if found == nil && !se.at.Before(since) && se.seq != own && !slices.Contains(s.seen, se.seq) && se.dupOf == 0 && takes(s, se) {
			found = se
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return found, nil
}

// endWait takes a wait step out of event_waits.
func (t *pgTxn) endWait(id ID, s *step) error {
	return t.exec(`DELETE FROM {s}.event_waits WHERE name = $1 AND field = $2 AND value = $3 AND job = $4`,
		s.waitEvent, s.waitField, pgBytes(s.waitValue), int64(id))
}

// pgMatch is a row of event_waits or event_cancels that an event matched.
type pgMatch struct {
	id    ID
	field string
	value []byte
	step  string // event_waits': the waiting step's key
}

// matching finds the rows of event_cancels and event_waits that event se matches,
// in two queries whatever their number: the fields awaited on its name (in each
// table a skip from one field to the next through the primary key, as the bbolt
// store seeks), whose values in the event's data Go reads as matchValue encodes
// them; then the rows of those fields and values, in the order of the bbolt store's
// keys (length-prefixed fields: the shorter first).
func (t *pgTxn) matching(se *storedEvent) (cancels, waits []pgMatch, err error) {
	var fields []string
	err = scanRows(t.queryOther(`WITH RECURSIVE
		cf(field) AS (
			(SELECT field FROM {s}.event_cancels WHERE name = $1 ORDER BY field LIMIT 1)
			UNION ALL
			SELECT (SELECT c.field FROM {s}.event_cancels c WHERE c.name = $1 AND c.field > cf.field ORDER BY c.field LIMIT 1)
			FROM cf WHERE cf.field IS NOT NULL),
		wf(field) AS (
			(SELECT field FROM {s}.event_waits WHERE name = $1 ORDER BY field LIMIT 1)
			UNION ALL
			SELECT (SELECT w.field FROM {s}.event_waits w WHERE w.name = $1 AND w.field > wf.field ORDER BY w.field LIMIT 1)
			FROM wf WHERE wf.field IS NOT NULL)
		SELECT field FROM cf WHERE field IS NOT NULL UNION SELECT field FROM wf WHERE field IS NOT NULL`, se.name),
		func(rows sqldb.Rows) error {
			var f string
			err := rows.Scan(&f)
			fields = append(fields, f)
			return err
		})
	if err != nil || len(fields) == 0 {
		return nil, nil, err
	}
	data := &jsonFields{data: se.data}
	var awaited []string
	var values [][]byte
	for _, f := range fields {
		value, has := []byte{}, true
		if f != "" {
			value, has = data.value(f)
		}
		if has {
			awaited, values = append(awaited, f), append(values, value)
		}
	}
	if len(awaited) == 0 {
		return nil, nil, nil
	}
	err = scanRows(t.queryOther(`SELECT cancel, job, field, value, step FROM (
			SELECT true AS cancel, c.job, c.field, c.value, '' AS step FROM {s}.event_cancels c
				JOIN unnest($2::text[], $3::bytea[]) AS v(field, value) ON c.field = v.field AND c.value = v.value
			WHERE c.name = $1
			UNION ALL
			SELECT false, w.job, w.field, w.value, w.step FROM {s}.event_waits w
				JOIN unnest($2::text[], $3::bytea[]) AS v(field, value) ON w.field = v.field AND w.value = v.value
			WHERE w.name = $1) AS m
		ORDER BY octet_length(field), field COLLATE "C", job`, se.name, awaited, values), func(rows sqldb.Rows) error {
		var cancel bool
		var id int64
		var m pgMatch
		if err := rows.Scan(&cancel, &id, &m.field, &m.value, &m.step); err != nil {
			return err
		}
		m.id = ID(id)
		if cancel {
			cancels = append(cancels, m)
		} else {
			waits = append(waits, m)
		}
		return nil
	})
	return cancels, waits, err
}

// cancelMatching cancels the jobs that event se cancels (CancelOn), whose rows
// cancels are (read, with their jobs', by sendEvent), and deletes the rows.
func (t *pgTxn) cancelMatching(se *storedEvent, cancels []pgMatch) error {
	var fields []string
	var values [][]byte
	var jobs []int64
	var victims []ID
	for _, m := range cancels {
		if rec, err := t.get(m.id); err == nil && rec.event == se.seq {
			continue // a run the event itself starts
		}
		fields, values, jobs = append(fields, m.field), append(values, m.value), append(jobs, int64(m.id))
		victims = append(victims, m.id)
	}
	if len(victims) == 0 {
		return nil
	}
	if err := t.exec(`DELETE FROM {s}.event_cancels c USING unnest($2::text[], $3::bytea[], $4::bigint[]) AS v(field, value, job)
		WHERE c.name = $1 AND c.field = v.field AND c.value = v.value AND c.job = v.job`,
		se.name, fields, values, jobs); err != nil {
		return err
	}
	for _, id := range victims {
		if err := t.cancelJob(id); err != nil {
			return err
		}
	}
	return nil
}

// unindexCancels deletes a job's rows of event_cancels.
func (t *pgTxn) unindexCancels(id ID, rec *record) error {
	if len(rec.cancelOn) == 0 {
		return nil
	}
	var names, fields []string
	var values [][]byte
	for _, c := range rec.cancelOn {
		names, fields, values = append(names, c.event), append(fields, c.field), append(values, pgBytes(c.value))
	}
	return t.exec(`DELETE FROM {s}.event_cancels c USING unnest($1::text[], $2::text[], $3::bytea[]) AS v(name, field, value)
		WHERE c.name = v.name AND c.field = v.field AND c.value = v.value AND c.job = $4`, names, fields, values, int64(id))
}

// cancelJob cancels job id unless it has ended: a waiting one at once, a claimed one
// through its record and the engine, which stops its handler.
func (t *pgTxn) cancelJob(id ID) error {
	rec, err := t.get(id)
	if err != nil || final(rec.state) {
		return nil
	}
	if _, claimed := t.claimedSince(id); claimed {
		rec.cancel = true
		if err := t.put(id, rec); err != nil {
			return err
		}
		t.log(changeOf(changeCancelAsked, id, rec, rec.state))
		return nil
	}
	_, err = t.apply(id, rec, ending{outcome: outcomeCancel})
	return err
}

// enqueueFailure enqueues the failure job (OnFailure) of job id, which failed for
// good as rec.
func (t *pgTxn) enqueueFailure(id ID, rec *record) error {
	f, err := decodeRecord(rec.onFailure)
	if err != nil {
		return nil // an unreadable template: the failure stands, with nothing to enqueue
	}
	f.args, f.createdAt, f.runAt = failureArgs(id, rec), t.now, t.now
	_, err = t.enqueue(f)
	return err
}

// wakeWaiters ends the waits that event se takes, whose rows waits are (read, with
// their jobs', by sendEvent): each job that still waits in its row's step gets the
// event as the step's result and becomes ready. The steps are read in one query,
// after the event's cancellations, and the rows deleted and the steps written in
// one statement; a row whose job moved on (its timeout came) stays until the job
// stores the timeout.
func (t *pgTxn) wakeWaiters(se *storedEvent, waits []pgMatch) error {
	type candidate struct {
		m   pgMatch
		rec *record
	}
	var candidates []candidate
	var waitJobs []int64
	var waitKeys []string
	for _, m := range waits {
		rec, err := t.get(m.id)
		if err != nil || rec.state != stScheduled {
			continue // gone, unreadable (quarantined by the reads that need it) or not waiting
		}
		candidates = append(candidates, candidate{m, rec})
		waitJobs, waitKeys = append(waitJobs, int64(m.id)), append(waitKeys, m.step)
	}
	if len(candidates) == 0 {
		return nil
	}
	type stepOf struct {
		id  ID
		key string
	}
	stored := map[stepOf][]byte{}
	err := scanRows(t.queryOther(`SELECT s.job, s.key, s.data FROM {s}.steps s
		JOIN unnest($1::bigint[], $2::text[]) AS v(job, key) ON s.job = v.job AND s.key = v.key`, waitJobs, waitKeys),
		func(rows sqldb.Rows) error {
			var id int64
			var key string
			var data []byte
			err := rows.Scan(&id, &key, &data)
			stored[stepOf{ID(id), key}] = data
			return err
		})
	if err != nil {
		return err
	}
	var fields, keys []string
	var values, steps [][]byte
	var jobs []int64
	var ready []candidate
	woken := map[ID]bool{}
	for _, c := range candidates {
		if woken[c.m.id] {
			continue // ready already: another row of the job woke it
		}
		v, ok := stored[stepOf{c.m.id, c.m.step}]
		if !ok {
			continue
		}
		s, err := decodeStep(c.m.step, v)
		if err != nil || s.state != stepWait {
			continue
		}
		woken[c.m.id] = true
		fields, values = append(fields, c.m.field), append(values, c.m.value)
		jobs, keys, steps = append(jobs, int64(c.m.id)), append(keys, c.m.step), append(steps, received(s, se, t.now).encode())
		ready = append(ready, c)
	}
	if len(ready) == 0 {
		return nil
	}
	if err := t.exec(`WITH gone AS (
			DELETE FROM {s}.event_waits w USING unnest($2::text[], $3::bytea[], $4::bigint[]) AS v(field, value, job)
			WHERE w.name = $1 AND w.field = v.field AND w.value = v.value AND w.job = v.job)
		INSERT INTO {s}.steps (job, key, data) SELECT * FROM unnest($4::bigint[], $5::text[], $6::bytea[])
		ON CONFLICT (job, key) DO UPDATE SET data = excluded.data`, se.name, fields, values, jobs, keys, steps); err != nil {
		return err
	}
	for _, c := range ready {
		if _, err := t.apply(c.m.id, c.rec, ending{outcome: outcomeDue}); err != nil {
			return err
		}
	}
	return nil
}
