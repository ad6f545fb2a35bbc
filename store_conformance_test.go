package jobrun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The store conformance suite: what any store must do, stated against the seam's
// interfaces (storage.go) only. It knows nothing of how a store keeps jobs: no
// transaction type, no bucket, no bbolt. The bbolt store runs it below, and the
// PostgreSQL store runs it unchanged with its own opener (pg_test.go).
//
// Every case makes its records as Runner.prepareOpts does and drives the store as
// the engine does (enqueue, claim, markStarted, apply with an ending, the services'
// writes), at fixed times it moves forward by hand: no case sleeps or reads the
// clock, so each one is deterministic.

// storeOpener opens a fresh, empty store for one (sub)test with cfg, built by
// newConfig from the options (key limits, retention, recoveries) the case needs,
// and registers its close with t.Cleanup.
type storeOpener func(t *testing.T, cfg *config) store

func TestStoreConformance(t *testing.T) { runStoreConformance(t, openBoltForConformance) }

// openBoltForConformance opens a bbolt store on a new file of t's.
func openBoltForConformance(t *testing.T, cfg *config) store {
	t.Helper()
	st, err := openBoltStore(filepath.Join(t.TempDir(), "jobs.db"), cfg)
	if err != nil {
		t.Fatalf("open bolt store: %v", err)
	}
	t.Cleanup(func() {
		if err := st.close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return st
}

// conformanceCase is one case of the suite.
type conformanceCase struct {
	name string
	fn   func(t *testing.T, open storeOpener)
}

// runStoreConformance runs every case as a subtest of t, each with stores from open.
// Every store a case opens has its counters checked when the case ends
// (confCheckCounts): the check is registered after open returns, so it runs before
// the opener's close.
func runStoreConformance(t *testing.T, open storeOpener) {
	for _, c := range conformanceCases {
		t.Run(c.name, func(t *testing.T) {
			c.fn(t, func(t *testing.T, cfg *config) store {
				t.Helper()
				st := open(t, cfg)
				t.Cleanup(func() { confCheckCounts(t, st) })
				return st
			})
		})
	}
}

var conformanceCases = []conformanceCase{
	{"EnqueueGetInfoCounts", confEnqueueGetInfoCounts},
	{"UnknownIDsAndNames", confUnknownIDsAndNames},
	{"UpdateRollsBackOnError", confUpdateRollsBack},
	{"ReadsInAWriteSeeItsWrites", confReadsInAWrite},
	{"ClaimByPriorityThenFIFO", confClaimOrder},
	{"ClaimWindowExtraAndBeat", confClaimExtraBeat},
	{"ClaimAsksTake", confClaimTake},
	{"PausedQueueClaimsNothing", confPaused},
	{"MarkStartedMakesRunning", confMarkStarted},
	{"ApplyOutcomes", confApplyOutcomes},
	{"FinishClaimed", confFinishClaimed},
	{"ApplyShortHandlerRecordsStart", confApplyShortHandler},
	{"RetryingJobComesBackDue", confRetryingComesBack},
	{"ApplyToWaitingAndFinishedJobs", confApplyWaitingFinished},
	{"SaveProgress", confSaveProgress},
	{"Steps", confSteps},
	{"PromoteDue", confPromoteDue},
	{"UniqueKey", confUniqueKey},
	{"Throttle", confThrottle},
	{"Debounce", confDebounce},
	{"TakeUnique", confTakeUnique},
	{"KeyConcurrency", confKeyConcurrency},
	{"KeySlotHeldByAbandonedHandler", confKeyHeld},
	{"Schedules", confSchedules},
	{"FireDue", confFireDue},
	{"RetentionByAge", confRetentionByAge},
	{"RetentionByCount", confRetentionByCount},
	{"Remove", confRemove},
	{"Sweep", confSweep},
	{"RecoverAtOpen", confRecover},
	{"ListFilters", confListFiltered},
	{"ListPaging", confListPaging},
	{"BackupAndCompact", confBackupCompact},
	{"Events", confEvents},
	{"EventRetention", confEventRetention},
	{"WaitForEvents", confWaits},
	{"InvokeChildren", confInvoke},
	{"CancelOnEvent", confCancelOn},
	{"OnFailure", confOnFailure},
	{"SuspendedCounts", confSuspendedCounts},
	{"History", confHistory},
}

// confT0 is when every case begins.
var confT0 = time.Date(2030, time.January, 2, 3, 4, 0, 0, time.UTC)

// Helpers.

// confConfig builds a runner's configuration from opts, as Open does.
func confConfig(t *testing.T, opts ...Option) *config {
	t.Helper()
	cfg, err := newConfig(opts)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// confJob builds a new job's record as Runner.prepareOpts does: due at now, with
// DefaultMaxAttempts and a constant one-minute backoff (so retry times are exact);
// mods apply the enqueue options.
func confJob(kind, queue string, now time.Time, mods ...func(*record)) *record {
	r := &record{kind: kind, queue: queue, args: []byte(`{}`), maxAttempts: defaultMaxAttempts,
		backoff:   backoffPolicy{kind: backoffConstant, min: time.Minute, max: time.Minute},
		createdAt: now, runAt: now}
	for _, m := range mods {
		m(r)
	}
	return r
}

func confPriority(p int64) func(*record)   { return func(r *record) { r.priority = p } }
func confRunAt(at time.Time) func(*record) { return func(r *record) { r.runAt = at } }
func confArgs(s string) func(*record)      { return func(r *record) { r.args = []byte(s) } }
func confAttempts(n int64) func(*record)   { return func(r *record) { r.maxAttempts = n } }
func confKey(k string) func(*record)       { return func(r *record) { r.concKey = k } }
func confTags(tags ...string) func(*record) {
	return func(r *record) { r.tags = tags }
}

// confUnique gives the job a unique key of mode for d (UniqueKey, Throttle,
// Debounce); a debounced job is due d after it is created, as prepareOpts makes it.
func confUnique(mode byte, key string, d time.Duration) func(*record) {
	return func(r *record) {
		r.uniqueMode, r.uniqueKey, r.uniqueFor = mode, key, d
		if mode == uniqueDebounce {
			r.runAt = r.createdAt.Add(d)
		}
	}
}

// confUpdate runs fn in one write at now and returns its changes.
func confUpdate(t *testing.T, st store, now time.Time, fn func(w storeWriter) error) []jobChange {
	t.Helper()
	changes, err := st.update(now, nil, fn)
	if err != nil {
		t.Fatalf("update at %v: %v", now.Format(time.TimeOnly), err)
	}
	return changes
}

// confView runs fn in one read.
func confView(t *testing.T, st store, fn func(r storeReader) error) {
	t.Helper()
	if err := st.view(fn); err != nil {
		t.Fatalf("view: %v", err)
	}
}

// confEnqueue stores recs in one write at now.
func confEnqueue(t *testing.T, st store, now time.Time, recs ...*record) ([]inserted, []jobChange) {
	t.Helper()
	var ins []inserted
	changes := confUpdate(t, st, now, func(w storeWriter) error {
		ins = ins[:0]
		for _, r := range recs {
			in, err := w.enqueue(r)
			if err != nil {
				return err
			}
			ins = append(ins, in)
		}
		return nil
	})
	return ins, changes
}

// confEnqueueIDs stores recs, none of which may be refused, and returns their IDs.
func confEnqueueIDs(t *testing.T, st store, now time.Time, recs ...*record) []ID {
	t.Helper()
	ins, _ := confEnqueue(t, st, now, recs...)
	ids := make([]ID, len(ins))
	for i, in := range ins {
		if in.duplicate || in.id == 0 {
			t.Fatalf("enqueue %d: %+v, want a new job", i, in)
		}
		ids[i] = in.id
	}
	return ids
}

// confClaim claims up to n jobs of queue at now.
func confClaim(t *testing.T, st store, now time.Time, queue string, n int) ([]claimedJob, []jobChange) {
	t.Helper()
	return confClaimWith(t, st, now, queue, n, 0, 0, nil)
}

func confClaimWith(t *testing.T, st store, now time.Time, queue string, n, extra int, beat int64,
	take func(key []byte) (ok, stop bool)) ([]claimedJob, []jobChange) {
	t.Helper()
	var claimed []claimedJob
	changes := confUpdate(t, st, now, func(w storeWriter) error {
		var err error
		claimed, err = w.claim(queue, n, extra, beat, take)
		return err
	})
	return claimed, changes
}

// confClaimOne claims the one job of queue that is next, which must be id.
func confClaimOne(t *testing.T, st store, now time.Time, queue string, id ID) claimedJob {
	t.Helper()
	claimed, _ := confClaim(t, st, now, queue, 1)
	if got := confClaimedIDs(claimed); !slices.Equal(got, []ID{id}) {
		t.Fatalf("claim of queue %s: got %v, want [%d]", queue, got, id)
	}
	return claimed[0]
}

func confClaimedIDs(claimed []claimedJob) []ID {
	ids := []ID{}
	for _, c := range claimed {
		ids = append(ids, c.id)
	}
	return ids
}

// confStart records that the claimed job's handler started at now.
func confStart(t *testing.T, st store, now time.Time, cj claimedJob) []jobChange {
	t.Helper()
	return confUpdate(t, st, now, func(w storeWriter) error { return w.markStarted(cj.id, cj.rec, now) })
}

// confApply applies e to a claimed job at now, on a copy of its claimed record, as
// the engine's finish does.
func confApply(t *testing.T, st store, now time.Time, cj claimedJob, e ending) (next, *record, []jobChange) {
	t.Helper()
	rec := cj.rec.clone()
	var nx next
	changes := confUpdate(t, st, now, func(w storeWriter) error {
		var err error
		nx, err = w.apply(cj.id, rec, e)
		return err
	})
	return nx, rec, changes
}

// confApplyStored applies e at now to a job that is not claimed, reading its record
// in the same write, as Promote, Cancel and Retry do.
func confApplyStored(t *testing.T, st store, now time.Time, id ID, e ending) (next, []jobChange) {
	t.Helper()
	var nx next
	changes := confUpdate(t, st, now, func(w storeWriter) error {
		rec, err := w.get(id)
		if err != nil {
			return err
		}
		nx, err = w.apply(id, rec, e)
		return err
	})
	return nx, changes
}

// confRun enqueues rec at now, claims it (it must be its queue's next job), starts
// it and applies e, all at now; it returns the job's ID.
func confRun(t *testing.T, st store, now time.Time, rec *record, e ending) ID {
	t.Helper()
	id := confEnqueueIDs(t, st, now, rec)[0]
	cj := confClaimOne(t, st, now, rec.queue, id)
	if e.outcome != outcomeInterrupted && e.started.IsZero() {
		e.started = now
	}
	confApply(t, st, now, cj, e)
	return id
}

func confGet(t *testing.T, st store, id ID) *record {
	t.Helper()
	var rec *record
	confView(t, st, func(r storeReader) (err error) {
		rec, err = r.get(id)
		return err
	})
	return rec
}

func confInfo(t *testing.T, st store, id ID) *Info {
	t.Helper()
	var in *Info
	confView(t, st, func(r storeReader) (err error) {
		in, err = r.info(id)
		return err
	})
	return in
}

// confGone fails unless get and info of id say ErrNotFound.
func confGone(t *testing.T, st store, id ID) {
	t.Helper()
	confView(t, st, func(r storeReader) error {
		if rec, err := r.get(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("get of job %d: %+v, %v; want ErrNotFound", id, rec, err)
		}
		if in, err := r.info(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("info of job %d: %+v, %v; want ErrNotFound", id, in, err)
		}
		return nil
	})
}

// confWantInfo checks a job's public state and attempts.
func confWantInfo(t *testing.T, st store, id ID, state State, attempt int) *Info {
	t.Helper()
	in := confInfo(t, st, id)
	if in.State != state || in.Attempt != attempt {
		t.Errorf("job %d: %s at attempt %d, want %s at attempt %d", id, in.State, in.Attempt, state, attempt)
	}
	return in
}

// confWantCounts checks queue's counters ("" for all): the states in want, zero for
// the others; every State must be present.
func confWantCounts(t *testing.T, st store, queue string, want map[State]int) {
	t.Helper()
	var got map[State]int
	confView(t, st, func(r storeReader) error {
		got = r.queueCounts(queue)
		return nil
	})
	for _, s := range States {
		n, ok := got[s]
		if !ok {
			t.Errorf("counts of queue %q lack state %s", queue, s)
		}
		if n != want[s] {
			t.Errorf("counts of queue %q: %s = %d, want %d (all: %v)", queue, s, n, want[s], got)
		}
	}
}

func confNextDue(t *testing.T, st store) time.Time {
	t.Helper()
	var at time.Time
	confView(t, st, func(r storeReader) error {
		at = r.nextDue()
		return nil
	})
	return at
}

// confCheckCounts fails if st's counters disagree with a recount from scratch, or
// with what list finds in each state: every case ends with it.
func confCheckCounts(t *testing.T, st store) {
	t.Helper()
	err := st.view(func(r storeReader) error {
		mm, err := r.recount()
		if err != nil {
			return fmt.Errorf("recount: %w", err)
		}
		for _, m := range mm {
			t.Errorf("counter of queue %s, state %s: stored %d, recounted %d", m.Queue, m.State, m.Stored, m.Actual)
		}
		counts := r.queueCounts("")
		for _, s := range States {
			code, _ := stateCode(s)
			jobs, next, err := r.list(Filter{State: s}, code, maxListLimit, nil)
			if err != nil {
				return fmt.Errorf("list %s: %w", s, err)
			}
			if next == nil && len(jobs) != counts[s] {
				t.Errorf("%d jobs counted %s, list finds %d", counts[s], s, len(jobs))
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("check counts: %v", err)
	}
}

var confChangeNames = map[changeKind]string{changeInserted: "inserted", changeMerged: "merged",
	changeStarted: "started", changeProgress: "progress", changeMoved: "moved", changeAdmitted: "admitted",
	changeQuarantined: "quarantined", changeRemoved: "removed"}

// confChangeList prints changes for a failure's message.
type confChangeList []jobChange

func (l confChangeList) String() string {
	var b strings.Builder
	b.WriteString("[")
	for i, c := range l {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(confFmt(c))
	}
	return b.String() + "]"
}

func confFmt(c jobChange) string {
	return fmt.Sprintf("{%s job %d %s→%s attempt %d outcome %d}", confChangeNames[c.what], c.id,
		confStateName(c.from), confStateName(c.to), c.attempt, c.outcome)
}

func confStateName(st byte) string {
	if st == 0 {
		return "∅"
	}
	if st < numStates {
		return string(stateNames[st])
	}
	return fmt.Sprintf("state%d", st)
}

// confChanges returns the changes of kind what to job id.
func confChanges(changes []jobChange, what changeKind, id ID) []jobChange {
	var out []jobChange
	for _, c := range changes {
		if c.what == what && c.id == id {
			out = append(out, c)
		}
	}
	return out
}

// confOne returns the one change of kind what to job id.
func confOne(t *testing.T, changes []jobChange, what changeKind, id ID) jobChange {
	t.Helper()
	got := confChanges(changes, what, id)
	if len(got) != 1 {
		t.Fatalf("want one %s change of job %d, got %d in %v", confChangeNames[what], id, len(got), confChangeList(changes))
	}
	return got[0]
}

// confNone fails if changes hold a change of kind what to job id.
func confNone(t *testing.T, changes []jobChange, what changeKind, id ID) {
	t.Helper()
	if got := confChanges(changes, what, id); len(got) > 0 {
		t.Errorf("want no %s change of job %d, got %v", confChangeNames[what], id, confChangeList(got))
	}
}

// confWantMove checks the one changeMoved of job id.
func confWantMove(t *testing.T, changes []jobChange, id ID, from, to byte, o outcome) jobChange {
	t.Helper()
	c := confOne(t, changes, changeMoved, id)
	if c.from != from || c.to != to || c.outcome != o {
		t.Errorf("move of job %d: %v, want %s→%s by outcome %d", id, confFmt(c), confStateName(from), confStateName(to), o)
	}
	return c
}

// Cases.

func confEnqueueGetInfoCounts(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	if st.name() == "" {
		t.Error("a store has a name")
	}
	confWantCounts(t, st, "", nil)
	later := confT0.Add(time.Hour)
	ins, changes := confEnqueue(t, st, confT0,
		confJob("email", "default", confT0, confPriority(3), confArgs(`{"to":"a"}`), confTags("x", "y"), confAttempts(4)),
		confJob("email", "default", confT0, confRunAt(later)),
		confJob("resize", "other", confT0))
	if len(ins) != 3 || len(changes) != 3 {
		t.Fatalf("inserted %+v, changes %v; want 3 and 3", ins, confChangeList(changes))
	}
	a, b, c := ins[0], ins[1], ins[2]
	if a.id == 0 || !(a.id < b.id && b.id < c.id) {
		t.Errorf("IDs %d, %d, %d: want them increasing in enqueue order", a.id, b.id, c.id)
	}
	if a.duplicate || a.state != stReady || !a.runAt.Equal(confT0) {
		t.Errorf("job due now: %+v, want ready at %v", a, confT0)
	}
	if b.duplicate || b.state != stScheduled || !b.runAt.Equal(later) {
		t.Errorf("job due later: %+v, want scheduled at %v", b, later)
	}
	for i, in := range ins {
		ch := confOne(t, changes, changeInserted, in.id)
		if ch.from != 0 || ch.to != in.state || ch.attempt != 0 {
			t.Errorf("insert change %d: %v, want ∅→%s at attempt 0", i, confFmt(ch), confStateName(in.state))
		}
	}
	if ch := confOne(t, changes, changeInserted, a.id); ch.queue != "default" || ch.kind != "email" {
		t.Errorf("insert change names queue %q kind %q, want default, email", ch.queue, ch.kind)
	}
	if ch := confOne(t, changes, changeInserted, b.id); !ch.runAt.Equal(later) {
		t.Errorf("insert change of the scheduled job: run at %v, want %v", ch.runAt, later)
	}

	rec := confGet(t, st, a.id)
	if rec.kind != "email" || rec.queue != "default" || string(rec.args) != `{"to":"a"}` || rec.state != stReady ||
		rec.priority != 3 || rec.maxAttempts != 4 || rec.attempt != 0 || !rec.createdAt.Equal(confT0) ||
		!rec.runAt.Equal(confT0) || !slices.Equal(rec.tags, []string{"x", "y"}) {
		t.Errorf("stored record: %+v", rec)
	}
	in := confWantInfo(t, st, a.id, StateReady, 0)
	if in.ID != a.id || in.Kind != "email" || in.Queue != "default" || in.Priority != 3 || in.MaxAttempts != 4 ||
		string(in.RawArgs) != `{"to":"a"}` || !slices.Equal(in.Tags, []string{"x", "y"}) || !in.StartedAt.IsZero() {
		t.Errorf("info: %+v", in)
	}
	if in := confWantInfo(t, st, b.id, StateScheduled, 0); !in.RunAt.Equal(later) {
		t.Errorf("scheduled job runs at %v, want %v", in.RunAt, later)
	}
	confView(t, st, func(r storeReader) error {
		if at, ok := r.claimedSince(a.id); ok || !at.IsZero() {
			t.Errorf("claimedSince of an unclaimed job: %v, %v", at, ok)
		}
		if names := r.queueNames(); !slices.Equal(names, []string{"default", "other"}) {
			t.Errorf("queue names %q, want [default other]", names)
		}
		return nil
	})
	confWantCounts(t, st, "default", map[State]int{StateReady: 1, StateScheduled: 1})
	confWantCounts(t, st, "other", map[State]int{StateReady: 1})
	confWantCounts(t, st, "", map[State]int{StateReady: 2, StateScheduled: 1})
	confWantCounts(t, st, "none", nil)
	if at := confNextDue(t, st); !at.Equal(later) {
		t.Errorf("next due %v, want %v", at, later)
	}
}

func confUnknownIDsAndNames(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	confGone(t, st, 1)
	id := confEnqueueIDs(t, st, confT0, confJob("email", "default", confT0))[0]
	confGone(t, st, id+1000)
	confView(t, st, func(r storeReader) error {
		if s, err := r.schedule("nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("schedule of an unknown name: %+v, %v; want ErrNotFound", s, err)
		}
		if at, ok := r.claimedSince(id + 1000); ok || !at.IsZero() {
			t.Errorf("claimedSince of an unknown job: %v, %v", at, ok)
		}
		return nil
	})
	var err error
	confUpdate(t, st, confT0, func(w storeWriter) error {
		_, err = w.schedule("nope")
		return nil
	})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("schedule of an unknown name in a write: %v; want ErrNotFound", err)
	}
}

func confUpdateRollsBack(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	boom := errors.New("boom")
	var id ID
	changes, err := st.update(confT0, nil, func(w storeWriter) error {
		in, err := w.enqueue(confJob("email", "default", confT0, confUnique(uniqueUnfinished, "k", 0), confTags("t")))
		if err != nil {
			return err
		}
		id = in.id
		if err := w.setPaused("default", true); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) || changes != nil {
		t.Fatalf("update whose fn failed: %v, %v; want boom and no changes", confChangeList(changes), err)
	}
	confGone(t, st, id)
	confWantCounts(t, st, "", nil)
	confView(t, st, func(r storeReader) error {
		if p := r.pausedQueues(); len(p) != 0 {
			t.Errorf("paused queues after a rollback: %v", p)
		}
		jobs, _, err := r.list(Filter{Tag: "t"}, 0, 10, nil)
		if err != nil || len(jobs) != 0 {
			t.Errorf("list by tag after a rollback: %d jobs, %v", len(jobs), err)
		}
		return nil
	})
	// The unique key went with the job.
	ins, _ := confEnqueue(t, st, confT0, confJob("email", "default", confT0, confUnique(uniqueUnfinished, "k", 0)))
	if ins[0].duplicate {
		t.Errorf("enqueue after a rollback is refused by the rolled back job's key: %+v", ins[0])
	}
	confWantCounts(t, st, "", map[State]int{StateReady: 1})
}

func confReadsInAWrite(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	first := confEnqueueIDs(t, st, confT0, confJob("k", "q", confT0))[0]
	confUpdate(t, st, confT0, func(w storeWriter) error {
		in, err := w.enqueue(confJob("k", "q", confT0))
		if err != nil {
			return err
		}
		if _, err := w.enqueue(confJob("k", "new", confT0, confRunAt(confT0.Add(time.Hour)))); err != nil {
			return err
		}
		if rec, err := w.get(in.id); err != nil || rec.state != stReady {
			t.Errorf("get of the job this write enqueued: %+v, %v", rec, err)
		}
		claimed, err := w.claim("q", 1, 0, 0, nil)
		if err != nil {
			return err
		}
		if got := confClaimedIDs(claimed); !slices.Equal(got, []ID{first}) {
			t.Errorf("claim in the write: %v, want [%d]", got, first)
		}
		if err := w.markStarted(first, claimed[0].rec, confT0); err != nil {
			return err
		}
		if c := w.queueCounts("q"); c[StateReady] != 1 || c[StateRunning] != 1 {
			t.Errorf("counts of queue q in the write that changed them: %v, want 1 ready, 1 running", c)
		}
		if c := w.queueCounts(""); c[StateReady] != 1 || c[StateRunning] != 1 || c[StateScheduled] != 1 {
			t.Errorf("counts of all queues in the write that changed them: %v, want 1 ready, 1 running, 1 scheduled", c)
		}
		if names := w.queueNames(); !slices.Equal(names, []string{"new", "q"}) {
			t.Errorf("queue names in the write that made queue new: %q, want [new q]", names)
		}
		if mm, err := w.recount(); err != nil || len(mm) != 0 {
			t.Errorf("recount in the write that changed the counts: %+v, %v; want no mismatch", mm, err)
		}
		mm, err := w.repairCounts()
		if err != nil {
			return err
		}
		if len(mm) != 0 {
			t.Errorf("repairCounts in the write that changed the counts: %+v, want no mismatch", mm)
		}
		return nil
	})
	confWantCounts(t, st, "q", map[State]int{StateReady: 1, StateRunning: 1})
	confWantCounts(t, st, "new", map[State]int{StateScheduled: 1})
}

func confClaimOrder(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	ids := confEnqueueIDs(t, st, confT0,
		confJob("k", "q", confT0),                                                    // 0: p0
		confJob("k", "q", confT0, confPriority(5)),                                   // 1: p5
		confJob("k", "q", confT0),                                                    // 2: p0
		confJob("k", "q", confT0, confPriority(5)),                                   // 3: p5
		confJob("k", "q", confT0, confPriority(-1)),                                  // 4: p-1
		confJob("k", "q", confT0, confPriority(9), confRunAt(confT0.Add(time.Hour))), // not due
		confJob("k", "other", confT0, confPriority(9)),                               // another queue
	)
	claimed, changes := confClaim(t, st, confT0, "q", 3)
	if got, want := confClaimedIDs(claimed), []ID{ids[1], ids[3], ids[0]}; !slices.Equal(got, want) {
		t.Fatalf("first claim: %v, want %v (priority, then FIFO)", got, want)
	}
	if len(changes) != 0 {
		t.Errorf("a claim changes no job's state: %v", confChangeList(changes))
	}
	for _, c := range claimed {
		if c.rec.kind != "k" || c.rec.queue != "q" || c.rec.state != stReady {
			t.Errorf("claimed record of job %d: %+v", c.id, c.rec)
		}
		confWantInfo(t, st, c.id, StateReady, 0) // claimed, not started
		confView(t, st, func(r storeReader) error {
			if at, ok := r.claimedSince(c.id); !ok || !at.IsZero() {
				t.Errorf("claimedSince of a claimed job not started: %v, %v; want zero, true", at, ok)
			}
			return nil
		})
	}
	confWantCounts(t, st, "q", map[State]int{StateReady: 5, StateScheduled: 1})
	claimed, _ = confClaim(t, st, confT0, "q", 10)
	if got, want := confClaimedIDs(claimed), []ID{ids[2], ids[4]}; !slices.Equal(got, want) {
		t.Fatalf("second claim: %v, want %v", got, want)
	}
	if claimed, _ = confClaim(t, st, confT0, "q", 10); len(claimed) != 0 {
		t.Errorf("claim of an empty queue: %v", confClaimedIDs(claimed))
	}
	if claimed, _ = confClaim(t, st, confT0, "nobody", 10); len(claimed) != 0 {
		t.Errorf("claim of an unknown queue: %v", confClaimedIDs(claimed))
	}
	if claimed, _ = confClaim(t, st, confT0, "q", 0); len(claimed) != 0 {
		t.Errorf("claim of 0 jobs: %v", confClaimedIDs(claimed))
	}
	confWantCounts(t, st, "q", map[State]int{StateReady: 5, StateScheduled: 1})
	confWantCounts(t, st, "other", map[State]int{StateReady: 1})
}

func confClaimExtraBeat(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	ids := confEnqueueIDs(t, st, confT0,
		confJob("k", "q", confT0, confPriority(10)),
		confJob("k", "q", confT0, confPriority(7)),
		confJob("k", "q", confT0, confPriority(5)),
		confJob("k", "q", confT0, confPriority(3)),
		confJob("k", "q", confT0, confPriority(1)))
	for _, step := range []struct {
		n, extra int
		beat     int64
		want     []ID
	}{
		{1, 2, 5, []ID{ids[0], ids[1]}},   // one, then those above 5: 7, not 5 itself
		{0, 5, 4, []ID{ids[2]}},           // only those above 4
		{0, 5, 10, []ID{}},                // nothing left above 10
		{2, 0, 100, []ID{ids[3], ids[4]}}, // n takes the best whatever their priority
	} {
		claimed, _ := confClaimWith(t, st, confT0, "q", step.n, step.extra, step.beat, nil)
		if got := confClaimedIDs(claimed); !slices.Equal(got, step.want) {
			t.Errorf("claim n=%d extra=%d beat=%d: %v, want %v", step.n, step.extra, step.beat, got, step.want)
		}
	}
}

func confClaimTake(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	ids := confEnqueueIDs(t, st, confT0,
		confJob("k", "q", confT0, confKey("a")),
		confJob("k", "q", confT0, confKey("b")),
		confJob("k", "q", confT0),
		confJob("k", "q", confT0, confKey("c")))
	var seen []string
	claimed, _ := confClaimWith(t, st, confT0, "q", 10, 0, 0, func(key []byte) (bool, bool) {
		seen = append(seen, string(key))
		return string(key) != "b", false
	})
	if got, want := confClaimedIDs(claimed), []ID{ids[0], ids[2], ids[3]}; !slices.Equal(got, want) {
		t.Errorf("claim skipping key b: %v, want %v", got, want)
	}
	if want := []string{"a", "b", "", "c"}; !slices.Equal(seen, want) {
		t.Errorf("take was asked with keys %q, want %q", seen, want)
	}
	more := confEnqueueIDs(t, st, confT0,
		confJob("k", "q", confT0, confKey("d")),
		confJob("k", "q", confT0, confKey("e")),
		confJob("k", "q", confT0, confKey("f")))
	seen = nil
	claimed, _ = confClaimWith(t, st, confT0, "q", 10, 0, 0, func(key []byte) (bool, bool) {
		seen = append(seen, string(key))
		return true, string(key) == "e"
	})
	if got, want := confClaimedIDs(claimed), []ID{ids[1], more[0]}; !slices.Equal(got, want) {
		t.Errorf("claim stopping at key e: %v, want %v", got, want)
	}
	if want := []string{"b", "d", "e"}; !slices.Equal(seen, want) {
		t.Errorf("take was asked with keys %q, want %q", seen, want)
	}
	claimed, _ = confClaim(t, st, confT0, "q", 10)
	if got, want := confClaimedIDs(claimed), []ID{more[1], more[2]}; !slices.Equal(got, want) {
		t.Errorf("claim after: %v, want the jobs take stopped at: %v", got, want)
	}
}

func confPaused(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	confView(t, st, func(r storeReader) error {
		if p := r.pausedQueues(); len(p) != 0 {
			t.Errorf("paused queues of a new store: %v", p)
		}
		return nil
	})
	id := confEnqueueIDs(t, st, confT0, confJob("k", "q", confT0))[0]
	confUpdate(t, st, confT0, func(w storeWriter) error { return w.setPaused("q", true) })
	confUpdate(t, st, confT0, func(w storeWriter) error { return w.setPaused("other", true) })
	confView(t, st, func(r storeReader) error {
		if p := r.pausedQueues(); len(p) != 2 || !p["q"] || !p["other"] {
			t.Errorf("paused queues: %v, want q and other", p)
		}
		return nil
	})
	if claimed, _ := confClaim(t, st, confT0, "q", 10); len(claimed) != 0 {
		t.Errorf("claim of a paused queue: %v", confClaimedIDs(claimed))
	}
	// Enqueueing into a paused queue works.
	id2 := confEnqueueIDs(t, st, confT0, confJob("k", "q", confT0))[0]
	confWantCounts(t, st, "q", map[State]int{StateReady: 2})
	confUpdate(t, st, confT0, func(w storeWriter) error { return w.setPaused("q", false) })
	confView(t, st, func(r storeReader) error {
		if p := r.pausedQueues(); len(p) != 1 || !p["other"] {
			t.Errorf("paused queues after resuming q: %v, want only other", p)
		}
		return nil
	})
	claimed, _ := confClaim(t, st, confT0, "q", 10)
	if got := confClaimedIDs(claimed); !slices.Equal(got, []ID{id, id2}) {
		t.Errorf("claim of a resumed queue: %v, want [%d %d]", got, id, id2)
	}
}

func confMarkStarted(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	id := confEnqueueIDs(t, st, confT0, confJob("k", "q", confT0))[0]
	cj := confClaimOne(t, st, confT0, "q", id)
	at := confT0.Add(time.Second)
	changes := confStart(t, st, at, cj)
	if c := confOne(t, changes, changeStarted, id); c.from != stReady || c.queue != "q" || c.kind != "k" || c.wait != time.Second {
		t.Errorf("start change: %v (waited %v), want from ready in queue q, a second after it was due", confFmt(c), c.wait)
	}
	in := confWantInfo(t, st, id, StateRunning, 1) // the attempt in progress
	if !in.StartedAt.Equal(at) {
		t.Errorf("started at %v, want %v", in.StartedAt, at)
	}
	confView(t, st, func(r storeReader) error {
		if since, ok := r.claimedSince(id); !ok || !since.Equal(at) {
			t.Errorf("claimedSince of a started job: %v, %v; want %v, true", since, ok, at)
		}
		return nil
	})
	confWantCounts(t, st, "q", map[State]int{StateRunning: 1})
	if claimed, _ := confClaim(t, st, at, "q", 10); len(claimed) != 0 {
		t.Errorf("claim while the only job runs: %v", confClaimedIDs(claimed))
	}
}

func confApplyOutcomes(t *testing.T, open storeOpener) {
	boom := errors.New("boom")
	started, ended := confT0.Add(time.Second), confT0.Add(3*time.Second)
	for _, c := range []struct {
		name        string
		maxAttempts int64
		e           ending
		to          byte
		attempt     int
		runAt       time.Time // for a job that waits
		ended       bool
		err         string
		claimable   bool // ready again at once
	}{
		{"Done", 3, ending{outcome: outcomeDone, started: started, result: []byte(`"ok"`)}, stDone, 1, time.Time{}, true, "", false},
		{"FailedWithRetriesLeft", 3, ending{outcome: outcomeFailed, err: boom, started: started}, stRetrying, 1, ended.Add(time.Minute), false, "boom", false},
		{"FailedWithCustomDelay", 3, ending{outcome: outcomeFailed, err: boom, started: started, custom: true, retryDelay: time.Hour}, stRetrying, 1, ended.Add(time.Hour), false, "boom", false},
		{"FailedAtLastAttempt", 1, ending{outcome: outcomeFailed, err: boom, started: started}, stFailed, 1, time.Time{}, true, "boom", false},
		{"Permanent", 3, ending{outcome: outcomePermanent, err: boom, started: started}, stFailed, 1, time.Time{}, true, "boom", false},
		{"Snoozed", 3, ending{outcome: outcomeSnoozed, started: started, snooze: 10 * time.Minute}, stScheduled, 0, ended.Add(10 * time.Minute), false, "", false},
		{"Interrupted", 3, ending{outcome: outcomeInterrupted}, stReady, 0, time.Time{}, false, "", true},
		{"Canceled", 3, ending{outcome: outcomeCanceled, err: boom, started: started}, stCanceled, 1, time.Time{}, true, "canceled: boom", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := open(t, confConfig(t))
			id := confEnqueueIDs(t, st, confT0, confJob("k", "q", confT0, confAttempts(c.maxAttempts)))[0]
			cj := confClaimOne(t, st, confT0, "q", id)
			confStart(t, st, started, cj)
			nx, rec, changes := confApply(t, st, ended, cj, c.e)
			if nx.ended != c.ended {
				t.Errorf("next.ended = %v, want %v", nx.ended, c.ended)
			}
			if rec.state != c.to {
				t.Errorf("the applied record is %s, want %s", confStateName(rec.state), confStateName(c.to))
			}
			ch := confWantMove(t, changes, id, stRunning, c.to, c.e.outcome)
			if ch.attempt != int64(c.attempt) || ch.err != c.err || ch.queue != "q" || ch.kind != "k" {
				t.Errorf("move: attempt %d error %q queue %q kind %q, want attempt %d error %q", ch.attempt, ch.err,
					ch.queue, ch.kind, c.attempt, c.err)
			}
			if !c.runAt.IsZero() && !ch.runAt.Equal(c.runAt) {
				t.Errorf("move: run at %v, want %v", ch.runAt, c.runAt)
			}
			confNone(t, changes, changeStarted, id) // recorded before
			in := confWantInfo(t, st, id, stateNames[c.to], c.attempt)
			if in.LastError != c.err {
				t.Errorf("last error %q, want %q", in.LastError, c.err)
			}
			if c.ended != !in.FinishedAt.IsZero() || c.ended && !in.FinishedAt.Equal(ended) {
				t.Errorf("finished at %v; want %v if it ended", in.FinishedAt, ended)
			}
			if !c.runAt.IsZero() {
				if !in.RunAt.Equal(c.runAt) {
					t.Errorf("runs at %v, want %v", in.RunAt, c.runAt)
				}
				if at := confNextDue(t, st); !at.Equal(c.runAt) {
					t.Errorf("next due %v, want %v", at, c.runAt)
				}
			} else if at := confNextDue(t, st); !at.IsZero() {
				t.Errorf("next due %v, want none", at)
			}
			if c.e.outcome == outcomeDone && string(in.Result) != `"ok"` {
				t.Errorf("result %s, want \"ok\"", in.Result)
			}
			confView(t, st, func(r storeReader) error {
				if _, ok := r.claimedSince(id); ok {
					t.Error("the job is still claimed after its outcome")
				}
				return nil
			})
			confWantCounts(t, st, "q", map[State]int{stateNames[c.to]: 1})
			claimed, _ := confClaim(t, st, ended, "q", 10)
			if got := len(claimed) == 1 && claimed[0].id == id; got != c.claimable {
				t.Errorf("claim after the outcome: %v; want the job: %v", confClaimedIDs(claimed), c.claimable)
			}
		})
	}
}

func confApplyShortHandler(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	ids := confEnqueueIDs(t, st, confT0, confJob("k", "q", confT0), confJob("k", "q", confT0))
	claimed, _ := confClaim(t, st, confT0, "q", 2)
	// A handler that started and ended since the last commit: its start is recorded
	// with its outcome.
	at := confT0.Add(time.Second)
	_, _, changes := confApply(t, st, at, claimed[0], ending{outcome: outcomeDone, started: at})
	if c := confOne(t, changes, changeStarted, ids[0]); c.from != stReady {
		t.Errorf("start change: %v, want from ready", confFmt(c))
	}
	if i, j := slices.IndexFunc(changes, func(c jobChange) bool { return c.what == changeStarted }),
		slices.IndexFunc(changes, func(c jobChange) bool { return c.what == changeMoved }); i > j {
		t.Errorf("the start comes after the outcome: %v", confChangeList(changes))
	}
	confWantMove(t, changes, ids[0], stReady, stDone, outcomeDone)
	if in := confWantInfo(t, st, ids[0], StateDone, 1); !in.StartedAt.Equal(at) {
		t.Errorf("started at %v, want %v", in.StartedAt, at)
	}
	// Canceled before its handler started: no attempt spent, no start.
	_, _, changes = confApply(t, st, at, claimed[1], ending{outcome: outcomeCanceled})
	confNone(t, changes, changeStarted, ids[1])
	confWantMove(t, changes, ids[1], stReady, stCanceled, outcomeCanceled)
	confWantInfo(t, st, ids[1], StateCanceled, 0)
	confWantCounts(t, st, "q", map[State]int{StateDone: 1, StateCanceled: 1})
}

// finish is apply for a claimed job whose claim the engine knows: from running if its
// start was recorded, else from ready, with the start change when the handler ran.
func confFinishClaimed(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	ids := confEnqueueIDs(t, st, confT0, confJob("k", "q", confT0), confJob("k", "q", confT0), confJob("k", "q", confT0))
	claimed, _ := confClaim(t, st, confT0, "q", 3)
	at := confT0.Add(time.Second)
	confUpdate(t, st, at, func(w storeWriter) error { return w.markStarted(claimed[0].id, claimed[0].rec, at) })
	finish := func(cj claimedJob, e ending, started bool) []jobChange {
		return confUpdate(t, st, at, func(w storeWriter) error {
			_, err := w.finish(cj.id, cj.rec.clone(), e, started)
			return err
		})
	}
	changes := finish(claimed[0], ending{outcome: outcomeDone, started: at}, true)
	confNone(t, changes, changeStarted, ids[0])
	confWantMove(t, changes, ids[0], stRunning, stDone, outcomeDone)
	changes = finish(claimed[1], ending{outcome: outcomeDone, started: at}, false)
	confOne(t, changes, changeStarted, ids[1])
	confWantMove(t, changes, ids[1], stReady, stDone, outcomeDone)
	changes = finish(claimed[2], ending{outcome: outcomeInterrupted}, false)
	confNone(t, changes, changeStarted, ids[2])
	confWantMove(t, changes, ids[2], stReady, stReady, outcomeInterrupted)
	st.view(func(r storeReader) error {
		if _, claimed := r.claimedSince(ids[2]); claimed {
			t.Error("an interrupted job is still claimed")
		}
		return nil
	})
	confWantCounts(t, st, "q", map[State]int{StateDone: 2, StateReady: 1})
}

func confRetryingComesBack(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	boom := errors.New("boom")
	id := confEnqueueIDs(t, st, confT0, confJob("k", "q", confT0, confAttempts(2)))[0]
	cj := confClaimOne(t, st, confT0, "q", id)
	confApply(t, st, confT0, cj, ending{outcome: outcomeFailed, err: boom, started: confT0})
	due := confT0.Add(time.Minute)
	if claimed, _ := confClaim(t, st, due.Add(-time.Second), "q", 10); len(claimed) != 0 {
		t.Errorf("a retrying job is claimed before its time: %v", confClaimedIDs(claimed))
	}
	var next time.Time
	changes := confUpdate(t, st, due, func(w storeWriter) (err error) {
		next, err = w.promoteDue(10)
		return err
	})
	confWantMove(t, changes, id, stRetrying, stReady, outcomeDue)
	if !next.IsZero() {
		t.Errorf("promoteDue returned %v with nothing left waiting", next)
	}
	cj = confClaimOne(t, st, due, "q", id)
	confStart(t, st, due, cj)
	confWantInfo(t, st, id, StateRunning, 2)
	_, _, changes = confApply(t, st, due, cj, ending{outcome: outcomeFailed, err: errors.New("again"), started: due})
	if c := confWantMove(t, changes, id, stRunning, stFailed, outcomeFailed); c.attempt != 2 || c.err != "again" {
		t.Errorf("move: %v error %q, want attempt 2, error again", confFmt(c), c.err)
	}
	in := confWantInfo(t, st, id, StateFailed, 2)
	if len(in.Errors) != 2 || in.Errors[0].Error != "boom" || in.Errors[0].Attempt != 1 || in.Errors[1].Attempt != 2 {
		t.Errorf("errors %+v, want boom at attempt 1 and again at 2", in.Errors)
	}
	confWantCounts(t, st, "q", map[State]int{StateFailed: 1})
}

func confApplyWaitingFinished(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	later := confT0.Add(time.Hour)
	ids := confEnqueueIDs(t, st, confT0,
		confJob("k", "q", confT0, confRunAt(later)), // promoted
		confJob("k", "q", confT0, confRunAt(later)), // canceled while scheduled
		confJob("k", "w", confT0))                   // canceled while ready
	failed := confRun(t, st, confT0, confJob("k", "f", confT0, confAttempts(1)),
		ending{outcome: outcomeFailed, err: errors.New("boom")})

	at := confT0.Add(time.Minute)
	nx, changes := confApplyStored(t, st, at, ids[0], ending{outcome: outcomeDue})
	confWantMove(t, changes, ids[0], stScheduled, stReady, outcomeDue)
	if in := confWantInfo(t, st, ids[0], StateReady, 0); !in.RunAt.Equal(at) || nx.ended {
		t.Errorf("promoted job runs at %v (ended %v), want %v", in.RunAt, nx.ended, at)
	}
	nx, changes = confApplyStored(t, st, at, ids[1], ending{outcome: outcomeCancel})
	confWantMove(t, changes, ids[1], stScheduled, stCanceled, outcomeCancel)
	if in := confWantInfo(t, st, ids[1], StateCanceled, 0); !in.FinishedAt.Equal(at) || !nx.ended {
		t.Errorf("canceled job finished at %v (ended %v), want %v", in.FinishedAt, nx.ended, at)
	}
	if due := confNextDue(t, st); !due.IsZero() {
		t.Errorf("next due %v after the scheduled jobs left", due)
	}
	_, changes = confApplyStored(t, st, at, ids[2], ending{outcome: outcomeCancel})
	confWantMove(t, changes, ids[2], stReady, stCanceled, outcomeCancel)
	if claimed, _ := confClaim(t, st, at, "w", 10); len(claimed) != 0 {
		t.Errorf("claim of a canceled job: %v", confClaimedIDs(claimed))
	}
	nx, changes = confApplyStored(t, st, at, failed, ending{outcome: outcomeRetry})
	confWantMove(t, changes, failed, stFailed, stReady, outcomeRetry)
	if in := confWantInfo(t, st, failed, StateReady, 0); !in.FinishedAt.IsZero() || nx.ended {
		t.Errorf("retried job: finished at %v, ended %v", in.FinishedAt, nx.ended)
	}
	confClaimOne(t, st, at, "f", failed)
	confClaimOne(t, st, at, "q", ids[0])
	confWantCounts(t, st, "", map[State]int{StateReady: 2, StateCanceled: 2})
}

func confSaveProgress(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	id := confEnqueueIDs(t, st, confT0, confJob("k", "q", confT0))[0]
	cj := confClaimOne(t, st, confT0, "q", id)
	confStart(t, st, confT0, cj)
	at := confT0.Add(time.Second)
	cj.rec.progress = []byte(`{"pct":50}`)
	cj.rec.appendLogs([]LogLine{{At: at, Message: "half way"}})
	changes := confUpdate(t, st, at, func(w storeWriter) error { return w.saveProgress(cj.id, cj.rec) })
	confOne(t, changes, changeProgress, id)
	in := confWantInfo(t, st, id, StateRunning, 1)
	if string(in.Progress) != `{"pct":50}` || len(in.Logs) != 1 || in.Logs[0].Message != "half way" {
		t.Errorf("progress %s, logs %+v", in.Progress, in.Logs)
	}
	confWantCounts(t, st, "q", map[State]int{StateRunning: 1})
	_, _, changes = confApply(t, st, at, cj, ending{outcome: outcomeDone, started: confT0})
	confWantMove(t, changes, id, stRunning, stDone, outcomeDone)
	if in := confWantInfo(t, st, id, StateDone, 1); string(in.Progress) != `{"pct":50}` {
		t.Errorf("progress after done: %s", in.Progress)
	}
}

// confSteps: a claimed job's steps are stored one by one, read back in key order,
// survive the job's outcome, and go when the job is removed.
func confSteps(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	ids := confEnqueueIDs(t, st, confT0, confJob("k", "q", confT0), confJob("k", "q", confT0))
	id, other := ids[0], ids[1]
	cj := confClaimOne(t, st, confT0, "q", id)
	confStart(t, st, confT0, cj)
	at := confT0.Add(time.Second)
	b := &step{key: "b", state: stepDone, attempts: 1, result: []byte(`2`), startedAt: confT0, finishedAt: at}
	a := &step{key: "a", state: stepFailed, attempts: 2, err: "declined", startedAt: confT0, finishedAt: at}
	confUpdate(t, st, at, func(w storeWriter) error { return w.saveStep(id, nil, b) })
	rec := cj.rec.clone()
	rec.attempt = 0
	confUpdate(t, st, at, func(w storeWriter) error { return w.saveStep(id, rec, a) })
	var got, none []*step
	confView(t, st, func(r storeReader) (err error) {
		if got, err = r.steps(id); err != nil {
			return err
		}
		none, err = r.steps(other)
		return err
	})
	if len(got) != 2 || len(none) != 0 {
		t.Fatalf("steps of %d: %d, of %d: %d; want 2 and 0", id, len(got), other, len(none))
	}
	if g := got[0]; g.key != "a" || g.state != stepFailed || g.err != "declined" || g.attempts != 2 ||
		!g.startedAt.Equal(confT0) || !g.finishedAt.Equal(at) {
		t.Errorf("step a read back as %+v", g)
	}
	if g := got[1]; g.key != "b" || g.state != stepDone || string(g.result) != "2" {
		t.Errorf("step b read back as %+v", g)
	}
	confWantInfo(t, st, id, StateRunning, 1)
	_, _, _ = confApply(t, st, at, claimedJob{id: id, rec: rec}, ending{outcome: outcomeDone, started: confT0})
	confWantInfo(t, st, id, StateDone, 1)
	confUpdate(t, st, at, func(w storeWriter) error {
		rec, err := w.get(id)
		if err != nil {
			return err
		}
		return w.remove(id, rec)
	})
	confView(t, st, func(r storeReader) (err error) {
		got, err = r.steps(id)
		return err
	})
	if len(got) != 0 {
		t.Errorf("a removed job keeps %d steps", len(got))
	}

	// A sleep is stored with the suspension that finish records.
	wake := at.Add(time.Hour)
	oc := confClaimOne(t, st, at, "q", other)
	nap := &step{key: "nap", state: stepSleep, startedAt: at, finishedAt: wake}
	_, _, changes := confApply(t, st, at, oc, ending{outcome: outcomeSlept, started: at, sleep: nap})
	confWantMove(t, changes, other, stReady, stScheduled, outcomeSlept)
	if in := confWantInfo(t, st, other, StateScheduled, 0); !in.RunAt.Equal(wake) {
		t.Errorf("a sleeping job runs at %v, want its wake-up %v", in.RunAt, wake)
	}
	confView(t, st, func(r storeReader) (err error) {
		got, err = r.steps(other)
		return err
	})
	if len(got) != 1 || got[0].key != "nap" || got[0].state != stepSleep || !got[0].finishedAt.Equal(wake) {
		t.Errorf("the sleep read back as %+v", got)
	}
}

func confPromoteDue(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	m := func(n int) time.Time { return confT0.Add(time.Duration(n) * time.Minute) }
	ids := confEnqueueIDs(t, st, confT0,
		confJob("k", "q", confT0, confRunAt(m(1))),
		confJob("k", "q", confT0, confRunAt(m(2))),
		confJob("k", "other", confT0, confRunAt(m(3))),
		confJob("k", "q", confT0, confRunAt(m(60))),
		confJob("k", "q", confT0))
	promote := func(now time.Time, n int) (time.Time, []jobChange) {
		t.Helper()
		var next time.Time
		changes := confUpdate(t, st, now, func(w storeWriter) (err error) {
			next, err = w.promoteDue(n)
			return err
		})
		return next, changes
	}
	next, changes := promote(confT0, 10)
	if len(changes) != 0 || !next.Equal(m(1)) {
		t.Errorf("promote before anything is due: %v, next %v; want nothing, next %v", confChangeList(changes), next, m(1))
	}
	next, changes = promote(m(2), 10)
	if len(changes) != 2 || !next.Equal(m(3)) {
		t.Errorf("promote at %v: %v, next %v; want two moves, next %v", m(2), confChangeList(changes), next, m(3))
	}
	for _, id := range ids[:2] {
		confWantMove(t, changes, id, stScheduled, stReady, outcomeDue)
		if in := confWantInfo(t, st, id, StateReady, 0); in.RunAt.After(m(2)) {
			t.Errorf("job %d promoted at %v runs at %v", id, m(2), in.RunAt)
		}
	}
	if at := confNextDue(t, st); !at.Equal(m(3)) {
		t.Errorf("next due %v, want %v", at, m(3))
	}
	confWantCounts(t, st, "q", map[State]int{StateReady: 3, StateScheduled: 1})
	claimed, _ := confClaim(t, st, m(2), "q", 10)
	if got := confClaimedIDs(claimed); !slices.Equal(got, []ID{ids[0], ids[1], ids[4]}) {
		t.Errorf("claim after promotion: %v", got)
	}
	// A batch smaller than what is due: the answer says more are due now.
	late := m(120)
	next, changes = promote(late, 1)
	if len(changes) != 1 || next.IsZero() || next.After(late) {
		t.Errorf("promote 1 of 2 due: %v, next %v; want one move and a next due by %v", confChangeList(changes), next, late)
	}
	confWantMove(t, changes, ids[2], stScheduled, stReady, outcomeDue)
	// The last one: nothing waits after it.
	next, changes = promote(late, 1)
	confWantMove(t, changes, ids[3], stScheduled, stReady, outcomeDue)
	if !next.IsZero() {
		t.Errorf("promote of the last waiting job returned next %v, want zero: none waits", next)
	}
	if next, changes = promote(late, 10); len(changes) != 0 || !next.IsZero() {
		t.Errorf("promote with nothing waiting: %v, next %v", confChangeList(changes), next)
	}
	if at := confNextDue(t, st); !at.IsZero() {
		t.Errorf("next due %v with nothing waiting", at)
	}
	confWantCounts(t, st, "", map[State]int{StateReady: 5})
}

func confUniqueKey(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	unique := confUnique(uniqueUnfinished, "k", 0)
	first := confEnqueueIDs(t, st, confT0, confJob("email", "q", confT0, unique))[0]
	refused := func(now time.Time, holder ID) {
		t.Helper()
		ins, changes := confEnqueue(t, st, now, confJob("email", "q", now, unique))
		if !ins[0].duplicate || ins[0].id != holder || len(changes) != 0 {
			t.Errorf("enqueue of a held key: %+v, %v; want refused, held by %d", ins[0], confChangeList(changes), holder)
		}
	}
	refused(confT0, first) // ready
	// The key is per kind.
	confEnqueueIDs(t, st, confT0, confJob("sms", "q", confT0, unique))
	cj := confClaimOne(t, st, confT0, "q", first)
	refused(confT0, first) // claimed
	confStart(t, st, confT0, cj)
	refused(confT0, first) // running
	confApply(t, st, confT0, cj, ending{outcome: outcomeFailed, err: errors.New("boom"), started: confT0})
	refused(confT0, first) // retrying
	at := confT0.Add(time.Minute)
	confUpdate(t, st, at, func(w storeWriter) error { _, err := w.promoteDue(10); return err })
	cj = confClaimOne(t, st, at, "q", first)
	confApply(t, st, at, cj, ending{outcome: outcomeDone, started: at})
	// Done: the key is free.
	second := confEnqueueIDs(t, st, at, confJob("email", "q", at, unique))[0]
	if second == first {
		t.Errorf("a new job took the ID of the finished one")
	}
	refused(at, second)
	confWantCounts(t, st, "q", map[State]int{StateReady: 2, StateDone: 1})
}

func confThrottle(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	throttle := confUnique(uniqueThrottle, "t", time.Hour)
	try := func(now time.Time) inserted {
		t.Helper()
		ins, _ := confEnqueue(t, st, now, confJob("email", "q", now, throttle))
		return ins[0]
	}
	first := try(confT0)
	if first.duplicate {
		t.Fatalf("first throttled enqueue refused: %+v", first)
	}
	if in := try(confT0.Add(30 * time.Minute)); !in.duplicate || in.id != first.id {
		t.Errorf("enqueue within the period: %+v, want refused, held by %d", in, first.id)
	}
	cj := confClaimOne(t, st, confT0.Add(40*time.Minute), "q", first.id)
	confApply(t, st, confT0.Add(40*time.Minute), cj, ending{outcome: outcomeDone, started: confT0.Add(40 * time.Minute)})
	if in := try(confT0.Add(45 * time.Minute)); !in.duplicate || in.id != first.id {
		t.Errorf("enqueue within the period after the job finished: %+v, want refused, held by %d", in, first.id)
	}
	second := try(confT0.Add(time.Hour))
	if second.duplicate || second.id == first.id {
		t.Errorf("enqueue once the period is over: %+v, want a new job", second)
	}
	if in := try(confT0.Add(61 * time.Minute)); !in.duplicate || in.id != second.id {
		t.Errorf("enqueue within the new period: %+v, want refused, held by %d", in, second.id)
	}
	confWantCounts(t, st, "q", map[State]int{StateReady: 1, StateDone: 1})
}

func confDebounce(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	debounce := confUnique(uniqueDebounce, "d", 10*time.Minute)
	ins, _ := confEnqueue(t, st, confT0, confJob("email", "q", confT0, debounce, confArgs(`{"n":1}`)))
	first := ins[0]
	if first.duplicate || first.state != stScheduled || !first.runAt.Equal(confT0.Add(10*time.Minute)) {
		t.Fatalf("first debounced enqueue: %+v", first)
	}
	at := confT0.Add(5 * time.Minute)
	want := at.Add(10 * time.Minute)
	ins, changes := confEnqueue(t, st, at, confJob("email", "q", at, debounce, confArgs(`{"n":2}`)))
	if in := ins[0]; in.duplicate || in.id != first.id || in.state != stScheduled || !in.runAt.Equal(want) {
		t.Errorf("debounced enqueue: %+v, want merged into job %d, due %v", in, first.id, want)
	}
	if len(changes) != 1 {
		t.Errorf("changes of a merge: %v, want one", confChangeList(changes))
	}
	if c := confOne(t, changes, changeMerged, first.id); c.from != stScheduled || c.to != stScheduled || !c.runAt.Equal(want) {
		t.Errorf("merge change: %v run at %v, want scheduled→scheduled at %v", confFmt(c), c.runAt, want)
	}
	rec := confGet(t, st, first.id)
	if string(rec.args) != `{"n":2}` || !rec.runAt.Equal(want) || rec.state != stScheduled {
		t.Errorf("merged job: args %s, run at %v, %s", rec.args, rec.runAt, confStateName(rec.state))
	}
	if due := confNextDue(t, st); !due.Equal(want) {
		t.Errorf("next due %v, want %v", due, want)
	}
	confWantCounts(t, st, "q", map[State]int{StateScheduled: 1})
	confUpdate(t, st, want, func(w storeWriter) error { _, err := w.promoteDue(10); return err })
	// Its time came: the next enqueue stands alone.
	at = want.Add(time.Minute)
	ins, changes = confEnqueue(t, st, at, confJob("email", "q", at, debounce, confArgs(`{"n":3}`)))
	if in := ins[0]; in.duplicate || in.id == first.id || in.state != stScheduled {
		t.Errorf("debounced enqueue after the job became ready: %+v, want a new job", in)
	}
	confOne(t, changes, changeInserted, ins[0].id)
	if rec := confGet(t, st, first.id); string(rec.args) != `{"n":2}` {
		t.Errorf("the ready job's args changed to %s", rec.args)
	}
	confWantCounts(t, st, "q", map[State]int{StateReady: 1, StateScheduled: 1})
}

func confTakeUnique(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	unique := confUnique(uniqueUnfinished, "k", 0)
	old := confRun(t, st, confT0, confJob("email", "q", confT0, unique, confAttempts(1)),
		ending{outcome: outcomeFailed, err: errors.New("boom")})
	holder := confEnqueueIDs(t, st, confT0, confJob("email", "q", confT0, unique))[0]
	take := func(now time.Time, id ID) error {
		t.Helper()
		var taken error
		confUpdate(t, st, now, func(w storeWriter) error {
			rec, err := w.get(id)
			if err != nil {
				return err
			}
			if taken = w.takeUnique(id, rec); taken != nil {
				return nil
			}
			_, err = w.apply(id, rec, ending{outcome: outcomeRetry})
			return err
		})
		return taken
	}
	if err := take(confT0, old); !errors.Is(err, ErrDuplicate) {
		t.Errorf("takeUnique while job %d holds the key: %v, want ErrDuplicate", holder, err)
	}
	confWantInfo(t, st, old, StateFailed, 1)
	cj := confClaimOne(t, st, confT0, "q", holder)
	confApply(t, st, confT0, cj, ending{outcome: outcomeDone, started: confT0})
	if err := take(confT0, old); err != nil {
		t.Fatalf("takeUnique once the holder finished: %v", err)
	}
	confWantInfo(t, st, old, StateReady, 0)
	ins, _ := confEnqueue(t, st, confT0, confJob("email", "q", confT0, unique))
	if !ins[0].duplicate || ins[0].id != old {
		t.Errorf("enqueue of the key the retried job took back: %+v, want refused, held by %d", ins[0], old)
	}
	// A job without a unique key takes nothing.
	plain := confRun(t, st, confT0, confJob("email", "p", confT0, confAttempts(1)), ending{outcome: outcomeFailed, err: errors.New("x")})
	if err := take(confT0, plain); err != nil {
		t.Errorf("takeUnique of a job without a key: %v", err)
	}
	confWantCounts(t, st, "", map[State]int{StateReady: 2, StateDone: 1})
}

func confKeyConcurrency(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t, WithKeyLimits("q", 1, 0, 0)))
	ids := confEnqueueIDs(t, st, confT0,
		confJob("k", "q", confT0, confKey("a")),
		confJob("k", "q", confT0, confKey("a")),
		confJob("k", "q", confT0, confKey("b")),
		confJob("k", "q", confT0))
	confWantCounts(t, st, "q", map[State]int{StateReady: 4})
	confWantInfo(t, st, ids[1], StateReady, 0)
	claimed, _ := confClaim(t, st, confT0, "q", 10)
	if got, want := confClaimedIDs(claimed), []ID{ids[0], ids[2], ids[3]}; !slices.Equal(got, want) {
		t.Fatalf("claim: %v, want %v (the second job of key a waits)", got, want)
	}
	if more, _ := confClaim(t, st, confT0, "q", 10); len(more) != 0 {
		t.Errorf("claim while key a's slot is taken: %v", confClaimedIDs(more))
	}
	confStart(t, st, confT0, claimed[0])
	_, _, changes := confApply(t, st, confT0, claimed[0], ending{outcome: outcomeDone, started: confT0})
	if c := confOne(t, changes, changeAdmitted, ids[1]); c.queue != "q" || c.to != stReady {
		t.Errorf("admission: %v, want ready in queue q", confFmt(c))
	}
	cj := confClaimOne(t, st, confT0, "q", ids[1])

	// Interrupted, it keeps its slot: a later job of its key still waits.
	later := confEnqueueIDs(t, st, confT0, confJob("k", "q", confT0, confKey("a")))[0]
	_, _, changes = confApply(t, st, confT0, cj, ending{outcome: outcomeInterrupted})
	confNone(t, changes, changeAdmitted, later)
	cj = confClaimOne(t, st, confT0, "q", ids[1])
	// Snoozed, it gives the slot up.
	_, _, changes = confApply(t, st, confT0, cj, ending{outcome: outcomeSnoozed, started: confT0, snooze: time.Minute})
	confOne(t, changes, changeAdmitted, later)
	cj = confClaimOne(t, st, confT0, "q", later)

	// The key's line is in priority order, then FIFO.
	line := confEnqueueIDs(t, st, confT0,
		confJob("k", "q", confT0, confKey("a")),
		confJob("k", "q", confT0, confKey("a"), confPriority(5)),
		confJob("k", "q", confT0, confKey("a"), confPriority(5)))
	_, _, changes = confApply(t, st, confT0, cj, ending{outcome: outcomeFailed, err: errors.New("boom"), started: confT0})
	confOne(t, changes, changeAdmitted, line[1])
	confNone(t, changes, changeAdmitted, line[0])
	cj = confClaimOne(t, st, confT0, "q", line[1])
	// A waiting job canceled leaves the line without taking the slot.
	_, changes = confApplyStored(t, st, confT0, line[2], ending{outcome: outcomeCancel})
	confWantMove(t, changes, line[2], stReady, stCanceled, outcomeCancel)
	_, _, changes = confApply(t, st, confT0, cj, ending{outcome: outcomeDone, started: confT0})
	confOne(t, changes, changeAdmitted, line[0])
	confClaimOne(t, st, confT0, "q", line[0])
	confWantCounts(t, st, "q", map[State]int{StateReady: 3, StateScheduled: 1, StateRetrying: 1,
		StateDone: 2, StateCanceled: 1})
}

func confKeyHeld(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t, WithKeyLimits("q", 1, 0, 0)))
	ids := confEnqueueIDs(t, st, confT0,
		confJob("k", "q", confT0, confKey("a"), confAttempts(1)),
		confJob("k", "q", confT0, confKey("a")))
	cj := confClaimOne(t, st, confT0, "q", ids[0])
	confStart(t, st, confT0, cj)
	// Its timeout passed while its handler runs on: the attempt failed, the slot is
	// the handler's until it returns.
	at := confT0.Add(time.Minute)
	_, _, changes := confApply(t, st, at, cj, ending{outcome: outcomeFailed, err: errors.New("timeout"),
		started: confT0, abandoned: true})
	confWantMove(t, changes, ids[0], stRunning, stFailed, outcomeFailed)
	confNone(t, changes, changeAdmitted, ids[1])
	if claimed, _ := confClaim(t, st, at, "q", 10); len(claimed) != 0 {
		t.Errorf("claim while an abandoned handler holds the slot: %v", confClaimedIDs(claimed))
	}
	changes = confUpdate(t, st, at, func(w storeWriter) error { return w.releaseHeld(ids[0]) })
	confOne(t, changes, changeAdmitted, ids[1])
	if changes = confUpdate(t, st, at, func(w storeWriter) error { return w.releaseHeld(ids[0]) }); len(changes) != 0 {
		t.Errorf("a second release: %v", confChangeList(changes))
	}
	if changes = confUpdate(t, st, at, func(w storeWriter) error { return w.releaseHeld(ids[1]) }); len(changes) != 0 {
		t.Errorf("release of a job that holds nothing: %v", confChangeList(changes))
	}
	confClaimOne(t, st, at, "q", ids[1])
	confWantCounts(t, st, "q", map[State]int{StateReady: 1, StateFailed: 1})
}

// confSchedule builds a stored schedule as Runner.Schedule does, first firing after now.
func confSchedule(t *testing.T, name, spec, tz string, now time.Time, mods ...func(*record)) *storedSchedule {
	t.Helper()
	rec := confJob("report", "default", now, mods...)
	s := &storedSchedule{Spec: spec, TimeZone: tz}
	sched, err := s.parse()
	if err != nil {
		t.Fatalf("parse %q: %v", spec, err)
	}
	rec.schedule, rec.state = name, stReady
	s.Template = rec.encode()
	s.Next = sched.Next(now).UnixNano()
	return s
}

func confSchedules(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	b := confSchedule(t, "b", "@hourly", "", confT0)
	a := confSchedule(t, "a", "*/5 * * * *", "UTC", confT0, confArgs(`{"n":1}`))
	a.SkipMissed, a.SkipOverlap = true, true
	confUpdate(t, st, confT0, func(w storeWriter) error {
		if err := w.putSchedule("b", b); err != nil {
			return err
		}
		return w.putSchedule("a", a)
	})
	got := func(name string) *storedSchedule {
		t.Helper()
		var s *storedSchedule
		confView(t, st, func(r storeReader) (err error) {
			s, err = r.schedule(name)
			return err
		})
		return s
	}
	if s := got("a"); s.Spec != a.Spec || s.TimeZone != "UTC" || !bytes.Equal(s.Template, a.Template) || s.Next != a.Next ||
		!s.SkipMissed || !s.SkipOverlap || s.Last != 0 || s.LastJob != 0 {
		t.Errorf("stored schedule a: %+v, want %+v", s, a)
	}
	var names []string
	confView(t, st, func(r storeReader) error {
		return r.eachSchedule(func(name string, s *storedSchedule, _ error) error {
			names = append(names, name)
			if name == "b" && s.Spec != "@hourly" {
				t.Errorf("schedule b: %+v", s)
			}
			return nil
		})
	})
	if !slices.Equal(names, []string{"a", "b"}) {
		t.Errorf("eachSchedule visited %q, want [a b]", names)
	}
	stop := errors.New("stop")
	err := st.view(func(r storeReader) error {
		return r.eachSchedule(func(string, *storedSchedule, error) error { return stop })
	})
	if !errors.Is(err, stop) {
		t.Errorf("eachSchedule with fn failing: %v, want fn's error", err)
	}
	// Replaced.
	a2 := confSchedule(t, "a", "@daily", "", confT0)
	confUpdate(t, st, confT0, func(w storeWriter) error { return w.putSchedule("a", a2) })
	if s := got("a"); s.Spec != "@daily" || s.SkipMissed || s.Next != a2.Next {
		t.Errorf("replaced schedule a: %+v", s)
	}
	confUpdate(t, st, confT0, func(w storeWriter) error { return w.deleteSchedule("a") })
	confView(t, st, func(r storeReader) error {
		if s, err := r.schedule("a"); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted schedule: %+v, %v; want ErrNotFound", s, err)
		}
		names = nil
		return r.eachSchedule(func(name string, _ *storedSchedule, _ error) error {
			names = append(names, name)
			return nil
		})
	})
	if !slices.Equal(names, []string{"b"}) {
		t.Errorf("schedules after deleting a: %q", names)
	}
}

