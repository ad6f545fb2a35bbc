package dashboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jobrun/jobrun"
)

func idStr(id jobrun.ID) string { return strconv.FormatUint(uint64(id), 10) }

func itoa(n int) string { return strconv.Itoa(n) }

// formatSeconds writes a whole number of seconds briefly: "45s", "5 min", "2 h".
func formatSeconds(s int) string {
	switch {
	case s < 60:
		return itoa(s) + "s"
	case s < 3600:
		return itoa(s/60) + " min"
	}
	return itoa(s/3600) + " h"
}

// relative writes t relative to now: "12s ago", "in 3 min", "just now".
func relative(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := t.Sub(now)
	ago := d < 0
	if ago {
		d = -d
	}
	var s string
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		s = fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		s = fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%.1f h", d.Hours())
	default:
		s = fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	}
	if ago {
		return s + " ago"
	}
	return "in " + s
}

// absolute writes t in UTC to the second, "2026-12-01 20:55:02 UTC".
func absolute(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// milli writes t in UTC to the millisecond, for timelines and logs where steps
// come close together.
func milli(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05.000 UTC")
}

// inZone writes t in the named time zone ("" for the process's local one), and in
// UTC if the zone is unknown here.
func inZone(t time.Time, zone string) string {
	loc := time.Local
	if zone != "" {
		var err error
		if loc, err = time.LoadLocation(zone); err != nil {
			return absolute(t)
		}
	}
	return t.In(loc).Format("2006-01-02 15:04:05 MST")
}

// machine writes t for a <time datetime> attribute.
func machine(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// firstLine returns the first line of s, cut to n runes.
func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// indentJSON formats a JSON value for reading; a value that is not JSON is shown as
// it is.
func indentJSON(v json.RawMessage) string {
	if len(v) == 0 {
		return ""
	}
	var b bytes.Buffer
	if err := json.Indent(&b, v, "", "  "); err != nil {
		return string(v)
	}
	return unescapeHTML(b.Bytes())
}

// compactJSON writes a JSON value on one line, for tables.
func compactJSON(v json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return string(v)
	}
	return unescapeHTML(b.Bytes())
}

// unescapeHTML undoes encoding/json's escaping of <, > and & in strings (\u003c, ...),
// which makes args hard to read; the page escapes them again for HTML. An escaped
// backslash followed by "u003c" is text, and stays.
func unescapeHTML(b []byte) string {
	var out strings.Builder
	out.Grow(len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 == len(b) {
			out.WriteByte(b[i])
			continue
		}
		if b[i+1] == 'u' && i+6 <= len(b) {
			switch strings.ToLower(string(b[i+2 : i+6])) {
			case "003c":
				out.WriteByte('<')
				i += 5
				continue
			case "003e":
				out.WriteByte('>')
				i += 5
				continue
			case "0026":
				out.WriteByte('&')
				i += 5
				continue
			}
		}
		out.Write(b[i : i+2]) // any other escape, \\ included, as it is
		i++
	}
	return out.String()
}

// progressBar is what a progress value shows as a bar, if it tells a fraction.
type progressBar struct {
	Value, Max float64
	Label      string
}

// Percent is the bar's fill in whole percent.
func (p *progressBar) Percent() int { return int(math.Round(100 * p.Value / p.Max)) }

// parseProgress reads a fraction from a progress value: a number from 0 to 100
// (a percentage), or an object with a count and a total under one of the usual
// names ({"step": 3, "of": 5}, {"done": 30, "total": 120}, {"current": 2, "max": 4})
// or a "percent". Other values show as JSON only.
func parseProgress(v json.RawMessage) *progressBar {
	if len(v) == 0 {
		return nil
	}
	var n float64
	if json.Unmarshal(v, &n) == nil {
		if n < 0 || n > 100 {
			return nil
		}
		return &progressBar{Value: n, Max: 100, Label: strconv.FormatFloat(n, 'f', -1, 64) + "%"}
	}
	var m map[string]any
	if json.Unmarshal(v, &m) != nil {
		return nil
	}
	num := func(keys ...string) (float64, string, bool) {
		for _, k := range keys {
			if f, ok := m[k].(float64); ok {
				return f, k, true
			}
		}
		return 0, "", false
	}
	if p, _, ok := num("percent", "pct", "percentage"); ok && p >= 0 && p <= 100 {
		return &progressBar{Value: p, Max: 100, Label: strconv.FormatFloat(p, 'f', -1, 64) + "%"}
	}
	cur, _, ok1 := num("step", "done", "current", "completed", "count", "n", "value")
	total, _, ok2 := num("of", "total", "max", "steps", "size")
	if !ok1 || !ok2 || total <= 0 || cur < 0 || cur > total {
		return nil
	}
	return &progressBar{Value: cur, Max: total,
		Label: strconv.FormatFloat(cur, 'f', -1, 64) + " of " + strconv.FormatFloat(total, 'f', -1, 64)}
}

// scheduleZone returns a schedule's time zone: its TimeZone option or its spec's
// CRON_TZ= or TZ= prefix, "" for the process's local zone.
func scheduleZone(s jobrun.ScheduleInfo) string {
	if s.TimeZone != "" {
		return s.TimeZone
	}
	for _, p := range []string{"CRON_TZ=", "TZ="} {
		if rest, ok := strings.CutPrefix(s.Spec, p); ok {
			zone, _, _ := strings.Cut(rest, " ")
			return zone
		}
	}
	return ""
}

// limitText describes a queue's rate limit.
func limitText(qi jobrun.QueueInfo) string {
	lim := float64(qi.Rate)
	if lim <= 0 || math.IsInf(lim, 1) {
		return "unlimited"
	}
	per := strconv.FormatFloat(lim, 'g', 4, 64) + "/s"
	if lim < 1 {
		per = "1 per " + (time.Duration(float64(time.Second) / lim)).Round(time.Second).String()
	}
	return per + ", burst " + itoa(qi.Burst)
}

// seg escapes s as one path segment.
func seg(s string) string { return url.PathEscape(s) }
