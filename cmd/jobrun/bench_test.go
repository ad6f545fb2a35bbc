package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
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

// lineFormat is the JSON line of docs/WORKLOADS.md, keys in its order; the percentiles are
// checked apart. extLineFormat is the same with the extra fields of the sets.
var (
	lineFormat    = regexp.MustCompile(`^` + lineKeys + `\}$`)
	extLineFormat = regexp.MustCompile(`^` + lineKeys + `(,"[a-z0-9_]+":[0-9.e+-]+)+\}$`)
	lineKeys      = `\{"system":"(jobrun|bbolt)","config":"(fsync|nosync)","workload":"[^"]+",` +
		`"n":\d+,"seconds":[0-9.e+-]+,"jobs_per_s":[0-9.e+-]+,"p50_ms":(null|[0-9.e+-]+),"p95_ms":(null|[0-9.e+-]+),"p99_ms":(null|[0-9.e+-]+)`
)

// wantLines are the workload field of every line a run of all workloads prints once per
// run: the workloads and their references.
var wantLines = []string{
	"W1-enqueue-seq", "ref-a-put-per-update", "W2-enqueue-conc", "ref-b16-group-commit",
	"W3-enqueue-bulk", "ref-d-lifecycle-batch", "W4-drain", "W5-latency", "W6-e2e", "ref-b4-group-commit",
	"W7-steps", "ref-s16-step-writes", "W8-fan-out", "W9-run-latency",
}

// w5Late is W5's warning that its producer fell behind its schedule.
var w5Late = regexp.MustCompile(`^jobrun bench: W5: the producer fell up to \S+ behind its 500/s schedule\n$`)

