package pg_test

import (
	"context"
	"log"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/pg"
)

type WelcomeEmail struct {
	To string `json:"to"`
}

func (WelcomeEmail) Kind() string { return "welcome_email" }

// An application moves from a bbolt file to PostgreSQL by opening its runner on a
// pool; its handlers, options and calls stay as they were. Every process that
// opens the same database and schema shares the queues.
func ExampleOpen() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	r, err := pg.Open(ctx, pool, jobrun.WithQueue("mail", 20, nil)) // was: jobrun.Open("jobs.db", ...)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[WelcomeEmail]) error {
		log.Printf("welcome, %s", job.Args.To)
		return nil
	}, jobrun.Queue("mail"))
	if _, err := r.Enqueue(ctx, WelcomeEmail{To: "ada@example.com"}); err != nil {
		log.Fatal(err)
	}
	if err := r.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// A job enqueued in the application's transaction exists if and only if the
// transaction commits; the workers of every process are woken when it does.
func ExampleEnqueueTx() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	r, err := pg.Open(ctx, pool)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	tx, err := pool.Begin(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO users (email) VALUES ($1)`, "ada@example.com"); err != nil {
		log.Fatal(err)
	}
	if _, err := pg.EnqueueTx(ctx, tx, r, WelcomeEmail{To: "ada@example.com"}); err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		log.Fatal(err)
	}
}
