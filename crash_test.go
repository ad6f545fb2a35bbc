package jobrun_test

// TestCrashRecovery checks jobrun's durability promise with real SIGKILLs: every job
// whose Enqueue returned success reaches a final state after restarts, and none is lost.
//
// It uses the re-exec pattern. The test binary starts itself again as a child process
// (JOBRUN_CRASH_CHILD=1) that opens the runner on a file, enqueues jobs from several
// producers and runs them, and is killed with SIGKILL at a random moment once it has
// made progress. After the kill cycles a last child runs in drain mode until every job
// in the file is final. The parent then opens the file itself and compares it with a
// ledger the children kept outside bbolt: an append-only file with one line per event,
// each written with a single write syscall, so a kill can at worst tear the line being
// written, never an earlier one:
//
//	E <id> <token>            Enqueue, EnqueueMany or EnqueueTx returned success
//	R <id> <token>            the EnqueueTx transaction was rolled back on purpose
//	S <id> <token> <attempt>  a handler started
//	D <id> <token> <attempt>  a handler is about to return nil
//
// The token is unique per enqueued job and travels in its args, so ledger lines can be
// matched to stored jobs even if an ID were ever reused.
//
// Environment: JOBRUN_CRASH_CYCLES sets the number of kill cycles (default 20, 3 with
// -short); JOBRUN_CRASH_DIR keeps the database and ledger in that directory instead of
// a temporary one, for inspection after a failure.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/jobrun/jobrun"
)

const (
	crashRecEnvChild  = "JOBRUN_CRASH_CHILD"  // "1" in a child process
	crashRecEnvDB     = "JOBRUN_CRASH_DB"     // the bbolt file
	crashRecEnvLedger = "JOBRUN_CRASH_LEDGER" // the append-only ledger
	crashRecEnvMode   = "JOBRUN_CRASH_MODE"   // "crash" (default) or "drain"
	crashRecEnvCycle  = "JOBRUN_CRASH_CYCLE"  // the cycle number, part of every token
	crashRecEnvCycles = "JOBRUN_CRASH_CYCLES" // parent: number of kill cycles
	crashRecEnvDir    = "JOBRUN_CRASH_DIR"    // parent: keep the files here

	// What one crash-mode child enqueues before it only runs jobs (if it lives that long).
	crashRecSingleProducers = 3  // goroutines calling Enqueue
	crashRecSinglePerProd   = 30 // Enqueue calls each
	crashRecBatches         = 3  // EnqueueMany calls
	crashRecBatchSize       = 20
	crashRecTxs             = 20 // db.Update transactions calling EnqueueTx; every 5th rolls back

	crashRecMaxKillDelay  = 30 * time.Millisecond // random wait between progress and SIGKILL
	crashRecProgressLimit = time.Minute           // a child must make progress within this
	crashRecDrainLimit    = 2 * time.Minute       // the drain child must finish within this
	crashRecDrainStall    = 10 * time.Second      // and its counts may not stand still longer
	crashRecChildFatal    = "CRASH-CHILD-FATAL:"  // marks an unexpected error in a crash-mode child
	crashRecMaxReports    = 10                    // problems of one kind shown in full
)

// crashRecArgs is the one job kind of the test. The handler fails attempts 1..Fail
// (with a panic instead of an error if Panic) and succeeds on attempt Fail+1: its
// behaviour depends only on the attempt number the runner stores, so it survives
// crashes.
type crashRecArgs struct {
	Token string
	Fail  int
	Panic bool
}

func (crashRecArgs) Kind() string { return "crash-recovery" }

// crashRecAppBucket is the application's own bucket: EnqueueTx's transactions write the
// job's token there too, so the job and the application's write commit together.
var crashRecAppBucket = []byte("crashtest-app")

var errCrashRecRollback = errors.New("crashtest: planned rollback")

