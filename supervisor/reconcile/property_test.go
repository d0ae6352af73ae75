package reconcile

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/supervisor/placement"
)

// TestDecideProperties checks, over random inputs, what must hold whatever
// the input: Decide is deterministic, blind to the order of its input
// lists, leaves its input alone, and never proposes a target that adds a
// down node, repeats a node, or replaces more than one member.
func TestDecideProperties(t *testing.T) {
	const runs = 3000
	kinds := map[Kind]int{}
	for seed := range uint64(runs) {
		for _, a := range checkProperties(t, seed) {
			kinds[a.Kind]++
		}
	}
	// The generator must reach every rule, or the checks prove little.
	for k := ProposeUpsertNode; k <= Blocked; k++ {
		if kinds[k] < 20 {
			t.Errorf("only %d actions of kind %v in %d random inputs", kinds[k], k, runs)
		}
	}
	t.Logf("actions per kind: %v", kinds)
}

// FuzzDecide runs the same checks on inputs generated from fuzzed seeds.
func FuzzDecide(f *testing.F) {
	for _, s := range []uint64{0, 1, 42, 1 << 40} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, seed uint64) { checkProperties(t, seed) })
}

// checkProperties checks Decide on the input drawn from seed and returns
// its actions.
func checkProperties(t *testing.T, seed uint64) []Action {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	in := randomInput(rng)
	before := cloneInput(in)

	out := Decide(in)
	if !reflect.DeepEqual(in, before) {
		t.Fatalf("seed %d: Decide modified its input", seed)
	}
	if again := Decide(cloneInput(in)); !reflect.DeepEqual(out, again) {
		t.Fatalf("seed %d: two calls differ:\n%s\n%s", seed, formatActions(out), formatActions(again))
	}
	shuffled := cloneInput(in)
	rng.Shuffle(len(shuffled.Registry.Nodes), func(i, j int) {
		shuffled.Registry.Nodes[i], shuffled.Registry.Nodes[j] = shuffled.Registry.Nodes[j], shuffled.Registry.Nodes[i]
	})
	rng.Shuffle(len(shuffled.Registry.Ensembles), func(i, j int) {
		shuffled.Registry.Ensembles[i], shuffled.Registry.Ensembles[j] = shuffled.Registry.Ensembles[j], shuffled.Registry.Ensembles[i]
	})
	rng.Shuffle(len(shuffled.Detector), func(i, j int) {
		shuffled.Detector[i], shuffled.Detector[j] = shuffled.Detector[j], shuffled.Detector[i]
	})
	rng.Shuffle(len(shuffled.Local), func(i, j int) { shuffled.Local[i], shuffled.Local[j] = shuffled.Local[j], shuffled.Local[i] })
	if again := Decide(shuffled); !reflect.DeepEqual(out, again) {
		t.Fatalf("seed %d: shuffled input gives another answer:\n%s\n%s", seed, formatActions(out), formatActions(again))
	}
	for i := 1; i < len(out); i++ {
		if actionLess(out[i], out[i-1]) {
			t.Fatalf("seed %d: actions %d and %d out of order", seed, i-1, i)
		}
	}
	checkActionsAgainst(t, seed, in, out)

	// The actions share no memory with the input.
	for _, a := range out {
		for i := range a.Members {
			a.Members[i] = "scribbled"
		}
		for k := range a.Tags {
			a.Tags[k] = "scribbled"
		}
	}
	if !reflect.DeepEqual(in, before) {
		t.Fatalf("seed %d: an action aliases the input", seed)
	}
	return out
}

