package registry_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/fsm"
	"github.com/hasup/hasup/fsm/fsmtest"
	"github.com/hasup/hasup/fsm/registry"
)

func TestConformance(t *testing.T) {
	fsmtest.Run(t, func() fsm.FSM { return registry.New() }, workload)
}

// base is the time the scenarios start at.
func base() time.Time { return time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC) }

// at is the context of a scenario's step i: op i+1, i seconds after base.
func at(i int) fsm.Context {
	return fsm.NewContext(uint64(i+1), base().Add(time.Duration(i)*time.Second).UnixNano(), 0, 0)
}

// sec returns the Unix nanoseconds of step i's time.
func sec(i int) int64 { return base().Add(time.Duration(i) * time.Second).UnixNano() }

func node(id string, tags ...string) registry.Node {
	n := registry.Node{ID: hasup.NodeID(id), Addr: id + ":7947", State: hasup.MemberAlive}
	for i := 0; i+1 < len(tags); i += 2 {
		if n.Tags == nil {
			n.Tags = map[string]string{}
		}
		n.Tags[tags[i]] = tags[i+1]
	}
	return n
}

func withState(n registry.Node, s hasup.MemberState) registry.Node { n.State = s; return n }

func ids(s ...string) []hasup.NodeID {
	out := make([]hasup.NodeID, len(s))
	for i, id := range s {
		out[i] = hasup.NodeID(id)
	}
	return out
}

func spec(name string, replicas int) registry.Spec {
	return registry.Spec{Name: hasup.EnsembleName(name), Type: "kv", Replicas: replicas}
}

// step is one command of a scenario: what it must return (its code, words
// its message must hold, and whether it changed the Version).
type step struct {
	cmd     []byte
	want    registry.Code
	says    string
	changes bool
}

// ok is a step that succeeds and changes the state; same one that
// succeeds and changes nothing; bad one that fails with code c saying says.
func ok(cmd []byte) step                                { return step{cmd: cmd, changes: true} }
func same(cmd []byte) step                              { return step{cmd: cmd} }
func bad(cmd []byte, c registry.Code, says string) step { return step{cmd: cmd, want: c, says: says} }

// cluster is the common start of the scenarios: nodes n1 to n5 alive, n5
// tagged zone=b, and ensemble "e" on n1, n2, n3 (steps 0 to 5).
func cluster() []step {
	return []step{
		ok(registry.UpsertNodeCmd(node("n1"))),
		ok(registry.UpsertNodeCmd(node("n2"))),
		ok(registry.UpsertNodeCmd(node("n3"))),
		ok(registry.UpsertNodeCmd(node("n4"))),
		ok(registry.UpsertNodeCmd(node("n5", "zone", "b"))),
		ok(registry.CreateEnsembleCmd(spec("e", 3), ids("n1", "n2", "n3"))),
	}
}

// scenario is a table test: steps after cluster() (or instead of it, if
// bare), then a check of the final state.
type scenario struct {
	name  string
	bare  bool
	steps []step
	check func(t *testing.T, s registry.State)
}

func runScenarios(t *testing.T, tests []scenario) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			steps := tt.steps
			if !tt.bare {
				steps = append(cluster(), steps...)
			}
			reg := registry.New()
			var version uint64
			for i, st := range steps {
				res, err := registry.DecodeResult(reg.Apply(at(i), st.cmd))
				if errors.Is(err, registry.ErrBadResult) {
					t.Fatalf("step %d: %v", i, err)
				}
				if res.Err != st.want || !strings.Contains(res.Msg, st.says) {
					t.Fatalf("step %d: result %+v, want code %q saying %q", i, res, st.want, st.says)
				}
				if st.changes {
					version = uint64(i + 1)
				}
				if res.Version != version {
					t.Fatalf("step %d: version %d, want %d", i, res.Version, version)
				}
			}
			if tt.check != nil {
				tt.check(t, state(t, reg))
			}
		})
	}
}

