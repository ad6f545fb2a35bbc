package jobrun

import (
	"context"
	"fmt"
	"io"
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
	err := r.reading(ctx, func() (err error) {
		n, err = r.st.backup(ctx, w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	return n, nil
}

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
	var result error
	err := r.mutate(ctx, nil, func(en *engine) { result = r.st.compact() })
	if err == nil {
		err = result
	}
	if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	return nil
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
		err = r.mutate(ctx, func(w storeWriter, _ *engine) (error, error) {
			var err error
			out, err = w.repairCounts()
			return nil, err
		}, nil)
	} else {
		err = r.view(ctx, func(t storeReader) (err error) {
			out, err = t.recount()
			return err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("check counts: %w", err)
	}
	return out, nil
}
