package jobrun

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// The runner keeps everything under one top-level bucket, so it can share a file with
// the application's own buckets (New) and enqueue inside the application's
// transactions (EnqueueTx).
//
//	jobrun/
//	  meta       "schema" → version (1 byte)
//	  jobs       id (8 B big-endian) → record (record.go)
//	  ready      len(queue) ‖ queue ‖ ^priority (8 B) ‖ id → ∅        next job of a queue: one Seek
//	  scheduled  run-at (8 B Unix ns) ‖ id → state (1 B) ‖ queue     earliest due first
//	  active     id → start time (8 B Unix ns, 0 until started) ‖ queue   claimed; at open: crashed
//	  finished   state (1 B) ‖ finished-at (8 B Unix ns) ‖ id → queue   retention, dead letters, lists
//	  counts     len(queue) ‖ queue ‖ state (1 B) → uint64 (8 B)   maintained in every commit
//	  corrupt    id → the undecodable record, kept for inspection
//	  queues     queue → flags (1 B: paused)                         persisted queue state
//	  unique     len(kind) ‖ kind ‖ key → id (8 B) ‖ until (8 B Unix ns)   idempotent enqueue
//	  schedules  name → schedule (JSON, schedule.go)                 cron schedules
//	  tags       len(tag) ‖ tag ‖ id → ∅                              List by tag
//	  keywait    len(queue) ‖ queue ‖ len(key) (2 B) ‖ key ‖ ^priority ‖ id → ∅   ready, waiting for a key slot (keys.go)
//	  keyslots   len(queue) ‖ queue ‖ key → uint64                   a key's jobs ready or running
//	  held       id → len(queue) ‖ queue ‖ key                       slots of abandoned handlers (keys.go)
//
// A ready entry's value is the job's concurrency key, empty if it has none.
//
// A claimed job leaves the ready index for active with a start time of 0, and still
// counts as ready: it is in a queue's claim-ahead window, not running. The commit
// after its handler starts stores the start time and counts it running, so that the
// running count never exceeds the workers. (Files of earlier versions stored the
// claim time there, which reads as started.)
//
// Schema 2 keyed finished by state, so that retention and the dead-letter set read one
// state's jobs oldest first without stepping over the others; opening a schema 1 file
// rewrites that index (migrateFinished).
const schemaVersion = 2

var (
	bucketRoot      = []byte("jobrun")
	bucketMeta      = []byte("meta")
	bucketJobs      = []byte("jobs")
	bucketReady     = []byte("ready")
	bucketScheduled = []byte("scheduled")
	bucketActive    = []byte("active")
	bucketFinished  = []byte("finished")
	bucketCounts    = []byte("counts")
	bucketCorrupt   = []byte("corrupt")
	bucketQueues    = []byte("queues")
	bucketUnique    = []byte("unique")
	bucketSchedules = []byte("schedules")
	bucketTags      = []byte("tags")
	bucketKeyWait   = []byte("keywait")
	bucketKeySlots  = []byte("keyslots")
	bucketHeld      = []byte("held")
	keySchema       = []byte("schema")

	// Buckets are only ever added: initSchema creates missing ones, so a file written
	// before a bucket existed opens without a schema change.
	allBuckets = [][]byte{bucketMeta, bucketJobs, bucketReady, bucketScheduled, bucketActive,
		bucketFinished, bucketCounts, bucketCorrupt, bucketQueues, bucketUnique, bucketSchedules, bucketTags,
		bucketKeyWait, bucketKeySlots, bucketHeld}

	// laterBuckets are buckets that no read needs, added after schema 2: a file an
	// earlier jobrun wrote lacks them, and a read-only runner opens it all the same.
	// A runner that runs its services creates them at open; only its writes use them.
	laterBuckets = [][]byte{bucketHeld}
)

