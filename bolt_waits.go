package jobrun

import (
	"bytes"
	"slices"
)

// A job suspended in WaitFor has its wait step in the steps bucket, like any step,
// and an entry in the eventwaits index under the event's name, the field its data
// must have and the value, so that an event finds the jobs waiting for it by a
// lookup per field awaited on its name:
//
//	eventwaits  len(name) ‖ name ‖ len(field) ‖ field ‖ len(value) (2 B) ‖ value ‖ id → step key
//
// The entry goes when the wait ends: an event received, its timeout stored
// (saveStep), or the job removed.

// suspendWait stores the wait step s of job id (record rec), which leaves its worker
// now, with its index entry; unless an event it takes was sent since it was reached (the
// lookback), which it receives at once: the step returned is then done, due now.
func (t *txn) suspendWait(id ID, rec *record, s *step) (*step, error) {
	if se, err := t.sentSince(s, rec.event); err != nil || se != nil {
		if err != nil {
			return nil, err
		}
		return received(s, se, t.now), nil
	}
	return s, t.bucket(bEventWaits).Put(eventWaitKey(s.waitEvent, s.waitField, s.waitValue, id), []byte(s.key))
}

// sentSince finds the first event sent since the wait step s could have been
// reached (s.since: the end of the run's previous step, or its creation) that it
// takes, but own, the event that started the run, and the events its earlier steps
// received or sent (s.seen), reading the events of its name newest first down
// to that time (and lookbackSkew before it, for the times out of order).
func (t *txn) sentSince(s *step, own uint64) (*storedEvent, error) {
	since := s.since
	if since.IsZero() {
		since = s.startedAt
	}
	prefix := queuePrefix(s.waitEvent)
	c := t.bucket(bEventNames).Cursor()
	var found *storedEvent
	k, _ := c.Seek(eventNameKey(s.waitEvent, ^uint64(0)))
	if k == nil || !bytes.Equal(k, eventNameKey(s.waitEvent, ^uint64(0))) {
		k, _ = c.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
		_, seq, ok := parseEventNameKey(k)
		if !ok {
			continue
		}
		se, err := t.event(seq)
		if err != nil {
			return nil, err
		}
		if se.at.Before(since.Add(-lookbackSkew)) {
			break
		}
		if !se.at.Before(since) && se.seq != own && !slices.Contains(s.seen, se.seq) && se.dupOf == 0 && takes(s, se) {
			found = se // the earliest one wins: keep going back
		}
	}
	return found, nil
}

// endWait takes a wait step out of the index.
func (t *txn) endWait(id ID, s *step) error {
	if b := t.bucket(bEventWaits); b != nil {
		return b.Delete(eventWaitKey(s.waitEvent, s.waitField, s.waitValue, id))
	}
	return nil
}

// wakeWaiters ends the waits that event se takes: each job waiting for it gets the
// event as its wait step's result and becomes ready.
func (t *txn) wakeWaiters(se *storedEvent) error {
	for _, m := range t.matching(bEventWaits, se) {
		if err := t.wake(m.id, string(m.value), m.key, se); err != nil {
			return err
		}
	}
	return nil
}

// cancelMatching cancels the jobs that event se cancels (CancelOn).
func (t *txn) cancelMatching(se *storedEvent) error {
	for _, m := range t.matching(bEventCancels, se) {
		if rec, err := t.get(m.id); err == nil && rec.event == se.seq {
			continue // a run the event itself starts
		}
		if err := t.bucket(bEventCancels).Delete(m.key); err != nil {
			return err
		}
		if err := t.cancelJob(m.id); err != nil {
			return err
		}
	}
	return nil
}

// indexMatch is an entry of the eventwaits or eventcancels index that an event matched.
type indexMatch struct {
	id    ID
	key   []byte
	value []byte
}

// matching finds the entries of index i (eventwaits or eventcancels) that event se
// matches: one range read per field awaited on the event's name, skipping from one
// field to the next.
func (t *txn) matching(i int, se *storedEvent) []indexMatch {
	b := t.bucket(i)
	prefix := queuePrefix(se.name)
	data := &jsonFields{data: se.data}
	var found []indexMatch
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); {
		_, field, _, _, ok := parseEventWaitKey(k)
		if !ok {
			k, _ = c.Next()
			continue
		}
		value, has := []byte(nil), true
		if field != "" {
			value, has = data.value(field)
		}
		if has {
			at := eventWaitPrefix(se.name, field, value)
			for k, v := c.Seek(at); k != nil && bytes.HasPrefix(k, at); k, v = c.Next() {
				if len(k) == len(at)+8 {
					found = append(found, indexMatch{id: keyID(k), key: bytes.Clone(k), value: bytes.Clone(v)})
				}
			}
		}
		k, _ = c.Seek(nextWaitField(se.name, field))
	}
	return found
}

// unindexCancels takes a job's CancelOn entries out of their index.
func (t *txn) unindexCancels(id ID, rec *record) error {
	b := t.bucket(bEventCancels)
	if b == nil {
		return nil
	}
	for _, c := range rec.cancelOn {
		if err := b.Delete(eventWaitKey(c.event, c.field, c.value, id)); err != nil {
			return err
		}
	}
	return nil
}

// cancelJob cancels job id unless it has ended: a waiting one at once, a claimed one
// through its record and the engine, which stops its handler.
func (t *txn) cancelJob(id ID) error {
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
func (t *txn) enqueueFailure(id ID, rec *record) error {
	f, err := decodeRecord(rec.onFailure)
	if err != nil {
		return nil // an unreadable template: the failure stands, with nothing to enqueue
	}
	f.args, f.createdAt, f.runAt = failureArgs(id, rec), t.now, t.now
	_, err = t.enqueue(f)
	return err
}

// wake ends job id's wait in step key, whose index entry is at, with event se, if
// the job still waits in it; an entry whose job moved on (its timeout came) stays
// until the job stores the timeout.
func (t *txn) wake(id ID, key string, at []byte, se *storedEvent) error {
	rec, err := t.get(id)
	if err != nil || rec.state != stScheduled {
		return nil // gone, unreadable (quarantined by the reads that need it) or not waiting
	}
	v := t.bucket(bSteps).Get(stepKey(id, key))
	if v == nil {
		return nil
	}
	s, err := decodeStep(key, v)
	if err != nil || s.state != stepWait {
		return nil
	}
	if err := t.bucket(bEventWaits).Delete(at); err != nil {
		return err
	}
	if err := t.bucket(bSteps).Put(stepKey(id, key), received(s, se, t.now).encode()); err != nil {
		return err
	}
	_, err = t.apply(id, rec, ending{outcome: outcomeDue})
	return err
}
