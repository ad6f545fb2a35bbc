package jobrun

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
)

// A job record is stored as a version byte followed by its fields in a fixed order:
// strings and byte slices as uvarint length plus bytes, integers and times (Unix
// nanoseconds, 0 for the zero time) as varints. Fields are only ever appended; a record
// that ends early leaves the missing fields zero, so a newer version reads older
// records without a migration. Binary rather than JSON because the record is encoded
// or decoded two to three times per job on the hot path, and this encoding costs a
// fraction of encoding/json's time and allocations.
const recordVersion = 1

// maxErrorHistory bounds the attempt errors kept per job; maxErrorLen bounds each.
// maxLogLines and maxLogLen bound a job's log the same way.
const (
	maxErrorHistory = 10
	maxErrorLen     = 8 << 10
	maxLogLines     = 50
	maxLogLen       = 1 << 10
)

// Stored states. Running is not stored in the record: a job is running while its ID is
// in the active bucket, so a claim writes no record and a crash leaves nothing to undo.
const (
	stScheduled byte = iota + 1
	stReady
	stRunning
	stRetrying
	stDone
	stFailed
	stCanceled
	numStates
)

var stateNames = [numStates]State{
	stScheduled: StateScheduled, stReady: StateReady, stRunning: StateRunning,
	stRetrying: StateRetrying, stDone: StateDone, stFailed: StateFailed, stCanceled: StateCanceled,
}

func stateCode(s State) (byte, bool) {
	for c, n := range stateNames {
		if n == s && n != "" {
			return byte(c), true
		}
	}
	return 0, false
}

type record struct {
	kind        string
	queue       string
	args        []byte
	state       byte
	priority    int64
	attempt     int64
	maxAttempts int64
	backoff     backoffPolicy
	timeout     time.Duration
	createdAt   time.Time
	runAt       time.Time
	startedAt   time.Time
	finishedAt  time.Time
	recoveries  int64
	progress    []byte
	result      []byte
	errors      []AttemptError
	uniqueKey   string            // with uniqueMode: the key in the unique bucket, without the kind
	uniqueMode  byte              // uniqueNone, uniqueUnfinished, uniqueThrottle, uniqueDebounce
	uniqueFor   time.Duration     // throttle period or debounce delay
	schedule    string            // the cron schedule that enqueued the job, if any
	fireAt      time.Time         // the schedule's fire time this job is for
	tags        []string          // indexed in the tags bucket
	logs        []LogLine         // the handler's log lines, latest maxLogLines
	cancel      bool              // Cancel asked while the job ran: it ends canceled, even after a crash
	concKey     string            // ConcurrencyKey
	event       uint64            // the Seq of the event that started this run, 0 if none
	eventName   string            // its name
	parent      ID                // for a child run (Invoke): the job waiting for it
	parentStep  string            // and the key of the step it waits in
	invoker     bool              // the job has invoked children: when it ends, its unfinished ones are canceled
	onFailure   []byte            // OnFailure: the record of the job to enqueue when this one fails for good, encoded
	cancelOn    []cancelRule      // CancelOn: the events that cancel it
	suspended   byte              // while scheduled by a step: suspendedSleep, suspendedWait or suspendedInvoke
	metadata    map[string]string // Metadata and the enqueue hooks'; never changed once stored in memory
}

// How a scheduled job is suspended in a step, counted for FunctionStats.
const (
	suspendedSleep byte = iota + 1
	suspendedWait
	suspendedInvoke
	numSuspended
)

// cancelRule is an event that cancels a job (CancelOn): one called event whose data
// has field equal to value, the job's own args' field as matchValue encodes it.
type cancelRule struct {
	event string
	field string
	value []byte
}

