package jobrun_test

// Damaged files: a copy of a real file, truncated or with pages zeroed or filled with
// garbage, must give errors wrapping ErrCorrupt, never a panic or a hang, from Open,
// from every read and from the runner's loop; Salvage must copy every job on a
// readable page into a file that passes every check.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/jobrun/jobrun"
)

// damageArgs are the args of the damage tests' jobs. Mode says what the handler
// that builds the file does: "" succeeds, "fail" fails for good, "retry" fails with
// attempts left, "block" runs until its context ends.
type damageArgs struct {
	N    int    `json:"n"`
	Mode string `json:"mode,omitempty"`
	Pad  string `json:"pad"`
}

func (damageArgs) Kind() string { return "damage" }

// damageOpts are the options of a runner that runs every queue of the damage file.
func damageOpts() []jobrun.Option {
	return []jobrun.Option{
		jobrun.WithQueue("default", 4, nil), jobrun.WithQueue("mail", 4, nil),
		jobrun.WithQueue("later", 4, nil), jobrun.WithQueue("paused", 1, nil),
		jobrun.WithQueue("slow", 1, nil), jobrun.WithKeyLimits("later", 1, 0, 0),
		jobrun.WithRetention("", jobrun.Retention{Done: -1, Failed: -1, Canceled: -1}),
		jobrun.WithLockTimeout(time.Second),
	}
}

// damageBase is the real file the damage tests damage copies of, with every job in
// it as Get reported it.
type damageBase struct {
	path string
	jobs map[jobrun.ID]*jobrun.Info
}

// baseFile builds the damage tests' file in the test's temp dir: 2,011 jobs, done,
// failed, retrying, scheduled, canceled, ready (some with concurrency keys, some in a
// paused queue) and one running, with tags, unique keys and throttles, and two
// schedules. It is a backup taken while the running job ran, as a crash leaves a
// file.
func baseFile(t *testing.T) damageBase {
	t.Helper()
	base, err := buildBaseFile(t.Context(), t.TempDir())
	if err != nil {
		t.Fatalf("build the damage tests' file: %v", err)
	}
	states := map[jobrun.State]int{}
	for _, in := range base.jobs {
		states[in.State]++
	}
	for _, st := range jobrun.States {
		if states[st] == 0 {
			t.Fatalf("the damage tests' file holds no %s job: %v", st, states)
		}
	}
	return base
}

