package jobrun

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// Limits of a job's steps: how many one job may record, and how many bytes of results
// they may keep in all (each result is bounded like args, at 1 MiB).
const (
	maxSteps      = 1000
	maxStepsBytes = 4 << 20
)

// StepInfo is one recorded step of a job, as Get shows it.
type StepInfo struct {
	Name       string          `json:"name"`     // the step's name, with "#n" for the nth repeat in one attempt (see Step)
	State      string          `json:"state"`    // "done"; "failed" (a permanent error, returned to every later attempt); "sleep" (FinishedAt is its wake-up); "waiting" (WaitFor: FinishedAt is its timeout); "timed_out" (WaitFor received nothing); "invoking" (Invoke waits for its children)
	Attempts   int             `json:"attempts"` // the job's attempt, counted since the previous step, that recorded it
	Result     json.RawMessage `json:"result,omitempty"`
	Error      string          `json:"error,omitempty"`
	StartedAt  time.Time       `json:"started_at"`
	FinishedAt time.Time       `json:"finished_at"`
	WaitEvent  string          `json:"wait_event,omitempty"` // WaitFor: the event's name
	WaitMatch  string          `json:"wait_match,omitempty"` // WaitFor: field=value its data must have, "" for any event of the name
	Event      uint64          `json:"event,omitempty"`      // the Seq of the event WaitFor received or SendEvent sent
	Children   []ID            `json:"children,omitempty"`   // Invoke: the child runs it started
}

// Step states as stored.
const (
	stepDone byte = iota + 1
	stepFailed
	stepSleep    // a Sleep: finishedAt is its wake-up
	stepWait     // a WaitFor waiting: finishedAt is its timeout
	stepTimedOut // a WaitFor whose timeout came first
	stepInvoking // an Invoke waiting for its children
)

// step is a step's stored form.
type step struct {
	key        string
	state      byte
	attempts   int64
	result     []byte
	err        string
	startedAt  time.Time
	finishedAt time.Time

	// WaitFor's: the event awaited, the field of its data to match ("" for any
	// event of the name) and the value, as matchValue encodes it; event is the
	// Seq of the event received (or, for SendEvent, sent).
	waitEvent string
	waitField string
	waitValue []byte
	event     uint64
	since     time.Time // not stored: where the suspension's lookback begins (WaitFor)
	seen      []uint64  // not stored: the events the run's earlier steps received or sent, which it skips

	// Invoke's: its children, and the attempts its job had spent when the last one
	// ended.
	children []childRun
	woke     int64
}

// childRun is a child of an Invoke step as the step keeps it: its ID and, once it
// ended, its final state and result or last error.
type childRun struct {
	id     ID
	state  byte // 0 until it ends
	result []byte
	err    string
}

const stepVersion = 1

func (s *step) encode() []byte {
	b := make([]byte, 0, 32+len(s.result)+len(s.err))
	b = append(b, stepVersion, s.state)
	b = binary.AppendVarint(b, s.attempts)
	b = appendTime(b, s.startedAt)
	b = appendTime(b, s.finishedAt)
	b = appendBytes(b, s.result)
	b = appendString(b, s.err)
	if s.waitEvent == "" && s.event == 0 && len(s.children) == 0 {
		return b // the fields after are read as empty
	}
	b = appendString(b, s.waitEvent)
	b = appendString(b, s.waitField)
	b = appendBytes(b, s.waitValue)
	b = binary.AppendUvarint(b, s.event)
	b = binary.AppendUvarint(b, uint64(len(s.children)))
	for _, c := range s.children {
		b = binary.AppendUvarint(b, uint64(c.id))
		b = append(b, c.state)
		b = appendBytes(b, c.result)
		b = appendString(b, c.err)
	}
	return binary.AppendVarint(b, s.woke)
}