// openFile opens the bbolt file at path for cfg, turning bbolt's errors, and the
// panics and memory faults with which it meets a damaged file, into the runner's.
func openFile(path string, cfg *config) (*bbolt.DB, error) {
	info, statErr := os.Stat(path)
	switch {
	case statErr == nil && info.IsDir():
		return nil, invalidf("%s is a directory", path)
	case statErr != nil && cfg.readOnly:
		if errors.Is(statErr, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: no such file (a read-only runner does not create one)", fs.ErrNotExist)
		}
		return nil, statErr
	case statErr == nil && info.Size() > 0 && !cfg.readOnly:
		// A truncated file passes bbolt's checks of its header pages, and bbolt
		// opening it to write reads its freelist past the end of the file, in
		// whatever memory follows the map: measure it read-only first.
		db, err := openBolt(path, cfg, bbolt.Options{ReadOnly: true})
		if err != nil {
			return nil, err
		}
		err = checkSize(db)
		db.Close()
		if err != nil {
			return nil, err
		}
	}
	db, err := openBolt(path, cfg, bbolt.Options{ReadOnly: cfg.readOnly})
	if err != nil {
		return nil, err
	}
	if err := checkSize(db); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// openBolt is bbolt.Open with cfg's lock timeout and the given options, with a panic
// or memory fault reported as ErrCorrupt and bbolt's errors worded for the user.
func openBolt(path string, cfg *config, opts bbolt.Options) (db *bbolt.DB, err error) {
	var file *os.File // as bbolt opened it, to release its lock if bbolt panics
	opts.Timeout = cfg.lockTimeout
	opts.OpenFile = func(name string, flag int, mode os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, mode)
		file = f
		return f, err
	}
	err = guard(func() error {
		db, err = bbolt.Open(path, 0o600, &opts)
		return err
	})
	if err != nil {
		if db == nil && file != nil && errors.Is(err, ErrCorrupt) {
			file.Close() // bbolt panicked before it could
		}
		return nil, describeOpenError(err, cfg)
	}
	return db, nil
}

// describeOpenError words an error of bbolt.Open for the runner's user.
func describeOpenError(err error, cfg *config) error {
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return fmt.Errorf("%w (waited %v)", ErrLocked, cfg.lockTimeout)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrVersionMismatch),
		strings.Contains(err.Error(), "file size too small"):
		return fmt.Errorf("%w: not a jobrun or bbolt database file (%v)", ErrCorrupt, err)
	case errors.Is(err, bolterrors.ErrChecksum):
		return fmt.Errorf("%w: both of its header pages fail their checksum (%v)%s", ErrCorrupt, err, corruptAdvice)
	}
	return err
}

// corruptAdvice ends every message about a damaged file.
const corruptAdvice = "; restore the file from a backup (Runner.Backup, jobrun backup), or copy every job that can be read into a new file with jobrun salvage FILE NEWFILE (jobrun.Salvage)"

// checkSize refuses a file shorter than the pages its header says it holds.
func checkSize(db *bbolt.DB) error {
	info, err := os.Stat(db.Path())
	if err != nil {
		return err
	}
	var want int64
	if err := guard(func() error {
		return db.View(func(tx *bbolt.Tx) error {
			want = tx.Size()
			return nil
		})
	}); err != nil {
		return err
	}
	if want > info.Size() {
		return fmt.Errorf("%w: the file is %d bytes but its pages need %d: it was truncated%s",
			ErrCorrupt, info.Size(), want, corruptAdvice)
	}
	return nil
}

// guard runs fn, turning a panic or a memory fault inside it (bbolt meeting a damaged
// page) into an error wrapping ErrCorrupt. bbolt's View and Update roll their
// transaction back on the way out of a panic, so the database stays usable for
// closing.
func guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if v := recover(); v != nil {
			what := fmt.Sprint(v)
			if _, fault := v.(interface{ Addr() uintptr }); fault {
				what = "reading it faulted (" + what + ")"
			}
			err = fmt.Errorf("%w: %s%s%s", ErrCorrupt, pageUnreadable, what, corruptAdvice)
		}
	}()
	return fn()
}

// updateGuarded is db.Update with a damaged page reported as ErrCorrupt, not a
// panic. A panic inside fn becomes fn's error, so bbolt rolls back as after any
// error. A panic in the commit leaves bbolt to roll back on the way out, which
// reads the freelist page again; if that page is damaged too, the rollback panics
// and leaves the transaction open, holding the database's locks, so that Close
// would wait forever: the transaction is then rolled back without that read.
func updateGuarded(db *bbolt.DB, fn func(tx *bbolt.Tx) error) error {
	var open *bbolt.Tx
	err := guard(func() error {
		return db.Update(func(tx *bbolt.Tx) error {
			open = tx
			return guard(func() error { return fn(tx) })
		})
	})
	if open != nil && open.DB() != nil {
		guard(open.Rollback)
	}
	return err
}

// pageUnreadable begins the message of guard's errors, after the sentinel's.
const pageUnreadable = "a page of it cannot be read: "

