package oteljobrun_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/jobruntest"
	"github.com/jobrun/jobrun/metrics"
	oteljobrun "github.com/jobrun/jobrun/otel"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// task is a job that runs for Seconds of (fake) time, fails its attempts below
// FailUntil, and then does Do: "" succeeds, or one of the cases of handleTask.
type task struct {
	Seconds   int    `json:"seconds,omitempty"`
	FailUntil int    `json:"fail_until,omitempty"`
	Do        string `json:"do,omitempty"`
}

func (task) Kind() string { return "task" }

func handleTask(ctx context.Context, job *jobrun.Job[task]) error {
	time.Sleep(time.Duration(job.Args.Seconds) * time.Second)
	if job.Attempt < job.Args.FailUntil {
		return fmt.Errorf("attempt %d failed", job.Attempt)
	}
	switch job.Args.Do {
	case "panic":
		panic("kaboom")
	case "permanent":
		return jobrun.Permanent(fmt.Errorf("bad input: %w", errNoSuchUser))
	case "snooze":
		return jobrun.Snooze(time.Minute)
	case "wrapped snooze":
		return fmt.Errorf("mail server busy: %w", jobrun.Snooze(time.Minute))
	case "like a snooze":
		return errors.New("snoozed for 1m0s") // the application's own error
	case "joined permanent":
		return errors.Join(errNoSuchUser, jobrun.Permanent(errNoSuchUser))
	case "sleep":
		if err := jobrun.Sleep(ctx, "nap", time.Hour); err != nil {
			return err
		}
	case "block":
		<-ctx.Done()
		return context.Cause(ctx)
	}
	return nil
}

var errNoSuchUser = errors.New("no such user")

// harness is a runner traced and measured into memory.
type harness struct {
	r      *jobrun.Runner
	tel    *oteljobrun.Telemetry
	spans  *tracetest.InMemoryExporter
	reader *sdkmetric.ManualReader
	tracer trace.Tracer // the application's, for the producer's spans
}

// newHarness opens a runner with tel's option first and opts after it, and task's
// handler registered.
func newHarness(t *testing.T, telOpts []oteljobrun.Option, opts ...jobrun.Option) *harness {
	t.Helper()
	h := &harness{spans: tracetest.NewInMemoryExporter(), reader: sdkmetric.NewManualReader()}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(h.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.reader))
	t.Cleanup(func() {
		tp.Shutdown(context.Background())
		mp.Shutdown(context.Background())
	})
	h.tracer = tp.Tracer("app")
	h.tel = oteljobrun.New(append([]oteljobrun.Option{oteljobrun.WithTracerProvider(tp), oteljobrun.WithMeterProvider(mp)},
		telOpts...)...)
	h.r = jobruntest.Open(t, append([]jobrun.Option{h.tel.RunnerOption()}, opts...)...)
	jobrun.Handle(h.r, handleTask)
	return h
}

// enqueue enqueues args under a producer span called "request", ended before it
// returns, and returns the job's ID and that span.
func (h *harness) enqueue(t *testing.T, args jobrun.Args, opts ...jobrun.EnqueueOption) (jobrun.ID, trace.SpanContext) {
	t.Helper()
	ctx, span := h.tracer.Start(t.Context(), "request")
	defer span.End()
	id, err := h.r.Enqueue(ctx, args, opts...)
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	return id, span.SpanContext()
}

