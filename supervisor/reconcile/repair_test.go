package reconcile

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/supervisor/placement"
)

// tag sets tags on the registry node and the detector entry of id.
func tag(in *Input, id hasup.NodeID, tags map[string]string) {
	for i := range in.Registry.Nodes {
		if in.Registry.Nodes[i].ID == id {
			in.Registry.Nodes[i].Tags = tags
		}
	}
	for i := range in.Detector {
		if in.Detector[i].ID == id {
			in.Detector[i].Tags = tags
		}
	}
}

// Rule (c): the cluster primary replaces one down member per ensemble.
func TestRepair(t *testing.T) {
	tests := []struct {
		name     string
		registry []string // node specs, as regNodes reads them
		detector []string // node specs, as seen reads them; default: as registry
		ensemble Ensemble
		edit     func(*Input)
		want     []Action
		blocked  string // if set, want one Blocked action whose Reason holds this
	}{
		{
			name:     "a failed member is replaced by the only eligible node",
			registry: []string{"n1", "n2", "n3", "n4:failed"},
			ensemble: ens("orders", 2, "n1", "n2", "n4"),
			want:     []Action{{Kind: ProposeBeginReconfig, Ensemble: "orders", Node: "n4", Epoch: 2, Members: ids("n1", "n2", "n3")}},
		},
		{
			name:     "a member that left is replaced",
			registry: []string{"n1", "n2", "n3", "n4:left"},
			ensemble: ens("orders", 2, "n1", "n4", "n2"),
			want:     []Action{{Kind: ProposeBeginReconfig, Ensemble: "orders", Node: "n4", Epoch: 2, Members: ids("n1", "n3", "n2")}},
		},
		{
			name:     "a failed first member: the list rotates so that a member with the state leads",
			registry: []string{"n1", "n2", "n3", "n4:failed"},
			ensemble: ens("orders", 0, "n4", "n1", "n2"),
			want:     []Action{{Kind: ProposeBeginReconfig, Ensemble: "orders", Node: "n4", Epoch: 0, Members: ids("n1", "n2", "n3")}},
		},
		{
			name:     "a member the registry does not know is down",
			registry: []string{"n1", "n2", "n3"},
			ensemble: ens("orders", 1, "n1", "n2", "n9"),
			want:     []Action{{Kind: ProposeBeginReconfig, Ensemble: "orders", Node: "n9", Epoch: 1, Members: ids("n1", "n2", "n3")}},
		},
		{
			name:     "one reconfiguration at a time: none while a Target is set",
			registry: []string{"n1", "n2", "n3", "n4:failed", "n5"},
			ensemble: withTarget(ens("orders", 2, "n1", "n2", "n4"), "n1", "n2", "n5"),
		},
		{
			name:     "a failure not yet damped replaces nobody",
			registry: []string{"n1", "n2", "n3", "n4"},
			detector: []string{"n1", "n2", "n3", "n4:failed@9"},
			ensemble: ens("orders", 2, "n1", "n2", "n4"),
		},
		{
			name:     "a suspect member is not replaced",
			registry: []string{"n1", "n2", "n3", "n4"},
			detector: []string{"n1", "n2", "n3", "n4:suspect@1000"},
			ensemble: ens("orders", 2, "n1", "n2", "n4"),
		},
		{
			name:     "the registry decides: a member the detector sees alive but the registry records failed is replaced",
			registry: []string{"n1", "n2", "n3", "n4:failed"},
			detector: []string{"n1", "n2", "n3", "n4@1"},
			ensemble: ens("orders", 2, "n1", "n2", "n4"),
			want:     []Action{{Kind: ProposeBeginReconfig, Ensemble: "orders", Node: "n4", Epoch: 2, Members: ids("n1", "n2", "n3")}},
		},
		{
			name:     "candidates must be alive to the detector too: failed, suspect or left ones are skipped",
			registry: []string{"n1", "n2", "n3", "n4:failed", "n5", "n6", "n7"},
			detector: []string{"n1", "n2", "n3:failed@1", "n4:failed", "n5:suspect@1", "n6:left@1", "n7@0"},
			ensemble: ens("orders", 2, "n1", "n2", "n4"),
			want:     []Action{{Kind: ProposeBeginReconfig, Ensemble: "orders", Node: "n4", Epoch: 2, Members: ids("n1", "n2", "n7")}},
		},
		{
			name:     "a candidate the detector does not know yet is judged by the registry",
			registry: []string{"n1", "n2", "n3", "n4:failed"},
			detector: []string{"n1", "n2", "n4:failed"},
			ensemble: ens("orders", 2, "n1", "n2", "n4"),
			want:     []Action{{Kind: ProposeBeginReconfig, Ensemble: "orders", Node: "n4", Epoch: 2, Members: ids("n1", "n2", "n3")}},
		},
		{
			name:     "constraints are respected",
			registry: []string{"n1", "n2", "n3", "n4:failed", "n5"},
			ensemble: Ensemble{Name: "orders", Epoch: 2, Members: ids("n1", "n2", "n4"), Constraints: []string{"zone=a"}},
			edit: func(in *Input) {
				tag(in, "n3", map[string]string{"zone": "b"})
				tag(in, "n5", map[string]string{"zone": "a"})
			},
			want: []Action{{Kind: ProposeBeginReconfig, Ensemble: "orders", Node: "n4", Epoch: 2, Members: ids("n1", "n2", "n5")}},
		},
		{
			name:     "no eligible node: Blocked with placement's reasons",
			registry: []string{"n1", "n2", "n3", "n4:failed", "n5"},
			ensemble: Ensemble{Name: "orders", Epoch: 2, Members: ids("n1", "n2", "n4"), Constraints: []string{"ssd"}},
			blocked:  "not enough eligible nodes",
		},
		{
			name:     "constraints that do not parse: Blocked",
			registry: []string{"n1", "n2", "n3", "n4:failed"},
			ensemble: Ensemble{Name: "orders", Epoch: 2, Members: ids("n1", "n2", "n4"), Constraints: []string{"zone = a"}},
			blocked:  "malformed constraint",
		},
		{
			name:     "more than f members down: Blocked, no Target the ensemble could never reach",
			registry: []string{"n1", "n2:failed", "n3", "n4:failed"},
			ensemble: ens("orders", 2, "n1", "n2", "n4"),
			blocked:  "2 of its 3 members are down",
		},
		{
			name:     "a single replica that failed cannot be replaced",
			registry: []string{"n1", "n2", "n4:failed"},
			ensemble: ens("solo", 0, "n4"),
			blocked:  "1 of its 1 members are down",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := cluster("n1", true)
			in.Registry.Nodes = regNodes(tt.registry...)
			in.Detector = seen(tt.registry...)
			if tt.detector != nil {
				in.Detector = seen(tt.detector...)
			}
			in.Registry.Ensembles = []Ensemble{tt.ensemble}
			if tt.edit != nil {
				tt.edit(&in)
			}
			got := only(Decide(in), ProposeBeginReconfig, Blocked)
			if tt.blocked != "" {
				if len(got) != 1 || got[0].Kind != Blocked || !strings.Contains(got[0].Reason, tt.blocked) ||
					got[0].Ensemble != tt.ensemble.Name {
					t.Fatalf("want one Blocked about %q, got:\n%s", tt.blocked, formatActions(got))
				}
			} else {
				for i := range got {
					got[i].Reason = ""
				}
				checkActions(t, got, tt.want)
			}

			in.ClusterPrimary = false
			if got := only(Decide(in), ProposeBeginReconfig, Blocked); len(got) != 0 {
				t.Errorf("a node that is not the cluster primary decided:\n%s", formatActions(got))
			}
		})
	}
}

