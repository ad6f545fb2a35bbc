package dashboard

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jobrun/jobrun"
)

// row returns the <tr> of job id in a list page, failing the test without one.
func row(t *testing.T, body string, id jobrun.ID) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<tr data-id="` + idStr(id) + `".*?</tr>`).FindString(body)
	if m == "" {
		t.Fatalf("no row for job %d", id)
	}
	return m
}

// TestJobListColumns checks a list's columns: the args preview (redacted for the
// kinds WithRedactedArgs names), attempts, run time, a running job's progress, and
// the last error in red only on jobs that are failing.
func TestJobListColumns(t *testing.T) {
	f := openFixture(t)
	h := New(f.r, WithRedactedArgs("image.resize"))
	f.populate(t)
	flaky := f.retryFlaky(t) // done on a retry, with its first attempt's error
	running := f.startRunning(t)
	f.waitJob(t, running, func(in *jobrun.Info) bool { return in.State == jobrun.StateRunning && len(in.Progress) > 0 })
	body := get(t, h, "/jobs", http.StatusOK)

	done := f.mustState(t, f.ids["done"], jobrun.StateDone)
	r := row(t, body, done.ID)
	contains(t, "done row", r,
		"<code class=\"args\">{&#34;to&#34;:&#34;ada@example.com&#34;}</code>",
		`<td class="num attempts">1/25</td>`,
		`<td class="num runtime">`+formatDuration(done.FinishedAt.Sub(done.StartedAt))+`</td>`)

	r = row(t, body, flaky.ID)
	contains(t, "row of a job done on a retry", r, `<span class="muted earlier-error" title="an earlier attempt failed; the job done since">permanent: remote answered 410 Gone</span>`)
	lacks(t, "row of a job done on a retry", r, `class="error"`)

	r = row(t, body, f.ids["failed"])
	contains(t, "failed row", r, `<span class="muted redacted">redacted</span>`, `<span class="error">panic: assignment to entry in nil map`)
	lacks(t, "failed row", r, "IMG_0042")
	r = row(t, body, f.ids["retrying"])
	contains(t, "retrying row", r, `<span class="error">crm answered 503`, `<td class="num attempts">1/5</td>`)

	r = row(t, body, running)
	contains(t, "running row", r, `<progress value="40" max="100">40%</progress> 40%`, `<td class="num runtime">for `)

	// A progress that tells no fraction shows as JSON; a long args preview is cut.
	row2 := (&dashboard{cfg: &config{}}).jobRow(&jobrun.Info{State: jobrun.StateRunning, StartedAt: time.Now().Add(-90 * time.Second),
		Progress: json.RawMessage(`{"phase":"upload"}`), RawArgs: json.RawMessage(`{"text":"` + strings.Repeat("a", 100) + `"}`)}, time.Now())
	if row2.Progress != nil || row2.ProgressJSON != `{"phase":"upload"}` || row2.RunTime != "for 1m30s" ||
		len([]rune(row2.Args)) != rowArgs || !strings.HasSuffix(row2.Args, "…") {
		t.Errorf("running row: progress %v %q, run time %q, args %q", row2.Progress, row2.ProgressJSON, row2.RunTime, row2.Args)
	}
}

func TestFailing(t *testing.T) {
	for _, tc := range []struct {
		state jobrun.State
		err   string
		want  bool
	}{
		{jobrun.StateFailed, "boom", true},
		{jobrun.StateRetrying, "boom", true},
		{jobrun.StateRunning, "boom", true}, // running its next attempt
		{jobrun.StateReady, "boom", true},   // due again after a failure
		{jobrun.StateDone, "boom", false},   // succeeded on a retry
		{jobrun.StateCanceled, "boom", false},
		{jobrun.StateFailed, "", false},
	} {
		got := (&dashboard{cfg: &config{}}).jobRow(&jobrun.Info{State: tc.state, LastError: tc.err}, time.Now()).Failing
		if got != tc.want {
			t.Errorf("%s with error %q: failing %v, want %v", tc.state, tc.err, got, tc.want)
		}
	}
}
