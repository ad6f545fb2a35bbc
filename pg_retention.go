package jobrun

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/jobrun/jobrun/internal/sqldb"
)

// Retention and sweeps of a PostgreSQL store, as bolt_retention.go and sweep in
// bolt_jobs.go walk the finished index: the same walks, over the jobs_finished
// index (state, finished_at, id). Their resume positions are a job's finished_at
// and ID, 16 bytes.

// pgFinishedEntry is what a walk of the finished jobs reads of a job.
type pgFinishedEntry struct {
	id         ID
	queue      string
	finishedAt int64 // as stored
}

// at is when the job finished, as the bbolt store's finished index has it.
func (e pgFinishedEntry) at() time.Time { return nanosTime(uint64(max(e.finishedAt, 0))) }

// position is the resume position after e.
func (e pgFinishedEntry) position() []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(e.finishedAt))
	return binary.BigEndian.AppendUint64(b, uint64(e.id))
}

// pgFinishedWalk reads the jobs of one final state in index order from a position
// on, a page per query: jobs finished by through and, after the last of them, the
// first job after through, where the caller's own cut stops it. Pages double from
// the first one's size, and the walk ends after most jobs finished by through: a
// caller that stops after some number of jobs reads no more than that.
type pgFinishedWalk struct {
	t       *pgTxn
	st      byte
	from    [2]int64 // finished_at and ID of the last job read
	through int64
	size    int // the next page's
	left    int // how many more jobs finished by through the walk reads
	page    []pgFinishedEntry
	ended   bool // the page holds the walk's last jobs
}

// walkFinished starts a walk of final state st after the position after (nil:
// from the first job).
func (t *pgTxn) walkFinished(st byte, after []byte, through int64, size, most int) (*pgFinishedWalk, error) {
	w := &pgFinishedWalk{t: t, st: st, from: [2]int64{math.MinInt64, math.MinInt64}, through: through, size: size, left: most}
	if after != nil {
		if len(after) != 16 {
			return nil, invalidf("malformed cursor")
		}
		w.from = [2]int64{int64(binary.BigEndian.Uint64(after)), int64(binary.BigEndian.Uint64(after[8:]))}
	}
	return w, nil
}

// next returns the next job of the walk, ok false at its end.
func (w *pgFinishedWalk) next() (e pgFinishedEntry, ok bool, err error) {
	if len(w.page) == 0 && !w.ended {
		err = w.read()
	}
	if err != nil || len(w.page) == 0 {
		return pgFinishedEntry{}, false, err
	}
	e, w.page = w.page[0], w.page[1:]
	return e, true, nil
}

func (w *pgFinishedWalk) read() error {
	want := min(w.size, w.left)
	w.size *= 2
	within := 0
	// state >= 5 is the predicate of the partial index jobs_finished, which state = $1
	// does not imply for a plan made for any $1.
	err := scanRows(w.t.query(`SELECT id, queue, finished_at FROM (
			(SELECT id, queue, finished_at FROM {s}.jobs
				WHERE state = $1 AND state >= 5 AND finished_at <= $2 AND (finished_at, id) > ($3, $4)
				ORDER BY finished_at, id LIMIT $5)
			UNION ALL
			(SELECT id, queue, finished_at FROM {s}.jobs
				WHERE state = $1 AND state >= 5 AND finished_at > $2 AND (finished_at, id) > ($3, $4)
				ORDER BY finished_at, id LIMIT 1)) AS e
		ORDER BY finished_at, id`, int16(w.st), w.through, w.from[0], w.from[1], want),
		func(rows sqldb.Rows) error {
			var e pgFinishedEntry
			var id int64
			if err := rows.Scan(&id, &e.queue, &e.finishedAt); err != nil {
				return err
			}
			e.id = ID(id)
			if e.finishedAt <= w.through {
				within++
			}
			w.page = append(w.page, e)
			return nil
		})
	if err != nil {
		return err
	}
	w.left -= within
	if within == want {
		// More may be finished by through: the job after through is not next.
		w.page = w.page[:within]
		last := w.page[within-1]
		w.from = [2]int64{last.finishedAt, int64(last.id)}
	}
	w.ended = within < want || w.left == 0
	return nil
}

// lockFinished locks the rows of entries that are still in final state st, in ID
// order as every process locks them, and returns their records; another process's
// commit may have removed or moved the others since the walk read them. A record
// that cannot be decoded gets a stand-in that names its entry, so that it can be
// removed.
func (t *pgTxn) lockFinished(st byte, entries []pgFinishedEntry) (map[ID]*record, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(entries))
	for i, e := range entries {
		ids[i] = int64(e.id)
	}
	locked := make(map[ID]*pgRow, len(entries))
	err := scanRows(t.query(`SELECT `+pgJobColumns+` FROM {s}.jobs WHERE id = ANY($1) AND state = $2 ORDER BY id FOR UPDATE`,
		ids, int16(st)), func(rows sqldb.Rows) error {
		id, r, err := t.scanRow(rows)
		locked[id] = r
		return err
	})
	if err != nil {
		return nil, err
	}
	recs := make(map[ID]*record, len(locked))
	for _, e := range entries {
		r := locked[e.id]
		if r == nil {
			continue
		}
		rec, err := decodeRecord(r.raw)
		if err != nil {
			rec = &record{queue: e.queue, state: st, finishedAt: e.at()}
		}
		recs[e.id] = rec
	}
	return recs, nil
}