// schemaCurrent reports whether the file holds runner data of this schema with every
// bucket, so that opening it needs no write.
func schemaCurrent(tx *bbolt.Tx) (bool, error) {
	root := tx.Bucket(bucketRoot)
	if root == nil {
		return false, nil
	}
	meta := root.Bucket(bucketMeta)
	if meta == nil {
		return false, nil
	}
	if v := meta.Get(keySchema); len(v) == 1 && v[0] > schemaVersion {
		return false, fmt.Errorf("%w: the file has schema version %d, this build of jobrun reads up to %d; upgrade jobrun",
			ErrSchema, v[0], schemaVersion)
	} else if len(v) != 1 || v[0] != schemaVersion {
		return false, nil
	}
	for _, name := range allBuckets {
		if slices.ContainsFunc(laterBuckets, func(b []byte) bool { return bytes.Equal(b, name) }) {
			continue
		}
		if root.Bucket(name) == nil {
			return false, nil
		}
	}
	return true, nil
}

// txn is one write or read transaction over the runner's buckets, with the count
// changes it makes gathered and written once at flush.
type txn struct {
	tx        *bbolt.Tx
	now       time.Time
	jobs      *bbolt.Bucket
	ready     *bbolt.Bucket
	scheduled *bbolt.Bucket
	active    *bbolt.Bucket
	finished  *bbolt.Bucket
	counts    *bbolt.Bucket
	corrupt   *bbolt.Bucket
	queues    *bbolt.Bucket
	unique    *bbolt.Bucket
	schedules *bbolt.Bucket
	tags      *bbolt.Bucket
	keywait   *bbolt.Bucket
	keyslots  *bbolt.Bucket
	held      *bbolt.Bucket
	cfg       *config                      // key limits; nil in read transactions
	deltas    map[string]*[numStates]int64 // queue → change per state
}

// errNoRunnerData means the file holds no runner bucket, as in a transaction the
// application began before New initialized the file.
var errNoRunnerData = fmt.Errorf("%w: no runner bucket in this database; was it opened with jobrun.New?", ErrSchema)

func openTxn(tx *bbolt.Tx, now time.Time) (*txn, error) {
	root := tx.Bucket(bucketRoot)
	if root == nil {
		return nil, errNoRunnerData
	}
	t := &txn{tx: tx, now: now}
	for _, p := range []struct {
		b    **bbolt.Bucket
		name []byte
	}{{&t.jobs, bucketJobs}, {&t.ready, bucketReady}, {&t.scheduled, bucketScheduled},
		{&t.active, bucketActive}, {&t.finished, bucketFinished}, {&t.counts, bucketCounts},
		{&t.corrupt, bucketCorrupt}, {&t.queues, bucketQueues}, {&t.unique, bucketUnique},
		{&t.schedules, bucketSchedules}, {&t.tags, bucketTags},
		{&t.keywait, bucketKeyWait}, {&t.keyslots, bucketKeySlots}, {&t.held, bucketHeld}} {
		if *p.b = root.Bucket(p.name); *p.b == nil && !slices.ContainsFunc(laterBuckets, func(b []byte) bool { return bytes.Equal(b, p.name) }) {
			return nil, fmt.Errorf("%w: bucket %s missing", ErrSchema, p.name)
		}
	}
	// Jobs are appended in ID order and rarely grow after; fuller pages mean fewer
	// pages to write per commit.
	t.jobs.FillPercent = 0.9
	return t, nil
}

