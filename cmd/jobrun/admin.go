package main

// The admin commands inspect and manage the jobs of a database file that no
// application holds: stats, list, show, retry, cancel, delete, schedules, pause and
// resume. Each opens the file, does one thing and closes it.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jobrun/jobrun"
)

// adminLockTimeout is how long an admin command waits for a file another process
// holds: long enough for an application that is closing, short enough to answer at
// once about one that runs.
const adminLockTimeout = 250 * time.Millisecond

// adminFileDoc is the paragraph every admin command's usage ends with.
const adminFileDoc = `FILE must exist; it is not created. The command needs the file to itself: while
an application has it open, the command fails and says so. Jobs found running in
the file (its application stopped without a graceful shutdown) are ready again
after the command, as at the application's next start.
`

const (
	statsSynopsis = "usage: jobrun stats FILE [-json]"
	statsDoc      = `Stats prints the number of jobs of each queue of FILE in each state, with a
total, and whether the queue is paused. The counts are kept with every change, so
this is quick on any file.

` + adminFileDoc

	listSynopsis = "usage: jobrun list FILE [-queue q] [-state s] [-kind k] [-tag t] [-limit n] [-oldest] [-cursor c] [-json]"
	listDoc      = `List prints one page of the jobs of FILE that match the filters, newest first,
with the command line of the next page if there is one. With -json it prints the
page as {"jobs": [...], "next": "cursor"}, without the jobs' error history,
progress, result and log (see show).

` + adminFileDoc

	showSynopsis = "usage: jobrun show FILE ID [-json]"
	showDoc      = `Show prints everything stored about job ID: its state, attempts, times, args,
progress, result, error history and log.

` + adminFileDoc

	retrySynopsis = "usage: jobrun retry FILE (ID | -failed [-queue q]) [-json]"
	retryDoc      = `Retry makes a finished job (failed, canceled or done) ready again with a fresh set
of attempts; with -failed, every failed job, of one queue with -queue. The jobs run
when an application runs their queue.

` + adminFileDoc

	cancelSynopsis = "usage: jobrun cancel FILE ID [-json]"
	cancelDoc      = `Cancel cancels job ID, which must not have finished.

` + adminFileDoc

	deleteSynopsis = "usage: jobrun delete FILE ID [-json]"
	deleteDoc      = `Delete removes job ID and its history from FILE.

` + adminFileDoc

	schedulesSynopsis = "usage: jobrun schedules FILE [-run NAME] [-json]"
	schedulesDoc      = `Schedules lists the cron schedules stored in FILE with their next fire. With
-run NAME it enqueues the job of schedule NAME now, outside its timetable, leaving
the next fire as it was; the job runs when an application runs its queue.

` + adminFileDoc

	pauseSynopsis = "usage: jobrun pause FILE QUEUE [-json]"
	pauseDoc      = `Pause stops the jobs of QUEUE from starting. It is stored in FILE: the queue stays
paused, across restarts of its application, until resume.

` + adminFileDoc

	resumeSynopsis = "usage: jobrun resume FILE QUEUE [-json]"
	resumeDoc      = `Resume lets the jobs of a paused QUEUE start again.

` + adminFileDoc
)

// fileCommands are the admin commands, which the usage lists apart.
var fileCommands = map[string]bool{
	"stats": true, "list": true, "show": true, "retry": true, "cancel": true,
	"delete": true, "schedules": true, "pause": true, "resume": true, "salvage": true,
}

// adminFlags starts the flag set of an admin command, with its -json flag.
func adminFlags(name string) (*flag.FlagSet, *bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print one JSON document, for scripts, instead of text")
	return fs, asJSON
}

// parseArgs is parseFlags for commands with positional arguments: flags may come
// before, between or after them (after "--", everything is positional), and there
// must be one argument per name in names, except for trailing names ending in "?",
// which are optional.
func parseArgs(fs *flag.FlagSet, synopsis, doc string, args []string, stdout, stderr io.Writer, names ...string) ([]string, error) {
	fs.SetOutput(stderr) // the flag package prints its own error messages there
	fs.Usage = func() {}
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "%s\n\n%s\nFlags:\n", synopsis, doc)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil, err
		}
		if err != nil {
			return nil, adminUsage(fs, synopsis, stderr, err, false)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	switch {
	case len(pos) < len(names) && !strings.HasSuffix(names[len(pos)], "?"):
		return nil, adminUsage(fs, synopsis, stderr, fmt.Errorf("missing %s", names[len(pos)]), true)
	case len(pos) > len(names):
		return nil, adminUsage(fs, synopsis, stderr, fmt.Errorf("unexpected argument %q", pos[len(names)]), true)
	}
	return pos, nil
}

