package jobrun_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jobrun/jobrun"
)

const stepKillChildEnv = "JOBRUN_STEP_KILL_CHILD" // the file's path, in the child

// stepKillHandler is a job of two steps with a SendEvent between them; each call of a
// step's function appends a line to ledger, outside the database. With block set, the
// second step never ends: the process is killed in it.
func stepKillHandler(ledger func(line string), block bool) func(context.Context, *jobrun.Job[signup]) error {
	return func(ctx context.Context, j *jobrun.Job[signup]) error {
		if _, err := jobrun.Step(ctx, "first", func(ctx context.Context) (string, error) {
			ledger("first " + j.Args.User)
			return "ok", nil
		}); err != nil {
			return err
		}
		if _, err := jobrun.SendEvent(ctx, "notify", jobrun.Event{Name: "user/welcomed", Data: welcomed{User: j.Args.User}}); err != nil {
			return err
		}
		_, err := jobrun.Step(ctx, "second", func(ctx context.Context) (string, error) {
			ledger("second " + j.Args.User)
			if block {
				select {} // killed here
			}
			return "ok", nil
		})
		return err
	}
}

// TestStepSIGKILL kills a process while its jobs are in their second step: after
// the restart every job finishes, the first step of none of them runs again, and
// the event each sent between its steps was sent once, starting one run.
func TestStepSIGKILL(t *testing.T) {
	if path := os.Getenv(stepKillChildEnv); path != "" {
		stepKillChild(path)
		return
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "jobs.db")
	r, err := jobrun.Open(path, jobrun.WithStrictKinds(false)) // this process only enqueues
	if err != nil {
		t.Fatal(err)
	}
	const jobs, workers = 12, 4
	for i := range jobs {
		enqueue(t, r, signup{User: fmt.Sprint("u", i)})
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestStepSIGKILL$")
	cmd.Env = append(os.Environ(), stepKillChildEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The child prints each ledger line as it appends it; once every worker is in a
	// second step, the first steps of those jobs are committed.
	var child []string
	buf := make([]byte, 4096)
	var pending string
	for seconds := 0; seconds < workers; {
		n, err := out.Read(buf)
		if err != nil {
			t.Fatalf("the child ended before its workers reached the second step: %v (lines %q)", err, child)
		}
		pending += string(buf[:n])
		for {
			line, rest, ok := strings.Cut(pending, "\n")
			if !ok {
				break
			}
			child, pending = append(child, line), rest
			if strings.HasPrefix(line, "second ") {
				seconds++
			}
		}
	}
	cmd.Process.Kill()
	cmd.Wait()

	var mu sync.Mutex
	calls := map[string]int{}
	for _, l := range child {
		calls[l]++
	}
	r, err = jobrun.Open(path, jobrun.WithQueue(jobrun.DefaultQueue, workers, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	jobrun.Handle(r, stepKillHandler(func(line string) {
		mu.Lock()
		calls[line]++
		mu.Unlock()
	}, false))
	handleWelcomed(r)
	runUntilIdle(t, r)
	wantCounts(t, r, "", map[jobrun.State]int{jobrun.StateDone: 2 * jobs})
	sent := map[string]int{}
	page, err := r.Events(t.Context(), jobrun.EventFilter{Name: "user/welcomed", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range page.Events {
		var w welcomed
		if err := json.Unmarshal(ev.Data, &w); err != nil || len(ev.Runs) != 1 {
			t.Fatalf("event %d: %s, runs %v", ev.Seq, ev.Data, ev.Runs)
		}
		sent[w.User]++
		if in := get(t, r, ev.Runs[0]); in.Kind != "welcomed" || in.Event != ev.Seq || in.State != jobrun.StateDone {
			t.Errorf("the run of event %d: %s %s, event %d", ev.Seq, in.Kind, in.State, in.Event)
		}
	}
	for i := range jobs {
		u := fmt.Sprint("u", i)
		if n := calls["first "+u]; n != 1 {
			t.Errorf("job %s: the first step ran %d times, want once (ledger of the killed process: %q)", u, n, child)
		}
		if calls["second "+u] < 1 {
			t.Errorf("job %s: the second step never ran", u)
		}
		if sent[u] != 1 {
			t.Errorf("job %s sent its event %d times, want once", u, sent[u])
		}
	}
}

// stepKillChild runs the jobs with the blocking handler until it is killed,
// printing each ledger line once the step's function is called.
func stepKillChild(path string) {
	r, err := jobrun.Open(path, jobrun.WithQueue(jobrun.DefaultQueue, 4, nil))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var mu sync.Mutex
	jobrun.Handle(r, stepKillHandler(func(line string) {
		mu.Lock()
		fmt.Println(line)
		mu.Unlock()
	}, true))
	handleWelcomed(r)
	err = r.Run(context.Background())
	fmt.Fprintln(os.Stderr, "Run returned before the kill:", err)
	os.Exit(1)
}

// handleWelcomed registers the function of the event stepKillHandler sends.
func handleWelcomed(r *jobrun.Runner) {
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[welcomed]) error { return nil }, jobrun.On("user/welcomed"))
}