// named returns the ended spans called name, in the order they ended.
func (h *harness) named(name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range h.spans.GetSpans() {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// one returns the only ended span called name, failing t if there is not one.
func (h *harness) one(t *testing.T, name string) tracetest.SpanStub {
	t.Helper()
	spans := h.named(name)
	if len(spans) != 1 {
		t.Fatalf("%d spans called %q, want 1; spans: %v", len(spans), name, h.names())
	}
	return spans[0]
}

func (h *harness) names() []string {
	var out []string
	for _, s := range h.spans.GetSpans() {
		out = append(out, s.Name)
	}
	return out
}

// attr returns the value of span's attribute key, "" if it has none, formatted.
func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// wantAttrs fails t unless span has each attribute of want (key, value formatted).
func wantAttrs(t *testing.T, s tracetest.SpanStub, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := attr(s, k); got != v {
			t.Errorf("%s: attribute %s = %q, want %q", s.Name, k, got, v)
		}
	}
}

// linkedTo reports whether s has exactly one link, to sc.
func linkedTo(s tracetest.SpanStub, sc trace.SpanContext) bool {
	return len(s.Links) == 1 && s.Links[0].SpanContext.Equal(sc.WithRemote(true))
}

// TestAttemptContinuesTheProducersTrace: the enqueue makes a producer span, a child
// of the caller's, whose context the job's metadata carries; the attempt is a
// consumer span, its child and linked to it, with the job's attributes, timed on
// the fake clock.
func TestAttemptContinuesTheProducersTrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil, jobrun.WithQueue("slow", 1, nil))
		id, request := h.enqueue(t, task{Seconds: 3}, jobrun.Queue("slow"), jobrun.MaxAttempts(4))
		jobruntest.RunUntilIdle(t, h.r)

		enq := h.one(t, "enqueue task")
		if enq.SpanKind != trace.SpanKindProducer || !enq.Parent.Equal(request) {
			t.Errorf("enqueue span: kind %v, parent %v; want a producer, child of the request %v", enq.SpanKind, enq.Parent.SpanID(), request.SpanID())
		}
		wantAttrs(t, enq, map[string]string{"messaging.system": "jobrun", "messaging.operation.type": "create",
			"messaging.operation.name": "enqueue", "messaging.destination.name": "slow", "jobrun.kind": "task"})
		info, err := h.r.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		sc := enq.SpanContext
		if got, want := info.Metadata["traceparent"], fmt.Sprintf("00-%s-%s-01", sc.TraceID(), sc.SpanID()); got != want {
			t.Errorf("metadata traceparent %q, want %q", got, want)
		}

		run := h.one(t, "run task")
		if run.SpanKind != trace.SpanKindConsumer || !run.Parent.Equal(sc.WithRemote(true)) || !linkedTo(run, sc) {
			t.Errorf("run span: kind %v, parent %v, links %v; want a consumer, child of and linked to the enqueue span %v",
				run.SpanKind, run.Parent.SpanID(), run.Links, sc.SpanID())
		}
		wantAttrs(t, run, map[string]string{"messaging.system": "jobrun", "messaging.operation.type": "process",
			"messaging.operation.name": "run", "messaging.destination.name": "slow", "jobrun.kind": "task",
			"messaging.message.id": fmt.Sprint(id), "jobrun.attempt": "1", "jobrun.max_attempts": "4",
			"jobrun.outcome": "done", "error.type": ""})
		if run.Status.Code != codes.Unset || len(run.Events) != 0 {
			t.Errorf("run span of a success: status %v, events %v; want unset, none", run.Status, run.Events)
		}
		if d := run.EndTime.Sub(run.StartTime); d != 3*time.Second {
			t.Errorf("run span lasted %v, want 3s", d)
		}
	})
}

// TestNewTrace: WithNewTrace makes each attempt the root of a trace of its own,
// still linked to the job's creation.
func TestNewTrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, []oteljobrun.Option{oteljobrun.WithNewTrace()})
		h.enqueue(t, task{})
		jobruntest.RunUntilIdle(t, h.r)
		enq, run := h.one(t, "enqueue task"), h.one(t, "run task")
		if run.Parent.IsValid() || run.SpanContext.TraceID() == enq.SpanContext.TraceID() || !linkedTo(run, enq.SpanContext) {
			t.Errorf("run span: parent %v, trace %v, links %v; want a root of another trace than %v, linked to the enqueue span",
				run.Parent, run.SpanContext.TraceID(), run.Links, enq.SpanContext.TraceID())
		}
	})
}

