package placement

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/hasup/hasup"
)

// The property tests draw many random clusters and requests from seeded
// generators and check Place and Replace against naive restatements of
// their contracts. A failure names its seed.

const propertySeeds = 3000

// randomCluster returns up to 10 nodes with random IDs, tags, liveness and
// loads, and a random request over them.
func randomCluster(r *rand.Rand) (Request, []Node) {
	var nodes []Node
	seen := map[hasup.NodeID]bool{}
	for range r.IntN(11) {
		id := hasup.NodeID(fmt.Sprintf("node-%d", r.IntN(100)))
		if seen[id] {
			continue
		}
		seen[id] = true
		n := Node{ID: id, Tags: map[string]string{}, Alive: r.IntN(5) > 0, Replicas: r.IntN(7)}
		n.Primaries = r.IntN(n.Replicas + 1)
		if z := r.IntN(4); z > 0 {
			n.Tags["zone"] = string(rune('a' + z - 1))
		}
		if r.IntN(2) == 0 {
			n.Tags["ssd"] = ""
		}
		if r.IntN(5) == 0 {
			n.Tags["draining"] = "yes"
		}
		nodes = append(nodes, n)
	}
	req := Request{Ensemble: hasup.EnsembleName(fmt.Sprintf("e%d", r.IntN(1000))), Replicas: []int{1, 3, 5}[r.IntN(3)]}
	for _, c := range []Constraint{{"zone", Equal, "a"}, {"zone", NotEqual, "b"}, {"ssd", Exists, ""}, {"draining", NotExists, ""}} {
		if r.IntN(4) == 0 {
			req.Constraints = append(req.Constraints, c)
		}
	}
	if r.IntN(2) == 0 {
		req.SpreadBy = "zone"
	}
	return req, nodes
}

func shuffled(r *rand.Rand, nodes []Node) []Node {
	s := slices.Clone(nodes)
	r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s
}

func TestPlaceProperties(t *testing.T) {
	placed := 0
	for seed := range uint64(propertySeeds) {
		r := rand.New(rand.NewPCG(seed, 0))
		req, nodes := randomCluster(r)
		before := slices.Clone(nodes)
		got, err := Place(req, nodes)
		if !slices.EqualFunc(nodes, before, func(a, b Node) bool { return a.ID == b.ID && a.Replicas == b.Replicas }) {
			t.Fatalf("seed %d: Place changed its nodes argument", seed)
		}
		var eligible []Node
		for _, n := range nodes {
			if naiveEligible(req, n) {
				eligible = append(eligible, n)
			}
		}
		if len(eligible) < req.Replicas {
			if !errors.Is(err, ErrNotEnoughNodes) {
				t.Fatalf("seed %d: %d eligible for %d replicas: Place = %v, %v; want ErrNotEnoughNodes", seed, len(eligible), req.Replicas, got, err)
			}
			if _, again := Place(req, shuffled(r, nodes)); again.Error() != err.Error() {
				t.Fatalf("seed %d: the error depends on input order:\n%v\n%v", seed, err, again)
			}
			continue
		}
		if err != nil {
			t.Fatalf("seed %d: Place: %v", seed, err)
		}
		placed++
		checkPlacement(t, req, nodes, got)
		for range 3 {
			if again, _ := Place(req, shuffled(r, nodes)); !slices.Equal(again, got) {
				t.Fatalf("seed %d: Place on shuffled input = %v, first %v", seed, again, got)
			}
		}
		checkOptimal(t, seed, req, eligible, nodes, got)
	}
	if placed < propertySeeds/4 {
		t.Errorf("only %d of %d random requests could be placed; the generator tests too little", placed, propertySeeds)
	}
}

// checkOptimal checks what the greedy choice promises: the most failure
// domains with SpreadBy, the least loaded nodes without.
func checkOptimal(t *testing.T, seed uint64, req Request, eligible, nodes []Node, got []hasup.NodeID) {
	t.Helper()
	if req.SpreadBy != "" {
		all, chosen := map[string]bool{}, map[string]bool{}
		for _, n := range eligible {
			all[n.Tags[req.SpreadBy]] = true
		}
		for _, id := range got {
			chosen[zoneOf(nodes, id)] = true
		}
		if len(chosen) != min(req.Replicas, len(all)) {
			t.Fatalf("seed %d: Place = %v spans %d domains; %d of %d were possible", seed, got, len(chosen), min(req.Replicas, len(all)), len(all))
		}
		return
	}
	var loads, best []int
	for _, id := range got {
		loads = append(loads, nodes[slices.IndexFunc(nodes, func(n Node) bool { return n.ID == id })].Replicas)
	}
	for _, n := range eligible {
		best = append(best, n.Replicas)
	}
	slices.Sort(loads)
	slices.Sort(best)
	if !slices.Equal(loads, best[:req.Replicas]) {
		t.Fatalf("seed %d: Place = %v with loads %v; the least loaded eligible nodes have %v", seed, got, loads, best[:req.Replicas])
	}
}

