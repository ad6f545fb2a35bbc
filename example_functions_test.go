package jobrun_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/jobrun/jobrun"
)

// The three functions of Inngest's guide, as jobrun functions: handlers registered
// On an event, made of steps.

// UserCreated is the data of the "user/created" event and the args of its runs.
type UserCreated struct {
	ID    int    `json:"id"`
	Email string `json:"email"`
}

// Kind names the function.
func (UserCreated) Kind() string { return "send-welcome-email" }

// sendWelcomeEmail runs once per "user/created" event, in three steps: a retry
// resumes after the last step that finished.
func ExampleOn() {
	dir, _ := os.MkdirTemp("", "jobrun-example")
	defer os.RemoveAll(dir)
	r, err := jobrun.Open(filepath.Join(dir, "jobs.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[UserCreated]) error {
		name, err := jobrun.Step(ctx, "load-user", func(ctx context.Context) (string, error) {
			return "Ada", nil // from the application's database
		})
		if err != nil {
			return err
		}
		msgID, err := jobrun.Step(ctx, "send-email", func(ctx context.Context) (string, error) {
			fmt.Printf("welcome, %s <%s>\n", name, job.Args.Email)
			return "msg-1", nil
		})
		if err != nil {
			return err
		}
		_, err = jobrun.Step(ctx, "record-sent", func(ctx context.Context) (bool, error) {
			fmt.Println("recorded", msgID, "for user", job.Args.ID)
			return true, nil
		})
		return err
	}, jobrun.On("user/created"))

	ctx := context.Background()
	sent, err := r.Send(ctx, jobrun.Event{Name: "user/created", ID: "signup-42",
		Data: UserCreated{ID: 42, Email: "ada@example.com"}})
	if err != nil {
		log.Fatal(err)
	}
	// The same event ID again, within 24 hours: stored as a duplicate, no second run.
	again, err := r.Send(ctx, jobrun.Event{Name: "user/created", ID: "signup-42",
		Data: UserCreated{ID: 42, Email: "ada@example.com"}})
	if err != nil {
		log.Fatal(err)
	}
	if err := r.RunUntilIdle(ctx); err != nil {
		log.Fatal(err)
	}
	run, err := r.Get(ctx, sent.Runs[0])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(run.State, len(run.Steps), "steps; duplicate of", again.DuplicateOf, "with the same run:", again.Runs[0] == run.ID)
	// Output:
	// welcome, Ada <ada@example.com>
	// recorded msg-1 for user 42
	// done 3 steps; duplicate of 1 with the same run: true
}

// ImageUploaded is the data of "image/uploaded".
type ImageUploaded struct {
	URL string `json:"url"`
}

// Kind names the function.
func (ImageUploaded) Kind() string { return "process-image" }

