package sim

import (
	"fmt"
	"slices"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
)

// reconfig is an ensemble's reconfiguration in progress, driven by the
// simulator as an operator (or the supervisor) would: it asks the primary,
// retrying until the new epoch runs, and creates the new members' replicas.
type reconfig struct {
	kind    string
	epoch   uint64 // the epoch it starts
	members []hasup.NodeID
	started bool // some replica runs the new epoch
	since   int64
	askedAt int64
}

// maybeReconfigure starts a reconfiguration of a random ensemble at the
// steps drawn for this seed.
func (w *world) maybeReconfigure() {
	if w.live || len(w.reconfigAt) == 0 || w.now < w.reconfigAt[0] {
		return
	}
	e := w.ens[w.rng.IntN(len(w.ens))]
	if w.p.RotateAll {
		e = w.ens[0]
	}
	if e.reconfig != nil {
		return // one at a time: try again at the next scheduled step
	}
	w.reconfigAt = w.reconfigAt[1:]
	var spare []hasup.NodeID
	for _, n := range w.nodes {
		if n.reps[e.idx] == nil {
			spare = append(spare, n.id)
		}
	}
	cur := e.members
	next, kind := []hasup.NodeID(nil), ""
	choice := w.rng.IntN(4)
	if w.p.RotateAll {
		choice = 3 // replace
	}
	switch {
	case choice == 0 && len(cur) == 3 && len(spare) >= 2:
		next, kind = append(slices.Clone(cur), spare[0], spare[1]), "3to5"
	case choice == 1 && len(cur) == 5 && e.diskFaults <= 1:
		drop := w.rng.Perm(5)[:2]
		for i, m := range cur {
			if i != drop[0] && i != drop[1] {
				next = append(next, m)
			}
		}
		kind = "5to3"
	case len(spare) >= 1 && len(cur) >= 3:
		victim := w.rng.IntN(len(cur))
		kind = "replace"
		for i, m := range cur { // prefer an original member: successive replaces rotate them all
			if slices.Contains(e.original, m) {
				victim = i
				break
			}
		}
		for i, m := range cur { // and above all a member whose node is down: "replace a dead member"
			if !w.node(m).up {
				victim, kind = i, "replace_dead"
			}
		}
		next = slices.Clone(cur)
		next[victim] = spare[w.rng.IntN(len(spare))]
	default:
		return
	}
	rc := &reconfig{kind: kind, epoch: e.epoch + 1, members: next, since: w.now}
	e.reconfig = rc
	for _, id := range next {
		if slices.Contains(cur, id) {
			continue
		}
		n := w.node(id)
		rep := &simReplica{w: w, e: e, node: n, disk: &disk{}, join: rc}
		n.reps[e.idx] = rep
		e.replicas = append(e.replicas, rep)
		if n.up {
			rep.start(false)
		}
	}
	w.res.Faults["reconfigs_"+kind]++
	w.traceEvent('R', uint64(e.idx), rc.epoch, uint64(len(next)))
	if w.debug != nil {
		w.debug("%d reconfigure %s %s -> %v (epoch %d)", w.now, e.name, kind, next, rc.epoch)
	}
}

// driveReconfig asks the primary (again) until the new epoch runs, and ends
// the reconfiguration once every live member runs it and every removed
// replica has stopped. In a supervised run the supervisors ask and delete;
// it only keeps the books.
func (e *simEnsemble) driveReconfig() {
	rc, w := e.reconfig, e.w
	if rc == nil {
		return
	}
	if !rc.started && w.now-rc.askedAt >= 50 && !w.p.Supervised {
		rc.askedAt = w.now
		for _, rep := range e.replicas {
			if rep.node.up && rep.r.Status().IsPrimary && rep.r.Status().Epoch == rc.epoch-1 {
				rep.input(func() {
					w.nextID++
					_ = rep.r.Reconfigure(w.nextID, rc.members)
				})
			}
		}
	}
	if w.p.Supervised {
		e.trackSupervised(rc)
		return
	}
	done := rc.started
	for _, rep := range e.replicas {
		// Down replicas count too, by their last state: a removed replica is
		// deleted only once it stopped (f'+1 new members run the epoch), or
		// the old epoch could lose the quorum it may still need.
		if rep.r == nil { // a new member whose node has been down since
			done = false
			continue
		}
		st := rep.r.Status()
		if rep.node.up && st.Epoch >= rc.epoch && st.Mode != ensemble.ModeJoining && !rc.started {
			e.startEpoch(rc)
		}
		if slices.Contains(rc.members, rep.node.id) && (st.Epoch < rc.epoch || st.Mode == ensemble.ModeJoining) {
			done = false
		}
		if !slices.Contains(rc.members, rep.node.id) && !st.Stopped {
			done = false
		}
	}
	if done {
		e.reconfig = nil
		e.f = len(e.members) / 2
		e.dropStopped()
	}
}

