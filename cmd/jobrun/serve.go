package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/dashboard"
)

const (
	serveSynopsis = "usage: jobrun serve FILE [-addr host:port] [-readonly]"
	serveDoc      = `Serve opens the jobrun database FILE and serves its dashboard: the queues with
their counts and limits, the jobs by queue and state, every field of a job, the
cron schedules. Actions (retry, cancel, delete, promote, pause and resume a queue,
run a schedule now) are enabled unless -readonly.

It runs no jobs: it is for looking into a file, and acting on it, while no
application holds it; retried and promoted jobs run when an application runs their
queue. A jobrun file can be open in one process at a time, so serve fails on the
file of a running application: mount the dashboard in that application instead
(package github.com/jobrun/jobrun/dashboard).

The dashboard asks for no password: serve it on a loopback address (the default)
unless something in front of it authenticates. It stops on Ctrl-C.

Exit status: 0 after Ctrl-C, 1 if the file cannot be opened (missing, in use) or
the address cannot be listened on, 2 for bad arguments.

FILE must exist; it is not created. Jobs found running in the file (its application
stopped without a graceful shutdown) are ready again after serve opens it, as at
the application's next start.
`
	defaultServeAddr = "127.0.0.1:8080"

	// serveShutdownTimeout bounds how long open requests get when serve stops.
	serveShutdownTimeout = 5 * time.Second
)

// runServe is the serve command.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addr := fs.String("addr", defaultServeAddr, "`host:port` to listen on; port 0 picks a free port")
	readonly := fs.Bool("readonly", false, "disable the actions: only show the jobs")
	pos, err := parseArgs(fs, serveSynopsis, serveDoc, args, stdout, stderr, "FILE")
	if err != nil {
		return err
	}
	// withFile refuses a missing file (Open would create an empty one, hiding a
	// typo) and, for a file an application holds, says to embed the dashboard.
	return withFile(pos[0], func(r *jobrun.Runner) error {
		return serve(ctx, r, pos[0], *addr, !*readonly, stdout, stderr)
	})
}

// serve serves the dashboard of r, opened from file, on addr until ctx ends.
func serve(ctx context.Context, r *jobrun.Runner, file, addr string, actions bool, stdout, stderr io.Writer) error {
	url, served, stop, err := startDashboard(r, addr, actions)
	if err != nil {
		return err
	}
	mode := map[bool]string{true: "actions enabled", false: "read-only"}[actions]
	if !strings.HasPrefix(url, "http://127.") && !strings.HasPrefix(url, "http://[::1]") {
		fmt.Fprintf(stderr, "jobrun serve: warning: %s is reachable from other machines, and the dashboard asks for no password\n", addr)
	}
	fmt.Fprintf(stdout, "serving the dashboard of %s at %s (%s); press Ctrl-C to stop\n", file, url, mode)
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
		return stop()
	}
}

// startDashboard serves the dashboard of r on addr in the background. It returns the
// URL to open, a channel that receives the server's error if it fails, and stop,
// which shuts the server down, giving open requests serveShutdownTimeout.
func startDashboard(r *jobrun.Runner, addr string, actions bool) (url string, served <-chan error, stop func() error, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, nil, err
	}
	var opts []dashboard.Option
	if actions {
		opts = append(opts, dashboard.WithActions())
	}
	srv := &http.Server{Handler: dashboard.New(r, opts...), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var once sync.Once
	stop = func() error {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), serveShutdownTimeout)
			defer cancel()
			err = srv.Shutdown(ctx)
			<-errc // http.ErrServerClosed
		})
		return err
	}
	return dashboardURL(ln.Addr()), errc, stop, nil
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