func TestNodeCommands(t *testing.T) {
	const stepsBefore = 6 // len(cluster())
	tests := []scenario{
		{"upsert registers a node at the command time", false, []step{
			ok(registry.UpsertNodeCmd(node("n6", "zone", "a", "ssd", ""))),
		}, func(t *testing.T, s registry.State) {
			n, found := s.Node("n6")
			want := node("n6", "zone", "a", "ssd", "")
			want.Since = sec(stepsBefore)
			if !found || !equalNode(n, want) {
				t.Fatalf("n6 = %+v, %v; want %+v", n, found, want)
			}
		}},
		{"upsert updates address and tags and keeps Since while the state stands", false, []step{
			ok(registry.UpsertNodeCmd(registry.Node{ID: "n5", Addr: "10.0.0.5:1", State: hasup.MemberAlive, Tags: map[string]string{"zone": "c"}})),
			ok(registry.UpsertNodeCmd(registry.Node{ID: "n5", Addr: "10.0.0.5:1", State: hasup.MemberAlive})),
		}, func(t *testing.T, s registry.State) {
			n, _ := s.Node("n5")
			if n.Addr != "10.0.0.5:1" || n.Tags != nil || n.Since != sec(4) {
				t.Fatalf("n5 = %+v, want the new address, no tags and Since of step 4", n)
			}
		}},
		{"upsert of a new state moves Since", false, []step{
			ok(registry.UpsertNodeCmd(withState(node("n4"), hasup.MemberLeft))),
		}, func(t *testing.T, s registry.State) {
			if n, _ := s.Node("n4"); n.State != hasup.MemberLeft || n.Since != sec(stepsBefore) {
				t.Fatalf("n4 = %+v, want left since step %d", n, stepsBefore)
			}
		}},
		{"upsert of the record as it stands changes nothing", false, []step{
			same(registry.UpsertNodeCmd(node("n5", "zone", "b"))),
			same(registry.UpsertNodeCmd(registry.Node{ID: "n1", Addr: "n1:7947", State: hasup.MemberAlive, Tags: map[string]string{}})),
		}, nil},
		{"upsert refuses what is not a node", false, []step{
			bad(registry.UpsertNodeCmd(registry.Node{Addr: "a:1", State: hasup.MemberAlive}), registry.CodeInvalid, "node ID of 0 bytes"),
			bad(registry.UpsertNodeCmd(node(strings.Repeat("n", registry.MaxNodeIDBytes+1))), registry.CodeInvalid, "node ID of 129 bytes"),
			bad(registry.UpsertNodeCmd(registry.Node{ID: "n6", State: hasup.MemberAlive}), registry.CodeInvalid, "address of 0 bytes"),
			bad(registry.UpsertNodeCmd(registry.Node{ID: "n6", Addr: strings.Repeat("a", registry.MaxAddrBytes+1), State: hasup.MemberAlive}), registry.CodeInvalid, "address of 261 bytes"),
			bad(registry.UpsertNodeCmd(withState(node("n6"), 0)), registry.CodeInvalid, "state(0) is not a member state"),
			bad(registry.UpsertNodeCmd(withState(node("n6"), hasup.MemberLeft+1)), registry.CodeInvalid, "state(5) is not a member state"),
			bad(registry.UpsertNodeCmd(node("n6", "", "x")), registry.CodeInvalid, `tag key "" of 0 bytes`),
			bad(registry.UpsertNodeCmd(node("n6", strings.Repeat("k", registry.MaxTagKeyBytes+1), "x")), registry.CodeInvalid, "of 129 bytes"),
			bad(registry.UpsertNodeCmd(node("n6", "zone", strings.Repeat("v", registry.MaxTagValueBytes+1))), registry.CodeInvalid, `tag "zone": value of 257 bytes`),
			bad(registry.UpsertNodeCmd(node("n6", manyTags(registry.MaxTags+1)...)), registry.CodeInvalid, "65 tags, limit 64"),
			same(registry.UpsertNodeCmd(node("n5", "zone", "b"))),
		}, func(t *testing.T, s registry.State) {
			if len(s.Nodes) != 5 {
				t.Fatalf("%d nodes after refused upserts, want 5", len(s.Nodes))
			}
		}},
		{"set-node-state records a new state and its time", false, []step{
			ok(registry.SetNodeStateCmd("n2", hasup.MemberSuspect)),
			same(registry.SetNodeStateCmd("n2", hasup.MemberSuspect)),
			ok(registry.SetNodeStateCmd("n2", hasup.MemberFailed)),
		}, func(t *testing.T, s registry.State) {
			if n, _ := s.Node("n2"); n.State != hasup.MemberFailed || n.Since != sec(stepsBefore+2) || n.Addr != "n2:7947" {
				t.Fatalf("n2 = %+v, want failed since step %d, address kept", n, stepsBefore+2)
			}
		}},
		{"set-node-state of an unknown node or a bad state fails", false, []step{
			bad(registry.SetNodeStateCmd("n9", hasup.MemberFailed), registry.CodeNotFound, `node "n9"`),
			bad(registry.SetNodeStateCmd("n1", 0), registry.CodeInvalid, "set-node-state: state(0) is not a member state"),
			bad(registry.SetNodeStateCmd("n1", 9), registry.CodeInvalid, "state(9)"),
			bad(registry.SetNodeStateCmd("", hasup.MemberAlive), registry.CodeInvalid, "node ID of 0 bytes"),
		}, nil},
		{"remove-node forgets a node no ensemble names", false, []step{
			ok(registry.RemoveNodeCmd("n4")),
			bad(registry.RemoveNodeCmd("n4"), registry.CodeNotFound, `node "n4"`),
			ok(registry.UpsertNodeCmd(node("n4"))),
		}, func(t *testing.T, s registry.State) {
			if n, _ := s.Node("n4"); n.Since != sec(stepsBefore+2) {
				t.Fatalf("n4 registered again = %+v, want Since of its new registration", n)
			}
		}},
		{"remove-node refuses members and targets", false, []step{
			bad(registry.RemoveNodeCmd("n2"), registry.CodeInUse, `node "n2" is a member of ensemble "e"`),
			ok(registry.BeginReconfigCmd("e", 0, ids("n1", "n2", "n4"))),
			bad(registry.RemoveNodeCmd("n4"), registry.CodeInUse, `node "n4" is a reconfiguration target of ensemble "e"`),
			ok(registry.AbortReconfigCmd("e")),
			ok(registry.RemoveNodeCmd("n4")),
			ok(registry.DeleteEnsembleCmd("e")),
			ok(registry.RemoveNodeCmd("n2")),
		}, func(t *testing.T, s registry.State) {
			if len(s.Nodes) != 3 || len(s.Ensembles) != 0 {
				t.Fatalf("state %+v, want 3 nodes and no ensemble", s)
			}
		}},
	}
	runScenarios(t, tests)
}