// initSchema creates the buckets of a new file and checks the schema of an existing one.
func initSchema(tx *bbolt.Tx) error {
	if root := tx.Bucket(bucketRoot); root != nil {
		if meta := root.Bucket(bucketMeta); meta == nil || meta.Get(keySchema) == nil {
			// A bucket of that name that this runner did not create: an empty one is
			// adopted; one with contents belongs to someone else.
			if k, _ := root.Cursor().First(); k != nil {
				return fmt.Errorf("%w: the database has a bucket %q that holds other data; jobrun keeps its data in a bucket of that name",
					ErrSchema, bucketRoot)
			}
		}
	}
	root, err := tx.CreateBucketIfNotExists(bucketRoot)
	if err != nil {
		return fmt.Errorf("create runner bucket: %w", err)
	}
	for _, name := range allBuckets {
		if v := root.Get(name); v != nil {
			return fmt.Errorf("%w: %q in the runner bucket is a value, not a bucket", ErrSchema, name)
		}
		if _, err := root.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	meta := root.Bucket(bucketMeta)
	switch v := meta.Get(keySchema); {
	case v == nil:
		return meta.Put(keySchema, []byte{schemaVersion})
	case len(v) != 1:
		return fmt.Errorf("%w: unreadable schema version %x", ErrSchema, v)
	case v[0] > schemaVersion:
		return fmt.Errorf("%w: the file has schema version %d, this build of jobrun reads up to %d; upgrade jobrun",
			ErrSchema, v[0], schemaVersion)
	case v[0] < 2:
		if err := migrateFinished(root); err != nil {
			return fmt.Errorf("upgrade schema 1 to 2: %w", err)
		}
		return meta.Put(keySchema, []byte{schemaVersion})
	}
	return nil
}

// migrateFinished rewrites schema 1's finished index (finished-at ‖ id → ∅) as schema
// 2's (state ‖ finished-at ‖ id → queue), reading each job's state and queue from its
// record. An entry whose record is unreadable keeps its place as a failed job.
func migrateFinished(root *bbolt.Bucket) error {
	finished, jobs := root.Bucket(bucketFinished), root.Bucket(bucketJobs)
	type entry struct{ old, key, queue []byte }
	var entries []entry
	err := finished.ForEach(func(k, _ []byte) error {
		_, id, ok := parseTimeKey(k) // schema 1: finished-at ‖ id
		if !ok {
			return nil
		}
		state, queue := stFailed, []byte(nil)
		if r, err := decodeRecord(jobs.Get(idKey(id))); err == nil {
			state, queue = r.state, []byte(r.queue)
		}
		entries = append(entries, entry{bytes.Clone(k), append([]byte{state}, k...), queue})
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := finished.Delete(e.old); err != nil {
			return err
		}
		if err := finished.Put(e.key, e.queue); err != nil {
			return err
		}
	}
	return nil
}

// Records.

func (t *txn) get(id ID) (*record, error) {
	v := t.jobs.Get(idKey(id))
	if v == nil {
		return nil, ErrNotFound
	}
	return decodeRecord(v)
}

func (t *txn) put(id ID, r *record) error {
	return t.jobs.Put(idKey(id), r.encode())
}

// insert stores a new job, ready or scheduled by its run time, and returns its ID.
func (t *txn) insert(r *record) (ID, error) {
	seq, err := t.jobs.NextSequence()
	if err != nil {
		return 0, err
	}
	id := ID(seq)
	if r.runAt.After(t.now) {
		r.state = stScheduled
		err = t.addScheduled(id, r)
	} else {
		r.state = stReady
		err = t.enterReady(id, r)
	}
	if err != nil {
		return 0, err
	}
	if err := t.put(id, r); err != nil {
		return 0, err
	}
	for _, tag := range r.tags {
		if err := t.tags.Put(tagKey(tag, id), nil); err != nil {
			return 0, err
		}
	}
	t.count(r.queue, 0, r.state)
	return id, nil
}

// count moves one job of queue from one state to another in the counters; 0 is
// "nowhere" (a new or deleted job).
func (t *txn) count(queue string, from, to byte) {
	if from == to {
		return
	}
	d := t.deltas[queue]
	if d == nil {
		if t.deltas == nil {
			t.deltas = map[string]*[numStates]int64{}
		}
		d = new([numStates]int64)
		t.deltas[queue] = d
	}
	d[from]--
	d[to]++
}

// flush writes the gathered count changes; call it last in every write transaction.
func (t *txn) flush() error {
	for queue, d := range t.deltas {
		for st := stScheduled; st < numStates; st++ {
			if d[st] == 0 {
				continue
			}
			k := countKey(queue, st)
			n, _ := parseCount(t.counts.Get(k))
			if err := t.counts.Put(k, countValue(n+d[st])); err != nil {
				return err
			}
		}
	}
	t.deltas = nil
	return nil
}

// readCounts returns the counters of one queue, or of all queues summed if queue is "".
func (t *txn) readCounts(queue string) map[State]int {
	out := make(map[State]int, len(States))
	for _, s := range States {
		out[s] = 0
	}
	c := t.counts.Cursor()
	var prefix []byte
	if queue != "" {
		prefix = queuePrefix(queue)
	}
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		_, st, ok := parseCountKey(k)
		n, nok := parseCount(v)
		if ok && nok && st > 0 && st < numStates {
			out[stateNames[st]] += int(n)
		}
	}
	return out
}

// queueNames returns every queue that has counters, in byte order.
func (t *txn) queueNames() []string {
	var names []string
	c := t.counts.Cursor()
	for k, _ := c.First(); k != nil; {
		q, _, ok := cutName(k)
		if !ok {
			k, _ = c.Next() // not a counter's key
			continue
		}
		names = append(names, q)
		// Skip the queue's other state keys.
		k, _ = c.Seek(append(queuePrefix(q), 0xff))
	}
	return names
}

// Claims and indexes.

// claimSkipBudget bounds the ready jobs one claim steps over because their key is out
// of rate-limit tokens.
const claimSkipBudget = 1000

// claim takes up to n ready jobs of queue, best first, and up to extra more that
// outrank priority beat, moves them to the active index as claimed (not started) and
// returns them. take, if not nil, is asked before each job with its concurrency key:
// ok false skips the job (its key is rate limited), stop ends the claim (the queue's
// limiter is out of tokens). A record that cannot be decoded is failed on the spot.
func (t *txn) claim(queue string, n, extra int, beat int64, take func(key []byte) (ok, stop bool)) ([]*execution, error) {
	prefix := queuePrefix(queue)
	c := t.ready.Cursor()
	type entry struct{ k, key []byte }
	var entries []entry
	skipped := 0
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(entries) < n+extra; k, v = c.Next() {
		if _, p, _, ok := parseReadyKey(k); len(entries) >= n && (!ok || p <= beat) {
			break // the index is in priority order: nothing further outranks beat
		}
		if take != nil {
			ok, stop := take(v)
			if stop {
				break
			}
			if !ok {
				if skipped++; skipped == claimSkipBudget {
					break
				}
				continue
			}
		}
		entries = append(entries, entry{bytes.Clone(k), bytes.Clone(v)})
	}
	claimed := make([]*execution, 0, len(entries))
	stamp := activeValue(time.Time{}, queue) // claimed, not started
	for _, en := range entries {
		k := en.k
		if err := t.ready.Delete(k); err != nil {
			return nil, err
		}
		_, _, id, _ := parseReadyKey(k) // the loop above only takes the queue's keys
		r, err := t.get(id)
		if err != nil {
			if err := t.quarantine(id, queue, stReady, err); err != nil {
				return nil, err
			}
			if len(en.key) > 0 {
				// The record is gone but the index names its key: free the slot.
				if err := t.releaseSlot(queue, string(en.key), nil); err != nil {
					return nil, err
				}
			}
			continue
		}
		if err := t.active.Put(idKey(id), stamp); err != nil {
			return nil, err
		}
		claimed = append(claimed, &execution{id: id, rec: r})
	}
	return claimed, nil
}

// markStarted records that a claimed job's handler started at: it counts as running.
func (t *txn) markStarted(id ID, queue string, at time.Time) error {
	if err := t.active.Put(idKey(id), activeValue(at, queue)); err != nil {
		return err
	}
	t.count(queue, stReady, stRunning)
	return nil
}

// quarantine handles a job whose record is missing or cannot be decoded: the raw bytes
// move to the corrupt bucket and the job is stored as failed with the reason, so it
// stays visible and the runner goes on with other jobs.
func (t *txn) quarantine(id ID, queue string, from byte, cause error) error {
	raw := t.jobs.Get(idKey(id))
	if raw == nil {
		// An index entry without a job: nothing to keep.
		t.count(queue, from, 0)
		return nil
	}
	if err := t.corrupt.Put(idKey(id), bytes.Clone(raw)); err != nil {
		return err
	}
	r := &record{queue: queue, state: stFailed, maxAttempts: 1, finishedAt: t.now}
	r.appendError(0, t.now, fmt.Sprintf("stored job record is unreadable (%v); its bytes are kept in the corrupt bucket", cause))
	if err := t.put(id, r); err != nil {
		return err
	}
	t.count(queue, from, stFailed)
	return t.addFinished(id, r)
}

// addReady puts a job in the ready index; a keyed job must hold a slot (enterReady).
func (t *txn) addReady(id ID, r *record) error {
	return t.ready.Put(readyKey(r.queue, r.priority, id), []byte(r.concKey))
}

func (t *txn) addScheduled(id ID, r *record) error {
	return t.scheduled.Put(timeKey(r.runAt, id), scheduledValue(r.state, r.queue))
}

func (t *txn) addFinished(id ID, r *record) error {
	return t.finished.Put(finishedKey(r.state, r.finishedAt, id), []byte(r.queue))
}

func (t *txn) removeActive(id ID) error { return t.active.Delete(idKey(id)) }

// promote makes up to n scheduled jobs whose time has come ready, noting the queues
// it touched in res, and returns when the next scheduled job is due (zero if none).
func (t *txn) promote(n int, res *cycleResult) (next time.Time, err error) {
	c := t.scheduled.Cursor()
	now := t.now
	type due struct{ key, val []byte }
	var dues []due
	k, v := c.First()
	for ; k != nil && len(dues) < n; k, v = c.Next() {
		if at, _, ok := parseTimeKey(k); ok && at.After(now) {
			break
		}
		dues = append(dues, due{bytes.Clone(k), bytes.Clone(v)}) // a malformed key is removed
	}
	if at, _, ok := parseTimeKey(k); ok {
		next = at
	}
	for _, d := range dues {
		if err := t.scheduled.Delete(d.key); err != nil {
			return time.Time{}, err
		}
		_, id, ok := parseTimeKey(d.key)
		if !ok {
			continue
		}
		r, err := t.get(id)
		if err != nil {
			from, queue, ok := parseScheduledValue(d.val)
			if !ok {
				from = stScheduled
			}
			if err := t.quarantine(id, queue, from, err); err != nil {
				return time.Time{}, err
			}
			continue
		}
		if err := t.change(id, r, outcomeDue, r.state, res); err != nil {
			return time.Time{}, err
		}
	}
	if len(dues) == n && next.IsZero() {
		// Stopped at the batch size: more may be due now.
		next = t.now
	}
	return next, nil
}

// nextDue returns when the earliest scheduled job is due, zero if none is.
func (t *txn) nextDue() time.Time {
	k, _ := t.scheduled.Cursor().First()
	at, _, _ := parseTimeKey(k)
	return at
}

// recoverActive makes every job left running by a process that died ready again
// without spending an attempt, or fails it once it has been recovered more than limit
// times, or cancels it if Cancel asked while it ran. It returns how many it made ready
// and how many it ended.
func (t *txn) recoverActive(limit int) (ready, failed int, err error) {
	type entry struct {
		id    ID
		queue string
		from  byte // counted as running, or as ready if it never started
	}
	var entries []entry
	c := t.active.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		id, ok := parseIDKey(k)
		if _, queue, vok := parseActiveValue(v); ok && vok {
			entries = append(entries, entry{id, queue, activeState(v)})
		}
	}
	for _, e := range entries {
		id := e.id
		if err := t.removeActive(id); err != nil {
			return ready, failed, err
		}
		r, err := t.get(id)
		if err != nil {
			if err := t.quarantine(id, e.queue, e.from, err); err != nil {
				return ready, failed, err
			}
			failed++
			continue
		}
		nx, err := transition(r, ending{outcome: outcomeRecovered, recoveries: limit}, t.now)
		if err == nil {
			err = t.settle(id, r, nx, e.from, nil)
		}
		if err == nil {
			err = t.put(id, r)
		}
		if err != nil {
			return ready, failed, err
		}
		if nx.ended {
			failed++
		} else {
			ready++
		}
	}
	return ready, failed, nil
}

