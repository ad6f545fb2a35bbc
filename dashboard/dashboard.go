package dashboard

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/internal/wire"
)

// DefaultRefresh is how often an open page refreshes its live parts unless
// WithRefresh changes it.
const DefaultRefresh = 2 * time.Second

// Option configures the dashboard; pass options to New.
type Option func(*config)

type config struct {
	actions     bool
	enqueue     bool // WithEnqueue
	openEnqueue bool // WithUnauthenticatedEnqueue
	auth        []func(*http.Request) bool
	challenges  []string // WWW-Authenticate values of the auth options that have one
	redactAll   bool
	redactKinds map[string]bool
	refresh     time.Duration
	origins     []string
	hosts       hostList
}

// WithActions enables the actions that change jobs, queues and schedules: retry,
// cancel, delete, promote (one job, or many at once: the bulk actions), retry all
// failed, clean finished jobs, pause and resume a queue, run, pause, resume and
// remove a schedule. Without it the dashboard is read-only: the pages show no
// buttons, and the action routes answer 403 Forbidden. New jobs and events are
// apart: see WithEnqueue.
func WithActions() Option {
	return func(c *config) { c.actions = true }
}

// WithEnqueue enables the JSON API's routes that feed the application new work:
// POST /api/jobs, which enqueues a job of any kind with the args and options it is
// given, and POST /api/events, which sends an event (Runner.Send), starting the
// runs of the functions on its name. Other processes enqueue through them (the
// client package, the jobrun command's -url). They refuse every request unless
// authentication is configured (WithAuth, WithBasicAuth, WithBearerToken), as
// whoever reaches them chooses the input of the application's handlers; see
// WithUnauthenticatedEnqueue. WithEnqueue is apart from WithActions, which enables
// the buttons and routes that change the jobs already stored. Default: disabled,
// the routes answering 403 Forbidden.
func WithEnqueue() Option {
	return func(c *config) { c.enqueue = true }
}

// WithUnauthenticatedEnqueue lets the routes of WithEnqueue work without
// authentication. Use it only where nothing untrusted reaches the dashboard: any
// process of the machine can reach a loopback address, and every user of it can
// then enqueue jobs. The Host check against DNS rebinding (WithAllowedHosts) and the
// cross-origin protection still apply.
func WithUnauthenticatedEnqueue() Option {
	return func(c *config) { c.openEnqueue = true }
}

// WithAuth lets in only the requests for which allow returns true; the others get
// 401 Unauthorized. allow sees every request, pages, assets and API alike, and may
// check the application's session cookie, a header set by an authenticating proxy,
// or anything else; it must be safe for concurrent use. Auth options add up: a
// request that any of WithAuth, WithBearerToken or WithBasicAuth lets in is served.
// Default: no authentication, which is only fit for a dashboard reachable from the
// local machine alone; without it the dashboard answers loopback Host names only
// (see WithAllowedHosts).
func WithAuth(allow func(r *http.Request) bool) Option {
	return func(c *config) {
		if allow == nil {
			panic("dashboard: WithAuth with a nil func")
		}
		c.auth = append(c.auth, allow)
	}
}

// WithBearerToken lets in the requests that carry the header "Authorization: Bearer
// token", compared in constant time. It suits scripts and proxies calling the JSON
// API; browsers do not send such a header by themselves, so for people use
// WithBasicAuth or WithAuth. It panics if token is empty.
func WithBearerToken(token string) Option {
	if token == "" {
		panic("dashboard: WithBearerToken with an empty token")
	}
	want := sha256.Sum256([]byte(token))
	return func(c *config) {
		c.challenges = append(c.challenges, `Bearer realm="jobrun"`)
		c.auth = append(c.auth, func(r *http.Request) bool {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			sum := sha256.Sum256([]byte(got))
			return ok && subtle.ConstantTimeCompare(sum[:], want[:]) == 1
		})
	}
}

