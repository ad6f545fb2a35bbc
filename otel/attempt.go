package oteljobrun

import (
	"context"
	"fmt"
	"runtime/debug"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobrun/jobrun"
)

// run is the middleware: it wraps an attempt of job in its span, in the trace of
// the job's creation context, and records the attempt's metrics.
func (t *Telemetry) run(ctx context.Context, job *jobrun.Info, next func(context.Context) error) (err error) {
	start := time.Now()
	where := []attribute.KeyValue{semconv.MessagingDestinationName(job.Queue), kindKey.String(job.Kind)}

	// The creation context alone, to link to; the parent is whatever the propagator
	// makes of the metadata over ctx (baggage too, if it carries any).
	carrier := propagation.MapCarrier(job.Metadata)
	created := trace.SpanContextFromContext(t.prop.Extract(context.Background(), carrier))
	parent := ctx
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(append(where,
		system, semconv.MessagingOperationTypeProcess, semconv.MessagingOperationName("run"),
		semconv.MessagingMessageID(strconv.FormatUint(uint64(job.ID), 10)),
		attemptKey.Int(job.Attempt), maxAttemptsKey.Int(job.MaxAttempts))...)}
	if created.IsValid() {
		parent = t.prop.Extract(ctx, carrier)
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: created}))
	}
	if t.newTrace {
		opts = append(opts, trace.WithNewRoot())
	}
	spanCtx, span := t.tracer.Start(parent, "run "+job.Kind, opts...)
	if !job.StartedAt.IsZero() {
		t.wait.Record(spanCtx, max(job.StartedAt.Sub(job.RunAt), 0).Seconds(), metric.WithAttributes(where...))
	}

	returned := false
	defer func() {
		if returned {
			return
		}
		// A panic (or runtime.Goexit, which recovers nothing): record it and let it
		// go on to the runner, which makes it the attempt's failure.
		v := recover()
		if v != nil {
			span.AddEvent(semconv.ExceptionEventName, trace.WithAttributes(
				semconv.ExceptionType(fmt.Sprintf("%T", v)), semconv.ExceptionMessage(fmt.Sprint(v)),
				semconv.ExceptionStacktrace(string(debug.Stack()))))
			span.SetStatus(codes.Error, fmt.Sprintf("panic: %v", v))
			t.end(spanCtx, span, where, start, failure(job), "panic")
			panic(v)
		}
		t.end(spanCtx, span, where, start, outcomeInterrupted, "")
	}()
	err = next(spanCtx)
	returned = true
	outcome, errType := classify(ctx, job, err)
	if errType != "" {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	t.end(spanCtx, span, where, start, outcome, errType)
	return err
}

// end ends an attempt's span with its outcome and records the attempt's metrics.
func (t *Telemetry) end(ctx context.Context, span trace.Span, where []attribute.KeyValue, start time.Time, outcome, errType string) {
	d := time.Since(start).Seconds()
	attrs := metric.WithAttributes(append(where, outcomeKey.String(outcome))...)
	t.attempts.Add(ctx, 1, attrs)
	t.duration.Record(ctx, d, attrs)
	span.SetAttributes(outcomeKey.String(outcome))
	if errType != "" {
		span.SetAttributes(semconv.ErrorTypeKey.String(errType))
	}
	span.End()
}