// activeSince reports whether a job is claimed (in the active index) and, if its
// handler started, when; the zero time while it waits in its queue's lineup.
func (t *txn) activeSince(id ID) (time.Time, bool) {
	started, _, ok := parseActiveValue(t.active.Get(idKey(id)))
	return started, ok
}

// infoOf reads the public view of a job, with its running state from the active
// index: a claimed job that has not started is ready.
func (t *txn) infoOf(id ID) (*Info, error) {
	r, err := t.get(id)
	if err != nil {
		return nil, err
	}
	in := r.info(id)
	if at, ok := t.activeSince(id); ok && !at.IsZero() {
		in.State = StateRunning
		in.Attempt++
		in.StartedAt = at
	}
	return &in, nil
}

// Queue flags, in the queues bucket.
const queuePaused byte = 1

func (t *txn) pausedQueues() map[string]bool {
	paused := map[string]bool{}
	t.queues.ForEach(func(k, v []byte) error {
		if len(v) > 0 && v[0]&queuePaused != 0 {
			paused[string(k)] = true
		}
		return nil
	})
	return paused
}

func (t *txn) setPaused(queue string, paused bool) error {
	var flags byte
	if v := t.queues.Get([]byte(queue)); len(v) > 0 {
		flags = v[0]
	}
	if paused {
		flags |= queuePaused
	} else {
		flags &^= queuePaused
	}
	return t.queues.Put([]byte(queue), []byte{flags})
}

