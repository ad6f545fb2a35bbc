package dashboard

import (
	"net/http"
	"net/url"
	"testing"
)

// TestSchedulePauseResume pauses and resumes a schedule through the form and the
// API, and checks the page's badge, buttons and last fires with their jobs.
func TestSchedulePauseResume(t *testing.T) {
	f, h := populated(t, WithActions())
	ctx := t.Context()
	paused := func(name string) bool {
		t.Helper()
		scheds, err := f.r.Schedules(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range scheds {
			if s.Name == name {
				return s.Paused
			}
		}
		t.Fatalf("no schedule %s", name)
		return false
	}

	res, _ := post(t, h, "/schedules/digest/pause", nil)
	if loc := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || loc != "../../schedules?done=pause-schedule" {
		t.Fatalf("pause: status %d to %q", res.StatusCode, loc)
	}
	if !paused("digest") {
		t.Fatal("digest is not paused")
	}
	body := get(t, h, "/schedules?done=pause-schedule", http.StatusOK)
	contains(t, "schedules after pause", body, "Schedule paused: it does not fire until it is resumed.",
		`<tr data-schedule="digest" data-paused>`, `<td class="name">digest <span class="badge paused">paused</span></td>`,
		`none while paused`, `action="schedules/digest/resume"`, `action="schedules/monthly-report/pause"`)

	// Run now while paused: a fire, with its job, marked as run now.
	var run actionResult
	postJSON(t, h, "/api/schedules/digest/run", nil, http.StatusOK, &run)
	body = get(t, h, "/schedules", http.StatusOK)
	contains(t, "last fires", body, `<a href="jobs/`+idStr(run.ID)+`">job #`+idStr(run.ID)+`</a> <span class="muted">run now</span>`)

	var ok actionResult
	postJSON(t, h, "/api/schedules/digest/resume", nil, http.StatusOK, &ok)
	if !ok.OK || paused("digest") {
		t.Errorf("digest is still paused after resume (answer %+v)", ok)
	}
	var s struct{ Schedules []scheduleJSON }
	getJSON(t, h, "/api/schedules", http.StatusOK, &s)
	if d := s.Schedules[0]; d.Name != "digest" || d.Paused || len(d.Fires) != 1 || d.Fires[0].Job != run.ID || !d.Fires[0].Manual {
		t.Errorf("API schedule after resume: %s", mustMarshal(t, d))
	}
	var e apiError
	postJSON(t, h, "/api/schedules/nope/pause", nil, http.StatusNotFound, &e)

	// Read-only: refused.
	ro := New(f.r)
	if res, _ := post(t, ro, "/schedules/digest/pause", url.Values{}); res.StatusCode != http.StatusForbidden {
		t.Errorf("read-only pause: status %d, want 403", res.StatusCode)
	}
	lacks(t, "read-only schedules", get(t, ro, "/schedules", http.StatusOK), `/pause"`)
}
