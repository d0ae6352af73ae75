package placement_test

import (
	"fmt"

	"github.com/hasup/hasup/supervisor/placement"
)

func Example() {
	nodes := []placement.Node{
		{ID: "n1", Tags: map[string]string{"zone": "a"}, Alive: true, Replicas: 2, Primaries: 1},
		{ID: "n2", Tags: map[string]string{"zone": "a"}, Alive: true},
		{ID: "n3", Tags: map[string]string{"zone": "b"}, Alive: true, Replicas: 1},
		{ID: "n4", Tags: map[string]string{"zone": "b", "draining": ""}, Alive: true},
		{ID: "n5", Tags: map[string]string{"zone": "c"}, Alive: false},
		{ID: "n6", Tags: map[string]string{"zone": "c"}, Alive: true, Replicas: 3},
	}
	notDraining, err := placement.ParseConstraint("!draining")
	if err != nil {
		panic(err)
	}
	req := placement.Request{
		Ensemble:    "orders",
		Replicas:    3,
		Constraints: []placement.Constraint{notDraining},
		SpreadBy:    "zone",
	}

	// One member per zone, the least loaded of each; n2 leads view 0.
	members, err := placement.Place(req, nodes)
	fmt.Println(members, err)

	// n3 failed: n1 is the only eligible node left.
	members, err = placement.Replace(req, members, "n3", nodes)
	fmt.Println(members, err)

	// Count the placement into the loads before placing the next ensemble.
	nodes = placement.AddLoad(nodes, members)
	fmt.Println(nodes[1].ID, nodes[1].Replicas, nodes[1].Primaries)

	req.Replicas = 5
	_, err = placement.Place(req, nodes)
	fmt.Println(err)
	// Output:
	// [n2 n3 n6] <nil>
	// [n2 n1 n6] <nil>
	// n2 1 1
	// place ensemble orders: placement: not enough eligible nodes: need 5 nodes matching [!draining]; 4 of 6 eligible (n4: fails !draining; n5: not alive)
}
