package pg_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/pg"
)

// TestCrashPG is the crash campaign against PostgreSQL with several processes:
// three worker processes, each also a producer, share one database while the
// test kills a random one with SIGKILL at random moments and starts it again.
// Each process writes a ledger: the jobs Enqueue acknowledged, and the start and
// end of every handler run. Once the campaign ends and every job is drained, the
// test checks, against the ledgers and the database:
//
//   - no acknowledged job is lost: every one is done;
//   - no cron fire is doubled: one job per (schedule, fire time);
//   - no unique key is held twice: handler runs of different jobs with one unique
//     key never overlap (a run cut by a kill ends at the kill);
//   - no per-key limit is exceeded: runs of one concurrency key (limit 1) never
//     overlap;
//   - the counters equal a recount.
//
// JOBRUN_PG_CRASH_CYCLES sets the number of kills (20 by default, 5 with -short).
func TestCrashPG(t *testing.T) {
	if os.Getenv("JOBRUN_PG_CRASH_CHILD") != "" {
		crashChild(t)
		return
	}
	cycles := 20
	if testing.Short() {
		cycles = 5
	}
	if v := os.Getenv("JOBRUN_PG_CRASH_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("JOBRUN_PG_CRASH_CYCLES=%q: want a positive number", v)
		}
		cycles = n
	}
	pool, schema := testPool(t)
	ctx := t.Context()
	// The checking runner runs no services and no queues: it only reads.
	r := open(t, pool, schema, jobrun.WithServices(false), jobrun.WithStrictKinds(false))
	if err := r.Schedule(ctx, crashTickSchedule, "@every 1s", crashTick{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env := []string{"JOBRUN_PG_CRASH_DSN=" + shared.cluster.DSN("postgres"), "JOBRUN_PG_CRASH_SCHEMA=" + schema}
	c := &crashCampaign{t: t, dir: dir, env: env, pool: pool, schema: schema}
	const workers = 3
	for i := range workers {
		c.start(i)
	}
	for cycle := range cycles {
		time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond) // the campaign's random kill moment
		c.kill(rand.IntN(workers))
		if cycle%50 == 49 {
			t.Logf("cycle %d of %d", cycle+1, cycles)
		}
	}
	// Stop producing: each child stops enqueueing when it finds the file.
	if err := os.WriteFile(filepath.Join(dir, "stop"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Unschedule(ctx, crashTickSchedule); err != nil {
		t.Fatal(err)
	}
	c.drain(ctx, r)
	for i := range workers {
		c.kill(i)
	}
	c.verify(ctx, r)
}

const crashTickSchedule = "tick"

// crashJob is the campaign's job: Key names its unique or concurrency key.
type crashJob struct {
	Token string `json:"token"`
	Key   string `json:"key,omitempty"` // "u:K" (UniqueKey K) or "c:K" (ConcurrencyKey K in queue keyed)
}

func (crashJob) Kind() string { return "crash" }

type crashTick struct{}

func (crashTick) Kind() string { return "crash_tick" }

// crashCampaign runs the worker processes.
type crashCampaign struct {
	t      *testing.T
	dir    string
	env    []string
	pool   *pgxpool.Pool
	schema string
	procs  map[int]*exec.Cmd
	life   map[int]int // slot → its process's index in runs
	runs   []crashRun  // every process started: its ledger and when it was killed
	kills  int
}

// crashRun is one life of a worker process.
type crashRun struct {
	ledger string
	killed time.Time // zero while it runs
}

func (c *crashCampaign) start(slot int) {
	c.t.Helper()
	ledger := filepath.Join(c.dir, fmt.Sprintf("ledger-%d.log", len(c.runs)))
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashPG$", "-test.v")
	cmd.Env = append(os.Environ(), append(c.env, "JOBRUN_PG_CRASH_CHILD=1", "JOBRUN_PG_CRASH_LEDGER="+ledger,
		"JOBRUN_PG_CRASH_STOP="+filepath.Join(c.dir, "stop"))...)
	out, err := os.Create(ledger + ".out")
	if err != nil {
		c.t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start worker: %v", err)
	}
	if c.procs == nil {
		c.procs, c.life = map[int]*exec.Cmd{}, map[int]int{}
	}
	c.procs[slot], c.life[slot] = cmd, len(c.runs)
	c.runs = append(c.runs, crashRun{ledger: ledger})
	c.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
}

// kill kills the worker in slot and, until the campaign ends, starts another.
func (c *crashCampaign) kill(slot int) {
	cmd := c.procs[slot]
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	c.runs[c.life[slot]].killed = time.Now()
	c.kills++
	delete(c.procs, slot)
	if _, err := os.Stat(filepath.Join(c.dir, "stop")); err != nil {
		c.start(slot)
	}
}

// drain waits until no job is left unfinished, as the workers that remain finish
// them (and rescue those of the killed ones).
func (c *crashCampaign) drain(ctx context.Context, r *jobrun.Runner) {
	c.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		counts, err := r.Counts(ctx, "")
		if err != nil {
			c.t.Fatal(err)
		}
		left := 0
		for _, s := range []jobrun.State{jobrun.StateScheduled, jobrun.StateReady, jobrun.StateRunning, jobrun.StateRetrying} {
			left += counts[s]
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.dump(ctx)
			c.t.Fatalf("after the campaign, %d jobs are still unfinished: %v", left, counts)
		}
		time.Sleep(100 * time.Millisecond) // polling the database for the drain's end
	}
}

// dump logs the rows of the jobs left unfinished, with the key slots and held
// slots, for the failure's diagnosis.
func (c *crashCampaign) dump(ctx context.Context) {
	for _, q := range []string{
		`SELECT id, queue, kind, state, lane, claim, conc_key, owner, lease_until, fence, run_at FROM ` + c.schema + `.jobs WHERE state < 5 ORDER BY id LIMIT 20`,
		`SELECT queue, key, n FROM ` + c.schema + `.key_slots`,
		`SELECT job, queue, key, owner, lease_until FROM ` + c.schema + `.held`,
		`SELECT queue, paused FROM ` + c.schema + `.queues`,
	} {
		rows, err := c.pool.Query(ctx, q)
		if err != nil {
			c.t.Logf("%s: %v", q, err)
			continue
		}
		for rows.Next() {
			vals, err := rows.Values()
			c.t.Logf("%.40s…: %v %v", q, vals, err)
		}
		rows.Close()
	}
	for _, run := range c.runs {
		if !run.killed.IsZero() {
			continue
		}
		out, _ := os.ReadFile(run.ledger + ".out")
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "level=") || strings.Contains(line, "owner") {
				c.t.Logf("%s: %s", filepath.Base(run.ledger), line)
			}
		}
	}
}

