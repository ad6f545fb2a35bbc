package jobrun

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
)

// Event is something that happened in the application, sent with Send: a name
// ("user/created") and data, a JSON object. Every function registered on the name
// with On gets one run whose args are the data.
type Event struct {
	Name string // 1 to 255 bytes of printable UTF-8, as a kind
	Data any    // encoded as JSON; it must encode to an object (nil sends {})

	// ID, if set, deduplicates: an event sent with the ID of one sent within the
	// dedup window (24 hours by default, WithEventRetention) is stored as a
	// duplicate, starts nothing, and Send returns the first event's runs. Up to 512
	// bytes.
	ID string
}

// EventInfo is an event as stored, as Send, GetEvent and Events return it.
type EventInfo struct {
	Seq         uint64          `json:"seq"` // its place in the file's event log: 1 for the first event sent, never reused
	Name        string          `json:"name"`
	ID          string          `json:"id,omitempty"`
	Data        json.RawMessage `json:"data"`
	At          time.Time       `json:"at"`                     // when it was committed
	Runs        []ID            `json:"runs,omitempty"`         // the runs it started, one per function on its name; a duplicate's are the first event's
	DuplicateOf uint64          `json:"duplicate_of,omitempty"` // for a duplicate: the Seq of the event whose ID it repeats
}

// EventFilter selects the events Events returns; zero fields match every event.
type EventFilter struct {
	Name   string
	Oldest bool   // oldest first; the default is newest first
	Limit  int    // events per page: 50 if 0, at most 1,000
	Cursor string // the Next of the previous page; "" for the first page
}

// EventPage is one page of Events' result.
type EventPage struct {
	Events []*EventInfo
	Next   string // the Cursor of the next page, "" after the last page
}

// Event defaults: how long sent events are kept, and how long an event ID
// deduplicates.
const (
	defaultEventRetention = 7 * 24 * time.Hour
	defaultEventDedup     = 24 * time.Hour
)

// On registers the handler it is given to (Handle) as a function of the events
// called name: every event Send stores under that name enqueues one run of it, in
// the same commit, with the event's data as its args and the handler's other
// defaults as its options. A handler may be given several On options; a name may
// start many functions (fan-out). On applies to Handle only.
func On(name string) EnqueueOption {
	return func(o *enqueueOptions) {
		if err := validateName("event", name); err != nil {
			o.err = err
			return
		}
		o.on = append(o.on, name)
	}
}

// WithEventRetention sets how long sent events are kept before the cleaner deletes
// them (7 days by default; a negative keep keeps them forever) and how long an
// event ID deduplicates events sent later with the same ID (24 hours by default). A
// zero duration takes its default; keep must not be shorter than dedup.
func WithEventRetention(keep, dedup time.Duration) Option {
	return func(c *config) {
		if keep == 0 {
			keep = defaultEventRetention
		}
		if dedup == 0 {
			dedup = defaultEventDedup
		}
		if dedup < 0 || keep > 0 && keep < dedup {
			c.err = invalidf("event retention %v shorter than its dedup window %v", keep, dedup)
			return
		}
		c.eventKeep, c.eventDedup = keep, dedup
	}
}

// Send stores ev and enqueues one run of every function registered on its name
// (On), all in one commit: once Send returns, the event and its runs are durable
// together, or neither is stored. It returns the stored event, whose Runs are the
// runs' IDs. An event no function is registered on is stored all the same and
// starts nothing (Runs is empty). An event whose ID repeats one sent within the
// dedup window is stored as a duplicate (DuplicateOf) and returns the first event's
// runs; that is not an error. A run refused by its function's unique key has the
// existing job's ID in Runs.
//
// Like Enqueue, Send must not be called inside the application's own write
// transaction on the runner's database: use SendTx there.
func (r *Runner) Send(ctx context.Context, ev Event) (*EventInfo, error) {
	now := time.Now()
	se, runs, err := r.prepareEvent(ev, now)
	if err == nil {
		err = r.hookRuns(ctx, ev.Name, runs)
	}
	if err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	op := &enqueueOp{recs: runs, event: se, reply: make(chan error, 1)}
	if err := r.send(ctx, op, op.reply); err != nil {
		return nil, fmt.Errorf("send %s: %w", ev.Name, err)
	}
	return se.info(), nil
}

