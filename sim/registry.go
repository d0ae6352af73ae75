package sim

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/supervisor/reconcile"
)

// simRegistry is the cluster registry of a supervised run, as plain state
// in the world: the nodes with their recorded states, the ensembles with
// their epoch, members and target. It follows the rules of fsm/registry
// (a BeginReconfig needs the stored epoch and no other target; a
// FinishReconfig needs a later epoch; a retried BeginReconfig of the same
// target changes nothing), which the supervisors' level-triggered
// decisions rely on. It stands for the registry FSM replicated by the
// cluster ensemble: a proposal commits after a random delay or is lost
// (world.propose), and each node reads it with a lag (readRegistry).
//
// Rejected alternative: running the real cluster ensemble and registry
// FSM in the simulation. The ensemble code is already simulated through
// the kv ensembles; what a supervised run adds is the decision core and
// the registry's rules, and a model registry makes its lags and losses
// easy to draw and its invariants easy to check.
type simRegistry struct {
	version   uint64 // grows with every change; 0 is never a read registry
	nodes     []reconcile.Node
	ensembles []reconcile.Ensemble // by ensemble index
}

// newRegistry records the ensembles as created (epoch 0) and the nodes
// that are their members; the spare nodes register themselves through the
// supervisors (ProposeUpsertNode).
func newRegistry(w *world) *simRegistry {
	reg := &simRegistry{version: 1}
	for _, n := range w.nodes {
		named := false
		for _, e := range w.ens {
			named = named || slices.Contains(e.members, n.id)
		}
		if named {
			reg.nodes = append(reg.nodes, reconcile.Node{ID: n.id, Addr: n.addr(), Tags: n.tags, State: hasup.MemberAlive})
		}
	}
	for _, e := range w.ens {
		spec := reconcile.Ensemble{Name: e.name, Type: "kv", Replicas: len(e.members), Members: slices.Clone(e.members)}
		if w.p.Zones > 0 {
			spec.SpreadBy = "zone"
		}
		reg.ensembles = append(reg.ensembles, spec)
	}
	return reg
}

// read returns a copy of the registry that shares no memory with it.
func (reg *simRegistry) read() reconcile.Registry {
	out := reconcile.Registry{Version: reg.version}
	for _, n := range reg.nodes {
		n.Tags = maps.Clone(n.Tags)
		out.Nodes = append(out.Nodes, n)
	}
	for _, e := range reg.ensembles {
		e.Members, e.Target, e.Constraints = slices.Clone(e.Members), slices.Clone(e.Target), slices.Clone(e.Constraints)
		out.Ensembles = append(out.Ensembles, e)
	}
	return out
}

func (reg *simRegistry) node(id hasup.NodeID) *reconcile.Node {
	for i := range reg.nodes {
		if reg.nodes[i].ID == id {
			return &reg.nodes[i]
		}
	}
	return nil
}

// applyRegistry commits one proposal and returns why the registry refused it, or
// "" if it took it (whether or not it changed anything).
func (w *world) applyRegistry(a reconcile.Action) string {
	reg := w.reg
	switch a.Kind {
	case reconcile.ProposeUpsertNode:
		n := reg.node(a.Node)
		if n == nil {
			reg.nodes = append(reg.nodes, reconcile.Node{ID: a.Node, Addr: a.Addr, Tags: maps.Clone(a.Tags), State: a.State})
			slices.SortFunc(reg.nodes, func(x, y reconcile.Node) int { return cmp.Compare(x.ID, y.ID) })
			w.registryChanged(a, 0)
			return ""
		}
		if n.Addr == a.Addr && n.State == a.State && maps.Equal(n.Tags, a.Tags) {
			return ""
		}
		n.Addr, n.Tags, n.State = a.Addr, maps.Clone(a.Tags), a.State
		w.registryChanged(a, 0)
	case reconcile.ProposeNodeState:
		n := reg.node(a.Node)
		if n == nil {
			return "not found"
		}
		if n.State != a.State {
			n.State = a.State
			w.registryChanged(a, 0)
			w.onNodeState(a.Node, a.State)
		}
	case reconcile.ProposeBeginReconfig:
		i := w.ensIndex(a.Ensemble)
		e := &reg.ensembles[i]
		switch {
		case a.Epoch != e.Epoch:
			return fmt.Sprintf("stale: at epoch %d, not %d", e.Epoch, a.Epoch)
		case e.Target != nil && slices.Equal(e.Target, a.Members):
			return "" // a retry
		case e.Target != nil:
			return fmt.Sprintf("busy: moving to %v", e.Target)
		}
		if p := reg.targetProblem(e.Members, a.Members); p != "" {
			return "invalid: " + p
		}
		e.Target = slices.Clone(a.Members)
		w.registryChanged(a, e.Epoch)
		w.ens[i].onBeginReconfig(e.Epoch, e.Target)
	case reconcile.ProposeFinishReconfig:
		i := w.ensIndex(a.Ensemble)
		e := &reg.ensembles[i]
		if a.Epoch <= e.Epoch {
			return fmt.Sprintf("stale: at epoch %d, which epoch %d does not follow", e.Epoch, a.Epoch)
		}
		for _, id := range a.Members {
			if reg.node(id) == nil {
				return fmt.Sprintf("invalid: member %s is not registered", id)
			}
		}
		w.ens[i].onFinishReconfig(e.Epoch, a.Epoch, a.Members)
		e.Epoch, e.Members, e.Target = a.Epoch, slices.Clone(a.Members), nil
		w.registryChanged(a, e.Epoch)
	default:
		w.fail("registry: cannot apply %v", a.Kind)
	}
	return ""
}

