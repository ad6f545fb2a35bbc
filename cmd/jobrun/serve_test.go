package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jobrun/jobrun"
)

// servedFile makes a database file holding one ready job on queue "mail", and the
// history of its enqueue.
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
// serves at, what it printed on stderr so far (all it prints before serving), and a
// func that stops it and returns its exit code.
func startServe(t *testing.T, args ...string) (url, stderr string, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	stdout := newLineWriter(`at (http://\S+) `)
	errs := newLineWriter(`^$`)
	code := make(chan int, 1)
	go func() { code <- run(ctx, append([]string{"serve"}, args...), stdout, errs) }()
	select {
	case url = <-stdout.found:
	case c := <-code:
		cancel()
		t.Fatalf("serve exited with %d before serving:\n%s%s", c, stdout, errs)
	}
	stop = func() int {
		cancel()
		c := <-code
		t.Logf("serve %v:\n%s%s", args, stdout, errs)
		return c
	}
	return url, errs.String(), stop
}

func fetch(t *testing.T, method, url string) (int, string) {
	t.Helper()
	return fetchWith(t, method, url)
}

// fetchWith is fetch with the given header name and value pairs; a "Host" pair
// sets the request's Host.
func fetchWith(t *testing.T, method, url string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
			continue
		}
		req.Header.Set(header[i], header[i+1])
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
	url, stderr, stop := startServe(t, db, "-addr", "127.0.0.1:0")
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Errorf("URL %q is not on 127.0.0.1", url)
	}
	if stderr != "" {
		t.Errorf("serve on 127.0.0.1 wrote to stderr: %s", stderr)
	}
	// A page that rebinds its name to 127.0.0.1 reads nothing and changes nothing.
	attacker := []string{"Host", "rebind.attacker.example:8080", "Origin", "http://rebind.attacker.example:8080"}
	if code, body := fetchWith(t, http.MethodGet, url+"api/jobs", attacker...); code != http.StatusForbidden || strings.Contains(body, "ada@example.com") {
		t.Errorf("jobs for a rebound name: status %d\n%s", code, body)
	}
	if code, body := fetchWith(t, http.MethodPost, url+"api/queues/mail/pause", attacker...); code != http.StatusForbidden {
		t.Errorf("pause for a rebound name: status %d\n%s", code, body)
	}
	code, body := fetch(t, http.MethodGet, url+"api/queues")
	if code != http.StatusOK || !strings.Contains(body, `"paused": false`) {
		t.Errorf("queues after a refused pause: status %d\n%s", code, body)
	}
	code, body = fetch(t, http.MethodGet, url)
	if code != http.StatusOK || !strings.Contains(body, `<a href="queues/mail">mail</a>`) || !strings.Contains(body, "actions enabled") {
		t.Errorf("overview: status %d\n%s", code, body)
	}
	// The application's history, which its runner stored in the file: serve runs no
	// jobs, and shows it.
	if !strings.Contains(body, `id="history-throughput"`) || strings.Contains(body, "No activity recorded") {
		t.Errorf("the overview shows no history:\n%s", body)
	}
	code, body = fetch(t, http.MethodGet, url+"api/history?queue=mail")
	if code != http.StatusOK || !strings.Contains(body, `"queue": "mail"`) || !strings.Contains(body, `"enqueued": 1,`) {
		t.Errorf("history: status %d\n%s", code, body)
	}
	code, body = fetch(t, http.MethodPost, url+"api/queues/mail/pause")
	if code != http.StatusOK {
		t.Errorf("pause: status %d\n%s", code, body)
	}
	if c := stop(); c != 0 {
		t.Errorf("serve stopped with exit code %d, want 0", c)
	}

	// The pause is in the file; -readonly refuses actions.
	url, _, stop = startServe(t, "-readonly", "-addr", "127.0.0.1:0", db)
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
		{args: []string{"serve", db, "-allow-host", "jobs.example.com:8080"}, code: 2, errs: "has a port"},
		{args: []string{"serve", db, "-allow-host", ""}, code: 2, errs: "empty host"},
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

