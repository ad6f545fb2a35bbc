package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/jobrun/jobrun"
)

// The demo's durable function: "user/signed-up" events start an onboarding run of
// two steps with a sleep between them, on a queue of its own.

const (
	onboardingQueue   = "onboarding"
	onboardingWorkers = 2
	signedUp          = "user/signed-up"
	onboardingNap     = time.Second // the sleep between the steps, before -speed
)

type onboarding struct {
	User string `json:"user"`
}

func (onboarding) Kind() string { return "user.onboard" }

func (s simulation) onboard(ctx context.Context, job *jobrun.Job[onboarding]) error {
	if _, err := jobrun.Step(ctx, "welcome-email", func(ctx context.Context) (string, error) {
		return "sent to " + job.Args.User, s.work(ctx, time.Millisecond, 3*time.Millisecond)
	}); err != nil {
		return err
	}
	if err := jobrun.Sleep(ctx, "let-them-look-around", s.scale(onboardingNap)); err != nil {
		return err // the run leaves its worker until the wake-up
	}
	_, err := jobrun.Step(ctx, "tips-email", func(ctx context.Context) (string, error) {
		return "sent to " + job.Args.User, s.work(ctx, time.Millisecond, 3*time.Millisecond)
	})
	return err
}

// demoFunctions sends three signed-up events, one of them twice with the same ID,
// waits for their onboarding runs to finish and prints one.
func demoFunctions(ctx context.Context, r *jobrun.Runner, out io.Writer, sim simulation) error {
	changes, err := r.Watch(ctx, 1024)
	if err != nil {
		return err
	}
	stamp := strconv.FormatInt(time.Now().UnixNano(), 36) // IDs of this run: earlier runs' are within the dedup window
	var runs []jobrun.ID
	dup := 0
	for i, user := range []string{"ada", "grace", "ada"} {
		id := "signup-" + user + "-" + stamp
		sent, err := r.Send(ctx, jobrun.Event{Name: signedUp, ID: id, Data: onboarding{User: user}})
		if err != nil {
			return fmt.Errorf("send %s: %w", signedUp, err)
		}
		if sent.DuplicateOf != 0 {
			dup = i
			continue
		}
		runs = append(runs, sent.Runs...)
	}
	fmt.Fprintf(out, "\nDurable functions: 3 %q events sent (the %s a duplicate by ID, which started nothing); "+
		"%d onboarding runs, each a step, a %s sleep that holds no worker, and a step\n",
		signedUp, ordinal(dup+1), len(runs), formatDuration(sim.scale(onboardingNap)))
	finished := func() (bool, error) {
		for _, id := range runs {
			in, err := r.Get(ctx, id)
			if err != nil {
				return false, err
			}
			if in.State != jobrun.StateDone && in.State != jobrun.StateFailed {
				return false, nil
			}
		}
		return true, nil
	}
	for {
		done, err := finished()
		if err != nil || done {
			if err != nil {
				return err
			}
			break
		}
		select {
		case <-changes:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	in, err := r.Get(ctx, runs[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "An onboarding run: #%d, %s, started by event %d (%s)\n", in.ID, in.State, in.Event, in.EventName)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	steps := slices.Clone(in.Steps) // by name; shown in the order they ran
	slices.SortFunc(steps, func(a, b jobrun.StepInfo) int { return a.StartedAt.Compare(b.StartedAt) })
	for _, s := range steps {
		fmt.Fprintf(tw, "  step %s\t%s\t%s\n", s.Name, s.State, stepLine(s))
	}
	return tw.Flush()
}

func stepLine(s jobrun.StepInfo) string {
	if s.State == "sleep" {
		return "slept " + formatDuration(s.FinishedAt.Sub(s.StartedAt))
	}
	return string(s.Result)
}

func ordinal(n int) string {
	return map[int]string{1: "first", 2: "second", 3: "third"}[n]
}
