package jobrun

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

// FuzzKeys holds every key and value layout of codec.go to its two promises: what a
// writer makes, its parser reads back, and nothing a parser is given makes it panic.
// The ready and wait keys also keep their order: higher priority, then lower ID.
func FuzzKeys(f *testing.F) {
	f.Add("default", "customer-42", int64(0), uint64(1), int64(5), uint64(2), int64(1700000000123456789), byte(stReady), []byte{})
	f.Add("", "", int64(-1), uint64(0), int64(1<<62), uint64(1<<63), int64(0), byte(0), []byte{3, 'a', 'b'})
	// The seeds of the ready key's fuzzing before: priority extremes, neighbours at the
	// bottom, FIFO within a priority, the longest names, the same key twice.
	f.Add("q", "k", int64(math.MinInt64), uint64(math.MaxUint64), int64(math.MaxInt64), uint64(0), int64(math.MaxInt64), byte(0xff), []byte{0xff})
	f.Add("q", "k", int64(math.MinInt64), uint64(1), int64(math.MinInt64+1), uint64(1), int64(1), byte(stDone), []byte{0, 0})
	f.Add("mail queue", "a b", int64(3), uint64(7), int64(3), uint64(8), int64(1), byte(stScheduled), []byte{})
	f.Add(strings.Repeat("q", maxNameLen), strings.Repeat("k", maxUniqueKeyLen), int64(0), uint64(1), int64(0), uint64(1), int64(1), byte(1), []byte{255})
	f.Fuzz(func(t *testing.T, name, key string, p1 int64, id1 uint64, p2 int64, id2 uint64, ns int64, st byte, garbage []byte) {
		// Garbage: no parser may panic, whatever it is given.
		parseIDKey(garbage)
		cutName(garbage)
		parseReadyKey(garbage)
		parseTimeKey(garbage)
		parseScheduledValue(garbage)
		parseActiveValue(garbage)
		activeState(garbage)
		parseFinishedKey(garbage)
		parseCountKey(garbage)
		parseCount(garbage)
		parseTagKey(garbage)
		parseUniqueValue(garbage)
		parseSlotKey(garbage)
		parseWaitKey(garbage)
		parseStepKey(garbage)
		decodeStep("k", garbage)
		parseEventKey(garbage)
		parseEventNameKey(garbage)
		parseEventIDValue(garbage)
		parseEventWaitKey(garbage)
		decodeFunction("k", garbage)
		fieldValue(garbage, key)
		matchValue(garbage)
		decodeEvent(id1, garbage)
		parseHistoryKey(garbage)
		parseHistoryValue(garbage)

		if len(name) > maxNameLen || len(key) > maxUniqueKeyLen {
			return // the options refuse these before any key is made
		}
		id := ID(id1)
		at := time.Unix(0, max(ns, 1)) // the keys hold times from 1970, and 0 for none
		if key != "" {
			if gid, gkey, ok := parseStepKey(stepKey(id, key)); !ok || gid != id || gkey != key {
				t.Fatalf("step key of %d/%q: %d/%q %v", id, key, gid, gkey, ok)
			}
		}
		if minute, queue, ok := parseHistoryKey(historyKey(p1, name)); !ok || queue != name || minute != max(p1, 0) {
			t.Fatalf("history key of %d/%q: %d/%q %v", p1, name, minute, queue, ok)
		}
		hp := HistoryPoint{Enqueued: int(id1 % 1e9), Started: int(id2 % 1e9), Done: int(max(p2, 0) % 1e9), Retried: 1, Failed: 2,
			Canceled: 3, WaitTotal: time.Duration(max(ns, 0)), WaitMax: time.Duration(max(p1, 0)), Ready: int(st)}
		if got, ok := parseHistoryValue(historyValue(&hp)); !ok || got != hp {
			t.Fatalf("history point %+v read back as %+v %v", hp, got, ok)
		}
		if got, ok := parseEventKey(eventKey(id1)); !ok || got != id1 {
			t.Fatalf("event key of %d: %d %v", id1, got, ok)
		}
		if name != "" {
			if gname, seq, ok := parseEventNameKey(eventNameKey(name, id1)); !ok || gname != name || seq != id1 {
				t.Fatalf("event name key of %q/%d: %q/%d %v", name, id1, gname, seq, ok)
			}
			se := &storedEvent{seq: id1, name: name, id: key, data: garbage, at: at, dupOf: id2, runs: []ID{id, ID(id2)}}
			got, err := decodeEvent(id1, se.encode())
			if err != nil || got.name != name || got.id != key || !bytes.Equal(got.data, garbage) || !got.at.Equal(at) ||
				got.dupOf != id2 || len(got.runs) != 2 || got.runs[0] != id || got.runs[1] != ID(id2) {
				t.Fatalf("event %+v read back as %+v, %v", se, got, err)
			}
		}
		if name != "" && len(key) <= maxNameLen && len(garbage) <= maxMatchLen {
			gname, gfield, gvalue, gid, ok := parseEventWaitKey(eventWaitKey(name, key, garbage, id))
			if !ok || gname != name || gfield != key || !bytes.Equal(gvalue, garbage) || gid != id {
				t.Fatalf("event wait key of %q/%q/%q/%d: %q/%q/%q/%d %v", name, key, garbage, id, gname, gfield, gvalue, gid, ok)
			}
			if k := eventWaitKey(name, key, garbage, id); bytes.Compare(k, nextWaitField(name, key)) >= 0 {
				t.Fatalf("event wait key %x sorts after the end of its field, %x", k, nextWaitField(name, key))
			}
		}
		sw := &step{key: "s", state: stepInvoking, startedAt: at, finishedAt: at, waitEvent: name, waitField: key,
			waitValue: garbage, event: id2, woke: p1,
			children: []childRun{{id: id, state: st, result: garbage, err: key}, {id: ID(id2)}}}
		if name != "" {
			got, err := decodeStep("s", sw.encode())
			if err != nil || got.waitEvent != name || got.waitField != key || !bytes.Equal(got.waitValue, garbage) ||
				got.event != id2 || got.woke != p1 || len(got.children) != 2 || got.children[0].id != id ||
				got.children[0].state != st || !bytes.Equal(got.children[0].result, garbage) || got.children[0].err != key ||
				got.children[1].id != ID(id2) {
				t.Fatalf("step %+v read back as %+v, %v", sw, got, err)
			}
		}
		if name != "" {
			tmpl := &record{kind: name, queue: "q", state: stReady, concKey: key, priority: p1,
				cancelOn: []cancelRule{{event: name, field: key}}}
			f := &storedFunction{kind: name, events: []string{name, key}, template: tmpl, offset: time.Duration(p2),
				priorityOf: key, order: int(id1 % 1000)}
			got, err := decodeFunction(name, f.encode())
			if err != nil || got.kind != name || len(got.events) != 2 || got.events[1] != key || got.offset != f.offset ||
				got.priorityOf != key || got.order != f.order || got.template.concKey != key || got.template.priority != p1 ||
				len(got.template.cancelOn) != 1 || got.template.cancelOn[0].field != key {
				t.Fatalf("function %+v read back as %+v, %v", f, got, err)
			}
		}
		if seq, gat, ok := parseEventIDValue(eventIDValue(id1, at)); !ok || seq != id1 || !gat.Equal(at) {
			t.Fatalf("event ID value of %d/%v: %d/%v %v", id1, at, seq, gat, ok)
		}
		if got, ok := parseIDKey(idKey(id)); !ok || got != id {
			t.Fatalf("id key of %d: %d %v", id, got, ok)
		}
		if q, p, gid, ok := parseReadyKey(readyKey(name, p1, id)); !ok || q != name || p != p1 || gid != id {
			t.Fatalf("ready key of %q/%d/%d: %q/%d/%d %v", name, p1, id, q, p, gid, ok)
		}
		if gat, gid, ok := parseTimeKey(timeKey(at, id)); !ok || !gat.Equal(at) || gid != id {
			t.Fatalf("time key of %v/%d: %v/%d %v", at, id, gat, gid, ok)
		}
		if gst, q, ok := parseScheduledValue(scheduledValue(st, name)); !ok || gst != st || q != name {
			t.Fatalf("scheduled value of %d/%q: %d/%q %v", st, name, gst, q, ok)
		}
		for _, started := range []time.Time{{}, at} {
			gat, q, ok := parseActiveValue(activeValue(started, name))
			if !ok || !gat.Equal(started) || q != name || (activeState(activeValue(started, name)) == stReady) != started.IsZero() {
				t.Fatalf("active value of %v/%q: %v/%q %v", started, name, gat, q, ok)
			}
		}
		if gst, gat, gid, ok := parseFinishedKey(finishedKey(st, at, id)); !ok || gst != st || !gat.Equal(at) || gid != id {
			t.Fatalf("finished key of %d/%v/%d: %d/%v/%d %v", st, at, id, gst, gat, gid, ok)
		}
		if q, gst, ok := parseCountKey(countKey(name, st)); !ok || q != name || gst != st {
			t.Fatalf("count key of %q/%d: %q/%d %v", name, st, q, gst, ok)
		}
		if n, ok := parseCount(countValue(p1)); !ok || n != max(p1, 0) {
			t.Fatalf("count of %d: %d %v", p1, n, ok)
		}
		if tag, gid, ok := parseTagKey(tagKey(name, id)); !ok || tag != name || gid != id {
			t.Fatalf("tag key of %q/%d: %q/%d %v", name, id, tag, gid, ok)
		}
		for _, until := range []time.Time{{}, at} {
			gid, guntil, ok := parseUniqueValue(uniqueValue(id, until))
			want := until
			if until.IsZero() {
				want = time.Unix(0, 0)
			}
			if !ok || gid != id || !guntil.Equal(want) {
				t.Fatalf("unique value of %d/%v: %d/%v %v", id, until, gid, guntil, ok)
			}
		}
		if q, k, ok := parseSlotKey(slotKey(name, key)); !ok || q != name || k != key {
			t.Fatalf("slot key of %q/%q: %q/%q %v", name, key, q, k, ok)
		}
		wk := waitKey(name, key, p1, id)
		if q, k, p, gid, ok := parseWaitKey(wk); !ok || q != name || k != key || p != p1 || gid != id || !bytes.HasPrefix(wk, waitPrefix(name, key)) {
			t.Fatalf("wait key of %q/%q/%d/%d: %q/%q/%d/%d %v", name, key, p1, id, q, k, p, gid, ok)
		}

		// Order: a queue's ready jobs, and a key's waiting ones, run by priority
		// then ID, which is their keys' byte order.
		want := p1 > p2 || p1 == p2 && id1 < id2
		for _, pair := range [][2][]byte{
			{readyKey(name, p1, id), readyKey(name, p2, ID(id2))},
			{waitKey(name, key, p1, id), waitKey(name, key, p2, ID(id2))},
		} {
			if got := bytes.Compare(pair[0], pair[1]) < 0; got != want && !(p1 == p2 && id1 == id2) {
				t.Fatalf("order of (%d,%d) and (%d,%d): before=%v", p1, id1, p2, id2, got)
			}
		}
	})
}