func TestBenchAllWorkloads(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if err := runBench(t.Context(), tinyBench(dir), &stdout, &stderr); err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, &stderr)
	}
	t.Logf("bench output:\n%s", &stdout)
	// W5 warns when its producer falls behind, which a busy machine can make it do.
	if s := stderr.String(); s != "" && !w5Late.MatchString(s) {
		t.Errorf("bench wrote to stderr:\n%s", s)
	} else if s != "" {
		t.Logf("bench warned:\n%s", s)
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
		`W8-fan-out .* - +- +- +-`,
		`W9-run-latency .* - +- +- +\d+\.\d\d / \d+\.\d\d / \d+\.\d\d`,
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

func TestBenchScaleInterrupted(t *testing.T) {
	dir := t.TempDir()
	// Full size: the cancellation comes while the 1M file fills.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	time.AfterFunc(300*time.Millisecond, cancel)
	var stdout, stderr bytes.Buffer
	err := runBench(ctx, []string{"-workloads", "scale", "-nosync", "-runs", "1", "-dir", dir}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "interrupted during the scale set") {
		t.Errorf("bench returned %v, want an interruption during the scale set", err)
	}
	mustBeEmpty(t, dir)
}

func TestBenchUsage(t *testing.T) {
	runCases(t, []cliCase{
		{args: []string{"help"}, code: 0, stdout: "\tbench       measure jobrun"},
		{args: []string{"help", "bench"}, code: 0, stdout: "-workloads list"},
		{args: []string{"bench", "-runs", "0"}, code: 2, errs: "-runs must be at least 1"},
		{args: []string{"bench", "-scale", "0"}, code: 2, errs: "-scale must be at least 1"},
		{args: []string{"bench", "-workloads", "W1,W10"}, code: 2, errs: `unknown workload "W10"`},
		{args: []string{"bench", "-workloads", "scale,sizes"}, code: 2, errs: `unknown workload "sizes" (want W1 to W9, scale, conc or size)`},
		{args: []string{"bench", "-workloads", ""}, code: 2, errs: `unknown workload ""`},
		{args: []string{"bench", "-cpuprofile", "x", "-workloads", "W1,conc"}, code: 2, errs: "-cpuprofile profiles W4 or the scale set"},
		{args: []string{"bench", "now"}, code: 2, errs: `unexpected argument "now"`},
		{args: []string{"bench", "-dir", "/nonexistent/jobrun-bench", "-workloads", "W3"}, code: 1, errs: "jobrun bench: "},
	})
}

// checkLines checks that out is JSON lines in the format of docs/WORKLOADS.md with
// plausible figures, and returns them.
func checkLines(t *testing.T, out, config string) []benchLine {
	t.Helper()
	var lines []benchLine
	for s := range strings.Lines(strings.TrimSpace(out)) {
		s = strings.TrimSuffix(s, "\n")
		if !lineFormat.MatchString(s) && !extLineFormat.MatchString(s) {
			t.Errorf("not a line of the docs/WORKLOADS.md format: %s", s)
			continue
		}
		var l benchLine
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		if isStandard := regexp.MustCompile(`^(W[1-6]|ref-(a|b16|b4|d))-`).MatchString(l.Workload); isStandard && !lineFormat.MatchString(s) {
			t.Errorf("extra fields on a line of W1-W6: %s", s)
		}
		want := config
		if strings.HasSuffix(l.Workload, "-open") || strings.HasSuffix(l.Workload, "-first-claim") {
			want = "fsync" // jobrun.Open always syncs
		}
		if l.Config != want || l.N <= 0 || !(l.Seconds > 0) || !(l.JobsPerS > 0) {
			t.Errorf("implausible line: %s", s)
		}
		if isW7 := l.Workload == "W7-steps" || l.Workload == "ref-s16-step-writes"; isW7 && (l.RunsPerS != l.JobsPerS || !(l.StepsPerS > l.RunsPerS)) {
			t.Errorf("W7 without its runs and steps per second: %s", s)
		}
		if l.Workload == "W8-fan-out" && (l.RunsPerS != l.JobsPerS || !(l.EventsPerS > 0 && l.EventsPerS < l.RunsPerS)) {
			t.Errorf("W8 without its runs and events per second: %s", s)
		}
		isW9 := l.Workload == "W9-run-latency"
		if isW9 && (l.DoneP50ms == nil || !(*l.DoneP50ms > 0 && *l.DoneP50ms <= *l.DoneP95ms && *l.DoneP95ms <= *l.DoneP99ms)) {
			t.Errorf("W9 without its completion percentiles, or out of order: %s", s)
		}
		isW5 := l.Workload == "W5-latency" || isW9
		switch {
		case isW5 && (l.P50ms == nil || l.P95ms == nil || l.P99ms == nil):
			t.Errorf("%s without its percentiles: %s", l.Workload, s)
		case isW5 && !(*l.P50ms > 0 && *l.P50ms <= *l.P95ms && *l.P95ms <= *l.P99ms):
			t.Errorf("%s percentiles out of order: %s", l.Workload, s)
		case !isW5 && (l.P50ms != nil || l.P95ms != nil || l.P99ms != nil):
			t.Errorf("percentiles on a line other than W5's and W9's: %s", s)
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

func TestBenchScale(t *testing.T) {
	dir := t.TempDir()
	profile := filepath.Join(t.TempDir(), "scale.pprof")
	var stdout, stderr bytes.Buffer
	// Sizes / 100: 100 and 10,000 jobs waiting; rounds of 20 jobs, 20 single enqueues,
	// 500 in bulk.
	args := tinyBench(dir, "-nosync", "-workloads", "scale", "-cpuprofile", profile)
	if err := runBench(t.Context(), args, &stdout, &stderr); err != nil {
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
	type want struct {
		n, waiting int
		memory     bool
	}
	wants := map[string]want{}
	for _, size := range []struct {
		label string
		n     int
	}{{"100", 100}, {"10k", 10_000}} {
		p := "scale-" + size.label + "-"
		wants[p+"open"] = want{n: size.n, waiting: size.n}
		wants[p+"first-claim"] = want{n: size.n, waiting: size.n}
		wants[p+"drain"] = want{n: 10 * 20, waiting: size.n}
		wants[p+"enqueue-seq"] = want{n: 20, waiting: size.n}
		wants[p+"enqueue-bulk"] = want{n: 500, waiting: size.n + 20}
		wants[p+"drain-all"] = want{n: size.n + 20, waiting: size.n + 520, memory: true}
	}
	var got []string
	for _, l := range checkLines(t, jsonPart, "nosync") {
		got = append(got, l.Workload)
		w, ok := wants[l.Workload]
		switch {
		case !ok:
			t.Errorf("unexpected line for %s", l.Workload)
		case l.N != w.n || l.Waiting != w.waiting || l.Workers != 100:
			t.Errorf("%s: n %d, waiting %d, workers %d; want %d, %d, 100", l.Workload, l.N, l.Waiting, l.Workers, w.n, w.waiting)
		case w.memory && (l.MemoryPeak == nil || !(l.HeapInuse > 0) || l.Samples < 1):
			t.Errorf("%s: no memory peaks: %+v", l.Workload, l.MemoryPeak)
		case !w.memory && l.MemoryPeak != nil:
			t.Errorf("%s: memory peaks on a line without a drain of every job", l.Workload)
		}
	}
	if len(got) != len(wants) {
		t.Errorf("lines for %v, want one for each of %d measurements", got, len(wants))
	}
	for _, row := range []string{
		`measurement +100 waiting +10k waiting +10k / 100`,
		`enqueue, one at a time \(20\) +µs/job +[\d,.]+ +[\d,.]+ +\d+\.\d\d`,
		`enqueue, batches of 1,000 \(500\) +µs/job +[\d,.]+ +[\d,.]+ +\d+\.\d\d`,
		`claim \+ complete \(200\) +µs/job +[\d,.]+ +[\d,.]+ +\d+\.\d\d`,
		`jobrun.Open +ms +[\d,.]+ +[\d,.]+ +\d+\.\d\d`,
		`Open to first handler start +ms +[\d,.]+ +[\d,.]+ +\d+\.\d\d`,
		`Go heap in use, max +MiB +[\d,.]+ +[\d,.]+ +\d+\.\d\d`,
		`RSS, max +MiB +[\d,.]+ +[\d,.]+ +\d+\.\d\d`,
	} {
		if !regexp.MustCompile(`(?m)^ *` + row + ` *$`).MatchString(table) {
			t.Errorf("the table has no row matching %q:\n%s", row, table)
		}
	}
	if fi, err := os.Stat(profile); err != nil || fi.Size() == 0 {
		t.Errorf("no CPU profile written: %v", err)
	}
	mustBeEmpty(t, dir)
}

func TestBenchConcAndSize(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	// Sizes / 100: drains of 1,000 jobs, 200 single enqueues, 1,000 in bulk.
	args := tinyBench(dir, "-nosync", "-workloads", "size,conc")
	if err := runBench(t.Context(), args, &stdout, &stderr); err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, &stderr)
	}
	t.Logf("bench output:\n%s", &stdout)
	jsonPart, tables, ok := strings.Cut(stdout.String(), "\n\n")
	if !ok {
		t.Fatal("no table after the JSON lines")
	}
	var got []string
	for _, l := range checkLines(t, jsonPart, "nosync") {
		got = append(got, fmt.Sprintf("%s/%d/%d/%d", l.Workload, l.N, l.Workers, l.PayloadBytes))
	}
	want := "conc-1-drain/1000/1/0 conc-4-drain/1000/4/0 conc-16-drain/1000/16/0 conc-64-drain/1000/64/0 " +
		"size-100B-enqueue-seq/200/0/100 size-10KiB-enqueue-seq/200/0/10240 " +
		"size-100B-enqueue-bulk/1000/0/100 size-10KiB-enqueue-bulk/1000/0/10240 " +
		"size-100B-drain/1000/0/100 size-10KiB-drain/1000/0/10240"
	if strings.Join(got, " ") != want {
		t.Errorf("lines (workload/n/workers/payload)\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
	conc, size, ok := strings.Cut(tables, "jobrun bench size:")
	if !ok || !strings.Contains(conc, "jobrun bench conc:") {
		t.Fatalf("want the conc table, then the size table:\n%s", tables)
	}
	for _, row := range []string{
		`workers +n +seconds +jobs/s +runs \(jobs/s\) +jobs/commit +pages/commit +vs 1`,
		`1 +1,000 +\d+\.\d{3} +[\d,]+ +[\d,]+ +\d+\.\d +\d+\.\d +1\.00`,
		`64 +1,000 +\d+\.\d{3} +[\d,]+ +[\d,]+ +\d+\.\d +\d+\.\d +\d+\.\d\d`,
	} {
		if !regexp.MustCompile(`(?m)^ *` + row + ` *$`).MatchString(conc) {
			t.Errorf("the conc table has no row matching %q:\n%s", row, conc)
		}
	}
	for _, row := range []string{
		`enqueue-seq +100 B +200 .* 1\.00`,
		`enqueue-seq +10 KiB +200 .* \d+\.\d\d`,
		`enqueue-bulk +100 B +1,000 .* 1\.00`,
		`drain +10 KiB +1,000 +\d+\.\d{3} +[\d,]+ +\d+\.\d .* \d+\.\d\d`,
	} {
		if !regexp.MustCompile(`(?m)^ *` + row + ` *$`).MatchString(size) {
			t.Errorf("the size table has no row matching %q:\n%s", row, size)
		}
	}
	mustBeEmpty(t, dir)
}

func TestSizedArgs(t *testing.T) {
	for _, size := range []int{0, 100, 10 << 10} {
		for _, i := range []int{0, 7, 12_345, 999_999} {
			b, err := json.Marshal(sizedArgs(size)(i))
			if err != nil {
				t.Fatal(err)
			}
			plain, _ := json.Marshal(newBenchArgs(i))
			if want := max(size, len(plain)); len(b) != want {
				t.Errorf("args of job %d for %d bytes encode to %d bytes, want %d: %.80s", i, size, len(b), want, b)
			}
		}
	}
}

// TestBenchRiver: -river measures River on a throwaway PostgreSQL cluster for W1, W4
// and W6, one JSON line each after jobrun's, and prints its medians beside jobrun's.
func TestBenchRiver(t *testing.T) {
	if _, err := exec.LookPath("pg_ctl"); err != nil {
		if dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl"); len(dirs) == 0 {
			t.Skip("no PostgreSQL server binaries here (Debian: apt-get install postgresql)")
		}
	}
	var stdout, stderr bytes.Buffer
	args := tinyBench(t.TempDir(), "-nosync", "-workloads", "W1,W4,W6", "-river")
	if err := runBench(t.Context(), args, &stdout, &stderr); err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, &stderr)
	}
	var river []string
	for line := range strings.Lines(stdout.String()) {
		var l benchLine
		if strings.HasPrefix(line, `{"system":"river"`) {
			if err := json.Unmarshal([]byte(line), &l); err != nil || l.Config != "postgresql" || l.N == 0 || l.JobsPerS <= 0 {
				t.Errorf("River's line %s: %+v, %v", line, l, err)
			}
			river = append(river, l.Workload)
		}
	}
	if want := "W1-enqueue-seq W4-drain W6-e2e"; strings.Join(river, " ") != want {
		t.Errorf("River's lines for %v, want %s", river, want)
	}
	for _, want := range []string{"River v0.51.2", "W4-drain", "river jobs/s"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, &stdout)
		}
	}
}

