package registry

import (
	"cmp"
	"encoding/binary"
	"maps"
	"slices"
	"strings"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/fsm/internal/codec"
)

// State is the whole registry, as StateQuery answers it and DecodeState
// returns it.
type State struct {
	// Version is the op number of the last command that changed anything,
	// 0 for a registry nothing has changed. It only grows.
	Version uint64
	// Nodes are the registered nodes, sorted by ID.
	Nodes []Node
	// Ensembles are the ensembles, sorted by name.
	Ensembles []Ensemble
}

// Node is one registered node.
type Node struct {
	// ID is the node's Serf name: 1 to MaxNodeIDBytes bytes.
	ID hasup.NodeID
	// Addr is the host:port of the node's consensus transport: 1 to
	// MaxAddrBytes bytes, stored as given.
	Addr string
	// Tags are the operator's labels, which placement constraints read:
	// at most MaxTags, keys non-empty. Nil when there are none.
	Tags map[string]string
	// State is what failure detection last said of the node: a valid
	// hasup.MemberState (alive, suspect, failed or left).
	State hasup.MemberState
	// Since is the command time, in Unix nanoseconds, of the command that
	// registered the node or last changed State. The registry sets it;
	// UpsertNodeCmd ignores it.
	Since int64
}

// Spec is what an ensemble is: everything about it that its creator
// chooses.
type Spec struct {
	// Name names the ensemble: an RFC 1123 DNS label
	// ([a-z0-9]([a-z0-9-]*[a-z0-9])?, at most MaxNameBytes).
	Name hasup.EnsembleName
	// Type is the FSM type the ensemble hosts: "kv", "lock" or any
	// registered type name; 1 to MaxTypeBytes bytes.
	Type string
	// Replicas is the ensemble's intended size: 1, 3 or 5.
	Replicas int
	// Constraints are placement constraints ("zone=a"), stored as given
	// for package placement to parse: at most MaxConstraints, each 1 to
	// MaxConstraintBytes bytes. Nil when there are none.
	Constraints []string
	// NoQuiesce keeps the ensemble's primary heartbeating while idle.
	NoQuiesce bool
}

// Ensemble is one named ensemble as the registry knows it.
type Ensemble struct {
	// Spec is the ensemble's spec as created.
	Spec Spec
	// Epoch is the configuration the registry last learned the ensemble
	// runs; 0 at creation.
	Epoch uint64
	// Members are the nodes of Epoch, in order: Members[v mod n] is the
	// primary of view v, so Members[0] leads view 0. 1, 3 or 5 distinct
	// registered nodes; after a reconfiguration their number may differ
	// from Spec.Replicas.
	Members []hasup.NodeID
	// Target is the member list a reconfiguration in progress moves to,
	// nil when none is: 1, 3 or 5 distinct registered nodes, not equal to
	// Members.
	Target []hasup.NodeID
	// Created is the command time, in Unix nanoseconds, of the
	// CreateEnsemble.
	Created int64
}

// NodeLoad is how much of the cluster's work a node carries, as placement
// balances it.
type NodeLoad = struct {
	// Replicas is how many ensembles have the node among their Members.
	Replicas int
	// Primaries is how many ensembles have the node as Members[0].
	Primaries int
}

// Ensemble returns the ensemble named name, if s holds it. s must be sorted
// as DecodeState returns it.
func (s State) Ensemble(name hasup.EnsembleName) (Ensemble, bool) {
	if i, ok := s.ensembleIndex(name); ok {
		return s.Ensembles[i], true
	}
	return Ensemble{}, false
}

// Node returns the node with ID id, if s holds it. s must be sorted as
// DecodeState returns it.
func (s State) Node(id hasup.NodeID) (Node, bool) {
	if i, ok := s.nodeIndex(id); ok {
		return s.Nodes[i], true
	}
	return Node{}, false
}

