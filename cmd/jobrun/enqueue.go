package main

// enqueue stores a job of any kind, with its args as JSON and the common enqueue
// options as flags, in a file or, with -url, through a running application.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jobrun/jobrun"
	"github.com/jobrun/jobrun/client"
	"github.com/jobrun/jobrun/internal/wire"
)

const (
	enqueueSynopsis = "usage: jobrun enqueue (FILE | -url URL) KIND [JSON] [-queue q] [-priority n] [-max-attempts n] " +
		"[-delay d | -at time] [-timeout d] [-unique-key k | -throttle k=d | -debounce k=d] [-concurrency-key k] " +
		"[-tag t]... [-metadata k=v]... [-backoff min,max] [-jitter f] [-on-failure kind] [-json]"
	enqueueDoc = `Enqueue stores a job of KIND whose args are JSON, such as '{"to":
"ada@example.com"}' ({} without it), and prints its ID and state; with -json, the
job as show -json prints it. The flags are jobrun's enqueue options of the same
names, a later one replacing an earlier one as the options do (-at after -delay,
-throttle after -unique-key): durations are Go durations such as 90s or 1h30m, -at
an RFC 3339 time such as 2026-01-02T15:04:05Z, and a key may take fields of the
args, as in welcome-{to}. The job runs when an application runs its queue.

On FILE the job is stored with the flags alone: the kind's defaults, which the
application gives to jobrun.Handle, do not apply (the command knows nothing of
them), and the kind is not checked against the application's handlers. With -url
the job goes through the application's Runner.Enqueue: its defaults for the kind
apply beneath the flags, and a kind it has no handler for is refused unless its
runner allows it (jobrun.WithStrictKinds(false)).

A job refused by its key (-unique-key, -throttle) is not stored: the command says
which job holds the key, and exits with status 1.

` + manageFileDoc
)