func TestEnsembleCommands(t *testing.T) {
	long := strings.Repeat("a", registry.MaxNameBytes)
	tests := []scenario{
		{"create records the spec at epoch 0 and the command time", false, []step{
			ok(registry.CreateEnsembleCmd(registry.Spec{Name: "locks", Type: "lock", Replicas: 5, Constraints: []string{"zone=b", "!ssd"}, NoQuiesce: true},
				ids("n5", "n4", "n3", "n2", "n1"))),
			ok(registry.CreateEnsembleCmd(registry.Spec{Name: hasup.EnsembleName(long), Type: "x", Replicas: 1}, ids("n2"))),
			ok(registry.CreateEnsembleCmd(spec("a-0", 1), ids("n2"))),
		}, func(t *testing.T, s registry.State) {
			want := registry.Ensemble{
				Spec:    registry.Spec{Name: "locks", Type: "lock", Replicas: 5, Constraints: []string{"zone=b", "!ssd"}, NoQuiesce: true},
				Members: ids("n5", "n4", "n3", "n2", "n1"), Created: sec(6),
			}
			if e, found := s.Ensemble("locks"); !found || !equalEnsemble(e, want) {
				t.Fatalf("locks = %+v, want %+v", e, want)
			}
			if e, found := s.Ensemble("e"); !found || !equalEnsemble(e, registry.Ensemble{Spec: spec("e", 3), Members: ids("n1", "n2", "n3"), Created: sec(5)}) {
				t.Fatalf("e = %+v", e)
			}
			var names []string
			for _, e := range s.Ensembles {
				names = append(names, string(e.Spec.Name))
			}
			if got := strings.Join(names, " "); got != "a-0 "+long+" e locks" {
				t.Fatalf("ensembles in order %s", got)
			}
		}},
		{"create of a taken name fails", false, []step{
			bad(registry.CreateEnsembleCmd(spec("e", 1), ids("n4")), registry.CodeExists, `ensemble "e"`),
		}, nil},
		{"create refuses bad names", false, []step{
			bad(registry.CreateEnsembleCmd(spec("", 1), ids("n1")), registry.CodeInvalid, `name "" of 0 bytes`),
			bad(registry.CreateEnsembleCmd(spec(long+"a", 1), ids("n1")), registry.CodeInvalid, "of 64 bytes, want 1 to 63"),
			bad(registry.CreateEnsembleCmd(spec("Orders", 1), ids("n1")), registry.CodeInvalid, `name "Orders" is not a DNS label`),
			bad(registry.CreateEnsembleCmd(spec("-a", 1), ids("n1")), registry.CodeInvalid, "not a DNS label"),
			bad(registry.CreateEnsembleCmd(spec("a-", 1), ids("n1")), registry.CodeInvalid, "not a DNS label"),
			bad(registry.CreateEnsembleCmd(spec("-", 1), ids("n1")), registry.CodeInvalid, "not a DNS label"),
			bad(registry.CreateEnsembleCmd(spec("a_b", 1), ids("n1")), registry.CodeInvalid, "not a DNS label"),
			bad(registry.CreateEnsembleCmd(spec("a.b", 1), ids("n1")), registry.CodeInvalid, "not a DNS label"),
		}, nil},
		{"create refuses bad specs", false, []step{
			bad(registry.CreateEnsembleCmd(registry.Spec{Name: "x", Replicas: 1}, ids("n1")), registry.CodeInvalid, "type of 0 bytes"),
			bad(registry.CreateEnsembleCmd(registry.Spec{Name: "x", Type: strings.Repeat("t", registry.MaxTypeBytes+1), Replicas: 1}, ids("n1")), registry.CodeInvalid, "type of 129 bytes"),
			bad(registry.CreateEnsembleCmd(spec("x", 2), ids("n1", "n2")), registry.CodeInvalid, "2 replicas, want 1, 3 or 5"),
			bad(registry.CreateEnsembleCmd(spec("x", 0), nil), registry.CodeInvalid, "0 replicas"),
			bad(registry.CreateEnsembleCmd(spec("x", -1), nil), registry.CodeInvalid, "0 replicas"),
			bad(registry.CreateEnsembleCmd(spec("x", 259), ids("n1", "n2", "n3")), registry.CodeInvalid, "255 replicas"),
			bad(registry.CreateEnsembleCmd(registry.Spec{Name: "x", Type: "kv", Replicas: 1, Constraints: []string{""}}, ids("n1")), registry.CodeInvalid, "constraint 0 of 0 bytes"),
			bad(registry.CreateEnsembleCmd(registry.Spec{Name: "x", Type: "kv", Replicas: 1, Constraints: []string{"a", strings.Repeat("c", registry.MaxConstraintBytes+1)}}, ids("n1")), registry.CodeInvalid, "constraint 1 of 257 bytes"),
			bad(registry.CreateEnsembleCmd(registry.Spec{Name: "x", Type: "kv", Replicas: 1, Constraints: make([]string, registry.MaxConstraints+1)}, ids("n1")), registry.CodeInvalid, "17 constraints, limit 16"),
		}, nil},
		{"create refuses bad member lists", false, []step{
			bad(registry.CreateEnsembleCmd(spec("x", 3), ids("n1", "n2")), registry.CodeInvalid, `ensemble "x" of 3 replicas: 2 members ["n1" "n2"]`),
			bad(registry.CreateEnsembleCmd(spec("x", 3), ids("n1", "n2", "n1")), registry.CodeInvalid, `node "n1" appears twice`),
			bad(registry.CreateEnsembleCmd(spec("x", 3), ids("n1", "", "n2")), registry.CodeInvalid, "members 1: node ID of 0 bytes"),
			bad(registry.CreateEnsembleCmd(spec("x", 3), ids("n1", "n2", "n9")), registry.CodeInvalid, `node "n9" is not registered`),
			bad(registry.CreateEnsembleCmd(spec("x", 5), ids("n1", "n2", "n3", "n4", "n5", "n6")), registry.CodeInvalid, "6 members, limit 5"),
			bad(registry.CreateEnsembleCmd(spec("e", 3), ids("n1", "n2")), registry.CodeInvalid, "2 members"), // shape before Exists
		}, func(t *testing.T, s registry.State) {
			if len(s.Ensembles) != 1 {
				t.Fatalf("%d ensembles after refused creates, want 1", len(s.Ensembles))
			}
		}},
		{"delete forgets an ensemble, even while it reconfigures", false, []step{
			ok(registry.BeginReconfigCmd("e", 0, ids("n1", "n2", "n4"))),
			ok(registry.DeleteEnsembleCmd("e")),
			bad(registry.DeleteEnsembleCmd("e"), registry.CodeNotFound, `ensemble "e"`),
			bad(registry.DeleteEnsembleCmd("E"), registry.CodeInvalid, "not a DNS label"),
			ok(registry.CreateEnsembleCmd(spec("e", 1), ids("n4"))),
		}, func(t *testing.T, s registry.State) {
			if e, _ := s.Ensemble("e"); e.Epoch != 0 || e.Target != nil || e.Created != sec(10) {
				t.Fatalf("e created again = %+v, want a new ensemble", e)
			}
		}},
	}
	runScenarios(t, tests)
}