func confFireDue(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	hm := func(h, m int) time.Time { return time.Date(2030, time.January, 2, h, m, 0, 0, time.UTC) }
	s := confSchedule(t, "tick", "*/5 * * * *", "UTC", confT0, confArgs(`{"n":1}`))
	if want := hm(3, 5); s.Next != want.UnixNano() {
		t.Fatalf("first fire %v, want %v", time.Unix(0, s.Next), want)
	}
	confUpdate(t, st, confT0, func(w storeWriter) error { return w.putSchedule("tick", s) })
	var logged []string
	logf := func(msg string, _ ...any) { logged = append(logged, msg) }
	fire := func(now time.Time, calls int) (map[string]time.Time, []jobChange) {
		t.Helper()
		var next map[string]time.Time
		changes := confUpdate(t, st, now, func(w storeWriter) error {
			for range calls {
				var err error
				if next, err = w.fireDue([]string{"tick", "gone"}, logf); err != nil {
					return err
				}
			}
			return nil
		})
		if _, ok := next["gone"]; ok {
			t.Errorf("fireDue answered for an unknown schedule: %v", next)
		}
		return next, changes
	}
	stored := func() *storedSchedule {
		t.Helper()
		var s *storedSchedule
		confView(t, st, func(r storeReader) (err error) {
			s, err = r.schedule("tick")
			return err
		})
		return s
	}
	wantFire := func(changes []jobChange, now, fireAt time.Time) ID {
		t.Helper()
		if len(changes) != 1 || changes[0].what != changeInserted {
			t.Fatalf("fire at %v: %v, want one job", now.Format(time.TimeOnly), confChangeList(changes))
		}
		id := changes[0].id
		rec := confGet(t, st, id)
		if rec.kind != "report" || rec.schedule != "tick" || !rec.fireAt.Equal(fireAt) || !rec.createdAt.Equal(now) ||
			rec.state != stReady || string(rec.args) != `{"n":1}` {
			t.Errorf("fired job: %+v, want a ready report for the fire at %v", rec, fireAt)
		}
		if s := stored(); s.LastJob != id || s.Last != fireAt.UnixNano() {
			t.Errorf("after the fire at %v: last %v, last job %d; want job %d", fireAt, time.Unix(0, s.Last), s.LastJob, id)
		}
		return id
	}

	next, changes := fire(confT0, 1)
	if len(changes) != 0 || !next["tick"].Equal(hm(3, 5)) {
		t.Errorf("fireDue before the fire: %v, next %v", confChangeList(changes), next)
	}
	next, changes = fire(hm(3, 5), 1)
	wantFire(changes, hm(3, 5), hm(3, 5))
	if !next["tick"].Equal(hm(3, 10)) || stored().Next != hm(3, 10).UnixNano() {
		t.Errorf("next fire %v (stored %v), want %v", next["tick"], time.Unix(0, stored().Next), hm(3, 10))
	}
	// Again for the same due time: nothing.
	if next, changes = fire(hm(3, 5), 1); len(changes) != 0 || !next["tick"].Equal(hm(3, 10)) {
		t.Errorf("fireDue again at the same time: %v, next %v", confChangeList(changes), next)
	}
	// Twice in one write: one job.
	next, changes = fire(hm(3, 10), 2)
	wantFire(changes, hm(3, 10), hm(3, 10))
	if !next["tick"].Equal(hm(3, 15)) {
		t.Errorf("next fire %v, want %v", next["tick"], hm(3, 15))
	}
	// A stale next fire, for a time it already fired for, does not fire again.
	s = stored()
	s.Next = hm(3, 10).UnixNano()
	confUpdate(t, st, hm(3, 11), func(w storeWriter) error { return w.putSchedule("tick", s) })
	if next, changes = fire(hm(3, 11), 1); len(changes) != 0 || !next["tick"].Equal(hm(3, 15)) {
		t.Errorf("fireDue with a next fire it fired for: %v, next %v; want nothing, next %v", confChangeList(changes), next, hm(3, 15))
	}
	// Fires missed while no one looked run once, and the next is after now.
	next, changes = fire(hm(3, 31), 1)
	wantFire(changes, hm(3, 31), hm(3, 15))
	if !next["tick"].Equal(hm(3, 35)) {
		t.Errorf("next fire after missed ones %v, want %v", next["tick"], hm(3, 35))
	}
	// fire enqueues outside the timetable, which stays.
	var ins inserted
	changes = confUpdate(t, st, hm(3, 32), func(w storeWriter) error {
		s, err := w.schedule("tick")
		if err != nil {
			return err
		}
		var ok bool
		if ins, ok, err = w.fire("tick", s, hm(3, 32)); err == nil && !ok {
			err = errors.New("template unreadable")
		}
		return err
	})
	confOne(t, changes, changeInserted, ins.id)
	if rec := confGet(t, st, ins.id); rec.schedule != "tick" || !rec.fireAt.Equal(hm(3, 32)) {
		t.Errorf("triggered job: %+v", rec)
	}
	if s := stored(); s.Next != hm(3, 35).UnixNano() {
		t.Errorf("a trigger moved the next fire to %v", time.Unix(0, s.Next))
	}
	if len(logged) != 0 {
		t.Errorf("fireDue logged %q", logged)
	}
	confWantCounts(t, st, "default", map[State]int{StateReady: 4})
}

