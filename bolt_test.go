package jobrun

import (
	"bytes"
	"context"
	"encoding/binary"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

func sampleRecord() *record {
	at := time.Unix(1700000000, 123456789)
	return &record{
		kind: "email", queue: "mail", args: []byte(`{"to":"a"}`), state: stRetrying,
		priority: -3, attempt: 2, maxAttempts: 25,
		backoff:   backoffPolicy{kind: backoffExponential, min: time.Second, max: time.Hour},
		timeout:   5 * time.Second,
		createdAt: at, runAt: at.Add(time.Minute), startedAt: at.Add(time.Second), recoveries: 1,
		progress: []byte(`50`), result: nil,
		errors: []AttemptError{
			{Attempt: 1, StartedAt: at.Add(-time.Second), At: at, Error: "boom"},
			{Attempt: 2, At: at.Add(time.Second), Error: "again"}, // its start unknown
		},
		event: 7, eventName: "user/created", parent: 3, parentStep: "resize", invoker: true,
		metadata: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tenant": ""},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	failing := &record{kind: "k", queue: "q", state: stRetrying, errors: []AttemptError{{Attempt: 1, Error: "x"}}}
	for _, r := range []*record{sampleRecord(), {kind: "k", queue: "q", state: stReady}, failing} {
		got, err := decodeRecord(r.encode())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip:\ngot  %+v\nwant %+v", got, r)
		}
	}
}

func TestRecordDecodeErrors(t *testing.T) {
	full := sampleRecord().encode()
	for name, b := range map[string][]byte{
		"empty":                       nil,
		"future version":              append([]byte{recordVersion + 1}, full[1:]...),
		"cut in a field":              full[:5],
		"running state":               (&record{kind: "k", state: stRunning}).encode(),
		"starts without their errors": startsWithoutErrors(),
	} {
		if _, err := decodeRecord(b); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	// A record that simply ends early (written before fields were added) decodes
	// with the missing fields zero.
	short := []byte{recordVersion}
	short = appendString(short, "k")
	short = appendString(short, "q")
	short = appendBytes(short, []byte(`{}`))
	short = append(short, stReady)
	r, err := decodeRecord(short)
	if err != nil || r.kind != "k" || r.state != stReady || r.maxAttempts != 0 {
		t.Fatalf("short record: %+v, %v", r, err)
	}
}

// startsWithoutErrors is a record whose tail holds an attempt's start time but
// which has no error to go with it.
func startsWithoutErrors() []byte {
	b := (&record{kind: "k", state: stReady, metadata: map[string]string{"a": "b"}}).encode()
	b[len(b)-1] = 1 // the count of start times, 0 as encoded
	return append(b, 0)
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(sampleRecord().encode())
	f.Add((&record{kind: "k", queue: "q", state: stDone}).encode())
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		again, err := decodeRecord(r.encode())
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip changed the record:\n%+v\n%+v", r, again)
		}
	})
}

func TestReadyKeyOrder(t *testing.T) {
	// Higher priority first, then lower ID; queues never interleave (they sort by
	// name length, then name, which no reader relies on).
	keys := [][]byte{
		readyKey("a", 100, 9), readyKey("a", 1, 2), readyKey("a", 0, 1), readyKey("a", 0, 3),
		readyKey("a", -1, 0), readyKey("b", 5, 1), readyKey("ab", 1<<40, 1),
	}
	for i := 1; i < len(keys); i++ {
		if bytes.Compare(keys[i-1], keys[i]) >= 0 {
			t.Fatalf("key %d does not sort before key %d", i-1, i)
		}
	}
}

type crashArgs struct{}

func (crashArgs) Kind() string { return "crash" }

// simulateCrash marks a job running in the file, as a process killed while it ran
// would have left it.
func simulateCrash(t *testing.T, path string, id ID) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		tt, err := openTxn(tx, time.Now())
		if err != nil {
			return err
		}
		c := tt.ready().Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if keyID(k) == id {
				if err := tt.ready().Delete(k); err != nil {
					return err
				}
				break
			}
		}
		stamp := append(binary.BigEndian.AppendUint64(nil, unixNanos(time.Now())), DefaultQueue...)
		if err := tt.active().Put(idKey(id), stamp); err != nil {
			return err
		}
		tt.count(DefaultQueue, stReady, stRunning)
		return tt.flush()
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRecoveryLimitStopsACrashLoop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.db")
	r, err := Open(path, WithStrictKinds(false))
	if err != nil {
		t.Fatal(err)
	}
	id, err := r.Enqueue(t.Context(), crashArgs{})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	const limit = 2
	for i := 1; i <= limit+1; i++ {
		simulateCrash(t, path, id)
		r, err := Open(path, WithStrictKinds(false), WithMaxRecoveries(limit))
		if err != nil {
			t.Fatal(err)
		}
		in, err := r.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		counts, _ := r.Counts(t.Context(), "")
		r.Close()
		want := StateReady
		if i > limit {
			want = StateFailed
		}
		if in.State != want || in.Attempt != 0 || counts[want] != 1 || counts[StateRunning] != 0 {
			t.Fatalf("after crash %d: state %s attempt %d counts %v, want %s with attempt 0", i, in.State, in.Attempt, counts, want)
		}
		if i > limit && !strings.Contains(in.LastError, "the process exited while this job ran, 3 times") {
			t.Fatalf("last error %q", in.LastError)
		}
	}
}

