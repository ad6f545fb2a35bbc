package jobrun

import (
	"context"
	"io"
	"slices"
	"time"
)

// store is the seam between the engine and where jobs live. Its operations are those
// of the domain (insert jobs, claim from a queue, apply an outcome, promote due jobs,
// fire schedules, sweep finished jobs), not of a key-value layout; the bbolt store
// (bolt*.go) implements it, and the PostgreSQL store (pg*.go) implements the same
// operations over its tables. The engine never sees how a store keeps jobs, and a
// store never sees the engine: what a write did comes back as the changes it made,
// from which the engine derives events, wake-ups and its memory.
type store interface {
	// update runs fn in one write transaction at now and commits it durably. It
	// appends the changes fn's writes made, in order, to buf and returns it once
	// they are committed; an error from fn rolls every write back. A damaged store
	// gives an error wrapping ErrCorrupt.
	update(now time.Time, buf []jobChange, fn func(w storeWriter) error) ([]jobChange, error)

	// view runs fn in one read transaction: a consistent snapshot.
	view(fn func(r storeReader) error) error

	// backup writes a consistent copy of the whole store to w.
	backup(ctx context.Context, w io.Writer) (int64, error)

	// compact rewrites the store without its free space. The caller holds off every
	// write while it runs.
	compact() error

	// name names the store in messages: its file.
	name() string

	// close releases the store; a store the application handed in stays open.
	close() error
}

// storeReader reads one snapshot.
type storeReader interface {
	// get reads a job's record, or ErrNotFound.
	get(id ID) (*record, error)
	// claimedSince reports whether a job is claimed and, once its handler started,
	// when; the zero time while it waits in its queue's lineup.
	claimedSince(id ID) (time.Time, bool)
	// info reads a job's public view, running if it is claimed and started.
	info(id ID) (*Info, error)
	// list reads up to limit jobs matching f (st is f.State's code, 0 for any) from
	// the position cursor (nil: the start), and the cursor of what follows (nil at
	// the end). It reads at most listScanBudget index entries.
	list(f Filter, st byte, limit int, cursor []byte) (jobs []*Info, next []byte, err error)
	// queueCounts returns every state's count of queue, or of all queues for "".
	queueCounts(queue string) map[State]int
	// queueNames lists every queue that has held a job, in byte order.
	queueNames() []string
	// pausedQueues returns the paused queues.
	pausedQueues() map[string]bool
	// schedule reads one schedule, or ErrNotFound.
	schedule(name string) (*storedSchedule, error)
	// eachSchedule calls fn with every schedule by name, and for one that cannot be
	// decoded with the error instead; fn's error ends the walk.
	eachSchedule(fn func(name string, s *storedSchedule, err error) error) error
	// nextDue is when the earliest job waiting for a time is due, zero if none is.
	nextDue() time.Time
	// retentionDue reports whether retention has jobs to delete now and, if not,
	// when it will (zero: never, as things stand).
	retentionDue() (bool, time.Time)
	// steps reads the steps a job stored, in name order; none for a store
	// written before steps existed.
	steps(id ID) ([]*step, error)
	// recount counts every queue's jobs per state from scratch and returns the
	// counters that disagree.
	recount() ([]CountMismatch, error)
	// event reads a sent event by its Seq, or ErrNotFound.
	event(seq uint64) (*storedEvent, error)
	// events reads up to limit events, of name if it is not "", newest first unless
	// oldest, from Seq from (0: the newest or the oldest), and the Seq where the next
	// page begins (0 after the last).
	events(name string, oldest bool, from uint64, limit int) ([]*storedEvent, uint64, error)
	// eventsDue reports whether retention has events to delete now and, if not,
	// when it will (zero: never, as things stand).
	eventsDue() (bool, time.Time)
	// functions reads the stored functions, by kind.
	functions() ([]*storedFunction, error)
	// suspendedCounts returns how many jobs are suspended in each way (sleep, wait,
	// invoke), counted in every commit like the states.
	suspendedCounts() [numSuspended]int
	// history reads the per-minute points of queue ("" for all) from since's
	// minute on, oldest first.
	history(queue string, since time.Time) ([]HistoryPoint, error)
}

