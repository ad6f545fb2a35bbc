package jobrun

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jobrun/jobrun/internal/pgtest"
	"github.com/jobrun/jobrun/internal/pgxdb"
	"github.com/jobrun/jobrun/internal/sqldb"
)

// The tests of the PostgreSQL store share one throwaway cluster per test binary,
// started by the first test that needs it and stopped by TestMain; each store
// gets a schema of its own.
var testPG struct {
	once    sync.Once
	cluster *pgtest.Cluster
	pool    *pgxpool.Pool
	err     error
	schemas atomic.Int64
}

// testPool returns the shared cluster's pool, or skips t where the machine has no
// PostgreSQL server binaries.
func testPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	testPG.once.Do(func() {
		ctx := context.Background()
		c, err := pgtest.Start(ctx)
		if err != nil {
			testPG.err = err
			return
		}
		pool, err := pgxpool.New(ctx, c.DSN("postgres"))
		if err != nil {
			c.Stop()
			testPG.err = err
			return
		}
		testPG.cluster, testPG.pool = c, pool
	})
	if errors.Is(testPG.err, pgtest.ErrNoServer) {
		t.Skipf("PostgreSQL store not tested: %v", testPG.err)
	}
	if testPG.err != nil {
		t.Fatalf("start PostgreSQL: %v", testPG.err)
	}
	return testPG.pool
}

// stopTestPG stops the shared cluster, if a test started it.
func stopTestPG() {
	if testPG.pool != nil {
		testPG.pool.Close()
	}
	if testPG.cluster != nil {
		testPG.cluster.Stop()
	}
}

// newTestSchema names a schema no other store of the test binary uses.
func newTestSchema() string { return fmt.Sprintf("t%d", testPG.schemas.Add(1)) }

