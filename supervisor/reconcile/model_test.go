package reconcile

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/supervisor/placement"
)

// A toy cluster that carries out Decide's actions, tick after tick: a
// registry that judges proposals as fsm/registry does, and per node the
// replicas it runs, moved along by a crude model of the ensemble protocol
// (view changes on a hint, an epoch change that commits while a quorum of
// the old epoch is up, joiners that catch up from a member of their
// epoch, retired replicas that stop once the new epoch runs). It is not the
// protocol; it is enough to show that the rules, applied level-triggered
// by every node, take the cluster where it should go.
type toyCluster struct {
	t        *testing.T
	now      int64
	nodes    []hasup.NodeID
	reg      Registry
	down     map[hasup.NodeID]bool
	since    map[hasup.NodeID]int64 // when the node last went down or up
	replicas map[hasup.NodeID]map[hasup.EnsembleName]*Replica
	hinted   map[hasup.NodeID]map[hasup.EnsembleName]uint64
	log      []string
}

const (
	toyTick    = sec
	toyDamping = 3 * sec
)

func newToyCluster(t *testing.T, n, ensembles int) *toyCluster {
	c := &toyCluster{t: t, down: map[hasup.NodeID]bool{}, since: map[hasup.NodeID]int64{},
		replicas: map[hasup.NodeID]map[hasup.EnsembleName]*Replica{}, hinted: map[hasup.NodeID]map[hasup.EnsembleName]uint64{}}
	var pn []placement.Node
	for i := range n {
		id := hasup.NodeID(fmt.Sprintf("n%d", i+1))
		c.nodes = append(c.nodes, id)
		c.reg.Nodes = append(c.reg.Nodes, Node{ID: id, Addr: string(id) + ":7947", State: alive})
		c.replicas[id] = map[hasup.EnsembleName]*Replica{}
		c.hinted[id] = map[hasup.EnsembleName]uint64{}
		pn = append(pn, placement.Node{ID: id, Alive: true})
	}
	for i := range ensembles {
		name := hasup.EnsembleName(fmt.Sprintf("e%d", i+1))
		members, err := placement.Place(placement.Request{Ensemble: name, Replicas: 3}, pn)
		if err != nil {
			t.Fatal(err)
		}
		pn = placement.AddLoad(pn, members)
		c.reg.Ensembles = append(c.reg.Ensembles, Ensemble{Name: name, Type: "kv", Replicas: 3, Members: members})
	}
	c.reg.Version = 1
	return c
}

// clusterPrimary stands for the primary of the cluster ensemble: the
// lowest node that is up.
func (c *toyCluster) clusterPrimary() hasup.NodeID {
	for _, id := range c.nodes {
		if !c.down[id] {
			return id
		}
	}
	return ""
}

func (c *toyCluster) input(self hasup.NodeID) Input {
	in := Input{Self: self, Now: c.now, Damping: toyDamping, ClusterPrimary: self == c.clusterPrimary(),
		ClusterEnsemble: "cluster", Registry: cloneInput(Input{Registry: c.reg}).Registry, Hinted: c.hinted[self]}
	for _, id := range c.nodes {
		st := alive
		if c.down[id] {
			st = failed
		}
		in.Detector = append(in.Detector, Observed{ID: id, Addr: string(id) + ":7947", State: st, Since: c.since[id]})
	}
	for _, r := range c.replicas[self] {
		in.Local = append(in.Local, *r)
	}
	return in
}

// tick lets every node that is up decide on the same state, carries out
// the actions, then moves the protocol along.
func (c *toyCluster) tick() {
	c.now += toyTick
	type decision struct {
		node    hasup.NodeID
		actions []Action
	}
	var ds []decision
	for _, id := range c.nodes {
		if !c.down[id] {
			ds = append(ds, decision{id, Decide(c.input(id))})
		}
	}
	for _, d := range ds {
		for _, a := range d.actions {
			c.log = append(c.log, fmt.Sprintf("t=%ds %s: %v %s %s", c.now/sec, d.node, a.Kind, a.Ensemble, a.Reason))
			c.apply(d.node, a)
		}
	}
	c.step()
}

