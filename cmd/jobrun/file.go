package main

// What the commands on a database file share: their flags and arguments, how they
// open the file, and how their errors read.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jobrun/jobrun"
)

// adminLockTimeout is how long a file command waits for a file another process
// holds: long enough for an application that is closing, short enough to answer at
// once about one that runs.
const adminLockTimeout = 250 * time.Millisecond

// fileCmd is a command on a database file being run: its flags, its usage and where
// it prints.
type fileCmd struct {
	fs             *flag.FlagSet
	synopsis, doc  string
	json           *bool    // -json; nil for a command without it
	url, token     *string  // -url and -token; nil for a command without them
	dsn, schema    *string  // -dsn and -schema: the jobs in PostgreSQL; nil for a command without them
	file           string   // the FILE argument, once parsed; "" with -url
	fileOnly       string   // for a command that refuses -url: what it does to the file
	args           []string // as given, to tell -json before the flags are parsed
	stdout, stderr io.Writer
}

// newFileCmd starts the flag set of a file command, with its -json, -url and
// -token flags.
func newFileCmd(name, synopsis, doc string, args []string, stdout, stderr io.Writer) *fileCmd {
	c := newFileCmdNoJSON(name, synopsis, doc, args, stdout, stderr)
	c.json = c.fs.Bool("json", false, `print one JSON document, for scripts, instead of text; errors as {"error": "..."} on stderr`)
	c.url = c.fs.String("url", "", "work on the running application whose dashboard is at `URL` instead of on FILE")
	c.token = c.tokenFlag("with -url, the dashboard's bearer `token`")
	c.pgFlags()
	return c
}

// tokenFlag defines -token, whose default is the environment variable
// JOBRUN_TOKEN (read by bearerToken, so that the usage does not print it).
func (c *fileCmd) tokenFlag(usage string) *string {
	return c.fs.String("token", "", usage+"; default: $"+tokenEnv)
}

// bearerToken is -token, or the environment variable JOBRUN_TOKEN.
func (c *fileCmd) bearerToken() string {
	if *c.token != "" {
		return *c.token
	}
	return os.Getenv(tokenEnv)
}

// newFileCmdNoJSON is newFileCmd for a command without -json, such as serve.
func newFileCmdNoJSON(name, synopsis, doc string, args []string, stdout, stderr io.Writer) *fileCmd {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// The flag package would print its errors there; usage prints them instead, as
	// text or JSON.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &fileCmd{fs: fs, synopsis: synopsis, doc: doc, args: args, stdout: stdout, stderr: stderr}
}

// parse parses the arguments: flags may come before, between or after the
// positional ones (after "--", everything is positional), and there must be one
// positional argument per name in names, except for trailing names ending in "?",
// which are optional. The first name is FILE's: with -url there is none, and the
// URL takes its place in what parse returns; otherwise parse sets c.file. With -h it
// prints the full usage, synopsis, doc and flags, on stdout and returns
// flag.ErrHelp; with bad arguments it reports them (see usage).
func (c *fileCmd) parse(names ...string) ([]string, error) {
	pos, err := c.parsePositional()
	if err != nil {
		return nil, err
	}
	switch {
	case c.remote() && c.onPG():
		return nil, c.usage(errors.New("-url and -dsn: give one, the application or its database"))
	case c.onPG() && c.fileOnly != "":
		return nil, c.usage(fmt.Errorf("-dsn: %s %s: it works on a bbolt file only", c.fs.Name(), c.fileOnly))
	case c.onPG():
		if len(pos) >= len(names) {
			return nil, c.usage(fmt.Errorf("unexpected argument %q: with -dsn the command works on the database, not on a FILE", pos[0]))
		}
		pos = append([]string{c.pgName()}, pos...) // for messages
	case c.remote() && c.fileOnly != "":
		return nil, c.refuseURL(c.fs.Name() + " " + c.fileOnly)
	case c.remote():
		if len(pos) >= len(names) {
			return nil, c.usage(fmt.Errorf("unexpected argument %q: with -url the command works on the application at URL, not on a FILE", pos[0]))
		}
		pos = append([]string{redactURL(*c.url)}, pos...) // for messages
	case c.url != nil && *c.token != "":
		return nil, c.usage(errors.New("-token goes with -url"))
	}
	switch {
	case len(pos) < len(names) && !strings.HasSuffix(names[len(pos)], "?"):
		return nil, c.usage(fmt.Errorf("missing %s", names[len(pos)]))
	case len(pos) > len(names):
		return nil, c.usage(fmt.Errorf("unexpected argument %q", pos[len(names)]))
	}
	if !c.remote() && !c.onPG() && len(pos) > 0 {
		c.file = pos[0]
	}
	return pos, nil
}

