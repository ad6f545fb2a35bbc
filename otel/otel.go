// Package oteljobrun traces and measures the jobs of a jobrun Runner with
// OpenTelemetry: the producer's trace context crosses the queue in the job's
// metadata, every attempt is a span of the trace that enqueued it, and the
// attempts and queues are metrics of an OpenTelemetry meter, an alternative to the
// Prometheus collector of jobrun/metrics. It is a separate package so that jobrun
// does not depend on OpenTelemetry.
//
// Its import path is github.com/jobrun/jobrun/otel and its name oteljobrun, after
// OpenTelemetry's instrumentation packages (otelhttp, otelgrpc, River's otelriver),
// so that a file can import it beside go.opentelemetry.io/otel without renaming
// either.
//
//	tel := oteljobrun.New() // the global tracer and meter providers; see the options
//	r, err := jobrun.Open(path, tel.RunnerOption(), jobrun.WithQueue("mail", 4, nil))
//	if err != nil { ... }
//	reg, err := tel.Observe(r) // the gauges of r's queues
//	if err != nil { ... }
//	defer reg.Unregister()
//
// # Traces
//
// Every job a caller enqueues (Enqueue, EnqueueMany, EnqueueTx, the runs that Send,
// SendTx and SendEvent start, the children of Invoke and InvokeAll) gets a producer
// span "enqueue <kind>", a child of the span in the caller's context (a root if there
// is none), ended at once: it is the job's creation context, which the propagator
// writes into the job's metadata, by default the W3C trace context ("traceparent"
// and, if any, "tracestate"; see [WithPropagator]). There is one such span per job,
// in a batch too, so that each job's attempts lead back to their own. It says that a
// job was made, not that it was stored: an enqueue refused after the hooks (a
// duplicate UniqueKey, a failed commit) leaves it behind, as OpenTelemetry's
// "create" spans do.
//
// Every attempt is a consumer span "run <kind>", a child of the job's creation
// context and linked to it, as OpenTelemetry's messaging conventions have a
// process span; [WithNewTrace] makes it the root of a trace of its own, still
// linked. The handler's context carries the span, so the spans the handler starts
// are its children and the jobs it enqueues (Invoke, SendEvent, Enqueue) are made
// in its trace. A job with no creation context in its metadata (a cron fire, an
// OnFailure job, a job enqueued before tracing) has no link, and its attempts are
// children of the span in the context given to Run, if any.
//
// The spans' attributes:
//
//	messaging.system            "jobrun"
//	messaging.operation.type    "create" (enqueue) or "process" (run)
//	messaging.operation.name    "enqueue" or "run"
//	messaging.destination.name  the job's queue
//	jobrun.kind                 the job's kind
//	messaging.message.id        the job's ID (run only: the ID is not known at enqueue)
//	jobrun.attempt              the attempt, 1 on the first run (run only)
//	jobrun.max_attempts         the job's MaxAttempts (run only)
//	jobrun.outcome              how the attempt ended, see Outcomes (run only)
//	error.type                  for a failed attempt: "panic", "timeout" or the Go type of the error's root cause
//
// A failed attempt (outcome retrying or failed) has the status Error, with the
// error's message, and an "exception" event: the error, or for a panic its value
// and stack; a panic goes on to the runner as if there were no middleware. Other
// outcomes leave the status unset, as the conventions ask of instrumentation.
//
// # Outcomes
//
// The middleware classifies each attempt as the runner records it
// (jobrun.AttemptOutcome):
//
//	done         the handler returned nil
//	retrying     it failed, and another attempt follows
//	failed       it failed for good: its last attempt, or Permanent
//	snoozed      it returned Snooze, or a step that suspends the run (Sleep, SleepUntil, WaitFor, Invoke, InvokeAll)
//	canceled     Cancel stopped it while it ran
//	interrupted  the runner stopped (Shutdown, Close, Run's context) while it ran; the job runs again
//
// # Metrics
//
// From the middleware, for every attempt (attributes: messaging.destination.name,
// jobrun.kind, and jobrun.outcome but on the wait):
//
//	jobrun.attempts             counter {attempt}: attempts, by outcome
//	jobrun.attempt.duration     histogram, s: run time of attempts, from the middleware's start to its end
//	jobrun.attempt.wait_time    histogram, s: queue latency, from the job's RunAt (when it became due) to the attempt's start
//
// Read from the runner by [Telemetry.Observe] at each collection, in two read
// transactions whose cost is O(queues): the counts are counters the runner keeps,
// not a scan of jobs.
//
//	jobrun.jobs                 updowncounter {job}: jobs by messaging.destination.name and jobrun.state, every state present
//	jobrun.queue.paused         gauge: 1 if the queue (messaging.destination.name) is paused, else 0
//	jobrun.queue.workers        updowncounter {worker}: the queue's workers in this runner, 0 if it does not run it
//	jobrun.runs.suspended       updowncounter {run}: runs of durable functions suspended, by jobrun.suspension: sleeping, waiting or invoking
//	jobrun.steps                counter {step}: steps this runner stored (Step, SendEvent) since it opened
//	jobrun.steps.retried        counter {step}: those of them that took more than one attempt
//
// The histograms' buckets run from 5ms to an hour, as jobrun/metrics' do; a view of
// the SDK's meter provider changes them.
package oteljobrun

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobrun/jobrun"
)

