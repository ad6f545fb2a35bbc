package dashboard

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The history charts as inline SVG, laid out here and drawn by the "history"
// template: one column per bucket over a time axis, with bars stacked from the
// bottom (throughput) or lines (queue size, wait), a value axis from 0 to a round
// top, and a title per column that the browser shows on hover. Times are written
// in UTC, and dashboard.js rewrites them in the browser's zone (data-local), as
// the pages' other times. Geometry is in the SVG's units; the SVG scales evenly to
// its box, so its text stays upright and in proportion.

// The chart's box, and the plot inside it: room for the value labels on the left
// and the time labels below.
const (
	hcWidth, hcHeight = 420, 148
	hcLeft, hcRight   = 40.0, 408.0
	hcTop, hcBottom   = 8.0, 124.0
	hcTickY           = 140.0 // the time labels' baseline
	hcCharW           = 5.6   // about the width of one character of a label
)

// timeChart is one history chart.
type timeChart struct {
	ID, Title                string
	Label                    string // its accessible name: what it shows, over what, its totals
	Width, Height            int
	Left, Right, Top, Bottom float64
	PlotH                    float64
	YLabelX, TickY, TickEnd  float64 // where the value labels end, the time labels' baseline, the end of their marks
	XTicks                   []xTick
	YTicks                   []yTick
	Columns                  []column
	Paths                    []seriesPath
	Dots                     []seriesDot
	Legend                   []legendKey
}

// xTick is a label of the time axis.
type xTick struct {
	X      float64
	At     time.Time
	Format string // how dashboard.js writes it: "hm" (15:04) or "dhm" (Mon 2 15:04)
	Label  string // in UTC, for a browser without script
}

// yTick is a label of the value axis, with its grid line.
type yTick struct {
	Y     float64
	Label string
}

// column is one bucket: the area that shows its title on hover, and its bars.
type column struct {
	X, W       float64 // the whole column
	BarX, BarW float64
	At         time.Time
	Title      string // its time in UTC and Suffix, for a browser without script
	Suffix     string // what follows the time: ": 12 done, 1 retried, ..."
	Rects      []barRect
}

type barRect struct {
	Y, H  float64
	Class string
}

// seriesPath is a line of values, M and L commands, broken where a value is unknown.
type seriesPath struct {
	Class, D string
}

// seriesDot marks a value with no known neighbor, which a line does not show.
type seriesDot struct {
	Class string
	X, Y  float64
}

// legendKey is a series with its value over the whole range.
type legendKey struct {
	Class, Label, Value string
	Line                bool // a line's key, not a bar's
}

// timeAxis is the time axis of a range's buckets, shared by its three charts.
type timeAxis struct {
	hr     historyRange
	starts []time.Time
	colW   float64
	ticks  []xTick
}

func newTimeAxis(bs []bucket, hr historyRange) *timeAxis {
	a := &timeAxis{hr: hr}
	if len(bs) == 0 {
		return a
	}
	for _, b := range bs {
		a.starts = append(a.starts, b.Start)
	}
	a.colW = (hcRight - hcLeft) / float64(len(bs))
	start, end := bs[0].Start, bs[len(bs)-1].Start.Add(hr.Step)
	t := start.Truncate(hr.tick)
	if t.Before(start) {
		t = t.Add(hr.tick)
	}
	for ; t.Before(end); t = t.Add(hr.tick) {
		x := hcLeft + (hcRight-hcLeft)*float64(t.Sub(start))/float64(end.Sub(start))
		label := stamp(t, hr.ticks)
		if half := float64(len(label)) * hcCharW / 2; x-half < 0 || x+half > hcWidth {
			continue // it would not fit in the box
		}
		a.ticks = append(a.ticks, xTick{X: round1(x), At: t, Format: hr.ticks, Label: label})
	}
	return a
}

// chart returns an empty chart on the axis.
func (a *timeAxis) chart(id, title, label string) *timeChart {
	c := &timeChart{ID: id, Title: title, Label: label, Width: hcWidth, Height: hcHeight,
		Left: hcLeft, Right: hcRight, Top: hcTop, Bottom: hcBottom, PlotH: hcBottom - hcTop,
		YLabelX: hcLeft - 4, TickY: hcTickY, TickEnd: hcBottom + 4, XTicks: a.ticks}
	gap := 0.0
	if a.colW >= 3 {
		gap = 1
	}
	for i, at := range a.starts {
		x := hcLeft + float64(i)*a.colW
		c.Columns = append(c.Columns, column{X: round1(x), W: round1(a.colW), BarX: round1(x + gap/2),
			BarW: round1(a.colW - gap), At: at})
	}
	return c
}

// center is the middle of column i.
func (a *timeAxis) center(i int) float64 { return hcLeft + (float64(i)+0.5)*a.colW }