// hookRuns runs the enqueue hooks on the runs of the event name, about to be stored.
func (r *Runner) hookRuns(ctx context.Context, name string, runs []*record) error {
	for _, rec := range runs {
		if err := r.hookEnqueue(ctx, rec); err != nil {
			return fmt.Errorf("event %s: run of %w", name, err)
		}
	}
	return nil
}

// prepareEvent validates ev and builds its stored form and the records of its runs.
func (r *Runner) prepareEvent(ev Event, now time.Time) (*storedEvent, []*record, error) {
	if r.cfg.readOnly {
		return nil, nil, ErrReadOnly
	}
	if err := validateName("event", ev.Name); err != nil {
		return nil, nil, err
	}
	if ev.ID != "" {
		if err := validateKey("event ID", ev.ID); err != nil {
			return nil, nil, err
		}
	}
	data, err := eventData(ev.Data)
	if err != nil {
		return nil, nil, fmt.Errorf("event %s: %w", ev.Name, err)
	}
	se := &storedEvent{name: ev.Name, id: ev.ID, data: data}
	r.mu.RLock()
	fns, registers := r.triggers[ev.Name], len(r.handlers) > 0
	r.mu.RUnlock()
	var runs []*record
	if !registers {
		if runs, err = r.storedRuns(ev.Name, data, now); err != nil {
			return nil, nil, err
		}
	} else {
		runs = make([]*record, 0, len(fns))
		for _, h := range fns {
			rec, _, err := r.prepareOpts(rawArgs{kind: h.kind, data: data}, nil, now, false)
			if err != nil {
				return nil, nil, fmt.Errorf("event %s: run of %s: %w", ev.Name, h.kind, err)
			}
			rec.eventName = ev.Name
			runs = append(runs, rec)
		}
	}
	return se, runs, nil
}

// eventData encodes an event's data, which must be a JSON object within the size
// of args.
func eventData(v any) ([]byte, error) {
	if v == nil {
		return []byte("{}"), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: encode data: %w", ErrInvalid, err)
	}
	if bytes.Equal(b, []byte("null")) {
		return []byte("{}"), nil
	}
	if b[0] != '{' {
		return nil, invalidf("data encodes to %.20s, not a JSON object", b)
	}
	if len(b) > maxArgsSize {
		return nil, invalidf("data encodes to %d bytes, over the limit of %d", len(b), maxArgsSize)
	}
	return b, nil
}

// SendEvent sends ev from the handler whose ctx it is, as the step called name: the
// event and its runs are stored in the same commit as the step, so a run sends it
// exactly once, across retries, crashes and restarts; a later attempt gets the
// stored step back without sending again. It returns the event as Send does (its
// Data as given to this call). Names follow Step's rules.
func SendEvent(ctx context.Context, name string, ev Event) (*EventInfo, error) {
	e, err := stepCaller(ctx, "send event", name)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	se, runs, err := e.r.prepareEvent(ev, now)
	if err != nil {
		return nil, Permanent(fmt.Errorf("send event %q: %w", name, err))
	}
	key, saved, err := e.r.reachStep(e, name)
	if err != nil {
		return nil, err
	}
	if saved == nil {
		// Hooked only when sent: a later attempt that gets the stored step back
		// stores no run.
		if err := e.r.hookRuns(ctx, ev.Name, runs); err != nil {
			return nil, Permanent(fmt.Errorf("send event %q: %w", key, err))
		}
		s := &step{key: key, state: stepDone, startedAt: now, finishedAt: now}
		if err := e.r.saveStep(ctx, &stepOp{e: e, s: s, event: se, runs: runs}); err != nil {
			return nil, fmt.Errorf("send event %q: %w", key, err)
		}
		return se.info(), nil
	}
	var sent sentEvent
	if saved.call() != callSendEvent {
		return nil, saved.reusedBy(callSendEvent)
	}
	if err := json.Unmarshal(saved.result, &sent); err != nil {
		return nil, Permanent(fmt.Errorf("send event %q: the stored step does not decode: %w", key, err))
	}
	return &EventInfo{Seq: sent.Seq, Name: se.name, ID: se.id, Data: se.data, At: sent.At, Runs: sent.Runs,
		DuplicateOf: sent.DuplicateOf}, nil
}

