package reconcile

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/supervisor/placement"
)

// index is an Input with its lists sorted by key and looked up by key.
// The rules iterate the sorted slices only, never the maps, so that no map
// order reaches the output.
type index struct {
	in        Input
	nodes     []*Node // registry nodes by ID
	ensembles []*Ensemble
	detector  []*Observed
	local     []*Replica
	nodeByID  map[hasup.NodeID]*Node
	ensByName map[hasup.EnsembleName]*Ensemble
	detByID   map[hasup.NodeID]*Observed
	localByID map[hasup.EnsembleName]*Replica
}

func newIndex(in Input) *index {
	x := &index{in: in}
	x.nodes, x.nodeByID = sortedIndex(in.Registry.Nodes, func(n *Node) hasup.NodeID { return n.ID })
	x.ensembles, x.ensByName = sortedIndex(in.Registry.Ensembles, func(e *Ensemble) hasup.EnsembleName { return e.Name })
	x.detector, x.detByID = sortedIndex(in.Detector, func(o *Observed) hasup.NodeID { return o.ID })
	x.local, x.localByID = sortedIndex(in.Local, func(r *Replica) hasup.EnsembleName { return r.Name })
	return x
}

// sortedIndex returns pointers to s's elements sorted by key, and a map
// from key to element. Keys are unique (Validate).
func sortedIndex[T any, K cmp.Ordered](s []T, key func(*T) K) ([]*T, map[K]*T) {
	sorted := make([]*T, len(s))
	byKey := make(map[K]*T, len(s))
	for i := range s {
		sorted[i] = &s[i]
		byKey[key(&s[i])] = &s[i]
	}
	slices.SortFunc(sorted, func(a, b *T) int { return cmp.Compare(key(a), key(b)) })
	return sorted, byKey
}

// held reports whether the detector has held o in its state for at least
// the damping time. It compares Since with Now - Damping rather than
// subtracting Since, so that a Since far in the past (a zero time.Time's
// UnixNano, say) counts as long ago instead of overflowing.
func (x *index) held(o *Observed) bool {
	return o.Since <= x.in.Now-max(x.in.Damping, 0)
}

// heldFor says how long the detector has held o in its state, for a
// Reason.
func (x *index) heldFor(o *Observed) string {
	if d := x.in.Now - o.Since; d >= 0 {
		return seconds(d)
	}
	return "ever" // the subtraction overflowed: Since is at the clock's beginning
}

// upsertNodes is rule (a): register the nodes the detector sees alive and
// the registry lacks or records with another address or tags.
func (x *index) upsertNodes() []Action {
	var out []Action
	for _, o := range x.detector {
		if o.State != hasup.MemberAlive {
			continue
		}
		a := Action{Kind: ProposeUpsertNode, Node: o.ID, Addr: o.Addr, Tags: maps.Clone(o.Tags), State: hasup.MemberAlive}
		r, ok := x.nodeByID[o.ID]
		switch {
		case !ok:
			a.Reason = fmt.Sprintf("node %s is alive and not registered", o.ID)
		case r.Addr != o.Addr:
			a.State = r.State
			a.Reason = fmt.Sprintf("node %s moved from %q to %q", o.ID, r.Addr, o.Addr)
		case !maps.Equal(r.Tags, o.Tags):
			a.State = r.State
			a.Reason = fmt.Sprintf("node %s changed its tags", o.ID)
		default:
			continue
		}
		out = append(out, a)
	}
	return out
}

// nodeStates is rule (b): record a detector verdict that has held for the
// damping time. Suspect is never recorded, and left is not turned into
// failed.
func (x *index) nodeStates() []Action {
	var out []Action
	for _, o := range x.detector {
		r, ok := x.nodeByID[o.ID]
		verdict := o.State == hasup.MemberAlive || o.State == hasup.MemberFailed || o.State == hasup.MemberLeft
		if !ok || !verdict || !x.held(o) || o.State == r.State || (o.State == hasup.MemberFailed && r.State == hasup.MemberLeft) {
			continue
		}
		out = append(out, Action{Kind: ProposeNodeState, Node: o.ID, State: o.State,
			Reason: fmt.Sprintf("the detector has held node %s %v for %s (damping %s); the registry says %v",
				o.ID, o.State, x.heldFor(o), seconds(max(x.in.Damping, 0)), r.State)})
	}
	return out
}

// repairs is rule (c): begin one reconfiguration for every ensemble that
// has none in progress and a member the registry records down. Each
// decision is counted into the loads the next one sees.
func (x *index) repairs() []Action {
	loads := x.loads()
	var out []Action
	for _, e := range x.ensembles {
		if e.Target != nil {
			continue
		}
		a, ok := x.repair(e, loads)
		if ok {
			out = append(out, a)
		}
	}
	return out
}