// scope names the tracer and the meter: the package's import path, as
// OpenTelemetry asks of instrumentation.
const scope = "github.com/jobrun/jobrun/otel"

// buckets are the histograms' bucket bounds, in seconds: jobrun/metrics'
// DefaultBuckets, so that both exporters cut the same way.
var buckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

// Attribute keys of jobrun's own; the others are OpenTelemetry's semantic
// conventions.
const (
	kindKey        = attribute.Key("jobrun.kind")
	attemptKey     = attribute.Key("jobrun.attempt")
	maxAttemptsKey = attribute.Key("jobrun.max_attempts")
	outcomeKey     = attribute.Key("jobrun.outcome")
	stateKey       = attribute.Key("jobrun.state")
	suspensionKey  = attribute.Key("jobrun.suspension")
)

// system is the messaging.system attribute of every span.
var system = semconv.MessagingSystemKey.String("jobrun")

// Option configures a Telemetry; pass options to New.
type Option func(*config)

type config struct {
	tp       trace.TracerProvider
	mp       metric.MeterProvider
	prop     propagation.TextMapPropagator
	newTrace bool
}

// WithTracerProvider sets the tracer provider the spans come from. Default (or nil):
// the global one, otel.GetTracerProvider, which forwards to the provider set later
// with otel.SetTracerProvider and drops the spans until then.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tp = tp }
}

// WithMeterProvider sets the meter provider the metrics go to. Default (or nil): the
// global one, otel.GetMeterProvider, which forwards to the provider set later with
// otel.SetMeterProvider.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.mp = mp }
}

// WithPropagator sets how a job's creation context is written into its metadata at
// enqueue and read back at each attempt. Producers and workers must agree on it.
// Default (or nil): the W3C trace context, propagation.TraceContext, whatever the
// global propagator is: the metadata is jobrun's own carrier, which no other system
// reads, and the global one does nothing until otel.SetTextMapPropagator. To carry
// baggage too, pass propagation.NewCompositeTextMapPropagator(propagation.TraceContext{},
// propagation.Baggage{}), mindful that a job's metadata holds at most 8 KiB, beyond
// which the enqueue fails; otel.GetTextMapPropagator() uses the global one.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *config) { c.prop = p }
}

// WithNewTrace makes each attempt's span the root of a new trace, linked to the
// job's creation context instead of its child: for jobs that run long after the
// request that made them (delayed, retried for hours, scheduled), whose attempts
// would otherwise stretch the request's trace. Default: a child.
func WithNewTrace() Option {
	return func(c *config) { c.newTrace = true }
}

// Telemetry traces and counts the jobs of the runners it is given to
// ([Telemetry.RunnerOption]) and observes their queues ([Telemetry.Observe]). Create
// it with [New]. It is safe for concurrent use and may serve several runners; their
// attempts' spans and counters are told apart by queue and kind only.
type Telemetry struct {
	tracer   trace.Tracer
	meter    metric.Meter
	prop     propagation.TextMapPropagator
	newTrace bool

	attempts       metric.Int64Counter
	duration, wait metric.Float64Histogram

	jobs, workers, suspended metric.Int64ObservableUpDownCounter
	paused                   metric.Int64ObservableGauge
	steps, stepsRetried      metric.Int64ObservableCounter
}

