package jobrun

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/jobrun/jobrun/internal/sqldb"
)

// Defaults of the runner and of every job, listed once here and in the Open doc.
const (
	// DefaultQueue is the queue of jobs enqueued without the Queue option. It always
	// exists, with 10 workers (defaultWorkers) unless WithQueue configures it.
	DefaultQueue = "default"

	// defaultWorkers is the concurrency of the default queue.
	defaultWorkers = 10

	// maxWorkers bounds the workers of one queue (WithQueue). Each is a goroutine
	// with a place in the claim-ahead window; past a few thousand they cost memory
	// and commit time and win nothing, since every outcome goes through one commit
	// loop.
	maxWorkers = 10_000

	// defaultMaxAttempts is the number of runs a job gets, the first included.
	defaultMaxAttempts = 25

	// maxArgsSize is the largest encoded args a job may carry, in bytes, and the limit
	// of a result or progress value. Larger payloads belong in a file or the
	// application's own bucket, with their key in the args.
	maxArgsSize = 1 << 20

	defaultBackoffMin    = time.Second
	defaultBackoffMax    = time.Hour
	defaultLockTimeout   = time.Second
	defaultMaxRecoveries = 5
	maxPrefetch          = 256 // jobs claimed ahead of a queue's workers, at most
	minPrefetch          = 2
	maxNameLen           = 255
)

// Option configures a Runner; pass options to Open or New.
type Option func(*config)

type config struct {
	queues         map[string]*queueConfig
	order          []string // queue names in configuration order
	logger         *slog.Logger
	lockTimeout    time.Duration
	maxRecoveries  int
	strictKinds    bool
	changeHook     func(Change)
	errorHook      func(ctx context.Context, job *Info, err error)
	enqueueHooks   []func(ctx context.Context, job *Info) error
	middleware     []kindMiddleware
	retention      Retention
	queueRetention map[string]Retention
	keyLimits      map[string]keyLimit
	readOnly       bool           // WithReadOnly: open the file read-only; implies noServices
	noServices     bool           // WithServices(false): write only what the methods are asked
	eventKeep      time.Duration  // how long events are kept; negative: forever
	eventDedup     time.Duration  // how long an event ID deduplicates
	sql            sqldb.Settings // the PostgreSQL store's, set by the pg package's options
	err            error
}

type queueConfig struct {
	name    string
	workers int
	limiter *rate.Limiter
}

func newConfig(opts []Option) (*config, error) {
	c := &config{
		queues:        map[string]*queueConfig{},
		logger:        slog.New(slog.DiscardHandler),
		lockTimeout:   defaultLockTimeout,
		maxRecoveries: defaultMaxRecoveries,
		strictKinds:   true,
		retention:     defaultRetention,
		eventKeep:     defaultEventRetention,
		eventDedup:    defaultEventDedup,
	}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		opt(c)
		if c.err != nil {
			return nil, c.err
		}
	}
	if c.queues[DefaultQueue] == nil {
		c.queues[DefaultQueue] = &queueConfig{name: DefaultQueue, workers: defaultWorkers}
		c.order = append([]string{DefaultQueue}, c.order...)
	}
	return c, nil
}

// WithQueue configures the queue name to run with the given number of concurrent
// workers and, if limiter is not nil, at most the rate it allows: a token is taken
// only when a job is claimed to run. One limiter may be shared by several queues (and
// by the application) to cap them together; retune it at any time with its SetLimit.
// Queues that are not configured keep their jobs until a runner that configures them
// runs; the default queue always runs, with 10 workers unless configured here.
// RunUntilIdle reports ready jobs of queues it has no workers for (ErrNoWorkers), and
// Run logs a warning at start for every registered kind whose queue has none. A
// process that only enqueues, for a later run of the process that works the queues,
// needs no workers: it calls neither Run nor RunUntilIdle.
func WithQueue(name string, workers int, limiter *rate.Limiter) Option {
	return func(c *config) {
		if err := validateName("queue", name); err != nil {
			c.err = err
			return
		}
		if workers < 1 || workers > maxWorkers {
			c.err = invalidf("queue %q: workers must be 1 to %d (MaxWorkers), got %d", name, maxWorkers, workers)
			return
		}
		if limiter != nil && limiter.Limit() != rate.Inf && (limiter.Limit() <= 0 || limiter.Burst() < 1) {
			c.err = invalidf("queue %q: rate limit must be positive with a burst of at least 1, got %v/s burst %d",
				name, float64(limiter.Limit()), limiter.Burst())
			return
		}
		if c.queues[name] != nil {
			c.err = invalidf("queue %q configured twice", name)
			return
		}
		c.queues[name] = &queueConfig{name: name, workers: workers, limiter: limiter}
		c.order = append(c.order, name)
	}
}

