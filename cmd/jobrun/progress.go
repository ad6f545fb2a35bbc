package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jobrun/jobrun"
	"golang.org/x/term"
)

// liveView shows the counts of a working runner. On a terminal it redraws one line in
// place with a progress bar; anywhere else (a pipe, a log file, CI) control sequences
// would be noise, so it prints a plain line per second instead.
type liveView struct {
	w       io.Writer
	tty     bool
	width   int // columns of the terminal, 0 if unknown
	start   time.Time
	printed time.Time // when the last plain line was printed
}

// plainEvery is how often a plain (non-terminal) view prints a line.
const plainEvery = time.Second

func newLiveView(w io.Writer, start time.Time) *liveView {
	v := &liveView{w: w, start: start, printed: start}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		v.tty = true
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil {
			v.width = cols
		}
	}
	return v
}

// update shows the state at now: finished of total jobs, and the counts per state.
// A plain view skips the update unless a second has passed since its last line.
func (v *liveView) update(now time.Time, finished, total int, counts map[jobrun.State]int) {
	if v.tty {
		fmt.Fprint(v.w, "\r\x1b[2K"+v.ttyLine(now, finished, total, counts))
		return
	}
	if now.Sub(v.printed) < plainEvery {
		return
	}
	v.printed = now
	fmt.Fprintln(v.w, v.plainLine(now, finished, total, counts))
}

// finish shows the final state and leaves it on screen.
func (v *liveView) finish(now time.Time, finished, total int, counts map[jobrun.State]int) {
	if v.tty {
		fmt.Fprintln(v.w, "\r\x1b[2K"+v.ttyLine(now, finished, total, counts))
		return
	}
	fmt.Fprintln(v.w, v.plainLine(now, finished, total, counts))
}

// note prints msg on a line of its own; on a terminal, over the live line, which the
// next update draws again below it.
func (v *liveView) note(msg string) {
	if v.tty {
		fmt.Fprint(v.w, "\r\x1b[2K")
	}
	fmt.Fprintln(v.w, msg)
}

// interrupt ends the live line so that what follows starts on a line of its own.
func (v *liveView) interrupt() {
	if v.tty {
		fmt.Fprintln(v.w)
	}
}

// ttyLayouts are the ways to draw the terminal line, from the most complete to the
// most compact: a line longer than the terminal wraps, and "\r" then redraws only its
// last row, so the first layout that fits is used.
var ttyLayouts = []struct {
	bar        int  // width of the progress bar, in cells; 0 for none
	zeroStates bool // show the states that hold no job, so that the line does not jump
	elapsed    bool
}{
	{24, true, true},
	{12, true, true},
	{12, false, true},
	{12, false, false},
	{0, false, false},
}

// ttyLine draws the terminal line in the first layout that fits the terminal.
func (v *liveView) ttyLine(now time.Time, finished, total int, counts map[jobrun.State]int) string {
	var line string
	for _, l := range ttyLayouts {
		line = drawLine(l.bar, l.zeroStates, l.elapsed, now.Sub(v.start), finished, total, counts)
		if v.width == 0 || utf8.RuneCountInString(line) < v.width {
			return line
		}
	}
	// Even the most compact layout is too long: cut it, keeping the last column free
	// so that the cursor does not wrap.
	return string([]rune(line)[:max(v.width-1, 0)])
}

// drawLine draws the progress bar, the counts by state and the elapsed time, as
// "[████░░░░]  50% 10/20 │ ready 4 running 6 │ done 9 failed 1 │ 1.2s".
func drawLine(barWidth int, zeroStates, elapsed bool, d time.Duration, finished, total int, counts map[jobrun.State]int) string {
	frac := 1.0
	if total > 0 {
		frac = min(float64(finished)/float64(total), 1)
	}
	filled := int(frac * float64(barWidth))
	var b strings.Builder
	if barWidth > 0 {
		fmt.Fprintf(&b, "[%s%s] ", strings.Repeat("█", filled), strings.Repeat("░", barWidth-filled))
	}
	fmt.Fprintf(&b, "%3.0f%% %d/%d", 100*frac, finished, total)
	// Pending states, then final ones, each group after a separator if it shows anything.
	for _, group := range [][]jobrun.State{pendingStates, finalStates} {
		sep := " │"
		for _, s := range group {
			// canceled only happens on request: it is hidden until it does.
			if counts[s] == 0 && (!zeroStates || s == jobrun.StateCanceled) {
				continue
			}
			fmt.Fprintf(&b, "%s %s %d", sep, s, counts[s])
			sep = ""
		}
	}
	if elapsed {
		fmt.Fprintf(&b, " │ %s", formatDuration(d))
	}
	return b.String()
}

func (v *liveView) plainLine(now time.Time, finished, total int, counts map[jobrun.State]int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%6s  %d/%d finished ", formatDuration(now.Sub(v.start)), finished, total)
	for _, s := range jobrun.States {
		fmt.Fprintf(&b, " %s=%d", s, counts[s])
	}
	return b.String()
}

// formatDuration rounds d for people: to the millisecond under a second, 10ms steps
// under a minute, seconds above.
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// formatCounts lists the non-zero counts of the given states, as "done 12, failed 3".
func formatCounts(counts map[jobrun.State]int, states []jobrun.State) string {
	var parts []string
	for _, s := range states {
		if n := counts[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s, n))
		}
	}
	return strings.Join(parts, ", ")
}

// pendingStates are the states of a job that has not finished: it runs again when a
// runner with its queue runs.
var pendingStates = []jobrun.State{jobrun.StateScheduled, jobrun.StateReady, jobrun.StateRunning, jobrun.StateRetrying}

// finalStates are the states a job does not leave.
var finalStates = []jobrun.State{jobrun.StateDone, jobrun.StateFailed, jobrun.StateCanceled}

// pending sums the counts of the jobs that have not reached a final state.
func pending(counts map[jobrun.State]int) int {
	n := 0
	for _, s := range pendingStates {
		n += counts[s]
	}
	return n
}

// finished sums the counts of the jobs in a final state.
func finished(counts map[jobrun.State]int) int {
	n := 0
	for _, s := range finalStates {
		n += counts[s]
	}
	return n
}
