package reconcile

import (
	"math"
	"testing"

	"github.com/hasup/hasup"
)

// Rules (a) and (b): node records and node states, at the cluster primary
// only, after damping.
func TestNodeRecordsAndStates(t *testing.T) {
	tests := []struct {
		name     string
		registry []Node
		detector []Observed
		want     []Action
	}{
		{
			name:     "in step: nothing",
			registry: regNodes("n1", "n2:failed", "n3:left"),
			detector: seen("n1", "n2:failed", "n3:left"),
		},
		{
			name:     "a node alive and not registered is upserted alive",
			registry: regNodes("n1"),
			detector: seen("n1", "n2@0"),
			want:     []Action{{Kind: ProposeUpsertNode, Node: "n2", Addr: "n2:7947", State: alive}},
		},
		{
			name:     "an unregistered node that is not alive waits",
			registry: regNodes("n1"),
			detector: seen("n1", "n2:suspect", "n3:failed"),
		},
		{
			name:     "a moved node is upserted with the registry's state",
			registry: []Node{{ID: "n1", Addr: "old:1", State: failed}},
			detector: seen("n1@1"),
			want:     []Action{{Kind: ProposeUpsertNode, Node: "n1", Addr: "n1:7947", State: failed}},
		},
		{
			name:     "new tags are upserted",
			registry: regNodes("n1"),
			detector: []Observed{{ID: "n1", Addr: "n1:7947", State: alive, Since: 0, Tags: map[string]string{"zone": "a"}}},
			want:     []Action{{Kind: ProposeUpsertNode, Node: "n1", Addr: "n1:7947", State: alive, Tags: map[string]string{"zone": "a"}}},
		},
		{
			name:     "nil and empty tags are the same",
			registry: []Node{{ID: "n1", Addr: "n1:7947", State: alive, Tags: map[string]string{}}},
			detector: seen("n1"),
		},
		{
			name:     "failed for the damping time: propose failed",
			registry: regNodes("n1", "n2"),
			detector: seen("n1", "n2:failed@10"),
			want:     []Action{{Kind: ProposeNodeState, Node: "n2", State: failed}},
		},
		{
			name:     "failed for less than the damping time: wait",
			registry: regNodes("n1", "n2"),
			detector: seen("n1", "n2:failed@9"),
		},
		{
			name:     "a flapping node, alive again before damping, is never declared failed",
			registry: regNodes("n1", "n2"),
			detector: seen("n1", "n2@1"),
		},
		{
			name:     "suspect never changes the registry, however long",
			registry: regNodes("n1", "n2", "n3:failed"),
			detector: seen("n1", "n2:suspect@1000", "n3:suspect@1000"),
		},
		{
			name:     "left for the damping time: propose left, from alive or failed",
			registry: regNodes("n1", "n2", "n3:failed"),
			detector: seen("n1", "n2:left@10", "n3:left@10"),
			want:     []Action{{Kind: ProposeNodeState, Node: "n2", State: left}, {Kind: ProposeNodeState, Node: "n3", State: left}},
		},
		{
			name:     "left is not turned into failed",
			registry: regNodes("n1", "n2:left"),
			detector: seen("n1", "n2:failed@100"),
		},
		{
			name:     "back for the damping time: propose alive",
			registry: regNodes("n1", "n2:failed", "n3:left"),
			detector: seen("n1", "n2@10", "n3@10"),
			want:     []Action{{Kind: ProposeNodeState, Node: "n2", State: alive}, {Kind: ProposeNodeState, Node: "n3", State: alive}},
		},
		{
			name:     "back for less than the damping time: wait",
			registry: regNodes("n1", "n2:failed"),
			detector: seen("n1", "n2@9"),
		},
		{
			name:     "a registered node the detector does not know is left alone",
			registry: regNodes("n1", "n2"),
			detector: seen("n1"),
		},
		{
			name:     "a state held since the clock's beginning counts, without overflow",
			registry: regNodes("n1", "n2"),
			detector: []Observed{{ID: "n2", Addr: "n2:7947", State: failed, Since: math.MinInt64}},
			want:     []Action{{Kind: ProposeNodeState, Node: "n2", State: failed}},
		},
		{
			name:     "a clock that runs backwards holds nothing",
			registry: regNodes("n1", "n2"),
			detector: []Observed{{ID: "n2", Addr: "n2:7947", State: failed, Since: now + 100*sec}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Input{Self: "n1", Now: now, Damping: damping, ClusterPrimary: true,
				Registry: Registry{Version: 1, Nodes: tt.registry}, Detector: tt.detector}
			checkActions(t, decided(t, in), tt.want)

			in.ClusterPrimary = false
			checkActions(t, decided(t, in), nil) // only the cluster primary proposes
		})
	}
}

// The damping time is measured from when the detector's state began, so a
// verdict that held 9 s, flipped and held 9 s again has never held 10 s.
func TestDampingRestartsOnEveryFlap(t *testing.T) {
	in := cluster("n1", true, "n1", "n2")
	states := []hasup.MemberState{failed, alive, failed, alive, failed}
	for i, st := range states {
		in.Now = int64(i) * 9 * sec
		in.Detector[1] = Observed{ID: "n2", Addr: "n2:7947", State: st, Since: in.Now}
		for tick := int64(0); tick < 9; tick++ {
			in.Now = int64(i)*9*sec + tick*sec
			if got := only(decided(t, in), ProposeNodeState, ProposeBeginReconfig); len(got) != 0 {
				t.Fatalf("flap %d, second %d: %v", i, tick, got)
			}
		}
	}
	in.Now += damping
	checkActions(t, only(decided(t, in), ProposeNodeState), []Action{{Kind: ProposeNodeState, Node: "n2", State: failed}})
}