// checkActionsAgainst checks each action against the rules' promises.
func checkActionsAgainst(t *testing.T, seed uint64, in Input, out []Action) {
	t.Helper()
	x := newIndex(in)
	begun := map[hasup.EnsembleName]bool{}
	for _, a := range out {
		if a.Reason == "" {
			t.Fatalf("seed %d: %v without a Reason", seed, a.Kind)
		}
		switch a.Kind {
		case ProposeUpsertNode, ProposeNodeState, ProposeBeginReconfig:
			if !in.ClusterPrimary {
				t.Fatalf("seed %d: %v from a node that is not the cluster primary", seed, a.Kind)
			}
		}
		e := x.ensByName[a.Ensemble]
		r := x.localByID[a.Ensemble]
		switch a.Kind {
		case ProposeNodeState:
			if a.State == suspect {
				t.Fatalf("seed %d: proposed suspect for %s", seed, a.Node)
			}
			if o := x.detByID[a.Node]; o == nil || o.State != a.State || !x.held(o) {
				t.Fatalf("seed %d: proposed %v for %s, which the detector has not held so for the damping time", seed, a.State, a.Node)
			}
		case ProposeBeginReconfig:
			if begun[a.Ensemble] {
				t.Fatalf("seed %d: two reconfigurations of %s", seed, a.Ensemble)
			}
			begun[a.Ensemble] = true
			checkTarget(t, seed, x, e, a)
		case StartReplica:
			if r != nil || e == nil || !slices.Contains(slices.Concat(e.Members, e.Target), in.Self) {
				t.Fatalf("seed %d: started %s, which runs here or does not name this node", seed, a.Ensemble)
			}
			if a.Bootstrap && (a.Epoch != 0 || a.Join) {
				t.Fatalf("seed %d: bootstrap of %s at epoch %d (join %v)", seed, a.Ensemble, a.Epoch, a.Join)
			}
		case StopReplica:
			if r == nil || !a.Delete {
				t.Fatalf("seed %d: stop of %s, which does not run here, or without Delete", seed, a.Ensemble)
			}
			// Deleting state is irreversible: only on the registry's proof.
			switch {
			case e == nil:
				if in.Registry.Version == 0 || in.ClusterEnsemble == "" || a.Ensemble == in.ClusterEnsemble {
					t.Fatalf("seed %d: deleted %s without proof that it was deleted", seed, a.Ensemble)
				}
			case r.Stopped, e.Epoch > r.Epoch:
			case r.Mode == ModeJoining && e.Epoch == r.Epoch && !slices.Contains(slices.Concat(e.Members, e.Target), in.Self):
			default:
				t.Fatalf("seed %d: deleted %s at epoch %d (%s), registry epoch %d", seed, a.Ensemble, r.Epoch, r.Mode, e.Epoch)
			}
		case SuspectPrimary:
			if o := x.detByID[a.Node]; r == nil || o == nil || (o.State != failed && o.State != left) || r.Primary != a.Node {
				t.Fatalf("seed %d: hinted %s about %s, which the detector does not hold down", seed, a.Ensemble, a.Node)
			}
		}
	}
}

// checkTarget checks a proposed target against its ensemble.
func checkTarget(t *testing.T, seed uint64, x *index, e *Ensemble, a Action) {
	t.Helper()
	if e == nil || e.Target != nil || a.Epoch != e.Epoch || len(a.Members) != len(e.Members) {
		t.Fatalf("seed %d: target %v for %s, which has no room for it", seed, a.Members, a.Ensemble)
	}
	var added []hasup.NodeID
	for i, id := range a.Members {
		if id == "" || slices.Contains(a.Members[:i], id) {
			t.Fatalf("seed %d: target %v repeats a node", seed, a.Members)
		}
		if !slices.Contains(e.Members, id) {
			added = append(added, id)
		}
	}
	if len(added) != 1 || slices.Contains(a.Members, a.Node) || !slices.Contains(e.Members, a.Node) || !x.registryDown(a.Node) {
		t.Fatalf("seed %d: target %v from %v does not replace the down member %s alone", seed, a.Members, e.Members, a.Node)
	}
	n := x.nodeByID[added[0]]
	if n == nil || n.State != alive {
		t.Fatalf("seed %d: target %v adds %s, which the registry does not record alive", seed, a.Members, added[0])
	}
	if o := x.detByID[added[0]]; o != nil && o.State != alive {
		t.Fatalf("seed %d: target %v adds %s, which the detector holds %v", seed, a.Members, added[0], o.State)
	}
	for _, s := range e.Constraints {
		c, err := placement.ParseConstraint(s)
		if err != nil || !c.Match(n.Tags) {
			t.Fatalf("seed %d: target %v adds %s, which fails constraint %q", seed, a.Members, added[0], s)
		}
	}
}

var (
	randomStates      = []hasup.MemberState{alive, alive, alive, failed, left, suspect}
	randomModes       = []string{ModeNormal, ModeNormal, ModeNormal, ModeViewChange, ModeRecovering, ModeJoining, ModeRetired}
	randomConstraints = []string{"zone=a", "zone!=b", "ssd", "!ssd", "zone = a"}
)