// Two failed members of a 5-replica ensemble: one reconfiguration, and the
// second only once the registry records the first finished.
func TestTwoFailedMembersTwoReconfigurations(t *testing.T) {
	in := cluster("n1", true, "n1", "n2", "n3:failed", "n4", "n5:failed", "n6", "n7")
	in.Registry.Ensembles = []Ensemble{ens("big", 4, "n1", "n3", "n2", "n5", "n4")}

	first := only(decided(t, in), ProposeBeginReconfig, Blocked)
	if len(first) != 1 || first[0].Kind != ProposeBeginReconfig || first[0].Node != "n3" {
		t.Fatalf("first tick: want one BeginReconfig replacing n3, got:\n%s", formatActions(first))
	}
	added := first[0].Members[1]
	if !slices.Contains(ids("n6", "n7"), added) || !slices.Equal(first[0].Members, ids("n1", string(added), "n2", "n5", "n4")) {
		t.Fatalf("first target %v", first[0].Members)
	}

	// The registry records the decision: nothing more until it is done.
	in.Registry.Ensembles[0].Target = first[0].Members
	if got := only(decided(t, in), ProposeBeginReconfig, Blocked); len(got) != 0 {
		t.Fatalf("with a Target set: %v", got)
	}

	// The ensemble moved; the registry records epoch 5.
	in.Registry.Ensembles[0] = Ensemble{Name: "big", Epoch: 5, Members: first[0].Members}
	second := only(decided(t, in), ProposeBeginReconfig, Blocked)
	if len(second) != 1 || second[0].Kind != ProposeBeginReconfig || second[0].Node != "n5" || second[0].Epoch != 5 {
		t.Fatalf("second tick: want one BeginReconfig replacing n5 at epoch 5, got:\n%s", formatActions(second))
	}
	other := hasup.NodeID("n6")
	if added == other {
		other = "n7"
	}
	if want := ids("n1", string(added), "n2", string(other), "n4"); !slices.Equal(second[0].Members, want) {
		t.Fatalf("second target %v, want %v", second[0].Members, want)
	}
}

