package main

// The admin commands inspect and manage the jobs of a database file that no
// application holds: stats, list, show, retry, cancel, delete, schedules, pause and
// resume. Each opens the file, does one thing and closes it. The commands that only
// read open it read-only, so its bytes stay as they were; those that change it run
// none of the runner's services, so they write what they are asked and nothing else
// (see withFile).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/internal/wire"
)

// readFileDoc is the paragraph the usage of every command that only reads ends with
// (-url and the exit status included).
const readFileDoc = `FILE must exist; it is not created. The command opens it read-only and leaves it
byte for byte as it was: jobs found running (their application stopped without a
graceful shutdown) stay running until the application's next start, due jobs and
cron fires wait for it too, and no retention applies. While an application has the
file open, the command fails and says so: use -url then.

` + urlDoc + `
` + exitDoc

// exitDoc ends the usage of every file command.
const exitDoc = `Exit status: 0 on success, 1 if the command failed (with -json, the error is
{"error": "..."} on stderr), 2 for bad arguments.
`

// manageFileDoc is the paragraph the usage of every command that changes FILE ends
// with (-url and the exit status included).
const manageFileDoc = `FILE must exist; it is not created. The command writes the change it is asked for
and nothing else: it runs none of the runner's services on the file, so no
retention deletes finished jobs, no cron schedule fires, no due job is promoted,
and jobs found running (their application stopped without a graceful shutdown)
stay as they are until the application's next start. The command needs the file
to itself: while an application has it open, the command fails and says so: use
-url then.

` + urlDoc + `
` + exitDoc

const (
	statsSynopsis = "usage: jobrun stats (FILE | -url URL) [-json]"
	statsDoc      = `Stats prints the number of jobs of each queue of FILE in each state, with a
total, and whether the queue is paused. The counts are kept with every change, so
this is quick on any file. With -json it prints {"queues": [...], "total": {...}},
each queue as jobrun.QueueInfo's JSON tags put it, with its total.

` + readFileDoc

	listSynopsis = "usage: jobrun list (FILE | -url URL) [-queue q] [-state s] [-kind k] [-tag t] [-limit n] [-oldest] [-cursor c] [-json]"
	listDoc      = `List prints one page of the jobs of FILE that match the filters, newest first,
with the command line of the next page if there is one. With -json it prints the
page as {"jobs": [...], "next": "cursor"}, each job as show -json prints it.

` + readFileDoc

	showSynopsis = "usage: jobrun show (FILE | -url URL) ID [-json]"
	showDoc      = `Show prints everything stored about job ID: its state, attempts, times, the event
that started it, args, progress, result, steps, error history and log. The steps
(jobrun.Step, Sleep, WaitFor, SendEvent) are listed in the order they started, each
with its state, attempts, start, duration, and its result or error, the event it
received or sent, or what it sleeps or waits for and until when. With -json it
prints the job as jobrun.Info's JSON tags put it, the one shape of a job, which
list -json, the commands that change a job and the dashboard's API print too;
fields that are not set (progress, result, steps, errors, tags, ...) are left out.

` + readFileDoc

	retrySynopsis = "usage: jobrun retry (FILE | -url URL) (ID | -failed [-queue q]) [-json]"
	retryDoc      = `Retry makes a finished job (failed, canceled or done) ready again with a fresh set
of attempts; with -failed, every failed job, of one queue with -queue. The jobs run
when an application runs their queue.

` + manageFileDoc

	cancelSynopsis = "usage: jobrun cancel (FILE | -url URL) ID [-json]"
	cancelDoc      = `Cancel cancels job ID, which must not have finished.

` + manageFileDoc

	deleteSynopsis = "usage: jobrun delete (FILE | -url URL) ID [-json]"
	deleteDoc      = `Delete removes job ID and its history from FILE.

` + manageFileDoc

	promoteSynopsis = "usage: jobrun promote (FILE | -url URL) ID [-json]"
	promoteDoc      = `Promote makes job ID, scheduled for later or waiting to retry, ready now, as if
its time had come; it runs when an application runs its queue.

` + manageFileDoc

	cleanSynopsis = "usage: jobrun clean (FILE | -url URL) [-queue q] [-state done|failed|canceled] [-before age|time] [-json]"
	cleanDoc      = `Clean deletes finished jobs from FILE, with their history, and prints how many:
with -queue, only those of one queue; with -state, only those in one final state
(done, failed or canceled; all three without it); with -before, only those that
finished before then: an age, such as 24h for the jobs that finished more than a
day ago (168h is a week), or an RFC 3339 time such as 2026-01-02T15:04:05Z. Without
-before, every finished job matches. Jobs that have not finished are never deleted:
cancel them first. Deleting the failed jobs purges the dead-letter set.

` + manageFileDoc

	schedulesSynopsis = "usage: jobrun schedules (FILE | -url URL) [-run NAME | -pause NAME | -resume NAME] [-json]"
	schedulesDoc      = `Schedules lists the cron schedules stored in FILE with their next fire. With
-run NAME it enqueues the job of schedule NAME now, outside its timetable, leaving
the next fire as it was; the job runs when an application runs its queue. -pause
NAME stops the schedule's fires until -resume NAME, which fires it again from its
next time on, without making up the fires it missed; a paused schedule stays
paused across restarts and when the application declares it again. -run, -pause
and -resume change FILE as the commands that manage jobs do: they write what they
are asked and nothing else. With -json, the list is of jobrun.ScheduleInfo as its JSON tags put it.

` + readFileDoc

	unscheduleSynopsis = "usage: jobrun unschedule (FILE | -url URL) NAME [-json]"
	unscheduleDoc      = `Unschedule removes the cron schedule NAME from FILE; the jobs it already enqueued
stay. An application that declares the schedule when it starts (Runner.Schedule)
stores it again then: take it out of the application's code too.

` + manageFileDoc

	pauseSynopsis = "usage: jobrun pause (FILE | -url URL) QUEUE [-json]"
	pauseDoc      = `Pause stops the jobs of QUEUE from starting. It is stored in FILE: the queue stays
paused, across restarts of its application, until resume.

` + manageFileDoc

	resumeSynopsis = "usage: jobrun resume (FILE | -url URL) QUEUE [-json]"
	resumeDoc      = `Resume lets the jobs of a paused QUEUE start again.

` + manageFileDoc
)

