package jobrun

import (
	"context"
	"encoding/json"
	"fmt"
)

// Wait returns once job id has finished (done, failed or canceled), with its final
// Info; at once if it has. It wakes on the commit that finishes the job, with no
// polling. It returns ctx's error if ctx ends first, an error wrapping ErrNotFound
// if the job does not exist or is deleted meanwhile, and ErrClosed once the runner
// closes. A job that Retry takes back before Wait sees it finished is waited for
// again.
func (r *Runner) Wait(ctx context.Context, id ID) (*Info, error) {
	for {
		// Registered before the read, so that a finish committed in between wakes
		// this wait.
		woken := r.addWaiter(id)
		in, err := r.Get(ctx, id)
		if err != nil {
			r.dropWaiter(id, woken)
			return nil, fmt.Errorf("wait: %w", err)
		}
		if in.State == StateDone || in.State == StateFailed || in.State == StateCanceled {
			r.dropWaiter(id, woken)
			return in, nil
		}
		select {
		case <-woken:
		case <-ctx.Done():
			r.dropWaiter(id, woken)
			return nil, fmt.Errorf("wait for job %d: %w", id, ctx.Err())
		case <-r.loopDone:
			r.dropWaiter(id, woken)
			return nil, fmt.Errorf("wait for job %d: %w", id, r.closedErr())
		}
	}
}

// Result decodes the result a done job stored with SetResult into T. It returns an
// error wrapping ErrState if the job is not done, or ErrNotFound if it stored no
// result, and one wrapping ErrInvalid if the result does not decode into T.
func Result[T any](in *Info) (T, error) {
	var v T
	switch {
	case in == nil:
		return v, invalidf("result: nil Info")
	case in.State != StateDone:
		return v, fmt.Errorf("result of job %d: %w: it is %s, not done", in.ID, ErrState, in.State)
	case len(in.Result) == 0:
		return v, fmt.Errorf("result of job %d: %w: its handler stored none", in.ID, ErrNotFound)
	}
	if err := json.Unmarshal(in.Result, &v); err != nil {
		return v, fmt.Errorf("result of job %d: %w: decode into %T: %w", in.ID, ErrInvalid, v, err)
	}
	return v, nil
}

// addWaiter registers a wait for job id to end; the channel is closed when a commit
// ends or removes it.
func (r *Runner) addWaiter(id ID) chan struct{} {
	ch := make(chan struct{})
	r.waitMu.Lock()
	if r.waiters == nil {
		r.waiters = map[ID][]chan struct{}{}
	}
	r.waiters[id] = append(r.waiters[id], ch)
	r.nwaiters.Add(1)
	r.waitMu.Unlock()
	return ch
}

// dropWaiter removes a wait that ended otherwise.
func (r *Runner) dropWaiter(id ID, ch chan struct{}) {
	r.waitMu.Lock()
	defer r.waitMu.Unlock()
	ws := r.waiters[id]
	for i, w := range ws {
		if w == ch {
			r.waiters[id] = append(ws[:i:i], ws[i+1:]...)
			r.nwaiters.Add(-1)
			break
		}
	}
	if len(r.waiters[id]) == 0 {
		delete(r.waiters, id)
	}
}

// wakeWaiters wakes the waits of the jobs that committed changes ended or removed.
func (r *Runner) wakeWaiters(changes []jobChange) {
	if r.nwaiters.Load() == 0 {
		return
	}
	r.waitMu.Lock()
	defer r.waitMu.Unlock()
	for _, c := range changes {
		if c.what != changeRemoved && !(final(c.to) && (c.what == changeMoved || c.what == changeQuarantined)) {
			continue
		}
		for _, ch := range r.waiters[c.id] {
			close(ch)
			r.nwaiters.Add(-1)
		}
		delete(r.waiters, c.id)
	}
}
