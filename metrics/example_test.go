package metrics_test

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/metrics"
)

// Thumbnail is a job's args.
type Thumbnail struct{ Image string }

// Kind names the job type.
func (Thumbnail) Kind() string { return "thumbnail" }

// A service registers the collector and serves /metrics; here one scrape is printed,
// the non-zero job counts of its first lines.
func Example() {
	dir, _ := os.MkdirTemp("", "jobrun-metrics-example")
	defer os.RemoveAll(dir)
	r, err := jobrun.Open(filepath.Join(dir, "jobs.db"), jobrun.WithQueue("images", 2, nil))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[Thumbnail]) error { return nil },
		jobrun.Queue("images"))

	ctx := context.Background()
	c, err := metrics.New(ctx, r) // counts changes until ctx ends or r closes
	if err != nil {
		log.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	handler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	// In a service: http.Handle("/metrics", handler).

	for _, img := range []string{"a.png", "b.png", "c.png"} {
		r.Enqueue(ctx, Thumbnail{Image: img})
	}
	r.Enqueue(ctx, Thumbnail{Image: "later.png"}, jobrun.Delay(time.Hour))
	r.RunUntilIdle(ctx)

	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	lines := bufio.NewScanner(rec.Body)
	for lines.Scan() {
		if line := lines.Text(); strings.HasPrefix(line, "jobrun_jobs{") && !strings.HasSuffix(line, " 0") {
			fmt.Println(line)
		}
	}
	// Output:
	// jobrun_jobs{queue="images",state="done"} 3
	// jobrun_jobs{queue="images",state="scheduled"} 1
}
