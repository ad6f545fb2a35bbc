package oteljobrun_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobrun/jobrun"
	oteljobrun "github.com/jobrun/jobrun/otel"
)

// Thumbnail is a job's args.
type Thumbnail struct{ Image string }

// Kind names the job type.
func (Thumbnail) Kind() string { return "thumbnail" }

// A request enqueues a job; the job's attempt continues the request's trace, and the
// handler's own span is the attempt's child. Here the spans go to memory and are
// printed as they ended, each with its parent; an application gives New its
// exporting tracer provider, or sets the global one.
func Example() {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	defer tp.Shutdown(context.Background())
	tracer := tp.Tracer("example")

	dir, _ := os.MkdirTemp("", "jobrun-otel-example")
	defer os.RemoveAll(dir)
	tel := oteljobrun.New(oteljobrun.WithTracerProvider(tp))
	r, err := jobrun.Open(filepath.Join(dir, "jobs.db"), tel.RunnerOption(), jobrun.WithQueue("images", 2, nil))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[Thumbnail]) error {
		_, span := tracer.Start(ctx, "resize "+job.Args.Image)
		defer span.End()
		return nil
	}, jobrun.Queue("images"))

	ctx, request := tracer.Start(context.Background(), "POST /upload")
	if _, err := r.Enqueue(ctx, Thumbnail{Image: "a.png"}); err != nil {
		log.Fatal(err)
	}
	request.End()
	if err := r.RunUntilIdle(context.Background()); err != nil {
		log.Fatal(err)
	}

	names := map[trace.SpanID]string{}
	for _, s := range spans.GetSpans() {
		names[s.SpanContext.SpanID()] = s.Name
	}
	for _, s := range spans.GetSpans() {
		parent := "none"
		if s.Parent.IsValid() {
			parent = names[s.Parent.SpanID()]
		}
		fmt.Printf("%-16s %-9s parent: %s\n", s.Name, s.SpanKind, parent)
	}
	// Output:
	// enqueue thumbnail producer  parent: POST /upload
	// POST /upload     internal  parent: none
	// resize a.png     internal  parent: run thumbnail
	// run thumbnail    consumer  parent: enqueue thumbnail
}

// Observe reports the runner's queues at each collection; the attempts are counted
// by the runner option. Here a manual reader collects once and the non-zero job
// counts are printed.
func ExampleTelemetry_Observe() {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	dir, _ := os.MkdirTemp("", "jobrun-otel-example")
	defer os.RemoveAll(dir)
	tel := oteljobrun.New(oteljobrun.WithMeterProvider(mp))
	r, err := jobrun.Open(filepath.Join(dir, "jobs.db"), tel.RunnerOption(), jobrun.WithQueue("images", 2, nil))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[Thumbnail]) error { return nil }, jobrun.Queue("images"))
	reg, err := tel.Observe(r)
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Unregister()

	ctx := context.Background()
	for _, img := range []string{"a.png", "b.png", "c.png"} {
		r.Enqueue(ctx, Thumbnail{Image: img})
	}
	r.RunUntilIdle(ctx)

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		log.Fatal(err)
	}
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if m.Name != "jobrun.jobs" {
			continue
		}
		for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
			if p.Value != 0 {
				queue, _ := p.Attributes.Value(attribute.Key("messaging.destination.name"))
				state, _ := p.Attributes.Value(attribute.Key("jobrun.state"))
				fmt.Printf("jobrun.jobs{queue=%s, state=%s} %d\n", queue.AsString(), state.AsString(), p.Value)
			}
		}
	}
	// Output:
	// jobrun.jobs{queue=images, state=done} 3
}
