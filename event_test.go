package jobrun_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.etcd.io/bbolt"

	"github.com/jobrun/jobrun"
)

type userCreated struct {
	User  string `json:"user"`
	Email string `json:"email"`
}

func (userCreated) Kind() string { return "welcome-email" }

type crmSync struct {
	User string `json:"user"`
}

func (crmSync) Kind() string { return "crm-sync" }

// fanOut registers two functions on user/created and returns what each saw.
func fanOut(t *testing.T, r *jobrun.Runner) (seen *sync.Map) {
	t.Helper()
	seen = &sync.Map{}
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[userCreated]) error {
		seen.Store("welcome:"+j.Args.User, j.Info)
		return nil
	}, jobrun.On("user/created"), jobrun.Queue("mail"))
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[crmSync]) error {
		seen.Store("crm:"+j.Args.User, j.Info)
		return nil
	}, jobrun.On("user/created"), jobrun.On("user/updated"))
	return seen
}

func send(t *testing.T, r *jobrun.Runner, ev jobrun.Event) *jobrun.EventInfo {
	t.Helper()
	sent, err := r.Send(t.Context(), ev)
	if err != nil {
		t.Fatalf("send %s: %v", ev.Name, err)
	}
	return sent
}

func TestSendStartsOneRunPerFunction(t *testing.T) {
	r, _ := openRunner(t, jobrun.WithQueue("mail", 1, nil))
	seen := fanOut(t, r)
	sent := send(t, r, jobrun.Event{Name: "user/created", Data: userCreated{User: "ada", Email: "ada@example.com"}})
	if sent.Seq != 1 || sent.Name != "user/created" || len(sent.Runs) != 2 || sent.DuplicateOf != 0 {
		t.Fatalf("sent: %+v", sent)
	}
	if string(sent.Data) != `{"user":"ada","email":"ada@example.com"}` {
		t.Errorf("data %s", sent.Data)
	}
	for i, kind := range []string{"welcome-email", "crm-sync"} {
		in := get(t, r, sent.Runs[i])
		if in.Kind != kind || in.Event != sent.Seq || in.EventName != "user/created" || string(in.RawArgs) != string(sent.Data) {
			t.Errorf("run %d: %+v", i, in)
		}
	}
	if q := get(t, r, sent.Runs[0]).Queue; q != "mail" {
		t.Errorf("the welcome run is on queue %q, want its handler's default, mail", q)
	}
	runUntilIdle(t, r)
	for _, key := range []string{"welcome:ada", "crm:ada"} {
		in, ok := seen.Load(key)
		if !ok {
			t.Fatalf("%s did not run", key)
		}
		if in.(jobrun.Info).Event != sent.Seq {
			t.Errorf("%s: the handler's job names event %d, want %d", key, in.(jobrun.Info).Event, sent.Seq)
		}
	}
	// A second name of one function starts only it.
	updated := send(t, r, jobrun.Event{Name: "user/updated", Data: map[string]string{"user": "bob"}})
	if len(updated.Runs) != 1 || get(t, r, updated.Runs[0]).Kind != "crm-sync" {
		t.Fatalf("user/updated: %+v", updated)
	}
}

func TestSendWithNoFunctionIsStored(t *testing.T) {
	r, _ := openRunner(t)
	fanOut(t, r)
	sent := send(t, r, jobrun.Event{Name: "order/shipped"})
	if len(sent.Runs) != 0 || string(sent.Data) != "{}" {
		t.Fatalf("sent: %+v", sent)
	}
	got, err := r.GetEvent(t.Context(), sent.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "order/shipped" || len(got.Runs) != 0 || !got.At.Equal(sent.At) {
		t.Errorf("stored: %+v, sent %+v", got, sent)
	}
	wantCounts(t, r, "", map[jobrun.State]int{})
}

func TestSendDeduplicatesByID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t, jobrun.WithQueue("mail", 1, nil))
		fanOut(t, r)
		first := send(t, r, jobrun.Event{Name: "user/created", ID: "signup-42", Data: userCreated{User: "ada"}})
		time.Sleep(23 * time.Hour)
		again := send(t, r, jobrun.Event{Name: "user/created", ID: "signup-42", Data: userCreated{User: "ada"}})
		if again.DuplicateOf != first.Seq || !slices.Equal(again.Runs, first.Runs) || again.Seq == first.Seq {
			t.Fatalf("the duplicate: %+v, first %+v", again, first)
		}
		stored, err := r.GetEvent(t.Context(), again.Seq)
		if err != nil || stored.DuplicateOf != first.Seq {
			t.Fatalf("the duplicate as stored: %+v, %v", stored, err)
		}
		counts, err := r.Counts(t.Context(), "")
		if err != nil {
			t.Fatal(err)
		}
		if n := counts[jobrun.StateReady]; n != 2 {
			t.Errorf("%d runs ready, want the first event's 2 only", n)
		}
		// Past the window the ID starts runs again.
		time.Sleep(time.Hour)
		later := send(t, r, jobrun.Event{Name: "user/created", ID: "signup-42", Data: userCreated{User: "ada"}})
		if later.DuplicateOf != 0 || len(later.Runs) != 2 || slices.Equal(later.Runs, first.Runs) {
			t.Fatalf("after the window: %+v", later)
		}
		// Another name with the same ID is a duplicate too: IDs are global, as in Inngest.
		other := send(t, r, jobrun.Event{Name: "user/updated", ID: "signup-42"})
		if other.DuplicateOf != later.Seq {
			t.Errorf("same ID, other name: %+v", other)
		}
	})
}

