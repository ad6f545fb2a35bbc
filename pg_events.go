package jobrun

import (
	"fmt"
	"math"
	"time"

	"github.com/jobrun/jobrun/internal/sqldb"
)

// Sent events are rows of events by Seq, from the event_seqs sequence, which is also
// the order they were sent in, so retention deletes from the front; the name and
// sent-at columns beside the encoding (event.go) serve the lists of a name and
// retention, and event_ids holds each event ID's first event for the dedup window,
// as the bbolt store's eventnames and eventids buckets do (bolt_events.go).

func (t *pgTxn) sendEvent(se *storedEvent, runs []*record, dedup time.Duration) error {
	var seq int64
	if err := t.queryRowOther(`SELECT nextval('{s}.event_seqs') FROM (SELECT pg_advisory_xact_lock(hashtext($1))) AS l`,
		t.eventLock(se.name)).Scan(&seq); err != nil {
		return fmt.Errorf("event sequence: %w", err)
	}
	se.seq, se.at, se.runs, se.dupOf = uint64(seq), t.now, nil, 0
	if se.id != "" {
		first, firstRuns, err := t.firstOfID(se, dedup)
		if err != nil {
			return err
		}
		if first != 0 {
			se.dupOf, se.runs, runs = first, firstRuns, nil
		}
	}
	for _, rec := range runs {
		rec.event = se.seq
		ins, err := t.enqueue(rec)
		if err != nil {
			return fmt.Errorf("run of %s: %w", rec.kind, err)
		}
		se.runs = append(se.runs, ins.id)
	}
	if err := t.exec(`INSERT INTO {s}.events (seq, name, event_id, sent_at, data) VALUES ($1, $2, $3, $4, $5)`,
		seq, se.name, se.id, storedNanos(se.at), se.encode()); err != nil {
		return err
	}
	if se.dupOf != 0 {
		return nil // a duplicate wakes no wait and cancels nothing, as it starts no run
	}
	cancels, waits, err := t.matching(se)
	if err != nil {
		return err
	}
	ids := make([]ID, 0, len(cancels)+len(waits))
	for _, m := range cancels {
		ids = append(ids, m.id)
	}
	for _, m := range waits {
		ids = append(ids, m.id)
	}
	if err := t.lockRows(ids); err != nil {
		return err
	}
	if err := t.cancelMatching(se, cancels); err != nil {
		return err
	}
	return t.wakeWaiters(se, waits)
}

// firstOfID takes se's event ID for se, unless an event sent within dedup holds it:
// then it returns that event's Seq and runs. The insert comes first, so that of two
// transactions sending the same ID at once, the second waits for the first and sees
// its row.
func (t *pgTxn) firstOfID(se *storedEvent, dedup time.Duration) (uint64, []ID, error) {
	var taken int64
	err := t.queryRowOther(`INSERT INTO {s}.event_ids (event_id, seq, sent_at) VALUES ($1, $2, $3)
		ON CONFLICT (event_id) DO UPDATE SET seq = excluded.seq, sent_at = excluded.sent_at
			WHERE {s}.event_ids.sent_at <= $4
		RETURNING seq`, se.id, int64(se.seq), storedNanos(se.at), storedNanos(se.at.Add(-dedup))).Scan(&taken)
	if err == nil {
		return 0, nil, nil
	}
	if err != sqldb.ErrNoRows {
		return 0, nil, fmt.Errorf("event ID %q: %w", se.id, err)
	}
	var first int64
	var data []byte
	if err := t.queryRowOther(`SELECT i.seq, e.data FROM {s}.event_ids i LEFT JOIN {s}.events e ON e.seq = i.seq
		WHERE i.event_id = $1`, se.id).Scan(&first, &data); err != nil {
		return 0, nil, fmt.Errorf("event ID %q: %w", se.id, err)
	}
	var runs []ID
	if fe, err := decodeEvent(uint64(first), data); err == nil {
		runs = fe.runs
	}
	return uint64(first), runs, nil
}

