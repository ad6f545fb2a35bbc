package jobrun_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/time/rate"

	"github.com/jobrun/jobrun"
)

// WelcomeEmail is a job's args: any JSON-encodable type with a Kind.
type WelcomeEmail struct {
	UserID int    `json:"user_id"`
	To     string `json:"to"`
}

// Kind is the name stored with each job; it selects the handler.
func (WelcomeEmail) Kind() string { return "welcome_email" }

func Example() {
	dir, _ := os.MkdirTemp("", "jobrun-example")
	defer os.RemoveAll(dir)

	r, err := jobrun.Open(filepath.Join(dir, "jobs.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[WelcomeEmail]) error {
		fmt.Printf("sending welcome email to %s\n", job.Args.To)
		return job.SetResult(map[string]string{"status": "sent"})
	})

	ctx := context.Background()
	id, err := r.Enqueue(ctx, WelcomeEmail{UserID: 1, To: "ada@example.com"})
	if err != nil {
		log.Fatal(err)
	}
	// In a service: go r.Run(ctx), then r.Shutdown(ctx) on exit. In tests and here:
	if err := r.RunUntilIdle(ctx); err != nil {
		log.Fatal(err)
	}

	info, _ := r.Get(ctx, id)
	fmt.Println(info.State, info.Attempt, string(info.Result))
	// Output:
	// sending welcome email to ada@example.com
	// done 1 {"status":"sent"}
}

// Handlers fail an attempt by returning an error (or panicking). The job is retried
// with backoff until its attempts run out; Permanent ends it at once.
func ExamplePermanent() {
	dir, _ := os.MkdirTemp("", "jobrun-example")
	defer os.RemoveAll(dir)
	r, _ := jobrun.Open(filepath.Join(dir, "jobs.db"))
	defer r.Close()

	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[WelcomeEmail]) error {
		if job.Args.To == "" {
			return jobrun.Permanent(errors.New("no address: retrying will not help"))
		}
		return nil
	}, jobrun.MaxAttempts(5))

	ctx := context.Background()
	id, _ := r.Enqueue(ctx, WelcomeEmail{UserID: 2})
	r.RunUntilIdle(ctx)

	info, _ := r.Get(ctx, id)
	fmt.Println(info.State, info.Attempt, "of", info.MaxAttempts)
	fmt.Println(info.LastError)
	// Output:
	// failed 1 of 5
	// permanent: no address: retrying will not help
}

// EnqueueTx stores the job in the application's own transaction: the user and the
// welcome email exist together, or neither does.
func ExampleRunner_EnqueueTx() {
	dir, _ := os.MkdirTemp("", "jobrun-example")
	defer os.RemoveAll(dir)
	db, _ := bbolt.Open(filepath.Join(dir, "app.db"), 0o600, nil)
	defer db.Close()

	r, _ := jobrun.New(db) // shares the application's database; Close leaves it open
	defer r.Close()
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[WelcomeEmail]) error {
		fmt.Println("welcome", job.Args.To)
		return nil
	})

	ctx := context.Background()
	err := db.Update(func(tx *bbolt.Tx) error {
		users, err := tx.CreateBucketIfNotExists([]byte("users"))
		if err != nil {
			return err
		}
		if err := users.Put([]byte("3"), []byte("grace@example.com")); err != nil {
			return err
		}
		_, err = r.EnqueueTx(ctx, tx, WelcomeEmail{UserID: 3, To: "grace@example.com"})
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	r.RunUntilIdle(ctx)
	// Output:
	// welcome grace@example.com
}

// Queues have their own worker pools; Counts reads per-state counters without
// scanning jobs.
func ExampleRunner_Counts() {
	dir, _ := os.MkdirTemp("", "jobrun-example")
	defer os.RemoveAll(dir)
	r, _ := jobrun.Open(filepath.Join(dir, "jobs.db"), jobrun.WithQueue("mail", 4, nil))
	defer r.Close()
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[WelcomeEmail]) error {
		return nil
	}, jobrun.Queue("mail"))

	ctx := context.Background()
	batch := []jobrun.Args{WelcomeEmail{To: "a@example.com"}, WelcomeEmail{To: "b@example.com"}}
	if _, err := r.EnqueueMany(ctx, batch); err != nil { // one commit for the batch
		log.Fatal(err)
	}
	before, _ := r.Counts(ctx, "mail")
	r.RunUntilIdle(ctx)
	after, _ := r.Counts(ctx, "mail")
	fmt.Println("ready before:", before[jobrun.StateReady], "done after:", after[jobrun.StateDone])
	// Output:
	// ready before: 2 done after: 2
}

