package jobrun

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"time"
)

// A runner stores the functions it registers (handlers with On) when its first
// session starts, so that a process that registers none (the jobrun command, a
// process that only sends) starts the same runs for an event as the application
// would: the runs of each function with the options its handler gives them.

// storedFunction is a function as stored: its kind, the events that start it, and
// the record its runs begin as (its handler's defaults, no args).
type storedFunction struct {
	kind     string
	events   []string
	template *record
	offset   time.Duration // the template's run time after its creation (Delay, Debounce)

	// What each run takes from its args: the template's keys are expanded, its
	// CancelOn rules (without values) get their values, and priorityOf is
	// PriorityFrom's field.
	priorityOf string

	order int // the handler's registration order, in which an event's runs are enqueued
}

// functionTemplate are the args of a function's template, whose keys stay as given.
type functionTemplate struct{ rawArgs }

const functionVersion = 1

func (f *storedFunction) encode() []byte {
	b := []byte{functionVersion}
	b = binary.AppendUvarint(b, uint64(len(f.events)))
	for _, name := range f.events {
		b = appendString(b, name)
	}
	b = binary.AppendVarint(b, int64(f.offset))
	b = appendBytes(b, f.template.encode())
	b = appendString(b, f.priorityOf)
	return binary.AppendUvarint(b, uint64(f.order))
}

func decodeFunction(kind string, b []byte) (*storedFunction, error) {
	if len(b) == 0 || b[0] == 0 || b[0] > functionVersion {
		return nil, fmt.Errorf("decode function %s: unknown version or empty", kind)
	}
	d := decoder{b: b[1:]}
	f := &storedFunction{kind: kind}
	if n := d.uvarint(); n > 0 && d.err == nil {
		if n > uint64(len(d.b)) {
			return nil, fmt.Errorf("decode function %s: %d events in %d bytes: %w", kind, n, len(d.b), errTruncated)
		}
		f.events = make([]string, n)
		for i := range f.events {
			f.events[i] = d.string()
		}
	}
	f.offset = time.Duration(d.varint())
	tmpl := d.bytes()
	f.priorityOf = d.string()
	f.order = int(d.uvarint())
	if d.err != nil {
		return nil, fmt.Errorf("decode function %s: %w", kind, d.err)
	}
	rec, err := decodeRecord(tmpl)
	if err != nil {
		return nil, fmt.Errorf("decode function %s: %w", kind, err)
	}
	f.template = rec
	return f, nil
}

// sameFunctions reports whether two tables of functions, by kind, are equal.
func sameFunctions(a, b []*storedFunction) bool {
	return slices.EqualFunc(a, b, func(x, y *storedFunction) bool {
		return x.kind == y.kind && bytes.Equal(x.encode(), y.encode())
	})
}

// functionTable is the runner's registered functions, by kind.
func (r *Runner) functionTable(now time.Time) ([]*storedFunction, error) {
	r.mu.RLock()
	byKind := map[string][]string{}
	order := map[string]int{}
	for name, hs := range r.triggers {
		for _, h := range hs {
			byKind[h.kind] = append(byKind[h.kind], name)
			order[h.kind] = h.order
		}
	}
	r.mu.RUnlock()
	var out []*storedFunction
	for _, kind := range slices.Sorted(maps.Keys(byKind)) {
		rec, o, err := r.prepareOpts(functionTemplate{rawArgs{kind: kind, data: []byte("{}")}}, nil, now, false)
		if err != nil {
			return nil, fmt.Errorf("function %s: %w", kind, err)
		}
		offset := rec.runAt.Sub(rec.createdAt)
		rec.args, rec.createdAt, rec.runAt = nil, time.Time{}, time.Time{}
		rec.state = stReady // as a record must be stored; each run's insert decides its own
		slices.Sort(byKind[kind])
		out = append(out, &storedFunction{kind: kind, events: byKind[kind], template: rec, offset: offset,
			priorityOf: o.priorityOf, order: order[kind]})
	}
	return out, nil
}

// storeFunctions replaces the stored functions with the runner's, if they differ. A
// read finds whether they do, so that the first Run of an application whose
// functions are stored already (or that has none) costs no commit.
func (r *Runner) storeFunctions(ctx context.Context) error {
	fns, err := r.functionTable(time.Now())
	if err != nil {
		return err
	}
	same := false
	if err := r.view(ctx, func(t storeReader) error {
		stored, err := t.functions()
		same = err == nil && sameFunctions(stored, fns)
		return nil
	}); err != nil {
		return err
	}
	if same {
		return nil
	}
	return r.mutate(ctx, func(w storeWriter, _ *engine) (error, error) {
		stored, err := w.functions()
		if err == nil && sameFunctions(stored, fns) {
			return nil, nil
		}
		return nil, w.putFunctions(fns)
	}, nil)
}

// storedRuns builds the runs of an event called name from the stored functions, for
// a runner that registers none.
func (r *Runner) storedRuns(name string, data []byte, now time.Time) ([]*record, error) {
	var fns []*storedFunction
	if err := r.st.view(func(t storeReader) (err error) {
		fns, err = t.functions()
		return err
	}); err != nil {
		return nil, fmt.Errorf("read the stored functions: %w", err)
	}
	slices.SortStableFunc(fns, func(a, b *storedFunction) int { return a.order - b.order })
	var runs []*record
	for _, f := range fns {
		if !slices.Contains(f.events, name) {
			continue
		}
		rec := f.template.clone()
		rec.args, rec.createdAt, rec.runAt, rec.eventName = data, now, now.Add(f.offset), name
		var cancelOn [][2]string
		for _, c := range f.template.cancelOn {
			cancelOn = append(cancelOn, [2]string{c.event, c.field})
		}
		if err := fromArgs(rec, f.priorityOf, cancelOn); err != nil {
			return nil, fmt.Errorf("run of %s: %w", f.kind, err)
		}
		runs = append(runs, rec)
	}
	return runs, nil
}

// FunctionStats counts what durable functions are doing, for metrics.
type FunctionStats struct {
	Sleeping int // runs suspended in Sleep or SleepUntil
	Waiting  int // runs suspended in WaitFor
	Invoking int // runs waiting for their children (Invoke, InvokeAll)

	// Since this runner opened: steps it stored (Step, SendEvent), and of those the
	// ones that took more than one attempt.
	StepsDone    uint64
	StepsRetried uint64
}

// FunctionStats returns the runs suspended in steps, counted in every commit like the
// states (so exact and O(1) to read), and the steps this runner stored.
func (r *Runner) FunctionStats(ctx context.Context) (*FunctionStats, error) {
	var n [numSuspended]int
	if err := r.view(ctx, func(t storeReader) error {
		n = t.suspendedCounts()
		return nil
	}); err != nil {
		return nil, fmt.Errorf("function stats: %w", err)
	}
	return &FunctionStats{Sleeping: n[suspendedSleep], Waiting: n[suspendedWait], Invoking: n[suspendedInvoke],
		StepsDone: r.stepsDone.Load(), StepsRetried: r.stepsRetried.Load()}, nil
}
