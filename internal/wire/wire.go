// Package wire holds what the dashboard's JSON API and the client package share,
// so that what one writes the other reads: the body of POST /api/jobs and the
// enqueue options it stands for, a job's args given as JSON, and the codes that
// carry jobrun's sentinel errors across HTTP.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/jobrun/jobrun"
)

// Enqueue is the body of POST /api/jobs: a job's kind, its args as JSON (absent or
// null for {}), and its options.
type Enqueue struct {
	Kind string          `json:"kind"`
	Args json.RawMessage `json:"args,omitempty"`
	Options
}

// Options are the enqueue options of a job as JSON, each field one
// jobrun.EnqueueOption of the same name; an absent field gives no option, so the
// kind's defaults (Handle) apply. Durations are Go duration strings ("90s",
// "1h30m"), times RFC 3339. JSON has no order, so where the options replace each
// other (At and Delay; UniqueKey, Throttle and Debounce) at most one may be given.
type Options struct {
	Queue          string            `json:"queue,omitempty"`
	Priority       *int              `json:"priority,omitempty"`
	MaxAttempts    *int              `json:"max_attempts,omitempty"`
	RunAt          string            `json:"run_at,omitempty"` // At
	Delay          string            `json:"delay,omitempty"`
	Timeout        string            `json:"timeout,omitempty"`
	Backoff        *Backoff          `json:"backoff,omitempty"`
	Jitter         *float64          `json:"jitter,omitempty"`
	UniqueKey      string            `json:"unique_key,omitempty"`
	Throttle       *KeyPeriod        `json:"throttle,omitempty"`
	Debounce       *KeyPeriod        `json:"debounce,omitempty"`
	ConcurrencyKey string            `json:"concurrency_key,omitempty"`
	Tags           []string          `json:"tags,omitempty"`
	PriorityFrom   string            `json:"priority_from,omitempty"`
	CancelOn       []CancelOn        `json:"cancel_on,omitempty"`
	OnFailure      *OnFailure        `json:"on_failure,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
}

// Backoff is the option Backoff: the delay after the first failure and the most.
type Backoff struct {
	Min string `json:"min"`
	Max string `json:"max"`
}

// KeyPeriod is the option Throttle or Debounce: a key and its period.
type KeyPeriod struct {
	Key    string `json:"key"`
	Period string `json:"period"`
}

// CancelOn is one option CancelOn.
type CancelOn struct {
	Event string `json:"event"`
	Field string `json:"field"`
}

// OnFailure is the option OnFailure: the failure job's kind and options.
type OnFailure struct {
	Kind string `json:"kind"`
	Options
}

// Args are a job's args given as JSON: jobrun.Args whose Kind is Name, encoded as
// JSON to JSON itself.
type Args struct {
	Name string
	JSON json.RawMessage // nil for {}
}

// Kind returns a.Name.
func (a Args) Kind() string { return a.Name }

// MarshalJSON returns a.JSON, or {} if it is empty or null.
func (a Args) MarshalJSON() ([]byte, error) {
	if len(a.JSON) == 0 || bytes.Equal(bytes.TrimSpace(a.JSON), []byte("null")) {
		return []byte("{}"), nil
	}
	return a.JSON, nil
}

// JobArgs returns the job's args for Runner.Enqueue.
func (e *Enqueue) JobArgs() Args { return Args{Name: e.Kind, JSON: e.Args} }

// Decode reads one JSON document from r into v, refusing unknown fields (a
// misspelled option would otherwise be ignored) and anything after the document;
// its errors wrap jobrun.ErrInvalid.
func Decode(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, err = dec.Token(); errors.Is(err, io.EOF) {
			return nil
		} else if err == nil {
			err = errors.New("more than one JSON value")
		}
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return err
	}
	return fmt.Errorf("%w: body: %w", jobrun.ErrInvalid, err)
}

// EnqueueOptions returns the jobrun options o stands for, or an error wrapping
// jobrun.ErrInvalid for a value that does not parse or options that exclude each
// other. The values themselves (a negative delay, an empty key) are left for
// Enqueue to check, with the same errors as in the application.
func (o *Options) EnqueueOptions() ([]jobrun.EnqueueOption, error) {
	var opts []jobrun.EnqueueOption
	var err error
	dur := func(field, s string) time.Duration {
		d, perr := time.ParseDuration(s)
		if perr != nil && err == nil {
			err = fmt.Errorf("%w: %s %q is not a duration such as \"90s\" or \"1h30m\"", jobrun.ErrInvalid, field, s)
		}
		return d
	}
	if o.Queue != "" {
		opts = append(opts, jobrun.Queue(o.Queue))
	}
	if o.Priority != nil {
		opts = append(opts, jobrun.Priority(*o.Priority))
	}
	if o.MaxAttempts != nil {
		opts = append(opts, jobrun.MaxAttempts(*o.MaxAttempts))
	}
	switch {
	case o.RunAt != "" && o.Delay != "":
		return nil, fmt.Errorf("%w: run_at and delay: give one of them", jobrun.ErrInvalid)
	case o.RunAt != "":
		t, perr := time.Parse(time.RFC3339Nano, o.RunAt)
		if perr != nil {
			return nil, fmt.Errorf("%w: run_at %q is not an RFC 3339 time such as \"2026-01-02T15:04:05Z\"", jobrun.ErrInvalid, o.RunAt)
		}
		opts = append(opts, jobrun.At(t))
	case o.Delay != "":
		opts = append(opts, jobrun.Delay(dur("delay", o.Delay)))
	}
	if o.Timeout != "" {
		opts = append(opts, jobrun.Timeout(dur("timeout", o.Timeout)))
	}
	if b := o.Backoff; b != nil {
		opts = append(opts, jobrun.Backoff(dur("backoff min", b.Min), dur("backoff max", b.Max)))
	}
	if o.Jitter != nil {
		opts = append(opts, jobrun.Jitter(*o.Jitter))
	}
	keys := 0
	if o.UniqueKey != "" {
		keys++
		opts = append(opts, jobrun.UniqueKey(o.UniqueKey))
	}
	if t := o.Throttle; t != nil {
		keys++
		opts = append(opts, jobrun.Throttle(t.Key, dur("throttle period", t.Period)))
	}
	if d := o.Debounce; d != nil {
		keys++
		opts = append(opts, jobrun.Debounce(d.Key, dur("debounce period", d.Period)))
	}
	if keys > 1 {
		return nil, fmt.Errorf("%w: unique_key, throttle and debounce set the one key of a job: give one of them", jobrun.ErrInvalid)
	}
	if o.ConcurrencyKey != "" {
		opts = append(opts, jobrun.ConcurrencyKey(o.ConcurrencyKey))
	}
	if o.Tags != nil {
		opts = append(opts, jobrun.Tags(o.Tags...))
	}
	if o.PriorityFrom != "" {
		opts = append(opts, jobrun.PriorityFrom(o.PriorityFrom))
	}
	for _, c := range o.CancelOn {
		opts = append(opts, jobrun.CancelOn(c.Event, c.Field))
	}
	if o.Metadata != nil {
		opts = append(opts, jobrun.Metadata(o.Metadata))
	}
	if f := o.OnFailure; f != nil {
		fopts, ferr := f.Options.EnqueueOptions()
		if ferr != nil {
			return nil, fmt.Errorf("on_failure: %w", ferr)
		}
		opts = append(opts, jobrun.OnFailure(f.Kind, fopts...))
	}
	if err != nil {
		return nil, err
	}
	return opts, nil
}

// codes are the API's error codes ("code" beside "error") that stand for jobrun's
// sentinel errors, the more specific first.
var codes = []struct {
	code string
	err  error
}{
	{"not_found", jobrun.ErrNotFound},
	{"unknown_kind", jobrun.ErrUnknownKind},
	{"invalid", jobrun.ErrInvalid},
	{"too_large", jobrun.ErrInvalid}, // a body over the API's limit
	{"state", jobrun.ErrState},
	{"duplicate", jobrun.ErrDuplicate},
	{"read_only", jobrun.ErrReadOnly},
	{"closed", jobrun.ErrClosed},
	{"corrupt", jobrun.ErrCorrupt},
	{"schema", jobrun.ErrSchema},
	{"no_workers", jobrun.ErrNoWorkers},
}

// Code returns the code of the jobrun sentinel error err wraps, "" if none.
func Code(err error) string {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return ""
}

// Sentinel returns the jobrun sentinel error that code stands for, nil if none.
func Sentinel(code string) error {
	for _, c := range codes {
		if c.code == code {
			return c.err
		}
	}
	return nil
}

// Error is the body of an error answer: {"error": "...", "code": "..."}, and for
// an enqueue refused by its key the existing job's "id".
type Error struct {
	Error string    `json:"error"`
	Code  string    `json:"code,omitempty"`
	ID    jobrun.ID `json:"id,omitempty"`
}

// Event is the body of POST /api/events: jobrun.Event's fields, its data as JSON
// (absent or null for {}).
type Event struct {
	Name string          `json:"name"`
	Data json.RawMessage `json:"data,omitempty"`
	ID   string          `json:"id,omitempty"`
}

// The trailers of GET /api/backup: the size of the copy once it is complete, or
// the error that cut it short. A copy without the size is incomplete.
const (
	BackupSizeTrailer  = "Jobrun-Backup-Size"
	BackupErrorTrailer = "Jobrun-Backup-Error"
)

// Check is the answer of GET /api/check: the counters that disagree with a
// recount (Runner.CheckCounts without repair), never null.
type Check struct {
	Mismatches []jobrun.CountMismatch `json:"mismatches"`
}

// JSONValue returns a stored JSON value (args, progress, a result) as it is shown:
// v, nil (null) if empty, and as a JSON string if it is not valid JSON, so that
// one damaged value cannot break a whole answer or a command's output.
func JSONValue(v json.RawMessage) json.RawMessage {
	switch {
	case len(v) == 0:
		return nil
	case json.Valid(v):
		return v
	}
	s, _ := json.Marshal(string(v))
	return s
}