func TestReplaceProperties(t *testing.T) {
	replaced := 0
	for seed := range uint64(propertySeeds) {
		r := rand.New(rand.NewPCG(seed, 1))
		req, nodes := randomCluster(r)
		if len(nodes) < req.Replicas {
			continue
		}
		// Any nodes may be members, eligible or not: tags and liveness
		// change after placement.
		var members []hasup.NodeID
		for _, i := range r.Perm(len(nodes))[:req.Replicas] {
			members = append(members, nodes[i].ID)
		}
		slot := r.IntN(len(members))
		failed := members[slot]
		got, err := Replace(req, members, failed, nodes)

		used := map[string]int{}
		for _, n := range nodes {
			if n.ID != failed && slices.Contains(members, n.ID) {
				used[n.Tags[req.SpreadBy]]++
			}
		}
		var cands []Node
		for _, n := range nodes {
			if naiveEligible(req, n) && !slices.Contains(members, n.ID) {
				cands = append(cands, n)
			}
		}
		if len(cands) == 0 {
			if !errors.Is(err, ErrNotEnoughNodes) {
				t.Fatalf("seed %d: no candidate, Replace = %v, %v; want ErrNotEnoughNodes", seed, got, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("seed %d: Replace: %v", seed, err)
		}
		replaced++
		want := slices.Clone(members)
		var repl hasup.NodeID
		if slot == 0 {
			repl = got[len(got)-1]
			want = append(want[1:], repl)
		} else {
			repl = got[slot]
			want[slot] = repl
		}
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d: Replace(%v, %s) = %v; the survivors moved", seed, members, failed, got)
		}
		c := slices.IndexFunc(cands, func(n Node) bool { return n.ID == repl })
		if c < 0 {
			t.Fatalf("seed %d: Replace(%v, %s) = %v: %s is a member or not eligible", seed, members, failed, got, repl)
		}
		for _, n := range cands {
			// No candidate is strictly better by failure domain, then load.
			if d, dr := used[spreadValue(req, &n)], used[spreadValue(req, &cands[c])]; d < dr || d == dr && n.Replicas < cands[c].Replicas {
				t.Fatalf("seed %d: Replace chose %s, but %s is in a less used domain or less loaded", seed, repl, n.ID)
			}
		}
		if again, _ := Replace(req, members, failed, shuffled(r, nodes)); !slices.Equal(again, got) {
			t.Fatalf("seed %d: Replace on shuffled input = %v, first %v", seed, again, got)
		}
	}
	if replaced < propertySeeds/4 {
		t.Errorf("only %d of %d random replacements succeeded; the generator tests too little", replaced, propertySeeds)
	}
}

// TestBalanceProperty places random sequences of 3- and 5-replica
// ensembles on clusters of 3 to 9 idle nodes, counting each into the loads.
// Replica counts never differ by more than one: each placement takes the
// least loaded nodes, which is a theorem. Primary counts are balanced only
// as far as the members allow (the primary is the member leading fewest
// ensembles): over 10,000 seeds the spread was at worst 3 and on average
// under 1 (0.96); without ordering members by primaries the average is
// several times that. The bounds below guard those observations.
func TestBalanceProperty(t *testing.T) {
	spreadSum, steps := 0, 0
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 2))
		var nodes []Node
		for i := range 3 + r.IntN(7) {
			nodes = append(nodes, node(fmt.Sprintf("n%d", i), ""))
		}
		sizes := []int{3}
		if len(nodes) >= 5 {
			sizes = append(sizes, 5)
		}
		for i := range 1 + r.IntN(60) {
			req := Request{Ensemble: hasup.EnsembleName(fmt.Sprintf("s%d-e%d", seed, i)), Replicas: sizes[r.IntN(len(sizes))]}
			got, err := Place(req, shuffled(r, nodes))
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			nodes = AddLoad(nodes, got)
			minR, maxR, minP, maxP := nodes[0].Replicas, nodes[0].Replicas, nodes[0].Primaries, nodes[0].Primaries
			for _, n := range nodes {
				minR, maxR = min(minR, n.Replicas), max(maxR, n.Replicas)
				minP, maxP = min(minP, n.Primaries), max(maxP, n.Primaries)
			}
			if maxR-minR > 1 || maxP-minP > 3 {
				t.Fatalf("seed %d, after %d ensembles: replicas %d..%d, primaries %d..%d", seed, i+1, minR, maxR, minP, maxP)
			}
			spreadSum += maxP - minP
			steps++
		}
	}
	if avg := float64(spreadSum) / float64(steps); avg > 1.1 {
		t.Errorf("primaries spread %.2f on average (max - min per cluster), want at most 1.1", avg)
	}
}
