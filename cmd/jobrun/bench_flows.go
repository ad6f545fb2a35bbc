package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jobrun/jobrun"
)

// The workloads of durable functions beyond W7: W8 fans events out to functions,
// W9 measures a run's latency from its event.

const (
	w8Functions = 10  // functions registered on W8's event
	w9Rate      = 100 // events per second W9's producer offers
	w8Event     = "bench/fan-out"
	w9Event     = "bench/latency"
)

// The ten functions of W8: one args type each, since a kind is a type's.
type (
	fanIndex            interface{ index() int }
	fan0                struct{}
	fan1                struct{}
	fan2                struct{}
	fan3                struct{}
	fan4                struct{}
	fan5                struct{}
	fan6                struct{}
	fan7                struct{}
	fan8                struct{}
	fan9                struct{}
	fanArgs[P fanIndex] struct {
		N int `json:"n"`
	}
)

func (fan0) index() int { return 0 }
func (fan1) index() int { return 1 }
func (fan2) index() int { return 2 }
func (fan3) index() int { return 3 }
func (fan4) index() int { return 4 }
func (fan5) index() int { return 5 }
func (fan6) index() int { return 6 }
func (fan7) index() int { return 7 }
func (fan8) index() int { return 8 }
func (fan9) index() int { return 9 }

func (fanArgs[P]) Kind() string {
	var p P
	return "fan-" + strconv.Itoa(p.index())
}

// handleFan registers the W8 function of P on f's runner; its runs count as f's jobs.
func handleFan[P fanIndex](f *fixture) {
	jobrun.Handle(f.r, func(ctx context.Context, job *jobrun.Job[fanArgs[P]]) error {
		f.finished()
		return nil
	}, jobrun.On(w8Event), jobrun.Queue(benchQueue))
}

// benchFanOut is W8: n events sent one at a time, each starting a run of each of
// the ten functions on its name, while the workers run; until the last run is done.
func benchFanOut(ctx context.Context, env *benchEnv, n int) (benchSample, error) {
	return withFixture(env, n*w8Functions, benchWorkers, false, func(f *fixture) (benchSample, error) {
		for _, register := range []func(*fixture){handleFan[fan0], handleFan[fan1], handleFan[fan2], handleFan[fan3],
			handleFan[fan4], handleFan[fan5], handleFan[fan6], handleFan[fan7], handleFan[fan8], handleFan[fan9]} {
			register(f)
		}
		f.run(ctx)
		return timed(f.db, n*w8Functions, func() error {
			for i := range n {
				if _, err := f.r.Send(ctx, jobrun.Event{Name: w8Event, Data: benchArgs{N: i}}); err != nil {
					return err
				}
			}
			return f.waitStored(ctx)
		})
	})
}

// latencyArgs are the args of W9's function.
type latencyArgs struct {
	N int `json:"n"`
}

func (latencyArgs) Kind() string { return "latency-fn" }

// benchRunLatency is W9: with the workers running, one producer sends an event every
// 10 ms (100/s), each starting a run of a function of three steps like W7's. A run's
// latency is the call of its first step's function minus the instant just before its
// Send; its completion latency is the commit of its done state (the change hook)
// minus the same instant.
func benchRunLatency(ctx context.Context, env *benchEnv, n int) (benchSample, error) {
	var mu sync.Mutex
	runOf := map[jobrun.ID]int{} // run → event index
	doneAt := make([]time.Time, n)
	var early []jobrun.Change // done before Send returned and runOf knew the run
	hook := func(c jobrun.Change) {
		if c.Type != jobrun.ChangeDone {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if i, ok := runOf[c.ID]; ok {
			doneAt[i] = c.At
		} else {
			early = append(early, c)
		}
	}
	f, err := newFixtureWith(env, n, benchWorkers, true, jobrun.WithChangeHook(hook))
	if err != nil {
		return benchSample{}, err
	}
	defer f.close()
	jobrun.Handle(f.r, func(ctx context.Context, job *jobrun.Job[latencyArgs]) error {
		for i, name := range stepNames {
			if _, err := jobrun.Step(ctx, name, func(ctx context.Context) (stepResult, error) {
				if i == 0 {
					f.started[job.Args.N] = int64(time.Since(f.t0))
				}
				return stepResult{OK: true, N: 1}, nil
			}); err != nil {
				return err
			}
		}
		f.finished()
		return nil
	}, jobrun.On(w9Event), jobrun.Queue(benchQueue))
	f.run(ctx)
	sent := make([]time.Time, n)
	var late time.Duration
	smp, err := timed(f.db, n, func() error {
		var err error
		late, err = openLoop(n, time.Second/w9Rate, func(i int, now time.Time) error {
			sent[i] = now
			ev, err := f.r.Send(ctx, jobrun.Event{Name: w9Event, Data: latencyArgs{N: i}})
			if err != nil {
				return err
			}
			mu.Lock()
			runOf[ev.Runs[0]] = i
			mu.Unlock()
			return nil
		})
		if err != nil {
			return err
		}
		return f.waitStored(ctx)
	})
	if err != nil {
		return benchSample{}, err
	}
	if late > 100*time.Millisecond {
		fmt.Fprintf(env.warn, "jobrun bench: W9: the producer fell up to %v behind its %d/s schedule\n",
			late.Round(time.Millisecond), w9Rate)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, c := range early {
		doneAt[runOf[c.ID]] = c.At
	}
	smp.latency = make([]time.Duration, n)
	smp.doneLatency = make([]time.Duration, n)
	for i := range n {
		smp.latency[i] = time.Duration(f.started[i]) - sent[i].Sub(f.t0)
		smp.doneLatency[i] = doneAt[i].Sub(sent[i])
	}
	return smp, nil
}
