package jobrun

import (
	"bytes"
	"fmt"
	"time"

	"golang.org/x/time/rate"
)

// Concurrency keys. A job with a key (ConcurrencyKey) in a queue with key limits
// (WithKeyLimits) runs at most concurrency at once with the same key, and starts at
// most the key rate. The storage keeps the queue's ready index free of jobs that could
// not run: a key holds at most concurrency "slots" (its jobs in the ready index or
// running), counted in the keyslots bucket in the same transaction as every change,
// and its other ready jobs wait in the keywait bucket, in priority then FIFO order,
// until a slot frees. So a claim never steps over blocked jobs, and a busy key costs
// the queue's other keys nothing.
//
//	keywait   len(queue) ‖ queue ‖ len(key) ‖ key ‖ ^priority ‖ id → ∅
//	keyslots  len(queue) ‖ queue ‖ key → uint64
//
// A ready job's entry in the ready index holds its key as the value, so that a claim
// can ask the key's rate limiter without reading the record.

// keyLimit is a queue's per-key limits.
type keyLimit struct {
	concurrency int
	rate        rate.Limit // 0: none
	burst       int
}

// WithKeyLimits limits the jobs of queue that share a concurrency key (ConcurrencyKey,
// a customer or tenant ID): at most concurrency of them run at once, and, if limit is
// positive, they start at most limit per second per key with bursts of burst. Jobs
// with other keys, and jobs without a key, are not held up: concurrency 1 gives "one
// at a time per customer, in order". Key rate limiters live in memory; concurrency is
// counted in the file, so it holds across restarts. A handler abandoned at its Timeout
// because it ignores its context still counts against its key until it returns (or
// its process exits), so the limit holds even then.
func WithKeyLimits(queue string, concurrency int, limit rate.Limit, burst int) Option {
	return func(c *config) {
		if err := validateName("queue", queue); err != nil {
			c.err = err
			return
		}
		switch {
		case concurrency < 1:
			c.err = invalidf("key limits of queue %q: concurrency must be at least 1, got %d", queue, concurrency)
			return
		case limit < 0 || limit > 0 && limit != rate.Inf && burst < 1:
			c.err = invalidf("key limits of queue %q: rate must be 0 (none) or positive with a burst of at least 1, got %v/s burst %d",
				queue, float64(limit), burst)
			return
		}
		if c.keyLimits == nil {
			c.keyLimits = map[string]keyLimit{}
		}
		c.keyLimits[queue] = keyLimit{concurrency: concurrency, rate: limit, burst: burst}
	}
}

// ConcurrencyKey gives the job a concurrency key, limited per queue by WithKeyLimits.
// In a queue without key limits the key has no effect.
func ConcurrencyKey(key string) EnqueueOption {
	return func(o *enqueueOptions) {
		if err := validateKey("concurrency key", key); err != nil {
			o.err = err
			return
		}
		o.concKey = key
	}
}

// A handler abandoned at its timeout (it ignores its context) still runs, so its slot
// stays taken until it returns: the attempt's outcome moves the slot to the held
// bucket instead of freeing it, and the handler's return frees it. A process that
// dies meanwhile takes its handlers with it: the next open frees every held slot.

// holdSlot keeps the slot of job id, whose abandoned handler still runs.
func (t *txn) holdSlot(id ID, queue, key string) error {
	return t.held.Put(idKey(id), slotKey(queue, key))
}

// releaseHeld frees the slot an abandoned handler of job id held, once it returned.
func (t *txn) releaseHeld(id ID, res *cycleResult) error {
	if t.held == nil {
		return nil // a file of an earlier jobrun, opened without services: nothing held
	}
	queue, key, ok := parseSlotKey(t.held.Get(idKey(id)))
	if !ok {
		return nil
	}
	if err := t.held.Delete(idKey(id)); err != nil {
		return err
	}
	return t.releaseSlot(queue, key, res)
}

// releaseAllHeld frees the slots of handlers a process that exited had abandoned. It
// runs at open.
func (t *txn) releaseAllHeld() error {
	if t.held == nil {
		return nil
	}
	var ids []ID
	t.held.ForEach(func(k, _ []byte) error {
		if id, ok := parseIDKey(k); ok {
			ids = append(ids, id)
		}
		return nil
	})
	for _, id := range ids {
		if err := t.releaseHeld(id, nil); err != nil {
			return err
		}
	}
	return nil
}

