package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/dashboard"
)

type Welcome struct {
	To string `json:"to"`
}

func (Welcome) Kind() string { return "welcome" }

// The dashboard takes three lines in an application: the import, New, and a route
// under any prefix.
func Example() {
	dir, _ := os.MkdirTemp("", "dashboard-example")
	defer os.RemoveAll(dir)
	runner, err := jobrun.Open(filepath.Join(dir, "jobs.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer runner.Close()
	jobrun.Handle(runner, func(ctx context.Context, job *jobrun.Job[Welcome]) error { return nil })
	mux := http.NewServeMux()

	// The dashboard: basic authentication, actions enabled, under /jobs/.
	dash := dashboard.New(runner, dashboard.WithBasicAuth("admin", "correct horse"), dashboard.WithActions())
	mux.Handle("/jobs/", http.StripPrefix("/jobs", dash))

	// What a browser or a script then sees.
	id, _ := runner.Enqueue(context.Background(), Welcome{To: "ada@example.com"})
	runner.RunUntilIdle(context.Background())
	get := func(path string, auth bool) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if auth {
			req.SetBasicAuth("admin", "correct horse")
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec
	}
	fmt.Println("without a password:", get("/jobs/", false).Code)
	fmt.Println("overview:", get("/jobs/", true).Code)
	var job struct {
		State string          `json:"state"`
		Data  json.RawMessage `json:"data"`
	}
	json.Unmarshal(get(fmt.Sprintf("/jobs/api/jobs/%d", id), true).Body.Bytes(), &job)
	var args bytes.Buffer
	json.Compact(&args, job.Data)
	fmt.Println("job:", job.State, args.String())
	// Output:
	// without a password: 401
	// overview: 200
	// job: done {"to":"ada@example.com"}
}

// WithAuth checks each request with the application's own authentication, here a
// session cookie; requests it refuses get 401 Unauthorized.
func ExampleWithAuth() {
	dir, _ := os.MkdirTemp("", "dashboard-example")
	defer os.RemoveAll(dir)
	runner, err := jobrun.Open(filepath.Join(dir, "jobs.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer runner.Close()

	isAdmin := func(r *http.Request) bool {
		c, err := r.Cookie("session")
		return err == nil && c.Value == "admin-session" // the application's own check
	}
	dash := dashboard.New(runner, dashboard.WithAuth(isAdmin), dashboard.WithRedactedArgs())

	for _, cookie := range []string{"", "admin-session"} {
		req := httptest.NewRequest(http.MethodGet, "/api/metrics", nil)
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: "session", Value: cookie})
		}
		rec := httptest.NewRecorder()
		dash.ServeHTTP(rec, req)
		fmt.Printf("session %q: %d\n", cookie, rec.Code)
	}
	// Output:
	// session "": 401
	// session "admin-session": 200
}
