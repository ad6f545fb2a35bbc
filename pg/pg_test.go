package pg_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/dashboard"
	"github.com/jobrun/jobrun/internal/pgtest"
	"github.com/jobrun/jobrun/metrics"
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

// run runs r's workers until the end of t.
func run(t *testing.T, r *jobrun.Runner) {
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
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

// TestRunnersShareQueues: two runners on one schema, as two processes, run every
// job of their queue exactly once between them.
func TestRunnersShareQueues(t *testing.T) {
	pool, schema := testPool(t)
	ctx := t.Context()
	var mu sync.Mutex
	runs := map[jobrun.ID]int{}
	var runners []*jobrun.Runner
	for range 2 {
		r := open(t, pool, schema, jobrun.WithQueue(jobrun.DefaultQueue, 4, nil))
		jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[task]) error {
			mu.Lock()
			runs[job.ID]++
			mu.Unlock()
			return nil
		})
		runners = append(runners, r)
	}
	var ids []jobrun.ID
	for i := range 200 {
		id, err := runners[i%2].Enqueue(ctx, task{N: i})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for _, r := range runners {
		wg.Go(func() { r.Run(rctx) })
	}
	for _, id := range ids {
		if info, err := runners[0].Wait(ctx, id); err != nil || info.State != jobrun.StateDone {
			t.Fatalf("job %d: %+v, %v", id, info, err)
		}
	}
	stop()
	wg.Wait()
	for _, id := range ids {
		if runs[id] != 1 {
			t.Errorf("job %d ran %d times", id, runs[id])
		}
	}
}

// TestNotifyWakesOthers: a job one runner enqueues wakes another runner's idle
// workers by notification, not by its poll (an hour here).
func TestNotifyWakesOthers(t *testing.T) {
	pool, schema := testPool(t)
	ctx := t.Context()
	producer := open(t, pool, schema, pg.WithPoll(time.Hour)) // it never runs: only enqueues
	jobrun.Handle(producer, func(ctx context.Context, job *jobrun.Job[task]) error { return nil })
	worker := open(t, pool, schema, pg.WithPoll(time.Hour), pg.WithLease(3*time.Hour))
	ran := make(chan jobrun.ID, 1)
	jobrun.Handle(worker, func(ctx context.Context, job *jobrun.Job[task]) error {
		ran <- job.ID
		return nil
	})
	run(t, worker)
	// A first job of the worker's own shows its loop running and idle after it;
	// the producer's job comes later, so only a notification can announce it.
	first, err := worker.Enqueue(ctx, task{N: 0})
	if err != nil {
		t.Fatal(err)
	}
	if got := <-ran; got != first {
		t.Fatalf("ran job %d, want %d", got, first)
	}
	id, err := producer.Enqueue(ctx, task{N: 1})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-ran:
		if got != id {
			t.Errorf("ran job %d, want %d", got, id)
		}
	case <-ctx.Done():
		t.Fatal("the worker was never woken")
	}
}

// TestEnqueueTx: a job enqueued in the application's transaction exists if and
// only if the transaction commits.
func TestEnqueueTx(t *testing.T) {
	pool, schema := testPool(t)
	ctx := t.Context()
	r := open(t, pool, schema)
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[task]) error { return nil })
	enqueueIn := func(commit bool) jobrun.ID {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		id, err := pg.EnqueueTx(ctx, tx, r, task{N: 7})
		if err != nil {
			t.Fatal(err)
		}
		if commit {
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return id
	}
	kept, dropped := enqueueIn(true), enqueueIn(false)
	if _, err := r.Get(ctx, dropped); !errors.Is(err, jobrun.ErrNotFound) {
		t.Errorf("the job of a rolled-back transaction: %v, want ErrNotFound", err)
	}
	if err := r.RunUntilIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if info, err := r.Get(ctx, kept); err != nil || info.State != jobrun.StateDone {
		t.Errorf("the job of a committed transaction: %+v, %v", info, err)
	}
	counts, err := r.Counts(ctx, "")
	if err != nil || counts[jobrun.StateDone] != 1 || counts[jobrun.StateReady] != 0 {
		t.Errorf("counts: %v, %v", counts, err)
	}
	if _, err := r.EnqueueTx(ctx, nil, task{}); !errors.Is(err, jobrun.ErrInvalid) {
		t.Errorf("Runner.EnqueueTx on PostgreSQL: %v, want ErrInvalid", err)
	}
}

