package jobrun_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	_ "time/tzdata" // the DST test needs Europe/Paris whatever the machine has

	"github.com/jobrun/jobrun"
)

type report struct {
	Name string `json:"name"`
}

func (report) Kind() string { return "report" }

// fireLog records, per run of a report job, its schedule fire time and start time.
type fireLog struct {
	mu     sync.Mutex
	fires  []time.Time
	starts []time.Time
	by     map[string][]time.Duration // schedule → fire times since the bubble's start
}

func (l *fireLog) handle(r *jobrun.Runner, opts ...jobrun.EnqueueOption) {
	jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[report]) error {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.fires = append(l.fires, j.FireAt)
		l.starts = append(l.starts, time.Now())
		if l.by == nil {
			l.by = map[string][]time.Duration{}
		}
		l.by[j.Schedule] = append(l.by[j.Schedule], j.FireAt.Sub(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)))
		return nil
	}, opts...)
}

func (l *fireLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.fires)
}

func TestScheduleFiresOnTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		var log fireLog
		log.handle(r)
		start := time.Now() // 2000-01-01 00:00:00 UTC in the bubble
		if err := r.Schedule(t.Context(), "quarter-hourly", "*/15 * * * *", report{"q"}); err != nil {
			t.Fatal(err)
		}
		if err := r.Schedule(t.Context(), "every-40s", "@every 40s", report{"e"}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.Run(ctx)
		time.Sleep(time.Hour)
		synctest.Wait()
		log.mu.Lock()
		for i, at := range log.fires {
			if !log.starts[i].Equal(at) {
				t.Errorf("fire for %v started at %v", at, log.starts[i])
			}
		}
		quarter, every := log.by["quarter-hourly"], log.by["every-40s"]
		log.mu.Unlock()
		if want := []time.Duration{15 * time.Minute, 30 * time.Minute, 45 * time.Minute, time.Hour}; !slices.Equal(quarter, want) {
			t.Fatalf("*/15 fired at %v, want %v", quarter, want)
		}
		if len(every) != 90 || every[0] != 40*time.Second || every[89] != time.Hour {
			t.Fatalf("@every 40s fired %d times (first %v), want 90 from 40s to 1h", len(every), every[0])
		}
		list, err := r.Schedules(t.Context())
		if err != nil || len(list) != 2 || list[0].Name != "every-40s" || list[1].Kind != "report" {
			t.Fatalf("schedules: %+v %v", list, err)
		}
		if want := start.Add(75 * time.Minute); !list[1].Next.Equal(want) {
			t.Fatalf("next fire of */15: %v, want %v", list[1].Next, want)
		}
	})
}

func TestScheduleAcrossDST(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		paris, err := time.LoadLocation("Europe/Paris")
		if err != nil {
			t.Fatal(err)
		}
		// The bubble starts on 2000-01-01; Paris moved to summer time on 2000-03-26.
		time.Sleep(time.Date(2000, 3, 24, 12, 0, 0, 0, time.UTC).Sub(time.Now()))
		r, _ := openRunner(t)
		var log fireLog
		log.handle(r)
		if err := r.Schedule(t.Context(), "morning", "30 2 * * *", report{}, jobrun.TimeZone("Europe/Paris")); err != nil {
			t.Fatal(err)
		}
		if err := r.Schedule(t.Context(), "nine", "CRON_TZ=Europe/Paris 0 9 * * *", report{}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.Run(ctx)
		time.Sleep(4 * 24 * time.Hour)
		synctest.Wait()
		var got []string
		log.mu.Lock()
		for _, at := range log.fires {
			got = append(got, at.In(paris).Format("01-02 15:04 MST"))
		}
		log.mu.Unlock()
		// 02:30 does not exist on 03-26 in Paris; robfig/cron skips that day's fire.
		want := []string{
			"03-25 02:30 CET", "03-25 09:00 CET",
			"03-26 09:00 CEST",
			"03-27 02:30 CEST", "03-27 09:00 CEST",
			"03-28 02:30 CEST", "03-28 09:00 CEST",
		}
		if strings.Join(got, ", ") != strings.Join(want, ", ") {
			t.Fatalf("fires:\n got %v\nwant %v", got, want)
		}
	})
}

