package sim

import "github.com/hasup/hasup/ensemble"

// send puts a message on the simulated network: it may be dropped,
// corrupted (and so dropped by the transport's checksum), duplicated or
// delayed, and a partition may cut its path.
func (w *world) send(from *simReplica, m ensemble.Message) {
	to := w.node(m.To)
	if w.blocked[[2]int{from.node.idx, to.idx}] {
		w.res.Faults["partitioned_msgs"]++
		return
	}
	if w.rng.Float64() < w.p.DropPct {
		w.res.Faults["dropped_msgs"]++
		return
	}
	if w.rng.Float64() < w.p.CorruptPct {
		w.res.Faults["corrupted_msgs"]++
		return
	}
	copies := 1
	if w.rng.Float64() < w.p.DupPct {
		copies = 2
		w.res.Faults["duplicated_msgs"]++
	}
	for i := 0; i < copies; i++ {
		w.schedule(w.delay(), func() { w.deliver(to, m) })
	}
}

// delay draws a one-way delay; rare spikes model a clogged path.
func (w *world) delay() int64 {
	d := int64(w.p.DelayMin + w.rng.IntN(w.p.DelayMax-w.p.DelayMin+1))
	if w.rng.Float64() < w.p.SpikePct {
		d += int64(50 + w.rng.IntN(500))
		w.res.Faults["delay_spikes"]++
	}
	return d
}

func (w *world) deliver(to *simNode, m ensemble.Message) {
	w.traceEvent('m', uint64(m.Type), uint64(w.node(m.From).idx), uint64(to.idx), m.View, m.Op, m.Commit)
	if !to.up {
		return
	}
	var idx = -1
	for i, e := range w.ens {
		if e.name == m.Ensemble {
			idx = i
		}
	}
	if idx < 0 || to.reps[idx] == nil {
		return
	}
	rep := to.reps[idx]
	if w.debug != nil {
		w.debug("%d deliver %v entries=%d lnv=%d logstart=%d", w.now, m, len(m.Entries), m.LastNormalView, m.LogStart)
	}
	rep.input(func() { rep.r.Step(m) })
}

// nodeHeartbeats is the runtime's failure detection for quiescent
// ensembles (supervisor/host): every PingTicks a node sends one heartbeat to
// each other node over the same faulty network, and wakes each of its
// quiescent replicas that has a member it has not heard from for
// NodeSilence ticks; and every RefreshTicks it wakes all of them, which
// bounds how long one that missed a message (say, the op that removed it
// from its ensemble) stays behind.
func (w *world) nodeHeartbeats(n *simNode) {
	if w.p.QuiesceTicks == 0 {
		return
	}
	n.ticks++
	if n.ticks%w.p.PingTicks == 0 {
		for _, to := range w.nodes {
			if to == n || w.blocked[[2]int{n.idx, to.idx}] || w.rng.Float64() < w.p.DropPct {
				continue
			}
			from := n.idx
			w.schedule(w.delay(), func() {
				if to.up {
					to.heard[from] = w.now
				}
			})
		}
	}
	silence := int64(w.p.NodeSilence * w.p.TickSteps)
	refresh := n.ticks%w.p.RefreshTicks == 0
	for _, rep := range n.reps {
		if rep == nil || !rep.r.Quiescent() {
			continue
		}
		if refresh {
			w.res.Faults["quiescent_refreshes"]++
			rep.input(rep.r.Wake)
			continue
		}
		for _, id := range rep.r.Status().Members {
			if m := w.node(id); m != n && w.now-n.heard[m.idx] > silence {
				w.res.Faults["quiescent_wakes"]++
				rep.input(rep.r.Wake)
				break
			}
		}
	}
}