func (t *pgTxn) event(seq uint64) (*storedEvent, error) {
	if seq > math.MaxInt64 {
		return nil, ErrNotFound
	}
	var data []byte
	err := t.queryRowOther(`SELECT data FROM {s}.events WHERE seq = $1`, int64(seq)).Scan(&data)
	if err == sqldb.ErrNoRows {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return decodeEvent(seq, data)
}

// events reads up to limit events, of name if it is not "", newest first unless
// oldest, from Seq from (0: the newest or oldest), and returns the Seq where the next
// page begins (0 after the last): the row after the page, read with it.
func (t *pgTxn) events(name string, oldest bool, from uint64, limit int) ([]*storedEvent, uint64, error) {
	bound := int64(min(from, math.MaxInt64))
	stmt := `SELECT seq, data FROM {s}.events WHERE seq >= $1`
	order := ` ORDER BY seq LIMIT $2`
	if !oldest {
		if from == 0 {
			bound = math.MaxInt64
		}
		stmt, order = `SELECT seq, data FROM {s}.events WHERE seq <= $1`, ` ORDER BY seq DESC LIMIT $2`
	}
	args := []any{bound, limit + 1}
	if name != "" {
		stmt += ` AND name = $3`
		args = append(args, name)
	}
	var out []*storedEvent
	var next uint64
	err := scanRows(t.queryOther(stmt+order, args...), func(rows sqldb.Rows) error {
		var seq int64
		var data []byte
		if err := rows.Scan(&seq, &data); err != nil {
			return err
		}
		if len(out) == limit {
			next = uint64(seq)
			return nil
		}
		se, err := decodeEvent(uint64(seq), data)
		if err != nil {
			return err
		}
		out = append(out, se)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, next, nil
}

// eventsDue reports whether retention has events to delete and, if not, when it
// will (zero: no event expires, as things stand): when the event of the lowest Seq
// expires, as retainEvents deletes in Seq order.
func (t *pgTxn) eventsDue() (bool, time.Time) {
	if t.cfg.eventKeep < 0 {
		return false, time.Time{}
	}
	var at int64
	err := t.queryRowOther(`SELECT sent_at FROM {s}.events ORDER BY seq LIMIT 1`).Scan(&at)
	if err != nil {
		if err != sqldb.ErrNoRows {
			t.s.cfg.logger.Error("jobrun: read the oldest event", "error", err)
		}
		return false, time.Time{}
	}
	expires := pgTime(at).Add(t.cfg.eventKeep)
	return !t.now.Before(expires), expires
}

// retainEvents deletes up to limit of the oldest events that retention expired, in
// one statement: of the first limit events by Seq, those before the first that has
// not expired, with the event ID each holds.
func (t *pgTxn) retainEvents(limit int) error {
	if t.cfg.eventKeep < 0 {
		return nil
	}
	return t.exec(`WITH oldest AS (
			SELECT seq, bool_and(sent_at <= $1) OVER (ORDER BY seq) AS expired
			FROM (SELECT seq, sent_at FROM {s}.events ORDER BY seq LIMIT $2) AS first
		), gone AS (
			DELETE FROM {s}.events e USING oldest o WHERE e.seq = o.seq AND o.expired RETURNING e.seq, e.event_id
		)
		DELETE FROM {s}.event_ids i USING gone g WHERE i.event_id = g.event_id AND i.seq = g.seq`,
		storedNanos(t.now.Add(-t.cfg.eventKeep)), max(limit, 0))
}

func (t *pgTxn) functions() ([]*storedFunction, error) {
	var out []*storedFunction
	err := scanRows(t.queryOther(`SELECT kind, data FROM {s}.functions ORDER BY kind COLLATE "C"`), func(rows sqldb.Rows) error {
		var kind string
		var data []byte
		if err := rows.Scan(&kind, &data); err != nil {
			return err
		}
		f, err := decodeFunction(kind, data)
		if err != nil {
			return err
		}
		out = append(out, f)
		return nil
	})
	return out, err
}

// putFunctions replaces the stored functions with fns in one statement: it deletes
// the kinds fns lacks and writes the others over.
func (t *pgTxn) putFunctions(fns []*storedFunction) error {
	kinds := make([]string, len(fns))
	data := make([][]byte, len(fns))
	for i, f := range fns {
		kinds[i], data[i] = f.kind, f.encode()
	}
	return t.exec(`WITH gone AS (DELETE FROM {s}.functions WHERE kind <> ALL($1))
		INSERT INTO {s}.functions (kind, data) SELECT * FROM unnest($1::text[], $2::bytea[])
		ON CONFLICT (kind) DO UPDATE SET data = excluded.data`, kinds, data)
}