// A delayed job waits in the scheduled state until its time; Promote runs it early.
func ExampleDelay() {
	dir, _ := os.MkdirTemp("", "jobrun-example")
	defer os.RemoveAll(dir)
	r, _ := jobrun.Open(filepath.Join(dir, "jobs.db"))
	defer r.Close()
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[WelcomeEmail]) error {
		fmt.Println("reminder to", job.Args.To)
		return nil
	})

	ctx := context.Background()
	id, _ := r.Enqueue(ctx, WelcomeEmail{To: "ada@example.com"}, jobrun.Delay(24*time.Hour))
	r.RunUntilIdle(ctx) // not due yet: nothing runs
	info, _ := r.Get(ctx, id)
	fmt.Println(info.State)

	r.Promote(ctx, id) // due now
	r.RunUntilIdle(ctx)
	// Output:
	// scheduled
	// reminder to ada@example.com
}

// A queue with a rate limiter starts at most as many jobs as the limiter allows: here
// a burst of 2, then one every 10ms. One limiter can be shared by several queues.
func ExampleWithQueue_rateLimit() {
	dir, _ := os.MkdirTemp("", "jobrun-example")
	defer os.RemoveAll(dir)
	limit := rate.NewLimiter(rate.Every(10*time.Millisecond), 2)
	r, _ := jobrun.Open(filepath.Join(dir, "jobs.db"), jobrun.WithQueue("api", 1, limit))
	defer r.Close()
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[WelcomeEmail]) error {
		fmt.Println("calling the API for", job.Args.To)
		return nil
	}, jobrun.Queue("api"))

	ctx := context.Background()
	for _, to := range []string{"a", "b", "c", "d"} {
		r.Enqueue(ctx, WelcomeEmail{To: to})
	}
	r.RunUntilIdle(ctx)
	// Output:
	// calling the API for a
	// calling the API for b
	// calling the API for c
	// calling the API for d
}

// DailyReport is the args of a scheduled job.
type DailyReport struct{}

func (DailyReport) Kind() string { return "daily_report" }

// A schedule is stored in the file and fires across restarts; TriggerSchedule runs it
// now, as a dashboard's "run now" does.
func ExampleRunner_Schedule() {
	dir, _ := os.MkdirTemp("", "jobrun-example")
	defer os.RemoveAll(dir)
	r, _ := jobrun.Open(filepath.Join(dir, "jobs.db"))
	defer r.Close()
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[DailyReport]) error {
		fmt.Println("building the report of schedule", job.Schedule)
		return nil
	})

	ctx := context.Background()
	err := r.Schedule(ctx, "daily-report", "0 7 * * *", DailyReport{},
		jobrun.TimeZone("Europe/Paris"), jobrun.SkipOverlap())
	if err != nil {
		log.Fatal(err)
	}
	schedules, _ := r.Schedules(ctx)
	fmt.Println(schedules[0].Name, schedules[0].Spec, schedules[0].Next.In(time.UTC).Hour() < 7)

	r.TriggerSchedule(ctx, "daily-report")
	r.RunUntilIdle(ctx)
	// Output:
	// daily-report 0 7 * * * true
	// building the report of schedule daily-report
}

