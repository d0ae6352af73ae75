package sim

import (
	"fmt"
	"maps"
	"slices"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/supervisor/reconcile"
)

// A supervised run replaces reconfig.go's drawn reconfigurations with the
// supervisor's: every up node runs, every ReconcileTicks of its ticks, one
// pass of the supervisor loop (supervisor/runtime.go): read the registry,
// gather its detector's view and its replicas' statuses, call
// reconcile.Decide, and carry out the actions: proposals to the simulated
// registry (registry.go), and starts, deletes, reconfigurations and hints
// of its local replicas. Nodes are failed by crashes and partitions that
// the simulated detectors see with a delay (detector.go), and by false
// verdicts and flaps that the damping must absorb, or else turn into
// reconfigurations of live members. The checkers of every run watch the
// result, and a few more are specific to it: the registry records only
// epochs the ensemble reached, one after another, with the members its
// replicas ran them with; a new target is begun only from the epoch the
// ensemble runs; no decision deletes a replica of a current member; and
// the liveness phase ends only once the supervisors have nothing left to
// do and the registry agrees with what runs.
//
// Modelling choices:
//
//   - The cluster primary, the only node that proposes node states and
//     reconfigurations, is the lowest-index up node that talks directly to
//     a majority of the nodes (counting itself): the one that could run
//     the cluster ensemble's primary. Proposals from a node that cannot
//     reach it are lost; others commit after 1..RegDelayMax steps, or are
//     lost (RegLossPct).
//   - A node's registry read may lag (RegLagPct): it keeps its last read.
//     A restarted node has read nothing (Version 0).
//   - Time in Decide's Input is the step in milliseconds, a monotonic
//     clock: clock jumps move the replicas' wall clocks, not the
//     supervisor's damping.
//   - At a restart the host reopens every replica it has storage for, as
//     the supervisor's first pass would for the ensembles the registry
//     names (one it no longer names runs until a decision deletes it). A
//     replica whose storage is empty or fails its checksums is not
//     reopened: the supervisor starts it again when the registry names
//     the node, as a joiner if it never persisted anything, else with
//     neither Join nor Bootstrap, so that it recovers: the runtime
//     detects a lost store (reconcile's "What Decide cannot know").
//     Bootstrap is honoured only when the world creates the ensembles.

// stepNanos is one simulation step on the supervisors' clock (Input.Now,
// Observed.Since, Damping): a millisecond, as the replicas' clocks.
const stepNanos = 1_000_000

// supervise runs one pass of n's supervisor.
func (w *world) supervise(n *simNode) {
	w.readRegistry(n)
	in := reconcile.Input{
		Self:           n.id,
		Now:            w.now * stepNanos,
		Damping:        int64(w.p.DampingSteps) * stepNanos,
		ClusterPrimary: w.clusterPrimary() == n.idx,
		Registry:       n.reg,
		Hinted:         maps.Clone(n.hinted),
	}
	for j, d := range n.det {
		o := w.nodes[j]
		in.Detector = append(in.Detector, reconcile.Observed{ID: o.id, Addr: o.addr(), Tags: maps.Clone(o.tags), State: d.state, Since: d.since * stepNanos})
	}
	for _, rep := range n.reps {
		if rep == nil {
			continue
		}
		st := rep.r.Status()
		rep.checkConfig(st) // what the supervisor sees, the checkers see (it may run ahead of observe)
		in.Local = append(in.Local, reconcile.Replica{Name: st.Ensemble, Epoch: st.Epoch, Members: slices.Clone(st.Members), View: st.View,
			IsPrimary: st.IsPrimary, Primary: st.Primary, Mode: st.Mode.String(), Stopped: st.Stopped})
	}
	actions := reconcile.Decide(in)
	n.supBusy = false
	for _, a := range actions {
		if a.Kind == reconcile.Blocked {
			continue
		}
		n.supBusy = true
		if w.debug != nil {
			w.debug("%d supervisor %s: %v %s %s epoch %d %v: %s", w.now, n.id, a.Kind, a.Ensemble, a.Node, a.Epoch, a.Members, a.Reason)
		}
		w.traceEvent('A', uint64(n.idx), uint64(a.Kind), uint64(w.ensIndexOr(a.Ensemble)), uint64(w.nodeIndexOr(a.Node)), a.Epoch)
		w.act(n, a)
	}
}