// sentEvent is the result a SendEvent step stores: what Send returned, but the data.
type sentEvent struct {
	Seq         uint64    `json:"seq"`
	At          time.Time `json:"at"`
	Runs        []ID      `json:"runs,omitempty"`
	DuplicateOf uint64    `json:"duplicate_of,omitempty"`
}

// sentResult is a SendEvent step's result once se is stored.
func sentResult(se *storedEvent) []byte {
	b, _ := json.Marshal(sentEvent{Seq: se.seq, At: se.at, Runs: se.runs, DuplicateOf: se.dupOf})
	return b
}

// rawArgs are args already encoded: an event's data as the args of a run.
type rawArgs struct {
	kind string
	data json.RawMessage
}

func (a rawArgs) Kind() string                 { return a.kind }
func (a rawArgs) MarshalJSON() ([]byte, error) { return a.data, nil }

// GetEvent returns a stored event by its Seq, or an error wrapping ErrNotFound.
func (r *Runner) GetEvent(ctx context.Context, seq uint64) (*EventInfo, error) {
	var se *storedEvent
	err := r.view(ctx, func(t storeReader) (err error) {
		se, err = t.event(seq)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get event %d: %w", seq, err)
	}
	return se.info(), nil
}

// Events returns a page of the stored events that match f, newest first unless
// f.Oldest: by Seq, or by Seq within a name through the name index.
func (r *Runner) Events(ctx context.Context, f EventFilter) (*EventPage, error) {
	limit, err := pageLimit(f.Limit)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	var cursor uint64
	if f.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(f.Cursor)
		if err != nil || len(b) != 8 {
			return nil, fmt.Errorf("events: %w", invalidf("malformed cursor %q", f.Cursor))
		}
		cursor = binary.BigEndian.Uint64(b)
	}
	page := &EventPage{}
	err = r.view(ctx, func(t storeReader) error {
		evs, next, err := t.events(f.Name, f.Oldest, cursor, limit)
		if err != nil {
			return err
		}
		for _, se := range evs {
			page.Events = append(page.Events, se.info())
		}
		if next != 0 {
			page.Next = base64.RawURLEncoding.EncodeToString(binary.BigEndian.AppendUint64(nil, next))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return page, nil
}

// storedEvent is an event's stored form.
type storedEvent struct {
	seq   uint64
	name  string
	id    string
	data  []byte
	at    time.Time
	runs  []ID
	dupOf uint64
}

func (se *storedEvent) info() *EventInfo {
	return &EventInfo{Seq: se.seq, Name: se.name, ID: se.id, Data: se.data, At: se.at, Runs: se.runs, DuplicateOf: se.dupOf}
}

const eventVersion = 1

func (se *storedEvent) encode() []byte {
	b := make([]byte, 0, 32+len(se.name)+len(se.id)+len(se.data)+9*len(se.runs))
	b = append(b, eventVersion)
	b = appendString(b, se.name)
	b = appendString(b, se.id)
	b = appendBytes(b, se.data)
	b = appendTime(b, se.at)
	b = binary.AppendUvarint(b, se.dupOf)
	b = binary.AppendUvarint(b, uint64(len(se.runs)))
	for _, id := range se.runs {
		b = binary.AppendUvarint(b, uint64(id))
	}
	return b
}

// decodeEvent parses the event stored as seq; like decodeRecord, it keeps nothing of b.
func decodeEvent(seq uint64, b []byte) (*storedEvent, error) {
	if len(b) == 0 || b[0] == 0 || b[0] > eventVersion {
		return nil, fmt.Errorf("decode event %d: unknown version or empty", seq)
	}
	d := decoder{b: b[1:]}
	se := &storedEvent{seq: seq}
	se.name = d.string()
	se.id = d.string()
	se.data = d.bytes()
	se.at = d.time()
	se.dupOf = d.uvarint()
	if n := d.uvarint(); n > 0 && d.err == nil {
		if n > uint64(len(d.b)) {
			return nil, fmt.Errorf("decode event %d: %d runs in %d bytes: %w", seq, n, len(d.b), errTruncated)
		}
		se.runs = make([]ID, n)
		for i := range se.runs {
			se.runs[i] = ID(d.uvarint())
		}
	}
	if d.err != nil {
		return nil, fmt.Errorf("decode event %d: %w", seq, d.err)
	}
	if se.name == "" {
		return nil, fmt.Errorf("decode event %d: no name", seq)
	}
	return se, nil
}