// settle writes what transition decided for a job that left the active index: its
// concurrency key's slot, its index entry, its unique key and the counters, from
// state from. res, if not nil, learns of ready queues, due times and final states.
func (t *txn) settle(id ID, rec *record, nx next, from byte, res *cycleResult) error {
	if rec.concKey != "" {
		var err error
		switch nx.slot {
		case slotRelease:
			err = t.releaseSlot(rec.queue, rec.concKey, res)
		case slotHold:
			err = t.holdSlot(id, rec.queue, rec.concKey)
		}
		if err != nil {
			return err
		}
	}
	var err error
	switch {
	case nx.ended:
		err = t.addFinished(id, rec)
		if err == nil {
			err = t.releaseUnique(id, rec)
		}
	case rec.state == stReady && nx.readyK:
		err = t.addReady(id, rec)
	case rec.state == stReady:
		err = t.enterReady(id, rec)
	default:
		err = t.addScheduled(id, rec)
	}
	if err != nil {
		return err
	}
	if res != nil {
		switch {
		case nx.ended:
			res.finished = true
		case rec.state == stReady:
			res.touched[rec.queue] = true
		default:
			res.due(rec.runAt)
		}
	}
	t.count(rec.queue, from, rec.state)
	return nil
}

// stateOf is a job's state as Get reports it.
func (t *txn) stateOf(id ID, r *record) State {
	if at, active := t.activeSince(id); active && !at.IsZero() {
		return StateRunning
	}
	return stateNames[r.state]
}

