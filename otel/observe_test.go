package oteljobrun_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/jobruntest"
	oteljobrun "github.com/jobrun/jobrun/otel"
)

// collect reads h's metrics as sorted lines "name{key=value,...} value" of the
// metrics whose names start with prefix, a histogram's value as "count=N sum=S".
func (h *harness) collect(t *testing.T, prefix string) []string {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("collect: %v", err)
	}
	var lines []string
	line := func(name string, set attribute.Set, value string) {
		var attrs []string
		for _, kv := range set.ToSlice() {
			attrs = append(attrs, fmt.Sprintf("%s=%s", kv.Key, kv.Value.Emit()))
		}
		lines = append(lines, fmt.Sprintf("%s{%s} %s", name, strings.Join(attrs, ","), value))
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if !strings.HasPrefix(m.Name, prefix) {
				continue
			}
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range data.DataPoints {
					line(m.Name, p.Attributes, fmt.Sprint(p.Value))
				}
			case metricdata.Gauge[int64]:
				for _, p := range data.DataPoints {
					line(m.Name, p.Attributes, fmt.Sprint(p.Value))
				}
			case metricdata.Histogram[float64]:
				for _, p := range data.DataPoints {
					line(m.Name, p.Attributes, fmt.Sprintf("count=%d sum=%g", p.Count, p.Sum))
				}
			default:
				t.Fatalf("metric %s: unexpected data %T", m.Name, m.Data)
			}
		}
	}
	slices.Sort(lines)
	return lines
}

// nonZero is lines without those whose value is 0.
func nonZero(lines []string) []string {
	return slices.DeleteFunc(slices.Clone(lines), func(l string) bool { return strings.HasSuffix(l, " 0") })
}

func wantLines(t *testing.T, what string, got []string, want string) {
	t.Helper()
	if w := strings.Split(strings.TrimSpace(want), "\n"); !slices.Equal(got, w) {
		t.Errorf("%s:\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(w, "\n"))
	}
}

// TestAttemptMetrics drives attempts to several outcomes on fake time and checks
// the counter and both histograms, their sums to the second.
func TestAttemptMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil, jobrun.WithQueue("slow", 2, nil))
		// Waits 4s in a paused queue, then runs 3s.
		if err := h.r.Pause(t.Context(), "slow"); err != nil {
			t.Fatal(err)
		}
		h.enqueue(t, task{Seconds: 3}, jobrun.Queue("slow"))
		time.Sleep(4 * time.Second)
		if err := h.r.Resume(t.Context(), "slow"); err != nil {
			t.Fatal(err)
		}
		jobruntest.RunUntilIdle(t, h.r)
		// Runs 2s and fails, runs again 10s later, when due, for 2s.
		h.enqueue(t, task{Seconds: 2, FailUntil: 2}, jobrun.Backoff(10*time.Second, 10*time.Second))
		// Sleeps in a step: snoozed, as the runner records it.
		h.enqueue(t, task{Do: "sleep"})
		jobruntest.RunFor(t, h.r, 30*time.Second)

		wantLines(t, "attempt metrics", h.collect(t, "jobrun.attempt"), `
jobrun.attempt.duration{jobrun.kind=task,jobrun.outcome=done,messaging.destination.name=default} count=1 sum=2
jobrun.attempt.duration{jobrun.kind=task,jobrun.outcome=done,messaging.destination.name=slow} count=1 sum=3
jobrun.attempt.duration{jobrun.kind=task,jobrun.outcome=retrying,messaging.destination.name=default} count=1 sum=2
jobrun.attempt.duration{jobrun.kind=task,jobrun.outcome=snoozed,messaging.destination.name=default} count=1 sum=0
jobrun.attempt.wait_time{jobrun.kind=task,messaging.destination.name=default} count=3 sum=0
jobrun.attempt.wait_time{jobrun.kind=task,messaging.destination.name=slow} count=1 sum=4
jobrun.attempts{jobrun.kind=task,jobrun.outcome=done,messaging.destination.name=default} 1
jobrun.attempts{jobrun.kind=task,jobrun.outcome=done,messaging.destination.name=slow} 1
jobrun.attempts{jobrun.kind=task,jobrun.outcome=retrying,messaging.destination.name=default} 1
jobrun.attempts{jobrun.kind=task,jobrun.outcome=snoozed,messaging.destination.name=default} 1
`)
	})
}

// TestObserve: the gauges read the runner's queues and functions at each
// collection, every state of every queue present; Unregister stops them, and a
// closed runner reports none, without an error.
func TestObserve(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil, jobrun.WithQueue("slow", 2, nil))
		reg, err := h.tel.Observe(h.r)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.r.Pause(t.Context(), "held"); err != nil {
			t.Fatal(err)
		}
		h.enqueue(t, task{}, jobrun.Queue("slow"))
		h.enqueue(t, task{}, jobrun.Delay(time.Hour))
		h.enqueue(t, task{Do: "sleep"})
		h.enqueue(t, task{}, jobrun.Queue("held"))
		jobruntest.RunUntilIdle(t, h.r)

		lines := h.collect(t, "jobrun.")
		states := slices.DeleteFunc(slices.Clone(lines), func(l string) bool { return !strings.HasPrefix(l, "jobrun.jobs{") })
		if want := 3 * len(jobrun.States); len(states) != want {
			t.Errorf("%d points of jobrun.jobs, want %d (3 queues, every state):\n%s", len(states), want, strings.Join(states, "\n"))
		}
		gauges := slices.DeleteFunc(nonZero(lines), func(l string) bool { return strings.HasPrefix(l, "jobrun.attempt") })
		wantLines(t, "gauges, but zeros", gauges, `
jobrun.jobs{jobrun.state=done,messaging.destination.name=slow} 1
jobrun.jobs{jobrun.state=ready,messaging.destination.name=held} 1
jobrun.jobs{jobrun.state=scheduled,messaging.destination.name=default} 2
jobrun.queue.paused{messaging.destination.name=held} 1
jobrun.queue.workers{messaging.destination.name=default} 10
jobrun.queue.workers{messaging.destination.name=slow} 2
jobrun.runs.suspended{jobrun.suspension=sleeping} 1
`)
		for _, name := range []string{"jobrun.steps{} 0", "jobrun.steps.retried{} 0", "jobrun.runs.suspended{jobrun.suspension=invoking} 0"} {
			if !slices.Contains(lines, name) {
				t.Errorf("no line %q", name)
			}
		}

		if err := reg.Unregister(); err != nil {
			t.Fatal(err)
		}
		if got := h.collect(t, "jobrun.jobs"); len(got) != 0 {
			t.Errorf("after Unregister: %q, want nothing", got)
		}
		if _, err := h.tel.Observe(h.r); err != nil {
			t.Fatal(err)
		}
		h.r.Close()
		if got := h.collect(t, "jobrun.jobs"); len(got) != 0 {
			t.Errorf("once the runner is closed: %q, want nothing", got)
		}
	})
}

// TestObserveNil: Observe refuses a nil runner.
func TestObserveNil(t *testing.T) {
	if _, err := oteljobrun.New().Observe(nil); err == nil {
		t.Fatal("Observe(nil) succeeded")
	}
}