// TestUntracedJob: a job without a creation context (enqueued before tracing, or by
// the runner itself) runs as a root span without links; one enqueued with no span
// in its context starts a trace at its enqueue.
func TestUntracedJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		if _, err := h.r.Enqueue(t.Context(), task{}); err != nil {
			t.Fatal(err)
		}
		// Cron fires are not hooked.
		if err := h.r.Schedule(t.Context(), "tick", "@every 1m", task{}); err != nil {
			t.Fatal(err)
		}
		jobruntest.RunFor(t, h.r, time.Minute)
		enq := h.one(t, "enqueue task")
		runs := h.named("run task")
		if enq.Parent.IsValid() || len(runs) != 2 {
			t.Fatalf("enqueue span's parent %v, %d run spans; want a root and 2", enq.Parent, len(runs))
		}
		if !runs[0].Parent.Equal(enq.SpanContext.WithRemote(true)) {
			t.Errorf("the enqueued job's run: parent %v, want the enqueue span", runs[0].Parent)
		}
		if cron := runs[1]; cron.Parent.IsValid() || len(cron.Links) != 0 {
			t.Errorf("the cron fire's run: parent %v, links %v; want a root without links", cron.Parent, cron.Links)
		}
	})
}

// TestEveryAttemptIsASpan: retries on fake time are one span each, all children of
// the one creation span, failed ones with status Error, the error recorded and
// error.type; the last is done.
func TestEveryAttemptIsASpan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.enqueue(t, task{FailUntil: 3}, jobrun.MaxAttempts(3), jobrun.Backoff(10*time.Second, 10*time.Second))
		jobruntest.RunFor(t, h.r, time.Minute)

		enq := h.one(t, "enqueue task")
		runs := h.named("run task")
		if len(runs) != 3 {
			t.Fatalf("%d run spans, want 3", len(runs))
		}
		for i, run := range runs {
			attempt := i + 1
			wantOutcome, wantStatus := "retrying", codes.Error
			if attempt == 3 {
				wantOutcome, wantStatus = "done", codes.Unset
			}
			wantAttrs(t, run, map[string]string{"jobrun.attempt": fmt.Sprint(attempt), "jobrun.outcome": wantOutcome})
			if run.Status.Code != wantStatus || !run.Parent.Equal(enq.SpanContext.WithRemote(true)) {
				t.Errorf("attempt %d: status %v, parent %v; want %v, the enqueue span", attempt, run.Status, run.Parent.SpanID(), wantStatus)
			}
			if attempt == 3 {
				continue
			}
			wantAttrs(t, run, map[string]string{"error.type": "*errors.errorString"})
			msg := fmt.Sprintf("attempt %d failed", attempt)
			if run.Status.Description != msg || !hasException(run, "*errors.errorString", msg) {
				t.Errorf("attempt %d: status %q, events %v; want %q and its exception event", attempt, run.Status.Description, run.Events, msg)
			}
		}
		if gap := runs[1].StartTime.Sub(runs[0].EndTime); gap != 10*time.Second {
			t.Errorf("second attempt started %v after the first ended, want the backoff of 10s", gap)
		}
	})
}

// hasException reports whether s has an exception event of the type and message.
func hasException(s tracetest.SpanStub, typ, msg string) bool {
	return slices.ContainsFunc(s.Events, func(e sdktrace.Event) bool {
		got := map[attribute.Key]string{}
		for _, kv := range e.Attributes {
			got[kv.Key] = kv.Value.Emit()
		}
		return e.Name == "exception" && got["exception.type"] == typ && got["exception.message"] == msg
	})
}

// TestPanic: a panic is recorded on the attempt's span, value and stack, and goes
// on to the runner, which fails the attempt with the handler's stack as without
// tracing.
func TestPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var hooked error
		h := newHarness(t, nil, jobrun.WithErrorHook(func(ctx context.Context, job *jobrun.Info, err error) { hooked = err }))
		id, _ := h.enqueue(t, task{Do: "panic"}, jobrun.MaxAttempts(2))
		jobruntest.RunUntilIdle(t, h.r)

		run := h.one(t, "run task")
		wantAttrs(t, run, map[string]string{"jobrun.outcome": "retrying", "error.type": "panic"})
		if run.Status.Code != codes.Error || run.Status.Description != "panic: kaboom" || !hasException(run, "string", "kaboom") {
			t.Errorf("status %v, events %v; want Error \"panic: kaboom\" and an exception event", run.Status, run.Events)
		}
		stack := ""
		for _, kv := range run.Events[0].Attributes {
			if kv.Key == "exception.stacktrace" {
				stack = kv.Value.AsString()
			}
		}
		if !strings.Contains(stack, "_test.handleTask(") {
			t.Errorf("exception stack does not name the handler:\n%s", stack)
		}
		var pe *jobrun.PanicError
		if !errors.As(hooked, &pe) || pe.Value != "kaboom" {
			t.Fatalf("error hook got %v, want the *PanicError of the panic", hooked)
		}
		info, err := h.r.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if info.State != jobrun.StateRetrying || !strings.Contains(info.LastError, "_test.handleTask(") {
			t.Errorf("job %s, last error\n%s\nwant retrying with the handler's stack", info.State, info.LastError)
		}
	})
}