// processImageWithRetry retries 3 times (four attempts in all, Inngest's "retries:
// 3"), per step: the download that succeeded is not repeated when the resize fails.
func ExampleStep_retry() {
	dir, _ := os.MkdirTemp("", "jobrun-example")
	defer os.RemoveAll(dir)
	r, err := jobrun.Open(filepath.Join(dir, "jobs.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	resizes := 0
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[ImageUploaded]) error {
		file, err := jobrun.Step(ctx, "download", func(ctx context.Context) (string, error) {
			fmt.Println("downloading", job.Args.URL)
			return "/tmp/cat.png", nil
		})
		if err != nil {
			return err
		}
		thumb, err := jobrun.Step(ctx, "resize", func(ctx context.Context) (string, error) {
			if resizes++; resizes < 3 {
				return "", errors.New("out of memory") // transient: the step is retried
			}
			fmt.Println("resized", file, "on try", resizes)
			return "/tmp/cat-small.png", nil
		})
		if err != nil {
			return err
		}
		_, err = jobrun.Step(ctx, "upload", func(ctx context.Context) (bool, error) {
			fmt.Println("uploaded", thumb)
			return true, nil
		})
		return err
	}, jobrun.On("image/uploaded"), jobrun.MaxAttempts(4))

	ctx := context.Background()
	sent, err := r.Send(ctx, jobrun.Event{Name: "image/uploaded", Data: ImageUploaded{URL: "https://example.com/cat.png"}})
	if err != nil {
		log.Fatal(err)
	}
	for {
		if err := r.RunUntilIdle(ctx); err != nil {
			log.Fatal(err)
		}
		run, err := r.Get(ctx, sent.Runs[0])
		if err != nil {
			log.Fatal(err)
		}
		if run.State == jobrun.StateDone || run.State == jobrun.StateFailed {
			fmt.Println(run.State)
			break
		}
		// Here, instead of waiting out the retry's backoff:
		if err := r.Promote(ctx, run.ID); err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// downloading https://example.com/cat.png
	// resized /tmp/cat.png on try 3
	// uploaded /tmp/cat-small.png
	// done
}

// DailyDigest is the args of the cron-triggered function.
type DailyDigest struct{}

// Kind names the function.
func (DailyDigest) Kind() string { return "daily-digest" }

// DigestRequest is the data of "email/send-digest", one per user.
type DigestRequest struct {
	User string `json:"user"`
}

// Kind names the function that sends one digest.
func (DigestRequest) Kind() string { return "send-digest" }

// dailyDigest: a schedule starts the function every day at 9:00, which sends one
// "email/send-digest" event per user; each starts a run of the sending function.
// SendEvent is a step: the events are stored with it, so a retry or a crash never
// sends them twice.
func ExampleSendEvent() {
	dir, _ := os.MkdirTemp("", "jobrun-example")
	defer os.RemoveAll(dir)
	r, err := jobrun.Open(filepath.Join(dir, "jobs.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[DailyDigest]) error {
		users, err := jobrun.Step(ctx, "load-users", func(ctx context.Context) ([]string, error) {
			return []string{"ada", "grace"}, nil
		})
		if err != nil {
			return err
		}
		for _, u := range users {
			if _, err := jobrun.SendEvent(ctx, "send-"+u, jobrun.Event{Name: "email/send-digest",
				Data: DigestRequest{User: u}}); err != nil {
				return err
			}
		}
		return nil
	})
	var mu sync.Mutex
	var sentTo []string
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[DigestRequest]) error {
		mu.Lock()
		defer mu.Unlock()
		sentTo = append(sentTo, job.Args.User)
		return nil
	}, jobrun.On("email/send-digest"))

	ctx := context.Background()
	if err := r.Schedule(ctx, "daily-digest", "0 9 * * *", DailyDigest{}, jobrun.TimeZone("UTC")); err != nil {
		log.Fatal(err)
	}
	// Here, instead of waiting for 9:00:
	if _, err := r.TriggerSchedule(ctx, "daily-digest"); err != nil {
		log.Fatal(err)
	}
	if err := r.RunUntilIdle(ctx); err != nil {
		log.Fatal(err)
	}
	sort.Strings(sentTo)
	page, err := r.Events(ctx, jobrun.EventFilter{Name: "email/send-digest"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("digests sent to", sentTo, "by", len(page.Events), "events")
	// Output:
	// digests sent to [ada grace] by 2 events
}

// Purchase is the args of a run that waits for its payment.
type Purchase struct {
	ID int `json:"id"`
}

// Kind names the function.
func (Purchase) Kind() string { return "fulfil-purchase" }

// Payment is the data of "payment/received".
type Payment struct {
	PurchaseID int `json:"purchase_id"`
	Cents      int `json:"cents"`
}

// A run waits for the event that matches it, holding no worker, with a timeout.
func ExampleWaitFor() {
	dir, _ := os.MkdirTemp("", "jobrun-example")
	defer os.RemoveAll(dir)
	r, err := jobrun.Open(filepath.Join(dir, "jobs.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[Purchase]) error {
		pay, ok, err := jobrun.WaitFor[Payment](ctx, "wait-payment", "payment/received",
			jobrun.Match("purchase_id", job.Args.ID), 7*24*time.Hour)
		if err != nil {
			return err // suspends the job until the event or the timeout
		}
		if !ok {
			fmt.Println("purchase", job.Args.ID, "unpaid after a week")
			return nil
		}
		fmt.Println("purchase", job.Args.ID, "paid:", pay.Cents, "cents")
		return nil
	})

	ctx := context.Background()
	id, err := r.Enqueue(ctx, Purchase{ID: 7})
	if err != nil {
		log.Fatal(err)
	}
	if err := r.RunUntilIdle(ctx); err != nil {
		log.Fatal(err)
	}
	info, _ := r.Get(ctx, id)
	fmt.Println(info.State, "waiting for", info.Steps[0].WaitEvent, info.Steps[0].WaitMatch)
	if _, err := r.Send(ctx, jobrun.Event{Name: "payment/received", Data: Payment{PurchaseID: 7, Cents: 1999}}); err != nil {
		log.Fatal(err)
	}
	if err := r.RunUntilIdle(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// scheduled waiting for payment/received purchase_id=7
	// purchase 7 paid: 1999 cents
}

// Resize is the args of a child run.
type Resize struct {
	URL   string `json:"url"`
	Width int    `json:"width"`
}

// Kind names the child's handler.
func (Resize) Kind() string { return "resize" }

// Gallery is the args of the parent.
type Gallery struct {
	URL string `json:"url"`
}

// Kind names the parent's handler.
func (Gallery) Kind() string { return "gallery" }

// A run starts child runs and waits for them all (fan-out, fan-in); each child's
// result comes back as the step's result.
func ExampleInvokeAll() {
	dir, _ := os.MkdirTemp("", "jobrun-example")
	defer os.RemoveAll(dir)
	r, err := jobrun.Open(filepath.Join(dir, "jobs.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[Resize]) error {
		return job.SetResult(fmt.Sprintf("%s?w=%d", job.Args.URL, job.Args.Width))
	})
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[Gallery]) error {
		var batch []jobrun.Args
		for _, w := range []int{128, 512, 1024} {
			batch = append(batch, Resize{URL: job.Args.URL, Width: w})
		}
		children, err := jobrun.InvokeAll[string](ctx, "thumbnails", batch)
		if err != nil {
			return err // suspends the job until every child has ended
		}
		for _, c := range children {
			fmt.Println(c.State, c.Result)
		}
		return nil
	})

	ctx := context.Background()
	if _, err := r.Enqueue(ctx, Gallery{URL: "https://example.com/cat.png"}); err != nil {
		log.Fatal(err)
	}
	if err := r.RunUntilIdle(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// done https://example.com/cat.png?w=128
	// done https://example.com/cat.png?w=512
	// done https://example.com/cat.png?w=1024
}

// Wait returns when the job has finished, woken by the commit that finishes it;
// Result decodes what its handler stored with SetResult.
func ExampleRunner_Wait() {
	dir, _ := os.MkdirTemp("", "jobrun-example")
	defer os.RemoveAll(dir)
	r, err := jobrun.Open(filepath.Join(dir, "jobs.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[Resize]) error {
		return job.SetResult(fmt.Sprintf("%s?w=%d", job.Args.URL, job.Args.Width))
	})

	ctx := context.Background()
	go r.Run(ctx)
	id, err := r.Enqueue(ctx, Resize{URL: "https://example.com/cat.png", Width: 256})
	if err != nil {
		log.Fatal(err)
	}
	info, err := r.Wait(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	url, err := jobrun.Result[string](info)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(info.State, url)
	// Output:
	// done https://example.com/cat.png?w=256
}