// targetProblem: the registry's rules for a target (fsm/registry,
// targetProblem and checkKnown).
func (reg *simRegistry) targetProblem(members, target []hasup.NodeID) string {
	if n := len(target); n != 1 && n != 3 && n != 5 {
		return fmt.Sprintf("target %v: %d nodes", target, n)
	}
	for i, id := range target {
		if reg.node(id) == nil {
			return fmt.Sprintf("target %v: node %s is not registered", target, id)
		}
		if slices.Contains(target[:i], id) {
			return fmt.Sprintf("target %v: node %s twice", target, id)
		}
	}
	if slices.Equal(members, target) {
		return fmt.Sprintf("target %v is the member list", target)
	}
	return ""
}

func (w *world) registryChanged(a reconcile.Action, epoch uint64) {
	w.reg.version++
	w.traceEvent('G', uint64(a.Kind), uint64(w.ensIndexOr(a.Ensemble)), uint64(w.nodeIndexOr(a.Node)), uint64(a.State), epoch)
	if w.debug != nil {
		w.debug("%d registry v%d: %v %s %s %v epoch %d members %v", w.now, w.reg.version, a.Kind, a.Ensemble, a.Node, a.State, a.Epoch, a.Members)
	}
}

// onNodeState counts what the registry records of a node against the
// truth.
func (w *world) onNodeState(id hasup.NodeID, s hasup.MemberState) {
	n := w.node(id)
	switch {
	case s == hasup.MemberFailed && n.up:
		w.res.Faults["supervised_declared_failed_wrongly"]++
	case s == hasup.MemberFailed:
		w.res.Faults["supervised_declared_failed"]++
	case s == hasup.MemberAlive:
		w.res.Faults["supervised_declared_alive"]++
	}
}

// onBeginReconfig: the registry took a target for the ensemble at epoch.
// The registry records every epoch the ensemble reaches, one after
// another, so the ensemble cannot have left epoch yet; and the previous
// reconfiguration has started its epoch (the registry recorded it).
// The simulator tracks the new reconfiguration from here, as reconfig.go
// tracks one it draws.
func (e *simEnsemble) onBeginReconfig(epoch uint64, target []hasup.NodeID) {
	w := e.w
	if epoch != e.epoch {
		w.fail("registry: ensemble %s begins a reconfiguration at epoch %d, but the ensemble reached epoch %d", e.name, epoch, e.epoch)
	}
	if rc := e.reconfig; rc != nil && (!rc.started || rc.epoch != epoch) {
		w.fail("registry: ensemble %s begins a reconfiguration at epoch %d while %v has not started", e.name, epoch, rc)
	}
	kind := "replace"
	for _, m := range e.members {
		if !slices.Contains(target, m) && !w.node(m).up {
			kind = "replace_dead"
		}
	}
	e.reconfig = &reconfig{kind: kind, epoch: epoch + 1, members: slices.Clone(target), since: w.now}
	w.res.Faults["supervised_repairs"]++
	w.res.Faults["reconfigs_supervised_"+kind]++
}

// onFinishReconfig: the registry records that the ensemble runs epoch
// with members; it must be the next epoch, with the member list the
// ensemble's replicas reported for it.
func (e *simEnsemble) onFinishReconfig(from, epoch uint64, members []hasup.NodeID) {
	w := e.w
	if epoch != from+1 {
		w.fail("registry: ensemble %s records epoch %d after epoch %d", e.name, epoch, from)
	}
	ran, ok := e.configs[epoch]
	if !ok || !slices.Equal(ran, members) {
		w.fail("registry: ensemble %s records epoch %d with %v, but its replicas ran it with %v", e.name, epoch, members, ran)
	}
	if rc := e.reconfig; rc != nil && rc.epoch == epoch && !rc.started {
		e.startEpoch(rc) // a replica ran it; its node may have crashed since
	}
	w.res.Faults["supervised_finishes"]++
}
