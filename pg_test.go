package jobrun

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

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