// List pages through jobs by queue, kind, state or tag, newest first by default,
// reading an index rather than every job.
func ExampleRunner_List() {
	dir, _ := os.MkdirTemp("", "jobrun-example")
	defer os.RemoveAll(dir)
	r, _ := jobrun.Open(filepath.Join(dir, "jobs.db"))
	defer r.Close()
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[WelcomeEmail]) error {
		if job.Args.To == "" {
			return jobrun.Permanent(errors.New("no address"))
		}
		return nil
	})
	ctx := context.Background()
	for _, to := range []string{"ada@example.com", "", "grace@example.com"} {
		r.Enqueue(ctx, WelcomeEmail{UserID: 7, To: to}, jobrun.Tags("user-7"))
	}
	r.RunUntilIdle(ctx)

	page, _ := r.List(ctx, jobrun.Filter{Tag: "user-7", State: jobrun.StateDone})
	for _, job := range page.Jobs {
		fmt.Println(job.ID, job.State, string(job.RawArgs))
	}
	// The dead-letter set: failed jobs. Retry them all once the cause is fixed, or
	// purge them with Clean.
	dead, _ := r.List(ctx, jobrun.Filter{State: jobrun.StateFailed})
	fmt.Println("failed:", len(dead.Jobs), dead.Jobs[0].LastError)
	// Output:
	// 3 done {"user_id":7,"to":"grace@example.com"}
	// 1 done {"user_id":7,"to":"ada@example.com"}
	// failed: 1 permanent: no address
}

// Cancel stops a waiting job at once, and a running one through its context.
func ExampleRunner_Cancel() {
	dir, _ := os.MkdirTemp("", "jobrun-example")
	defer os.RemoveAll(dir)
	r, _ := jobrun.Open(filepath.Join(dir, "jobs.db"))
	defer r.Close()
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[WelcomeEmail]) error { return nil })
	ctx := context.Background()
	id, _ := r.Enqueue(ctx, WelcomeEmail{To: "ada@example.com"}, jobrun.Delay(time.Hour))
	if err := r.Cancel(ctx, id); err != nil {
		log.Fatal(err)
	}
	info, _ := r.Get(ctx, id)
	fmt.Println(info.State)
	// A canceled job can run again with Retry; Delete removes it.
	err := r.Cancel(ctx, id)
	fmt.Println(errors.Is(err, jobrun.ErrState))
	// Output:
	// canceled
	// true
}

// A change hook sees every committed change, in order, after it is durable.
func ExampleWithChangeHook() {
	dir, _ := os.MkdirTemp("", "jobrun-example")
	defer os.RemoveAll(dir)
	r, _ := jobrun.Open(filepath.Join(dir, "jobs.db"), jobrun.WithChangeHook(func(e jobrun.Change) {
		fmt.Println(e.ID, e.Type, e.State)
	}))
	defer r.Close()
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[WelcomeEmail]) error { return nil })
	ctx := context.Background()
	r.Enqueue(ctx, WelcomeEmail{To: "ada@example.com"})
	r.RunUntilIdle(ctx)
	// Output:
	// 1 enqueued ready
	// 1 started running
	// 1 done done
}

// Retention deletes finished jobs by age and by count per queue, in the background.
func ExampleWithRetention() {
	dir, _ := os.MkdirTemp("", "jobrun-example")
	defer os.RemoveAll(dir)
	r, err := jobrun.Open(filepath.Join(dir, "jobs.db"),
		// Every queue: keep done jobs an hour, failed ones 30 days.
		jobrun.WithRetention("", jobrun.Retention{Done: time.Hour, Failed: 30 * 24 * time.Hour}),
		// The chatty "metrics" queue: only its last 1,000 done jobs.
		jobrun.WithRetention("metrics", jobrun.Retention{MaxDone: 1000}))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	// What a setting leaves out keeps its default (done 24h, failed and canceled
	// 7 days); a negative count limit is refused.
	_, err = jobrun.Open(filepath.Join(dir, "other.db"), jobrun.WithRetention("", jobrun.Retention{MaxDone: -1}))
	fmt.Println(errors.Is(err, jobrun.ErrInvalid))
	// Output:
	// true
}