// confRetain runs retentionDue and, if it says so, retain of every final state to
// its end, a job per call, all in one write at now.
func confRetain(t *testing.T, st store, now time.Time) (due bool, next time.Time, changes []jobChange) {
	t.Helper()
	changes = confUpdate(t, st, now, func(w storeWriter) error {
		if due, next = w.retentionDue(); !due {
			return nil
		}
		for _, s := range []byte{stDone, stFailed, stCanceled} {
			var after []byte
			for batch := 0; ; batch++ {
				if batch == 100 {
					return fmt.Errorf("retain of state %s did not finish in 100 batches", confStateName(s))
				}
				var err error
				if after, err = w.retain(s, after, 1); err != nil {
					return err
				}
				if after == nil {
					break
				}
			}
		}
		return nil
	})
	return due, next, changes
}

func confRemovedIDs(changes []jobChange) []ID {
	ids := []ID{}
	for _, c := range changes {
		if c.what == changeRemoved {
			ids = append(ids, c.id)
		}
	}
	slices.Sort(ids)
	return ids
}

func confRetentionByAge(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t,
		WithRetention("", Retention{Done: time.Hour}),
		WithRetention("long", Retention{Done: 3 * time.Hour}),
		WithRetention("keep", Retention{Done: -1, Failed: -1, Canceled: -1})))
	m := func(n int) time.Time { return confT0.Add(time.Duration(n) * time.Minute) }
	done := ending{outcome: outcomeDone}
	old := confRun(t, st, m(0), confJob("k", "default", m(0)), done)
	kept := confRun(t, st, m(0), confJob("k", "keep", m(0)), done)
	failed := confRun(t, st, m(0), confJob("k", "default", m(0), confAttempts(1)), ending{outcome: outcomeFailed, err: errors.New("x")})
	long := confRun(t, st, m(0), confJob("k", "long", m(0)), done) // its queue keeps done jobs 3h
	young := confRun(t, st, m(30), confJob("k", "default", m(30)), done)
	waiting := confEnqueueIDs(t, st, m(30), confJob("k", "default", m(30), confRunAt(m(24*60*30))))[0]

	due, next, changes := confRetain(t, st, m(45))
	if due || !next.Equal(m(60)) || len(changes) != 0 {
		t.Errorf("retention at +45m: due %v, next %v, %v; want not due, next at %v", due, next, confChangeList(changes), m(60))
	}
	due, next, changes = confRetain(t, st, m(61))
	if !due {
		t.Fatalf("retention at +61m: not due (next %v), want due: job %d expired", next, old)
	}
	if got := confRemovedIDs(changes); !slices.Equal(got, []ID{old}) {
		t.Errorf("retention at +61m removed %v, want [%d]", got, old)
	}
	if c := confOne(t, changes, changeRemoved, old); c.from != stDone || c.to != 0 || c.queue != "default" {
		t.Errorf("removal: %v, want done→∅ in queue default", confFmt(c))
	}
	confGone(t, st, old)
	confWantInfo(t, st, kept, StateDone, 1)
	confWantInfo(t, st, failed, StateFailed, 1)
	confWantInfo(t, st, young, StateDone, 1)
	confWantInfo(t, st, long, StateDone, 1)
	confWantInfo(t, st, waiting, StateScheduled, 0)
	due, next, _ = confRetain(t, st, m(62))
	if due || !next.Equal(m(90)) {
		t.Errorf("retention at +62m: due %v, next %v; want not due, next %v", due, next, m(90))
	}
	// A week on, the failed job expires too; the kept queue keeps its job forever.
	week := m(7*24*60 + 1)
	if due, _, changes = confRetain(t, st, week); !due {
		t.Fatal("retention a week on: not due")
	}
	if got := confRemovedIDs(changes); !slices.Equal(got, []ID{failed, long, young}) {
		t.Errorf("retention a week on removed %v, want [%d %d %d]", got, failed, long, young)
	}
	if due, next, _ = confRetain(t, st, week.Add(365*24*time.Hour)); due || !next.IsZero() {
		t.Errorf("retention with only kept jobs: due %v, next %v; want never", due, next)
	}
	confWantInfo(t, st, kept, StateDone, 1)
	confWantCounts(t, st, "default", map[State]int{StateScheduled: 1})
	confWantCounts(t, st, "keep", map[State]int{StateDone: 1})
}