func TestReconfigCommands(t *testing.T) {
	tests := []scenario{
		{"begin records the target", false, []step{
			ok(registry.BeginReconfigCmd("e", 0, ids("n2", "n3", "n4"))),
		}, func(t *testing.T, s registry.State) {
			e, _ := s.Ensemble("e")
			if e.Epoch != 0 || !equalIDs(e.Members, ids("n1", "n2", "n3")) || !equalIDs(e.Target, ids("n2", "n3", "n4")) {
				t.Fatalf("e = %+v, want epoch 0 moving to n2 n3 n4", e)
			}
		}},
		{"begin again with the same target succeeds and changes nothing", false, []step{
			ok(registry.BeginReconfigCmd("e", 0, ids("n2", "n3", "n4"))),
			same(registry.BeginReconfigCmd("e", 0, ids("n2", "n3", "n4"))),
		}, nil},
		{"begin with another target while one is in progress is busy", false, []step{
			ok(registry.BeginReconfigCmd("e", 0, ids("n2", "n3", "n4"))),
			bad(registry.BeginReconfigCmd("e", 0, ids("n2", "n3", "n5")), registry.CodeBusy, `ensemble "e" is moving to ["n2" "n3" "n4"]`),
			bad(registry.BeginReconfigCmd("e", 0, ids("n4", "n3", "n2")), registry.CodeBusy, "moving to"),          // order matters
			bad(registry.BeginReconfigCmd("e", 1, ids("n2", "n3", "n5")), registry.CodeStale, "at epoch 0, not 1"), // stale before busy
		}, nil},
		{"begin from another epoch is stale", false, []step{
			bad(registry.BeginReconfigCmd("e", 1, ids("n2", "n3", "n4")), registry.CodeStale, `ensemble "e" is at epoch 0, not 1`),
			ok(registry.FinishReconfigCmd("e", 2, ids("n1", "n2", "n3"))),
			bad(registry.BeginReconfigCmd("e", 1, ids("n2", "n3", "n4")), registry.CodeStale, "at epoch 2, not 1"),
			ok(registry.BeginReconfigCmd("e", 2, ids("n2", "n3", "n4"))),
		}, nil},
		{"begin refuses bad targets", false, []step{
			bad(registry.BeginReconfigCmd("e", 0, ids("n1", "n2", "n3")), registry.CodeInvalid, `target ["n1" "n2" "n3"] is the member list`),
			bad(registry.BeginReconfigCmd("e", 0, ids("n1", "n2")), registry.CodeInvalid, "begin-reconfig: target"),
			bad(registry.BeginReconfigCmd("e", 0, nil), registry.CodeInvalid, "0 nodes, want 1, 3 or 5"),
			bad(registry.BeginReconfigCmd("e", 0, ids("n1", "n2", "n2")), registry.CodeInvalid, `node "n2" appears twice`),
			bad(registry.BeginReconfigCmd("e", 0, ids("n1", "n2", "n9")), registry.CodeInvalid, `node "n9" is not registered`),
			bad(registry.BeginReconfigCmd("e", 0, ids("n1", "n2", "n3", "n4", "n5", "n1")), registry.CodeInvalid, "6 target members, limit 5"),
			bad(registry.BeginReconfigCmd("x", 0, ids("n1")), registry.CodeNotFound, `ensemble "x"`),
			ok(registry.BeginReconfigCmd("e", 0, ids("n2"))),
		}, nil},
		{"finish records the new epoch and members and ends the reconfiguration", false, []step{
			ok(registry.BeginReconfigCmd("e", 0, ids("n2", "n3", "n4", "n5", "n1"))),
			ok(registry.FinishReconfigCmd("e", 1, ids("n2", "n3", "n4", "n5", "n1"))),
			bad(registry.FinishReconfigCmd("e", 1, ids("n2", "n3", "n4", "n5", "n1")), registry.CodeStale, `ensemble "e" is at epoch 1, which epoch 1 does not follow`),
			bad(registry.FinishReconfigCmd("e", 0, ids("n1")), registry.CodeStale, "which epoch 0 does not follow"),
		}, func(t *testing.T, s registry.State) {
			e, _ := s.Ensemble("e")
			if e.Epoch != 1 || !equalIDs(e.Members, ids("n2", "n3", "n4", "n5", "n1")) || e.Target != nil || e.Spec.Replicas != 3 {
				t.Fatalf("e = %+v, want epoch 1 on five members, no target, spec unchanged", e)
			}
			if l := s.Load(); l["n2"].Primaries != 1 || l["n1"].Primaries != 0 || l["n5"].Replicas != 1 {
				t.Fatalf("load %v, want n2 leading", l)
			}
		}},
		{"finish without a begin records what runs", false, []step{
			ok(registry.FinishReconfigCmd("e", 7, ids("n4"))),
			bad(registry.FinishReconfigCmd("e", 8, ids("n9")), registry.CodeInvalid, `node "n9" is not registered`),
			bad(registry.FinishReconfigCmd("e", 8, ids("n4", "n4", "n1")), registry.CodeInvalid, "appears twice"),
			bad(registry.FinishReconfigCmd("e", 8, nil), registry.CodeInvalid, "finish-reconfig: members []: 0 nodes, want 1, 3 or 5"),
			bad(registry.FinishReconfigCmd("x", 8, ids("n1")), registry.CodeNotFound, `ensemble "x"`),
		}, func(t *testing.T, s registry.State) {
			if e, _ := s.Ensemble("e"); e.Epoch != 7 || !equalIDs(e.Members, ids("n4")) {
				t.Fatalf("e = %+v, want epoch 7 on n4", e)
			}
		}},
		{"abort ends the reconfiguration, and is idempotent", false, []step{
			ok(registry.BeginReconfigCmd("e", 0, ids("n1", "n2", "n4"))),
			ok(registry.AbortReconfigCmd("e")),
			same(registry.AbortReconfigCmd("e")),
			bad(registry.AbortReconfigCmd("x"), registry.CodeNotFound, `ensemble "x"`),
			ok(registry.BeginReconfigCmd("e", 0, ids("n1", "n2", "n5"))),
		}, func(t *testing.T, s registry.State) {
			if e, _ := s.Ensemble("e"); e.Epoch != 0 || !equalIDs(e.Members, ids("n1", "n2", "n3")) || !equalIDs(e.Target, ids("n1", "n2", "n5")) {
				t.Fatalf("e = %+v, want epoch 0 moving to n1 n2 n5", e)
			}
		}},
	}
	runScenarios(t, tests)
}

