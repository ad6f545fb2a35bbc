package jobrun_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/jobrun/jobrun"
)

// benchArgs is the payload of docs/WORKLOADS.md: about 70 bytes of JSON.
type benchArgs struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
	N       int    `json:"n"`
}

func (benchArgs) Kind() string { return "bench" }

func newBenchArgs(i int) benchArgs {
	return benchArgs{To: fmt.Sprintf("user-%d@example.com", i), Subject: "hello", N: i}
}

func benchRunner(b *testing.B, workers int) *jobrun.Runner {
	b.Helper()
	r, err := jobrun.Open(filepath.Join(b.TempDir(), "bench.db"), jobrun.WithQueue("bench", workers, nil))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	return r
}

var benchDone atomic.Int64

func handleBench(r *jobrun.Runner) {
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[benchArgs]) error {
		benchDone.Add(1)
		return nil
	}, jobrun.Queue("bench"))
}

// BenchmarkEnqueue: one producer, each job durable before the next (W1).
func BenchmarkEnqueue(b *testing.B) {
	r := benchRunner(b, 16)
	handleBench(r)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if _, err := r.Enqueue(ctx, newBenchArgs(i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkEnqueueParallel: 16 concurrent producers sharing commits (W2).
func BenchmarkEnqueueParallel(b *testing.B) {
	r := benchRunner(b, 16)
	handleBench(r)
	ctx := context.Background()
	b.SetParallelism(8) // 16 producers on this 2-core machine: 8 × GOMAXPROCS
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := r.Enqueue(ctx, newBenchArgs(int(n.Add(1)))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkEnqueueMany: batches of 1,000 in one commit each (W3).
func BenchmarkEnqueueMany(b *testing.B) {
	r := benchRunner(b, 16)
	handleBench(r)
	ctx := context.Background()
	batch := make([]jobrun.Args, 1000)
	for i := range batch {
		batch[i] = newBenchArgs(i)
	}
	for b.Loop() {
		if _, err := r.EnqueueMany(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkDrain: b.N jobs pre-inserted, then 16 workers run them to completion (W4).
func BenchmarkDrain(b *testing.B) {
	r := benchRunner(b, 16)
	handleBench(r)
	ctx := context.Background()
	enqueueBatched(b, r, func(i int) jobrun.Args { return newBenchArgs(i) })
	b.ResetTimer()
	if err := r.RunUntilIdle(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if c, _ := r.Counts(ctx, "bench"); c[jobrun.StateDone] != b.N {
		b.Fatalf("done %d of %d", c[jobrun.StateDone], b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

type stepsArgs struct{ N int }

func (stepsArgs) Kind() string { return "bench-steps" }

// BenchmarkSteps: runs of three no-op steps, all waiting beforehand, 16 workers
// (W7).
func BenchmarkSteps(b *testing.B) {
	r := benchRunner(b, 16)
	noop := func(context.Context) (int, error) { return 1, nil }
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[stepsArgs]) error {
		for _, name := range []string{"first", "second", "third"} {
			if _, err := jobrun.Step(ctx, name, noop); err != nil {
				return err
			}
		}
		return nil
	}, jobrun.Queue("bench"))
	ctx := context.Background()
	enqueueBatched(b, r, func(i int) jobrun.Args { return stepsArgs{N: i} })
	b.ResetTimer()
	if err := r.RunUntilIdle(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if c, _ := r.Counts(ctx, "bench"); c[jobrun.StateDone] != b.N {
		b.Fatalf("done %d of %d", c[jobrun.StateDone], b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
}

type (
	fanOutA struct{ N int }
	fanOutB struct{ N int }
)

func (fanOutA) Kind() string { return "bench-fan-a" }
func (fanOutB) Kind() string { return "bench-fan-b" }

// BenchmarkSend: events sent one at a time, each starting a run of two functions,
// while the workers run.
func BenchmarkSend(b *testing.B) {
	r := benchRunner(b, 16)
	var done atomic.Int64
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[fanOutA]) error { done.Add(1); return nil },
		jobrun.On("bench/event"), jobrun.Queue("bench"))
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[fanOutB]) error { done.Add(1); return nil },
		jobrun.On("bench/event"), jobrun.Queue("bench"))
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		if _, err := r.Send(ctx, jobrun.Event{Name: "bench/event", Data: fanOutA{N: i}}); err != nil {
			b.Fatal(err)
		}
	}
	if err := r.RunUntilIdle(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if n := done.Load(); n != int64(2*b.N) {
		b.Fatalf("%d runs of %d", n, 2*b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// enqueueBatched stores b.N jobs made by newArgs in batches of 1,000, untimed.
func enqueueBatched(b *testing.B, r *jobrun.Runner, newArgs func(i int) jobrun.Args) {
	b.Helper()
	batch := make([]jobrun.Args, 0, 1000)
	for i := range b.N {
		batch = append(batch, newArgs(i))
		if len(batch) == cap(batch) || i == b.N-1 {
			if _, err := r.EnqueueMany(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}
