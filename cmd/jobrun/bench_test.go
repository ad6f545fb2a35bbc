package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// tinyBench are the flags of a bench run small enough for a test: the quick sizes
// divided by 10 again (W1 200 jobs, W4 1,000, W5 50), one run.
func tinyBench(dir string, more ...string) []string {
	return append([]string{"-quick", "-scale", "10", "-runs", "1", "-dir", dir}, more...)
}

// lineFormat is the JSON line of WORKLOADS.md, keys in its order; the percentiles are
// checked apart.
var lineFormat = regexp.MustCompile(`^\{"system":"(jobrun|bbolt)","config":"(fsync|nosync)","workload":"[^"]+",` +
	`"n":\d+,"seconds":[0-9.e+-]+,"jobs_per_s":[0-9.e+-]+,"p50_ms":(null|[0-9.e+-]+),"p95_ms":(null|[0-9.e+-]+),"p99_ms":(null|[0-9.e+-]+)\}$`)

// wantLines are the workload field of every line a run of all workloads prints once per
// run: the workloads and their references.
var wantLines = []string{
	"W1-enqueue-seq", "ref-a-put-per-update", "W2-enqueue-conc", "ref-b16-group-commit",
	"W3-enqueue-bulk", "ref-d-lifecycle-batch", "W4-drain", "W5-latency", "W6-e2e", "ref-b4-group-commit",
}

func TestBenchAllWorkloads(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if err := runBench(t.Context(), tinyBench(dir), &stdout, &stderr); err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, &stderr)
	}
	t.Logf("bench output:\n%s", &stdout)
	if stderr.Len() > 0 {
		t.Errorf("bench wrote to stderr:\n%s", &stderr)
	}

	jsonPart, table, ok := strings.Cut(stdout.String(), "\n\n")
	if !ok {
		t.Fatal("no table after the JSON lines")
	}
	lines := checkLines(t, jsonPart, "fsync")
	var got []string
	for _, l := range lines {
		got = append(got, l.Workload)
	}
	if strings.Join(got, " ") != strings.Join(wantLines, " ") {
		t.Errorf("lines for %v, want %v", got, wantLines)
	}

	// Every workload but W5 shows its reference and ratio; W5 shows its percentiles.
	for _, row := range []string{
		`W1-enqueue-seq .* a +[\d,]+ +\d+\.\d\d +-`,
		`W2-enqueue-conc .* b16 +[\d,]+ +\d+\.\d\d +-`,
		`W3-enqueue-bulk .* d +[\d,]+ +\d+\.\d\d +-`,
		`W4-drain .* d +[\d,]+ +\d+\.\d\d +-`,
		`W5-latency .* - +- +- +\d+\.\d\d / \d+\.\d\d / \d+\.\d\d`,
		`W6-e2e .* b4 +[\d,]+ +\d+\.\d\d +-`,
		`a put-per-update +200 .*\d\.\d`,
		`b16 group-commit +500 .*\d\.\d`,
		`b4 group-commit +500 .*\d\.\d`,
		`d lifecycle-batch +1,000 .*\d\.\d`,
	} {
		if !regexp.MustCompile(`(?m)^ *` + row + ` *$`).MatchString(table) {
			t.Errorf("the table has no row matching %q:\n%s", row, table)
		}
	}
	mustBeEmpty(t, dir)
}

func TestBenchJSONOnlyAndProfile(t *testing.T) {
	dir := t.TempDir()
	profile := filepath.Join(t.TempDir(), "w4.pprof")
	var stdout, stderr bytes.Buffer
	args := tinyBench(dir, "-runs", "2", "-nosync", "-json", "-workloads", "w4", "-cpuprofile", profile)
	if err := runBench(t.Context(), args, &stdout, &stderr); err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, &stderr)
	}
	lines := checkLines(t, stdout.String(), "nosync")
	var got []string
	for _, l := range lines {
		got = append(got, l.Workload)
	}
	// Each run measures W4 and then its reference.
	want := "W4-drain ref-d-lifecycle-batch W4-drain ref-d-lifecycle-batch"
	if strings.Join(got, " ") != want {
		t.Errorf("lines for %v, want %s", got, want)
	}
	if fi, err := os.Stat(profile); err != nil || fi.Size() == 0 {
		t.Errorf("no CPU profile written: %v", err)
	}
	mustBeEmpty(t, dir)
}

func TestBenchInterrupted(t *testing.T) {
	dir := t.TempDir()
	// Full-size W5 paces 5,000 jobs over 10 seconds: the cancellation comes mid-run.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	time.AfterFunc(200*time.Millisecond, cancel)
	var stdout, stderr bytes.Buffer
	err := runBench(ctx, []string{"-workloads", "W5", "-runs", "1", "-dir", dir}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "interrupted during W5-latency") {
		t.Errorf("bench returned %v, want an interruption during W5", err)
	}
	if stdout.Len() > 0 {
		t.Errorf("an interrupted workload printed:\n%s", &stdout)
	}
	mustBeEmpty(t, dir)
}

func TestBenchUsage(t *testing.T) {
	runCases(t, []cliCase{
		{args: []string{"help"}, code: 0, stdout: "bench   measure jobrun"},
		{args: []string{"help", "bench"}, code: 0, stdout: "-workloads list"},
		{args: []string{"bench", "-runs", "0"}, code: 2, errs: "-runs must be at least 1"},
		{args: []string{"bench", "-scale", "0"}, code: 2, errs: "-scale must be at least 1"},
		{args: []string{"bench", "-workloads", "W1,W7"}, code: 2, errs: `unknown workload "W7"`},
		{args: []string{"bench", "-workloads", ""}, code: 2, errs: `unknown workload ""`},
		{args: []string{"bench", "-cpuprofile", "x", "-workloads", "W1"}, code: 2, errs: "-cpuprofile profiles W4"},
		{args: []string{"bench", "now"}, code: 2, errs: `unexpected argument "now"`},
		{args: []string{"bench", "-dir", "/nonexistent/jobrun-bench", "-workloads", "W3"}, code: 1, errs: "jobrun bench: "},
	})
}

// checkLines checks that out is JSON lines in the format of WORKLOADS.md with
// plausible figures, and returns them.
func checkLines(t *testing.T, out, config string) []benchLine {
	t.Helper()
	var lines []benchLine
	for s := range strings.Lines(strings.TrimSpace(out)) {
		s = strings.TrimSuffix(s, "\n")
		if !lineFormat.MatchString(s) {
			t.Errorf("not a line of the WORKLOADS.md format: %s", s)
			continue
		}
		var l benchLine
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		if l.Config != config || l.N <= 0 || !(l.Seconds > 0) || !(l.JobsPerS > 0) {
			t.Errorf("implausible line: %s", s)
		}
		isW5 := l.Workload == "W5-latency"
		switch {
		case isW5 && (l.P50ms == nil || l.P95ms == nil || l.P99ms == nil):
			t.Errorf("W5 without its percentiles: %s", s)
		case isW5 && !(*l.P50ms > 0 && *l.P50ms <= *l.P95ms && *l.P95ms <= *l.P99ms):
			t.Errorf("W5 percentiles out of order: %s", s)
		case !isW5 && (l.P50ms != nil || l.P95ms != nil || l.P99ms != nil):
			t.Errorf("percentiles on a line other than W5's: %s", s)
		}
		lines = append(lines, l)
	}
	return lines
}

// mustBeEmpty checks that the bench removed every temporary file it made in dir.
func mustBeEmpty(t *testing.T, dir string) {
	t.Helper()
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("%s still holds %d entries, such as %s", dir, len(entries), entries[0].Name())
	}
}
