package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/dashboard"
)

const (
	serveSynopsis = "usage: jobrun serve FILE [-addr host:port] [-allow-host name]... [-token T] [-readonly | -services]"
	serveDoc      = `Serve opens the jobrun database FILE and serves its dashboard: the queues with
their counts and limits, the jobs by queue and state, every field of a job, the
cron schedules, and the charts of each queue's throughput, size and waits over
the last hour, day or week, from the history the application's runner keeps in
FILE. Actions (retry, cancel, delete, promote, pause and resume a queue,
run a schedule now) are enabled unless -readonly.

It is for looking into a file, and acting on it, while no application holds it. It
runs no jobs, and none of the runner's services either: no crash recovery, no
promotion of due jobs, no cron fires, no retention. It writes to FILE only the
actions taken on the dashboard; with -readonly it opens FILE read-only and writes
nothing. Retried and promoted jobs run when an application runs their queue.

With -services it runs the services as a runner with jobrun's default options
would, still without running any job: at open, jobs a crash left running are ready
again (failed after 5 such recoveries); due delayed and retrying jobs become ready;
due cron schedules enqueue their jobs; finished jobs past the default retention
(done a day, failed and canceled a week) are deleted. These are jobrun's defaults,
not the application's options: use -services only for a file whose application
uses the defaults too.

A jobrun file can be open in one process at a time (several read-only opens aside),
so serve fails on the file of a running application, and the application cannot
start while serve runs: mount the dashboard in that application instead (package
github.com/jobrun/jobrun/dashboard).

Without -token the dashboard asks for no password: serve it on a loopback address
(the default) unless something in front of it authenticates. On an address that
other machines can reach (0.0.0.0, ::, a LAN address, a host name), serve warns
that anyone who reaches it reads every job, and changes them unless -readonly. It
stops on Ctrl-C.

With -token T, or the environment variable JOBRUN_TOKEN, every request needs the
token: scripts and the jobrun commands' -url send it as "Authorization: Bearer T"
(-token T, JOBRUN_TOKEN), and browsers, which ask, as the password of user jobrun.
With the token, and unless -readonly, the dashboard also takes new jobs and events
from other processes (jobrun enqueue -url, jobrun send -url, package
github.com/jobrun/jobrun/client): they need authentication, so without -token
they are refused. Over plain HTTP the token crosses the network in clear: put
HTTPS in front beyond the local machine.

Against DNS rebinding (a web page that makes its own name resolve to this machine),
the dashboard answers only the requests whose Host names this machine: localhost,
127.0.0.1 and [::1]; on another -addr, also its host (name or address); on every
interface (0.0.0.0, :: or no host), also this machine's host name and its
interfaces' addresses. Other Hosts get 403 Forbidden: add them with -allow-host,
such as the public name of a proxy in front that forwards its own Host. With
-token too: the token is the authentication, the Host rule stays.

Exit status: 0 after Ctrl-C, 1 if the file cannot be opened (missing, in use) or
the address cannot be listened on, 2 for bad arguments.

FILE must exist; it is not created. Without -services, jobs found running in the
file (their application stopped without a graceful shutdown) stay running until
the application's next start.
`
	defaultServeAddr = "127.0.0.1:8080"

	// serveUser is the user of basic authentication with -token, for browsers.
	serveUser = "jobrun"

	// serveShutdownTimeout bounds how long open requests get when serve stops.
	serveShutdownTimeout = 5 * time.Second
)

// runServe is the serve command.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFileCmdNoJSON("serve", serveSynopsis, serveDoc, args, stdout, stderr)
	addr := c.fs.String("addr", defaultServeAddr, "`host:port` to listen on; port 0 picks a free port")
	readonly := c.fs.Bool("readonly", false, "disable the actions and open FILE read-only: only show the jobs")
	services := c.fs.Bool("services", false, "run the runner's services with jobrun's defaults: crash recovery, promotion, cron fires, retention (no jobs)")
	c.token = c.tokenFlag("require this bearer `token` (browsers: user jobrun, the token as password), and take new jobs and events")
	var allow []string
	c.fs.Func("allow-host", "also answer requests for Host `name` (any port; *.example.com for the names under one); repeatable",
		func(h string) error {
			if err := validHost(h); err != nil {
				return err
			}
			allow = append(allow, h)
			return nil
		})
	pos, err := c.parse("FILE")
	if err != nil {
		return err
	}
	acc := manageAccess
	switch {
	case *readonly && *services:
		return c.usage(errors.New("-services writes to FILE: it does not go with -readonly"))
	case *readonly:
		acc = readAccess
	case *services:
		acc = serviceAccess
	}
	// withFile refuses a missing file (Open would create an empty one, hiding a
	// typo) and, for a file an application holds, says to embed the dashboard.
	token := c.bearerToken()
	return withFile(pos[0], acc, func(r *jobrun.Runner) error {
		return serve(ctx, r, pos[0], *addr, !*readonly, token, allow, stdout, stderr)
	})
}

