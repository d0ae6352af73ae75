// Package registry is the FSM of the cluster ensemble: hasup's one
// replicated record of which nodes exist, which named ensembles exist, and
// on which nodes each of them runs.
//
// # What it holds
//
// Nodes: every node that has registered, with the host:port of its
// consensus transport, its operator tags, what failure detection last said
// of it (alive, suspect, failed, left) and since when (the command time of
// the change). Ensembles: every named ensemble's Spec (name, FSM type,
// replica count, placement constraints, quiescence), the epoch the registry
// last learned it runs, its ordered member list (Members[0] leads view 0),
// and, while a reconfiguration is in progress, the member list it is moving
// to (Target). Version: the op number of the last command that changed
// anything, so that a watcher polling StateQuery tells news from old.
//
// The registry keeps these invariants, and Restore and DecodeState refuse
// any image or answer that breaks one:
//
//   - every member and every target of an ensemble is a known node, so
//     RemoveNode refuses (ErrInUse) a node that some ensemble still names;
//   - member and target lists hold 1, 3 or 5 distinct nodes, and a Target
//     differs from its Members;
//   - one reconfiguration per ensemble at a time (ErrBusy), and an
//     ensemble's epoch only grows (ErrStale);
//   - Version only grows: a change sets it to max(Version+1, ctx.Op()),
//     which is ctx.Op() whenever the ensemble numbers its ops as it
//     promises. A command that changes nothing (a failed one, an UpsertNode
//     of the record as it stands, a retried BeginReconfig) leaves it alone.
//
// # Who proposes what
//
//   - Every node's supervisor proposes UpsertNode for itself when it starts
//     and whenever its address or tags change. Proposing the record as it
//     stands changes nothing, so a supervisor may re-propose it freely.
//   - The cluster primary (the primary of the cluster ensemble) proposes
//     node states (SetNodeState, after damping what Serf reports),
//     RemoveNode, ensemble creation and deletion (from the config file, the
//     HTTP API and supervisor.Start, with members chosen by package
//     placement), and reconfigurations: BeginReconfig when it decides to
//     move an ensemble, AbortReconfig when it gives up.
//   - FinishReconfig is proposed when an ensemble's new epoch is observed
//     running; it records what the ensemble itself committed. A second
//     FinishReconfig for the same epoch is ErrStale, and harmless.
//
// # Commands, queries and results
//
// Clients build commands with the ...Cmd functions and queries with the
// ...Query functions. Apply cannot fail (every replica must agree on what it
// did), so a command's outcome travels in its result bytes: DecodeResult
// returns a Result whose Err is a Code ("" for success) and whose Error
// method gives the matching sentinel (ErrNotFound, ErrExists, ErrStale,
// ErrBusy, ErrInUse, ErrInvalid) wrapped with the message, for errors.Is.
// Malformed and unknown commands are ErrInvalid and change nothing.
//
// # Versions of the encodings
//
// Commands sit in replicas' logs and images on their disks across upgrades,
// so every encoding carries a version: each command and query starts with an
// op byte and a version byte that belongs to that op's layout; results,
// query answers and the snapshot image each start with their own. A decoder
// refuses a version it does not know rather than guess. A layout is never
// changed in place: a change adds a new version (or a new op), and the
// decoders keep reading the old one for as long as any log or image may hold
// it; a replica must not propose a new version before every replica of the
// cluster ensemble decodes it. The encoders write exactly one encoding of
// every value (fixed-width integers, sorted tags; see package codec), pinned
// by golden tests. The rules Apply enforces are part of the format too: two
// replicas that judged the same command differently would diverge, so
// tightening or loosening a rule (a limit, the name syntax) is a change of
// version like any other.
//
// # Design
//
// The state is one State value: nodes sorted by ID and ensembles by name,
// found by binary search, so that snapshots, answers and error messages
// never depend on map order and StateQuery encodes the state as it stands.
// Inserting costs a copy of part of a slice (O(n)), which suits a registry
// of tens of nodes and hundreds of ensembles. Rejected: maps with key
// slices beside them (package kv's design), which buy O(1) lookups the
// registry does not need at the price of two structures to keep in step.
package registry

import (
	"errors"
	"maps"
	"math"
	"slices"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/fsm"
	"github.com/hasup/hasup/fsm/internal/codec"
)