// TestServeNonLoopback serves on every interface and on a LAN address: serve warns
// that the dashboard has no password and other machines reach it, and answers
// loopback Hosts, the machine's name and addresses, and no other name.
func TestServeNonLoopback(t *testing.T) {
	db := servedFile(t)
	hostname, _ := os.Hostname()
	var lan string // an address of this machine that other machines may reach
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			lan = n.IP.String()
			break
		}
	}
	type listen struct {
		addr  string   // -addr
		dial  string   // the address to connect to
		hosts []string // Host names it answers ("" for none)
	}
	cases := []listen{{"0.0.0.0:0", "127.0.0.1", []string{"127.0.0.1", "localhost", hostname, lan}}}
	if lan != "" {
		cases = append(cases, listen{net.JoinHostPort(lan, "0"), lan, []string{lan}})
	} else {
		t.Log("no non-loopback IPv4 address: the LAN case is skipped")
	}
	for _, tc := range cases {
		url, stderr, stop := startServe(t, db, "-readonly", "-addr", tc.addr)
		msg := strings.Join(strings.Fields(stderr), " ")
		for _, want := range []string{"warning", "asks for no password", "reachable from other machines", "read every job", "-allow-host"} {
			if !strings.Contains(msg, want) {
				t.Errorf("-addr %s: the warning does not say %q: %q", tc.addr, want, msg)
			}
		}
		port := strings.TrimSuffix(url[strings.LastIndex(url, ":")+1:], "/")
		base := "http://" + net.JoinHostPort(tc.dial, port) + "/"
		for _, h := range tc.hosts {
			if h == "" {
				continue
			}
			host := net.JoinHostPort(h, port)
			if code, body := fetchWith(t, http.MethodGet, base+"api/jobs", "Host", host); code != http.StatusOK || !strings.Contains(body, "ada@example.com") {
				t.Errorf("-addr %s, Host %s: status %d\n%s", tc.addr, host, code, body)
			}
		}
		code, body := fetchWith(t, http.MethodGet, base+"api/jobs",
			"Host", "rebind.attacker.example:"+port, "Origin", "http://rebind.attacker.example:"+port)
		if code != http.StatusForbidden || strings.Contains(body, "ada@example.com") {
			t.Errorf("-addr %s, a rebound name: status %d\n%s", tc.addr, code, body)
		}
		if c := stop(); c != 0 {
			t.Errorf("serve stopped with exit code %d, want 0", c)
		}
	}
}

// TestServeAllowHost checks that -allow-host adds a name, such as a proxy's, to
// those a loopback dashboard answers, and no other.
func TestServeAllowHost(t *testing.T) {
	db := servedFile(t)
	url, stderr, stop := startServe(t, db, "-addr", "127.0.0.1:0", "-allow-host", "jobs.example.com", "-allow-host", "*.internal.example")
	if stderr != "" {
		t.Errorf("serve on 127.0.0.1 wrote to stderr: %s", stderr)
	}
	for host, want := range map[string]int{
		"jobs.example.com":   http.StatusOK,
		"a.internal.example": http.StatusOK,
		"example.com":        http.StatusForbidden,
	} {
		if code, body := fetchWith(t, http.MethodGet, url+"api/jobs", "Host", host); code != want {
			t.Errorf("Host %s: status %d, want %d\n%s", host, code, want, body)
		}
	}
	if c := stop(); c != 0 {
		t.Errorf("serve stopped with exit code %d, want 0", c)
	}
}

// TestListenHosts checks which listen addresses serve warns about and which Host
// names it then answers, for addresses this machine may not have.
func TestListenHosts(t *testing.T) {
	hostname, _ := os.Hostname()
	for _, tc := range []struct {
		addr    string // as given to -addr
		ln      string // what the listener got
		exposed bool
		hosts   []string // all of them, or with every interface some of them
	}{
		{"127.0.0.1:8080", "127.0.0.1:8080", false, nil},
		{"127.0.0.2:8080", "127.0.0.2:8080", false, nil},
		{"[::1]:8080", "[::1]:8080", false, nil},
		{"localhost:8080", "127.0.0.1:8080", false, []string{"localhost"}},
		{"192.168.1.20:8080", "192.168.1.20:8080", true, []string{"192.168.1.20"}},
		{"[fd00::20]:8080", "[fd00::20]:8080", true, []string{"fd00::20"}},
		{"jobs.lan:8080", "192.168.1.20:8080", true, []string{"jobs.lan", "192.168.1.20"}},
		{"0.0.0.0:8080", "0.0.0.0:8080", true, []string{hostname}},
		{"[::]:8080", "[::]:8080", true, []string{hostname}},
		{":8080", "[::]:8080", true, []string{hostname}},
	} {
		ln, err := net.ResolveTCPAddr("tcp", tc.ln)
		if err != nil {
			t.Fatal(err)
		}
		hosts, exposed := listenHosts(tc.addr, ln)
		if exposed != tc.exposed {
			t.Errorf("listenHosts(%s, %s): exposed %v, want %v", tc.addr, tc.ln, exposed, tc.exposed)
		}
		every := ln.IP.IsUnspecified()
		if !every && !slices.Equal(hosts, tc.hosts) {
			t.Errorf("listenHosts(%s, %s): hosts %q, want %q", tc.addr, tc.ln, hosts, tc.hosts)
		}
		for _, h := range tc.hosts {
			if every && h != "" && !slices.Contains(hosts, h) {
				t.Errorf("listenHosts(%s, %s): hosts %q lack %q", tc.addr, tc.ln, hosts, h)
			}
		}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
				t.Errorf("listenHosts(%s, %s): hosts %q hold the loopback %s", tc.addr, tc.ln, hosts, h)
			}
		}
	}
}