// decodeStep parses a step stored under key; like decodeRecord, it keeps nothing of b.
func decodeStep(key string, b []byte) (*step, error) {
	if len(b) < 2 || b[0] == 0 || b[0] > stepVersion {
		return nil, fmt.Errorf("decode step %q: unknown version or empty", key)
	}
	d := decoder{b: b[2:]}
	s := &step{key: key, state: b[1]}
	s.attempts = d.varint()
	s.startedAt = d.time()
	s.finishedAt = d.time()
	s.result = d.bytes()
	s.err = d.string()
	s.waitEvent = d.string()
	s.waitField = d.string()
	s.waitValue = d.bytes()
	s.event = d.uvarint()
	if n := d.uvarint(); n > 0 && d.err == nil {
		if n > uint64(len(d.b)) {
			return nil, fmt.Errorf("decode step %q: %d children in %d bytes: %w", key, n, len(d.b), errTruncated)
		}
		s.children = make([]childRun, n)
		for i := range s.children {
			c := &s.children[i]
			c.id = ID(d.uvarint())
			c.state = d.byte()
			c.result = d.bytes()
			c.err = d.string()
		}
	}
	s.woke = d.varint()
	if d.err != nil {
		return nil, fmt.Errorf("decode step %q: %w", key, d.err)
	}
	if s.state < stepDone || s.state > stepInvoking || s.state == stepWait && s.waitEvent == "" {
		return nil, fmt.Errorf("decode step %q: invalid state %d", key, s.state)
	}
	return s, nil
}

// stepStates names the step states as StepInfo shows them.
var stepStates = [...]string{stepDone: "done", stepFailed: "failed", stepSleep: "sleep", stepWait: "waiting",
	stepTimedOut: "timed_out", stepInvoking: "invoking"}

func (s *step) info() StepInfo {
	in := StepInfo{Name: s.key, State: stepStates[s.state], Attempts: int(s.attempts), Result: s.result, Error: s.err,
		StartedAt: s.startedAt, FinishedAt: s.finishedAt, WaitEvent: s.waitEvent, Event: s.event}
	if s.waitField != "" {
		in.WaitMatch = s.waitField + "=" + string(s.waitValue)
	}
	for _, c := range s.children {
		in.Children = append(in.Children, c.id)
	}
	return in
}

// stepCall is the function that stores a kind of step.
type stepCall uint8

const (
	callStep stepCall = iota
	callSleep
	callWaitFor
	callSendEvent
	callInvoke
)

var stepCallNames = [...]string{callStep: "a Step", callSleep: "a Sleep", callWaitFor: "a WaitFor",
	callSendEvent: "a SendEvent", callInvoke: "an Invoke"}

// call is the function that stored s.
func (s *step) call() stepCall {
	switch {
	case s.state == stepSleep:
		return callSleep
	case s.waitEvent != "":
		return callWaitFor
	case s.event != 0:
		return callSendEvent
	case s.state == stepInvoking || len(s.children) > 0:
		return callInvoke
	}
	return callStep
}

// reusedBy is the error of want reaching a step name that another call stored:
// Permanent, since every later attempt would reach it the same way.
func (s *step) reusedBy(want stepCall) error {
	return Permanent(fmt.Errorf("step %q: the step stored under that name is %s, not %s; give the step another name",
		s.key, stepCallNames[s.call()], stepCallNames[want]))
}

// stepOp asks the loop to store a step of a running attempt; reply gets the commit's
// error.
type stepOp struct {
	e     *execution
	s     *step
	event *storedEvent // SendEvent: the event to store with the step, whose result it becomes
	runs  []*record    // its runs
	reply chan error
}

// errAttemptOver answers a step whose attempt the loop no longer runs: it was handed
// back, interrupted or abandoned at its timeout, so its result must not be stored
// over the attempt that runs the job now.
var errAttemptOver = errors.New("jobrun: the attempt ended before its step was stored")

// steps is an attempt's view of its job's steps: those stored by earlier attempts
// (read on the first Step call) and those this attempt stored, and how often each
// name was used in this attempt.
type steps struct {
	mu     sync.Mutex
	loaded bool
	saved  map[string]*step
	bytes  int
	uses   map[string]int
	spent  int // attempts of this job before the latest step this attempt stored
}

// lastEnd is when the latest stored step of the job ended (a sleep or a wait that
// ended early: now), or created if it stored none: the earliest moment an attempt
// can have reached what follows; and the events those steps received or sent. The
// caller holds ss.mu.
func (ss *steps) lastEnd(now, created time.Time) (time.Time, []uint64) {
	end := created
	var seen []uint64
	for _, s := range ss.saved {
		if s.event != 0 {
			seen = append(seen, s.event)
		}
		t := s.finishedAt
		if t.After(now) {
			t = now
		}
		if t.After(end) {
			end = t
		}
	}
	return end, seen
}

