// Package client enqueues jobs into a running jobrun application, and inspects and
// manages them, from another process: it speaks the JSON API of the application's
// dashboard (package github.com/jobrun/jobrun/dashboard) over HTTP. bbolt lets one
// process hold the database file; with the dashboard mounted in that process, any
// process that reaches it enqueues, as River's and Asynq's clients do through
// their database.
//
//	c, err := client.New("https://app.internal/jobs/", client.WithBearerToken(token))
//	...
//	id, err := c.Enqueue(ctx, Welcome{To: "ada@example.com"}, client.Queue("mail"), client.Delay(time.Minute))
//
// The methods mirror the Runner's: the same names, arguments and results
// (Enqueue takes this package's EnqueueOption, which mirror jobrun's), so that code
// moves between the application and another process by changing the receiver.
// Backup copies the application's database file while it runs, CheckCounts
// checks its counters, and History reads its per-minute history of each queue
// (jobs enqueued, started, done, retried, failed, canceled, waits and size), which
// its runner keeps in the file for 7 days. Jobs, events, queues and schedules come back as jobrun.Info, jobrun.EventInfo,
// jobrun.QueueInfo and jobrun.ScheduleInfo, decoded from the API's JSON, which is
// their JSON; args the dashboard hides (WithRedactedArgs) are nil.
//
// # The application's side
//
// The dashboard answers the reading methods as it is; the methods that change jobs
// (Retry, Cancel, Delete, Promote, RetryFailed, Clean, Pause, Resume,
// TriggerSchedule, Unschedule) need dashboard.WithActions, and Enqueue and Send
// need dashboard.WithEnqueue and authentication (WithBearerToken here,
// dashboard.WithBearerToken there), or dashboard.WithUnauthenticatedEnqueue:
//
//	dash := dashboard.New(runner, dashboard.WithBearerToken(token), dashboard.WithActions(), dashboard.WithEnqueue())
//	mux.Handle("/jobs/", http.StripPrefix("/jobs", dash))
//
// Enqueue goes through the application's Runner.Enqueue: the kind's defaults
// (Handle's options) apply, and a kind the application has no handler for is
// refused (jobrun.ErrUnknownKind) unless its runner was opened
// WithStrictKinds(false).
//
// # Errors
//
// An error answer of the API is an *Error, which wraps the jobrun sentinel error
// the runner returned: errors.Is(err, jobrun.ErrNotFound), ErrState, ErrDuplicate,
// ErrInvalid, ErrUnknownKind, ErrReadOnly and the others work as they do in the
// application. Bad input that needs no server to tell (an empty kind, a zero ID,
// args over 1 MiB) is refused before any request, with the same sentinel errors.
// Transport errors (the application is down) come from net/http.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/internal/wire"
)

// Client speaks the JSON API of a jobrun dashboard. It is safe for concurrent use.
type Client struct {
	base  string // the dashboard's URL, ending in "/"
	show  string // base without password, for messages
	hc    *http.Client
	token string
}

// Option configures a Client; pass options to New.
type Option func(*Client)

// WithBearerToken sends "Authorization: Bearer token" with every request, for a
// dashboard protected by dashboard.WithBearerToken. For one protected by basic
// authentication, put the user and password in the URL given to New
// ("https://admin:secret@app.internal/jobs/").
func WithBearerToken(token string) Option {
	return func(c *Client) { c.token = token }
}

// WithHTTPClient sends the requests with hc instead of http.DefaultClient: for
// timeouts, proxies, TLS settings or tests.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.hc = hc }
}

// New returns a client of the dashboard at baseURL, the URL it is mounted at
// ("http://127.0.0.1:8080/", "https://app.internal/jobs/"), under which its API
// answers at api/. It refuses a URL that is not http or https with a host, or that
// has a query or a fragment.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	var ue *url.Error
	switch {
	case errors.As(err, &ue):
		// ue's message quotes the URL, password included.
		return nil, fmt.Errorf("client: URL: %w", ue.Err)
	case err != nil:
		return nil, fmt.Errorf("client: %w", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("client: URL %q: the scheme must be http or https", u.Redacted())
	case u.Host == "":
		return nil, fmt.Errorf("client: URL %q has no host", u.Redacted())
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Errorf("client: URL %q: give the dashboard's URL without query or fragment", u.Redacted())
	}
	if !strings.HasSuffix(u.Path, "/") {
		u = u.JoinPath("/")
	}
	c := &Client{base: u.String(), show: u.Redacted(), hc: http.DefaultClient}
	for _, opt := range opts {
		opt(c)
	}
	return c, nil
}

