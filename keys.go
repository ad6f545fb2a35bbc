package jobrun

import (
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