// Per-key concurrency: at most one job per customer runs at once, in order, while
// other customers' jobs use the queue's other workers.
func ExampleWithKeyLimits() {
	dir, _ := os.MkdirTemp("", "jobrun-example")
	defer os.RemoveAll(dir)
	r, _ := jobrun.Open(filepath.Join(dir, "jobs.db"),
		jobrun.WithQueue("sync", 8, nil),
		// One at a time per key, and at most 5 starts a second per key.
		jobrun.WithKeyLimits("sync", 1, 5, 1))
	defer r.Close()
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[WelcomeEmail]) error { return nil },
		jobrun.Queue("sync"))
	ctx := context.Background()
	for _, customer := range []string{"acme", "acme", "globex"} {
		r.Enqueue(ctx, WelcomeEmail{To: customer}, jobrun.ConcurrencyKey(customer))
	}
	r.RunUntilIdle(ctx)
	counts, _ := r.Counts(ctx, "sync")
	fmt.Println("done:", counts[jobrun.StateDone])
	// Output:
	// done: 3
}

// A tool that looks at an application's file opens it read-only: it reads every job
// and never writes, so the application's retention, schedules and crashed jobs are
// left to the application.
func ExampleWithReadOnly() {
	dir, _ := os.MkdirTemp("", "jobrun-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "jobs.db")

	app, err := jobrun.Open(path, jobrun.WithStrictKinds(false))
	if err != nil {
		log.Fatal(err)
	}
	app.Enqueue(context.Background(), WelcomeEmail{To: "ada@example.com"})
	app.Close()

	tool, err := jobrun.Open(path, jobrun.WithReadOnly())
	if err != nil {
		log.Fatal(err)
	}
	defer tool.Close()
	counts, _ := tool.Counts(context.Background(), "")
	fmt.Println("ready:", counts[jobrun.StateReady])
	_, err = tool.Enqueue(context.Background(), WelcomeEmail{To: "bob@example.com"})
	fmt.Println(errors.Is(err, jobrun.ErrReadOnly))
	// Output:
	// ready: 1
	// true
}

// Jitter(0) makes the backoff exact: a job that fails retries after 2s, then 4s, 8s,
// and so on up to the maximum, as BullMQ's {type: 'exponential', delay: 2000}.
func ExampleJitter() {
	dir, _ := os.MkdirTemp("", "jobrun-example")
	defer os.RemoveAll(dir)
	r, err := jobrun.Open(filepath.Join(dir, "jobs.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[WelcomeEmail]) error {
		return errors.New("mail server down")
	}, jobrun.Backoff(2*time.Second, time.Minute), jobrun.Jitter(0))

	ctx := context.Background()
	id, _ := r.Enqueue(ctx, WelcomeEmail{To: "ada@example.com"})
	r.RunUntilIdle(ctx)
	info, _ := r.Get(ctx, id)
	fmt.Println(info.State, info.RunAt.Sub(info.Errors[0].At))
	// Output:
	// retrying 2s
}

// Order is the args of a job made of steps.
type Order struct {
	ID string `json:"id"`
}

func (Order) Kind() string { return "order" }

// A job made of steps resumes after its last finished step: here the first attempt
// fails after charging the card, and the retry ships without charging again.
func ExampleStep() {
	dir, _ := os.MkdirTemp("", "jobrun-example")
	defer os.RemoveAll(dir)
	r, err := jobrun.Open(filepath.Join(dir, "jobs.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	shipped := false
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[Order]) error {
		charge, err := jobrun.Step(ctx, "charge", func(ctx context.Context) (string, error) {
			fmt.Println("charging order", job.Args.ID)
			return "ch_1", nil
		})
		if err != nil {
			return err
		}
		_, err = jobrun.Step(ctx, "ship", func(ctx context.Context) (bool, error) {
			if !shipped {
				shipped = true
				return false, errors.New("carrier unavailable")
			}
			fmt.Println("shipping order", job.Args.ID, "paid by", charge)
			return true, nil
		})
		return err
	})

	ctx := context.Background()
	id, err := r.Enqueue(ctx, Order{ID: "A-17"})
	if err != nil {
		log.Fatal(err)
	}
	for {
		if err := r.RunUntilIdle(ctx); err != nil {
			log.Fatal(err)
		}
		info, err := r.Get(ctx, id)
		if err != nil {
			log.Fatal(err)
		}
		if info.State == jobrun.StateDone {
			for _, s := range info.Steps {
				fmt.Println(s.Name, s.State, string(s.Result))
			}
			break
		}
		// Retrying: bring the next attempt forward instead of waiting out its backoff.
		if err := r.Promote(ctx, id); err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// charging order A-17
	// shipping order A-17 paid by ch_1
	// charge done "ch_1"
	// ship done true
}

// Trial is the args of a job that sleeps between its steps.
type Trial struct {
	User string `json:"user"`
}

func (Trial) Kind() string { return "trial" }

// A sleep suspends the job for its duration without holding a worker; here Promote
// ends it early, in place of waiting two weeks.
func ExampleSleep() {
	dir, _ := os.MkdirTemp("", "jobrun-example")
	defer os.RemoveAll(dir)
	r, err := jobrun.Open(filepath.Join(dir, "jobs.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[Trial]) error {
		if _, err := jobrun.Step(ctx, "welcome", func(ctx context.Context) (bool, error) {
			fmt.Println("welcome,", job.Args.User)
			return true, nil
		}); err != nil {
			return err
		}
		if err := jobrun.Sleep(ctx, "trial-period", 14*24*time.Hour); err != nil {
			return err // suspends the job: return Sleep's error
		}
		_, err := jobrun.Step(ctx, "trial-ended", func(ctx context.Context) (bool, error) {
			fmt.Println("your trial has ended,", job.Args.User)
			return true, nil
		})
		return err
	})

	ctx := context.Background()
	id, err := r.Enqueue(ctx, Trial{User: "ada"})
	if err != nil {
		log.Fatal(err)
	}
	if err := r.RunUntilIdle(ctx); err != nil { // returns: the sleeping job is not due
		log.Fatal(err)
	}
	info, err := r.Get(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(info.State, "for", info.RunAt.Sub(info.CreatedAt).Round(24*time.Hour))
	if err := r.Promote(ctx, id); err != nil {
		log.Fatal(err)
	}
	if err := r.RunUntilIdle(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// welcome, ada
	// scheduled for 336h0m0s
	// your trial has ended, ada
}

// A request ID crosses the queue: the enqueue hook copies it from the caller's
// context into the job's metadata, and a middleware puts it back into the context
// of every attempt, here to log it.
func ExampleWithMiddleware() {
	dir, _ := os.MkdirTemp("", "jobrun-example")
	defer os.RemoveAll(dir)
	type requestKey struct{}
	r, err := jobrun.Open(filepath.Join(dir, "jobs.db"),
		jobrun.WithEnqueueHook(func(ctx context.Context, job *jobrun.Info) error {
			if id, ok := ctx.Value(requestKey{}).(string); ok {
				job.Metadata["request_id"] = id
			}
			return nil
		}),
		jobrun.WithMiddleware(func(ctx context.Context, job *jobrun.Info, next func(context.Context) error) error {
			ctx = context.WithValue(ctx, requestKey{}, job.Metadata["request_id"])
			err := next(ctx)
			fmt.Printf("%s attempt %d of request %s: %v\n", job.Kind, job.Attempt, job.Metadata["request_id"], err)
			return err
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[WelcomeEmail]) error {
		fmt.Println("sending for request", ctx.Value(requestKey{}))
		return nil
	})
	ctx := context.WithValue(context.Background(), requestKey{}, "req-7")
	id, _ := r.Enqueue(ctx, WelcomeEmail{To: "ada@example.com"}, jobrun.Metadata(map[string]string{"tenant": "acme"}))
	r.RunUntilIdle(ctx)
	info, _ := r.Get(ctx, id)
	fmt.Println(info.Metadata)
	// Output:
	// sending for request req-7
	// welcome_email attempt 1 of request req-7: <nil>
	// map[request_id:req-7 tenant:acme]
}