func buildBaseFile(ctx context.Context, dir string) (damageBase, error) {
	// The queue later is not run, so its jobs stay ready.
	r, err := jobrun.Open(filepath.Join(dir, "live.db"),
		jobrun.WithQueue("default", 4, nil), jobrun.WithQueue("mail", 4, nil),
		jobrun.WithQueue("paused", 1, nil), jobrun.WithQueue("slow", 1, nil),
		jobrun.WithKeyLimits("later", 1, 0, 0),
		jobrun.WithRetention("", jobrun.Retention{Done: -1, Failed: -1, Canceled: -1}))
	if err != nil {
		return damageBase{}, err
	}
	defer r.Close()
	started := make(chan struct{}, 1)
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[damageArgs]) error {
		switch j.Args.Mode {
		case "fail":
			return jobrun.Permanent(errors.New("bad input"))
		case "retry":
			return errors.New("try later")
		case "block":
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		}
		return j.SetResult(j.Args.N)
	}, jobrun.Backoff(time.Hour, 2*time.Hour))
	pad := strings.Repeat("p", 80)
	n := 0
	many := func(count int, mode string, opts ...jobrun.EnqueueOption) error {
		batch := make([]jobrun.Args, count)
		for i := range batch {
			n++
			batch[i] = damageArgs{N: n, Mode: mode, Pad: pad}
		}
		_, err := r.EnqueueMany(ctx, batch, opts...)
		return err
	}
	each := func(count int, opts func(i int) []jobrun.EnqueueOption) error {
		for i := range count {
			n++
			if _, err := r.Enqueue(ctx, damageArgs{N: n, Pad: pad}, opts(i)...); err != nil {
				return err
			}
		}
		return nil
	}
	steps := []func() error{
		func() error { return r.Pause(ctx, "paused") },
		func() error { return many(700, "") },
		func() error { return many(300, "", jobrun.Tags("signup", "eu")) },
		func() error { return many(200, "fail", jobrun.Queue("mail"), jobrun.Tags("mail")) },
		func() error { return many(100, "retry", jobrun.Queue("mail"), jobrun.MaxAttempts(3)) },
		func() error { return many(200, "", jobrun.Delay(time.Hour), jobrun.Priority(2)) },
		func() error { return many(150, "", jobrun.Queue("later"), jobrun.Priority(1)) },
		func() error {
			return each(100, func(i int) []jobrun.EnqueueOption {
				return []jobrun.EnqueueOption{jobrun.Queue("later"), jobrun.ConcurrencyKey(fmt.Sprint("customer-", i%7))}
			})
		},
		func() error { return many(50, "", jobrun.Queue("paused")) },
		func() error {
			return each(60, func(i int) []jobrun.EnqueueOption {
				return []jobrun.EnqueueOption{jobrun.Delay(2 * time.Hour), jobrun.UniqueKey(fmt.Sprint("report-", i))}
			})
		},
		func() error {
			return each(30, func(i int) []jobrun.EnqueueOption {
				return []jobrun.EnqueueOption{jobrun.Throttle(fmt.Sprint("sync-", i), 24*time.Hour)}
			})
		},
		func() error {
			return each(60, func(i int) []jobrun.EnqueueOption {
				return []jobrun.EnqueueOption{jobrun.UniqueKey(fmt.Sprint("welcome-", i)), jobrun.Tags("welcome")}
			})
		},
		func() error {
			// It says that the queue later has ready jobs and no workers: they stay.
			if err := r.RunUntilIdle(ctx); !errors.Is(err, jobrun.ErrNoWorkers) {
				return fmt.Errorf("run until idle: %v, want ErrNoWorkers for the queue later", err)
			}
			return nil
		},
		func() error {
			for range 60 {
				n++
				id, err := r.Enqueue(ctx, damageArgs{N: n, Pad: pad}, jobrun.Delay(time.Hour), jobrun.Tags("canceled"))
				if err == nil {
					err = r.Cancel(ctx, id)
				}
				if err != nil {
					return err
				}
			}
			return nil
		},
		func() error {
			return r.Schedule(ctx, "rollup", "@every 1h", damageArgs{N: -1, Pad: pad}, jobrun.Queue("mail"))
		},
		func() error {
			return r.Schedule(ctx, "nightly", "0 3 * * *", damageArgs{N: -2, Pad: pad}, jobrun.SkipMissed())
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return damageBase{}, err
		}
	}
	n++
	blocked, err := r.Enqueue(ctx, damageArgs{N: n, Mode: "block", Pad: pad}, jobrun.Queue("slow"))
	if err != nil {
		return damageBase{}, err
	}
	events, err := r.Watch(ctx, 1<<16)
	if err != nil {
		return damageBase{}, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	<-started
	// The start is recorded by a commit of its own once the handler has run for a
	// while: wait for its event, so that the backup holds a running job.
	for ev := range events {
		if ev.Type == jobrun.ChangeStarted && ev.ID == blocked {
			break
		}
	}
	base := damageBase{path: filepath.Join(dir, "base.db"), jobs: map[jobrun.ID]*jobrun.Info{}}
	f, err := os.Create(base.path)
	if err == nil {
		_, err = r.Backup(ctx, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	cancel()
	<-done
	if err != nil {
		return damageBase{}, err
	}
	ro, err := jobrun.Open(base.path, jobrun.WithReadOnly())
	if err != nil {
		return damageBase{}, err
	}
	defer ro.Close()
	jobs, err := listEvery(ctx, ro, jobrun.Filter{})
	if err != nil {
		return damageBase{}, err
	}
	for _, in := range jobs {
		base.jobs[in.ID] = in
	}
	return base, nil
}

// listEvery pages through every job List gives for f.
func listEvery(ctx context.Context, r *jobrun.Runner, f jobrun.Filter) ([]*jobrun.Info, error) {
	f.Limit = 1000
	var all []*jobrun.Info
	for {
		page, err := r.List(ctx, f)
		if err != nil {
			return all, err
		}
		all = append(all, page.Jobs...)
		if page.Next == "" {
			return all, nil
		}
		f.Cursor = page.Next
	}
}

// copyFile copies the file at from to a new file to, in the test's temp dir.
func copyFile(t *testing.T, from, name string) string {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return to
}

// The base file's layout, read from its pages in bbolt's on-disk format (native
// byte order; a page header of 16 bytes, then elements of 16 bytes each), not
// through bbolt, so that the tests know which jobs each page holds.
const (
	pageBranch    = 0x01
	pageLeaf      = 0x02
	elementBucket = 0x01
)

type pageLayout struct {
	pageSize int
	pages    uint64
	extent   map[uint64]uint64      // page → pages it spans, overflow included
	above    map[uint64]bool        // pages on the way to the jobs bucket: every job is under them
	under    map[uint64][]jobrun.ID // page of the jobs bucket's tree → the jobs under it
	leaves   map[string][]uint64    // bucket of the runner → its leaf pages
	branches map[string][]uint64    // bucket of the runner → its branch pages
	freelist uint64
}

type pageElement struct {
	key, value []byte
	bucket     bool
}

func readLayout(t *testing.T, path string) *pageLayout {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := int(binary.LittleEndian.Uint32(data[16+8:]))
	l := &pageLayout{pageSize: ps, pages: uint64(len(data) / ps), extent: map[uint64]uint64{},
		above: map[uint64]bool{}, under: map[uint64][]jobrun.ID{},
		leaves: map[string][]uint64{}, branches: map[string][]uint64{}}
	meta := data[16:]
	if m1 := data[ps+16:]; binary.LittleEndian.Uint64(m1[48:]) > binary.LittleEndian.Uint64(meta[48:]) {
		meta = m1
	}
	l.freelist = binary.LittleEndian.Uint64(meta[32:])
	page := func(id uint64) []byte {
		if (id+1)*uint64(ps) > uint64(len(data)) {
			t.Fatalf("page %d is past the end of %s", id, path)
		}
		return data[id*uint64(ps):]
	}
	var walk func(id uint64, bucket string, onPage func(id uint64, elems []pageElement)) []pageElement
	walk = func(id uint64, bucket string, onPage func(id uint64, elems []pageElement)) []pageElement {
		p := page(id)
		flags, count := binary.LittleEndian.Uint16(p[8:]), int(binary.LittleEndian.Uint16(p[10:]))
		l.extent[id] = 1 + uint64(binary.LittleEndian.Uint32(p[12:]))
		var elems []pageElement
		switch {
		case flags&pageLeaf != 0:
			l.leaves[bucket] = append(l.leaves[bucket], id)
			elems = leafElements(p, count)
		case flags&pageBranch != 0:
			l.branches[bucket] = append(l.branches[bucket], id)
			for i := range count {
				e := p[16+16*i:]
				elems = append(elems, walk(binary.LittleEndian.Uint64(e[8:]), bucket, onPage)...)
			}
		default:
			t.Fatalf("page %d of %s: flags %#x, not a tree page", id, path, flags)
		}
		onPage(id, elems)
		return elems
	}
	find := func(elems []pageElement, key string) uint64 {
		for _, e := range elems {
			if e.bucket && string(e.key) == key {
				if root := binary.LittleEndian.Uint64(e.value); root != 0 {
					return root
				}
				return 0 // inline
			}
		}
		t.Fatalf("%s: no bucket %q", path, key)
		return 0
	}
	holds := func(key string, mark func(id uint64)) func(uint64, []pageElement) {
		return func(id uint64, elems []pageElement) {
			for _, e := range elems {
				if e.bucket && string(e.key) == key {
					mark(id)
				}
			}
		}
	}
	above := func(id uint64) { l.above[id] = true }
	top := walk(binary.LittleEndian.Uint64(meta[16:]), "", holds("jobrun", above))
	runner := walk(find(top, "jobrun"), "jobrun", holds("jobs", above))
	jobsRoot := find(runner, "jobs")
	if jobsRoot == 0 {
		t.Fatalf("%s: the jobs bucket is inline", path)
	}
	walk(jobsRoot, "jobs", func(id uint64, elems []pageElement) {
		for _, e := range elems {
			l.under[id] = append(l.under[id], jobrun.ID(binary.BigEndian.Uint64(e.key)))
		}
	})
	for _, name := range []string{"ready", "scheduled", "finished", "tags", "unique", "counts"} {
		if root := find(runner, name); root != 0 {
			walk(root, name, func(uint64, []pageElement) {})
		}
	}
	return l
}

func leafElements(p []byte, count int) []pageElement {
	var elems []pageElement
	for i := range count {
		e := p[16+16*i:]
		pos, ksize, vsize := binary.LittleEndian.Uint32(e[4:]), binary.LittleEndian.Uint32(e[8:]), binary.LittleEndian.Uint32(e[12:])
		k := e[pos : pos+ksize]
		elems = append(elems, pageElement{key: k, value: e[pos+ksize : pos+ksize+vsize],
			bucket: binary.LittleEndian.Uint32(e)&elementBucket != 0})
	}
	return elems
}

// lostWith returns the jobs that damage to pages leaves on no readable page.
func (l *pageLayout) lostWith(base damageBase, pages []uint64) map[jobrun.ID]bool {
	lost := map[jobrun.ID]bool{}
	for _, p := range pages {
		if l.above[p] {
			for id := range base.jobs {
				lost[id] = true
			}
		}
		for _, id := range l.under[p] {
			lost[id] = true
		}
	}
	return lost
}

// clearCut moves a truncation at size down to the start of any page that, with its
// overflow, would span it: bbolt reads the elements of such a page that lie before
// the cut, so which of its jobs are lost would depend on where in the page each
// one's bytes are, which pagesPast does not model (a cut through a leaf once
// salvaged 9 jobs the test counted lost).
func (l *pageLayout) clearCut(size int64) int64 {
	for moved := true; moved; {
		moved = false
		for id, n := range l.extent {
			start, end := int64(id)*int64(l.pageSize), int64(id+n)*int64(l.pageSize)
			if start < size && end > size {
				size, moved = start, true
			}
		}
	}
	return size
}

// pagesPast returns the pages of the runner's trees that do not fit in size bytes.
func (l *pageLayout) pagesPast(size int64) []uint64 {
	var out []uint64
	for id, n := range l.extent {
		if int64(id+n)*int64(l.pageSize) > size {
			out = append(out, id)
		}
	}
	return out
}

// damageCase is one damaged copy of the base file.
type damageCase struct {
	name    string
	damage  func(t *testing.T, path string)
	pages   []uint64 // the pages it damages, for the jobs it loses
	garbage bool     // it writes bytes that bbolt may read as keys and records
	open    string   // what the error of Open must say, if Open must fail
}

func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func damageCases(t *testing.T, l *pageLayout) []damageCase {
	ps := l.pageSize
	var cases []damageCase
	size := int64(l.pages) * int64(ps)
	// A cut just past the pages that lead to the jobs loses only leaves.
	var path uint64
	for p := range l.above {
		path = max(path, p+1)
	}
	for _, p := range l.branches["jobs"] {
		path = max(path, p+1)
	}
	for _, cut := range []struct {
		name string
		size int64
	}{
		{"truncated to 1/2", l.clearCut(size / 2)}, {"truncated to 1/4", l.clearCut(size / 4)},
		{"truncated past the meta pages", int64(2*ps + 100)},
		{"truncated past the jobs bucket's branches", int64(path) * int64(ps)},
	} {
		cases = append(cases, damageCase{name: cut.name, pages: l.pagesPast(cut.size), open: "it was truncated",
			damage: func(t *testing.T, path string) {
				if err := os.Truncate(path, cut.size); err != nil {
					t.Fatal(err)
				}
			}})
	}
	// Every page that matters, and a deterministic sample of the others.
	sample := map[uint64]bool{0: true, 1: true, l.freelist: true}
	for p := range l.above {
		sample[p] = true
	}
	for _, name := range []string{"jobs", "ready", "scheduled", "finished", "tags", "unique", "counts"} {
		if leaves := l.leaves[name]; len(leaves) > 0 {
			sample[leaves[0]], sample[leaves[len(leaves)-1]] = true, true
		}
		for _, b := range l.branches[name] {
			sample[b] = true
		}
	}
	for p := uint64(2); p < l.pages && len(sample) < 60; p += max(l.pages/40, 1) {
		sample[p] = true
	}
	for _, p := range slices.Sorted(maps.Keys(sample)) {
		what := "a free page"
		switch {
		case p < 2:
			what = "a meta page"
		case p == l.freelist:
			what = "the freelist"
		case l.above[p]:
			what = "on the way to the jobs"
		case l.under[p] != nil:
			what = fmt.Sprintf("%d jobs", len(l.under[p]))
		default:
			for name, pages := range l.leaves {
				if slices.Contains(pages, p) || slices.Contains(l.branches[name], p) {
					what = name
				}
			}
		}
		cases = append(cases, damageCase{name: fmt.Sprintf("page %d zeroed (%s)", p, what), pages: []uint64{p},
			damage: func(t *testing.T, path string) { writeAt(t, path, int64(p)*int64(ps), make([]byte, ps)) }})
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	garbage := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.UintN(256))
		}
		return b
	}
	jobLeaves := l.leaves["jobs"]
	for _, g := range []struct {
		name string
		page uint64
		keep int // bytes of the page header kept
	}{
		{"garbage page (jobs)", jobLeaves[len(jobLeaves)/2], 0},
		{"garbage page (finished index)", l.leaves["finished"][0], 0},
		{"garbage after the page header (jobs)", jobLeaves[len(jobLeaves)/3], 16},
		{"garbage after the page header (jobs branch)", l.branches["jobs"][0], 16},
	} {
		b := garbage(ps - g.keep)
		cases = append(cases, damageCase{name: g.name, pages: []uint64{g.page}, garbage: true,
			damage: func(t *testing.T, path string) { writeAt(t, path, int64(g.page)*int64(ps)+int64(g.keep), b) }})
	}
	return cases
}

