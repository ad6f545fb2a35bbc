package jobrun

import (
	"bytes"
	"time"
)

// history reads the points of queue ("" for every queue) from since's minute on,
// oldest first, and for one minute in queue-name order.
func (t *txn) history(queue string, since time.Time) ([]HistoryPoint, error) {
	b := t.bucket(bHistory)
	if b == nil {
		return nil, nil // a file of an earlier jobrun, opened read-only
	}
	var out []HistoryPoint
	c := b.Cursor()
	for k, v := c.Seek(historyKey(unixMinute(since), "")); k != nil; k, v = c.Next() {
		minute, q, ok := parseHistoryKey(k)
		if !ok || queue != "" && q != queue {
			continue
		}
		p, ok := parseHistoryValue(v)
		if !ok {
			continue // a damaged point costs its minute of a chart, nothing else
		}
		p.Queue, p.Minute = q, minuteTime(minute)
		out = append(out, p)
	}
	return out, nil
}

// addHistory adds each point's counts to the stored point of its minute and queue,
// sets its Ready from the queue's counter as of this transaction, and deletes up to
// limit points of minutes before before.
func (t *txn) addHistory(points []HistoryPoint, before time.Time, limit int) error {
	b := t.bucket(bHistory)
	for i := range points {
		p := &points[i]
		k := historyKey(unixMinute(p.Minute), p.Queue)
		if old, ok := parseHistoryValue(b.Get(k)); ok {
			p.add(&old)
		}
		p.Ready = t.queueCounts(p.Queue)[StateReady]
		if err := b.Put(k, historyValue(p)); err != nil {
			return err
		}
	}
	end := historyKey(unixMinute(before), "")
	var expired [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil && len(expired) < limit && bytes.Compare(k, end) < 0; k, _ = c.Next() {
		expired = append(expired, bytes.Clone(k))
	}
	for _, k := range expired {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
