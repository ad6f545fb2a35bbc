package dashboard

import (
	"net/http"
	"testing"
	"time"

	"github.com/jobrun/jobrun"
)

func TestAttemptRows(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	errs := []jobrun.AttemptError{
		{Attempt: 1, StartedAt: at(0), At: at(2), Error: "boom\nstack"},
		{Attempt: 2, At: at(12), Error: "crash"}, // start unknown
	}
	for _, tc := range []struct {
		name string
		in   jobrun.Info
		want []attemptRow
	}{
		{"done on the third", jobrun.Info{State: jobrun.StateDone, Attempt: 3, Errors: errs, StartedAt: at(20), FinishedAt: at(21)}, []attemptRow{
			{Attempt: 1, Start: at(0), End: at(2), Duration: "2s", Outcome: "failed", Class: "failed", Summary: "boom", Detail: "stack"},
			{Attempt: 2, End: at(12), Outcome: "failed", Class: "failed", Summary: "crash"},
			{Attempt: 3, Start: at(20), End: at(21), Duration: "1s", Outcome: "done", Class: "done", Last: true},
		}},
		{"failed on the second", jobrun.Info{State: jobrun.StateFailed, Attempt: 2, Errors: errs, StartedAt: at(10), FinishedAt: at(12)}, []attemptRow{
			{Attempt: 1, Start: at(0), End: at(2), Duration: "2s", Outcome: "failed", Class: "failed", Summary: "boom", Detail: "stack"},
			{Attempt: 2, End: at(12), Outcome: "failed", Class: "failed", Summary: "crash", Last: true},
		}},
		{"running its second", jobrun.Info{State: jobrun.StateRunning, Attempt: 2, Errors: errs[:1], StartedAt: at(10)}, []attemptRow{
			{Attempt: 1, Start: at(0), End: at(2), Duration: "2s", Outcome: "failed", Class: "failed", Summary: "boom", Detail: "stack"},
			{Attempt: 2, Start: at(10), Duration: "for 50s", Outcome: "running", Class: "running", Last: true},
		}},
		{"handed back", jobrun.Info{State: jobrun.StateReady, Attempt: 0, StartedAt: at(10)}, nil},
		{"never started", jobrun.Info{State: jobrun.StateScheduled}, nil},
	} {
		got := attemptRows(&tc.in, at(60))
		if len(got) != len(tc.want) {
			t.Errorf("%s: %d rows %+v, want %d", tc.name, len(got), got, len(tc.want))
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: row %d\n%+v, want\n%+v", tc.name, i, got[i], tc.want[i])
			}
		}
	}
}

// TestJobPageAttemptsAndMetadata checks the job page's table of attempts, each
// with its start and duration, of a job that failed and then succeeded, and its
// metadata.
func TestJobPageAttemptsAndMetadata(t *testing.T) {
	f := openFixture(t)
	h := New(f.r)
	f.populate(t)
	ctx := t.Context()
	in := f.retryFlaky(t)
	if in.Errors[0].StartedAt.IsZero() {
		t.Fatalf("the retried job's failed attempt has no start: %+v", in.Errors)
	}
	e := in.Errors[0]
	body := get(t, h, "/jobs/"+idStr(in.ID), http.StatusOK)
	contains(t, "attempts", body,
		`<h2>Attempts <small>2, 1 failed</small></h2>`,
		`<tr data-attempt="1" data-outcome="failed">`,
		`<td class="at"><time datetime="`+machine(e.StartedAt)+`"`,
		`<td class="num">`+formatDuration(e.At.Sub(e.StartedAt))+`</td>`,
		`<span class="error">permanent: remote answered 410 Gone</span>`,
		`<tr data-attempt="1" data-outcome="done">`,
		`<td class="num">`+formatDuration(in.FinishedAt.Sub(in.StartedAt))+`</td>`,
	)
	lacks(t, "job without metadata", body, `id="metadata"`)

	id, err := f.r.Enqueue(ctx, okArgs{To: "meta@example.com"}, jobrun.Queue("idle"),
		jobrun.Metadata(map[string]string{"trace_id": "4bf92f35", "tenant": "<acme>"}))
	if err != nil {
		t.Fatal(err)
	}
	body = get(t, h, "/jobs/"+idStr(id), http.StatusOK)
	contains(t, "metadata", body, `<h2>Metadata <small>2</small></h2>`,
		`<tr><th>tenant</th><td><code>&lt;acme&gt;</code></td></tr>`,
		`<tr><th>trace_id</th><td><code>4bf92f35</code></td></tr>`, `No attempt started yet.`)
	var j jobJSON
	getJSON(t, h, "/api/jobs/"+idStr(id), http.StatusOK, &j)
	if j.Metadata["trace_id"] != "4bf92f35" {
		t.Errorf("API metadata: %v", j.Metadata)
	}
}