// crashInterval is one handler run of a keyed job.
type crashInterval struct {
	id         int64
	start, end int64
}

func (c *crashCampaign) verify(ctx context.Context, r *jobrun.Runner) {
	t := c.t
	acked := map[int64]string{}
	runs := map[string][]crashInterval{} // key → runs
	rescued := 0
	for _, run := range c.runs {
		open := map[int64]crashInterval{} // started, not ended
		f, err := os.Open(run.ledger)
		if errors.Is(err, os.ErrNotExist) {
			continue // killed before it wrote a line
		}
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		keys := map[int64]string{}
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 3 {
				continue // a line the kill cut
			}
			id, _ := strconv.ParseInt(fields[1], 10, 64)
			switch fields[0] {
			case "ack":
				acked[id] = fields[2]
			case "start", "end":
				if len(fields) < 4 {
					continue
				}
				at, _ := strconv.ParseInt(fields[3], 10, 64)
				key := fields[2]
				keys[id] = key
				if fields[0] == "start" {
					open[id] = crashInterval{id: id, start: at}
					continue
				}
				iv := open[id]
				delete(open, id)
				iv.end = at
				if key != "-" {
					runs[key] = append(runs[key], iv)
				}
			}
		}
		f.Close()
		for id, iv := range open { // cut by the kill
			rescued++
			iv.end = run.killed.UnixNano()
			if run.killed.IsZero() {
				iv.end = time.Now().UnixNano()
			}
			if key := keys[id]; key != "-" {
				runs[key] = append(runs[key], iv)
			}
		}
	}
	lost := 0
	for id, token := range acked {
		info, err := r.Get(ctx, jobrun.ID(id))
		if err != nil || info.State != jobrun.StateDone {
			lost++
			if lost <= 10 {
				t.Errorf("acknowledged job %d (%s) lost: %+v, %v", id, token, info, err)
			}
		}
	}
	overlaps := 0
	for key, ivs := range runs {
		slices.SortFunc(ivs, func(a, b crashInterval) int { return int(a.start - b.start) })
		for i := 1; i < len(ivs); i++ {
			for j := i - 1; j >= 0 && j >= i-20; j-- {
				if ivs[j].id != ivs[i].id && ivs[j].end > ivs[i].start {
					overlaps++
					if overlaps <= 10 {
						t.Errorf("key %s: job %d ran from %d while job %d ran until %d", key, ivs[i].id, ivs[i].start, ivs[j].id, ivs[j].end)
					}
				}
			}
		}
	}
	fires := map[time.Time][]jobrun.ID{}
	doubled := 0
	for cursor := ""; ; {
		page, err := r.List(ctx, jobrun.Filter{Kind: crashTick{}.Kind(), Limit: 1000, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range page.Jobs {
			fires[in.FireAt] = append(fires[in.FireAt], in.ID)
			if len(fires[in.FireAt]) == 2 {
				doubled++
				t.Errorf("schedule fired twice for %v: jobs %v", in.FireAt, fires[in.FireAt])
			}
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	mismatches, err := r.CheckCounts(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mismatches {
		t.Errorf("counter of queue %s, state %s: %d, recounted %d", m.Queue, m.State, m.Stored, m.Actual)
	}
	t.Logf("%d kills of %d processes: %d jobs acknowledged, %d lost; %d runs cut by a kill (their jobs rescued); "+
		"%d cron fires, %d doubled; %d keys, %d overlapping runs; %d counter mismatches",
		c.kills, len(c.runs), len(acked), lost, rescued, len(fires), doubled, len(runs), overlaps, len(mismatches))
	if len(acked) == 0 || len(fires) == 0 {
		t.Errorf("the campaign acknowledged %d jobs and fired %d times: it tested nothing", len(acked), len(fires))
	}
}

// crashChild is a worker process of the campaign: it runs jobs and produces them
// until it is killed.
func crashChild(t *testing.T) {
	ledger, err := os.OpenFile(os.Getenv("JOBRUN_PG_CRASH_LEDGER"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	note := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(ledger, format+"\n", args...) // one write per line: a kill cuts at most the last
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("JOBRUN_PG_CRASH_DSN"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := pg.Open(ctx, pool, pg.WithSchema(os.Getenv("JOBRUN_PG_CRASH_SCHEMA")),
		pg.WithLease(time.Second), pg.WithPoll(200*time.Millisecond),
		jobrun.WithQueue(jobrun.DefaultQueue, 8, nil), jobrun.WithQueue("keyed", 4, nil),
		jobrun.WithKeyLimits("keyed", 1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[crashJob]) error {
		key := job.Args.Key
		if key == "" {
			key = "-"
		}
		note("start %d %s %d", job.ID, key, time.Now().UnixNano())
		time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond) // the handler's work
		fail := job.Attempt == 1 && rand.IntN(10) == 0
		note("end %d %s %d", job.ID, key, time.Now().UnixNano())
		if fail {
			return errors.New("crashtest: planned failure")
		}
		return nil
	})
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[crashTick]) error { return nil })
	go r.Run(ctx)
	stop := os.Getenv("JOBRUN_PG_CRASH_STOP")
	for n := 0; ; n++ {
		if _, err := os.Stat(stop); err == nil {
			select {} // the campaign drains: run until killed
		}
		a := crashJob{Token: fmt.Sprintf("%d-%d", os.Getpid(), n)}
		opts := []jobrun.EnqueueOption{jobrun.MaxAttempts(5), jobrun.Backoff(10*time.Millisecond, 100*time.Millisecond)}
		switch rand.IntN(4) {
		case 0:
			k := strconv.Itoa(rand.IntN(8))
			a.Key = "u:" + k
			opts = append(opts, jobrun.UniqueKey(k))
		case 1:
			k := strconv.Itoa(rand.IntN(4))
			a.Key = "c:" + k
			opts = append(opts, jobrun.Queue("keyed"), jobrun.ConcurrencyKey(k))
		}
		id, err := r.Enqueue(ctx, a, opts...)
		switch {
		case errors.Is(err, jobrun.ErrDuplicate):
		case err != nil:
			fmt.Fprintln(os.Stderr, "enqueue:", err)
			time.Sleep(50 * time.Millisecond) // the producer's back-off after an error
		default:
			note("ack %d %s", id, a.Token)
		}
		time.Sleep(time.Duration(rand.IntN(4)) * time.Millisecond) // the producer's pace
	}
}
