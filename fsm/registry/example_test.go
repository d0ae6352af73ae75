package registry_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/fsm"
	"github.com/hasup/hasup/fsm/registry"
)

func Example() {
	reg := registry.New()
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	op := uint64(0)
	// The cluster ensemble gives each command its op and time; here, by hand.
	apply := func(cmd []byte) (registry.Result, error) {
		op++
		return registry.DecodeResult(reg.Apply(fsm.NewContext(op, start.Add(time.Duration(op)*time.Second).UnixNano(), 0, 0), cmd))
	}

	// Each node's supervisor registers itself.
	for _, id := range []hasup.NodeID{"n1", "n2", "n3", "n4"} {
		apply(registry.UpsertNodeCmd(registry.Node{ID: id, Addr: string(id) + ":7947", State: hasup.MemberAlive, Tags: map[string]string{"zone": "a"}}))
	}
	// The cluster primary creates an ensemble on members placement chose.
	spec := registry.Spec{Name: "orders", Type: "kv", Replicas: 3}
	apply(registry.CreateEnsembleCmd(spec, []hasup.NodeID{"n1", "n2", "n3"}))

	// n3 fails: the primary records it and decides to replace it with n4.
	apply(registry.SetNodeStateCmd("n3", hasup.MemberFailed))
	res, _ := apply(registry.BeginReconfigCmd("orders", 0, []hasup.NodeID{"n1", "n2", "n4"}))
	fmt.Println("reconfiguration begun at version", res.Version)
	_, err := apply(registry.RemoveNodeCmd("n3"))
	fmt.Println("remove n3 while it is a member:", errors.Is(err, registry.ErrInUse))

	// The ensemble commits epoch 1; whoever sees it running reports it.
	apply(registry.FinishReconfigCmd("orders", 1, []hasup.NodeID{"n1", "n2", "n4"}))
	_, err = apply(registry.FinishReconfigCmd("orders", 1, []hasup.NodeID{"n1", "n2", "n4"}))
	fmt.Println("reported twice:", errors.Is(err, registry.ErrStale))
	apply(registry.RemoveNodeCmd("n3"))

	answer, _ := reg.Query(registry.StateQuery())
	s, _ := registry.DecodeState(answer)
	e, _ := s.Ensemble("orders")
	fmt.Println("version", s.Version, "epoch", e.Epoch, "members", e.Members, "reconfiguring", e.Target != nil)
	for _, n := range s.Nodes {
		fmt.Println(n.ID, n.State, "load", s.Load()[n.ID])
	}
	// Output:
	// reconfiguration begun at version 7
	// remove n3 while it is a member: true
	// reported twice: true
	// version 11 epoch 1 members [n1 n2 n4] reconfiguring false
	// n1 alive load {1 1}
	// n2 alive load {1 0}
	// n4 alive load {1 0}
}
