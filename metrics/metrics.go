// Package metrics exports a jobrun Runner's queues and job activity as Prometheus
// metrics. It is a separate package so that the jobrun package does not depend on
// the Prometheus client.
//
//	c, err := metrics.New(ctx, r)
//	if err != nil { ... }
//	prometheus.MustRegister(c)
//
// # Metrics
//
// Read from the runner at each scrape, through [jobrun.Runner.Queues], at the
// cost of one read transaction and O(queues): the counts are counters the runner
// keeps, not a scan of jobs.
//
//	jobrun_jobs{queue, state}          gauge: jobs in each state, every state present
//	jobrun_queue_paused{queue}         gauge: 1 if the queue is paused, else 0
//	jobrun_queue_workers{queue}        gauge: the queue's workers in this runner, 0 if it does not run it
//
// Counted from the runner's changes ([jobrun.Runner.Watch]) from [New] on; a
// change the collector could not take in time, its buffer full, is counted as missed
// instead:
//
//	jobrun_jobs_done_total{queue, kind}      counter: jobs that succeeded
//	jobrun_jobs_failed_total{queue, kind}    counter: jobs that failed for good (attempts exhausted, Permanent)
//	jobrun_jobs_retried_total{queue, kind}   counter: failed attempts followed by another one
//	jobrun_jobs_canceled_total{queue, kind}  counter: jobs canceled, waiting or running
//	jobrun_events_missed_total               counter: changes dropped because the collector fell behind
//	jobrun_job_run_seconds{queue, kind}      histogram: run time of attempts that ended done, failed, retrying or snoozed
//	jobrun_job_wait_seconds{queue, kind}     histogram: queue latency, from ready to started
//
// # Timing
//
// Both histograms subtract the commit times of two changes of the same job. The run
// time counts from the "started" change, committed just after the handler started
// (see [jobrun.StateRunning]), to the attempt's outcome; a job claimed ahead of the
// workers waits in memory as ready, so that wait is queue latency, not run time. The
// two changes of a short job may share one commit, so its run time reads as 0. The
// queue latency ends at the start and counts from
// the change that left the job ready: its enqueue when it was due at once, otherwise
// the moment it became due, was promoted, retried or handed back.
//
// The start and ready times in flight are kept in memory, at most WithMaxTracked of
// each; past that the oldest are forgotten. An attempt or a wait whose first change
// came before New, was forgotten or was missed is not observed; the counters do not
// depend on it. Attempts interrupted by a shutdown or a Cancel are not observed either.
//
// # Lifetime
//
// New watches the runner's changes and consumes them on a goroutine of its own
// until ctx ends or the runner closes. After that the counters and histograms stop
// changing; the gauges keep reading the runner while it is open and are left out of
// the scrape once it is closed.
//
// To add labels common to every metric (an instance, a file name), register the
// collector through [prometheus.WrapRegistererWith].
package metrics

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jobrun/jobrun"
)

// Defaults of the options, listed once here and on New.
const (
	// DefaultMaxTracked is how many start times and how many ready times the collector
	// keeps in memory at most (WithMaxTracked).
	DefaultMaxTracked = 10000

	// DefaultBuffer is the capacity of the collector's channel of changes
	// (WithBuffer).
	DefaultBuffer = 4096
)

// DefaultBuckets are the upper bounds, in seconds, of the buckets of both histograms
// unless WithRunBuckets or WithWaitBuckets change them: from 5ms to an hour.
var DefaultBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

// Option configures a Collector; pass options to New.
type Option func(*config)

type config struct {
	runBuckets, waitBuckets []float64
	maxTracked, buffer      int
	err                     error
}

// WithRunBuckets sets the bucket upper bounds, in seconds and increasing, of
// jobrun_job_run_seconds. Default: DefaultBuckets.
func WithRunBuckets(bounds ...float64) Option {
	return func(c *config) { c.runBuckets = c.buckets("run", bounds) }
}

// WithWaitBuckets sets the bucket upper bounds, in seconds and increasing, of
// jobrun_job_wait_seconds. Default: DefaultBuckets.
func WithWaitBuckets(bounds ...float64) Option {
	return func(c *config) { c.waitBuckets = c.buckets("wait", bounds) }
}

// buckets checks bounds, so that a bad one fails New rather than panic on the first
// observation.
func (c *config) buckets(name string, bounds []float64) []float64 {
	if len(bounds) == 0 {
		c.err = fmt.Errorf("metrics: no %s buckets", name)
	}
	for i := 1; i < len(bounds); i++ {
		if !(bounds[i] > bounds[i-1]) {
			c.err = fmt.Errorf("metrics: %s buckets must increase, got %v", name, bounds)
		}
	}
	return slices.Clone(bounds)
}

// WithMaxTracked sets how many start times, and how many ready times, the collector
// keeps for the jobs in flight; past that the oldest are forgotten and their jobs
// are not timed. Each costs about 100 bytes. Default: DefaultMaxTracked (10,000).
func WithMaxTracked(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.err = fmt.Errorf("metrics: max tracked must be at least 1, got %d", n)
		}
		c.maxTracked = n
	}
}

