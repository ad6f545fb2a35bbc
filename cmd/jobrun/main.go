// Command jobrun is the command-line companion of the jobrun package.
//
// Usage:
//
//	jobrun <command> [flags]
//
// The commands are:
//
//	demo        enqueue a few hundred simulated jobs and watch them run
//	bench       measure jobrun and raw bbolt on the standard workloads
//	serve       serve the dashboard of a database file on 127.0.0.1
//	version     print the version of jobrun and of Go
//	help        show the usage of jobrun or of a command
//
// The commands on a database file that no application has open, or with -url on
// a running application, are:
//
//	stats       count the jobs by queue and state
//	list        list jobs, filtered and paged
//	show        show everything stored about one job
//	enqueue     enqueue a job of any kind, with its args and options
//	events      list the events sent, or show one with its runs
//	send        send an event, starting the runs of its functions
//	retry       run a finished job, or every failed job, again
//	cancel      cancel a job
//	delete      delete a job
//	promote     run a scheduled or retrying job now
//	clean       delete finished jobs, by queue, state and age
//	schedules   list the cron schedules, or run one now
//	unschedule  remove a cron schedule
//	pause       pause a queue
//	resume      resume a paused queue
//	check       check the counters against the jobs, or repair them
//	backup      write a consistent copy of the file
//	compact     rewrite the file without its free pages
//	salvage     copy every readable job of a damaged file into a new file
//
// The commands that only read (stats, list, show, events, schedules, check, backup,
// salvage and serve -readonly) open the file read-only: its bytes stay as they were.
// Those that change it (enqueue, send, retry, cancel, delete, promote, clean,
// schedules -run, unschedule, pause, resume, check -repair, compact and serve)
// write what they are asked and nothing else: they run none of the runner's
// services, such as retention, cron fires, the promotion of due jobs and the
// recovery of jobs a crash left running, which belong to the application and its
// options; serve runs them with jobrun's defaults only with -services. None of them
// runs jobs.
//
// A file can be open in one process at a time. With -url URL instead of the file,
// the file commands work on a running application through the JSON API of its
// dashboard (package github.com/jobrun/jobrun/dashboard, mounted at URL), with the
// same output; -token, or the environment variable JOBRUN_TOKEN, is its bearer
// token (jobrun serve -token pairs with it). compact, salvage and check -repair,
// which need the file itself, refuse -url.
//
// With -json a command prints one JSON document; a job is jobrun.Info as its JSON
// tags put it and an event jobrun.EventInfo, the shapes the dashboard's API prints
// too. Its errors are then {"error": "..."} on stderr.
//
// The exit status is 0 on success, 1 when the command failed, 2 for bad arguments and
// 130 when Ctrl-C interrupted the demo.
//
// Run "jobrun help <command>" for a command's flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand. run parses its own flags (see parseFlags), so that each
// command owns its FlagSet and tests can call it in-process with their own writers.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands lists the subcommands in the order the usage shows them.
var commands = []command{
	{name: "demo", summary: "enqueue a few hundred simulated jobs and watch them run", run: runDemo},
	{name: "bench", summary: "measure jobrun and raw bbolt on the standard workloads", run: runBench},
	{name: "serve", summary: "serve the dashboard of a database file on 127.0.0.1", run: runServe},
	{name: "version", summary: "print the version of jobrun and of Go", run: runVersion},
	// The file commands (admin.go, enqueue.go, events.go, maintain.go) work on a
	// file no application holds, or with -url on a running application (remote.go).
	{name: "stats", summary: "count the jobs by queue and state", run: runStats},
	{name: "list", summary: "list jobs, filtered and paged", run: runList},
	{name: "show", summary: "show everything stored about one job", run: runShow},
	{name: "enqueue", summary: "enqueue a job of any kind, with its args and options", run: runEnqueue},
	{name: "events", summary: "list the events sent, or show one with its runs", run: runEvents},
	{name: "send", summary: "send an event, starting the runs of its functions", run: runSend},
	{name: "retry", summary: "run a finished job, or every failed job, again", run: runRetry},
	{name: "cancel", summary: "cancel a job", run: runCancel},
	{name: "delete", summary: "delete a job", run: runDelete},
	{name: "promote", summary: "run a scheduled or retrying job now", run: runPromote},
	{name: "clean", summary: "delete finished jobs, by queue, state and age", run: runClean},
	{name: "schedules", summary: "list the cron schedules, or run one now", run: runSchedules},
	{name: "unschedule", summary: "remove a cron schedule", run: runUnschedule},
	{name: "pause", summary: "pause a queue", run: runPause},
	{name: "resume", summary: "resume a paused queue", run: runResume},
	{name: "check", summary: "check the counters against the jobs, or repair them", run: runCheck},
	{name: "backup", summary: "write a consistent copy of the file", run: runBackup},
	{name: "compact", summary: "rewrite the file without its free pages", run: runCompact},
	{name: "salvage", summary: "copy every readable job of a damaged file into a new file", run: runSalvage},
}

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		// The first signal starts a graceful shutdown; restoring the default handling
		// then lets a second Ctrl-C kill the process for a user who will not wait.
		signal.Stop(sigs)
		s, ok := sig.(syscall.Signal)
		if !ok {
			s = syscall.SIGINT
		}
		cancel(&signalError{s})
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	signal.Stop(sigs)
	os.Exit(code)
}