// parsePositional parses the flags and returns the positional arguments.
func (c *fileCmd) parsePositional() ([]string, error) {
	var pos []string
	args := c.args
	for {
		err := c.fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(c.stdout, "%s\n\n%s\nFlags:\n", c.synopsis, c.doc)
			c.fs.SetOutput(c.stdout)
			c.fs.PrintDefaults()
			c.fs.SetOutput(io.Discard)
			return nil, err
		}
		if err != nil {
			return nil, c.usage(err)
		}
		rest := c.fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	return pos, nil
}

// usage reports a usage error on stderr, the problem then the synopsis, pointing to
// the full usage rather than burying the problem under it; with -json, as
// {"error": "...", "usage": "..."}. It returns a *usageError (exit code 2).
func (c *fileCmd) usage(err error) error {
	if c.jsonMode() {
		printJSON(c.stderr, struct {
			Error string `json:"error"`
			Usage string `json:"usage"`
		}{err.Error(), c.synopsis})
	} else {
		fmt.Fprintf(c.stderr, "jobrun %s: %v\n%s\nRun \"jobrun help %s\" for details.\n", c.fs.Name(), err, c.synopsis, c.fs.Name())
	}
	return &usageError{err}
}

// jsonMode reports whether the command prints JSON: -json was parsed, or, while the
// flags are being parsed (a bad flag before -json stops the flag package), is among
// the arguments.
func (c *fileCmd) jsonMode() bool {
	if c.json == nil {
		return false
	}
	if *c.json {
		return true
	}
	on := false
	for _, a := range c.args {
		if a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "json" {
			continue
		}
		on = true
		if hasValue {
			on, _ = strconv.ParseBool(value)
		}
	}
	return on
}

// result is the error the command returns for err: with -json, one that exitCode
// prints as {"error": "..."}.
func (c *fileCmd) result(err error) error {
	if err != nil && c.jsonMode() {
		return &jsonError{err}
	}
	return err
}

// print writes v as one indented JSON document on stdout.
func (c *fileCmd) print(v any) error {
	return printJSON(c.stdout, v)
}

// id reads a job ID argument.
func (c *fileCmd) id(arg string) (jobrun.ID, error) {
	id, err := strconv.ParseUint(arg, 10, 64)
	if err != nil || id == 0 {
		return 0, c.usage(fmt.Errorf("job ID must be a positive number, got %q", arg))
	}
	return jobrun.ID(id), nil
}

// printJSON writes v as one indented JSON document.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// jsonError is an error to print as JSON on stderr (a command run with -json).
type jsonError struct{ err error }

func (e *jsonError) Error() string { return e.err.Error() }
func (e *jsonError) Unwrap() error { return e.err }

// worded is an error whose message is written for the command line as it is.
type worded struct {
	msg string
	err error // what it stands for, if anything
}

func (e *worded) Error() string { return e.msg }
func (e *worded) Unwrap() error { return e.err }

// errInUse is the error of a command on a file an application holds.
type errInUse struct{ path string }

func (e *errInUse) Error() string {
	return fmt.Sprintf(`%s is in use by a running application: a jobrun file can be open in one
process at a time. To see and manage its jobs while it runs, embed the dashboard
(github.com/jobrun/jobrun/dashboard) in the application and give this command
-url with the dashboard's URL instead of the file; or stop the application and
run this command again.`, e.path)
}

func (e *errInUse) Unwrap() error { return jobrun.ErrLocked }