// WithLogger sets the logger the runner reports to (failed attempts, recoveries, storage
// errors), with the job's id, kind, queue and attempt as attributes. Default: discard.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l == nil {
			c.err = invalidf("nil logger")
			return
		}
		c.logger = l
	}
}

// WithLockTimeout sets how long Open waits for a file that another process holds before
// failing with ErrLocked. Default: 1s. It has no effect on New.
func WithLockTimeout(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.err = invalidf("lock timeout must be positive, got %v", d)
			return
		}
		c.lockTimeout = d
	}
}

// WithMaxRecoveries sets how many times a job may be found running after its process
// died before it is failed instead of run again, so that a job that kills the process
// cannot crash-loop it. Default: 5.
func WithMaxRecoveries(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.err = invalidf("max recoveries must be at least 1, got %d", n)
			return
		}
		c.maxRecoveries = n
	}
}

// WithStrictKinds sets whether Enqueue refuses a kind that has no handler registered
// with Handle (ErrUnknownKind). Default: true, which catches a forgotten Handle at the
// call site. Turn it off in a process that only enqueues for a process that runs.
func WithStrictKinds(strict bool) Option {
	return func(c *config) { c.strictKinds = strict }
}

// WithReadOnly opens the file read-only, for tools that look at an application's jobs
// without changing them: Open takes bbolt's shared lock and never writes, so the
// file's bytes are the same after Close. Reads (Get, List, Counts, Queues,
// Schedules, Watch, Backup, CheckCounts without repair) work; every call that
// would write, Run and RunUntilIdle included, returns an error wrapping ErrReadOnly.
// It implies WithServices(false). New makes a read-only runner of a database that was
// opened read-only, with or without this option.
//
// A file written by an older version of jobrun that needs an upgrade cannot be
// opened read-only (ErrSchema): open it once with a runner that writes.
func WithReadOnly() Option {
	return func(c *config) { c.readOnly, c.noServices = true, true }
}

// WithServices sets whether the runner runs its services on the file: the recovery
// at open of jobs a crash left running, the promotion of delayed and retrying jobs
// when they are due, cron fires, retention, and running jobs (Run, RunUntilIdle).
// Default: true. A tool that manages an application's file from outside, as the
// jobrun command does, turns them off: the runner then writes exactly what its
// methods are asked (Retry, Cancel, Delete, Pause, TriggerSchedule, Enqueue, ...) and
// nothing else, whatever the tool's own options would make of the application's
// retention, schedules and crash recovery. Run and RunUntilIdle return an error
// wrapping ErrInvalid.
func WithServices(on bool) Option {
	return func(c *config) {
		if !c.readOnly {
			c.noServices = !on
		}
	}
}

// EnqueueOption sets a property of a job; pass them to Enqueue, EnqueueTx, EnqueueMany
// or, as a kind's defaults, to Handle.
type EnqueueOption func(*enqueueOptions)

type enqueueOptions struct {
	queue       string
	priority    int
	delay       time.Duration
	at          time.Time
	maxAttempts int
	backoff     backoffPolicy
	jitter      int64 // Jitter, as backoffPolicy.jitter
	timeout     time.Duration
	uniqueKey   string
	uniqueMode  byte
	uniqueFor   time.Duration
	tags        []string
	concKey     string
	skipMissed  bool     // Schedule only
	skipOverlap bool     // Schedule only
	timeZone    string   // Schedule only
	on          []string // Handle only: the events that start the kind's runs
	onFailure   *failureOption
	cancelOn    [][2]string // CancelOn: event, field
	priorityOf  string      // PriorityFrom: the field of the args
	metadata    map[string]string
	err         error
}

func (o *enqueueOptions) apply(opts []EnqueueOption) {
	for _, opt := range opts {
		if opt != nil && o.err == nil {
			opt(o)
		}
	}
}

