package jobrun

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/bbolt"
)

// SalvageReport is what Salvage copied out of a damaged file and what it could not
// read.
type SalvageReport struct {
	Jobs       int `json:"jobs"`       // jobs copied with their record and state
	Unreadable int `json:"unreadable"` // jobs whose ID was found but no readable record: copied as failed
	// Lost is the number of jobs the damaged file's counters held that Salvage did
	// not find, -1 if the counters were unreadable too.
	Lost      int      `json:"lost"`
	Schedules int      `json:"schedules"`        // cron schedules copied
	Damage    []string `json:"damage,omitempty"` // what could not be read, one line each
}

// Salvage copies every job it can read from the database file at damaged into a new
// file at out, for a file that Open refuses with ErrCorrupt or on which calls fail
// with it, when there is no backup to restore. It never writes to damaged: it opens
// it read-only, taking bbolt's shared lock, so the application must have stopped
// (ErrLocked otherwise). out must not exist (an error wrapping fs.ErrExist); if
// Salvage fails, or ctx ends first, it removes out again.
//
// It copies, with the same IDs:
//   - every job whose record it can read, with that record (args, attempts, errors,
//     progress, result, log, tags) and its state. A job that was running is ready
//     again, without spending an attempt, as after a crash; one that Cancel stopped
//     while it ran is canceled;
//   - every job whose ID it finds but whose record it cannot read or decode, as a
//     failed job of the default queue that says so, with the record's bytes, if
//     readable, in the corrupt bucket (Unreadable);
//   - the schedules and the paused flags of queues that it can read, and the bytes
//     of records that the runner had already quarantined;
//   - the jobs bucket's sequence, so that new jobs never reuse an old job's ID.
//
// It does not copy the indexes and counters: it builds them again from the records,
// so CheckCounts finds nothing to mend in out. Unfinished jobs hold their unique keys
// again, and throttles whose period has not ended hold theirs. Ready jobs with a
// concurrency key wait for a slot, which the first runner that opens out with its
// services gives them, as its WithKeyLimits allow.
//
// What it cannot copy: the jobs on pages it cannot read. bbolt keeps jobs in ID
// order, so after a damaged page Salvage tries the IDs past it, one by one, for the
// next page it can read, and loses only the jobs on the damaged pages; past 65,536
// unreadable IDs in a row it searches by halving intervals instead, which can miss
// a readable page between two damaged ones. Damage names the ranges of IDs it could
// not read, and Lost counts the jobs there. A file whose header pages, or the pages
// that lead to its jobs, cannot be read gives an error wrapping ErrCorrupt and no
// out: restore a backup. The application's own buckets, in a file it shares with
// the runner (New), are not copied.
//
// Replace the damaged file with out while no application runs on it, and keep the
// damaged one until out is known to be good.
func Salvage(ctx context.Context, damaged, out string) (SalvageReport, error) {
	switch {
	case damaged == "":
		return SalvageReport{}, fmt.Errorf("salvage: %w", invalidf("empty path of the damaged file"))
	case out == "":
		return SalvageReport{}, fmt.Errorf("salvage: %w", invalidf("empty path of the new file"))
	}
	if _, err := os.Lstat(out); err == nil {
		return SalvageReport{}, fmt.Errorf("salvage: %s: %w; salvage writes a new file, give another path", out, fs.ErrExist)
	}
	src, err := openDamaged(damaged)
	if err != nil {
		return SalvageReport{}, fmt.Errorf("salvage %s: %w", damaged, err)
	}
	defer src.Close()
	f, err := os.OpenFile(out, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return SalvageReport{}, fmt.Errorf("salvage: %w", err)
	}
	f.Close()
	rep, err := salvageInto(ctx, src, out)
	if err != nil {
		os.Remove(out)
		return SalvageReport{}, fmt.Errorf("salvage %s: %w", damaged, err)
	}
	syncDir(filepath.Dir(out))
	return rep, nil
}

