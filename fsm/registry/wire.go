package registry

import (
	"encoding/binary"
	"fmt"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/fsm/internal/codec"
)

// The wire format of commands and queries, the same discipline as package
// kv's and the same decoder and framing (package codec): an op byte, a
// version byte that belongs to that op's layout, then the op's fields in a
// fixed order. Records (node, tags, spec, ids) are encoded as in the state
// (see state.go), except that a command's node carries no since.
//
//	upsertNode      op=1  ver=1 id addr state:u8 tags
//	setNodeState    op=2  ver=1 id state:u8
//	removeNode      op=3  ver=1 id
//	createEnsemble  op=4  ver=1 spec members:ids
//	deleteEnsemble  op=5  ver=1 name
//	beginReconfig   op=6  ver=1 name epoch:u64 target:ids
//	finishReconfig  op=7  ver=1 name epoch:u64 members:ids
//	abortReconfig   op=8  ver=1 name
//	state           op=9  ver=1
//	ensemble        op=10 ver=1 name
//	node            op=11 ver=1 id
const wireVersion = 1

// op names a request kind on the wire.
type op byte

// The request kinds; 0 is left unused so that zeroed bytes never decode.
const (
	opUpsertNode op = iota + 1
	opSetNodeState
	opRemoveNode
	opCreateEnsemble
	opDeleteEnsemble
	opBeginReconfig
	opFinishReconfig
	opAbortReconfig
	opState
	opEnsemble
	opNode
)

// String returns the op's name for error messages.
func (o op) String() string {
	switch o {
	case opUpsertNode:
		return "upsert-node"
	case opSetNodeState:
		return "set-node-state"
	case opRemoveNode:
		return "remove-node"
	case opCreateEnsemble:
		return "create-ensemble"
	case opDeleteEnsemble:
		return "delete-ensemble"
	case opBeginReconfig:
		return "begin-reconfig"
	case opFinishReconfig:
		return "finish-reconfig"
	case opAbortReconfig:
		return "abort-reconfig"
	case opState:
		return "state"
	case opEnsemble:
		return "ensemble"
	case opNode:
		return "node"
	}
	return fmt.Sprintf("op(%d)", byte(o))
}

// UpsertNodeCmd returns the command that registers n, or updates the
// address, tags and state of the node with n's ID. n.Since is not sent: the
// registry sets it to the command time when the state changes. n.State
// must be a valid hasup.MemberState.
func UpsertNodeCmd(n Node) []byte {
	b := begin(opUpsertNode, nodeBytes(n)-8)
	b = codec.AppendField(codec.AppendField(b, n.ID), n.Addr)
	b = append(b, byte(n.State))
	return appendTags(b, n.Tags)
}

// SetNodeStateCmd returns the command that records state for the
// registered node id. An unknown node is ErrNotFound.
func SetNodeStateCmd(id hasup.NodeID, state hasup.MemberState) []byte {
	b := begin(opSetNodeState, codec.FieldBytes(id)+1)
	return append(codec.AppendField(b, id), byte(state))
}

// RemoveNodeCmd returns the command that forgets node id. A node that an
// ensemble has as a member or target is ErrInUse, an unknown one
// ErrNotFound.
func RemoveNodeCmd(id hasup.NodeID) []byte {
	return codec.AppendField(begin(opRemoveNode, codec.FieldBytes(id)), id)
}

// CreateEnsembleCmd returns the command that creates the ensemble spec at
// epoch 0 with members, in order (members[0] leads view 0). The members
// must be spec.Replicas distinct registered nodes. A name in use is
// ErrExists; any other broken rule ErrInvalid.
func CreateEnsembleCmd(spec Spec, members []hasup.NodeID) []byte {
	b := begin(opCreateEnsemble, specBytes(spec)+idsBytes(members))
	return appendIDs(appendSpec(b, spec), members)
}

// DeleteEnsembleCmd returns the command that forgets ensemble name. An
// unknown name is ErrNotFound.
func DeleteEnsembleCmd(name hasup.EnsembleName) []byte {
	return codec.AppendField(begin(opDeleteEnsemble, codec.FieldBytes(name)), name)
}

// BeginReconfigCmd returns the command that records the decision to move
// ensemble name, now at epoch, to the member list target: 1, 3 or 5
// distinct registered nodes other than the current member list. Another
// epoch than the stored one is ErrStale; another reconfiguration in
// progress is ErrBusy, unless its target is this one, when the command
// succeeds and changes nothing.
func BeginReconfigCmd(name hasup.EnsembleName, epoch uint64, target []hasup.NodeID) []byte {
	return epochCmd(opBeginReconfig, name, epoch, target)
}

// FinishReconfigCmd returns the command that records that ensemble name now
// runs epoch with members, and ends any reconfiguration in progress. An
// epoch no newer than the stored one is ErrStale.
func FinishReconfigCmd(name hasup.EnsembleName, epoch uint64, members []hasup.NodeID) []byte {
	return epochCmd(opFinishReconfig, name, epoch, members)
}