// titles sets each column's title: its time, and what suffix says of bucket i.
func (c *timeChart) titles(suffix func(i int) string) {
	for i := range c.Columns {
		col := &c.Columns[i]
		col.Suffix = suffix(i)
		col.Title = stamp(col.At, "dhm") + " UTC" + col.Suffix
	}
}

// scale sets the value axis for values up to top, labeled by format, and returns
// the y of a value.
func (c *timeChart) scale(top float64, format func(float64) string) func(float64) float64 {
	y := func(v float64) float64 { return round1(hcBottom - (hcBottom-hcTop)*v/top) }
	c.YTicks = []yTick{{Y: y(0), Label: "0"}, {Y: y(top / 2), Label: format(top / 2)}, {Y: y(top), Label: format(top)}}
	if format(top/2) == "" {
		c.YTicks = slices.Delete(c.YTicks, 1, 2) // no label between whole numbers
	}
	return y
}

// line adds the line of values (ok false where unknown) through the columns'
// middles, and a dot for a value alone between unknown ones.
func (c *timeChart) line(a *timeAxis, class string, values []float64, ok []bool, y func(float64) float64) {
	var d strings.Builder
	for i, v := range values {
		if !ok[i] {
			continue
		}
		x, yv := round1(a.center(i)), y(v)
		prev, next := i > 0 && ok[i-1], i+1 < len(values) && ok[i+1]
		switch {
		case !prev && !next:
			c.Dots = append(c.Dots, seriesDot{Class: class, X: x, Y: yv})
			continue
		case !prev:
			d.WriteString("M")
		default:
			d.WriteString(" L")
		}
		d.WriteString(num(x) + " " + num(yv))
	}
	if d.Len() > 0 {
		c.Paths = append(c.Paths, seriesPath{Class: class, D: d.String()})
	}
}

// throughputChart stacks the attempts that ended in each bucket, done, retried,
// failed and canceled from the bottom up, with the jobs enqueued as a line.
func throughputChart(bs []bucket, a *timeAxis, what string) *timeChart {
	var sum bucket
	top := 0
	for _, b := range bs {
		sum.Enqueued += b.Enqueued
		sum.Done += b.Done
		sum.Retried += b.Retried
		sum.Failed += b.Failed
		sum.Canceled += b.Canceled
		top = max(top, b.finished(), b.Enqueued)
	}
	c := a.chart("history-throughput", "Throughput", "Throughput of "+what+", "+a.hr.Label+" in buckets of "+a.hr.Each+": "+
		itoa(sum.Done)+" done, "+itoa(sum.Retried)+" retried, "+itoa(sum.Failed)+" failed, "+
		itoa(sum.Canceled)+" canceled, "+itoa(sum.Enqueued)+" enqueued")
	y := c.scale(niceCount(top), countLabel)
	for i, b := range bs {
		base := 0
		for _, part := range []struct {
			n     int
			class string
		}{{b.Done, "done"}, {b.Retried, "retrying"}, {b.Failed, "failed"}, {b.Canceled, "canceled"}} {
			if part.n == 0 {
				continue
			}
			y0, y1 := y(float64(base)), y(float64(base+part.n))
			c.Columns[i].Rects = append(c.Columns[i].Rects, barRect{Y: y1, H: round1(max(y0-y1, 0.8)), Class: part.class})
			base += part.n
		}
	}
	c.titles(func(i int) string {
		b := bs[i]
		if b.finished()+b.Enqueued == 0 {
			return ": no jobs ended or enqueued"
		}
		return ": " + itoa(b.Done) + " done, " + itoa(b.Retried) + " retried, " + itoa(b.Failed) + " failed, " +
			itoa(b.Canceled) + " canceled; " + itoa(b.Enqueued) + " enqueued"
	})
	if sum.Enqueued > 0 {
		values, ok := make([]float64, len(bs)), make([]bool, len(bs))
		for i, b := range bs {
			values[i], ok[i] = float64(b.Enqueued), true
		}
		c.line(a, "enqueued", values, ok, y)
	}
	c.Legend = []legendKey{
		{Class: "done", Label: "done", Value: itoa(sum.Done)},
		{Class: "retrying", Label: "retried", Value: itoa(sum.Retried)},
		{Class: "failed", Label: "failed", Value: itoa(sum.Failed)},
		{Class: "canceled", Label: "canceled", Value: itoa(sum.Canceled)},
		{Class: "enqueued", Label: "enqueued", Value: itoa(sum.Enqueued), Line: true},
	}
	return c
}

