package jobrun_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jobrun/jobrun"
)

const fanOutKillChildEnv = "JOBRUN_FANOUT_KILL_CHILD" // the file's path, in the child

// The functions of the fan-out kill test, all on event "signup/done".
type (
	fanA struct{ N int }
	fanB struct{ N int }
	fanC struct{ N int }
)

func (fanA) Kind() string { return "fan-a" }
func (fanB) Kind() string { return "fan-b" }
func (fanC) Kind() string { return "fan-c" }

func handleFanOut(r *jobrun.Runner) {
	on := jobrun.On("signup/done")
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[fanA]) error { return nil }, on)
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[fanB]) error { return nil }, on)
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[fanC]) error { return nil }, on)
}

// TestFanOutSIGKILL kills a process while four goroutines send events that three
// functions are registered on, and its workers run them: after the restart every
// event Send acknowledged is stored, and every stored event has exactly one run of
// each function, naming it; no run exists without its event.
func TestFanOutSIGKILL(t *testing.T) {
	if path := os.Getenv(fanOutKillChildEnv); path != "" {
		fanOutKillChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "jobs.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestFanOutSIGKILL$")
	cmd.Env = append(os.Environ(), fanOutKillChildEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[uint64]bool{}
	lines := bufio.NewScanner(out)
	for len(acked) < 200 && lines.Scan() {
		seq, err := strconv.ParseUint(strings.TrimPrefix(lines.Text(), "sent "), 10, 64)
		if err != nil {
			t.Fatalf("child: %q", lines.Text())
		}
		acked[seq] = true
	}
	cmd.Process.Kill()
	cmd.Wait()
	if len(acked) < 200 {
		t.Fatalf("the child ended after %d acknowledged events: %v", len(acked), lines.Err())
	}

	r, err := jobrun.Open(path, jobrun.WithQueue(jobrun.DefaultQueue, 4, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	handleFanOut(r)
	runUntilIdle(t, r)
	events := 0
	runsOf := map[jobrun.ID]uint64{}
	for f := (jobrun.EventFilter{Limit: 1000}); ; {
		page, err := r.Events(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range page.Events {
			events++
			delete(acked, ev.Seq)
			kinds := map[string]bool{}
			for _, id := range ev.Runs {
				in := get(t, r, id)
				if in.Event != ev.Seq || in.State != jobrun.StateDone {
					t.Errorf("run %d of event %d: event %d, %s", id, ev.Seq, in.Event, in.State)
				}
				kinds[in.Kind] = true
				runsOf[id] = ev.Seq
			}
			if len(ev.Runs) != 3 || len(kinds) != 3 {
				t.Errorf("event %d started runs %v of kinds %v, want one of each of 3 functions", ev.Seq, ev.Runs, kinds)
			}
		}
		if page.Next == "" {
			break
		}
		f.Cursor = page.Next
	}
	for seq := range acked {
		t.Errorf("event %d was acknowledged and is not stored", seq)
	}
	counts, err := r.Counts(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	if total != 3*events || len(runsOf) != total {
		t.Errorf("%d jobs, %d of them runs of the %d events; want 3 runs per event and nothing else", total, len(runsOf), events)
	}
	t.Logf("fan-out kill: %d events stored, %d runs", events, total)
}

// fanOutKillChild sends events from four goroutines, printing each acknowledged
// Seq, and runs their functions until it is killed.
func fanOutKillChild(path string) {
	r, err := jobrun.Open(path, jobrun.WithQueue(jobrun.DefaultQueue, 4, nil))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	handleFanOut(r)
	go r.Run(context.Background())
	var mu sync.Mutex
	for g := range 4 {
		go func() {
			for i := 0; ; i++ {
				sent, err := r.Send(context.Background(), jobrun.Event{Name: "signup/done", Data: fanA{N: g*1e6 + i}})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Println("sent", sent.Seq)
				mu.Unlock()
			}
		}()
	}
	select {}
}
