// Package jobruntest opens runners for tests: a runner on a fresh file in the test's
// temp dir, closed when the test ends. With testing/synctest, delays, retries and
// cron schedules run on the bubble's fake clock:
//
//	func TestWelcomeEmail(t *testing.T) {
//		synctest.Test(t, func(t *testing.T) {
//			r := jobruntest.Open(t)
//			jobrun.Handle(r, sendWelcome)
//			id, _ := r.Enqueue(t.Context(), Welcome{To: "ada@example.com"}, jobrun.Delay(time.Hour))
//			time.Sleep(time.Hour) // fake time: returns at once
//			jobruntest.RunUntilIdle(t, r)
//			// assert on r.Get(t.Context(), id)
//		})
//	}
package jobruntest

import (
	"path/filepath"
	"testing"

	"github.com/jobrun/jobrun"
)

// Open opens a runner on a new file in t's temp dir and closes it when t ends. It
// fails t if the runner cannot be opened. opts are passed to jobrun.Open.
func Open(t testing.TB, opts ...jobrun.Option) *jobrun.Runner {
	t.Helper()
	r, err := jobrun.Open(filepath.Join(t.TempDir(), "jobs.db"), opts...)
	if err != nil {
		t.Fatalf("jobruntest: open runner: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}