func TestSendRefusesBadInput(t *testing.T) {
	r, _ := openRunner(t)
	fanOut(t, r)
	huge := map[string]string{"blob": strings.Repeat("x", jobrun.MaxArgsSize)}
	for _, tc := range []struct {
		name string
		ev   jobrun.Event
	}{
		{"empty name", jobrun.Event{}},
		{"name with a newline", jobrun.Event{Name: "user\ncreated"}},
		{"long name", jobrun.Event{Name: strings.Repeat("n", 256)}},
		{"data not an object", jobrun.Event{Name: "user/created", Data: 5}},
		{"data a list", jobrun.Event{Name: "user/created", Data: []string{"a"}}},
		{"data that does not encode", jobrun.Event{Name: "user/created", Data: map[string]any{"f": func() {}}}},
		{"huge data", jobrun.Event{Name: "user/created", Data: huge}},
		{"long ID", jobrun.Event{Name: "user/created", ID: strings.Repeat("i", 513)}},
		{"ID with white space around", jobrun.Event{Name: "user/created", ID: " 42"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := r.Send(t.Context(), tc.ev); !errors.Is(err, jobrun.ErrInvalid) {
				t.Fatalf("err %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := r.Enqueue(t.Context(), userCreated{}, jobrun.On("user/created")); !errors.Is(err, jobrun.ErrInvalid) {
		t.Errorf("Enqueue with On: %v, want ErrInvalid", err)
	}
	page, err := r.Events(t.Context(), jobrun.EventFilter{})
	if err != nil || len(page.Events) != 0 {
		t.Fatalf("refused events were stored: %+v, %v", page, err)
	}
	for _, opt := range []jobrun.Option{
		jobrun.WithEventRetention(time.Hour, 2*time.Hour),
		jobrun.WithEventRetention(time.Hour, -time.Second),
	} {
		if _, err := jobrun.Open(t.TempDir()+"/x.db", opt); !errors.Is(err, jobrun.ErrInvalid) {
			t.Errorf("open with a bad event retention: %v", err)
		}
	}
}

func TestSendTx(t *testing.T) {
	r, _ := openRunner(t, jobrun.WithQueue("mail", 1, nil))
	seen := fanOut(t, r)
	db := r.DB()
	errRollback := errors.New("roll back")
	err := db.Update(func(tx *bbolt.Tx) error {
		if _, err := r.SendTx(t.Context(), tx, jobrun.Event{Name: "user/created", Data: userCreated{User: "gone"}}); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	var sent *jobrun.EventInfo
	err = db.Update(func(tx *bbolt.Tx) error {
		users, err := tx.CreateBucketIfNotExists([]byte("users"))
		if err != nil {
			return err
		}
		if err := users.Put([]byte("ada"), []byte("ada@example.com")); err != nil {
			return err
		}
		sent, err = r.SendTx(t.Context(), tx, jobrun.Event{Name: "user/created", Data: userCreated{User: "ada"}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	page, err := r.Events(t.Context(), jobrun.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 1 || page.Events[0].Seq != sent.Seq || len(sent.Runs) != 2 {
		t.Fatalf("after a rollback and a commit: %+v, sent %+v", page.Events, sent)
	}
	runUntilIdle(t, r)
	if _, ok := seen.Load("welcome:gone"); ok {
		t.Error("the rolled-back event's run ran")
	}
	if _, ok := seen.Load("crm:ada"); !ok {
		t.Error("the committed event's run did not run")
	}
	if _, err := r.SendTx(t.Context(), nil, jobrun.Event{Name: "user/created"}); !errors.Is(err, jobrun.ErrInvalid) {
		t.Errorf("nil tx: %v", err)
	}
}

func TestEventsPages(t *testing.T) {
	r, _ := openRunner(t)
	var want []uint64
	for i := range 7 {
		name := "a"
		if i%2 == 1 {
			name = "b"
		}
		sent := send(t, r, jobrun.Event{Name: name, Data: map[string]int{"i": i}})
		if name == "a" {
			want = append(want, sent.Seq)
		}
	}
	read := func(f jobrun.EventFilter) (seqs []uint64) {
		t.Helper()
		f.Limit = 3
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("the pages never end")
			}
			page, err := r.Events(t.Context(), f)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range page.Events {
				if f.Name != "" && ev.Name != f.Name {
					t.Errorf("event %d is %s, filtered %s", ev.Seq, ev.Name, f.Name)
				}
				seqs = append(seqs, ev.Seq)
			}
			if page.Next == "" {
				return seqs
			}
			f.Cursor = page.Next
		}
	}
	if got := read(jobrun.EventFilter{Name: "a", Oldest: true}); !slices.Equal(got, want) {
		t.Errorf("a, oldest first: %v, want %v", got, want)
	}
	slices.Reverse(want)
	if got := read(jobrun.EventFilter{Name: "a"}); !slices.Equal(got, want) {
		t.Errorf("a, newest first: %v, want %v", got, want)
	}
	if got := read(jobrun.EventFilter{}); !slices.Equal(got, []uint64{7, 6, 5, 4, 3, 2, 1}) {
		t.Errorf("all, newest first: %v", got)
	}
	if got := read(jobrun.EventFilter{Oldest: true}); !slices.Equal(got, []uint64{1, 2, 3, 4, 5, 6, 7}) {
		t.Errorf("all, oldest first: %v", got)
	}
	if got := read(jobrun.EventFilter{Name: "c"}); len(got) != 0 {
		t.Errorf("an unknown name: %v", got)
	}
	if _, err := r.Events(t.Context(), jobrun.EventFilter{Cursor: "!"}); !errors.Is(err, jobrun.ErrInvalid) {
		t.Errorf("bad cursor: %v", err)
	}
	if _, err := r.Events(t.Context(), jobrun.EventFilter{Limit: 1001}); !errors.Is(err, jobrun.ErrInvalid) {
		t.Errorf("limit over 1,000: %v", err)
	}
	if _, err := r.GetEvent(t.Context(), 99); !errors.Is(err, jobrun.ErrNotFound) {
		t.Errorf("get event 99: %v", err)
	}
}

func TestEventRetention(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t, jobrun.WithEventRetention(48*time.Hour, 0))
		go func() { _ = r.Run(t.Context()) }()
		old := send(t, r, jobrun.Event{Name: "a", ID: "one"})
		time.Sleep(25 * time.Hour)
		young := send(t, r, jobrun.Event{Name: "a"})
		time.Sleep(24 * time.Hour)
		synctest.Wait()
		if _, err := r.GetEvent(t.Context(), old.Seq); !errors.Is(err, jobrun.ErrNotFound) {
			t.Errorf("the 49-hour-old event: %v, want it deleted", err)
		}
		if _, err := r.GetEvent(t.Context(), young.Seq); err != nil {
			t.Errorf("the 24-hour-old event: %v", err)
		}
		again := send(t, r, jobrun.Event{Name: "a", ID: "one"})
		if again.DuplicateOf != 0 {
			t.Errorf("an ID past its window still deduplicates: %+v", again)
		}
		time.Sleep(49 * time.Hour)
		synctest.Wait()
		page, err := r.Events(t.Context(), jobrun.EventFilter{})
		if err != nil || len(page.Events) != 0 {
			t.Errorf("after every event expired: %+v, %v", page, err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSendReadOnly(t *testing.T) {
	r, path := openRunner(t)
	send(t, r, jobrun.Event{Name: "a"})
	r.Close()
	ro, err := jobrun.Open(path, jobrun.WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.Send(t.Context(), jobrun.Event{Name: "a"}); !errors.Is(err, jobrun.ErrReadOnly) {
		t.Errorf("send on a read-only runner: %v", err)
	}
	page, err := ro.Events(t.Context(), jobrun.EventFilter{})
	if err != nil || len(page.Events) != 1 {
		t.Errorf("read-only events: %+v, %v", page, err)
	}
}

type welcomed struct {
	User string `json:"user"`
}

func (welcomed) Kind() string { return "welcomed" }

func TestSendEventIsAStep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		var attempts, downstream sync.Map
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[signup]) error {
			n, _ := attempts.LoadOrStore(j.Args.User, new(int))
			*n.(*int)++
			sent, err := jobrun.SendEvent(ctx, "notify", jobrun.Event{Name: "user/welcomed", Data: welcomed{User: j.Args.User}})
			if err != nil {
				return err
			}
			if len(sent.Runs) != 1 || sent.Name != "user/welcomed" {
				return jobrun.Permanent(errors.New("unexpected event: " + string(sent.Data)))
			}
			if *n.(*int) == 1 {
				return errors.New("fail after the event was sent") // the retry must not send it again
			}
			return nil
		}, jobrun.Backoff(time.Second, time.Second))
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[welcomed]) error {
			n, _ := downstream.LoadOrStore(j.Args.User, new(int))
			*n.(*int)++
			return nil
		}, jobrun.On("user/welcomed"))
		id := enqueue(t, r, signup{User: "ada"})
		in := runUntilState(t, r, id, jobrun.StateDone)
		if in.State != jobrun.StateDone {
			t.Fatalf("state %s: %s", in.State, in.LastError)
		}
		if n, _ := attempts.Load("ada"); *n.(*int) != 2 {
			t.Errorf("%d attempts, want 2", *n.(*int))
		}
		page, err := r.Events(t.Context(), jobrun.EventFilter{Name: "user/welcomed"})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Events) != 1 {
			t.Fatalf("%d events sent, want 1 across two attempts", len(page.Events))
		}
		if n, ok := downstream.Load("ada"); !ok || *n.(*int) != 1 {
			t.Errorf("the event's function ran %v times, want once", n)
		}
		if len(in.Steps) != 1 || in.Steps[0].Name != "notify" || in.Steps[0].State != "done" {
			t.Errorf("steps: %+v", in.Steps)
		}
	})
}

func TestSendEventRefusals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		if _, err := jobrun.SendEvent(t.Context(), "notify", jobrun.Event{Name: "a"}); !errors.Is(err, jobrun.ErrInvalid) {
			t.Errorf("outside a handler: %v", err)
		}
		var bad, clash error
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[signup]) error {
			if j.Attempt == 1 {
				_, bad = jobrun.SendEvent(ctx, "notify", jobrun.Event{Name: "a", Data: 5})
				if _, err := jobrun.Step(ctx, "x", func(ctx context.Context) (int, error) { return 1, nil }); err != nil {
					return err
				}
				return errors.New("again")
			}
			// A later attempt that reaches the stored Step's name with SendEvent.
			_, clash = jobrun.SendEvent(ctx, "x", jobrun.Event{Name: "a"})
			return clash
		}, jobrun.Backoff(time.Second, time.Second))
		id := enqueue(t, r, signup{User: "ada"})
		in := runUntilState(t, r, id, jobrun.StateFailed)
		if !errors.Is(bad, jobrun.ErrInvalid) {
			t.Errorf("data not an object: %v", bad)
		}
		if clash == nil || !strings.Contains(clash.Error(), "not a SendEvent") || in.State != jobrun.StateFailed {
			t.Errorf("SendEvent on a stored Step's name: %v, job %s", clash, in.State)
		}
		if page, _ := r.Events(t.Context(), jobrun.EventFilter{}); len(page.Events) != 0 {
			t.Errorf("%d events sent", len(page.Events))
		}
	})
}