func (r *record) encode() []byte {
	n := 72 + len(r.kind) + len(r.queue) + len(r.eventName) + len(r.args) + len(r.progress) + len(r.result) + len(r.concKey)
	for _, e := range r.errors {
		n += 34 + len(e.Error)
	}
	for k, v := range r.metadata {
		n += 4 + len(k) + len(v)
	}
	for _, tag := range r.tags {
		n += 2 + len(tag)
	}
	for _, l := range r.logs {
		n += 12 + len(l.Message)
	}
	b := make([]byte, 0, n)
	b = append(b, recordVersion)
	b = appendString(b, r.kind)
	b = appendString(b, r.queue)
	b = appendBytes(b, r.args)
	b = append(b, r.state)
	b = binary.AppendVarint(b, r.priority)
	b = binary.AppendVarint(b, r.attempt)
	b = binary.AppendVarint(b, r.maxAttempts)
	b = append(b, r.backoff.kind)
	b = binary.AppendVarint(b, int64(r.backoff.min))
	b = binary.AppendVarint(b, int64(r.backoff.max))
	b = binary.AppendVarint(b, int64(r.timeout))
	b = appendTime(b, r.createdAt)
	b = appendTime(b, r.runAt)
	b = appendTime(b, r.startedAt)
	b = appendTime(b, r.finishedAt)
	b = binary.AppendVarint(b, r.recoveries)
	b = appendBytes(b, r.progress)
	b = appendBytes(b, r.result)
	b = binary.AppendUvarint(b, uint64(len(r.errors)))
	for _, e := range r.errors {
		b = binary.AppendVarint(b, int64(e.Attempt))
		b = appendTime(b, e.At)
		b = appendString(b, e.Error)
	}
	b = appendString(b, r.uniqueKey)
	b = append(b, r.uniqueMode)
	b = binary.AppendVarint(b, int64(r.uniqueFor))
	b = appendString(b, r.schedule)
	b = appendTime(b, r.fireAt)
	b = binary.AppendUvarint(b, uint64(len(r.tags)))
	for _, tag := range r.tags {
		b = appendString(b, tag)
	}
	b = binary.AppendUvarint(b, uint64(len(r.logs)))
	for _, l := range r.logs {
		b = appendTime(b, l.At)
		b = appendString(b, l.Message)
	}
	var flags byte
	if r.cancel {
		flags |= recordCancel
	}
	b = append(b, flags)
	b = appendString(b, r.concKey)
	b = binary.AppendVarint(b, r.backoff.jitter)
	if r.event == 0 && r.eventName == "" && r.parent == 0 && r.parentStep == "" && !r.invoker &&
		len(r.onFailure) == 0 && len(r.cancelOn) == 0 && r.suspended == 0 && len(r.metadata) == 0 && len(r.errors) == 0 {
		// The fields of durable functions, metadata and the attempts' start times,
		// which the decoder reads as empty when they are missing: a plain job's
		// record stays as short as before them, which W4 measures in pages per
		// commit (2 bytes more per record were 12% more pages, as fewer records fit
		// in a page).
		return b
	}
	b = binary.AppendUvarint(b, r.event)
	b = appendString(b, r.eventName)
	b = binary.AppendUvarint(b, uint64(r.parent))
	b = appendString(b, r.parentStep)
	var more byte
	if r.invoker {
		more |= recordInvoker
	}
	b = append(b, more)
	b = appendBytes(b, r.onFailure)
	b = binary.AppendUvarint(b, uint64(len(r.cancelOn)))
	for _, c := range r.cancelOn {
		b = appendString(b, c.event)
		b = appendString(b, c.field)
		b = appendBytes(b, c.value)
	}
	b = append(b, r.suspended)
	b = binary.AppendUvarint(b, uint64(len(r.metadata)))
	for _, k := range slices.Sorted(maps.Keys(r.metadata)) {
		b = appendString(b, k)
		b = appendString(b, r.metadata[k])
	}
	// The attempts' start times come after the fields above rather than in each
	// error, where a record of version 1 has no room for them.
	b = binary.AppendUvarint(b, uint64(len(r.errors)))
	for _, e := range r.errors {
		b = appendTime(b, e.StartedAt)
	}
	return b
}

// Record flags, in the flags byte and in the one after the parent.
const (
	recordCancel  byte = 1
	recordInvoker byte = 1 // the second byte
)

var errTruncated = errors.New("truncated")