func (c *toyCluster) ensemble(name hasup.EnsembleName) *Ensemble {
	for i := range c.reg.Ensembles {
		if c.reg.Ensembles[i].Name == name {
			return &c.reg.Ensembles[i]
		}
	}
	return nil
}

func (c *toyCluster) regNode(id hasup.NodeID) *Node {
	for i := range c.reg.Nodes {
		if c.reg.Nodes[i].ID == id {
			return &c.reg.Nodes[i]
		}
	}
	return nil
}

// apply carries out one action of node self, failing the test on one that
// the registry or the ensemble would refuse as a bug.
func (c *toyCluster) apply(self hasup.NodeID, a Action) {
	t := c.t
	t.Helper()
	switch a.Kind {
	case ProposeUpsertNode, ProposeNodeState, ProposeBeginReconfig:
		if self != c.clusterPrimary() {
			t.Fatalf("%s proposed %v without being the cluster primary", self, a.Kind)
		}
	}
	e := c.ensemble(a.Ensemble)
	switch a.Kind {
	case ProposeUpsertNode:
		t.Fatalf("unexpected upsert of %s", a.Node)
	case ProposeNodeState:
		c.regNode(a.Node).State = a.State
		c.reg.Version++
	case ProposeBeginReconfig:
		if e.Target != nil || e.Epoch != a.Epoch {
			t.Fatalf("begin %s at epoch %d refused: target %v, epoch %d", a.Ensemble, a.Epoch, e.Target, e.Epoch)
		}
		for _, id := range a.Members {
			if !slices.Contains(e.Members, id) && c.down[id] {
				t.Fatalf("target %v of %s adds %s, which is down", a.Members, a.Ensemble, id)
			}
		}
		e.Target = slices.Clone(a.Members)
		c.reg.Version++
	case ProposeFinishReconfig:
		if a.Epoch <= e.Epoch {
			return // ErrStale: harmless
		}
		e.Epoch, e.Members, e.Target = a.Epoch, slices.Clone(a.Members), nil
		c.reg.Version++
	case Reconfigure:
		c.reconfigure(a.Ensemble, a.Epoch, a.Members)
	case StartReplica:
		r := &Replica{Name: a.Ensemble, Epoch: a.Epoch, Members: slices.Clone(a.Members), Mode: ModeRecovering}
		switch {
		case a.Join:
			r.Mode = ModeJoining
		case a.Bootstrap:
			r.Mode = ModeNormal
		}
		c.replicas[self][a.Ensemble] = r
		c.setPrimary(self, r)
	case StopReplica:
		if !a.Delete {
			t.Fatalf("stop without delete")
		}
		delete(c.replicas[self], a.Ensemble)
	case SuspectPrimary:
		c.hinted[self][a.Ensemble] = Fence(a.Epoch, a.View)
		c.viewChange(a.Ensemble, a.Epoch)
	case Blocked:
		t.Fatalf("blocked: %s", a.Reason)
	}
}

// reconfigure commits the move to target in epoch if a quorum of the
// epoch's members is up: they enter epoch+1, as members or retired.
func (c *toyCluster) reconfigure(name hasup.EnsembleName, epoch uint64, target []hasup.NodeID) {
	up := c.upIn(name, epoch)
	if len(up) == 0 || len(up) <= len(up[0].Members)/2 {
		return
	}
	for _, id := range c.nodes {
		r := c.replicas[id][name]
		if c.down[id] || r == nil || r.Epoch != epoch || r.Mode == ModeRetired {
			continue
		}
		r.Epoch, r.Members, r.View = epoch+1, slices.Clone(target), 0
		r.Mode = ModeNormal
		if !slices.Contains(target, id) {
			r.Mode = ModeRetired
		}
		c.setPrimary(id, r)
	}
}