// serve serves the dashboard of r, opened from file, on addr until ctx ends; it also
// answers the Host names in allow. With a token it requires it, and takes new jobs
// and events if actions are enabled.
func serve(ctx context.Context, r *jobrun.Runner, file, addr string, actions bool, token string, allow []string, stdout, stderr io.Writer) error {
	ds, err := startDashboard(r, addr, actions, token, allow)
	if err != nil {
		return err
	}
	mode := map[bool]string{true: "actions enabled", false: "read-only"}[actions]
	if token != "" {
		mode = map[bool]string{true: "actions and enqueue enabled", false: "read-only"}[actions] + ", token required"
	}
	if ds.exposed {
		hosts := "loopback names only"
		if len(ds.hosts) > 0 {
			hosts = strings.Join(ds.hosts, ", ") + " and loopback names"
		}
		if token != "" {
			fmt.Fprintf(stderr, "jobrun serve: warning: the dashboard is reachable from other machines on %s over plain HTTP, "+
				"where the token crosses the network in clear: put HTTPS in front; it answers requests for %s (-allow-host adds more)\n",
				ds.addr, hosts)
		} else {
			what := map[bool]string{true: "read and change every job", false: "read every job"}[actions]
			fmt.Fprintf(stderr, "jobrun serve: warning: the dashboard asks for no password and is reachable from other machines "+
				"on %s: anyone who reaches it can %s; it answers requests for %s (-allow-host adds more)\n", ds.addr, what, hosts)
		}
	}
	fmt.Fprintf(stdout, "serving the dashboard of %s at %s (%s); press Ctrl-C to stop\n", file, ds.url, mode)
	select {
	case err := <-ds.served:
		return err
	case <-ctx.Done():
		return ds.stop()
	}
}

// dashServer is a dashboard that startDashboard serves in the background.
type dashServer struct {
	url     string       // the URL to open
	addr    net.Addr     // the address it listens on
	exposed bool         // addr is reachable from other machines
	hosts   []string     // the Host names it answers besides loopback ones
	served  <-chan error // receives the server's error if it fails
	stop    func() error // shuts the server down, giving open requests serveShutdownTimeout
}

// startDashboard serves the dashboard of r on addr in the background. The dashboard
// answers loopback Host names, those that listenHosts gives for addr, and allow,
// whose names must be valid (validHost), with a token or without. With a token
// ("" for none) it requires it, as a bearer token or as the password of basic
// authentication of user jobrun (for browsers), and with actions it takes new jobs and
// events (dashboard.WithEnqueue, which refuses them without a token).
func startDashboard(r *jobrun.Runner, addr string, actions bool, token string, allow []string) (*dashServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	hosts, exposed := listenHosts(addr, ln.Addr())
	hosts = append(hosts, allow...)
	// With authentication the dashboard would answer any Host unless given the
	// hosts, even none: the loopback rule holds with a token too.
	opts := []dashboard.Option{dashboard.WithAllowedHosts(hosts...)}
	if actions {
		// Without a token the dashboard refuses to enqueue, and says to give one.
		opts = append(opts, dashboard.WithActions(), dashboard.WithEnqueue())
	}
	if token != "" {
		opts = append(opts, dashboard.WithBearerToken(token), dashboard.WithBasicAuth(serveUser, token))
	}
	srv := &http.Server{Handler: dashboard.New(r, opts...), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var once sync.Once
	var stopErr error
	stop := func() error {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), serveShutdownTimeout)
			defer cancel()
			stopErr = srv.Shutdown(ctx)
			<-errc // http.ErrServerClosed
		})
		return stopErr
	}
	return &dashServer{url: dashboardURL(ln.Addr()), addr: ln.Addr(), exposed: exposed, hosts: hosts, served: errc, stop: stop}, nil
}

// listenHosts returns the Host names, besides loopback ones, by which a dashboard
// listening on ln, from the -addr value addr, is reached, and whether ln is
// reachable from other machines (it is not loopback). The names are the host of
// addr if it is a name, the address of ln unless it is loopback, and for an
// unspecified address (0.0.0.0, ::, no host: every interface) the machine's host
// name and the addresses of its interfaces. A web page cannot take any of them over
// by DNS rebinding: they are addresses, or names this machine's owner chose.
func listenHosts(addr string, ln net.Addr) (hosts []string, exposed bool) {
	seen := map[string]bool{}
	add := func(h string) {
		if h != "" && !seen[h] && validHost(h) == nil {
			seen[h] = true
			hosts = append(hosts, h)
		}
	}
	if host, _, err := net.SplitHostPort(addr); err == nil && net.ParseIP(host) == nil {
		add(host)
	}
	tcp, ok := ln.(*net.TCPAddr)
	if !ok {
		return hosts, true
	}
	switch {
	case tcp.IP.IsLoopback():
		return hosts, false
	case tcp.IP.IsUnspecified():
		if name, err := os.Hostname(); err == nil {
			add(name)
		}
		addrs, _ := net.InterfaceAddrs() // without them, the host name and loopback
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() {
				add(n.IP.String())
			}
		}
	default:
		add(tcp.IP.String())
	}
	return hosts, true
}

// validHost reports whether dashboard.WithAllowedHosts accepts h, which it
// panics on otherwise.
func validHost(h string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	dashboard.WithAllowedHosts(h)
	return nil
}

// dashboardURL is the address to open in a browser for a listener on addr.
func dashboardURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String() + "/"
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}
