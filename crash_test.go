package jobrun_test

// TestCrashRecovery is the crash campaign: it checks jobrun's durability, uniqueness and
// cron promises with real SIGKILLs. docs/RELIABILITY.md describes it for readers of the
// project; this comment is the reference for the code.
//
// It uses the re-exec pattern. The test binary starts itself again as a child process
// (JOBRUN_CRASH_CHILD=1) that opens the runner on a file, declares two cron schedules,
// enqueues jobs from several producers and runs them, and is killed with SIGKILL at a
// random moment once it has made progress (crashRecKillDelay); every tenth cycle is
// followed by a downtime of 1-2s, so that cron fires are missed. After every kill the
// parent runs bbolt's consistency check on the file. After the kill cycles a last child runs in drain mode
// until every job in the file is final, then removes the schedules. The parent then
// opens the file itself and compares it with a ledger the children kept outside bbolt:
// an append-only file with one line per event, each written with a single write
// syscall, so a kill can at worst tear the line being written, never an earlier one.
//
// Every line is "<what> <id> <token> <n> <t0> <t1>", the times in Unix nanoseconds of
// the wall clock, which the runner's CreatedAt and FinishedAt also use:
//
//	E <id> <token> 0 <t0> <t1>        Enqueue, EnqueueMany or EnqueueTx stored the job: called at t0, returned at t1
//	U <holder> <token> 0 <t0> <t1>    the same refused the job with ErrDuplicate; holder is the ID it named
//	R <id> <token> 0 <t0> <t1>        the EnqueueTx transaction was rolled back on purpose
//	S <id> <token> <attempt> <t> <t>  a handler started
//	Z <id> <token> <attempt> <t> <t>  the handler is about to return Snooze
//	D <id> <token> <attempt> <t> <t>  the handler is about to return nil
//
// The token is unique per enqueued job and travels in its args, so ledger lines can be
// matched to stored jobs even if an ID were ever reused. A cron job's token is its
// schedule's name and fire time. A unique job's token ends with its key.
//
// What a crash-mode child does:
//   - Three producers call Enqueue, one calls EnqueueMany (batches of 20), one runs
//     db.Update transactions that call EnqueueTx and write the application's own
//     bucket (every fifth rolls back), and two more enqueue with UniqueKey from four
//     keys through all three calls (EnqueueMany with two jobs of one key, so the second
//     is always refused). Some jobs wait for Delay or At, some carry Timeout. A child
//     finding more than crashRecMaxBacklog unfinished jobs only runs the unique producers.
//   - The handler fails attempts 1..Fail by returning an error, panicking, outliving
//     Timeout while watching its context, or outliving it while ignoring its context
//     (the runner abandons it); or fails once with Permanent; before that it may
//     return Snooze while the job is younger than its Snooze field. Its behaviour depends
//     only on the stored attempt number and the job's age, so it survives crashes.
//   - Schedule declares "tick-every" (@every 1s) and "tick-cron" (* * * * * *, the
//     seconds field) at every start. Their jobs run on the "cron" queue and fail their
//     first attempt when the fire's Unix second is a multiple of 3.
//
// What the parent checks (crashRecVerify, crashRecCheckJob, crashRecCheckUnique and
// crashRecCheckFires say why each is sound):
//   - bbolt's tx.Check after every kill, in the drain child, and at the end;
//   - no acknowledged job is lost, each ends final, attempts and errors are exactly what
//     its behaviour asks for (a success attempt may only time out if the job had a
//     Timeout), failed jobs are exactly the Permanent ones, no attempt starts before
//     the job's Delay or At, no process ran an attempt twice, EnqueueTx is atomic with
//     the application's write and rolled-back transactions leave nothing;
//   - unique keys: of the jobs that held one (kind, key), none was inserted before an
//     earlier one finished, and every ErrDuplicate named a job holding that key (for
//     Enqueue and EnqueueMany, one still unfinished when the call began);
//   - cron: no fire time enqueued twice, every fire at a time of its spec and never
//     early, and between consecutive fires exactly the times the default missed-fire
//     policy collapses;
//   - Counts, per queue and in all, equals a recount of every job by Get.
//
// Environment: JOBRUN_CRASH_CYCLES sets the number of kill cycles (default 50, 10 with
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
	"math"
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

	"github.com/robfig/cron/v3"
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

	crashRecCycles      = 50 // default number of kill cycles
	crashRecShortCycles = 10 // with -short; every tenth cycle (5, 15, ...) is followed by 1-2s of downtime

	// What one crash-mode child enqueues before it only runs jobs (if it lives that long).
	crashRecSingleProducers = 3  // goroutines calling Enqueue
	crashRecSinglePerProd   = 30 // Enqueue calls each
	crashRecBatches         = 3  // EnqueueMany calls
	crashRecBatchSize       = 20
	crashRecTxs             = 20 // db.Update transactions calling EnqueueTx; every 5th rolls back
	crashRecUniqueProducers = 2  // goroutines enqueueing with UniqueKey
	crashRecUniquePerProd   = 30 // calls each, rotating Enqueue, EnqueueMany and EnqueueTx
	crashRecKeys            = 4  // the unique key space: k0..k3
	crashRecMaxBacklog      = 1500

	crashRecTimeout = 100 * time.Millisecond // the Timeout of jobs enqueued with one
	crashRecWorkers = 8                      // of the default queue

	crashRecKind     = "crash-recovery"
	crashRecTickKind = "crash-tick"
	crashRecCronQ    = "cron" // the queue of the schedules' jobs

	crashRecProgressLimit = time.Minute          // a child must make progress within this
	crashRecDrainLimit    = 2 * time.Minute      // the drain child must finish within this
	crashRecDrainStall    = 10 * time.Second     // and its counts may not stand still longer
	crashRecChildFatal    = "CRASH-CHILD-FATAL:" // marks an unexpected error in a crash-mode child
	crashRecMaxReports    = 10                   // problems of one kind shown in full
)

// crashRecSchedules are declared by every child; the drain child removes them once
// the default queue is drained, so that the parent's Open fires nothing.
var crashRecSchedules = []struct{ name, spec string }{
	{"tick-every", "@every 1s"},
	{"tick-cron", "* * * * * *"},
}

// crashRecCron parses specs as the runner does (schedule.go): optional seconds field,
// descriptors.
var crashRecCron = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// crashRecArgs are the args of every enqueued job. The handler fails attempts 1..Fail
// in the way FailBy says and succeeds on attempt Fail+1, except that FailBy
// "permanent" fails the first attempt for good.
type crashRecArgs struct {
	Token     string
	Src       string        // e, m, x: Enqueue, EnqueueMany, EnqueueTx; ue, um, ux: the same with UniqueKey
	Key       string        // the UniqueKey, "" if none
	Fail      int           // attempts that fail
	FailBy    string        // error, panic, timeout (watching ctx), abandon (ignoring ctx), permanent
	Timeout   bool          // enqueued with Timeout(crashRecTimeout)
	Snooze    time.Duration // return Snooze while the job is younger than this
	NotBefore int64         // Unix ns: no attempt may start before (Delay, At); 0 if due at once
}

func (crashRecArgs) Kind() string { return crashRecKind }

// crashRecTickArgs are the args of the schedules' jobs.
type crashRecTickArgs struct{ Name string }

func (crashRecTickArgs) Kind() string { return crashRecTickKind }

// crashRecTickToken names a fire in the ledger.
func crashRecTickToken(schedule string, fireAt time.Time) string {
	return schedule + "@" + strconv.FormatInt(fireAt.Unix(), 10)
}

