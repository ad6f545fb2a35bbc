package jobrun

import (
	"bytes"
	"fmt"
)

// holdSlot keeps the slot of job id, whose abandoned handler still runs.
func (t *txn) holdSlot(id ID, queue, key string) error {
	return t.held().Put(idKey(id), slotKey(queue, key))
}

// releaseHeld frees the slot an abandoned handler of job id held, once it returned.
func (t *txn) releaseHeld(id ID) error {
	if t.held() == nil {
		return nil // a file of an earlier jobrun, opened without services: nothing held
	}
	queue, key, ok := parseSlotKey(t.held().Get(idKey(id)))
	if !ok {
		return nil
	}
	if err := t.held().Delete(idKey(id)); err != nil {
		return err
	}
	return t.releaseSlot(queue, key)
}

// releaseAllHeld frees the slots of handlers a process that exited had abandoned. It
// runs at open.
func (t *txn) releaseAllHeld() error {
	if t.held() == nil {
		return nil
	}
	var ids []ID
	t.held().ForEach(func(k, _ []byte) error {
		if id, ok := parseIDKey(k); ok {
			ids = append(ids, id)
		}
		return nil
	})
	for _, id := range ids {
		if err := t.releaseHeld(id); err != nil {
			return err
		}
	}
	return nil
}

// slotsOf returns how many slots of a key are held: its jobs in the ready index or
// running.
func (t *txn) slotsOf(queue, key string) int {
	n, _ := parseCount(t.keyslots().Get(slotKey(queue, key)))
	return int(n)
}

func (t *txn) setSlots(queue, key string, n int) error {
	if n <= 0 {
		return t.keyslots().Delete(slotKey(queue, key))
	}
	return t.keyslots().Put(slotKey(queue, key), countValue(int64(n)))
}

// keyConcurrency is the number of slots of a key in queue, 0 if not limited.
func (t *txn) keyConcurrency(queue string) int {
	if t.cfg == nil {
		return 0
	}
	return t.cfg.keyLimits[queue].concurrency
}

// enterReady makes a job that was not ready or running ready: in the ready index, or
// for a keyed job whose key has no free slot, in its key's waiting line.
func (t *txn) enterReady(id ID, r *record) error {
	if r.concKey == "" {
		return t.addReady(id, r)
	}
	slots := t.slotsOf(r.queue, r.concKey)
	if n := t.keyConcurrency(r.queue); n > 0 && slots >= n {
		return t.keywait().Put(waitKey(r.queue, r.concKey, r.priority, id), nil)
	}
	if err := t.setSlots(r.queue, r.concKey, slots+1); err != nil {
		return err
	}
	return t.addReady(id, r)
}

// releaseSlot frees the slot a keyed job held (it left the ready index or stopped
// running) and admits the key's next waiting jobs into the free slots.
func (t *txn) releaseSlot(queue, key string) error {
	slots := max(t.slotsOf(queue, key)-1, 0)
	if err := t.setSlots(queue, key, slots); err != nil {
		return err
	}
	return t.admitWaiting(queue, key, slots)
}

// admitWaiting moves a key's waiting jobs into the ready index while it has free
// slots.
func (t *txn) admitWaiting(queue, key string, slots int) error {
	limit := t.keyConcurrency(queue)
	prefix := waitPrefix(queue, key)
	c := t.keywait().Cursor()
	var admit [][]byte
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if _, wkey, _, _, ok := parseWaitKey(k); !ok || wkey != key {
			break
		}
		if limit > 0 && slots+len(admit) >= limit {
			break
		}
		admit = append(admit, bytes.Clone(k))
	}
	for _, k := range admit {
		if err := t.keywait().Delete(k); err != nil {
			return err
		}
		_, _, prio, id, _ := parseWaitKey(k)
		if err := t.ready().Put(readyKey(queue, prio, id), []byte(key)); err != nil {
			return err
		}
		t.log(jobChange{what: changeAdmitted, id: id, queue: queue, from: stReady, to: stReady})
	}
	if len(admit) == 0 {
		return nil
	}
	return t.setSlots(queue, key, slots+len(admit))
}

// leaveReady removes a ready job from the ready index or its key's waiting line,
// freeing its slot if it held one.
func (t *txn) leaveReady(id ID, r *record) error {
	rk := readyKey(r.queue, r.priority, id)
	if r.concKey == "" || t.ready().Get(rk) != nil {
		if err := t.ready().Delete(rk); err != nil {
			return err
		}
		if r.concKey != "" {
			return t.releaseSlot(r.queue, r.concKey)
		}
		return nil
	}
	return t.keywait().Delete(waitKey(r.queue, r.concKey, r.priority, id))
}

// admitAll fills every key's free slots from its waiting line, for a runner whose key
// limits grew since the jobs were stored. It runs once at open.
func (t *txn) admitAll() error {
	type line struct{ queue, key string }
	var lines []line
	c := t.keywait().Cursor()
	for k, _ := c.First(); k != nil; {
		q, key, _, _, ok := parseWaitKey(k)
		if !ok {
			k, _ = c.Next() // not a waiting job's key
			continue
		}
		lines = append(lines, line{q, key})
		k, _ = c.Seek(prefixEnd(waitPrefix(q, key)))
	}
	for _, l := range lines {
		if err := t.admitWaiting(l.queue, l.key, t.slotsOf(l.queue, l.key)); err != nil {
			return fmt.Errorf("admit waiting jobs of key %q in queue %s: %w", l.key, l.queue, err)
		}
	}
	return nil
}
