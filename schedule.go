package jobrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/robfig/cron/v3"
)

// cronParser accepts standard five-field specs, an optional leading seconds field,
// descriptors (@daily, @every 5m) and a CRON_TZ= or TZ= prefix.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// misfireGrace is how late a fire may be noticed and still count as on time: a fire
// found later than this (the process was down) is a missed fire, handled by the
// schedule's missed-fire policy.
const misfireGrace = time.Minute

// SkipMissed makes a schedule skip the fires it missed while the process was down,
// instead of running once for them (the default). Schedule only.
func SkipMissed() EnqueueOption {
	return func(o *enqueueOptions) { o.skipMissed = true }
}

// SkipOverlap makes a schedule skip a fire while the job of its previous fire is
// unfinished, so that runs never overlap. By default fires are enqueued regardless.
// Schedule only.
func SkipOverlap() EnqueueOption {
	return func(o *enqueueOptions) { o.skipOverlap = true }
}

// TimeZone interprets a schedule's spec in the named IANA time zone ("Europe/Paris"),
// as a CRON_TZ= prefix would. Default: the zone of time.Local. Schedule only.
func TimeZone(name string) EnqueueOption {
	return func(o *enqueueOptions) {
		if _, err := time.LoadLocation(name); err != nil || name == "" {
			o.err = invalidf("unknown time zone %q", name)
			return
		}
		o.timeZone = name
	}
}

// ScheduleInfo describes a stored schedule.
type ScheduleInfo struct {
	Name        string          `json:"name"`
	Spec        string          `json:"spec"`                // as given, with any CRON_TZ= prefix
	TimeZone    string          `json:"time_zone,omitempty"` // from the TimeZone option, "" if none
	Kind        string          `json:"kind"`
	Args        json.RawMessage `json:"args"`
	Next        time.Time       `json:"next"`               // the next fire
	Last        time.Time       `json:"last,omitzero"`      // the latest fire that enqueued or skipped a job, zero if none
	LastJob     ID              `json:"last_job,omitempty"` // the job of the latest enqueued fire, 0 if none
	SkipMissed  bool            `json:"skip_missed"`
	SkipOverlap bool            `json:"skip_overlap"`
	Paused      bool            `json:"paused"`          // PauseSchedule: it does not fire until ResumeSchedule; Next is zero
	Fires       []ScheduleFire  `json:"fires,omitempty"` // the latest fires, newest first, at most 10
}

// ScheduleFire is one fire of a schedule: a fire time of its timetable, or a
// TriggerSchedule.
type ScheduleFire struct {
	At      time.Time `json:"at"`                // the fire time, or when TriggerSchedule ran
	Job     ID        `json:"job,omitempty"`     // the job it enqueued; with a unique key, the job that held it; 0 if none
	Skipped bool      `json:"skipped,omitempty"` // it enqueued nothing: SkipMissed, SkipOverlap, or a unique key held
	Manual  bool      `json:"manual,omitempty"`  // TriggerSchedule, outside the timetable
}

// storedSchedule is a schedule as kept in the schedules bucket (JSON: a few per file).
type storedSchedule struct {
	Spec        string       `json:"spec"`
	TimeZone    string       `json:"tz,omitempty"`
	Template    []byte       `json:"job"` // the job to enqueue, in the record encoding
	SkipMissed  bool         `json:"skip_missed,omitempty"`
	SkipOverlap bool         `json:"skip_overlap,omitempty"`
	Next        int64        `json:"next"`
	Last        int64        `json:"last,omitempty"`
	LastJob     ID           `json:"last_job,omitempty"`
	Paused      bool         `json:"paused,omitempty"`
	Fires       []storedFire `json:"fires,omitempty"` // newest first, at most maxScheduleFires
}

// storedFire is a ScheduleFire as the schedules bucket keeps it.
type storedFire struct {
	At      int64 `json:"at"`
	Job     ID    `json:"job,omitempty"`
	Skipped bool  `json:"skipped,omitempty"`
	Manual  bool  `json:"manual,omitempty"`
}

// maxScheduleFires bounds the fires a schedule keeps for Schedules.
const maxScheduleFires = 10

// fired records a fire, dropping the oldest beyond maxScheduleFires.
func (s *storedSchedule) fired(f storedFire) {
	s.Fires = append([]storedFire{f}, s.Fires[:min(len(s.Fires), maxScheduleFires-1)]...)
}

func (s *storedSchedule) parse() (sched cron.Schedule, err error) {
	spec := s.Spec
	if s.TimeZone != "" {
		spec = "CRON_TZ=" + s.TimeZone + " " + spec
	}
	if !utf8.ValidString(spec) {
		// cron ignores some trailing bytes, and JSON would store another spec.
		return nil, errors.New("not valid UTF-8")
	}
	if rest, ok := strings.CutPrefix(spec, "CRON_TZ="); ok && !strings.Contains(rest, " ") {
		// robfig/cron v3.0.1 slices out of range on a zone with no spec after it.
		return nil, errors.New("a time zone prefix with no spec after it")
	}
	if rest, ok := strings.CutPrefix(spec, "TZ="); ok && !strings.Contains(rest, " ") {
		return nil, errors.New("a time zone prefix with no spec after it")
	}
	if err := checkEvery(spec); err != nil {
		return nil, err
	}
	defer func() {
		if v := recover(); v != nil {
			sched, err = nil, fmt.Errorf("unparsable (%v)", v)
		}
	}()
	sched, err = cronParser.Parse(spec)
	if err != nil {
		// robfig/cron quotes the whole spec back, however long.
		return nil, errors.New(clip(err.Error(), 200))
	}
	return sched, nil
}

