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
	"sync"
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
//	  steps      id ‖ step key → step (step.go)                        a job's stored steps
//	  events     seq (8 B) → event (event.go)                          sent events, oldest first
//	  eventnames len(name) ‖ name ‖ seq → ∅                            events by name
//	  eventids   event ID → seq (8 B) ‖ sent-at (8 B Unix ns)          the dedup window
//	  eventcancels  as eventwaits ‖ id → ∅                             CancelOn
//	  suspended  suspension (1 B: sleep, wait, invoke) → uint64 (8 B)   runs suspended in a step, counted in every commit
//	  functions  kind → function (function.go)                       the functions of events, for processes without them
//	  eventwaits len(name) ‖ name ‖ len(field) ‖ field ‖ len(value) (2 B) ‖ value ‖ id → step key   WaitFor
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
	bucketRoot         = []byte("jobrun")
	bucketMeta         = []byte("meta")
	bucketJobs         = []byte("jobs")
	bucketReady        = []byte("ready")
	bucketScheduled    = []byte("scheduled")
	bucketActive       = []byte("active")
	bucketFinished     = []byte("finished")
	bucketCounts       = []byte("counts")
	bucketCorrupt      = []byte("corrupt")
	bucketQueues       = []byte("queues")
	bucketUnique       = []byte("unique")
	bucketSchedules    = []byte("schedules")
	bucketTags         = []byte("tags")
	bucketKeyWait      = []byte("keywait")
	bucketKeySlots     = []byte("keyslots")
	bucketHeld         = []byte("held")
	bucketSteps        = []byte("steps")
	bucketEvents       = []byte("events")
	bucketEventNames   = []byte("eventnames")
	bucketEventIDs     = []byte("eventids")
	bucketEventWaits   = []byte("eventwaits")
	bucketFunctions    = []byte("functions")
	bucketEventCancels = []byte("eventcancels")
	bucketSuspended    = []byte("suspended")
	bucketHistory      = []byte("history")
	keySchema          = []byte("schema")

	// Buckets are only ever added: initSchema creates missing ones, so a file written
	// before a bucket existed opens without a schema change.
	allBuckets = [][]byte{bucketMeta, bucketJobs, bucketReady, bucketScheduled, bucketActive,
		bucketFinished, bucketCounts, bucketCorrupt, bucketQueues, bucketUnique, bucketSchedules, bucketTags,
		bucketKeyWait, bucketKeySlots, bucketHeld, bucketSteps, bucketEvents, bucketEventNames, bucketEventIDs, bucketEventWaits, bucketFunctions, bucketEventCancels, bucketSuspended, bucketHistory}

	// laterBuckets are buckets added after schema 2: a file an earlier jobrun wrote
	// lacks them, and a read-only runner opens it all the same, reading them as
	// empty. A runner that writes creates them at open.
	laterBuckets = [][]byte{bucketHeld, bucketSteps, bucketEvents, bucketEventNames, bucketEventIDs, bucketEventWaits, bucketFunctions, bucketEventCancels, bucketSuspended, bucketHistory}
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
			if f, ok := v.(schemaFault); ok {
				err = f.err
				return
			}
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
// bucket, so that opening it needs no write; a runner that reads only (writes false)
// does without laterBuckets.
func schemaCurrent(tx *bbolt.Tx, writes bool) (bool, error) {
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
		if !writes && slices.ContainsFunc(laterBuckets, func(b []byte) bool { return bytes.Equal(b, name) }) {
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
	tx      *bbolt.Tx
	now     time.Time
	root    *bbolt.Bucket
	buckets [numBuckets]*bbolt.Bucket // opened on first use: a commit touches few
	cfg     *config                   // key limits and retention
	countDeltas
	changes []jobChange // what the writes did, for the engine
}

// log records a change this transaction made.
func (t *txn) log(c jobChange) { t.changes = append(t.changes, c) }

// errNoRunnerData means the file holds no runner bucket, as in a transaction the
// application began before New initialized the file.
var errNoRunnerData = fmt.Errorf("%w: no runner bucket in this database; was it opened with jobrun.New?", ErrSchema)

func openTxn(tx *bbolt.Tx, now time.Time) (*txn, error) {
	root := tx.Bucket(bucketRoot)
	if root == nil {
		return nil, errNoRunnerData
	}
	return &txn{tx: tx, now: now, root: root}, nil
}

// The buckets, by their index in allBuckets.
const (
	bMeta = iota
	bJobs
	bReady
	bScheduled
	bActive
	bFinished
	bCounts
	bCorrupt
	bQueues
	bUnique
	bSchedules
	bTags
	bKeyWait
	bKeySlots
	bHeld
	bSteps
	bEvents
	bEventNames
	bEventIDs
	bEventWaits
	bFunctions
	bEventCancels
	bSuspended
	bHistory
	numBuckets
)

// bucket opens bucket i of the runner's, once per transaction. A bucket that is
// missing, other than one of laterBuckets (nil then), means the file was changed by
// something other than jobrun: the panic, an error wrapping ErrSchema, ends the
// transaction through guard.
func (t *txn) bucket(i int) *bbolt.Bucket {
	if b := t.buckets[i]; b != nil {
		return b
	}
	b := t.root.Bucket(allBuckets[i])
	if b == nil {
		if slices.ContainsFunc(laterBuckets, func(l []byte) bool { return bytes.Equal(l, allBuckets[i]) }) {
			return nil
		}
		panic(schemaFault{fmt.Errorf("%w: bucket %s missing", ErrSchema, allBuckets[i])})
	}
	switch i {
	case bJobs, bFinished, bSteps, bEvents, bEventNames:
		// Keys appended in order (IDs, finish times, Seqs) to entries that rarely
		// grow after: a page split at bbolt's default half leaves half-empty pages
		// behind, and fuller pages mean fewer pages to write per commit (W4 19.2
		// pages per commit with the finished and steps buckets filled so, 20.0
		// without; W7 14.5 and 14.8).
		b.FillPercent = 0.9
	}
	t.buckets[i] = b
	return b
}

// schemaFault is the panic of a missing bucket; guard returns its error.
type schemaFault struct{ err error }

func (t *txn) jobs() *bbolt.Bucket      { return t.bucket(bJobs) }
func (t *txn) ready() *bbolt.Bucket     { return t.bucket(bReady) }
func (t *txn) scheduled() *bbolt.Bucket { return t.bucket(bScheduled) }
func (t *txn) active() *bbolt.Bucket    { return t.bucket(bActive) }
func (t *txn) finished() *bbolt.Bucket  { return t.bucket(bFinished) }
func (t *txn) counts() *bbolt.Bucket    { return t.bucket(bCounts) }
func (t *txn) corrupt() *bbolt.Bucket   { return t.bucket(bCorrupt) }
func (t *txn) queues() *bbolt.Bucket    { return t.bucket(bQueues) }
func (t *txn) unique() *bbolt.Bucket    { return t.bucket(bUnique) }
func (t *txn) schedules() *bbolt.Bucket { return t.bucket(bSchedules) }
func (t *txn) tags() *bbolt.Bucket      { return t.bucket(bTags) }
func (t *txn) keywait() *bbolt.Bucket   { return t.bucket(bKeyWait) }
func (t *txn) keyslots() *bbolt.Bucket  { return t.bucket(bKeySlots) }
func (t *txn) held() *bbolt.Bucket      { return t.bucket(bHeld) }

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

// Claims and indexes.

// closeBounded closes db, waiting at most wait: bbolt can panic on a damaged page
// after it took its write lock and before it set up the rollback that releases it,
// and its Close then waits for that lock forever. Past wait, the close is left to
// finish, or not, on its own goroutine, which then holds the file until the process
// exits; Open has returned the ErrCorrupt error that says why by then.
func closeBounded(db *bbolt.DB, wait time.Duration) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		db.Close()
	}()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
	}
}