func final(state byte) bool { return state == stDone || state == stFailed || state == stCanceled }

// inserted is what enqueue did with a record.
type inserted struct {
	id        ID
	duplicate bool      // refused: id is the existing job holding the key
	state     byte      // the state the job is in now (ready or scheduled)
	runAt     time.Time // when it is due
}

// enqueue stores a new job, unless its unique key refuses it or, for Debounce, merges
// it into the job waiting under the same key.
func (t *txn) enqueue(r *record) (inserted, error) {
	var uk []byte
	if r.uniqueMode != uniqueNone {
		uk = uniqueIndexKey(r.kind, r.uniqueKey)
		if held, until, ok := parseUniqueValue(t.unique.Get(uk)); ok {
			if ins, done, err := t.applyUnique(r, held, until); done || err != nil {
				return ins, err
			}
		}
	}
	id, err := t.insert(r)
	if err != nil {
		return inserted{}, err
	}
	if uk != nil {
		var until time.Time
		if r.uniqueMode == uniqueThrottle {
			until = r.createdAt.Add(r.uniqueFor)
		}
		if err := t.unique.Put(uk, uniqueValue(id, until)); err != nil {
			return inserted{}, err
		}
	}
	return inserted{id: id, state: r.state, runAt: r.runAt}, nil
}

// applyUnique decides what a new job does when job held has its key: done reports
// that the new job is settled (refused or merged) and must not be inserted.
func (t *txn) applyUnique(r *record, held ID, until time.Time) (ins inserted, done bool, err error) {
	old, err := t.get(held)
	if err != nil {
		return inserted{}, false, nil // a stale entry: the key is free
	}
	_, running := t.activeSince(held)
	switch r.uniqueMode {
	case uniqueThrottle:
		if t.now.Before(until) {
			return inserted{id: held, duplicate: true}, true, nil
		}
	case uniqueUnfinished:
		if running || !final(old.state) {
			return inserted{id: held, duplicate: true}, true, nil
		}
	case uniqueDebounce:
		if running || old.state != stScheduled {
			return inserted{}, false, nil // it started or ended: the new job stands alone
		}
		if err := t.scheduled.Delete(timeKey(old.runAt, held)); err != nil {
			return inserted{}, false, err
		}
		old.args, old.runAt = r.args, r.runAt
		if err := t.addScheduled(held, old); err != nil {
			return inserted{}, false, err
		}
		if err := t.put(held, old); err != nil {
			return inserted{}, false, err
		}
		return inserted{id: held, state: stScheduled, runAt: old.runAt}, true, nil
	}
	return inserted{}, false, nil
}