func TestScheduleMissedFiresAcrossRestart(t *testing.T) {
	for _, skip := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			r, path := openRunner(t, jobrun.WithStrictKinds(false))
			var opts []jobrun.EnqueueOption
			if skip {
				opts = append(opts, jobrun.SkipMissed())
			}
			if err := r.Schedule(t.Context(), "hourly", "@hourly", report{}, opts...); err != nil {
				t.Fatal(err)
			}
			r.Close()
			time.Sleep(3*time.Hour + 10*time.Minute) // down across three fires

			r2 := reopen(t, path)
			var log fireLog
			log.handle(r2)
			runUntilIdle(t, r2)
			want := 1
			if skip {
				want = 0
			}
			if n := log.count(); n != want {
				t.Fatalf("skip missed %v: ran %d jobs for the missed fires, want %d", skip, n, want)
			}
			list, _ := r2.Schedules(t.Context())
			if next := list[0].Next; next.Sub(time.Date(2000, 1, 1, 4, 0, 0, 0, time.UTC)) != 0 {
				t.Fatalf("next fire %v, want 04:00", next)
			}
			// Calling Schedule again at start-up (as code does) keeps the timetable.
			if err := r2.Schedule(t.Context(), "hourly", "@hourly", report{}, opts...); err != nil {
				t.Fatal(err)
			}
			runUntilIdle(t, r2)
			if n := log.count(); n != want {
				t.Fatalf("re-declaring the schedule fired it again: %d jobs", n)
			}
		})
	}
}

func TestScheduleSkipOverlapTriggerUnschedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		release := make(chan struct{})
		var mu sync.Mutex
		var runs int
		jobrun.Handle(r, func(ctx context.Context, j *jobrun.Job[report]) error {
			mu.Lock()
			runs++
			mu.Unlock()
			<-release
			return nil
		})
		if err := r.Schedule(t.Context(), "minutely", "* * * * *", report{}, jobrun.SkipOverlap()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.Run(ctx)
		time.Sleep(5 * time.Minute) // the first run blocks: the next four fires are skipped
		synctest.Wait()
		wantCounts(t, r, "", map[jobrun.State]int{jobrun.StateRunning: 1})
		close(release)
		id, err := r.TriggerSchedule(t.Context(), "minutely")
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if in := get(t, r, id); in.State != jobrun.StateDone || in.Schedule != "minutely" {
			t.Fatalf("triggered job: %s of schedule %q", in.State, in.Schedule)
		}
		if err := r.Unschedule(t.Context(), "minutely"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if runs != 2 {
			t.Fatalf("ran %d times, want 2: the first fire and the trigger", runs)
		}
		if err := r.Unschedule(t.Context(), "minutely"); !errors.Is(err, jobrun.ErrNotFound) {
			t.Fatalf("second unschedule: got %v, want ErrNotFound", err)
		}
	})
}

func TestScheduleBadInput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		var log fireLog
		log.handle(r)
		ctx := t.Context()
		for _, tc := range []struct {
			name, spec string
			opts       []jobrun.EnqueueOption
			want       string
		}{
			{"", "@daily", nil, "empty schedule name"},
			{"x", "61 * * * *", nil, "cron spec"},
			{"x", "not a spec", nil, "cron spec"},
			{"x", "@daily", []jobrun.EnqueueOption{jobrun.TimeZone("Mars/Olympus")}, "unknown time zone"},
			{"x", "CRON_TZ=Mars/Olympus @daily", nil, "cron spec"},
			{"x", "CRON_TZ=UTC @daily", []jobrun.EnqueueOption{jobrun.TimeZone("UTC")}, "prefix and the TimeZone option"},
			{"x", "0 0 30 2 *", nil, "never fires"},
		} {
			err := r.Schedule(ctx, tc.name, tc.spec, report{}, tc.opts...)
			if !errors.Is(err, jobrun.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Schedule(%q, %q): got %v, want ErrInvalid mentioning %q", tc.name, tc.spec, err, tc.want)
			}
		}
		if _, err := r.Enqueue(ctx, report{}, jobrun.SkipMissed()); !errors.Is(err, jobrun.ErrInvalid) {
			t.Errorf("Enqueue with a schedule option: got %v, want ErrInvalid", err)
		}
		if _, err := r.TriggerSchedule(ctx, "nope"); !errors.Is(err, jobrun.ErrNotFound) {
			t.Errorf("trigger of a missing schedule: got %v, want ErrNotFound", err)
		}
	})
}

