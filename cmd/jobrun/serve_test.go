package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/jobrun/jobrun"
)

// servedFile makes a database file holding one ready job on queue "mail".
func servedFile(t *testing.T) string {
	t.Helper()
	db := filepath.Join(t.TempDir(), "jobs.db")
	r, err := jobrun.Open(db, jobrun.WithStrictKinds(false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Enqueue(t.Context(), sendEmail{To: "ada@example.com", Subject: "hi"}, jobrun.Queue("mail")); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	return db
}

// lineWriter collects what a command prints and hands over its first line that
// matches a pattern, as soon as it is written.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	re    *regexp.Regexp
	found chan string
}

func newLineWriter(pattern string) *lineWriter {
	return &lineWriter{re: regexp.MustCompile(pattern), found: make(chan string, 1)}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if m := w.re.FindSubmatch(p); m != nil && w.re.NumSubexp() > 0 {
		select {
		case w.found <- string(m[1]):
		default:
		}
	}
	return w.buf.Write(p)
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// startServe runs jobrun serve with args in the background and returns the URL it
// serves at, and a func that stops it and returns its exit code.
func startServe(t *testing.T, args ...string) (string, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	stdout := newLineWriter(`at (http://\S+) `)
	var stderr bytes.Buffer
	code := make(chan int, 1)
	go func() { code <- run(ctx, append([]string{"serve"}, args...), stdout, &stderr) }()
	var url string
	select {
	case url = <-stdout.found:
	case c := <-code:
		cancel()
		t.Fatalf("serve exited with %d before serving:\n%s%s", c, stdout, &stderr)
	}
	stop := func() int {
		cancel()
		c := <-code
		t.Logf("serve %v:\n%s%s", args, stdout, &stderr)
		return c
	}
	return url, stop
}

func fetch(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

func TestServe(t *testing.T) {
	db := servedFile(t)
	// Flags may follow the file.
	url, stop := startServe(t, db, "-addr", "127.0.0.1:0")
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Errorf("URL %q is not on 127.0.0.1", url)
	}
	code, body := fetch(t, http.MethodGet, url)
	if code != http.StatusOK || !strings.Contains(body, `<a href="queues/mail">mail</a>`) || !strings.Contains(body, "actions enabled") {
		t.Errorf("overview: status %d\n%s", code, body)
	}
	code, body = fetch(t, http.MethodPost, url+"api/queues/mail/pause")
	if code != http.StatusOK {
		t.Errorf("pause: status %d\n%s", code, body)
	}
	if c := stop(); c != 0 {
		t.Errorf("serve stopped with exit code %d, want 0", c)
	}

	// The pause is in the file; -readonly refuses actions.
	url, stop = startServe(t, "-readonly", "-addr", "127.0.0.1:0", db)
	code, body = fetch(t, http.MethodGet, url+"api/queues")
	if code != http.StatusOK || !strings.Contains(body, `"paused": true`) {
		t.Errorf("queues: status %d\n%s", code, body)
	}
	if code, body = fetch(t, http.MethodPost, url+"api/queues/mail/resume"); code != http.StatusForbidden {
		t.Errorf("resume on a read-only dashboard: status %d\n%s", code, body)
	}
	if c := stop(); c != 0 {
		t.Errorf("serve stopped with exit code %d, want 0", c)
	}
}

// TestServeLockedFile checks that serve on the file of a running application says
// so and points to the dashboard package.
func TestServeLockedFile(t *testing.T) {
	db := servedFile(t)
	app, err := jobrun.Open(db, jobrun.WithStrictKinds(false))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"serve", db, "-addr", "127.0.0.1:0"}, &stdout, &stderr); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	msg := strings.Join(strings.Fields(stderr.String()), " ")
	for _, want := range []string{db + " is in use", "github.com/jobrun/jobrun/dashboard"} {
		if !strings.Contains(msg, want) {
			t.Errorf("stderr does not say %q:\n%s", want, &stderr)
		}
	}
	if stdout.Len() > 0 {
		t.Errorf("serve printed %q on a file in use", &stdout)
	}
}

func TestServeExitCodes(t *testing.T) {
	db := servedFile(t)
	missing := filepath.Join(t.TempDir(), "nope.db")
	runCases(t, []cliCase{
		{args: []string{"help", "serve"}, code: 0, stdout: "usage: jobrun serve FILE"},
		{args: []string{"serve", "-h"}, code: 0, stdout: "-readonly"},
		{args: []string{"serve"}, code: 2, errs: "missing FILE"},
		{args: []string{"serve", db, db}, code: 2, errs: "unexpected argument"},
		{args: []string{"serve", "-port", "1", db}, code: 2, errs: "flag provided but not defined: -port"},
		{args: []string{"serve", missing}, code: 1, errs: "no such file"},
		{args: []string{"serve", db, "-addr", "127.0.0.1:-1"}, code: 1, errs: "jobrun serve: listen tcp"},
	})
}

func TestDashboardURL(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:8080": "http://127.0.0.1:8080/",
		"0.0.0.0:80":     "http://localhost:80/",
		"[::]:9000":      "http://localhost:9000/",
		"[::1]:9000":     "http://[::1]:9000/",
	} {
		tcp, err := netResolve(addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := dashboardURL(tcp); got != want {
			t.Errorf("dashboardURL(%s) = %s, want %s", addr, got, want)
		}
	}
}

func netResolve(addr string) (net.Addr, error) { return net.ResolveTCPAddr("tcp", addr) }
