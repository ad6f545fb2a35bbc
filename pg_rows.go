package jobrun

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jobrun/jobrun/internal/sqldb"
)

// Where a ready job is, in a jobs row's lane: claimable, or waiting for a slot of
// its concurrency key. Jobs in other states have no lane.
const (
	pgLaneNone byte = iota
	pgLaneReady
	pgLaneKeyWait
)

// A jobs row's claim: a claimed job has left its queue's lineup; a started one is
// running.
const (
	pgUnclaimed byte = iota
	pgClaimed
	pgStarted
)

// What a transaction has still to send of a row.
const (
	pgClean byte = iota
	pgInsert
	pgUpdate
	pgDelete
)

// pgRow is a jobs row as a transaction knows it: read, or written and not sent yet.
type pgRow struct {
	raw        []byte // the record, encoded; nil in an update that leaves it
	recChanged bool   // raw is to be written
	queue      string
	kind       string
	state      byte
	priority   int64
	runAt      int64
	finishedAt int64
	concKey    string
	tags       []string
	suspended  byte
	lane       byte
	claim      byte
	startedAt  int64
	owner      int64 // the store (process) whose claim it is
	leaseUntil int64 // when its claim lapses unless renewed
	fence      int64 // counts the job's claims: an outcome of an older claim is refused
	cancel     bool  // its record asks it to stop (Cancel, or its parent ended)
	op         byte
}

// pgJobColumns are the columns scanRow reads, in its order.
const pgJobColumns = `id, queue, kind, state, priority, run_at, finished_at, lane, claim, started_at, conc_key, tags, suspended,
	owner, lease_until, fence, cancel, rec`