func confRetentionByCount(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t,
		WithRetention("", Retention{Done: -1, Failed: -1, Canceled: -1}),
		WithRetention("capped", Retention{Done: -1, Failed: -1, Canceled: -1, MaxDone: 2})))
	var capped, other []ID
	for i := range 4 {
		at := confT0.Add(time.Duration(i) * time.Minute)
		capped = append(capped, confRun(t, st, at, confJob("k", "capped", at), ending{outcome: outcomeDone}))
		other = append(other, confRun(t, st, at, confJob("k", "other", at), ending{outcome: outcomeDone}))
	}
	at := confT0.Add(4 * time.Minute)
	capped = append(capped, confRun(t, st, at, confJob("k", "capped", at, confAttempts(1)),
		ending{outcome: outcomeFailed, err: errors.New("x")}))
	now := confT0.Add(time.Hour)
	due, _, changes := confRetain(t, st, now)
	if !due {
		t.Fatal("a queue over its count limit: retention not due")
	}
	if got := confRemovedIDs(changes); !slices.Equal(got, capped[:2]) {
		t.Errorf("retention removed %v, want the two oldest done jobs of the capped queue %v", got, capped[:2])
	}
	confWantCounts(t, st, "capped", map[State]int{StateDone: 2, StateFailed: 1})
	confWantCounts(t, st, "other", map[State]int{StateDone: 4})
	if due, next, _ := confRetain(t, st, now); due || !next.IsZero() {
		t.Errorf("retention at the count limit: due %v, next %v; want never", due, next)
	}
}