// storeWriter writes within one transaction; every write records the changes it
// makes for update to return.
type storeWriter interface {
	storeReader

	// enqueue stores a new job, ready or scheduled by its run time, unless its
	// unique key refuses it or (Debounce) merges it into the job waiting under it.
	enqueue(rec *record) (inserted, error)
	// claim takes up to n ready jobs of queue, best first (priority, then FIFO), and
	// up to extra more that outrank priority beat, honoring its keys' slots; take,
	// if not nil, is asked before each job with its concurrency key (ok false skips
	// it, stop ends the claim). A paused queue gives nothing. Claimed jobs count as
	// ready until markStarted.
	claim(queue string, n, extra int, beat int64, take func(key []byte) (ok, stop bool)) ([]claimedJob, error)
	// markStarted records that a claimed job's handler started at at.
	markStarted(id ID, rec *record, at time.Time) error
	// apply takes a job out of where it is (claimed, or waiting in its state) and
	// moves it as transition decides for e, writing rec, which the caller read or
	// holds (a claimed job's record with its updates). A claimed job whose start
	// is not recorded but e says it started gets its start change first. It
	// returns the decision.
	apply(id ID, rec *record, e ending) (next, error)
	// finish is apply for a claimed job whose claim the caller knows: started says
	// whether its start is recorded (markStarted), so the store need not look. For
	// outcomeSlept it stores the sleep step with the job's suspension.
	finish(id ID, rec *record, e ending, started bool) (next, error)
	// put stores a job's record as it is, its state unchanged (a cancel request).
	put(id ID, rec *record) error
	// saveProgress stores a running job's record with its progress and log lines.
	saveProgress(id ID, rec *record) error
	// saveStep stores a step of a claimed job, and rec, its record, if it is not nil
	// (the attempt count restarts at each step). remove deletes a job's steps with it.
	saveStep(id ID, rec *record, s *step) error
	// releaseHeld frees the key slot an abandoned handler of job id held.
	releaseHeld(id ID) error
	// promoteDue makes up to n jobs whose time has come ready, and returns when the
	// next one is due (now if more are due already, zero if none waits).
	promoteDue(n int) (time.Time, error)
	// takeUnique gives a job that runs again its unique key back, or fails with
	// ErrDuplicate while another unfinished job holds it.
	takeUnique(id ID, rec *record) error
	// remove deletes a job that is not claimed, with everything that names it.
	remove(id ID, rec *record) error
	// sweep calls fn for up to limit jobs in final state st of queue ("" for any)
	// that finished before before, oldest first, from the position after (nil: the
	// oldest), looking at no more than budget entries; it returns where to resume,
	// nil when none is left.
	sweep(st byte, queue string, before time.Time, after []byte, limit, budget int,
		fn func(id ID, r *record) error) ([]byte, error)
	// retain deletes up to limit jobs of final state st that retention expired, from
	// the position after, and returns where to resume (nil: done for now).
	retain(st byte, after []byte, limit int) ([]byte, error)
	// setPaused pauses or resumes a queue.
	setPaused(queue string, paused bool) error
	// putSchedule creates or replaces a schedule; deleteSchedule removes one.
	putSchedule(name string, s *storedSchedule) error
	deleteSchedule(name string) error
	// fire enqueues a schedule's job for fire time at; ok is false if its template
	// cannot be decoded.
	fire(name string, s *storedSchedule, at time.Time) (ins inserted, ok bool, err error)
	// fireDue fires the named schedules whose time has come, each at most once per
	// fire time, and returns the next fire of each it looked at.
	fireDue(due []string, log func(msg string, args ...any)) (map[string]time.Time, error)
	// recoverAtOpen moves every job a dead process left claimed as transition
	// decides for outcomeRecovered, frees the key slots its abandoned handlers held
	// and fills every key's free slots (key limits may have grown). It returns how
	// many jobs are ready again and how many ended.
	recoverAtOpen(limit int) (ready, ended int, err error)
	// repairCounts is recount that also rewrites the counters that disagree.
	repairCounts() ([]CountMismatch, error)
	// sendEvent stores the event se, giving it its Seq and commit time, and enqueues
	// runs, the records of its runs, naming it; se.runs gets their IDs (a run its
	// unique key refused: the existing job's). An event whose ID an event sent
	// within dedup holds is a duplicate: it is stored with dupOf and that event's
	// runs, and enqueues nothing.
	sendEvent(se *storedEvent, runs []*record, dedup time.Duration) error
	// retainEvents deletes up to limit of the oldest events retention expired.
	retainEvents(limit int) error
	// putFunctions replaces the stored functions with fns.
	putFunctions(fns []*storedFunction) error
	// addHistory adds points to the stored ones of their minute and queue, with
	// each queue's ready count as Ready, and deletes up to limit points of minutes
	// before before.
	addHistory(points []HistoryPoint, before time.Time, limit int) error
}