// The replacements decided in one tick count into the loads of the next
// decision, so one failure does not pile every replacement on one node.
func TestRepairsOfOneTickSpreadLoad(t *testing.T) {
	in := cluster("n1", true, "n1", "n2", "n3:failed", "n4", "n5")
	// Find two ensembles that, judged from the same loads, would both
	// pick the same replacement: the tie between n4 and n5 is broken by
	// each name's rendezvous hash.
	nodes := []placement.Node{{ID: "n1", Alive: true, Replicas: 2}, {ID: "n2", Alive: true, Replicas: 2}, {ID: "n3", Replicas: 2}, {ID: "n4", Alive: true}, {ID: "n5", Alive: true}}
	pickFor := func(name string) hasup.NodeID {
		nodes := slices.Clone(nodes)
		nodes[0].Primaries, nodes[1].Primaries = 1, 1
		got, err := placement.Replace(placement.Request{Ensemble: hasup.EnsembleName(name), Replicas: 3}, ids("n1", "n2", "n3"), "n3", nodes)
		if err != nil {
			t.Fatal(err)
		}
		return got[2]
	}
	a, b := "a", ""
	for i := range 100 {
		if name := fmt.Sprintf("b%d", i); pickFor(name) == pickFor(a) {
			b = name
			break
		}
	}
	if b == "" {
		t.Fatal("no second ensemble name with the same preference")
	}
	in.Registry.Ensembles = []Ensemble{ens(b, 0, "n2", "n1", "n3"), ens(a, 0, "n1", "n2", "n3")}
	got := only(decided(t, in), ProposeBeginReconfig)
	if len(got) != 2 {
		t.Fatalf("want two reconfigurations, got:\n%s", formatActions(got))
	}
	if got[0].Members[2] == got[1].Members[2] {
		t.Errorf("both ensembles replace n3 with %s; the second should see the first's load", got[0].Members[2])
	}
}