func confRemove(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t, WithKeyLimits("keyed", 1, 0, 0)))
	unique := confUnique(uniqueUnfinished, "u", 0)
	later := confT0.Add(time.Hour)
	ids := confEnqueueIDs(t, st, confT0,
		confJob("k", "q", confT0, unique, confTags("t")),
		confJob("k", "q", confT0, confRunAt(later)),
		confJob("k", "keyed", confT0, confKey("a")),
		confJob("k", "keyed", confT0, confKey("a")))
	done := confRun(t, st, confT0, confJob("k", "d", confT0), ending{outcome: outcomeDone})
	remove := func(id ID) []jobChange {
		t.Helper()
		return confUpdate(t, st, confT0, func(w storeWriter) error {
			rec, err := w.get(id)
			if err != nil {
				return err
			}
			return w.remove(id, rec)
		})
	}
	for _, c := range []struct {
		id   ID
		from byte
	}{{ids[0], stReady}, {ids[1], stScheduled}, {done, stDone}} {
		if ch := confOne(t, remove(c.id), changeRemoved, c.id); ch.from != c.from || ch.to != 0 {
			t.Errorf("removal of job %d: %v, want %s→∅", c.id, confFmt(ch), confStateName(c.from))
		}
		confGone(t, st, c.id)
	}
	confView(t, st, func(r storeReader) error {
		if jobs, _, err := r.list(Filter{Tag: "t"}, 0, 10, nil); err != nil || len(jobs) != 0 {
			t.Errorf("list by the removed job's tag: %d jobs, %v", len(jobs), err)
		}
		if at := r.nextDue(); !at.IsZero() {
			t.Errorf("next due %v after removing the scheduled job", at)
		}
		return nil
	})
	ins, _ := confEnqueue(t, st, confT0, confJob("k", "q", confT0, unique))
	if ins[0].duplicate {
		t.Errorf("enqueue with the removed job's unique key: refused by %d", ins[0].id)
	}
	// A keyed job that held its key's slot gives it to the next.
	changes := remove(ids[2])
	confOne(t, changes, changeRemoved, ids[2])
	confOne(t, changes, changeAdmitted, ids[3])
	confClaimOne(t, st, confT0, "keyed", ids[3])
	confWantCounts(t, st, "", map[State]int{StateReady: 2})
}

