package jobrun

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/jobrun/jobrun/internal/sqldb"
)

// Many processes share a PostgreSQL store. What one process's memory decided for
// a bbolt file is decided in the database instead:
//
//   - A claim is a lease: the claiming store's owner ID, a lease time and a fence,
//     which counts the job's claims. Each process renews its leases every third of
//     the lease (renew, run by the commit loop's poll); a lease that lapses is
//     that of a process that died or lost its database, and any process rescues
//     the job as the bbolt store recovers a job at open (outcomeRecovered: no
//     attempt spent). The outcome of a rescued claim is refused (owns), so a
//     handler that ran on past its lease cannot overwrite the run that followed.
//   - New work wakes the other processes with a notification (LISTEN/NOTIFY) sent
//     after the commit, on a connection of its own, never in the commit: NOTIFY
//     serializes the commits that send it. A poll every sqldb.Settings.Poll
//     covers what a lost notification missed.
//   - Pause, Cancel of a job another process runs, schedules and key slots are
//     rows the transactions lock, not memory.

func (s *pgStore) pollEvery() time.Duration { return min(s.set.Poll, s.set.Lease/3) }

// channel is the notification channel of the store's schema.
func (s *pgStore) channel() string {
	name := "jobrun_" + s.set.Schema
	if len(name) > 63 { // PostgreSQL's limit for identifiers
		h := fnv.New64a()
		h.Write([]byte(s.set.Schema))
		name = fmt.Sprintf("jobrun_%x", h.Sum64())
	}
	return name
}

// Notifications: "j OWNER DUE QUEUE" for jobs of QUEUE ready (DUE 0) or due at
// DUE (Unix nanoseconds); "e OWNER ID..." for jobs that ended or were deleted, so
// that a Wait in another process returns; "p OWNER" for a change the others find
// by polling.

func (s *pgStore) wakePayload(queue string, state byte, runAt time.Time) string {
	due := int64(0)
	if state != stReady {
		due = storedNanos(runAt)
	}
	return "j " + strconv.FormatInt(s.owner, 10) + " " + strconv.FormatInt(due, 10) + " " + queue
}

// notifyAfter sends the notifications of what a committed transaction did.
func (s *pgStore) notifyAfter(changes []jobChange, poked bool) {
	var payloads []string
	seen := map[string]bool{}
	for _, c := range changes {
		var p string
		switch {
		case c.to == stReady && c.from != stReady, c.what == changeAdmitted:
			p = s.wakePayload(c.queue, stReady, time.Time{})
		case (c.to == stScheduled || c.to == stRetrying) && c.from != c.to:
			p = s.wakePayload(c.queue, c.to, c.runAt)
		default:
			continue
		}
		if !seen[p] {
			seen[p] = true
			payloads = append(payloads, p)
		}
	}
	ended := ""
	for _, c := range changes {
		if c.what == changeRemoved || final(c.to) && (c.what == changeMoved || c.what == changeQuarantined) {
			if ended == "" {
				ended = "e " + strconv.FormatInt(s.owner, 10)
			}
			ended += " " + strconv.FormatInt(int64(c.id), 10)
			if len(ended) > pgMaxPayload {
				payloads, ended = append(payloads, ended), ""
			}
		}
	}
	if ended != "" {
		payloads = append(payloads, ended)
	}
	if poked {
		payloads = append(payloads, "p "+strconv.FormatInt(s.owner, 10))
	}
	if len(payloads) == 0 {
		return
	}
	select {
	case s.notes <- payloads:
	default:
		// The sender is behind: the others' polls find this work.
	}
}

// sendNotes sends the queued notifications, each batch in one statement, until
// the store closes.
func (s *pgStore) sendNotes() {
	defer close(s.notesDone)
	for {
		select {
		case <-s.ctx.Done():
			return
		case payloads := <-s.notes:
			for more := true; more && len(payloads) < 1000; {
				select {
				case p := <-s.notes:
					payloads = append(payloads, p...)
				default:
					more = false
				}
			}
			if err := s.notify(payloads); err != nil && s.ctx.Err() == nil {
				s.cfg.logger.Warn("jobrun: notify other processes; they find the work at their next poll", "error", err)
			}
		}
	}
}

// pgMaxPayload keeps a notification's payload under PostgreSQL's 8000 bytes.
const pgMaxPayload = 7900