// sizeChart draws the jobs ready at each bucket's end as steps: a level across each
// bucket, the size carried forward where a bucket has no point (see bucket), and
// no line before the first point.
func sizeChart(bs []bucket, a *timeAxis, what string) *timeChart {
	top, latest, known := 0, 0, false
	for _, b := range bs {
		if b.Known {
			top, latest, known = max(top, b.Ready), b.Ready, true
		}
	}
	value := "unknown"
	if known {
		value = "latest " + itoa(latest) + ", peak " + itoa(top)
	}
	c := a.chart("history-size", "Queue size", "Queue size (ready jobs) of "+what+", "+a.hr.Label+": "+value)
	y := c.scale(niceCount(top), countLabel)
	var d strings.Builder
	for i, b := range bs {
		if !b.Known {
			continue
		}
		x0, x1, yv := num(round1(hcLeft+float64(i)*a.colW)), num(round1(hcLeft+float64(i+1)*a.colW)), num(y(float64(b.Ready)))
		if i == 0 || !bs[i-1].Known {
			d.WriteString("M" + x0 + " " + yv)
		} else {
			d.WriteString(" V" + yv)
		}
		d.WriteString(" H" + x1)
	}
	if d.Len() > 0 {
		c.Paths = append(c.Paths, seriesPath{Class: "ready", D: d.String()})
	}
	c.titles(func(i int) string {
		if !bs[i].Known {
			return ": size unknown"
		}
		return ": " + itoa(bs[i].Ready) + " ready"
	})
	c.Legend = []legendKey{{Class: "ready", Label: "ready", Value: value, Line: true}}
	return c
}

// waitChart draws the mean and the longest wait, from due to start, of the
// attempts that started in each bucket; a bucket where none started has neither.
func waitChart(bs []bucket, a *timeAxis, what string) *timeChart {
	var sum bucket
	means, maxes, ok := make([]float64, len(bs)), make([]float64, len(bs)), make([]bool, len(bs))
	for i, b := range bs {
		sum.Started += b.Started
		sum.WaitTotal += b.WaitTotal
		sum.WaitMax = max(sum.WaitMax, b.WaitMax)
		if mean, started := b.meanWait(); started {
			means[i], maxes[i], ok[i] = mean.Seconds(), b.WaitMax.Seconds(), true
		}
	}
	mean, maxWait := "none started", "none started"
	if m, started := sum.meanWait(); started {
		mean, maxWait = formatDuration(m), formatDuration(sum.WaitMax)
	}
	c := a.chart("history-wait", "Wait time", "Wait from due to start in "+what+", "+a.hr.Label+" in buckets of "+a.hr.Each+
		": mean "+mean+", longest "+maxWait+" over "+itoa(sum.Started)+" starts")
	top := niceDuration(sum.WaitMax)
	y := c.scale(top.Seconds(), func(s float64) string { return shortDuration(time.Duration(s * float64(time.Second))) })
	c.line(a, "max", maxes, ok, y)
	c.line(a, "mean", means, ok, y)
	c.titles(func(i int) string {
		b := bs[i]
		m, started := b.meanWait()
		if !started {
			return ": none started"
		}
		return ": mean " + formatDuration(m) + ", longest " + formatDuration(b.WaitMax) + " (" + itoa(b.Started) + " started)"
	})
	c.Legend = []legendKey{
		{Class: "mean", Label: "mean", Value: mean, Line: true},
		{Class: "max", Label: "longest", Value: maxWait, Line: true},
	}
	return c
}

// niceCount is the top of a scale for counts up to n: 1, 2 or 5 times a power of ten.
func niceCount(n int) float64 {
	for p := 1; ; p *= 10 {
		for _, m := range []int{1, 2, 5} {
			if m*p >= n || p > math.MaxInt/100 {
				return float64(m * p)
			}
		}
	}
}

// countLabel labels a count on a scale: whole numbers only, thousands as "k".
func countLabel(v float64) string {
	switch {
	case v != math.Trunc(v):
		return ""
	case v >= 10_000:
		return strconv.FormatFloat(v/1000, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// niceDurations are the tops of a scale of waits.
var niceDurations = []time.Duration{
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 20 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 4 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
}

// niceDuration is the top of a scale for waits up to d: one of niceDurations, or
// a whole number of days.
func niceDuration(d time.Duration) time.Duration {
	for _, n := range niceDurations {
		if n >= d {
			return n
		}
	}
	day := 24 * time.Hour
	return (d + day - 1) / day * day
}

// shortDuration writes a round duration briefly: "500ms", "2s", "1m", "1h30m".
func shortDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// stamp writes t in UTC as dashboard.js writes it in the browser's zone: "hm"
// 15:04, "dhm" Mon 2 15:04.
func stamp(t time.Time, format string) string {
	if format == "hm" {
		return t.UTC().Format("15:04")
	}
	return t.UTC().Format("Mon 2 15:04")
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
