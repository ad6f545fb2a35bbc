package jobrun

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"slices"

	"go.etcd.io/bbolt"
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

// List returns a page of the jobs that match f. It reads an index, not every job: the
// tag index for Tag, the state's index for State (narrowed by Queue without reading
// records), otherwise jobs by ID; Kind, and the filters the index does not cover, are
// checked on each job read. One call reads at most 10,000 index entries, so a page of
// a rare match may hold fewer than Limit jobs while Next is not empty: keep paging
// until Next is "". Each page is a consistent snapshot; pages taken while jobs change
// may miss or repeat a job that moved in the index between them.
func (r *Runner) List(ctx context.Context, f Filter) (*Page, error) {
	limit := f.Limit
	switch {
	case limit == 0:
		limit = defaultListLimit
	case limit < 0 || limit > maxListLimit:
		return nil, fmt.Errorf("list: %w", invalidf("limit must be between 1 and %d, got %d", maxListLimit, limit))
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
		var err error
		if cursor, err = base64.RawURLEncoding.DecodeString(f.Cursor); err != nil || len(cursor) == 0 {
			return nil, fmt.Errorf("list: %w", invalidf("malformed cursor %q", f.Cursor))
		}
	}
	page := &Page{}
	err := r.view(ctx, func(t *txn) error {
		sources := t.listSources(f, st)
		section := 0
		if cursor != nil {
			section, cursor = int(cursor[0]), cursor[1:]
			if section >= len(sources) {
				return invalidf("malformed cursor %q", f.Cursor)
			}
		}
		n := 0
		for ; section < len(sources); section, cursor = section+1, nil {
			src := sources[section]
			sc := src.scan
			sc.start(cursor)
			for ; sc.valid(); sc.next() {
				if len(page.Jobs) == limit || n == listScanBudget {
					page.Next = base64.RawURLEncoding.EncodeToString(append([]byte{byte(section)}, sc.last...))
					return nil
				}
				n++
				sc.last = bytes.Clone(sc.k)
				id, ok := src.match(sc.k, sc.v)
				if !ok {
					continue
				}
				in, err := t.infoOf(id)
				if err != nil {
					continue // an index entry without a readable job
				}
				if f.Queue != "" && in.Queue != f.Queue || f.Kind != "" && in.Kind != f.Kind ||
					f.State != "" && in.State != f.State || f.Tag != "" && !slices.Contains(in.Tags, f.Tag) {
					continue
				}
				page.Jobs = append(page.Jobs, in)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	return page, nil
}

// listSource is an index List reads, with a match function that turns an entry into
// a job ID, rejecting what the entry alone rules out.
type listSource struct {
	scan  *scan
	match func(k, v []byte) (ID, bool)
}

// listSources picks the indexes List reads for f, in order.
func (t *txn) listSources(f Filter, st byte) []listSource {
	ofQueue := func(q string) bool { return f.Queue == "" || q == f.Queue }
	activeMatch := func(st byte) func(k, v []byte) (ID, bool) {
		return func(k, v []byte) (ID, bool) {
			id, ok := parseIDKey(k)
			_, q, vok := parseActiveValue(v)
			return id, ok && vok && activeState(v) == st && ofQueue(q)
		}
	}
	readyMatch := func(k, _ []byte) (ID, bool) {
		_, _, id, ok := parseReadyKey(k)
		return id, ok
	}
	waitMatch := func(k, _ []byte) (ID, bool) {
		_, _, _, id, ok := parseWaitKey(k)
		return id, ok
	}
	switch {
	case f.Tag != "":
		return []listSource{{newScan(t.tags, queuePrefix(f.Tag), !f.Oldest), func(k, _ []byte) (ID, bool) {
			_, id, ok := parseTagKey(k)
			return id, ok
		}}}
	case st == stReady:
		// Jobs claimed by their queue's workers and not started, jobs that can run,
		// then jobs waiting for a slot of their concurrency key.
		var prefix []byte
		if f.Queue != "" {
			prefix = queuePrefix(f.Queue)
		}
		return []listSource{{newScan(t.active, nil, !f.Oldest), activeMatch(stReady)},
			{newScan(t.ready, prefix, !f.Oldest), readyMatch}, {newScan(t.keywait, prefix, !f.Oldest), waitMatch}}
	case st == stScheduled || st == stRetrying:
		return []listSource{{newScan(t.scheduled, nil, !f.Oldest), func(k, v []byte) (ID, bool) {
			_, id, ok := parseTimeKey(k)
			vst, q, vok := parseScheduledValue(v)
			return id, ok && vok && vst == st && ofQueue(q)
		}}}
	case st == stRunning:
		return []listSource{{newScan(t.active, nil, !f.Oldest), activeMatch(stRunning)}}
	case final(st):
		return []listSource{{newScan(t.finished, []byte{st}, !f.Oldest), func(k, v []byte) (ID, bool) {
			_, _, id, ok := parseFinishedKey(k)
			return id, ok && ofQueue(string(v))
		}}}
	}
	return []listSource{{newScan(t.jobs, nil, !f.Oldest), func(k, _ []byte) (ID, bool) { return parseIDKey(k) }}}
}

// scan walks the keys of a bucket under a prefix, in either direction, from a cursor.
type scan struct {
	c      *bbolt.Cursor
	prefix []byte
	desc   bool
	k, v   []byte
	last   []byte // the last key handed out: the resume point
}

func newScan(b *bbolt.Bucket, prefix []byte, desc bool) *scan {
	return &scan{c: b.Cursor(), prefix: prefix, desc: desc}
}

// start positions the scan at the first key, or at the first key past after.
func (s *scan) start(after []byte) {
	switch {
	case !s.desc:
		s.k, s.v = seekPast(s.c, s.prefix, after)
	default:
		bound := after
		if bound == nil {
			bound = prefixEnd(s.prefix)
		}
		if bound == nil {
			s.k, s.v = s.c.Last()
		} else if s.k, s.v = s.c.Seek(bound); s.k == nil {
			s.k, s.v = s.c.Last()
		} else {
			s.k, s.v = s.c.Prev()
		}
	}
}

func (s *scan) valid() bool { return s.k != nil && bytes.HasPrefix(s.k, s.prefix) }

func (s *scan) next() {
	if s.desc {
		s.k, s.v = s.c.Prev()
	} else {
		s.k, s.v = s.c.Next()
	}
}

// prefixEnd returns the least key greater than every key with the prefix, or nil if
// there is none (an empty or all-0xff prefix).
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