// runnersByDB holds every database a Runner of this process uses: a second runner on
// one database would take the first one's running jobs for crashed ones.
var runnersByDB sync.Map // *bbolt.DB → struct{}

// prepareFile creates or upgrades the runner's buckets. A file of the current schema
// is left as it is, so that a runner that only reads writes nothing.
func prepareFile(db *bbolt.DB, cfg *config) error {
	current := false
	err := db.View(func(tx *bbolt.Tx) error {
		var err error
		current, err = schemaCurrent(tx, !cfg.readOnly)
		return err
	})
	switch {
	case err != nil:
		return err
	case current:
		return nil
	case cfg.readOnly:
		return fmt.Errorf("%w: the file holds no jobrun data of this version; open it once with a runner that writes to create or upgrade it", ErrSchema)
	}
	return updateGuarded(db, initSchema)
}

// boltStore is the store over a bbolt file: every layout of it is in this file,
// codec.go and the other bolt*.go files.
type boltStore struct {
	mu   sync.RWMutex // compact replaces db under it; reads hold it
	db   *bbolt.DB
	owns bool    // Open made db: close closes it
	cfg  *config // key limits and retention, which the layout applies
}

// openBoltStore opens the file at path as a store that owns it.
func openBoltStore(path string, cfg *config) (*boltStore, error) {
	db, err := openFile(path, cfg)
	if err != nil {
		return nil, err
	}
	st, err := newBoltStore(db, true, cfg)
	if err != nil {
		closeBounded(db, cfg.lockTimeout)
		return nil, err
	}
	return st, nil
}

