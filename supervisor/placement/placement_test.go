package placement

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hasup/hasup"
)

// node returns an alive node without load; tags is space-separated
// "key=value" or "key" (an empty value).
func node(id, tags string) Node {
	n := Node{ID: hasup.NodeID(id), Alive: true}
	if tags != "" {
		n.Tags = map[string]string{}
		for _, kv := range strings.Fields(tags) {
			k, v, _ := strings.Cut(kv, "=")
			n.Tags[k] = v
		}
	}
	return n
}

// loaded returns n hosting replicas, primaries of them.
func loaded(n Node, replicas, primaries int) Node {
	n.Replicas, n.Primaries = replicas, primaries
	return n
}

func dead(n Node) Node {
	n.Alive = false
	return n
}

func ids(s ...string) []hasup.NodeID {
	out := make([]hasup.NodeID, len(s))
	for i, id := range s {
		out[i] = hasup.NodeID(id)
	}
	return out
}

func constraints(t *testing.T, s ...string) []Constraint {
	t.Helper()
	var out []Constraint
	for _, text := range s {
		c, err := ParseConstraint(text)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// five returns n1..n5, alive, in zones a a b b c, without load.
func five() []Node {
	return []Node{node("n1", "zone=a"), node("n2", "zone=a"), node("n3", "zone=b"), node("n4", "zone=b"), node("n5", "zone=c")}
}

func TestPlace(t *testing.T) {
	for _, tc := range []struct {
		name    string
		req     Request
		cons    []string // parsed into req.Constraints
		nodes   []Node
		want    []hasup.NodeID // exact members in order, if set
		check   func(t *testing.T, nodes []Node, got []hasup.NodeID)
		wantErr error
		wantMsg string // exact error text, if set
	}{
		{
			name: "3 of 5: the least loaded, fewest primaries first",
			req:  Request{Ensemble: "orders", Replicas: 3},
			nodes: []Node{
				loaded(node("n1", ""), 0, 0), loaded(node("n2", ""), 1, 1), loaded(node("n3", ""), 2, 0),
				loaded(node("n4", ""), 3, 0), loaded(node("n5", ""), 4, 0),
			},
			want: ids("n1", "n3", "n2"),
		},
		{
			name: "5 of 5: everyone, ordered by primaries then replicas",
			req:  Request{Ensemble: "orders", Replicas: 5},
			nodes: []Node{
				loaded(node("n1", ""), 4, 4), loaded(node("n2", ""), 3, 1), loaded(node("n3", ""), 2, 1),
				loaded(node("n4", ""), 5, 0), loaded(node("n5", ""), 4, 2),
			},
			want: ids("n4", "n3", "n2", "n5", "n1"),
		},
		{
			name: "equal load: the node leading fewest ensembles joins",
			req:  Request{Ensemble: "orders", Replicas: 1},
			nodes: []Node{
				loaded(node("n1", ""), 2, 2), loaded(node("n2", ""), 2, 0), loaded(node("n3", ""), 2, 1), loaded(node("n4", ""), 3, 0),
			},
			want: ids("n2"),
		},
		{
			name:    "5 of 4",
			req:     Request{Ensemble: "orders", Replicas: 5},
			nodes:   five()[:4],
			wantErr: ErrNotEnoughNodes,
			wantMsg: "place ensemble orders: placement: not enough eligible nodes: need 5 nodes; 4 of 4 eligible",
		},
		{
			name:    "each turned-down node is named with its reasons",
			req:     Request{Ensemble: "orders", Replicas: 3},
			cons:    []string{"zone=a"},
			nodes:   []Node{node("n1", "zone=a"), node("n2", "zone=a"), node("n3", "zone=b"), dead(node("n4", "zone=a")), dead(node("n5", ""))},
			wantErr: ErrNotEnoughNodes,
			wantMsg: "place ensemble orders: placement: not enough eligible nodes: need 3 nodes matching [zone=a]; " +
				"2 of 5 eligible (n3: fails zone=a; n4: not alive; n5: not alive, fails zone=a)",
		},
		{
			name:    "no nodes at all",
			req:     Request{Ensemble: "orders", Replicas: 1},
			wantErr: ErrNotEnoughNodes,
			wantMsg: "place ensemble orders: placement: not enough eligible nodes: need 1 node; 0 of 0 eligible",
		},
		{
			name:  "dead nodes are never chosen, however idle",
			req:   Request{Ensemble: "orders", Replicas: 3},
			nodes: []Node{dead(node("n1", "")), dead(node("n2", "")), loaded(node("n3", ""), 9, 0), loaded(node("n4", ""), 9, 0), loaded(node("n5", ""), 9, 0)},
			check: wantSet("n3", "n4", "n5"),
		},
		{
			name:  "Equal",
			req:   Request{Ensemble: "orders", Replicas: 1},
			cons:  []string{"zone=c"},
			nodes: five(),
			want:  ids("n5"),
		},
		{
			name:  "NotEqual excludes the value, keeps unlabelled nodes",
			req:   Request{Ensemble: "orders", Replicas: 3},
			cons:  []string{"zone!=a"},
			nodes: append(five(), node("n6", "")),
			check: wantSet("n3", "n4", "n5", "n6"),
		},
		{
			name:  "Exists",
			req:   Request{Ensemble: "orders", Replicas: 3},
			cons:  []string{"ssd"},
			nodes: []Node{node("n1", "ssd"), node("n2", "ssd=nvme"), node("n3", "hdd"), node("n4", "ssd"), node("n5", "")},
			want:  nil,
			check: wantSet("n1", "n2", "n4"),
		},
		{
			name:  "NotExists",
			req:   Request{Ensemble: "orders", Replicas: 3},
			cons:  []string{"!draining"},
			nodes: []Node{node("n1", "draining"), node("n2", ""), node("n3", "zone=b"), node("n4", "draining=yes"), node("n5", "")},
			check: wantSet("n2", "n3", "n5"),
		},
		{
			name:  "all constraints must hold",
			req:   Request{Ensemble: "orders", Replicas: 1},
			cons:  []string{"ssd", "zone!=a", "!draining"},
			nodes: []Node{node("n1", "ssd zone=a"), node("n2", "ssd zone=b draining"), node("n3", "zone=b"), node("n4", "ssd zone=c"), node("n5", "zone=c")},
			want:  ids("n4"),
		},
		{
			name:  "SpreadBy: zones a a b b c give three zones",
			req:   Request{Ensemble: "orders", Replicas: 3, SpreadBy: "zone"},
			nodes: five(),
			check: distinctZones(3),
		},
		{
			name: "SpreadBy beats load",
			req:  Request{Ensemble: "orders", Replicas: 3, SpreadBy: "zone"},
			nodes: []Node{
				loaded(node("n1", "zone=a"), 0, 0), loaded(node("n2", "zone=a"), 0, 0), loaded(node("n3", "zone=a"), 0, 0),
				loaded(node("n4", "zone=b"), 7, 0), loaded(node("n5", "zone=c"), 9, 0),
			},
			check: func(t *testing.T, nodes []Node, got []hasup.NodeID) {
				distinctZones(3)(t, nodes, got)
				if !slices.Contains(got, "n4") || !slices.Contains(got, "n5") {
					t.Errorf("got %v, want n4 and n5 (the only nodes of zones b and c)", got)
				}
			},
		},
		{
			name: "SpreadBy: load decides within a zone",
			req:  Request{Ensemble: "orders", Replicas: 3, SpreadBy: "zone"},
			nodes: []Node{
				loaded(node("n1", "zone=a"), 3, 0), loaded(node("n2", "zone=a"), 2, 0), loaded(node("n3", "zone=b"), 1, 0),
				loaded(node("n4", "zone=b"), 5, 0), loaded(node("n5", "zone=c"), 4, 0),
			},
			want: ids("n3", "n2", "n5"),
		},
		{
			name: "SpreadBy: 5 over 2 zones splits 3 and 2",
			req:  Request{Ensemble: "orders", Replicas: 5, SpreadBy: "zone"},
			nodes: []Node{
				node("n1", "zone=a"), node("n2", "zone=a"), node("n3", "zone=a"), node("n4", "zone=a"),
				node("n5", "zone=b"), node("n6", "zone=b"), node("n7", "zone=b"),
			},
			check: func(t *testing.T, nodes []Node, got []hasup.NodeID) {
				zones := map[string]int{}
				for _, id := range got {
					zones[zoneOf(nodes, id)]++
				}
				if zones["a"] < 2 || zones["b"] < 2 {
					t.Errorf("got %v: zones %v, want 3 and 2", got, zones)
				}
			},
		},
		{
			name: "SpreadBy: unlabelled nodes share one domain",
			req:  Request{Ensemble: "orders", Replicas: 3, SpreadBy: "zone"},
			nodes: []Node{
				node("n1", ""), node("n2", ""), node("n3", ""),
				loaded(node("n4", "zone=a"), 5, 0), loaded(node("n5", "zone=b"), 5, 0),
			},
			check: func(t *testing.T, nodes []Node, got []hasup.NodeID) {
				if !slices.Contains(got, "n4") || !slices.Contains(got, "n5") {
					t.Errorf("got %v, want n4, n5 and one unlabelled node", got)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Constraints = constraints(t, tc.cons...)
			got, err := Place(tc.req, tc.nodes)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Place = %v, %v; want %v", got, err, tc.wantErr)
				}
				if tc.wantMsg != "" && err.Error() != tc.wantMsg {
					t.Errorf("error\n got: %s\nwant: %s", err, tc.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("Place: %v", err)
			}
			if tc.want != nil && !slices.Equal(got, tc.want) {
				t.Errorf("Place = %v, want %v", got, tc.want)
			}
			if tc.check != nil {
				tc.check(t, tc.nodes, got)
			}
			checkPlacement(t, tc.req, tc.nodes, got)
		})
	}
}

// wantSet checks the members as a set.
func wantSet(s ...string) func(*testing.T, []Node, []hasup.NodeID) {
	return func(t *testing.T, _ []Node, got []hasup.NodeID) {
		t.Helper()
		for _, id := range got {
			if !slices.Contains(ids(s...), id) {
				t.Errorf("got %v: %s is not one of %v", got, id, s)
			}
		}
	}
}

// zoneOf returns the zone tag of node id in nodes.
func zoneOf(nodes []Node, id hasup.NodeID) string {
	i := slices.IndexFunc(nodes, func(n Node) bool { return n.ID == id })
	return nodes[i].Tags["zone"]
}

func distinctZones(want int) func(*testing.T, []Node, []hasup.NodeID) {
	return func(t *testing.T, nodes []Node, got []hasup.NodeID) {
		t.Helper()
		zones := map[string]bool{}
		for _, id := range got {
			zones[zoneOf(nodes, id)] = true
		}
		if len(zones) != want {
			t.Errorf("got %v in %d zones, want %d", got, len(zones), want)
		}
	}
}

// checkPlacement asserts what every successful Place must satisfy.
func checkPlacement(t *testing.T, req Request, nodes []Node, got []hasup.NodeID) {
	t.Helper()
	if len(got) != req.Replicas {
		t.Fatalf("Place = %v, want %d members", got, req.Replicas)
	}
	byID := map[hasup.NodeID]Node{}
	for _, n := range nodes {
		byID[n.ID] = n
	}
	for i, id := range got {
		if slices.Contains(got[:i], id) {
			t.Errorf("Place = %v: %s twice", got, id)
		}
		n, ok := byID[id]
		if !ok || !naiveEligible(req, n) {
			t.Errorf("Place = %v: %s is not eligible", got, id)
		}
	}
	for _, id := range got[1:] {
		if byID[id].Primaries < byID[got[0]].Primaries {
			t.Errorf("Place = %v: %s leads fewer ensembles than the primary %s", got, id, got[0])
		}
	}
}

// naiveEligible restates eligibility without the package's helpers.
func naiveEligible(req Request, n Node) bool {
	if !n.Alive {
		return false
	}
	for _, c := range req.Constraints {
		v, ok := n.Tags[c.Key]
		holds := map[Op]bool{Equal: ok && v == c.Value, NotEqual: !(ok && v == c.Value), Exists: ok, NotExists: !ok}[c.Op]
		if !holds {
			return false
		}
	}
	return true
}

func TestPlaceInvalid(t *testing.T) {
	good := Request{Ensemble: "orders", Replicas: 3}
	for _, tc := range []struct {
		name  string
		req   Request
		nodes []Node
		msg   string
	}{
		{"0 replicas", Request{Ensemble: "orders"}, five(), "0 replicas, want 1, 3 or 5"},
		{"2 replicas", Request{Ensemble: "orders", Replicas: 2}, five(), "2 replicas"},
		{"4 replicas", Request{Ensemble: "orders", Replicas: 4}, five(), "4 replicas"},
		{"7 replicas", Request{Ensemble: "orders", Replicas: 7}, five(), "7 replicas"},
		{"negative replicas", Request{Ensemble: "orders", Replicas: -3}, five(), "-3 replicas"},
		{"no name", Request{Replicas: 3}, five(), "empty ensemble name"},
		{"constraint without operator", Request{Ensemble: "orders", Replicas: 3, Constraints: []Constraint{{Key: "zone", Value: "a"}}}, five(), "constraint 0"},
		{"constraint with a bad value", Request{Ensemble: "orders", Replicas: 3, Constraints: []Constraint{{Key: "zone", Op: Equal, Value: "a b"}}}, five(), `value "a b" holds ' '`},
		{"bad spread key", Request{Ensemble: "orders", Replicas: 3, SpreadBy: "zone!"}, five(), `spread key "zone!"`},
		{"duplicate node", good, append(five(), node("n3", "zone=c")), "node n3 listed twice"},
		{"duplicate dead node", good, append(five(), dead(node("n1", ""))), "node n1 listed twice"},
		{"empty node ID", good, append(five(), node("", "")), "empty ID"},
		{"negative load", good, append(five(), loaded(node("n6", ""), -1, 0)), "node n6: load of -1 replicas"},
		{"more primaries than replicas", good, append(five(), loaded(node("n6", ""), 1, 2)), "node n6: load of 1 replicas and 2 primaries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Place(tc.req, tc.nodes)
			if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Place = %v, %v; want ErrInvalidRequest containing %q", got, err, tc.msg)
			}
			members := ids("n1", "n2", "n3")
			if tc.req.Replicas != 3 {
				return
			}
			if got, err := Replace(tc.req, members, "n2", tc.nodes); !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("Replace = %v, %v; want ErrInvalidRequest", got, err)
			}
		})
	}
}

