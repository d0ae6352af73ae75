package registry

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/hasup/hasup"
)

// TestRestoreChecksInvariants feeds Restore images whose checksum is right
// but whose state breaks an invariant of Registry, as a buggy writer might.
// appendState writes whatever it is given, so it builds them.
func TestRestoreChecksInvariants(t *testing.T) {
	n := func(id hasup.NodeID) Node { return Node{ID: id, Addr: "a:1", State: hasup.MemberAlive} }
	ids := func(s ...hasup.NodeID) []hasup.NodeID { return s }
	e := func(name hasup.EnsembleName, members, target []hasup.NodeID) Ensemble {
		return Ensemble{Spec: Spec{Name: name, Type: "kv", Replicas: 3}, Members: members, Target: target}
	}
	nodes := []Node{n("n1"), n("n2"), n("n3"), n("n4")}
	withNodes := func(es ...Ensemble) State { return State{Nodes: nodes, Ensembles: es} }
	tests := []struct {
		name string
		s    State
		says string
	}{
		{"nodes out of order", State{Nodes: []Node{n("n2"), n("n1")}}, `node 1: ID "n1" does not sort after "n2"`},
		{"duplicate node", State{Nodes: []Node{n("n1"), n("n1")}}, "does not sort after"},
		{"empty node ID", State{Nodes: []Node{n("")}}, "node ID of 0 bytes"},
		{"empty address", State{Nodes: []Node{{ID: "n1", State: hasup.MemberAlive}}}, `node "n1": address of 0 bytes`},
		{"no member state", State{Nodes: []Node{{ID: "n1", Addr: "a:1"}}}, "state(0) is not a member state"},
		{"empty tag key", State{Nodes: []Node{{ID: "n1", Addr: "a:1", State: hasup.MemberLeft, Tags: map[string]string{"": "x"}}}}, `tag key "" of 0 bytes`},
		{"ensembles out of order", withNodes(e("b", ids("n1"), nil), e("a", ids("n1"), nil)), `ensemble 1: name "a" does not sort after "b"`},
		{"duplicate ensemble", withNodes(e("a", ids("n1"), nil), e("a", ids("n2"), nil)), "does not sort after"},
		{"bad ensemble name", withNodes(e("a_b", ids("n1"), nil)), "not a DNS label"},
		{"empty type", withNodes(Ensemble{Spec: Spec{Name: "a", Replicas: 1}, Members: ids("n1")}), "type of 0 bytes"},
		{"even replicas", withNodes(Ensemble{Spec: Spec{Name: "a", Type: "kv", Replicas: 2}, Members: ids("n1")}), "2 replicas"},
		{"empty constraint", withNodes(Ensemble{Spec: Spec{Name: "a", Type: "kv", Replicas: 1, Constraints: []string{""}}, Members: ids("n1")}), "constraint 0 of 0 bytes"},
		{"no members", withNodes(e("a", nil, nil)), "members []: 0 nodes"},
		{"two members", withNodes(e("a", ids("n1", "n2"), nil)), "2 nodes, want 1, 3 or 5"},
		{"six members", withNodes(e("a", ids("n1", "n2", "n3", "n4", "n1", "n2"), nil)), "6 members, limit 5"},
		{"duplicate member", withNodes(e("a", ids("n1", "n2", "n1"), nil)), `node "n1" appears twice`},
		{"unregistered member", withNodes(e("a", ids("n1", "n2", "n9"), nil)), `ensemble "a": node "n9" is not registered`},
		{"unregistered target", withNodes(e("a", ids("n1"), ids("n9"))), `ensemble "a": node "n9" is not registered`},
		{"target of two", withNodes(e("a", ids("n1"), ids("n1", "n2"))), "target"},
		{"target that is the members", withNodes(e("a", ids("n1", "n2", "n3"), ids("n1", "n2", "n3"))), "is the member list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New().Restore(bytes.NewReader(wrapBody(appendState(nil, tt.s))))
			if !errors.Is(err, ErrBadSnapshot) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("Restore = %v, want ErrBadSnapshot saying %q", err, tt.says)
			}
		})
	}
	sound := withNodes(e("a", ids("n1", "n2", "n3"), ids("n2", "n3", "n4")), e("b", ids("n4"), nil))
	if err := New().Restore(bytes.NewReader(wrapBody(appendState(nil, sound)))); err != nil {
		t.Fatalf("Restore of a sound hand-made image: %v", err)
	}
}

// TestRestoreChecksStructure feeds Restore bodies that no encoder writes.
func TestRestoreChecksStructure(t *testing.T) {
	one := appendState(nil, State{Nodes: []Node{{ID: "n1", Addr: "a:1", State: hasup.MemberAlive, Tags: map[string]string{"a": "", "b": ""}}},
		Ensembles: []Ensemble{{Spec: Spec{Name: "e", Type: "kv", Replicas: 1}, Members: []hasup.NodeID{"n1"}}}})
	patch := func(at int, b ...byte) []byte { p := bytes.Clone(one); copy(p[at:], b); return p }
	tagA := bytes.Index(one, []byte{0, 0, 0, 1, 'a'})
	flag := bytes.Index(one, []byte("kv")) + 3
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	tests := []struct {
		name string
		body []byte
		says string
	}{
		{"tags out of order", patch(tagA+4, 'b', 0, 0, 0, 0, 0, 0, 0, 1, 'a'), `tag key "a" does not sort after "b"`},
		{"no-quiesce flag of 2", patch(flag, 2), "no-quiesce flag is 2"},
		{"too many nodes", append(u32(0), append(u32(0), u32(MaxNodes+1)...)...), "1025 nodes, limit 1024"},
		{"too many tags", patch(bytes.Index(one, []byte{0, 0, 0, 2, 0, 0, 0, 1, 'a'}), 0, 0, 0, MaxTags+1), "65 tags, limit 64"},
		{"node count larger than the body", append(make([]byte, 8), u32(5)...), "node count 5 exceeds what 0 bytes can hold"},
		{"count smaller than the body", append(bytes.Clone(one[:8]), append(u32(0), append(u32(0), 0)...)...), "1 trailing bytes"},
		{"cut inside an ensemble", one[:len(one)-3], "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New().Restore(bytes.NewReader(wrapBody(tt.body)))
			if !errors.Is(err, ErrBadSnapshot) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("Restore = %v, want ErrBadSnapshot saying %q", err, tt.says)
			}
		})
	}
	if err := New().Restore(bytes.NewReader(wrapBody(one))); err != nil {
		t.Fatalf("Restore of the unpatched body: %v", err)
	}
}