// WithBuffer sets the capacity of the channel through which the collector receives
// changes (see [jobrun.Runner.Watch]): changes that arrive while it is full are
// dropped and counted in jobrun_events_missed_total. Default: DefaultBuffer (4,096).
func WithBuffer(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.err = fmt.Errorf("metrics: buffer must be at least 1, got %d", n)
		}
		c.buffer = n
	}
}

// Collector is a [prometheus.Collector] for one [jobrun.Runner]: register it with a
// [prometheus.Registerer]. Create it with [New]. Its methods are safe for concurrent use.
type Collector struct {
	r *jobrun.Runner

	jobs, paused, workers *prometheus.Desc
	suspended, steps      *prometheus.Desc // durable functions: runs suspended in steps; steps stored

	done, failed, retried, canceled *prometheus.CounterVec
	missed                          prometheus.Counter
	run, wait                       *prometheus.HistogramVec

	// Used by the goroutine that consumes the changes only.
	started, ready *tracker
}

// New returns a Collector of r's metrics and starts feeding it from r's changes on a
// goroutine that ends when ctx ends or r closes. It fails if ctx has ended, r is
// closed or an option is invalid.
//
// The defaults, which options change: histogram buckets DefaultBuckets
// ([WithRunBuckets], [WithWaitBuckets]); at most [DefaultMaxTracked] start times and
// ready times kept ([WithMaxTracked]); a change buffer of [DefaultBuffer] ([WithBuffer]).
func New(ctx context.Context, r *jobrun.Runner, opts ...Option) (*Collector, error) {
	if r == nil {
		return nil, errors.New("metrics: nil runner")
	}
	cfg := config{runBuckets: slices.Clone(DefaultBuckets), waitBuckets: slices.Clone(DefaultBuckets),
		maxTracked: DefaultMaxTracked, buffer: DefaultBuffer}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.err != nil {
		return nil, cfg.err
	}
	c := newCollector(r, cfg)
	events, err := r.Watch(ctx, cfg.buffer)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	go c.consume(events)
	return c, nil
}

func newCollector(r *jobrun.Runner, cfg config) *Collector {
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "jobrun", Name: name, Help: help},
			[]string{"queue", "kind"})
	}
	histogram := func(name, help string, buckets []float64) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "jobrun", Name: name, Help: help, Buckets: buckets},
			[]string{"queue", "kind"})
	}
	return &Collector{
		r:       r,
		jobs:    prometheus.NewDesc("jobrun_jobs", "Jobs in each state, per queue.", []string{"queue", "state"}, nil),
		paused:  prometheus.NewDesc("jobrun_queue_paused", "1 if the queue is paused, else 0.", []string{"queue"}, nil),
		workers: prometheus.NewDesc("jobrun_queue_workers", "Workers of the queue in this runner, 0 if it does not run the queue.", []string{"queue"}, nil),
		suspended: prometheus.NewDesc("jobrun_runs_suspended",
			"Runs of durable functions suspended in a step: sleeping (Sleep), waiting (WaitFor) or invoking (waiting for child runs).",
			[]string{"suspension"}, nil),
		steps: prometheus.NewDesc("jobrun_steps_total",
			"Steps this runner stored (Step, SendEvent), by outcome: done (every stored step) or retried (stored after more than one attempt).",
			[]string{"outcome"}, nil),

		done:     counter("jobs_done_total", "Jobs that succeeded."),
		failed:   counter("jobs_failed_total", "Jobs that failed for good: attempts exhausted or Permanent."),
		retried:  counter("jobs_retried_total", "Failed attempts followed by another attempt."),
		canceled: counter("jobs_canceled_total", "Jobs canceled, waiting or running."),
		missed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "jobrun", Name: "events_missed_total",
			Help: "Job events the metrics collector dropped because it fell behind."}),
		run: histogram("job_run_seconds",
			"Run time of attempts that ended done, failed, retrying or snoozed, from their start.", cfg.runBuckets),
		wait: histogram("job_wait_seconds", "Queue latency: time from ready to started.", cfg.waitBuckets),

		started: newTracker(cfg.maxTracked),
		ready:   newTracker(cfg.maxTracked),
	}
}

// Describe sends the descriptors of every metric of c to ch; it implements
// prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.jobs
	ch <- c.paused
	ch <- c.workers
	ch <- c.suspended
	ch <- c.steps
	c.done.Describe(ch)
	c.failed.Describe(ch)
	c.retried.Describe(ch)
	c.canceled.Describe(ch)
	c.missed.Describe(ch)
	c.run.Describe(ch)
	c.wait.Describe(ch)
}

