package jobrun

// Limits the external tests check against, unexported in the API (the docs give
// their values).
const (
	MaxArgsSize = maxArgsSize
	MaxWorkers  = maxWorkers
	CloseGrace  = closeGrace
)

// StopTestServers stops the PostgreSQL cluster the store's tests started, if they
// did.
func StopTestServers() { stopTestPG() }