// viewChange moves the up replicas of name in epoch to the next view whose
// primary is up.
func (c *toyCluster) viewChange(name hasup.EnsembleName, epoch uint64) {
	up := c.upIn(name, epoch)
	if len(up) == 0 || len(up) <= len(up[0].Members)/2 {
		return
	}
	view := up[0].View
	for _, r := range up {
		view = max(view, r.View)
	}
	members := up[0].Members
	for view++; c.down[members[view%uint64(len(members))]]; view++ {
	}
	for _, id := range c.nodes {
		if r := c.replicas[id][name]; !c.down[id] && r != nil && r.Epoch == epoch && r.Mode == ModeNormal {
			r.View = view
			c.setPrimary(id, r)
		}
	}
}

// upIn returns the normal replicas of name in epoch on nodes that are up.
func (c *toyCluster) upIn(name hasup.EnsembleName, epoch uint64) []*Replica {
	var out []*Replica
	for _, id := range c.nodes {
		if r := c.replicas[id][name]; !c.down[id] && r != nil && r.Epoch == epoch && r.Mode == ModeNormal {
			out = append(out, r)
		}
	}
	return out
}

func (c *toyCluster) setPrimary(self hasup.NodeID, r *Replica) {
	r.Primary = r.Members[r.View%uint64(len(r.Members))]
	r.IsPrimary = r.Mode == ModeNormal && r.Primary == self
}

// step moves the protocol along after the actions: a replica that is
// joining, recovering, or behind in epoch or view catches up from the most
// advanced normal replica of its ensemble on a node that is up (leaving it
// retired if that epoch does not name it); a retired replica stops once a
// majority of the new epoch runs it.
func (c *toyCluster) step() {
	for _, id := range c.nodes {
		if c.down[id] {
			continue
		}
		for _, name := range sortedNames(c.replicas[id]) {
			r := c.replicas[id][name]
			if r.Mode == ModeRetired {
				if len(c.upIn(name, r.Epoch)) > len(r.Members)/2 {
					r.Stopped = true
				}
				continue
			}
			lead := c.mostAdvanced(name)
			if lead == nil || lead.Epoch < r.Epoch || (lead.Epoch == r.Epoch && r.Mode == ModeNormal && lead.View <= r.View) {
				continue
			}
			r.Epoch, r.Members, r.View, r.Mode = lead.Epoch, slices.Clone(lead.Members), lead.View, ModeNormal
			if !slices.Contains(r.Members, id) {
				r.Mode = ModeRetired
			}
			c.setPrimary(id, r)
		}
	}
}

// mostAdvanced returns the normal replica of name on a node that is up
// with the highest (epoch, view), or nil.
func (c *toyCluster) mostAdvanced(name hasup.EnsembleName) *Replica {
	var best *Replica
	for _, id := range c.nodes {
		r := c.replicas[id][name]
		if c.down[id] || r == nil || r.Mode != ModeNormal {
			continue
		}
		if best == nil || r.Epoch > best.Epoch || (r.Epoch == best.Epoch && r.View > best.View) {
			best = r
		}
	}
	return best
}

