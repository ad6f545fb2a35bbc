package jobrun

import (
	"encoding/binary"
	"time"
)

// The layouts of the bbolt store's keys and index values, each written and read here
// and nowhere else (store.go lists the buckets). Every parser refuses what its
// writer cannot have made, instead of panicking on it: a damaged or foreign entry
// reads as "not ours", and FuzzKeys holds each pair to both.
//
//	name      len (1 B) ‖ bytes                a queue, tag or kind: at most 255 bytes
//	priority  ^(p ^ 1<<63) (8 B)               higher first in byte order
//	id        8 B big-endian                   in ID order
//	time      Unix ns, 8 B big-endian          0 for the zero time and before 1970

// idKey is a job's key in the jobs, active, corrupt and held buckets.
func idKey(id ID) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(id)) }

// keyID reads the ID that ends every job's index key; the caller checked the length.
func keyID(k []byte) ID { return ID(binary.BigEndian.Uint64(k[len(k)-8:])) }

// parseIDKey reads a key of the jobs, active, corrupt or held bucket.
func parseIDKey(k []byte) (ID, bool) {
	if len(k) != 8 {
		return 0, false
	}
	return keyID(k), true
}

// queuePrefix is a length-prefixed name: the start of every key of a queue's (or a
// tag's) entries.
func queuePrefix(queue string) []byte {
	b := make([]byte, 0, 1+len(queue)+16)
	b = append(b, byte(len(queue)))
	return append(b, queue...)
}

// cutName splits a length-prefixed name off b.
func cutName(b []byte) (name string, rest []byte, ok bool) {
	if len(b) < 1 || 1+int(b[0]) > len(b) {
		return "", nil, false
	}
	return string(b[1 : 1+int(b[0])]), b[1+int(b[0]):], true
}

// invertPriority maps a priority to 8 bytes that sort the highest first.
func invertPriority(p int64) uint64 { return ^(uint64(p) ^ 1<<63) }

func restorePriority(u uint64) int64 { return int64(^u ^ 1<<63) }

// readyKey sorts a queue's jobs by priority, highest first, then by ID (FIFO).
func readyKey(queue string, priority int64, id ID) []byte {
	b := queuePrefix(queue)
	b = binary.BigEndian.AppendUint64(b, invertPriority(priority))
	return binary.BigEndian.AppendUint64(b, uint64(id))
}

// parseReadyKey reads a key of the ready index.
func parseReadyKey(k []byte) (queue string, priority int64, id ID, ok bool) {
	queue, rest, ok := cutName(k)
	if !ok || len(rest) != 16 {
		return "", 0, 0, false
	}
	return queue, restorePriority(binary.BigEndian.Uint64(rest)), keyID(rest), true
}

// timeKey orders entries by a time, then by ID: the scheduled index, and after a
// state byte the finished index.
func timeKey(t time.Time, id ID) []byte {
	b := make([]byte, 0, 16)
	b = binary.BigEndian.AppendUint64(b, unixNanos(t))
	return binary.BigEndian.AppendUint64(b, uint64(id))
}

// parseTimeKey reads a key of the scheduled index.
func parseTimeKey(k []byte) (at time.Time, id ID, ok bool) {
	if len(k) != 16 {
		return time.Time{}, 0, false
	}
	return nanosTime(binary.BigEndian.Uint64(k)), keyID(k), true
}

// scheduledValue is a scheduled entry's value: the job's state (scheduled or
// retrying) and queue, so that counts and lists need not read the record.
func scheduledValue(state byte, queue string) []byte { return append([]byte{state}, queue...) }

func parseScheduledValue(v []byte) (state byte, queue string, ok bool) {
	if len(v) < 1 {
		return 0, "", false
	}
	return v[0], string(v[1:]), true
}

// activeValue is an active entry's value: when the handler started (0 while the job
// is only claimed) and the queue.
func activeValue(started time.Time, queue string) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(queue)), unixNanos(started))
	return append(v, queue...)
}

