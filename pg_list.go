package jobrun

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/jobrun/jobrun/internal/sqldb"
)

// list reads a page of jobs matching f with one query, in the order of a sort key
// of three integers that the state picks (pgListOrder), resuming after the key the
// cursor holds: the bbolt store's orders, read from the jobs table's indexes.
func (t *pgTxn) list(f Filter, st byte, limit int, cursor []byte) ([]*Info, []byte, error) {
	var after [3]int64
	if cursor != nil {
		if len(cursor) != 24 {
			return nil, nil, invalidf("malformed cursor")
		}
		for i := range after {
			after[i] = int64(binary.BigEndian.Uint64(cursor[8*i:]))
		}
	}
	where, args := []string{"true"}, []any{}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Queue != "" {
		where = append(where, "queue = "+arg(f.Queue))
	}
	if f.Kind != "" {
		where = append(where, "kind = "+arg(f.Kind))
	}
	if f.Tag != "" {
		// The tags index holds the jobs that have tags: a job's every write would
		// otherwise add an entry for its empty list too.
		where = append(where, "cardinality(tags) > 0 AND tags @> ARRAY["+arg(f.Tag)+"]::text[]")
	}
	key := pgListOrder(st)
	switch {
	case st == stRunning:
		where = append(where, "claim = 2")
	case st == stReady:
		where = append(where, "state = 2 AND claim < 2")
	case st != 0:
		where = append(where, "state = "+arg(int16(st))+" AND claim = 0")
	}
	cmp, dir := ">", ""
	if !f.Oldest {
		cmp, dir = "<", " DESC"
	}
	if cursor != nil {
		where = append(where, "("+key+") "+cmp+" ("+arg(after[0])+"::bigint, "+arg(after[1])+"::bigint, "+arg(after[2])+"::bigint)")
	}
	keys := strings.Split(key, ", ")
	order := strings.Join(keys, dir+", ") + dir
	stmt := `SELECT id, claim, started_at, rec, ` + key + ` FROM {s}.jobs WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY ` + order + ` LIMIT ` + arg(limit+1)
	var jobs []*Info
	var next []byte
	var last [3]int64
	scanned := 0
	err := scanRows(t.query(stmt, args...), func(rows sqldb.Rows) error {
		var id int64
		var claim int16
		var startedAt int64
		var raw []byte
		var k [3]int64
		if err := rows.Scan(&id, &claim, &startedAt, &raw, &k[0], &k[1], &k[2]); err != nil {
			return err
		}
		if scanned++; scanned > limit {
			// There is more: the next page begins after the last row of this one.
			next = make([]byte, 0, 24)
			for _, v := range last {
				next = binary.BigEndian.AppendUint64(next, uint64(v))
			}
			return nil
		}
		last = k
		rec, err := decodeRecord(raw)
		if err != nil {
			return nil // a row without a readable record: quarantined when claimed or promoted
		}
		in := rec.info(ID(id))
		if claim == int16(pgStarted) {
			in.State = StateRunning
			in.Attempt++
			in.StartedAt = pgTime(startedAt)
		}
		jobs = append(jobs, &in)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return jobs, next, nil
}

// pgListOrder is the sort key of a list of state st (0: every job), as SQL.
func pgListOrder(st byte) string {
	switch {
	case st == stReady:
		// Claimed jobs waiting to start, jobs that can run, jobs waiting for a key slot.
		return "(CASE WHEN claim > 0 THEN 0 WHEN lane = 1 THEN 1 ELSE 2 END)::bigint, -priority, id"
	case st == stScheduled || st == stRetrying:
		return "0::bigint, run_at, id"
	case final(st):
		return "0::bigint, finished_at, id"
	}
	return "0::bigint, 0::bigint, id"
}