func confSweep(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	m := func(n int) time.Time { return confT0.Add(time.Duration(n) * time.Minute) }
	done := ending{outcome: outcomeDone}
	a1 := confRun(t, st, m(1), confJob("k", "a", m(1)), done)
	b2 := confRun(t, st, m(2), confJob("k", "b", m(2)), done)
	// Two jobs that finish in the other order than their IDs.
	ids := confEnqueueIDs(t, st, m(3), confJob("k", "a", m(3)), confJob("k", "a", m(3)))
	claimed, _ := confClaim(t, st, m(3), "a", 2)
	confApply(t, st, m(3), claimed[1], ending{outcome: outcomeDone, started: m(3)})
	confApply(t, st, m(4), claimed[0], ending{outcome: outcomeDone, started: m(3)})
	a3, a4 := ids[1], ids[0]
	confRun(t, st, m(5), confJob("k", "a", m(5), confAttempts(1)), ending{outcome: outcomeFailed, err: errors.New("x")})
	confEnqueueIDs(t, st, m(5), confJob("k", "a", m(5)))

	// sweepAll sweeps to the end in calls of limit and budget, and returns what it
	// visited and in how many calls.
	sweepAll := func(queue string, before time.Time, limit, budget int, fn func(w storeWriter, id ID, r *record) error) ([]ID, int) {
		t.Helper()
		var seen []ID
		var after []byte
		for calls := 1; calls <= 100; calls++ {
			confUpdate(t, st, m(10), func(w storeWriter) (err error) {
				after, err = w.sweep(stDone, queue, before, after, limit, budget, func(id ID, r *record) error {
					if r.state != stDone || queue != "" && r.queue != queue {
						t.Errorf("sweep of done jobs of queue %q visited job %d: %s in queue %s", queue, id,
							confStateName(r.state), r.queue)
					}
					seen = append(seen, id)
					if fn != nil {
						return fn(w, id, r)
					}
					return nil
				})
				return err
			})
			if after == nil {
				return seen, calls
			}
		}
		t.Fatalf("sweep of queue %q did not end in 100 calls", queue)
		return nil, 0
	}
	if got, calls := sweepAll("", m(60), 2, 100, nil); !slices.Equal(got, []ID{a1, b2, a3, a4}) || calls != 2 {
		t.Errorf("sweep of every done job, 2 a call: %v in %d calls, want [%d %d %d %d] in 2", got, calls, a1, b2, a3, a4)
	}
	if got, _ := sweepAll("a", m(60), 10, 100, nil); !slices.Equal(got, []ID{a1, a3, a4}) {
		t.Errorf("sweep of queue a: %v, want [%d %d %d]", got, a1, a3, a4)
	}
	if got, _ := sweepAll("", m(3), 10, 100, nil); !slices.Equal(got, []ID{a1, b2}) {
		t.Errorf("sweep of jobs finished before +3m: %v, want [%d %d]", got, a1, b2)
	}
	if got, calls := sweepAll("b", m(60), 10, 1, nil); !slices.Equal(got, []ID{b2}) || calls < 2 {
		t.Errorf("sweep of queue b looking at 1 entry a call: %v in %d calls, want [%d] in several", got, calls, b2)
	}
	stop := errors.New("stop")
	_, err := st.update(m(10), nil, func(w storeWriter) error {
		_, err := w.sweep(stDone, "", m(60), nil, 10, 100, func(ID, *record) error { return stop })
		return err
	})
	if !errors.Is(err, stop) {
		t.Errorf("sweep with fn failing: %v, want fn's error", err)
	}
	// Removing what it visits, as Clean does.
	remove := func(w storeWriter, id ID, r *record) error { return w.remove(id, r) }
	if got, _ := sweepAll("a", m(60), 1, 100, remove); !slices.Equal(got, []ID{a1, a3, a4}) {
		t.Errorf("sweep removing queue a's done jobs: %v, want [%d %d %d]", got, a1, a3, a4)
	}
	for _, id := range []ID{a1, a3, a4} {
		confGone(t, st, id)
	}
	confWantCounts(t, st, "a", map[State]int{StateFailed: 1, StateReady: 1})
	confWantCounts(t, st, "b", map[State]int{StateDone: 1})
}

func confRecover(t *testing.T, open storeOpener) {
	cfg := confConfig(t, WithMaxRecoveries(1))
	st := open(t, cfg)
	ids := confEnqueueIDs(t, st, confT0,
		confJob("k", "q", confT0, confPriority(2)), // claimed and started
		confJob("k", "q", confT0, confPriority(1)), // claimed, not started
		confJob("k", "q", confT0),                  // ready
		confJob("k", "q", confT0, confPriority(3))) // started, then Cancel asked
	a, b, c, d := ids[0], ids[1], ids[2], ids[3]
	claimed, _ := confClaim(t, st, confT0, "q", 3)
	if got := confClaimedIDs(claimed); !slices.Equal(got, []ID{d, a, b}) {
		t.Fatalf("claim: %v", got)
	}
	confStart(t, st, confT0, claimed[0])
	confStart(t, st, confT0, claimed[1])
	cancelRec := claimed[0].rec.clone()
	cancelRec.cancel = true
	if changes := confUpdate(t, st, confT0, func(w storeWriter) error { return w.put(d, cancelRec) }); len(changes) != 0 {
		t.Errorf("put changes no state: %v", confChangeList(changes))
	}
	confWantInfo(t, st, d, StateRunning, 1)
	confWantCounts(t, st, "q", map[State]int{StateReady: 2, StateRunning: 2})

	recover := func(now time.Time) (int, int, []jobChange) {
		t.Helper()
		var ready, ended int
		changes := confUpdate(t, st, now, func(w storeWriter) (err error) {
			ready, ended, err = w.recoverAtOpen(cfg.maxRecoveries)
			return err
		})
		return ready, ended, changes
	}
	t1 := confT0.Add(time.Minute)
	ready, ended, changes := recover(t1)
	if ready != 2 || ended != 1 {
		t.Errorf("first recovery: %d ready, %d ended; want 2, 1", ready, ended)
	}
	confWantMove(t, changes, a, stRunning, stReady, outcomeRecovered)
	confWantMove(t, changes, b, stReady, stReady, outcomeRecovered)
	confWantMove(t, changes, d, stRunning, stCanceled, outcomeRecovered)
	confNone(t, changes, changeMoved, c)
	for _, id := range []ID{a, b} {
		confWantInfo(t, st, id, StateReady, 0) // no attempt spent
		confView(t, st, func(r storeReader) error {
			if _, ok := r.claimedSince(id); ok {
				t.Errorf("job %d still claimed after recovery", id)
			}
			return nil
		})
	}
	if in := confWantInfo(t, st, d, StateCanceled, 0); !in.FinishedAt.Equal(t1) {
		t.Errorf("canceled job finished at %v, want %v", in.FinishedAt, t1)
	}
	confWantCounts(t, st, "q", map[State]int{StateReady: 3, StateCanceled: 1})

	// Found running a second time, with at most one recovery allowed: failed.
	claimed, _ = confClaim(t, st, t1, "q", 1)
	if got := confClaimedIDs(claimed); !slices.Equal(got, []ID{a}) {
		t.Fatalf("claim after recovery: %v, want [%d]", got, a)
	}
	confStart(t, st, t1, claimed[0])
	t2 := t1.Add(time.Minute)
	ready, ended, changes = recover(t2)
	if ready != 0 || ended != 1 {
		t.Errorf("second recovery: %d ready, %d ended; want 0, 1", ready, ended)
	}
	if c := confWantMove(t, changes, a, stRunning, stFailed, outcomeRecovered); !strings.Contains(c.err, "WithMaxRecoveries") {
		t.Errorf("the change of a job failed for crash-looping carries error %q, want the reason", c.err)
	}
	if in := confWantInfo(t, st, a, StateFailed, 0); !in.FinishedAt.Equal(t2) || !strings.Contains(in.LastError, "WithMaxRecoveries") {
		t.Errorf("job failed by recoveries: finished %v, error %q", in.FinishedAt, in.LastError)
	}
	if ready, ended, changes = recover(t2); ready != 0 || ended != 0 || len(changes) != 0 {
		t.Errorf("recovery with nothing claimed: %d ready, %d ended, %v", ready, ended, confChangeList(changes))
	}
	confWantCounts(t, st, "q", map[State]int{StateReady: 2, StateFailed: 1, StateCanceled: 1})
}

// confListStore fills a store with jobs of every state in three queues, for the list
// cases, and returns their IDs by name.
func confListStore(t *testing.T, open storeOpener) (store, map[string]ID) {
	st := open(t, confConfig(t, WithKeyLimits("keyed", 1, 0, 0)))
	id := map[string]ID{}
	id["a3"] = confRun(t, st, confT0, confJob("email", "a", confT0, confTags("x")), ending{outcome: outcomeDone})
	ids := confEnqueueIDs(t, st, confT0,
		confJob("email", "a", confT0, confTags("x")),
		confJob("sms", "a", confT0, confTags("x", "y"), confRunAt(confT0.Add(time.Hour))),
		confJob("email", "a", confT0, confTags("y"), confPriority(2)),
		confJob("email", "a", confT0, confPriority(1)))
	id["a1"], id["a2"], id["a4"], id["a5"] = ids[0], ids[1], ids[2], ids[3]
	claimed, _ := confClaim(t, st, confT0, "a", 2)
	if got := confClaimedIDs(claimed); !slices.Equal(got, []ID{id["a4"], id["a5"]}) {
		t.Fatalf("claim: %v", got)
	}
	confStart(t, st, confT0, claimed[0]) // a4 runs, a5 waits claimed
	id["b2"] = confRun(t, st, confT0, confJob("email", "b", confT0, confAttempts(1)), ending{outcome: outcomeFailed, err: errors.New("x")})
	id["b3"] = confRun(t, st, confT0, confJob("email", "b", confT0), ending{outcome: outcomeFailed, err: errors.New("x")})
	id["b1"] = confEnqueueIDs(t, st, confT0, confJob("email", "b", confT0, confTags("x")))[0]
	ids = confEnqueueIDs(t, st, confT0,
		confJob("email", "keyed", confT0, confKey("c")),
		confJob("email", "keyed", confT0, confKey("c")),
		confJob("email", "keyed", confT0, confKey("d")))
	id["k1"], id["k2"], id["k3"] = ids[0], ids[1], ids[2]
	confClaimOne(t, st, confT0, "keyed", id["k1"]) // k1 claimed, k3 ready, k2 waits for c's slot
	return st, id
}

