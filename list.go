package jobrun

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
)

// Filter selects the jobs List returns; zero fields match every job.
type Filter struct {
	Queue string
	Kind  string
	State State
	Tag   string // one of the job's Tags

	// Oldest lists oldest first; the default is newest first. "Oldest" follows the
	// index List reads: job IDs, or with a State, the run time of scheduled and
	// retrying jobs, the run order of ready jobs (priority, then ID) and the finish
	// time of done, failed and canceled jobs.
	Oldest bool

	Limit  int    // jobs per page: 50 if 0, at most 1,000
	Cursor string // the Next of the previous page; "" for the first page
}

// Page is one page of List's result.
type Page struct {
	Jobs []*Info
	Next string // the Cursor of the next page, "" after the last page
}

// Limits of one List call.
const (
	defaultListLimit = 50
	maxListLimit     = 1000
	listScanBudget   = 10 * maxListLimit // index entries read per call at most
)

// pageLimit is the size of a page of List or Events asked for as limit: 50 for 0,
// at most 1,000.
func pageLimit(limit int) (int, error) {
	switch {
	case limit == 0:
		return defaultListLimit, nil
	case limit < 0 || limit > maxListLimit:
		return 0, invalidf("limit must be between 1 and %d, got %d", maxListLimit, limit)
	}
	return limit, nil
}

// List returns a page of the jobs that match f. It reads an index, not every job: the
// tag index for Tag, the state's index for State (narrowed by Queue without reading
// records), otherwise jobs by ID; Kind, and the filters the index does not cover, are
// checked on each job read. One call reads at most 10,000 index entries, so a page of
// a rare match may hold fewer than Limit jobs while Next is not empty: keep paging
// until Next is "". Each page is a consistent snapshot; pages taken while jobs change
// may miss or repeat a job that moved in the index between them.
func (r *Runner) List(ctx context.Context, f Filter) (*Page, error) {
	limit, err := pageLimit(f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	var st byte
	if f.State != "" {
		var ok bool
		if st, ok = stateCode(f.State); !ok {
			return nil, fmt.Errorf("list: %w", invalidf("unknown state %q", f.State))
		}
	}
	var cursor []byte // nil: from the start
	if f.Cursor != "" {
		if cursor, err = base64.RawURLEncoding.DecodeString(f.Cursor); err != nil || len(cursor) == 0 {
			return nil, fmt.Errorf("list: %w", invalidf("malformed cursor %q", f.Cursor))
		}
	}
	page := &Page{}
	err = r.view(ctx, func(t storeReader) error {
		jobs, next, err := t.list(f, st, limit, cursor)
		if errors.Is(err, ErrInvalid) {
			return invalidf("malformed cursor %q", f.Cursor)
		} else if err != nil {
			return err
		}
		page.Jobs = jobs
		if next != nil {
			page.Next = base64.RawURLEncoding.EncodeToString(next)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	return page, nil
}