// Error is an error answer of the API. Unwrap returns the jobrun sentinel error
// that Code stands for, so that errors.Is(err, jobrun.ErrNotFound) holds for a job
// that does not exist; it returns nil for codes of the API itself, such as
// "unauthorized" (401), "forbidden" (403: the dashboard refused the route) or
// "no_route".
type Error struct {
	StatusCode int       // the HTTP status, such as 404
	Code       string    // the API's code, such as "not_found"; "" in an answer that is not the API's
	Message    string    // the API's message, as the runner worded the error
	ID         jobrun.ID // for "duplicate": the job that holds the key
}

// Error returns the API's message, or the status if there is none.
func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	return e.Message
}

// Unwrap returns the jobrun sentinel error of e.Code, nil if none.
func (e *Error) Unwrap() error { return wire.Sentinel(e.Code) }

// maxErrorSize bounds how much of an error answer is read.
const maxErrorSize = 64 << 10

// request sends a request to the API route path, relative to the base URL and
// escaped, with body of type ctype if not nil; it returns the response of a 2xx
// answer, whose body the caller closes, and an *Error for the others.
func (c *Client) request(ctx context.Context, method, path, ctype string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode/100 == 2 {
		return res, nil
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, maxErrorSize))
	e := &Error{StatusCode: res.StatusCode}
	var answer wire.Error
	if isJSON(res) && json.Unmarshal(b, &answer) == nil && answer.Error != "" {
		e.Code, e.Message, e.ID = answer.Code, answer.Error, answer.ID
		return nil, e
	}
	// Not the API's answer: a proxy's, or a server that is not the dashboard.
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(line) > 200 {
		line = line[:200] + "…"
	}
	e.Message = fmt.Sprintf("%s %s%s: %d %s", method, c.show, path, res.StatusCode, http.StatusText(res.StatusCode))
	if line != "" {
		e.Message += ": " + line
	}
	if res.StatusCode == http.StatusNotFound {
		e.Message += " (is " + c.show + " the URL of a jobrun dashboard, where the application mounts it?)"
	}
	return nil, e
}

// call sends a request with request and decodes its JSON answer into out (if not
// nil).
func (c *Client) call(ctx context.Context, method, path, ctype string, body io.Reader, out any) error {
	res, err := c.request(ctx, method, path, ctype, body)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if !isJSON(res) {
		return fmt.Errorf("%s %s%s: the answer is %q, not the dashboard API's JSON", method, c.show, path, res.Header.Get("Content-Type"))
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s%s: decode the answer: %w", method, c.show, path, err)
	}
	return nil
}

// get calls GET path with query.
func (c *Client) get(ctx context.Context, path string, query url.Values, out any) error {
	if q := query.Encode(); q != "" {
		path += "?" + q
	}
	return c.call(ctx, http.MethodGet, path, "", nil, out)
}

// postJSON calls POST path with v as its JSON body.
func (c *Client) postJSON(ctx context.Context, path string, v, out any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%w: %w", jobrun.ErrInvalid, err)
	}
	return c.call(ctx, http.MethodPost, path, "application/json", bytes.NewReader(b), out)
}

// postForm calls POST path, an action, with form as its body.
func (c *Client) postForm(ctx context.Context, path string, form url.Values, out any) error {
	return c.call(ctx, http.MethodPost, path, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()), out)
}

func isJSON(res *http.Response) bool {
	mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	return mt == "application/json"
}

// seg escapes s as one segment of a path.
func seg(s string) string { return url.PathEscape(s) }

// compactJSON returns v without the indentation the API's answer gave it, as the
// runner stores it; nil for null or empty.
func compactJSON(v json.RawMessage) json.RawMessage {
	if len(v) == 0 || string(v) == "null" {
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return v
	}
	return b.Bytes()
}

// errNoID is the error of a method given job ID 0, which no job has.
func errNoID(op string) error { return fmt.Errorf("%s 0: %w", op, jobrun.ErrNotFound) }
