package sim

import (
	"errors"
	"slices"

	"github.com/hasup/hasup/ensemble"
)

// injectFaults draws this step's faults.
func (w *world) injectFaults() {
	p := w.p
	if len(w.blocked) == 0 && w.rng.Float64() < p.PartitionPct {
		w.partition()
	} else if len(w.blocked) > 0 && w.rng.Float64() < p.HealPct {
		w.blocked = map[[2]int]bool{}
		w.traceEvent('h')
	}
	for _, n := range w.nodes {
		if n.up && w.rng.Float64() < p.CrashPct {
			w.crashNode(n, w.now+w.crashSteps())
		}
		if w.rng.Float64() < p.ClockJumpPct {
			jump := int64(w.rng.IntN(3_600_000)+1) * 1_000_000
			if w.rng.IntN(2) == 0 {
				jump = -jump
			}
			n.clockOffset += jump
			w.res.Faults["clock_jumps"]++
		}
	}
	if p.ColdRestart && w.now == int64(p.SafetySteps/2) {
		back := w.now + int64(p.RestartMin+w.rng.IntN(p.RestartMax-p.RestartMin+1))
		for _, n := range w.nodes {
			if n.up {
				w.crashNode(n, back)
			}
		}
		w.res.Faults["cold_restarts"]++
	}
	if w.rng.Float64() < p.SuspectPct {
		n := w.nodes[w.rng.IntN(len(w.nodes))]
		if rep := n.reps[w.rng.IntN(len(w.ens))]; rep != nil && n.up {
			rep.input(rep.r.SuspectPrimary)
			w.res.Faults["false_suspicions"]++
		}
	}
}

// crashSteps draws how long a crashed node stays down. In a supervised
// run some crashes outlast detection and damping, so that the supervisors
// declare the node failed and replace it.
func (w *world) crashSteps() int64 {
	p := w.p
	d := int64(p.RestartMin + w.rng.IntN(p.RestartMax-p.RestartMin+1))
	if p.Supervised && w.rng.Float64() < p.LongCrashPct {
		d = int64(2*p.DetectMax + p.DampingSteps + w.rng.IntN(3*p.DampingSteps+1))
		w.res.Faults["long_crashes"]++
	}
	return d
}

// partition cuts the network in one of several shapes.
func (w *world) partition() {
	n := len(w.nodes)
	cut := func(a, b int) { w.blocked[[2]int{a, b}] = true }
	x := w.rng.IntN(n)
	shape := w.rng.IntN(6)
	if shape == 5 { // isolate the primary of an ensemble, the deposed-primary case
		shape = 0
		e := w.ens[w.rng.IntN(len(w.ens))]
		for _, rep := range e.replicas {
			if rep.node.up && rep.r.Status().IsPrimary {
				x = rep.node.idx
			}
		}
	}
	switch shape {
	case 0: // isolate one node
		for i := 0; i < n; i++ {
			if i != x {
				cut(x, i)
				cut(i, x)
			}
		}
	case 1: // one node can send but not receive
		for i := 0; i < n; i++ {
			if i != x {
				cut(i, x)
			}
		}
	case 2: // one node can receive but not send
		for i := 0; i < n; i++ {
			if i != x {
				cut(x, i)
			}
		}
	case 3: // split into two sides
		side := w.rng.Perm(n)[:1+w.rng.IntN(n-1)]
		in := make([]bool, n)
		for _, i := range side {
			in[i] = true
		}
		for a := 0; a < n; a++ {
			for b := 0; b < n; b++ {
				if in[a] != in[b] {
					cut(a, b)
				}
			}
		}
	case 4: // bridge: x and y cannot talk, everyone else can talk to both
		y := (x + 1 + w.rng.IntN(n-1)) % n
		cut(x, y)
		cut(y, x)
	}
	w.res.Faults["partitions"]++
	w.traceEvent('p', uint64(shape), uint64(x))
}

// crashNode stops a node; its replicas lose the write in flight.
func (w *world) crashNode(n *simNode, restartAt int64) {
	n.up = false
	n.restartAt = restartAt
	for _, rep := range n.reps {
		if rep != nil {
			rep.crash()
		}
	}
	w.res.Faults["crashes"]++
	w.traceEvent('c', uint64(n.idx))
	if !w.live {
		w.maybeDamageDisk(n)
	}
}

// maybeDamageDisk wipes or flips a bit on the disk of one of a crashed
// node's replicas, keeping every ensemble within f damaged replicas.
func (w *world) maybeDamageDisk(n *simNode) {
	wipe := w.p.WipeOne && w.res.Faults["disk_wipes"] == 0
	flip := w.res.Faults["bit_flips"] < w.p.BitFlips && w.rng.IntN(2) == 0
	if !wipe && !flip {
		return
	}
	for _, rep := range n.reps {
		if rep == nil || rep.faulted || rep.e.diskFaults >= rep.e.f || len(rep.disk.records) == 0 {
			continue
		}
		rep.faulted = true
		rep.e.diskFaults++
		if wipe {
			rep.disk.records = nil
			w.res.Faults["disk_wipes"]++
		} else {
			i := w.rng.IntN(len(rep.disk.records))
			if rep.disk.records[i].torn {
				continue
			}
			rep.disk.records[i].corrupt = true
			w.res.Faults["bit_flips"]++
		}
		w.traceEvent('d', uint64(n.idx), uint64(rep.e.idx))
		return
	}
}

