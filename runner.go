package jobrun

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
)

// Runner persists jobs in a bbolt database and runs them. Create one with Open or New,
// register handlers with Handle, then call Run (or RunUntilIdle in tests). All methods
// are safe for concurrent use.
//
// Writes go through one commit loop that takes every enqueue, completion, progress
// update and claim waiting at that moment and commits them together, so concurrent
// callers share fsyncs instead of queueing for one each.
type Runner struct {
	st  store // where the jobs live; the commit loop alone writes it
	cfg *config
	log *slog.Logger

	mu              sync.RWMutex
	handlers        map[string]*handler
	triggers        map[string][]*handler // event name → the functions it starts, in registration order
	started         bool                  // a session has run; Handle is closed
	functionsStored bool                  // the stored function table is this runner's (function.go)
	session         *session              // the session running jobs, if any
	closing         bool                  // Shutdown or Close began: no new sessions
	closed          bool                  // the commit loop has exited

	ops       chan any      // to the commit loop
	wake      chan struct{} // EnqueueTx commits: look at the woken set
	wakeMu    sync.Mutex
	woken     map[string]bool // queues that EnqueueTx made ready
	wokenDue  time.Time       // earliest run time EnqueueTx scheduled
	wokenSent bool            // SendTx stored events: retention has them to expire
	wokenJobs []jobChange     // the jobs EnqueueTx and SendTx stored, for the history
	wokenPoll bool            // another process changed what a poll reads (a shared store)
	loopDone  chan struct{}   // closed when the commit loop has exited

	events emitter

	fatal atomic.Pointer[error] // what stopped the commit loop, if not Close: a damaged file

	commitNanos atomic.Int64 // the loop's moving average of a commit's duration (startNote)

	cycles  atomic.Uint64 // commit-loop iterations, for tests and benchmarks
	commits atomic.Uint64 // successful write transactions of the loop

	stepsDone, stepsRetried atomic.Uint64 // steps committed, and those that took more than one attempt

	waitMu   sync.Mutex
	waiters  map[ID][]chan struct{} // Wait: closed when a commit ends the job
	nwaiters atomic.Int32
}