// crashRecTickFails reports whether a fire's job fails its first attempt.
func crashRecTickFails(fireAt time.Time) bool { return fireAt.Unix()%3 == 0 }

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
	cycles := crashRecCycleCount(t, crashRecEnvCycles, crashRecCycles, crashRecShortCycles)
	dbPath, ledgerPath := crashRecFiles(t, crashRecEnvDir)

	start := time.Now()
	torn := map[int64]bool{} // where kills tore the last ledger line: the offsets of the newlines the parent added
	var segments []int64     // the ledger's size when each child started: where its lines begin
	var spans []crashRecSpan // when each child lived, by the wall clock
	for c := 1; c <= cycles; c++ {
		segments = append(segments, crashRecFileSize(t, ledgerPath))
		span, at, ok := crashRecKillCycle(t, crashRecovery, c, dbPath, ledgerPath)
		spans = append(spans, span)
		if ok {
			torn[at] = true
		}
		crashRecCheckKilled(t, c, dbPath)
		if c%10 == 5 && c < cycles {
			// Downtime of over a second, so that fires are missed while no process
			// runs: the next child must run the first once and collapse the rest.
			time.Sleep(time.Second + rand.N(time.Second))
		}
	}
	segments = append(segments, crashRecFileSize(t, ledgerPath))
	spans = append(spans, crashRecDrain(t, crashRecovery, cycles+1, dbPath, ledgerPath))
	childTime := time.Since(start)

	problems := &crashRecProblems{t: t, n: map[string]int{}}
	defer problems.summarize()
	ledger := crashRecParseLedger(problems, ledgerPath, torn, segments)
	sum := crashRecVerify(problems, dbPath, ledger, torn, spans)
	t.Logf("crash campaign: %d kill cycles survived + drain in %v (bbolt check after each kill); "+
		"%d jobs acknowledged (%d more committed without an ack line), %d stored, %d rolled-back EnqueueTx; "+
		"lost %d, not final %d; duplicate executions %d (successful attempts run again after a crash; max %d successes of one job); "+
		"failed %d (%d by Permanent, as planned; %d by the recovery limit); "+
		"handler starts %d, snoozes %d, timed-out attempts %d (%d of them success attempts that ran late); torn ledger lines %d",
		cycles, childTime.Round(time.Millisecond), sum.acked, sum.unacked, sum.stored, len(ledger.rolledBack),
		sum.lost, sum.notFinal, sum.duplicates, sum.maxDone,
		sum.failed, sum.permanent, sum.recoveryFailed,
		ledger.starts, ledger.snoozes, sum.timeouts, sum.spuriousTimeouts, len(torn))
	t.Logf("crash campaign: unique keys: %d jobs held a key, %d checked against earlier holders, %d ErrDuplicate answers; "+
		"unique violations %d (a naive [CreatedAt, FinishedAt] overlap test would flag %d: CreatedAt is when Enqueue was called)",
		sum.uniqueJobs, sum.uniqueChecked, sum.dupAnswers, sum.uniqueViolations, sum.naiveOverlaps)
	t.Logf("crash campaign: cron: %d fires of %d schedules, fires doubled %d; %d fires made up at a restart for a time that "+
		"passed while no process ran; %d fire times collapsed by the missed-fire policy (%d of them passed while no process ran) "+
		"into %d late fires (%d of them the first fire of a restarted process)",
		sum.fires, len(crashRecSchedules), sum.firesDoubled, sum.madeUp, sum.collapsed, sum.collapsedDown, sum.lateFires, sum.catchUps)
}

// The parent.

// crashRecTest is what the parent's helpers need to know of a campaign, so that
// TestCrashFlows (crash_flow_test.go) shares them: the test its children run and
// when each is killed.
type crashRecTest struct {
	name      string               // the test function: a child runs -test.run=^name$
	killDelay func() time.Duration // how long after its first progress a child is killed
}

var crashRecovery = crashRecTest{name: "TestCrashRecovery", killDelay: crashRecKillDelay}

// crashRecCycleCount returns the number of kill cycles: def, short with -short, or
// the number in the environment variable env.
func crashRecCycleCount(t *testing.T, env string, def, short int) int {
	t.Helper()
	cycles := def
	if testing.Short() {
		cycles = short
	}
	if s := os.Getenv(env); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a number of cycles >= 1", env, s)
		}
		cycles = n
	}
	return cycles
}

// crashRecFiles returns the paths of a campaign's database and ledger: in a
// temporary directory, or in the one the environment variable env names, which must
// not hold them yet.
func crashRecFiles(t *testing.T, env string) (dbPath, ledgerPath string) {
	t.Helper()
	dir := os.Getenv(env)
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dbPath = filepath.Join(dir, "jobs.db")
	ledgerPath = filepath.Join(dir, "ledger.txt")
	for _, p := range []string{dbPath, ledgerPath} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s exists: the crash test needs a fresh directory", p)
		}
	}
	return dbPath, ledgerPath
}

// crashRecSpan is when a child process lived, by the wall clock: from just before its
// start to just after its exit.
type crashRecSpan struct {
	child      int
	start, end time.Time
}

// crashRecChildCmd prepares a child process of test in the given mode.
func crashRecChildCmd(ctx context.Context, test, mode string, cycle int, dbPath, ledgerPath string) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+test+"$", "-test.v")
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

// crashRecKillDelay picks how long after its first progress a child is killed: half
// the time within 30ms (mid-recovery, mid-enqueue), 30% within 30-400ms (mid-run, once
// the backlog moves), and 20% just after the next whole second, when both schedules
// fire, to hit their commits.
func crashRecKillDelay() time.Duration {
	switch x := rand.IntN(10); {
	case x < 5:
		return rand.N(30*time.Millisecond + 1)
	case x < 8:
		return 30*time.Millisecond + rand.N(370*time.Millisecond)
	default:
		now := time.Now()
		return now.Truncate(time.Second).Add(time.Second).Sub(now) + rand.N(8*time.Millisecond)
	}
}

// crashRecKillCycle starts a crash-mode child of ct, waits until the ledger grows,
// waits a random time more (ct.killDelay) and kills it with SIGKILL. If the kill tore
// the last ledger line, it ends that line with a newline, so the next child's lines
// start on a line of their own, and returns the newline's offset and true.
func crashRecKillCycle(t *testing.T, ct crashRecTest, cycle int, dbPath, ledgerPath string) (span crashRecSpan, tornAt int64, torn bool) {
	t.Helper()
	before := crashRecFileSize(t, ledgerPath)
	cmd, out := crashRecChildCmd(context.Background(), ct.name, "crash", cycle, dbPath, ledgerPath)
	span = crashRecSpan{child: cycle, start: time.Now()}
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

	// Kill at a random point after progress: mid-enqueue, mid-handler, mid-commit,
	// mid-fire. The delay is the experiment, not a wait for a condition.
	time.Sleep(ct.killDelay())
	cmd.Process.Kill() // SIGKILL on Unix; an error means the child already exited, checked below
	<-waited
	span.end = time.Now()
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
		return span, int64(len(b)), true
	}
	return span, 0, false
}

// crashRecCheckKilled runs bbolt's consistency check on the file a killed child left,
// opened read-only so that nothing (no recovery) changes it first.
func crashRecCheckKilled(t *testing.T, cycle int, dbPath string) {
	t.Helper()
	db, err := bbolt.Open(dbPath, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Errorf("cycle %d: open the file read-only after the kill: %v", cycle, err)
		return
	}
	defer db.Close()
	if err := db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("cycle %d: bbolt check after the kill: %v", cycle, err)
		}
		return nil
	}); err != nil {
		t.Errorf("cycle %d: bbolt check after the kill: %v", cycle, err)
	}
}