// openDamaged opens a damaged file read-only. A truncated file is mapped as long as
// its header says it is, so that a page past its end faults (and is skipped) rather
// than reading whatever memory follows a shorter map.
func openDamaged(path string) (*bbolt.DB, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	cfg, _ := newConfig(nil)
	db, err := openBolt(path, cfg, bbolt.Options{ReadOnly: true})
	if errors.Is(err, ErrCorrupt) {
		return nil, fmt.Errorf("%w: %s; nothing can be salvaged: restore a backup", ErrCorrupt, cause(err))
	}
	if err != nil {
		return nil, err
	}
	var size int64
	if err := guard(func() error {
		return db.View(func(tx *bbolt.Tx) error {
			size = tx.Size()
			return nil
		})
	}); err != nil || size <= info.Size() {
		return db, nil // a View that fails here fails again where the copy reports it
	}
	db.Close()
	if db, err = openBolt(path, cfg, bbolt.Options{ReadOnly: true, InitialMmapSize: int(size)}); err != nil {
		db, err = openBolt(path, cfg, bbolt.Options{ReadOnly: true})
	}
	return db, err
}

// cause is the message of err, an ErrCorrupt of guard or of describeOpenError,
// without the sentinel's text and the advice to salvage.
func cause(err error) string {
	msg := strings.TrimPrefix(err.Error(), ErrCorrupt.Error()+": ")
	msg = strings.TrimPrefix(msg, pageUnreadable)
	return strings.TrimSuffix(msg, corruptAdvice)
}

// maxSalvageRecord bounds the record Salvage reads for one job: a longer one is a
// damaged length, not a job (args, progress and result are at most maxArgsSize each).
const maxSalvageRecord = 4*maxArgsSize + 1<<20

// salvageBatch is how many jobs one write transaction of the copy holds.
const salvageBatch = 2000

// salvaged is one job read from the damaged file: its record, or the reason it is
// unreadable with its bytes if those could be read.
type salvaged struct {
	id    ID
	rec   *record
	raw   []byte
	cause string
}

func salvageInto(ctx context.Context, src *bbolt.DB, out string) (SalvageReport, error) {
	dst, err := bbolt.Open(out, 0o600, &bbolt.Options{Timeout: defaultLockTimeout})
	if err != nil {
		return SalvageReport{}, err
	}
	rep, err := salvageDB(ctx, src, dst)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	return rep, err
}

