package dashboard

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// A schedule's spec in words, for the schedules page: "every day at 09:00
// Europe/Paris", "every 15 minutes", "at minute 0 past every 2nd hour". The spec is
// parsed by robfig/cron with jobrun's options, and described from the sets of
// seconds, minutes, hours, days and months it fires on, so names (MON, JAN), ranges,
// steps, lists and descriptors (@daily) all read the same; what cannot be said
// simply (both a day of the month and a weekday, which cron ORs; scattered hours) is
// shown as the spec itself.

// specParser accepts what jobrun.Schedule accepts (see jobrun's schedule.go).
var specParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// starBit is robfig/cron's mark of a field given as * or ?.
const starBit = 1 << 63

var (
	weekdayNames = [7]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
	monthNames   = [13]string{"", "January", "February", "March", "April", "May", "June", "July", "August",
		"September", "October", "November", "December"}
)

// specInWords describes spec, with zone the TimeZone option's zone ("" if none), in
// English; it returns spec itself when it cannot be said simply or does not parse.
func specInWords(spec, zone string) (words string) {
	full := strings.TrimSpace(spec)
	if zone != "" {
		full = "CRON_TZ=" + zone + " " + full
	}
	defer func() {
		if recover() != nil { // robfig/cron panics on some malformed specs
			words = spec
		}
	}()
	sched, err := specParser.Parse(full)
	if err != nil {
		return spec
	}
	switch s := sched.(type) {
	case cron.ConstantDelaySchedule:
		return "every " + delayWords(s.Delay)
	case *cron.SpecSchedule:
		if w, ok := describeSpec(s); ok {
			return w
		}
	}
	return spec
}

// delayWords writes an @every interval (whole seconds, at least one): "hour",
// "15 minutes", "1 hour and 30 minutes".
func delayWords(d time.Duration) string {
	h, m, s := int(d/time.Hour), int(d%time.Hour/time.Minute), int(d%time.Minute/time.Second)
	var parts []string
	for _, p := range []struct {
		n    int
		unit string
	}{{h, "hour"}, {m, "minute"}, {s, "second"}} {
		if p.n == 1 {
			parts = append(parts, "1 "+p.unit)
		} else if p.n > 1 {
			parts = append(parts, itoa(p.n)+" "+p.unit+"s")
		}
	}
	if len(parts) == 1 {
		return strings.TrimPrefix(parts[0], "1 ")
	}
	return joinAnd(parts)
}

// field is the set of values a cron field matches, in ascending order.
type field []int

func values(b uint64, lo, hi int) field {
	var out field
	for v := lo; v <= hi; v++ {
		if b&(1<<uint(v)) != 0 {
			out = append(out, v)
		}
	}
	return out
}

// step returns n if f is 0, n, 2n, ... up to the field's last value hi, with at
// least two values; 0 otherwise.
func (f field) step(hi int) int {
	if len(f) < 2 || f[0] != 0 {
		return 0
	}
	n := f[1]
	for i, v := range f {
		if v != i*n {
			return 0
		}
	}
	if f[len(f)-1]+n <= hi {
		return 0
	}
	return n
}

// span reports whether f is the contiguous run f[0]..f[len(f)-1].
func (f field) span() bool { return len(f) > 0 && f[len(f)-1]-f[0] == len(f)-1 }

