// Package dashboard serves a web dashboard and a JSON API for a [jobrun.Runner]: its
// queues with their counts, limits and throughput, its jobs by queue and state, every
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
//	/                       queues: counts per state, paused, workers, rate limit, throughput
//	/jobs                   jobs of every queue, newest first (query: state, kind, tag, id, cursor)
//	/queues/{queue}         jobs of one queue, by state, with the queue's actions
//	/jobs/{id}              one job: every field, args and result, progress, errors with
//	                        stacks, log lines, timeline, the event that started it, its
//	                        steps in the order they started (state, attempts, duration,
//	                        result or error, what a sleep or a wait waits for and until when)
//	/events                 events sent, newest first (query: name, seq, oldest, cursor)
//	/events/{seq}           one event: its data and ID, the event it duplicates, the runs
//	                        it started with their kind and state
//	/schedules              cron schedules: spec, time zone, next and last fire, policies
//
// # JSON API
//
// The API mirrors the pages; times are RFC 3339, and errors are {"error": "..."} with
// a matching status code (404 for an unknown job, 409 for an action the job's state
// does not allow). A job is [jobrun.Info] as its JSON tags put it, the one shape of a
// job that the jobrun command's -json prints too (fields such as progress, result,
// errors and tags are left out when unset), with two BullMQ-style aliases beside it:
// data (the args, null with args when redacted) and failed_reason (the last error of
// a failed job, else null). An event is [jobrun.EventInfo]'s JSON, the shape of the
// jobrun command's events -json, with data null and data_redacted true when its data
// is hidden; one event (GET /api/events/{seq}) has beside its runs "jobs": each run's
// id, kind, queue and state, "deleted" for a run retention or Delete removed. A
// schedule is [jobrun.ScheduleInfo]'s JSON, with skip_if_running (SkipOverlap's
// former name) beside skip_overlap.
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
//	/queues/{queue}/clean            delete finished jobs (form: state, older_than)
//	/clean                           the same in every queue
//	/schedules/{name}/run            enqueue the schedule's job now ({"id": n})
//	/schedules/{name}/delete         remove the schedule (Runner.Unschedule)
package dashboard