// salvageDB copies what it can read of src into dst, a new database.
func salvageDB(ctx context.Context, src, dst *bbolt.DB) (SalvageReport, error) {
	rep := SalvageReport{Lost: -1}
	damage := func(format string, args ...any) { rep.Damage = append(rep.Damage, fmt.Sprintf(format, args...)) }
	var tx *bbolt.Tx
	if err := guard(func() (err error) {
		tx, err = src.Begin(false)
		return err
	}); err != nil {
		return rep, err
	}
	defer guard(tx.Rollback)

	var root *bbolt.Bucket
	if err := guard(func() error {
		root = tx.Bucket(bucketRoot)
		return nil
	}); err != nil {
		return rep, fmt.Errorf("%w: the page that leads to the runner's data cannot be read (%s); nothing can be salvaged: restore a backup", ErrCorrupt, cause(err))
	}
	if root == nil {
		return rep, fmt.Errorf("%w: the file holds no jobrun data", ErrSchema)
	}
	bucket := func(name []byte) *bbolt.Bucket {
		var b *bbolt.Bucket
		if err := guard(func() error {
			b = root.Bucket(name)
			return nil
		}); err != nil {
			damage("bucket %s: unreadable", name)
			return nil
		}
		return b
	}
	if meta := bucket(bucketMeta); meta != nil {
		var v []byte
		if err := guard(func() error {
			v = bytes.Clone(meta.Get(keySchema))
			return nil
		}); err != nil {
			damage("schema version: unreadable; read as version %d", schemaVersion)
		} else if len(v) == 1 && v[0] > schemaVersion {
			return rep, fmt.Errorf("%w: the file has schema version %d, this build of jobrun reads up to %d; salvage it with a newer jobrun",
				ErrSchema, v[0], schemaVersion)
		}
	}
	if err := dst.Update(initSchema); err != nil {
		return rep, err
	}

	now := time.Now()
	var seq, maxID uint64
	var jobs *bbolt.Bucket
	if err := guard(func() error {
		jobs = root.Bucket(bucketJobs)
		return nil
	}); err != nil {
		return rep, fmt.Errorf("%w: the page that leads to its jobs cannot be read (%s); nothing can be salvaged: restore a backup", ErrCorrupt, cause(err))
	}
	if jobs != nil {
		seq = jobs.Sequence() // read with the bucket's header
		var batch []salvaged
		write := func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			err := dst.Update(func(tx *bbolt.Tx) error {
				t, err := openTxn(tx, now)
				if err != nil {
					return err
				}
				for _, s := range batch {
					if err := t.salvageJob(s); err != nil {
						return fmt.Errorf("write job %d: %w", s.id, err)
					}
				}
				return t.flush()
			})
			batch = batch[:0]
			return err
		}
		gaps, err := scanIDs(jobs, seq, func(id uint64, v []byte) error {
			maxID = max(maxID, id)
			s := readJob(ID(id), v)
			if s.rec != nil {
				rep.Jobs++
			} else {
				rep.Unreadable++
			}
			if batch = append(batch, s); len(batch) == salvageBatch {
				return write()
			}
			return nil
		})
		if err == nil {
			err = write()
		}
		if err != nil {
			return rep, err
		}
		for _, g := range gaps {
			switch {
			case seq > 0 && g.to >= seq:
				damage("jobs with IDs %d to %d (the last ID given): on unreadable pages", max(g.from, 1), seq)
			case g.to == math.MaxUint64:
				damage("jobs with IDs from %d on: on unreadable pages", max(g.from, 1))
			default:
				damage("jobs with IDs %d to %d: on unreadable pages", max(g.from, 1), g.to)
			}
		}
	}

	// The rest is small: schedules, queue flags and quarantined records, with the
	// sequence, in one transaction.
	type kv struct{ k, v []byte }
	var schedules, queues, corrupt []kv
	if b := bucket(bucketSchedules); b != nil && !scanBucket(b, func(k, v []byte) {
		var s storedSchedule
		if json.Unmarshal(v, &s) != nil {
			damage("schedule %q: unreadable", k)
			return
		}
		schedules = append(schedules, kv{k, v})
	}) {
		damage("schedules after the first %d: on an unreadable page", len(schedules))
	}
	if b := bucket(bucketQueues); b != nil && !scanBucket(b, func(k, v []byte) {
		if len(v) > 0 {
			queues = append(queues, kv{k, v[:1]})
		}
	}) {
		damage("paused flags of the queues after the first %d: on an unreadable page", len(queues))
	}
	if b := bucket(bucketCorrupt); b != nil {
		gaps, err := scanIDs(b, seq, func(id uint64, v []byte) error {
			var raw []byte
			if guard(func() error {
				if len(v) <= maxSalvageRecord {
					raw = bytes.Clone(v)
				}
				return nil
			}) == nil && raw != nil {
				corrupt = append(corrupt, kv{idKey(ID(id)), raw})
			}
			return nil
		})
		if err != nil {
			return rep, err
		}
		if len(gaps) > 0 {
			damage("bytes of records quarantined before: some on unreadable pages")
		}
	}
	counted, countsOK := 0, false
	if b := bucket(bucketCounts); b != nil {
		countsOK = scanBucket(b, func(k, v []byte) {
			_, st, ok := parseCountKey(k)
			if n, nok := parseCount(v); ok && nok && st > 0 && st < numStates {
				counted += int(n)
			}
		})
	}
	err := dst.Update(func(tx *bbolt.Tx) error {
		t, err := openTxn(tx, now)
		if err != nil {
			return err
		}
		for _, s := range schedules {
			if err := t.schedules().Put(s.k, s.v); err != nil {
				return err
			}
		}
		for _, q := range queues {
			if err := t.queues().Put(q.k, q.v); err != nil {
				return err
			}
		}
		for _, c := range corrupt {
			// Only for a job copied, and not over the bytes Salvage kept itself.
			if t.jobs().Get(c.k) != nil && t.corrupt().Get(c.k) == nil {
				if err := t.corrupt().Put(c.k, c.v); err != nil {
					return err
				}
			}
		}
		return t.jobs().SetSequence(max(seq, maxID))
	})
	if err != nil {
		return rep, err
	}
	rep.Schedules = len(schedules)
	if countsOK {
		rep.Lost = max(counted-rep.Jobs-rep.Unreadable, 0)
	} else {
		damage("the job counters: unreadable, so the number of jobs lost is unknown")
	}
	return rep, nil
}

