package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/client"
	"github.com/jobrun/jobrun/dashboard"
)

// Invoice is a job kind of the application; the other process may use the same
// type, or any type whose Kind and JSON are the same.
type Invoice struct {
	Order int `json:"order"`
}

func (Invoice) Kind() string { return "invoice" }

// The application mounts its dashboard with a token and enqueue enabled; another
// process enqueues through it and follows the job.
func Example() {
	dir, _ := os.MkdirTemp("", "client-example")
	defer os.RemoveAll(dir)

	// The application: a runner, a handler, the dashboard (here on a test server).
	runner, err := jobrun.Open(filepath.Join(dir, "jobs.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer runner.Close()
	jobrun.Handle(runner, func(ctx context.Context, job *jobrun.Job[Invoice]) error {
		return job.SetResult(fmt.Sprintf("INV-%d", job.Args.Order))
	}, jobrun.MaxAttempts(3))
	srv := httptest.NewServer(dashboard.New(runner,
		dashboard.WithBearerToken("s3cret"), dashboard.WithActions(), dashboard.WithEnqueue()))
	defer srv.Close()

	// Another process: a client of the dashboard.
	ctx := context.Background()
	c, err := client.New(srv.URL, client.WithBearerToken("s3cret"))
	if err != nil {
		log.Fatal(err)
	}
	id, err := c.Enqueue(ctx, Invoice{Order: 42}, client.Priority(5), client.UniqueKey("invoice-{order}"))
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Enqueue(ctx, Invoice{Order: 42}, client.UniqueKey("invoice-{order}"))
	fmt.Println("again:", errors.Is(err, jobrun.ErrDuplicate))

	runner.RunUntilIdle(ctx) // the application runs it

	job, err := c.Get(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(job.Kind, job.State, job.MaxAttempts, job.Priority, string(job.Result))
	_, err = c.Get(ctx, id+1)
	fmt.Println("next:", errors.Is(err, jobrun.ErrNotFound))
	// Output:
	// again: true
	// invoice done 3 5 "INV-42"
	// next: true
}

// A process enqueues a job of a kind it has no type for with args that marshal to
// the JSON its handler expects.
func ExampleClient_Enqueue() {
	dir, _ := os.MkdirTemp("", "client-example")
	defer os.RemoveAll(dir)
	runner, err := jobrun.Open(filepath.Join(dir, "jobs.db"), jobrun.WithStrictKinds(false))
	if err != nil {
		log.Fatal(err)
	}
	defer runner.Close()
	srv := httptest.NewServer(dashboard.New(runner, dashboard.WithBearerToken("s3cret"), dashboard.WithEnqueue()))
	defer srv.Close()

	c, _ := client.New(srv.URL, client.WithBearerToken("s3cret"))
	id, err := c.Enqueue(context.Background(), anyKind{"report.build", map[string]any{"month": "2026-11"}},
		client.Queue("reports"), client.Delay(time.Hour), client.Tags("finance"))
	if err != nil {
		log.Fatal(err)
	}
	job, _ := runner.Get(context.Background(), id)
	fmt.Println(job.Kind, job.Queue, job.State, job.Tags, string(job.RawArgs))
	// Output:
	// report.build reports scheduled [finance] {"month":"2026-11"}
}

// anyKind is args of any kind: Kind returns kind, and the JSON is that of args.
type anyKind struct {
	kind string
	args any
}

func (a anyKind) Kind() string                 { return a.kind }
func (a anyKind) MarshalJSON() ([]byte, error) { return json.Marshal(a.args) }