// confListAll lists every job matching f in one call.
func confListAll(t *testing.T, st store, f Filter) []ID {
	t.Helper()
	code, _ := stateCode(f.State)
	var ids []ID
	confView(t, st, func(r storeReader) error {
		jobs, next, err := r.list(f, code, maxListLimit, nil)
		if err != nil {
			return err
		}
		if next != nil {
			t.Errorf("list %+v of a few jobs has a next page", f)
		}
		for _, in := range jobs {
			ids = append(ids, in.ID)
		}
		return nil
	})
	return ids
}

// confListFilters are the filters of the list cases with the jobs each matches.
var confListFilters = []struct {
	f    Filter
	want []string
}{
	{Filter{}, []string{"a1", "a2", "a3", "a4", "a5", "b1", "b2", "b3", "k1", "k2", "k3"}},
	{Filter{Queue: "a"}, []string{"a1", "a2", "a3", "a4", "a5"}},
	{Filter{Kind: "sms"}, []string{"a2"}},
	{Filter{State: StateReady}, []string{"a1", "a5", "b1", "k1", "k2", "k3"}},
	{Filter{State: StateReady, Queue: "keyed"}, []string{"k1", "k2", "k3"}},
	{Filter{State: StateReady, Queue: "a"}, []string{"a1", "a5"}},
	{Filter{State: StateScheduled}, []string{"a2"}},
	{Filter{State: StateRunning}, []string{"a4"}},
	{Filter{State: StateRetrying, Queue: "b"}, []string{"b3"}},
	{Filter{State: StateDone}, []string{"a3"}},
	{Filter{State: StateFailed, Queue: "b"}, []string{"b2"}},
	{Filter{State: StateFailed, Queue: "a"}, nil},
	{Filter{State: StateCanceled}, nil},
	{Filter{Tag: "x"}, []string{"a1", "a2", "a3", "b1"}},
	{Filter{Tag: "y", State: StateScheduled}, []string{"a2"}},
	{Filter{Tag: "x", Queue: "b"}, []string{"b1"}},
	{Filter{Tag: "none"}, nil},
}

func confListFiltered(t *testing.T, open storeOpener) {
	st, id := confListStore(t, open)
	for _, c := range confListFilters {
		var want []ID
		for _, name := range c.want {
			want = append(want, id[name])
		}
		got := confListAll(t, st, c.f)
		if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
			t.Errorf("list %+v: %v, want %v", c.f, got, want)
		}
	}
	// Without a state, jobs by ID: newest first, or oldest first.
	all := confListAll(t, st, Filter{})
	if !slices.IsSortedFunc(all, func(a, b ID) int { return int(b) - int(a) }) {
		t.Errorf("list of every job: %v, want newest first", all)
	}
	if oldest := confListAll(t, st, Filter{Oldest: true}); !slices.IsSorted(oldest) || len(oldest) != len(all) {
		t.Errorf("list of every job, oldest first: %v", oldest)
	}
	// Each job is listed as Info reads it.
	confView(t, st, func(r storeReader) error {
		jobs, _, err := r.list(Filter{State: StateRunning}, stRunning, 10, nil)
		if err != nil || len(jobs) != 1 || jobs[0].State != StateRunning || jobs[0].Attempt != 1 || jobs[0].Queue != "a" {
			t.Errorf("list of running jobs: %+v, %v", jobs, err)
		}
		return nil
	})
}

func confListPaging(t *testing.T, open storeOpener) {
	st, _ := confListStore(t, open)
	for _, c := range confListFilters {
		for _, oldest := range []bool{false, true} {
			f := c.f
			f.Oldest = oldest
			want := confListAll(t, st, f)
			code, _ := stateCode(f.State)
			for limit := 1; limit <= 4; limit++ {
				var got []ID
				var cursor []byte
				for page := 0; ; page++ {
					if page > 20 {
						t.Fatalf("list %+v by %d: no end after 20 pages", f, limit)
					}
					confView(t, st, func(r storeReader) error {
						jobs, next, err := r.list(f, code, limit, cursor)
						if err != nil {
							return err
						}
						if len(jobs) > limit {
							t.Errorf("list %+v by %d: a page of %d", f, limit, len(jobs))
						}
						for _, in := range jobs {
							got = append(got, in.ID)
						}
						cursor = next
						return nil
					})
					if cursor == nil {
						break
					}
				}
				if !slices.Equal(got, want) {
					t.Errorf("list %+v by pages of %d: %v, want %v", f, limit, got, want)
				}
			}
		}
	}
}

func confBackupCompact(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	var ids []ID
	for i := range 50 {
		ids = append(ids, confEnqueueIDs(t, st, confT0, confJob("k", "q", confT0, confArgs(fmt.Sprintf(`{"n":%d}`, i))))...)
	}
	confUpdate(t, st, confT0, func(w storeWriter) error {
		for _, id := range ids[:40] {
			rec, err := w.get(id)
			if err != nil {
				return err
			}
			if err := w.remove(id, rec); err != nil {
				return err
			}
		}
		return nil
	})
	// A store that leaves backups and compaction to its server's own tools (a
	// PostgreSQL store) says so with errors.ErrUnsupported, and changes nothing.
	var buf bytes.Buffer
	n, err := st.backup(context.Background(), &buf)
	if !errors.Is(err, errors.ErrUnsupported) && (err != nil || n <= 0 || n != int64(buf.Len())) {
		t.Errorf("backup: %d bytes written, %d reported, %v", buf.Len(), n, err)
	}
	if err := st.compact(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("compact: %v", err)
	}
	for i, id := range ids[40:] {
		if rec := confGet(t, st, id); string(rec.args) != fmt.Sprintf(`{"n":%d}`, 40+i) {
			t.Errorf("job %d after compact: args %s", id, rec.args)
		}
	}
	confGone(t, st, ids[0])
	confWantCounts(t, st, "q", map[State]int{StateReady: 10})
	claimed, _ := confClaim(t, st, confT0, "q", 1)
	if got := confClaimedIDs(claimed); !slices.Equal(got, ids[40:41]) {
		t.Errorf("claim after compact: %v, want %v", got, ids[40:41])
	}
	if next := confEnqueueIDs(t, st, confT0, confJob("k", "q", confT0))[0]; next <= ids[len(ids)-1] {
		t.Errorf("a job enqueued after compact got ID %d, not after %d", next, ids[len(ids)-1])
	}
}

// confSend stores an event of name with runs of kinds in queue q at now.
func confSend(t *testing.T, st store, now time.Time, name, id string, dedup time.Duration, kinds ...string) (*storedEvent, []jobChange) {
	t.Helper()
	se := &storedEvent{name: name, id: id, data: []byte(`{"n":1}`)}
	changes := confUpdate(t, st, now, func(w storeWriter) error {
		var runs []*record
		for _, k := range kinds {
			runs = append(runs, confJob(k, "q", now, confArgs(`{"n":1}`), func(r *record) { r.eventName = name }))
		}
		return w.sendEvent(se, runs, dedup)
	})
	return se, changes
}

func confEvents(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	first, changes := confSend(t, st, confT0, "user/created", "signup-1", time.Hour, "welcome", "crm")
	if first.seq == 0 || !first.at.Equal(confT0) || len(first.runs) != 2 || first.dupOf != 0 {
		t.Fatalf("sent: %+v", first)
	}
	for _, id := range first.runs {
		if c := confOne(t, changes, changeInserted, id); c.to != stReady || c.queue != "q" {
			t.Errorf("run %d: %v", id, confFmt(c))
		}
		if rec := confGet(t, st, id); rec.event != first.seq || rec.eventName != "user/created" || string(rec.args) != `{"n":1}` {
			t.Errorf("run %d names event %d %q, args %s", id, rec.event, rec.eventName, rec.args)
		}
	}
	confWantCounts(t, st, "q", map[State]int{StateReady: 2})

	// Within the window the ID makes a duplicate: stored, with the first event's
	// runs, starting nothing.
	dup, changes := confSend(t, st, confT0.Add(59*time.Minute), "user/created", "signup-1", time.Hour, "welcome", "crm")
	if dup.seq <= first.seq || dup.dupOf != first.seq || !slices.Equal(dup.runs, first.runs) || len(changes) != 0 {
		t.Fatalf("duplicate: %+v, changes %v", dup, confChangeList(changes))
	}
	none, _ := confSend(t, st, confT0.Add(time.Hour), "order/paid", "", time.Hour)
	later, _ := confSend(t, st, confT0.Add(time.Hour), "user/created", "signup-1", time.Hour, "welcome")
	if later.dupOf != 0 || len(later.runs) != 1 {
		t.Errorf("the ID past its window: %+v", later)
	}
	confWantCounts(t, st, "q", map[State]int{StateReady: 3})

	var got *storedEvent
	var all, named, oldest []*storedEvent
	var next uint64
	confView(t, st, func(r storeReader) (err error) {
		if got, err = r.event(dup.seq); err != nil {
			return err
		}
		if _, err := r.event(99); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("event 99: %v, want ErrNotFound", err)
		}
		if all, _, err = r.events("", false, 0, 10); err != nil {
			return err
		}
		if oldest, next, err = r.events("user/created", true, 0, 2); err != nil {
			return err
		}
		named, _, err = r.events("user/created", false, 0, 10)
		return err
	})
	if got.name != "user/created" || got.id != "signup-1" || got.dupOf != first.seq || string(got.data) != `{"n":1}` ||
		!got.at.Equal(confT0.Add(59*time.Minute)) || !slices.Equal(got.runs, first.runs) {
		t.Errorf("the duplicate read back as %+v", got)
	}
	seqs := func(evs []*storedEvent) (out []uint64) {
		for _, e := range evs {
			out = append(out, e.seq)
		}
		return out
	}
	if s := seqs(all); !slices.Equal(s, []uint64{later.seq, none.seq, dup.seq, first.seq}) {
		t.Errorf("every event, newest first: %v", s)
	}
	if s := seqs(named); !slices.Equal(s, []uint64{later.seq, dup.seq, first.seq}) {
		t.Errorf("user/created, newest first: %v", s)
	}
	if s := seqs(oldest); !slices.Equal(s, []uint64{first.seq, dup.seq}) || next != later.seq {
		t.Errorf("user/created, oldest first, 2 a page: %v, next %d; want next %d", s, next, later.seq)
	}

	// A write that fails stores neither the event nor its runs.
	_, err := st.update(confT0.Add(2*time.Hour), nil, func(w storeWriter) error {
		if err := w.sendEvent(&storedEvent{name: "x", data: []byte(`{}`)}, []*record{confJob("k", "q", confT0)}, time.Hour); err != nil {
			return err
		}
		return errors.New("fail the write")
	})
	if err == nil {
		t.Fatal("the failed write committed")
	}
	confWantCounts(t, st, "q", map[State]int{StateReady: 3})
	confView(t, st, func(r storeReader) (err error) {
		all, _, err = r.events("x", false, 0, 10)
		return err
	})
	if len(all) != 0 {
		t.Errorf("a rolled-back event is stored: %+v", all[0])
	}
}

func confEventRetention(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t, WithEventRetention(2*time.Hour, time.Hour)))
	h := func(n int) time.Time { return confT0.Add(time.Duration(n) * time.Hour) }
	old, _ := confSend(t, st, h(0), "a", "one", time.Hour)
	young, _ := confSend(t, st, h(1), "a", "", time.Hour)
	due := func(now time.Time) (ok bool, next time.Time) {
		confUpdate(t, st, now, func(w storeWriter) error {
			ok, next = w.eventsDue()
			return nil
		})
		return ok, next
	}
	if ok, next := due(h(1)); ok || !next.Equal(h(2)) {
		t.Errorf("at +1h: due %v, next %v; want not due, next at +2h", ok, next)
	}
	if ok, _ := due(h(2)); !ok {
		t.Fatal("at +2h: the first event's retention is not due")
	}
	confUpdate(t, st, h(2), func(w storeWriter) error { return w.retainEvents(10) })
	var left, named []*storedEvent
	confView(t, st, func(r storeReader) (err error) {
		if left, _, err = r.events("", true, 0, 10); err != nil {
			return err
		}
		named, _, err = r.events("a", true, 0, 10)
		return err
	})
	if len(left) != 1 || left[0].seq != young.seq || len(named) != 1 || named[0].seq != young.seq {
		t.Fatalf("after retention at +2h: %d events, %d by name; want only %d", len(left), len(named), young.seq)
	}
	// The deleted event's ID is free: a dedup window longer than its age would
	// otherwise make this a duplicate.
	again, _ := confSend(t, st, h(2), "a", "one", 24*time.Hour)
	if again.dupOf != 0 {
		t.Errorf("the ID of deleted event %d still deduplicates: %+v", old.seq, again)
	}
	if ok, next := due(h(2)); ok || !next.Equal(h(3)) {
		t.Errorf("after retention: due %v, next %v; want next at +3h", ok, next)
	}
}

// confSuspendWait claims job id and suspends it in a wait for an event of name with
// field = value, reached at reached, committed at now.
func confSuspendWait(t *testing.T, st store, reached, now time.Time, queue string, id ID, name, field, value string) (*record, []jobChange) {
	t.Helper()
	cj := confClaimOne(t, st, now, queue, id)
	s := &step{key: "wait", state: stepWait, startedAt: reached, finishedAt: now.Add(time.Hour),
		waitEvent: name, waitField: field, waitValue: []byte(value)}
	_, rec, changes := confApply(t, st, now, cj, ending{outcome: outcomeSlept, started: reached, sleep: s})
	return rec, changes
}

func confWaitStep(t *testing.T, st store, id ID) *step {
	t.Helper()
	var steps []*step
	confView(t, st, func(r storeReader) (err error) {
		steps, err = r.steps(id)
		return err
	})
	if len(steps) != 1 {
		t.Fatalf("job %d has %d steps, want its wait", id, len(steps))
	}
	return steps[0]
}