// Load returns every registered node's load, zero for a node that hosts
// nothing. Only Members count: a reconfiguration's Target is not load until
// FinishReconfig makes it the member list.
func (s State) Load() map[hasup.NodeID]NodeLoad {
	load := make(map[hasup.NodeID]NodeLoad, len(s.Nodes))
	for _, n := range s.Nodes {
		load[n.ID] = NodeLoad{}
	}
	for _, e := range s.Ensembles {
		for i, id := range e.Members {
			l := load[id]
			l.Replicas++
			if i == 0 {
				l.Primaries++
			}
			load[id] = l
		}
	}
	return load
}

// nodeIndex returns where the node id is, or would be inserted, in
// s.Nodes, and whether it is there.
func (s State) nodeIndex(id hasup.NodeID) (int, bool) {
	return slices.BinarySearchFunc(s.Nodes, id, func(n Node, id hasup.NodeID) int { return cmp.Compare(n.ID, id) })
}

// ensembleIndex returns where the ensemble name is, or would be inserted,
// in s.Ensembles, and whether it is there.
func (s State) ensembleIndex(name hasup.EnsembleName) (int, bool) {
	return slices.BinarySearchFunc(s.Ensembles, name, func(e Ensemble, name hasup.EnsembleName) int {
		return cmp.Compare(e.Spec.Name, name)
	})
}

// The encoding of the state, the body of both a StateQuery answer and the
// snapshot image:
//
//	state    = version:u64 nodeCount:u32 nodes ensembleCount:u32 ensembles
//	node     = id addr state:u8 since:i64 tags
//	tags     = count:u32 count*(key value)        keys strictly ascending
//	ensemble = spec epoch:u64 created:i64 members:ids target:ids
//	spec     = name type replicas:u8 noQuiesce:u8 count:u32 count*(constraint)
//	ids      = count:u32 count*(id)               a target of count 0 is nil
//
// Nodes are in strictly ascending ID order and ensembles in strictly
// ascending name order, so equal states give equal bytes.
const (
	// minNodeBytes, minEnsembleBytes, minTagBytes and minFieldBytes are the
	// smallest encodings of a node, an ensemble, a tag and a byte string: a
	// count larger than the bytes left divided by its item's is a lie, and
	// must not size an allocation.
	minNodeBytes     = 4 + 4 + 1 + 8 + 4
	minEnsembleBytes = minSpecBytes + 8 + 8 + 4 + 4
	minSpecBytes     = 4 + 4 + 1 + 1 + 4
	minTagBytes      = 4 + 4
	minFieldBytes    = 4
	// maxMembers is the longest member or target list.
	maxMembers = 5
)

// stateBytes is the encoded size of s.
func stateBytes(s State) int {
	n := 8 + 4 + 4
	for _, node := range s.Nodes {
		n += nodeBytes(node)
	}
	for _, e := range s.Ensembles {
		n += ensembleBytes(e)
	}
	return n
}

// appendState appends the encoding of s.
func appendState(b []byte, s State) []byte {
	b = binary.BigEndian.AppendUint64(b, s.Version)
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.Nodes)))
	for _, n := range s.Nodes {
		b = appendNode(b, n)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.Ensembles)))
	for _, e := range s.Ensembles {
		b = appendEnsemble(b, e)
	}
	return b
}

// readState reads a state and checks every invariant a Registry keeps.
func readState(d *codec.Decoder) State {
	s := State{Version: d.U64("version")}
	var prevID hasup.NodeID
	s.Nodes = readList(d, "node", MaxNodes, minNodeBytes, func(i int) Node {
		n := readNode(d)
		if d.Err() == nil && i > 0 && n.ID <= prevID {
			d.Failf("node %d: ID %s does not sort after %s", i, codec.Quote(n.ID), codec.Quote(prevID))
		}
		prevID = n.ID
		return n
	})
	var prevName hasup.EnsembleName
	s.Ensembles = readList(d, "ensemble", MaxEnsembles, minEnsembleBytes, func(i int) Ensemble {
		e := readEnsemble(d)
		switch {
		case d.Err() != nil:
		case i > 0 && e.Spec.Name <= prevName:
			d.Failf("ensemble %d: name %s does not sort after %s", i, codec.Quote(e.Spec.Name), codec.Quote(prevName))
		default:
			if p := unknownProblem(s, e); p != "" {
				d.Failf("ensemble %s: %s", codec.Quote(e.Spec.Name), p)
			}
		}
		prevName = e.Spec.Name
		return e
	})
	return s
}

