package main

import (
	"context"
	"fmt"
	"log"
	"os/signal"
	"syscall"
	"time"

	"github.com/jobrun/jobrun"
)

// WelcomeEmail is a job's args: any JSON-encodable type with a Kind.
type WelcomeEmail struct {
	UserID int    `json:"user_id"`
	To     string `json:"to"`
}

// Kind is the name stored with each job; it selects the handler.
func (WelcomeEmail) Kind() string { return "welcome_email" }

func main() {
	r, err := jobrun.Open("jobs.db", jobrun.WithQueue("mail", 8, nil))
	if err != nil {
		log.Fatal(err)
	}

	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[WelcomeEmail]) error {
		fmt.Printf("sending welcome email to %s (attempt %d)\n", job.Args.To, job.Attempt)
		return job.SetResult(map[string]string{"status": "sent"})
	}, jobrun.Queue("mail"), jobrun.MaxAttempts(5), jobrun.Backoff(time.Second, time.Minute))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// Enqueue returns once the job is durable (committed and fsynced).
	if _, err := r.Enqueue(ctx, WelcomeEmail{UserID: 1, To: "ada@example.com"}); err != nil {
		log.Fatal(err)
	}

	go r.Run(context.Background())
	<-ctx.Done()

	// Let running jobs finish for up to 10s; whatever is still running then is
	// recorded as ready and resumes at the next start.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Shutdown(shutdownCtx); err != nil {
		log.Print(err)
	}
}