func runEnqueue(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newFileCmd("enqueue", enqueueSynopsis, enqueueDoc, args, stdout, stderr)
	var opts []client.EnqueueOption
	// Each flag adds its option as it is parsed, so that their order is kept.
	option := func(name, usage string, parse func(string) (client.EnqueueOption, error)) {
		c.fs.Func(name, usage, func(s string) error {
			opt, err := parse(s)
			if err == nil {
				opts = append(opts, opt)
			}
			return err
		})
	}
	option("queue", "put the job on `queue` (default: the kind's, else default)", func(s string) (client.EnqueueOption, error) {
		return client.Queue(s), nil
	})
	option("priority", "the job's priority `n` in its queue, higher first (default 0)", func(s string) (client.EnqueueOption, error) {
		n, err := strconv.Atoi(s)
		return client.Priority(n), err
	})
	option("max-attempts", "the number `n` of times the job may run, the first included (default 25)", func(s string) (client.EnqueueOption, error) {
		n, err := strconv.Atoi(s)
		return client.MaxAttempts(n), err
	})
	option("delay", "make the job due after `duration`, such as 10m", func(s string) (client.EnqueueOption, error) {
		d, err := time.ParseDuration(s)
		return client.Delay(d), err
	})
	option("at", "make the job due at `time`, RFC 3339", func(s string) (client.EnqueueOption, error) {
		t, err := time.Parse(time.RFC3339Nano, s)
		return client.At(t), err
	})
	option("timeout", "bound each attempt to `duration`", func(s string) (client.EnqueueOption, error) {
		d, err := time.ParseDuration(s)
		return client.Timeout(d), err
	})
	option("unique-key", "allow one unfinished job of the kind with `key`", func(s string) (client.EnqueueOption, error) {
		return client.UniqueKey(s), nil
	})
	option("throttle", "allow one job of the kind with key per period: `key=period`, such as report=24h", func(s string) (client.EnqueueOption, error) {
		key, d, err := keyPeriod(s)
		return client.Throttle(key, d), err
	})
	option("debounce", "wait, merging the enqueues of the kind with key meanwhile: `key=period`", func(s string) (client.EnqueueOption, error) {
		key, d, err := keyPeriod(s)
		return client.Debounce(key, d), err
	})
	option("concurrency-key", "the `key` that the queue's key limits count", func(s string) (client.EnqueueOption, error) {
		return client.ConcurrencyKey(s), nil
	})
	option("tag", "label the job with `tag`; repeatable", func(s string) (client.EnqueueOption, error) {
		return client.Tags(s), nil
	})
	option("backoff", "the delays between attempts: `min,max`, such as 1s,1h", func(s string) (client.EnqueueOption, error) {
		lo, hi, ok := strings.Cut(s, ",")
		min, err1 := time.ParseDuration(lo)
		max, err2 := time.ParseDuration(hi)
		if !ok || err1 != nil || err2 != nil {
			return nil, errors.New("want two durations, min,max, such as 1s,1h")
		}
		return client.Backoff(min, max), nil
	})
	option("jitter", "the randomization of the retry delays, a `fraction` from 0 to 1", func(s string) (client.EnqueueOption, error) {
		f, err := strconv.ParseFloat(s, 64)
		return client.Jitter(f), err
	})
	option("on-failure", "when the job fails for good, enqueue a job of `kind` naming it", func(s string) (client.EnqueueOption, error) {
		return client.OnFailure(s), nil
	})
	option("metadata", "give the job the metadata pair `key=value`; repeatable", func(s string) (client.EnqueueOption, error) {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return nil, errors.New("want key=value, such as request_id=r-42")
		}
		return client.Metadata(map[string]string{k: v}), nil
	})
	pos, err := c.parse("FILE", "KIND", "JSON?")
	if err != nil {
		return err
	}
	kind, raw := pos[1], json.RawMessage("{}")
	if len(pos) == 3 {
		if raw = json.RawMessage(pos[2]); !json.Valid(raw) {
			return c.usage(fmt.Errorf("JSON is not valid JSON: give the args as such, as '{\"to\": \"ada@example.com\"}', got %s", oneLine(pos[2], 40)))
		}
	}
	return c.result(c.open(manageAccess, func(s store) error {
		id, err := s.enqueue(ctx, wire.Args{Name: kind, JSON: raw}, opts)
		switch {
		case errors.Is(err, jobrun.ErrDuplicate):
			return &worded{"not enqueued: " + message(err), err}
		case errors.Is(err, jobrun.ErrInvalid):
			// The kind, the args or a flag's value: the user's input.
			return c.usage(errors.New(message(err)))
		case err != nil:
			return err
		}
		j, err := s.Get(ctx, id)
		if err != nil {
			return err
		}
		if *c.json {
			return c.print(jobOut(j))
		}
		switch j.State {
		case jobrun.StateScheduled:
			fmt.Fprintf(stdout, "Enqueued job %d (%s): it is scheduled for %s and runs then when an application runs queue %s.\n",
				j.ID, j.Kind, formatTime(j.RunAt), j.Queue)
		case jobrun.StateReady:
			fmt.Fprintf(stdout, "Enqueued job %d (%s): it is ready and runs when an application runs queue %s.\n", j.ID, j.Kind, j.Queue)
		default: // a running application (-url) took it already
			fmt.Fprintf(stdout, "Enqueued job %d (%s) on queue %s: it is %s.\n", j.ID, j.Kind, j.Queue, j.State)
		}
		return nil
	}))
}

// keyPeriod reads the value of -throttle or -debounce: key=period, the key being
// all before the last "=".
func keyPeriod(s string) (string, time.Duration, error) {
	i := strings.LastIndex(s, "=")
	if i < 0 {
		return "", 0, errors.New("want key=period, such as report=24h")
	}
	d, err := time.ParseDuration(s[i+1:])
	if err != nil {
		return "", 0, fmt.Errorf("want key=period, such as report=24h: %w", err)
	}
	return s[:i], d, nil
}