func TestMalformedCommands(t *testing.T) {
	good := registry.RemoveNodeCmd("n1")
	tests := []scenario{
		{"malformed and unknown commands are invalid and change nothing", false, []step{
			bad(nil, registry.CodeInvalid, "truncated op"),
			bad([]byte{3}, registry.CodeInvalid, "truncated version"),
			bad([]byte{3, 2}, registry.CodeInvalid, "op remove-node: unsupported version 2, want 1"),
			bad([]byte{42, 1}, registry.CodeInvalid, "unknown op(42)"),
			bad([]byte{0, 1}, registry.CodeInvalid, "unknown op(0)"),
			bad(good[:len(good)-1], registry.CodeInvalid, "truncated id: need 2 bytes, have 1"),
			bad(append(bytes.Clone(good), 0), registry.CodeInvalid, "1 trailing bytes"),
			bad(registry.StateQuery(), registry.CodeInvalid, "op state is a query, not a command"),
			bad(registry.EnsembleQuery("e"), registry.CodeInvalid, "op ensemble is a query"),
			bad(registry.NodeQuery("n1"), registry.CodeInvalid, "op node is a query"),
			bad(tagsOutOfOrder(), registry.CodeInvalid, `tag key "a" does not sort after "b"`),
			bad(badFlag(), registry.CodeInvalid, "no-quiesce flag is 2"),
		}, func(t *testing.T, s registry.State) {
			if len(s.Nodes) != 5 || len(s.Ensembles) != 1 {
				t.Fatalf("malformed commands changed the state: %+v", s)
			}
		}},
	}
	runScenarios(t, tests)
}

