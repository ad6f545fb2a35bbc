package main

import (
	"context"

	"github.com/jobrun/jobrun"
)

// queueIsPaused reports whether queue is paused, from the runner's description of
// its queues (false for a queue it does not list).
func queueIsPaused(ctx context.Context, r *jobrun.Runner, queue string) (bool, error) {
	queues, err := r.Queues(ctx)
	for _, q := range queues {
		if q.Name == queue {
			return q.Paused, nil
		}
	}
	return false, err
}
