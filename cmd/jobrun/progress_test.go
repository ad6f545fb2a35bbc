package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jobrun/jobrun"
)

func TestTTYLineFitsTerminal(t *testing.T) {
	counts := map[jobrun.State]int{
		jobrun.StateScheduled: 12, jobrun.StateReady: 140, jobrun.StateRunning: 15, jobrun.StateRetrying: 7,
		jobrun.StateDone: 12345, jobrun.StateFailed: 67, jobrun.StateCanceled: 0,
	}
	start := time.Now()
	for _, width := range []int{0, 20, 40, 60, 80, 100, 120, 200} {
		v := &liveView{tty: true, width: width, start: start}
		line := v.ttyLine(start.Add(3*time.Second), 150, 300, counts)
		if width > 0 && utf8.RuneCountInString(line) >= width {
			t.Errorf("width %d: line of %d cells: %q", width, utf8.RuneCountInString(line), line)
		}
		if width == 0 || width >= 120 {
			// Room for everything: the bar, every state but canceled, the elapsed time.
			for _, want := range []string{"█", " 50% 150/300", "scheduled 12", "retrying 7", "done 12345", "failed 67", "3s"} {
				if !strings.Contains(line, want) {
					t.Errorf("width %d: %q lacks %q", width, line, want)
				}
			}
			if strings.Contains(line, "canceled") {
				t.Errorf("width %d: %q shows canceled, which holds no job", width, line)
			}
		}
	}
}

func TestPlainViewPrintsOncePerSecond(t *testing.T) {
	var out bytes.Buffer
	start := time.Now()
	v := newLiveView(&out, start)
	if v.tty {
		t.Fatal("a buffer is not a terminal")
	}
	counts := map[jobrun.State]int{jobrun.StateReady: 1}
	for ms := 100; ms <= 2500; ms += 100 {
		v.update(start.Add(time.Duration(ms)*time.Millisecond), 0, 1, counts)
	}
	v.finish(start.Add(2600*time.Millisecond), 1, 1, map[jobrun.State]int{jobrun.StateDone: 1})
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 || strings.ContainsAny(out.String(), "\r\x1b") {
		t.Fatalf("want 2 updates and the final line, without control characters, got:\n%s", &out)
	}
	if want := "1/1 finished  scheduled=0 ready=0 running=0 retrying=0 done=1 failed=0 canceled=0"; !strings.HasSuffix(lines[2], want) {
		t.Errorf("final line %q, want it to end with %q", lines[2], want)
	}
}