// tagsOutOfOrder is an upsert whose tags are encoded in the wrong order,
// which no encoder writes.
func tagsOutOfOrder() []byte {
	cmd := registry.UpsertNodeCmd(node("n1", "a", "", "b", ""))
	i := bytes.Index(cmd, []byte{0, 0, 0, 1, 'a'})
	copy(cmd[i:], []byte{0, 0, 0, 1, 'b', 0, 0, 0, 0, 0, 0, 0, 1, 'a'})
	return cmd
}

// badFlag is a create whose no-quiesce flag is 2, which no encoder writes.
func badFlag() []byte {
	cmd := registry.CreateEnsembleCmd(spec("x", 1), ids("n1"))
	cmd[14] = 2 // op, version, name "x" (5 bytes), type "kv" (6), replicas
	return cmd
}

func TestLimits(t *testing.T) {
	reg := registry.New()
	for i := range registry.MaxNodes {
		mustApply(t, reg, at(i), registry.UpsertNodeCmd(node(fmt.Sprintf("n%04d", i))))
	}
	res, _ := registry.DecodeResult(reg.Apply(at(registry.MaxNodes), registry.UpsertNodeCmd(node("z"))))
	if res.Err != registry.CodeInvalid || !strings.Contains(res.Msg, "holds 1024 nodes, its limit") {
		t.Fatalf("upsert past MaxNodes: %+v", res)
	}
	mustApply(t, reg, at(registry.MaxNodes), registry.UpsertNodeCmd(withState(node("n0000"), hasup.MemberFailed)))
}

func TestVersion(t *testing.T) {
	reg := registry.New()
	// With ops as the ensemble numbers them, Version is the op of the last
	// change.
	mustApply(t, reg, fsm.NewContext(7, 0, 0, 0), registry.UpsertNodeCmd(node("n1")))
	if v := state(t, reg).Version; v != 7 {
		t.Fatalf("version %d, want 7", v)
	}
	// Ops that do not grow (the zero Context) still make it grow.
	mustApply(t, reg, fsm.Context{}, registry.UpsertNodeCmd(node("n2")))
	mustApply(t, reg, fsm.Context{}, registry.UpsertNodeCmd(node("n3")))
	if v := state(t, reg).Version; v != 9 {
		t.Fatalf("version %d, want 9", v)
	}
}

