package jobrun_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/jobrun/jobrun"
)

// TestOneRuleForNamesAndKeys: queues, kinds' queues, tags, schedule names, unique and
// concurrency keys all follow one rule: non-empty valid UTF-8 without control
// characters or white space at either end, within a length.
func TestOneRuleForNamesAndKeys(t *testing.T) {
	r, _ := openRunner(t, jobrun.WithStrictKinds(false))
	bad := []string{"", " ", " mail", "mail ", "a\tb", "a\x00b", "\xff\xfe", strings.Repeat("q", 600)}
	good := []string{"mail", "mail queue", "é-queue", "user:42"}
	options := map[string]func(string) jobrun.EnqueueOption{
		"Queue":          jobrun.Queue,
		"Tags":           func(s string) jobrun.EnqueueOption { return jobrun.Tags(s) },
		"UniqueKey":      jobrun.UniqueKey,
		"ConcurrencyKey": jobrun.ConcurrencyKey,
		"Throttle":       func(s string) jobrun.EnqueueOption { return jobrun.Throttle(s, 1) },
		"Debounce":       func(s string) jobrun.EnqueueOption { return jobrun.Debounce(s, 1) },
	}
	for name, opt := range options {
		for _, s := range bad {
			if _, err := r.Enqueue(t.Context(), email{}, opt(s)); !errors.Is(err, jobrun.ErrInvalid) {
				t.Errorf("%s(%.20q): got %v, want ErrInvalid", name, s, err)
			} else if len(err.Error()) > 300 {
				t.Errorf("%s(%.20q): a message of %d bytes", name, s, len(err.Error()))
			}
		}
		for _, s := range good {
			// A key another option's job holds is a duplicate: accepted input all the same.
			if _, err := r.Enqueue(t.Context(), email{}, opt(s)); err != nil && !errors.Is(err, jobrun.ErrDuplicate) {
				t.Errorf("%s(%q): %v", name, s, err)
			}
		}
	}
	for _, s := range bad {
		if err := r.Schedule(t.Context(), s, "@hourly", email{}); !errors.Is(err, jobrun.ErrInvalid) {
			t.Errorf("schedule name %.20q: got %v, want ErrInvalid", s, err)
		}
		if _, err := jobrun.Open(t.TempDir()+"/q.db", jobrun.WithQueue(s, 1, nil)); !errors.Is(err, jobrun.ErrInvalid) {
			t.Errorf("WithQueue(%.20q): got %v, want ErrInvalid", s, err)
		}
	}
}

// TestLimitsAreChecked: a worker count that would spawn a million goroutines, @every
// intervals that are not positive, and a huge bad spec are refused with short
// messages; a committed transaction is called closed.
func TestLimitsAreChecked(t *testing.T) {
	for _, n := range []int{0, -1, jobrun.MaxWorkers + 1, 1_000_000} {
		if _, err := jobrun.Open(t.TempDir()+"/w.db", jobrun.WithQueue("q", n, nil)); !errors.Is(err, jobrun.ErrInvalid) {
			t.Errorf("WithQueue(q, %d): got %v, want ErrInvalid", n, err)
		}
	}
	r, _ := openRunner(t, jobrun.WithStrictKinds(false), jobrun.WithQueue("q", jobrun.MaxWorkers, nil))
	for _, spec := range []string{"@every 0s", "@every -1s", "CRON_TZ=UTC @every 0s", "@every nonsense"} {
		if err := r.Schedule(t.Context(), "s", spec, email{}); !errors.Is(err, jobrun.ErrInvalid) {
			t.Errorf("spec %q: got %v, want ErrInvalid", spec, err)
		}
	}
	for _, spec := range []string{"@every 1ns", "@every 1s", "@every 90m"} {
		if err := r.Schedule(t.Context(), "s", spec, email{}); err != nil {
			t.Errorf("spec %q: %v", spec, err)
		}
	}
	for _, spec := range []string{strings.Repeat("x ", 500_000), strings.Repeat("1", 1_000_000), "@every " + strings.Repeat("9", 100_000) + "s"} {
		err := r.Schedule(t.Context(), "s", spec, email{})
		if !errors.Is(err, jobrun.ErrInvalid) || len(err.Error()) > 500 {
			t.Errorf("a bad spec of %d bytes: %d bytes of error (%.80v)", len(spec), len(err.Error()), err)
		}
	}
	var tx *bbolt.Tx
	if err := r.DB().Update(func(t *bbolt.Tx) error { tx = t; return nil }); err != nil {
		t.Fatal(err)
	}
	_, err := r.EnqueueTx(context.Background(), tx, email{})
	if !errors.Is(err, jobrun.ErrInvalid) || !strings.Contains(err.Error(), "closed") {
		t.Errorf("EnqueueTx on a committed transaction: %v, want ErrInvalid saying it is closed", err)
	}
}