// trackSupervised keeps the books of a reconfiguration the supervisors
// run: it starts when a replica runs its epoch, and is done once every new
// member's replica runs it (a down one by its last state). Removed
// replicas are the supervisors' to delete, and a removed member that is
// down does not hold the new epoch back: the new members hold its state.
// A supervised reconfiguration keeps the member count, so the disk-fault
// budget is the same in both epochs.
func (e *simEnsemble) trackSupervised(rc *reconfig) {
	w := e.w
	for _, rep := range e.replicas {
		st := rep.r.Status()
		if rep.node.up && st.Epoch >= rc.epoch && st.Mode != ensemble.ModeJoining && !rc.started {
			e.startEpoch(rc)
		}
	}
	if !rc.started {
		return
	}
	for _, m := range rc.members {
		rep := w.node(m).reps[e.idx]
		if rep == nil {
			return
		}
		if st := rep.r.Status(); st.Epoch < rc.epoch || st.Mode == ensemble.ModeJoining {
			return
		}
	}
	e.reconfig = nil
	e.f = len(e.members) / 2
}

// startEpoch records that a replica runs rc's epoch: the ensemble's
// members are the new ones from now on.
func (e *simEnsemble) startEpoch(rc *reconfig) {
	w := e.w
	rc.started = true
	e.epoch = rc.epoch
	e.members = slices.Clone(rc.members)
	// Until the new epoch runs everywhere, the old one may still be
	// needed (its members hold the state the joiners fetch): the
	// disk-fault budget is the smaller of the two (seed 453).
	e.f = min(e.f, len(rc.members)/2)
	w.res.Reconfigs++
	for _, m := range e.original {
		if !slices.Contains(e.members, m) && !slices.Contains(e.replaced, m) {
			e.replaced = append(e.replaced, m)
			if len(e.replaced) == len(e.original) {
				w.res.Faults["reconfigs_rotated_all"]++ // every original member has been replaced once
			}
		}
	}
}

// dropStopped deletes the replicas that a reconfiguration removed and that
// have stopped (or whose node is down: the runtime deletes them on restart).
func (e *simEnsemble) dropStopped() {
	kept := e.replicas[:0]
	for _, rep := range e.replicas {
		if slices.Contains(e.members, rep.node.id) {
			kept = append(kept, rep)
			continue
		}
		rep.node.reps[e.idx] = nil
	}
	e.replicas = kept
}

// current lists the replicas of the ensemble's current members.
func (e *simEnsemble) current() []*simReplica {
	var out []*simReplica
	for _, rep := range e.replicas {
		if slices.Contains(e.members, rep.node.id) {
			out = append(out, rep)
		}
	}
	return out
}

// checkConfig checks that every replica in an epoch has the same members.
func (rep *simReplica) checkConfig(st ensemble.Status) {
	e := rep.e
	if st.Mode == ensemble.ModeJoining || st.Mode == ensemble.ModeRecovering {
		return
	}
	if prev, ok := e.configs[st.Epoch]; ok {
		if !slices.Equal(prev, st.Members) {
			e.w.fail("ensemble %s: two configurations of epoch %d: %v and %v", e.name, st.Epoch, prev, st.Members)
		}
		return
	}
	e.configs[st.Epoch] = slices.Clone(st.Members)
}

func (rc *reconfig) String() string {
	return fmt.Sprintf("%s to %v in epoch %d", rc.kind, rc.members, rc.epoch)
}