// New returns a Telemetry. The defaults, which options change: the global tracer
// and meter providers ([WithTracerProvider], [WithMeterProvider]); the W3C trace
// context in the jobs' metadata ([WithPropagator]); attempts as children of their
// job's creation context ([WithNewTrace]). If the meter provider refuses one of the
// instruments, the error goes to otel.Handle and the Telemetry records no metrics.
func New(opts ...Option) *Telemetry {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.tp == nil {
		cfg.tp = otel.GetTracerProvider()
	}
	if cfg.mp == nil {
		cfg.mp = otel.GetMeterProvider()
	}
	if cfg.prop == nil {
		cfg.prop = propagation.TraceContext{}
	}
	t := &Telemetry{
		tracer:   cfg.tp.Tracer(scope, trace.WithSchemaURL(semconv.SchemaURL)),
		meter:    cfg.mp.Meter(scope, metric.WithSchemaURL(semconv.SchemaURL)),
		prop:     cfg.prop,
		newTrace: cfg.newTrace,
	}
	if err := t.instruments(t.meter); err != nil {
		// A provider that refuses one of them measures nothing rather than a part.
		otel.Handle(fmt.Errorf("oteljobrun: %w", err))
		t.meter = noop.Meter{}
		t.instruments(t.meter)
	}
	return t
}

// instruments creates t's instruments from m.
func (t *Telemetry) instruments(m metric.Meter) error {
	var errs [9]error
	t.attempts, errs[0] = m.Int64Counter("jobrun.attempts", metric.WithUnit("{attempt}"),
		metric.WithDescription("Attempts of jobs, by outcome."))
	t.duration, errs[1] = m.Float64Histogram("jobrun.attempt.duration", metric.WithUnit("s"),
		metric.WithDescription("Run time of attempts, by outcome."), metric.WithExplicitBucketBoundaries(buckets...))
	t.wait, errs[2] = m.Float64Histogram("jobrun.attempt.wait_time", metric.WithUnit("s"),
		metric.WithDescription("Queue latency: time from a job's becoming due to its attempt's start."),
		metric.WithExplicitBucketBoundaries(buckets...))
	t.jobs, errs[3] = m.Int64ObservableUpDownCounter("jobrun.jobs", metric.WithUnit("{job}"),
		metric.WithDescription("Jobs in each state, per queue."))
	t.paused, errs[4] = m.Int64ObservableGauge("jobrun.queue.paused", metric.WithUnit("1"),
		metric.WithDescription("1 if the queue is paused, else 0."))
	t.workers, errs[5] = m.Int64ObservableUpDownCounter("jobrun.queue.workers", metric.WithUnit("{worker}"),
		metric.WithDescription("Workers of the queue in this runner, 0 if it does not run the queue."))
	t.suspended, errs[6] = m.Int64ObservableUpDownCounter("jobrun.runs.suspended", metric.WithUnit("{run}"),
		metric.WithDescription("Runs of durable functions suspended in a step: sleeping (Sleep), waiting (WaitFor) or invoking (waiting for child runs)."))
	t.steps, errs[7] = m.Int64ObservableCounter("jobrun.steps", metric.WithUnit("{step}"),
		metric.WithDescription("Steps this runner stored (Step, SendEvent) since it opened."))
	t.stepsRetried, errs[8] = m.Int64ObservableCounter("jobrun.steps.retried", metric.WithUnit("{step}"),
		metric.WithDescription("Steps this runner stored after more than one attempt, since it opened."))
	return errors.Join(errs[:]...)
}

// RunnerOption returns the runner option that traces and counts jobs: give it to
// jobrun.Open or jobrun.New. It adds an enqueue hook (jobrun.WithEnqueueHook), which
// makes each job's creation span and writes its context into the job's metadata,
// and a middleware for every kind (jobrun.WithMiddleware), which makes each
// attempt's span and records its metrics. Middleware runs in the order of the
// options: give this one first, so that the others run inside the attempt's span and
// their outcome is the one recorded.
func (t *Telemetry) RunnerOption() jobrun.Option {
	return join(jobrun.WithEnqueueHook(t.enqueue), jobrun.WithMiddleware(t.run))
}

// join is opts as one option, applied in order. jobrun.Option is a func of the
// runner's unexported configuration, whose type is inferred here, never named.
func join[O ~func(C), C any](opts ...O) O {
	return func(c C) {
		for _, o := range opts {
			o(c)
		}
	}
}

// enqueue is the enqueue hook: it starts and ends job's creation span, in the
// caller's trace, and writes its context into the job's metadata.
func (t *Telemetry) enqueue(ctx context.Context, job *jobrun.Info) error {
	ctx, span := t.tracer.Start(ctx, "enqueue "+job.Kind, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(system, semconv.MessagingOperationTypeCreate, semconv.MessagingOperationName("enqueue"),
			semconv.MessagingDestinationName(job.Queue), kindKey.String(job.Kind)))
	t.prop.Inject(ctx, propagation.MapCarrier(job.Metadata))
	span.End()
	return nil
}