// bounded runs fn and fails the test if it does not return within a minute: damage
// must give an error, never a hang.
func bounded(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("%s did not return within a minute", what)
	}
}

// wantCorrupt reports err unless it is nil or wraps ErrCorrupt (or, for Get,
// ErrNotFound: a garbage page can hide a job).
func wantCorrupt(t *testing.T, what string, err error) bool {
	t.Helper()
	if err != nil && !errors.Is(err, jobrun.ErrCorrupt) && !errors.Is(err, jobrun.ErrNotFound) {
		t.Errorf("%s: %v, want nil or an error wrapping ErrCorrupt", what, err)
	}
	return err != nil
}

// TestCorruptFiles damages copies of a real file in every way of the table and checks
// that the runner gives ErrCorrupt, in Open, in reads and in its loop, and never
// panics or hangs; then that Salvage copies every job on a readable page.
func TestCorruptFiles(t *testing.T) {
	base := baseFile(t)
	layout := readLayout(t, base.path)
	t.Logf("base file: %d pages of %d bytes, %d jobs on %d leaves", layout.pages, layout.pageSize,
		len(base.jobs), len(layout.leaves["jobs"]))
	for _, tc := range damageCases(t, layout) {
		t.Run(tc.name, func(t *testing.T) {
			path := copyFile(t, base.path, "damaged.db")
			tc.damage(t, path)
			lost := layout.lostWith(base, tc.pages)
			checkSalvage(t, base, path, lost, tc.garbage)
			checkDamagedRunner(t, base, path, tc.open)
		})
	}
}

