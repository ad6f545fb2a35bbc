package jobrun

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// EventMatch says which events of a name WaitFor (or CancelOn) takes: those whose
// data has a field equal to a value. The zero EventMatch takes every event of the
// name.
type EventMatch struct {
	field string
	value []byte // matchValue's encoding
	err   error
}

// Match takes the events whose data has field (a dotted path into nested objects,
// "order.id") equal to value, compared as JSON: numbers by value (1 and 1.0 are
// equal), objects by their fields. value encodes to at most 512 bytes of JSON.
func Match(field string, value any) EventMatch {
	if err := validateText("match field", field, maxNameLen); err != nil {
		return EventMatch{err: err}
	}
	b, err := json.Marshal(value)
	if err != nil {
		return EventMatch{err: fmt.Errorf("%w: encode the value to match: %w", ErrInvalid, err)}
	}
	v, err := matchValue(b)
	if err != nil {
		return EventMatch{err: err}
	}
	return EventMatch{field: field, value: v}
}

// maxMatchLen bounds a matched value, which is part of an index key.
const maxMatchLen = 512

// matchValue encodes a JSON value as the waits index keys it: decoded and encoded
// again, so that spacing, key order and the spelling of numbers do not matter.
func matchValue(raw []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: value to match: %w", ErrInvalid, err)
	}
	b, err := json.Marshal(canonical(v))
	if err != nil {
		return nil, fmt.Errorf("%w: value to match: %w", ErrInvalid, err)
	}
	if len(b) > maxMatchLen {
		return nil, invalidf("the value to match encodes to %d bytes, over the limit of %d", len(b), maxMatchLen)
	}
	return b, nil
}

// canonical spells every number of v one way: integers as integers, others in the
// shortest form that reads back as the same float64.
func canonical(v any) any {
	switch v := v.(type) {
	case json.Number:
		if _, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return v
		}
		if f, err := v.Float64(); err == nil {
			if f == float64(int64(f)) && f >= -1<<53 && f <= 1<<53 {
				return json.Number(strconv.FormatInt(int64(f), 10))
			}
			return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
		}
		return v
	case map[string]any:
		for k, x := range v {
			v[k] = canonical(x)
		}
	case []any:
		for i, x := range v {
			v[i] = canonical(x)
		}
	}
	return v
}

// fieldValue finds the field (a dotted path) in a JSON document and returns its
// value as matchValue encodes it; ok is false if the document has no such field.
func fieldValue(data []byte, field string) (value []byte, ok bool) {
	return (&jsonFields{data: data}).value(field)
}

// jsonFields reads fields of one JSON document, which it decodes once, at the first
// read: an event's data is read for every field awaited on its name, a job's args
// for each key placeholder.
type jsonFields struct {
	data    []byte
	doc     any
	decoded bool
}

// value is fieldValue of f's document.
func (f *jsonFields) value(field string) ([]byte, bool) {
	if !f.decoded {
		f.decoded = true
		d := json.NewDecoder(bytes.NewReader(f.data))
		d.UseNumber()
		if d.Decode(&f.doc) != nil {
			f.doc = nil
		}
	}
	v := f.doc
	for part := range strings.SplitSeq(field, ".") {
		obj, isObj := v.(map[string]any)
		if !isObj {
			return nil, false
		}
		var ok bool
		if v, ok = obj[part]; !ok {
			return nil, false
		}
	}
	b, err := json.Marshal(canonical(v))
	if err != nil || len(b) > maxMatchLen {
		return nil, false
	}
	return b, true
}

