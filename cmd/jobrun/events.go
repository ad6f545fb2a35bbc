package main

// The event commands on a database file that no application holds: events lists
// the events sent into it or shows one with the runs it started, and send sends one,
// starting the runs the application's functions would (see runSend).

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/internal/wire"
)

const (
	eventsSynopsis = "usage: jobrun events (FILE | -url URL) [SEQ] [-name n] [-limit n] [-oldest] [-cursor c] [-json]"
	eventsDoc      = `Events prints one page of the events sent into FILE, newest first, with the
command line of the next page if there is one; with -name, only the events of that
name. With SEQ it shows event SEQ: its name, dedup ID, when it was sent, its data,
and the runs it started with each run's kind, queue and current state, "deleted"
for a run that retention or delete removed since. Events are kept 7 days by
default (the application's WithEventRetention). With -json it prints the page as
{"events": [...], "next": "cursor"}, each event as jobrun.EventInfo's JSON tags put
it; with SEQ, the event with "jobs" beside its runs: [{"id", "kind", "queue",
"state"}, ...].

` + readFileDoc

	sendSynopsis = "usage: jobrun send (FILE | -url URL) NAME JSON [-id ID] [-json]"
	sendDoc      = `Send sends the event NAME into FILE with the data JSON, a JSON object such as
'{"order_id": 42}', as Runner.Send does in the application: in one commit the event
is stored and every function registered on NAME (jobrun.On) gets a run, with the
data as its args and its handler's options, and the jobs waiting for such an event
(jobrun.WaitFor) whose match it meets are made ready. The functions are those the
application stored when it last started: a name no function was registered on
then stores the event and starts nothing. The runs run when an application runs
their queues. With -id, an event whose ID repeats that of one sent within the dedup
window (24 hours by default) is stored as a duplicate and starts nothing. Send
prints the stored event and its runs; with -json, the event as events FILE SEQ
-json prints it.

` + manageFileDoc
)

// eventJSON is ev as -json prints it: jobrun.EventInfo's JSON, with its data as a
// JSON string if it is not valid JSON (a damaged record), so that it cannot break
// the document.
func eventJSON(ev *jobrun.EventInfo) *jobrun.EventInfo {
	e := *ev
	e.Data = wire.JSONValue(ev.Data)
	return &e
}

// eventOut is one event as events FILE SEQ -json and send -json print it: its JSON,
// and what became of its runs.
type eventOut struct {
	*jobrun.EventInfo
	Jobs []runOut `json:"jobs"`
}

// runOut is a run of an event as the event commands print it.
type runOut struct {
	ID    jobrun.ID `json:"id"`
	Kind  string    `json:"kind,omitempty"`
	Queue string    `json:"queue,omitempty"`
	State string    `json:"state"` // a jobrun.State, or "deleted" for a run no longer in the file
}

// eventRuns reads what became of ev's runs.
func eventRuns(ctx context.Context, s store, ev *jobrun.EventInfo) ([]runOut, error) {
	runs := []runOut{}
	for _, id := range ev.Runs {
		j, err := s.Get(ctx, id)
		switch {
		case errors.Is(err, jobrun.ErrNotFound):
			runs = append(runs, runOut{ID: id, State: "deleted"})
		case err != nil:
			return nil, err
		default:
			runs = append(runs, runOut{ID: id, Kind: j.Kind, Queue: j.Queue, State: string(j.State)})
		}
	}
	return runs, nil
}

func runEvents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFileCmd("events", eventsSynopsis, eventsDoc, args, stdout, stderr)
	var f jobrun.EventFilter
	c.fs.StringVar(&f.Name, "name", "", "only the events called `name`")
	c.fs.IntVar(&f.Limit, "limit", 50, "`n` events per page, at most 1000")
	c.fs.BoolVar(&f.Oldest, "oldest", false, "oldest first")
	c.fs.StringVar(&f.Cursor, "cursor", "", "the `cursor` of the next page, as the previous page printed")
	pos, err := c.parse("FILE", "SEQ?")
	if err != nil {
		return err
	}
	if len(pos) == 2 {
		var listFlags []string
		c.fs.Visit(func(fl *flag.Flag) {
			if fl.Name != "json" && fl.Name != "url" && fl.Name != "token" {
				listFlags = append(listFlags, "-"+fl.Name)
			}
		})
		if len(listFlags) > 0 {
			return c.usage(fmt.Errorf("%s: the list's flags do not go with SEQ", strings.Join(listFlags, ", ")))
		}
		seq, err := strconv.ParseUint(pos[1], 10, 64)
		if err != nil || seq == 0 {
			return c.usage(fmt.Errorf("event SEQ must be a positive number, got %q", pos[1]))
		}
		return c.result(c.open(readAccess, func(s store) error {
			ev, err := s.GetEvent(ctx, seq)
			if errors.Is(err, jobrun.ErrNotFound) {
				return &worded{fmt.Sprintf("%s holds no event %d: it was never sent, or retention deleted it", pos[0], seq), err}
			}
			if err != nil {
				return err
			}
			return printEvent(ctx, c, s, ev, "")
		}))
	}
	if f.Limit < 1 || f.Limit > 1000 {
		return c.usage(fmt.Errorf("-limit must be between 1 and 1000, got %d", f.Limit))
	}
	return c.result(c.open(readAccess, func(s store) error {
		page, err := s.Events(ctx, f)
		if errors.Is(err, jobrun.ErrInvalid) {
			// The cursor, as much the user's input as the flags (see list).
			return c.usage(errors.New(message(err)))
		}
		if err != nil {
			return err
		}
		if *c.json {
			evs := make([]*jobrun.EventInfo, 0, len(page.Events))
			for _, ev := range page.Events {
				evs = append(evs, eventJSON(ev))
			}
			return c.print(struct {
				Events []*jobrun.EventInfo `json:"events"`
				Next   string              `json:"next"`
			}{evs, page.Next})
		}
		if len(page.Events) == 0 && page.Next == "" {
			fmt.Fprintln(stdout, "No events match.")
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprint(tw, "SEQ\tNAME\tSENT\tID\tRUNS\tDATA\n")
		for _, ev := range page.Events {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", ev.Seq, ev.Name, formatTime(ev.At), orDash(oneLine(ev.ID, 40)),
				runsColumn(ev), oneLine(string(ev.Data), 60))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if page.Next != "" {
			fmt.Fprintf(stdout, "\nMore events: jobrun events %s\n", nextPageArgs(args, page.Next))
		}
		return nil
	}))
}