// TestClassifyKnowsTheRunnersErrors runs an attempt to each outcome and checks that
// the span's outcome agrees with the change the runner committed for it, and that
// only failures set the status: the middleware recognizes jobrun's control errors
// by their messages, and this pins them.
func TestClassifyKnowsTheRunnersErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    task
		opts    []jobrun.EnqueueOption
		act     func(t *testing.T, h *harness, id jobrun.ID) // while the attempt blocks; nil: it does not
		outcome string
		change  jobrun.ChangeType
		errType string
	}{
		{"done", task{}, nil, nil, "done", jobrun.ChangeDone, ""},
		{"retrying", task{FailUntil: 2}, nil, nil, "retrying", jobrun.ChangeRetrying, "*errors.errorString"},
		{"last attempt", task{FailUntil: 2}, []jobrun.EnqueueOption{jobrun.MaxAttempts(1)}, nil, "failed", jobrun.ChangeFailed, "*errors.errorString"},
		{"permanent", task{Do: "permanent"}, nil, nil, "failed", jobrun.ChangeFailed, "*errors.errorString"},
		{"snooze", task{Do: "snooze"}, nil, nil, "snoozed", jobrun.ChangeSnoozed, ""},
		{"wrapped snooze", task{Do: "wrapped snooze"}, nil, nil, "snoozed", jobrun.ChangeSnoozed, ""},
		{"an error like a snooze", task{Do: "like a snooze"}, nil, nil, "retrying", jobrun.ChangeRetrying, "*errors.errorString"},
		{"joined permanent", task{Do: "joined permanent"}, nil, nil, "failed", jobrun.ChangeFailed, "*errors.joinError"},
		{"sleep", task{Do: "sleep"}, nil, nil, "snoozed", jobrun.ChangeSnoozed, ""},
		{"timeout", task{Do: "block"}, []jobrun.EnqueueOption{jobrun.Timeout(time.Second)}, nil, "retrying", jobrun.ChangeRetrying, "timeout"},
		{"cancel", task{Do: "block"}, nil, func(t *testing.T, h *harness, id jobrun.ID) {
			if err := h.r.Cancel(t.Context(), id); err != nil {
				t.Fatal(err)
			}
		}, "canceled", jobrun.ChangeCanceled, ""},
		{"shutdown", task{Do: "block"}, nil, func(t *testing.T, h *harness, id jobrun.ID) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			h.r.Shutdown(ctx) // ends at the timeout: the handler blocks
		}, "interrupted", jobrun.ChangeReady, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				var changes []jobrun.ChangeType
				h := newHarness(t, nil, jobrun.WithChangeHook(func(c jobrun.Change) {
					mu.Lock()
					defer mu.Unlock()
					if c.Type != jobrun.ChangeEnqueued && c.Type != jobrun.ChangeStarted {
						changes = append(changes, c.Type)
					}
				}))
				id, _ := h.enqueue(t, tc.args, tc.opts...)
				if tc.act == nil {
					jobruntest.RunUntilIdle(t, h.r)
				} else {
					done := make(chan error, 1)
					go func() { done <- h.r.RunUntilIdle(t.Context()) }()
					synctest.Wait() // the handler blocks on its context
					tc.act(t, h, id)
					<-done
				}
				synctest.Wait()
				mu.Lock()
				defer mu.Unlock()
				run := h.one(t, "run task")
				wantAttrs(t, run, map[string]string{"jobrun.outcome": tc.outcome, "error.type": tc.errType})
				if len(changes) == 0 || changes[0] != tc.change {
					t.Errorf("changes %v, want %s first", changes, tc.change)
				}
				if failed := run.Status.Code == codes.Error; failed != (tc.errType != "") {
					t.Errorf("status %v; want Error only for a failure", run.Status)
				}
			})
		})
	}
}

// order invokes a charge as a child run and sends an "ordered" event, which
// starts a notify run, from its handler.
type order struct{}