// Limits on what the registry holds. They bound the memory one command can
// claim, and keep a StateQuery answer of a registry with typical records
// (about a hundred bytes a node, two hundred an ensemble) far below the
// transport's frame limit.
const (
	// MaxNodeIDBytes is the longest node ID: Serf's own limit on node names.
	MaxNodeIDBytes = 128
	// MaxAddrBytes is the longest transport address: a DNS name of 253
	// bytes, a colon and a port fit.
	MaxAddrBytes = 260
	// MaxTags is the most tags one node may carry.
	MaxTags = 64
	// MaxTagKeyBytes is the longest tag key; keys are never empty.
	MaxTagKeyBytes = 128
	// MaxTagValueBytes is the longest tag value; values may be empty.
	MaxTagValueBytes = 256
	// MaxNameBytes is the longest ensemble name: an RFC 1123 DNS label,
	// as package config requires of every name.
	MaxNameBytes = 63
	// MaxTypeBytes is the longest FSM type name.
	MaxTypeBytes = 128
	// MaxConstraints is the most placement constraints one spec may carry.
	MaxConstraints = 16
	// MaxConstraintBytes is the longest constraint text; it is never empty.
	MaxConstraintBytes = 256
	// MaxNodes is the most nodes the registry records. UpsertNode of a new
	// node beyond it is ErrInvalid.
	MaxNodes = 1024
	// MaxEnsembles is the most ensembles the registry records.
	// CreateEnsemble beyond it is ErrInvalid.
	MaxEnsembles = 16384
)

// Errors of the registry. The operation errors (ErrNotFound through
// ErrInvalid) come from Result.Error and DecodeResult, and ErrNotFound also
// from Query; the others from Query, Restore and the decoders.
var (
	// ErrNotFound means the command or query named a node or ensemble that
	// the registry does not hold.
	ErrNotFound = errors.New("registry: not found")
	// ErrExists means CreateEnsemble named an ensemble that exists already.
	ErrExists = errors.New("registry: already exists")
	// ErrStale means the command's epoch is not the one it expects: a
	// BeginReconfig from another epoch than the stored one, or a
	// FinishReconfig of an epoch no newer than the stored one.
	ErrStale = errors.New("registry: stale epoch")
	// ErrBusy means BeginReconfig found another reconfiguration of the
	// ensemble in progress.
	ErrBusy = errors.New("registry: reconfiguration in progress")
	// ErrInUse means RemoveNode named a node that an ensemble still has as
	// a member or target.
	ErrInUse = errors.New("registry: node in use")
	// ErrInvalid means the command is malformed, unknown, or breaks a rule
	// (a name, a replica count, a member list, a limit); the message says
	// which, and the state did not change.
	ErrInvalid = errors.New("registry: invalid command")
	// ErrBadQuery means Query was given bytes that are not a valid query.
	ErrBadQuery = errors.New("registry: bad query")
	// ErrBadResult means DecodeResult, DecodeState, DecodeEnsemble or
	// DecodeNode was given bytes that no Registry produced.
	ErrBadResult = errors.New("registry: bad result")
	// ErrBadSnapshot means Restore was given a truncated, corrupted or
	// unsupported image.
	ErrBadSnapshot = errors.New("registry: bad snapshot")
)

// Registry is the replicated registry of nodes and ensembles. The zero value
// is not usable; call New. Like every fsm.FSM it is not safe for concurrent
// use.
type Registry struct {
	// state is the whole state, sorted as State documents. It is owned:
	// nothing in it is shared with a caller, since commands are decoded
	// into fresh values and answers are encoded copies.
	state State
}

var _ fsm.FSM = (*Registry)(nil)

// New returns an empty registry at Version 0.
func New() *Registry {
	return &Registry{}
}

// Apply executes one command built by a ...Cmd function, stamping times
// (Node.Since, Ensemble.Created) with ctx's time and the Version with ctx's
// op, and returns a result for DecodeResult.
func (r *Registry) Apply(ctx fsm.Context, cmd []byte) []byte {
	req, err := decodeRequest(cmd)
	if err == nil {
		err = r.apply(ctx, req)
	}
	res := Result{Version: r.state.Version}
	if err != nil {
		res.Err, res.Msg = err.code, err.msg
	}
	return appendResult(make([]byte, 0, resultBytes+len(res.Msg)), res)
}