// readJob copies a job's record out of the damaged file and decodes it.
func readJob(id ID, v []byte) salvaged {
	s := salvaged{id: id}
	if len(v) > maxSalvageRecord {
		s.cause = fmt.Sprintf("its length is damaged (%d bytes, more than a record can hold)", len(v))
		return s
	}
	if err := guard(func() error {
		s.raw = bytes.Clone(v)
		return nil
	}); err != nil {
		s.raw, s.cause = nil, "its bytes are on an unreadable page"
		return s
	}
	rec, err := decodeRecord(s.raw)
	if err != nil {
		s.cause = fmt.Sprintf("its bytes do not decode (%v)", err)
		return s
	}
	s.rec = rec
	return s
}

// salvageJob stores a job Salvage read, indexed for its state as enqueue and the
// state changes index a job, and counted.
func (t *txn) salvageJob(s salvaged) error {
	id, r := s.id, s.rec
	if r == nil {
		// As quarantine does, but no index entry names the job's queue.
		if s.raw != nil {
			if err := t.corrupt().Put(idKey(id), s.raw); err != nil {
				return err
			}
		}
		r = &record{queue: DefaultQueue, state: stFailed, maxAttempts: 1, finishedAt: t.now}
		r.appendError(0, time.Time{}, t.now, "jobrun: salvage found this job's stored record unreadable: "+s.cause+
			"; its bytes, if they could be read, are kept in the corrupt bucket")
	} else if r.cancel && !final(r.state) {
		// Cancel was asked while it ran: it ends here, as recoverActive ends it.
		r.state, r.finishedAt = stCanceled, t.now
	}
	var err error
	switch r.state {
	case stReady:
		if r.concKey != "" {
			// It waits for a slot: the first runner to open the file admits as many
			// as its key limits allow (admitAll).
			err = t.keywait().Put(waitKey(r.queue, r.concKey, r.priority, id), nil)
		} else {
			err = t.addReady(id, r)
		}
	case stScheduled, stRetrying:
		err = t.addScheduled(id, r)
	default: // final: decodeRecord admits no other state
		err = t.addFinished(id, r)
	}
	if err != nil {
		return err
	}
	if err := t.put(id, r); err != nil {
		return err
	}
	for _, tag := range r.tags {
		if err := t.tags().Put(tagKey(tag, id), nil); err != nil {
			return err
		}
	}
	t.count(r.queue, 0, r.state)
	return t.holdUnique(id, r)
}

// holdUnique gives a salvaged job its unique key back if it still holds it: an
// unfinished job, or a throttle whose period has not ended. Jobs come in ID order, so
// of two claims to one key the later job's stands, as it took the key last.
func (t *txn) holdUnique(id ID, r *record) error {
	var until time.Time
	switch {
	case r.uniqueMode == uniqueNone:
		return nil
	case r.uniqueMode == uniqueThrottle:
		if until = r.createdAt.Add(r.uniqueFor); !until.After(t.now) {
			return nil
		}
	case final(r.state):
		return nil
	}
	return t.unique().Put(uniqueIndexKey(r.kind, r.uniqueKey), uniqueValue(id, until))
}

// idGap is a range of IDs on pages Salvage could not read; to is math.MaxUint64 if
// nothing past from could be read.
type idGap struct{ from, to uint64 }

// readStep runs one cursor move, reporting a panic or memory fault (bbolt meeting a
// damaged page) as ok false; the cursor is unusable after that.
func readStep(move func() (k, v []byte)) (k, v []byte, ok bool) {
	err := guard(func() error {
		k, v = move()
		return nil
	})
	return k, v, err == nil
}