// Queue puts the job on the named queue. Default: DefaultQueue.
func Queue(name string) EnqueueOption {
	return func(o *enqueueOptions) {
		if err := validateName("queue", name); err != nil {
			o.err = err
			return
		}
		o.queue = name
	}
}

// Priority sets the job's priority within its queue: higher runs first, and jobs of one
// priority run in enqueue order. Default: 0. A steady stream of high-priority jobs
// starves lower ones; that is the point of priorities.
func Priority(p int) EnqueueOption {
	return func(o *enqueueOptions) { o.priority = p }
}

// Delay makes the job due d after it is enqueued instead of at once. It replaces an
// earlier At.
func Delay(d time.Duration) EnqueueOption {
	return func(o *enqueueOptions) {
		if d < 0 {
			o.err = invalidf("negative delay %v", d)
			return
		}
		o.delay, o.at = d, time.Time{}
	}
}

// At makes the job due at t; a time in the past means now. It replaces an earlier Delay.
func At(t time.Time) EnqueueOption {
	return func(o *enqueueOptions) {
		if t.IsZero() {
			o.err = invalidf("zero time given to At")
			return
		}
		o.at, o.delay = t, 0
	}
}

// MaxAttempts sets how many times the job may run, the first run included, before it
// fails for good. Default: 25; 1 means no retries.
func MaxAttempts(n int) EnqueueOption {
	return func(o *enqueueOptions) {
		if n < 1 || n > math.MaxInt32 {
			o.err = invalidf("max attempts must be between 1 and %d, got %d", math.MaxInt32, n)
			return
		}
		o.maxAttempts = n
	}
}

// Backoff sets the delays between attempts: min after the first failure, doubling
// with each further one up to max, each delay randomized by ±50% so that jobs failing
// together do not retry together (Jitter changes that: with Jitter(0) the delays are
// exactly min, 2·min, 4·min, ..., as BullMQ's exponential backoff). Backoff(d, d)
// waits d every time, without randomization unless Jitter asks for it; Backoff(0, 0)
// retries at once. The policy is stored with the job, so it holds across restarts.
// Default: Backoff(1s, 1h) with ±50% jitter.
func Backoff(min, max time.Duration) EnqueueOption {
	return func(o *enqueueOptions) {
		switch {
		case min < 0 || max < min || min == 0 && max > 0:
			o.err = invalidf("backoff needs 0 < min <= max, or min == max for a constant delay; got min %v max %v", min, max)
		case min == max:
			o.backoff = backoffPolicy{kind: backoffConstant, min: min, max: max}
		default:
			o.backoff = backoffPolicy{kind: backoffExponential, min: min, max: max}
		}
	}
}

// Jitter sets the randomization of the retry delays, as a fraction from 0 to 1:
// each delay of Backoff is drawn from ±f of its value. Default: 0.5, and 0 for a
// constant Backoff(d, d). Jitter(0) gives the exact delays (2s, 4s,
// 8s, ... for Backoff(2*time.Second, max)); some jitter keeps jobs that failed
// together (an outage) from retrying together. The factor is stored with the job to
// a thousandth.
func Jitter(f float64) EnqueueOption {
	return func(o *enqueueOptions) {
		if !(f >= 0 && f <= 1) {
			o.err = invalidf("jitter must be between 0 and 1, got %v", f)
			return
		}
		o.jitter = 1 + int64(math.Round(f*1000))
	}
}

// Timeout bounds each attempt: when d passes, the handler's context is canceled and
// the attempt fails. A handler that ignores its context is abandoned: its worker slot
// is given to the next job and its return value is ignored; its ConcurrencyKey's slot
// stays taken until it returns. (A handler that returns
// an error just as d passes may have its own error recorded instead of the timeout;
// either way the attempt fails.) Default: no timeout.
func Timeout(d time.Duration) EnqueueOption {
	return func(o *enqueueOptions) {
		if d <= 0 {
			o.err = invalidf("timeout must be positive, got %v", d)
			return
		}
		o.timeout = d
	}
}

// maxTags bounds the tags of one job.
const maxTags = 16

// Tags labels the job with short strings (a user ID, a tenant, an order number) that
// List finds through an index, without reading other jobs. A job has at most 16 tags,
// each a valid name of at most 255 bytes; duplicates are dropped. Tags given to Handle
// as defaults and to Enqueue add up.
func Tags(tags ...string) EnqueueOption {
	return func(o *enqueueOptions) {
		for _, tag := range tags {
			if err := validateName("tag", tag); err != nil {
				o.err = err
				return
			}
			if !slices.Contains(o.tags, tag) {
				o.tags = append(o.tags, tag)
			}
		}
		if len(o.tags) > maxTags {
			o.err = invalidf("%d tags; a job has at most %d", len(o.tags), maxTags)
		}
	}
}