func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashRecEnvChild) == "1" {
		crashRecChild(t)
		return
	}
	switch runtime.GOOS {
	case "windows", "plan9", "js", "wasip1":
		t.Skipf("crash test needs Unix processes and SIGKILL; GOOS=%s", runtime.GOOS)
	}
	cycles := 20
	if testing.Short() {
		cycles = 3
	}
	if s := os.Getenv(crashRecEnvCycles); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a number of cycles >= 1", crashRecEnvCycles, s)
		}
		cycles = n
	}
	dir := os.Getenv(crashRecEnvDir)
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(dir, "jobs.db")
	ledgerPath := filepath.Join(dir, "ledger.txt")
	for _, p := range []string{dbPath, ledgerPath} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s exists: the crash test needs a fresh directory", p)
		}
	}

	start := time.Now()
	torn := map[int64]bool{} // where kills tore the last ledger line: the offsets of the newlines the parent added
	var segments []int64     // the ledger's size when each child started: where its lines begin
	for c := 1; c <= cycles; c++ {
		segments = append(segments, crashRecFileSize(t, ledgerPath))
		if at, ok := crashRecKillCycle(t, c, dbPath, ledgerPath); ok {
			torn[at] = true
		}
	}
	segments = append(segments, crashRecFileSize(t, ledgerPath))
	crashRecDrain(t, cycles+1, dbPath, ledgerPath)
	childTime := time.Since(start)

	problems := &crashRecProblems{t: t, n: map[string]int{}}
	defer problems.summarize()
	ledger := crashRecParseLedger(problems, ledgerPath, torn, segments)
	sum := crashRecVerify(problems, dbPath, ledger, torn)
	t.Logf("crash recovery: %d kill cycles + drain in %v; %d jobs acknowledged (%d more committed without an ack line), "+
		"%d stored, %d rolled-back EnqueueTx; lost %d, not final %d, duplicate executions %d (max %d successes of one job), "+
		"failed %d (%d by the recovery limit), torn ledger lines %d, handler starts %d",
		cycles, childTime.Round(time.Millisecond), sum.acked, sum.unacked, sum.stored, len(ledger.rolledBack),
		sum.lost, sum.notFinal, sum.duplicates, sum.maxDone, sum.failed, sum.recoveryFailed, len(torn), ledger.starts)
}

// The parent.

// crashRecChildCmd prepares a child process in the given mode.
func crashRecChildCmd(ctx context.Context, mode string, cycle int, dbPath, ledgerPath string) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashRecovery$", "-test.v")
	cmd.Env = append(os.Environ(),
		crashRecEnvChild+"=1",
		crashRecEnvMode+"="+mode,
		crashRecEnvCycle+"="+strconv.Itoa(cycle),
		crashRecEnvDB+"="+dbPath,
		crashRecEnvLedger+"="+ledgerPath,
	)
	out := new(bytes.Buffer) // one writer for both: exec serializes the writes
	cmd.Stdout, cmd.Stderr = out, out
	return cmd, out
}

func crashRecFileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// crashRecKillCycle starts a crash-mode child, waits until the ledger grows, waits a
// random 0-30 ms more and kills it with SIGKILL. If the kill tore the last ledger line,
// it ends that line with a newline, so the next child's lines start on a line of their
// own, and returns the newline's offset and true.
func crashRecKillCycle(t *testing.T, cycle int, dbPath, ledgerPath string) (tornAt int64, torn bool) {
	t.Helper()
	before := crashRecFileSize(t, ledgerPath)
	cmd, out := crashRecChildCmd(context.Background(), "crash", cycle, dbPath, ledgerPath)
	if err := cmd.Start(); err != nil {
		t.Fatalf("cycle %d: start child: %v", cycle, err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	// Wait for progress: the ledger grows once the child has opened the file (and
	// recovered it) and acknowledged an enqueue or started a job. Polling the file is
	// the only view the parent has of the child.
	deadline := time.Now().Add(crashRecProgressLimit)
	tick := time.NewTicker(2 * time.Millisecond)
	for crashRecFileSize(t, ledgerPath) <= before {
		select {
		case err := <-waited:
			tick.Stop()
			t.Fatalf("cycle %d: child exited before making progress (%v); output:\n%s", cycle, err, out)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			tick.Stop()
			cmd.Process.Kill()
			<-waited
			t.Fatalf("cycle %d: child made no progress in %v (hang at open or recovery?); output:\n%s",
				cycle, crashRecProgressLimit, out)
		}
	}
	tick.Stop()

	// Kill at a random point after progress: mid-enqueue, mid-handler, mid-commit.
	time.Sleep(rand.N(crashRecMaxKillDelay + 1))
	cmd.Process.Kill() // SIGKILL on Unix; an error means the child already exited, checked below
	<-waited
	if ps := cmd.ProcessState; ps.Exited() {
		t.Fatalf("cycle %d: child exited on its own with status %d instead of being killed; output:\n%s",
			cycle, ps.ExitCode(), out)
	}
	if bytes.Contains(out.Bytes(), []byte("DATA RACE")) || bytes.Contains(out.Bytes(), []byte(crashRecChildFatal)) {
		t.Fatalf("cycle %d: child reported a problem; output:\n%s", cycle, out)
	}

	// Repair a torn last line, so that it stays a line of its own.
	b, err := os.ReadFile(ledgerPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		f, err := os.OpenFile(ledgerPath, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.Write([]byte("\n"))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("cycle %d: the kill tore the last ledger line", cycle)
		return int64(len(b)), true
	}
	return 0, false
}

// crashRecDrain runs the final child, which recovers the file, runs every job to a final
// state, checks the file with bbolt and exits 0. A failure is reported but the test goes
// on to compare the file with the ledger, which says which jobs are at fault.
func crashRecDrain(t *testing.T, cycle int, dbPath, ledgerPath string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), crashRecDrainLimit)
	defer cancel()
	cmd, out := crashRecChildCmd(ctx, "drain", cycle, dbPath, ledgerPath)
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	switch {
	case ctx.Err() != nil:
		t.Errorf("drain child did not finish in %v (hang at open, or jobs that never become final?); output:\n%s",
			crashRecDrainLimit, out)
	case err != nil || bytes.Contains(out.Bytes(), []byte("DATA RACE")):
		t.Errorf("drain child failed (%v); output:\n%s", err, out)
	}
	for line := range strings.SplitSeq(out.String(), "\n") {
		if _, msg, ok := strings.Cut(line, "drain: "); ok {
			t.Logf("drain child: %s (took %v)", msg, time.Since(start).Round(time.Millisecond))
		}
	}
}

// crashRecProblems reports what the verification finds, the first few problems of each
// kind in full, so that a systematic bug does not drown the log.
type crashRecProblems struct {
	t *testing.T
	n map[string]int
}

func (p *crashRecProblems) add(what, format string, args ...any) {
	p.t.Helper()
	p.n[what]++
	if p.n[what] <= crashRecMaxReports {
		p.t.Errorf("%s: %s", what, fmt.Sprintf(format, args...))
	} else {
		p.t.Fail()
	}
}

func (p *crashRecProblems) summarize() {
	for _, what := range slices.Sorted(maps.Keys(p.n)) {
		if n := p.n[what]; n > crashRecMaxReports {
			p.t.Errorf("%s: %d problems in all, %d more not shown", what, n, n-crashRecMaxReports)
		}
	}
}

// crashRecEvent is one line of the ledger.
type crashRecEvent struct {
	kind    byte
	id      jobrun.ID
	token   string
	attempt int
	line    int
	child   int // the cycle of the child that wrote it; cycles+1 is the drain
}

func (e crashRecEvent) String() string {
	if e.attempt > 0 {
		return fmt.Sprintf("line %d (child %d): %c %d %s %d", e.line, e.child, e.kind, e.id, e.token, e.attempt)
	}
	return fmt.Sprintf("line %d (child %d): %c %d %s", e.line, e.child, e.kind, e.id, e.token)
}

type crashRecLedger struct {
	acked       map[jobrun.ID][]crashRecEvent // E lines by id
	ackedTokens map[string]jobrun.ID
	rolledBack  map[string]crashRecEvent // R lines by token
	byID        map[jobrun.ID][]crashRecEvent
	byToken     map[string][]crashRecEvent
	dones       map[jobrun.ID][]crashRecEvent
	starts      int
	maxID       jobrun.ID
}

// crashRecParseLedger reads the ledger, skipping the lines that kills tore (torn holds
// the offsets of the newlines that end them); any other malformed line is an error.
// segments gives where each child's lines begin; no child may start one
// attempt of a job twice, or succeed twice with one job: a job runs at most once per
// claim, and a child is killed, never stopped, so a claim ends only with a commit.
func crashRecParseLedger(p *crashRecProblems, path string, torn map[int64]bool, segments []int64) *crashRecLedger {
	t := p.t
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l := &crashRecLedger{
		acked: map[jobrun.ID][]crashRecEvent{}, ackedTokens: map[string]jobrun.ID{},
		rolledBack: map[string]crashRecEvent{}, byID: map[jobrun.ID][]crashRecEvent{},
		byToken: map[string][]crashRecEvent{}, dones: map[jobrun.ID][]crashRecEvent{},
	}
	type runKey struct {
		child   int
		kind    byte
		id      jobrun.ID
		attempt int
	}
	runs := map[runKey]crashRecEvent{}
	var malformed []string
	var offset int64
	child := 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		for child < len(segments) && segments[child] <= offset {
			child++
		}
		end := offset + int64(len(sc.Bytes())) // where its newline is
		offset = end + 1
		if torn[end] {
			continue // even if what is left of it parses: its token may be cut short
		}
		e, ok := crashRecParseLine(sc.Text())
		if !ok {
			malformed = append(malformed, fmt.Sprintf("line %d (child %d): %q", n, child, sc.Text()))
			continue
		}
		e.line, e.child = n, child
		if e.kind == 'S' || e.kind == 'D' {
			k := runKey{child, e.kind, e.id, e.attempt}
			if e.kind == 'D' {
				k.attempt = 0
			}
			if prev, dup := runs[k]; dup {
				p.add("RAN TWICE IN ONE PROCESS", "job %d:\n  %v\n  %v", e.id, prev, e)
			}
			runs[k] = e
		}
		l.byID[e.id] = append(l.byID[e.id], e)
		l.byToken[e.token] = append(l.byToken[e.token], e)
		switch e.kind {
		case 'E':
			l.acked[e.id] = append(l.acked[e.id], e)
			if prev, dup := l.ackedTokens[e.token]; dup {
				p.add("ACKNOWLEDGED TWICE", "token %s acknowledged as job %d and as job %d", e.token, prev, e.id)
			}
			l.ackedTokens[e.token] = e.id
		case 'R':
			l.rolledBack[e.token] = e
			continue // its ID was never committed and is reused by a later job
		case 'S':
			l.starts++
		case 'D':
			l.dones[e.id] = append(l.dones[e.id], e)
		}
		l.maxID = max(l.maxID, e.id)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(malformed) > 0 {
		t.Errorf("ledger: %d malformed lines that no kill tore:\n%s", len(malformed), strings.Join(malformed, "\n"))
	}
	return l
}

func crashRecParseLine(s string) (crashRecEvent, bool) {
	f := strings.Fields(s)
	if len(f) < 3 || len(f[0]) != 1 {
		return crashRecEvent{}, false
	}
	e := crashRecEvent{kind: f[0][0], token: f[2]}
	id, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil || id == 0 {
		return crashRecEvent{}, false
	}
	e.id = jobrun.ID(id)
	switch e.kind {
	case 'E', 'R':
		return e, len(f) == 3
	case 'S', 'D':
		if len(f) != 4 {
			return crashRecEvent{}, false
		}
		e.attempt, err = strconv.Atoi(f[3])
		return e, err == nil && e.attempt > 0
	}
	return crashRecEvent{}, false
}

type crashRecSummary struct {
	acked, unacked, stored int
	lost, notFinal         int
	duplicates, maxDone    int
	failed, recoveryFailed int
}

// crashRecVerify opens the drained file and checks it against the ledger.
func crashRecVerify(p *crashRecProblems, dbPath string, l *crashRecLedger, torn map[int64]bool) crashRecSummary {
	t := p.t
	t.Helper()
	ctx := context.Background()
	r, err := jobrun.Open(dbPath, jobrun.WithStrictKinds(false))
	if err != nil {
		t.Fatalf("open the drained file: %v", err)
	}
	defer func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	}()

	var sum crashRecSummary
	report := func(what string, id jobrun.ID, token string, format string, args ...any) {
		t.Helper()
		var lines []string
		for _, e := range l.byID[id] {
			lines = append(lines, "  "+e.String())
		}
		if token != "" {
			for _, e := range l.byToken[token] {
				if e.id != id {
					lines = append(lines, "  "+e.String()+"   (same token, other id)")
				}
			}
		}
		p.add(what, "job %d: %s\n ledger says:\n%s", id, fmt.Sprintf(format, args...), strings.Join(lines, "\n"))
	}

	// Every acknowledged job exists, carries its token and is final.
	for _, id := range slices.Sorted(maps.Keys(l.acked)) {
		sum.acked += len(l.acked[id])
		in, err := r.Get(ctx, id)
		if err != nil {
			sum.lost += len(l.acked[id])
			report("LOST", id, l.acked[id][0].token, "acknowledged but Get says: %v", err)
			continue
		}
		var a crashRecArgs
		if err := json.Unmarshal(in.RawArgs, &a); err != nil {
			sum.lost += len(l.acked[id])
			report("LOST", id, "", "stored args do not decode (%v): %s", err, in.RawArgs)
			continue
		}
		for _, e := range l.acked[id] {
			if e.token != a.Token {
				sum.lost++
				report("LOST", id, e.token, "acknowledged with token %s, but the stored job (state %s) carries %s",
					e.token, in.State, a.Token)
			}
		}
		switch in.State {
		case jobrun.StateDone, jobrun.StateFailed:
		default:
			sum.notFinal++
			report("NOT FINAL", id, a.Token, "state %s after the drain (attempt %d, run at %v)", in.State, in.Attempt, in.RunAt)
		}
	}

	// Every stored job, by Get from 1 up to the highest ID the ledger or the file knows.
	var seq uint64
	if err := r.DB().View(func(tx *bbolt.Tx) error {
		if root := tx.Bucket([]byte("jobrun")); root != nil {
			if jobs := root.Bucket([]byte("jobs")); jobs != nil {
				seq = jobs.Sequence()
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	recount := map[jobrun.State]int{}
	for _, s := range jobrun.States {
		recount[s] = 0
	}
	tokens := map[string]jobrun.ID{}
	var gaps []jobrun.ID
	last := max(l.maxID, jobrun.ID(seq))
	for id := jobrun.ID(1); ; id++ {
		in, err := r.Get(ctx, id)
		if errors.Is(err, jobrun.ErrNotFound) {
			if id > last {
				break
			}
			gaps = append(gaps, id)
			continue
		}
		if err != nil {
			t.Fatalf("get job %d: %v", id, err)
		}
		sum.stored++
		recount[in.State]++
		var a crashRecArgs
		if err := json.Unmarshal(in.RawArgs, &a); err != nil || a.Token == "" {
			report("BAD ARGS", id, "", "stored args %s (%v)", in.RawArgs, err)
			continue
		}
		if prev, dup := tokens[a.Token]; dup {
			report("DOUBLE INSERT", id, a.Token, "token %s is stored as job %d and job %d", a.Token, prev, id)
		}
		tokens[a.Token] = id
		if e, ok := l.rolledBack[a.Token]; ok {
			report("ROLLED BACK BUT STORED", id, a.Token, "its EnqueueTx transaction was rolled back (%v)", e)
		}
		if _, ok := l.ackedTokens[a.Token]; !ok {
			sum.unacked++ // committed, then killed before the E line was written
		}
		// Handler lines for this ID must be about this job: a mismatch means the ID
		// was given to another job after this one ran.
		for _, e := range l.byID[id] {
			if e.kind != 'R' && e.token != a.Token {
				report("ID REUSED", id, a.Token, "ledger %v, but the stored job carries %s", e, a.Token)
			}
		}
		if len(l.dones[id]) > 1 {
			sum.duplicates++
		}
		sum.maxDone = max(sum.maxDone, len(l.dones[id]))
		switch in.State {
		case jobrun.StateDone:
			// Attempts 1..Fail failed and Fail+1 succeeded; interrupted runs spend none.
			if in.Attempt != a.Fail+1 || len(in.Errors) != a.Fail {
				report("ATTEMPTS", id, a.Token, "done after %d attempts with %d errors, want %d and %d (Fail=%d Panic=%v)",
					in.Attempt, len(in.Errors), a.Fail+1, a.Fail, a.Fail, a.Panic)
			}
			want := "planned failure"
			if a.Panic {
				want = "planned panic"
			}
			for i, ae := range in.Errors {
				if ae.Attempt != i+1 || !strings.Contains(ae.Error, want) {
					report("ATTEMPTS", id, a.Token, "error %d of %d is for attempt %d, want %d, and says %.200q, want %q",
						i+1, len(in.Errors), ae.Attempt, i+1, ae.Error, want)
				}
			}
			ok := false
			for _, e := range l.dones[id] {
				ok = ok || e.attempt == a.Fail+1
				if e.attempt != a.Fail+1 {
					report("ATTEMPTS", id, a.Token, "handler succeeded on attempt %d, want %d", e.attempt, a.Fail+1)
				}
			}
			if !ok && len(torn) == 0 {
				report("DONE WITHOUT SUCCESS", id, a.Token, "stored as done, but no handler run returned nil")
			}
		case jobrun.StateFailed:
			sum.failed++
			if strings.Contains(in.LastError, "WithMaxRecoveries") {
				sum.recoveryFailed++
			}
			report("FAILED", id, a.Token, "attempt %d of %d, Fail=%d Panic=%v, last error: %.300s",
				in.Attempt, in.MaxAttempts, a.Fail, a.Panic, in.LastError)
		}
	}
	if len(gaps) > 0 {
		t.Logf("IDs without a job (not asserted): %v", gaps)
	}
	if seq != 0 && uint64(sum.stored+len(gaps)) != seq {
		t.Logf("the jobs bucket's sequence is %d, but IDs 1..%d were scanned (not asserted)", seq, sum.stored+len(gaps))
	}

	// EnqueueTx: the job and the application's write in its transaction exist together.
	if err := r.DB().View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(crashRecAppBucket)
		for token, id := range tokens {
			if strings.Contains(token, "-x") && (b == nil || b.Get([]byte(token)) == nil) {
				report("TX ATOMICITY", id, token, "the job committed without the application's write of its transaction")
			}
		}
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			token := string(k)
			id := jobrun.ID(binary.BigEndian.Uint64(v))
			switch got, ok := tokens[token]; {
			case !ok:
				report("TX ATOMICITY", id, token, "the application's write for %s committed without its job", token)
			case got != id:
				report("TX ATOMICITY", id, token, "EnqueueTx returned ID %d for %s, but the job is stored as %d", id, token, got)
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}

	// The counters equal a full recount.
	counts, err := r.Counts(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range jobrun.States {
		if counts[s] != recount[s] {
			t.Errorf("COUNTS: Counts says %d %s, a recount of every job finds %d\n Counts:  %v\n recount: %v",
				counts[s], s, recount[s], counts, recount)
		}
	}

	// bbolt's own consistency check.
	crashRecCheckFile(t, r.DB())

	if sum.failed > 0 {
		t.Errorf("%d jobs failed (%d by the recovery limit); with MaxAttempts(5), Fail<=2 and WithMaxRecoveries(1000) none should",
			sum.failed, sum.recoveryFailed)
	}
	if sum.acked == 0 {
		t.Errorf("no job was acknowledged: the test proved nothing")
	}
	return sum
}

func crashRecCheckFile(t *testing.T, db *bbolt.DB) {
	t.Helper()
	if err := db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("bbolt check: %v", err)
		}
		return nil
	}); err != nil {
		t.Errorf("bbolt check: %v", err)
	}
}

// The child.

// crashRecLog is the child's end of the ledger.
type crashRecLog struct{ f *os.File }

// add appends one line with a single write.
func (l *crashRecLog) add(kind byte, id jobrun.ID, token string, attempt int) {
	b := make([]byte, 0, 64)
	b = append(b, kind, ' ')
	b = strconv.AppendUint(b, uint64(id), 10)
	b = append(b, ' ')
	b = append(b, token...)
	if attempt > 0 {
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(attempt), 10)
	}
	b = append(b, '\n')
	if _, err := l.f.Write(b); err != nil {
		crashRecFatal("write ledger: %v", err)
	}
}

// crashRecFatal ends a crash-mode child at once with a status the parent reports.
func crashRecFatal(format string, args ...any) {
	fmt.Fprintln(os.Stderr, crashRecChildFatal, fmt.Sprintf(format, args...))
	os.Exit(3)
}

func crashRecChild(t *testing.T) {
	mode := os.Getenv(crashRecEnvMode)
	dbPath, ledgerPath := os.Getenv(crashRecEnvDB), os.Getenv(crashRecEnvLedger)
	if dbPath == "" || ledgerPath == "" {
		t.Fatalf("child needs %s and %s", crashRecEnvDB, crashRecEnvLedger)
	}
	f, err := os.OpenFile(ledgerPath, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ledger := &crashRecLog{f: f}

	r, err := jobrun.Open(dbPath,
		jobrun.WithQueue(jobrun.DefaultQueue, 8, nil),
		jobrun.WithMaxRecoveries(1000))
	if err != nil {
		if mode == "drain" {
			t.Fatal(err)
		}
		crashRecFatal("open: %v", err)
	}
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[crashRecArgs]) error {
		ledger.add('S', job.ID, job.Args.Token, job.Attempt)
		if job.Attempt <= job.Args.Fail {
			if job.Args.Panic {
				panic(fmt.Sprintf("crashtest: planned panic on attempt %d", job.Attempt))
			}
			return fmt.Errorf("crashtest: planned failure on attempt %d of %d", job.Attempt, job.Args.Fail)
		}
		// A little work, to widen the windows between start, success and commit.
		if d := rand.N(600 * time.Microsecond); d > 300*time.Microsecond {
			time.Sleep(d)
		}
		ledger.add('D', job.ID, job.Args.Token, job.Attempt)
		return nil
	}, jobrun.ConstantBackoff(time.Millisecond), jobrun.MaxAttempts(5))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()

	if mode == "drain" {
		crashRecDrainChild(ctx, t, r, cancel, ran)
		return
	}

	crashRecProduce(r, ledger)
	// Run jobs until killed.
	select {
	case err := <-ran:
		crashRecFatal("Run returned %v", err)
	case <-time.After(time.Hour):
		crashRecFatal("not killed within an hour")
	}
}