// act carries out one action of n's supervisor, as supervisor.act does.
func (w *world) act(n *simNode, a reconcile.Action) {
	switch a.Kind {
	case reconcile.ProposeUpsertNode, reconcile.ProposeNodeState, reconcile.ProposeBeginReconfig, reconcile.ProposeFinishReconfig:
		w.propose(n, a)
	case reconcile.Reconfigure:
		if rep := n.reps[w.ensIndex(a.Ensemble)]; rep != nil {
			rep.input(func() {
				w.nextID++
				_ = rep.r.Reconfigure(w.nextID, a.Members) // refused if one is in the log already
			})
		}
	case reconcile.StartReplica:
		w.startReplica(n, a)
	case reconcile.StopReplica:
		w.deleteReplica(n, a)
	case reconcile.SuspectPrimary:
		n.hinted[a.Ensemble] = reconcile.Fence(a.Epoch, a.View)
		if rep := n.reps[w.ensIndex(a.Ensemble)]; rep != nil {
			rep.input(rep.r.SuspectPrimary)
			w.res.Faults["supervised_hints"]++
		}
	}
}

// propose sends a proposal to the registry: it commits after a delay
// unless it is lost, or n cannot reach the cluster primary.
func (w *world) propose(n *simNode, a reconcile.Action) {
	cp := w.clusterPrimary()
	if cp < 0 || !w.linked(n.idx, cp) {
		return
	}
	if w.rng.Float64() < w.p.RegLossPct {
		w.res.Faults["registry_lost_proposals"]++
		return
	}
	w.schedule(int64(1+w.rng.IntN(w.p.RegDelayMax)), func() {
		if why := w.applyRegistry(a); why != "" {
			w.res.Faults["supervised_refused"]++
			if w.debug != nil {
				w.debug("%d registry refuses %v %s %s epoch %d %v: %s", w.now, a.Kind, a.Ensemble, a.Node, a.Epoch, a.Members, why)
			}
		}
	})
}

// clusterPrimary returns the index of the node that acts as the cluster
// primary now, or -1 if none can: the lowest-index up node that talks
// directly to a majority of the nodes.
func (w *world) clusterPrimary() int {
	for _, n := range w.nodes {
		if !n.up {
			continue
		}
		talks := 0
		for _, m := range w.nodes {
			if m.up && w.linked(n.idx, m.idx) {
				talks++
			}
		}
		if talks > len(w.nodes)/2 {
			return n.idx
		}
	}
	return -1
}

// readRegistry refreshes n's copy of the registry, unless the read lags
// or n cannot reach the cluster primary.
func (w *world) readRegistry(n *simNode) {
	cp := w.clusterPrimary()
	if cp < 0 || !w.linked(n.idx, cp) || (n.reg.Version > 0 && w.rng.Float64() < w.p.RegLagPct) {
		return
	}
	n.reg = w.reg.read()
}

// startReplica starts a replica the registry assigns to n, unless one
// runs (host.ErrExists). Its storage is empty: a replica that has storage
// was reopened when its node restarted.
func (w *world) startReplica(n *simNode, a reconcile.Action) {
	idx := w.ensIndex(a.Ensemble)
	if n.reps[idx] != nil {
		return
	}
	e := w.ens[idx]
	rep := &simReplica{w: w, e: e, node: n, disk: &disk{}}
	lost := n.lostStore[idx]
	n.lostStore[idx] = false
	join := a.Join && !lost
	n.reps[idx] = rep
	e.replicas = append(e.replicas, rep)
	rep.startEmpty(a.Epoch, a.Members, join)
	kind := "supervised_starts_recovering"
	if join {
		kind = "supervised_starts_joining"
	}
	w.res.Faults[kind]++
	w.traceEvent('S', uint64(n.idx), uint64(idx), a.Epoch)
}

