package dashboard

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/jobrun/jobrun"
)

var updateDocs = flag.Bool("update-docs", false, "write the browser test's screenshots to ../docs/dashboard-*.png too")

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// findChromium returns the browser to drive. Without one, the test is skipped on a
// developer's machine and fails in CI (env CI set), where .ci/run installs it.
func findChromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err == nil {
		return chromiumPath
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("chromium is not installed (%s): .ci/run installs it with apt-get install chromium", chromiumPath)
	}
	t.Skipf("chromium is not installed (%s): apt-get install chromium to run the browser test; CI runs it", chromiumPath)
	return ""
}

// browser starts a headless chromium with a fresh profile and no network of its
// own (no background requests, updates or sync), and returns its context.
func browser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(1360, 900),
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	// Cleanups run last first: the browser closes before its profile is removed.
	t.Cleanup(func() {
		bcancel()
		acancel()
		cancel()
	})
	return bctx
}

// TestBrowser drives the dashboard in a real browser: the pages of a runner holding
// jobs in every state, a retry clicked and seen to run, and the actions refused
// without authentication or from another origin. It saves a screenshot of each page
// in its artifact directory (go test -artifacts keeps them) and, with -update-docs,
// in docs/ for the README.
func TestBrowser(t *testing.T) {
	chromium := findChromium(t)
	f := openFixture(t)
	f.populate(t)
	// A restart: the history of the jobs populate ran is in the file, its minute
	// stored by Close, and the dashboard of the runner opened again charts it.
	f.reopen(t)
	const session = "s3ssion"
	h := New(f.r, WithActions(), WithRefresh(100*time.Millisecond),
		// An application's own session check, the usual WithAuth.
		WithAuth(func(r *http.Request) bool {
			c, err := r.Cookie("session")
			return err == nil && c.Value == session
		}))
	pastThroughput(h.(*dashboard).stats, time.Now())
	running := f.startRunning(t)

	mux := http.NewServeMux()
	mux.Handle("/admin/jobs/", http.StripPrefix("/admin/jobs", h))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	base := srv.URL + "/admin/jobs/"

	// Another origin, as a malicious page would be: it posts a form to the dashboard
	// as soon as it loads.
	victim := f.ids["done"]
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form id="f" method="post" action="%sjobs/%d/delete"></form>
<script>document.getElementById("f").submit()</script>`, base, victim)
	}))
	defer evil.Close()

	ctx := browser(t, chromium)
	shots := t.ArtifactDir()
	// Live refresh (every 100ms here) may replace a node between the query that found
	// it and the action on it; the action then failed before doing anything, so it is
	// safe to query again.
	replaced := func(err error) bool {
		return err != nil && (strings.Contains(err.Error(), "No node with given id") ||
			strings.Contains(err.Error(), "Could not find node with given id"))
	}
	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		for tries := 1; ; tries++ {
			err := chromedp.Do(ctx, actions...)
			if replaced(err) && tries < 20 {
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", step, err)
			}
			return
		}
	}
	text := func(sel string) string {
		t.Helper()
		for tries := 1; ; tries++ {
			s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
			if replaced(err) && tries < 20 {
				continue
			}
			if err != nil {
				t.Fatalf("text of %s: %v", sel, err)
			}
			return strings.TrimSpace(s)
		}
	}
	screenshot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		file := filepath.Join(shots, "dashboard-"+name+".png")
		if err := os.WriteFile(file, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s", file)
		if *updateDocs {
			if err := os.WriteFile(filepath.Join("..", "docs", "dashboard-"+name+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The browser is in Tokyo (UTC+9, no daylight saving): the pages' times show there.
	if _, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Tokyo"}); err != nil {
		t.Fatal(err)
	}
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}

	// Without the application's session, nothing is shown.
	do("unauthenticated", chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS("#error-message")))
	if got := text("h1"); got != "401 Unauthorized" {
		t.Errorf("without a session the page says %q, want 401 Unauthorized", got)
	}
	if _, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{Name: "session", Value: session, URL: srv.URL}); err != nil {
		t.Fatal(err)
	}

	// The overview: every queue, and jobs in every state.
	var counts map[jobrun.State]int
	do("overview", chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS(`#queues tr[data-queue="reports"]`)))
	counts, err = f.r.Counts(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range jobrun.States {
		got := text(`#totals [data-state="` + string(s) + `"]`)
		if got != itoa(counts[s]) || counts[s] == 0 {
			t.Errorf("overview shows %s %s jobs, the runner holds %d (want at least 1)", got, s, counts[s])
		}
	}
	for _, q := range []string{"default", "idle", "mail", "paused", "reports", "webhooks"} {
		do("queue row "+q, chromedp.WaitVisible(chromedp.CSS(`#queues tr[data-queue="`+q+`"]`)))
	}
	do("paused badge", chromedp.WaitVisible(chromedp.CSS(`tr[data-queue="paused"] .badge.paused`)))
	if got := text(`tr[data-queue="mail"] td:nth-last-child(3)`); got != "50/s, burst 10" {
		t.Errorf("mail's rate limit shows %q", got)
	}
	do("chart", chromedp.WaitVisible(chromedp.CSS(`#throughput svg rect.done`)))
	// The history charts, of the last hour by default: populate's jobs ended, the
	// queue's size and the wait, each series drawn; its times in Tokyo.
	for _, series := range []string{"#history-throughput rect.done", "#history-throughput rect.failed",
		"#history-size path.line.ready", "#history-wait .mean", "#history-wait .max"} {
		do("history "+series, chromedp.WaitVisible(chromedp.CSS(`#history[data-range="1h"] `+series)))
	}
	if got := text(`#history [data-zone]`); got != "GMT+9" {
		t.Errorf("the history's zone shows %q, want GMT+9 (Tokyo)", got)
	}
	tick, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(function () {
		var el = document.querySelector("#history-throughput text.x");
		return [el.getAttribute("datetime"), el.textContent];
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if at, err := time.Parse(time.RFC3339, tick[0]); err != nil || tick[1] != at.In(tokyo).Format("15:04") {
		t.Errorf("a time label of the history reads %q for %s, want the time in Tokyo (%v)", tick[1], tick[0], err)
	}
	columns := func() int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#history-throughput g.col").length`))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := columns(); n != 60 {
		t.Errorf("the last hour has %d columns, want 60", n)
	}
	screenshot("overview")
	do("history of 24 hours", chromedp.Click(chromedp.CSS(`#history nav.ranges a[data-range="24h"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#history[data-range="24h"] #history-throughput rect.done`)))
	if n := columns(); n != 96 {
		t.Errorf("24 hours have %d columns, want 96", n)
	}
	if got := text(`#history nav.ranges a[aria-current]`); got != "last 24 hours" {
		t.Errorf("the current range reads %q", got)
	}
	do("history of 7 days", chromedp.Click(chromedp.CSS(`#history nav.ranges a[data-range="7d"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#history[data-range="7d"] #history-throughput rect.done`)))
	if n := columns(); n != 84 {
		t.Errorf("7 days have %d columns, want 84", n)
	}
	// A queue's page charts its own history.
	do("history of a queue", chromedp.Navigate(base+"queues/mail"),
		chromedp.WaitVisible(chromedp.CSS(`#history[data-range="1h"] #history-throughput rect.done`)))
	if label, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("#history-throughput svg"), "aria-label")); err != nil ||
		!strings.HasPrefix(label.Value, "Throughput of queue mail, last hour") {
		t.Errorf("the queue's throughput chart is labeled %+v (%v)", label, err)
	}
	screenshot("queue")
	do("overview again", chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS(`#queues tr[data-queue="default"]`)))

	// A queue's failed jobs, reached by its count's link.
	do("failed of default", chromedp.Click(chromedp.CSS(`tr[data-queue="default"] a[data-state="failed"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-id="`+idStr(f.ids["failed"])+`"]`)))
	if got := text(`.tab[aria-current]`); got != "failed 1" {
		t.Errorf("current tab %q, want failed 1", got)
	}
	do("all jobs", chromedp.Navigate(base+"jobs"), chromedp.WaitVisible(chromedp.CSS(`tr[data-id="`+idStr(running)+`"][data-state="running"]`)))
	screenshot("jobs")

	// A failed job: its panic with the stack, its log, its args.
	do("failed job", chromedp.Navigate(base+"jobs/"+idStr(f.ids["failed"])), chromedp.WaitVisible(chromedp.CSS("#attempts pre.stack")))
	if got := text("#attempts td.outcome .error"); got != "panic: assignment to entry in nil map" {
		t.Errorf("error summary %q", got)
	}
	if got := text("#attempts pre.stack"); !strings.Contains(got, "goroutine ") {
		t.Errorf("stack %q", got)
	}
	if got := text("#args pre"); !strings.Contains(got, `"image": "uploads/IMG_0042.jpg"`) {
		t.Errorf("args %q", got)
	}
	screenshot("job")
	// Its times in the browser's zone, UTC on hover.
	failedInfo := f.mustState(t, f.ids["failed"], jobrun.StateFailed)
	created := `#job dl time[datetime="` + machine(failedInfo.CreatedAt) + `"]`
	if got, want := text(created), failedInfo.CreatedAt.In(tokyo).Format("2006-01-02 15:04:05")+" GMT+9"; got != want {
		t.Errorf("the created time shows %q, want %q (Tokyo)", got, want)
	}
	if title, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(created), "title")); err != nil || title.Value != absolute(failedInfo.CreatedAt) {
		t.Errorf("the created time's title is %+v (%v), want %q", title, err, absolute(failedInfo.CreatedAt))
	}

	// Retry a failed job with the button, and see it run: the page refreshes itself.
	do("flaky job", chromedp.Navigate(base+"jobs/"+idStr(f.ids["flaky"])), chromedp.WaitVisible(chromedp.CSS(`#job-state[data-state="failed"]`)))
	do("retry", chromedp.Click(chromedp.CSS(`button[data-action="retry"]`)), chromedp.WaitVisible(chromedp.CSS("#notice")))
	if got := text("#notice"); got != "Job #"+idStr(f.ids["flaky"])+" will run again." {
		t.Errorf("notice after retry: %q", got)
	}
	do("retried job done", chromedp.WaitVisible(chromedp.CSS(`#job-state[data-state="done"]`)))
	if got := text("#result pre"); !strings.Contains(got, `"status": 200`) {
		t.Errorf("result after the retry: %q", got)
	}
	if got := text("#logs"); !strings.Contains(got, "delivered to https://hooks.example.com/orders") {
		t.Errorf("log after the retry: %q", got)
	}
	f.mustState(t, f.ids["flaky"], jobrun.StateDone)

	// Bulk: tick two of three waiting jobs and cancel them.
	var waiting []jobrun.ID
	for i := range 3 {
		id, err := f.r.Enqueue(t.Context(), okArgs{To: fmt.Sprintf("later%d@example.com", i)}, jobrun.Queue("idle"), jobrun.Delay(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		waiting = append(waiting, id)
	}
	row := func(id jobrun.ID) string { return `#jobs tr[data-id="` + idStr(id) + `"]` }
	do("idle queue", chromedp.Navigate(base+"queues/idle?state=scheduled"), chromedp.WaitVisible(chromedp.CSS(row(waiting[2]))))
	do("select the page", chromedp.Click(chromedp.CSS("#pick-page")))
	if got := text("#bulk-count"); got != "3 selected jobs" {
		t.Errorf("after selecting the page: %q", got)
	}
	do("unselect the page", chromedp.Click(chromedp.CSS("#pick-page")),
		chromedp.Click(chromedp.CSS(row(waiting[0])+` input[name="ids"]`)),
		chromedp.Click(chromedp.CSS(row(waiting[2])+` input[name="ids"]`)))
	if got := text("#bulk-count"); got != "2 selected jobs" {
		t.Errorf("after ticking two: %q", got)
	}
	screenshot("bulk")
	var question string
	do("bulk cancel", chromedp.Evaluate[chromedp.Void](`window.confirm = function (q) { window.asked = q; return true; }`),
		chromedp.Click(chromedp.CSS(`button[data-action="bulk-cancel"]`)), chromedp.WaitVisible(chromedp.CSS("#notice")))
	if question, err = chromedp.Run(ctx, chromedp.Evaluate[string](`window.asked || ""`)); err == nil && question != "" {
		t.Errorf("the answering page still holds the question %q: no page load?", question)
	}
	if got := text("#notice"); got != "2 jobs canceled." {
		t.Errorf("notice after the bulk cancel: %q", got)
	}
	f.mustState(t, waiting[0], jobrun.StateCanceled)
	f.mustState(t, waiting[1], jobrun.StateScheduled)
	f.mustState(t, waiting[2], jobrun.StateCanceled)
	do("list after the bulk cancel", chromedp.WaitVisible(chromedp.CSS(row(waiting[1]))),
		chromedp.WaitNotPresent(chromedp.CSS(row(waiting[0]))))

	// Retrying a done job asks first: in the browser, and without script on a page.
	again, err := f.r.Enqueue(t.Context(), okArgs{To: "again@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	first := f.waitJob(t, again, func(in *jobrun.Info) bool { return in.State == jobrun.StateDone })
	do("done job", chromedp.Navigate(base+"jobs/"+idStr(again)), chromedp.WaitVisible(chromedp.CSS(`#job-state[data-state="done"]`)),
		chromedp.Evaluate[chromedp.Void](`window.confirm = function (q) { window.asked = q; return false; }`),
		chromedp.Click(chromedp.CSS(`button[data-action="retry"]`)))
	if question, err = chromedp.Run(ctx, chromedp.Evaluate[string](`window.asked`)); err != nil || question != "Job #"+idStr(again)+" succeeded. Run it again?" {
		t.Errorf("the retry of a done job asked %q (%v)", question, err)
	}
	f.mustState(t, again, jobrun.StateDone)
	if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatal(err)
	}
	do("retry without script", chromedp.Navigate(base+"jobs/"+idStr(again)), chromedp.WaitVisible(chromedp.CSS(`button[data-action="retry"]`)),
		chromedp.Click(chromedp.CSS(`button[data-action="retry"]`)), chromedp.WaitVisible(chromedp.CSS("#confirm-question")))
	screenshot("confirm")
	do("confirmed", chromedp.Click(chromedp.CSS("#confirm-yes")), chromedp.WaitVisible(chromedp.CSS("#notice")))
	if got := text("#notice"); got != "Job #"+idStr(again)+" will run again." {
		t.Errorf("notice after the confirmed retry: %q", got)
	}
	if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: false}); err != nil {
		t.Fatal(err)
	}
	f.waitJob(t, again, func(in *jobrun.Info) bool {
		return in.State == jobrun.StateDone && in.FinishedAt.After(first.FinishedAt)
	})

	// A job that succeeded, with its progress and result.
	do("done job", chromedp.Navigate(base+"jobs/"+idStr(f.ids["done"])), chromedp.WaitVisible(chromedp.CSS("#progress progress")))
	screenshot("job-done")

	// The schedules, and one run now.
	do("schedules", chromedp.Navigate(base+"schedules"), chromedp.WaitVisible(chromedp.CSS(`tr[data-schedule="monthly-report"]`)))
	if got := text(`tr[data-schedule="monthly-report"] td:nth-child(3)`); got != "Europe/Paris" {
		t.Errorf("monthly-report's time zone shows %q", got)
	}
	if got := text(`tr[data-schedule="monthly-report"] .words`); got != "on the 1st of every month at 06:00 Europe/Paris" {
		t.Errorf("monthly-report's spec in words: %q", got)
	}
	do("pause a schedule", chromedp.Click(chromedp.CSS(`tr[data-schedule="digest"] button[data-action="pause-schedule"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-schedule="digest"] .badge.paused`)))
	// The pause's notice goes first, so that the wait is for the one of run now.
	do("run now", chromedp.Evaluate[chromedp.Void](`document.getElementById("notice")?.remove()`),
		chromedp.Click(chromedp.CSS(`tr[data-schedule="digest"] button[data-action="run"]`)), chromedp.WaitVisible(chromedp.CSS("#notice")))
	if got := text("#notice"); !strings.HasPrefix(got, "Schedule run now: job #") {
		t.Errorf("notice after run now: %q", got)
	}
	ran := strings.TrimSuffix(strings.TrimPrefix(text("#notice"), "Schedule run now: job #"), " enqueued.")
	do("its fire", chromedp.WaitVisible(chromedp.CSS(`tr[data-schedule="digest"] td.fires a[href="jobs/`+ran+`"]`)))
	screenshot("schedules")
	do("resume the schedule", chromedp.Click(chromedp.CSS(`tr[data-schedule="digest"] button[data-action="resume-schedule"]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`tr[data-schedule="digest"] .badge.paused`)))

	// Events, reached by the navigation: an order placed, its runs, and the steps of
	// the one that waits for its shipment, which the running runner works through.
	ctx2 := t.Context()
	placed, err := f.r.Send(ctx2, jobrun.Event{Name: "order/placed", ID: "order-9", Data: orderArgs{OrderID: 9, Email: "buyer9@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	fulfil := idStr(placed.Runs[0])
	do("events", chromedp.Navigate(base), chromedp.Click(chromedp.CSS(`nav.main a[href="events"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#events tr[data-seq="`+itoa(int(placed.Seq))+`"]`)))
	screenshot("events")
	do("event", chromedp.Click(chromedp.CSS(`#events tr[data-seq="`+itoa(int(placed.Seq))+`"] td.num a`)),
		chromedp.WaitVisible(chromedp.CSS(`#runs tr[data-id="`+fulfil+`"]`)))
	if got := text("#data pre"); !strings.Contains(got, `"email": "buyer9@example.com"`) {
		t.Errorf("event data %q", got)
	}
	screenshot("event")
	do("run of the event", chromedp.Click(chromedp.CSS(`#runs tr[data-id="`+fulfil+`"] a[href="jobs/`+fulfil+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#steps tr[data-step="wait-shipment"][data-state="waiting"]`)))
	if got := text("#job-event"); got != "#"+itoa(int(placed.Seq))+" order/placed" {
		t.Errorf("the job's event shows %q", got)
	}
	if _, err := f.r.Send(ctx2, jobrun.Event{Name: "order/shipped", Data: shipmentArgs{OrderID: 9}}); err != nil {
		t.Fatal(err)
	}
	// The page refreshes itself as the job wakes and goes to sleep.
	do("sleeping", chromedp.WaitVisible(chromedp.CSS(`#steps tr[data-step="cool-off"] rect.holds`)))
	if got := text(`#steps tr[data-step="wait-shipment"] td.outcome`); !strings.HasPrefix(got, "received event #") {
		t.Errorf("the received wait shows %q", got)
	}
	// The bars are drawn: SVG attributes, which the Content-Security-Policy allows.
	width, err := chromedp.Run(ctx, chromedp.Evaluate[float64](
		`document.querySelector('#steps tr[data-step="wait-shipment"] rect.done').getBoundingClientRect().width`))
	if err != nil {
		t.Fatal(err)
	}
	if width < 10 {
		t.Errorf("the received wait's bar is %vpx wide", width)
	}
	screenshot("job-steps")

	// A page of another origin posts an action: the browser sends the session
	// cookie along (same site), and the dashboard refuses the request.
	do("cross-origin post", chromedp.Navigate(evil.URL), chromedp.WaitVisible(chromedp.CSS("#error-message")))
	if got := text("#error-message"); !strings.Contains(got, "cross-origin request refused") {
		t.Errorf("cross-origin post answered %q", got)
	}
	f.mustState(t, victim, jobrun.StateDone)
}

// pastThroughput records five minutes of made-up finished jobs before now, so that
// the overview's chart has a history to draw on the screenshots; the tests that
// check numbers use real events only.
func pastThroughput(s *stats, now time.Time) {
	for sec := 5; sec < historySeconds-5; sec++ {
		at := now.Add(-time.Duration(sec) * time.Second)
		wave := 3 + (sec/7)%5 + (sec/23)%3
		for i := range wave {
			s.record(jobrun.Change{Type: jobrun.ChangeDone, Queue: []string{"mail", "default", "webhooks"}[i%3], At: at})
		}
		if sec%11 == 0 {
			s.record(jobrun.Change{Type: jobrun.ChangeRetrying, Queue: "webhooks", At: at})
		}
		if sec%47 == 0 {
			s.record(jobrun.Change{Type: jobrun.ChangeFailed, Queue: "default", At: at})
		}
	}
}