// repair decides for one ensemble: a ProposeBeginReconfig, a Blocked, or
// nothing when every member is up.
func (x *index) repair(e *Ensemble, loads []placement.Node) (Action, bool) {
	var down []hasup.NodeID
	for _, m := range e.Members {
		if x.registryDown(m) {
			down = append(down, m)
		}
	}
	if len(down) == 0 {
		return Action{}, false
	}
	failed := down[0]
	blocked := Action{Kind: Blocked, Ensemble: e.Name, Node: failed, Epoch: e.Epoch}
	if f := (len(e.Members) - 1) / 2; len(down) > f {
		blocked.Reason = fmt.Sprintf("ensemble %s cannot replace %s: %d of its %d members are down (%v), more than the %d it can lose, so its epoch %d cannot commit a reconfiguration; it waits for them",
			e.Name, failed, len(down), len(e.Members), down, f, e.Epoch)
		return blocked, true
	}
	req := placement.Request{Ensemble: e.Name, Replicas: len(e.Members), SpreadBy: e.SpreadBy}
	for _, s := range e.Constraints {
		c, err := placement.ParseConstraint(s)
		if err != nil {
			blocked.Reason = fmt.Sprintf("ensemble %s cannot replace %s: %v", e.Name, failed, err)
			return blocked, true
		}
		req.Constraints = append(req.Constraints, c)
	}
	target, err := placement.Replace(req, e.Members, failed, loads)
	if err != nil {
		blocked.Reason = err.Error()
		return blocked, true
	}
	var added hasup.NodeID
	for _, n := range target {
		if !slices.Contains(e.Members, n) {
			added = n
		}
	}
	for i := range loads {
		if loads[i].ID == added {
			loads[i].Replicas++
		}
	}
	return Action{Kind: ProposeBeginReconfig, Ensemble: e.Name, Node: failed, Epoch: e.Epoch, Members: target,
		Reason: fmt.Sprintf("member %s of ensemble %s is %s in the registry: replace it with %s, moving from %v to %v",
			failed, e.Name, x.registryState(failed), added, e.Members, target)}, true
}

// registryDown reports whether the registry records id failed or left, or
// does not know it.
func (x *index) registryDown(id hasup.NodeID) bool {
	n, ok := x.nodeByID[id]
	return !ok || n.State == hasup.MemberFailed || n.State == hasup.MemberLeft
}

func (x *index) registryState(id hasup.NodeID) string {
	if n, ok := x.nodeByID[id]; ok {
		return n.State.String()
	}
	return "unknown"
}

// loads returns the registry's nodes as placement sees them, sorted by
// ID: alive when the registry records them alive and the detector, if it
// knows them, sees them alive; loaded with every ensemble that names them.
func (x *index) loads() []placement.Node {
	out := make([]placement.Node, len(x.nodes))
	at := make(map[hasup.NodeID]int, len(x.nodes))
	for i, n := range x.nodes {
		alive := n.State == hasup.MemberAlive
		if o, ok := x.detByID[n.ID]; ok && o.State != hasup.MemberAlive {
			alive = false
		}
		out[i] = placement.Node{ID: n.ID, Tags: n.Tags, Alive: alive}
		at[n.ID] = i
	}
	for _, e := range x.ensembles {
		for _, id := range unionIDs(e.Members, e.Target) {
			if i, ok := at[id]; ok {
				out[i].Replicas++
			}
		}
		if len(e.Members) > 0 {
			if i, ok := at[e.Members[0]]; ok {
				out[i].Primaries++
			}
		}
	}
	return out
}

// reconfigs is rules (d) and (e): the local primary reconfigures to the
// registry's Target, and the primary of a later epoch than the registry's
// proposes that the registry record it.
func (x *index) reconfigs() []Action {
	var out []Action
	for _, r := range x.local {
		e, ok := x.ensByName[r.Name]
		if !ok || r.Mode != ModeNormal || r.Stopped {
			continue
		}
		switch {
		case r.Epoch == e.Epoch && r.IsPrimary && e.Target != nil && slices.Equal(r.Members, e.Target):
			out = append(out, Action{Kind: Blocked, Ensemble: r.Name, Epoch: r.Epoch,
				Reason: fmt.Sprintf("ensemble %s: the registry's target %v is the member list of epoch %d", r.Name, e.Target, r.Epoch)})
		case r.Epoch == e.Epoch && r.IsPrimary && e.Target != nil:
			out = append(out, Action{Kind: Reconfigure, Ensemble: r.Name, Epoch: e.Epoch, Members: slices.Clone(e.Target),
				Reason: fmt.Sprintf("the registry moves ensemble %s from %v to %v", r.Name, r.Members, e.Target)})
		case r.Epoch > e.Epoch && x.finisher(r):
			out = append(out, Action{Kind: ProposeFinishReconfig, Ensemble: r.Name, Epoch: r.Epoch, Members: slices.Clone(r.Members),
				Reason: fmt.Sprintf("ensemble %s runs epoch %d with %v; the registry records epoch %d", r.Name, r.Epoch, r.Members, e.Epoch)})
		}
	}
	return out
}

// finisher reports whether this node should propose FinishReconfig for r:
// it is the primary, or nobody is known to be and this is the lowest
// member.
func (x *index) finisher(r *Replica) bool {
	if r.IsPrimary {
		return true
	}
	return r.Primary == "" && len(r.Members) > 0 && slices.Min(r.Members) == x.in.Self
}