// parseActiveValue reads an active entry's value; started is zero for a job that is
// claimed and not started.
func parseActiveValue(v []byte) (started time.Time, queue string, ok bool) {
	if len(v) < 8 {
		return time.Time{}, "", false
	}
	if n := binary.BigEndian.Uint64(v); n != 0 {
		started = nanosTime(n)
	}
	return started, string(v[8:]), true
}

// activeState is the counted state of a job in the active index: running once
// started, ready while only claimed.
func activeState(v []byte) byte {
	if started, _, ok := parseActiveValue(v); ok && started.IsZero() {
		return stReady
	}
	return stRunning
}

// finishedKey orders one final state's jobs by the time they finished. Its value is
// the job's queue.
func finishedKey(state byte, at time.Time, id ID) []byte {
	return append([]byte{state}, timeKey(at, id)...)
}

// parseFinishedKey reads a key of the finished index.
func parseFinishedKey(k []byte) (state byte, at time.Time, id ID, ok bool) {
	if len(k) != 17 {
		return 0, time.Time{}, 0, false
	}
	at, id, _ = parseTimeKey(k[1:])
	return k[0], at, id, true
}

// countKey is the key of a queue's counter of one state.
func countKey(queue string, state byte) []byte { return append(queuePrefix(queue), state) }

// parseCountKey reads a key of the counts bucket.
func parseCountKey(k []byte) (queue string, state byte, ok bool) {
	queue, rest, ok := cutName(k)
	if !ok || len(rest) != 1 {
		return "", 0, false
	}
	return queue, rest[0], true
}

// countValue and parseCount are a counter's value.
func countValue(n int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(max(n, 0))) }

func parseCount(v []byte) (int64, bool) {
	if len(v) != 8 {
		return 0, false
	}
	return int64(min(binary.BigEndian.Uint64(v), 1<<63-1)), true
}

// tagKey indexes a job under one of its tags, in ID order.
func tagKey(tag string, id ID) []byte {
	return binary.BigEndian.AppendUint64(queuePrefix(tag), uint64(id))
}

// parseTagKey reads a key of the tags bucket.
func parseTagKey(k []byte) (tag string, id ID, ok bool) {
	tag, rest, ok := cutName(k)
	if !ok || len(rest) != 8 {
		return "", 0, false
	}
	return tag, keyID(rest), true
}

// uniqueIndexKey is where a job's unique key lives: keys are per kind.
func uniqueIndexKey(kind, key string) []byte {
	b := make([]byte, 0, 1+len(kind)+len(key))
	b = append(b, byte(len(kind)))
	b = append(b, kind...)
	return append(b, key...)
}

// uniqueValue is a unique entry's value: the job holding the key, and for Throttle
// until when (zero otherwise).
func uniqueValue(id ID, until time.Time) []byte {
	return binary.BigEndian.AppendUint64(idKey(id), unixNanos(until))
}

func parseUniqueValue(v []byte) (id ID, until time.Time, ok bool) {
	if len(v) != 16 {
		return 0, time.Time{}, false
	}
	return ID(binary.BigEndian.Uint64(v)), nanosTime(binary.BigEndian.Uint64(v[8:])), true
}

// slotKey is the key of a concurrency key's slot count, and the value of a held
// entry (keys.go).
func slotKey(queue, key string) []byte { return append(queuePrefix(queue), key...) }

func parseSlotKey(k []byte) (queue, key string, ok bool) {
	queue, rest, ok := cutName(k)
	if !ok {
		return "", "", false
	}
	return queue, string(rest), true
}

// waitPrefix is the prefix of a key's waiting line: keys are up to 512 bytes, so
// their length takes two bytes.
func waitPrefix(queue, key string) []byte {
	b := queuePrefix(queue)
	b = append(b, byte(len(key)>>8), byte(len(key)))
	return append(b, key...)
}

// waitKey orders a key's waiting jobs as the ready index orders a queue's.
func waitKey(queue, key string, priority int64, id ID) []byte {
	b := waitPrefix(queue, key)
	b = binary.BigEndian.AppendUint64(b, invertPriority(priority))
	return binary.BigEndian.AppendUint64(b, uint64(id))
}

