package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/dashboard"
)

// e2eEnv makes the test binary, started again by a test, be another program: "cli"
// the jobrun command with the arguments it is given, "app" the application of
// TestEnqueueOverHTTPEndToEnd.
const e2eEnv = "JOBRUN_TEST_PROCESS"

func TestMain(m *testing.M) {
	switch os.Getenv(e2eEnv) {
	case "cli":
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	case "app":
		os.Exit(e2eApp(os.Getenv("E2E_FILE"), os.Getenv("E2E_TOKEN")))
	}
	goleak.VerifyTestMain(m)
}

// greetArgs is the job kind of the end-to-end application.
type greetArgs struct {
	Name string `json:"name"`
}

func (greetArgs) Kind() string { return "greet" }

// signupArgs is the data of the event "user/created", which starts a greeting.
type signupArgs struct {
	Name string `json:"name"`
}

func (signupArgs) Kind() string { return "signup.greet" }

// e2eApp is a running application: it holds the file at path, runs a handler of
// greet and a function on "user/created", serves its dashboard on a free loopback
// port with the bearer token, and prints "serving URL", then "done ID" for each job
// done, until its stdin closes; then it shuts down gracefully.
func e2eApp(path, token string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "app:", err)
		return 1
	}
	r, err := jobrun.Open(path, jobrun.WithChangeHook(func(c jobrun.Change) {
		if c.State == jobrun.StateDone {
			fmt.Printf("done %d\n", c.ID)
		}
	}))
	if err != nil {
		return fail(err)
	}
	defer r.Close()
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[greetArgs]) error {
		return j.SetResult("hello " + j.Args.Name)
	}, jobrun.MaxAttempts(3))
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[signupArgs]) error {
		return j.SetResult("welcome " + j.Args.Name)
	}, jobrun.On("user/created"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	srv := &http.Server{Handler: dashboard.New(r, dashboard.WithBearerToken(token), dashboard.WithActions(), dashboard.WithEnqueue())}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	ran := make(chan error, 1)
	go func() { ran <- r.Run(context.Background()) }()
	fmt.Printf("serving http://%s/\n", ln.Addr())

	io.Copy(io.Discard, os.Stdin) // until the test closes it
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return fail(err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fail(err)
	}
	if err := r.Shutdown(ctx); err != nil {
		return fail(err)
	}
	if err := <-ran; !errors.Is(err, jobrun.ErrClosed) {
		return fail(err)
	}
	return 0
}

// TestEnqueueOverHTTPEndToEnd is issue 15's test: while an application runs, in
// another process, holding its file and serving its dashboard with a token on
// loopback, more processes enqueue into it with the jobrun command's -url, and the
// command shows the jobs the application ran; on its file the command says it is
// in use. Every process is this test binary, started again (see TestMain).
func TestEnqueueOverHTTPEndToEnd(t *testing.T) {
	const token = "e2e-t0ken"
	db := filepath.Join(t.TempDir(), "jobs.db")
	app := exec.Command(os.Args[0])
	app.Env = append(os.Environ(), e2eEnv+"=app", "E2E_FILE="+db, "E2E_TOKEN="+token)
	stdin, err := app.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := app.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var appErr bytes.Buffer
	app.Stderr = &appErr
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		for sc := bufio.NewScanner(stdout); sc.Scan(); {
			lines <- sc.Text()
		}
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		stdin.Close()
		for range lines { // the reads end before Wait
		}
		if err := app.Wait(); err != nil {
			t.Errorf("the application: %v\n%s", err, &appErr)
		}
	}
	defer stop()
	// next returns the application's next line; its output tells when it is ready
	// and when a job is done, so nothing waits for a time, but against a hang.
	next := func(what string) string {
		t.Helper()
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("the application ended before %s:\n%s", what, &appErr)
			}
			return line
		case <-time.After(time.Minute):
			t.Fatalf("the application printed nothing for a minute, waiting for %s", what)
		}
		return ""
	}
	url, ok := strings.CutPrefix(next("its address"), "serving ")
	if !ok {
		t.Fatalf("the application printed %q first", url)
	}

	// command runs the jobrun command in a new process, with JOBRUN_TOKEN unset.
	command := func(code int, args ...string) string {
		t.Helper()
		cmd := exec.Command(os.Args[0], args...)
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, tokenEnv+"=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, e2eEnv+"=cli")
		var out, errs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errs
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit) && exit.ExitCode() == code, err == nil && code == 0:
		default:
			t.Fatalf("jobrun %s: %v, want exit code %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, code, &out, &errs)
		}
		return out.String() + errs.String()
	}
	remote := func(args ...string) []string { return append([]string{"-url", url, "-token", token}, args...) }

	// A second process enqueues; the application runs the job; a third shows it.
	out := command(0, append([]string{"enqueue"}, remote("greet", `{"name": "Ada"}`, "-tag", "e2e", "-priority", "2")...)...)
	m := regexp.MustCompile(`^Enqueued job (\d+) \(greet\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("enqueue printed %q", out)
	}
	id := m[1]
	if line := next("the job to be done"); line != "done "+id {
		t.Fatalf("the application printed %q, want %q", line, "done "+id)
	}
	out = command(0, append([]string{"show"}, remote(id)...)...)
	for _, want := range []string{"Job:       " + id + "\n", "Kind:      greet\n", "State:     done\n", "Priority:  2\n",
		"Attempts:  1 of 3\n", "Tags:      e2e\n", `Args:      {"name":"Ada"}` + "\n", `Result:    "hello Ada"` + "\n"} {
		mustContain(t, out, want)
	}
	out = command(0, append([]string{"list"}, remote("-tag", "e2e")...)...)
	mustIDs(t, out, id)
	var job jobrun.Info
	decode(t, command(0, append([]string{"show"}, remote(id, "-json")...)...), &job)
	if fmt.Sprint(job.ID) != id || job.State != jobrun.StateDone || string(job.Result) != `"hello Ada"` {
		t.Errorf("show -json: %+v", job)
	}

	// An event, sent from another process, starts the application's function.
	out = command(0, append([]string{"send"}, remote("user/created", `{"name": "Bob"}`)...)...)
	m = regexp.MustCompile(`(?m)^  (\d+)\s+signup\.greet\s+default\s+(ready|running|done)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("send printed:\n%s", out)
	}
	if line := next("the run to be done"); line != "done "+m[1] {
		t.Fatalf("the application printed %q, want %q", line, "done "+m[1])
	}
	mustContain(t, command(0, append([]string{"show"}, remote(m[1])...)...), `Result:    "welcome Bob"`)

	// The refusals: the file is the application's; the dashboard wants the token.
	out = command(1, "list", db)
	mustContain(t, out, db+" is in use by a running application")
	mustContain(t, out, "give this command\n-url with the dashboard's URL")
	mustContain(t, command(1, "stats", "-url", url), "authentication required: give the dashboard's token with -token or JOBRUN_TOKEN")
	mustContain(t, command(1, append([]string{"enqueue"}, remote("nobody.handles.this")...)...), `unknown job kind "nobody.handles.this"`)

	// Once the application has stopped, the file shows the same jobs.
	stop()
	out = command(0, "show", db, id)
	mustContain(t, out, "State:     done\n")
	mustContain(t, out, `Result:    "hello Ada"`)
}