// openPGForConformance opens a PostgreSQL store in a new schema of the shared
// cluster.
func openPGForConformance(t *testing.T, cfg *config) store {
	t.Helper()
	pool := testPool(t)
	st, err := openPGStore(t.Context(), pgxdb.Pool{P: pool}, cfg, sqldb.Settings{Schema: newTestSchema(), Migrate: true})
	if err != nil {
		t.Fatalf("open PostgreSQL store: %v", err)
	}
	t.Cleanup(func() {
		if err := st.close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return st
}

func TestStoreConformancePG(t *testing.T) { runStoreConformance(t, openPGForConformance) }

// openPGPair opens two stores on one new schema, as two processes would, with
// leases of lease.
func openPGPair(t *testing.T, lease time.Duration) (x, y *pgStore) {
	t.Helper()
	pool := testPool(t)
	set := sqldb.Settings{Schema: newTestSchema(), Migrate: true, Lease: lease, Poll: time.Second}
	open := func() *pgStore {
		st, err := openPGStore(t.Context(), pgxdb.Pool{P: pool}, confConfig(t), set)
		if err != nil {
			t.Fatalf("open PostgreSQL store: %v", err)
		}
		t.Cleanup(func() { st.close() })
		return st
	}
	return open(), open()
}

// renewAt runs a renewal of st's leases of the jobs held at now, as the commit
// loop's poll does with the jobs its engine holds.
func renewAt(t *testing.T, st *pgStore, now time.Time, held ...ID) (ready, ended int, changes []jobChange) {
	t.Helper()
	changes = confUpdate(t, st, now, func(w storeWriter) (err error) {
		ready, ended, err = w.(leaseWriter).renew(100, held)
		return err
	})
	return ready, ended, changes
}

// TestPGLeases: a claim whose process renews it holds; one that lapses is rescued
// by another process without spending an attempt, and the outcome, progress and
// steps that the first process records late are refused, so the rescued run's are
// the ones that count.
func TestPGLeases(t *testing.T) {
	x, y := openPGPair(t, 10*time.Second)
	ids := confEnqueueIDs(t, x, confT0, confJob("k", "q", confT0), confJob("k", "q", confT0))
	id, lost := ids[0], ids[1]
	cj := confClaimOne(t, x, confT0, "q", id)
	confStart(t, x, confT0, cj)
	confClaimOne(t, x, confT0, "q", lost) // a claim x's engine does not hold

	// x renews at 8s the claim its engine holds: at 15s that claim (until 18s)
	// holds, and the other, which lapsed at 10s, is rescued.
	renewAt(t, x, confT0.Add(8*time.Second), id)
	ready, ended, changes := renewAt(t, y, confT0.Add(15*time.Second))
	if ready != 1 || ended != 0 {
		t.Fatalf("rescue at 15s: %d ready, %d ended; want the claim x's engine lost, only", ready, ended)
	}
	confWantMove(t, changes, lost, stReady, stReady, outcomeRecovered)
	confView(t, y, func(r storeReader) error {
		if !r.(*pgTxn).claimedElsewhere(id) {
			t.Errorf("y does not see x's claim")
		}
		return nil
	})

	// x stops renewing: at 19s y rescues the job, ready again with no attempt spent.
	ready, _, changes = renewAt(t, y, confT0.Add(19*time.Second))
	if ready != 1 {
		t.Fatalf("rescue at 19s: %d ready, want 1", ready)
	}
	confWantMove(t, changes, id, stRunning, stReady, outcomeRecovered)
	confWantInfo(t, y, id, StateReady, 0)

	// y claims and runs it; x's late outcome changes nothing.
	cy := confClaimOne(t, y, confT0.Add(20*time.Second), "q", id)
	confStart(t, y, confT0.Add(20*time.Second), cy)
	late := confUpdate(t, x, confT0.Add(21*time.Second), func(w storeWriter) error {
		_, err := w.finish(id, cj.rec, ending{outcome: outcomeDone, started: confT0}, true)
		return err
	})
	if len(late) != 0 {
		t.Errorf("the rescued claim's outcome was recorded: %v", confChangeList(late))
	}
	if err := confUpdate(t, x, confT0.Add(21*time.Second), func(w storeWriter) error {
		return w.saveProgress(id, cj.rec)
	}); len(err) != 0 {
		t.Errorf("the rescued claim's progress was recorded: %v", confChangeList(err))
	}
	confUpdate(t, x, confT0.Add(21*time.Second), func(w storeWriter) error {
		return w.saveStep(id, nil, &step{key: "late", state: stepDone, result: []byte(`1`), finishedAt: confT0})
	})
	confView(t, y, func(r storeReader) error {
		if steps, err := r.steps(id); err != nil || len(steps) != 0 {
			t.Errorf("the rescued claim's step was stored: %d steps, %v", len(steps), err)
		}
		return nil
	})
	confWantInfo(t, y, id, StateRunning, 1)
	_, rec, _ := confApply(t, y, confT0.Add(22*time.Second), cy, ending{outcome: outcomeDone, started: confT0.Add(20 * time.Second)})
	if rec.state != stDone || rec.attempt != 1 {
		t.Errorf("the rescued run's outcome: state %d, attempt %d", rec.state, rec.attempt)
	}
	confCheckCounts(t, x)
}

// TestPGCancelElsewhere: Cancel of a job that another process runs leaves the
// claim to that process, whose next renewal tells its engine to stop the handler,
// and whose progress writes keep the request.
func TestPGCancelElsewhere(t *testing.T) {
	x, y := openPGPair(t, 10*time.Second)
	id := confEnqueueIDs(t, x, confT0, confJob("k", "q", confT0))[0]
	cj := confClaimOne(t, x, confT0, "q", id)
	confStart(t, x, confT0, cj)
	confUpdate(t, y, confT0, func(w storeWriter) error {
		rec, err := w.get(id)
		if err != nil {
			return err
		}
		if !w.(leaseWriter).claimedElsewhere(id) {
			t.Fatalf("y does not see x's claim")
		}
		rec.cancel = true
		return w.put(id, rec)
	})
	_, _, changes := renewAt(t, x, confT0.Add(time.Second), id)
	confOne(t, changes, changeCancelAsked, id)
	rec := cj.rec.clone()
	changes = confUpdate(t, x, confT0.Add(2*time.Second), func(w storeWriter) error { return w.saveProgress(id, rec) })
	if !rec.cancel || !confGet(t, y, id).cancel {
		t.Errorf("progress overwrote the cancel request")
	}
	confOne(t, changes, changeCancelAsked, id)
}

// TestPGRetriedCommit: a transaction the server aborts for a conflict (a
// serialization failure or a deadlock) runs again from the start, and what the
// first try did is undone in the store's memory too: an outcome the first try
// recorded, then lost with the abort, is recorded by the second, and a claim the
// first try took, then lost, is not this process's.
func TestPGRetriedCommit(t *testing.T) {
	x, _ := openPGPair(t, 10*time.Second)
	ids := confEnqueueIDs(t, x, confT0, confJob("k", "q", confT0), confJob("k", "q", confT0))
	cj := confClaimOne(t, x, confT0, "q", ids[0])
	confStart(t, x, confT0, cj)
	abort := func(w storeWriter) error {
		return w.(*pgTxn).exec(`DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$`)
	}
	tries := 0
	changes := confUpdate(t, x, confT0.Add(time.Second), func(w storeWriter) error {
		if _, err := w.finish(cj.id, cj.rec.clone(), ending{outcome: outcomeDone, started: confT0}, true); err != nil {
			return err
		}
		if tries++; tries == 1 {
			return abort(w)
		}
		return nil
	})
	if tries != 2 {
		t.Fatalf("the aborted transaction ran %d times, want 2", tries)
	}
	confWantMove(t, changes, cj.id, stRunning, stDone, outcomeDone)
	confWantInfo(t, x, cj.id, StateDone, 1)

	// A claim lost with an aborted try: the second try claims nothing (the job is
	// taken by a fresh claim in the same way), and the fence the first try set is
	// not taken for this process's once that try is gone.
	tries = 0
	_, err := x.update(confT0.Add(2*time.Second), nil, func(w storeWriter) error {
		tries++
		if _, err := w.claim("q", 1, 0, 0, nil); err != nil {
			return err
		}
		return abort(w)
	})
	if err == nil || tries != pgRetries+1 {
		t.Fatalf("a transaction that always aborts: %d tries, error %v", tries, err)
	}
	confView(t, x, func(r storeReader) error {
		if ok, err := r.(*pgTxn).owns(ids[1]); ok || err != nil {
			t.Errorf("the job of an aborted claim is this process's: %v, %v", ok, err)
		}
		return nil
	})
	x.fenceMu.Lock()
	defer x.fenceMu.Unlock()
	if _, ok := x.fences[ids[1]]; ok {
		t.Errorf("the fence of an aborted claim stayed in memory")
	}
}