// TestCancelAcrossRunners: Cancel in one runner stops the handler another runner
// runs, and the job ends canceled.
func TestCancelAcrossRunners(t *testing.T) {
	pool, schema := testPool(t)
	ctx := t.Context()
	manager := open(t, pool, schema) // it never runs: only enqueues and cancels
	jobrun.Handle(manager, func(ctx context.Context, job *jobrun.Job[task]) error { return nil })
	// The worker's start is committed, so that Cancel finds the job running.
	startSaved := make(chan struct{})
	worker := open(t, pool, schema, jobrun.WithChangeHook(func(c jobrun.Change) {
		if c.Type == jobrun.ChangeStarted {
			close(startSaved)
		}
	}))
	jobrun.Handle(worker, func(ctx context.Context, job *jobrun.Job[task]) error {
		<-ctx.Done()
		return ctx.Err()
	})
	run(t, worker)
	id, err := manager.Enqueue(ctx, task{N: 1})
	if err != nil {
		t.Fatal(err)
	}
	<-startSaved
	if info, err := manager.Get(ctx, id); err != nil || info.State != jobrun.StateRunning {
		t.Fatalf("before Cancel: %+v, %v", info, err)
	}
	if err := manager.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	info, err := manager.Wait(ctx, id)
	if err != nil || info.State != jobrun.StateCanceled {
		t.Errorf("after Cancel: %+v, %v", info, err)
	}
}

type orderPlaced struct {
	Order int `json:"order"`
}

func (orderPlaced) Kind() string { return "fulfil-order" }

type orderPaid struct {
	Order int    `json:"order"`
	By    string `json:"by"`
}