// checkDamagedRunner opens the damaged file at path, reads everything and runs it:
// each step either works or fails with ErrCorrupt.
func checkDamagedRunner(t *testing.T, base damageBase, path, wantOpen string) {
	t.Helper()
	ctx := t.Context()
	r, err := openBounded(t, path, damageOpts()...)
	if wantOpen != "" && (err == nil || !strings.Contains(err.Error(), wantOpen)) {
		t.Fatalf("Open: %v; want an error saying %q", err, wantOpen)
	}
	if err != nil {
		if !errors.Is(err, jobrun.ErrCorrupt) || !strings.Contains(err.Error(), path) {
			t.Fatalf("Open: %v; want an error wrapping ErrCorrupt that names the file", err)
		}
		if !strings.Contains(err.Error(), "jobrun salvage") && !strings.Contains(err.Error(), "not a jobrun or bbolt") {
			t.Errorf("Open: %v; want it to say what to do", err)
		}
		t.Logf("runner: %v", err)
		return
	}
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[damageArgs]) error { return nil })
	var failed []string // the calls that met the damage
	check := func(what string, err error) {
		if wantCorrupt(t, what, err) && (len(failed) == 0 || failed[len(failed)-1] != what) {
			failed = append(failed, what)
		}
	}
	bounded(t, "reads", func() {
		for id := range base.jobs {
			_, err := r.Get(ctx, id)
			check("Get", err)
		}
		for _, st := range append([]jobrun.State{""}, jobrun.States...) {
			_, err := listEvery(ctx, r, jobrun.Filter{State: st})
			check(fmt.Sprintf("List(%s)", st), err)
		}
		_, err := listEvery(ctx, r, jobrun.Filter{Tag: "signup"})
		check("List(tag)", err)
		_, err = r.Counts(ctx, "")
		check("Counts", err)
		_, err = r.Queues(ctx)
		check("Queues", err)
		_, err = r.Schedules(ctx)
		check("Schedules", err)
		_, err = r.CheckCounts(ctx, false)
		check("CheckCounts", err)
		check("Compact", r.Compact(ctx))
	})
	bounded(t, "RunUntilIdle", func() {
		check("RunUntilIdle", r.RunUntilIdle(ctx))
	})
	t.Logf("runner: opened; ErrCorrupt from %v", failed)
	bounded(t, "Close", func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

// checkSalvage salvages the damaged file at path and checks the copy: it holds
// every job of base but those lost, as they were (a running job ready again), and
// passes CheckCounts, bbolt's check and a run.
func checkSalvage(t *testing.T, base damageBase, path string, lost map[jobrun.ID]bool, garbage bool) {
	t.Helper()
	ctx := t.Context()
	out := filepath.Join(t.TempDir(), "salvaged.db")
	before := fileSum(t, path)
	var rep jobrun.SalvageReport
	var err error
	bounded(t, "Salvage", func() { rep, err = jobrun.Salvage(ctx, path, out) })
	if fileSum(t, path) != before {
		t.Errorf("Salvage changed the damaged file")
	}
	if err != nil {
		if !errors.Is(err, jobrun.ErrCorrupt) {
			t.Fatalf("Salvage: %v, want nil or an error wrapping ErrCorrupt", err)
		}
		if len(lost) != len(base.jobs) {
			t.Fatalf("Salvage: %v; but %d of %d jobs are on readable pages", err, len(base.jobs)-len(lost), len(base.jobs))
		}
		if _, serr := os.Stat(out); !errors.Is(serr, fs.ErrNotExist) {
			t.Errorf("Salvage failed and left %s: %v", out, serr)
		}
		return
	}
	t.Logf("salvage: %+v", rep)
	checkFile(t, out)
	r, err := jobrun.Open(out, damageOpts()...)
	if err != nil {
		t.Fatalf("open the salvaged file: %v", err)
	}
	defer r.Close()
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[damageArgs]) error { return nil })
	if m, err := r.CheckCounts(ctx, false); err != nil || len(m) > 0 {
		t.Errorf("salvaged file: CheckCounts: %v, %v; want no mismatch", m, err)
	}
	jobs, err := listEvery(ctx, r, jobrun.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[jobrun.ID]*jobrun.Info{}
	unreadable := 0
	for _, in := range jobs {
		got[in.ID] = in
		if in.Kind == "" && in.State == jobrun.StateFailed && strings.Contains(in.LastError, "salvage found") {
			unreadable++
		}
	}
	if rep.Jobs+rep.Unreadable != len(got) || rep.Unreadable != unreadable {
		t.Errorf("report: %d jobs and %d unreadable; the file holds %d jobs, %d unreadable",
			rep.Jobs, rep.Unreadable, len(got), unreadable)
	}
	missing := 0
	for id, want := range base.jobs {
		in := got[id]
		switch {
		case in == nil:
			if !lost[id] {
				missing++
				if missing <= 5 {
					t.Errorf("job %d (%s) is on a readable page but was not salvaged", id, want.State)
				}
			}
		case garbage && in.Kind == "":
			// Its record was damaged in place.
		case in.State != want.State && !(want.State == jobrun.StateRunning && in.State == jobrun.StateReady),
			string(in.RawArgs) != string(want.RawArgs), in.Queue != want.Queue:
			t.Errorf("job %d: salvaged %s %s %s, was %s %s %s", id, in.State, in.Queue, in.RawArgs,
				want.State, want.Queue, want.RawArgs)
		}
	}
	if missing > 5 {
		t.Errorf("... %d jobs on readable pages were not salvaged", missing)
	}
	for id, in := range got {
		if base.jobs[id] == nil && !(garbage && in.Kind == "") {
			t.Errorf("salvaged job %d (%s %s), which the file did not hold", id, in.State, in.RawArgs)
		}
		if lost[id] && !garbage {
			t.Errorf("salvaged job %d, on a damaged page", id)
		}
	}
	if !garbage {
		if want := len(base.jobs) - len(lost); len(got) != want {
			t.Errorf("salvaged %d jobs, want %d", len(got), want)
		}
	}
	if rep.Lost != -1 && rep.Lost != len(base.jobs)-len(got) {
		t.Errorf("report: %d lost; %d of the file's %d jobs were not salvaged", rep.Lost, len(base.jobs)-len(got), len(base.jobs))
	}
	if len(lost) > 0 && len(rep.Damage) == 0 {
		t.Errorf("report: %d jobs lost, and no damage named", len(lost))
	}

	// New jobs get new IDs, and the runner runs what is ready.
	id, err := r.Enqueue(ctx, damageArgs{N: -3})
	if err != nil {
		t.Fatal(err)
	}
	if maxID := slices.Max(slices.Collect(maps.Keys(base.jobs))); id <= maxID {
		t.Errorf("new job %d, want an ID past %d", id, maxID)
	}
	if err := r.RunUntilIdle(ctx); err != nil {
		t.Fatalf("run the salvaged file: %v", err)
	}
	infos, err := r.Queues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range infos {
		if n := q.Counts[jobrun.StateReady] + q.Counts[jobrun.StateRunning]; n > 0 && !q.Paused {
			t.Errorf("queue %s: %d jobs ready or running after RunUntilIdle", q.Name, n)
		}
	}
}