// AbortReconfigCmd returns the command that ends ensemble name's
// reconfiguration in progress, if any, without changing its members.
func AbortReconfigCmd(name hasup.EnsembleName) []byte {
	return codec.AppendField(begin(opAbortReconfig, codec.FieldBytes(name)), name)
}

// StateQuery returns the query for the whole state; read the answer with
// DecodeState.
func StateQuery() []byte { return begin(opState, 0) }

// EnsembleQuery returns the query for ensemble name; read the answer with
// DecodeEnsemble. An unknown name is an error wrapping ErrNotFound.
func EnsembleQuery(name hasup.EnsembleName) []byte {
	return codec.AppendField(begin(opEnsemble, codec.FieldBytes(name)), name)
}

// NodeQuery returns the query for node id; read the answer with
// DecodeNode. An unknown node is an error wrapping ErrNotFound.
func NodeQuery(id hasup.NodeID) []byte {
	return codec.AppendField(begin(opNode, codec.FieldBytes(id)), id)
}

// epochCmd encodes a begin- or finish-reconfig command.
func epochCmd(o op, name hasup.EnsembleName, epoch uint64, ids []hasup.NodeID) []byte {
	b := begin(o, codec.FieldBytes(name)+8+idsBytes(ids))
	b = binary.BigEndian.AppendUint64(codec.AppendField(b, name), epoch)
	return appendIDs(b, ids)
}

// request is a decoded command or query. It holds fresh copies of what it
// decoded, never the caller's bytes, so the registry may keep any of it.
type request struct {
	op        op
	node      Node               // upsertNode
	id        hasup.NodeID       // setNodeState, removeNode, node
	nodeState hasup.MemberState  // setNodeState
	spec      Spec               // createEnsemble
	name      hasup.EnsembleName // the ensemble commands other than create, ensemble
	epoch     uint64             // beginReconfig, finishReconfig
	members   []hasup.NodeID     // createEnsemble, beginReconfig (the target), finishReconfig
}

// decodeRequest decodes any command or query, checking its structure and
// the rules it must follow on its own, but not against the state nor
// whether its op is allowed where it was sent.
func decodeRequest(b []byte) (request, *opError) {
	d := codec.NewDecoder(b)
	req := request{op: codec.ReadOp[op](d, wireVersion)}
	switch req.op {
	case opUpsertNode:
		req.node = Node{ID: hasup.NodeID(d.Field("id")), Addr: string(d.Field("addr"))}
		req.node.State = hasup.MemberState(d.U8("state"))
		req.node.Tags = readTags(d)
	case opSetNodeState:
		req.id, req.nodeState = hasup.NodeID(d.Field("id")), hasup.MemberState(d.U8("state"))
	case opRemoveNode, opNode:
		req.id = hasup.NodeID(d.Field("id"))
	case opCreateEnsemble:
		req.spec, req.members = readSpec(d), readIDs(d, "member")
	case opDeleteEnsemble, opAbortReconfig, opEnsemble:
		req.name = hasup.EnsembleName(d.Field("name"))
	case opBeginReconfig:
		req.name, req.epoch, req.members = hasup.EnsembleName(d.Field("name")), d.U64("epoch"), readIDs(d, "target member")
	case opFinishReconfig:
		req.name, req.epoch, req.members = hasup.EnsembleName(d.Field("name")), d.U64("epoch"), readIDs(d, "member")
	case opState:
	default:
		d.Failf("unknown %s", req.op)
	}
	d.Finish()
	if d.Err() != nil {
		return request{}, fail(CodeInvalid, "%v", d.Err())
	}
	if p := req.problem(); p != "" {
		return request{}, fail(CodeInvalid, "%s: %s", req.op, p)
	}
	return req, nil
}

// problem judges a structurally sound request by the rules it must follow
// on its own.
func (r request) problem() string {
	switch r.op {
	case opUpsertNode:
		return nodeProblem(r.node)
	case opSetNodeState:
		if p := nodeIDProblem(r.id); p != "" {
			return p
		}
		return stateProblem(r.nodeState)
	case opRemoveNode, opNode:
		return nodeIDProblem(r.id)
	case opCreateEnsemble:
		if p := specProblem(r.spec); p != "" {
			return p
		}
		if len(r.members) != r.spec.Replicas {
			return fmt.Sprintf("ensemble %s of %d replicas: %d members %s", codec.Quote(r.spec.Name), r.spec.Replicas, len(r.members), formatIDs(r.members))
		}
		return membersProblem("members", r.members)
	case opDeleteEnsemble, opAbortReconfig, opEnsemble:
		return nameProblem(r.name)
	case opBeginReconfig, opFinishReconfig:
		if p := nameProblem(r.name); p != "" {
			return p
		}
		what := "members"
		if r.op == opBeginReconfig {
			what = "target"
		}
		return membersProblem(what, r.members)
	}
	return ""
}

// begin starts an encoded request with room for n more bytes.
func begin(o op, n int) []byte { return codec.BeginRequest(o, wireVersion, n) }
