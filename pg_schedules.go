package jobrun

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jobrun/jobrun/internal/sqldb"
)

// The schedules of a PostgreSQL store, as bolt_schedules.go keeps them: a row of
// schedules per schedule, holding the JSON the bbolt store writes, and a row of
// schedule_fires per fire time a schedule enqueued a job for.

// pgFireKeep is how long schedule_fires remembers a fire time. Only a late attempt
// tries a fire time again (a process whose clock lags, a next fire written back
// stale), and a day is far beyond either; a schedule that fires every second keeps
// no more rows than a day of its done jobs does by default.
const pgFireKeep = 24 * time.Hour

func (t *pgTxn) schedule(name string) (*storedSchedule, error) {
	stmt := `SELECT data FROM {s}.schedules WHERE name = $1`
	if t.writes {
		// A write reads a schedule to write it back (a fire, a pause): another
		// process's write of it waits, then reads this one's.
		stmt += ` FOR UPDATE`
	}
	var data []byte
	err := t.queryRow(stmt, name).Scan(&data)
	if errors.Is(err, sqldb.ErrNoRows) {
		return nil, fmt.Errorf("%w: no schedule named %q", ErrNotFound, name)
	}
	if err != nil {
		return nil, err
	}
	var s storedSchedule
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("decode schedule %s: %w", name, err)
	}
	return &s, nil
}

// eachSchedule reads every schedule before it calls fn, which may read the store
// itself.
func (t *pgTxn) eachSchedule(fn func(name string, s *storedSchedule, err error) error) error {
	var names []string
	var datas [][]byte
	err := scanRows(t.query(`SELECT name, data FROM {s}.schedules ORDER BY name`), func(rows sqldb.Rows) error {
		var name string
		var data []byte
		err := rows.Scan(&name, &data)
		names, datas = append(names, name), append(datas, data)
		return err
	})
	if err != nil {
		return err
	}
	for i, name := range names {
		var s storedSchedule
		if err = json.Unmarshal(datas[i], &s); err != nil {
			err = fn(name, nil, fmt.Errorf("schedule %s: %w", name, err))
		} else {
			err = fn(name, &s, nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (t *pgTxn) putSchedule(name string, s *storedSchedule) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	t.poke() // the other processes' firers load the schedules at their next poll
	return t.putSchedules([]string{name}, [][]byte{b})
}

// putSchedules creates or replaces schedules, their JSON given, in one statement;
// names holds each name once.
func (t *pgTxn) putSchedules(names []string, datas [][]byte) error {
	return t.exec(`INSERT INTO {s}.schedules (name, data) SELECT * FROM unnest($1::text[], $2::bytea[])
		ON CONFLICT (name) DO UPDATE SET data = excluded.data`, names, datas)
}

// deleteSchedule removes a schedule with the fire times it remembers, which no
// later fire of it would prune.
func (t *pgTxn) deleteSchedule(name string) error {
	t.poke()
	return t.exec(`WITH fires AS (DELETE FROM {s}.schedule_fires WHERE name = $1)
		DELETE FROM {s}.schedules WHERE name = $1`, name)
}

// fire enqueues the schedule's job for fire time at. ok is false if the job's
// template cannot be decoded: the schedule cannot fire until Schedule rewrites it.
// A fire time it enqueued for before enqueues nothing and answers as a duplicate;
// which job that fire enqueued is not kept.
func (t *pgTxn) fire(name string, s *storedSchedule, at time.Time) (ins inserted, ok bool, err error) {
	ins, ok, first, err := t.fireOnce(name, s, at)
	if ok && !first {
		ins.duplicate = true
	}
	return ins, ok, err
}

// fireOnce is fire that enqueues only if schedule_fires takes the fire time: first
// is false when it holds it already, and nothing is enqueued. Taking it waits for
// another process's transaction that took it, and then fails to.
func (t *pgTxn) fireOnce(name string, s *storedSchedule, at time.Time) (ins inserted, ok, first bool, err error) {
	rec, err := decodeRecord(s.Template)
	if err != nil {
		return inserted{}, false, false, nil
	}
	taken, err := t.tx.Exec(t.ctx, t.s.q(`WITH pruned AS (DELETE FROM {s}.schedule_fires WHERE name = $1 AND fire_at < $3)
		INSERT INTO {s}.schedule_fires (name, fire_at) VALUES ($1, $2) ON CONFLICT DO NOTHING`),
		name, storedNanos(at), storedNanos(t.now.Add(-pgFireKeep)))
	if err != nil || taken == 0 {
		return inserted{}, true, false, err
	}
	rec.createdAt, rec.runAt, rec.schedule, rec.fireAt = t.now, t.now, name, at
	if rec.uniqueMode == uniqueDebounce {
		rec.runAt = t.now.Add(rec.uniqueFor)
	}
	if ins, err = t.enqueue(rec); err != nil {
		return inserted{}, false, false, err
	}
	return ins, true, true, nil
}

// fireDue fires every schedule whose time has come and returns the next fire time of
// each schedule it looked at. It reads the due schedules in one statement, locked in
// name order, and writes back the ones it changed in another.
func (t *pgTxn) fireDue(due []string, log func(msg string, args ...any)) (map[string]time.Time, error) {
	stored := make(map[string][]byte, len(due))
	err := scanRows(t.query(`SELECT name, data FROM {s}.schedules WHERE name = ANY($1) ORDER BY name FOR UPDATE`, due),
		func(rows sqldb.Rows) error {
			var name string
			var data []byte
			err := rows.Scan(&name, &data)
			stored[name] = data
			return err
		})
	if err != nil {
		return nil, err
	}
	var written []string
	put := func(name string, s *storedSchedule) error {
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		if !slices.Contains(written, name) {
			written = append(written, name)
		}
		stored[name] = b // a name due twice reads what its first turn wrote
		return nil
	}
	next := make(map[string]time.Time, len(due))
	for _, name := range due {
		data, ok := stored[name]
		if !ok {
			continue
		}
		s := &storedSchedule{}
		if err := json.Unmarshal(data, s); err != nil {
			log("jobrun: unreadable schedule left as is", "schedule", name, "error",
				fmt.Errorf("decode schedule %s: %w", name, err))
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
			ins, ok, first, err := t.fireOnce(name, s, fireAt)
			switch {
			case err != nil:
				return nil, err
			case !ok:
				log("jobrun: the stored job of a schedule is unreadable; skipping its fire", "schedule", name, "fire", fireAt)
			case !first:
				already = true // enqueued before, by a fire that s.Last no longer shows
			default:
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
			if err := put(name, s); err != nil {
				return nil, err
			}
			continue
		}
		s.Next = n.UnixNano()
		if err := put(name, s); err != nil {
			return nil, err
		}
		next[name] = n
	}
	if len(written) == 0 {
		return next, nil
	}
	datas := make([][]byte, len(written))
	for i, name := range written {
		datas[i] = stored[name]
	}
	return next, t.putSchedules(written, datas)
}