// TestFunctionsAcrossRunners: a durable function runs on one runner while another
// process, which has no handlers, sends the events: the function's run is started
// from the stored functions, its wait is ended by the other process's event, and
// that process's Wait returns when the run ends, with every step stored.
func TestFunctionsAcrossRunners(t *testing.T) {
	pool, schema := testPool(t)
	ctx := t.Context()
	suspended := make(chan jobrun.ID, 1)
	worker := open(t, pool, schema, jobrun.WithChangeHook(func(c jobrun.Change) {
		if c.Type == jobrun.ChangeSnoozed && c.Kind == (orderPlaced{}).Kind() {
			select {
			case suspended <- c.ID: // the run waits in WaitFor, its worker freed
			default:
			}
		}
	}))
	jobrun.Handle(worker, func(ctx context.Context, job *jobrun.Job[orderPlaced]) error {
		charge, err := jobrun.Step(ctx, "charge", func(ctx context.Context) (string, error) { return "ch-1", nil })
		if err != nil {
			return err
		}
		paid, ok, err := jobrun.WaitFor[orderPaid](ctx, "paid", "order/paid", jobrun.Match("order", job.Args.Order), time.Hour)
		if err != nil {
			return err
		}
		if !ok {
			return jobrun.Permanent(errors.New("never paid"))
		}
		_, err = jobrun.Step(ctx, "ship", func(ctx context.Context) (string, error) { return charge + " by " + paid.By, nil })
		return err
	}, jobrun.On("order/placed"))
	jobrun.Handle(worker, func(ctx context.Context, job *jobrun.Job[task]) error { return nil })
	run(t, worker)

	// The worker stores its functions in its first commits, before a job of its own
	// is done: the sender, without handlers, starts their runs from them.
	first, err := worker.Enqueue(ctx, task{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := worker.Wait(ctx, first); err != nil {
		t.Fatal(err)
	}
	sender := open(t, pool, schema, jobrun.WithStrictKinds(false))
	sent, err := sender.Send(ctx, jobrun.Event{Name: "order/placed", Data: orderPlaced{Order: 7}})
	if err != nil || len(sent.Runs) != 1 {
		t.Fatalf("send: %+v, %v; want one run", sent, err)
	}
	if got := <-suspended; got != sent.Runs[0] {
		t.Fatalf("suspended job %d, want %d", got, sent.Runs[0])
	}
	// An event sent before the wait's previous step ended would not be taken: it is
	// sent once the run waits.
	if _, err := sender.Send(ctx, jobrun.Event{Name: "order/paid", Data: orderPaid{Order: 7, By: "ada"}}); err != nil {
		t.Fatal(err)
	}
	info, err := sender.Wait(ctx, sent.Runs[0])
	if err != nil || info.State != jobrun.StateDone {
		t.Fatalf("the run: %+v, %v", info, err)
	}
	var names []string
	for _, s := range info.Steps {
		names = append(names, s.Name)
	}
	if len(names) != 3 || string(info.Steps[2].Result) != `"ch-1 by ada"` {
		t.Errorf("steps %v, last %s", names, info.Steps[len(info.Steps)-1].Result)
	}
}

// TestDashboardAndMetrics: the dashboard's pages and JSON API, and the Prometheus
// collector, work on a runner on PostgreSQL as on one on a file.
func TestDashboardAndMetrics(t *testing.T) {
	pool, schema := testPool(t)
	ctx := t.Context()
	r := open(t, pool, schema)
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[task]) error { return nil })
	id, err := r.Enqueue(ctx, task{N: 5}, jobrun.Tags("pg"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(dashboard.New(r))
	defer srv.Close()
	for path, want := range map[string]string{
		"/api/jobs":                     fmt.Sprintf(`"id": %d`, id),
		"/api/jobs?tag=pg":              `"task"`,
		fmt.Sprintf("/api/jobs/%d", id): `"n": 5`,
		"/api/queues":                   `"default"`,
		"/":                             "default",
	} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, want %q in\n%.400s", path, res.StatusCode, want, body)
		}
	}
	col, err := metrics.New(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	families, err := reg.Gather()
	if err != nil || len(families) == 0 {
		t.Fatalf("gather: %d families, %v", len(families), err)
	}
}

// TestPauseAcrossRunners: a queue paused by one runner holds its jobs in another
// runner's workers' claims too (the claim reads the pause in the database), and
// Resume in the first lets the second run them, woken by its notification.
func TestPauseAcrossRunners(t *testing.T) {
	pool, schema := testPool(t)
	ctx := t.Context()
	manager := open(t, pool, schema) // it never runs: only enqueues and manages
	jobrun.Handle(manager, func(ctx context.Context, job *jobrun.Job[task]) error { return nil })
	worker := open(t, pool, schema, pg.WithPoll(time.Hour), pg.WithLease(3*time.Hour))
	ran := make(chan jobrun.ID, 2)
	jobrun.Handle(worker, func(ctx context.Context, job *jobrun.Job[task]) error {
		ran <- job.ID
		return nil
	})
	run(t, worker)

	if err := manager.Pause(ctx, jobrun.DefaultQueue); err != nil {
		t.Fatal(err)
	}
	held, err := manager.Enqueue(ctx, task{N: 1})
	if err != nil {
		t.Fatal(err)
	}
	if info, err := manager.Get(ctx, held); err != nil || info.State != jobrun.StateReady {
		t.Fatalf("a job of the paused queue: %+v, %v", info, err)
	}
	if err := manager.Resume(ctx, jobrun.DefaultQueue); err != nil {
		t.Fatal(err)
	}
	if got := <-ran; got != held {
		t.Errorf("ran job %d, want %d", got, held)
	}
}

// TestFailedCompletionRetried: the transaction that records outcomes beside the
// commit loop fails (here a trigger refuses the first write of a done job), and
// the outcomes go with the next one: the job ends done once, with its result,
// and the counters agree with a recount.
func TestFailedCompletionRetried(t *testing.T) {
	pool, schema := testPool(t)
	ctx := t.Context()
	r := open(t, pool, schema)
	for _, stmt := range []string{
		`CREATE SEQUENCE ` + schema + `.refusals`,
		`CREATE FUNCTION ` + schema + `.refuse_first_done() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.state = 5 AND nextval('` + schema + `.refusals') = 1 THEN
				RAISE EXCEPTION 'the first outcome is refused';
			END IF;
			RETURN NEW;
		END $$`,
		`CREATE TRIGGER refuse_first_done BEFORE UPDATE ON ` + schema + `.jobs FOR EACH ROW EXECUTE FUNCTION ` + schema + `.refuse_first_done()`,
	} {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	var runs atomic.Int32
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[task]) error {
		runs.Add(1)
		return job.SetResult(job.Args.N)
	})
	id, err := r.Enqueue(ctx, task{N: 7})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.RunUntilIdle(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := r.Get(ctx, id)
	if err != nil || info.State != jobrun.StateDone || string(info.Result) != "7" || info.Attempt != 1 {
		t.Fatalf("job after a refused outcome: %+v, %v", info, err)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("the handler ran %d times, want once: the refused outcome was retried, not the job", n)
	}
	var refusals int64
	if err := pool.QueryRow(ctx, `SELECT last_value FROM `+schema+`.refusals`).Scan(&refusals); err != nil || refusals < 2 {
		t.Errorf("the trigger saw %d writes of a done job (%v): the refusal did not happen", refusals, err)
	}
	if m, err := r.CheckCounts(ctx, false); err != nil || len(m) != 0 {
		t.Errorf("counters after the retry: %v, %v", m, err)
	}
}

// TestRunReturnsAfterOutcomes: Run returns once every outcome its workers
// reported is recorded, though outcomes are recorded beside the commit loop: a
// Run stopped by the handler of its last jobs finds them done when it returns.
func TestRunReturnsAfterOutcomes(t *testing.T) {
	pool, schema := testPool(t)
	ctx := t.Context()
	for round := range 5 {
		r := open(t, pool, fmt.Sprintf("%s_%d", schema, round))
		runCtx, stop := context.WithCancel(ctx)
		var left atomic.Int32
		left.Store(8)
		jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[task]) error {
			if left.Add(-1) == 0 {
				stop() // the last job stops Run as it returns
			}
			return nil
		})
		var ids []jobrun.ID
		for i := range 8 {
			id, err := r.Enqueue(ctx, task{N: i})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		if err := r.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		for _, id := range ids {
			if info, err := r.Get(ctx, id); err != nil || info.State != jobrun.StateDone {
				t.Fatalf("round %d: job %d when Run returned: %s, %v", round, id, info.State, err)
			}
		}
		if err := r.Close(); err != nil { // its connections go back to the shared pool
			t.Fatal(err)
		}
	}
}