func (order) Kind() string { return "order" }

type charge struct{}

func (charge) Kind() string { return "charge" }

type notify struct{}

func (notify) Kind() string { return "notify" }

// TestHandlerEnqueuesInItsTrace: the jobs a handler makes (Invoke's child, the run
// of an event it sends) are created in its attempt's trace, and the runs of an event a
// caller sends in the caller's.
func TestHandlerEnqueuesInItsTrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		jobrun.Handle(h.r, func(ctx context.Context, job *jobrun.Job[order]) error {
			if _, err := jobrun.SendEvent(ctx, "announce", jobrun.Event{Name: "ordered"}); err != nil {
				return err
			}
			_, err := jobrun.Invoke[int](ctx, "charge", charge{})
			return err
		})
		jobrun.Handle(h.r, func(ctx context.Context, job *jobrun.Job[charge]) error { return job.SetResult(7) })
		jobrun.Handle(h.r, func(ctx context.Context, job *jobrun.Job[notify]) error { return nil }, jobrun.On("ordered"))
		h.enqueue(t, order{})
		jobruntest.RunFor(t, h.r, time.Minute)

		runs := h.named("run order")
		if len(runs) != 2 {
			t.Fatalf("%d run spans of the order, want 2 (suspended in Invoke, then done); spans %v", len(runs), h.names())
		}
		wantAttrs(t, runs[0], map[string]string{"jobrun.outcome": "snoozed"})
		wantAttrs(t, runs[1], map[string]string{"jobrun.outcome": "done"})
		first := runs[0].SpanContext
		for _, kind := range []string{"charge", "notify"} {
			// One creation span each, under the first attempt: the second attempt
			// gets Invoke's and SendEvent's stored steps back and enqueues nothing.
			run, enq := h.one(t, "run "+kind), h.one(t, "enqueue "+kind)
			if !run.Parent.Equal(enq.SpanContext.WithRemote(true)) || !enq.Parent.Equal(first) {
				t.Errorf("%s: run under %v, enqueued under %v; want under its enqueue span, under the order's first attempt %v",
					kind, run.Parent.SpanID(), enq.Parent.SpanID(), first.SpanID())
			}
		}

		h.spans.Reset()
		ctx, request := h.tracer.Start(t.Context(), "request")
		if _, err := h.r.Send(ctx, jobrun.Event{Name: "ordered"}); err != nil {
			t.Fatal(err)
		}
		request.End()
		if enq := h.one(t, "enqueue notify"); !enq.Parent.Equal(request.SpanContext()) {
			t.Errorf("the run of a sent event was enqueued under %v, want the sender's span", enq.Parent.SpanID())
		}
	})
}

// TestPropagatorCarriesBaggage: with a propagator of baggage too, the producer's
// baggage reaches the handler's context through the job's metadata.
func TestPropagatorCarriesBaggage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
		h := newHarness(t, []oteljobrun.Option{oteljobrun.WithPropagator(prop)})
		var got string
		jobrun.Handle(h.r, func(ctx context.Context, job *jobrun.Job[order]) error {
			got = baggage.FromContext(ctx).Member("tenant").Value()
			return nil
		})
		member, err := baggage.NewMember("tenant", "acme")
		if err != nil {
			t.Fatal(err)
		}
		bag, err := baggage.New(member)
		if err != nil {
			t.Fatal(err)
		}
		id, err := h.r.Enqueue(baggage.ContextWithBaggage(t.Context(), bag), order{})
		if err != nil {
			t.Fatal(err)
		}
		jobruntest.RunUntilIdle(t, h.r)
		info, err := h.r.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if got != "acme" || info.Metadata["baggage"] != "tenant=acme" {
			t.Errorf("handler's baggage tenant %q, metadata %v; want acme, carried as baggage", got, info.Metadata)
		}
	})
}

// TestBucketsAsPrometheus: the histograms cut where jobrun/metrics' do.
func TestBucketsAsPrometheus(t *testing.T) {
	if !slices.Equal(oteljobrun.Buckets, metrics.DefaultBuckets) {
		t.Errorf("buckets %v, want metrics.DefaultBuckets %v", oteljobrun.Buckets, metrics.DefaultBuckets)
	}
}