// parseWaitKey reads a key of the keywait bucket.
func parseWaitKey(k []byte) (queue, key string, priority int64, id ID, ok bool) {
	queue, rest, ok := cutName(k)
	if !ok || len(rest) < 2 {
		return "", "", 0, 0, false
	}
	n := int(rest[0])<<8 | int(rest[1])
	if len(rest) != 2+n+16 {
		return "", "", 0, 0, false
	}
	tail := rest[2+n:]
	return queue, string(rest[2 : 2+n]), restorePriority(binary.BigEndian.Uint64(tail)), keyID(tail), true
}

// stepKey is a step's key in the steps bucket: its job's ID, then the step's key.
func stepKey(id ID, key string) []byte { return append(idKey(id), key...) }

// parseStepKey reads a key of the steps bucket.
func parseStepKey(k []byte) (ID, string, bool) {
	if len(k) <= 8 {
		return 0, "", false
	}
	return ID(binary.BigEndian.Uint64(k[:8])), string(k[8:]), true
}

// eventKey is an event's key in the events bucket: its Seq, 8 B big-endian.
func eventKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq) }

// parseEventKey reads a key of the events bucket.
func parseEventKey(k []byte) (uint64, bool) {
	if len(k) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(k), true
}

// eventNameKey sorts the events of a name by Seq.
func eventNameKey(name string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(queuePrefix(name), seq)
}

// parseEventNameKey reads a key of the eventnames index.
func parseEventNameKey(k []byte) (name string, seq uint64, ok bool) {
	name, rest, ok := cutName(k)
	if !ok || name == "" || len(rest) != 8 {
		return "", 0, false
	}
	return name, binary.BigEndian.Uint64(rest), true
}

// eventIDValue is what the eventids index holds for an event ID: the first event
// sent with it, and when.
func eventIDValue(seq uint64, at time.Time) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 16), seq)
	return binary.BigEndian.AppendUint64(b, unixNanos(at))
}

// parseEventIDValue reads a value of the eventids index.
func parseEventIDValue(v []byte) (seq uint64, at time.Time, ok bool) {
	if len(v) != 16 {
		return 0, time.Time{}, false
	}
	return binary.BigEndian.Uint64(v[:8]), nanosTime(binary.BigEndian.Uint64(v[8:])), true
}

// eventWaitPrefix is the start of the eventwaits keys of the jobs waiting for an
// event of name whose field has value (field "" and no value: any event of name).
func eventWaitPrefix(name, field string, value []byte) []byte {
	b := append(queuePrefix(name), byte(len(field)))
	b = append(b, field...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(value)))
	return append(b, value...)
}

// eventWaitKey is a waiting job's key in the eventwaits index.
func eventWaitKey(name, field string, value []byte, id ID) []byte {
	return binary.BigEndian.AppendUint64(eventWaitPrefix(name, field, value), uint64(id))
}

// nextWaitField is the first eventwaits key past every key of name's field.
func nextWaitField(name, field string) []byte {
	b := append(queuePrefix(name), byte(len(field)))
	return append(append(b, field...), 0xff, 0xff)
}

// parseEventWaitKey reads a key of the eventwaits index.
func parseEventWaitKey(k []byte) (name, field string, value []byte, id ID, ok bool) {
	name, rest, ok := cutName(k)
	if !ok || name == "" {
		return "", "", nil, 0, false
	}
	field, rest, ok = cutName(rest)
	if !ok || len(rest) < 2+8 {
		return "", "", nil, 0, false
	}
	n := int(binary.BigEndian.Uint16(rest))
	if len(rest) != 2+n+8 {
		return "", "", nil, 0, false
	}
	return name, field, rest[2 : 2+n], keyID(rest), true
}

// historyKey is the key of one queue's point of one minute in the history bucket:
// the minute (Unix minutes, big-endian) before the queue, so that the bucket is in
// time order: a range from a minute reads forward, and retention deletes from the
// front.
func historyKey(minute int64, queue string) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(queue)), uint64(max(minute, 0))), queue...)
}

// parseHistoryKey reads a key of the history bucket.
func parseHistoryKey(k []byte) (minute int64, queue string, ok bool) {
	if len(k) < 8 {
		return 0, "", false
	}
	return int64(min(binary.BigEndian.Uint64(k), 1<<63-1)), string(k[8:]), true
}
