package main

import (
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jobrun/jobrun"
)

// orderArgs is the data of an "order/placed" event, the args of its functions' runs.
type orderArgs struct {
	OrderID int    `json:"order_id"`
	Card    string `json:"card,omitempty"`
}

func (orderArgs) Kind() string { return "order.fulfil" }

type auditArgs struct {
	OrderID int `json:"order_id"`
}

func (auditArgs) Kind() string { return "order.audit" }

// eventFixture writes the file of an application whose functions run on events,
// and returns its path. It must run in a synctest bubble, whose start is t0; the
// fixture's events are, by Seq:
//
//	1  order/placed   {"order_id":1}, ID "order-1"  runs 1 (order.fulfil, sleeping), 2 (order.audit, deleted)
//	2  order/charged  sent by job 1's step notify   no runs
//	3  order/placed   {"order_id":2,...declined}    runs 3 (failed at its step charge), 4 (done)
//	4  order/placed   {"order_id":3}                runs 5 (waiting for order/shipped), 6 (done)
//	5  order/charged  sent by job 5's step notify   no runs
//	6  order/shipped  {"order_id":1}                woke job 1
//	7  order/placed   ID "order-1" again            a duplicate of 1
//
// Job 1's steps take 1s (reserve) and 2s (charge) each, so every time is t0 plus a
// few seconds: T3 is t0+3s, T9 t0+9s.
func eventFixture(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.db")
	r, err := jobrun.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[orderArgs]) error {
		if _, err := jobrun.Step(ctx, "reserve", func(ctx context.Context) (map[string]bool, error) {
			time.Sleep(time.Second)
			return map[string]bool{"reserved": true}, nil
		}); err != nil {
			return err
		}
		if _, err := jobrun.Step(ctx, "charge", func(ctx context.Context) (string, error) {
			time.Sleep(2 * time.Second)
			if j.Args.Card == "declined" {
				return "", jobrun.Permanent(errors.New("card declined\nby the bank"))
			}
			return "ch_1", nil
		}); err != nil {
			return err
		}
		if _, err := jobrun.SendEvent(ctx, "notify", jobrun.Event{Name: "order/charged",
			Data: map[string]int{"order_id": j.Args.OrderID}}); err != nil {
			return err
		}
		_, ok, err := jobrun.WaitFor[map[string]any](ctx, "wait-shipment", "order/shipped",
			jobrun.Match("order_id", j.Args.OrderID), 7*24*time.Hour)
		if err != nil {
			return err
		}
		if !ok {
			return jobrun.Permanent(errors.New("not shipped in time"))
		}
		return jobrun.Sleep(ctx, "cool-off", time.Hour)
	}, jobrun.On("order/placed"))
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[auditArgs]) error {
		return j.SetResult("logged")
	}, jobrun.On("order/placed"))

	ctx := t.Context()
	send := func(name, id string, data any) {
		t.Helper()
		if _, err := r.Send(ctx, jobrun.Event{Name: name, ID: id, Data: data}); err != nil {
			t.Fatal(err)
		}
		if err := r.RunUntilIdle(ctx); err != nil {
			t.Fatal(err)
		}
	}
	send("order/placed", "order-1", orderArgs{OrderID: 1})
	send("order/placed", "", orderArgs{OrderID: 2, Card: "declined"})
	send("order/placed", "", orderArgs{OrderID: 3})
	send("order/shipped", "", map[string]int{"order_id": 1})
	send("order/placed", "order-1", orderArgs{OrderID: 1})
	if err := r.Delete(ctx, 2); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[jobrun.ID]jobrun.State{1: jobrun.StateScheduled, 3: jobrun.StateFailed, 4: jobrun.StateDone,
		5: jobrun.StateScheduled, 6: jobrun.StateDone} {
		if j, err := r.Get(ctx, id); err != nil || j.State != want {
			t.Fatalf("job %d: %v, %v; want %s", id, j, err, want)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// times replaces T0, T1, ... T9 in s with t0 plus that many seconds, as the tables
// print them, and T1H9 with t0+1h9s.
func times(s string) string {
	var pairs []string
	pairs = append(pairs, "T1H9", formatTime(t0.Add(time.Hour+9*time.Second)), "T7D3", formatTime(t0.Add(7*24*time.Hour+3*time.Second)),
		"T7D9", formatTime(t0.Add(7*24*time.Hour+9*time.Second)))
	for i := 9; i >= 0; i-- {
		pairs = append(pairs, "T"+string(rune('0'+i)), formatTime(t0.Add(time.Duration(i)*time.Second)))
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

func TestEventsList(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := eventFixture(t)
		sum := fileSum(t, db)
		defer func() {
			if fileSum(t, db) != sum {
				t.Error("events changed the file")
			}
		}()
		out, _ := cli(t, 0, "events", db)
		mustEqual(t, out, times(`SEQ  NAME           SENT                 ID       RUNS            DATA
7    order/placed   T9  order-1  duplicate of 1  {"order_id":1}
6    order/shipped  T9  -        -               {"order_id":1}
5    order/charged  T9  -        -               {"order_id":3}
4    order/placed   T6  -        5, 6            {"order_id":3}
3    order/placed   T3  -        3, 4            {"order_id":2,"card":"declined"}
2    order/charged  T3  -        -               {"order_id":1}
1    order/placed   T0  order-1  1, 2            {"order_id":1}
`))

		out, _ = cli(t, 0, "events", db, "-name", "order/placed", "-oldest")
		mustSeqs(t, out, "1", "3", "4", "7")
		out, _ = cli(t, 0, "events", "-name=order/nothing", db)
		mustEqual(t, out, "No events match.\n")

		// Pages: the text prints the next command line, which works as printed.
		out, _ = cli(t, 0, "events", db, "-limit", "3")
		mustSeqs(t, out, "7", "6", "5")
		m := regexp.MustCompile(`\nMore events: jobrun (events .* -limit 3 -cursor (\S+))\n$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no next page line:\n%s", out)
		}
		out, _ = cli(t, 0, strings.Fields(m[1])...)
		mustSeqs(t, out, "4", "3", "2")

		// -json pages chain through next until it is "", each event as EventInfo's JSON.
		var seqs []uint64
		cursor := ""
		for range 5 {
			out, _ = cli(t, 0, "events", db, "-json", "-name", "order/placed", "-limit", "3", "-cursor", cursor)
			var page struct {
				Events []jobrun.EventInfo
				Next   string
			}
			decode(t, out, &page)
			for _, ev := range page.Events {
				seqs = append(seqs, ev.Seq)
			}
			if cursor = page.Next; cursor == "" {
				break
			}
		}
		if !slices.Equal(seqs, []uint64{7, 4, 3, 1}) {
			t.Errorf("events -json pages gave %v, want 7 4 3 1", seqs)
		}
		out, _ = cli(t, 0, "events", db, "-json", "-limit", "1")
		mustEqual(t, out, `{
  "events": [
    {
      "seq": 7,
      "name": "order/placed",
      "id": "order-1",
      "data": {
        "order_id": 1
      },
      "at": "2000-01-01T00:00:09Z",
      "runs": [
        1,
        2
      ],
      "duplicate_of": 1
    }
  ],
  "next": "AAAAAAAAAAY"
}
`)
		out, _ = cli(t, 0, "events", db, "-json", "-name", "none")
		mustEqual(t, out, "{\n  \"events\": [],\n  \"next\": \"\"\n}\n")
	})
}

// mustSeqs checks the Seqs of events' table, in order.
func mustSeqs(t *testing.T, out string, want ...string) {
	t.Helper()
	var got []string
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) > 0 && f[0] != "SEQ" && f[0] != "More" {
			got = append(got, f[0])
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("Seqs %v, want %v, in:\n%s", got, want, out)
	}
}

func TestEventsShow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := eventFixture(t)
		out, _ := cli(t, 0, "events", db, "1")
		mustEqual(t, out, times(`Event:  1
Name:   order/placed
ID:     order-1
Sent:   T0
Data:   {"order_id":1}

Runs:
  JOB  KIND          QUEUE    STATE
  1    order.fulfil  default  scheduled
  2    -             -        deleted
`))
		out, _ = cli(t, 0, "events", db, "7")
		mustEqual(t, out, times(`Event:         7
Name:          order/placed
ID:            order-1
Sent:          T9
Duplicate of:  1
Data:          {"order_id":1}

Runs of event 1 (a duplicate starts none):
  JOB  KIND          QUEUE    STATE
  1    order.fulfil  default  scheduled
  2    -             -        deleted
`))
		out, _ = cli(t, 0, "events", db, "2")
		mustContain(t, out, "Data:   {\"order_id\":1}\n\nNo runs: no function was registered on its name when it was sent.\n")

		out, _ = cli(t, 0, "events", db, "3", "-json")
		var ev struct {
			jobrun.EventInfo
			Jobs []runOut
		}
		decode(t, out, &ev)
		if ev.Seq != 3 || ev.Name != "order/placed" || compact(t, ev.Data) != `{"order_id":2,"card":"declined"}` ||
			!slices.Equal(ev.Runs, []jobrun.ID{3, 4}) || !ev.At.Equal(t0.Add(3*time.Second)) ||
			!slices.Equal(ev.Jobs, []runOut{{3, "order.fulfil", "default", "failed"}, {4, "order.audit", "default", "done"}}) {
			t.Errorf("events 3 -json: %+v", ev)
		}
		out, _ = cli(t, 0, "events", db, "2", "-json")
		mustContain(t, out, "\"jobs\": []\n")

		_, errs := cli(t, 1, "events", db, "99")
		mustEqual(t, errs, "jobrun events: "+db+" holds no event 99: it was never sent, or retention deleted it\n")
	})
}

func TestShowSteps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := eventFixture(t)
		// In the order they started, not by name; the sleep holds the job.
		out, _ := cli(t, 0, "show", db, "1")
		mustContain(t, out, times(`Event:     1 (order/placed)
Args:      {"order_id":1}

Steps:
  STEP           STATE  ATTEMPTS  STARTED              DURATION  DETAIL
  reserve        done   1         T0  1s        {"reserved":true}
  charge         done   1         T1  2s        "ch_1"
  notify         done   1         T3  0s        sent event 2
  wait-shipment  done   1         T3  6s        received event 6 (order/shipped): {"order_id":1}
  cool-off       sleep  1         T9  -         sleeps until T1H9
`))
		out, _ = cli(t, 0, "show", db, "3")
		mustContain(t, out, times(`
Steps:
  STEP     STATE   ATTEMPTS  STARTED              DURATION  DETAIL
  reserve  done    1         T3  1s        {"reserved":true}
  charge   failed  1         T4  2s        error: card declined…
`))
		out, _ = cli(t, 0, "show", db, "5")
		mustContain(t, out, times(`  wait-shipment  waiting  1         T9  -         waits for order/shipped where order_id=3 until T7D9
`))
		out, _ = cli(t, 0, "show", db, "6")
		lacks(t, out, "Steps:")
		mustContain(t, out, "Event:     4 (order/placed)\n")

		// -json: jobrun.Info's JSON, steps and event included.
		out, _ = cli(t, 0, "show", db, "1", "-json")
		var j jobrun.Info
		decode(t, out, &j)
		if j.Event != 1 || j.EventName != "order/placed" || len(j.Steps) != 5 {
			t.Errorf("show 1 -json: event %d %q, %d steps", j.Event, j.EventName, len(j.Steps))
		}
	})
}

func TestShowStepsAfterTheirTime(t *testing.T) {
	now := t0.Add(time.Hour)
	j := &jobrun.Info{State: jobrun.StateDone}
	for _, tc := range []struct {
		s        jobrun.StepInfo
		duration string
		detail   string
	}{
		{jobrun.StepInfo{State: "sleep", StartedAt: t0, FinishedAt: t0.Add(time.Minute)}, "1m0s", "slept until " + formatTime(t0.Add(time.Minute))},
		{jobrun.StepInfo{State: "sleep", StartedAt: t0, FinishedAt: t0.Add(2 * time.Hour)}, "-", "woken before " + formatTime(t0.Add(2*time.Hour)) + " (promoted)"},
		{jobrun.StepInfo{State: "timed_out", WaitEvent: "paid", StartedAt: t0, FinishedAt: t0.Add(time.Minute)}, "1m0s", "no paid by " + formatTime(t0.Add(time.Minute))},
		{jobrun.StepInfo{State: "done", Event: 4, Result: []byte(`{"seq":4,"runs":[7,8]}`), StartedAt: t0, FinishedAt: t0.Add(1500 * time.Microsecond)},
			"2ms", "sent event 4, which started jobs 7, 8"},
		{jobrun.StepInfo{State: "done", StartedAt: t0, FinishedAt: t0.Add(90 * time.Second), Result: []byte("null")}, "1m30s", "null"},
	} {
		took := "-"
		if d, ok := stepDuration(tc.s, now); ok {
			took = formatDuration(d)
		}
		if detail := stepDetail(j, tc.s, now); took != tc.duration || detail != tc.detail {
			t.Errorf("step %+v: duration %s, detail %q; want %s, %q", tc.s, took, detail, tc.duration, tc.detail)
		}
	}
}

func TestSend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := eventFixture(t)
		// The runs of the functions the application stored, with its options, in
		// the order it registered them, as it starts them itself.
		out, _ := cli(t, 0, "send", db, "order/placed", `{"order_id": 4}`)
		mustEqual(t, out, times(`Sent event 8: it started 2 runs, which run when an application runs their queues.

Event:  8
Name:   order/placed
Sent:   T9
Data:   {"order_id":4}

Runs:
  JOB  KIND          QUEUE    STATE
  7    order.fulfil  default  ready
  8    order.audit   default  ready
`))
		out, _ = cli(t, 0, "show", db, "7")
		mustContain(t, out, "Event:     8 (order/placed)\nArgs:      {\"order_id\":4}\n")

		// An event a job waits for wakes it.
		out, _ = cli(t, 0, "send", db, "order/shipped", `{"order_id": 3}`, "-json")
		var sent eventOut
		decode(t, out, &sent)
		if sent.Seq != 9 || sent.Name != "order/shipped" || len(sent.Runs) != 0 || len(sent.Jobs) != 0 {
			t.Errorf("send -json: %+v", sent)
		}
		out, _ = cli(t, 0, "show", db, "5", "-json")
		var j jobrun.Info
		decode(t, out, &j)
		if j.State != jobrun.StateReady || j.Steps[len(j.Steps)-1].Name != "wait-shipment" || j.Steps[len(j.Steps)-1].Event != 9 {
			t.Errorf("job 5 after the event it waited for: %s, steps %+v", j.State, j.Steps)
		}

		// A name no function is on, and a duplicate ID.
		out, _ = cli(t, 0, "send", db, "user/created", `{}`)
		mustContain(t, out, "Sent event 10: no function of the application was registered on user/created when it last started, so it started no run.\n")
		out, _ = cli(t, 0, "send", db, "-id", "order-1", "order/placed", `{"order_id": 1}`)
		for _, want := range []string{"Event 11 repeats the ID of event 1, sent within the dedup window: it is stored as a duplicate and started nothing.\n",
			"Duplicate of:  1\n", "Runs of event 1 (a duplicate starts none):\n"} {
			mustContain(t, out, want)
		}
		out, _ = cli(t, 0, "send", db, "order/placed", `{"order_id": 1}`, "-id", "order-1", "-json")
		decode(t, out, &sent)
		if sent.Seq != 12 || sent.DuplicateOf != 1 || sent.ID != "order-1" || !slices.Equal(sent.Runs, []jobrun.ID{1, 2}) ||
			!slices.Equal(sent.Jobs, []runOut{{1, "order.fulfil", "default", "scheduled"}, {ID: 2, State: "deleted"}}) {
			t.Errorf("send -json of a duplicate: %+v", sent)
		}

		// Bad data is a usage error, before the file is opened.
		for _, tc := range []struct{ data, errs string }{
			{`[1, 2]`, `jobrun send: JSON must be a JSON object such as '{"order_id": 42}', got [1, 2]` + "\n" + sendSynopsis},
			{`null`, "JSON must be a JSON object"},
			{`"text"`, "JSON must be a JSON object"},
			{`{"order_id": 4`, "jobrun send: JSON is not valid JSON (unexpected end of JSON input): give an object"},
			{`{order_id: 4}`, "JSON is not valid JSON (invalid character 'o' looking for beginning of object key string)"},
		} {
			_, errs := cli(t, 2, "send", db, "order/placed", tc.data)
			mustContain(t, errs, tc.errs)
		}
		_, errs := cli(t, 2, "send", db, "order placed ", `{}`)
		mustContain(t, errs, "jobrun send: ")
		mustContain(t, errs, sendSynopsis)
		lacks(t, errs, "jobrun: ")
		_, errs = cli(t, 2, "send", db, "order/placed", `{}`, "-id", " x")
		mustContain(t, errs, "event ID")
		_, errs = cli(t, 2, "send", db, "[]", "-json")
		var e struct{ Error, Usage string }
		decode(t, errs, &e)
		if e.Error != "missing JSON" || e.Usage != sendSynopsis {
			t.Errorf("send -json without JSON: %+v", e)
		}

		// What the file holds now, read by the library.
		r, err := jobrun.Open(db, jobrun.WithReadOnly())
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		page, err := r.Events(t.Context(), jobrun.EventFilter{})
		if err != nil || len(page.Events) != 12 {
			t.Fatalf("events: %d, %v; want 12", len(page.Events), err)
		}
	})
}

func lacks(t *testing.T, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			t.Errorf("%q contains %q", s, sub)
		}
	}
}

type galleryArgs struct{ N int }

func (galleryArgs) Kind() string { return "gallery" }

type thumbArgs struct{ W int }

func (thumbArgs) Kind() string { return "thumb" }

// TestShowChildren: show names a child's parent, and what an Invoke step waits for.
func TestShowChildren(t *testing.T) {
	path := filepath.Join(t.TempDir(), "children.db")
	r, err := jobrun.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[thumbArgs]) error { return nil }, jobrun.Queue("thumbs"))
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[galleryArgs]) error {
		_, err := jobrun.InvokeAll[int](ctx, "thumbnails", []jobrun.Args{thumbArgs{W: 1}, thumbArgs{W: 2}}, jobrun.Queue("thumbs"))
		return err
	})
	if _, err := r.Enqueue(t.Context(), galleryArgs{}); err != nil {
		t.Fatal(err)
	}
	// No worker runs "thumbs": the parent waits for its children.
	if err := r.RunUntilIdle(t.Context()); !errors.Is(err, jobrun.ErrNoWorkers) {
		t.Fatal(err)
	}
	r.Close()
	out, _ := cli(t, 0, "show", path, "1")
	mustContain(t, out, "invoking")
	mustContain(t, out, "Run at:    when its children end\n")
	mustContain(t, out, "-         waits for child jobs 2, 3")
	out, _ = cli(t, 0, "show", path, "2")
	mustContain(t, out, "Parent:    1 (a child run it invoked)")
}