// TestCorruptNonDatabaseFiles: a file that is not bbolt says so, and an empty path
// says it is empty; Salvage refuses both.
func TestCorruptNonDatabaseFiles(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	random := make([]byte, 6600)
	for i := range random {
		random[i] = byte(rnd.UintN(256))
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		content []byte
	}{
		{"6600 random bytes", random},
		{"100 bytes of text", []byte(strings.Repeat("not a db. ", 10))},
		{"two zeroed pages", make([]byte, 8192)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.WriteFile(path, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := openBounded(t, path)
			if !errors.Is(err, jobrun.ErrCorrupt) || !strings.Contains(err.Error(), "not a jobrun or bbolt database") ||
				!strings.Contains(err.Error(), path) {
				t.Errorf("Open: %v; want ErrCorrupt saying the file is not a jobrun or bbolt database", err)
			}
			_, err = jobrun.Salvage(t.Context(), path, path+".salvaged")
			if !errors.Is(err, jobrun.ErrCorrupt) || !strings.Contains(err.Error(), "not a jobrun or bbolt database") {
				t.Errorf("Salvage: %v; want ErrCorrupt saying the file is not a jobrun or bbolt database", err)
			}
		})
	}
	if _, err := jobrun.Open(""); !errors.Is(err, jobrun.ErrInvalid) || !strings.Contains(err.Error(), "empty path") {
		t.Errorf(`Open(""): %v; want ErrInvalid saying the path is empty`, err)
	}
	if _, err := jobrun.Salvage(t.Context(), "", filepath.Join(dir, "out.db")); !errors.Is(err, jobrun.ErrInvalid) {
		t.Errorf(`Salvage(""): %v; want ErrInvalid`, err)
	}
}