// message words err for the command line, where "jobrun COMMAND: " comes before it.
// The library's errors read "operation: jobrun: what went wrong: detail", and the
// command already names the operation: for bad input, a state that does not allow
// the change, something missing or taken, the message is the detail alone; for
// other errors of the library (a damaged or incompatible file, say), what went wrong
// and the detail.
func message(err error) string {
	var w *worded
	var inUse *errInUse
	switch {
	case errors.As(err, &w):
		return w.Error()
	case errors.As(err, &inUse):
		return inUse.Error()
	}
	msg := err.Error()
	for _, s := range []error{jobrun.ErrInvalid, jobrun.ErrState, jobrun.ErrNotFound, jobrun.ErrDuplicate,
		jobrun.ErrCorrupt, jobrun.ErrSchema, jobrun.ErrLocked, jobrun.ErrReadOnly, jobrun.ErrClosed, jobrun.ErrUnknownKind} {
		if !errors.Is(err, s) {
			continue
		}
		i := strings.LastIndex(msg, s.Error())
		if i < 0 {
			break
		}
		rest := msg[i+len(s.Error()):]
		switch s {
		case jobrun.ErrInvalid, jobrun.ErrState, jobrun.ErrNotFound, jobrun.ErrDuplicate:
			if detail, ok := strings.CutPrefix(rest, ": "); ok {
				return detail
			}
		}
		return strings.TrimPrefix(s.Error(), "jobrun: ") + rest
	}
	return msg
}

// access is how a command opens its file.
type access int

const (
	// readAccess opens the file read-only (bbolt's shared lock; jobrun.WithReadOnly):
	// nothing is written, the file's bytes stay as they were.
	readAccess access = iota
	// manageAccess runs none of the runner's services (jobrun.WithServices(false)):
	// the command's own calls are the only writes. The tool knows nothing of the
	// application's retention, schedules or recovery limit, so applying its own
	// defaults would change what the application keeps.
	manageAccess
	// serviceAccess runs the runner's services with jobrun's defaults (recovery at
	// open, promotion, cron fires, retention), for serve -services. It runs no jobs.
	serviceAccess
)

// withFile opens the database file at path, which must exist, with the given access,
// calls fn with its runner, and closes it. A damaged or incompatible file's error
// names the file.
func withFile(path string, acc access, fn func(r *jobrun.Runner) error) (err error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: no such file", path)
		}
		return err
	}
	defer func() {
		if errors.Is(err, jobrun.ErrCorrupt) || errors.Is(err, jobrun.ErrSchema) {
			err = &worded{path + ": " + message(err), err}
		}
	}()
	opts := []jobrun.Option{jobrun.WithStrictKinds(false), jobrun.WithLockTimeout(adminLockTimeout)}
	switch acc {
	case readAccess:
		opts = append(opts, jobrun.WithReadOnly())
	case manageAccess:
		opts = append(opts, jobrun.WithServices(false))
	}
	r, err := jobrun.Open(path, opts...)
	if errors.Is(err, jobrun.ErrLocked) {
		return &errInUse{path}
	}
	if err != nil {
		return err
	}
	defer func() {
		if cerr := r.Close(); err == nil {
			err = cerr
		}
	}()
	return fn(r)
}

// notFound words an error about a job ID that does not exist for the command line.
func notFound(err error, id jobrun.ID, path string) error {
	if errors.Is(err, jobrun.ErrNotFound) {
		return &worded{fmt.Sprintf("%s holds no job %d", path, id), err}
	}
	return err
}

// knownQueue returns an error unless queue is one of the file's (or the
// dashboard's) at path: it has held jobs or it is paused (Runner.Queues lists
// both), or it is the default queue, which every runner runs. A name that is none
// of these is most likely a typo, and pausing it or retrying its jobs would do
// nothing while looking done.
func knownQueue(ctx context.Context, s store, path, queue string) error {
	if queue == jobrun.DefaultQueue {
		return nil
	}
	queues, err := s.Queues(ctx)
	if err != nil {
		return err
	}
	names := []string{jobrun.DefaultQueue}
	for _, q := range queues {
		if q.Name == queue {
			return nil
		}
		if q.Name != jobrun.DefaultQueue {
			names = append(names, q.Name)
		}
	}
	slices.Sort(names)
	return &worded{fmt.Sprintf("%s has no queue %q: no job was ever in it and it is not paused; its queues are %s",
		path, queue, strings.Join(names, ", ")), nil}
}
