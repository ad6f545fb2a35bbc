package jobrun

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// TestTransition is the table of where a claimed job goes: every outcome, with
// attempts left or not, with Cancel asked or not, keyed or abandoned.
func TestTransition(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	started := now.Add(-time.Second)
	boom := errors.New("boom")
	base := func() *record {
		return &record{kind: "k", queue: "q", state: stReady, attempt: 1, maxAttempts: 3,
			backoff: backoffPolicy{kind: backoffConstant, min: time.Minute, max: time.Minute}}
	}
	cases := []struct {
		name    string
		rec     func(*record)
		end     ending
		state   byte
		attempt int64
		runAt   time.Time
		slot    slotFate
		event   ChangeType
		errText string // the error the history gains, "" for none
	}{
		{"done", nil, ending{outcome: outcomeDone, started: started, result: []byte(`1`)},
			stDone, 2, time.Time{}, slotRelease, ChangeDone, ""},
		{"failed, attempts left", nil, ending{outcome: outcomeFailed, err: boom, started: started},
			stRetrying, 2, now.Add(time.Minute), slotRelease, ChangeRetrying, "boom"},
		{"failed, custom delay 0: ready again", nil, ending{outcome: outcomeFailed, err: boom, started: started, custom: true},
			stReady, 2, now, slotRelease, ChangeRetrying, "boom"},
		{"failed, last attempt", func(r *record) { r.attempt = 2 }, ending{outcome: outcomeFailed, err: boom, started: started},
			stFailed, 3, time.Time{}, slotRelease, ChangeFailed, "boom"},
		{"permanent", nil, ending{outcome: outcomePermanent, err: boom, started: started},
			stFailed, 2, time.Time{}, slotRelease, ChangeFailed, "boom"},
		{"abandoned at its timeout", nil, ending{outcome: outcomeFailed, err: boom, started: started, abandoned: true},
			stRetrying, 2, now.Add(time.Minute), slotHold, ChangeRetrying, "boom"},
		{"snoozed: no attempt spent", nil, ending{outcome: outcomeSnoozed, started: started, snooze: time.Hour},
			stScheduled, 1, now.Add(time.Hour), slotRelease, ChangeSnoozed, ""},
		{"snoozed for centuries", nil, ending{outcome: outcomeSnoozed, started: started, snooze: time.Duration(math.MaxInt64)},
			stScheduled, 1, maxFireTime, slotRelease, ChangeSnoozed, ""},
		{"slept: waits for its wake-up, attempts restart", nil,
			ending{outcome: outcomeSlept, started: started, sleep: &step{key: "nap", state: stepSleep, finishedAt: now.Add(24 * time.Hour)}},
			stScheduled, 0, now.Add(24 * time.Hour), slotRelease, ChangeSnoozed, ""},
		{"slept until a time passed: ready", nil,
			ending{outcome: outcomeSlept, started: started, sleep: &step{key: "nap", state: stepSleep, finishedAt: now.Add(-time.Second)}},
			stReady, 0, now.Add(-time.Second), slotRelease, ChangeSnoozed, ""},
		{"interrupted: ready, slot kept", nil, ending{outcome: outcomeInterrupted},
			stReady, 1, time.Time{}, slotKeep, ChangeReady, ""},
		{"interrupted after Cancel", func(r *record) { r.cancel = true }, ending{outcome: outcomeInterrupted},
			stCanceled, 1, time.Time{}, slotRelease, ChangeCanceled, ""},
		{"canceled while running", nil, ending{outcome: outcomeCanceled, err: boom, started: started},
			stCanceled, 2, time.Time{}, slotRelease, ChangeCanceled, "canceled: boom"},
		{"canceled before it started", nil, ending{outcome: outcomeCanceled},
			stCanceled, 1, time.Time{}, slotRelease, ChangeCanceled, ""},
		{"enqueued, due now", func(r *record) { r.state, r.attempt, r.runAt = 0, 0, now }, ending{outcome: outcomeEnqueued},
			stReady, 0, now, slotKeep, ChangeEnqueued, ""},
		{"enqueued for later", func(r *record) { r.state, r.attempt, r.runAt = 0, 0, now.Add(time.Hour) }, ending{outcome: outcomeEnqueued},
			stScheduled, 0, now.Add(time.Hour), slotKeep, ChangeEnqueued, ""},
		{"Promote brings a waiting job forward", func(r *record) { r.state, r.runAt = stScheduled, now.Add(time.Hour) }, ending{outcome: outcomeDue},
			stReady, 1, now, slotKeep, ChangeReady, ""},
		{"a waiting job's time came", func(r *record) { r.state = stRetrying }, ending{outcome: outcomeDue},
			stReady, 1, time.Time{}, slotKeep, ChangeReady, ""},
		{"Cancel of a waiting job", func(r *record) { r.state = stScheduled }, ending{outcome: outcomeCancel},
			stCanceled, 1, time.Time{}, slotKeep, ChangeCanceled, ""},
		{"Retry of a failed job: fresh attempts", func(r *record) {
			r.state, r.attempt, r.recoveries, r.cancel, r.finishedAt, r.result = stFailed, 3, 2, true, now.Add(-time.Hour), []byte(`1`)
		}, ending{outcome: outcomeRetry}, stReady, 0, now, slotKeep, ChangeReady, ""},
		{"recovered", nil, ending{outcome: outcomeRecovered, recoveries: 5},
			stReady, 1, time.Time{}, slotKeep, ChangeReady, ""},
		{"recovered past the limit", func(r *record) { r.recoveries = 5 }, ending{outcome: outcomeRecovered, recoveries: 5},
			stFailed, 1, time.Time{}, slotRelease, ChangeFailed, "crash loop"},
		{"recovered after Cancel", func(r *record) { r.cancel = true }, ending{outcome: outcomeRecovered, recoveries: 5},
			stCanceled, 1, time.Time{}, slotRelease, ChangeCanceled, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := base()
			if tc.rec != nil {
				tc.rec(rec)
			}
			before := len(rec.errors)
			nx, err := transition(rec, tc.end, now)
			if err != nil {
				t.Fatal(err)
			}
			if rec.state != tc.state || rec.attempt != tc.attempt || nx.slot != tc.slot || outcomeEvent(tc.end.outcome, rec.state) != tc.event {
				t.Fatalf("got state %d attempt %d slot %d event %s, want %d %d %d %s",
					rec.state, rec.attempt, nx.slot, outcomeEvent(tc.end.outcome, rec.state), tc.state, tc.attempt, tc.slot, tc.event)
			}
			if !tc.runAt.IsZero() && !rec.runAt.Equal(tc.runAt) {
				t.Fatalf("run at %v, want %v", rec.runAt, tc.runAt)
			}
			if nx.ended != final(tc.state) || nx.ended != !rec.finishedAt.IsZero() {
				t.Fatalf("ended %v, finished at %v, for state %d", nx.ended, rec.finishedAt, tc.state)
			}
			if tc.end.outcome == outcomeRetry && (rec.recoveries != 0 || rec.cancel || rec.result != nil || nx.readyK) {
				t.Fatalf("a retried job keeps recoveries %d, cancel %v, result %s, or its slot", rec.recoveries, rec.cancel, rec.result)
			}
			switch added := len(rec.errors) - before; {
			case tc.errText == "" && added != 0:
				t.Fatalf("the history gained %v", rec.errors[before:])
			case tc.errText != "" && (added != 1 || !strings.Contains(rec.errors[before].Error, tc.errText)):
				t.Fatalf("the history gained %v, want one error with %q", rec.errors[before:], tc.errText)
			}
		})
	}
	if _, err := transition(base(), ending{outcome: 99}, now); err == nil {
		t.Fatal("an unknown outcome was applied")
	}
}