// TestBenchPG: -store pg measures every workload on PostgreSQL, one JSON line each
// with config "postgresql", then W4's drain by 1, 2 and 4 runners, and the table
// says so; the references and sets of bbolt are left out.
func TestBenchPG(t *testing.T) {
	if _, err := exec.LookPath("pg_ctl"); err != nil {
		if dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl"); len(dirs) == 0 {
			t.Skip("no PostgreSQL server binaries here (Debian: apt-get install postgresql)")
		}
	}
	var stdout, stderr bytes.Buffer
	args := tinyBench(t.TempDir(), "-store", "pg", "-workloads", "W1,W2,W3,W4,W5,W6,W7,W8,W9,scale")
	if err := runBench(t.Context(), args, &stdout, &stderr); err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, &stderr)
	}
	var got []string
	for line := range strings.Lines(stdout.String()) {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var l benchLine
		if err := json.Unmarshal([]byte(line), &l); err != nil || l.Config != "postgresql" || l.N == 0 || l.JobsPerS <= 0 {
			t.Errorf("line %s: %+v, %v", line, l, err)
		}
		got = append(got, l.Workload)
	}
	want := []string{"W1-enqueue-seq", "W2-enqueue-conc", "W3-enqueue-bulk", "W4-drain", "W5-latency", "W6-e2e", "W7-steps",
		"W8-fan-out", "W9-run-latency", "W4-drain-1runners", "W4-drain-2runners", "W4-drain-4runners"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("lines for\n%v\nwant\n%v", got, want)
	}
	for _, want := range []string{"config postgresql", "by runners sharing one database", "vs 1 runner"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("the output lacks %q:\n%s", want, &stdout)
		}
	}
	if err := runBench(t.Context(), []string{"-store", "pg", "-nosync"}, &stdout, &stderr); err == nil {
		t.Error("-store pg -nosync: no error")
	}
}
