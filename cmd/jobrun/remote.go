package main

// With -url, the commands on a database file work on a running application
// instead, through the JSON API of its dashboard (package client): the same
// commands, the same output, on a store that is a client rather than a runner.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/client"
	"github.com/jobrun/jobrun/internal/wire"
)

// tokenEnv is the environment variable that gives -token its default.
const tokenEnv = "JOBRUN_TOKEN"

// urlDoc is the paragraph on -url of the usage of every command that takes it.
const urlDoc = `With -url URL instead of FILE, the command works on a running application
through the JSON API of its dashboard (github.com/jobrun/jobrun/dashboard) at URL,
where the application mounts it ("http://127.0.0.1:8080/",
"https://app.internal/jobs/"), and prints what it prints for a file. -token T, or
the environment variable JOBRUN_TOKEN (better: a command line is visible to the
machine's other users), is the dashboard's bearer token (dashboard.WithBearerToken,
jobrun serve -token); for basic authentication put user and password in the URL.
The commands that change jobs need the dashboard's actions (dashboard.WithActions),
enqueue and send its enqueue (dashboard.WithEnqueue).

With -dsn DSN (or the environment variable JOBRUN_DSN), the command works on the
jobs of a PostgreSQL database (package pg), in the schema -schema (jobrun), while
the applications that share it run. A command that only reads creates and
changes nothing there; one that writes creates the tables if they are missing.
`

// store is what a command on a database file works on: a runner on the file, or,
// with -url, a client of a running application's dashboard. *jobrun.Runner and
// *client.Client have its exported methods alike.
type store interface {
	Queues(ctx context.Context) ([]jobrun.QueueInfo, error)
	List(ctx context.Context, f jobrun.Filter) (*jobrun.Page, error)
	Get(ctx context.Context, id jobrun.ID) (*jobrun.Info, error)
	Events(ctx context.Context, f jobrun.EventFilter) (*jobrun.EventPage, error)
	GetEvent(ctx context.Context, seq uint64) (*jobrun.EventInfo, error)
	Send(ctx context.Context, ev jobrun.Event) (*jobrun.EventInfo, error)
	Retry(ctx context.Context, id jobrun.ID) error
	Cancel(ctx context.Context, id jobrun.ID) error
	Promote(ctx context.Context, id jobrun.ID) error
	Delete(ctx context.Context, id jobrun.ID) error
	RetryFailed(ctx context.Context, queue string) (int, error)
	Clean(ctx context.Context, queue string, state jobrun.State, before time.Time) (int, error)
	Schedules(ctx context.Context) ([]jobrun.ScheduleInfo, error)
	TriggerSchedule(ctx context.Context, name string) (jobrun.ID, error)
	Unschedule(ctx context.Context, name string) error
	PauseSchedule(ctx context.Context, name string) error
	ResumeSchedule(ctx context.Context, name string) error
	Pause(ctx context.Context, queue string) error
	Resume(ctx context.Context, queue string) error
	Backup(ctx context.Context, w io.Writer) (int64, error)

	// enqueue is Enqueue with the client's options, which the runner's store
	// turns into jobrun's as the dashboard does.
	enqueue(ctx context.Context, args jobrun.Args, opts []client.EnqueueOption) (jobrun.ID, error)
	// checkCounts is Runner.CheckCounts; a client cannot repair.
	checkCounts(ctx context.Context, repair bool) ([]jobrun.CountMismatch, error)
}

// fileStore is the store of a runner on a file.
type fileStore struct{ *jobrun.Runner }

func (s fileStore) enqueue(ctx context.Context, args jobrun.Args, opts []client.EnqueueOption) (jobrun.ID, error) {
	var o wire.Options
	for _, opt := range opts {
		opt(&o)
	}
	jopts, err := o.EnqueueOptions()
	if err != nil {
		return 0, err
	}
	return s.Enqueue(ctx, args, jopts...)
}

func (s fileStore) checkCounts(ctx context.Context, repair bool) ([]jobrun.CountMismatch, error) {
	return s.CheckCounts(ctx, repair)
}

// remoteStore is the store of a client of a dashboard.
type remoteStore struct{ *client.Client }

func (s remoteStore) enqueue(ctx context.Context, args jobrun.Args, opts []client.EnqueueOption) (jobrun.ID, error) {
	return s.Enqueue(ctx, args, opts...)
}

func (s remoteStore) checkCounts(ctx context.Context, repair bool) ([]jobrun.CountMismatch, error) {
	if repair {
		return nil, errors.New("a dashboard does not repair counters")
	}
	return s.CheckCounts(ctx)
}

// remote reports whether the command works on a dashboard (-url).
func (c *fileCmd) remote() bool { return c.url != nil && *c.url != "" }

// open calls fn with the store the command works on: with -url a client of the
// dashboard at the URL, else a runner on the file c.file opened with acc (see
// withFile).
func (c *fileCmd) open(acc access, fn func(s store) error) error {
	if c.onPG() {
		return c.withPG(acc, func(r *jobrun.Runner) error { return fn(fileStore{r}) })
	}
	if !c.remote() {
		return withFile(c.file, acc, func(r *jobrun.Runner) error { return fn(fileStore{r}) })
	}
	var opts []client.Option
	if token := c.bearerToken(); token != "" {
		opts = append(opts, client.WithBearerToken(token))
	}
	cl, err := client.New(*c.url, opts...)
	if err != nil {
		return &worded{fmt.Sprintf("-url %s: %v", redactURL(*c.url), err), err}
	}
	return remoteError(redactURL(*c.url), fn(remoteStore{cl}))
}

// redactURL is the URL s as the commands print it: without the password of basic
// authentication, which is not to be printed any more than -token.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	// Not a URL: hide whatever stands before an "@" in what would be its host.
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		scheme, rest = "", s
	}
	host := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		host = rest[:i]
	}
	i := strings.LastIndex(host, "@")
	if i < 0 {
		return s
	}
	if ok {
		scheme += "://"
	}
	return scheme + "xxxxx" + rest[i:]
}

// remoteError words the errors of the dashboard at u for the command line: its
// refusal of the credentials, the connection that failed.
func remoteError(u string, err error) error {
	var ce *client.Error
	var ue *url.Error
	switch {
	case errors.As(err, &ce) && ce.StatusCode == http.StatusUnauthorized:
		return &worded{fmt.Sprintf("%s: %s: give the dashboard's token with -token or %s", u, ce.Message, tokenEnv), err}
	case errors.As(err, &ue) && !errors.Is(err, context.Canceled):
		return &worded{fmt.Sprintf("%s: %v", u, ue.Err), err}
	}
	return err
}

// refusesURL makes c a command that works on a file itself and refuses -url: what
// says what it does, such as "rewrites the file".
func (c *fileCmd) refusesURL(what string) {
	c.fileOnly = what
	c.fs.Lookup("url").Usage = "refused: " + c.fs.Name() + " " + what + ", which takes FILE itself"
	c.fs.Lookup("token").Usage = "refused, as -url is"
}

// refuseURL is the usage error of -url for a command, or a use of it, that works on
// a file itself: what says what, such as "compact rewrites the file".
func (c *fileCmd) refuseURL(what string) error {
	return c.usage(fmt.Errorf("-url: %s: it works on a file only, with its application stopped", what))
}
