package jobrun_test

// TestCrashFlows is the crash campaign of durable functions: it checks, with real
// SIGKILLs, what Send, Step, Sleep, WaitFor, InvokeAll and SendEvent promise across
// crashes. docs/RELIABILITY.md ("Crash campaign of durable functions") describes it
// for readers; this comment is the reference for the code.
//
// It runs as TestCrashRecovery does (crash_test.go), and shares its parent's helpers:
// the test binary starts itself again as a child (JOBRUN_CRASH_CHILD=1) that opens a
// runner on a file, sends events and runs the functions they start, and is killed
// with SIGKILL at a random moment once the ledger shows progress (crashFlowKillDelay);
// every fifth cycle is followed by a downtime of 150-450ms, longer than every Sleep,
// short timeout and backoff of the flows, so that they pass while no process runs.
// After every kill the parent runs bbolt's consistency check on the file. After the
// kill cycles a last child runs in drain mode until every job is final. The parent
// then opens the file and compares it with the ledger the children kept outside
// bbolt, one line per event, each written with a single write syscall.
//
// Every line is "<what> <id> <token> <n> <t0> <t1>", times in Unix nanoseconds of the
// wall clock, which the runner's stored times also use:
//
//	P <seq> <token> <dup> <t0> <t1>       Send of "order/placed" returned event seq, called at t0, returned at t1; dup 1 if it was stored as a duplicate
//	A <seq> <token> <dup> <t0> <t1>       the same for an "order/ack" sent for the waiting run of order token
//	H <job> <token> <attempt> <t> <t>     a function's handler started (a run of flow-order, flow-audit or flow-notified)
//	K <job> <token>/<i> <attempt> <t> <t> the handler of child i of order token started
//	C <job> <step>@<call> <attempt> <t> <t> the function of Step called step was called, before it did anything
//	R <job> <step>@<call> <attempt> <t> <t> Step returned the value that call made
//
// A C line's time is read inside the step's function, so after the StartedAt that
// Step reads before calling it: the call whose result Step stored has its line at or
// after the stored StartedAt, and every earlier call (one that failed, or whose
// process was killed before the step's commit) has its line before it. Every call
// has a name unique in the campaign (c<cycle>.<n>), which the value it stores carries
// (crashFlowResult), so an R line says which call's value Step returned: Step returns
// a value only once it is stored.
//
// What a crash-mode child does. Four functions are registered: flow-order and
// flow-audit On "order/placed" (fan-out), flow-notified On "order/notified", and the
// child kind flow-child; nothing is registered on "order/ack". Each order's data
// (crashFlowOrder) carries a random plan, and every run acts on its args and stored
// history only, so its behaviour survives crashes:
//   - Three producers Send 6 orders each (one each if the child finds more than
//     crashFlowMaxBacklog unfinished jobs), 0-20ms apart: a third without an event
//     ID, a third with an ID of their own (half of them sent again at once with the
//     same ID, as a client retrying: a duplicate), a third with one of four IDs shared
//     by the whole campaign (after the first, every one is a duplicate).
//   - flow-order: Step "reserve", Sleep "nap" (10-50ms), Step "charge", WaitFor
//     "wait-ack" of the "order/ack" whose token matches (3s timeout if the plan has
//     an ack sent, else 20-80ms and no ack is ever sent), InvokeAll "kids" of 2 or 3
//     children, Step "total" of the children's results, one or two SendEvent
//     "notify" steps ("notify", "notify#2") of "order/notified", Step "finish", and
//     SetResult of a summary.
//   - flow-audit: Step "audit-1", Sleep "audit-nap" (5-30ms), Step "audit-2", which
//     in one plan in eight fails with Permanent, failing the run.
//   - flow-notified: Step "note", and SetResult.
//   - flow-child: SetResult of a value of its token and index; some fail their first
//     attempt, and one order in eight has a child that fails for good (Permanent),
//     which InvokeAll returns to the parent as failed.
//   - A step listed in the plan's Fail fails its first call: its function returns an
//     error unless the job's stored errors already hold that step's planned failure.
//   - The acker sends the "order/ack" of each run whose plan asks for one once the
//     run's WaitFor has been called: told by the handler when WaitFor returns its
//     suspension, and by listing the waiting runs every 50ms (for waits a killed
//     child left). It sends once per run per child, a third of the time twice with
//     one event ID. For half the plans (Early) the handler returns the suspension
//     only once the ack is sent, so the ack commits first and the suspension's look
//     back must find it.
//
// What the parent checks (crashFlowVerify and the functions it calls say why each is
// sound):
//   - bbolt's tx.Check after every kill, in the drain child and at the end;
//   - every Send the ledger acknowledges is stored, with its token, and a duplicate
//     exactly when Send said so; of the events sharing an ID, the first is the
//     original and every later one its duplicate, with its runs;
//   - every original event has exactly one run of each function registered on its
//     name and no other, each naming the event and carrying its data as args; no
//     run exists that its event does not list, and a duplicate starts none;
//   - no step ran after its commit: for each stored step, exactly one C line of it is
//     at or after its StartedAt (the committed call itself), the stored value is that
//     call's, and every R line of the step names that call (a step run again and
//     stored again would have returned two calls' values); within one process a step
//     was called before its committed call only for its planned failure; and no step
//     was called that its final job did not store;
//   - a job's errors are exactly its plan's: one per failing step, each on attempt 1
//     (the attempt count restarts at every stored step), and the Permanent one;
//   - no step after a Sleep, a WaitFor or an InvokeAll was called before it ended:
//     its C lines come after the sleep's wake-up, the wait's end and every child's
//     finish; a sleep's wake-up is its duration after its call, and no wait times out
//     early;
//   - a wait received the first original ack of its token committed at or after the
//     end of the run's previous step (where its look back begins: a WaitFor call that
//     a kill cut off before its suspension came after it), or timed out, and then no
//     such ack came before its timeout; an order planned without an ack has none, and
//     no ack came before the previous step's end;
//   - InvokeAll's children are exactly the jobs naming the run as Parent, each with
//     its planned outcome and result, and the run's "total" step and result hold the
//     children's results;
//   - each SendEvent step stored exactly one "order/notified" event with its token
//     and step name, whose run is done; no other event of that name exists;
//   - every job is final as its plan says, and Counts equals a recount by Get.
//
// Environment: JOBRUN_FLOW_CRASH_CYCLES sets the number of kill cycles (default 30, 8
// with -short); JOBRUN_FLOW_CRASH_DIR keeps the database and ledger in that directory.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobrun/jobrun"
)

const (
	crashFlowEnvCycles = "JOBRUN_FLOW_CRASH_CYCLES" // parent: number of kill cycles
	crashFlowEnvDir    = "JOBRUN_FLOW_CRASH_DIR"    // parent: keep the files here

	crashFlowCycles      = 30 // default number of kill cycles
	crashFlowShortCycles = 8  // with -short; every fifth cycle (3, 8, ...) is followed by a downtime

	crashFlowProducers  = 3   // goroutines sending orders
	crashFlowPerProd    = 6   // Sends each
	crashFlowSharedIDs  = 4   // event IDs shared by the whole campaign: shared-0..shared-3
	crashFlowMaxBacklog = 300 // unfinished jobs above which a child sends one order per producer
	crashFlowWorkers    = 8   // of the default queue

	crashFlowAckTimeout = 3 * time.Second       // the wait of an order planned with an ack
	crashFlowScanEvery  = 50 * time.Millisecond // the acker lists the waiting runs

	crashFlowPlaced   = "order/placed"
	crashFlowAcked    = "order/ack"
	crashFlowNotified = "order/notified"

	crashFlowOrderKind    = "flow-order"
	crashFlowAuditKind    = "flow-audit"
	crashFlowNotifiedKind = "flow-notified"
	crashFlowChildKind    = "flow-child"

	crashFlowPermText  = "crashflow: planned permanent failure"
	crashFlowChildText = "crashflow: planned failure of the child's first attempt"
)

var crashFlows = crashRecTest{name: "TestCrashFlows", killDelay: crashFlowKillDelay}

// crashFlowFunctions are the functions registered on each event name.
var crashFlowFunctions = map[string][]string{
	crashFlowPlaced:   {crashFlowOrderKind, crashFlowAuditKind},
	crashFlowNotified: {crashFlowNotifiedKind},
	crashFlowAcked:    nil,
}