type execKey struct{}

// stepCaller returns the attempt whose handler ctx belongs to, for verb's step
// called name, after checking the name.
func stepCaller(ctx context.Context, verb, name string) (*execution, error) {
	e, _ := ctx.Value(execKey{}).(*execution)
	if e == nil {
		return nil, invalidf("%s %q: called outside a job's handler", verb, name)
	}
	if err := validateName("step name", name); err != nil {
		return nil, fmt.Errorf("%s: %w", verb, err)
	}
	return e, nil
}

// Step runs fn as the step called name of the job whose handler ctx belongs to, once
// per job: its result is stored durably before Step returns, and when the job runs
// again (a retry, a recovery after a crash) Step returns the stored result without
// calling fn. A handler made of steps thus resumes after its last finished step, as
// in Inngest; code outside steps runs again on every attempt.
//
// A name used more than once in one attempt (a loop) refers to a new step each time:
// the second use is "name#2", the third "name#3". Steps may run concurrently from
// goroutines of the handler; concurrent steps must have distinct names, since the
// order of their uses is not stable across attempts.
//
// An error from fn is returned, wrapped with the step's name, and fails the attempt
// if the handler returns it; the job retries by its own policy and calls fn again.
// The attempt count restarts at each stored step, so MaxAttempts applies to each
// step, not to the whole job. An error wrapped with Permanent is stored like a
// result: this and every later attempt gets it back, as a Permanent error, without
// calling fn.
//
// The result is stored as JSON (at most 1 MiB; a job keeps at most 1,000 steps and
// 4 MiB of results); a stored result that does not decode into R is a Permanent
// error. Step outside a handler's context returns an error wrapping ErrInvalid.
func Step[R any](ctx context.Context, name string, fn func(ctx context.Context) (R, error)) (R, error) {
	var zero R
	e, err := stepCaller(ctx, "step", name)
	if err != nil {
		return zero, err
	}
	key, saved, err := e.r.reachStep(e, name)
	if err != nil {
		return zero, err
	}
	if saved != nil {
		return savedResult[R](saved)
	}
	started := time.Now()
	v, fnErr := fn(ctx)
	s := &step{key: key, state: stepDone, startedAt: started}
	var pe *permanentError
	switch {
	case fnErr == nil:
		b, err := encodeValue(v)
		if err != nil {
			return zero, Permanent(fmt.Errorf("step %q: %w", key, err))
		}
		s.result = b
	case errors.As(fnErr, &pe):
		s.state, s.err = stepFailed, pe.err.Error()
	default:
		return zero, fmt.Errorf("step %q: %w", key, fnErr)
	}
	s.finishedAt = time.Now()
	if err := e.r.saveStep(ctx, &stepOp{e: e, s: s}); err != nil {
		return zero, fmt.Errorf("step %q: store: %w", key, err)
	}
	if fnErr != nil {
		return zero, fmt.Errorf("step %q: %w", key, fnErr)
	}
	return v, nil
}

// savedResult returns what a stored step returns: its result decoded, or its error.
func savedResult[R any](s *step) (R, error) {
	var v R
	switch {
	case s.state == stepFailed:
		return v, Permanent(fmt.Errorf("step %q: %s", s.key, s.err))
	case s.call() != callStep:
		return v, s.reusedBy(callStep)
	}
	if err := json.Unmarshal(s.result, &v); err != nil {
		return v, Permanent(fmt.Errorf("step %q: the stored result does not decode into %T: %w", s.key, v, err))
	}
	return v, nil
}

