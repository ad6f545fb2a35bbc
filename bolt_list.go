package jobrun

import (
	"bytes"
	"slices"

	"go.etcd.io/bbolt"
)

// list reads up to limit jobs matching f from the indexes listSources picks, resuming
// at cursor: the number of the index it was reading, then the last key it handed out.
func (t *txn) list(f Filter, st byte, limit int, cursor []byte) ([]*Info, []byte, error) {
	sources := t.listSources(f, st)
	section := 0
	if cursor != nil {
		section, cursor = int(cursor[0]), cursor[1:]
		if section >= len(sources) {
			return nil, nil, invalidf("malformed cursor")
		}
		if len(cursor) == 0 {
			cursor = nil // a page ended where this index begins: read it from its start
		}
	}
	var jobs []*Info
	n := 0
	for ; section < len(sources); section, cursor = section+1, nil {
		src := sources[section]
		sc := src.scan
		sc.start(cursor)
		for ; sc.valid(); sc.next() {
			if len(jobs) == limit || n == listScanBudget {
				return jobs, append([]byte{byte(section)}, sc.last...), nil
			}
			n++
			sc.last = bytes.Clone(sc.k)
			id, ok := src.match(sc.k, sc.v)
			if !ok {
				continue
			}
			in, err := t.info(id)
			if err != nil {
				continue // an index entry without a readable job
			}
			if f.Queue != "" && in.Queue != f.Queue || f.Kind != "" && in.Kind != f.Kind ||
				f.State != "" && in.State != f.State || f.Tag != "" && !slices.Contains(in.Tags, f.Tag) {
				continue
			}
			jobs = append(jobs, in)
		}
	}
	return jobs, nil, nil
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
		return []listSource{{newScan(t.tags(), queuePrefix(f.Tag), !f.Oldest), func(k, _ []byte) (ID, bool) {
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
		return []listSource{{newScan(t.active(), nil, !f.Oldest), activeMatch(stReady)},
			{newScan(t.ready(), prefix, !f.Oldest), readyMatch}, {newScan(t.keywait(), prefix, !f.Oldest), waitMatch}}
	case st == stScheduled || st == stRetrying:
		return []listSource{{newScan(t.scheduled(), nil, !f.Oldest), func(k, v []byte) (ID, bool) {
			_, id, ok := parseTimeKey(k)
			vst, q, vok := parseScheduledValue(v)
			return id, ok && vok && vst == st && ofQueue(q)
		}}}
	case st == stRunning:
		return []listSource{{newScan(t.active(), nil, !f.Oldest), activeMatch(stRunning)}}
	case final(st):
		return []listSource{{newScan(t.finished(), []byte{st}, !f.Oldest), func(k, v []byte) (ID, bool) {
			_, _, id, ok := parseFinishedKey(k)
			return id, ok && ofQueue(string(v))
		}}}
	}
	return []listSource{{newScan(t.jobs(), nil, !f.Oldest), func(k, _ []byte) (ID, bool) { return parseIDKey(k) }}}
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