func (t *pgTxn) sweep(st byte, queue string, before time.Time, after []byte, limit, budget int,
	fn func(id ID, r *record) error) ([]byte, error) {
	cut := unixNanos(before)
	w, err := t.walkFinished(st, after, int64(cut)-1, min(limit, budget)+1, budget+1)
	if err != nil {
		return nil, err
	}
	var hits []pgFinishedEntry
	var resume []byte
	for n := 0; ; n++ {
		e, ok, err := w.next()
		if err != nil {
			return nil, err
		}
		if !ok || unixNanos(e.at()) >= cut {
			resume = nil
			break
		}
		if len(hits) == limit || n == budget {
			break
		}
		resume = e.position()
		if queue == "" || e.queue == queue {
			hits = append(hits, e)
		}
	}
	recs, err := t.lockFinished(st, hits)
	if err != nil {
		return nil, err
	}
	for _, h := range hits {
		if rec := recs[h.id]; rec != nil {
			if err := fn(h.id, rec); err != nil {
				return nil, err
			}
		}
	}
	return resume, nil
}

// retentionDue is the bbolt store's: a plan of one deletion per final state. A plan
// that failed to read looks again within cleanInterval, as one out of budget does.
func (t *pgTxn) retentionDue() (bool, time.Time) {
	var next time.Time
	for _, st := range []byte{stDone, stFailed, stCanceled} {
		victims, resume, at, err := t.retainPlan(st, nil, 1)
		switch {
		case err != nil:
			t.s.cfg.logger.Error("jobrun: plan retention", "error", err)
			at = t.now.Add(cleanInterval)
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

// stateCounts returns every queue's count of state st, with this transaction's
// changes.
func (t *pgTxn) stateCounts(st byte) (map[string]int, error) {
	counts := map[string]int{}
	err := scanRows(t.query(`SELECT queue, sum(n) FROM {s}.counts WHERE state = $1 GROUP BY queue`, int16(st)),
		func(rows sqldb.Rows) error {
			var q string
			var n int64
			err := rows.Scan(&q, &n)
			counts[q] = int(n)
			return err
		})
	for q, d := range t.deltas {
		if d[st] != 0 {
			counts[q] += int(d[st])
		}
	}
	return counts, err
}

// retainPlan is the bbolt store's retainPlan: it finds up to limit jobs of final
// state st to delete, oldest first, from the position after, and returns where to
// resume (nil once it reached the jobs that finished too recently to expire, or the
// end) and, when it got there, the earliest time a job it kept expires (zero if
// none does). Without a queue over its count limit, the walk reads only the jobs
// old enough for the shortest age limit, and the first one after them.
func (t *pgTxn) retainPlan(st byte, after []byte, limit int) (victims []pgFinishedEntry, resume []byte, next time.Time, err error) {
	c := t.cfg
	minAge, counted := c.retentionBounds(st)
	var counts map[string]int
	if counted {
		if counts, err = t.stateCounts(st); err != nil {
			return nil, nil, time.Time{}, err
		}
		counted = false
		for q, n := range counts {
			if _, keep := c.retentionOf(q).limits(st); keep > 0 && n > keep {
				counted = true
				break
			}
		}
	}
	if minAge == 0 && !counted {
		return nil, nil, time.Time{}, nil
	}
	excess := map[string]int{}
	over := func(q string) int {
		n, ok := excess[q]
		if !ok {
			if _, keep := c.retentionOf(q).limits(st); keep > 0 {
				n = max(counts[q]-keep, 0)
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
	through := int64(math.MaxInt64)
	if !counted {
		through = storedNanos(t.now) - int64(minAge)
	}
	w, err := t.walkFinished(st, after, through, limit+1, cleanBudget+1)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	for n := 0; ; n++ {
		e, ok, err := w.next()
		if err != nil {
			return nil, nil, time.Time{}, err
		}
		if !ok {
			return victims, nil, next, nil
		}
		at := e.at()
		if !counted && minAge > 0 && at.Add(minAge).After(t.now) {
			expires(at.Add(minAge)) // everything after finished later still
			return victims, nil, next, nil
		}
		if len(victims) == limit || n == cleanBudget {
			return victims, resume, time.Time{}, nil
		}
		resume = e.position()
		age, _ := c.retentionOf(e.queue).limits(st)
		if excessive := over(e.queue) > 0; excessive {
			excess[e.queue]--
		} else if age <= 0 || at.Add(age).After(t.now) {
			if age > 0 {
				expires(at.Add(age))
			}
			continue
		}
		victims = append(victims, e)
	}
}

// retain deletes up to limit expired jobs of final state st, oldest first, from the
// position after, and returns where to resume (nil: done for now).
func (t *pgTxn) retain(st byte, after []byte, limit int) ([]byte, error) {
	victims, resume, _, err := t.retainPlan(st, after, limit)
	if err != nil {
		return nil, err
	}
	recs, err := t.lockFinished(st, victims)
	if err != nil {
		return nil, err
	}
	for _, v := range victims {
		if rec := recs[v.id]; rec != nil {
			if err := t.remove(v.id, rec); err != nil {
				return nil, fmt.Errorf("delete expired job %d: %w", v.id, err)
			}
		}
	}
	return resume, nil
}
