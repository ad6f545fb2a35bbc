package jobrun

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// HistoryPoint is one minute of one queue's activity, as History returns it: what
// the commits of that minute did. The dashboard charts throughput, queue size and
// wait time from these.
type HistoryPoint struct {
	Queue     string        `json:"queue"`
	Minute    time.Time     `json:"minute"`     // the minute's start
	Enqueued  int           `json:"enqueued"`   // jobs stored
	Started   int           `json:"started"`    // attempts that started
	Done      int           `json:"done"`       // jobs that ended done
	Retried   int           `json:"retried"`    // failed attempts that wait to be retried
	Failed    int           `json:"failed"`     // jobs that failed for good
	Canceled  int           `json:"canceled"`   // jobs canceled
	WaitTotal time.Duration `json:"wait_total"` // the waits of the attempts started, from due to start, added up: WaitTotal/Started is the mean
	WaitMax   time.Duration `json:"wait_max"`   // the longest of those waits
	Ready     int           `json:"ready"`      // jobs ready in the queue when the minute was stored: the queue's size
}

// add adds o's counts to p's; Ready is a level, not a count, so it is not added.
func (p *HistoryPoint) add(o *HistoryPoint) {
	p.Enqueued += o.Enqueued
	p.Started += o.Started
	p.Done += o.Done
	p.Retried += o.Retried
	p.Failed += o.Failed
	p.Canceled += o.Canceled
	p.WaitTotal += o.WaitTotal
	p.WaitMax = max(p.WaitMax, o.WaitMax)
}

// historyKeep is how long the history is kept: a week of minutes.
const historyKeep = 7 * 24 * time.Hour

// History returns the per-minute activity of queue, or of every queue for "", from
// since's minute on, oldest first (a minute's queues by name). The runner keeps it
// in the file for 7 days, a point per queue and minute that had activity: a
// process's minute is stored when it is over, so it survives restarts and is read
// by a process that runs no jobs (jobrun serve); a crash loses the counts of the
// minute it cut. Tools' runners (WithServices(false)) store none, and runners of
// several processes on one file (each in its turn) add up.
func (r *Runner) History(ctx context.Context, queue string, since time.Time) ([]HistoryPoint, error) {
	if queue != "" {
		if err := validateName("queue", queue); err != nil {
			return nil, fmt.Errorf("history: %w", err)
		}
	}
	var out []HistoryPoint
	err := r.view(ctx, func(t storeReader) (err error) {
		out, err = t.history(queue, since)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	return out, nil
}

// unixMinute is t's minute since 1970; minuteTime its start.
func unixMinute(t time.Time) int64 {
	if t.IsZero() || t.Unix() < 0 {
		return 0
	}
	return t.Unix() / 60
}

func minuteTime(m int64) time.Time { return time.Unix(m*60, 0) }

// historian counts the commits' changes per queue and minute, and stores a minute's
// counts with the first commit after it ends (or a commit of its own, a minute
// after activity, when nothing else commits), and every count at close.
type historian struct {
	off     bool                       // a tool's runner: it stores none
	open    map[minuteOf]*HistoryPoint // counted, not yet stored
	writing map[minuteOf]*HistoryPoint // what this cycle's commit stores
}

type minuteOf struct {
	minute int64
	queue  string
}

// count adds a committed cycle's changes.
func (h *historian) count(changes []jobChange, now time.Time) {
	if h.off || len(changes) == 0 {
		return
	}
	minute := unixMinute(now)
	var p *HistoryPoint
	for _, c := range changes {
		counted := c.what == changeInserted || c.what == changeStarted ||
			(c.what == changeMoved || c.what == changeQuarantined) && c.from != c.to && (final(c.to) || c.to == stRetrying)
		if !counted {
			continue // removals, progress, promotions: no point of their own
		}
		if p == nil || p.Queue != c.queue {
			p = h.point(minute, c.queue)
		}
		switch c.what {
		case changeInserted:
			p.Enqueued++
		case changeStarted:
			p.Started++
			p.WaitTotal += c.wait
			p.WaitMax = max(p.WaitMax, c.wait)
		default:
			switch c.to {
			case stDone:
				p.Done++
			case stRetrying:
				p.Retried++
			case stFailed:
				p.Failed++
			case stCanceled:
				p.Canceled++
			}
		}
	}
}

func (h *historian) point(minute int64, queue string) *HistoryPoint {
	k := minuteOf{minute, queue}
	p := h.open[k]
	if p == nil {
		if h.open == nil {
			h.open = map[minuteOf]*HistoryPoint{}
		}
		p = &HistoryPoint{Queue: queue, Minute: minuteTime(minute)}
		h.open[k] = p
	}
	return p
}

// due reports whether a commit has minutes to store: ended ones, or any at close.
func (h *historian) due(now time.Time, closing bool) bool {
	minute := unixMinute(now)
	for k := range h.open {
		if closing || k.minute < minute {
			return true
		}
	}
	return false
}

// next is when the earliest counted minute ends, zero if none is counted.
func (h *historian) next() time.Time {
	var next time.Time
	for k := range h.open {
		if end := minuteTime(k.minute + 1); next.IsZero() || end.Before(next) {
			next = end
		}
	}
	return next
}

// write stores the minutes due in w, and expires the oldest.
func (h *historian) write(w storeWriter, now time.Time, closing bool) error {
	h.writing = nil
	if !h.due(now, closing) {
		return nil
	}
	minute := unixMinute(now)
	var points []HistoryPoint
	for k, p := range h.open {
		if closing || k.minute < minute {
			if h.writing == nil {
				h.writing = map[minuteOf]*HistoryPoint{}
			}
			h.writing[k] = p
			points = append(points, *p)
		}
	}
	if err := w.addHistory(points, now.Add(-historyKeep), maxHistoryExpiry); err != nil {
		return fmt.Errorf("store history: %w", err)
	}
	return nil
}

// maxHistoryExpiry bounds the expired points one commit deletes: a week of a queue's
// minutes is 10,080 points, so a few commits catch up after a long stop.
const maxHistoryExpiry = 2000

// applied forgets what the committed cycle stored.
func (h *historian) applied() {
	for k := range h.writing {
		delete(h.open, k)
	}
	h.writing = nil
}

// historyValue and parseHistoryValue are a history point's counts: uvarints, in
// the order of HistoryPoint's fields; a value with more of them (written by a later
// jobrun) reads its first ones.
func historyValue(p *HistoryPoint) []byte {
	b := make([]byte, 0, 24)
	for _, n := range [...]int64{int64(p.Enqueued), int64(p.Started), int64(p.Done), int64(p.Retried), int64(p.Failed),
		int64(p.Canceled), int64(p.WaitTotal), int64(p.WaitMax), int64(p.Ready)} {
		b = binary.AppendUvarint(b, uint64(max(n, 0)))
	}
	return b
}

func parseHistoryValue(v []byte) (HistoryPoint, bool) {
	var n [9]uint64
	for i := range n {
		u, k := binary.Uvarint(v)
		if k <= 0 {
			return HistoryPoint{}, false
		}
		n[i], v = u, v[k:]
	}
	count := func(u uint64) int { return int(min(u, math.MaxInt)) }
	wait := func(u uint64) time.Duration { return time.Duration(min(u, math.MaxInt64)) }
	return HistoryPoint{Enqueued: count(n[0]), Started: count(n[1]), Done: count(n[2]), Retried: count(n[3]),
		Failed: count(n[4]), Canceled: count(n[5]), WaitTotal: wait(n[6]), WaitMax: wait(n[7]), Ready: count(n[8])}, true
}