// adminUsage reports a usage error as parseFlags does, printing err itself if the
// flag package has not.
func adminUsage(fs *flag.FlagSet, synopsis string, stderr io.Writer, err error, print bool) error {
	if print {
		fmt.Fprintf(stderr, "jobrun %s: %v\n", fs.Name(), err)
	}
	fmt.Fprintf(stderr, "%s\nRun \"jobrun help %s\" for details.\n", synopsis, fs.Name())
	return &usageError{err}
}

// parseID reads a job ID argument.
func parseID(fs *flag.FlagSet, synopsis, arg string, stderr io.Writer) (jobrun.ID, error) {
	id, err := strconv.ParseUint(arg, 10, 64)
	if err != nil || id == 0 {
		return 0, adminUsage(fs, synopsis, stderr, fmt.Errorf("job ID must be a positive number, got %q", arg), true)
	}
	return jobrun.ID(id), nil
}

// errInUse is the error of a command on a file an application holds.
type errInUse struct{ path string }

func (e *errInUse) Error() string {
	return fmt.Sprintf(`%s is in use by a running application: a jobrun file can be open in one
process at a time. To see and manage its jobs while it runs, embed the dashboard
(github.com/jobrun/jobrun/dashboard) in the application; or stop the application
and run this command again.`, e.path)
}

func (e *errInUse) Unwrap() error { return jobrun.ErrLocked }

// withFile opens the database file at path, which must exist, calls fn with its
// runner, and closes it.
func withFile(path string, fn func(r *jobrun.Runner) error) (err error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: no such file", path)
		}
		return err
	}
	r, err := jobrun.Open(path, jobrun.WithStrictKinds(false), jobrun.WithLockTimeout(adminLockTimeout))
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
		return fmt.Errorf("%s holds no job %d", path, id)
	}
	return err
}

// printJSON writes v as one indented JSON document.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// stats

// queueStats is a queue's line of stats -json.
type queueStats struct {
	Name   string               `json:"name"`
	Paused bool                 `json:"paused"`
	Counts map[jobrun.State]int `json:"counts"`
	Total  int                  `json:"total"`
}

func runStats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, asJSON := adminFlags("stats")
	pos, err := parseArgs(fs, statsSynopsis, statsDoc, args, stdout, stderr, "FILE")
	if err != nil {
		return err
	}
	return withFile(pos[0], func(r *jobrun.Runner) error {
		infos, err := r.QueueInfos(ctx)
		if err != nil {
			return err
		}
		all := queueStats{Name: "TOTAL", Counts: map[jobrun.State]int{}}
		queues := []queueStats{}
		for _, q := range infos {
			qs := queueStats{Name: q.Name, Paused: q.Paused, Counts: map[jobrun.State]int{}}
			for _, st := range jobrun.States {
				qs.Counts[st] = q.Counts[st]
				qs.Total += q.Counts[st]
				all.Counts[st] += q.Counts[st]
			}
			all.Total += qs.Total
			queues = append(queues, qs)
		}
		if *asJSON {
			return printJSON(stdout, struct {
				Queues []queueStats         `json:"queues"`
				Total  map[jobrun.State]int `json:"total"`
			}{queues, all.Counts})
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprint(tw, "QUEUE\t")
		for _, st := range jobrun.States {
			fmt.Fprintf(tw, "%s\t", strings.ToUpper(string(st)))
		}
		fmt.Fprint(tw, "TOTAL\tPAUSED\n")
		for _, qs := range append(queues, all) {
			fmt.Fprintf(tw, "%s\t", qs.Name)
			for _, st := range jobrun.States {
				fmt.Fprintf(tw, "%d\t", qs.Counts[st])
			}
			switch {
			case qs.Name == all.Name && len(queues) > 0:
				fmt.Fprintf(tw, "%d\n", qs.Total)
			case qs.Paused:
				fmt.Fprintf(tw, "%d\tyes\n", qs.Total)
			default:
				fmt.Fprintf(tw, "%d\tno\n", qs.Total)
			}
		}
		return tw.Flush()
	})
}