// Unique modes, stored with each job that has a unique key.
const (
	uniqueNone       byte = iota
	uniqueUnfinished      // UniqueKey: one unfinished job per (kind, key)
	uniqueThrottle        // Throttle: one job per (kind, key) per period from its enqueue
	uniqueDebounce        // Debounce: the waiting job takes the latest args and waits again
)

const maxUniqueKeyLen = 512

// UniqueKey allows one unfinished job per kind and key: while a job of the same kind
// with the same key is scheduled, ready, running or retrying, Enqueue stores nothing
// and returns that job's ID with an error wrapping ErrDuplicate. The check and the
// insert are one transaction, so the guarantee holds across crashes.
//
// It does not make a job run once for good: once the job is done, failed or
// canceled, the key is free, and the next Enqueue with it stores a new job. A step
// that is retried after its jobs finished (a fan-out that failed half-way and runs
// again) enqueues them again. For "at most once per period, finished or not" use
// Throttle (Throttle(key, 24*time.Hour) for once a day); to run something once ever,
// record that it ran in the application's own data, in the transaction that enqueues
// it (EnqueueTx).
func UniqueKey(key string) EnqueueOption {
	return uniqueOption("unique key", key, uniqueUnfinished, 0)
}

// Throttle allows one job of the kind with this key per period: for period after a
// job is enqueued, whatever its state, Enqueue of the same kind and key stores nothing
// and returns that job's ID with an error wrapping ErrDuplicate ("once a day": Throttle
// (key, 24*time.Hour)).
func Throttle(key string, period time.Duration) EnqueueOption {
	return uniqueOption("throttle key", key, uniqueThrottle, period)
}

// Debounce delays the job by d and merges bursts: while a job of the kind with this
// key is still waiting for its time, a new Enqueue stores nothing new but gives that
// job the new args and pushes its run time back to d from now, returning its ID
// without error. The job runs once the enqueues pause for d. Once it has started, the
// next Enqueue starts a new one.
func Debounce(key string, d time.Duration) EnqueueOption {
	return uniqueOption("debounce key", key, uniqueDebounce, d)
}

func uniqueOption(what, key string, mode byte, d time.Duration) EnqueueOption {
	return func(o *enqueueOptions) {
		switch {
		case validateKey(what, key) != nil:
			o.err = validateKey(what, key)
		case mode != uniqueUnfinished && d <= 0:
			o.err = invalidf("%s %s needs a positive duration, got %v", what, quoted(key), d)
		default:
			o.uniqueKey, o.uniqueMode, o.uniqueFor = key, mode, d
		}
	}
}

// validateName checks a name (a queue, kind, tag or schedule) by the one rule for
// every name and key the runner stores: 1 to 255 bytes of valid UTF-8, no control
// characters, and no white space at either end, which is never meant and makes
// "mail" and "mail " two queues.
func validateName(what, name string) error {
	return validateText(what+" name", name, maxNameLen)
}

// validateKey checks a unique or concurrency key by the same rule, with up to 512
// bytes.
func validateKey(what, key string) error { return validateText(what, key, maxUniqueKeyLen) }

func validateText(what, s string, maxLen int) error {
	switch {
	case s == "":
		return invalidf("empty %s", what)
	case len(s) > maxLen:
		return invalidf("%s %s is %d bytes, longer than %d", what, quoted(s), len(s), maxLen)
	case !utf8.ValidString(s):
		return invalidf("%s %s is not valid UTF-8", what, quoted(s))
	case strings.TrimSpace(s) != s:
		return invalidf("%s %s begins or ends with white space", what, quoted(s))
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return invalidf("%s %s contains a control character", what, quoted(s))
		}
	}
	return nil
}

// quoted quotes s for an error message, at most its first 64 bytes: a message must
// not carry a megabyte of the caller's input back.
func quoted(s string) string {
	const most = 64
	if len(s) <= most {
		return strconv.Quote(s)
	}
	cut := most
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(s[:cut]), len(s))
}

func validateKind(kind string) error { return validateName("kind", kind) }
