package reconcile_test

import (
	"fmt"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/supervisor/reconcile"
)

// One node's ticks while node n3, the primary of ensemble "orders", fails.
// Node n1 is the cluster primary; its detector has held n3 failed for 12 s.
func Example() {
	const second = int64(1e9)
	node := func(id hasup.NodeID, state hasup.MemberState) reconcile.Node {
		return reconcile.Node{ID: id, Addr: string(id) + ":7947", State: state}
	}
	seen := func(id hasup.NodeID, state hasup.MemberState, since int64) reconcile.Observed {
		return reconcile.Observed{ID: id, Addr: string(id) + ":7947", State: state, Since: since}
	}
	in := reconcile.Input{
		Self: "n1", Now: 60 * second, Damping: 10 * second, ClusterPrimary: true, ClusterEnsemble: "cluster",
		Registry: reconcile.Registry{
			Version: 12,
			Nodes: []reconcile.Node{node("n1", hasup.MemberAlive), node("n2", hasup.MemberAlive),
				node("n3", hasup.MemberAlive), node("n4", hasup.MemberAlive)},
			Ensembles: []reconcile.Ensemble{{Name: "orders", Type: "kv", Replicas: 3, Members: []hasup.NodeID{"n3", "n1", "n2"}}},
		},
		Detector: []reconcile.Observed{seen("n1", hasup.MemberAlive, 0), seen("n2", hasup.MemberAlive, 0),
			seen("n3", hasup.MemberFailed, 48*second), seen("n4", hasup.MemberAlive, 0)},
		Local: []reconcile.Replica{{Name: "orders", Members: []hasup.NodeID{"n3", "n1", "n2"}, Primary: "n3", Mode: reconcile.ModeNormal}},
	}
	show := func() {
		for _, a := range reconcile.Decide(in) {
			fmt.Printf("%v: %s\n", a.Kind, a.Reason)
		}
		fmt.Println("--")
	}
	show()

	// The hint was given and the view changed: n1 is primary of view 1.
	// The registry recorded n3 failed.
	in.Hinted = map[hasup.EnsembleName]uint64{"orders": reconcile.Fence(0, 0)}
	in.Local[0].View, in.Local[0].Primary, in.Local[0].IsPrimary = 1, "n1", true
	in.Registry.Nodes[2].State = hasup.MemberFailed
	show()

	// The registry recorded the target: the local primary moves to it.
	in.Registry.Ensembles[0].Target = []hasup.NodeID{"n1", "n2", "n4"}
	show()

	// The new epoch runs: the registry is told.
	in.Local[0] = reconcile.Replica{Name: "orders", Epoch: 1, Members: []hasup.NodeID{"n1", "n2", "n4"},
		Primary: "n1", IsPrimary: true, Mode: reconcile.ModeNormal}
	show()
	// Output:
	// propose-node-state: the detector has held node n3 failed for 12s (damping 10s); the registry says alive
	// suspect-primary: the detector holds node n3, primary of ensemble orders in epoch 0 view 0, failed
	// --
	// propose-begin-reconfig: member n3 of ensemble orders is failed in the registry: replace it with n4, moving from [n3 n1 n2] to [n1 n2 n4]
	// --
	// reconfigure: the registry moves ensemble orders from [n3 n1 n2] to [n1 n2 n4]
	// --
	// propose-finish-reconfig: ensemble orders runs epoch 1 with [n1 n2 n4]; the registry records epoch 0
	// --
}
