package jobrun

import (
	"time"

	"github.com/jobrun/jobrun/internal/sqldb"
)

// The history of a PostgreSQL store, as bolt_history.go keeps it: a row per minute
// and queue, holding the bbolt store's encoding of the point's counts.

func (t *pgTxn) history(queue string, since time.Time) ([]HistoryPoint, error) {
	stmt, args := `SELECT minute, queue, data FROM {s}.history WHERE minute >= $1 ORDER BY minute, queue`,
		[]any{unixMinute(since)}
	if queue != "" {
		stmt = `SELECT minute, queue, data FROM {s}.history WHERE minute >= $1 AND queue = $2 ORDER BY minute`
		args = append(args, queue)
	}
	var out []HistoryPoint
	err := scanRows(t.query(stmt, args...), func(rows sqldb.Rows) error {
		var minute int64
		var q string
		var data []byte
		if err := rows.Scan(&minute, &q, &data); err != nil {
			return err
		}
		p, ok := parseHistoryValue(data)
		if !ok {
			return nil // a damaged point costs its minute of a chart, nothing else
		}
		p.Queue, p.Minute = q, minuteTime(minute)
		out = append(out, p)
		return nil
	})
	return out, err
}

// addHistory adds each point's counts to the stored point of its minute and queue,
// sets its Ready from the queue's counter as of this transaction, and deletes up to
// limit points of minutes before before.
func (t *pgTxn) addHistory(points []HistoryPoint, before time.Time, limit int) error {
	if len(points) > 0 {
		if err := t.addPoints(points); err != nil {
			return err
		}
	}
	return t.exec(`DELETE FROM {s}.history WHERE (minute, queue) IN
		(SELECT minute, queue FROM {s}.history WHERE minute < $1 ORDER BY minute, queue LIMIT $2)`,
		unixMinute(before), limit)
}

// addPoints is addHistory's adding, in three statements for any number of points.
func (t *pgTxn) addPoints(points []HistoryPoint) error {
	var minutes []int64
	var queues []string
	index := map[minuteOf]int{} // a point's row in minutes and queues
	for _, p := range points {
		k := minuteOf{unixMinute(p.Minute), p.Queue}
		if _, ok := index[k]; !ok {
			index[k] = len(minutes)
			minutes, queues = append(minutes, k.minute), append(queues, k.queue)
		}
	}
	// Every point's row is locked, a missing one inserted empty, and its stored
	// counts read: another process adding to the same minute and queue waits for
	// this transaction, then adds to its sum.
	datas := make([][]byte, len(minutes))
	err := scanRows(t.query(`INSERT INTO {s}.history AS h (minute, queue, data)
			SELECT minute, queue, ''::bytea FROM unnest($1::bigint[], $2::text[]) AS p(minute, queue)
			ON CONFLICT (minute, queue) DO UPDATE SET data = h.data
			RETURNING minute, queue, data`, minutes, queues),
		func(rows sqldb.Rows) error {
			var k minuteOf
			var data []byte
			if err := rows.Scan(&k.minute, &k.queue, &data); err != nil {
				return err
			}
			datas[index[k]] = data
			return nil
		})
	if err != nil {
		return err
	}
	ready, err := t.stateCounts(stReady)
	if err != nil {
		return err
	}
	for i := range points {
		p := &points[i]
		j := index[minuteOf{unixMinute(p.Minute), p.Queue}]
		if old, ok := parseHistoryValue(datas[j]); ok {
			p.add(&old)
		}
		p.Ready = ready[p.Queue]
		datas[j] = historyValue(p) // a second point of the key adds to this one
	}
	return t.exec(`UPDATE {s}.history h SET data = v.data
		FROM unnest($1::bigint[], $2::text[], $3::bytea[]) AS v(minute, queue, data)
		WHERE h.minute = v.minute AND h.queue = v.queue`, minutes, queues, datas)
}