// WithBasicAuth lets in the requests that carry HTTP basic authentication with user
// and password, compared in constant time; browsers ask for them. Serve the
// dashboard over HTTPS when it is reached through a network: basic authentication
// sends the password with every request. It panics if password is empty.
func WithBasicAuth(user, password string) Option {
	if password == "" {
		panic("dashboard: WithBasicAuth with an empty password")
	}
	wantUser, wantPass := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
	return func(c *config) {
		c.challenges = append(c.challenges, `Basic realm="jobrun", charset="UTF-8"`)
		c.auth = append(c.auth, func(r *http.Request) bool {
			u, p, ok := r.BasicAuth()
			gotUser, gotPass := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
			// Both comparisons run whatever the first answers, so timing tells nothing.
			userOK := subtle.ConstantTimeCompare(gotUser[:], wantUser[:])
			passOK := subtle.ConstantTimeCompare(gotPass[:], wantPass[:])
			return ok && userOK&passOK == 1
		})
	}
}

// WithRedactedArgs hides the args of the jobs of the given kinds, or with no kinds
// of every job, on every page and in the JSON API, schedules included: they show
// as redacted, and the API's "args" and "data" are null with "data_redacted" true
// ("args_redacted" for a schedule). Use it when
// args hold personal data or secrets. Results, progress, logs, errors and metadata
// (jobrun.Metadata: trace contexts, request IDs) are shown as they are: keep
// secrets out of them.
//
// An event's data is the args of the runs it starts, so it is hidden with them:
// with no kinds, always; with kinds, when one of its runs is of those kinds or is
// no longer stored (its kind unknown), which takes reading the runs of each event
// shown. So is the data a WaitFor step received (the API's "result" null with
// "result_redacted" true): the data of an event hidden so, or that is no longer
// stored.
func WithRedactedArgs(kinds ...string) Option {
	return func(c *config) {
		if len(kinds) == 0 {
			c.redactAll = true
			return
		}
		if c.redactKinds == nil {
			c.redactKinds = map[string]bool{}
		}
		for _, k := range kinds {
			c.redactKinds[k] = true
		}
	}
}

// WithRefresh sets how often an open page fetches itself again and replaces its
// live parts (counts, lists, a job's state and progress), for as long as the browser
// tab is visible and the page's "live" box is checked. Default: DefaultRefresh
// (2s); 0 or less turns live refresh off.
func WithRefresh(d time.Duration) Option {
	return func(c *config) { c.refresh = d }
}

// WithTrustedOrigins allows state-changing requests (the actions) from the given
// origins ("https://admin.example.com") besides the dashboard's own. By default,
// browsers' cross-origin requests to the actions are refused with 403 Forbidden
// (see net/http.CrossOriginProtection), which is what stops cross-site request
// forgery. New panics on a malformed origin.
func WithTrustedOrigins(origins ...string) Option {
	return func(c *config) { c.origins = append(c.origins, origins...) }
}

// WithAllowedHosts lets the dashboard answer requests whose Host names one of
// hosts, besides the loopback names it always answers: "localhost", names ending in
// ".localhost", the addresses 127.0.0.0/8 and ::1.
//
// Without authentication (none of WithAuth, WithBasicAuth, WithBearerToken) the
// dashboard refuses a request for any other Host with 403 Forbidden, pages, assets,
// API and actions alike. That stops DNS rebinding: a web page whose attacker makes
// its own name resolve to 127.0.0.1 is same-origin with a dashboard listening there,
// so the victim's browser would let it read every job and run the actions (the
// cross-origin protection of the actions sees a same-origin request); but its
// requests carry the attacker's name as Host. Give WithAllowedHosts the names by
// which people reach an unauthenticated dashboard from elsewhere, such as an
// authenticating proxy's public name or the machine's address on a trusted
// network. With authentication the Host is not checked, the authentication being
// the protection, unless WithAllowedHosts is given: then the same rule applies.
//
// Each host is a name or an IP address, without scheme or port: "jobs.internal",
// "192.168.1.20", "fe80::1" or "[fe80::1]". It matches case-insensitively, on any
// port, and a trailing dot is ignored. A leading "*." matches the names under the
// rest at any depth, not the rest itself: "*.example.com" matches "a.example.com"
// and "a.b.example.com" but not "example.com". Options add up; WithAllowedHosts
// with no hosts makes an authenticated dashboard answer loopback names only. It
// panics on an empty host, a host with a port, scheme or path, and a "*" elsewhere
// than in a leading "*." before a name.
func WithAllowedHosts(hosts ...string) Option {
	exact := map[string]bool{}
	var suffixes []string
	for _, h := range hosts {
		name, wildcard, err := parseAllowedHost(h)
		if err != nil {
			panic("dashboard: WithAllowedHosts: " + err.Error())
		}
		if wildcard {
			suffixes = append(suffixes, "."+name)
		} else {
			exact[name] = true
		}
	}
	return func(c *config) {
		c.hosts.given = true
		if c.hosts.exact == nil {
			c.hosts.exact = map[string]bool{}
		}
		for name := range exact {
			c.hosts.exact[name] = true
		}
		c.hosts.suffixes = append(c.hosts.suffixes, suffixes...)
	}
}