// Query answers a query: StateQuery (read it with DecodeState),
// EnsembleQuery (DecodeEnsemble) or NodeQuery (DecodeNode). A query for an
// ensemble or node the registry does not hold returns an error wrapping
// ErrNotFound; a malformed one an error wrapping ErrBadQuery.
func (r *Registry) Query(q []byte) ([]byte, error) {
	req, err := decodeRequest(q)
	if err != nil {
		return nil, wrapf(ErrBadQuery, "%s", err.msg)
	}
	switch req.op {
	case opState:
		return appendState(append(make([]byte, 0, 1+stateBytes(r.state)), answerVersion), r.state), nil
	case opEnsemble:
		i, ok := r.state.ensembleIndex(req.name)
		if !ok {
			return nil, wrapf(ErrNotFound, "ensemble %s", codec.Quote(req.name))
		}
		e := r.state.Ensembles[i]
		return appendEnsemble(append(make([]byte, 0, 1+ensembleBytes(e)), answerVersion), e), nil
	case opNode:
		i, ok := r.state.nodeIndex(req.id)
		if !ok {
			return nil, wrapf(ErrNotFound, "node %s", codec.Quote(req.id))
		}
		n := r.state.Nodes[i]
		return appendNode(append(make([]byte, 0, 1+nodeBytes(n)), answerVersion), n), nil
	}
	return nil, wrapf(ErrBadQuery, "op %s is a command, not a query", req.op)
}

// apply executes a decoded request.
func (r *Registry) apply(ctx fsm.Context, req request) *opError {
	switch req.op {
	case opUpsertNode:
		return r.upsertNode(ctx, req.node)
	case opSetNodeState:
		return r.setNodeState(ctx, req.id, req.nodeState)
	case opRemoveNode:
		return r.removeNode(ctx, req.id)
	case opCreateEnsemble:
		return r.createEnsemble(ctx, req.spec, req.members)
	case opDeleteEnsemble:
		return r.deleteEnsemble(ctx, req.name)
	case opBeginReconfig:
		return r.beginReconfig(ctx, req.name, req.epoch, req.members)
	case opFinishReconfig:
		return r.finishReconfig(ctx, req.name, req.epoch, req.members)
	case opAbortReconfig:
		return r.abortReconfig(ctx, req.name)
	}
	return fail(CodeInvalid, "op %s is a query, not a command", req.op)
}

// upsertNode adds n, or updates the address, tags and state of the node
// with its ID. Since moves to the command time when the state changes.
func (r *Registry) upsertNode(ctx fsm.Context, n Node) *opError {
	i, ok := r.state.nodeIndex(n.ID)
	if !ok {
		if len(r.state.Nodes) >= MaxNodes {
			return fail(CodeInvalid, "cannot add node %s: the registry holds %d nodes, its limit", codec.Quote(n.ID), MaxNodes)
		}
		n.Since = ctx.UnixNanos()
		r.state.Nodes = slices.Insert(r.state.Nodes, i, n)
		r.changed(ctx)
		return nil
	}
	old := &r.state.Nodes[i]
	if old.Addr == n.Addr && old.State == n.State && maps.Equal(old.Tags, n.Tags) {
		return nil
	}
	if old.State != n.State {
		old.State, old.Since = n.State, ctx.UnixNanos()
	}
	old.Addr, old.Tags = n.Addr, n.Tags
	r.changed(ctx)
	return nil
}

// setNodeState records what failure detection says of a known node.
func (r *Registry) setNodeState(ctx fsm.Context, id hasup.NodeID, state hasup.MemberState) *opError {
	i, ok := r.state.nodeIndex(id)
	if !ok {
		return fail(CodeNotFound, "node %s", codec.Quote(id))
	}
	if n := &r.state.Nodes[i]; n.State != state {
		n.State, n.Since = state, ctx.UnixNanos()
		r.changed(ctx)
	}
	return nil
}

// removeNode forgets a node that no ensemble names.
func (r *Registry) removeNode(ctx fsm.Context, id hasup.NodeID) *opError {
	i, ok := r.state.nodeIndex(id)
	if !ok {
		return fail(CodeNotFound, "node %s", codec.Quote(id))
	}
	for _, e := range r.state.Ensembles {
		role := ""
		switch {
		case slices.Contains(e.Members, id):
			role = "a member"
		case slices.Contains(e.Target, id):
			role = "a reconfiguration target"
		default:
			continue
		}
		return fail(CodeInUse, "node %s is %s of ensemble %s", codec.Quote(id), role, codec.Quote(e.Spec.Name))
	}
	r.state.Nodes = slices.Delete(r.state.Nodes, i, i+1)
	r.changed(ctx)
	return nil
}