func confWaits(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	ids := confEnqueueIDs(t, st, confT0, confJob("k", "q", confT0), confJob("k", "q", confT0), confJob("k", "q", confT0),
		confJob("k", "q2", confT0))
	a, b, c, d := ids[0], ids[1], ids[2], ids[3]
	s1 := confT0.Add(time.Second)
	_, changes := confSuspendWait(t, st, s1, s1, "q", a, "paid", "order", "42")
	confWantMove(t, changes, a, stReady, stScheduled, outcomeSlept)
	confSuspendWait(t, st, s1, s1, "q", b, "paid", "order", "43")
	confSuspendWait(t, st, s1, s1, "q", c, "paid", "", "")
	if s := confWaitStep(t, st, a); s.state != stepWait || s.waitEvent != "paid" || s.waitField != "order" || string(s.waitValue) != "42" {
		t.Fatalf("the wait read back as %+v", s)
	}
	confWantCounts(t, st, "q", map[State]int{StateScheduled: 3})

	// An event wakes the waits whose field has its value, and those of any event of
	// the name; the others wait on.
	s2 := s1.Add(time.Second)
	se := &storedEvent{name: "paid", data: []byte(`{"order": 42.0, "x": 1}`)}
	changes = confUpdate(t, st, s2, func(w storeWriter) error { return w.sendEvent(se, nil, time.Hour) })
	confWantMove(t, changes, a, stScheduled, stReady, outcomeDue)
	confWantMove(t, changes, c, stScheduled, stReady, outcomeDue)
	confNone(t, changes, changeMoved, b)
	for _, id := range []ID{a, c} {
		if s := confWaitStep(t, st, id); s.state != stepDone || s.event != se.seq || string(s.result) != string(se.data) || !s.finishedAt.Equal(s2) {
			t.Errorf("job %d: the received wait read back as %+v", id, s)
		}
	}
	// The woken waits left the index: the same event again wakes nothing.
	changes = confUpdate(t, st, s2, func(w storeWriter) error {
		return w.sendEvent(&storedEvent{name: "paid", data: []byte(`{"order":42}`)}, nil, time.Hour)
	})
	if len(changes) != 0 {
		t.Errorf("a second event: %v", confChangeList(changes))
	}
	confWantInfo(t, st, b, StateScheduled, 0)

	// The lookback: an event sent after the wait was reached, before it is stored.
	late := &storedEvent{name: "paid", data: []byte(`{"order":44}`)}
	confUpdate(t, st, s2, func(w storeWriter) error { return w.sendEvent(late, nil, time.Hour) })
	_, changes = confSuspendWait(t, st, s1, s2.Add(time.Second), "q2", d, "paid", "order", "44")
	if s := confWaitStep(t, st, d); s.state != stepDone || s.event != late.seq {
		t.Errorf("a wait reached before its event and stored after: %+v", s)
	}
	confWantInfo(t, st, d, StateReady, 0)
	// Reached after the event, it waits.
	bare := confEnqueueIDs(t, st, s2, confJob("k", "q3", s2))[0]
	confSuspendWait(t, st, s2.Add(time.Second), s2.Add(time.Second), "q3", bare, "paid", "order", "44")
	confWantInfo(t, st, bare, StateScheduled, 0)

	// A stored timeout takes the wait out of the index, as does removal.
	timedOut := confWaitStep(t, st, b)
	timedOut.state = stepTimedOut
	confUpdate(t, st, s2, func(w storeWriter) error {
		rec, err := w.get(b)
		if err != nil {
			return err
		}
		if _, err := w.apply(b, rec, ending{outcome: outcomeCancel}); err != nil {
			return err
		}
		if err := w.saveStep(b, nil, timedOut); err != nil {
			return err
		}
		rec, err = w.get(bare)
		if err != nil {
			return err
		}
		if _, err := w.apply(bare, rec, ending{outcome: outcomeCancel}); err != nil {
			return err
		}
		rec, err = w.get(bare)
		if err != nil {
			return err
		}
		return w.remove(bare, rec)
	})
	changes = confUpdate(t, st, s2, func(w storeWriter) error {
		for _, v := range []string{"43", "44"} {
			if err := w.sendEvent(&storedEvent{name: "paid", data: []byte(`{"order":` + v + `}`)}, nil, time.Hour); err != nil {
				return err
			}
		}
		return nil
	})
	if len(changes) != 0 {
		t.Errorf("events for ended waits: %v", confChangeList(changes))
	}
	if _, ok := st.(*boltStore); ok {
		confView(t, st, func(r storeReader) error {
			if n := r.(*txn).bucket(bEventWaits).Stats().KeyN; n != 0 {
				t.Errorf("%d wait entries left in the bbolt index after every wait ended", n)
			}
			return nil
		})
	}
}

func confInvoke(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	parent := confEnqueueIDs(t, st, confT0, confJob("album", "q", confT0))[0]
	cj := confClaimOne(t, st, confT0, "q", parent)
	s := &step{key: "resize", state: stepInvoking, startedAt: confT0, finishedAt: maxFireTime}
	kids := []*record{confJob("thumb", "kids", confT0), confJob("thumb", "kids", confT0), confJob("thumb", "kids", confT0)}
	_, _, changes := confApply(t, st, confT0, cj, ending{outcome: outcomeSlept, started: confT0, sleep: s, children: kids})
	confWantMove(t, changes, parent, stReady, stScheduled, outcomeSlept)
	stored := confWaitStep(t, st, parent)
	if stored.state != stepInvoking || len(stored.children) != 3 {
		t.Fatalf("the Invoke step read back as %+v", stored)
	}
	ids := []ID{stored.children[0].id, stored.children[1].id, stored.children[2].id}
	for _, id := range ids {
		confOne(t, changes, changeInserted, id)
		if rec := confGet(t, st, id); rec.parent != parent || rec.parentStep != "resize" {
			t.Errorf("child %d names parent %d step %q", id, rec.parent, rec.parentStep)
		}
	}
	confWantCounts(t, st, "kids", map[State]int{StateReady: 3})

	// Each child that ends writes its part; the last one makes the parent ready.
	at := confT0.Add(time.Minute)
	c0 := confClaimOne(t, st, at, "kids", ids[0])
	c0.rec.result = []byte(`{"n":1}`)
	_, _, changes = confApply(t, st, at, c0, ending{outcome: outcomeDone, started: at, result: []byte(`{"n":1}`)})
	confNone(t, changes, changeMoved, parent)
	c1 := confClaimOne(t, st, at, "kids", ids[1])
	_, _, _ = confApply(t, st, at, c1, ending{outcome: outcomePermanent, started: at, err: errors.New("bad image")})
	if s := confWaitStep(t, st, parent); s.state != stepInvoking || s.children[0].state != stDone ||
		string(s.children[0].result) != `{"n":1}` || s.children[1].state != stFailed || s.children[1].err != "bad image" {
		t.Errorf("after two children ended: %+v", s)
	}
	c2 := confClaimOne(t, st, at, "kids", ids[2])
	_, _, changes = confApply(t, st, at, c2, ending{outcome: outcomeDone, started: at})
	confWantMove(t, changes, parent, stScheduled, stReady, outcomeDue)
	if s := confWaitStep(t, st, parent); s.state != stepDone || !s.finishedAt.Equal(at) || s.children[2].state != stDone {
		t.Errorf("after the last child ended: %+v", s)
	}

	// A parent that ends cancels its unfinished children: a waiting one at once, a
	// claimed one by asking the engine.
	p2 := confEnqueueIDs(t, st, at, confJob("album", "q2", at))[0]
	cj = confClaimOne(t, st, at, "q2", p2)
	s2 := &step{key: "two", state: stepInvoking, startedAt: at, finishedAt: maxFireTime}
	confApply(t, st, at, cj, ending{outcome: outcomeSlept, started: at, sleep: s2,
		children: []*record{confJob("thumb", "kids2", at), confJob("thumb", "kids2", at)}})
	kids2 := confWaitStep(t, st, p2).children
	running := confClaimOne(t, st, at, "kids2", kids2[0].id)
	confStart(t, st, at, running)
	_, changes = confApplyStored(t, st, at, p2, ending{outcome: outcomeCancel})
	confWantMove(t, changes, p2, stScheduled, stCanceled, outcomeCancel)
	confWantMove(t, changes, kids2[1].id, stReady, stCanceled, outcomeCancel)
	confOne(t, changes, changeCancelAsked, kids2[0].id)
	if rec := confGet(t, st, kids2[0].id); !rec.cancel {
		t.Error("the running child's record does not ask it to stop")
	}
}

func confCancelOn(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	rule := func(v string) func(*record) {
		return func(r *record) { r.cancelOn = []cancelRule{{event: "user/deleted", field: "user", value: []byte(v)}} }
	}
	ids := confEnqueueIDs(t, st, confT0, confJob("k", "q", confT0, rule(`"ada"`)), confJob("k", "q", confT0, rule(`"bob"`)),
		confJob("k", "q", confT0.Add(time.Hour), confRunAt(confT0.Add(time.Hour)), rule(`"ada"`)))
	ada, bob, later := ids[0], ids[1], ids[2]
	running := confClaimOne(t, st, confT0, "q", ada)
	confStart(t, st, confT0, running)
	_, changes := confSend(t, st, confT0, "user/deleted", "", time.Hour)
	if len(changes) != 0 {
		t.Errorf("an event without the field: %v", confChangeList(changes))
	}
	se := &storedEvent{name: "user/deleted", data: []byte(`{"user":"ada"}`)}
	changes = confUpdate(t, st, confT0, func(w storeWriter) error { return w.sendEvent(se, nil, time.Hour) })
	confWantMove(t, changes, later, stScheduled, stCanceled, outcomeCancel)
	confOne(t, changes, changeCancelAsked, ada)
	confNone(t, changes, changeMoved, bob)
	if rec := confGet(t, st, ada); !rec.cancel {
		t.Error("the running job's record does not ask it to stop")
	}
	// The entries went with the cancellations: the same event again does nothing.
	changes = confUpdate(t, st, confT0, func(w storeWriter) error {
		return w.sendEvent(&storedEvent{name: "user/deleted", data: []byte(`{"user":"ada"}`)}, nil, time.Hour)
	})
	if len(changes) != 0 {
		t.Errorf("the event again: %v", confChangeList(changes))
	}
	// An event's own runs are not canceled by it.
	run := confJob("k", "q", confT0, confArgs(`{"user":"eve"}`), rule(`"eve"`))
	se = &storedEvent{name: "user/deleted", data: []byte(`{"user":"eve"}`)}
	changes = confUpdate(t, st, confT0, func(w storeWriter) error { return w.sendEvent(se, []*record{run}, time.Hour) })
	if c := confOne(t, changes, changeInserted, se.runs[0]); c.to != stReady {
		t.Errorf("the event's own run: %v", confFmt(c))
	}
	confNone(t, changes, changeMoved, se.runs[0])
}

func confOnFailure(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	tmpl := confJob("alert", "alerts", time.Time{})
	tmpl.state = stReady
	failing := confJob("k", "q", confT0, confAttempts(1), func(r *record) { r.onFailure = tmpl.encode() })
	id := confEnqueueIDs(t, st, confT0, failing, confJob("k", "q", confT0, func(r *record) { r.onFailure = tmpl.encode() }))[0]
	cj := confClaimOne(t, st, confT0, "q", id)
	_, _, changes := confApply(t, st, confT0, cj, ending{outcome: outcomeFailed, started: confT0, err: errors.New("smtp down")})
	confWantMove(t, changes, id, stReady, stFailed, outcomeFailed)
	var alert ID
	for _, c := range changes {
		if c.what == changeInserted && c.kind == "alert" {
			alert = c.id
		}
	}
	if alert == 0 {
		t.Fatalf("no failure job among %v", confChangeList(changes))
	}
	rec := confGet(t, st, alert)
	var f Failure
	if err := json.Unmarshal(rec.args, &f); err != nil || f.Job.ID != id || f.Job.State != StateFailed ||
		f.Job.LastError != "smtp down" || rec.queue != "alerts" || !rec.createdAt.Equal(confT0) {
		t.Errorf("the failure job: queue %s, args %s, %v", rec.queue, rec.args, err)
	}
	confWantCounts(t, st, "alerts", map[State]int{StateReady: 1})
	// A canceled job enqueues none.
	other := confEnqueueIDs(t, st, confT0, confJob("k", "q", confT0, func(r *record) { r.onFailure = tmpl.encode() }))[0]
	_, changes = confApplyStored(t, st, confT0, other, ending{outcome: outcomeCancel})
	for _, c := range changes {
		if c.what == changeInserted {
			t.Errorf("a canceled job enqueued %v", confFmt(c))
		}
	}
}

func confSuspendedCounts(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	ids := confEnqueueIDs(t, st, confT0, confJob("k", "q", confT0), confJob("k", "q", confT0))
	counts := func() (out [numSuspended]int) {
		confView(t, st, func(r storeReader) error {
			out = r.suspendedCounts()
			return nil
		})
		return out
	}
	for _, id := range ids {
		cj := confClaimOne(t, st, confT0, "q", id)
		nap := &step{key: "nap", state: stepSleep, startedAt: confT0, finishedAt: confT0.Add(time.Hour)}
		confApply(t, st, confT0, cj, ending{outcome: outcomeSlept, started: confT0, sleep: nap})
	}
	if n := counts(); n[suspendedSleep] != 2 {
		t.Fatalf("suspended %v after two sleeps", n)
	}
	confApplyStored(t, st, confT0, ids[0], ending{outcome: outcomeDue}) // Promote
	confUpdate(t, st, confT0.Add(time.Hour), func(w storeWriter) error { _, err := w.promoteDue(10); return err })
	if n := counts(); n[suspendedSleep] != 0 {
		t.Errorf("suspended %v after both woke", n)
	}
	var bad []CountMismatch
	confView(t, st, func(r storeReader) (err error) {
		bad, err = r.recount()
		return err
	})
	if len(bad) != 0 {
		t.Errorf("recount: %+v", bad)
	}
}

// confHistory: points add up per minute and queue, take the queue's ready count,
// read back in time order from a minute, by queue or all, and expire from the
// oldest, a bounded number per write.
func confHistory(t *testing.T, open storeOpener) {
	st := open(t, confConfig(t))
	confEnqueueIDs(t, st, confT0, confJob("k", "a", confT0), confJob("k", "a", confT0))
	m0, m1, m2 := confT0, confT0.Add(time.Minute), confT0.Add(2*time.Minute)
	confUpdate(t, st, m1, func(w storeWriter) error {
		return w.addHistory([]HistoryPoint{
			{Queue: "b", Minute: m0, Done: 1},
			{Queue: "a", Minute: m0, Enqueued: 2, Started: 1, WaitTotal: time.Second, WaitMax: time.Second},
		}, time.Time{}, 10)
	})
	confUpdate(t, st, m2, func(w storeWriter) error {
		return w.addHistory([]HistoryPoint{
			{Queue: "a", Minute: m0, Started: 1, Failed: 1, WaitTotal: 3 * time.Second, WaitMax: 3 * time.Second},
			{Queue: "a", Minute: m1, Retried: 2, Canceled: 1},
		}, time.Time{}, 10)
	})
	read := func(queue string, since time.Time) []HistoryPoint {
		t.Helper()
		var out []HistoryPoint
		confView(t, st, func(r storeReader) (err error) {
			out, err = r.history(queue, since)
			return err
		})
		return out
	}
	want := []HistoryPoint{
		{Queue: "a", Minute: m0, Enqueued: 2, Started: 2, Failed: 1, WaitTotal: 4 * time.Second, WaitMax: 3 * time.Second, Ready: 2},
		{Queue: "b", Minute: m0, Done: 1},
		{Queue: "a", Minute: m1, Retried: 2, Canceled: 1, Ready: 2},
	}
	got := read("", time.Time{})
	if len(got) != len(want) {
		t.Fatalf("history %+v, want %+v", got, want)
	}
	for i := range want {
		if !got[i].Minute.Equal(want[i].Minute) || !equalButMinute(got[i], want[i]) {
			t.Errorf("point %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if got := read("a", m0.Add(30*time.Second)); len(got) != 2 || got[0].Queue != "a" || !got[1].Minute.Equal(m1) {
		t.Errorf("queue a from within its first minute: %+v", got)
	}
	if got := read("a", m2); len(got) != 0 {
		t.Errorf("from a minute with none: %+v", got)
	}
	confUpdate(t, st, m2, func(w storeWriter) error { return w.addHistory(nil, m1, 1) })
	if got := read("", time.Time{}); len(got) != 2 {
		t.Errorf("after expiring 1 of the points before %v: %+v", m1, got)
	}
	confUpdate(t, st, m2, func(w storeWriter) error { return w.addHistory(nil, m2, 10) })
	if got := read("", time.Time{}); len(got) != 0 {
		t.Errorf("after expiring every point before %v: %+v", m2, got)
	}
}

func equalButMinute(a, b HistoryPoint) bool {
	a.Minute, b.Minute = time.Time{}, time.Time{}
	return a == b
}
