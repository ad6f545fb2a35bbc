package main

import (
	"context"
	"encoding/binary"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
)

// The raw-bbolt references: what the disk and bbolt allow for the same work, with no
// job system around them.

var (
	refJobs   = []byte("jobs")
	refReady  = []byte("ready")
	refActive = []byte("active")
)

// openRef opens a fresh bbolt file holding the references' buckets.
func openRef(env *benchEnv) (*bbolt.DB, error) {
	db, err := env.openBolt()
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{refJobs, refReady, refActive} {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// withRef runs fn on a fresh reference file and closes it, returning the first error.
func withRef(env *benchEnv, fn func(db *bbolt.DB) (benchSample, error)) (smp benchSample, err error) {
	db, err := openRef(env)
	if err != nil {
		return benchSample{}, err
	}
	defer func() {
		if cerr := db.Close(); err == nil && cerr != nil {
			smp, err = benchSample{}, cerr
		}
	}()
	return fn(db)
}

func refKey(i int) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(i)) }

// refValue is job i's payload as JSON, padded with spaces to refValueSize bytes.
func refValue(i int) []byte {
	b := make([]byte, 0, refValueSize)
	b = append(b, `{"to":"user-`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `@example.com","subject":"hello","n":`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, '}')
	for len(b) < refValueSize {
		b = append(b, ' ')
	}
	return b
}

// refPutPerUpdate is reference a: one Put per Update, from one goroutine.
func refPutPerUpdate(ctx context.Context, env *benchEnv, n int) (benchSample, error) {
	return withRef(env, func(db *bbolt.DB) (benchSample, error) {
		return timed(db, n, func() error {
			for i := range n {
				if err := ctx.Err(); err != nil {
					return err
				}
				err := db.Update(func(tx *bbolt.Tx) error {
					return tx.Bucket(refJobs).Put(refKey(i), refValue(i))
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// putRequest is one Put waiting for the group committer.
type putRequest struct {
	key, value []byte
	done       chan error
}

// refGroupCommit returns reference b for k goroutines: each sends one Put at a time to
// a committer and waits for its commit; the committer takes the first request waiting,
// then every other one already queued, without waiting for more, and commits them all
// in one Update. It is the least a group commit can do: no timer, no batching limit.
func refGroupCommit(k int) func(ctx context.Context, env *benchEnv, n int) (benchSample, error) {
	return func(ctx context.Context, env *benchEnv, n int) (benchSample, error) {
		return withRef(env, func(db *bbolt.DB) (benchSample, error) {
			requests := make(chan putRequest, k) // each goroutine has at most one waiting
			committed := make(chan struct{})
			go func() {
				defer close(committed)
				var batch []putRequest
				for first := range requests {
					batch = append(batch[:0], first)
				drain:
					for {
						select {
						case req, ok := <-requests:
							if !ok {
								break drain
							}
							batch = append(batch, req)
						default:
							break drain
						}
					}
					err := db.Update(func(tx *bbolt.Tx) error {
						b := tx.Bucket(refJobs)
						for _, req := range batch {
							if err := b.Put(req.key, req.value); err != nil {
								return err
							}
						}
						return nil
					})
					for _, req := range batch {
						req.done <- err
					}
				}
			}()
			smp, err := timed(db, n, func() error {
				var next atomic.Int64
				errs := make(chan error, k)
				for range k {
					go func() {
						done := make(chan error, 1)
						for {
							i := int(next.Add(1) - 1)
							if i >= n || ctx.Err() != nil {
								errs <- ctx.Err()
								return
							}
							requests <- putRequest{refKey(i), refValue(i), done}
							if err := <-done; err != nil {
								next.Store(int64(n)) // stops the other goroutines
								errs <- err
								return
							}
						}
					}()
				}
				var first error
				for range k {
					if err := <-errs; first == nil {
						first = err
					}
				}
				return first
			})
			close(requests)
			<-committed
			return smp, err
		})
	}
}

// refSteps returns reference s for k goroutines: each run is writes sequential Puts
// (a run's steps, then its completion), each durable before the next, through
// reference b's group commit. It is the least an engine that commits every step
// before the next begins can do; runs per second over n runs.
func refSteps(k, writes int) func(ctx context.Context, env *benchEnv, n int) (benchSample, error) {
	group := refGroupCommit(k)
	return func(ctx context.Context, env *benchEnv, n int) (benchSample, error) {
		smp, err := group(ctx, env, n*writes)
		smp.n = n
		return smp, err
	}
}

// refLifecycle is reference d: the minimal life of a job, a transaction per step for
// each batch of 1,000: insert the records and their ready keys; claim them (delete the
// ready key, put an active key); complete them (delete the active key, rewrite the
// record). Jobs per second over the whole life.
func refLifecycle(ctx context.Context, env *benchEnv, n int) (benchSample, error) {
	return withRef(env, func(db *bbolt.DB) (benchSample, error) {
		return timed(db, n, func() error {
			for lo := 0; lo < n; lo += benchBatch {
				if err := ctx.Err(); err != nil {
					return err
				}
				hi := min(lo+benchBatch, n)
				err := db.Update(func(tx *bbolt.Tx) error {
					jobs, ready := tx.Bucket(refJobs), tx.Bucket(refReady)
					for i := lo; i < hi; i++ {
						if err := jobs.Put(refKey(i), refValue(i)); err != nil {
							return err
						}
						if err := ready.Put(refKey(i), nil); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					return err
				}
				// The claim finds its jobs with a cursor, as a job system must.
				var claimed [][]byte
				err = db.Update(func(tx *bbolt.Tx) error {
					ready, active := tx.Bucket(refReady), tx.Bucket(refActive)
					c := ready.Cursor()
					for k, _ := c.First(); k != nil && len(claimed) < hi-lo; k, _ = c.Next() {
						claimed = append(claimed, slices.Clone(k))
					}
					stamp := binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano()))
					for _, k := range claimed {
						if err := ready.Delete(k); err != nil {
							return err
						}
						if err := active.Put(k, stamp); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					return err
				}
				err = db.Update(func(tx *bbolt.Tx) error {
					jobs, active := tx.Bucket(refJobs), tx.Bucket(refActive)
					for _, k := range claimed {
						if err := active.Delete(k); err != nil {
							return err
						}
						v := refValue(int(binary.BigEndian.Uint64(k)))
						v[len(v)-1] = 'D' // the record says done
						if err := jobs.Put(k, v); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
	})
}
