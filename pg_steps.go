package jobrun

import "github.com/jobrun/jobrun/internal/sqldb"

// A job's steps are rows of steps, by the job's ID and the step's key, as the bbolt
// store keeps them in its steps bucket (bolt_steps.go): a step's commit writes the
// step alone, not the record with every earlier step in it, and a job's steps are
// one range of the primary key. The value is the step's encoding (step.go).

func (t *pgTxn) steps(id ID) ([]*step, error) {
	var out []*step
	err := scanRows(t.queryOther(`SELECT key, data FROM {s}.steps WHERE job = $1 ORDER BY key COLLATE "C"`, int64(id)),
		func(rows sqldb.Rows) error {
			var key string
			var data []byte
			if err := rows.Scan(&key, &data); err != nil {
				return err
			}
			s, err := decodeStep(key, data)
			if err != nil {
				return err
			}
			out = append(out, s)
			return nil
		})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (t *pgTxn) saveStep(id ID, rec *record, s *step) error {
	if ok, err := t.owns(id); !ok || err != nil {
		return err // rescued meanwhile: the steps are the run's that followed
	}
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
	return t.putStep(id, s)
}

// putStep stores step s of job id, replacing the one stored under its key.
func (t *pgTxn) putStep(id ID, s *step) error {
	return t.exec(`INSERT INTO {s}.steps (job, key, data) VALUES ($1, $2, $3)
		ON CONFLICT (job, key) DO UPDATE SET data = excluded.data`, int64(id), s.key, s.encode())
}
