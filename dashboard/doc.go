// Package dashboard serves a web dashboard and a JSON API for a [jobrun.Runner]: its
// queues with their counts, limits, live throughput and history charts, its jobs by queue and state, every
// field of one job with its steps, the events sent with the runs they started, its
// cron schedules and, when enabled, the actions that change them. Pages are rendered on the server with html/template; the stylesheet, the
// small script that refreshes them live and the icon are embedded in the binary, and
// nothing is loaded from elsewhere.
//
// # Mounting
//
// New returns an http.Handler. Mount it under any path prefix with
// http.StripPrefix; the pages' links are relative, so the prefix needs no option:
//
//	dash := dashboard.New(runner, dashboard.WithBasicAuth("admin", password), dashboard.WithActions())
//	mux.Handle("/jobs/", http.StripPrefix("/jobs", dash))
//
// # Security
//
// The dashboard shows what jobs carry (args, results, errors, logs) and, with
// WithActions, lets whoever reaches it retry, cancel and delete jobs and pause
// queues. Do not expose it publicly, or to anyone who should not do that, without
// authentication: WithAuth (a hook that checks the application's own session),
// WithBasicAuth or WithBearerToken. A request none of them lets in gets 401
// Unauthorized. Without any of them the dashboard asks for nothing, which fits only
// a dashboard reachable from the local machine alone (127.0.0.1).
//
// Without authentication the dashboard also answers only requests whose Host is a
// loopback name or address: "localhost" and names ending in ".localhost",
// 127.0.0.0/8 and ::1, with or without port. Any other Host gets 403 Forbidden,
// pages, assets, API and actions alike. This is against DNS rebinding: a web page
// can make its own name resolve to 127.0.0.1, and the browser then treats the
// dashboard on the victim's machine as that page's origin, letting it read the jobs
// and post actions that the cross-origin protection below sees as same-origin; but
// the page's requests still name the attacker's host. WithAllowedHosts adds the
// names by which the dashboard is reached from elsewhere (a proxy's, "*.example.com"
// for the names under example.com). With authentication any Host is answered, unless
// WithAllowedHosts is given: then the same rule applies.
//
// The rest is on by default:
//   - Read-only unless WithActions: the action routes answer 403 Forbidden and the
//     pages show no buttons.
//   - No enqueue unless WithEnqueue, and then only with authentication (see
//     Enqueue below).
//   - Actions are POST requests only. A browser's cross-origin POST is refused with
//     403 Forbidden by net/http.CrossOriginProtection (the Sec-Fetch-Site and Origin
//     headers), which stops cross-site request forgery even when the browser sends
//     credentials by itself, as it does with basic authentication; requests without
//     those headers (curl, scripts) are not browsers' and need the authentication
//     alone. WithTrustedOrigins allows more origins.
//   - Every value is escaped by html/template; a Content-Security-Policy allows the
//     dashboard's own script and styles only, and forbids framing.
//   - WithRedactedArgs hides the args of all jobs, or of some kinds, everywhere, and
//     the data of the events that start them (see WithRedactedArgs).
//
// # Pages
//
// The paths are relative to the mount point.
//
//	/                       queues: counts per state, paused, workers, rate limit, live
//	                        throughput, and the history charts of every queue (query:
//	                        range; see History)
//	/jobs                   jobs of every queue, newest first (query: state, kind, tag, id,
//	                        cursor, prev, page): kind, queue, state, an args preview,
//	                        attempts, times, the latest attempt's run time, a running job's
//	                        progress, the last error (in red while the job is failing)
//	/queues/{queue}         jobs of one queue, by state, with the queue's actions and its
//	                        history charts (query: range besides the list's)
//	/jobs/{id}              one job: every field, args and result, progress, every attempt
//	                        with its start, duration, outcome and error (stack), metadata,
//	                        log lines, timeline, the event that started it, its steps in
//	                        the order they started (state, attempts, duration, result or
//	                        error, what a sleep or a wait waits for and until when)
//	/events                 events sent, newest first (query: name, seq, oldest, cursor,
//	                        prev, page)
//	/events/{seq}           one event: its data and ID, the event it duplicates, the runs
//	                        it started with their kind and state
//	/schedules              cron schedules: spec and the spec in words ("every day at 09:00
//	                        Europe/Paris"), time zone, paused or not, next fire, the latest
//	                        fires with their jobs, policies
//
// Times show in the browser's time zone, UTC on hover: the pages hold them in UTC
// (<time> elements), and the dashboard's script writes them in the browser's zone;
// without script they stay in UTC. Lists page both ways: besides its cursor (the
// Cursor of jobrun's List and Events, which go one way), a page's URL keeps the
// cursors of the pages before it, the latest 20, and its number, so each page links
// to the newer one and to the earlier ones by number.
//
// # History
//
// The overview charts what every queue did, summed, and a queue's page what that
// queue did, from [jobrun.Runner.History]: the runner keeps in its file a point per
// queue and minute that had activity, for 7 days, so the charts survive restarts
// and show under jobrun serve, where no job runs. The range query picks the span:
// 1h, the default, in 1-minute buckets; 24h in 15-minute buckets; 7d in 2-hour
// buckets. Buckets are aligned on their length in UTC (a 2-hour bucket starts at an
// even hour UTC), and their times are labeled in the browser's zone. Three charts,
// with a title per bucket on hover:
//   - Throughput: the attempts that ended, stacked: done, retried (failed, to run
//     again), failed (for good) and canceled; and the jobs enqueued, a line.
//   - Queue size: the queue's ready jobs at the end of each bucket, the Ready of its
//     latest point, as steps. A bucket without a point carries the size before it
//     forward: a minute without a point had no activity in the queue, which is what
//     changes its size (a job that becomes due in such a minute counts in the next
//     point). Before a queue's first point in the range its size is unknown, and
//     the line starts at that point. The overview sums the queues' sizes.
//   - Wait time: the mean wait from due to start of the attempts that started in a
//     bucket, the sum of its points' waits over the sum of their starts (not a mean
//     of the minutes' means), and the longest wait; no line where none started.
//
// A minute is stored once it is over, so the charts end with the minute before the
// current one, which the overview's live chart shows instead: that one counts the
// attempts this process sees end (Runner.Watch), per 5 seconds over 5 minutes, and
// is empty after a restart. The live chart answers "right now", the history "the
// last hour, day, week". A runner's Close stores the minute it cuts, and then the
// charts end with that minute. "No activity recorded" stands for charts without a
// point in their range.
//
// # JSON API
//
// The API mirrors the pages; times are RFC 3339. Errors are {"error": "...", "code":
// "..."} with a matching status code: the code names the runner's sentinel error
// (not_found, invalid, unknown_kind, state, duplicate, read_only, closed, corrupt,
// schema), or else the status (unauthorized, forbidden, too_large, no_route,
// conflict, unavailable, internal), so that the client package maps it back to the
// jobrun error (404 not_found for an unknown job, 409 state for an action the job's
// state does not allow, 422 unknown_kind for an enqueue of a kind without handler).
// A job is [jobrun.Info] as its JSON tags put it, the one shape of a
// job that the jobrun command's -json prints too (fields such as progress, result,
// errors and tags are left out when unset), with two BullMQ-style aliases beside it:
// data (the args, null with args when redacted) and failed_reason (the last error of
// a failed job, else null). An event is [jobrun.EventInfo]'s JSON, the shape of the
// jobrun command's events -json, with data null and data_redacted true when its data
// is hidden; one event (GET /api/events/{seq}) has beside its runs "jobs": each run's
// id, kind, queue and state, "deleted" for a run retention or Delete removed. A
// schedule is [jobrun.ScheduleInfo]'s JSON, with spec_words (the spec in English, or
// the spec itself where it cannot be said simply) and skip_if_running
// (SkipOverlap's former name) beside skip_overlap.
//
//	GET  /api/queues                    the overview: queues, totals, last minute's throughput
//	GET  /api/metrics                   counts per queue and state, totals, throughput
//	GET  /api/jobs                      {"jobs": [...], "next": cursor} (query: queue, state,
//	                                    kind, tag, oldest, limit, cursor)
//	GET  /api/queues/{queue}/jobs       the same for one queue
//	GET  /api/jobs/{id}                 one job: id, kind, queue, state, args, progress,
//	                                    result, errors, logs and every other field of Info
//	GET  /api/events                    {"events": [...], "next": cursor} (query: name,
//	                                    oldest, limit, cursor)
//	GET  /api/events/{seq}              one event, with "jobs": what became of its runs
//	GET  /api/schedules                 {"schedules": [...]}
//	GET  /api/history                   the history: {"queue", "since", "points": [...]}
//	                                    (query: queue, since, bucket; below)
//	GET  /api/check                     {"mismatches": [...]}: the counters that disagree
//	                                    with a recount (Runner.CheckCounts, no repair)
//	GET  /api/backup                    a consistent copy of the database file
//	                                    (Runner.Backup), its size in the trailer
//	                                    Jobrun-Backup-Size; refused with WithRedactedArgs
//	POST /api/jobs                      enqueue a job (WithEnqueue; see Enqueue)
//	POST /api/events                    send an event (WithEnqueue; see Enqueue)
//
// GET /api/history answers the points of queue (every queue's when absent) from
// since's minute on, oldest first, as Runner.History returns them: jobrun.HistoryPoint's
// JSON, durations (wait_total, wait_max) in nanoseconds, one point per queue and
// minute with activity. since is an RFC 3339 time or a duration before now ("90m",
// "24h", or days: "7d"); absent, all that is kept. With bucket, a whole number of
// minutes that divides a day ("1m", "15m", "2h"), it answers the points summed per
// bucket as the charts are, every bucket from since's to the one of the last minute
// stored, empty ones included: {"queue", "since", "until", "bucket", "buckets":
// [{"start", "enqueued", "started", "done", "retried", "failed", "canceled",
// "wait_total", "wait_max", "wait_mean", "ready"}]}, where wait_mean is null without
// starts and ready (the size at the bucket's end, summed over the queues, carried
// forward as in the chart) is null while unknown; since then goes back at most the 7 days
// kept, so at most 10,081 buckets. A bad since, bucket or queue name is 400 with
// code invalid.
//
// # Actions
//
// Each action is a POST to the path below, answered by a redirect to a page, or to
// the same path under /api, answered by JSON such as {"ok": true, "job": {...}}.
//
//	/jobs/{id}/retry                 run a finished job again
//	/jobs/{id}/cancel                cancel a waiting or running job
//	/jobs/{id}/promote               run a scheduled or retrying job now
//	/jobs/{id}/delete                delete a job that is not running
//	/queues/{queue}/pause            stop the queue's jobs from starting
//	/queues/{queue}/resume           let them start again
//	/queues/{queue}/retry-failed     retry the queue's failed jobs ({"count": n})
//	/retry-failed                    retry every queue's failed jobs
//	/queues/{queue}/clean            delete finished jobs (form: state, older_than or before)
//	/clean                           the same in every queue
//	/schedules/{name}/run            enqueue the schedule's job now ({"id": n})
//	/schedules/{name}/delete         remove the schedule (Runner.Unschedule)
//	/schedules/{name}/pause          stop it firing (Runner.PauseSchedule)
//	/schedules/{name}/resume         let it fire again, from its next time
//	/jobs/bulk                       retry, cancel, delete or promote many jobs (below)
//
// Retrying a done job runs again a job that succeeded, so the form route asks first:
// the dashboard's script confirms in the browser, and without it the route answers
// a page that asks, whose button posts the form again with confirm=1. The API routes
// never ask.
//
// # Bulk actions
//
// The job lists have a box on each row and, with script, one that ticks the whole
// page; the buttons above the list apply an action to the ticked jobs, or to all
// the jobs that match the list's filter. POST /jobs/bulk takes the form (action:
// retry, cancel, delete or promote; ids, repeated; or all=true with queue, state,
// kind, tag), and POST /api/jobs/bulk the same form or JSON:
//
//	{"action": "retry", "ids": [12, 13]}
//	{"action": "delete", "all": true, "filter": {"queue": "mail", "state": "failed", "kind": "", "tag": ""}}
//
// Each job goes through the runner's own call (Retry, Cancel, Delete, Promote), 32 at
// a time so that their commits are shared. A job the action does not fit (a done
// job to cancel), that is gone, or whose unique key another job holds is skipped and
// counted, not an error: the answer is {"ok": true, "action": "retry", "done": 2,
// "skipped": 1, "skipped_reasons": {"state": 1}} (reasons: state, not_found,
// duplicate). At most 1,000 IDs a request; "all" walks the filter's List pages on
// the server, at most 10,000 jobs and 20 pages a request, and when more may match, "next" is the
// cursor to send back (as "cursor") to go on: the list's form carries it to the next
// submit. A bulk retry that may run done jobs again asks first, as a single one does.
// # Enqueue
//
// With WithEnqueue, other processes feed the application work through the API, as
// they would through River's or Asynq's database: bbolt lets one process hold the
// file, and the dashboard is its door. The client package speaks these routes, and
// the jobrun command's -url uses it.
//
//	POST /api/jobs     {"kind": "welcome", "args": {"to": "ada@example.com"}, "queue": "mail", "delay": "10m"}
//	                   201 Created, {"ok": true, "id": 42, "job": {...}}, Location: jobs/42
//	POST /api/events   {"name": "user/created", "data": {"user_id": 7}, "id": "user-7"}
//	                   201 Created, the event as GET /api/events/{seq} shows it, its runs in "jobs"
//
// The body is JSON (Content-Type: application/json), at most 1 MiB and 64 KiB. A job
// goes through Runner.Enqueue, so the application's rules hold: the kind's
// defaults (Handle's options) apply beneath those given, a kind without handler is
// refused with 422 unless the runner was opened WithStrictKinds(false), and bad
// values are the runner's 400. Its options are the fields, each the jobrun option
// of that name: queue, priority, max_attempts, run_at (At, RFC 3339) or delay,
// timeout, backoff {"min", "max"}, jitter, one of unique_key, throttle {"key",
// "period"} and debounce {"key", "period"}, concurrency_key, tags, priority_from,
// cancel_on [{"event", "field"}], on_failure {"kind", and options} and metadata
// {"key": "value"}; durations are
// Go duration strings ("90s", "1h30m"). An unknown field is refused, so a
// misspelled option does not go unnoticed. A job refused by its key (UniqueKey,
// Throttle) answers 409 with code "duplicate" and the existing job's "id".
//
// Whoever reaches these routes chooses the input of the application's handlers,
// so they refuse every request (403) unless authentication is configured (WithAuth,
// WithBasicAuth, WithBearerToken), or WithUnauthenticatedEnqueue opts out of that
// for a dashboard that nothing untrusted reaches. The actions need no such
// authentication: WithActions alone enables them, as before. Both refuse a
// browser's cross-origin request.
package dashboard