// unknownProblem says which member or target of e s does not hold.
func unknownProblem(s State, e Ensemble) string {
	for _, id := range slices.Concat(e.Members, e.Target) {
		if _, ok := s.nodeIndex(id); !ok {
			return "node " + codec.Quote(id) + " is not registered"
		}
	}
	return ""
}

// nodeBytes is the encoded size of n.
func nodeBytes(n Node) int {
	return codec.FieldBytes(n.ID) + codec.FieldBytes(n.Addr) + 1 + 8 + tagsBytes(n.Tags)
}

// appendNode appends the encoding of n.
func appendNode(b []byte, n Node) []byte {
	b = codec.AppendField(codec.AppendField(b, n.ID), n.Addr)
	b = append(b, byte(n.State))
	b = binary.BigEndian.AppendUint64(b, uint64(n.Since))
	return appendTags(b, n.Tags)
}

// readNode reads a node and checks it.
func readNode(d *codec.Decoder) Node {
	n := Node{ID: hasup.NodeID(d.Field("id")), Addr: string(d.Field("addr"))}
	n.State = hasup.MemberState(d.U8("state"))
	n.Since = int64(d.U64("since"))
	n.Tags = readTags(d)
	if p := nodeProblem(n); d.Err() == nil && p != "" {
		d.Failf("%s", p)
	}
	return n
}

// tagsBytes is the encoded size of tags.
func tagsBytes(tags map[string]string) int {
	n := 4
	for k, v := range tags {
		n += codec.FieldBytes(k) + codec.FieldBytes(v)
	}
	return n
}

// appendTags appends tags in ascending key order.
func appendTags(b []byte, tags map[string]string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(tags)))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		b = codec.AppendField(codec.AppendField(b, k), tags[k])
	}
	return b
}

// readTags reads tags, whose keys must ascend strictly: every tag set has
// exactly one encoding. It returns nil for none.
func readTags(d *codec.Decoder) map[string]string {
	count := uint64(d.U32("tag count"))
	if d.Err() == nil && count > MaxTags {
		d.Failf("%d tags, limit %d", count, MaxTags)
	}
	d.CheckCount("tag count", count, minTagBytes)
	if d.Err() != nil || count == 0 {
		return nil
	}
	tags := make(map[string]string, count)
	prev := ""
	for i := range count {
		k, v := string(d.Field("tag key")), string(d.Field("tag value"))
		if d.Err() == nil && i > 0 && k <= prev {
			d.Failf("tag key %s does not sort after %s", codec.Quote(k), codec.Quote(prev))
		}
		if d.Err() != nil {
			return nil
		}
		tags[k], prev = v, k
	}
	return tags
}

// ensembleBytes is the encoded size of e.
func ensembleBytes(e Ensemble) int {
	return specBytes(e.Spec) + 8 + 8 + idsBytes(e.Members) + idsBytes(e.Target)
}

// appendEnsemble appends the encoding of e.
func appendEnsemble(b []byte, e Ensemble) []byte {
	b = appendSpec(b, e.Spec)
	b = binary.BigEndian.AppendUint64(b, e.Epoch)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Created))
	return appendIDs(appendIDs(b, e.Members), e.Target)
}