// reachStep counts a use of name in e's attempt and returns the step's key and, if an
// earlier attempt stored it, the step. The first call of an attempt reads the job's
// stored steps.
func (r *Runner) reachStep(e *execution, name string) (string, *step, error) {
	ss := &e.steps
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !ss.loaded {
		var stored []*step
		err := r.st.view(func(t storeReader) (err error) {
			stored, err = t.steps(e.id)
			return err
		})
		if err != nil {
			return "", nil, fmt.Errorf("step %q: read the job's steps: %w", name, err)
		}
		ss.saved, ss.uses = make(map[string]*step, len(stored)), map[string]int{}
		for _, s := range stored {
			ss.saved[s.key] = s
			ss.bytes += len(s.result)
		}
		ss.loaded = true
	}
	ss.uses[name]++
	key := name
	if n := ss.uses[name]; n > 1 {
		key = name + "#" + strconv.Itoa(n)
	}
	if s := ss.saved[key]; s != nil {
		return key, s, nil
	}
	if len(ss.saved) >= maxSteps {
		return "", nil, Permanent(invalidf("step %q: the job has %d steps, the most one job may record", key, maxSteps))
	}
	return key, nil, nil
}

// saveStep stores op's step with its job in the loop's next commit and waits for it.
func (r *Runner) saveStep(ctx context.Context, op *stepOp) error {
	e, s := op.e, op.s
	ss := &e.steps
	ss.mu.Lock()
	if ss.bytes+len(s.result) > maxStepsBytes {
		ss.mu.Unlock()
		return Permanent(invalidf("the job's step results would take %d bytes, over the limit of %d",
			ss.bytes+len(s.result), maxStepsBytes))
	}
	s.attempts = int64(e.info.Attempt - ss.spent)
	ss.mu.Unlock()
	op.reply = make(chan error, 1)
	if err := r.send(ctx, op, op.reply); err != nil {
		return err
	}
	ss.mu.Lock()
	ss.saved[s.key] = s
	ss.bytes += len(s.result)
	ss.spent = e.info.Attempt - 1 // the next step's attempts count from this one's
	ss.mu.Unlock()
	return nil
}

// sleepError is what Sleep returns for the handler to return: it suspends e's job
// until s's wake-up, storing s with the suspension.
type sleepError struct {
	e         *execution
	s         *step
	children  []*record // Invoke: the children to enqueue with the suspension
	keepSpent bool      // Invoke of a child again: the attempts spent stay
}

func (err *sleepError) Error() string {
	return fmt.Sprintf("jobrun: sleeping in step %q until %s (return this error from the handler)",
		err.s.key, err.s.finishedAt.UTC().Format(time.RFC3339))
}

// Sleep suspends the job whose handler ctx belongs to for d, as the step called name:
// it returns an error that the handler must return (if err := jobrun.Sleep(...); err
// != nil { return err }), and the job leaves its worker, spending no attempt, until
// the sleep is over; then the handler runs again from the top, its stored steps return
// their results, and this Sleep returns nil. No goroutine waits while a job sleeps,
// and the wake-up is stored with the suspension, so it happens once, at its time,
// across restarts and crashes. Promote ends a sleep early. Names follow Step's rules;
// a sleeping job is scheduled, its RunAt the wake-up. The attempt count restarts
// at the sleep, as at a step.
func Sleep(ctx context.Context, name string, d time.Duration) error {
	return SleepUntil(ctx, name, time.Now().Add(max(d, 0)))
}

// SleepUntil is Sleep until t; a time that has passed sleeps not at all, but the step
// is stored all the same.
func SleepUntil(ctx context.Context, name string, t time.Time) error {
	e, err := stepCaller(ctx, "sleep", name)
	if err != nil {
		return err
	}
	key, saved, err := e.r.reachStep(e, name)
	if err != nil {
		return err
	}
	now := time.Now()
	if saved != nil {
		if saved.call() != callSleep {
			return saved.reusedBy(callSleep)
		}
		woke := !e.info.RunAt.Before(saved.startedAt) && e.info.RunAt.Before(saved.finishedAt) // Promote
		if !now.Before(saved.finishedAt) || woke {
			return nil
		}
		return &sleepError{e: e, s: saved} // back before its time (a recovery): sleep on
	}
	if t.After(maxFireTime) {
		t = maxFireTime
	}
	e.steps.mu.Lock()
	attempts := int64(e.info.Attempt - e.steps.spent) // since the previous step, as for Step
	e.steps.mu.Unlock()
	return &sleepError{e: e, s: &step{key: key, state: stepSleep, attempts: attempts, startedAt: now, finishedAt: t}}
}