// notify sends payloads in a transaction whose commit is not waited for on disk:
// NOTIFY gives a transaction an ID, so its commit would be flushed to the WAL like
// a job's, an fsync per notification, taken from the commits of jobs. A
// notification lost in a crash is a hint lost: the polls find the work.
func (s *pgStore) notify(payloads []string) error {
	ctx, cancel := context.WithTimeout(s.ctx, pgStatementTimeout)
	defer cancel()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	_, err = tx.CommitWith(ctx, []sqldb.Statement{
		{SQL: `SET LOCAL synchronous_commit = off`},
		{SQL: `SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`, Args: []any{s.channel(), payloads}},
	})
	return err
}

func (s *pgStore) watch(fn func(n wakeNote)) {
	me := strconv.FormatInt(s.owner, 10)
	handle := func(payload string) {
		kind, rest, _ := strings.Cut(payload, " ")
		owner, rest, _ := strings.Cut(rest, " ")
		if owner == me {
			return // this process's own commit: its loop knows
		}
		switch kind {
		case "j":
			dueText, queue, _ := strings.Cut(rest, " ")
			due, _ := strconv.ParseInt(dueText, 10, 64)
			fn(wakeNote{queue: queue, due: pgTime(due)})
		case "e":
			var ended []ID
			for _, f := range strings.Fields(rest) {
				if id, err := strconv.ParseInt(f, 10, 64); err == nil {
					ended = append(ended, ID(id))
				}
			}
			fn(wakeNote{ended: ended})
		default:
			fn(wakeNote{poke: true})
		}
	}
	s.listenDone = make(chan struct{})
	go func() {
		defer close(s.listenDone)
		for s.ctx.Err() == nil {
			done, err := s.pool.Listen(s.ctx, s.channel(), handle)
			if err == nil {
				fn(wakeNote{poke: true}) // what was missed while not listening
				err = <-done
			}
			if s.ctx.Err() != nil {
				return
			}
			s.cfg.logger.Warn("jobrun: listen for other processes' work; polling until it listens again", "error", err)
			select {
			case <-s.ctx.Done():
			case <-time.After(s.pollEvery()):
			}
		}
	}()
}

// Leases.

// claimLease makes job id's claim this store's, with a new fence.
func (t *pgTxn) claimLease(id ID, r *pgRow) {
	r.owner, r.fence, r.leaseUntil = t.s.owner, r.fence+1, storedNanos(t.now.Add(t.s.set.Lease))
	t.setFence(id, r.fence)
}

// setFence notes the fence of this store's claim of job id. The note is the
// transaction's until it commits (commitFences): a transaction the server aborts
// and update runs again must find the fences as they were, or the second try
// would refuse the outcome whose claim the first try forgot.
func (t *pgTxn) setFence(id ID, fence int64) {
	if t.fences == nil {
		t.fences = map[ID]int64{}
	}
	t.fences[id] = fence
}

// fence returns the fence of this store's claim of job id, 0 if it has none.
func (t *pgTxn) fence(id ID) int64 {
	if f, ok := t.fences[id]; ok {
		return max(f, 0) // a forgotten claim's is negative
	}
	t.s.fenceMu.Lock()
	defer t.s.fenceMu.Unlock()
	return t.s.fences[id]
}

// commitFences makes the fences a committed transaction noted the store's. A
// claim it forgot is forgotten only if no later claim of the job replaced it: a
// completion's commit and the commit loop's next claim of the job it made ready
// may land in either order.
func (t *pgTxn) commitFences() {
	if len(t.fences) == 0 {
		return
	}
	t.s.fenceMu.Lock()
	defer t.s.fenceMu.Unlock()
	for id, f := range t.fences {
		switch {
		case f > 0:
			t.s.fences[id] = max(t.s.fences[id], f)
		case t.s.fences[id] == -f:
			delete(t.s.fences, id)
		}
	}
}

// owns reports whether this store's claim of job id still holds: a claim that
// lapsed and was rescued, or that another process's Cancel ended, is no longer
// this process's to record.
func (t *pgTxn) owns(id ID) (bool, error) {
	r, err := t.row(id)
	if err != nil || r == nil {
		return false, err
	}
	fence := t.fence(id)
	return fence != 0 && r.claim != pgUnclaimed && r.owner == t.s.owner && r.fence == fence, nil
}