// TestSendFromAProcessWithoutFunctions: a runner that registers no handler (the
// jobrun command, a process that only sends) starts the runs the application's
// functions would, with their handlers' options, from the functions the
// application stored when it ran.
func TestSendFromAProcessWithoutFunctions(t *testing.T) {
	r, path := openRunner(t, jobrun.WithQueue("mail", 1, nil))
	seen := fanOut(t, r)
	runUntilIdle(t, r) // the first session stores the functions
	r.Close()

	sender, err := jobrun.Open(path, jobrun.WithStrictKinds(false))
	if err != nil {
		t.Fatal(err)
	}
	sent := send(t, sender, jobrun.Event{Name: "user/created", Data: userCreated{User: "ada"}})
	if len(sent.Runs) != 2 {
		t.Fatalf("runs %v, want one per stored function", sent.Runs)
	}
	welcome := get(t, sender, sent.Runs[0]) // in the order the application registered its functions
	if welcome.Kind != "welcome-email" || welcome.Queue != "mail" || welcome.EventName != "user/created" {
		t.Errorf("the welcome run: %s on %s, event %q; want the handler's queue, mail", welcome.Kind, welcome.Queue, welcome.EventName)
	}
	if other := send(t, sender, jobrun.Event{Name: "user/deleted"}); len(other.Runs) != 0 {
		t.Errorf("an event no function is on: runs %v", other.Runs)
	}
	sender.Close()

	r = reopen(t, path, jobrun.WithQueue("mail", 1, nil))
	seen = fanOut(t, r)
	runUntilIdle(t, r)
	for _, key := range []string{"welcome:ada", "crm:ada"} {
		if _, ok := seen.Load(key); !ok {
			t.Errorf("%s did not run", key)
		}
	}
}