// scanIDs calls fn, in ID order, for every key of b, a bucket keyed by 8-byte
// big-endian IDs no greater than last (b's sequence; 0 if unknown), that it can read,
// and returns the ranges of IDs it could not. v is valid during the call only, and
// may fault: read it under guard.
//
// A cursor that meets a damaged page panics, but the keys past that page are still
// readable where bbolt's path to them is: seekReadable finds the next one.
func scanIDs(b *bbolt.Bucket, last uint64, fn func(id uint64, v []byte) error) ([]idGap, error) {
	var gaps []idGap
	c := b.Cursor()
	k, v, ok := readStep(c.First)
	from := uint64(0) // every key before from has been read
	for {
		if !ok {
			var at uint64
			if c, at, k, v, ok = seekReadable(b, from, last); !ok {
				if last == 0 || from <= last {
					gaps = append(gaps, idGap{from, cmp.Or(last, math.MaxUint64)})
				}
				return gaps, nil
			}
			if at > from {
				gaps = append(gaps, idGap{from, at - 1})
			}
		}
		if k == nil {
			return gaps, nil
		}
		parsed, isID := parseIDKey(k)
		if !isID {
			// Not an ID: damaged content that bbolt took for a key.
			k, v, ok = readStep(c.Next)
			continue
		}
		id := uint64(parsed)
		if id < from {
			// Out of order: the page's content is damaged; look past what was read.
			ok = false
			continue
		}
		if err := fn(id, v); err != nil {
			return gaps, err
		}
		if id == math.MaxUint64 {
			return gaps, nil
		}
		from = id + 1
		k, v, ok = readStep(c.Next)
	}
}

// linearProbes is how many IDs seekReadable tries one by one before it searches by
// halving intervals.
const linearProbes = 1 << 16

// seekReadable finds the first ID at or past from whose Seek reads, and returns the
// cursor there, that ID, and the key and value the Seek found (a nil key: nothing
// past the damage). ok is false if no Seek up to last (0: up to the largest ID)
// reads.
//
// A Seek reads the pages on the way to its ID, so one to a key on a readable page
// works if bbolt's path to it is readable. The search tries every ID, so it misses
// no such key, for up to linearProbes IDs; past that it doubles the distance until a
// Seek works, then halves the interval between the last Seek that failed and the
// first that worked, which can miss a readable page between two damaged ones.
func seekReadable(b *bbolt.Bucket, from, last uint64) (c *bbolt.Cursor, at uint64, k, v []byte, ok bool) {
	last = cmp.Or(last, math.MaxUint64)
	probe := func(id uint64) (*bbolt.Cursor, []byte, []byte, bool) {
		c := b.Cursor()
		key := idKey(ID(id))
		k, v, ok := readStep(func() ([]byte, []byte) { return c.Seek(key) })
		if ok && k != nil && bytes.Compare(k, key) < 0 {
			ok = false // a key before the one sought: damaged content
		}
		return c, k, v, ok
	}
	if from > last {
		return nil, 0, nil, nil, false
	}
	id := from
	for range linearProbes {
		if c, k, v, ok := probe(id); ok {
			return c, id, k, v, true
		}
		if id == last {
			return nil, 0, nil, nil, false
		}
		id++
	}
	base := id - 1 // its Seek failed
	lo, hi := base, uint64(0)
	for step := uint64(1); ; step *= 2 {
		next := last
		if step != 0 && step < last-base {
			next = base + step
		}
		if _, _, _, ok := probe(next); ok {
			hi = next
			break
		}
		if next == last {
			return nil, 0, nil, nil, false
		}
		lo = next
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if _, _, _, ok := probe(mid); ok {
			hi = mid
		} else {
			lo = mid
		}
	}
	c, k, v, ok = probe(hi)
	return c, hi, k, v, ok
}

// scanBucket calls fn with a copy of every key and value of b that it can read, in
// order, and reports false if it stopped at a damaged page. Its buckets are small
// (queues, schedules, counters), so what follows the damage is not searched for.
func scanBucket(b *bbolt.Bucket, fn func(k, v []byte)) bool {
	c := b.Cursor()
	step := func(move func() ([]byte, []byte)) ([]byte, []byte, bool) {
		return readStep(func() ([]byte, []byte) {
			k, v := move()
			if k != nil && (len(k) == 0 || len(k) > 2*maxNameLen || len(v) > maxSalvageRecord) {
				panic("a damaged length")
			}
			return bytes.Clone(k), bytes.Clone(v)
		})
	}
	k, v, ok := step(c.First)
	for ; ok && k != nil; k, v, ok = step(c.Next) {
		fn(k, v)
	}
	return ok
}