// fileCommands are the commands on a database file, which the usage lists apart.
var fileCommands = map[string]bool{
	"stats": true, "list": true, "show": true, "enqueue": true, "events": true, "send": true, "retry": true, "cancel": true,
	"delete": true, "promote": true, "clean": true, "schedules": true, "unschedule": true,
	"pause": true, "resume": true, "check": true, "backup": true, "compact": true, "salvage": true,
}

// stats

// queueStats is a queue in stats -json: jobrun.QueueInfo's JSON, every state in its
// counts, with the total beside.
type queueStats struct {
	jobrun.QueueInfo
	Total int `json:"total"`
}

func runStats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFileCmd("stats", statsSynopsis, statsDoc, args, stdout, stderr)
	if _, err := c.parse("FILE"); err != nil {
		return err
	}
	return c.result(c.open(readAccess, func(s store) error {
		infos, err := s.Queues(ctx)
		if err != nil {
			return err
		}
		all := queueStats{QueueInfo: jobrun.QueueInfo{Name: "TOTAL", Counts: map[jobrun.State]int{}}}
		queues := []queueStats{}
		for _, q := range infos {
			qs := queueStats{QueueInfo: q}
			qs.Counts = map[jobrun.State]int{}
			for _, st := range jobrun.States {
				qs.Counts[st] = q.Counts[st]
				qs.Total += q.Counts[st]
				all.Counts[st] += q.Counts[st]
			}
			all.Total += qs.Total
			queues = append(queues, qs)
		}
		if *c.json {
			return c.print(struct {
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
	}))
}

// list and show

// jobOut is job in as -json prints it: jobrun.Info's JSON (the one shape of a job,
// which the dashboard's API prints too), with a stored value that is not valid JSON
// (from a damaged record) as a JSON string, so that it cannot break the document.
func jobOut(in *jobrun.Info) *jobrun.Info {
	j := *in
	j.RawArgs, j.Progress, j.Result = wire.JSONValue(in.RawArgs), wire.JSONValue(in.Progress), wire.JSONValue(in.Result)
	if in.Steps != nil {
		j.Steps = slices.Clone(in.Steps)
		for i := range j.Steps {
			j.Steps[i].Result = wire.JSONValue(j.Steps[i].Result)
		}
	}
	return &j
}

func runList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFileCmd("list", listSynopsis, listDoc, args, stdout, stderr)
	var f jobrun.Filter
	var state string
	c.fs.StringVar(&f.Queue, "queue", "", "only the jobs of this `queue`")
	c.fs.StringVar(&state, "state", "", "only the jobs in this `state`: "+statesList())
	c.fs.StringVar(&f.Kind, "kind", "", "only the jobs of this `kind`")
	c.fs.StringVar(&f.Tag, "tag", "", "only the jobs with this `tag`")
	c.fs.IntVar(&f.Limit, "limit", 50, "`n` jobs per page, at most 1000")
	c.fs.BoolVar(&f.Oldest, "oldest", false, "oldest first (with -state: the state's own order, such as the next to run first)")
	c.fs.StringVar(&f.Cursor, "cursor", "", "the `cursor` of the next page, as the previous page printed")
	if _, err := c.parse("FILE"); err != nil {
		return err
	}
	f.State = jobrun.State(state)
	switch {
	case state != "" && !validState(f.State):
		return c.usage(fmt.Errorf("unknown state %q; the states are %s", state, statesList()))
	case f.Limit < 1 || f.Limit > 1000:
		return c.usage(fmt.Errorf("-limit must be between 1 and 1000, got %d", f.Limit))
	}
	return c.result(c.open(readAccess, func(s store) error {
		page, err := s.List(ctx, f)
		if errors.Is(err, jobrun.ErrInvalid) {
			// The filter's values were checked above: what List refuses is the cursor,
			// which is as much the user's input as the flags are.
			return c.usage(errors.New(message(err)))
		}
		if err != nil {
			return err
		}
		if *c.json {
			jobs := make([]*jobrun.Info, 0, len(page.Jobs))
			for _, info := range page.Jobs {
				jobs = append(jobs, jobOut(info))
			}
			return c.print(struct {
				Jobs []*jobrun.Info `json:"jobs"`
				Next string         `json:"next"`
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
	}))
}

// nextPageArgs is the command line of list's next page: args with the cursor
// replaced, and without -token, which is not to be printed (the next command takes
// JOBRUN_TOKEN, or the user gives -token again), nor the password of -url.
func nextPageArgs(args []string, cursor string) string {
	var out, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, _, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if a == "--" {
			// Everything after it is positional: the cursor goes before it.
			for _, a := range args[i:] {
				positional = append(positional, shellQuote(a))
			}
			break
		}
		if strings.HasPrefix(a, "-") && (name == "cursor" || name == "token") {
			if !hasValue {
				i++ // and its value
			}
			continue
		}
		if strings.HasPrefix(a, "-") && name == "url" {
			// Without its password, as without -token.
			if !hasValue {
				out = append(out, shellQuote(a))
				if i++; i < len(args) {
					out = append(out, shellQuote(redactURL(args[i])))
				}
				continue
			}
			flagName, value, _ := strings.Cut(a, "=")
			a = flagName + "=" + redactURL(value)
		}
		out = append(out, shellQuote(a))
	}
	return strings.Join(append(append(out, "-cursor", cursor), positional...), " ")
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
	c := newFileCmd("show", showSynopsis, showDoc, args, stdout, stderr)
	pos, err := c.parse("FILE", "ID")
	if err != nil {
		return err
	}
	id, err := c.id(pos[1])
	if err != nil {
		return err
	}
	return c.result(c.open(readAccess, func(s store) error {
		j, err := s.Get(ctx, id)
		if err != nil {
			return notFound(err, id, pos[0])
		}
		if *c.json {
			return c.print(jobOut(j))
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
		if invoking(j) {
			field("Run at", "when its children end")
		} else {
			field("Run at", optionalTime(j.RunAt))
		}
		field("Started", optionalTime(j.StartedAt))
		field("Finished", optionalTime(j.FinishedAt))
		field("Unique key", j.UniqueKey)
		field("Concurrency key", j.ConcurrencyKey)
		if j.Schedule != "" {
			field("Schedule", fmt.Sprintf("%s, fire of %s", j.Schedule, formatTime(j.FireAt)))
		}
		if j.Event != 0 {
			field("Event", fmt.Sprintf("%d (%s)", j.Event, j.EventName))
		}
		if j.Parent != 0 {
			field("Parent", fmt.Sprintf("%d (a child run it invoked)", j.Parent))
		}
		field("Tags", strings.Join(j.Tags, ", "))
		for _, k := range slices.Sorted(maps.Keys(j.Metadata)) {
			field("Metadata "+k, j.Metadata[k])
		}
		field("Args", string(j.RawArgs))
		field("Progress", string(j.Progress))
		field("Result", string(j.Result))
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(j.Steps) > 0 {
			fmt.Fprintln(stdout, "\nSteps:")
			if err := printSteps(stdout, j, time.Now()); err != nil {
				return err
			}
		}
		if len(j.Errors) > 0 {
			fmt.Fprintln(stdout, "\nErrors:")
			for _, e := range j.Errors {
				took := ""
				if !e.StartedAt.IsZero() {
					took = " after " + formatDuration(e.At.Sub(e.StartedAt))
				}
				fmt.Fprintf(stdout, "  attempt %d at %s%s: %s\n", e.Attempt, formatTime(e.At), took, indent(e.Error))
			}
		}
		if len(j.Logs) > 0 {
			fmt.Fprintln(stdout, "\nLog:")
			for _, l := range j.Logs {
				fmt.Fprintf(stdout, "  %s  %s\n", formatTime(l.At), l.Message)
			}
		}
		return nil
	}))
}

// printSteps prints j's steps as a table, in the order they started (Info lists
// them by name).
func printSteps(w io.Writer, j *jobrun.Info, now time.Time) error {
	steps := slices.Clone(j.Steps)
	slices.SortStableFunc(steps, func(a, b jobrun.StepInfo) int { return a.StartedAt.Compare(b.StartedAt) })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "  STEP\tSTATE\tATTEMPTS\tSTARTED\tDURATION\tDETAIL\n")
	for _, s := range steps {
		took := "-"
		if d, ok := stepDuration(s, now); ok {
			took = formatDuration(d)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\t%s\n", s.Name, s.State, s.Attempts, formatTime(s.StartedAt), took,
			stepDetail(j, s, now))
	}
	return tw.Flush()
}

// stepDuration is how long step s took, if it is over: a Sleep or a WaitFor
// that still holds the job has no duration yet, nor one that Promote ended early
// (its FinishedAt is the wake-up or timeout it did not reach).
func stepDuration(s jobrun.StepInfo, now time.Time) (time.Duration, bool) {
	switch s.State {
	case "waiting", "invoking":
		return 0, false
	case "sleep":
		if s.FinishedAt.After(now) {
			return 0, false
		}
	}
	return s.FinishedAt.Sub(s.StartedAt), !s.FinishedAt.IsZero()
}

// invoking reports whether j is scheduled until its children end (Invoke), its run
// time the end of storable time rather than a time.
func invoking(j *jobrun.Info) bool {
	for _, s := range j.Steps {
		if s.State == "invoking" && j.State == jobrun.StateScheduled {
			return true
		}
	}
	return false
}

// sleeping reports whether the sleep s holds j now: j is scheduled for its wake-up.
func sleeping(j *jobrun.Info, s jobrun.StepInfo) bool {
	return j.State == jobrun.StateScheduled && j.RunAt.Equal(s.FinishedAt)
}

// stepDetail is the DETAIL column of show's steps: a step's result or error, what a
// wait waits for and until when, the event a step received or sent.
func stepDetail(j *jobrun.Info, s jobrun.StepInfo, now time.Time) string {
	waitFor := func() string {
		if s.WaitMatch == "" {
			return s.WaitEvent
		}
		return s.WaitEvent + " where " + s.WaitMatch
	}
	switch {
	case s.State == "failed":
		return "error: " + oneLine(s.Error, 80)
	case s.State == "sleep" && sleeping(j, s):
		return "sleeps until " + formatTime(s.FinishedAt)
	case s.State == "sleep" && s.FinishedAt.After(now):
		return "woken before " + formatTime(s.FinishedAt) + " (promoted)"
	case s.State == "sleep":
		return "slept until " + formatTime(s.FinishedAt)
	case s.State == "waiting":
		return "waits for " + waitFor() + " until " + formatTime(s.FinishedAt)
	case s.State == "timed_out":
		return "no " + waitFor() + " by " + formatTime(s.FinishedAt)
	case s.State == "invoking":
		return fmt.Sprintf("waits for %s %s", plural(len(s.Children), "child job"), joinIDs(s.Children))
	case len(s.Children) > 0:
		return fmt.Sprintf("%s %s ended", plural(len(s.Children), "child job"), joinIDs(s.Children))
	case s.WaitEvent != "":
		return fmt.Sprintf("received event %d (%s): %s", s.Event, s.WaitEvent, oneLine(string(s.Result), 60))
	case s.Event != 0:
		var sent struct{ Runs []jobrun.ID }
		if json.Unmarshal(s.Result, &sent) == nil && len(sent.Runs) > 0 {
			return fmt.Sprintf("sent event %d, which started %s %s", s.Event, plural(len(sent.Runs), "job"), joinIDs(sent.Runs))
		}
		return fmt.Sprintf("sent event %d", s.Event)
	}
	return oneLine(string(s.Result), 80)
}

// retry, cancel, delete

func runRetry(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFileCmd("retry", retrySynopsis, retryDoc, args, stdout, stderr)
	failed := c.fs.Bool("failed", false, "retry every failed job (the dead-letter set) instead of one job")
	queue := c.fs.String("queue", "", "with -failed, only the failed jobs of this `queue`")
	pos, err := c.parse("FILE", "ID?")
	if err != nil {
		return err
	}
	switch {
	case *failed == (len(pos) == 2):
		return c.usage(errors.New("give either a job ID or -failed"))
	case *queue != "" && !*failed:
		return c.usage(errors.New("-queue goes with -failed"))
	}
	if *failed {
		return c.result(c.open(manageAccess, func(s store) error {
			if *queue != "" {
				if err := knownQueue(ctx, s, pos[0], *queue); err != nil {
					return err
				}
			}
			n, err := s.RetryFailed(ctx, *queue)
			if err != nil {
				return err
			}
			if *c.json {
				return c.print(map[string]any{"retried": n, "queue": *queue})
			}
			where := ""
			if *queue != "" {
				where = fmt.Sprintf(" of queue %s", *queue)
			}
			fmt.Fprintf(stdout, "Retried %d failed %s%s: they run when an application runs their queue.\n", n, plural(n, "job"), where)
			return nil
		}))
	}
	id, err := c.id(pos[1])
	if err != nil {
		return err
	}
	return c.result(changeJob(ctx, c, pos[0], id, store.Retry,
		"Retried job %d: it is %s and runs when an application runs queue %s.\n"))
}

func runCancel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFileCmd("cancel", cancelSynopsis, cancelDoc, args, stdout, stderr)
	pos, err := c.parse("FILE", "ID")
	if err != nil {
		return err
	}
	id, err := c.id(pos[1])
	if err != nil {
		return err
	}
	return c.result(changeJob(ctx, c, pos[0], id, store.Cancel, "Canceled job %d: it is %s (queue %s).\n"))
}

func runPromote(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFileCmd("promote", promoteSynopsis, promoteDoc, args, stdout, stderr)
	pos, err := c.parse("FILE", "ID")
	if err != nil {
		return err
	}
	id, err := c.id(pos[1])
	if err != nil {
		return err
	}
	return c.result(changeJob(ctx, c, pos[0], id, store.Promote,
		"Promoted job %d: it is %s and runs when an application runs queue %s.\n"))
}

// changeJob applies op to job id of the file (or dashboard) at path and reports
// the job's new state with format (ID, state, queue).
func changeJob(ctx context.Context, c *fileCmd, path string, id jobrun.ID,
	op func(store, context.Context, jobrun.ID) error, format string) error {
	return c.open(manageAccess, func(s store) error {
		if err := op(s, ctx, id); err != nil {
			return notFound(err, id, path)
		}
		j, err := s.Get(ctx, id)
		if err != nil {
			return err
		}
		if *c.json {
			return c.print(jobOut(j))
		}
		fmt.Fprintf(c.stdout, format, j.ID, j.State, j.Queue)
		return nil
	})
}

func runDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFileCmd("delete", deleteSynopsis, deleteDoc, args, stdout, stderr)
	pos, err := c.parse("FILE", "ID")
	if err != nil {
		return err
	}
	id, err := c.id(pos[1])
	if err != nil {
		return err
	}
	return c.result(c.open(manageAccess, func(s store) error {
		if err := s.Delete(ctx, id); err != nil {
			return notFound(err, id, pos[0])
		}
		if *c.json {
			return c.print(map[string]any{"id": id, "deleted": true})
		}
		fmt.Fprintf(stdout, "Deleted job %d.\n", id)
		return nil
	}))
}

// clean

func runClean(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFileCmd("clean", cleanSynopsis, cleanDoc, args, stdout, stderr)
	queue := c.fs.String("queue", "", "only the jobs of this `queue`")
	state := c.fs.String("state", "", "only the jobs in this final `state`: done, failed or canceled")
	beforeArg := c.fs.String("before", "", "only the jobs that finished before this `age or time`: 24h (ago), or 2026-01-02T15:04:05Z")
	pos, err := c.parse("FILE")
	if err != nil {
		return err
	}
	switch jobrun.State(*state) {
	case "", jobrun.StateDone, jobrun.StateFailed, jobrun.StateCanceled:
	default:
		return c.usage(fmt.Errorf("-state must be done, failed or canceled, got %q", *state))
	}
	before, err := parseBefore(*beforeArg, time.Now())
	if err != nil {
		return c.usage(err)
	}
	return c.result(c.open(manageAccess, func(s store) error {
		if *queue != "" {
			if err := knownQueue(ctx, s, pos[0], *queue); err != nil {
				return err
			}
		}
		n, err := s.Clean(ctx, *queue, jobrun.State(*state), before)
		if err != nil {
			return err
		}
		if *c.json {
			out := struct {
				Deleted int        `json:"deleted"`
				Queue   string     `json:"queue,omitempty"`
				State   string     `json:"state,omitempty"`
				Before  *time.Time `json:"before,omitempty"` // when -before was given
			}{n, *queue, *state, nil}
			if *beforeArg != "" {
				out.Before = &before
			}
			return c.print(out)
		}
		what := "finished"
		if *state != "" {
			what = *state
		}
		where := ""
		if *queue != "" {
			where = " of queue " + *queue
		}
		when := ""
		if *beforeArg != "" {
			when = " that finished before " + formatTime(before)
		}
		fmt.Fprintf(stdout, "Deleted %d %s %s%s%s.\n", n, what, plural(n, "job"), where, when)
		return nil
	}))
}

// parseBefore reads clean's -before: an age before now, such as 24h, or an RFC 3339
// time; "" is just after now, so that every finished job matches, those that
// finished this instant too.
func parseBefore(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return now.Add(time.Nanosecond), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("-before must be an age such as 24h or an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q", s)
}

// schedules

func runSchedules(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFileCmd("schedules", schedulesSynopsis, schedulesDoc, args, stdout, stderr)
	run := c.fs.String("run", "", "enqueue the job of the schedule `name` now")
	pause := c.fs.String("pause", "", "stop the fires of the schedule `name`")
	resume := c.fs.String("resume", "", "let the paused schedule `name` fire again")
	if _, err := c.parse("FILE"); err != nil {
		return err
	}
	var set int
	for _, v := range []string{*run, *pause, *resume} {
		if v != "" {
			set++
		}
	}
	if set > 1 {
		return c.usage(errors.New("-run, -pause and -resume exclude each other"))
	}
	acc := readAccess
	if set == 1 {
		acc = manageAccess
	}
	return c.result(c.open(acc, func(s store) error {
		if name, paused := *pause+*resume, *pause != ""; name != "" {
			call := s.ResumeSchedule
			if paused {
				call = s.PauseSchedule
			}
			if err := call(ctx, name); err != nil {
				return err
			}
			if *c.json {
				return c.print(map[string]any{"schedule": name, "paused": paused})
			}
			if paused {
				fmt.Fprintf(stdout, "Paused schedule %s: it does not fire until resumed.\n", name)
			} else {
				fmt.Fprintf(stdout, "Resumed schedule %s: it fires again from its next time.\n", name)
			}
			return nil
		}
		if *run != "" {
			id, err := s.TriggerSchedule(ctx, *run)
			if err != nil {
				return err
			}
			if *c.json {
				return c.print(map[string]any{"schedule": *run, "id": id})
			}
			fmt.Fprintf(stdout, "Enqueued job %d for schedule %s: it runs when an application runs its queue.\n", id, *run)
			return nil
		}
		list, err := s.Schedules(ctx)
		if err != nil {
			return err
		}
		if *c.json {
			for i := range list {
				list[i].Args = wire.JSONValue(list[i].Args)
			}
			if list == nil {
				list = []jobrun.ScheduleInfo{}
			}
			return c.print(list)
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
			next := formatTime(s.Next)
			if s.Paused {
				next = "paused"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, spec, s.Kind, next,
				formatTime(s.Last), lastJob, orDash(strings.Join(opts, ", ")))
		}
		return tw.Flush()
	}))
}

func runUnschedule(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFileCmd("unschedule", unscheduleSynopsis, unscheduleDoc, args, stdout, stderr)
	pos, err := c.parse("FILE", "NAME")
	if err != nil {
		return err
	}
	name := pos[1]
	return c.result(c.open(manageAccess, func(s store) error {
		if err := s.Unschedule(ctx, name); err != nil {
			return err
		}
		if *c.json {
			return c.print(map[string]any{"schedule": name, "removed": true})
		}
		fmt.Fprintf(stdout, "Removed schedule %s; the jobs it enqueued stay.\n", name)
		return nil
	}))
}

// pause and resume

func runPause(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return pauseOrResume(ctx, "pause", pauseSynopsis, pauseDoc, true, args, stdout, stderr)
}

func runResume(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return pauseOrResume(ctx, "resume", resumeSynopsis, resumeDoc, false, args, stdout, stderr)
}

func pauseOrResume(ctx context.Context, name, synopsis, doc string, pause bool, args []string, stdout, stderr io.Writer) error {
	c := newFileCmd(name, synopsis, doc, args, stdout, stderr)
	pos, err := c.parse("FILE", "QUEUE")
	if err != nil {
		return err
	}
	queue := pos[1]
	return c.result(c.open(manageAccess, func(s store) error {
		// A paused queue is known (Paused), so resume accepts one that never held a job.
		if err := knownQueue(ctx, s, pos[0], queue); err != nil {
			return err
		}
		op := s.Resume
		if pause {
			op = s.Pause
		}
		if err := op(ctx, queue); err != nil {
			return err
		}
		if *c.json {
			return c.print(map[string]any{"queue": queue, "paused": pause})
		}
		if pause {
			fmt.Fprintf(stdout, "Paused queue %s: its jobs do not start, across restarts, until jobrun resume.\n", queue)
		} else {
			fmt.Fprintf(stdout, "Resumed queue %s.\n", queue)
		}
		return nil
	}))
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