// The Steps of each function, in the order a run reaches them; the plan's Fail takes
// its steps from them.
var (
	crashFlowOrderSteps = []string{"reserve", "charge", "total", "finish"}
	crashFlowAuditSteps = []string{"audit-1", "audit-2"}
)

// crashFlowOrder is the data of an "order/placed" event, and so the args of its runs:
// the plan of both.
type crashFlowOrder struct {
	Token      string   `json:"token"`
	NapMS      int      `json:"nap_ms"`                // flow-order's Sleep
	Ack        bool     `json:"ack,omitempty"`         // an ack is sent for the wait; without, it times out
	Early      bool     `json:"early,omitempty"`       // with Ack: the handler returns WaitFor's suspension once the ack is sent
	WaitMS     int      `json:"wait_ms"`               // the wait's timeout
	Children   int      `json:"children"`              // InvokeAll's batch
	ChildFail  int      `json:"child_fail,omitempty"`  // bit i-1: child i fails its first attempt
	Lost       int      `json:"lost,omitempty"`        // the child (from 1) that fails for good, 0 for none
	Notify     int      `json:"notify"`                // SendEvent steps
	AuditNapMS int      `json:"audit_nap_ms"`          // flow-audit's Sleep
	AuditFails bool     `json:"audit_fails,omitempty"` // flow-audit's audit-2 fails with Permanent
	Fail       []string `json:"fail,omitempty"`        // steps whose first call fails
}

// The runs of an order, one type per function (Kind names it) with the same fields.
type (
	crashFlowOrderRun crashFlowOrder
	crashFlowAuditRun crashFlowOrder
)

func (crashFlowOrderRun) Kind() string { return crashFlowOrderKind }
func (crashFlowAuditRun) Kind() string { return crashFlowAuditKind }

// crashFlowAck is the data of an "order/ack".
type crashFlowAck struct {
	Token string `json:"token"`
	From  string `json:"from"` // the child that sent it: c<cycle>
}

// crashFlowNotice is the data of an "order/notified", sent by a SendEvent step, and
// the args of its run.
type crashFlowNotice struct {
	Token string `json:"token"`
	Step  string `json:"step"` // the step's key: notify, notify#2
}

type crashFlowNoticeRun crashFlowNotice

func (crashFlowNoticeRun) Kind() string { return crashFlowNotifiedKind }

// crashFlowChildArgs are the args of a child of InvokeAll "kids".
type crashFlowChildArgs struct {
	Token     string `json:"token"`
	I         int    `json:"i"` // from 1
	FailFirst bool   `json:"fail_first,omitempty"`
	Lost      bool   `json:"lost,omitempty"`
}

func (crashFlowChildArgs) Kind() string { return crashFlowChildKind }

// crashFlowChildResult is a child's result.
type crashFlowChildResult struct {
	Token string `json:"token"`
	I     int    `json:"i"`
	V     int    `json:"v"`
}

// crashFlowValue is the value child i of the order token returns.
func crashFlowValue(token string, i int) int { return 1000*i + len(token) }

// crashFlowSummary is flow-order's result, and its step "finish"'s.
type crashFlowSummary struct {
	Token  string `json:"token"`
	Acked  bool   `json:"acked"`  // the wait received an ack
	Values []int  `json:"values"` // each child's value, -1 for one that did not end done
}

func crashFlowFailText(step string) string {
	return fmt.Sprintf("crashflow: planned failure of step %q", step)
}

