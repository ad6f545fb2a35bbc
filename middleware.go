package jobrun

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"unicode/utf8"
)

// Bounds of a job's metadata: it travels with every read of the job's record, so it
// is meant for a trace context, a request ID, a tenant, not for payloads (args).
const (
	maxMetadataEntries = 64
	maxMetadataSize    = 8 << 10 // keys and values together
)

// Metadata adds key-value pairs to the job's metadata: small strings that travel
// with the job, stored in its record, returned by Get (Info.Metadata), shown by the
// dashboard and the jobrun command, and seen by middleware and the handler. It is
// the place for what crosses the queue with a job without being its args: a trace
// context (see the otel subpackage), a request ID, the user who asked. Pairs given to
// Handle as defaults, to Enqueue and by enqueue hooks (WithEnqueueHook) add up, a
// later value replacing an earlier one of the same key. Keys are names (1 to 255
// bytes of valid UTF-8, no control characters, no white space at either end),
// values valid UTF-8; a job has at most 64 pairs and 8 KiB of them.
func Metadata(kv map[string]string) EnqueueOption {
	return func(o *enqueueOptions) {
		if o.metadata == nil && len(kv) > 0 {
			o.metadata = make(map[string]string, len(kv))
		}
		maps.Copy(o.metadata, kv)
		if err := validateMetadata(o.metadata); err != nil {
			o.err = err
		}
	}
}

// validateMetadata checks a job's metadata against the rules Metadata states.
func validateMetadata(md map[string]string) error {
	if len(md) > maxMetadataEntries {
		return invalidf("%d metadata entries; a job has at most %d", len(md), maxMetadataEntries)
	}
	size := 0
	for _, k := range slices.Sorted(maps.Keys(md)) {
		if err := validateName("metadata key", k); err != nil {
			return err
		}
		v := md[k]
		if !utf8.ValidString(v) {
			return invalidf("metadata value of %s is not valid UTF-8", quoted(k))
		}
		size += len(k) + len(v)
	}
	if size > maxMetadataSize {
		return invalidf("metadata of %d bytes; a job has at most %d", size, maxMetadataSize)
	}
	return nil
}

// WithEnqueueHook calls fn for every job about to be stored by a caller: Enqueue,
// EnqueueMany, EnqueueTx, the runs that Send, SendTx and SendEvent start, and the
// children of Invoke and InvokeAll. It runs on the caller's goroutine, before the
// job is stored, with the caller's context and the job as it will be stored (ID 0):
// fn may add to, change or delete from job.Metadata, which is never nil, and the
// job is stored with the result; changes to other fields are ignored. An error from
// fn refuses the job: the call returns it, wrapped, and stores nothing. It is where
// a tracer puts the producer's trace context (see the otel subpackage). Jobs the
// runner makes itself (cron fires, OnFailure jobs) have no caller: they are not
// hooked and carry the Metadata given to Schedule or OnFailure. Hooks given several
// times run in the order given.
func WithEnqueueHook(fn func(ctx context.Context, job *Info) error) Option {
	return func(c *config) {
		if fn == nil {
			c.err = invalidf("nil enqueue hook")
			return
		}
		c.enqueueHooks = append(c.enqueueHooks, fn)
	}
}

// hookEnqueue runs the enqueue hooks on rec, a job about to be stored.
func (r *Runner) hookEnqueue(ctx context.Context, rec *record) error {
	if len(r.cfg.enqueueHooks) == 0 {
		return nil
	}
	in := rec.info(0)
	if in.Metadata == nil {
		in.Metadata = map[string]string{}
	}
	for _, hook := range r.cfg.enqueueHooks {
		if err := hook(ctx, &in); err != nil {
			return fmt.Errorf("%s: enqueue hook: %w", rec.kind, err)
		}
	}
	if err := validateMetadata(in.Metadata); err != nil {
		return fmt.Errorf("%s: enqueue hook: %w", rec.kind, err)
	}
	rec.metadata = nil
	if len(in.Metadata) > 0 {
		rec.metadata = maps.Clone(in.Metadata) // the hook may keep the map it was given
	}
	return nil
}

// Middleware wraps the attempts of jobs: it is called with the attempt's context,
// the job as its handler sees it, and next, which runs the rest of the chain and the
// handler. It returns the attempt's outcome: next's error, or another one (nil to
// succeed, Permanent to stop the retries, Snooze to postpone), so it can time, log,
// trace, recover or refuse. Call next at most once, with ctx or a context derived
// from it: ctx carries what Step, Sleep and the other step calls need. A panic in a
// middleware is the attempt's panic, as in a handler.
type Middleware func(ctx context.Context, job *Info, next func(ctx context.Context) error) error

// WithMiddleware wraps every attempt of jobs of the given kinds, or of every kind if
// none is given, in mw. Middleware runs in the order of the options, the first
// given outermost, runner-wide and per-kind ones alike; the error hook
// (WithErrorHook) sees the outcome the chain returned.
func WithMiddleware(mw Middleware, kinds ...string) Option {
	return func(c *config) {
		if mw == nil {
			c.err = invalidf("nil middleware")
			return
		}
		for _, kind := range kinds {
			if err := validateKind(kind); err != nil {
				c.err = fmt.Errorf("middleware: %w", err)
				return
			}
		}
		c.middleware = append(c.middleware, kindMiddleware{mw: mw, kinds: slices.Clone(kinds)})
	}
}

// kindMiddleware is a middleware and the kinds it wraps, every kind if none.
type kindMiddleware struct {
	mw    Middleware
	kinds []string
}

// chain returns the middleware that wraps jobs of kind, outermost first.
func (c *config) chain(kind string) []Middleware {
	var mws []Middleware
	for _, m := range c.middleware {
		if len(m.kinds) == 0 || slices.Contains(m.kinds, kind) {
			mws = append(mws, m.mw)
		}
	}
	return mws
}

// wrap returns call wrapped in mws, the first outermost, each seeing job.
func wrap(mws []Middleware, job *Info, call func(ctx context.Context) error) func(ctx context.Context) error {
	for i := len(mws) - 1; i >= 0; i-- {
		mw, next := mws[i], call
		call = func(ctx context.Context) error { return mw(ctx, job, next) }
	}
	return call
}
