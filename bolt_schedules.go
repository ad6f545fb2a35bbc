package jobrun

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

func (t *txn) schedule(name string) (*storedSchedule, error) {
	v := t.schedules().Get([]byte(name))
	if v == nil {
		return nil, fmt.Errorf("%w: no schedule named %q", ErrNotFound, name)
	}
	var s storedSchedule
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, fmt.Errorf("decode schedule %s: %w", name, err)
	}
	return &s, nil
}

func (t *txn) putSchedule(name string, s *storedSchedule) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return t.schedules().Put([]byte(name), b)
}

// fire enqueues the schedule's job for fire time at. ok is false if the job's
// template cannot be decoded: the schedule cannot fire until Schedule rewrites it.
func (t *txn) fire(name string, s *storedSchedule, at time.Time) (ins inserted, ok bool, err error) {
	rec, err := decodeRecord(s.Template)
	if err != nil {
		return inserted{}, false, nil
	}
	rec.createdAt, rec.runAt, rec.schedule, rec.fireAt = t.now, t.now, name, at
	if rec.uniqueMode == uniqueDebounce {
		rec.runAt = t.now.Add(rec.uniqueFor)
	}
	if ins, err = t.enqueue(rec); err != nil {
		return inserted{}, false, err
	}
	return ins, true, nil
}

// fireDue fires every schedule whose time has come and returns the next fire time of
// each schedule it looked at.
func (t *txn) fireDue(due []string, log func(msg string, args ...any)) (map[string]time.Time, error) {
	next := make(map[string]time.Time, len(due))
	for _, name := range due {
		s, err := t.schedule(name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			log("jobrun: unreadable schedule left as is", "schedule", name, "error", err)
			continue
		}
		if s.Paused {
			continue // PauseSchedule came first: nothing to wake for
		}
		fireAt := time.Unix(0, s.Next)
		if fireAt.After(t.now) {
			next[name] = fireAt
			continue
		}
		sched, err := s.parse()
		if err != nil {
			log("jobrun: schedule spec no longer parses; not firing", "schedule", name, "error", err)
			continue
		}
		already := s.Last != 0 && !fireAt.After(time.Unix(0, s.Last)) // already fired: never twice
		skip := already
		if !skip && s.SkipMissed && t.now.Sub(fireAt) > misfireGrace {
			skip = true
		}
		if !skip && s.SkipOverlap && s.LastJob != 0 {
			if last, err := t.get(s.LastJob); err == nil {
				_, running := t.claimedSince(s.LastJob)
				skip = running || !final(last.state)
			}
		}
		fire := storedFire{At: fireAt.UnixNano(), Skipped: true}
		if !skip {
			ins, ok, err := t.fire(name, s, fireAt)
			if err != nil {
				return nil, err
			}
			if !ok {
				log("jobrun: the stored job of a schedule is unreadable; skipping its fire", "schedule", name, "fire", fireAt)
			} else {
				fire.Job, fire.Skipped = ins.id, ins.duplicate
				if !ins.duplicate {
					s.LastJob = ins.id
				}
			}
		}
		if !already {
			s.fired(fire)
		}
		s.Last = fireAt.UnixNano()
		n := sched.Next(t.now)
		if n.IsZero() || n.After(maxFireTime) {
			// It never fires again (within what a fire time can hold): park it.
			log("jobrun: schedule has no further fire time; it stays stored but idle", "schedule", name)
			s.Next = math.MaxInt64
			if err := t.putSchedule(name, s); err != nil {
				return nil, err
			}
			continue
		}
		s.Next = n.UnixNano()
		if err := t.putSchedule(name, s); err != nil {
			return nil, err
		}
		next[name] = n
	}
	return next, nil
}

// eachSchedule calls fn with every schedule by name, in byte order, and for one that
// cannot be decoded with the error instead.
func (t *txn) eachSchedule(fn func(name string, s *storedSchedule, err error) error) error {
	return t.schedules().ForEach(func(k, v []byte) error {
		var s storedSchedule
		if err := json.Unmarshal(v, &s); err != nil {
			return fn(string(k), nil, fmt.Errorf("schedule %s: %w", k, err))
		}
		return fn(string(k), &s, nil)
	})
}

// deleteSchedule removes a schedule.
func (t *txn) deleteSchedule(name string) error { return t.schedules().Delete([]byte(name)) }