func TestCorruptRecordIsFailedNotDropped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.db")
	r, err := Open(path, WithStrictKinds(false))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	bad, _ := r.Enqueue(ctx, crashArgs{})
	good, _ := r.Enqueue(ctx, crashArgs{})
	r.Close()

	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	garbage := []byte{recordVersion, 0xff, 0xff}
	db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketRoot).Bucket(bucketJobs).Put(idKey(bad), garbage)
	})
	db.Close()

	r, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	Handle(r, func(ctx context.Context, j *Job[crashArgs]) error { return nil })
	if err := r.RunUntilIdle(ctx); err != nil {
		t.Fatal(err)
	}
	in, err := r.Get(ctx, bad)
	if err != nil {
		t.Fatal(err)
	}
	if in.State != StateFailed || !strings.Contains(in.LastError, "unreadable") {
		t.Fatalf("corrupt job: state %s, last error %q", in.State, in.LastError)
	}
	if in, _ := r.Get(ctx, good); in.State != StateDone {
		t.Fatalf("the good job is %s, want done", in.State)
	}
	counts, _ := r.Counts(ctx, "")
	if counts[StateFailed] != 1 || counts[StateDone] != 1 || counts[StateReady] != 0 {
		t.Fatalf("counts %v", counts)
	}
	r.DB().View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketRoot).Bucket(bucketCorrupt).Get(idKey(bad)); !bytes.Equal(v, garbage) {
			t.Errorf("corrupt bucket holds %x, want the original bytes %x", v, garbage)
		}
		return nil
	})
}

func TestBackoffPolicy(t *testing.T) {
	for _, tc := range []struct {
		p        backoffPolicy
		attempt  int
		min, max time.Duration
	}{
		{backoffPolicy{kind: backoffConstant, min: 3 * time.Second}, 7, 3 * time.Second, 3 * time.Second},
		{backoffPolicy{kind: backoffDefault}, 1, 500 * time.Millisecond, 1500 * time.Millisecond},
		{backoffPolicy{kind: backoffDefault}, 40, 30 * time.Minute, 90 * time.Minute},
		{backoffPolicy{kind: backoffExponential, min: time.Second, max: 10 * time.Second}, 3, 2 * time.Second, 6 * time.Second},
		{backoffPolicy{kind: backoffExponential, min: time.Second, max: 10 * time.Second}, 1000, 5 * time.Second, 15 * time.Second},
		// Jitter(0): exact, as BullMQ's exponential backoff.
		{backoffPolicy{kind: backoffExponential, min: 2 * time.Second, max: time.Minute, jitter: 1}, 1, 2 * time.Second, 2 * time.Second},
		{backoffPolicy{kind: backoffExponential, min: 2 * time.Second, max: time.Minute, jitter: 1}, 3, 8 * time.Second, 8 * time.Second},
		{backoffPolicy{kind: backoffExponential, min: 2 * time.Second, max: time.Minute, jitter: 1}, 30, time.Minute, time.Minute},
		{backoffPolicy{kind: backoffDefault, jitter: 1}, 2, 2 * time.Second, 2 * time.Second},
		// Jitter(0.2) on a constant delay.
		{backoffPolicy{kind: backoffConstant, min: 10 * time.Second, max: 10 * time.Second, jitter: 201}, 4, 8 * time.Second, 12 * time.Second},
	} {
		for range 20 {
			if d := tc.p.delay(tc.attempt); d < tc.min || d > tc.max {
				t.Fatalf("%+v attempt %d: delay %v outside [%v, %v]", tc.p, tc.attempt, d, tc.min, tc.max)
			}
		}
	}
}

func TestBucketIndexes(t *testing.T) {
	if len(allBuckets) != numBuckets {
		t.Fatalf("%d buckets, %d indexes", len(allBuckets), numBuckets)
	}
	for i, want := range map[int][]byte{bMeta: bucketMeta, bJobs: bucketJobs, bReady: bucketReady,
		bScheduled: bucketScheduled, bActive: bucketActive, bFinished: bucketFinished, bCounts: bucketCounts,
		bCorrupt: bucketCorrupt, bQueues: bucketQueues, bUnique: bucketUnique, bSchedules: bucketSchedules,
		bTags: bucketTags, bKeyWait: bucketKeyWait, bKeySlots: bucketKeySlots, bHeld: bucketHeld, bSteps: bucketSteps,
		bSuspended: bucketSuspended, bHistory: bucketHistory} {
		if !bytes.Equal(allBuckets[i], want) {
			t.Errorf("bucket index %d is %s, want %s", i, allBuckets[i], want)
		}
	}
}

// An unreadable schedule is left out of the loop's fire times without hiding the
// schedules after it, and Schedules reports it.
func TestUnreadableScheduleHidesNoOther(t *testing.T) {
	cfg, err := newConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := openBoltStore(filepath.Join(t.TempDir(), "jobs.db"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	next := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err = st.update(time.Now(), nil, func(w storeWriter) error {
		for _, name := range []string{"a", "c"} {
			if err := w.putSchedule(name, &storedSchedule{Spec: "@hourly", Next: next.UnixNano()}); err != nil {
				return err
			}
		}
		return w.(*txn).schedules().Put([]byte("b"), []byte("{not json"))
	})
	if err != nil {
		t.Fatal(err)
	}
	var fires map[string]time.Time
	var listErr error
	st.view(func(r storeReader) error {
		fires = loadFires(r)
		listErr = r.eachSchedule(func(_ string, _ *storedSchedule, err error) error { return err })
		return nil
	})
	if len(fires) != 2 || !fires["a"].Equal(next) || !fires["c"].Equal(next) {
		t.Fatalf("fires %v, want a and c at %v", fires, next)
	}
	if listErr == nil || !strings.Contains(listErr.Error(), "schedule b") {
		t.Fatalf("the walk over schedules reports %v, want the unreadable schedule b", listErr)
	}
}
