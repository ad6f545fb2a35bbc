package jobrun

import (
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Backoff policies as stored with each job.
const (
	backoffDefault     byte = iota // Backoff(defaultBackoffMin, defaultBackoffMax)
	backoffExponential             // exponential from min to max, ±50% jitter
	backoffConstant                // always min
)

// backoffPolicy is data, not a stateful backoff.BackOff, so that it survives restarts:
// the delay is computed from the stored attempt number each time.
type backoffPolicy struct {
	kind     byte
	min, max time.Duration
	jitter   int64 // Jitter: 0 for the policy's own, else 1 + the factor in thousandths
}

// jitterFactor is the randomization of the policy's delays: ±factor of each.
func (p backoffPolicy) jitterFactor(own float64) float64 {
	if p.jitter <= 0 {
		return own
	}
	return float64(min(p.jitter-1, 1000)) / 1000
}

// delay returns how long to wait after the given failed attempt (1 for the first run).
// The exponential policy builds a fresh backoff.ExponentialBackOff and steps it to the
// attempt: cenkalti's type is stateful and not safe for concurrent use, so none is kept.
func (p backoffPolicy) delay(attempt int) time.Duration {
	switch p.kind {
	case backoffConstant:
		if f := p.jitterFactor(0); f > 0 {
			b := backoff.NewExponentialBackOff(backoff.WithInitialInterval(p.min), backoff.WithMaxInterval(p.min),
				backoff.WithMultiplier(1), backoff.WithRandomizationFactor(f), backoff.WithMaxElapsedTime(0))
			return b.NextBackOff()
		}
		return backoff.NewConstantBackOff(p.min).NextBackOff()
	case backoffExponential, backoffDefault:
		lo, hi := p.min, p.max
		if p.kind == backoffDefault {
			lo, hi = defaultBackoffMin, defaultBackoffMax
		}
		b := backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(lo),
			backoff.WithMaxInterval(hi),
			backoff.WithMultiplier(2),
			backoff.WithRandomizationFactor(p.jitterFactor(0.5)),
			backoff.WithMaxElapsedTime(0),
		)
		// The interval stops growing at max, which 2^63 ns reaches within 64 doublings.
		d := b.NextBackOff()
		for i := 1; i < min(attempt, 64); i++ {
			d = b.NextBackOff()
		}
		return d
	}
	return defaultBackoffMin
}
