// Package jobruntest helps test code that uses jobrun: [Open] opens a runner on a
// fresh file in the test's temp dir, closed when the test ends; [RunFor] runs it on
// the fake clock of [testing/synctest]; [Reopen] and [Crash] restart it on its file.
//
// # Fake time
//
// Inside [synctest.Test], time is fake: time.Sleep returns at once, the clock moved
// on. RunFor runs a runner through a span of that time as a running process would:
// each delayed job at its run time, each retry its backoff after the failure, each
// cron fire at its time, until nothing more is due before the span ends:
//
//	func TestWelcomeEmail(t *testing.T) {
//		synctest.Test(t, func(t *testing.T) {
//			r := jobruntest.Open(t)
//			jobrun.Handle(r, sendWelcome) // fails twice, then succeeds
//			id, _ := r.Enqueue(t.Context(), Welcome{To: "ada@example.com"},
//				jobrun.Delay(time.Hour), jobrun.Backoff(time.Minute, time.Minute))
//			jobruntest.RunFor(t, r, 3*time.Hour) // returns at once: the clock is fake
//			info, _ := r.Get(t.Context(), id)
//			// info.State == jobrun.StateDone, info.Attempt == 3,
//			// and time.Now() is 3 hours on
//		})
//	}
//
// [RunUntilIdle] runs only what is due now: a job that fails and retries later
// waits for the next call. Use it, with time.Sleep to move the clock, to look at
// the state between steps.
//
// # Restarts
//
// Reopen closes a runner and opens its file again, as a restart does, so a test
// can check what the file kept; a running job is recorded ready again by Close.
// Crash restarts as if the process had been killed: the running job is found
// running and recovered by the new runner.
//
//	r = jobruntest.Crash(t, r) // sendWelcome was running: now ready again
//	jobrun.Handle(r, sendWelcome)
//	jobruntest.RunFor(t, r, time.Minute)
package jobruntest