// slotsOf returns how many slots of a key are held: its jobs in the ready index or
// running.
func (t *txn) slotsOf(queue, key string) int {
	n, _ := parseCount(t.keyslots.Get(slotKey(queue, key)))
	return int(n)
}

func (t *txn) setSlots(queue, key string, n int) error {
	if n <= 0 {
		return t.keyslots.Delete(slotKey(queue, key))
	}
	return t.keyslots.Put(slotKey(queue, key), countValue(int64(n)))
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
		return t.keywait.Put(waitKey(r.queue, r.concKey, r.priority, id), nil)
	}
	if err := t.setSlots(r.queue, r.concKey, slots+1); err != nil {
		return err
	}
	return t.addReady(id, r)
}

// releaseSlot frees the slot a keyed job held (it left the ready index or stopped
// running) and admits the key's next waiting jobs into the free slots.
func (t *txn) releaseSlot(queue, key string, res *cycleResult) error {
	slots := max(t.slotsOf(queue, key)-1, 0)
	if err := t.setSlots(queue, key, slots); err != nil {
		return err
	}
	return t.admitWaiting(queue, key, slots, res)
}

// admitWaiting moves a key's waiting jobs into the ready index while it has free
// slots.
func (t *txn) admitWaiting(queue, key string, slots int, res *cycleResult) error {
	limit := t.keyConcurrency(queue)
	prefix := waitPrefix(queue, key)
	c := t.keywait.Cursor()
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
		if err := t.keywait.Delete(k); err != nil {
			return err
		}
		_, _, prio, id, _ := parseWaitKey(k)
		if err := t.ready.Put(readyKey(queue, prio, id), []byte(key)); err != nil {
			return err
		}
		if res != nil {
			res.touched[queue] = true
		}
	}
	if len(admit) == 0 {
		return nil
	}
	return t.setSlots(queue, key, slots+len(admit))
}

// leaveReady removes a ready job from the ready index or its key's waiting line,
// freeing its slot if it held one.
func (t *txn) leaveReady(id ID, r *record, res *cycleResult) error {
	rk := readyKey(r.queue, r.priority, id)
	if r.concKey == "" || t.ready.Get(rk) != nil {
		if err := t.ready.Delete(rk); err != nil {
			return err
		}
		if r.concKey != "" {
			return t.releaseSlot(r.queue, r.concKey, res)
		}
		return nil
	}
	return t.keywait.Delete(waitKey(r.queue, r.concKey, r.priority, id))
}

// admitAll fills every key's free slots from its waiting line, for a runner whose key
// limits grew since the jobs were stored. It runs once at open.
func (t *txn) admitAll() error {
	type line struct{ queue, key string }
	var lines []line
	c := t.keywait.Cursor()
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
		if err := t.admitWaiting(l.queue, l.key, t.slotsOf(l.queue, l.key), nil); err != nil {
			return fmt.Errorf("admit waiting jobs of key %q in queue %s: %w", l.key, l.queue, err)
		}
	}
	return nil
}

// keyLimiters holds the in-memory rate limiters of concurrency keys.
type keyLimiters struct {
	m map[string]*rate.Limiter
}

// maxKeyLimiters bounds the map; beyond it, limiters that are full again (the key was
// idle long enough to regain its burst) are dropped, which changes nothing.
const maxKeyLimiters = 10000

// allow takes a token of the key's limiter, or reports when one will be available.
func (kl *keyLimiters) allow(queue, key string, lim keyLimit, now time.Time) (bool, time.Time) {
	if lim.rate <= 0 || lim.rate == rate.Inf {
		return true, time.Time{}
	}
	if kl.m == nil {
		kl.m = map[string]*rate.Limiter{}
	}
	id := queue + "\x00" + key
	l := kl.m[id]
	if l == nil {
		if len(kl.m) >= maxKeyLimiters {
			for k, old := range kl.m {
				if old.TokensAt(now) >= float64(old.Burst()) {
					delete(kl.m, k)
				}
			}
		}
		l = rate.NewLimiter(lim.rate, lim.burst)
		kl.m[id] = l
	}
	rv := l.ReserveN(now, 1)
	if d := rv.DelayFrom(now); !rv.OK() || d > 0 {
		rv.CancelAt(now)
		if !rv.OK() {
			return false, time.Time{}
		}
		return false, now.Add(d)
	}
	return true, time.Time{}
}