// signalError is the cause of main's context when a signal ended it.
type signalError struct{ sig syscall.Signal }

func (e *signalError) Error() string { return e.sig.String() + " signal received" }

// interruptError is returned by a command that a signal stopped before it was done
// (the demo after Ctrl-C, once it has stopped gracefully and said so): the process
// exits with 128 plus the signal's number, 130 for Ctrl-C, as shells report a
// command a signal ended.
type interruptError struct{ sig syscall.Signal }

func (e *interruptError) Error() string { return "interrupted by " + e.sig.String() }

// interrupted returns the interruptError for ctx, which has ended: its signal, from
// main's cause, or SIGINT for a context canceled otherwise (tests).
func interrupted(ctx context.Context) error {
	var se *signalError
	if errors.As(context.Cause(ctx), &se) {
		return &interruptError{se.sig}
	}
	return &interruptError{syscall.SIGINT}
}

// run dispatches args to a subcommand and returns the process exit code: 0 on
// success or when help was asked for, 1 when the command failed, 2 for a usage error,
// 130 when Ctrl-C interrupted it (128 plus the signal's number).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stderr)
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		return help(ctx, rest, stdout, stderr)
	}
	cmd := lookup(name)
	if cmd == nil {
		fmt.Fprintf(stderr, "jobrun: unknown command %q\n\n", name)
		printUsage(stderr)
		return 2
	}
	return exitCode(cmd.name, cmd.run(ctx, rest, stdout, stderr), stderr)
}

// help prints the usage of jobrun, or of the command named in args.
func help(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	switch len(args) {
	case 0:
		printUsage(stdout)
		return 0
	case 1:
		if cmd := lookup(args[0]); cmd != nil {
			// A command prints its usage, flags included, when asked with -h.
			return exitCode(cmd.name, cmd.run(ctx, []string{"-h"}, stdout, stderr), stderr)
		}
		fmt.Fprintf(stderr, "jobrun help: unknown command %q\n\n", args[0])
	default:
		fmt.Fprintf(stderr, "jobrun help: too many arguments\n\n")
	}
	printUsage(stderr)
	return 2
}

func lookup(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

func printUsage(w io.Writer) {
	width := len("help")
	for _, c := range commands {
		width = max(width, len(c.name))
	}
	width += 2
	fmt.Fprint(w, "jobrun is the command-line companion of the jobrun job runner.\n\n")
	fmt.Fprint(w, "Usage:\n\n\tjobrun <command> [flags]\n\nThe commands are:\n\n")
	for _, c := range commands {
		if !fileCommands[c.name] {
			fmt.Fprintf(w, "\t%-*s%s\n", width, c.name, c.summary)
		}
	}
	fmt.Fprintf(w, "\t%-*s%s\n", width, "help", "show the usage of jobrun or of a command")
	fmt.Fprint(w, "\nThe commands on a database file that no application has open, with -url URL\n"+
		"on a running application through its dashboard, or with -dsn DSN on the jobs\n"+
		"of a PostgreSQL database, are:\n\n")
	for _, c := range commands {
		if fileCommands[c.name] {
			fmt.Fprintf(w, "\t%-*s%s\n", width, c.name, c.summary)
		}
	}
	fmt.Fprint(w, "\nRun \"jobrun help <command>\" for a command's flags.\n")
}

// usageError reports bad command-line arguments. The message and the command's usage
// have already been printed when it is returned; it only selects exit code 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// exitCode reports err, if it needs reporting, and returns the exit code it calls for.
func exitCode(name string, err error, stderr io.Writer) int {
	var ue *usageError
	var je *jsonError
	var ie *interruptError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		return 2
	case errors.As(err, &ie):
		return 128 + int(ie.sig)
	case errors.As(err, &je):
		printJSON(stderr, map[string]string{"error": message(err)})
		return 1
	}
	fmt.Fprintf(stderr, "jobrun %s: %s\n", name, message(err))
	return 1
}

// parseFlags parses a command's flags and refuses positional arguments. With -h it
// prints the full usage, synopsis, doc and flags, on stdout, since the user asked for
// it, and returns flag.ErrHelp. With bad arguments it prints the problem and the
// synopsis on stderr, pointing to the full usage rather than burying the problem
// under it, and returns a *usageError.
func parseFlags(fs *flag.FlagSet, synopsis, doc string, args []string, stdout, stderr io.Writer) error {
	// The flag package prints its own error message to the output.
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(stdout, "%s\n\n%s\nFlags:\n", synopsis, doc)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return err
	case err == nil && fs.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
		fmt.Fprintf(stderr, "jobrun %s: %v\n", fs.Name(), err)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s\nRun \"jobrun help %s\" for details.\n", synopsis, fs.Name())
		return &usageError{err}
	}
	return nil
}
