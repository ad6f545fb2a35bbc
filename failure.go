package jobrun

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Failure is what a failure job (OnFailure) gets: the job that failed for good, as
// Get shows it but for its log and steps. Embed it in the failure job's args type:
//
//	type welcomeFailed struct{ jobrun.Failure }
//
//	func (welcomeFailed) Kind() string { return "welcome-failed" }
type Failure struct {
	Job Info `json:"job"`
}

type failureOption struct {
	kind string
	opts []EnqueueOption
}

// OnFailure makes a job that fails for good (its attempts spent, a Permanent error,
// its timeout on the last attempt, the crash-loop guard) enqueue a job of kind, with
// opts, in the same commit: its args are a Failure naming the failed job. The
// failure job is durable like any job and runs at least once; it is not enqueued
// for a job canceled, nor for a failure job failing. Given to Handle, it applies to
// every job of the handler's kind, the runs of a function included (Inngest's
// onFailure).
func OnFailure(kind string, opts ...EnqueueOption) EnqueueOption {
	return func(o *enqueueOptions) {
		if err := validateKind(kind); err != nil {
			o.err = fmt.Errorf("OnFailure: %w", err)
			return
		}
		o.onFailure = &failureOption{kind: kind, opts: opts}
	}
}

// CancelOn cancels the job when an event called event arrives whose data has field
// (a dotted path) equal to the same field of the job's args: a waiting, sleeping or
// scheduled job at once, a running one by canceling its handler's context. Given to
// Handle with On, a run of a function is canceled by a later event about the same
// thing ("user/deleted" with the same user_id), as Inngest's cancelOn. Events are
// matched through an index, as for WaitFor; a job whose args lack the field is
// refused with ErrInvalid.
func CancelOn(event, field string) EnqueueOption {
	return func(o *enqueueOptions) {
		if err := validateName("event", event); err != nil {
			o.err = fmt.Errorf("CancelOn: %w", err)
			return
		}
		if err := validateText("CancelOn field", field, maxNameLen); err != nil {
			o.err = err
			return
		}
		o.cancelOn = append(o.cancelOn, [2]string{event, field})
	}
}

// PriorityFrom takes the job's priority from field (a dotted path, an integer) of
// its args: given to Handle, a function's runs are prioritized by their event's
// data. A job whose args lack the field is refused with ErrInvalid.
func PriorityFrom(field string) EnqueueOption {
	return func(o *enqueueOptions) {
		if err := validateText("PriorityFrom field", field, maxNameLen); err != nil {
			o.err = err
			return
		}
		o.priorityOf = field
	}
}

// fromArgs applies what the options take from a job's args to rec: the {field}
// placeholders of its keys, PriorityFrom and CancelOn.
func fromArgs(rec *record, priorityOf string, cancelOn [][2]string) error {
	rec.cancelOn = nil
	if priorityOf == "" && len(cancelOn) == 0 && !strings.Contains(rec.uniqueKey, "{") && !strings.Contains(rec.concKey, "{") {
		return nil // most jobs: nothing to take, and no allocation on Enqueue's path
	}
	args := &jsonFields{data: rec.args}
	var err error
	if rec.uniqueKey, err = expandKey(rec.uniqueKey, args); err != nil {
		return err
	}
	if rec.concKey, err = expandKey(rec.concKey, args); err != nil {
		return err
	}
	if priorityOf != "" {
		v, ok := args.value(priorityOf)
		if !ok {
			return invalidf("PriorityFrom: the args have no field %q", priorityOf)
		}
		p, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return invalidf("PriorityFrom: field %q is %s, not an integer", priorityOf, v)
		}
		rec.priority = p
	}
	for _, c := range cancelOn {
		v, ok := args.value(c[1])
		if !ok {
			return invalidf("CancelOn %s: the args have no field %q", c[0], c[1])
		}
		rec.cancelOn = append(rec.cancelOn, cancelRule{event: c[0], field: c[1], value: v})
	}
	return nil
}

// expandKey replaces each {field} of key with that field of args: a string as it
// is, any other value as JSON. A key without braces is returned as it is.
func expandKey(key string, args *jsonFields) (string, error) {
	if !strings.Contains(key, "{") {
		return key, nil
	}
	var b strings.Builder
	rest := key
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			b.WriteString(rest)
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return "", invalidf("key %s: a { without its }", quoted(key))
		}
		b.WriteString(rest[:i])
		field := rest[i+1 : i+j]
		v, ok := args.value(field)
		if !ok {
			return "", invalidf("key %s: the args have no field %q", quoted(key), field)
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			s = string(v)
		}
		b.WriteString(s)
		rest = rest[i+j+1:]
	}
	out := b.String()
	if err := validateKey("key", out); err != nil {
		return "", err
	}
	return out, nil
}

// failureRecord builds the template of the failure job of OnFailure o at now.
func (r *Runner) failureRecord(o *failureOption, now time.Time) ([]byte, error) {
	rec, _, err := r.prepareOpts(failureTemplate{rawArgs{kind: o.kind, data: []byte("{}")}}, o.opts, now, false)
	if err != nil {
		return nil, fmt.Errorf("OnFailure: %w", err)
	}
	rec.onFailure, rec.args, rec.state = nil, nil, stReady // no failure job of a failure job
	return rec.encode(), nil
}

// failureTemplate are the args of a failure job's template, which takes no
// OnFailure of its own.
type failureTemplate struct{ rawArgs }

// failureArgs are the args of the failure job of the job id that failed, rec.
func failureArgs(id ID, rec *record) []byte {
	in := rec.info(id)
	in.Logs = nil
	b, _ := json.Marshal(Failure{Job: in})
	return b
}