func crashFlowMS(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// crashFlowPlan draws an order's plan.
func crashFlowPlan(token string) crashFlowOrder {
	a := crashFlowOrder{Token: token, NapMS: 10 + rand.IntN(40), Children: 2 + rand.IntN(2), Notify: 1 + rand.IntN(2),
		AuditNapMS: 5 + rand.IntN(25)}
	if rand.IntN(4) != 0 {
		a.Ack, a.Early, a.WaitMS = true, rand.IntN(2) == 0, int(crashFlowAckTimeout/time.Millisecond)
	} else {
		a.WaitMS = 20 + rand.IntN(60)
	}
	for _, s := range slices.Concat(crashFlowOrderSteps, crashFlowAuditSteps) {
		if rand.IntN(4) == 0 {
			a.Fail = append(a.Fail, s)
		}
	}
	if rand.IntN(8) == 0 {
		a.AuditFails = true
		a.Fail = slices.DeleteFunc(a.Fail, func(s string) bool { return s == "audit-2" })
	}
	if rand.IntN(8) == 0 {
		a.Lost = 1 + rand.IntN(a.Children)
	}
	for i := range a.Children {
		if i+1 != a.Lost && rand.IntN(4) == 0 {
			a.ChildFail |= 1 << i
		}
	}
	return a
}

func TestCrashFlows(t *testing.T) {
	if os.Getenv(crashRecEnvChild) == "1" {
		crashFlowChild(t)
		return
	}
	switch runtime.GOOS {
	case "windows", "plan9", "js", "wasip1":
		t.Skipf("crash test needs Unix processes and SIGKILL; GOOS=%s", runtime.GOOS)
	}
	cycles := crashRecCycleCount(t, crashFlowEnvCycles, crashFlowCycles, crashFlowShortCycles)
	dbPath, ledgerPath := crashRecFiles(t, crashFlowEnvDir)

	start := time.Now()
	torn := map[int64]bool{} // where kills tore the last ledger line
	var segments []int64     // the ledger's size when each child started
	downtimes := 0
	for c := 1; c <= cycles; c++ {
		segments = append(segments, crashRecFileSize(t, ledgerPath))
		_, at, ok := crashRecKillCycle(t, crashFlows, c, dbPath, ledgerPath)
		if ok {
			torn[at] = true
		}
		crashRecCheckKilled(t, c, dbPath)
		if c%5 == 3 && c < cycles {
			// Sleeps, short timeouts and backoffs pass while no process runs: the next
			// child finds them due at its start.
			downtimes++
			time.Sleep(150*time.Millisecond + rand.N(300*time.Millisecond))
		}
	}
	segments = append(segments, crashRecFileSize(t, ledgerPath))
	crashRecDrain(t, crashFlows, cycles+1, dbPath, ledgerPath)
	childTime := time.Since(start)

	problems := &crashRecProblems{t: t, n: map[string]int{}}
	defer problems.summarize()
	ledger := crashFlowParseLedger(problems, ledgerPath, torn, segments)
	sum := crashFlowVerify(problems, dbPath, ledger)
	t.Logf("flow crash campaign: %d kill cycles (%d with a downtime after) + drain in %v (bbolt check after each kill); "+
		"%d ledger lines, %d torn by a kill",
		cycles, downtimes, childTime.Round(time.Millisecond), ledger.lines, len(torn))
	t.Logf("flow crash campaign: events: %d orders acknowledged (%d more committed without an ack line), %d stored "+
		"(%d duplicates by ID); %d acks acknowledged, %d stored (%d duplicates); %d sent by SendEvent; lost %d",
		sum.placedAcked, sum.placedUnacked, sum.placed, sum.placedDups, sum.acksAcked, sum.acks, sum.ackDups, sum.notices, sum.lost)
	t.Logf("flow crash campaign: runs: %d jobs (%d flow-order, %d flow-audit, %d flow-notified, %d children); "+
		"%d failed as planned (%d audits, %d children), not final %d, runs missing or doubled %d",
		sum.jobs, sum.kinds[crashFlowOrderKind], sum.kinds[crashFlowAuditKind], sum.kinds[crashFlowNotifiedKind],
		sum.kinds[crashFlowChildKind], sum.auditsFailed+sum.childrenLost, sum.auditsFailed, sum.childrenLost,
		sum.notFinal, sum.badRuns)
	t.Logf("flow crash campaign: steps: %d stored (%d Step, %d Sleep, %d WaitFor, %d InvokeAll, %d SendEvent); "+
		"%d Step calls, %d of them before the committed one (%d planned failures), %d values returned; "+
		"re-run after their commit: %d",
		sum.steps, sum.stepKinds["step"], sum.stepKinds["sleep"], sum.stepKinds["wait"], sum.stepKinds["invoke"],
		sum.stepKinds["send"], ledger.calls, sum.callsBefore, sum.plannedFails, ledger.nReturns, sum.reruns)
	t.Logf("flow crash campaign: waits: %d received their ack (%d of them an ack committed before the suspension, found by its look back), "+
		"%d timed out as planned, %d timed out after an ack that came too late; %d acks before the wait could be "+
		"reached (want 0); %d handler starts, %d child starts",
		sum.waitsReceived, sum.waitsLookback, sum.waitsTimedOut, sum.waitsLate, sum.acksBeforeCall,
		ledger.starts, ledger.childStarts)
}

// crashFlowKillDelay picks how long after its first progress a child is killed: 40%
// within 30ms (mid-recovery, the first sends and steps), 40% within 30-300ms (mid-flow:
// sleeps, waits, children), 20% within 300-900ms (the later steps and SendEvents).
func crashFlowKillDelay() time.Duration {
	switch x := rand.IntN(10); {
	case x < 4:
		return rand.N(30*time.Millisecond + 1)
	case x < 8:
		return 30*time.Millisecond + rand.N(270*time.Millisecond)
	default:
		return 300*time.Millisecond + rand.N(600*time.Millisecond)
	}
}

// The child.

// crashFlowWorld is what a child's handlers and producers share.
type crashFlowWorld struct {
	r      *jobrun.Runner
	ledger *crashRecLog
	cycle  string
	waits  chan crashFlowWait // runs whose WaitFor suspended, for the acker
	calls  atomic.Int64       // Step calls, for their names
}

// crashFlowWait is a run that asks for an ack; sent, if not nil, is closed once the
// acker sent it.
type crashFlowWait struct {
	id    jobrun.ID
	token string
	sent  chan struct{}
}

func crashFlowChild(t *testing.T) {
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

	r, err := jobrun.Open(dbPath,
		jobrun.WithQueue(jobrun.DefaultQueue, crashFlowWorkers, nil),
		jobrun.WithMaxRecoveries(1000))
	if err != nil {
		fatal("open: %v", err)
	}
	w := &crashFlowWorld{r: r, ledger: &crashRecLog{f: f}, cycle: os.Getenv(crashRecEnvCycle),
		waits: make(chan crashFlowWait, 10000)}
	fast := jobrun.Backoff(time.Millisecond, 5*time.Millisecond)
	jobrun.Handle(r, w.order, jobrun.On(crashFlowPlaced), fast)
	jobrun.Handle(r, w.audit, jobrun.On(crashFlowPlaced), fast)
	jobrun.Handle(r, w.notified, jobrun.On(crashFlowNotified), fast)
	jobrun.Handle(r, w.child, fast)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	acker := &crashFlowAcker{w: w, acked: map[jobrun.ID]bool{}}
	acked := make(chan error, 1)
	go func() { acked <- acker.run(ctx) }()

	if mode == "drain" {
		crashFlowDrainChild(ctx, t, r, cancel, ran, acked)
		return
	}
	c, err := r.Counts(ctx, "")
	if err != nil {
		crashRecFatal("counts: %v", err)
	}
	w.produce(crashRecUnfinished(c) <= crashFlowMaxBacklog)
	select {
	case err := <-ran:
		crashRecFatal("Run returned %v", err)
	case err := <-acked:
		crashRecFatal("acker: %v", err)
	case <-time.After(time.Hour):
		crashRecFatal("not killed within an hour")
	}
}

// crashFlowResult is what a Step of the campaign stores: the value, with the call
// that made it.
type crashFlowResult[R any] struct {
	Call string `json:"call"` // c<cycle>.<n>, unique in the campaign
	V    R      `json:"v"`
}

// crashFlowStep runs fn as the Step called name of the job in. Its function writes
// the C line of a new call first, and the value it stores names the call; once Step
// returns a value, an R line names the call that made it. A step listed in fail fails
// its first call: the function returns an error unless the job's errors, as the
// attempt's Info has them, hold the step's planned failure.
func crashFlowStep[R any](ctx context.Context, w *crashFlowWorld, in *jobrun.Info, fail []string, name string,
	fn func() (R, error)) (R, error) {
	call := "c" + w.cycle + "." + strconv.FormatInt(w.calls.Add(1), 10)
	res, err := jobrun.Step(ctx, name, func(ctx context.Context) (crashFlowResult[R], error) {
		w.ledger.run('C', in.ID, name+"@"+call, in.Attempt)
		if slices.Contains(fail, name) && !slices.ContainsFunc(in.Errors, func(e jobrun.AttemptError) bool {
			return strings.Contains(e.Error, crashFlowFailText(name))
		}) {
			return crashFlowResult[R]{}, errors.New(crashFlowFailText(name))
		}
		v, err := fn()
		return crashFlowResult[R]{Call: call, V: v}, err
	})
	if err != nil {
		return res.V, err
	}
	w.ledger.run('R', in.ID, name+"@"+res.Call, in.Attempt)
	return res.V, nil
}

// order is flow-order's handler: see crashFlowOrder.
func (w *crashFlowWorld) order(ctx context.Context, job *jobrun.Job[crashFlowOrderRun]) error {
	a := crashFlowOrder(job.Args)
	w.ledger.run('H', job.ID, a.Token, job.Attempt)
	if _, err := crashFlowStep(ctx, w, &job.Info, a.Fail, "reserve", func() (string, error) {
		return a.Token + "/reserved", nil
	}); err != nil {
		return err
	}
	if err := jobrun.Sleep(ctx, "nap", crashFlowMS(a.NapMS)); err != nil {
		return err
	}
	if _, err := crashFlowStep(ctx, w, &job.Info, a.Fail, "charge", func() (string, error) {
		return a.Token + "/charged", nil
	}); err != nil {
		return err
	}
	ack, acked, err := jobrun.WaitFor[crashFlowAck](ctx, "wait-ack", crashFlowAcked, jobrun.Match("token", a.Token),
		crashFlowMS(a.WaitMS))
	if err != nil {
		if a.Ack {
			wt := crashFlowWait{id: job.ID, token: a.Token}
			if a.Early {
				wt.sent = make(chan struct{})
			}
			select {
			case w.waits <- wt:
				if wt.sent != nil {
					// The ack commits before the suspension, which must find it.
					select {
					case <-wt.sent:
					case <-ctx.Done():
					}
				}
			default: // the acker's scan finds it
			}
		}
		return err
	}
	if acked && ack.Token != a.Token {
		return jobrun.Permanent(fmt.Errorf("crashflow: the wait of %s received the ack of %s", a.Token, ack.Token))
	}
	batch := make([]jobrun.Args, a.Children)
	for i := range batch {
		batch[i] = crashFlowChildArgs{Token: a.Token, I: i + 1, FailFirst: a.ChildFail&(1<<i) != 0, Lost: a.Lost == i+1}
	}
	kids, err := jobrun.InvokeAll[crashFlowChildResult](ctx, "kids", batch)
	if err != nil {
		return err
	}
	values, err := crashFlowStep(ctx, w, &job.Info, a.Fail, "total", func() ([]int, error) {
		v := make([]int, len(kids))
		for i, k := range kids {
			v[i] = -1
			if k.State == jobrun.StateDone && k.Result.Token == a.Token && k.Result.I == i+1 {
				v[i] = k.Result.V
			}
		}
		return v, nil
	})
	if err != nil {
		return err
	}
	for i := range a.Notify {
		key := "notify"
		if i > 0 {
			key += "#" + strconv.Itoa(i+1)
		}
		ev := jobrun.Event{Name: crashFlowNotified, Data: crashFlowNotice{Token: a.Token, Step: key}}
		if i == 1 {
			ev.ID = "n-" + a.Token // an ID of its own: deduplicates nothing
		}
		if _, err := jobrun.SendEvent(ctx, "notify", ev); err != nil {
			return err
		}
	}
	sum, err := crashFlowStep(ctx, w, &job.Info, a.Fail, "finish", func() (crashFlowSummary, error) {
		return crashFlowSummary{Token: a.Token, Acked: acked, Values: values}, nil
	})
	if err != nil {
		return err
	}
	return job.SetResult(sum)
}

// audit is flow-audit's handler.
func (w *crashFlowWorld) audit(ctx context.Context, job *jobrun.Job[crashFlowAuditRun]) error {
	a := crashFlowOrder(job.Args)
	w.ledger.run('H', job.ID, a.Token, job.Attempt)
	if _, err := crashFlowStep(ctx, w, &job.Info, a.Fail, "audit-1", func() (bool, error) { return true, nil }); err != nil {
		return err
	}
	if err := jobrun.Sleep(ctx, "audit-nap", crashFlowMS(a.AuditNapMS)); err != nil {
		return err
	}
	_, err := crashFlowStep(ctx, w, &job.Info, a.Fail, "audit-2", func() (bool, error) {
		if a.AuditFails {
			return false, jobrun.Permanent(errors.New(crashFlowPermText))
		}
		return true, nil
	})
	return err
}

// notified is flow-notified's handler.
func (w *crashFlowWorld) notified(ctx context.Context, job *jobrun.Job[crashFlowNoticeRun]) error {
	a := job.Args
	w.ledger.run('H', job.ID, a.Token+"|"+a.Step, job.Attempt)
	note, err := crashFlowStep(ctx, w, &job.Info, nil, "note", func() (string, error) { return a.Token + "|" + a.Step, nil })
	if err != nil {
		return err
	}
	return job.SetResult(note)
}

// child is flow-child's handler.
func (w *crashFlowWorld) child(ctx context.Context, job *jobrun.Job[crashFlowChildArgs]) error {
	a := job.Args
	w.ledger.run('K', job.ID, a.Token+"/"+strconv.Itoa(a.I), job.Attempt)
	switch {
	case a.Lost:
		return jobrun.Permanent(errors.New(crashFlowPermText))
	case a.FailFirst && job.Attempt == 1:
		return errors.New(crashFlowChildText)
	}
	return job.SetResult(crashFlowChildResult{Token: a.Token, I: a.I, V: crashFlowValue(a.Token, a.I)})
}

// send calls Send and writes its line (kind P or A) for the order token.
func (w *crashFlowWorld) send(ctx context.Context, kind byte, token string, ev jobrun.Event) error {
	t0 := crashRecNow()
	sent, err := w.r.Send(ctx, ev)
	t1 := crashRecNow()
	if err != nil {
		return err
	}
	dup := 0
	if sent.DuplicateOf != 0 {
		dup = 1
	}
	w.ledger.add(kind, jobrun.ID(sent.Seq), token, dup, t0, t1)
	return nil
}

// produce sends one crash-mode child's orders from concurrent producers and returns
// when they are done; bulk false sends one per producer, to bound the backlog.
func (w *crashFlowWorld) produce(bulk bool) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range crashFlowProducers {
		wg.Go(func() {
			n := crashFlowPerProd
			if !bulk {
				n = 1
			}
			for i := range n {
				time.Sleep(rand.N(20 * time.Millisecond))
				a := crashFlowPlan(fmt.Sprintf("c%s-p%d-%d", w.cycle, g, i))
				ev := jobrun.Event{Name: crashFlowPlaced, Data: a}
				switch i % 3 {
				case 1:
					ev.ID = "o-" + a.Token
				case 2:
					ev.ID = "shared-" + strconv.Itoa(rand.IntN(crashFlowSharedIDs))
				}
				if err := w.send(ctx, 'P', a.Token, ev); err != nil {
					crashRecFatal("send: %v", err)
				}
				if i%3 == 1 && rand.IntN(2) == 0 {
					if err := w.send(ctx, 'P', a.Token, ev); err != nil { // a client's retry: a duplicate
						crashRecFatal("send again: %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
}

// crashFlowAcker sends the acks runs wait for; only its goroutine uses it.
type crashFlowAcker struct {
	w     *crashFlowWorld
	acked map[jobrun.ID]bool // runs this child sent an ack for
}

// run acks the runs the handlers report and, every crashFlowScanEvery, those it
// finds waiting, until ctx ends.
func (k *crashFlowAcker) run(ctx context.Context) error {
	tick := time.NewTicker(crashFlowScanEvery)
	defer tick.Stop()
	err := k.scan(ctx)
	for err == nil {
		select {
		case <-ctx.Done():
			return nil
		case wt := <-k.w.waits:
			err = k.ack(ctx, wt.id, wt.token)
			if wt.sent != nil {
				close(wt.sent)
			}
		case <-tick.C:
			err = k.scan(ctx)
		}
	}
	if ctx.Err() != nil {
		return nil // the drain ended
	}
	return err
}

// scan acks the runs planned with an ack whose wait is stored as waiting.
func (k *crashFlowAcker) scan(ctx context.Context) error {
	f := jobrun.Filter{Kind: crashFlowOrderKind, State: jobrun.StateScheduled, Limit: 1000}
	for {
		page, err := k.w.r.List(ctx, f)
		if err != nil {
			return err
		}
		for _, in := range page.Jobs {
			var a crashFlowOrder
			if k.acked[in.ID] || json.Unmarshal(in.RawArgs, &a) != nil || !a.Ack {
				continue
			}
			full, err := k.w.r.Get(ctx, in.ID)
			if err != nil {
				return err
			}
			if slices.ContainsFunc(full.Steps, func(s jobrun.StepInfo) bool { return s.Name == "wait-ack" && s.State == "waiting" }) {
				if err := k.ack(ctx, in.ID, a.Token); err != nil {
					return err
				}
			}
		}
		if page.Next == "" {
			return nil
		}
		f.Cursor = page.Next
	}
}

// ack sends the ack of run id, once per child; a third of the time twice with one
// event ID, so the second is a duplicate.
func (k *crashFlowAcker) ack(ctx context.Context, id jobrun.ID, token string) error {
	if k.acked[id] {
		return nil
	}
	k.acked[id] = true
	ev := jobrun.Event{Name: crashFlowAcked, Data: crashFlowAck{Token: token, From: "c" + k.w.cycle}}
	times := 1
	if rand.IntN(3) == 0 {
		ev.ID, times = "ack-"+token+"-c"+k.w.cycle, 2
	}
	for range times {
		if err := k.w.send(ctx, 'A', token, ev); err != nil {
			return err
		}
	}
	return nil
}

// crashFlowDrainChild waits until every job is final, stops the runner and the acker,
// checks the file and closes the runner, so the test returns (goleak satisfied).
func crashFlowDrainChild(ctx context.Context, t *testing.T, r *jobrun.Runner, cancel context.CancelFunc, ran, acked chan error) {
	defer func() {
		cancel()
		if err := <-ran; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
		if err := <-acked; err != nil {
			t.Errorf("drain: acker: %v", err)
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
		if crashRecUnfinished(c) == 0 {
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
		case err := <-acked:
			acked <- err
			t.Errorf("drain: the acker returned early: %v", err)
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// The ledger.

// crashFlowCall names a step of a job.
type crashFlowCall struct {
	id   jobrun.ID
	step string
}

type crashFlowLedger struct {
	sends       map[uint64][]crashRecEvent        // P and A lines by the Seq Send returned
	byCall      map[crashFlowCall][]crashRecEvent // C lines by job and step, their token the call
	returns     map[crashFlowCall][]crashRecEvent // R lines by job and step, their token the call
	called      map[jobrun.ID][]string            // the steps of each job that C lines name
	byJob       map[jobrun.ID][]crashRecEvent     // H, K, C and R lines by job, as written
	calls       int                               // C lines
	nReturns    int                               // R lines
	starts      int                               // H lines
	childStarts int                               // K lines
	lines       int
}

// crashFlowParseLedger reads the ledger as crashRecParseLedger does: lines that kills
// tore are skipped, any other malformed line is an error.
func crashFlowParseLedger(p *crashRecProblems, path string, torn map[int64]bool, segments []int64) *crashFlowLedger {
	t := p.t
	t.Helper()
	l := &crashFlowLedger{sends: map[uint64][]crashRecEvent{}, byCall: map[crashFlowCall][]crashRecEvent{},
		returns: map[crashFlowCall][]crashRecEvent{}, called: map[jobrun.ID][]string{}, byJob: map[jobrun.ID][]crashRecEvent{}}
	var malformed []string
	crashRecLines(t, path, torn, segments, func(n, child int, text string) {
		l.lines++
		e, ok := crashRecParseFields(text)
		switch e.kind {
		case 'P', 'A':
			ok = ok && (e.n == 0 || e.n == 1)
		case 'H', 'K':
			ok = ok && e.n > 0 && e.t0 == e.t1
		case 'C', 'R':
			ok = ok && e.n > 0 && e.t0 == e.t1 && strings.Contains(e.token, "@")
		default:
			ok = false
		}
		if !ok {
			malformed = append(malformed, fmt.Sprintf("line %d (child %d): %q", n, child, text))
			return
		}
		e.line, e.child = n, child
		if e.kind == 'P' || e.kind == 'A' {
			l.sends[uint64(e.id)] = append(l.sends[uint64(e.id)], e)
			return
		}
		l.byJob[e.id] = append(l.byJob[e.id], e)
		switch e.kind {
		case 'H':
			l.starts++
		case 'K':
			l.childStarts++
		case 'C', 'R':
			step, call, _ := strings.Cut(e.token, "@")
			k := crashFlowCall{e.id, step}
			e.token = call
			if e.kind == 'R' {
				l.nReturns++
				l.returns[k] = append(l.returns[k], e)
				break
			}
			l.calls++
			if len(l.byCall[k]) == 0 {
				l.called[e.id] = append(l.called[e.id], step)
			}
			l.byCall[k] = append(l.byCall[k], e)
		}
	})
	if len(malformed) > 0 {
		t.Errorf("ledger: %d malformed lines that no kill tore:\n%s", len(malformed), strings.Join(malformed, "\n"))
	}
	return l
}

// The verification.

type crashFlowSum struct {
	placed, placedDups, placedAcked, placedUnacked int
	acks, ackDups, acksAcked                       int
	notices                                        int
	lost                                           int
	jobs                                           int
	kinds                                          map[string]int
	auditsFailed, childrenLost                     int
	notFinal, badRuns                              int
	steps                                          int
	stepKinds                                      map[string]int
	callsBefore, plannedFails, reruns              int
	waitsReceived, waitsLookback                   int
	waitsTimedOut, waitsLate                       int
	acksBeforeCall                                 int
}

// crashFlowFile is the drained file as the verification reads it.
type crashFlowFile struct {
	events   map[uint64]*jobrun.EventInfo
	infos    map[jobrun.ID]*jobrun.Info
	acks     map[string][]*jobrun.EventInfo // original acks by their token, by Seq
	allAcks  map[string]int                 // every ack by token, duplicates included
	notices  map[crashFlowNotice][]*jobrun.EventInfo
	noticeOf map[uint64]jobrun.ID    // a notice's Seq -> the run whose SendEvent step stored it
	parentOf map[jobrun.ID]jobrun.ID // a child -> the run whose InvokeAll step lists it
}

type crashFlowReport func(what string, id jobrun.ID, format string, args ...any)

// crashFlowVerify opens the drained file and checks it against the ledger.
func crashFlowVerify(p *crashRecProblems, dbPath string, l *crashFlowLedger) crashFlowSum {
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
	sum := crashFlowSum{kinds: map[string]int{}, stepKinds: map[string]int{}}
	report := func(what string, id jobrun.ID, format string, args ...any) {
		t.Helper()
		var lines []string
		for _, e := range l.byJob[id] {
			lines = append(lines, "  "+e.String())
		}
		p.add(what, "job %d: %s\n ledger says:\n%s", id, fmt.Sprintf(format, args...), strings.Join(lines, "\n"))
	}

	// Every event, oldest first, and every job, by Get for its steps.
	f := &crashFlowFile{events: map[uint64]*jobrun.EventInfo{}, infos: map[jobrun.ID]*jobrun.Info{},
		acks: map[string][]*jobrun.EventInfo{}, allAcks: map[string]int{}, notices: map[crashFlowNotice][]*jobrun.EventInfo{},
		noticeOf: map[uint64]jobrun.ID{}, parentOf: map[jobrun.ID]jobrun.ID{}}
	var events []*jobrun.EventInfo
	for ef := (jobrun.EventFilter{Oldest: true, Limit: 1000}); ; {
		page, err := r.Events(ctx, ef)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, page.Events...)
		if page.Next == "" {
			break
		}
		ef.Cursor = page.Next
	}
	recount := map[jobrun.State]int{}
	for lf := (jobrun.Filter{Oldest: true, Limit: 1000}); ; {
		page, err := r.List(ctx, lf)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range page.Jobs {
			full, err := r.Get(ctx, in.ID)
			if err != nil {
				t.Fatalf("get job %d: %v", in.ID, err)
			}
			f.infos[in.ID] = full
			recount[full.State]++
			sum.kinds[full.Kind]++
		}
		if page.Next == "" {
			break
		}
		lf.Cursor = page.Next
	}
	sum.jobs = len(f.infos)

	crashFlowCheckEvents(p, report, &sum, f, events, l)

	// Each job by its kind; the checks of a run fill parentOf and noticeOf, which the
	// checks of children and notices read, so the runs come first.
	ids := slices.Sorted(maps.Keys(f.infos))
	for _, id := range ids {
		in := f.infos[id]
		crashFlowCheckCalls(report, &sum, in, l)
		switch in.Kind {
		case crashFlowOrderKind:
			crashFlowCheckOrder(report, &sum, f, in, l)
		case crashFlowAuditKind:
			crashFlowCheckAudit(report, &sum, in, l)
		}
	}
	for _, id := range ids {
		in := f.infos[id]
		switch in.Kind {
		case crashFlowOrderKind, crashFlowAuditKind:
		case crashFlowNotifiedKind:
			crashFlowCheckNotified(report, &sum, f, in)
		case crashFlowChildKind:
			crashFlowCheckChild(report, &sum, f, in)
		default:
			report("UNKNOWN KIND", id, "kind %q", in.Kind)
		}
	}
	for key, evs := range f.notices {
		for _, ev := range evs {
			if _, ok := f.noticeOf[ev.Seq]; !ok {
				p.add("SEND EVENT", "event %d (%s of %s) is stored, but no SendEvent step names it", ev.Seq, key.Step, key.Token)
			}
		}
	}

	// The counters equal a full recount.
	counts, err := r.Counts(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range jobrun.States {
		if counts[s] != recount[s] {
			t.Errorf("COUNTS: Counts says %d %s, a recount of every job by Get finds %d\n Counts:  %v\n recount: %v",
				counts[s], s, recount[s], counts, recount)
		}
	}
	crashRecCheckFile(t, r.DB())

	if sum.placedAcked == 0 || sum.waitsReceived == 0 || sum.waitsTimedOut == 0 || sum.stepKinds["send"] == 0 {
		t.Errorf("the campaign proved little: %d orders acknowledged, %d waits received, %d timed out, %d SendEvent steps",
			sum.placedAcked, sum.waitsReceived, sum.waitsTimedOut, sum.stepKinds["send"])
	}
	return sum
}

// crashFlowCheckEvents checks the events against the ledger's acknowledged Sends, the
// dedup by ID, and the runs of each event, and indexes the acks and notices.
//
// Send returns once its commit is durable, and the P or A line is written after it
// returns, so every line's Seq must be stored with the line's token. Events sharing an
// ID are stored within the dedup window (24 hours, longer than any campaign), so the
// first is the original and each later one is its duplicate: DuplicateOf is the
// first's Seq and Runs the first's runs. An original starts one run of each function
// on its name in its commit, so its Runs are exactly those, and every job of a
// function kind is listed by the original event it names.
func crashFlowCheckEvents(p *crashRecProblems, report crashFlowReport, sum *crashFlowSum, f *crashFlowFile,
	events []*jobrun.EventInfo, l *crashFlowLedger) {
	byID := map[string]*jobrun.EventInfo{}
	runOf := map[jobrun.ID]uint64{}
	for _, ev := range events {
		f.events[ev.Seq] = ev
		fns, known := crashFlowFunctions[ev.Name]
		if !known {
			p.add("EVENT", "event %d: name %q, which no child sends", ev.Seq, ev.Name)
			continue
		}
		first, seen := byID[ev.ID]
		switch {
		case ev.ID == "" && ev.DuplicateOf != 0:
			p.add("DEDUP", "event %d has no ID but is a duplicate of %d", ev.Seq, ev.DuplicateOf)
		case ev.ID != "" && !seen && ev.DuplicateOf != 0:
			p.add("DEDUP", "event %d is the first with ID %q but a duplicate of %d", ev.Seq, ev.ID, ev.DuplicateOf)
		case ev.ID != "" && seen && (ev.DuplicateOf != first.Seq || !slices.Equal(ev.Runs, first.Runs)):
			p.add("DEDUP", "event %d repeats ID %q of event %d (runs %v), but is stored as duplicate of %d with runs %v",
				ev.Seq, ev.ID, first.Seq, first.Runs, ev.DuplicateOf, ev.Runs)
		}
		if ev.ID != "" && !seen {
			byID[ev.ID] = ev
		}
		switch ev.Name {
		case crashFlowPlaced:
			sum.placed++
			if ev.DuplicateOf != 0 {
				sum.placedDups++
			}
			if len(l.sends[ev.Seq]) == 0 {
				sum.placedUnacked++ // committed, then killed before the P line
			}
		case crashFlowAcked:
			var a crashFlowAck
			if err := json.Unmarshal(ev.Data, &a); err != nil || a.Token == "" {
				p.add("EVENT", "ack %d: data %s (%v)", ev.Seq, ev.Data, err)
				continue
			}
			sum.acks++
			f.allAcks[a.Token]++
			if ev.DuplicateOf != 0 {
				sum.ackDups++
			} else {
				f.acks[a.Token] = append(f.acks[a.Token], ev)
			}
		case crashFlowNotified:
			var n crashFlowNotice
			if err := json.Unmarshal(ev.Data, &n); err != nil || n.Token == "" {
				p.add("EVENT", "notice %d: data %s (%v)", ev.Seq, ev.Data, err)
				continue
			}
			sum.notices++
			f.notices[n] = append(f.notices[n], ev)
		}
		if ev.DuplicateOf != 0 {
			continue // its runs are the first's, checked there
		}
		kinds := map[string]bool{}
		for _, id := range ev.Runs {
			in := f.infos[id]
			if in == nil {
				sum.badRuns++
				p.add("RUNS", "event %d (%s) lists run %d, which is not stored", ev.Seq, ev.Name, id)
				continue
			}
			if kinds[in.Kind] || !slices.Contains(fns, in.Kind) || in.Event != ev.Seq || in.EventName != ev.Name ||
				!bytes.Equal(in.RawArgs, ev.Data) {
				sum.badRuns++
				report("RUNS", id, "a run of event %d (%s, runs %v): kind %s (twice: %v), event %d %q, args %s; want one run "+
					"of each of %v naming the event, with its data %s", ev.Seq, ev.Name, ev.Runs, in.Kind, kinds[in.Kind],
					in.Event, in.EventName, in.RawArgs, fns, ev.Data)
			}
			kinds[in.Kind] = true
			runOf[id] = ev.Seq
		}
		if len(ev.Runs) != len(fns) {
			sum.badRuns++
			p.add("RUNS", "event %d (%s) started runs %v, want one of each of %v", ev.Seq, ev.Name, ev.Runs, fns)
		}
	}

	// Every acknowledged Send is stored, with its token.
	for _, seq := range slices.Sorted(maps.Keys(l.sends)) {
		for _, e := range l.sends[seq] {
			if e.kind == 'P' {
				sum.placedAcked++
			} else {
				sum.acksAcked++
			}
			ev := f.events[seq]
			want := map[byte]string{'P': crashFlowPlaced, 'A': crashFlowAcked}[e.kind]
			var data struct{ Token string }
			if ev != nil {
				json.Unmarshal(ev.Data, &data)
			}
			switch {
			case ev == nil:
				sum.lost++
				p.add("LOST EVENT", "%v: Send returned event %d, which is not stored", e, seq)
			case ev.Name != want || data.Token != e.token:
				sum.lost++
				p.add("LOST EVENT", "%v: Send returned event %d, but the stored event %d is %s of %s", e, seq, seq, ev.Name, data.Token)
			case (ev.DuplicateOf != 0) != (e.n == 1):
				p.add("DEDUP", "%v: Send said duplicate=%v, the stored event %d is a duplicate of %d", e, e.n == 1, seq, ev.DuplicateOf)
			}
		}
	}

	// Every run is listed by the original event it names.
	for id, in := range f.infos {
		if in.Kind == crashFlowChildKind {
			if in.Event != 0 {
				report("RUNS", id, "a child names event %d", in.Event)
			}
			continue
		}
		if seq, ok := runOf[id]; !ok || seq != in.Event {
			sum.badRuns++
			report("RUNS", id, "%s run names event %d (%s), which does not list it", in.Kind, in.Event, in.EventName)
		}
	}
}

// crashFlowCheckCalls checks the C lines of a job's Steps against its stored steps.
//
// Step reads StartedAt, then calls the function, which writes its C line: the call
// whose result was stored has its line at or after the stored StartedAt. A call
// before it (a failure, or a process killed before the commit) has its line before
// StartedAt; a call after the commit, a step run again, would have a second line at
// or after it. So exactly one line may be at or after StartedAt.
//
// The calls before it are explained too: within one process a step's function runs
// again only after it failed, and only a step of the plan's Fail fails, once per
// process at most (once its failure is stored it succeeds); every other earlier call
// is of a process killed before the step's commit, an earlier child. No attempt ends
// otherwise: the campaign has no timeouts, cancels, pauses or graceful stops.
//
// Each call's value names the call (crashFlowStep), and an R line is written once
// Step returned a value, which it does only after storing it: the stored value must
// be that of the committed call, and every R line of the step must name it. A step
// run again after its commit and stored again (with a new StartedAt, hiding the first
// call among the earlier ones) shows as an R line of another call.
//
// A Step function is called only through Step, and a job that is final stored every
// step it called (the handler returns only after the step's commit, or with its
// error).
func crashFlowCheckCalls(report crashFlowReport, sum *crashFlowSum, in *jobrun.Info, l *crashFlowLedger) {
	var plan struct{ Fail []string }
	json.Unmarshal(in.RawArgs, &plan) // the plan of an order's runs; the others have none
	stored := map[string]bool{}
	for _, s := range in.Steps {
		stored[s.Name] = true
		sum.steps++
		switch {
		case s.WaitEvent != "":
			sum.stepKinds["wait"]++
		case len(s.Children) > 0:
			sum.stepKinds["invoke"]++
		case s.State == "sleep":
			sum.stepKinds["sleep"]++
		case s.Event != 0:
			sum.stepKinds["send"]++
		default:
			sum.stepKinds["step"]++
			lines := l.byCall[crashFlowCall{in.ID, s.Name}]
			at, committed := 0, crashRecEvent{}
			for _, e := range lines {
				if e.t1 >= s.StartedAt.UnixNano() {
					at++
					committed = e
				} else {
					sum.callsBefore++
				}
			}
			if at > 1 {
				sum.reruns += at - 1
			}
			if at != 1 {
				report("STEP RE-RUN", in.ID, "step %q (%s) stored with StartedAt %s: %d calls at or after it, want 1 (the committed one)",
					s.Name, s.State, s.StartedAt.Format("15:04:05.000000"), at)
				continue
			}
			again := 0 // earlier calls in the committed call's process
			for _, e := range lines {
				if e.t1 < s.StartedAt.UnixNano() && e.child == committed.child {
					again++
				}
			}
			allowed := 0
			if slices.Contains(plan.Fail, s.Name) {
				allowed = 1
			}
			if again > allowed {
				report("STEP CALLED AGAIN", in.ID, "step %q was called %d times before its committed call in the same process, "+
					"want at most %d (its planned failure)", s.Name, again, allowed)
			}
			if s.State != "done" {
				continue // a Permanent failure, stored without a value
			}
			var res struct{ Call string }
			if err := json.Unmarshal(s.Result, &res); err != nil || res.Call != committed.token {
				report("STEP RESULT", in.ID, "step %q stored %s, want the value of call %s, the one at or after its StartedAt",
					s.Name, s.Result, committed.token)
			}
			for _, e := range l.returns[crashFlowCall{in.ID, s.Name}] {
				if e.token != res.Call {
					sum.reruns++
					report("STEP RE-RUN", in.ID, "step %q returned the value of call %s (%v), but it stored call %s's: "+
						"a value it returned was replaced", s.Name, e.token, e, res.Call)
				}
			}
		}
	}
	if in.State != jobrun.StateDone && in.State != jobrun.StateFailed {
		return
	}
	for _, step := range l.called[in.ID] {
		if !stored[step] {
			report("STEP", in.ID, "step %q was called, but the %s job stored no such step", step, in.State)
		}
	}
}

// crashFlowSteps returns a job's steps by name.
func crashFlowSteps(in *jobrun.Info) map[string]jobrun.StepInfo {
	m := map[string]jobrun.StepInfo{}
	for _, s := range in.Steps {
		m[s.Name] = s
	}
	return m
}

// crashFlowCheckErrors checks a run's attempt errors: exactly one planned failure of
// each failing step, in the order the run reaches them, then the Permanent one if perm,
// each on attempt 1. A failed first call fails the attempt its step's count began
// with, since every stored step and suspension restarts the count; an attempt
// interrupted by a kill spends nothing and leaves no error.
func crashFlowCheckErrors(report crashFlowReport, sum *crashFlowSum, in *jobrun.Info, steps, fail []string, perm bool) {
	var want []string
	for _, s := range steps {
		if slices.Contains(fail, s) {
			want = append(want, crashFlowFailText(s))
			sum.plannedFails++
		}
	}
	if perm {
		want = append(want, crashFlowPermText)
	}
	ok := len(in.Errors) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = in.Errors[i].Attempt == 1 && strings.Contains(in.Errors[i].Error, want[i])
	}
	if !ok {
		var got []string
		for _, e := range in.Errors {
			got = append(got, fmt.Sprintf("attempt %d: %.200s", e.Attempt, e.Error))
		}
		report("ERRORS", in.ID, "%s %s after attempt %d with errors\n   %s\n want, each on attempt 1:\n   %s",
			in.Kind, in.State, in.Attempt, strings.Join(got, "\n   "), strings.Join(want, "\n   "))
	}
}

// crashFlowCheckSleep checks a sleep step of ms milliseconds: stored as a sleep whose
// wake-up is its duration after the time Sleep read, a moment before StartedAt
// (SleepUntil reads the clock again; the slack allows for a stall between them).
func crashFlowCheckSleep(report crashFlowReport, in *jobrun.Info, s jobrun.StepInfo, ms int) {
	if d := s.FinishedAt.Sub(s.StartedAt); s.State != "sleep" || d > crashFlowMS(ms) || d < crashFlowMS(ms)-250*time.Millisecond {
		report("SLEEP", in.ID, "step %q: %s from %s to %s, want a sleep of %dms", s.Name, s.State,
			s.StartedAt.Format("15:04:05.000000"), s.FinishedAt.Format("15:04:05.000000"), ms)
	}
}

// crashFlowLater returns the later of two times.
func crashFlowLater(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// crashFlowCheckEarly reports C lines of step that came before at: a step reached
// before the sleep, wait or children it follows had ended.
func crashFlowCheckEarly(report crashFlowReport, in *jobrun.Info, l *crashFlowLedger, step, after string, at time.Time) {
	for _, e := range l.byCall[crashFlowCall{in.ID, step}] {
		if e.t1 < at.UnixNano() {
			report("RAN EARLY", in.ID, "step %q was called at %s, before %s ended at %s", step,
				time.Unix(0, e.t1).Format("15:04:05.000000"), after, at.Format("15:04:05.000000"))
		}
	}
}

// crashFlowCheckOrder checks a run of flow-order against its plan.
func crashFlowCheckOrder(report crashFlowReport, sum *crashFlowSum, f *crashFlowFile, in *jobrun.Info, l *crashFlowLedger) {
	var a crashFlowOrder
	if err := json.Unmarshal(in.RawArgs, &a); err != nil || a.Token == "" || a.Notify < 1 || a.Notify > 2 {
		report("BAD ARGS", in.ID, "args %s (%v)", in.RawArgs, err)
		return
	}
	if in.State != jobrun.StateDone {
		sum.notFinal++
		report("STATE", in.ID, "flow-order %s after the drain, want done (attempt %d, last error %.300s)", in.State, in.Attempt, in.LastError)
		return
	}
	steps := crashFlowSteps(in)
	want := []string{"reserve", "nap", "charge", "wait-ack", "kids", "total", "notify", "finish"}
	if a.Notify == 2 {
		want = append(want, "notify#2")
	}
	if got := slices.Sorted(maps.Keys(steps)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		report("STEP", in.ID, "steps %v, want %v", got, want)
		return
	}
	for _, name := range crashFlowOrderSteps {
		if s := steps[name]; s.State != "done" {
			report("STEP", in.ID, "step %q is %s, want done", name, s.State)
		}
	}
	crashFlowCheckErrors(report, sum, in, crashFlowOrderSteps, a.Fail, false)
	if in.Attempt != 1 {
		report("ATTEMPTS", in.ID, "done after %d attempts, want 1 (the count restarts at each step)", in.Attempt)
	}

	// Sleep: the step after it is reached only once Sleep returns nil, at or after the
	// wake-up.
	nap := steps["nap"]
	crashFlowCheckSleep(report, in, nap, a.NapMS)
	crashFlowCheckEarly(report, in, l, "charge", "the sleep", nap.FinishedAt)

	// WaitFor.
	ws := steps["wait-ack"]
	crashFlowCheckWait(report, sum, f, in, a, ws)

	// InvokeAll: its children are the jobs that name this run as parent.
	kids := steps["kids"]
	wantValues := make([]int, a.Children)
	childrenEnd := ws.FinishedAt
	if kids.State != "done" || len(kids.Children) != a.Children {
		report("INVOKE", in.ID, "step kids: %s with children %v, want done with %d", kids.State, kids.Children, a.Children)
	}
	for i, c := range kids.Children {
		if prev, dup := f.parentOf[c]; dup {
			report("INVOKE", in.ID, "child %d is listed by run %d too", c, prev)
		}
		f.parentOf[c] = in.ID
		ci := f.infos[c]
		var ca crashFlowChildArgs
		if ci == nil || json.Unmarshal(ci.RawArgs, &ca) != nil || ci.Kind != crashFlowChildKind || ci.Parent != in.ID ||
			ca.Token != a.Token || ca.I != i+1 || ca.Lost != (a.Lost == i+1) || ca.FailFirst != (a.ChildFail&(1<<i) != 0) {
			report("INVOKE", in.ID, "child %d of %d (job %d): %+v", i+1, a.Children, c, ci)
			continue
		}
		childrenEnd = crashFlowLater(childrenEnd, ci.FinishedAt)
		wantValues[i] = crashFlowValue(a.Token, i+1)
		if ca.Lost {
			wantValues[i] = -1
		}
	}
	crashFlowCheckEarly(report, in, l, "total", "the wait and the children", childrenEnd)
	var total crashFlowResult[[]int]
	if err := json.Unmarshal(steps["total"].Result, &total); err != nil || !slices.Equal(total.V, wantValues) {
		report("INVOKE", in.ID, "step total holds %s, want the children's values %v", steps["total"].Result, wantValues)
	}

	// SendEvent: one event per step, stored in the step's commit.
	for _, key := range []string{"notify", "notify#2"}[:a.Notify] {
		s := steps[key]
		evs := f.notices[crashFlowNotice{Token: a.Token, Step: key}]
		if s.State != "done" || len(evs) != 1 || evs[0].Seq != s.Event {
			var seqs []uint64
			for _, ev := range evs {
				seqs = append(seqs, ev.Seq)
			}
			report("SEND EVENT", in.ID, "step %q: %s, event %d; the events of its token and step: %v, want exactly that one",
				key, s.State, s.Event, seqs)
			continue
		}
		f.noticeOf[s.Event] = in.ID
	}

	var got crashFlowSummary
	wantSum := crashFlowSummary{Token: a.Token, Acked: ws.State == "done", Values: wantValues}
	if err := json.Unmarshal(in.Result, &got); err != nil || got.Token != wantSum.Token || got.Acked != wantSum.Acked ||
		!slices.Equal(got.Values, wantSum.Values) {
		report("RESULT", in.ID, "result %s, want %+v", in.Result, wantSum)
	}
}

// crashFlowCheckWait checks a run's wait step.
//
// An ack counts for a wait if it is an original (not a duplicate) committed at or
// after the wait's StartedAt, the time WaitFor read when it was called, in the call
// whose suspension was stored: the suspension looks back to that time, and a waiting
// job is woken by the event's commit. Commit times only grow (the commit loop reads
// the clock after gathering what it commits, so after Send was called), so of the
// acks that count the first is the one received. A wait times out when the commit
// after its deadline promotes the job; an ack that counts and commits before the
// deadline comes before that commit, so the wait must have received it. A wait may
// receive an ack that committed at or after its deadline, before the promoter came.
func crashFlowCheckWait(report crashFlowReport, sum *crashFlowSum, f *crashFlowFile, in *jobrun.Info, a crashFlowOrder, ws jobrun.StepInfo) {
	if ws.WaitEvent != crashFlowAcked || ws.WaitMatch != "token="+strconv.Quote(a.Token) {
		report("WAIT", in.ID, "step wait-ack waits for %q where %s", ws.WaitEvent, ws.WaitMatch)
	}
	deadline := ws.StartedAt.Add(crashFlowMS(a.WaitMS))
	// The wait's look back begins where the run's previous step ended (or at its
	// creation): a WaitFor call that a kill cut off before its suspension came after
	// that, so an ack sent after it counts for the re-run's call too.
	since := in.CreatedAt
	for _, s := range in.Steps {
		end := s.FinishedAt
		if end.After(ws.StartedAt) {
			end = ws.StartedAt // a sleep's wake-up that Promote or a recovery brought forward
		}
		if s.StartedAt.Before(ws.StartedAt) && s.Name != ws.Name && end.After(since) {
			since = end
		}
	}
	var first *jobrun.EventInfo
	for _, ev := range f.acks[a.Token] {
		if ev.At.Before(since) {
			// The acker sends only after a call of WaitFor, which follows the
			// previous step's end.
			sum.acksBeforeCall++
			report("WAIT", in.ID, "ack %d committed at %v, before the wait could be reached (%v)", ev.Seq,
				ev.At.Format(time.RFC3339Nano), since.Format(time.RFC3339Nano))
			continue
		}
		if first == nil {
			first = ev
		}
	}
	if !a.Ack && f.allAcks[a.Token] > 0 {
		report("WAIT", in.ID, "an order planned without an ack has %d acks", f.allAcks[a.Token])
	}
	switch ws.State {
	case "done":
		sum.waitsReceived++
		if first == nil || ws.Event != first.Seq || !bytes.Equal(ws.Result, first.Data) {
			want := "none"
			if first != nil {
				want = fmt.Sprintf("event %d %s committed at %s", first.Seq, first.Data, first.At.Format("15:04:05.000000"))
			}
			report("WAIT", in.ID, "wait-ack received event %d (%s), want the first ack at or after %s: %s",
				ws.Event, ws.Result, ws.StartedAt.Format("15:04:05.000000"), want)
			return
		}
		switch {
		case first.At.After(ws.FinishedAt):
			report("WAIT", in.ID, "wait-ack received ack %d at %s, before its commit at %s", first.Seq,
				ws.FinishedAt.Format("15:04:05.000000"), first.At.Format("15:04:05.000000"))
		case first.At.Before(ws.FinishedAt):
			// Received in a later commit than the ack's: the suspension's look back.
			// (One in the same commit, or the wake of a waiting job, ends the wait at
			// the ack's own commit time.)
			sum.waitsLookback++
		}
	case "timed_out":
		if a.Ack {
			sum.waitsLate++
		} else {
			sum.waitsTimedOut++
		}
		if first != nil && first.At.Before(deadline) {
			report("WAIT", in.ID, "wait-ack timed out at %s, but ack %d committed at %s, before its deadline %s",
				ws.FinishedAt.Format("15:04:05.000000"), first.Seq, first.At.Format("15:04:05.000000"),
				deadline.Format("15:04:05.000000"))
		}
		if ws.FinishedAt.Before(deadline) {
			report("WAIT", in.ID, "wait-ack timed out at %s, before its deadline %s",
				ws.FinishedAt.Format("15:04:05.000000"), deadline.Format("15:04:05.000000"))
		}
	default:
		report("WAIT", in.ID, "wait-ack is %s in a done run", ws.State)
	}
}

// crashFlowCheckAudit checks a run of flow-audit against its plan.
func crashFlowCheckAudit(report crashFlowReport, sum *crashFlowSum, in *jobrun.Info, l *crashFlowLedger) {
	var a crashFlowOrder
	if err := json.Unmarshal(in.RawArgs, &a); err != nil || a.Token == "" {
		report("BAD ARGS", in.ID, "args %s (%v)", in.RawArgs, err)
		return
	}
	want, last := jobrun.StateDone, "done"
	if a.AuditFails {
		want, last = jobrun.StateFailed, "failed"
	}
	if in.State != want {
		sum.notFinal++
		report("STATE", in.ID, "flow-audit %s after the drain, want %s (attempt %d, last error %.300s)", in.State, want, in.Attempt, in.LastError)
		return
	}
	if a.AuditFails {
		sum.auditsFailed++
	}
	steps := crashFlowSteps(in)
	if len(steps) != 3 || steps["audit-1"].State != "done" || steps["audit-2"].State != last {
		report("STEP", in.ID, "steps %+v, want audit-1 done, audit-nap and audit-2 %s", in.Steps, last)
		return
	}
	crashFlowCheckErrors(report, sum, in, crashFlowAuditSteps, a.Fail, a.AuditFails)
	if in.Attempt != 1 {
		report("ATTEMPTS", in.ID, "%s after %d attempts, want 1 (the count restarts at each step)", in.State, in.Attempt)
	}
	nap := steps["audit-nap"]
	crashFlowCheckSleep(report, in, nap, a.AuditNapMS)
	crashFlowCheckEarly(report, in, l, "audit-2", "the sleep", nap.FinishedAt)
}

// crashFlowCheckNotified checks a run of flow-notified: the run of an event that a
// SendEvent step stored, done with its result.
func crashFlowCheckNotified(report crashFlowReport, sum *crashFlowSum, f *crashFlowFile, in *jobrun.Info) {
	var a crashFlowNotice
	if err := json.Unmarshal(in.RawArgs, &a); err != nil || a.Token == "" {
		report("BAD ARGS", in.ID, "args %s (%v)", in.RawArgs, err)
		return
	}
	if _, ok := f.noticeOf[in.Event]; !ok {
		report("SEND EVENT", in.ID, "the run of event %d, which no SendEvent step names", in.Event)
	}
	var note string
	if in.State != jobrun.StateDone || json.Unmarshal(in.Result, &note) != nil || note != a.Token+"|"+a.Step ||
		len(in.Steps) != 1 || len(in.Errors) != 0 || in.Attempt != 1 {
		if in.State != jobrun.StateDone {
			sum.notFinal++
		}
		report("STATE", in.ID, "flow-notified %s after %d attempts, result %s, %d steps, errors %v; want done after 1 with %q",
			in.State, in.Attempt, in.Result, len(in.Steps), in.Errors, a.Token+"|"+a.Step)
	}
}

// crashFlowCheckChild checks a child: listed by the InvokeAll step of its parent, and
// ended as planned. A child has no steps: each failed attempt counts, and a kill
// spends none.
func crashFlowCheckChild(report crashFlowReport, sum *crashFlowSum, f *crashFlowFile, in *jobrun.Info) {
	if p, ok := f.parentOf[in.ID]; !ok || p != in.Parent {
		report("INVOKE", in.ID, "a child of run %d, whose InvokeAll step does not list it (listed by %d)", in.Parent, p)
	}
	var a crashFlowChildArgs
	if err := json.Unmarshal(in.RawArgs, &a); err != nil || a.Token == "" {
		report("BAD ARGS", in.ID, "args %s (%v)", in.RawArgs, err)
		return
	}
	if a.Lost {
		if in.State != jobrun.StateFailed || in.Attempt != 1 || len(in.Errors) != 1 || !strings.Contains(in.LastError, crashFlowPermText) {
			report("CHILD", in.ID, "%s after %d attempts, errors %v; want failed by Permanent on attempt 1", in.State, in.Attempt, in.Errors)
		}
		sum.childrenLost++
		return
	}
	attempts, errs := 1, 0
	if a.FailFirst {
		attempts, errs = 2, 1
	}
	var res crashFlowChildResult
	if in.State != jobrun.StateDone || in.Attempt != attempts || len(in.Errors) != errs ||
		(errs == 1 && !strings.Contains(in.LastError, crashFlowChildText)) ||
		json.Unmarshal(in.Result, &res) != nil || res != (crashFlowChildResult{Token: a.Token, I: a.I, V: crashFlowValue(a.Token, a.I)}) {
		if in.State != jobrun.StateDone {
			sum.notFinal++
		}
		report("CHILD", in.ID, "%s after %d attempts, errors %v, result %s; want done after %d with %d errors and value %d",
			in.State, in.Attempt, in.Errors, in.Result, attempts, errs, crashFlowValue(a.Token, a.I))
	}
}