// TestSalvageCopiesEveryJobAsItWas: the salvage of an undamaged file holds every
// job with everything Get says of it (the running one ready again), the same
// schedules and paused queue, the unique keys of unfinished jobs and of running
// throttles, and nothing to mend; it refuses to overwrite a file.
func TestSalvageCopiesEveryJobAsItWas(t *testing.T) {
	base := baseFile(t)
	ctx := t.Context()
	path := copyFile(t, base.path, "base.db")
	out := filepath.Join(t.TempDir(), "salvaged.db")
	rep, err := jobrun.Salvage(ctx, path, out)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Jobs != len(base.jobs) || rep.Unreadable != 0 || rep.Lost != 0 || rep.Schedules != 2 || len(rep.Damage) > 0 {
		t.Errorf("report %+v; want all %d jobs, 2 schedules, nothing lost", rep, len(base.jobs))
	}
	checkFile(t, out)
	if _, err := jobrun.Salvage(ctx, path, out); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Salvage over an existing file: %v, want an error wrapping fs.ErrExist", err)
	}
	if _, err := jobrun.Salvage(ctx, filepath.Join(t.TempDir(), "none.db"), out+"2"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Salvage of no file: %v, want an error wrapping fs.ErrNotExist", err)
	}
	held, err := jobrun.Open(copyFile(t, path, "held.db"), jobrun.WithServices(false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jobrun.Salvage(ctx, held.DB().Path(), out+"4"); !errors.Is(err, jobrun.ErrLocked) {
		t.Errorf("Salvage of a file a runner holds: %v, want ErrLocked", err)
	}
	held.Close()
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := jobrun.Salvage(canceled, path, out+"3"); !errors.Is(err, context.Canceled) {
		t.Errorf("Salvage with a canceled context: %v, want context.Canceled", err)
	}
	if _, err := os.Stat(out + "3"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Salvage stopped by its context left its file: %v", err)
	}

	orig, err := jobrun.Open(path, jobrun.WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	r, err := jobrun.Open(out, damageOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[damageArgs]) error { return nil })
	jobs, err := listEvery(ctx, r, jobrun.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != len(base.jobs) {
		t.Fatalf("salvaged %d jobs, want %d", len(jobs), len(base.jobs))
	}
	for _, in := range jobs {
		want := *base.jobs[in.ID]
		if want.State == jobrun.StateRunning {
			want.State, want.Attempt = jobrun.StateReady, want.Attempt-1
			want.StartedAt = in.StartedAt
		}
		a, _ := json.Marshal(want)
		b, _ := json.Marshal(in)
		if string(a) != string(b) {
			t.Errorf("job %d:\nsalvaged %s\nwas      %s", in.ID, b, a)
		}
	}
	for _, st := range append([]jobrun.State{""}, jobrun.States...) {
		for _, tag := range []string{"", "signup", "canceled"} {
			f := jobrun.Filter{State: st, Tag: tag, Oldest: true}
			a, _ := listEvery(ctx, orig, f)
			b, _ := listEvery(ctx, r, f)
			if st == jobrun.StateRunning || st == jobrun.StateReady {
				continue // the running job moved
			}
			if ids(a) != ids(b) {
				t.Errorf("List %+v: salvaged %s, was %s", f, ids(b), ids(a))
			}
		}
	}
	ca, _ := orig.Counts(ctx, "")
	cb, _ := r.Counts(ctx, "")
	ca[jobrun.StateReady] += ca[jobrun.StateRunning]
	ca[jobrun.StateRunning] = 0
	if !maps.Equal(ca, cb) {
		t.Errorf("counts: salvaged %v, was %v", cb, ca)
	}
	if m, err := r.CheckCounts(ctx, false); err != nil || len(m) > 0 {
		t.Errorf("CheckCounts: %v, %v", m, err)
	}
	sa, _ := orig.Schedules(ctx)
	sb, _ := r.Schedules(ctx)
	if a, b := fmt.Sprint(sa), fmt.Sprint(sb); a != b {
		t.Errorf("schedules: salvaged %s, was %s", b, a)
	}
	if paused, err := queueIsPaused(ctx, r, "paused"); err != nil || !paused {
		t.Errorf("queue paused: paused %v (%v), want true", paused, err)
	}

	// Unique keys: held by unfinished jobs and throttles, free after finished jobs.
	for _, tc := range []struct {
		opt  jobrun.EnqueueOption
		held bool
	}{
		{jobrun.UniqueKey("report-3"), true},            // scheduled
		{jobrun.Throttle("sync-3", 24*time.Hour), true}, // done, within its period
		{jobrun.UniqueKey("welcome-3"), false},          // done
	} {
		_, err := r.Enqueue(ctx, damageArgs{N: -4}, tc.opt, jobrun.Delay(time.Hour))
		if held := errors.Is(err, jobrun.ErrDuplicate); held != tc.held || err != nil && !held {
			t.Errorf("enqueue with a salvaged key: %v, want held %v", err, tc.held)
		}
	}
}

func ids(jobs []*jobrun.Info) string {
	var b strings.Builder
	for _, j := range jobs {
		fmt.Fprint(&b, j.ID, " ")
	}
	return b.String()
}

// TestCorruptWhileRunning: a page that becomes unreadable under a running runner
// (zeroed through another file descriptor: bbolt maps the file, so the runner reads
// the zeros) stops it cleanly. EnqueueTx in the application's transaction gives
// ErrCorrupt; the commit that meets the damage fails its callers with it, Run
// returns it, later calls get it, Close returns, and every job
// acknowledged before is there once the page's bytes are back, jobs that were
// running ready again; Salvage of the damaged file holds every acknowledged job on a
// readable page.
func TestCorruptWhileRunning(t *testing.T) {
	for _, tc := range []struct {
		name string
		// pages returns the pages to zero and the jobs on no readable page then; all
		// is every job.
		pages func(t *testing.T, db *bbolt.DB, all map[jobrun.ID]bool) ([]uint64, map[jobrun.ID]bool)
	}{
		{"ready index", func(t *testing.T, db *bbolt.DB, all map[jobrun.ID]bool) ([]uint64, map[jobrun.ID]bool) {
			return []uint64{bucketRoot(t, db, "ready")}, nil
		}},
		{"runner bucket", func(t *testing.T, db *bbolt.DB, all map[jobrun.ID]bool) ([]uint64, map[jobrun.ID]bool) {
			return []uint64{bucketRoot(t, db, "")}, all
		}},
		{"newest jobs", func(t *testing.T, db *bbolt.DB, all map[jobrun.ID]bool) ([]uint64, map[jobrun.ID]bool) {
			l := readLayout(t, db.Path())
			newest := slices.Max(slices.Collect(maps.Keys(all)))
			for _, p := range l.leaves["jobs"] {
				if slices.Contains(l.under[p], newest) {
					return []uint64{p}, l.lostWith(damageBase{}, []uint64{p})
				}
			}
			t.Fatalf("no leaf holds job %d", newest)
			return nil, nil
		}},
		// bbolt's rollback of the failed commit reads the freelist again: with that
		// page damaged too, it panics and leaves the database locked, unless the
		// runner releases the transaction itself.
		{"ready index and freelist", func(t *testing.T, db *bbolt.DB, all map[jobrun.ID]bool) ([]uint64, map[jobrun.ID]bool) {
			return []uint64{bucketRoot(t, db, "ready"), readLayout(t, db.Path()).freelist}, nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "jobs.db")
			db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			r, err := jobrun.New(db, jobrun.WithQueue("default", 2, nil))
			if err != nil {
				t.Fatal(err)
			}
			running, release := make(chan jobrun.ID, 2), make(chan struct{})
			jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[damageArgs]) error {
				if j.Args.Mode == "block" {
					running <- j.ID
					<-release
				}
				return nil
			})

			// Acknowledged: 100 done jobs, 300 ready in a queue this runner does not
			// run (the ready index gets pages of its own), 2 running.
			pad := strings.Repeat("p", 80)
			acked := map[jobrun.ID]bool{}
			enqueueMany := func(n int, mode string, opts ...jobrun.EnqueueOption) {
				batch := make([]jobrun.Args, n)
				for i := range batch {
					batch[i] = damageArgs{N: i, Mode: mode, Pad: pad}
				}
				ids, err := r.EnqueueMany(ctx, batch, opts...)
				if err != nil {
					t.Fatal(err)
				}
				for _, id := range ids {
					acked[id] = true
				}
			}
			enqueueMany(100, "")
			runUntilIdle(t, r)
			enqueueMany(300, "", jobrun.Queue("later"))
			enqueueMany(2, "block")
			events, err := r.Watch(ctx, 1<<16)
			if err != nil {
				t.Fatal(err)
			}
			runErr := make(chan error, 1)
			go func() { runErr <- r.Run(ctx) }()
			wasRunning := []jobrun.ID{<-running, <-running}
			// Their starts are recorded by commits of their own once the handlers have
			// run for a commit's time: wait for both, so that none comes after the
			// barrier below and moves the pages about to be zeroed.
			for started := 0; started < 2; {
				if ev := <-events; ev.Type == jobrun.ChangeStarted && slices.Contains(wasRunning, ev.ID) {
					started++
				}
			}
			// A commit through the loop, after which it is idle: what the workers sent
			// before it is committed, so no commit moves the pages about to be zeroed.
			if err := r.Resume(ctx, jobrun.DefaultQueue); err != nil {
				t.Fatal(err)
			}

			pages, lost := tc.pages(t, db, acked)
			ps := int64(db.Info().PageSize)
			whole, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pages {
				writeAt(t, path, int64(p)*ps, make([]byte, ps))
			}

			// The application's own transaction meets it first, then the loop.
			enqueueTx := func() error {
				return db.Update(func(tx *bbolt.Tx) error {
					_, err := r.EnqueueTx(ctx, tx, damageArgs{N: -3, Pad: pad})
					return err
				})
			}
			if err := enqueueTx(); !errors.Is(err, jobrun.ErrCorrupt) {
				t.Fatalf("EnqueueTx after the damage: %v, want an error wrapping ErrCorrupt", err)
			}
			var enqErr error
			bounded(t, "Enqueue after the damage", func() { _, enqErr = r.Enqueue(ctx, damageArgs{N: -1, Pad: pad}) })
			if !errors.Is(enqErr, jobrun.ErrCorrupt) || !strings.Contains(enqErr.Error(), path) {
				t.Fatalf("Enqueue after the damage: %v; want an error wrapping ErrCorrupt that names the file", enqErr)
			}
			t.Logf("Enqueue after the damage: %v", enqErr)
			close(release) // the running handlers return; their outcomes cannot be recorded
			select {
			case err := <-runErr:
				if !errors.Is(err, jobrun.ErrCorrupt) {
					t.Fatalf("Run: %v, want an error wrapping ErrCorrupt", err)
				}
			case <-time.After(time.Minute):
				t.Fatal("Run did not return within a minute of the damage")
			}
			if _, err := r.Enqueue(ctx, damageArgs{N: -2}); !errors.Is(err, jobrun.ErrCorrupt) {
				t.Errorf("Enqueue after the stop: %v, want an error wrapping ErrCorrupt", err)
			}
			if err := enqueueTx(); !errors.Is(err, jobrun.ErrCorrupt) {
				t.Errorf("EnqueueTx after the stop: %v, want an error wrapping ErrCorrupt", err)
			}
			if err := r.RunUntilIdle(ctx); !errors.Is(err, jobrun.ErrCorrupt) {
				t.Errorf("RunUntilIdle after the stop: %v, want an error wrapping ErrCorrupt", err)
			}
			bounded(t, "Close", func() {
				if err := r.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
				if err := db.Close(); err != nil {
					t.Errorf("close the database: %v", err)
				}
			})

			// Salvage of the damaged file: every acknowledged job on a readable page.
			out := filepath.Join(t.TempDir(), "salvaged.db")
			rep, err := jobrun.Salvage(ctx, path, out)
			t.Logf("salvage: %+v, %v", rep, err)
			if len(lost) == len(acked) {
				if !errors.Is(err, jobrun.ErrCorrupt) {
					t.Errorf("Salvage with the runner's bucket unreadable: %+v, %v; want ErrCorrupt", rep, err)
				}
			} else if err != nil {
				t.Errorf("Salvage: %v", err)
			} else {
				checkFile(t, out)
				s, err := jobrun.Open(out, jobrun.WithReadOnly())
				if err != nil {
					t.Fatal(err)
				}
				jobs, err := listEvery(ctx, s, jobrun.Filter{})
				s.Close()
				if err != nil {
					t.Fatal(err)
				}
				got := map[jobrun.ID]*jobrun.Info{}
				for _, in := range jobs {
					got[in.ID] = in
				}
				for id := range acked {
					if got[id] == nil && !lost[id] {
						t.Errorf("salvage: acknowledged job %d, on a readable page, is missing", id)
					}
				}
				for _, id := range wasRunning {
					if in := got[id]; in != nil && in.State != jobrun.StateReady {
						t.Errorf("salvage: job %d, running at the damage, is %s, want ready", id, in.State)
					}
				}
				if len(got) != len(acked)-len(lost) {
					t.Errorf("salvage: %d jobs, want the %d acknowledged on readable pages", len(got), len(acked)-len(lost))
				}
			}

			// With the page's bytes back, everything acknowledged is there and runs.
			for _, p := range pages {
				writeAt(t, path, int64(p)*ps, whole[int64(p)*ps:int64(p+1)*ps])
			}
			r, err = jobrun.Open(path, jobrun.WithQueue("later", 4, nil))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[damageArgs]) error { return nil })
			for _, id := range wasRunning {
				wantState(t, get(t, r, id), jobrun.StateReady, 0)
			}
			runUntilIdle(t, r)
			jobs, err := listEvery(ctx, r, jobrun.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			for _, in := range jobs {
				if !acked[in.ID] || in.State != jobrun.StateDone {
					t.Errorf("job %d: %s, acknowledged %v; want only acknowledged jobs, all done", in.ID, in.State, acked[in.ID])
				}
			}
			if len(jobs) != len(acked) {
				t.Errorf("%d jobs after the page was mended, want the %d acknowledged", len(jobs), len(acked))
			}
			if m, err := r.CheckCounts(ctx, false); err != nil || len(m) > 0 {
				t.Errorf("CheckCounts: %v, %v", m, err)
			}
		})
	}
}

// bucketRoot returns the root page of the runner's bucket name, or of the runner's
// own bucket if name is "".
func bucketRoot(t *testing.T, db *bbolt.DB, name string) uint64 {
	t.Helper()
	var root uint64
	db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("jobrun"))
		if name != "" {
			b = b.Bucket([]byte(name))
		}
		root = uint64(b.Root())
		return nil
	})
	if root == 0 {
		t.Fatalf("bucket %q is inline", name)
	}
	return root
}
