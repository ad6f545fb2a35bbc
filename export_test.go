package jobrun

// Limits the external tests check against, unexported in the API (the docs give
// their values).
const (
	MaxArgsSize = maxArgsSize
	MaxWorkers  = maxWorkers
	CloseGrace  = closeGrace
)