// redacted reports whether the args of jobs of kind are hidden.
func (c *config) redacted(kind string) bool {
	return c.redactAll || c.redactKinds[kind]
}

// New returns the dashboard of r as an http.Handler. Mount it under any path prefix
// with http.StripPrefix; its links are relative, so it needs to know nothing of the
// prefix:
//
//	mux.Handle("/jobs/", http.StripPrefix("/jobs", dashboard.New(runner)))
//
// The dashboard watches r's changes (Runner.Watch) to chart the live throughput,
// from now on; it stops watching when r is closed. Its history charts read what r
// keeps in its file (Runner.History): see the package doc. New panics on an invalid
// option, as net/http.ServeMux.Handle does on an invalid pattern.
//
// Without options the dashboard is read-only, asks for no authentication and, so
// that a web page cannot reach it through DNS rebinding, answers only requests for
// a loopback Host ("localhost", 127.0.0.1, [::1]), others getting 403 Forbidden: do
// not expose it beyond the local machine without WithAuth, WithBasicAuth or
// WithBearerToken, and see WithAllowedHosts for the Host names it answers.
func New(r *jobrun.Runner, opts ...Option) http.Handler {
	cfg := &config{refresh: DefaultRefresh}
	for _, opt := range opts {
		opt(cfg)
	}
	cop := http.NewCrossOriginProtection()
	for _, o := range cfg.origins {
		if err := cop.AddTrustedOrigin(o); err != nil {
			panic(fmt.Sprintf("dashboard: WithTrustedOrigins: %v", err))
		}
	}
	d := &dashboard{r: r, cfg: cfg, cop: cop, stats: newStats()}
	d.stats.follow(r)
	d.routes()
	return d
}

// dashboard is the handler New returns.
type dashboard struct {
	r     *jobrun.Runner
	cfg   *config
	cop   *http.CrossOriginProtection
	stats *stats
	hist  historyCache // the history pages read, for their refreshes
	mux   *http.ServeMux
}

// contentSecurityPolicy allows the dashboard's own script, styles and images and
// nothing else: no inline script, no other origin, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; base-uri 'self'; frame-ancestors 'none'"

func (d *dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	if !d.cfg.hostAllowed(r) {
		hostRefused(w, r)
		return
	}
	if !d.authorized(r) {
		for _, c := range d.cfg.challenges {
			h.Add("WWW-Authenticate", c)
		}
		d.fail(w, r, http.StatusUnauthorized, "authentication required")
		return
	}
	d.mux.ServeHTTP(w, r)
}

func (d *dashboard) authorized(r *http.Request) bool {
	if len(d.cfg.auth) == 0 {
		return true
	}
	for _, allow := range d.cfg.auth {
		if allow(r) {
			return true
		}
	}
	return false
}

