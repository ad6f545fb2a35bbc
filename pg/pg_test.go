package pg_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/internal/pgtest"
	"github.com/jobrun/jobrun/pg"
)

// The tests share one throwaway cluster, started by the first test that needs one
// and stopped before the leak check; each test gets a schema of its own.
var shared struct {
	once    sync.Once
	cluster *pgtest.Cluster
	pool    *pgxpool.Pool
	err     error
	schemas atomic.Int64
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.pool != nil {
		shared.pool.Close()
	}
	if shared.cluster != nil {
		shared.cluster.Stop()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on a successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// testPool returns the shared cluster's pool and a schema no other test uses, or
// skips t on a machine without PostgreSQL's server binaries.
func testPool(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	shared.once.Do(func() {
		ctx := context.Background()
		c, err := pgtest.Start(ctx)
		if err != nil {
			shared.err = err
			return
		}
		pool, err := pgxpool.New(ctx, c.DSN("postgres"))
		if err != nil {
			c.Stop()
			shared.err = err
			return
		}
		shared.cluster, shared.pool = c, pool
	})
	if errors.Is(shared.err, pgtest.ErrNoServer) {
		t.Skipf("PostgreSQL not tested: %v", shared.err)
	}
	if shared.err != nil {
		t.Fatalf("start PostgreSQL: %v", shared.err)
	}
	return shared.pool, fmt.Sprintf("s%d", shared.schemas.Add(1))
}

// open opens a runner on schema and closes it at the end of t.
func open(t *testing.T, pool *pgxpool.Pool, schema string, opts ...jobrun.Option) *jobrun.Runner {
	t.Helper()
	r, err := pg.Open(t.Context(), pool, append([]jobrun.Option{pg.WithSchema(schema)}, opts...)...)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

type task struct {
	N int `json:"n"`
}

func (task) Kind() string { return "task" }

// TestRunsJobs: a runner on PostgreSQL runs jobs as one on a file does: the job is
// done with its result, and the counts say so.
func TestRunsJobs(t *testing.T) {
	pool, schema := testPool(t)
	r := open(t, pool, schema)
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[task]) error {
		return job.SetResult(job.Args.N * 2)
	})
	ctx := t.Context()
	id, err := r.Enqueue(ctx, task{N: 21})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.RunUntilIdle(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := r.Get(ctx, id)
	if err != nil || info.State != jobrun.StateDone || string(info.Result) != "42" {
		t.Fatalf("job after run: %+v, %v", info, err)
	}
	counts, err := r.Counts(ctx, jobrun.DefaultQueue)
	if err != nil || counts[jobrun.StateDone] != 1 {
		t.Errorf("counts: %v, %v", counts, err)
	}
}
