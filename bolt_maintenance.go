package jobrun

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.etcd.io/bbolt"
)

type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// compactTxSize bounds each transaction of the copy Compact makes.
const compactTxSize = 64 << 20

// backup writes the database from one read transaction (bbolt's Tx.WriteTo); ctx
// stops it between writes.
func (s *boltStore) backup(ctx context.Context, w io.Writer) (n int64, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	err = viewGuarded(s.db, func(tx *bbolt.Tx) (err error) {
		n, err = tx.WriteTo(ctxWriter{ctx, w})
		return err
	})
	return n, err
}

// compact copies every bucket into a new file (bbolt.Compact) and replaces the old
// file with it. It runs in the commit loop, between commits.
func (s *boltStore) compact() error {
	if !s.owns {
		return invalidf("the runner does not own its database (New); compact it with bbolt.Compact while no runner uses it")
	}
	old := s.db
	defer func() {
		// The runner holds its new handle as it held the old one (runnersByDB).
		if s.db != old {
			runnersByDB.Delete(old)
			runnersByDB.Store(s.db, struct{}{})
		}
	}()
	path := old.Path()
	opts := &bbolt.Options{Timeout: s.cfg.lockTimeout}
	var before uint64
	old.View(func(tx *bbolt.Tx) error {
		before = uint64(tx.ID())
		return nil
	})
	tmp := path + ".compact"
	os.Remove(tmp)
	dst, err := bbolt.Open(tmp, 0o600, opts)
	if err != nil {
		return err
	}
	// The copy reads every page: a damaged one is ErrCorrupt, and the file stays.
	err = guard(func() error { return bbolt.Compact(dst, old, compactTxSize) })
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := old.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	// Hold the old file again while checking that nothing committed after the copy.
	held, err := bbolt.Open(path, 0o600, opts)
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("reopen %s after compaction: %w", path, err)
	}
	var after uint64
	held.View(func(tx *bbolt.Tx) error {
		after = uint64(tx.ID())
		return nil
	})
	if after != before {
		s.db = held
		os.Remove(tmp)
		return fmt.Errorf("%w: a transaction of the application committed during the copy; the file is unchanged, try again", ErrState)
	}
	if err := os.Rename(tmp, path); err != nil {
		s.db = held
		os.Remove(tmp)
		return err
	}
	syncDir(filepath.Dir(path))
	fresh, err := bbolt.Open(path, 0o600, opts)
	held.Close()
	if err != nil {
		return fmt.Errorf("open %s after compaction: %w", path, err)
	}
	s.db = fresh
	s.cfg.logger.Info("jobrun: compacted the database file", "path", path)
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// recount counts every queue's jobs per state from the indexes and returns the
// counters that disagree.
func (t *txn) recount() ([]CountMismatch, error) { return t.checkCounts(false) }

// repairCounts is recount that also rewrites the counters that disagree.
func (t *txn) repairCounts() ([]CountMismatch, error) { return t.checkCounts(true) }

func (t *txn) checkCounts(repair bool) ([]CountMismatch, error) {
	actual := map[string]*[numStates]int{}
	add := func(queue string, st byte) {
		a := actual[queue]
		if a == nil {
			a = new([numStates]int)
			actual[queue] = a
		}
		a[st]++
	}
	t.ready().ForEach(func(k, _ []byte) error {
		if q, _, _, ok := parseReadyKey(k); ok {
			add(q, stReady)
		}
		return nil
	})
	t.keywait().ForEach(func(k, _ []byte) error {
		if q, _, _, _, ok := parseWaitKey(k); ok {
			add(q, stReady)
		}
		return nil
	})
	t.scheduled().ForEach(func(_, v []byte) error {
		if st, q, ok := parseScheduledValue(v); ok && st < numStates {
			add(q, st)
		}
		return nil
	})
	t.active().ForEach(func(_, v []byte) error {
		if _, q, ok := parseActiveValue(v); ok {
			add(q, activeState(v))
		}
		return nil
	})
	t.finished().ForEach(func(k, v []byte) error {
		if st, _, _, ok := parseFinishedKey(k); ok && st < numStates {
			add(string(v), st)
		}
		return nil
	})
	out, err := t.checkSuspended(repair)
	if err != nil {
		return nil, err
	}
	var fix func(q string, st byte, n int) error
	if repair {
		fix = func(q string, st byte, n int) error { return t.counts().Put(countKey(q, st), countValue(int64(n))) }
	}
	mm, err := t.compareCounts(actual, t.queueNames(), t.countOf, fix)
	return append(out, mm...), err
}

// checkSuspended recounts the runs suspended in a step, from the records of the
// scheduled jobs, and returns the counters that disagree (Queue "", State "sleeping",
// "waiting" or "invoking"), rewriting them if repair.
func (t *txn) checkSuspended(repair bool) ([]CountMismatch, error) {
	var actual [numSuspended]int
	err := t.scheduled().ForEach(func(k, _ []byte) error {
		if _, id, ok := parseTimeKey(k); ok {
			if rec, err := t.get(id); err == nil && rec.suspended < numSuspended {
				actual[rec.suspended]++
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	stored := t.suspendedCounts()
	var out []CountMismatch
	for kind := suspendedSleep; kind < numSuspended; kind++ {
		if stored[kind] == actual[kind] {
			continue
		}
		out = append(out, CountMismatch{State: suspensionNames[kind], Stored: stored[kind], Actual: actual[kind]})
		if repair {
			if err := t.bucket(bSuspended).Put([]byte{kind}, countValue(int64(actual[kind]))); err != nil {
				return nil, err
			}
			t.suspendedDeltas[kind] = 0
		}
	}
	return out, nil
}