// deleteReplica stops n's replica of the ensemble and deletes its
// storage. Deleting a replica of a current member of the epoch the
// ensemble runs would throw away state the ensemble counts on: a bug in
// the decisions.
func (w *world) deleteReplica(n *simNode, a reconcile.Action) {
	idx := w.ensIndex(a.Ensemble)
	rep := n.reps[idx]
	n.lostStore[idx] = false
	if rep == nil {
		return
	}
	e := rep.e
	st := rep.r.Status()
	if slices.Contains(e.members, n.id) && st.Epoch == e.epoch && st.Mode != ensemble.ModeRetired {
		w.fail("supervisor on %s deletes its replica of %s, a member of the running epoch %d (%v, mode %v): %s", n.id, e.name, e.epoch, e.members, st.Mode, a.Reason)
	}
	n.reps[idx] = nil
	e.replicas = slices.DeleteFunc(e.replicas, func(x *simReplica) bool { return x == rep })
	w.res.Faults["supervised_deletes"]++
	w.traceEvent('X', uint64(n.idx), uint64(idx), st.Epoch)
}

// settled: the supervisors have nothing left to do and the registry
// agrees with what runs; the liveness phase waits for it.
func (w *world) settled() bool {
	why := ""
	for i, e := range w.ens {
		re := w.reg.ensembles[i]
		if re.Target != nil || re.Epoch != e.epoch || !slices.Equal(re.Members, e.members) {
			why = fmt.Sprintf("the registry has %s at epoch %d with %v (target %v); it runs epoch %d with %v", e.name, re.Epoch, re.Members, re.Target, e.epoch, e.members)
			break
		}
		for _, rep := range e.replicas {
			if rep.node.up && !slices.Contains(e.members, rep.node.id) {
				why = fmt.Sprintf("%s keeps a replica of %s, which no longer names it", rep.node.id, e.name)
			}
		}
	}
	for _, n := range w.nodes {
		if why != "" {
			break
		}
		if !n.up {
			continue
		}
		if rn := w.reg.node(n.id); rn == nil || rn.State != hasup.MemberAlive {
			why = fmt.Sprintf("the registry does not hold %s alive", n.id)
		} else if n.supBusy || n.reg.Version != w.reg.version {
			why = fmt.Sprintf("the supervisor of %s is busy or has not read the registry (version %d of %d)", n.id, n.reg.Version, w.reg.version)
		}
	}
	if why != "" && w.debug != nil && w.now%1000 == 0 {
		w.debug("%d not converged: %s", w.now, why)
	}
	return why == ""
}

// stateless counts the members of the running epoch, and of the
// reconfiguration in progress, other than except, that hold no state of
// their own to help a damaged replica recover: no replica runs on the
// node (not started yet, or its storage was lost and it is not started
// again yet), or it is joining, or it never persisted anything. Damaged
// replicas are counted apart (diskFaults). canKeepDown keeps no node down
// while an ensemble on it has such a member.
func (e *simEnsemble) stateless(except *simReplica) int {
	ids := slices.Clone(e.members)
	if e.reconfig != nil {
		ids = append(ids, e.reconfig.members...)
	}
	slices.Sort(ids)
	n := 0
	for _, id := range slices.Compact(ids) {
		rep := e.w.node(id).reps[e.idx]
		switch {
		case rep == except:
		case rep == nil:
			n++
		case rep.faulted:
		case !rep.joined || rep.r.Status().Mode == ensemble.ModeJoining:
			n++
		}
	}
	return n
}

// addr is the node's consensus transport address, as the registry and
// the detector know it.
func (n *simNode) addr() string { return string(n.id) + ":7000" }

func (w *world) ensIndex(name hasup.EnsembleName) int {
	if i := w.ensIndexOr(name); i >= 0 {
		return i
	}
	panic("unknown ensemble " + string(name))
}

func (w *world) ensIndexOr(name hasup.EnsembleName) int {
	for i, e := range w.ens {
		if e.name == name {
			return i
		}
	}
	return -1
}

func (w *world) nodeIndexOr(id hasup.NodeID) int {
	for i, n := range w.nodes {
		if n.id == id {
			return i
		}
	}
	return -1
}