// list and show

// jobJSON is a job in the output of list -json and show -json. List leaves out the
// fields marked omitempty that only show fills.
type jobJSON struct {
	ID          jobrun.ID       `json:"id"`
	Kind        string          `json:"kind"`
	Queue       string          `json:"queue"`
	State       jobrun.State    `json:"state"`
	Priority    int             `json:"priority"`
	Attempt     int             `json:"attempt"`
	MaxAttempts int             `json:"max_attempts"`
	CreatedAt   time.Time       `json:"created_at"`
	RunAt       time.Time       `json:"run_at,omitzero"`
	StartedAt   time.Time       `json:"started_at,omitzero"`
	FinishedAt  time.Time       `json:"finished_at,omitzero"`
	LastError   string          `json:"last_error,omitempty"`
	Args        json.RawMessage `json:"args,omitempty"`
	UniqueKey   string          `json:"unique_key,omitempty"`
	Schedule    string          `json:"schedule,omitempty"`
	FireAt      time.Time       `json:"fire_at,omitzero"`
	Tags        []string        `json:"tags,omitempty"`

	Progress json.RawMessage `json:"progress,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	Errors   []errorJSON     `json:"errors,omitempty"`
	Logs     []logJSON       `json:"logs,omitempty"`
}

type errorJSON struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
}

type logJSON struct {
	At      time.Time `json:"at"`
	Message string    `json:"message"`
}

// newJobJSON converts info; full adds what only show prints.
func newJobJSON(info *jobrun.Info, full bool) jobJSON {
	j := jobJSON{
		ID: info.ID, Kind: info.Kind, Queue: info.Queue, State: info.State, Priority: info.Priority,
		Attempt: info.Attempt, MaxAttempts: info.MaxAttempts,
		CreatedAt: info.CreatedAt, RunAt: info.RunAt, StartedAt: info.StartedAt, FinishedAt: info.FinishedAt,
		LastError: info.LastError, Args: info.RawArgs, UniqueKey: info.UniqueKey,
		Schedule: info.Schedule, FireAt: info.FireAt, Tags: info.Tags,
	}
	if full {
		j.Progress, j.Result = info.Progress, info.Result
		for _, e := range info.Errors {
			j.Errors = append(j.Errors, errorJSON{Attempt: e.Attempt, At: e.At, Error: e.Error})
		}
		for _, l := range info.Logs {
			j.Logs = append(j.Logs, logJSON{At: l.At, Message: l.Message})
		}
	}
	return j
}

func runList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, asJSON := adminFlags("list")
	var f jobrun.Filter
	var state string
	fs.StringVar(&f.Queue, "queue", "", "only the jobs of this `queue`")
	fs.StringVar(&state, "state", "", "only the jobs in this `state`: "+statesList())
	fs.StringVar(&f.Kind, "kind", "", "only the jobs of this `kind`")
	fs.StringVar(&f.Tag, "tag", "", "only the jobs with this `tag`")
	fs.IntVar(&f.Limit, "limit", 50, "`n` jobs per page, at most 1000")
	fs.BoolVar(&f.Oldest, "oldest", false, "oldest first (with -state: the state's own order, such as the next to run first)")
	fs.StringVar(&f.Cursor, "cursor", "", "the `cursor` of the next page, as the previous page printed")
	pos, err := parseArgs(fs, listSynopsis, listDoc, args, stdout, stderr, "FILE")
	if err != nil {
		return err
	}
	f.State = jobrun.State(state)
	switch {
	case state != "" && !validState(f.State):
		return adminUsage(fs, listSynopsis, stderr, fmt.Errorf("unknown state %q; the states are %s", state, statesList()), true)
	case f.Limit < 1 || f.Limit > 1000:
		return adminUsage(fs, listSynopsis, stderr, fmt.Errorf("-limit must be between 1 and 1000, got %d", f.Limit), true)
	}
	return withFile(pos[0], func(r *jobrun.Runner) error {
		page, err := r.List(ctx, f)
		if err != nil {
			return err
		}
		if *asJSON {
			jobs := make([]jobJSON, 0, len(page.Jobs))
			for _, info := range page.Jobs {
				jobs = append(jobs, newJobJSON(info, false))
			}
			return printJSON(stdout, struct {
				Jobs []jobJSON `json:"jobs"`
				Next string    `json:"next"`
			}{jobs, page.Next})
		}
		if len(page.Jobs) == 0 && page.Next == "" {
			fmt.Fprintln(stdout, "No jobs match.")
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprint(tw, "ID\tSTATE\tQUEUE\tKIND\tATTEMPT\tCREATED\tWHEN\tLAST ERROR\n")
		for _, j := range page.Jobs {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", j.ID, j.State, j.Queue, j.Kind,
				j.Attempt, j.MaxAttempts, formatTime(j.CreatedAt), when(j), oneLine(j.LastError, 60))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if page.Next != "" {
			fmt.Fprintf(stdout, "\nMore jobs: jobrun list %s\n", nextPageArgs(args, page.Next))
		}
		return nil
	})
}

// nextPageArgs is the command line of list's next page: args with the cursor
// replaced.
func nextPageArgs(args []string, cursor string) string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-cursor" || a == "--cursor":
			i++ // and its value
			continue
		case strings.HasPrefix(a, "-cursor=") || strings.HasPrefix(a, "--cursor="):
			continue
		}
		out = append(out, shellQuote(a))
	}
	return strings.Join(append(out, "-cursor", cursor), " ")
}

// shellQuote quotes s for a POSIX shell if it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// when is list's WHEN column: the time that matters in the job's state.
func when(j *jobrun.Info) string {
	switch j.State {
	case jobrun.StateScheduled, jobrun.StateRetrying:
		return "runs " + formatTime(j.RunAt)
	case jobrun.StateReady:
		return "due " + formatTime(j.RunAt)
	case jobrun.StateRunning:
		return "started " + formatTime(j.StartedAt)
	}
	return "finished " + formatTime(j.FinishedAt)
}

func runShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, asJSON := adminFlags("show")
	pos, err := parseArgs(fs, showSynopsis, showDoc, args, stdout, stderr, "FILE", "ID")
	if err != nil {
		return err
	}
	id, err := parseID(fs, showSynopsis, pos[1], stderr)
	if err != nil {
		return err
	}
	return withFile(pos[0], func(r *jobrun.Runner) error {
		j, err := r.Get(ctx, id)
		if err != nil {
			return notFound(err, id, pos[0])
		}
		if *asJSON {
			return printJSON(stdout, newJobJSON(j, true))
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		field := func(name, value string) {
			if value != "" {
				fmt.Fprintf(tw, "%s:\t%s\n", name, value)
			}
		}
		field("Job", strconv.FormatUint(uint64(j.ID), 10))
		field("Kind", j.Kind)
		field("Queue", j.Queue)
		field("State", string(j.State))
		field("Priority", strconv.Itoa(j.Priority))
		field("Attempts", fmt.Sprintf("%d of %d", j.Attempt, j.MaxAttempts))
		field("Created", formatTime(j.CreatedAt))
		field("Run at", optionalTime(j.RunAt))
		field("Started", optionalTime(j.StartedAt))
		field("Finished", optionalTime(j.FinishedAt))
		field("Unique key", j.UniqueKey)
		if j.Schedule != "" {
			field("Schedule", fmt.Sprintf("%s, fire of %s", j.Schedule, formatTime(j.FireAt)))
		}
		field("Tags", strings.Join(j.Tags, ", "))
		field("Args", string(j.RawArgs))
		field("Progress", string(j.Progress))
		field("Result", string(j.Result))
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(j.Errors) > 0 {
			fmt.Fprintln(stdout, "\nErrors:")
			for _, e := range j.Errors {
				fmt.Fprintf(stdout, "  attempt %d at %s: %s\n", e.Attempt, formatTime(e.At), indent(e.Error))
			}
		}
		if len(j.Logs) > 0 {
			fmt.Fprintln(stdout, "\nLog:")
			for _, l := range j.Logs {
				fmt.Fprintf(stdout, "  %s  %s\n", formatTime(l.At), l.Message)
			}
		}
		return nil
	})
}

// retry, cancel, delete

func runRetry(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, asJSON := adminFlags("retry")
	failed := fs.Bool("failed", false, "retry every failed job (the dead-letter set) instead of one job")
	queue := fs.String("queue", "", "with -failed, only the failed jobs of this `queue`")
	pos, err := parseArgs(fs, retrySynopsis, retryDoc, args, stdout, stderr, "FILE", "ID?")
	if err != nil {
		return err
	}
	switch {
	case *failed == (len(pos) == 2):
		return adminUsage(fs, retrySynopsis, stderr, errors.New("give either a job ID or -failed"), true)
	case *queue != "" && !*failed:
		return adminUsage(fs, retrySynopsis, stderr, errors.New("-queue goes with -failed"), true)
	}
	if *failed {
		return withFile(pos[0], func(r *jobrun.Runner) error {
			n, err := r.RetryFailed(ctx, *queue)
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(stdout, map[string]any{"retried": n, "queue": *queue})
			}
			where := ""
			if *queue != "" {
				where = fmt.Sprintf(" of queue %s", *queue)
			}
			fmt.Fprintf(stdout, "Retried %d failed %s%s: they run when an application runs their queue.\n", n, plural(n, "job"), where)
			return nil
		})
	}
	id, err := parseID(fs, retrySynopsis, pos[1], stderr)
	if err != nil {
		return err
	}
	return changeJob(ctx, pos[0], id, *asJSON, stdout, (*jobrun.Runner).Retry,
		"Retried job %d: it is %s and runs when an application runs queue %s.\n")
}

func runCancel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, asJSON := adminFlags("cancel")
	pos, err := parseArgs(fs, cancelSynopsis, cancelDoc, args, stdout, stderr, "FILE", "ID")
	if err != nil {
		return err
	}
	id, err := parseID(fs, cancelSynopsis, pos[1], stderr)
	if err != nil {
		return err
	}
	return changeJob(ctx, pos[0], id, *asJSON, stdout, (*jobrun.Runner).Cancel, "Canceled job %d: it is %s (queue %s).\n")
}

// changeJob applies op to job id of the file at path and reports the job's new
// state with format (ID, state, queue).
func changeJob(ctx context.Context, path string, id jobrun.ID, asJSON bool, stdout io.Writer,
	op func(*jobrun.Runner, context.Context, jobrun.ID) error, format string) error {
	return withFile(path, func(r *jobrun.Runner) error {
		if err := op(r, ctx, id); err != nil {
			return notFound(err, id, path)
		}
		j, err := r.Get(ctx, id)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(stdout, map[string]any{"id": j.ID, "state": j.State, "queue": j.Queue})
		}
		fmt.Fprintf(stdout, format, j.ID, j.State, j.Queue)
		return nil
	})
}

func runDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, asJSON := adminFlags("delete")
	pos, err := parseArgs(fs, deleteSynopsis, deleteDoc, args, stdout, stderr, "FILE", "ID")
	if err != nil {
		return err
	}
	id, err := parseID(fs, deleteSynopsis, pos[1], stderr)
	if err != nil {
		return err
	}
	return withFile(pos[0], func(r *jobrun.Runner) error {
		if err := r.Delete(ctx, id); err != nil {
			return notFound(err, id, pos[0])
		}
		if *asJSON {
			return printJSON(stdout, map[string]any{"id": id, "deleted": true})
		}
		fmt.Fprintf(stdout, "Deleted job %d.\n", id)
		return nil
	})
}

// schedules

type scheduleJSON struct {
	Name        string          `json:"name"`
	Spec        string          `json:"spec"`
	TimeZone    string          `json:"time_zone,omitempty"`
	Kind        string          `json:"kind"`
	Args        json.RawMessage `json:"args,omitempty"`
	Next        time.Time       `json:"next"`
	Last        time.Time       `json:"last,omitzero"`
	LastJob     jobrun.ID       `json:"last_job,omitempty"`
	SkipMissed  bool            `json:"skip_missed"`
	SkipOverlap bool            `json:"skip_if_running"`
}

func runSchedules(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, asJSON := adminFlags("schedules")
	run := fs.String("run", "", "enqueue the job of the schedule `name` now")
	pos, err := parseArgs(fs, schedulesSynopsis, schedulesDoc, args, stdout, stderr, "FILE")
	if err != nil {
		return err
	}
	return withFile(pos[0], func(r *jobrun.Runner) error {
		if *run != "" {
			id, err := r.TriggerSchedule(ctx, *run)
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(stdout, map[string]any{"schedule": *run, "id": id})
			}
			fmt.Fprintf(stdout, "Enqueued job %d for schedule %s: it runs when an application runs its queue.\n", id, *run)
			return nil
		}
		list, err := r.Schedules(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			out := make([]scheduleJSON, 0, len(list))
			for _, s := range list {
				out = append(out, scheduleJSON{Name: s.Name, Spec: s.Spec, TimeZone: s.TimeZone, Kind: s.Kind,
					Args: s.Args, Next: s.Next, Last: s.Last, LastJob: s.LastJob,
					SkipMissed: s.SkipMissed, SkipOverlap: s.SkipOverlap})
			}
			return printJSON(stdout, out)
		}
		if len(list) == 0 {
			fmt.Fprintln(stdout, "No schedules.")
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprint(tw, "NAME\tSPEC\tKIND\tNEXT\tLAST\tLAST JOB\tOPTIONS\n")
		for _, s := range list {
			spec := s.Spec
			if s.TimeZone != "" {
				spec += " (" + s.TimeZone + ")"
			}
			var opts []string
			if s.SkipMissed {
				opts = append(opts, "skip missed")
			}
			if s.SkipOverlap {
				opts = append(opts, "skip if running")
			}
			lastJob := "-"
			if s.LastJob != 0 {
				lastJob = strconv.FormatUint(uint64(s.LastJob), 10)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, spec, s.Kind, formatTime(s.Next),
				formatTime(s.Last), lastJob, orDash(strings.Join(opts, ", ")))
		}
		return tw.Flush()
	})
}

// pause and resume

func runPause(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return pauseOrResume(ctx, "pause", pauseSynopsis, pauseDoc, true, args, stdout, stderr)
}

func runResume(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return pauseOrResume(ctx, "resume", resumeSynopsis, resumeDoc, false, args, stdout, stderr)
}

func pauseOrResume(ctx context.Context, name, synopsis, doc string, pause bool, args []string, stdout, stderr io.Writer) error {
	fs, asJSON := adminFlags(name)
	pos, err := parseArgs(fs, synopsis, doc, args, stdout, stderr, "FILE", "QUEUE")
	if err != nil {
		return err
	}
	queue := pos[1]
	return withFile(pos[0], func(r *jobrun.Runner) error {
		op := r.Resume
		if pause {
			op = r.Pause
		}
		if err := op(ctx, queue); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, map[string]any{"queue": queue, "paused": pause})
		}
		if pause {
			fmt.Fprintf(stdout, "Paused queue %s: its jobs do not start, across restarts, until jobrun resume.\n", queue)
		} else {
			fmt.Fprintf(stdout, "Resumed queue %s.\n", queue)
		}
		return nil
	})
}

// formatting

// timeLayout is how the tables show times, in the local zone.
const timeLayout = "2006-01-02 15:04:05"

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(timeLayout)
}

func optionalTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return formatTime(t)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine is the first line of s, cut to n runes.
func oneLine(s string, n int) string {
	s, _, cut := strings.Cut(s, "\n")
	if r := []rune(s); len(r) > n {
		s, cut = string(r[:n-1]), true
	}
	if cut {
		s += "…"
	}
	return orDash(s)
}

// indent indents the lines of a multi-line error after the first.
func indent(s string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func validState(s jobrun.State) bool {
	for _, st := range jobrun.States {
		if s == st {
			return true
		}
	}
	return false
}

func statesList() string {
	names := make([]string, len(jobrun.States))
	for i, st := range jobrun.States {
		names[i] = string(st)
	}
	return strings.Join(names, ", ")
}
