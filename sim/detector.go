package sim

import (
	"github.com/hasup/hasup"
)

// detEntry is what one node's failure detector believes of another node.
type detEntry struct {
	state hasup.MemberState
	since int64 // step the state began
	// next is the state the detector is moving to, at step at; at < 0:
	// none. A change of the truth is seen only after a delay, and a
	// truth that flips back before then is never seen.
	next hasup.MemberState
	at   int64
	// falseUntil: a false verdict; the detector holds the node failed
	// until then, whatever the truth.
	falseUntil int64
}

// updateDetectors moves every up node's detector towards the truth, the
// way Serf's would: a node that crashed, or that the partition cuts off
// (with no third node to probe it through, as memberlist's indirect
// probes do), is suspect after DetectMin..DetectMax steps and failed after
// as long again; a node back is alive after up to AliveDelayMax steps. A
// false verdict holds the node failed at once, for its whole window.
func (w *world) updateDetectors() {
	for _, obs := range w.nodes {
		if !obs.up {
			continue
		}
		for j, d := range obs.det {
			if j == obs.idx {
				continue
			}
			if d.falseUntil > w.now {
				if d.state != hasup.MemberFailed {
					d.state, d.since, d.at = hasup.MemberFailed, w.now, -1
				}
				continue
			}
			want := hasup.MemberAlive
			if !w.nodes[j].up || !w.reachable(obs.idx, j) {
				want = hasup.MemberFailed
			}
			if want == d.state {
				d.at = -1
				continue
			}
			next := want
			if want == hasup.MemberFailed && d.state == hasup.MemberAlive {
				next = hasup.MemberSuspect
			}
			if d.at < 0 || d.next != next {
				delay := 1 + w.rng.IntN(w.p.AliveDelayMax)
				if next != hasup.MemberAlive {
					delay = w.p.DetectMin + w.rng.IntN(w.p.DetectMax-w.p.DetectMin+1)
				}
				d.next, d.at = next, w.now+int64(delay)
			}
			if w.now >= d.at {
				d.state, d.since, d.at = next, w.now, -1
				w.traceEvent('D', uint64(obs.idx), uint64(j), uint64(next))
			}
		}
	}
}

// resetDetector is a node's detector when its supervisor (re)starts: it
// learns every node's state from the cluster at once, and its clocks
// start now, so that a new cluster primary waits out the damping before
// it records anything.
func (w *world) resetDetector(n *simNode) {
	n.det = make([]*detEntry, len(w.nodes))
	for j := range w.nodes {
		s := hasup.MemberAlive
		if j != n.idx && (!w.nodes[j].up || !w.reachable(n.idx, j)) {
			s = hasup.MemberFailed
		}
		n.det[j] = &detEntry{state: s, since: w.now, at: -1}
	}
}

// reachable: a and b can talk both ways, directly or through a third up
// node.
func (w *world) reachable(a, b int) bool {
	if len(w.blocked) == 0 || w.linked(a, b) {
		return true
	}
	for k, n := range w.nodes {
		if k != a && k != b && n.up && w.linked(a, k) && w.linked(k, b) {
			return true
		}
	}
	return false
}

// linked: a and b can talk directly, both ways.
func (w *world) linked(a, b int) bool {
	return a == b || (!w.blocked[[2]int{a, b}] && !w.blocked[[2]int{b, a}])
}

// injectVerdicts draws this step's false failure verdicts and flaps.
func (w *world) injectVerdicts() {
	p := w.p
	if w.rng.Float64() < p.FalsePct {
		victim := w.nodes[w.rng.IntN(len(w.nodes))]
		// Mostly shorter than the damping window; sometimes long enough
		// that the registry records the live node failed and the
		// supervisors replace it.
		var dur int
		switch x := w.rng.IntN(20); {
		case x < 12:
			dur = 10 + w.rng.IntN(p.DampingSteps/2)
		case x < 17:
			dur = p.DampingSteps/2 + w.rng.IntN(p.DampingSteps)
		default:
			dur = p.DampingSteps + w.rng.IntN(3*p.DampingSteps)
		}
		for _, obs := range w.observers(victim) {
			d := obs.det[victim.idx]
			d.falseUntil = max(d.falseUntil, w.now+int64(dur))
		}
		w.res.Faults["false_verdicts"]++
		w.traceEvent('F', uint64(victim.idx), uint64(dur))
	}
	if w.rng.Float64() < p.FlapPct {
		// Failed and alive again, several times, each failed phase well
		// within the damping window: the registry must not hear of it.
		victim := w.nodes[w.rng.IntN(len(w.nodes))]
		observers := w.observers(victim)
		cycles := 2 + w.rng.IntN(6)
		on, off := 5+w.rng.IntN(p.DampingSteps/3), 5+w.rng.IntN(p.DampingSteps/2)
		for c := 0; c < cycles; c++ {
			w.schedule(int64(c*(on+off)), func() {
				if w.live {
					return
				}
				for _, obs := range observers {
					d := obs.det[victim.idx]
					d.falseUntil = max(d.falseUntil, w.now+int64(on))
				}
			})
		}
		w.res.Faults["flaps"]++
		w.traceEvent('f', uint64(victim.idx), uint64(cycles), uint64(on), uint64(off))
	}
}

// observers draws whose detectors a false verdict on victim fools: every
// other node's, one node's, or some.
func (w *world) observers(victim *simNode) []*simNode {
	shape := w.rng.IntN(3)
	one := w.rng.IntN(len(w.nodes))
	var out []*simNode
	for _, n := range w.nodes {
		if n == victim {
			continue
		}
		switch {
		case shape == 0,
			shape == 1 && n.idx == one,
			shape == 2 && w.rng.IntN(2) == 0:
			out = append(out, n)
		}
	}
	return out
}