func TestReplace(t *testing.T) {
	idle := []Node{
		loaded(node("n1", "zone=a"), 4, 1), loaded(node("n2", "zone=a"), 4, 1), loaded(node("n3", "zone=b"), 4, 1),
		loaded(node("n4", "zone=b"), 2, 0), loaded(node("n5", "zone=c"), 1, 0), loaded(node("n6", "zone=a"), 3, 0),
	}
	for _, tc := range []struct {
		name    string
		req     Request
		cons    []string
		members []hasup.NodeID
		failed  hasup.NodeID
		nodes   []Node
		want    []hasup.NodeID
		wantErr error
		wantMsg string
	}{
		{
			name: "keeps the others and the slot", req: Request{Ensemble: "orders", Replicas: 3},
			members: ids("n1", "n2", "n3"), failed: "n2", nodes: idle,
			want: ids("n1", "n5", "n3"),
		},
		{
			name: "last slot", req: Request{Ensemble: "orders", Replicas: 3},
			members: ids("n1", "n2", "n3"), failed: "n3", nodes: idle,
			want: ids("n1", "n2", "n5"),
		},
		{
			name: "a failed primary slot rotates the list", req: Request{Ensemble: "orders", Replicas: 3},
			members: ids("n1", "n2", "n3"), failed: "n1", nodes: idle,
			want: ids("n2", "n3", "n5"),
		},
		{
			name: "5 members, middle slot", req: Request{Ensemble: "orders", Replicas: 5},
			members: ids("n1", "n2", "n3", "n4", "n5"), failed: "n4", nodes: idle,
			want: ids("n1", "n2", "n3", "n6", "n5"),
		},
		{
			name: "single replica", req: Request{Ensemble: "dev", Replicas: 1},
			members: ids("n1"), failed: "n1", nodes: idle,
			want: ids("n5"),
		},
		{
			name: "the replacement must satisfy the constraints", req: Request{Ensemble: "orders", Replicas: 3},
			cons:    []string{"zone!=c"},
			members: ids("n1", "n2", "n3"), failed: "n2", nodes: idle,
			want: ids("n1", "n4", "n3"),
		},
		{
			name: "the replacement must be alive", req: Request{Ensemble: "orders", Replicas: 3},
			members: ids("n1", "n2", "n3"), failed: "n2",
			nodes: []Node{idle[0], idle[1], idle[2], idle[3], dead(idle[4]), idle[5]},
			want:  ids("n1", "n4", "n3"),
		},
		{
			name: "the failed node is not chosen again, however idle", req: Request{Ensemble: "orders", Replicas: 3},
			members: ids("n1", "n2", "n3"), failed: "n2",
			nodes: []Node{node("n1", ""), node("n2", ""), node("n3", ""), loaded(node("n4", ""), 9, 0)},
			want:  ids("n1", "n4", "n3"),
		},
		{
			name: "SpreadBy counts the survivors' zones", req: Request{Ensemble: "orders", Replicas: 3, SpreadBy: "zone"},
			members: ids("n1", "n2", "n3"), failed: "n2",
			nodes: []Node{node("n1", "zone=a"), node("n2", "zone=a"), node("n3", "zone=b"), node("n4", "zone=a"), node("n5", "zone=b"), loaded(node("n6", "zone=c"), 9, 0)},
			want:  ids("n1", "n6", "n3"),
		},
		{
			name: "a member absent from nodes stays", req: Request{Ensemble: "orders", Replicas: 3},
			members: ids("gone", "n2", "n3"), failed: "n2", nodes: idle,
			want: ids("gone", "n5", "n3"),
		},
		{
			name: "no candidate", req: Request{Ensemble: "orders", Replicas: 3},
			cons:    []string{"zone=a"},
			members: ids("n1", "n2", "n3"), failed: "n3",
			nodes:   []Node{node("n1", "zone=a"), node("n2", "zone=a"), node("n3", "zone=a"), dead(node("n4", "zone=a")), node("n5", "zone=b")},
			wantErr: ErrNotEnoughNodes,
			wantMsg: "replace n3 in ensemble orders: placement: not enough eligible nodes: need 1 node besides the members matching [zone=a]; " +
				"0 of 5 eligible (n1: already a member; n2: already a member; n3: the failed member; n4: not alive; n5: fails zone=a)",
		},
		{
			name: "failed is not a member", req: Request{Ensemble: "orders", Replicas: 3},
			members: ids("n1", "n2", "n3"), failed: "n4", nodes: idle,
			wantErr: ErrInvalidRequest, wantMsg: `ensemble "orders": placement: invalid request: failed node "n4" is not a member of [n1 n2 n3]`,
		},
		{
			name: "members do not fit the request", req: Request{Ensemble: "orders", Replicas: 5},
			members: ids("n1", "n2", "n3"), failed: "n2", nodes: idle,
			wantErr: ErrInvalidRequest,
		},
		{
			name: "repeated member", req: Request{Ensemble: "orders", Replicas: 3},
			members: ids("n1", "n2", "n1"), failed: "n2", nodes: idle,
			wantErr: ErrInvalidRequest,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Constraints = constraints(t, tc.cons...)
			members := slices.Clone(tc.members)
			got, err := Replace(tc.req, members, tc.failed, tc.nodes)
			if !slices.Equal(members, tc.members) {
				t.Errorf("Replace changed its members argument to %v", members)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Replace = %v, %v; want %v", got, err, tc.wantErr)
				}
				if tc.wantMsg != "" && err.Error() != tc.wantMsg {
					t.Errorf("error\n got: %s\nwant: %s", err, tc.wantMsg)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("Replace = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// TestTieBreakDiffersPerEnsemble: on equal loads, the rendezvous hash gives
// each ensemble its own preference, so independent placements from one
// snapshot of loads do not all land on the same nodes.
func TestTieBreakDiffersPerEnsemble(t *testing.T) {
	nodes := five()
	primaries := map[hasup.NodeID]int{}
	hosts := map[hasup.NodeID]int{}
	sets := map[string]bool{}
	const ensembles = 200
	for i := range ensembles {
		got, err := Place(Request{Ensemble: hasup.EnsembleName(fmt.Sprintf("e%d", i)), Replicas: 3}, nodes)
		if err != nil {
			t.Fatal(err)
		}
		primaries[got[0]]++
		for _, id := range got {
			hosts[id]++
		}
		s := slices.Clone(got)
		slices.Sort(s)
		sets[fmt.Sprint(s)] = true
	}
	for _, n := range nodes {
		// Expected: 40 primaries and 120 replicas per node.
		if primaries[n.ID] < 20 || hosts[n.ID] < 80 {
			t.Errorf("node %s: primary of %d and member of %d of %d ensembles; the tie-break favours some nodes", n.ID, primaries[n.ID], hosts[n.ID], ensembles)
		}
	}
	if len(sets) < 9 {
		t.Errorf("only %d of the 10 possible member sets used", len(sets))
	}
}

// TestSequentialPlacementBalances places 20 ensembles one after another,
// counting each into the loads, and requires replicas and primaries within
// one of the mean on every node.
func TestSequentialPlacementBalances(t *testing.T) {
	nodes := five()
	for i := range 20 {
		req := Request{Ensemble: hasup.EnsembleName(fmt.Sprintf("ensemble-%02d", i)), Replicas: 3}
		got, err := Place(req, nodes)
		if err != nil {
			t.Fatal(err)
		}
		nodes = AddLoad(nodes, got)
	}
	for _, n := range nodes {
		// 60 replicas and 20 primaries over 5 nodes: 12 and 4 each.
		if n.Replicas < 11 || n.Replicas > 13 || n.Primaries < 3 || n.Primaries > 5 {
			t.Errorf("node %s: %d replicas, %d primaries; want 12±1 and 4±1", n.ID, n.Replicas, n.Primaries)
		}
	}
}

func TestAddLoad(t *testing.T) {
	nodes := []Node{loaded(node("n1", ""), 1, 1), node("n2", ""), node("n3", "")}
	got := AddLoad(nodes, ids("n3", "n1", "gone"))
	want := []Node{loaded(node("n1", ""), 2, 1), node("n2", ""), loaded(node("n3", ""), 1, 1)}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Replicas != want[i].Replicas || got[i].Primaries != want[i].Primaries {
			t.Errorf("AddLoad: node %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if nodes[0].Replicas != 1 || nodes[2].Replicas != 0 {
		t.Errorf("AddLoad changed its argument: %+v", nodes)
	}
}

// TestNotEnoughNodesMessageIsBounded: a large cluster gives a readable
// error, naming rejectionsMax nodes and counting the rest.
func TestNotEnoughNodesMessageIsBounded(t *testing.T) {
	var nodes []Node
	for i := range 12 {
		nodes = append(nodes, dead(node(fmt.Sprintf("n%02d", i), "")))
	}
	_, err := Place(Request{Ensemble: "orders", Replicas: 3}, nodes)
	want := "place ensemble orders: placement: not enough eligible nodes: need 3 nodes; 0 of 12 eligible (" +
		"n00: not alive; n01: not alive; n02: not alive; n03: not alive; n04: not alive; n05: not alive; n06: not alive; n07: not alive; and 4 more)"
	if !errors.Is(err, ErrNotEnoughNodes) || err.Error() != want {
		t.Errorf("error\n got: %v\nwant: %s", err, want)
	}
}