// forget drops the fence of a claim that ended (noted as its negative).
func (t *pgTxn) forget(id ID) {
	if f := t.fence(id); f > 0 {
		t.setFence(id, -f)
	}
}

func (t *pgTxn) renew(limit int, held []ID) (ready, ended int, err error) {
	until := storedNanos(t.now.Add(t.s.set.Lease))
	if err := t.sendRows(); err != nil {
		return 0, 0, err
	}
	ids := make([]int64, len(held))
	for i, id := range held {
		ids[i] = int64(id)
	}
	var asked []ID
	err = scanRows(t.query(`UPDATE {s}.jobs SET lease_until = $2 WHERE id = ANY($3) AND owner = $1 AND claim > 0 RETURNING id, cancel`,
		t.s.owner, until, ids), func(rows sqldb.Rows) error {
		var id int64
		var cancel bool
		if err := rows.Scan(&id, &cancel); err != nil {
			return err
		}
		if r := t.rows[ID(id)]; r != nil {
			r.leaseUntil = until // a write of the row later in this commit keeps the renewal
		}
		if cancel {
			asked = append(asked, ID(id))
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("renew leases: %w", err)
	}
	if err := t.exec(`UPDATE {s}.held SET lease_until = $2 WHERE owner = $1`, t.s.owner, until); err != nil {
		return 0, 0, fmt.Errorf("renew held key slots: %w", err)
	}
	for _, id := range asked {
		if rec, err := t.get(id); err == nil {
			t.log(changeOf(changeCancelAsked, id, rec, rec.state))
		}
	}
	return t.rescue(limit)
}

// rescue moves up to limit jobs whose leases lapsed as transition decides for a
// job its process left running, and frees the key slots that dead processes'
// abandoned handlers held.
func (t *pgTxn) rescue(limit int) (ready, ended int, err error) {
	now := storedNanos(t.now)
	var ids []ID
	var rows []*pgRow
	err = scanRows(t.query(`SELECT `+pgJobColumns+` FROM {s}.jobs WHERE claim > 0 AND lease_until < $1
		ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`, now, limit), func(rs sqldb.Rows) error {
		id, r, err := t.scanRow(rs)
		ids, rows = append(ids, id), append(rows, r)
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("rescue lapsed claims: %w", err)
	}
	for i, id := range ids {
		nx, quarantined, err := t.recoverClaimed(id, rows[i])
		switch {
		case err != nil:
			return ready, ended, err
		case quarantined || nx.ended:
			ended++
		default:
			ready++
		}
	}
	type slot struct{ queue, key string }
	var slots []slot
	err = scanRows(t.query(`DELETE FROM {s}.held WHERE lease_until < $1 RETURNING queue, key`, now), func(rs sqldb.Rows) error {
		var s slot
		err := rs.Scan(&s.queue, &s.key)
		slots = append(slots, s)
		return err
	})
	if err != nil {
		return ready, ended, err
	}
	for _, s := range slots {
		if err := t.releaseSlot(s.queue, s.key); err != nil {
			return ready, ended, err
		}
	}
	return ready, ended, nil
}

// recoverClaimed takes a claimed job whose process is gone out of its claim and
// moves it for outcomeRecovered.
func (t *pgTxn) recoverClaimed(id ID, r *pgRow) (nx next, quarantined bool, err error) {
	from := stReady
	if r.claim == pgStarted {
		from = stRunning
	}
	r.claim, r.startedAt, r.owner, r.leaseUntil = pgUnclaimed, 0, 0, 0
	t.touch(id, r, pgUpdate)
	rec, err := decodeRecord(r.raw)
	if err != nil {
		return next{}, true, t.quarantine(id, r.queue, from, err)
	}
	nx, err = t.applyDetached(id, rec, ending{outcome: outcomeRecovered, recoveries: t.cfg.maxRecoveries}, from)
	return nx, false, err
}

func (t *pgTxn) claimedElsewhere(id ID) bool {
	r, err := t.row(id)
	return err == nil && r != nil && r.claim != pgUnclaimed && r.owner != t.s.owner && r.leaseUntil >= storedNanos(t.now)
}

func (t *pgTxn) poke() { t.poked = true }