// crashRecDrainChild waits until every job is final, checks the file and closes the
// runner, so the test returns (and the process exits 0, goleak satisfied).
func crashRecDrainChild(ctx context.Context, t *testing.T, r *jobrun.Runner, cancel context.CancelFunc, ran chan error) {
	defer func() {
		cancel()
		if err := <-ran; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
		crashRecCheckFile(t, r.DB())
		if err := r.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	deadline := time.Now().Add(crashRecDrainLimit - 10*time.Second)
	var first, last map[jobrun.State]int
	changed := time.Now()
	for {
		c, err := r.Counts(ctx, "")
		if err != nil {
			t.Errorf("counts: %v", err)
			return
		}
		if first == nil {
			first = c
		}
		// Nothing is enqueued in the drain: jobs only move between states.
		if crashRecTotal(c) != crashRecTotal(first) {
			t.Errorf("drain: the counters' total went from %d to %d with nothing enqueued: %v (after open: %v)",
				crashRecTotal(first), crashRecTotal(c), c, first)
			return
		}
		if c[jobrun.StateScheduled]+c[jobrun.StateReady]+c[jobrun.StateRetrying]+c[jobrun.StateRunning] == 0 {
			t.Logf("drain: every job final: %d done, %d failed, %d canceled; after open: %v",
				c[jobrun.StateDone], c[jobrun.StateFailed], c[jobrun.StateCanceled], first)
			return
		}
		if !maps.Equal(c, last) {
			last, changed = c, time.Now()
		}
		if time.Since(changed) > crashRecDrainStall || time.Now().After(deadline) {
			t.Errorf("drain: stalled, jobs still not final: %v (after open: %v)", c, first)
			return
		}
		select {
		case err := <-ran:
			ran <- err
			t.Errorf("drain: Run returned early: %v", err)
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func crashRecTotal(c map[jobrun.State]int) int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// crashRecProduce enqueues one cycle's jobs from concurrent producers, writing an E line
// for every acknowledged job, and returns when they are done.
func crashRecProduce(r *jobrun.Runner, ledger *crashRecLog) {
	ctx := context.Background()
	prefix := fmt.Sprintf("c%s-p%d-", os.Getenv(crashRecEnvCycle), os.Getpid())
	var n atomic.Int64
	newArgs := func(src string) crashRecArgs {
		a := crashRecArgs{Token: prefix + src + strconv.FormatInt(n.Add(1), 10)}
		switch x := rand.IntN(10); {
		case x < 2:
			a.Fail = 1
		case x < 3:
			a.Fail = 2
		case x < 4:
			a.Fail, a.Panic = 1, true
		}
		return a
	}
	var wg sync.WaitGroup
	for range crashRecSingleProducers {
		wg.Go(func() {
			for i := range crashRecSinglePerProd {
				a := newArgs("e")
				var opts []jobrun.EnqueueOption
				if i%7 == 3 {
					opts = append(opts, jobrun.Delay(20*time.Millisecond))
				}
				id, err := r.Enqueue(ctx, a, opts...)
				if err != nil {
					crashRecFatal("enqueue: %v", err)
				}
				ledger.add('E', id, a.Token, 0)
			}
		})
	}
	wg.Go(func() {
		for i := range crashRecBatches {
			batch := make([]jobrun.Args, crashRecBatchSize)
			for j := range batch {
				batch[j] = newArgs("m")
			}
			var opts []jobrun.EnqueueOption
			if i == 1 {
				opts = append(opts, jobrun.Delay(20*time.Millisecond))
			}
			ids, err := r.EnqueueMany(ctx, batch, opts...)
			if err != nil {
				crashRecFatal("enqueue many: %v", err)
			}
			for j, id := range ids {
				ledger.add('E', id, batch[j].(crashRecArgs).Token, 0)
			}
		}
	})
	wg.Go(func() {
		for i := range crashRecTxs {
			a := newArgs("x")
			var id jobrun.ID
			err := r.DB().Update(func(tx *bbolt.Tx) error {
				var opts []jobrun.EnqueueOption
				if i%6 == 2 {
					opts = append(opts, jobrun.Delay(20*time.Millisecond))
				}
				var err error
				if id, err = r.EnqueueTx(ctx, tx, a, opts...); err != nil {
					return err
				}
				b, err := tx.CreateBucketIfNotExists(crashRecAppBucket)
				if err != nil {
					return err
				}
				if err := b.Put([]byte(a.Token), binary.BigEndian.AppendUint64(nil, uint64(id))); err != nil {
					return err
				}
				if i%5 == 4 {
					return errCrashRecRollback
				}
				return nil
			})
			switch {
			case err == nil:
				ledger.add('E', id, a.Token, 0)
			case errors.Is(err, errCrashRecRollback):
				ledger.add('R', id, a.Token, 0)
			default:
				crashRecFatal("enqueue in tx: %v", err)
			}
		}
	})
	wg.Wait()
}