// Collect reads the queues' counts from the runner and sends them to ch with the
// counters and histograms; it implements prometheus.Collector. Once the runner is
// closed, the gauges are left out; another error reading them fails the scrape.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.collectQueues(ch)
	c.collectFunctions(ch)
	c.done.Collect(ch)
	c.failed.Collect(ch)
	c.retried.Collect(ch)
	c.canceled.Collect(ch)
	c.missed.Collect(ch)
	c.run.Collect(ch)
	c.wait.Collect(ch)
}

func (c *Collector) collectQueues(ch chan<- prometheus.Metric) {
	// Collect has no context; Queues is one short read transaction.
	queues, err := c.r.Queues(context.Background())
	if errors.Is(err, jobrun.ErrClosed) {
		return
	}
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.jobs, err)
		return
	}
	for _, q := range queues {
		for _, st := range jobrun.States {
			ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(q.Counts[st]), q.Name, string(st))
		}
		paused := 0.0
		if q.Paused {
			paused = 1
		}
		ch <- prometheus.MustNewConstMetric(c.paused, prometheus.GaugeValue, paused, q.Name)
		ch <- prometheus.MustNewConstMetric(c.workers, prometheus.GaugeValue, float64(q.Workers), q.Name)
	}
}

func (c *Collector) collectFunctions(ch chan<- prometheus.Metric) {
	st, err := c.r.FunctionStats(context.Background())
	if errors.Is(err, jobrun.ErrClosed) {
		return
	}
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.suspended, err)
		return
	}
	for _, s := range []struct {
		name string
		n    int
	}{{"sleeping", st.Sleeping}, {"waiting", st.Waiting}, {"invoking", st.Invoking}} {
		ch <- prometheus.MustNewConstMetric(c.suspended, prometheus.GaugeValue, float64(s.n), s.name)
	}
	ch <- prometheus.MustNewConstMetric(c.steps, prometheus.CounterValue, float64(st.StepsDone), "done")
	ch <- prometheus.MustNewConstMetric(c.steps, prometheus.CounterValue, float64(st.StepsRetried), "retried")
}

// consume feeds c from changes until the channel closes.
func (c *Collector) consume(events <-chan jobrun.Change) {
	for e := range events {
		c.observe(e)
	}
}

// observe records one change.
func (c *Collector) observe(e jobrun.Change) {
	if e.Missed > 0 {
		c.missed.Add(float64(e.Missed))
	}
	switch e.Type {
	case jobrun.ChangeStarted:
		if at, ok := c.ready.take(e.ID); ok {
			c.wait.WithLabelValues(e.Queue, e.Kind).Observe(e.At.Sub(at).Seconds())
		}
		c.started.put(e.ID, e.At)
		return
	case jobrun.ChangeProgress:
		return
	case jobrun.ChangeDone, jobrun.ChangeFailed, jobrun.ChangeRetrying, jobrun.ChangeSnoozed:
		if at, ok := c.started.take(e.ID); ok {
			c.run.WithLabelValues(e.Queue, e.Kind).Observe(e.At.Sub(at).Seconds())
		}
	default:
		// Canceled, deleted, or ready again after an interruption: no attempt ended.
		c.started.take(e.ID)
	}
	switch e.Type {
	case jobrun.ChangeDone:
		c.done.WithLabelValues(e.Queue, e.Kind).Inc()
	case jobrun.ChangeFailed:
		c.failed.WithLabelValues(e.Queue, e.Kind).Inc()
	case jobrun.ChangeRetrying:
		c.retried.WithLabelValues(e.Queue, e.Kind).Inc()
	case jobrun.ChangeCanceled:
		c.canceled.WithLabelValues(e.Queue, e.Kind).Inc()
	}
	// A retry or snooze with no delay leaves the job ready at once.
	if e.State == jobrun.StateReady {
		c.ready.put(e.ID, e.At)
	} else {
		c.ready.take(e.ID)
	}
}

// tracker keeps a time per job, at most max of them, forgetting the oldest first.
type tracker struct {
	max   int
	byID  map[jobrun.ID]*list.Element
	order list.List // of *tracked, oldest first
}

type tracked struct {
	id jobrun.ID
	at time.Time
}

func newTracker(max int) *tracker {
	return &tracker{max: max, byID: make(map[jobrun.ID]*list.Element)}
}

// put sets id's time to at.
func (t *tracker) put(id jobrun.ID, at time.Time) {
	if el, ok := t.byID[id]; ok {
		el.Value.(*tracked).at = at
		t.order.MoveToBack(el)
		return
	}
	if len(t.byID) >= t.max {
		oldest := t.order.Front()
		delete(t.byID, t.order.Remove(oldest).(*tracked).id)
	}
	t.byID[id] = t.order.PushBack(&tracked{id: id, at: at})
}

// take removes id's time and returns it, if it had one.
func (t *tracker) take(id jobrun.ID) (time.Time, bool) {
	el, ok := t.byID[id]
	if !ok {
		return time.Time{}, false
	}
	delete(t.byID, id)
	return t.order.Remove(el).(*tracked).at, true
}