// routes sets up the pages, the API and the actions. Patterns are relative to the
// dashboard's mount point.
func (d *dashboard) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", d.overviewPage)
	m.HandleFunc("GET /jobs", d.jobsPage)
	m.HandleFunc("GET /queues/{queue}", d.jobsPage)
	m.HandleFunc("GET /jobs/{id}", d.jobPage)
	m.HandleFunc("GET /events", d.eventsPage)
	m.HandleFunc("GET /events/{seq}", d.eventPage)
	m.HandleFunc("GET /schedules", d.schedulesPage)
	m.HandleFunc("GET /static/{file}", serveStatic)

	m.HandleFunc("GET /api/queues", d.apiQueues)
	m.HandleFunc("GET /api/metrics", d.apiMetrics)
	m.HandleFunc("GET /api/jobs", d.apiJobs)
	m.HandleFunc("GET /api/queues/{queue}/jobs", d.apiJobs)
	m.HandleFunc("GET /api/jobs/{id}", d.apiJob)
	m.HandleFunc("GET /api/events", d.apiEvents)
	m.HandleFunc("GET /api/events/{seq}", d.apiEvent)
	m.HandleFunc("GET /api/schedules", d.apiSchedules)
	m.HandleFunc("GET /api/history", d.apiHistory)
	m.HandleFunc("GET /api/check", d.apiCheck)
	m.HandleFunc("GET /api/backup", d.apiBackup)
	m.HandleFunc("POST /api/jobs", d.apiEnqueue)
	m.HandleFunc("POST /api/events", d.apiSend)

	// Each action has a form route, which redirects to a page, and an API route,
	// which answers JSON; both run the same code.
	for _, a := range actions {
		m.HandleFunc("POST "+a.pattern, d.action(a, false))
		m.HandleFunc("POST /api"+a.pattern, d.action(a, true))
	}
	m.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		d.failCode(w, r, http.StatusNotFound, "no_route", "no such API route")
	})
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		d.fail(w, r, http.StatusNotFound, "page not found")
	})
	d.mux = m
}

// isAPI reports whether r is a request to the JSON API.
func isAPI(r *http.Request) bool {
	return r.URL.Path == "/api" || strings.HasPrefix(r.URL.Path, "/api/")
}

// root returns the relative reference from r's URL to the dashboard's mount point
// ("./", "../", ...), so that links work under any prefix.
func root(r *http.Request) string {
	depth := strings.Count(r.URL.EscapedPath(), "/") - 1
	if depth <= 0 {
		return "./"
	}
	return strings.Repeat("../", depth)
}

// redirect answers 303 See Other to target, a path relative to the dashboard's
// mount point. The Location is relative to the request too: http.Redirect would make
// it absolute from the path StripPrefix left, losing the prefix.
func redirect(w http.ResponseWriter, r *http.Request, target string) {
	w.Header().Set("Location", root(r)+target)
	w.WriteHeader(http.StatusSeeOther)
}

// fail answers an error: JSON for the API, a page otherwise. The API's error code
// is the one the status stands for (see statusCodes).
func (d *dashboard) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	d.failCode(w, r, code, statusCodes[code], msg)
}

// failCode is fail with the API's error code apiCode.
func (d *dashboard) failCode(w http.ResponseWriter, r *http.Request, code int, apiCode, msg string) {
	if isAPI(r) {
		writeJSON(w, code, apiError{Error: msg, Code: apiCode})
		return
	}
	d.render(w, r, code, "error", &errorPage{Code: code, Status: http.StatusText(code), Message: msg})
}

// failErr answers the runner's error err: the status errorCode gives, and the
// API's code of the sentinel error err wraps (wire.Code), or of the status.
func (d *dashboard) failErr(w http.ResponseWriter, r *http.Request, err error) {
	code := errorCode(err)
	apiCode := wire.Code(err)
	if apiCode == "" {
		apiCode = statusCodes[code]
	}
	d.failCode(w, r, code, apiCode, err.Error())
}

// statusCodes are the API's error codes of the statuses it answers with, for the
// errors that wrap none of jobrun's sentinel errors (wire.Code gives theirs).
var statusCodes = map[int]string{
	http.StatusBadRequest:            "invalid",
	http.StatusUnauthorized:          "unauthorized",
	http.StatusForbidden:             "forbidden",
	http.StatusNotFound:              "not_found",
	http.StatusConflict:              "conflict",
	http.StatusRequestEntityTooLarge: "too_large",
	http.StatusUnsupportedMediaType:  "invalid",
	http.StatusUnprocessableEntity:   "unknown_kind",
	http.StatusInternalServerError:   "internal",
	http.StatusServiceUnavailable:    "unavailable",
}

// parseID parses a job ID from a path or form value.
func parseID(s string) (jobrun.ID, bool) {
	n, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(s), "#"), 10, 64)
	return jobrun.ID(n), err == nil && n > 0
}