// createEnsemble adds an ensemble at epoch 0 with members, which the
// request's validation found to be spec.Replicas distinct node IDs.
func (r *Registry) createEnsemble(ctx fsm.Context, spec Spec, members []hasup.NodeID) *opError {
	i, ok := r.state.ensembleIndex(spec.Name)
	if ok {
		return fail(CodeExists, "ensemble %s", codec.Quote(spec.Name))
	}
	if len(r.state.Ensembles) >= MaxEnsembles {
		return fail(CodeInvalid, "cannot create ensemble %s: the registry holds %d ensembles, its limit", codec.Quote(spec.Name), MaxEnsembles)
	}
	if err := r.checkKnown(spec.Name, "members", members); err != nil {
		return err
	}
	e := Ensemble{Spec: spec, Members: members, Created: ctx.UnixNanos()}
	r.state.Ensembles = slices.Insert(r.state.Ensembles, i, e)
	r.changed(ctx)
	return nil
}

// deleteEnsemble forgets an ensemble, reconfiguring or not.
func (r *Registry) deleteEnsemble(ctx fsm.Context, name hasup.EnsembleName) *opError {
	i, ok := r.state.ensembleIndex(name)
	if !ok {
		return fail(CodeNotFound, "ensemble %s", codec.Quote(name))
	}
	r.state.Ensembles = slices.Delete(r.state.Ensembles, i, i+1)
	r.changed(ctx)
	return nil
}

// beginReconfig records the decision to move ensemble name, at epoch, to
// target. Retrying the decision in progress succeeds and changes nothing.
func (r *Registry) beginReconfig(ctx fsm.Context, name hasup.EnsembleName, epoch uint64, target []hasup.NodeID) *opError {
	e, err := r.ensemble(name)
	switch {
	case err != nil:
		return err
	case epoch != e.Epoch:
		return fail(CodeStale, "ensemble %s is at epoch %d, not %d", codec.Quote(name), e.Epoch, epoch)
	case e.Target != nil && slices.Equal(e.Target, target):
		return nil
	case e.Target != nil:
		return fail(CodeBusy, "ensemble %s is moving to %s", codec.Quote(name), formatIDs(e.Target))
	}
	if err := r.checkKnown(name, "target", target); err != nil {
		return err
	}
	if p := targetProblem(e.Members, target); p != "" {
		return fail(CodeInvalid, "ensemble %s: %s", codec.Quote(name), p)
	}
	e.Target = target
	r.changed(ctx)
	return nil
}

// finishReconfig records that ensemble name runs epoch with members, and
// that no reconfiguration is in progress any more.
func (r *Registry) finishReconfig(ctx fsm.Context, name hasup.EnsembleName, epoch uint64, members []hasup.NodeID) *opError {
	e, err := r.ensemble(name)
	if err != nil {
		return err
	}
	if epoch <= e.Epoch {
		return fail(CodeStale, "ensemble %s is at epoch %d, which epoch %d does not follow", codec.Quote(name), e.Epoch, epoch)
	}
	if err := r.checkKnown(name, "members", members); err != nil {
		return err
	}
	e.Epoch, e.Members, e.Target = epoch, members, nil
	r.changed(ctx)
	return nil
}

// abortReconfig clears ensemble name's target, if it has one.
func (r *Registry) abortReconfig(ctx fsm.Context, name hasup.EnsembleName) *opError {
	e, err := r.ensemble(name)
	if err != nil {
		return err
	}
	if e.Target != nil {
		e.Target = nil
		r.changed(ctx)
	}
	return nil
}

// ensemble returns the stored ensemble name, for changing in place.
func (r *Registry) ensemble(name hasup.EnsembleName) (*Ensemble, *opError) {
	i, ok := r.state.ensembleIndex(name)
	if !ok {
		return nil, fail(CodeNotFound, "ensemble %s", codec.Quote(name))
	}
	return &r.state.Ensembles[i], nil
}

// checkKnown reports the first of ids that names no known node. An unknown
// node is ErrInvalid rather than ErrNotFound, which in a command about an
// ensemble would read as "no such ensemble".
func (r *Registry) checkKnown(name hasup.EnsembleName, what string, ids []hasup.NodeID) *opError {
	for _, id := range ids {
		if _, ok := r.state.nodeIndex(id); !ok {
			return fail(CodeInvalid, "ensemble %s: %s %s: node %s is not registered", codec.Quote(name), what, formatIDs(ids), codec.Quote(id))
		}
	}
	return nil
}

// changed records that the command with ctx changed the state: Version
// becomes ctx.Op(), or one more than before if the op does not grow (as
// with the zero Context). It saturates rather than wrap, which 2^64
// changes never reach.
func (r *Registry) changed(ctx fsm.Context) {
	if r.state.Version < math.MaxUint64 {
		r.state.Version = max(r.state.Version+1, ctx.Op())
	}
}
