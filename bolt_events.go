package jobrun

import (
	"bytes"
	"fmt"
	"math"
	"time"

	"go.etcd.io/bbolt"
)

// Sent events live in the events bucket by Seq, which is also the order they were
// sent in, so retention deletes from the front; the eventnames index lists a name's
// events, and eventids holds each event ID's first event for the dedup window:
//
//	events      seq (8 B) → event (event.go)
//	eventnames  len(name) ‖ name ‖ seq → ∅
//	eventids    event ID → seq (8 B) ‖ sent-at (8 B Unix ns)

func (t *txn) sendEvent(se *storedEvent, runs []*record, dedup time.Duration) error {
	evs := t.bucket(bEvents)
	seq, err := evs.NextSequence()
	if err != nil {
		return err
	}
	se.seq, se.at, se.runs, se.dupOf = seq, t.now, nil, 0
	if se.id != "" {
		ids := t.bucket(bEventIDs)
		first, at, held := parseEventIDValue(ids.Get([]byte(se.id)))
		if held && t.now.Before(at.Add(dedup)) {
			se.dupOf = first
			if fe, err := t.event(first); err == nil {
				se.runs = fe.runs
			}
			runs = nil
		} else if err := ids.Put([]byte(se.id), eventIDValue(seq, t.now)); err != nil {
			return err
		}
	}
	for _, rec := range runs {
		rec.event = seq
		ins, err := t.enqueue(rec)
		if err != nil {
			return fmt.Errorf("run of %s: %w", rec.kind, err)
		}
		se.runs = append(se.runs, ins.id)
	}
	if err := evs.Put(eventKey(seq), se.encode()); err != nil {
		return err
	}
	if err := t.bucket(bEventNames).Put(eventNameKey(se.name, seq), nil); err != nil {
		return err
	}
	if se.dupOf != 0 {
		return nil // a duplicate wakes no wait and cancels nothing, as it starts no run
	}
	if err := t.cancelMatching(se); err != nil {
		return err
	}
	return t.wakeWaiters(se)
}

func (t *txn) event(seq uint64) (*storedEvent, error) {
	b := t.bucket(bEvents)
	if b == nil {
		return nil, ErrNotFound // a file from before events, opened read-only
	}
	v := b.Get(eventKey(seq))
	if v == nil {
		return nil, ErrNotFound
	}
	return decodeEvent(seq, v)
}

// events reads up to limit events, of name if it is not "", newest first unless
// oldest, from Seq from (0: the newest or oldest), and returns the Seq where the next
// page begins (0 after the last).
func (t *txn) events(name string, oldest bool, from uint64, limit int) ([]*storedEvent, uint64, error) {
	index, prefix := t.bucket(bEvents), []byte(nil)
	start := eventKey(from)
	if name != "" {
		index, prefix = t.bucket(bEventNames), queuePrefix(name)
		start = eventNameKey(name, from)
	}
	if index == nil {
		return nil, 0, nil
	}
	if from == 0 && !oldest {
		if name == "" {
			start = eventKey(math.MaxUint64)
		} else {
			start = eventNameKey(name, math.MaxUint64)
		}
	}
	seqOf := func(k []byte) (uint64, bool) {
		if name == "" {
			return parseEventKey(k)
		}
		n, seq, ok := parseEventNameKey(k)
		return seq, ok && n == name
	}
	c := index.Cursor()
	k, _ := c.Seek(start)
	if !oldest && !bytes.Equal(k, start) {
		k, _ = c.Prev()
	}
	step := c.Next
	if !oldest {
		step = c.Prev
	}
	var out []*storedEvent
	for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = step() {
		seq, ok := seqOf(k)
		if !ok {
			continue
		}
		if len(out) == limit {
			return out, seq, nil
		}
		se, err := t.event(seq)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, se)
	}
	return out, 0, nil
}

// eventsDue reports whether retention has events to delete and, if not, when it
// will (zero: no event expires, as things stand).
func (t *txn) eventsDue() (bool, time.Time) {
	b := t.bucket(bEvents)
	if b == nil || t.cfg.eventKeep < 0 {
		return false, time.Time{}
	}
	k, v := b.Cursor().First()
	if k == nil {
		return false, time.Time{}
	}
	seq, _ := parseEventKey(k)
	se, err := decodeEvent(seq, v)
	if err != nil {
		return true, time.Time{} // retainEvents deletes what it cannot read
	}
	expires := se.at.Add(t.cfg.eventKeep)
	return !t.now.Before(expires), expires
}

// retainEvents deletes up to limit of the oldest events that retention expired,
// with their index entries.
func (t *txn) retainEvents(limit int) error {
	b := t.bucket(bEvents)
	if b == nil || t.cfg.eventKeep < 0 {
		return nil
	}
	var victims []*storedEvent
	c := b.Cursor()
	for k, v := c.First(); k != nil && len(victims) < limit; k, v = c.Next() {
		seq, ok := parseEventKey(k)
		if !ok {
			continue
		}
		se, err := decodeEvent(seq, v)
		if err != nil {
			se = &storedEvent{seq: seq} // unreadable: deleted, its index entries left to the name scan
		} else if t.now.Before(se.at.Add(t.cfg.eventKeep)) {
			break
		}
		victims = append(victims, se)
	}
	ids := t.bucket(bEventIDs)
	for _, se := range victims {
		if err := b.Delete(eventKey(se.seq)); err != nil {
			return err
		}
		if se.name != "" {
			if err := t.bucket(bEventNames).Delete(eventNameKey(se.name, se.seq)); err != nil {
				return err
			}
		}
		if se.id != "" {
			if first, _, ok := parseEventIDValue(ids.Get([]byte(se.id))); ok && first == se.seq {
				if err := ids.Delete([]byte(se.id)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// sendTx is Send's write inside the application's transaction tx.
func (s *boltStore) sendTx(tx *bbolt.Tx, now time.Time, se *storedEvent, runs []*record, dedup time.Duration) ([]jobChange, error) {
	return s.inTx(tx, now, func(t *txn) error { return t.sendEvent(se, runs, dedup) })
}

func (t *txn) functions() ([]*storedFunction, error) {
	b := t.bucket(bFunctions)
	if b == nil {
		return nil, nil
	}
	var out []*storedFunction
	err := b.ForEach(func(k, v []byte) error {
		f, err := decodeFunction(string(k), v)
		if err != nil {
			return err
		}
		out = append(out, f)
		return nil
	})
	return out, err
}

func (t *txn) putFunctions(fns []*storedFunction) error {
	b := t.bucket(bFunctions)
	var old [][]byte
	if err := b.ForEach(func(k, _ []byte) error { old = append(old, bytes.Clone(k)); return nil }); err != nil {
		return err
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	for _, f := range fns {
		if err := b.Put([]byte(f.kind), f.encode()); err != nil {
			return err
		}
	}
	return nil
}
