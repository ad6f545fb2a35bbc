package jobrun

import "bytes"

// A job's steps live in the steps bucket, keyed by the job's ID and the step's key,
// so that a step's commit writes the step alone (not the record with every earlier
// step in it), and a job's steps are one prefix scan:
//
//	steps  id (8 B) ‖ step key → step (step.go)

func (t *txn) steps(id ID) ([]*step, error) {
	b := t.bucket(bSteps)
	if b == nil {
		return nil, nil // a file from before steps, opened read-only
	}
	prefix := idKey(id)
	var out []*step
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		_, key, ok := parseStepKey(k)
		if !ok {
			continue
		}
		s, err := decodeStep(key, v)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (t *txn) saveStep(id ID, rec *record, s *step) error {
	if rec != nil {
		if err := t.saveProgress(id, rec); err != nil {
			return err
		}
	}
	if s.state == stepTimedOut {
		if err := t.endWait(id, s); err != nil {
			return err
		}
	}
	return t.bucket(bSteps).Put(stepKey(id, s.key), s.encode())
}

// removeSteps deletes a job's steps.
func (t *txn) removeSteps(id ID) error {
	b := t.bucket(bSteps)
	if b == nil {
		return nil
	}
	prefix := idKey(id)
	var keys [][]byte
	var waits []*step
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		keys = append(keys, bytes.Clone(k))
		if len(v) > 1 && v[1] == stepWait {
			if _, key, ok := parseStepKey(k); ok {
				if s, err := decodeStep(key, v); err == nil {
					waits = append(waits, s)
				}
			}
		}
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	for _, s := range waits {
		if err := t.endWait(id, s); err != nil {
			return err
		}
	}
	return nil
}