// readEnsemble reads an ensemble and checks it on its own; readState checks
// its nodes against the state's.
func readEnsemble(d *codec.Decoder) Ensemble {
	e := Ensemble{Spec: readSpec(d)}
	e.Epoch, e.Created = d.U64("epoch"), int64(d.U64("created"))
	e.Members, e.Target = readIDs(d, "member"), readIDs(d, "target member")
	if d.Err() != nil {
		return Ensemble{}
	}
	p := specProblem(e.Spec)
	if p == "" {
		p = membersProblem("members", e.Members)
	}
	if p == "" && e.Target != nil {
		p = targetProblem(e.Members, e.Target)
	}
	if p != "" {
		d.Failf("ensemble %s: %s", codec.Quote(e.Spec.Name), p)
	}
	return e
}

// specBytes is the encoded size of s.
func specBytes(s Spec) int {
	n := codec.FieldBytes(s.Name) + codec.FieldBytes(s.Type) + 1 + 1 + 4
	for _, c := range s.Constraints {
		n += codec.FieldBytes(c)
	}
	return n
}

// appendSpec appends the encoding of s. A replica count outside 0 to 255
// is written as the nearest of them, which is as invalid as it was.
func appendSpec(b []byte, s Spec) []byte {
	b = codec.AppendField(codec.AppendField(b, s.Name), s.Type)
	b = append(b, byte(min(max(s.Replicas, 0), 255)), boolByte(s.NoQuiesce))
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.Constraints)))
	for _, c := range s.Constraints {
		b = codec.AppendField(b, c)
	}
	return b
}

// readSpec reads a spec without judging it.
func readSpec(d *codec.Decoder) Spec {
	s := Spec{Name: hasup.EnsembleName(d.Field("name")), Type: string(d.Field("type"))}
	s.Replicas = int(d.U8("replicas"))
	s.NoQuiesce = readBool(d, "no-quiesce flag")
	s.Constraints = readList(d, "constraint", MaxConstraints, minFieldBytes, func(int) string {
		return string(d.Field("constraint"))
	})
	return s
}

// idsBytes is the encoded size of ids.
func idsBytes(ids []hasup.NodeID) int {
	n := 4
	for _, id := range ids {
		n += codec.FieldBytes(id)
	}
	return n
}

// appendIDs appends a list of node IDs.
func appendIDs(b []byte, ids []hasup.NodeID) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(ids)))
	for _, id := range ids {
		b = codec.AppendField(b, id)
	}
	return b
}

// readIDs reads a list of at most maxMembers node IDs without judging it;
// nil for none.
func readIDs(d *codec.Decoder, what string) []hasup.NodeID {
	return readList(d, what, maxMembers, minFieldBytes, func(int) hasup.NodeID {
		return hasup.NodeID(d.Field(what + " ID"))
	})
}

// readList reads a u32 count, at most limit, of items of at least
// minItemBytes each, and then the items with read. It checks the count
// against the limit and the bytes left before the count sizes anything,
// and returns nil for none or after a problem.
func readList[T any](d *codec.Decoder, what string, limit uint64, minItemBytes int, read func(i int) T) []T {
	count := uint64(d.U32(what + " count"))
	if d.Err() == nil && count > limit {
		d.Failf("%d %ss, limit %d", count, what, limit)
	}
	d.CheckCount(what+" count", count, minItemBytes)
	if d.Err() != nil || count == 0 {
		return nil
	}
	out := make([]T, 0, count)
	for i := range int(count) {
		v := read(i)
		if d.Err() != nil {
			return nil
		}
		out = append(out, v)
	}
	return out
}

// readBool reads a flag byte, which must be 0 or 1.
func readBool(d *codec.Decoder, what string) bool {
	v := d.U8(what)
	if d.Err() == nil && v > 1 {
		d.Failf("%s is %d", what, v)
	}
	return v == 1
}

// boolByte encodes a flag as one byte.
func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// formatIDs renders a member list for a message: [n1 n2 n3].
func formatIDs(ids []hasup.NodeID) string {
	var sb strings.Builder
	sb.WriteByte('[')
	for i, id := range ids {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(codec.Quote(id))
	}
	sb.WriteByte(']')
	return sb.String()
}