// pgJobColumnsOf is pgJobColumns of the table named alias.
func pgJobColumnsOf(alias string) string {
	cols := strings.Split(pgJobColumns, ",")
	for i, c := range cols {
		cols[i] = alias + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

// scanRow reads a row of pgJobColumns and keeps it, unless the transaction holds
// a newer version of it.
func (t *pgTxn) scanRow(rows sqldb.Rows) (ID, *pgRow, error) {
	id, r, err := scanJobRow(rows)
	if err != nil {
		return 0, nil, err
	}
	if held := t.rows[id]; held != nil { // read before, maybe written since
		return id, held, nil
	}
	t.rows[id] = r
	return id, r, nil
}

// scanWritten is scanRow for a row that the statement wrote: what it returns
// replaces what the transaction read of the row before (and sent: a query sends
// the gathered writes first).
func (t *pgTxn) scanWritten(rows sqldb.Rows) (ID, *pgRow, error) {
	id, r, err := scanJobRow(rows)
	if err == nil {
		t.rows[id] = r
	}
	return id, r, err
}

// scanJobRow reads a row of pgJobColumns.
func scanJobRow(rows sqldb.Rows) (ID, *pgRow, error) {
	var id int64
	var state, lane, claim, suspended int16
	r := &pgRow{}
	if err := rows.Scan(&id, &r.queue, &r.kind, &state, &r.priority, &r.runAt, &r.finishedAt, &lane, &claim,
		&r.startedAt, &r.concKey, &r.tags, &suspended, &r.owner, &r.leaseUntil, &r.fence, &r.cancel, &r.raw); err != nil {
		return 0, nil, err
	}
	r.state, r.lane, r.claim, r.suspended = byte(state), byte(lane), byte(claim), byte(suspended)
	return ID(id), r, nil
}

// row returns job id's row, read once per transaction (and locked, in a write
// transaction, so that another process's transaction cannot change it before this
// one ends); nil if there is none.
func (t *pgTxn) row(id ID) (*pgRow, error) {
	if r, ok := t.rows[id]; ok {
		if r == nil || r.op == pgDelete {
			return nil, nil
		}
		return r, nil
	}
	stmt := `SELECT ` + pgJobColumns + ` FROM {s}.jobs WHERE id = $1`
	if t.writes {
		stmt += ` FOR UPDATE`
	}
	var r *pgRow
	err := scanRows(t.query(stmt, int64(id)), func(rows sqldb.Rows) (err error) {
		_, r, err = t.scanRow(rows)
		return err
	})
	if err != nil {
		return nil, err
	}
	if r == nil {
		t.rows[id] = nil
	}
	return r, nil
}

// lockRows is row for many jobs in one query: it reads (and in a write transaction
// locks, in ID order) the rows of ids the transaction has not read yet, so that the
// rows of the jobs one event wakes or cancels cost one round trip, not one each.
func (t *pgTxn) lockRows(ids []ID) error {
	var unread []int64
	for _, id := range ids {
		if _, ok := t.rows[id]; !ok {
			unread = append(unread, int64(id))
		}
	}
	if len(unread) == 0 {
		return nil
	}
	stmt := `SELECT ` + pgJobColumns + ` FROM {s}.jobs WHERE id = ANY($1) ORDER BY id`
	if t.writes {
		stmt += ` FOR UPDATE`
	}
	err := scanRows(t.query(stmt, unread), func(rows sqldb.Rows) error {
		_, _, err := t.scanRow(rows)
		return err
	})
	if err != nil {
		return err
	}
	for _, id := range unread {
		if _, ok := t.rows[ID(id)]; !ok {
			t.rows[ID(id)] = nil
		}
	}
	return nil
}

func (t *pgTxn) prefetch(ids []ID) error { return t.lockRows(ids) }

// touch queues row id's writes for sending.
func (t *pgTxn) touch(id ID, r *pgRow, op byte) {
	if r.op == pgClean {
		t.dirty = append(t.dirty, id)
	}
	if r.op != pgInsert || op == pgDelete {
		r.op = op
	}
}

// setRecord copies rec's indexed fields and encoding into r.
func (r *pgRow) setRecord(rec *record) {
	r.raw, r.recChanged = rec.encode(), true
	r.queue, r.kind, r.state, r.priority = rec.queue, rec.kind, rec.state, rec.priority
	r.runAt, r.finishedAt = storedNanos(rec.runAt), storedNanos(rec.finishedAt)
	r.concKey, r.tags, r.suspended, r.cancel = rec.concKey, rec.tags, rec.suspended, rec.cancel
	if r.state != stReady {
		r.lane = pgLaneNone
	}
}

func (t *pgTxn) get(id ID) (*record, error) {
	r, err := t.row(id)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, ErrNotFound
	}
	return decodeRecord(r.raw)
}

func (t *pgTxn) put(id ID, rec *record) error {
	r, err := t.row(id)
	if err != nil {
		return err
	}
	if r == nil {
		return fmt.Errorf("store job %d: %w", id, ErrNotFound)
	}
	lane := r.lane
	r.setRecord(rec)
	if rec.state == stReady {
		r.lane = lane
	}
	t.touch(id, r, pgUpdate)
	return nil
}

// setLane moves a ready job between its queue's lineup and its key's waiting line.
func (t *pgTxn) setLane(id ID, lane byte) error {
	r, err := t.row(id)
	if err != nil || r == nil {
		return err
	}
	r.lane = lane
	t.touch(id, r, pgUpdate)
	return nil
}

// setClaim records a job's claim, and its start time once it started.
func (t *pgTxn) setClaim(id ID, claim byte, started int64) error {
	r, err := t.row(id)
	if err != nil || r == nil {
		return err
	}
	r.claim, r.startedAt = claim, started
	t.touch(id, r, pgUpdate)
	return nil
}

// deleteRow deletes job id's row.
func (t *pgTxn) deleteRow(id ID) error {
	r, err := t.row(id)
	if err != nil || r == nil {
		return err
	}
	if r.op == pgInsert {
		r.op = pgDelete // never sent: nothing to delete
		t.rows[id] = nil
		return nil
	}
	t.touch(id, r, pgDelete)
	return nil
}

// sendRows writes the gathered writes to jobs rows: one statement for the
// inserts, one for the updates and one for the deletes, in one round trip.
func (t *pgTxn) sendRows() error { return t.sendWith(nil) }

// sendWith is sendRows with more statements after the rows', labelled for errors.
func (t *pgTxn) sendWith(more []pgStatement) error {
	stmts := append(t.rowStatements(), more...)
	if len(stmts) == 0 {
		return nil
	}
	if i, err := t.tx.Batch(t.ctx, t.batch(stmts)); err != nil {
		return fmt.Errorf("%s: %w", stmts[max(i, 0)].what, err)
	}
	return nil
}

// batch is stmts with the schema in their SQL.
func (t *pgTxn) batch(stmts []pgStatement) []sqldb.Statement {
	batch := make([]sqldb.Statement, len(stmts))
	for i, st := range stmts {
		batch[i] = sqldb.Statement{SQL: t.s.q(st.sql), Args: st.args}
	}
	return batch
}

// pgStatement is a statement of a batch, with what it does for its error.
type pgStatement struct {
	what string
	sql  string
	args []any
}

// rowStatements takes the gathered writes to jobs rows as statements.
func (t *pgTxn) rowStatements() []pgStatement {
	if len(t.dirty) == 0 && len(t.removed) == 0 {
		return nil
	}
	var ins, upd pgColumns
	var del []int64
	for _, id := range t.dirty {
		r := t.rows[id]
		if r == nil {
			continue // inserted and deleted again
		}
		switch r.op {
		case pgInsert:
			ins.add(id, r)
		case pgUpdate:
			upd.add(id, r)
		case pgDelete:
			del = append(del, int64(id))
			t.rows[id] = nil
			continue
		}
		r.op, r.recChanged = pgClean, false
	}
	t.dirty = t.dirty[:0]
	var stmts []pgStatement
	if len(del) > 0 {
		stmts = append(stmts, pgStatement{"delete jobs", `DELETE FROM {s}.jobs WHERE id = ANY($1)`, []any{del}})
	}
	if len(t.removed) > 0 {
		// What names the jobs remove deleted, in three statements for all of them
		// rather than a few per job: retention and Clean remove hundreds at once.
		gone := t.removed
		t.removed = nil
		stmts = append(stmts,
			pgStatement{"delete the steps of removed jobs", `DELETE FROM {s}.steps WHERE job = ANY($1)`, []any{gone}},
			pgStatement{"delete the waits of removed jobs", `DELETE FROM {s}.event_waits WHERE job = ANY($1)`, []any{gone}},
			pgStatement{"delete the kept bytes of removed jobs", `DELETE FROM {s}.corrupt WHERE id = ANY($1)`, []any{gone}})
	}
	if len(ins.id) > 0 {
		stmts = append(stmts, pgStatement{"insert jobs", `INSERT INTO {s}.jobs (` + pgJobColumns + `)
			SELECT id, queue, kind, state, priority, run_at, finished_at, lane, claim, started_at, conc_key,
				CASE WHEN tags = '' THEN '{}'::text[] ELSE ARRAY(SELECT jsonb_array_elements_text(tags::jsonb)) END,
				suspended, owner, lease_until, fence, cancel, rec
			FROM ` + pgUnnestColumns, ins.args()})
	}
	if len(upd.id) > 0 {
		stmts = append(stmts, pgStatement{"update jobs", `UPDATE {s}.jobs j SET queue = v.queue, kind = v.kind, state = v.state,
				priority = v.priority, run_at = v.run_at, finished_at = v.finished_at, lane = v.lane, claim = v.claim,
				started_at = v.started_at, conc_key = v.conc_key,
				tags = CASE WHEN v.tags = '' THEN '{}'::text[] ELSE ARRAY(SELECT jsonb_array_elements_text(v.tags::jsonb)) END,
				suspended = v.suspended, owner = v.owner, lease_until = v.lease_until, fence = v.fence, cancel = v.cancel,
				rec = COALESCE(v.rec, j.rec)
			FROM ` + pgUnnestColumns + ` WHERE j.id = v.id`, upd.args()})
	}
	return stmts
}

// pgUnnestColumns reads pgColumns.args as rows named v.
const pgUnnestColumns = `unnest($1::bigint[], $2::text[], $3::text[], $4::smallint[], $5::bigint[], $6::bigint[], $7::bigint[],
	$8::smallint[], $9::smallint[], $10::bigint[], $11::text[], $12::text[], $13::smallint[], $14::bigint[], $15::bigint[],
	$16::bigint[], $17::boolean[], $18::bytea[])
	AS v(id, queue, kind, state, priority, run_at, finished_at, lane, claim, started_at, conc_key, tags, suspended,
		owner, lease_until, fence, cancel, rec)`

// pgColumns are rows as the column arrays of one statement.
type pgColumns struct {
	id                                   []int64
	queue, kind, concKey, tags           []string
	state, lane, claim, suspended        []int16
	priority, runAt, finishedAt, started []int64
	owner, leaseUntil, fence             []int64
	cancel                               []bool
	rec                                  [][]byte
}

func (c *pgColumns) add(id ID, r *pgRow) {
	c.id = append(c.id, int64(id))
	c.queue, c.kind, c.concKey = append(c.queue, r.queue), append(c.kind, r.kind), append(c.concKey, r.concKey)
	tags := ""
	if len(r.tags) > 0 {
		b, _ := json.Marshal(r.tags)
		tags = string(b)
	}
	c.tags = append(c.tags, tags)
	c.state, c.lane, c.claim = append(c.state, int16(r.state)), append(c.lane, int16(r.lane)), append(c.claim, int16(r.claim))
	c.suspended = append(c.suspended, int16(r.suspended))
	c.priority, c.runAt, c.finishedAt = append(c.priority, r.priority), append(c.runAt, r.runAt), append(c.finishedAt, r.finishedAt)
	c.started = append(c.started, r.startedAt)
	c.owner, c.leaseUntil, c.fence = append(c.owner, r.owner), append(c.leaseUntil, r.leaseUntil), append(c.fence, r.fence)
	c.cancel = append(c.cancel, r.cancel)
	var raw []byte
	if r.recChanged || r.op == pgInsert {
		raw = r.raw
	}
	c.rec = append(c.rec, raw)
}

func (c *pgColumns) args() []any {
	return []any{c.id, c.queue, c.kind, c.state, c.priority, c.runAt, c.finishedAt, c.lane, c.claim, c.started,
		c.concKey, c.tags, c.suspended, c.owner, c.leaseUntil, c.fence, c.cancel, c.rec}
}
