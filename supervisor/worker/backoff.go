package worker

import (
	"math/rand/v2"
	"time"
)

// policy is the restart policy's memory: the times of the restarts within
// the sliding window. It holds at most Attempts entries, since a failure
// that would make Attempts+1 gives up instead.
type policy struct {
	cfg     Restart
	rng     *rand.Rand
	history []time.Time // restart times within the window, oldest first
}

// onFailure records a failure at now and returns the delay before the
// restart, or ok false when the policy gives up: Attempts restarts have
// already been made within the last Interval.
func (p *policy) onFailure(now time.Time) (delay time.Duration, ok bool) {
	p.prune(now)
	if len(p.history) >= p.cfg.Attempts {
		return 0, false
	}
	k := len(p.history)
	p.history = append(p.history, now)
	return p.delay(k), true
}

// delay is the wait before restart number k (from 0) of a window:
// Delay × 2^k, times a jitter factor in [0.8, 1.2), capped at MaxDelay.
func (p *policy) delay(k int) time.Duration {
	d := p.cfg.Delay
	for i := 0; i < k && d < p.cfg.MaxDelay; i++ {
		d *= 2
	}
	d = time.Duration(float64(d) * (0.8 + 0.4*p.rng.Float64()))
	return min(d, p.cfg.MaxDelay)
}

// prune forgets restarts older than the window.
func (p *policy) prune(now time.Time) {
	i := 0
	for i < len(p.history) && now.Sub(p.history[i]) >= p.cfg.Interval {
		i++
	}
	p.history = append(p.history[:0], p.history[i:]...)
}

// reset forgets every restart: after a failure was cleared by the caller.
func (p *policy) reset() { p.history = p.history[:0] }