// decodeRecord parses b, which it does not retain: bbolt's values are only valid for
// the life of their transaction, so everything is copied out.
func decodeRecord(b []byte) (*record, error) {
	if len(b) == 0 {
		return nil, errors.New("decode job record: empty")
	}
	if b[0] == 0 || b[0] > recordVersion {
		return nil, fmt.Errorf("decode job record: unknown version %d", b[0])
	}
	d := decoder{b: b[1:]}
	r := &record{}
	r.kind = d.string()
	r.queue = d.string()
	r.args = d.bytes()
	r.state = d.byte()
	r.priority = d.varint()
	r.attempt = d.varint()
	r.maxAttempts = d.varint()
	r.backoff.kind = d.byte()
	r.backoff.min = time.Duration(d.varint())
	r.backoff.max = time.Duration(d.varint())
	r.timeout = time.Duration(d.varint())
	r.createdAt = d.time()
	r.runAt = d.time()
	r.startedAt = d.time()
	r.finishedAt = d.time()
	r.recoveries = d.varint()
	r.progress = d.bytes()
	r.result = d.bytes()
	if n := d.uvarint(); n > 0 && d.err == nil {
		if n > uint64(len(d.b)) {
			return nil, fmt.Errorf("decode job record: %d errors in %d bytes: %w", n, len(d.b), errTruncated)
		}
		r.errors = make([]AttemptError, n)
		for i := range r.errors {
			r.errors[i].Attempt = int(d.varint())
			r.errors[i].At = d.time()
			r.errors[i].Error = d.string()
		}
	}
	r.uniqueKey = d.string()
	r.uniqueMode = d.byte()
	r.uniqueFor = time.Duration(d.varint())
	r.schedule = d.string()
	r.fireAt = d.time()
	if n := d.uvarint(); n > 0 && d.err == nil {
		if n > uint64(len(d.b)) {
			return nil, fmt.Errorf("decode job record: %d tags in %d bytes: %w", n, len(d.b), errTruncated)
		}
		r.tags = make([]string, n)
		for i := range r.tags {
			r.tags[i] = d.string()
		}
	}
	if n := d.uvarint(); n > 0 && d.err == nil {
		if n > uint64(len(d.b)) {
			return nil, fmt.Errorf("decode job record: %d log lines in %d bytes: %w", n, len(d.b), errTruncated)
		}
		r.logs = make([]LogLine, n)
		for i := range r.logs {
			r.logs[i].At = d.time()
			r.logs[i].Message = d.string()
		}
	}
	r.cancel = d.byte()&recordCancel != 0
	r.concKey = d.string()
	r.backoff.jitter = d.varint()
	r.event = d.uvarint()
	r.eventName = d.string()
	r.parent = ID(d.uvarint())
	r.parentStep = d.string()
	r.invoker = d.byte()&recordInvoker != 0
	r.onFailure = d.bytes()
	if n := d.uvarint(); n > 0 && d.err == nil {
		if n > uint64(len(d.b)) {
			return nil, fmt.Errorf("decode job record: %d cancel rules in %d bytes: %w", n, len(d.b), errTruncated)
		}
		r.cancelOn = make([]cancelRule, n)
		for i := range r.cancelOn {
			r.cancelOn[i] = cancelRule{event: d.string(), field: d.string(), value: d.bytes()}
		}
	}
	if r.suspended = d.byte(); r.suspended >= numSuspended {
		return nil, fmt.Errorf("decode job record: invalid suspension %d", r.suspended)
	}
	if n := d.uvarint(); n > 0 && d.err == nil {
		if n > uint64(len(d.b)) {
			return nil, fmt.Errorf("decode job record: %d metadata entries in %d bytes: %w", n, len(d.b), errTruncated)
		}
		r.metadata = make(map[string]string, n)
		for range n {
			k := d.string()
			r.metadata[k] = d.string()
		}
	}
	if n := d.uvarint(); n > 0 && d.err == nil {
		if n != uint64(len(r.errors)) {
			return nil, fmt.Errorf("decode job record: %d attempt start times for %d errors", n, len(r.errors))
		}
		for i := range r.errors {
			r.errors[i].StartedAt = d.time()
		}
	}
	if d.err != nil {
		return nil, fmt.Errorf("decode job record: %w", d.err)
	}
	if r.state == 0 || r.state >= numStates || r.state == stRunning {
		return nil, fmt.Errorf("decode job record: invalid state %d", r.state)
	}
	return r, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendTime(b []byte, t time.Time) []byte { return binary.AppendVarint(b, storedNanos(t)) }

// decoder reads fields until the input ends; reads past the end yield zero values
// (fields a shorter, older record does not have), reads of a field cut in the middle
// set err.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if len(d.b) == 0 || d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if len(d.b) == 0 || d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 || d.err != nil {
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n == 0 || d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errTruncated
		return nil
	}
	v := make([]byte, n)
	copy(v, d.b)
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) time() time.Time {
	ns := d.varint()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// clone returns a copy to change: a change to it, appendError and appendLogs
// included, leaves r as it was.
func (r *record) clone() *record {
	c := *r
	// The lists are only ever appended to (appendError, appendLogs), and capped
	// here: an append to the copy allocates its own array, so the two never share
	// a write.
	c.errors = r.errors[:len(r.errors):len(r.errors)]
	c.logs = r.logs[:len(r.logs):len(r.logs)]
	return &c
}

// appendError adds a failed attempt, which started at started (zero if unknown) and
// failed at at, to the record's bounded history.
func (r *record) appendError(attempt int, started, at time.Time, msg string) {
	if len(msg) > maxErrorLen {
		msg = msg[:maxErrorLen] + "… (truncated)"
	}
	r.errors = append(r.errors, AttemptError{Attempt: attempt, StartedAt: started, At: at, Error: msg})
	if over := len(r.errors) - maxErrorHistory; over > 0 {
		r.errors = append(r.errors[:0:0], r.errors[over:]...)
	}
}

// appendLogs adds log lines to the record's bounded log, dropping the oldest.
func (r *record) appendLogs(lines []LogLine) {
	r.logs = append(r.logs, lines...)
	if over := len(r.logs) - maxLogLines; over > 0 {
		r.logs = append(r.logs[:0:0], r.logs[over:]...)
	}
}

// info builds the public view of a stored record.
func (r *record) info(id ID) Info {
	in := Info{
		ID:             id,
		Kind:           r.kind,
		Queue:          r.queue,
		State:          stateNames[r.state],
		Priority:       int(r.priority),
		Attempt:        int(r.attempt),
		MaxAttempts:    int(r.maxAttempts),
		CreatedAt:      r.createdAt,
		RunAt:          r.runAt,
		StartedAt:      r.startedAt,
		FinishedAt:     r.finishedAt,
		Errors:         r.errors,
		RawArgs:        r.args,
		Progress:       r.progress,
		Result:         r.result,
		UniqueKey:      r.uniqueKey,
		Schedule:       r.schedule,
		FireAt:         r.fireAt,
		Tags:           r.tags,
		Logs:           r.logs,
		ConcurrencyKey: r.concKey,
		Event:          r.event,
		EventName:      r.eventName,
		Parent:         r.parent,
		Metadata:       maps.Clone(r.metadata), // the handler's to change: the record's stays as stored
	}
	if n := len(r.errors); n > 0 {
		in.LastError = r.errors[n-1].Error
	}
	return in
}

// storedNanos is t in the Unix nanoseconds the file stores, 0 for the zero time, and
// clamped to the range they hold (1677 to 2262): outside it time.UnixNano wraps, and
// a run-at of 1616 once came back as 2200.
func storedNanos(t time.Time) int64 {
	switch {
	case t.IsZero():
		return 0
	case t.Before(minStoredTime):
		return math.MinInt64
	case t.After(maxFireTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// minStoredTime is the earliest time int64 Unix nanoseconds hold.
var minStoredTime = time.Unix(0, math.MinInt64)

// unixNanos is t as a key's unsigned Unix nanoseconds: 0 for the zero time and for
// times before 1970.
func unixNanos(t time.Time) uint64 { return uint64(max(storedNanos(t), 0)) }

// nanosTime is the time of a key's unsigned nanoseconds.
func nanosTime(n uint64) time.Time { return time.Unix(0, int64(min(n, 1<<63-1))) }
