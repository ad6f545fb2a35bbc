package jobrun

import (
	"fmt"
)

// errPGTodo marks what the PostgreSQL store does not do yet.
var errPGTodo = fmt.Errorf("%w: not yet", errPGUnsupported)

var _ storeWriter = (*pgTxn)(nil)
var _ store = (*pgStore)(nil)
