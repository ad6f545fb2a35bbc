package dashboard

import (
	"context"
	"sync"
	"time"

	"github.com/jobrun/jobrun"
)

// The throughput history: one counter per second over the last historySeconds.
const (
	historySeconds = 300
	eventBuffer    = 4096 // Watch's channel; a full one drops changes, counted
)

// tally counts the attempts that ended in one second.
type tally struct {
	Done, Retrying, Failed int
}

func (t *tally) add(o tally) {
	t.Done += o.Done
	t.Retrying += o.Retrying
	t.Failed += o.Failed
}

func (t tally) total() int { return t.Done + t.Retrying + t.Failed }

// ring holds one tally per second of the last historySeconds, indexed by Unix
// second modulo its size; sec tells which second a slot holds, so that slots left
// from an earlier lap read as zero.
type ring struct {
	sec    [historySeconds]int64
	counts [historySeconds]tally
}

// add counts t in at's second. A second a lap older than the slot's is past the
// history, and dropped.
func (r *ring) add(at time.Time, t tally) {
	s := at.Unix()
	i := s % historySeconds
	switch {
	case s < r.sec[i] || s < 0:
		return
	case s > r.sec[i]:
		r.sec[i], r.counts[i] = s, tally{}
	}
	r.counts[i].add(t)
}

// bars sums the seconds before now into n bars of step seconds each, oldest first;
// the last bar ends with now's second.
func (r *ring) bars(now time.Time, n, step int) []tally {
	out := make([]tally, n)
	end := now.Unix()
	for b := range n {
		for k := range step {
			s := end - int64((n-1-b)*step+k)
			if i := s % historySeconds; s >= 0 && r.sec[i] == s {
				out[b].add(r.counts[i])
			}
		}
	}
	return out
}

// stats follows a runner's changes and keeps the throughput of each queue and of
// all of them.
type stats struct {
	mu      sync.Mutex
	all     ring
	queues  map[string]*ring
	since   time.Time
	missed  int           // changes dropped because the channel was full
	changed chan struct{} // closed and replaced after each change, for tests (wait)
}

func newStats() *stats {
	return &stats{queues: map[string]*ring{}, since: time.Now(), changed: make(chan struct{})}
}

// follow watches r's changes and counts them in a goroutine that ends when r
// closes (and its channel with it). A closed runner has no changes to follow.
func (s *stats) follow(r *jobrun.Runner) {
	ch, err := r.Watch(context.Background(), eventBuffer)
	if err != nil {
		return
	}
	go func() {
		for e := range ch {
			s.record(e)
		}
	}()
}

func (s *stats) record(e jobrun.Change) {
	var t tally
	switch e.Type {
	case jobrun.ChangeDone:
		t.Done = 1
	case jobrun.ChangeRetrying:
		t.Retrying = 1
	case jobrun.ChangeFailed:
		t.Failed = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.missed += e.Missed
	close(s.changed)
	s.changed = make(chan struct{})
	if t.total() == 0 {
		return
	}
	s.all.add(e.At, t)
	q := s.queues[e.Queue]
	if q == nil {
		q = new(ring)
		s.queues[e.Queue] = q
	}
	q.add(e.At, t)
}

// bars returns the bars of queue, or of every queue for "".
func (s *stats) bars(queue string, now time.Time, n, step int) []tally {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &s.all
	if queue != "" {
		if r = s.queues[queue]; r == nil {
			return make([]tally, n)
		}
	}
	return r.bars(now, n, step)
}

// lastMinute sums the attempts of queue ("" for all) that ended in the last minute.
func (s *stats) lastMinute(queue string, now time.Time) tally {
	var sum tally
	for _, b := range s.bars(queue, now, 1, 60) {
		sum.add(b)
	}
	return sum
}

func (s *stats) missedEvents() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.missed
}

// wait waits until cond, checked after each change taken, holds or ctx ends. cond
// must not hold s.mu. Tests use it instead of sleeping.
func (s *stats) wait(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		changed := s.changed
		s.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// chart is an inline SVG bar chart of tallies, stacked done, retrying, failed.
type chart struct {
	Width, Height int
	Rects         []chartRect
	Max           int // the tallest bar's total, the scale
	Sum           tally
	Span          string // what the whole chart covers, "5 min"
	Step          string // what one bar covers, "5s"
}

type chartRect struct {
	X, Y, W, H int
	Class      string
	Title      string
}

// newChart lays out bars in a width×height box; each bar stacks its done, retrying
// and failed counts from the bottom up.
func newChart(bars []tally, width, height, step int) *chart {
	c := &chart{Width: width, Height: height, Span: formatSeconds(len(bars) * step), Step: formatSeconds(step)}
	for _, b := range bars {
		c.Max = max(c.Max, b.total())
		c.Sum.add(b)
	}
	if c.Max == 0 {
		return c
	}
	bw := width / len(bars)
	for i, b := range bars {
		y := height
		for _, part := range []struct {
			n     int
			class string
		}{{b.Done, "done"}, {b.Retrying, "retrying"}, {b.Failed, "failed"}} {
			if part.n == 0 {
				continue
			}
			h := max(part.n*height/c.Max, 1)
			y -= h
			c.Rects = append(c.Rects, chartRect{X: i * bw, Y: y, W: max(bw-1, 1), H: h, Class: part.class,
				Title: formatSeconds((len(bars)-1-i)*step) + " ago: " + itoa(part.n) + " " + part.class})
		}
	}
	return c
}