// abandon releases the store of a runner that failed to start. The failure may be a
// damaged page, after which bbolt's Close can wait forever: the close is bounded.
func (s *boltStore) abandon() {
	runnersByDB.Delete(s.db)
	if s.owns {
		closeBounded(s.db, s.cfg.lockTimeout)
	}
}

// newBoltStore prepares db for the runner and holds it: one runner per database.
func newBoltStore(db *bbolt.DB, owns bool, cfg *config) (*boltStore, error) {
	if _, taken := runnersByDB.LoadOrStore(db, struct{}{}); taken {
		return nil, invalidf("the database already has a runner in this process; close it first (one runner per database)")
	}
	// A damaged page met on the way is ErrCorrupt, not a panic.
	if err := guard(func() error { return prepareFile(db, cfg) }); err != nil {
		runnersByDB.Delete(db)
		return nil, err
	}
	return &boltStore{db: db, owns: owns, cfg: cfg}, nil
}

// handle returns the current database handle, which compact replaces.
func (s *boltStore) handle() *bbolt.DB {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.db
}

func (s *boltStore) name() string { return s.handle().Path() }

func (s *boltStore) update(now time.Time, buf []jobChange, fn func(w storeWriter) error) ([]jobChange, error) {
	// Only the commit loop writes, and compact runs on it: s.db is stable here.
	var changes []jobChange
	err := updateGuarded(s.db, func(tx *bbolt.Tx) error {
		t, err := openTxn(tx, now)
		if err != nil {
			return err
		}
		t.cfg, t.changes = s.cfg, buf[:0]
		if err := fn(t); err != nil {
			return err
		}
		changes = t.changes
		return t.flush()
	})
	if err != nil {
		return nil, err
	}
	return changes, nil
}

func (s *boltStore) view(fn func(r storeReader) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return viewGuarded(s.db, func(tx *bbolt.Tx) error {
		t, err := openTxn(tx, time.Now())
		if err != nil {
			return err
		}
		t.cfg = s.cfg
		return fn(t)
	})
}

func (s *boltStore) close() error {
	runnersByDB.Delete(s.db)
	if s.owns {
		return s.db.Close()
	}
	return nil
}

// enqueueTx stores rec inside tx, an application's write transaction on the store's
// database, and returns what it did and the changes it made, for after tx commits.
func (s *boltStore) enqueueTx(tx *bbolt.Tx, now time.Time, rec *record) (ins inserted, changes []jobChange, err error) {
	changes, err = s.inTx(tx, now, func(t *txn) (err error) {
		ins, err = t.enqueue(rec)
		return err
	})
	return ins, changes, err
}

// checkTx checks that tx is an open write transaction of the store's database.
func (s *boltStore) checkTx(tx *bbolt.Tx) error {
	switch {
	case tx == nil:
		return invalidf("nil transaction")
	case tx.DB() == nil:
		return invalidf("the transaction is closed (committed or rolled back)")
	case !tx.Writable():
		return invalidf("read-only transaction")
	case tx.DB() != s.handle():
		return invalidf("transaction of another database")
	}
	return nil
}

// inTx runs fn over the runner's buckets inside tx, the application's write
// transaction, and returns the changes it made; they happen if tx commits.
func (s *boltStore) inTx(tx *bbolt.Tx, now time.Time, fn func(t *txn) error) (changes []jobChange, err error) {
	err = guard(func() error { // a damaged page is an error of the application's transaction
		t, err := openTxn(tx, now)
		if err != nil {
			return err
		}
		t.cfg = s.cfg
		if err := fn(t); err != nil {
			return err
		}
		changes = t.changes
		return t.flush()
	})
	return changes, err
}

// viewGuarded is db.View with a damaged page reported as ErrCorrupt, naming the file,
// not a panic.
func viewGuarded(db *bbolt.DB, fn func(tx *bbolt.Tx) error) error {
	err := guard(func() error { return db.View(fn) })
	if errors.Is(err, ErrCorrupt) {
		err = fmt.Errorf("%s: %w", db.Path(), err)
	}
	return err
}

// Queue flags, in the queues bucket.
const queuePaused byte = 1