// checkEvery refuses an @every interval that is not positive, which robfig/cron
// would run every second. Intervals are whole seconds: a shorter one fires every
// second, and a fraction is dropped (@every 1.5s fires every second).
func checkEvery(spec string) error {
	for _, prefix := range []string{"CRON_TZ=", "TZ="} {
		if rest, ok := strings.CutPrefix(spec, prefix); ok {
			_, spec, _ = strings.Cut(rest, " ")
		}
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(spec), "@every ")
	if !ok {
		return nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(rest))
	switch {
	case err != nil:
		return errors.New(clip(err.Error(), 200))
	case d <= 0:
		return fmt.Errorf("@every needs a positive interval, got %v", d)
	}
	return nil
}

// clip cuts an error text to at most n bytes.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// maxFireTime is the latest fire time a schedule can store: fire times are kept as
// Unix nanoseconds.
var maxFireTime = time.Unix(0, math.MaxInt64)

// Schedule creates or updates the schedule name: at every time spec names, a job with
// args and opts is enqueued. The schedule is stored in the file, so it fires across
// restarts without missing or doubling a fire: each fire enqueues its job and advances
// the stored next fire in the same transaction.
//
// spec is a cron spec: five fields (minute hour day-of-month month day-of-week), an
// optional leading seconds field, or a descriptor (@hourly, @daily, @every 90s), with
// an optional CRON_TZ=Zone prefix. @every takes a positive interval in whole seconds:
// a shorter one fires every second, and a fraction is dropped (@every 1.5s fires
// every second). Fires missed while the process was down (found more
// than a minute late) run once, at start, unless SkipMissed. SkipOverlap skips a
// fire while the previous fire's job is unfinished; TimeZone sets the zone.
//
// Calling Schedule again with the same spec keeps the schedule's timetable and updates
// its job; a new spec recomputes the next fire. Either way a paused schedule stays
// paused (PauseSchedule), and its list of latest fires is kept. Schedules stay in the file until
// Unschedule removes them, even if the code no longer declares them: list them with
// Schedules.
func (r *Runner) Schedule(ctx context.Context, name, spec string, args Args, opts ...EnqueueOption) error {
	if err := validateName("schedule", name); err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	now := time.Now()
	rec, o, err := r.prepareOpts(args, opts, now, true)
	if err != nil {
		return fmt.Errorf("schedule %s: %w", name, err)
	}
	s := &storedSchedule{Spec: strings.TrimSpace(spec), TimeZone: o.timeZone,
		SkipMissed: o.skipMissed, SkipOverlap: o.skipOverlap}
	if o.timeZone != "" && (strings.HasPrefix(s.Spec, "CRON_TZ=") || strings.HasPrefix(s.Spec, "TZ=")) {
		return fmt.Errorf("schedule %s: %w", name, invalidf("spec %s has a time zone prefix and the TimeZone option too", quoted(spec)))
	}
	sched, err := s.parse()
	if err != nil {
		return fmt.Errorf("schedule %s: %w", name, invalidf("cron spec %s: %v", quoted(spec), err))
	}
	switch next := sched.Next(now); {
	case next.IsZero():
		return fmt.Errorf("schedule %s: %w", name, invalidf("cron spec %s never fires", quoted(spec)))
	case next.After(maxFireTime):
		return fmt.Errorf("schedule %s: %w", name, invalidf("cron spec %s first fires after %d, beyond what jobrun can store",
			quoted(spec), maxFireTime.Year()))
	}
	rec.schedule, rec.state = name, stReady // a template is stored, never indexed
	s.Template = rec.encode()
	var next time.Time
	err = r.mutate(ctx, func(w storeWriter, _ *engine) (error, error) {
		old, err := w.schedule(name)
		if err == nil && old.Spec == s.Spec && old.TimeZone == s.TimeZone {
			s.Next, s.Last, s.LastJob = old.Next, old.Last, old.LastJob
		} else {
			s.Next = sched.Next(now).UnixNano()
		}
		if err == nil {
			s.Paused, s.Fires = old.Paused, old.Fires
		}
		next = time.Unix(0, s.Next)
		return nil, w.putSchedule(name, s)
	}, func(en *engine) {
		if s.Paused {
			delete(en.firer.fires, name)
		} else {
			en.firer.fires[name] = next
		}
	})
	if err != nil {
		return fmt.Errorf("schedule %s: %w", name, err)
	}
	return nil
}