// crashRecDrain runs the final child of ct, which recovers the file, runs every job to
// a final state (TestCrashRecovery's also removes the schedules), checks the file with
// bbolt and exits 0. A failure is reported but the test goes on to compare the file
// with the ledger, which says which jobs are at fault.
func crashRecDrain(t *testing.T, ct crashRecTest, cycle int, dbPath, ledgerPath string) crashRecSpan {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), crashRecDrainLimit)
	defer cancel()
	cmd, out := crashRecChildCmd(ctx, ct.name, "drain", cycle, dbPath, ledgerPath)
	cmd.WaitDelay = 5 * time.Second
	span := crashRecSpan{child: cycle, start: time.Now()}
	err := cmd.Run()
	span.end = time.Now()
	switch {
	case ctx.Err() != nil:
		t.Errorf("drain child did not finish in %v (hang at open, or jobs that never become final?); output:\n%s",
			crashRecDrainLimit, out)
	case err != nil || bytes.Contains(out.Bytes(), []byte("DATA RACE")):
		t.Errorf("drain child failed (%v); output:\n%s", err, out)
	}
	for line := range strings.SplitSeq(out.String(), "\n") {
		if _, msg, ok := strings.Cut(line, "drain: "); ok {
			t.Logf("drain child: %s (took %v)", msg, span.end.Sub(span.start).Round(time.Millisecond))
		}
	}
	return span
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

// The ledger.

// crashRecEvent is one line of the ledger.
type crashRecEvent struct {
	kind   byte
	id     jobrun.ID
	token  string
	n      int   // the attempt of S, Z and D lines
	t0, t1 int64 // Unix ns: when the call began and returned; for S, Z and D both are the line's time
	line   int
	child  int // the cycle of the child that wrote it; cycles+1 is the drain
}

func (e crashRecEvent) String() string {
	return fmt.Sprintf("line %d (child %d): %c %d %s %d at %s", e.line, e.child, e.kind, e.id, e.token, e.n,
		time.Unix(0, e.t1).Format("15:04:05.000000"))
}

type crashRecLedger struct {
	acked       map[jobrun.ID][]crashRecEvent // E lines by id
	ackedTokens map[string]jobrun.ID
	rolledBack  map[string]crashRecEvent      // R lines by token
	dups        []crashRecEvent               // U lines
	byID        map[jobrun.ID][]crashRecEvent // E, S, Z and D lines: about the job with that ID
	byToken     map[string][]crashRecEvent
	dones       map[jobrun.ID][]crashRecEvent
	starts      int
	snoozes     int
	maxID       jobrun.ID
}

// crashRecParseLedger reads the ledger, skipping the lines that kills tore (torn holds
// the offsets of the newlines that end them); any other malformed line is an error.
// segments gives where each child's lines begin; no child may start one attempt of a
// job twice (unless the first run snoozed), or succeed twice with one attempt: a job
// runs at most once per claim, and a child is killed, never stopped, so a claim ends
// only with a commit.
func crashRecParseLedger(p *crashRecProblems, path string, torn map[int64]bool, segments []int64) *crashRecLedger {
	t := p.t
	t.Helper()
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
	crashRecLines(t, path, torn, segments, func(n, child int, text string) {
		e, ok := crashRecParseLine(text)
		if !ok {
			malformed = append(malformed, fmt.Sprintf("line %d (child %d): %q", n, child, text))
			return
		}
		e.line, e.child = n, child
		switch e.kind {
		case 'S', 'D':
			k := runKey{child, e.kind, e.id, e.n}
			if prev, dup := runs[k]; dup {
				p.add("RAN TWICE IN ONE PROCESS", "job %d:\n  %v\n  %v", e.id, prev, e)
			}
			runs[k] = e
		case 'Z':
			delete(runs, runKey{child, 'S', e.id, e.n}) // a snoozed attempt starts again
		}
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
			return // its ID was never committed and is reused by a later job
		case 'U':
			l.dups = append(l.dups, e)
			l.maxID = max(l.maxID, e.id)
			return // its ID is the holder's
		case 'S':
			l.starts++
		case 'Z':
			l.snoozes++
		case 'D':
			l.dones[e.id] = append(l.dones[e.id], e)
		}
		l.byID[e.id] = append(l.byID[e.id], e)
		l.maxID = max(l.maxID, e.id)
	})
	if len(malformed) > 0 {
		t.Errorf("ledger: %d malformed lines that no kill tore:\n%s", len(malformed), strings.Join(malformed, "\n"))
	}
	return l
}