// starts is rule (f): start a replica of every ensemble whose Members or
// Target name this node and that does not run here.
func (x *index) starts() []Action {
	var out []Action
	for _, e := range x.ensembles {
		if _, ok := x.localByID[e.Name]; ok {
			continue
		}
		switch {
		case slices.Contains(e.Members, x.in.Self):
			// A member of a later epoch with no replica here never fetched
			// the state (a replacement that crashed while joining, or that
			// was down when chosen): it joins. A recovering replica would
			// need f+1 normal peers, and two such members block the
			// ensemble for good (the simulator's seed 453). A node that
			// lost a store it had used must be caught by the runtime, which
			// then starts it with neither flag (see the package doc).
			boot := e.Epoch == 0 && e.Target == nil
			join := e.Epoch > 0
			out = append(out, Action{Kind: StartReplica, Ensemble: e.Name, Epoch: e.Epoch, Members: slices.Clone(e.Members), Bootstrap: boot, Join: join,
				Reason: fmt.Sprintf("the registry lists %s as a member of ensemble %s in epoch %d", x.in.Self, e.Name, e.Epoch)})
		case slices.Contains(e.Target, x.in.Self):
			out = append(out, Action{Kind: StartReplica, Ensemble: e.Name, Epoch: e.Epoch + 1, Members: slices.Clone(e.Target), Join: true,
				Reason: fmt.Sprintf("the registry moves ensemble %s to %v, which adds %s", e.Name, e.Target, x.in.Self)})
		}
	}
	return out
}

// stops is rule (g): stop and delete every local replica whose state the
// registry shows nobody needs.
func (x *index) stops() []Action {
	var out []Action
	for _, r := range x.local {
		if why := x.obsolete(r); why != "" {
			out = append(out, Action{Kind: StopReplica, Ensemble: r.Name, Delete: true, Reason: why})
		}
	}
	return out
}

// obsolete says why r may be deleted, or returns "" if it may not.
func (x *index) obsolete(r *Replica) string {
	e, ok := x.ensByName[r.Name]
	if !ok {
		if x.in.Registry.Version == 0 || x.in.ClusterEnsemble == "" || r.Name == x.in.ClusterEnsemble {
			return "" // not read yet, or not registered yet
		}
		return fmt.Sprintf("the registry (version %d) has no ensemble %s: it was deleted", x.in.Registry.Version, r.Name)
	}
	named := slices.Contains(e.Members, x.in.Self) || slices.Contains(e.Target, x.in.Self)
	switch {
	case r.Stopped && named && e.Epoch < r.Epoch:
		return "" // the registry lags; deleting would only restart it
	case r.Stopped:
		return fmt.Sprintf("the replica of ensemble %s retired in epoch %d and the new epoch runs", r.Name, r.Epoch)
	case r.Mode == ModeRetired && e.Epoch > r.Epoch:
		return fmt.Sprintf("the replica of ensemble %s retired in epoch %d, and the registry records epoch %d", r.Name, r.Epoch, e.Epoch)
	case r.Mode == ModeRetired || named:
		return ""
	case e.Epoch > r.Epoch:
		return fmt.Sprintf("ensemble %s replaced %s while its replica was in epoch %d: the registry records epoch %d with %v",
			r.Name, x.in.Self, r.Epoch, e.Epoch, e.Members)
	case r.Mode == ModeJoining && e.Epoch == r.Epoch:
		return fmt.Sprintf("the replica of ensemble %s joins epoch %d, whose members %v do not include %s", r.Name, r.Epoch, e.Members, x.in.Self)
	}
	return ""
}

// hints is rule (h): tell a normal backup once per view that the
// detector holds its primary's node failed or left.
func (x *index) hints() []Action {
	var out []Action
	for _, r := range x.local {
		if r.Mode != ModeNormal || r.IsPrimary || r.Primary == "" || r.Primary == x.in.Self {
			continue
		}
		o, ok := x.detByID[r.Primary]
		if !ok || (o.State != hasup.MemberFailed && o.State != hasup.MemberLeft) {
			continue
		}
		fence := Fence(r.Epoch, r.View)
		if h, ok := x.in.Hinted[r.Name]; ok && h >= fence {
			continue
		}
		out = append(out, Action{Kind: SuspectPrimary, Ensemble: r.Name, Node: r.Primary, Epoch: r.Epoch, View: r.View,
			Reason: fmt.Sprintf("the detector holds node %s, primary of ensemble %s in epoch %d view %d, %v", r.Primary, r.Name, r.Epoch, r.View, o.State)})
	}
	return out
}

// unionIDs returns the IDs in a or b, each once, in order of first
// appearance.
func unionIDs(a, b []hasup.NodeID) []hasup.NodeID {
	var out []hasup.NodeID
	for _, id := range slices.Concat(a, b) {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// seconds formats nanoseconds as seconds ("1.5s") without the time
// package, which a pure core does not import.
func seconds(ns int64) string {
	return strconv.FormatFloat(float64(ns)/1e9, 'f', -1, 64) + "s"
}