// Unschedule removes the schedule name; jobs it already enqueued are not affected.
// It returns an error wrapping ErrNotFound if there is no such schedule.
func (r *Runner) Unschedule(ctx context.Context, name string) error {
	err := r.mutate(ctx, func(w storeWriter, _ *engine) (error, error) {
		if _, err := w.schedule(name); err != nil {
			return err, nil
		}
		return nil, w.deleteSchedule(name)
	}, func(en *engine) { delete(en.firer.fires, name) })
	if err != nil {
		return fmt.Errorf("unschedule %s: %w", name, err)
	}
	return nil
}

// TriggerSchedule enqueues the schedule's job now, outside its timetable ("run now"),
// and returns its ID. The next fire stays as it was.
func (r *Runner) TriggerSchedule(ctx context.Context, name string) (ID, error) {
	var id ID
	err := r.mutate(ctx, func(w storeWriter, _ *engine) (error, error) {
		s, err := w.schedule(name)
		if err != nil {
			return err, nil
		}
		ins, ok, err := w.fire(name, s, time.Now())
		if err != nil {
			return nil, err
		}
		if !ok {
			return fmt.Errorf("%w: the stored job of schedule %q is unreadable; call Schedule to rewrite it", ErrSchema, name), nil
		}
		id = ins.id
		s.fired(storedFire{At: time.Now().UnixNano(), Job: ins.id, Skipped: ins.duplicate, Manual: true})
		if err := w.putSchedule(name, s); err != nil {
			return nil, err
		}
		if ins.duplicate {
			return fmt.Errorf("%w: job %d holds the schedule's unique key", ErrDuplicate, ins.id), nil
		}
		return nil, nil
	}, nil)
	if err != nil {
		return 0, fmt.Errorf("trigger schedule %s: %w", name, err)
	}
	return id, nil
}

// Schedules lists the stored schedules by name.
func (r *Runner) Schedules(ctx context.Context) ([]ScheduleInfo, error) {
	var out []ScheduleInfo
	err := r.view(ctx, func(t storeReader) error {
		return t.eachSchedule(func(name string, s *storedSchedule, err error) error {
			if err != nil {
				return err
			}
			in := ScheduleInfo{Name: name, Spec: s.Spec, TimeZone: s.TimeZone, LastJob: s.LastJob,
				Next: time.Unix(0, s.Next), SkipMissed: s.SkipMissed, SkipOverlap: s.SkipOverlap, Paused: s.Paused}
			if s.Last != 0 {
				in.Last = time.Unix(0, s.Last)
			}
			if s.Paused {
				in.Next = time.Time{}
			}
			for _, f := range s.Fires {
				in.Fires = append(in.Fires, ScheduleFire{At: time.Unix(0, f.At), Job: f.Job, Skipped: f.Skipped, Manual: f.Manual})
			}
			if rec, err := decodeRecord(s.Template); err == nil {
				in.Kind, in.Args = rec.kind, rec.args
			}
			out = append(out, in)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("schedules: %w", err)
	}
	return out, nil
}

// PauseSchedule stops the schedule name from firing until ResumeSchedule: its fire
// times pass without a job, and are not made up later. Jobs it already enqueued are
// not affected, TriggerSchedule still runs it, and Schedule called again (as an
// application does at every start) leaves it paused. It returns an error wrapping
// ErrNotFound if there is no such schedule; pausing a paused schedule does nothing.
func (r *Runner) PauseSchedule(ctx context.Context, name string) error {
	err := r.mutate(ctx, func(w storeWriter, _ *engine) (error, error) {
		s, err := w.schedule(name)
		if err != nil || s.Paused {
			return err, nil
		}
		s.Paused = true
		return nil, w.putSchedule(name, s)
	}, func(en *engine) { delete(en.firer.fires, name) })
	if err != nil {
		return fmt.Errorf("pause schedule %s: %w", name, err)
	}
	return nil
}

// ResumeSchedule lets a paused schedule fire again, from its first fire time after
// now: the fires it missed while paused are not run. It returns an error wrapping
// ErrNotFound if there is no such schedule; resuming one that is not paused does
// nothing.
func (r *Runner) ResumeSchedule(ctx context.Context, name string) error {
	var next time.Time
	err := r.mutate(ctx, func(w storeWriter, _ *engine) (error, error) {
		s, err := w.schedule(name)
		if err != nil {
			return err, nil
		}
		next = time.Unix(0, s.Next)
		if !s.Paused {
			return nil, nil
		}
		sched, err := s.parse()
		if err != nil {
			return fmt.Errorf("%w: the spec of schedule %q no longer parses (%v); call Schedule to rewrite it", ErrSchema, name, err), nil
		}
		s.Paused, s.Next = false, math.MaxInt64
		if n := sched.Next(time.Now()); !n.IsZero() && !n.After(maxFireTime) {
			s.Next = n.UnixNano()
		}
		next = time.Unix(0, s.Next)
		return nil, w.putSchedule(name, s)
	}, func(en *engine) { en.firer.fires[name] = next })
	if err != nil {
		return fmt.Errorf("resume schedule %s: %w", name, err)
	}
	return nil
}