// crashRecLines calls fn with every line of the ledger at path that no kill tore (torn
// holds the offsets of the newlines that end them), its number from 1 and the child
// that wrote it (segments gives where each child's lines begin).
func crashRecLines(t *testing.T, path string, torn map[int64]bool, segments []int64, fn func(n, child int, text string)) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
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
		fn(n, child, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

func crashRecParseLine(s string) (crashRecEvent, bool) {
	e, ok := crashRecParseFields(s)
	if !ok {
		return crashRecEvent{}, false
	}
	switch e.kind {
	case 'E', 'R', 'U':
		return e, e.n == 0
	case 'S', 'Z', 'D':
		return e, e.n > 0 && e.t0 == e.t1
	}
	return crashRecEvent{}, false
}

// crashRecParseFields parses the six fields of a ledger line, whatever its kind.
func crashRecParseFields(s string) (crashRecEvent, bool) {
	f := strings.Fields(s)
	if len(f) != 6 || len(f[0]) != 1 {
		return crashRecEvent{}, false
	}
	e := crashRecEvent{kind: f[0][0], token: f[2]}
	id, err1 := strconv.ParseUint(f[1], 10, 64)
	n, err2 := strconv.Atoi(f[3])
	t0, err3 := strconv.ParseInt(f[4], 10, 64)
	t1, err4 := strconv.ParseInt(f[5], 10, 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil || id == 0 || t0 <= 0 || t1 < t0 {
		return crashRecEvent{}, false
	}
	e.id, e.n, e.t0, e.t1 = jobrun.ID(id), n, t0, t1
	return e, true
}

// crashRecTokenKey returns the unique key a token ends with, "" if none.
func crashRecTokenKey(token string) string {
	if i := strings.LastIndexByte(token, '-'); i >= 0 && strings.HasPrefix(token[i+1:], "k") {
		return token[i+1:]
	}
	return ""
}

// The verification.

type crashRecSummary struct {
	acked, unacked, stored   int
	lost, notFinal           int
	duplicates, maxDone      int
	failed, permanent        int
	recoveryFailed           int
	timeouts                 int
	spuriousTimeouts         int
	uniqueJobs               int
	uniqueChecked            int
	dupAnswers               int
	uniqueViolations         int
	naiveOverlaps            int
	fires, firesDoubled      int
	collapsed, collapsedDown int
	lateFires, catchUps      int
	madeUp                   int
}

// crashRecHolder is a stored job that held a unique key.
type crashRecHolder struct {
	id       jobrun.ID
	token    string
	created  time.Time
	finished int64 // Unix ns of FinishedAt; math.MaxInt64 if the job is not final
	inserted int64 // Unix ns by which the job was surely inserted (E's return, a start); 0 if unknown
}

// crashRecFire is a stored job of a schedule.
type crashRecFire struct {
	id      jobrun.ID
	fireAt  time.Time
	created time.Time // when the fire's transaction ran
}

// crashRecVerify opens the drained file and checks it against the ledger.
func crashRecVerify(p *crashRecProblems, dbPath string, l *crashRecLedger, torn map[int64]bool, spans []crashRecSpan) crashRecSummary {
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
				if e.id != id || e.kind == 'U' {
					lines = append(lines, "  "+e.String()+"   (same token, other id or refused)")
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
		if err := json.Unmarshal(in.RawArgs, &a); err != nil || in.Kind != crashRecKind {
			sum.lost += len(l.acked[id])
			report("LOST", id, "", "stored job is of kind %q with args %s (%v)", in.Kind, in.RawArgs, err)
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
	type queueState struct {
		queue string
		state jobrun.State
	}
	recount := map[queueState]int{}
	infos := map[jobrun.ID]*jobrun.Info{}
	tokens := map[string]jobrun.ID{}
	txTokens := map[string]jobrun.ID{} // jobs enqueued by EnqueueTx
	holders := map[string][]crashRecHolder{}
	fires := map[string][]crashRecFire{}
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
		recount[queueState{in.Queue, in.State}]++
		infos[id] = in
		var token string
		switch in.Kind {
		case crashRecKind:
			var a crashRecArgs
			if err := json.Unmarshal(in.RawArgs, &a); err != nil || a.Token == "" {
				report("BAD ARGS", id, "", "stored args %s (%v)", in.RawArgs, err)
				continue
			}
			token = a.Token
			if e, ok := l.rolledBack[a.Token]; ok {
				report("ROLLED BACK BUT STORED", id, a.Token, "its EnqueueTx transaction was rolled back (%v)", e)
			}
			if _, ok := l.ackedTokens[a.Token]; !ok {
				sum.unacked++ // committed, then killed before the E line was written
			}
			if a.Src == "x" || a.Src == "ux" {
				txTokens[a.Token] = id
			}
			if in.UniqueKey != a.Key {
				report("UNIQUE KEY", id, a.Token, "stored with unique key %q, enqueued with %q", in.UniqueKey, a.Key)
			}
			if a.Key != "" {
				h := crashRecHolder{id: id, token: a.Token, created: in.CreatedAt, finished: math.MaxInt64}
				if in.State == jobrun.StateDone || in.State == jobrun.StateFailed || in.State == jobrun.StateCanceled {
					h.finished = in.FinishedAt.UnixNano()
				}
				for _, e := range l.byToken[a.Token] {
					if e.kind == 'E' || e.kind == 'S' {
						if h.inserted == 0 || e.t1 < h.inserted {
							h.inserted = e.t1
						}
					}
				}
				holders[a.Key] = append(holders[a.Key], h)
			}
			crashRecCheckJob(report, &sum, in, a, l, len(torn) > 0)
		case crashRecTickKind:
			var a crashRecTickArgs
			err := json.Unmarshal(in.RawArgs, &a)
			if err != nil || a.Name == "" || in.Schedule != a.Name || in.FireAt.IsZero() || in.Queue != crashRecCronQ {
				report("TICK", id, "", "schedule %q, fire at %v, queue %q, args %s (%v): want the schedule named in the args, "+
					"a fire time and queue %q", in.Schedule, in.FireAt, in.Queue, in.RawArgs, err, crashRecCronQ)
				continue
			}
			token = crashRecTickToken(in.Schedule, in.FireAt)
			fires[in.Schedule] = append(fires[in.Schedule], crashRecFire{id: id, fireAt: in.FireAt, created: in.CreatedAt})
			crashRecCheckTick(report, &sum, in, token, l, len(torn) > 0)
		default:
			report("UNKNOWN KIND", id, "", "kind %q", in.Kind)
			continue
		}
		if prev, dup := tokens[token]; dup {
			report("DOUBLE INSERT", id, token, "token %s is stored as job %d and job %d", token, prev, id)
		}
		tokens[token] = id
		// Ledger lines for this ID must be about this job: a mismatch means the ID
		// was given to another job after this one ran.
		for _, e := range l.byID[id] {
			if e.token != token {
				report("ID REUSED", id, token, "ledger %v, but the stored job is %s", e, token)
			}
		}
	}
	if len(gaps) > 0 {
		t.Logf("IDs without a job (not asserted): %v", gaps)
	}
	if seq != 0 && uint64(sum.stored+len(gaps)) != seq {
		t.Logf("the jobs bucket's sequence is %d, but IDs 1..%d were scanned (not asserted)", seq, sum.stored+len(gaps))
	}

	crashRecCheckUnique(p, &sum, holders, infos, l)
	for _, s := range crashRecSchedules {
		crashRecCheckFires(p, &sum, s.name, s.spec, fires[s.name], spans)
	}
	for name := range fires {
		if !slices.ContainsFunc(crashRecSchedules, func(s struct{ name, spec string }) bool { return s.name == name }) {
			p.add("TICK", "jobs of a schedule %q that no child declared", name)
		}
	}

	// EnqueueTx: the job and the application's write in its transaction exist together.
	if err := r.DB().View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(crashRecAppBucket)
		for token, id := range txTokens {
			if b == nil || b.Get([]byte(token)) == nil {
				report("TX ATOMICITY", id, token, "the job committed without the application's write of its transaction")
			}
		}
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			token := string(k)
			id := jobrun.ID(binary.BigEndian.Uint64(v))
			switch got, ok := txTokens[token]; {
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

	// The counters equal a full recount, per queue and in all.
	total := map[jobrun.State]int{}
	for _, q := range []string{jobrun.DefaultQueue, crashRecCronQ} {
		counts, err := r.Counts(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range jobrun.States {
			want := recount[queueState{q, s}]
			total[s] += want
			if counts[s] != want {
				t.Errorf("COUNTS: queue %s: Counts says %d %s, a recount of every job finds %d; Counts: %v",
					q, counts[s], s, want, counts)
			}
		}
	}
	counts, err := r.Counts(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range jobrun.States {
		if counts[s] != total[s] {
			t.Errorf("COUNTS: Counts says %d %s in all, a recount of every job finds %d\n Counts:  %v\n recount: %v",
				counts[s], s, total[s], counts, total)
		}
	}
	if n := crashRecTotal(total); n != sum.stored {
		t.Errorf("COUNTS: %d stored jobs, but %d in the queues %s and %s", sum.stored, n, jobrun.DefaultQueue, crashRecCronQ)
	}

	// bbolt's own consistency check.
	crashRecCheckFile(t, r.DB())

	if sum.acked == 0 || sum.dupAnswers == 0 {
		t.Errorf("the campaign proved little: %d jobs acknowledged, %d ErrDuplicate answers", sum.acked, sum.dupAnswers)
	}
	return sum
}

type crashRecReport func(what string, id jobrun.ID, token string, format string, args ...any)

// crashRecFailText is what the error of a planned failed attempt contains, one of
// these. A handler that ignores its context ("abandon") fails with the timeout if the
// runner's timer fires first, but on a loaded machine the handler's own return can win
// the race (the timer's callback runs in a goroutine of its own), and then its error
// fails the attempt: either way the attempt fails, and either error is right.
var crashRecFailText = map[string][]string{
	"error":     {"planned failure"},
	"panic":     {"planned panic"},
	"timeout":   {"timed out"},
	"abandon":   {"timed out", "planned overrun"},
	"permanent": {"planned permanent failure"},
}

// crashRecErrorIs reports whether an attempt's error contains one of want.
func crashRecErrorIs(err string, want []string) bool {
	return slices.ContainsFunc(want, func(w string) bool { return strings.Contains(err, w) })
}

// crashRecCheckJob checks a stored job of the main kind after the drain. The outcome is
// determined by the args: FailBy "permanent" fails attempt 1 for good; otherwise
// attempts 1..Fail fail as FailBy says and the next one succeeds. Interrupted attempts
// and snoozes spend no attempt, so the stored Attempt and error history are exact; the
// one allowance is a success attempt of a job with a Timeout that ran past it on a
// loaded machine: it fails with a timeout, and the next attempt runs.
func crashRecCheckJob(report crashRecReport, sum *crashRecSummary, in *jobrun.Info, a crashRecArgs, l *crashRecLedger, torn bool) {
	id := in.ID
	for _, e := range l.byID[id] {
		if e.kind == 'S' && a.NotBefore != 0 && e.t1 < a.NotBefore {
			report("RAN EARLY", id, a.Token, "attempt %d started at %v, before the job was due at %v",
				e.n, time.Unix(0, e.t1), time.Unix(0, a.NotBefore))
		}
	}
	for _, ae := range in.Errors {
		if strings.Contains(ae.Error, "timed out") {
			sum.timeouts++
		}
	}
	if a.FailBy == "permanent" {
		if in.State != jobrun.StateFailed {
			report("ATTEMPTS", id, a.Token, "state %s, want failed by Permanent", in.State)
			return
		}
		sum.failed++
		sum.permanent++
		if in.Attempt != 1 || len(in.Errors) != 1 || !crashRecErrorIs(in.LastError, crashRecFailText["permanent"]) {
			report("ATTEMPTS", id, a.Token, "failed after %d attempts with %d errors, last %.200q; want 1 and 1, %q",
				in.Attempt, len(in.Errors), in.LastError, crashRecFailText["permanent"])
		}
		for _, e := range l.dones[id] {
			report("ATTEMPTS", id, a.Token, "a handler succeeded (%v), but the job fails by Permanent", e)
		}
		return
	}
	switch in.State {
	case jobrun.StateDone:
	case jobrun.StateFailed:
		sum.failed++
		if strings.Contains(in.LastError, "WithMaxRecoveries") {
			sum.recoveryFailed++
		}
		report("FAILED", id, a.Token, "attempt %d of %d, Fail=%d FailBy=%s, last error: %.300s",
			in.Attempt, in.MaxAttempts, a.Fail, a.FailBy, in.LastError)
		return
	default:
		return // not final: reported above if acknowledged; the drain reports the rest
	}
	if in.Attempt < a.Fail+1 || len(in.Errors) != in.Attempt-1 {
		report("ATTEMPTS", id, a.Token, "done after %d attempts with %d errors, want %d attempts and one error less (Fail=%d FailBy=%s)",
			in.Attempt, len(in.Errors), a.Fail+1, a.Fail, a.FailBy)
	}
	for i, ae := range in.Errors {
		want := crashRecFailText[a.FailBy]
		if i >= a.Fail {
			want = []string{"timed out"} // a success attempt that ran past its Timeout
			if !a.Timeout {
				want = []string{"(no error: the job has no Timeout)"}
			}
			sum.spuriousTimeouts++
		}
		if ae.Attempt != i+1 || !crashRecErrorIs(ae.Error, want) {
			report("ATTEMPTS", id, a.Token, "error %d of %d is for attempt %d, want %d, and says %.200q, want %q (Fail=%d FailBy=%s)",
				i+1, len(in.Errors), ae.Attempt, i+1, ae.Error, want, a.Fail, a.FailBy)
		}
	}
	crashRecCheckDones(report, sum, in, a.Token, l, torn)
}

// crashRecCheckDones checks the D lines of a done job: the attempt the runner recorded
// as the success ran at least once (unless a kill tore a line), and every other D line
// is an attempt the runner timed out. A success attempt found in more than one child is
// a duplicate execution, which at-least-once allows after a crash.
func crashRecCheckDones(report crashRecReport, sum *crashRecSummary, in *jobrun.Info, token string, l *crashRecLedger, torn bool) {
	successes := 0
	for _, e := range l.dones[in.ID] {
		switch {
		case e.n == in.Attempt:
			successes++
		case e.n < in.Attempt && e.n <= len(in.Errors) && strings.Contains(in.Errors[e.n-1].Error, "timed out"):
		default:
			report("ATTEMPTS", in.ID, token, "handler succeeded on attempt %d (%v), but the job is done after attempt %d",
				e.n, e, in.Attempt)
		}
	}
	if successes == 0 && !torn {
		report("DONE WITHOUT SUCCESS", in.ID, token, "stored as done after attempt %d, but no handler run of it returned nil", in.Attempt)
	}
	if successes > 1 {
		sum.duplicates++
	}
	sum.maxDone = max(sum.maxDone, successes)
}

// crashRecCheckTick checks a stored job of a schedule: it fails its first attempt if
// its fire's second is a multiple of 3, and never starts before its fire time.
func crashRecCheckTick(report crashRecReport, sum *crashRecSummary, in *jobrun.Info, token string, l *crashRecLedger, torn bool) {
	for _, e := range l.byID[in.ID] {
		if e.kind == 'S' && e.t1 < in.FireAt.UnixNano() {
			report("RAN EARLY", in.ID, token, "attempt %d started at %v, before its fire time", e.n, time.Unix(0, e.t1))
		}
	}
	if in.State != jobrun.StateDone {
		if in.State == jobrun.StateFailed {
			sum.failed++
		}
		report("TICK", in.ID, token, "state %s after the drain, want done (attempt %d, last error %.200q)", in.State, in.Attempt, in.LastError)
		return
	}
	fails := 0
	if crashRecTickFails(in.FireAt) {
		fails = 1
	}
	if in.Attempt != fails+1 || len(in.Errors) != fails {
		report("ATTEMPTS", in.ID, token, "done after %d attempts with %d errors, want %d and %d", in.Attempt, len(in.Errors), fails+1, fails)
	}
	crashRecCheckDones(report, sum, in, token, l, torn)
}

// crashRecCheckUnique checks that no unique key ever had two unfinished jobs at once.
//
// The runner's [CreatedAt, FinishedAt] intervals cannot show it: CreatedAt is when
// Enqueue was called, and the insert comes later, in a commit that may follow the one
// that finished the previous holder. The check uses instead, for a job B that held the
// key, a time by which B was surely inserted: the earliest of its E line's t1 (taken
// after Enqueue returned, so after B's commit) and its S lines (a handler starts after
// the claim, after the insert). For every job A that held the same key with a smaller
// ID (IDs grow with commit order, so A was inserted first), A's FinishedAt must be
// before that time:
//
//   - if the runner is right, A's finishing commit came before B's inserting commit,
//     and FinishedAt, a time read no later than A's commit, is before B's insert,
//     before B's E and S lines;
//   - if FinishedAt is at or after that time, A's finishing commit, which cannot come
//     before the time it records, came after B was inserted: at B's insert both were
//     unfinished, a violation.
//
// The ErrDuplicate answers are checked too: the job each names must hold the same kind
// and key, and, for Enqueue and EnqueueMany, must have been unfinished when the call
// began (t0): its refusal was decided in a commit after t0, so the holder's finishing
// commit, later still, records a FinishedAt after t0. EnqueueTx decides in the
// caller's transaction, which may run between the commit loop reading the time for a
// commit and that commit, so only the holder's identity is checked there.
//
// Both rely on the wall clock not stepping back during the campaign.
func crashRecCheckUnique(p *crashRecProblems, sum *crashRecSummary, holders map[string][]crashRecHolder,
	infos map[jobrun.ID]*jobrun.Info, l *crashRecLedger) {
	show := func(ns int64) string {
		if ns == math.MaxInt64 {
			return "never"
		}
		return time.Unix(0, ns).Format("15:04:05.000000")
	}
	for _, key := range slices.Sorted(maps.Keys(holders)) {
		hs := holders[key] // in ID order: the scan went up the IDs
		sum.uniqueJobs += len(hs)
		var prev *crashRecHolder // the earlier holder that finished last
		for i := range hs {
			b := &hs[i]
			if prev != nil {
				if b.created.UnixNano() < prev.finished {
					sum.naiveOverlaps++
				}
				if b.inserted != 0 {
					sum.uniqueChecked++
					if prev.finished >= b.inserted {
						sum.uniqueViolations++
						p.add("UNIQUE VIOLATION", "key %s: job %d (%s) was inserted by %s, but job %d (%s), inserted before it, "+
							"finished at %s\n  ledger of %d: %v\n  ledger of %d: %v",
							key, b.id, b.token, show(b.inserted), prev.id, prev.token, show(prev.finished),
							prev.id, l.byToken[prev.token], b.id, l.byToken[b.token])
					}
				}
			}
			if prev == nil || b.finished > prev.finished {
				prev = b
			}
		}
	}

	for _, e := range l.dups {
		sum.dupAnswers++
		key := crashRecTokenKey(e.token)
		in := infos[e.id]
		switch {
		case in == nil:
			p.add("DUPLICATE ANSWER", "%v: refused for job %d, which is not stored", e, e.id)
		case in.Kind != crashRecKind || in.UniqueKey != key || key == "":
			p.add("DUPLICATE ANSWER", "%v: refused for job %d of kind %s with key %q, want key %q", e, e.id, in.Kind, in.UniqueKey, key)
		case strings.Contains(e.token, "-ux"):
		case in.State != jobrun.StateDone && in.State != jobrun.StateFailed && in.State != jobrun.StateCanceled:
		case in.FinishedAt.UnixNano() <= e.t0:
			p.add("DUPLICATE ANSWER", "%v: refused for job %d, which had finished at %s, before the call began",
				e, e.id, in.FinishedAt.Format("15:04:05.000000"))
		}
	}
}

// crashRecCheckFires checks one schedule's jobs, listed from the file. Let F1 < F2 <
// ... be their fire times and C1, C2, ... the CreatedAt of their jobs: the time of the
// commit that fired them. It asserts:
//
//   - no fire time twice (a restart or a kill mid-fire doubled it);
//   - every F is a time of the spec, and F <= C (never fired early);
//   - F(i+1) = Next(C(i)) for consecutive fires: after firing, the schedule's next fire
//     is the first time of the spec after that commit. That is the whole of the default
//     missed-fire policy: the earliest missed time fires once, the later ones that
//     passed before it was fired collapse into it, and nothing else may be missing.
//     Since a fire advances the schedule in its own commit, a kill cannot lose or add
//     one.
//
// Collapsed times are counted, with those that passed while no process ran; a late
// fire (one that collapsed times) is counted with whether it was the first fire of a
// restarted process, its catch-up. A late fire while a process was running is allowed
// as the same policy, because it needs only a stall of a second under load.
func crashRecCheckFires(p *crashRecProblems, sum *crashRecSummary, name, spec string, fires []crashRecFire, spans []crashRecSpan) {
	if len(fires) == 0 {
		// A campaign of a few seconds must see fires; a tiny one (JOBRUN_CRASH_CYCLES=1) may not.
		if d := spans[len(spans)-1].end.Sub(spans[0].start); d > 3*time.Second {
			p.add("NO FIRES", "schedule %s never fired during the %v campaign", name, d.Round(time.Millisecond))
		}
		return
	}
	sched, err := crashRecCron.Parse(spec)
	if err != nil {
		p.add("NO FIRES", "schedule %s: spec %q: %v", name, spec, err)
		return
	}
	slices.SortFunc(fires, func(a, b crashRecFire) int { return a.fireAt.Compare(b.fireAt) })
	sum.fires += len(fires)
	spanOf := func(at time.Time) (crashRecSpan, bool) {
		for _, s := range spans {
			if !at.Before(s.start) && !at.After(s.end) {
				return s, true
			}
		}
		return crashRecSpan{}, false
	}
	firstFire := map[int]time.Time{} // child -> its first fire of this schedule
	for _, f := range fires {
		if s, ok := spanOf(f.created); ok {
			if f.fireAt.Before(s.start) {
				sum.madeUp++ // its time passed while no process ran
			}
			if at, seen := firstFire[s.child]; !seen || f.created.Before(at) {
				firstFire[s.child] = f.created
			}
		} else {
			p.add("FIRE OUTSIDE ANY CHILD", "schedule %s: job %d fired %v at %v, when no child ran", name, f.id, f.fireAt, f.created)
		}
	}
	for i, f := range fires {
		if !sched.Next(f.fireAt.Add(-time.Nanosecond)).Equal(f.fireAt) {
			p.add("FIRE TIME", "schedule %s: job %d fires at %v, not a time of %q", name, f.id, f.fireAt, spec)
		}
		if f.created.Before(f.fireAt) {
			p.add("FIRE EARLY", "schedule %s: job %d for %v was enqueued early, at %v", name, f.id, f.fireAt, f.created)
		}
		if i == 0 {
			continue
		}
		prev := fires[i-1]
		if f.fireAt.Equal(prev.fireAt) {
			sum.firesDoubled++
			p.add("FIRE DOUBLED", "schedule %s: fire %v enqueued twice, as job %d (at %v) and job %d (at %v)",
				name, f.fireAt, prev.id, prev.created, f.id, f.created)
			continue
		}
		if want := sched.Next(prev.created); !f.fireAt.Equal(want) {
			var missing []string
			for g := sched.Next(prev.created); g.Before(f.fireAt) && len(missing) < 10; g = sched.Next(g) {
				missing = append(missing, g.Format("15:04:05"))
			}
			p.add("FIRE MISSING", "schedule %s: job %d fired %v at %v, so the next fire is %v; the next stored one is %v (job %d); "+
				"missing: %v", name, prev.id, prev.fireAt, prev.created, want, f.fireAt, f.id, missing)
		}
		collapsed := 0
		s, ok := spanOf(prev.created)
		for g := sched.Next(prev.fireAt); g.Before(f.fireAt) && collapsed < 1e6; g = sched.Next(g) {
			collapsed++
			if ok && g.Before(s.start) {
				sum.collapsedDown++
			}
		}
		if collapsed > 0 {
			sum.collapsed += collapsed
			sum.lateFires++
			if ok && firstFire[s.child].Equal(prev.created) {
				sum.catchUps++
			}
		}
	}
}

// crashRecCheckFile runs bbolt's consistency check on db. On a database open for
// writing it checks in a writable transaction, which it rolls back: bbolt's Check in
// a read transaction is not safe while another transaction writes (its doc), and a
// runner's commit loop writes whenever a timed service is due, Run or not; a check in
// a read transaction then reports the pages such a commit took from the freelist as
// "unreachable unfreed".
func crashRecCheckFile(t *testing.T, db *bbolt.DB) {
	t.Helper()
	check := func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("bbolt check: %v", err)
		}
		return errCrashRecCheckDone
	}
	var err error
	if db.IsReadOnly() {
		err = db.View(check)
	} else {
		err = db.Update(check)
	}
	if !errors.Is(err, errCrashRecCheckDone) {
		t.Errorf("bbolt check: %v", err)
	}
}

var errCrashRecCheckDone = errors.New("crashtest: check done")

func crashRecTotal(c map[jobrun.State]int) int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

func crashRecUnfinished(c map[jobrun.State]int) int {
	return c[jobrun.StateScheduled] + c[jobrun.StateReady] + c[jobrun.StateRetrying] + c[jobrun.StateRunning]
}

// The child.

// crashRecLog is the child's end of the ledger.
type crashRecLog struct{ f *os.File }

// add appends one line with a single write.
func (l *crashRecLog) add(kind byte, id jobrun.ID, token string, n int, t0, t1 int64) {
	b := make([]byte, 0, 96)
	b = append(b, kind, ' ')
	b = strconv.AppendUint(b, uint64(id), 10)
	b = append(b, ' ')
	b = append(b, token...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, t0, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, t1, 10)
	b = append(b, '\n')
	if _, err := l.f.Write(b); err != nil {
		crashRecFatal("write ledger: %v", err)
	}
}

// run appends a handler's line: S, Z or D.
func (l *crashRecLog) run(kind byte, id jobrun.ID, token string, attempt int) {
	now := time.Now().UnixNano()
	l.add(kind, id, token, attempt, now, now)
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
	fatal := func(format string, args ...any) {
		if mode == "drain" {
			t.Fatalf(format, args...)
		}
		crashRecFatal(format, args...)
	}
	f, err := os.OpenFile(ledgerPath, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ledger := &crashRecLog{f: f}

	r, err := jobrun.Open(dbPath,
		jobrun.WithQueue(jobrun.DefaultQueue, crashRecWorkers, nil),
		jobrun.WithQueue(crashRecCronQ, 2, nil),
		jobrun.WithMaxRecoveries(1000))
	if err != nil {
		fatal("open: %v", err)
	}
	var handlers sync.WaitGroup // running handlers, abandoned ones included
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[crashRecArgs]) error {
		handlers.Add(1)
		defer handlers.Done()
		return crashRecHandle(ctx, ledger, job)
	}, jobrun.Backoff(time.Millisecond, time.Millisecond), jobrun.MaxAttempts(5))
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[crashRecTickArgs]) error {
		token := crashRecTickToken(job.Schedule, job.FireAt)
		ledger.run('S', job.ID, token, job.Attempt)
		if job.Attempt == 1 && crashRecTickFails(job.FireAt) {
			return fmt.Errorf("crashtest: planned tick failure of %s", token)
		}
		ledger.run('D', job.ID, token, job.Attempt)
		return nil
	}, jobrun.Queue(crashRecCronQ), jobrun.Backoff(time.Millisecond, time.Millisecond), jobrun.MaxAttempts(5))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Declared at every start, as an application does: the stored timetable stays.
	for _, s := range crashRecSchedules {
		if err := r.Schedule(ctx, s.name, s.spec, crashRecTickArgs{Name: s.name}); err != nil {
			fatal("schedule %s: %v", s.name, err)
		}
	}
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()

	if mode == "drain" {
		crashRecDrainChild(ctx, t, r, cancel, ran, &handlers)
		return
	}

	backlog := 0
	if c, err := r.Counts(ctx, jobrun.DefaultQueue); err == nil {
		backlog = crashRecUnfinished(c)
	} else {
		crashRecFatal("counts: %v", err)
	}
	crashRecProduce(r, ledger, backlog <= crashRecMaxBacklog)
	// Run jobs until killed.
	select {
	case err := <-ran:
		crashRecFatal("Run returned %v", err)
	case <-time.After(time.Hour):
		crashRecFatal("not killed within an hour")
	}
}

// crashRecHandle is the handler of the main kind: see crashRecArgs.
func crashRecHandle(ctx context.Context, ledger *crashRecLog, job *jobrun.Job[crashRecArgs]) error {
	a := job.Args
	ledger.run('S', job.ID, a.Token, job.Attempt)
	if a.Snooze > 0 && time.Since(job.CreatedAt) < a.Snooze {
		ledger.run('Z', job.ID, a.Token, job.Attempt)
		return jobrun.Snooze(a.Snooze / 3)
	}
	if a.FailBy == "permanent" {
		return jobrun.Permanent(fmt.Errorf("crashtest: %s", crashRecFailText["permanent"][0]))
	}
	if job.Attempt <= a.Fail {
		switch a.FailBy {
		case "panic":
			panic(fmt.Sprintf("crashtest: planned panic on attempt %d", job.Attempt))
		case "timeout":
			<-ctx.Done()
			return fmt.Errorf("crashtest: planned timeout on attempt %d: %w", job.Attempt, context.Cause(ctx))
		case "abandon":
			time.Sleep(crashRecTimeout + crashRecTimeout/2) // ignores ctx: the runner abandons this run
			return errors.New("crashtest: planned overrun of the timeout, ignoring the context")
		default:
			return fmt.Errorf("crashtest: planned failure on attempt %d of %d", job.Attempt, a.Fail)
		}
	}
	// A little work, to widen the windows between start, success and commit.
	if d := rand.N(600 * time.Microsecond); d > 300*time.Microsecond {
		time.Sleep(d)
	}
	ledger.run('D', job.ID, a.Token, job.Attempt)
	return nil
}

// crashRecDrainChild waits until every job is final, removes the schedules, waits for
// their last jobs, checks the file and closes the runner, so the test returns (and
// the process exits 0, goleak satisfied).
func crashRecDrainChild(ctx context.Context, t *testing.T, r *jobrun.Runner, cancel context.CancelFunc, ran chan error,
	handlers *sync.WaitGroup) {
	defer func() {
		cancel()
		if err := <-ran; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
		crashRecCheckFile(t, r.DB())
		if err := r.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		handlers.Wait() // abandoned handlers, which Close does not wait for
	}()
	deadline := time.Now().Add(crashRecDrainLimit - 10*time.Second)
	// wait polls Counts of queue until none of its jobs is unfinished. Nothing is
	// enqueued in the drain, so with fixed set the total may not change.
	wait := func(queue string, fixed bool) bool {
		var first, last map[jobrun.State]int
		changed := time.Now()
		for {
			c, err := r.Counts(ctx, queue)
			if err != nil {
				t.Errorf("counts: %v", err)
				return false
			}
			if first == nil {
				first = c
			}
			if fixed && crashRecTotal(c) != crashRecTotal(first) {
				t.Errorf("drain: queue %s: the counters' total went from %d to %d with nothing enqueued: %v (after open: %v)",
					queue, crashRecTotal(first), crashRecTotal(c), c, first)
				return false
			}
			if crashRecUnfinished(c) == 0 {
				t.Logf("drain: queue %s: every job final: %d done, %d failed, %d canceled; after open: %v",
					queue, c[jobrun.StateDone], c[jobrun.StateFailed], c[jobrun.StateCanceled], first)
				return true
			}
			if !maps.Equal(c, last) {
				last, changed = c, time.Now()
			}
			if time.Since(changed) > crashRecDrainStall || time.Now().After(deadline) {
				t.Errorf("drain: queue %s: stalled, jobs still not final: %v (after open: %v)", queue, c, first)
				return false
			}
			select {
			case err := <-ran:
				ran <- err
				t.Errorf("drain: Run returned early: %v", err)
				return false
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	if !wait(jobrun.DefaultQueue, true) {
		return
	}
	list, err := r.Schedules(ctx)
	if err != nil {
		t.Errorf("schedules: %v", err)
		return
	}
	if len(list) != len(crashRecSchedules) {
		t.Errorf("drain: %d schedules stored, want %d: %+v", len(list), len(crashRecSchedules), list)
	}
	for _, s := range crashRecSchedules {
		if err := r.Unschedule(ctx, s.name); err != nil {
			t.Errorf("unschedule %s: %v", s.name, err)
		}
	}
	wait(crashRecCronQ, false)
}

// crashRecProducer enqueues one crash-mode child's jobs.
type crashRecProducer struct {
	r      *jobrun.Runner
	ledger *crashRecLog
	prefix string
	n      atomic.Int64
}

// args returns a new job's args with a random behaviour. src names the call (see
// crashRecArgs), key is the unique key or "", and timeout says whether the job is
// enqueued with Timeout(crashRecTimeout).
func (p *crashRecProducer) args(src, key string, timeout bool) crashRecArgs {
	token := p.prefix + src + strconv.FormatInt(p.n.Add(1), 10)
	if key != "" {
		token += "-" + key
	}
	a := crashRecArgs{Token: token, Src: src, Key: key, Timeout: timeout}
	switch x := rand.IntN(20); {
	case x < 4:
		a.Fail, a.FailBy = 1, "error"
	case x < 5:
		a.Fail, a.FailBy = 2, "error"
	case x < 7:
		a.Fail, a.FailBy = 1, "panic"
	case x == 7 && timeout:
		a.Fail, a.FailBy = 1, "timeout"
	case x == 8 && timeout:
		a.Fail, a.FailBy = 1, "abandon"
	case x == 9:
		a.Fail, a.FailBy = 1, "permanent"
	}
	if rand.IntN(10) == 0 {
		a.Snooze = 20*time.Millisecond + rand.N(20*time.Millisecond)
	}
	return a
}

// wait adds a Delay or At to every seventh job (by i) and records when it is due:
// the runner computes the run time from a clock reading after this one, so NotBefore
// is no later than it.
func (p *crashRecProducer) wait(a *crashRecArgs, i int) []jobrun.EnqueueOption {
	switch i % 7 {
	case 3:
		d := 20 * time.Millisecond
		a.NotBefore = time.Now().Add(d).UnixNano()
		return []jobrun.EnqueueOption{jobrun.Delay(d)}
	case 5:
		at := time.Now().Add(rand.N(40 * time.Millisecond))
		a.NotBefore = at.UnixNano()
		return []jobrun.EnqueueOption{jobrun.At(at)}
	}
	return nil
}

func crashRecNow() int64 { return time.Now().UnixNano() }

// enqueue calls Enqueue and writes E or, for a unique job refused, U.
func (p *crashRecProducer) enqueue(ctx context.Context, a crashRecArgs, opts ...jobrun.EnqueueOption) {
	t0 := crashRecNow()
	id, err := p.r.Enqueue(ctx, a, opts...)
	t1 := crashRecNow()
	switch {
	case err == nil:
		p.ledger.add('E', id, a.Token, 0, t0, t1)
	case a.Key != "" && errors.Is(err, jobrun.ErrDuplicate):
		p.ledger.add('U', id, a.Token, 0, t0, t1)
	default:
		crashRecFatal("enqueue: %v", err)
	}
}

// enqueueMany calls EnqueueMany and writes E or U for each job. Which jobs a unique
// batch stored is read back by Get: a stored job carries its own token.
func (p *crashRecProducer) enqueueMany(ctx context.Context, batch []jobrun.Args, opts ...jobrun.EnqueueOption) {
	t0 := crashRecNow()
	ids, err := p.r.EnqueueMany(ctx, batch, opts...)
	t1 := crashRecNow()
	if err != nil && !errors.Is(err, jobrun.ErrDuplicate) {
		crashRecFatal("enqueue many: %v", err)
	}
	if len(ids) != len(batch) {
		crashRecFatal("enqueue many: %d IDs for %d jobs (%v)", len(ids), len(batch), err)
	}
	for j, id := range ids {
		a := batch[j].(crashRecArgs)
		stored := err == nil
		if !stored {
			if a.Key == "" {
				crashRecFatal("enqueue many: %v for jobs without a unique key", err)
			}
			in, gerr := p.r.Get(ctx, id)
			if gerr != nil {
				crashRecFatal("enqueue many: get job %d: %v", id, gerr)
			}
			var got crashRecArgs
			if uerr := json.Unmarshal(in.RawArgs, &got); uerr != nil {
				crashRecFatal("enqueue many: job %d: args %s: %v", id, in.RawArgs, uerr)
			}
			stored = got.Token == a.Token
		}
		if stored {
			p.ledger.add('E', id, a.Token, 0, t0, t1)
		} else {
			p.ledger.add('U', id, a.Token, 0, t0, t1)
		}
	}
}

// enqueueTx calls EnqueueTx in a db.Update that also writes the application's bucket,
// and rolls it back if rollback; it writes E, U or R.
func (p *crashRecProducer) enqueueTx(ctx context.Context, a crashRecArgs, rollback bool, opts ...jobrun.EnqueueOption) {
	var id jobrun.ID
	dup := false
	t0 := crashRecNow()
	err := p.r.DB().Update(func(tx *bbolt.Tx) error {
		var err error
		id, err = p.r.EnqueueTx(ctx, tx, a, opts...)
		if a.Key != "" && errors.Is(err, jobrun.ErrDuplicate) {
			dup = true
		}
		if err != nil {
			return err
		}
		b, err := tx.CreateBucketIfNotExists(crashRecAppBucket)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(a.Token), binary.BigEndian.AppendUint64(nil, uint64(id))); err != nil {
			return err
		}
		if rollback {
			return errCrashRecRollback
		}
		return nil
	})
	t1 := crashRecNow()
	switch {
	case err == nil:
		p.ledger.add('E', id, a.Token, 0, t0, t1)
	case dup:
		p.ledger.add('U', id, a.Token, 0, t0, t1)
	case errors.Is(err, errCrashRecRollback):
		p.ledger.add('R', id, a.Token, 0, t0, t1)
	default:
		crashRecFatal("enqueue in tx: %v", err)
	}
}

// crashRecProduce enqueues one cycle's jobs from concurrent producers and returns when
// they are done. bulk false leaves out all but the unique producers, to bound the
// backlog in a long campaign.
func crashRecProduce(r *jobrun.Runner, ledger *crashRecLog, bulk bool) {
	ctx := context.Background()
	p := &crashRecProducer{r: r, ledger: ledger, prefix: fmt.Sprintf("c%s-p%d-", os.Getenv(crashRecEnvCycle), os.Getpid())}
	var wg sync.WaitGroup
	for range crashRecUniqueProducers {
		wg.Go(func() {
			for i := range crashRecUniquePerProd {
				key := "k" + strconv.Itoa(rand.IntN(crashRecKeys))
				opts := []jobrun.EnqueueOption{jobrun.UniqueKey(key)}
				if i%4 == 1 {
					opts = append(opts, jobrun.Delay(rand.N(30*time.Millisecond)+time.Millisecond))
				}
				switch i % 3 {
				case 0:
					timeout := rand.IntN(4) == 0
					a := p.args("ue", key, timeout)
					if timeout {
						opts = append(opts, jobrun.Timeout(crashRecTimeout))
					}
					p.enqueue(ctx, a, opts...)
				case 1:
					// Two jobs of one key in one batch: the second is always refused.
					p.enqueueMany(ctx, []jobrun.Args{p.args("um", key, false), p.args("um", key, false)}, opts...)
				case 2:
					p.enqueueTx(ctx, p.args("ux", key, false), i%5 == 4, opts...)
				}
			}
		})
	}
	if !bulk {
		wg.Wait()
		return
	}
	for range crashRecSingleProducers {
		wg.Go(func() {
			for i := range crashRecSinglePerProd {
				timeout := rand.IntN(4) == 0
				a := p.args("e", "", timeout)
				opts := p.wait(&a, i)
				if timeout {
					opts = append(opts, jobrun.Timeout(crashRecTimeout))
				}
				p.enqueue(ctx, a, opts...)
			}
		})
	}
	wg.Go(func() {
		for i := range crashRecBatches {
			var opts []jobrun.EnqueueOption
			notBefore := int64(0)
			switch i {
			case 1:
				d := 20 * time.Millisecond
				notBefore = time.Now().Add(d).UnixNano()
				opts = append(opts, jobrun.Delay(d))
			case 2:
				opts = append(opts, jobrun.Timeout(crashRecTimeout))
			}
			batch := make([]jobrun.Args, crashRecBatchSize)
			for j := range batch {
				a := p.args("m", "", i == 2)
				a.NotBefore = notBefore
				batch[j] = a
			}
			p.enqueueMany(ctx, batch, opts...)
		}
	})
	wg.Go(func() {
		for i := range crashRecTxs {
			timeout := rand.IntN(4) == 0
			a := p.args("x", "", timeout)
			opts := p.wait(&a, i)
			if timeout {
				opts = append(opts, jobrun.Timeout(crashRecTimeout))
			}
			p.enqueueTx(ctx, a, i%5 == 4, opts...)
		}
	})
	wg.Wait()
}
