package jobrun_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/robfig/cron/v3"
	"go.etcd.io/bbolt"

	"github.com/jobrun/jobrun"
)

// fuzzCron parses specs as the runner documents it does: five fields, an optional
// leading seconds field, descriptors, and a CRON_TZ= or TZ= prefix.
var fuzzCron = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// simpleName matches schedule names that are valid whatever the rules' details.
var simpleName = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

// FuzzSchedule: Schedule never panics, whatever the name, spec and time zone; it
// refuses what it cannot run with ErrInvalid and stores nothing; and a schedule it
// accepts is listed by Schedules as given, with a next fire after now that the spec
// yields, which declaring the schedule again keeps.
func FuzzSchedule(f *testing.F) {
	f.Add("nightly", "0 3 * * *", "")
	f.Add("paris", "30 2 * * *", "Europe/Paris")
	f.Add("every", "@every 90s", "")
	f.Add("tz-prefix", "CRON_TZ=America/New_York 0 9 * * 1-5", "")
	f.Add("never", "0 0 30 2 *", "")
	f.Add("bad", "61 * * * *", "")

	// One runner for all inputs, on a file without fsyncs: fuzzing checks logic, not
	// durability, and runs thousands of inputs a second this way.
	db, err := bbolt.Open(filepath.Join(f.TempDir(), "fuzz.db"), 0o600, &bbolt.Options{NoSync: true, NoFreelistSync: true})
	if err != nil {
		f.Fatal(err)
	}
	r, err := jobrun.New(db, jobrun.WithStrictKinds(false))
	if err != nil {
		db.Close()
		f.Fatal(err)
	}
	f.Cleanup(func() {
		r.Close()
		db.Close()
	})

	f.Fuzz(func(t *testing.T, name, spec, tz string) {
		trimmed := strings.TrimSpace(spec)
		args := report{Name: "fuzz"}
		var opts []jobrun.EnqueueOption
		if tz != "" {
			opts = append(opts, jobrun.TimeZone(tz))
		}
		before := time.Now()
		err := r.Schedule(t.Context(), name, spec, args, opts...)
		after := time.Now()

		list, lerr := r.Schedules(t.Context())
		if lerr != nil {
			t.Fatalf("schedules: %v", lerr)
		}
		var got *jobrun.ScheduleInfo
		for i := range list {
			if list[i].Name == name {
				got = &list[i]
			}
		}
		if err != nil {
			if !errors.Is(err, jobrun.ErrInvalid) {
				t.Fatalf("Schedule(%q, %q, tz %q): got %v, want nil or ErrInvalid", name, spec, tz, err)
			}
			if got != nil {
				t.Fatalf("a refused schedule was stored: %+v", got)
			}
			// A spec that yields fires, with a valid name and zone, must be accepted.
			if sched, perr := parseLike(trimmed, tz); perr == nil && simpleName.MatchString(name) && zoneOK(tz) &&
				!sched.Next(before).IsZero() && !sched.Next(before).After(time.Unix(0, math.MaxInt64)) && !hasTZPrefix(trimmed, tz) &&
				!nonPositiveEvery(trimmed) {
				t.Fatalf("Schedule(%q, %q, tz %q) refused a spec that fires: %v", name, spec, tz, err)
			}
			return
		}
		defer func() {
			if err := r.Unschedule(t.Context(), name); err != nil {
				t.Fatalf("unschedule: %v", err)
			}
		}()

		sched, perr := parseLike(trimmed, tz)
		if perr != nil {
			t.Fatalf("Schedule accepted %q (tz %q), which does not parse: %v", spec, tz, perr)
		}
		if sched.Next(before).After(time.Unix(0, math.MaxInt64)) {
			t.Fatalf("Schedule accepted %q, whose first fire is after 2262: fire times are Unix nanoseconds", spec)
		}
		if !utf8.ValidString(spec) {
			t.Fatalf("Schedule accepted %q, which is not valid UTF-8 and cannot round-trip through JSON", spec)
		}
		if got == nil {
			t.Fatalf("Schedules does not list %q: %+v", name, list)
		}
		if got.Spec != trimmed || got.TimeZone != tz || got.Kind != args.Kind() {
			t.Fatalf("listed as spec %q tz %q kind %q, want %q %q %q", got.Spec, got.TimeZone, got.Kind, trimmed, tz, args.Kind())
		}
		if want, _ := json.Marshal(args); !bytes.Equal(got.Args, want) {
			t.Fatalf("listed args %s, want %s", got.Args, want)
		}
		// The next fire is what the spec yields at the moment Schedule read the clock,
		// between before and after.
		lo, hi := sched.Next(before), sched.Next(after)
		if !got.Next.After(before) || got.Next.Before(lo) || got.Next.After(hi) {
			t.Fatalf("next fire %v, want after now (%v) and within the spec's [%v, %v]", got.Next, before, lo, hi)
		}
		if !got.Last.IsZero() || got.LastJob != 0 {
			t.Fatalf("a new schedule has fired: last %v job %d", got.Last, got.LastJob)
		}

		// Declaring it again, as code does at every start, keeps its timetable.
		if err := r.Schedule(t.Context(), name, spec, args, opts...); err != nil {
			t.Fatalf("second Schedule: %v", err)
		}
		list, _ = r.Schedules(t.Context())
		for _, s := range list {
			if s.Name == name && !s.Next.Equal(got.Next) {
				t.Fatalf("declaring the schedule again moved its next fire from %v to %v", got.Next, s.Next)
			}
		}
	})
}

// parseLike parses a trimmed spec with the time zone option as Schedule documents.
// robfig/cron panics on some inputs (a zone prefix with nothing after it): that
// counts as a parse error, as Schedule reports it.
func parseLike(spec, tz string) (sched cron.Schedule, err error) {
	if tz != "" {
		spec = "CRON_TZ=" + tz + " " + spec
	}
	if !utf8.ValidString(spec) {
		return nil, errors.New("not valid UTF-8")
	}
	defer func() {
		if v := recover(); v != nil {
			sched, err = nil, fmt.Errorf("panic: %v", v)
		}
	}()
	return fuzzCron.Parse(spec)
}

// zoneOK reports whether the TimeZone option accepts tz ("" is no option).
func zoneOK(tz string) bool {
	_, err := time.LoadLocation(tz)
	return tz == "" || err == nil
}

func hasTZPrefix(spec, tz string) bool {
	return tz != "" && (strings.HasPrefix(spec, "CRON_TZ=") || strings.HasPrefix(spec, "TZ="))
}

// nonPositiveEvery reports an @every spec whose interval is not positive: robfig/cron
// runs those every second, and Schedule refuses them.
func nonPositiveEvery(spec string) bool {
	for _, prefix := range []string{"CRON_TZ=", "TZ="} {
		if rest, ok := strings.CutPrefix(spec, prefix); ok {
			_, spec, _ = strings.Cut(rest, " ")
		}
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(spec), "@every ")
	if !ok {
		return false
	}
	d, err := time.ParseDuration(strings.TrimSpace(rest))
	return err != nil || d <= 0
}