func sortedNames(m map[hasup.EnsembleName]*Replica) []hasup.EnsembleName {
	var out []hasup.EnsembleName
	for name := range m {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// converged reports what still differs from the goal: every ensemble
// without a Target, its members all up and recorded alive, each running
// a normal replica in the registry's epoch, and no replica anywhere else
// on a node that is up.
func (c *toyCluster) converged() string {
	for _, e := range c.reg.Ensembles {
		if e.Target != nil {
			return fmt.Sprintf("%s moves to %v", e.Name, e.Target)
		}
		for _, m := range e.Members {
			if c.down[m] || c.regNode(m).State != alive {
				return fmt.Sprintf("%s has member %s down", e.Name, m)
			}
			if r := c.replicas[m][e.Name]; r == nil || r.Epoch != e.Epoch || r.Mode != ModeNormal {
				return fmt.Sprintf("%s: member %s runs %+v", e.Name, m, r)
			}
		}
		for _, id := range c.nodes {
			if !c.down[id] && !slices.Contains(e.Members, id) && c.replicas[id][e.Name] != nil {
				return fmt.Sprintf("%s still runs on %s", e.Name, id)
			}
		}
	}
	for _, n := range c.reg.Nodes {
		if want := map[bool]hasup.MemberState{false: alive, true: failed}[c.down[n.ID]]; n.State != want {
			return fmt.Sprintf("the registry records %s %v", n.ID, n.State)
		}
	}
	return ""
}

// runUntilConverged ticks until the cluster converges, at most max ticks,
// and returns how many it took.
func (c *toyCluster) runUntilConverged(max int) int {
	c.t.Helper()
	for i := range max {
		if c.converged() == "" {
			return i
		}
		c.tick()
	}
	if why := c.converged(); why != "" {
		for _, l := range c.log {
			c.t.Log(l)
		}
		c.t.Fatalf("not converged after %d ticks: %s", max, why)
	}
	return max
}

// TestModelRepairsEveryEnsemble: 5 nodes, 6 ensembles of 3 replicas. The
// ensembles start from the registry alone (bootstrap). Then each node in
// turn fails: every ensemble ends with all members alive and no Target.
// The node comes back: the registry records it alive, and it drops the
// replicas it was replaced in.
func TestModelRepairsEveryEnsemble(t *testing.T) {
	for victim := range 5 {
		t.Run(fmt.Sprintf("n%d fails", victim+1), func(t *testing.T) {
			c := newToyCluster(t, 5, 6)
			c.runUntilConverged(5)
			for _, e := range c.reg.Ensembles {
				if e.Epoch != 0 {
					t.Fatalf("%s reconfigured while nothing failed", e.Name)
				}
			}

			id := c.nodes[victim]
			hosted := 0
			for _, e := range c.reg.Ensembles {
				if slices.Contains(e.Members, id) {
					hosted++
				}
			}
			c.down[id], c.since[id] = true, c.now
			ticks := c.runUntilConverged(40)
			t.Logf("%s hosted %d ensembles; repaired in %d ticks", id, hosted, ticks)
			load := map[hasup.NodeID]int{}
			for _, e := range c.reg.Ensembles {
				if slices.Contains(e.Members, id) {
					t.Fatalf("%s still lists %s", e.Name, id)
				}
				for _, m := range e.Members {
					load[m]++
				}
			}
			// The repairs of one tick see each other's load: the 18
			// replicas spread over the 4 nodes left as evenly as they can.
			delete(load, id)
			if lo, hi := slices.Min(slices.Collect(maps.Values(load))), slices.Max(slices.Collect(maps.Values(load))); hi-lo > 1 {
				t.Errorf("replicas per node after the repair: %v", load)
			}

			c.down[id], c.since[id] = false, c.now
			c.runUntilConverged(20)
			if n := len(c.replicas[id]); n != 0 {
				t.Fatalf("%s came back and kept %d stale replicas", id, n)
			}
		})
	}
}

// A node that flaps (down for less than the damping time, again and again)
// is never recorded failed and costs no reconfiguration.
func TestModelFlappingNodeIsNotReplaced(t *testing.T) {
	c := newToyCluster(t, 5, 6)
	c.runUntilConverged(5)
	id := c.nodes[2]
	for range 10 {
		c.down[id], c.since[id] = true, c.now
		c.tick()
		c.tick()
		c.down[id], c.since[id] = false, c.now
		c.tick()
	}
	c.runUntilConverged(20)
	for _, e := range c.reg.Ensembles {
		if e.Epoch != 0 {
			t.Fatalf("%s reconfigured for a flapping node: epoch %d", e.Name, e.Epoch)
		}
	}
}