// TestServeToken: with -token, serve requires it of scripts (bearer) and browsers
// (basic, user jobrun), takes new jobs, which the jobrun commands' -url sends, and
// still answers loopback Host names only; without it, the dashboard refuses to
// take jobs, and with -readonly it takes none.
func TestServeToken(t *testing.T) {
	db := servedFile(t)
	url, _, stop := startServe(t, db, "-addr", "127.0.0.1:0", "-token", testToken)
	bearer := []string{"Authorization", "Bearer " + testToken}
	basic := func(user, pass string) []string {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.SetBasicAuth(user, pass)
		return []string{"Authorization", r.Header.Get("Authorization")}
	}
	for _, tc := range []struct {
		name   string
		header []string
		want   int
	}{
		{"no token", nil, http.StatusUnauthorized},
		{"a wrong token", []string{"Authorization", "Bearer guess"}, http.StatusUnauthorized},
		{"the token", bearer, http.StatusOK},
		{"a browser", basic(serveUser, testToken), http.StatusOK},
		{"a browser, another user", basic("admin", testToken), http.StatusUnauthorized},
		{"a rebound name", append([]string{"Host", "rebind.attacker.example"}, bearer...), http.StatusForbidden},
	} {
		for _, target := range []string{"", "api/jobs"} {
			if code, body := fetchWith(t, http.MethodGet, url+target, tc.header...); code != tc.want {
				t.Errorf("%s: GET /%s: status %d, want %d\n%s", tc.name, target, code, tc.want, body)
			}
		}
	}
	out, _ := cli(t, 0, "enqueue", "-url", url, "-token", testToken, "email", `{"to": "bob@example.com"}`, "-queue", "mail")
	mustEqual(t, out, "Enqueued job 2 (email): it is ready and runs when an application runs queue mail.\n")
	out, _ = cli(t, 0, "list", "-url", url, "-token", testToken, "-queue", "mail")
	mustIDs(t, out, "2", "1")
	if c := stop(); c != 0 {
		t.Errorf("serve stopped with exit code %d, want 0", c)
	}

	// Without -token, and with -readonly, no enqueue.
	for _, args := range [][]string{{}, {"-readonly", "-token", testToken}} {
		url, _, stop := startServe(t, append([]string{db, "-addr", "127.0.0.1:0"}, args...)...)
		_, errs := cli(t, 1, "enqueue", "-url", url, "-token", testToken, "email")
		if len(args) == 0 {
			mustContain(t, errs, "jobrun enqueue: enqueue needs authentication, and this dashboard has none")
		} else {
			mustContain(t, errs, "jobrun enqueue: enqueue is disabled")
		}
		if c := stop(); c != 0 {
			t.Errorf("serve %v stopped with exit code %d, want 0", args, c)
		}
	}

	// JOBRUN_TOKEN is -token's default.
	t.Setenv(tokenEnv, testToken)
	url, _, stop = startServe(t, db, "-addr", "127.0.0.1:0")
	if code, _ := fetch(t, http.MethodGet, url+"api/jobs"); code != http.StatusUnauthorized {
		t.Errorf("serve with JOBRUN_TOKEN: status %d without the token, want 401", code)
	}
	out, _ = cli(t, 0, "stats", "-url", url)
	mustContain(t, out, "mail     0          2")
	if c := stop(); c != 0 {
		t.Errorf("serve stopped with exit code %d, want 0", c)
	}
}