func TestQuery(t *testing.T) {
	reg := registry.New()
	for i, st := range cluster() {
		mustApply(t, reg, at(i), st.cmd)
	}
	mustApply(t, reg, at(6), registry.BeginReconfigCmd("e", 0, ids("n1", "n2", "n5")))

	s := state(t, reg)
	if s.Version != 7 || len(s.Nodes) != 5 || len(s.Ensembles) != 1 {
		t.Fatalf("state %+v, want version 7, 5 nodes, 1 ensemble", s)
	}
	answer, err := reg.Query(registry.EnsembleQuery("e"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := registry.DecodeEnsemble(answer)
	want := registry.Ensemble{Spec: spec("e", 3), Members: ids("n1", "n2", "n3"), Target: ids("n1", "n2", "n5"), Created: sec(5)}
	if err != nil || !equalEnsemble(e, want) {
		t.Fatalf("ensemble e = %+v, %v; want %+v", e, err, want)
	}
	if got, _ := s.Ensemble("e"); !equalEnsemble(got, want) {
		t.Fatalf("State.Ensemble(e) = %+v", got)
	}
	answer, err = reg.Query(registry.NodeQuery("n5"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := registry.DecodeNode(answer)
	wantNode := node("n5", "zone", "b")
	wantNode.Since = sec(4)
	if err != nil || !equalNode(n, wantNode) {
		t.Fatalf("node n5 = %+v, %v; want %+v", n, err, wantNode)
	}

	for _, q := range []struct {
		q    []byte
		want error
		says string
	}{
		{registry.EnsembleQuery("x"), registry.ErrNotFound, `registry: not found: ensemble "x"`},
		{registry.NodeQuery("n9"), registry.ErrNotFound, `registry: not found: node "n9"`},
		{registry.EnsembleQuery("X"), registry.ErrBadQuery, `registry: bad query: ensemble: name "X" is not a DNS label`},
		{registry.NodeQuery(""), registry.ErrBadQuery, "registry: bad query: node: node ID of 0 bytes"},
		{registry.RemoveNodeCmd("n1"), registry.ErrBadQuery, "registry: bad query: op remove-node is a command, not a query"},
		{append(registry.StateQuery(), 0), registry.ErrBadQuery, "registry: bad query: 1 trailing bytes"},
		{nil, registry.ErrBadQuery, "registry: bad query: truncated op"},
	} {
		answer, err := reg.Query(q.q)
		if answer != nil || !errors.Is(err, q.want) || !strings.HasPrefix(err.Error(), q.says) {
			t.Errorf("query %x: %x, %v; want %v saying %q", q.q, answer, err, q.want, q.says)
		}
	}
}

func TestStateHelpers(t *testing.T) {
	reg := registry.New()
	for i, st := range cluster() {
		mustApply(t, reg, at(i), st.cmd)
	}
	mustApply(t, reg, at(6), registry.CreateEnsembleCmd(spec("f", 3), ids("n2", "n1", "n4")))
	mustApply(t, reg, at(7), registry.CreateEnsembleCmd(spec("g", 1), ids("n2")))
	mustApply(t, reg, at(8), registry.BeginReconfigCmd("g", 0, ids("n5"))) // a target is not load
	s := state(t, reg)
	want := map[hasup.NodeID]registry.NodeLoad{
		"n1": {Replicas: 2, Primaries: 1},
		"n2": {Replicas: 3, Primaries: 2},
		"n3": {Replicas: 1},
		"n4": {Replicas: 1},
		"n5": {},
	}
	got := s.Load()
	if len(got) != len(want) {
		t.Fatalf("Load() = %v, want %v", got, want)
	}
	for id, l := range want {
		if got[id] != l {
			t.Errorf("Load()[%s] = %+v, want %+v", id, got[id], l)
		}
	}
	if _, found := s.Node("n0"); found {
		t.Error("Node(n0) found")
	}
	if _, found := s.Ensemble("a"); found {
		t.Error("Ensemble(a) found")
	}
	if n, found := s.Node("n3"); !found || n.ID != "n3" {
		t.Errorf("Node(n3) = %+v, %v", n, found)
	}
}

func TestResultError(t *testing.T) {
	tests := []struct {
		res  registry.Result
		is   error
		want string
	}{
		{registry.Result{}, nil, ""},
		{registry.Result{Err: registry.CodeNotFound, Msg: `ensemble "x"`}, registry.ErrNotFound, `registry: not found: ensemble "x"`},
		{registry.Result{Err: registry.CodeExists, Msg: "m"}, registry.ErrExists, "registry: already exists: m"},
		{registry.Result{Err: registry.CodeStale, Msg: "m"}, registry.ErrStale, "registry: stale epoch: m"},
		{registry.Result{Err: registry.CodeBusy, Msg: "m"}, registry.ErrBusy, "registry: reconfiguration in progress: m"},
		{registry.Result{Err: registry.CodeInUse, Msg: "m"}, registry.ErrInUse, "registry: node in use: m"},
		{registry.Result{Err: registry.CodeInvalid}, registry.ErrInvalid, "registry: invalid command"},
		{registry.Result{Err: "melted", Msg: "m"}, nil, `registry: unknown error code "melted": m`},
	}
	for _, tt := range tests {
		err := tt.res.Error()
		if errorString(err) != tt.want || (tt.is != nil && !errors.Is(err, tt.is)) {
			t.Errorf("%+v.Error() = %v, want %q wrapping %v", tt.res, err, tt.want, tt.is)
		}
	}
	// DecodeResult returns the same error beside the Result.
	reg := registry.New()
	res, err := registry.DecodeResult(reg.Apply(at(0), registry.RemoveNodeCmd("n1")))
	if !errors.Is(err, registry.ErrNotFound) || res.Err != registry.CodeNotFound || err.Error() != res.Error().Error() {
		t.Fatalf("DecodeResult = %+v, %v", res, err)
	}
}

func TestDecodersRejectForeignBytes(t *testing.T) {
	reg := registry.New()
	mustApply(t, reg, at(0), registry.UpsertNodeCmd(node("n1")))
	result := reg.Apply(at(1), registry.UpsertNodeCmd(node("n2")))
	stateAnswer, _ := reg.Query(registry.StateQuery())
	nodeAnswer, _ := reg.Query(registry.NodeQuery("n1"))
	foreign := func(good []byte) [][]byte {
		return [][]byte{nil, good[:1], good[:len(good)-1], append(bytes.Clone(good), 0), registry.StateQuery()}
	}
	for _, b := range foreign(result) {
		if _, err := registry.DecodeResult(b); !errors.Is(err, registry.ErrBadResult) {
			t.Errorf("DecodeResult(%x) = %v, want ErrBadResult", b, err)
		}
	}
	for _, b := range foreign(stateAnswer) {
		if _, err := registry.DecodeState(b); !errors.Is(err, registry.ErrBadResult) {
			t.Errorf("DecodeState(%x) = %v, want ErrBadResult", b, err)
		}
	}
	for _, b := range foreign(nodeAnswer) {
		if _, err := registry.DecodeNode(b); !errors.Is(err, registry.ErrBadResult) {
			t.Errorf("DecodeNode(%x) = %v, want ErrBadResult", b, err)
		}
		if _, err := registry.DecodeEnsemble(b); !errors.Is(err, registry.ErrBadResult) {
			t.Errorf("DecodeEnsemble(%x) = %v, want ErrBadResult", b, err)
		}
	}
}

func TestRestoreKeepsStateOnFailure(t *testing.T) {
	src := registry.New()
	mustApply(t, src, at(0), registry.UpsertNodeCmd(node("n1")))
	image := snapshot(t, src)
	dst := registry.New()
	mustApply(t, dst, at(0), registry.UpsertNodeCmd(node("mine")))
	for _, bad := range [][]byte{nil, image[:len(image)-1], append(bytes.Clone(image[:20]), image[21:]...)} {
		if err := dst.Restore(bytes.NewReader(bad)); !errors.Is(err, registry.ErrBadSnapshot) {
			t.Fatalf("Restore of %x = %v, want ErrBadSnapshot", bad, err)
		}
		if _, found := state(t, dst).Node("mine"); !found {
			t.Fatal("failed Restore changed the registry")
		}
	}
	r := bytes.NewReader(append(bytes.Clone(image), "next"...))
	if err := dst.Restore(r); err != nil || r.Len() != 4 {
		t.Fatalf("Restore = %v leaving %d bytes, want success leaving the 4 after the image", err, r.Len())
	}
	if !bytes.Equal(snapshot(t, dst), image) {
		t.Fatal("restored registry snapshots differently")
	}
}

// manyTags returns key-value pairs for n distinct tags.
func manyTags(n int) []string {
	var kv []string
	for i := range n {
		kv = append(kv, fmt.Sprintf("t%02d", i), "")
	}
	return kv
}

func mustApply(t *testing.T, reg *registry.Registry, ctx fsm.Context, cmd []byte) registry.Result {
	t.Helper()
	res, err := registry.DecodeResult(reg.Apply(ctx, cmd))
	if err != nil {
		t.Fatalf("apply %x: %v", cmd, err)
	}
	return res
}

func state(t *testing.T, reg *registry.Registry) registry.State {
	t.Helper()
	answer, err := reg.Query(registry.StateQuery())
	if err != nil {
		t.Fatal(err)
	}
	s, err := registry.DecodeState(answer)
	if err != nil {
		t.Fatalf("DecodeState: %v", err)
	}
	return s
}

func snapshot(t *testing.T, reg *registry.Registry) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := reg.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func equalIDs(a, b []hasup.NodeID) bool { return reflect.DeepEqual(a, b) }

func equalNode(a, b registry.Node) bool { return reflect.DeepEqual(a, b) }

func equalEnsemble(a, b registry.Ensemble) bool { return reflect.DeepEqual(a, b) }

func errorString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func equalState(a, b registry.State) bool { return reflect.DeepEqual(a, b) }
