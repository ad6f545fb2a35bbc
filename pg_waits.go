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

// endWaits is endWait for many steps of job id, in one statement.
func (t *pgTxn) endWaits(id ID, waits []*step) error {
	if len(waits) == 0 {
		return nil
	}
	var names, fields []string
	var values [][]byte
	for _, s := range waits {
		names, fields, values = append(names, s.waitEvent), append(fields, s.waitField), append(values, pgBytes(s.waitValue))
	}
	return t.exec(`DELETE FROM {s}.event_waits w USING unnest($1::text[], $2::text[], $3::bytea[]) AS v(name, field, value)
		WHERE w.name = v.name AND w.field = v.field AND w.value = v.value AND w.job = $4`, names, fields, values, int64(id))
}