// runsColumn is the RUNS column of the list: the IDs of the jobs an event started.
func runsColumn(ev *jobrun.EventInfo) string {
	if ev.DuplicateOf != 0 {
		return "duplicate of " + strconv.FormatUint(ev.DuplicateOf, 10)
	}
	return orDash(joinIDs(ev.Runs))
}

func joinIDs(ids []jobrun.ID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatUint(uint64(id), 10)
	}
	return strings.Join(s, ", ")
}

// printEvent prints one event with what became of its runs, after the line head if
// it is not "".
func printEvent(ctx context.Context, c *fileCmd, s store, ev *jobrun.EventInfo, head string) error {
	runs, err := eventRuns(ctx, s, ev)
	if err != nil {
		return err
	}
	if *c.json {
		return c.print(eventOut{eventJSON(ev), runs})
	}
	w := c.stdout
	if head != "" {
		fmt.Fprintf(w, "%s\n\n", head)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	field := func(name, value string) {
		if value != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", name, value)
		}
	}
	field("Event", strconv.FormatUint(ev.Seq, 10))
	field("Name", ev.Name)
	field("ID", ev.ID)
	field("Sent", formatTime(ev.At))
	if ev.DuplicateOf != 0 {
		field("Duplicate of", strconv.FormatUint(ev.DuplicateOf, 10))
	}
	field("Data", string(ev.Data))
	if err := tw.Flush(); err != nil {
		return err
	}
	switch {
	case len(runs) == 0 && ev.DuplicateOf != 0:
		fmt.Fprintf(w, "\nNo runs: a duplicate starts none, and event %d started none.\n", ev.DuplicateOf)
		return nil
	case len(runs) == 0:
		fmt.Fprintln(w, "\nNo runs: no function was registered on its name when it was sent.")
		return nil
	case ev.DuplicateOf != 0:
		fmt.Fprintf(w, "\nRuns of event %d (a duplicate starts none):\n", ev.DuplicateOf)
	default:
		fmt.Fprintln(w, "\nRuns:")
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "  JOB\tKIND\tQUEUE\tSTATE\n")
	for _, run := range runs {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\n", run.ID, orDash(run.Kind), orDash(run.Queue), run.State)
	}
	return tw.Flush()
}

func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFileCmd("send", sendSynopsis, sendDoc, args, stdout, stderr)
	id := c.fs.String("id", "", "the event's `ID`, which deduplicates: an event sent again with it within the dedup window starts nothing")
	pos, err := c.parse("FILE", "NAME", "JSON")
	if err != nil {
		return err
	}
	name, data := pos[1], json.RawMessage(pos[2])
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return c.usage(fmt.Errorf("JSON is not valid JSON (%v): give an object such as '{\"order_id\": 42}'", err))
	}
	if _, ok := v.(map[string]any); !ok {
		return c.usage(fmt.Errorf("JSON must be a JSON object such as '{\"order_id\": 42}', got %s", oneLine(string(data), 40)))
	}
	return c.result(c.open(manageAccess, func(s store) error {
		ev, err := s.Send(ctx, jobrun.Event{Name: name, Data: data, ID: *id})
		if errors.Is(err, jobrun.ErrInvalid) {
			// The name, the ID or the data's size: the user's input.
			return c.usage(errors.New(message(err)))
		}
		if err != nil {
			return err
		}
		var head string
		switch {
		case ev.DuplicateOf != 0:
			head = fmt.Sprintf("Event %d repeats the ID of event %d, sent within the dedup window: it is stored as a duplicate and started nothing.",
				ev.Seq, ev.DuplicateOf)
		case len(ev.Runs) == 0:
			head = fmt.Sprintf("Sent event %d: no function of the application was registered on %s when it last started, so it started no run.",
				ev.Seq, ev.Name)
		default:
			head = fmt.Sprintf("Sent event %d: it started %d %s, which run when an application runs their queues.",
				ev.Seq, len(ev.Runs), plural(len(ev.Runs), "run"))
		}
		return printEvent(ctx, c, s, ev, head)
	}))
}
