package client

import (
	"maps"
	"time"

	"github.com/jobrun/jobrun/internal/wire"
)

// EnqueueOption sets a property of a job to enqueue; pass them to Client.Enqueue.
// Each is the jobrun option of the same name, sent in the request's JSON: the
// application's Runner.Enqueue applies and checks it, with the kind's defaults
// beneath, so that a value jobrun refuses (a negative delay, an empty queue name)
// comes back as an error wrapping jobrun.ErrInvalid.
type EnqueueOption func(*wire.Options)

// Queue is [jobrun.Queue]: the job goes to the named queue. Default: the kind's,
// else jobrun.DefaultQueue.
func Queue(name string) EnqueueOption {
	return func(o *wire.Options) { o.Queue = name }
}

// Priority is [jobrun.Priority]: higher runs first within the queue. Default: the
// kind's, else 0.
func Priority(p int) EnqueueOption {
	return func(o *wire.Options) { o.Priority = &p }
}

// MaxAttempts is [jobrun.MaxAttempts]: how many times the job may run, the first
// run included. Default: the kind's, else 25.
func MaxAttempts(n int) EnqueueOption {
	return func(o *wire.Options) { o.MaxAttempts = &n }
}

// Delay is [jobrun.Delay]: the job is due d after it is enqueued. It replaces an
// earlier At.
func Delay(d time.Duration) EnqueueOption {
	return func(o *wire.Options) { o.Delay, o.RunAt = d.String(), "" }
}

// At is [jobrun.At]: the job is due at t; a time in the past means now. It replaces
// an earlier Delay.
func At(t time.Time) EnqueueOption {
	return func(o *wire.Options) { o.RunAt, o.Delay = t.Format(time.RFC3339Nano), "" }
}

// Timeout is [jobrun.Timeout]: each attempt's context is canceled after d.
func Timeout(d time.Duration) EnqueueOption {
	return func(o *wire.Options) { o.Timeout = d.String() }
}

// Backoff is [jobrun.Backoff]: the delays between attempts, min after the first
// failure doubling up to max.
func Backoff(min, max time.Duration) EnqueueOption {
	return func(o *wire.Options) { o.Backoff = &wire.Backoff{Min: min.String(), Max: max.String()} }
}

// Jitter is [jobrun.Jitter]: the randomization of the retry delays, from 0 to 1.
func Jitter(f float64) EnqueueOption {
	return func(o *wire.Options) { o.Jitter = &f }
}

// UniqueKey is [jobrun.UniqueKey]: one unfinished job per kind and key; Enqueue of
// another returns the existing job's ID with an error wrapping jobrun.ErrDuplicate.
// It replaces an earlier Throttle or Debounce, which set the same key.
func UniqueKey(key string) EnqueueOption {
	return func(o *wire.Options) { o.UniqueKey, o.Throttle, o.Debounce = key, nil, nil }
}

// Throttle is [jobrun.Throttle]: one job per kind and key per period. It replaces
// an earlier UniqueKey or Debounce.
func Throttle(key string, period time.Duration) EnqueueOption {
	return func(o *wire.Options) {
		o.UniqueKey, o.Throttle, o.Debounce = "", &wire.KeyPeriod{Key: key, Period: period.String()}, nil
	}
}

// Debounce is [jobrun.Debounce]: the job waits d, and an Enqueue with the same
// kind and key meanwhile gives it the new args and waits again, returning its ID.
// It replaces an earlier UniqueKey or Throttle.
func Debounce(key string, d time.Duration) EnqueueOption {
	return func(o *wire.Options) {
		o.UniqueKey, o.Throttle, o.Debounce = "", nil, &wire.KeyPeriod{Key: key, Period: d.String()}
	}
}

// ConcurrencyKey is [jobrun.ConcurrencyKey]: the key the queue's key limits
// (WithKeyLimits) count.
func ConcurrencyKey(key string) EnqueueOption {
	return func(o *wire.Options) { o.ConcurrencyKey = key }
}

// Tags is [jobrun.Tags]: labels that List finds the job by. Tags add up, with each
// other and with the kind's.
func Tags(tags ...string) EnqueueOption {
	return func(o *wire.Options) { o.Tags = append(o.Tags, tags...) }
}

// PriorityFrom is [jobrun.PriorityFrom]: the priority is the integer at field (a
// dotted path) of the args.
func PriorityFrom(field string) EnqueueOption {
	return func(o *wire.Options) { o.PriorityFrom = field }
}

// CancelOn is [jobrun.CancelOn]: the job is canceled when an event called event
// arrives whose data has field equal to the args' field. CancelOn options add up.
func CancelOn(event, field string) EnqueueOption {
	return func(o *wire.Options) { o.CancelOn = append(o.CancelOn, wire.CancelOn{Event: event, Field: field}) }
}

// OnFailure is [jobrun.OnFailure]: a job that fails for good enqueues a job of kind,
// with opts, whose args are a jobrun.Failure naming it.
func OnFailure(kind string, opts ...EnqueueOption) EnqueueOption {
	return func(o *wire.Options) {
		f := &wire.OnFailure{Kind: kind}
		for _, opt := range opts {
			opt(&f.Options)
		}
		o.OnFailure = f
	}
}

// Metadata is [jobrun.Metadata]: small string pairs that travel with the job. Pairs
// add up, with each other and with the kind's and the enqueue hooks', a later value
// replacing an earlier one of the same key.
func Metadata(kv map[string]string) EnqueueOption {
	return func(o *wire.Options) {
		if o.Metadata == nil {
			o.Metadata = make(map[string]string, len(kv))
		}
		maps.Copy(o.Metadata, kv)
	}
}