func describeSpec(s *cron.SpecSchedule) (string, bool) {
	secs, mins, hours := values(s.Second, 0, 59), values(s.Minute, 0, 59), values(s.Hour, 0, 23)
	doms, months, dows := values(s.Dom, 1, 31), values(s.Month, 1, 12), values(s.Dow, 0, 6)
	domAny, dowAny := s.Dom&starBit != 0 || len(doms) == 31, s.Dow&starBit != 0 || len(dows) == 7
	if s.Dom&starBit == 0 && s.Dow&starBit == 0 && !(domAny && dowAny) {
		return "", false // cron fires on either: too much for one phrase
	}
	zone := ""
	if s.Location != nil && s.Location != time.Local {
		zone = s.Location.String()
	}

	// The time of day: a clock phrase ("at 09:00") goes after the days ("every
	// Monday at 09:00"); an interval phrase before them ("every 15 minutes on Monday").
	var timePhrase string
	clock := false
	allHours := len(hours) == 24
	switch {
	case len(secs) != 1:
		n := secs.step(59)
		if len(mins) != 60 || !allHours || (n == 0 && len(secs) != 60) {
			return "", false
		}
		timePhrase = "every second"
		if n > 1 {
			timePhrase = "every " + itoa(n) + " seconds"
		}
	case len(mins)*len(hours) <= 6 && !allHours:
		var times []string
		for _, h := range hours {
			for _, m := range mins {
				times = append(times, clockTime(h, m, secs[0]))
			}
		}
		timePhrase, clock = "at "+joinAnd(times), true
	case len(mins) == 60 || mins.step(59) > 0:
		if secs[0] != 0 {
			return "", false
		}
		timePhrase = "every minute"
		if n := mins.step(59); n > 1 {
			timePhrase = "every " + itoa(n) + " minutes"
			if 60%n != 0 {
				timePhrase = "every " + ordinal(n) + " minute"
			}
		}
		if !allHours {
			if !hours.span() {
				return "", false
			}
			timePhrase += " from " + clockTime(hours[0], 0, 0) + " to " + clockTime(hours[len(hours)-1], 59, 0)
			clock = true
		}
	default:
		if secs[0] != 0 {
			return "", false
		}
		ms := make([]string, len(mins))
		for i, m := range mins {
			ms[i] = itoa(m)
		}
		timePhrase = "at minute " + joinAnd(ms)
		if len(mins) > 1 {
			timePhrase = "at minutes " + joinAnd(ms)
		}
		switch n := hours.step(23); {
		case allHours:
			timePhrase += " past every hour"
		case n > 0:
			timePhrase += " past every " + ordinal(n) + " hour"
		case hours.span():
			timePhrase += " past every hour from " + itoa(hours[0]) + " through " + itoa(hours[len(hours)-1])
		default:
			return "", false
		}
	}
	if clock && zone != "" {
		timePhrase += " " + zone
	}

	// The days.
	var every, on string // "every Monday" before a clock phrase, "on Monday" after an interval
	monthPart, ok := monthWords(months)
	if !ok {
		return "", false
	}
	switch {
	case domAny && dowAny:
		every = "every day"
		if monthPart != "" {
			every += " in " + monthPart
			on = "in " + monthPart
		}
	case dowAny:
		d, ok := listWords(doms, func(v int) string { return ordinal(v) })
		if !ok {
			return "", false
		}
		of := "of every month"
		if monthPart != "" {
			of = "of " + monthPart
		}
		if len(doms) == 1 && len(months) == 1 {
			every = "every year on " + itoa(doms[0]) + " " + monthNames[months[0]]
			on = "on " + itoa(doms[0]) + " " + monthNames[months[0]]
		} else {
			every = "on the " + d + " " + of
			on = every
		}
	default:
		// Monday first: 1, ..., 6, then Sunday as 7.
		week := make(field, 0, len(dows))
		for _, v := range dows {
			if v > 0 {
				week = append(week, v)
			}
		}
		if dows[0] == 0 {
			week = append(week, 7)
		}
		d, ok := listWords(week, func(v int) string { return weekdayNames[v%7] })
		if !ok {
			return "", false
		}
		every, on = "every "+d, "on "+d
		if monthPart != "" {
			every += " in " + monthPart
			on += " in " + monthPart
		}
	}

	var out string
	if clock && !strings.HasPrefix(timePhrase, "every") {
		out = every + " " + timePhrase
	} else {
		out = timePhrase
		if on != "" {
			out += " " + on
		}
	}
	if zone != "" && !clock && (!allHours || on != "") {
		out += " (" + zone + ")"
	}
	return out, true
}

// monthWords writes the months of a field, "" for all of them.
func monthWords(months field) (string, bool) {
	if len(months) == 12 {
		return "", true
	}
	return listWords(months, func(v int) string { return monthNames[v] })
}

// listWords writes a field's values as "a", "a and b", "a, b and c", or "a to d" for
// a run of three or more; false for more than five values that are not one run.
func listWords(f field, name func(int) string) (string, bool) {
	switch {
	case len(f) >= 3 && f.span():
		return name(f[0]) + " to " + name(f[len(f)-1]), true
	case len(f) > 5:
		return "", false
	}
	names := make([]string, len(f))
	for i, v := range f {
		names[i] = name(v)
	}
	return joinAnd(names), true
}

func joinAnd(items []string) string {
	if len(items) <= 1 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

func clockTime(h, m, s int) string {
	if s != 0 {
		return fmt.Sprintf("%02d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%02d:%02d", h, m)
}

// ordinal writes n as "1st", "2nd", "3rd", "4th", "11th", "21st".
func ordinal(n int) string {
	suffix := "th"
	if n%100 < 11 || n%100 > 13 {
		switch n % 10 {
		case 1:
			suffix = "st"
		case 2:
			suffix = "nd"
		case 3:
			suffix = "rd"
		}
	}
	return itoa(n) + suffix
}