// randomInput draws an input over up to 9 nodes, some unregistered, some
// unknown to the detector, with ensembles of 1, 3 or 5 members (some of
// them nodes the registry does not know) and local replicas in any mode.
func randomInput(rng *rand.Rand) Input {
	pool := ids("n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9")
	pick := func(s []hasup.NodeID, k int) []hasup.NodeID {
		c := slices.Clone(s)
		rng.Shuffle(len(c), func(i, j int) { c[i], c[j] = c[j], c[i] })
		return c[:min(k, len(c))]
	}
	tags := func() map[string]string {
		m := map[string]string{}
		if rng.IntN(4) > 0 {
			m["zone"] = []string{"a", "b", "c"}[rng.IntN(3)]
		}
		if rng.IntN(3) == 0 {
			m["ssd"] = ""
		}
		return m
	}
	in := Input{
		Self:           pool[rng.IntN(len(pool))],
		Now:            1000 * sec,
		Damping:        []int64{0, sec, 10 * sec}[rng.IntN(3)],
		ClusterPrimary: rng.IntN(2) == 0,
		Registry:       Registry{Version: uint64(rng.IntN(3))},
	}
	if rng.IntN(2) == 0 {
		in.ClusterEnsemble = "cluster"
	}
	for _, id := range pick(pool, 3+rng.IntN(7)) {
		in.Registry.Nodes = append(in.Registry.Nodes, Node{ID: id, Addr: string(id) + ":1", Tags: tags(), State: randomStates[rng.IntN(len(randomStates))]})
	}
	for _, id := range pick(pool, rng.IntN(10)) {
		in.Detector = append(in.Detector, Observed{ID: id, Addr: string(id) + ":" + fmt.Sprint(rng.IntN(2)+1), Tags: tags(),
			State: randomStates[rng.IntN(len(randomStates))], Since: in.Now - rng.Int64N(30*sec)})
	}
	names := []hasup.EnsembleName{"cluster", "a", "b", "c", "d", "e", "f"}
	for _, name := range names[:rng.IntN(len(names))] {
		n := []int{1, 3, 3, 5}[rng.IntN(4)]
		e := Ensemble{Name: name, Replicas: n, Epoch: uint64(rng.IntN(4)), Members: pick(pool, n)}
		if rng.IntN(4) == 0 {
			e.Target = pick(pool, n)
		}
		if rng.IntN(3) == 0 {
			e.Constraints = []string{randomConstraints[rng.IntN(len(randomConstraints))]}
		}
		if rng.IntN(4) == 0 {
			e.SpreadBy = "zone"
		}
		in.Registry.Ensembles = append(in.Registry.Ensembles, e)
	}
	for _, name := range append(names, "gone") {
		if rng.IntN(2) == 0 {
			continue
		}
		members := pick(pool, []int{1, 3, 5}[rng.IntN(3)])
		if rng.IntN(2) == 0 {
			members[0] = in.Self
		}
		r := Replica{Name: name, Epoch: uint64(rng.IntN(5)), Members: members, View: uint64(rng.IntN(4)),
			Mode: randomModes[rng.IntN(len(randomModes))], Stopped: rng.IntN(6) == 0}
		// Half the time, a replica in or near step with the registry.
		if i := slices.IndexFunc(in.Registry.Ensembles, func(e Ensemble) bool { return e.Name == name }); i >= 0 && rng.IntN(2) == 0 {
			e := in.Registry.Ensembles[i]
			r.Epoch, r.Members = e.Epoch+uint64(rng.IntN(2)), slices.Clone(e.Members)
			if r.Epoch > e.Epoch && e.Target != nil {
				r.Members = slices.Clone(e.Target)
			}
		}
		if rng.IntN(5) > 0 {
			r.Primary = members[r.View%uint64(len(members))]
			r.IsPrimary = r.Mode == ModeNormal && r.Primary == in.Self
		}
		in.Local = append(in.Local, r)
	}
	if rng.IntN(2) == 0 {
		in.Hinted = map[hasup.EnsembleName]uint64{}
		for _, r := range in.Local {
			if rng.IntN(2) == 0 {
				in.Hinted[r.Name] = Fence(uint64(rng.IntN(5)), uint64(rng.IntN(4)))
			}
		}
	}
	return in
}

// cloneInput copies in deeply.
func cloneInput(in Input) Input {
	out := in
	out.Registry.Nodes = slices.Clone(in.Registry.Nodes)
	for i := range out.Registry.Nodes {
		out.Registry.Nodes[i].Tags = maps.Clone(in.Registry.Nodes[i].Tags)
	}
	out.Registry.Ensembles = slices.Clone(in.Registry.Ensembles)
	for i, e := range out.Registry.Ensembles {
		out.Registry.Ensembles[i].Members = slices.Clone(e.Members)
		out.Registry.Ensembles[i].Target = slices.Clone(e.Target)
		out.Registry.Ensembles[i].Constraints = slices.Clone(e.Constraints)
	}
	out.Detector = slices.Clone(in.Detector)
	for i := range out.Detector {
		out.Detector[i].Tags = maps.Clone(in.Detector[i].Tags)
	}
	out.Local = slices.Clone(in.Local)
	for i := range out.Local {
		out.Local[i].Members = slices.Clone(in.Local[i].Members)
	}
	out.Hinted = maps.Clone(in.Hinted)
	return out
}