// WaitFor waits, as the step called name of the handler whose ctx it is, for an
// event called event that match takes, for at most timeout. Like Sleep, it suspends
// the job: it returns an error that the handler must return, and the job leaves its
// worker, spending no attempt, until the event arrives (Send, SendTx, SendEvent) or
// the timeout passes; then the handler runs again from the top, and this WaitFor
// returns the event's data decoded into T and true, or, after the timeout, T's zero
// value and false.
//
// An event counts if it is sent after the run's previous step ended (or, for a wait
// that is the run's first step, after the run was created): that is the earliest any
// attempt can have called WaitFor, so an event sent after the call counts even if
// it commits before the job's suspension does, or the attempt that made the call was
// cut off by a crash before its suspension was stored; the suspension looks back at
// the events of that name sent since then. The event that started the run, events
// its earlier steps received or sent, and duplicates (an ID already seen) do not
// count. Events are matched through an index by
// name, field and value, not by looking at the waiting jobs. A waiting job is
// scheduled, its RunAt the timeout; Promote ends the wait as a timeout. Names follow
// Step's rules; the data decoding into T fails as a Permanent error.
//
//	if pay, ok, err := jobrun.WaitFor[Paid](ctx, "wait-payment", "payment/received",
//		jobrun.Match("order_id", job.Args.OrderID), 7*24*time.Hour); err != nil {
//		return err
//	}
func WaitFor[T any](ctx context.Context, name, event string, match EventMatch, timeout time.Duration) (T, bool, error) {
	var zero T
	e, err := stepCaller(ctx, "wait", name)
	if err != nil {
		return zero, false, err
	}
	if err := validateName("event", event); err != nil {
		return zero, false, fmt.Errorf("wait %q: %w", name, err)
	}
	if match.err != nil {
		return zero, false, fmt.Errorf("wait %q: %w", name, match.err)
	}
	key, saved, err := e.r.reachStep(e, name)
	if err != nil {
		return zero, false, err
	}
	now := time.Now()
	if saved == nil {
		deadline := now.Add(max(timeout, 0))
		if deadline.After(maxFireTime) {
			deadline = maxFireTime
		}
		e.steps.mu.Lock()
		attempts := int64(e.info.Attempt - e.steps.spent) // since the previous step, as for Step
		since, seen := e.steps.lastEnd(now, e.info.CreatedAt)
		e.steps.mu.Unlock()
		return zero, false, &sleepError{e: e, s: &step{key: key, state: stepWait, attempts: attempts,
			startedAt: now, finishedAt: deadline, waitEvent: event, waitField: match.field, waitValue: match.value,
			since: since, seen: seen}}
	}
	switch {
	case saved.call() != callWaitFor:
		return zero, false, saved.reusedBy(callWaitFor)
	case saved.state == stepTimedOut:
		return zero, false, nil
	case saved.state == stepWait:
		// The job runs again while its wait stands: its timeout came, or Promote.
		// Stored as a timeout, which takes the wait out of the index.
		s := *saved
		s.state, s.finishedAt = stepTimedOut, now
		if err := e.r.saveStep(ctx, &stepOp{e: e, s: &s}); err != nil {
			return zero, false, fmt.Errorf("wait %q: store its timeout: %w", key, err)
		}
		return zero, false, nil
	}
	var v T
	if err := json.Unmarshal(saved.result, &v); err != nil {
		return zero, false, Permanent(fmt.Errorf("wait %q: the event's data does not decode into %T: %w", key, v, err))
	}
	return v, true, nil
}

// received is the wait step s ended by event se at now.
func received(s *step, se *storedEvent, now time.Time) *step {
	done := *s
	done.state, done.result, done.event, done.finishedAt = stepDone, se.data, se.seq, now
	return &done
}

// lookbackSkew is how far out of Seq order events' times may be: an event's time is
// taken before its commit waits for bbolt's one writer (SendTx's in the
// application's transaction), so a later Seq may carry a slightly earlier time.
const lookbackSkew = time.Second

// takes reports whether the wait step s takes event se.
func takes(s *step, se *storedEvent) bool {
	if s.waitField == "" {
		return true
	}
	v, ok := fieldValue(se.data, s.waitField)
	return ok && bytes.Equal(v, s.waitValue)
}
