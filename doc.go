// Package jobrun is an embeddable background job runner: it persists jobs in a local
// bbolt file and runs them on goroutine pools inside your process, with retries,
// backoff, priorities, delays, rate limits and crash recovery, and no server to run.
//
// # Jobs and handlers
//
// A job's args are a Go type with a Kind method, stored as JSON. Handle registers the
// handler of a kind; Enqueue stores a job and returns its ID once it is durable:
//
//	type Email struct{ To string }
//
//	func (Email) Kind() string { return "email" }
//
//	r, err := jobrun.Open("jobs.db")
//	jobrun.Handle(r, func(ctx context.Context, job *jobrun.Job[Email]) error {
//		return send(ctx, job.Args.To)
//	})
//	id, err := r.Enqueue(ctx, Email{To: "ada@example.com"})
//	go r.Run(ctx)
//	...
//	r.Shutdown(ctx)
//
// # Queues
//
// Every job belongs to a queue (Queue option, "default" otherwise). Each queue
// configured with WithQueue has its own workers and, optionally, a rate limiter; a
// slow queue never starves another. Within a queue, higher Priority runs first and
// jobs of equal priority run in enqueue order; that holds for jobs claimed ahead of
// the workers too (see State). A queue shows at most as many running jobs as it has
// workers. RunUntilIdle reports ready jobs of queues the runner has no workers for
// (ErrNoWorkers).
//
// # Scheduling and flow control
//
// Delay and At hold a job until its time (Promote runs it early). WithKeyLimits
// bounds the concurrency and rate of the jobs sharing a ConcurrencyKey. UniqueKey, Throttle
// and Debounce make enqueueing idempotent. Pause and Resume stop and restart a queue,
// persistently. Schedule stores a named cron schedule in the file; each fire enqueues
// its job and advances the schedule in one transaction, so restarts and crashes
// neither miss nor double a fire.
//
// # Failures and retries
//
// A handler's error, a panic (recovered, with its stack) or a passed Timeout fails
// the attempt. The job is retried after a delay from its Backoff policy (exponential
// with ±50% jitter by default, exact with Jitter(0), Backoff(d, d), or the args'
// own RetryDelayer) until
// MaxAttempts runs are spent; then it is failed, the dead-letter state, and keeps its
// error history. Permanent ends a job without retries; Snooze runs it again later
// without spending an attempt. The states and their transitions are drawn on State.
//
// # Status and management
//
// Get returns everything about a job; a handler reports progress (SetProgress), log
// lines (Log) and a result (SetResult). List pages through jobs by queue, kind, state
// or tag through indexes; Counts and Queues read counters kept in every commit.
// Cancel, Retry, RetryFailed, Delete, Promote and Clean change jobs, each in one
// transaction. WithChangeHook and Watch observe every committed change, in order.
// Finished jobs are deleted after their Retention (a day for done jobs, a week for
// failed ones by default) by a cleaner in the commit loop; failed jobs are the
// dead-letter set. Backup copies the file while jobs run; Compact shrinks it.
//
// # Durability
//
// Enqueue returns after the job is committed and fsynced. Every state change (a
// claim, a completion, a retry) is one bbolt transaction that also updates the
// per-queue counters, so a crash leaves the file consistent. Execution is
// at-least-once: a job whose handler finished but whose completion was not yet
// committed when the process died runs again. Jobs that were running when the
// process died are ready again at the next Open, without spending an attempt; a job
// found running after more than WithMaxRecoveries crashes is failed, so a job that
// kills the process cannot crash-loop it.
//
// # Throughput
//
// One goroutine owns every write: it takes all the enqueues, completions, progress
// updates and claims waiting at that moment and commits them in one transaction, so
// producers and workers share fsyncs. Workers take claimed jobs from memory, and the
// loop claims the next ones in the same commit that records the previous ones done.
// An idle runner sleeps on one timer, for the earliest delayed job or rate-limit token.
//
// # Shutdown
//
// Shutdown(ctx) stops claiming, lets running handlers finish until ctx ends, then
// cancels them; interrupted jobs are ready again without spending an attempt, and
// Shutdown returns even if a handler ignores its context. Close cancels the handlers
// at once and waits up to a second for them to return. Cancelling Run's context is
// a hard stop.
//
// # Testing
//
// RunUntilIdle runs every due job in the caller and returns when nothing is due or
// running, so a test can enqueue, run and assert; package jobruntest opens a runner on
// a temp file in one line, runs it through a span of fake time (RunFor: every retry,
// delay and cron fire due within it), and restarts it on its file (Reopen, Crash).
// With testing/synctest, delays, backoffs and rate limits run on the bubble's fake
// clock.
//
// # Tools
//
// WithReadOnly opens a file read-only, for a tool that only looks; WithServices(false)
// opens it for a tool that manages an application's jobs and writes only what it is
// asked: no crash recovery, promotion, cron fires, retention or jobs. The jobrun
// command uses both. A damaged file gives ErrCorrupt, with what to do, and never a
// panic: from Open, from reads, and from the commit loop, which stops.
//
// # Limits
//
// One process at a time can hold a database file (bbolt's file lock); Open waits
// WithLockTimeout and then fails with ErrLocked; one runner may use a *bbolt.DB at a
// time. Args are limited to 1 MiB of JSON, workers to 10,000 per queue, and stored
// times to 1677-2262 (Unix nanoseconds): At before now means now. A
// bbolt file does not shrink by itself when jobs are deleted; its free pages are
// reused, and Compact shrinks it.
package jobrun