// sharedStore is a store that other processes write too (a PostgreSQL store,
// pg_shared.go); the bbolt store's file lock keeps others out.
type sharedStore interface {
	// pollEvery is how often the commit loop polls and renews.
	pollEvery() time.Duration
	// watch starts calling fn with what other processes' commits did until the
	// store closes.
	watch(fn func(n wakeNote))
}

// concurrentStore is a store whose transactions run side by side (a database
// server's): enqueues need not queue for the commit loop, whose commits one after
// the other would leave the server nothing to commit together. Each caller's
// enqueue is a transaction of its own, which the server's group commit flushes
// with the others', and the loop learns of the new jobs as it learns of EnqueueTx's.
type concurrentStore interface {
	// enqueueNow stores recs in one transaction at now and returns what enqueue did
	// with each, and the changes, once committed.
	enqueueNow(ctx context.Context, now time.Time, recs []*record) ([]inserted, []jobChange, error)
}

// lazyCommitter is a writer whose commit can skip waiting for the disk: the
// PostgreSQL store's (synchronous_commit off for the transaction). The engine
// asks for it for a commit that acknowledges nothing to anyone (only claims,
// starts, progress and the timed services' work): lost in a crash of the server,
// such a commit is redone (the jobs are claimed, promoted or fired again), and
// the server's later commits are durable after it all the same.
type lazyCommitter interface {
	lazy()
}

// prefetcher is a writer that reads the jobs a commit will write in one go: the
// PostgreSQL store, for which a read of each job's row one by one would cost a
// round trip per job.
type prefetcher interface {
	// prefetch reads (and locks) the jobs ids, which the commit is about to write.
	prefetch(ids []ID) error
}

// wakeNote is what another process's commit did, as a shared store learns of it.
type wakeNote struct {
	queue string    // has new ready jobs
	due   time.Time // jobs come due then
	ended []ID      // jobs that ended or were deleted: Wait returns
	poke  bool      // anything else a poll reads: a pause, a schedule, a cancel
}

// leaseWriter is the writer of a sharedStore.
type leaseWriter interface {
	// renew extends this process's leases of the jobs held names, the claimed jobs
	// its engine holds, tells the engine of those that another process asked to
	// stop (changeCancelAsked), and rescues up to limit jobs whose leases lapsed.
	// It returns how many it made ready again and how many it ended. A claim of
	// this process that its engine does not hold (one whose commit reported an
	// error after the server had committed it) lapses and is rescued, as a dead process's.
	renew(limit int, held []ID) (ready, ended int, err error)
	// claimedElsewhere reports whether another live process holds job id's claim.
	claimedElsewhere(id ID) bool
	// poke has the other processes poll after this transaction commits.
	poke()
}

// countDeltas are the changes a write transaction made to the counters, gathered
// as it goes and written once at its end (each store's flush); its reads of the
// counters add them, so that a transaction reads its own writes.
type countDeltas struct {
	deltas          map[string]*[numStates]int64 // queue → change per state
	suspendedDeltas [numSuspended]int64          // change per suspension
}

// count moves one job of queue from one state to another in the counters; 0 is
// "nowhere" (a new or deleted job).
func (c *countDeltas) count(queue string, from, to byte) {
	if from == to {
		return
	}
	d := c.deltas[queue]
	if d == nil {
		if c.deltas == nil {
			c.deltas = map[string]*[numStates]int64{}
		}
		d = new([numStates]int64)
		c.deltas[queue] = d
	}
	d[from]--
	d[to]++
}

// countSuspended moves a job from one suspension to another in the counters (0:
// none).
func (c *countDeltas) countSuspended(from, to byte) {
	if from != to {
		c.suspendedDeltas[from]--
		c.suspendedDeltas[to]++
	}
}

// addPending adds the changes to the counts of queue ("" for every queue) to out.
func (c *countDeltas) addPending(out map[State]int, queue string) {
	for q, d := range c.deltas {
		if queue == "" || q == queue {
			for st := stScheduled; st < numStates; st++ {
				out[stateNames[st]] += int(d[st])
			}
		}
	}
}