func (w *world) restartNode(n *simNode) {
	n.up = true
	n.restartAt = 0
	for i := range n.heard {
		n.heard[i] = w.now // a restarted runtime starts its silence clocks afresh
	}
	if w.p.Supervised {
		w.resetSupervisor(n)
	}
	for i, rep := range n.reps {
		if rep == nil {
			continue
		}
		if w.p.Supervised && !w.reopens(rep) {
			n.reps[i] = nil
			rep.e.replicas = slices.DeleteFunc(rep.e.replicas, func(x *simReplica) bool { return x == rep })
			continue
		}
		rep.start(false)
		if rep.gone {
			n.reps[i] = nil
			rep.e.replicas = slices.DeleteFunc(rep.e.replicas, func(x *simReplica) bool { return x == rep })
		}
	}
	w.traceEvent('r', uint64(n.idx))
}

// reopens reports whether a restarted node's host reopens rep in a
// supervised run: only if its storage holds state. Otherwise the
// supervisor starts it again if the registry names the node, recovering
// if it had persisted anything or was still recovering what it had lost
// (the runtime knows its store was lost, and keeps knowing it until the
// replica has state again).
func (w *world) reopens(rep *simReplica) bool {
	dur, err := rep.disk.load()
	switch {
	case errors.Is(err, errCorrupt):
		w.res.Faults["corruption_detected"]++
	case err != nil:
		w.fail("replica %s/%s: %v", rep.e.name, rep.node.id, err)
	case dur != nil:
		return true
	}
	rep.node.lostStore[rep.e.idx] = err != nil || rep.joined || rep.faulted // faulted: still recovering what it lost
	return false
}

// startLiveness ends fault injection: the network heals (message loss drops
// to a low rate), crashed nodes restart, and at most one node, chosen so
// that every ensemble keeps a quorum of undamaged replicas, stays down for
// good. Clients finish their operations and start no new ones.
func (w *world) startLiveness() {
	w.live = true
	for _, c := range w.clients {
		c.nextAt = min(c.nextAt, w.now) // end the pauses
	}
	w.blocked = map[[2]int]bool{}
	for _, n := range w.nodes {
		for _, d := range n.det {
			d.falseUntil = 0 // no more false verdicts
		}
	}
	w.p.DropPct = min(w.p.DropPct, 0.05)
	w.p.SpikePct, w.p.CorruptPct = 0, 0
	keep := -1
	if w.rng.IntN(2) == 0 {
		keep = w.rng.IntN(len(w.nodes))
		if !w.canKeepDown(w.nodes[keep]) {
			keep = -1
		}
	}
	for _, n := range w.nodes {
		switch {
		case n.idx == keep && n.up:
			w.crashNode(n, 0)
		case n.idx == keep:
			n.restartAt = 0
		case !n.up:
			w.restartNode(n)
		}
	}
	w.traceEvent('L', uint64(keep+1))
}

// canKeepDown: every ensemble on n keeps f+1 other replicas that never had
// a disk fault (a damaged one needs f+1 healthy peers to recover).
func (w *world) canKeepDown(n *simNode) bool {
	for i, e := range w.ens {
		if e.reconfig != nil || (w.reg != nil && w.reg.ensembles[i].Target != nil) {
			return false
		}
	}
	for _, rep := range n.reps {
		if rep == nil {
			continue
		}
		if rep.e.f == 0 {
			return false
		}
		for _, other := range rep.e.replicas {
			if other != rep && other.faulted {
				return false
			}
		}
		if w.p.Supervised && rep.e.stateless(rep) > 0 {
			return false
		}
	}
	return true
}

// converged: no client has an operation outstanding, and in every ensemble
// the live replicas are normal in one view with the same log and state.
func (w *world) converged() bool {
	for _, c := range w.clients {
		if c.op != nil {
			return false
		}
	}
	for _, e := range w.ens {
		if e.reconfig != nil {
			if w.debug != nil && w.now%1000 == 0 {
				w.debug("%d not converged: %s reconfiguring %v", w.now, e.name, e.reconfig)
			}
			return false
		}
		if !e.probed {
			if w.debug != nil && w.now%1000 == 0 {
				w.debug("%d not converged: %s not probed", w.now, e.name)
			}
			return false
		}
		var ref *ensemble.Status
		for _, rep := range e.current() {
			if !rep.node.up {
				continue
			}
			st := rep.r.Status()
			if st.Mode != ensemble.ModeNormal || st.LastNormalView != st.View || st.Transferring || st.Applied != st.Op {
				if w.debug != nil && w.now%1000 == 0 {
					w.debug("%d not converged: %s/%s %+v", w.now, e.name, rep.node.id, st)
				}
				return false
			}
			if ref == nil {
				ref = &st
			} else if st.View != ref.View || st.Op != ref.Op {
				return false
			}
		}
	}
	return w.statesAgree() && (!w.p.Supervised || w.settled())
}
