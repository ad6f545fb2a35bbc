package jobrun

import (
	"fmt"
	"time"
)

// errPGTodo marks what the PostgreSQL store does not do yet.
var errPGTodo = fmt.Errorf("%w: not yet", errPGUnsupported)

// Schedules, retention, lists and history (to port from bolt_schedules.go,
// bolt_retention.go, bolt_list.go, bolt_history.go and sweep in bolt_jobs.go).

func (t *pgTxn) history(queue string, since time.Time) ([]HistoryPoint, error) {
	return nil, errPGTodo
}
func (t *pgTxn) addHistory(points []HistoryPoint, before time.Time, limit int) error {
	return errPGTodo
}

var _ storeWriter = (*pgTxn)(nil)
var _ store = (*pgStore)(nil)