// Open opens the bbolt file at path, creating it with mode 0600 if needed, and returns
// a Runner that owns it: Close closes the file. Only one process can hold the file;
// another Open waits up to the lock timeout (WithLockTimeout, 1s by default) and then
// fails with ErrLocked.
//
// The defaults, which options change: the default queue runs 10 jobs at
// once and no other queue runs (WithQueue); logs are discarded (WithLogger); Enqueue
// refuses kinds without a handler (WithStrictKinds); a job found running after a crash
// is run again at most 5 times (WithMaxRecoveries). Each job, unless its options say
// otherwise: queue "default", priority 0, due now, 25 attempts,
// Backoff(1s, 1h), no timeout.
func Open(path string, opts ...Option) (*Runner, error) {
	if path == "" {
		return nil, fmt.Errorf("open: %w", invalidf("empty path"))
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	st, err := openBoltStore(path, cfg)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r, err := newRunner(st, cfg)
	if err != nil {
		st.abandon()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return r, nil
}

// New returns a Runner that keeps its data in db, an application's open bbolt database,
// under the top-level bucket "jobrun"; the application's other buckets are untouched.
// Close leaves db open. Sharing the database is what makes EnqueueTx possible. Only
// one Runner may use a database at a time: New refuses a database that a Runner of
// this process holds until that Runner is closed. A database opened read-only gives a
// read-only runner (see WithReadOnly). The defaults are those listed on Open.
func New(db *bbolt.DB, opts ...Option) (*Runner, error) {
	if db == nil {
		return nil, invalidf("nil database")
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if db.IsReadOnly() {
		cfg.readOnly, cfg.noServices = true, true
	}
	st, err := newBoltStore(db, false, cfg)
	if err != nil {
		return nil, fmt.Errorf("new runner on %s: %w", db.Path(), err)
	}
	r, err := newRunner(st, cfg)
	if err != nil {
		st.abandon()
		return nil, fmt.Errorf("new runner on %s: %w", db.Path(), err)
	}
	return r, nil
}

// newRunner starts a runner over st: once the jobs a dead process left claimed are
// recovered (if the runner runs its services), its commit loop.
func newRunner(st store, cfg *config) (*Runner, error) {
	if !cfg.noServices {
		if err := recoverAtOpen(st, cfg); err != nil {
			return nil, err
		}
	}
	r := &Runner{
		st:       st,
		cfg:      cfg,
		log:      cfg.logger,
		handlers: map[string]*handler{},
		triggers: map[string][]*handler{},
		ops:      make(chan any, 4096),
		wake:     make(chan struct{}, 1),
		woken:    map[string]bool{},
		loopDone: make(chan struct{}),
		events:   emitter{hook: cfg.changeHook, log: cfg.logger},
	}
	en := newEngine(r)
	go en.loop()
	if ss, ok := st.(sharedStore); ok && !cfg.noServices {
		ss.watch(r.wakeFromElsewhere)
	}
	return r, nil
}

// recoverAtOpen makes every job a dead process left claimed ready again (or ends it,
// as transition decides), frees the key slots its abandoned handlers held and fills
// every key's free slots.
func recoverAtOpen(st store, cfg *config) error {
	var ready, ended int
	_, err := st.update(time.Now(), nil, func(w storeWriter) error {
		var err error
		if ready, ended, err = w.recoverAtOpen(cfg.maxRecoveries); err != nil {
			return fmt.Errorf("recover interrupted jobs: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if ready+ended > 0 {
		cfg.logger.Warn("jobrun: recovered jobs interrupted by a process exit",
			"ready_again", ready, "failed", ended)
	}
	return nil
}

// DB returns the runner's database, for the application's own transactions (see
// EnqueueTx) and for backups.
func (r *Runner) DB() *bbolt.DB {
	if st, ok := r.st.(*boltStore); ok {
		return st.handle()
	}
	return nil // a PostgreSQL runner (package pg)
}

// Enqueue stores a job and returns its ID once the job is durable: committed and
// fsynced. Concurrent calls share commits. ctx bounds the wait; if it ends first,
// Enqueue returns its error and the job may or may not have been stored.
//
// Do not call Enqueue inside the application's own write transaction on the same
// database (db.Update): bbolt allows one writer, so Enqueue would wait for that
// transaction forever. Use EnqueueTx there.
func (r *Runner) Enqueue(ctx context.Context, args Args, opts ...EnqueueOption) (ID, error) {
	rec, err := r.prepare(ctx, args, opts, time.Now())
	if err != nil {
		return 0, fmt.Errorf("enqueue: %w", err)
	}
	op := &enqueueOp{recs: []*record{rec}, reply: make(chan error, 1)}
	if err := r.send(ctx, op, op.reply); err != nil {
		return 0, fmt.Errorf("enqueue %s: %w", rec.kind, err)
	}
	if op.dups[0] {
		return op.ids[0], duplicateError(rec, op.ids[0])
	}
	return op.ids[0], nil
}

func duplicateError(rec *record, existing ID) error {
	return fmt.Errorf("enqueue %s: %w: job %d holds key %q", rec.kind, ErrDuplicate, existing, rec.uniqueKey)
}

// EnqueueMany stores a batch of jobs in one transaction, one fsync for all, and returns
// their IDs in order. opts apply to every job. Either every job is stored or none is,
// except for jobs refused by their unique key: their place in the result holds the
// existing job's ID, and the error wraps ErrDuplicate.
func (r *Runner) EnqueueMany(ctx context.Context, batch []Args, opts ...EnqueueOption) ([]ID, error) {
	if len(batch) == 0 {
		return nil, nil
	}
	now := time.Now()
	recs := make([]*record, len(batch))
	for i, args := range batch {
		rec, err := r.prepare(ctx, args, opts, now)
		if err != nil {
			return nil, fmt.Errorf("enqueue many: job %d: %w", i, err)
		}
		recs[i] = rec
	}
	op := &enqueueOp{recs: recs, reply: make(chan error, 1)}
	if err := r.send(ctx, op, op.reply); err != nil {
		return nil, fmt.Errorf("enqueue many: %w", err)
	}
	if n := countTrue(op.dups); n > 0 {
		return op.ids, fmt.Errorf("enqueue many: %w: %d of %d jobs were refused by their unique key; their IDs are the existing jobs'",
			ErrDuplicate, n, len(recs))
	}
	return op.ids, nil
}

func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// EnqueueTx stores a job inside tx, a write transaction the application opened on the
// runner's database: the job exists if and only if tx commits, and workers are woken
// only after it does. The job is durable when tx's commit returns. On an error other
// than ErrDuplicate (a damaged page of the file gives one wrapping ErrCorrupt), roll
// tx back by returning the error from its function: the job may be half written.
func (r *Runner) EnqueueTx(ctx context.Context, tx *bbolt.Tx, args Args, opts ...EnqueueOption) (ID, error) {
	st, ok := r.st.(*boltStore)
	if !ok {
		return 0, fmt.Errorf("enqueue in tx: %w", invalidf("a PostgreSQL runner enqueues in a pgx.Tx: use pg.EnqueueTx"))
	}
	if err := st.checkTx(tx); err != nil {
		return 0, fmt.Errorf("enqueue in tx: %w", err)
	}
	if err := r.txReady(ctx); err != nil {
		return 0, fmt.Errorf("enqueue in tx: %w", err)
	}
	now := time.Now()
	rec, err := r.prepare(ctx, args, opts, now)
	if err != nil {
		return 0, fmt.Errorf("enqueue in tx: %w", err)
	}
	ins, changes, err := st.enqueueTx(tx, now, rec)
	if err != nil {
		return 0, fmt.Errorf("enqueue %s in tx: %w", rec.kind, err)
	}
	if ins.duplicate {
		return ins.id, duplicateError(rec, ins.id)
	}
	tx.OnCommit(r.committedElsewhere(changes, now, false))
	return ins.id, nil
}

// SendTx is Send inside tx, a write transaction the application opened on the
// runner's database: the event and its runs exist if and only if tx commits, and
// workers are woken only after it does. On an error, roll tx back.
func (r *Runner) SendTx(ctx context.Context, tx *bbolt.Tx, ev Event) (*EventInfo, error) {
	st, ok := r.st.(*boltStore)
	if !ok {
		return nil, fmt.Errorf("send in tx: %w", invalidf("a PostgreSQL runner does not send in a bbolt transaction"))
	}
	if err := st.checkTx(tx); err != nil {
		return nil, fmt.Errorf("send in tx: %w", err)
	}
	if err := r.txReady(ctx); err != nil {
		return nil, fmt.Errorf("send in tx: %w", err)
	}
	now := time.Now()
	se, runs, err := r.prepareEvent(ev, now)
	if err == nil {
		err = r.hookRuns(ctx, ev.Name, runs)
	}
	if err != nil {
		return nil, fmt.Errorf("send in tx: %w", err)
	}
	changes, err := st.sendTx(tx, now, se, runs, r.cfg.eventDedup)
	if err != nil {
		return nil, fmt.Errorf("send %s in tx: %w", ev.Name, err)
	}
	tx.OnCommit(r.committedElsewhere(changes, now, true))
	return se.info(), nil
}

// txReady checks, for EnqueueTx and SendTx, that the runner takes writes.
func (r *Runner) txReady(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.isClosed() || r.fatal.Load() != nil {
		return r.closedErr()
	}
	return nil
}

// committedElsewhere returns what to do once the application's transaction that made
// changes commits: report them and wake the commit loop for the queues and run times
// they touched.
func (r *Runner) committedElsewhere(changes []jobChange, now time.Time, sent bool) func() {
	var fx effects
	fx.absorb(changes, now, r.events.wanted())
	return func() {
		r.events.emit(fx.events)
		r.wakeWaiters(changes)
		r.wakeMu.Lock()
		r.wokenSent = r.wokenSent || sent
		r.wokenJobs = append(r.wokenJobs, changes...)
		for queue := range fx.touched {
			r.woken[queue] = true
		}
		if !fx.due.IsZero() && (r.wokenDue.IsZero() || fx.due.Before(r.wokenDue)) {
			r.wokenDue = fx.due
		}
		r.wakeMu.Unlock()
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// wakeFromElsewhere takes what another process's commit on a shared store did.
func (r *Runner) wakeFromElsewhere(n wakeNote) {
	if len(n.ended) > 0 {
		changes := make([]jobChange, len(n.ended))
		for i, id := range n.ended {
			changes[i] = jobChange{what: changeRemoved, id: id}
		}
		r.wakeWaiters(changes) // each waiter reads the job again
		return
	}
	r.wakeMu.Lock()
	switch {
	case n.poke:
		r.wokenPoll = true
	case !n.due.IsZero():
		if r.wokenDue.IsZero() || n.due.Before(r.wokenDue) {
			r.wokenDue = n.due
		}
	default:
		r.woken[n.queue] = true
	}
	r.wakeMu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// prepare validates args and options and builds the record to store, which the
// enqueue hooks have seen.
func (r *Runner) prepare(ctx context.Context, args Args, opts []EnqueueOption, now time.Time) (*record, error) {
	rec, _, err := r.prepareOpts(args, opts, now, false)
	if err != nil {
		return nil, err
	}
	if err := r.hookEnqueue(ctx, rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// prepareOpts is prepare for Enqueue (forSchedule false) and for Schedule's job
// template, which alone accepts the schedule options.
func (r *Runner) prepareOpts(args Args, opts []EnqueueOption, now time.Time, forSchedule bool) (*record, *enqueueOptions, error) {
	if r.cfg.readOnly {
		return nil, nil, ErrReadOnly
	}
	if args == nil {
		return nil, nil, invalidf("nil args")
	}
	kind := args.Kind()
	if err := validateKind(kind); err != nil {
		return nil, nil, err
	}
	r.mu.RLock()
	h := r.handlers[kind]
	r.mu.RUnlock()
	if h == nil && r.cfg.strictKinds {
		return nil, nil, fmt.Errorf("%w %q: register a handler with jobrun.Handle first, or open the runner WithStrictKinds(false)",
			ErrUnknownKind, kind)
	}
	o := enqueueOptions{queue: DefaultQueue, maxAttempts: defaultMaxAttempts}
	if h != nil {
		o.apply(h.defaults)
		o.on = nil // the handler's events, not the job's
	}
	o.apply(opts)
	if o.err != nil {
		return nil, nil, fmt.Errorf("%s: %w", kind, o.err)
	}
	if len(o.on) > 0 {
		return nil, nil, invalidf("On applies to Handle only")
	}
	if !forSchedule && (o.skipMissed || o.skipOverlap || o.timeZone != "") {
		return nil, nil, invalidf("SkipMissed, SkipOverlap and TimeZone apply to Schedule only")
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: encode args of %s: %w", ErrInvalid, kind, err)
	}
	if len(raw) > maxArgsSize {
		return nil, nil, invalidf("args of %s encode to %d bytes, over the limit of %d", kind, len(raw), maxArgsSize)
	}
	runAt := now
	switch {
	case o.uniqueMode == uniqueDebounce:
		runAt = now.Add(o.uniqueFor)
	case o.at.After(now): // a time in the past means now
		runAt = o.at
	case o.delay > 0:
		runAt = now.Add(o.delay)
	}
	if runAt.After(maxFireTime) || runAt.Before(now) && o.delay > 0 {
		return nil, nil, invalidf("run time of %s is after %d, beyond what jobrun can store", kind, maxFireTime.Year())
	}
	if o.jitter != 0 {
		o.backoff.jitter = o.jitter
	}
	rec := &record{
		kind:        kind,
		queue:       o.queue,
		args:        raw,
		priority:    int64(o.priority),
		maxAttempts: int64(o.maxAttempts),
		backoff:     o.backoff,
		timeout:     o.timeout,
		createdAt:   now,
		runAt:       runAt,
		uniqueKey:   o.uniqueKey,
		uniqueMode:  o.uniqueMode,
		uniqueFor:   o.uniqueFor,
		tags:        o.tags,
		concKey:     o.concKey,
		metadata:    o.metadata,
	}
	if _, template := args.(functionTemplate); template {
		// The keys stay as given, to be expanded for each run (storedRuns).
		for _, c := range o.cancelOn {
			rec.cancelOn = append(rec.cancelOn, cancelRule{event: c[0], field: c[1]})
		}
	} else if err := fromArgs(rec, o.priorityOf, o.cancelOn); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", kind, err)
	}
	if _, template := args.(failureTemplate); o.onFailure != nil && !template {
		if rec.onFailure, err = r.failureRecord(o.onFailure, now); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", kind, err)
		}
	}
	return rec, &o, nil
}

// send hands an operation to the commit loop and waits for its reply.
func (r *Runner) send(ctx context.Context, op any, reply <-chan error) error {
	if _, control := op.(*controlOp); r.cfg.readOnly && !control {
		return ErrReadOnly
	}
	if eop, ok := op.(*enqueueOp); ok && eop.event == nil {
		if cs, ok := r.st.(concurrentStore); ok {
			return r.enqueueAlongside(ctx, cs, eop)
		}
	}
	select {
	case r.ops <- op:
	case <-r.loopDone:
		return r.closedErr()
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-r.loopDone:
		// The loop replies to everything it took before it exits.
		select {
		case err := <-reply:
			return err
		default:
			return r.closedErr()
		}
	}
}

// enqueueAlongside stores op's jobs in a transaction of their own on a store
// whose transactions run side by side, and then tells the commit loop, as EnqueueTx
// does once its transaction commits.
func (r *Runner) enqueueAlongside(ctx context.Context, cs concurrentStore, op *enqueueOp) error {
	select {
	case <-r.loopDone:
		return r.closedErr()
	default:
	}
	now := time.Now()
	ins, changes, err := cs.enqueueNow(ctx, now, op.recs)
	if err != nil {
		select {
		case <-r.loopDone:
			return r.closedErr() // closed meanwhile: the store's statements were cut
		default:
		}
		return err
	}
	op.ids, op.dups = make([]ID, len(ins)), make([]bool, len(ins))
	for i, in := range ins {
		op.ids[i], op.dups[i] = in.id, in.duplicate
	}
	r.committedElsewhere(changes, now, false)()
	return nil
}

// Get returns everything stored about a job, or an error wrapping ErrNotFound.
func (r *Runner) Get(ctx context.Context, id ID) (*Info, error) {
	var in *Info
	err := r.view(ctx, func(t storeReader) (err error) {
		if in, err = t.info(id); err != nil {
			return err
		}
		steps, err := t.steps(id)
		for _, s := range steps {
			in.Steps = append(in.Steps, s.info())
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get job %d: %w", id, err)
	}
	return in, nil
}

// Counts returns how many jobs of queue are in each state, every State present; with
// queue "" it sums all queues. The counters are kept in the same transaction as every
// state change, so they are exact and cost O(states) to read, not O(jobs).
func (r *Runner) Counts(ctx context.Context, queue string) (map[State]int, error) {
	var out map[State]int
	err := r.view(ctx, func(t storeReader) error {
		out = t.queueCounts(queue)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("counts: %w", err)
	}
	return out, nil
}

// view runs fn in a read transaction of the store.
func (r *Runner) view(ctx context.Context, fn func(t storeReader) error) error {
	return r.reading(ctx, func() error { return r.st.view(fn) })
}

// reading runs fn, a read of the store, unless ctx ended or the runner is closed.
func (r *Runner) reading(ctx context.Context, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.isClosed() {
		return r.closedErr()
	}
	return fn()
}

// closedErr is what calls get once the commit loop has exited: ErrClosed, or the
// error that stopped the runner.
func (r *Runner) closedErr() error {
	if err := r.fatal.Load(); err != nil {
		return *err
	}
	return ErrClosed
}

func (r *Runner) isClosed() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.closed
}

// Run runs jobs until ctx ends or Shutdown or Close is called, and returns ErrClosed
// in the latter case. Handlers' contexts derive from ctx. When ctx ends, Run stops at
// once: it cancels the running handlers and records their jobs as ready again, without
// spending an attempt, then returns ctx's error. For a graceful stop that lets
// handlers finish, call Shutdown.
//
// If the runner meets a damaged page of its file, it stops: its handlers are
// canceled, and Run (or RunUntilIdle), like every later call, returns an error
// wrapping ErrCorrupt. Nothing committed before is touched; attempts that ended
// and were not recorded run again once the file is mended. Close it, then restore
// the file or Salvage it.
//
// Only one Run or RunUntilIdle may be active at a time.
func (r *Runner) Run(ctx context.Context) error {
	s, err := r.startSession(ctx, false)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		r.stopSession(s, ctx)
		return ctx.Err()
	case <-s.ended:
		return r.closedErr()
	case <-r.loopDone:
		r.stopSession(s, ctx)
		return r.closedErr()
	}
}

// RunUntilIdle runs jobs in the caller until none is due or running, then returns nil.
// Jobs scheduled for later (delays, retries) stay scheduled: in a test, advance time
// (testing/synctest) and call it again, or use jobruntest.RunFor, which does both. It
// makes tests and examples deterministic: enqueue, RunUntilIdle, assert.
//
// Jobs of a paused queue do not count: it returns while they wait for Resume. Ready
// jobs of a queue this runner has no workers for (no WithQueue) cannot run either: it
// returns then with an error wrapping ErrNoWorkers that names those queues.
func (r *Runner) RunUntilIdle(ctx context.Context) error {
	s, err := r.startSession(ctx, true)
	if err != nil {
		return err
	}
	select {
	case <-s.idle:
		if err := r.stopSession(s, ctx); err != nil {
			return err
		}
		return r.unrunQueues(ctx)
	case <-ctx.Done():
		r.stopSession(s, ctx)
		return ctx.Err()
	case <-s.ended:
		return r.closedErr()
	case <-r.loopDone:
		r.stopSession(s, ctx)
		return r.closedErr()
	}
}

// Shutdown stops the runner gracefully: it stops claiming jobs, waits for running
// handlers to return until ctx ends, then cancels the ones still running and records
// their jobs as ready again (no attempt spent), and closes the runner like Close.
// Handlers may still enqueue follow-up jobs while it waits. It returns ctx's error if
// it had to cancel handlers; it returns when ctx ends even if a handler ignores its
// context, and that handler's job runs again at the next start.
func (r *Runner) Shutdown(ctx context.Context) error {
	s, err := r.beginClose()
	if err != nil {
		return err
	}
	if s != nil {
		err = r.stopSession(s, ctx)
	}
	if cerr := r.finishClose(); err == nil {
		err = cerr
	}
	return err
}

// Close stops the runner at once: it cancels running handlers, records their jobs as
// ready again (no attempt spent), waits up to a second (closeGrace) for the handlers to return,
// and releases the database, closing it if Open opened it. Calling Close again
// returns ErrClosed.
//
// Close returns after that second even if a handler ignores its canceled context: that
// handler's goroutine runs on until the handler returns, as an abandoned timeout's
// does; what it returns is dropped, and its job, already recorded ready, runs again
// at the next start. Calls it makes on the runner meanwhile return ErrClosed.
func (r *Runner) Close() error {
	s, err := r.beginClose()
	if err != nil {
		return err
	}
	if s != nil {
		canceled, cancel := context.WithCancel(context.Background())
		cancel()
		r.stopSession(s, canceled)
		grace := time.NewTimer(closeGrace)
		select {
		case <-s.all.done():
		case <-grace.C:
			r.log.Warn("jobrun: closed while handlers ignore their canceled context; their jobs run again at the next start",
				"grace", closeGrace)
		}
		grace.Stop()
	}
	return r.finishClose()
}

// closeGrace is how long Close waits for canceled handlers to return.
const closeGrace = time.Second

// beginClose refuses new sessions and returns the running one, if any.
func (r *Runner) beginClose() (*session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return nil, ErrClosed
	}
	r.closing = true
	return r.session, nil
}

// finishClose stops the commit loop after its final commit and releases the database.
func (r *Runner) finishClose() error {
	op := &controlOp{kind: ctlClose, reply: make(chan error, 1)}
	r.send(context.Background(), op, op.reply)
	<-r.loopDone
	r.events.close()
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	if err := r.st.close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// unrunQueues returns an error wrapping ErrNoWorkers naming the queues, not paused,
// that hold ready jobs while this runner has no workers for them.
func (r *Runner) unrunQueues(ctx context.Context) error {
	infos, err := r.Queues(ctx)
	if err != nil {
		return err
	}
	var names []string
	for _, qi := range infos {
		if qi.Workers == 0 && !qi.Paused && qi.Counts[StateReady] > 0 {
			names = append(names, fmt.Sprintf("%q (%d ready)", qi.Name, qi.Counts[StateReady]))
		}
	}
	if len(names) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s; configure them with WithQueue, or run them in another runner",
		ErrNoWorkers, strings.Join(names, ", "))
}

// warnUnrunKinds logs, at the start of a session, every registered kind whose jobs go
// by default to a queue this runner does not run.
func (r *Runner) warnUnrunKinds(handlers map[string]*handler) {
	kinds := slices.Sorted(maps.Keys(handlers))
	for _, kind := range kinds {
		o := enqueueOptions{queue: DefaultQueue}
		o.apply(handlers[kind].defaults)
		if r.cfg.queues[o.queue] == nil {
			r.log.Warn("jobrun: a kind's queue has no workers in this runner; its jobs wait until a runner configures the queue (WithQueue)",
				"kind", kind, "queue", o.queue)
		}
	}
}

// startSession starts the workers of every configured queue and tells the commit loop
// to feed them.
func (r *Runner) startSession(ctx context.Context, untilIdle bool) (*session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch {
	case r.cfg.readOnly:
		return nil, fmt.Errorf("run: %w: it runs no jobs", ErrReadOnly)
	case r.cfg.noServices:
		return nil, fmt.Errorf("run: %w", invalidf("the runner was opened WithServices(false): it runs no jobs"))
	}
	r.mu.Lock()
	r.started = true
	stored := r.functionsStored
	r.mu.Unlock()
	if !stored {
		// Handle is closed now: the functions are known for good.
		if err := r.storeFunctions(ctx); err != nil {
			return nil, fmt.Errorf("run: store the functions: %w", err)
		}
		r.mu.Lock()
		r.functionsStored = true
		r.mu.Unlock()
	}
	r.mu.Lock()
	switch {
	case r.closing:
		r.mu.Unlock()
		return nil, ErrClosed
	case r.session != nil:
		r.mu.Unlock()
		return nil, invalidf("the runner is already running (Run or RunUntilIdle is active)")
	}
	s := newSession(ctx, r.cfg, untilIdle)
	r.session = s
	handlers := r.handlers
	r.mu.Unlock()
	r.warnUnrunKinds(handlers)

	for _, q := range s.queues {
		for range q.workers {
			r.startWorker(s, q, handlers)
		}
	}
	op := &controlOp{kind: ctlStart, s: s, reply: make(chan error, 1)}
	if err := r.send(context.WithoutCancel(ctx), op, op.reply); err != nil {
		// The loop is gone (closed); it never took the start, so release the workers.
		s.cancel(err)
		for _, q := range s.queues {
			q.line.close()
		}
		r.endSession(s)
		return nil, err
	}
	return s, nil
}

// stopSession ends a session: no more claims, jobs claimed but not started go back to
// ready, running handlers get until ctx ends to return, then are canceled and their
// jobs recorded as ready again. It returns ctx's error if it had to cancel.
func (r *Runner) stopSession(s *session, ctx context.Context) error {
	s.stopMu.Lock()
	first := !s.stopping
	s.stopping = true
	s.stopMu.Unlock()
	if !first {
		// Someone else is stopping it; escalate if our patience runs out first.
		select {
		case <-s.ended:
			return nil
		case <-ctx.Done():
			r.sendControl(ctlForce, s)
			<-s.ended
			return ctx.Err()
		}
	}

	var err error
	r.sendControl(ctlDrain, s)
	select {
	case <-s.active.done():
	case <-s.forced:
		err = context.Canceled
	case <-ctx.Done():
		err = ctx.Err()
		r.sendControl(ctlForce, s)
	}
	// Everything the workers reported was sent before this barrier, so it is committed
	// (or was tried) when the barrier returns.
	r.sendControl(ctlBarrier, s)
	s.cancel(ErrClosed)
	r.endSession(s)
	return err
}

// endSession forgets the session and releases whoever waits for its end. Both its
// stopper and a start that lost the race with Close may call it.
func (r *Runner) endSession(s *session) {
	s.endOnce.Do(func() {
		r.mu.Lock()
		if r.session == s {
			r.session = nil
		}
		r.mu.Unlock()
		close(s.ended)
	})
}

func (r *Runner) sendControl(kind int, s *session) {
	op := &controlOp{kind: kind, s: s, reply: make(chan error, 1)}
	r.send(context.Background(), op, op.reply)
}