// addNewQueues adds to names the queues this transaction gave their first jobs.
func (c *countDeltas) addNewQueues(names []string) []string {
	for q, d := range c.deltas {
		if !slices.Contains(names, q) && slices.ContainsFunc(d[stScheduled:], func(n int64) bool { return n != 0 }) {
			names = append(names, q)
		}
	}
	return names
}

// compareCounts compares a recount, actual (queue → count per state), with the
// counters, stored, queue by queue: the counters' queues and the recount's, in
// byte order. For each counter that disagrees it reports a mismatch and, if fix is
// not nil, calls it with the recount to rewrite the counter; the transaction's own
// changes are in the recount, so they are dropped from what flush adds.
func (c *countDeltas) compareCounts(actual map[string]*[numStates]int, queues []string,
	stored func(queue string, st byte) int, fix func(queue string, st byte, n int) error) ([]CountMismatch, error) {
	for q := range actual {
		if !slices.Contains(queues, q) {
			queues = append(queues, q)
		}
	}
	slices.Sort(queues)
	var out []CountMismatch
	for _, q := range queues {
		a := actual[q]
		if a == nil {
			a = new([numStates]int)
		}
		for st := stScheduled; st < numStates; st++ {
			n := stored(q, st)
			if n == a[st] {
				continue
			}
			out = append(out, CountMismatch{Queue: q, State: stateNames[st], Stored: n, Actual: a[st]})
			if fix == nil {
				continue
			}
			if err := fix(q, st, a[st]); err != nil {
				return nil, err
			}
			if d := c.deltas[q]; d != nil {
				d[st] = 0
			}
		}
	}
	return out, nil
}

// claimSkipBudget bounds the ready jobs one claim steps over because their key is out
// of rate-limit tokens.
const claimSkipBudget = 1000

// suspensionNames name the counters of suspended runs in a CountMismatch.
var suspensionNames = [numSuspended]State{suspendedSleep: "sleeping", suspendedWait: "waiting", suspendedInvoke: "invoking"}

// claimedJob is a job claim took: its record as stored.
type claimedJob struct {
	id  ID
	rec *record
}

// inserted is what enqueue did with a record.
type inserted struct {
	id        ID
	duplicate bool      // refused: id is the existing job holding the key
	state     byte      // the state the job is in now (ready or scheduled)
	runAt     time.Time // when it is due
}

// changeKind is what a write did to a job.
type changeKind uint8

const (
	changeInserted    changeKind = iota + 1 // a new job stored
	changeMerged                            // a debounced enqueue moved a waiting job's args and time
	changeStarted                           // a claimed job's handler started
	changeProgress                          // a running job's progress or log stored
	changeMoved                             // transition moved the job (an outcome, due, Cancel, Retry, recovery)
	changeAdmitted                          // a keyed job got a slot of its key: it can be claimed
	changeQuarantined                       // its record was unreadable: failed, its bytes kept aside
	changeRemoved                           // deleted
	changeCancelAsked                       // its record asks a claimed job to stop (its parent ended): the engine cancels the handler
)

// jobChange is one change a store's write made, as the engine learns of it.
type jobChange struct {
	what    changeKind
	id      ID
	queue   string
	kind    string
	from    byte          // the state it was counted in before; 0 for a new job
	to      byte          // the state after; 0 once removed
	attempt int64         // attempts spent after the change
	err     string        // for a job that ended or waits to retry: the last attempt's error
	runAt   time.Time     // for a job waiting for a time: when it is due
	outcome outcome       // for changeMoved: what moved it
	wait    time.Duration // for changeStarted: from when the job was due to its start
}

// changeOf describes a write to job id whose record is now rec, counted before in
// state from.
func changeOf(what changeKind, id ID, rec *record, from byte) jobChange {
	c := jobChange{what: what, id: id, queue: rec.queue, kind: rec.kind, from: from, to: rec.state,
		attempt: rec.attempt}
	switch rec.state {
	case stScheduled, stRetrying:
		c.runAt = rec.runAt
	}
	switch what {
	case changeRemoved:
		c.to = 0
	case changeStarted:
		c.to = stRunning // the record keeps its state; the count moves
	case changeProgress:
		c.from, c.to = stRunning, stRunning
	}
	// The error of the attempt that ended, or of the last one before a change that
	// spent none; a job failed for crash-looping records it for the attempt it did
	// not finish.
	if n := len(rec.errors); n > 0 && rec.errors[n-1].Attempt >= int(rec.attempt) {
		c.err = rec.errors[n-1].Error
	}
	return c
}
