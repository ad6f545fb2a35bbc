package jobrun

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"go.etcd.io/bbolt"
)

// Backup writes a consistent copy of the whole database to w, from one read
// transaction (bbolt's Tx.WriteTo), while jobs keep running, and returns the number
// of bytes written. The copy is a bbolt file that Open accepts, holding every job as
// of one commit, as a crash at that moment would leave it. ctx stops the copy between
// writes.
func (r *Runner) Backup(ctx context.Context, w io.Writer) (int64, error) {
	if w == nil {
		return 0, fmt.Errorf("backup: %w", invalidf("nil writer"))
	}
	var n int64
	err := r.viewDB(ctx, func(db *bbolt.DB) error {
		return viewGuarded(db, func(tx *bbolt.Tx) (err error) {
			n, err = tx.WriteTo(ctxWriter{ctx, w})
			return err
		})
	})
	if err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	return n, nil
}

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

// Compact rewrites the database file without its free pages, so that a file that
// grew during a backlog shrinks back: bbolt reuses freed pages but never returns them
// to the file system. It copies every bucket into a new file next to the old one
// (bbolt.Compact), then replaces the old file with it. Writes wait while it runs (the
// commit loop does the copy; handlers keep running and their outcomes queue up);
// reads wait only for the swap. It needs free disk space for the copy.
//
// Compact is for a runner that owns its file (Open); on a runner from New it returns
// an error wrapping ErrInvalid, since the application holds that database. If the
// application commits its own transaction on DB() while Compact copies, Compact keeps
// the old file, loses nothing and returns an error wrapping ErrState: try again. DB()
// returns the new handle afterwards.
func (r *Runner) Compact(ctx context.Context) error {
	if !r.ownsDB {
		return fmt.Errorf("compact: %w", invalidf("the runner does not own its database (New); compact it with bbolt.Compact while no runner uses it"))
	}
	var result error
	err := r.mutate(ctx, nil, func(en *engine) { result = r.compact() })
	if err == nil {
		err = result
	}
	if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	return nil
}

// compact runs in the commit loop, between commits.
func (r *Runner) compact() error {
	old := r.db
	defer func() {
		// The runner holds its new handle as it held the old one (runnersByDB).
		if r.db != old {
			runnersByDB.Delete(old)
			runnersByDB.Store(r.db, struct{}{})
		}
	}()
	path := old.Path()
	opts := &bbolt.Options{Timeout: r.cfg.lockTimeout}
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

	r.dbMu.Lock()
	defer r.dbMu.Unlock()
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
		r.db = held
		os.Remove(tmp)
		return fmt.Errorf("%w: a transaction of the application committed during the copy; the file is unchanged, try again", ErrState)
	}
	if err := os.Rename(tmp, path); err != nil {
		r.db = held
		os.Remove(tmp)
		return err
	}
	syncDir(filepath.Dir(path))
	fresh, err := bbolt.Open(path, 0o600, opts)
	held.Close()
	if err != nil {
		return fmt.Errorf("open %s after compaction: %w", path, err)
	}
	r.db = fresh
	r.log.Info("jobrun: compacted the database file", "path", path)
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// CountMismatch is a per-queue, per-state counter that disagreed with a recount of
// the jobs.
type CountMismatch struct {
	Queue  string `json:"queue"`
	State  State  `json:"state"`
	Stored int    `json:"stored"` // the counter
	Actual int    `json:"actual"` // the recount
}

// CheckCounts recounts the jobs of every queue and state from the indexes (a pass
// over every job's index entry, not its record) and returns the counters that
// disagree. With repair, it also rewrites them, in the same transaction as the
// recount. Counters are kept in the transaction of every change, so a mismatch means
// the file was changed by something other than this runner; the check exists to
// prove that, and to mend a file if it ever happens. Without repair it only reads.
func (r *Runner) CheckCounts(ctx context.Context, repair bool) ([]CountMismatch, error) {
	var out []CountMismatch
	var err error
	if repair {
		err = r.mutate(ctx, func(t *txn, res *cycleResult) (error, error) {
			var err error
			out, err = t.checkCounts(true)
			return nil, err
		}, nil)
	} else {
		err = r.view(ctx, func(t *txn) (err error) {
			out, err = t.checkCounts(false)
			return err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("check counts: %w", err)
	}
	return out, nil
}

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
	t.ready.ForEach(func(k, _ []byte) error {
		if q, _, _, ok := parseReadyKey(k); ok {
			add(q, stReady)
		}
		return nil
	})
	t.keywait.ForEach(func(k, _ []byte) error {
		if q, _, _, _, ok := parseWaitKey(k); ok {
			add(q, stReady)
		}
		return nil
	})
	t.scheduled.ForEach(func(_, v []byte) error {
		if st, q, ok := parseScheduledValue(v); ok && st < numStates {
			add(q, st)
		}
		return nil
	})
	t.active.ForEach(func(_, v []byte) error {
		if _, q, ok := parseActiveValue(v); ok {
			add(q, activeState(v))
		}
		return nil
	})
	t.finished.ForEach(func(k, v []byte) error {
		if st, _, _, ok := parseFinishedKey(k); ok && st < numStates {
			add(string(v), st)
		}
		return nil
	})
	queues := t.queueNames()
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
			stored := t.countOf(q, st)
			if stored == a[st] {
				continue
			}
			out = append(out, CountMismatch{Queue: q, State: stateNames[st], Stored: stored, Actual: a[st]})
			if repair {
				if err := t.counts.Put(countKey(q, st), countValue(int64(a[st]))); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

// viewDB runs fn with the current database handle, which Compact may replace.
func (r *Runner) viewDB(ctx context.Context, fn func(db *bbolt.DB) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.isClosed() {
		return r.closedErr()
	}
	r.dbMu.RLock()
	defer r.dbMu.RUnlock()
	return fn(r.db)
}