// TestSchedulePauseResume: a paused schedule does not fire, stays paused when the
// application declares it again and across a restart, still runs on
// TriggerSchedule, and once resumed fires from its next time on without making up
// the fires it missed; Schedules lists its latest fires, newest first, at most 10.
func TestSchedulePauseResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, path := openRunner(t)
		var log fireLog
		log.handle(r)
		t0 := time.Now()
		declare := func(r *jobrun.Runner) {
			t.Helper()
			if err := r.Schedule(t.Context(), "q", "*/15 * * * *", report{"q"}); err != nil {
				t.Fatal(err)
			}
		}
		declare(r)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		time.Sleep(20 * time.Minute)
		synctest.Wait()
		if err := r.PauseSchedule(t.Context(), "q"); err != nil {
			t.Fatal(err)
		}
		if err := r.PauseSchedule(t.Context(), "q"); err != nil {
			t.Fatalf("pausing again: %v", err)
		}
		declare(r)
		time.Sleep(20 * time.Minute) // past 00:30: no fire
		synctest.Wait()
		manual, err := r.TriggerSchedule(t.Context(), "q")
		if err != nil {
			t.Fatal(err)
		}
		list, err := r.Schedules(t.Context())
		if err != nil || len(list) != 1 || !list[0].Paused || !list[0].Next.IsZero() || len(list[0].Fires) != 2 ||
			!list[0].Fires[0].Manual || list[0].Fires[0].Job != manual || !list[0].Fires[1].At.Equal(t0.Add(15*time.Minute)) {
			t.Fatalf("paused schedule: %+v, %v", list, err)
		}

		// Across a restart it stays paused.
		cancel()
		<-done
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		r2, err := jobrun.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer r2.Close()
		log.handle(r2)
		declare(r2)
		ctx, cancel = context.WithCancel(t.Context())
		defer cancel()
		go r2.Run(ctx)
		time.Sleep(25 * time.Minute) // 01:05: past 00:45 and 01:00
		synctest.Wait()
		if err := r2.ResumeSchedule(t.Context(), "q"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(15 * time.Minute) // 01:20
		synctest.Wait()
		log.mu.Lock()
		got := log.by["q"]
		log.mu.Unlock()
		// The fire at 00:15, the manual run (no fire time of the timetable: the
		// trigger's own) and 01:15.
		if len(got) != 3 || got[0] != 15*time.Minute || got[2] != 75*time.Minute {
			t.Fatalf("fires at %v, want 15m, the manual run, 1h15m", got)
		}
		list, err = r2.Schedules(t.Context())
		if err != nil || list[0].Paused || !list[0].Next.Equal(t0.Add(90*time.Minute)) || len(list[0].Fires) != 3 ||
			!list[0].Fires[0].At.Equal(t0.Add(75*time.Minute)) || list[0].Fires[0].Job == 0 || list[0].Fires[0].Skipped {
			t.Fatalf("resumed schedule: %+v, %v", list, err)
		}
		for _, call := range []func(context.Context, string) error{r2.PauseSchedule, r2.ResumeSchedule} {
			if err := call(t.Context(), "nope"); !errors.Is(err, jobrun.ErrNotFound) {
				t.Errorf("unknown schedule: %v, want ErrNotFound", err)
			}
		}
	})
}

// TestScheduleFiresBounded: a schedule keeps its 10 latest fires, newest first,
// skipped ones marked.
func TestScheduleFiresBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := openRunner(t)
		var log fireLog
		log.handle(r)
		t0 := time.Now()
		if err := r.Schedule(t.Context(), "m", "* * * * *", report{"m"}, jobrun.SkipOverlap()); err != nil {
			t.Fatal(err)
		}
		if err := r.Pause(t.Context(), jobrun.DefaultQueue); err != nil { // fires stay unfinished: every later one is skipped
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.Run(ctx)
		time.Sleep(15*time.Minute + time.Second)
		synctest.Wait()
		list, err := r.Schedules(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		fires := list[0].Fires
		if len(fires) != 10 || !fires[0].At.Equal(t0.Add(15*time.Minute)) || !fires[9].At.Equal(t0.Add(6*time.Minute)) {
			t.Fatalf("fires %+v", fires)
		}
		for _, f := range fires {
			if !f.Skipped || f.Job != 0 {
				t.Errorf("fire %+v: want skipped by SkipOverlap", f)
			}
		}
	})
}