// releaseUnique frees a finished job's unique key, unless a throttle period holds it
// or another job took it over.
func (t *txn) releaseUnique(id ID, r *record) error {
	if r.uniqueMode == uniqueNone || r.uniqueMode == uniqueThrottle {
		return nil
	}
	uk := uniqueIndexKey(r.kind, r.uniqueKey)
	if held, _, ok := parseUniqueValue(t.unique.Get(uk)); ok && held == id {
		return t.unique.Delete(uk)
	}
	return nil
}

// unindex removes a job that is not running from its state's index.
func (t *txn) unindex(id ID, r *record, res *cycleResult) error {
	switch r.state {
	case stReady:
		return t.leaveReady(id, r, res)
	case stScheduled, stRetrying:
		return t.scheduled.Delete(timeKey(r.runAt, id))
	case stDone, stFailed, stCanceled:
		return t.finished.Delete(finishedKey(r.state, r.finishedAt, id))
	}
	return nil
}

// remove deletes a job that is not running, with every index entry that names it.
func (t *txn) remove(id ID, r *record, res *cycleResult) error {
	if err := t.unindex(id, r, res); err != nil {
		return err
	}
	if err := t.releaseUnique(id, r); err != nil {
		return err
	}
	for _, tag := range r.tags {
		if err := t.tags.Delete(tagKey(tag, id)); err != nil {
			return err
		}
	}
	if err := t.corrupt.Delete(idKey(id)); err != nil {
		return err
	}
	t.count(r.queue, r.state, 0)
	res.event(id, r, EventDeleted)
	return t.jobs.Delete(idKey(id))
}

// takeUnique gives a job that runs again (Retry) its unique key back. It fails with
// ErrDuplicate if another unfinished job holds the key now.
func (t *txn) takeUnique(id ID, r *record) error {
	if r.uniqueMode != uniqueUnfinished && r.uniqueMode != uniqueDebounce {
		return nil
	}
	uk := uniqueIndexKey(r.kind, r.uniqueKey)
	if held, _, ok := parseUniqueValue(t.unique.Get(uk)); ok {
		if held != id {
			if old, err := t.get(held); err == nil {
				if _, running := t.activeSince(held); running || !final(old.state) {
					return fmt.Errorf("%w: job %d holds key %q", ErrDuplicate, held, r.uniqueKey)
				}
			}
		}
	}
	return t.unique.Put(uk, uniqueValue(id, time.Time{}))
}

// sweep calls fn for up to limit jobs in final state st, oldest first, that finished
// before before and belong to queue ("" for any), starting after the index key after
// (nil: from the oldest). It looks at no more than budget index entries, so one call
// stays short even when most entries belong to other queues, and returns the key to
// resume after, nil when no entry before the cut is left.
func (t *txn) sweep(st byte, queue string, before time.Time, after []byte, limit, budget int,
	fn func(id ID, r *record) error) (resume []byte, err error) {
	c := t.finished.Cursor()
	prefix := []byte{st}
	k, v := seekPast(c, prefix, after)
	cut := unixNanos(before)
	var hits []finishedEntry
	for n := 0; ; k, v = c.Next() {
		_, at, _, ok := parseFinishedKey(k)
		if k == nil || !bytes.HasPrefix(k, prefix) || !ok || unixNanos(at) >= cut {
			resume = nil
			break
		}
		if len(hits) == limit || n == budget {
			break
		}
		n++
		resume = bytes.Clone(k)
		if queue == "" || string(v) == queue {
			hits = append(hits, entryOf(k, v))
		}
	}
	for _, h := range hits {
		if err := fn(h.id, t.finishedRecord(h)); err != nil {
			return nil, err
		}
	}
	return resume, nil
}

// finishedEntry is what an entry of the finished index says of a job.
type finishedEntry struct {
	id    ID
	state byte
	queue string
	at    time.Time
}

func entryOf(k, v []byte) finishedEntry {
	st, at, id, _ := parseFinishedKey(k)
	return finishedEntry{id, st, string(v), at}
}

// finishedRecord reads the job of a finished-index entry or, if its record is
// unreadable, returns a stand-in that names the entry, so that it can be removed.
func (t *txn) finishedRecord(e finishedEntry) *record {
	r, err := t.get(e.id)
	if err != nil {
		return &record{queue: e.queue, state: e.state, finishedAt: e.at}
	}
	return r
}

// seekPast positions c at the first key with prefix, or with after set, at the first
// key past after (which may be gone since).
func seekPast(c *bbolt.Cursor, prefix, after []byte) (k, v []byte) {
	if after == nil {
		return c.Seek(prefix)
	}
	if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
		k, v = c.Next()
	}
	return k, v
}
