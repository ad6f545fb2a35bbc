package oteljobrun

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/jobrun/jobrun"
)

// Observe makes t's meter read r's queues and durable functions at each collection:
// jobrun.jobs, jobrun.queue.paused, jobrun.queue.workers, jobrun.runs.suspended,
// jobrun.steps and jobrun.steps.retried (see the package doc). Each collection costs
// two read transactions of r, O(queues). Once r is closed they are left out of the
// collection; another error reading them is the collection's error, and the other
// metrics are still collected. Unregister the returned registration to stop.
//
// Observe one runner per meter provider: two runners observed together report
// the same queue under the same attributes. To tell runners apart, give each a
// meter provider of its own, with a resource that names it.
func (t *Telemetry) Observe(r *jobrun.Runner) (metric.Registration, error) {
	if r == nil {
		return nil, errors.New("oteljobrun: nil runner")
	}
	reg, err := t.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		return t.observe(ctx, r, o)
	}, t.jobs, t.paused, t.workers, t.suspended, t.steps, t.stepsRetried)
	if err != nil {
		return nil, fmt.Errorf("oteljobrun: %w", err)
	}
	return reg, nil
}

// observe reports r's gauges to o.
func (t *Telemetry) observe(ctx context.Context, r *jobrun.Runner, o metric.Observer) error {
	queues, err := r.Queues(ctx)
	if errors.Is(err, jobrun.ErrClosed) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("oteljobrun: %w", err)
	}
	for _, q := range queues {
		queue := semconv.MessagingDestinationName(q.Name)
		for _, st := range jobrun.States {
			o.ObserveInt64(t.jobs, int64(q.Counts[st]), metric.WithAttributes(queue, stateKey.String(string(st))))
		}
		paused := int64(0)
		if q.Paused {
			paused = 1
		}
		o.ObserveInt64(t.paused, paused, metric.WithAttributes(queue))
		o.ObserveInt64(t.workers, int64(q.Workers), metric.WithAttributes(queue))
	}
	st, err := r.FunctionStats(ctx)
	if errors.Is(err, jobrun.ErrClosed) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("oteljobrun: %w", err)
	}
	for _, s := range []struct {
		name string
		n    int
	}{{"sleeping", st.Sleeping}, {"waiting", st.Waiting}, {"invoking", st.Invoking}} {
		o.ObserveInt64(t.suspended, int64(s.n), metric.WithAttributes(suspensionKey.String(s.name)))
	}
	o.ObserveInt64(t.steps, int64(st.StepsDone))
	o.ObserveInt64(t.stepsRetried, int64(st.StepsRetried))
	return nil
}
