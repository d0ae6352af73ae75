package reconcile

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/hasup/hasup"
)

// ErrInvalidInput: an Input breaks a rule that its sources guarantee (a
// node or ensemble listed twice, an empty ID). Validate returns it wrapped
// with the detail; Decide panics with it, since the registry, the detector
// and the host each key their records by ID and a duplicate means a bug.
var ErrInvalidInput = errors.New("reconcile: invalid input")

// Input is what one node knows at one tick. Decide reads it and never
// modifies it.
type Input struct {
	// Self is this node's ID. Required.
	Self hasup.NodeID
	// Now is the time of this tick, in monotonic nanoseconds from the
	// runtime's clock; Observed.Since is on the same clock.
	Now int64
	// Damping, in nanoseconds, is how long the detector must hold a node
	// failed, left or alive before the registry is told: a flapping node
	// is never declared failed. Typically 1 s (profile local) to 10 s
	// (lan). Zero or negative: no damping.
	Damping int64
	// ClusterPrimary: this node runs the cluster ensemble's primary. Only
	// it proposes node records, node states and reconfigurations.
	ClusterPrimary bool
	// ClusterEnsemble names the cluster ensemble, whose local replica runs
	// before the registry lists it. Decide never deletes a replica because
	// the registry lacks its ensemble unless this is set, and never the
	// replica of this ensemble.
	ClusterEnsemble hasup.EnsembleName
	// Registry is the registry as this node last read it.
	Registry Registry
	// Detector is this node's failure detector view, one entry per node
	// (itself included), in any order.
	Detector []Observed
	// Local lists the replicas that run on this node, one per ensemble, in
	// any order.
	Local []Replica
	// Hinted holds, per ensemble, the Fence(epoch, view) of the last
	// SuspectPrimary hint this node gave its replica, so that a hint is
	// given once per view. Nil: none given.
	Hinted map[hasup.EnsembleName]uint64
}

// Registry is the cluster registry, as far as the decisions need it.
type Registry struct {
	// Version grows with every change to the registry. Zero means nothing
	// was read yet, and Decide then deletes nothing because the registry
	// lacks it.
	Version uint64
	// Nodes are the registered nodes, one per ID, in any order.
	Nodes []Node
	// Ensembles are the named ensembles, one per name, in any order.
	Ensembles []Ensemble
}

// Node is a registered node.
type Node struct {
	ID    hasup.NodeID
	Addr  string            // host:port of its consensus transport
	Tags  map[string]string // operator labels, read by placement constraints
	State hasup.MemberState // the state the cluster primary last recorded
}

// Ensemble is a named ensemble's spec and configuration in the registry.
type Ensemble struct {
	Name hasup.EnsembleName
	Type string // the FSM type; the runtime needs it to start a replica
	// Replicas is the spec's size (1, 3 or 5). Repairs keep the current
	// member count, len(Members), which equals it unless a resize is
	// pending.
	Replicas int
	// Constraints on a node's tags, in placement.ParseConstraint's text
	// form; all must hold on every replacement.
	Constraints []string
	// SpreadBy, if set, is a tag key whose values name failure domains
	// (placement.Request.SpreadBy).
	SpreadBy string
	// NoQuiesce: the ensemble heartbeats while idle (the runtime's
	// concern; Decide does not read it).
	NoQuiesce bool
	// Epoch is the epoch the registry last recorded the ensemble running.
	Epoch uint64
	// Members are the epoch's members in order: Members[v mod n] is the
	// primary of view v.
	Members []hasup.NodeID
	// Target is the member list of a reconfiguration in progress, nil when
	// there is none.
	Target []hasup.NodeID
}

// Observed is one node as this node's failure detector sees it.
type Observed struct {
	ID    hasup.NodeID
	Addr  string
	Tags  map[string]string
	State hasup.MemberState
	// Since is when the detector's state for the node began, on Now's
	// clock: the node has been in State for Now - Since nanoseconds.
	Since int64
}

// Replica modes, as ensemble.Mode's String method writes them.
const (
	ModeNormal     = "normal"
	ModeViewChange = "view-change"
	ModeRecovering = "recovering"
	ModeJoining    = "joining"
	ModeRetired    = "retired"
)

// Replica is a replica running on this node, as its ensemble.Status
// reports it.
type Replica struct {
	Name    hasup.EnsembleName
	Epoch   uint64         // for a retired replica, the epoch that retired it
	Members []hasup.NodeID // the epoch's members
	View    uint64
	// IsPrimary: the replica is the primary of a normal view.
	IsPrimary bool
	// Primary is the node of the primary of View, "" if unknown.
	Primary hasup.NodeID
	// Mode is one of the Mode constants.
	Mode string
	// Stopped: retired, and the new epoch runs: the replica may be
	// deleted.
	Stopped bool
}

// Kind says what an Action asks for. Kinds sort in the order below, which
// is the order Decide returns them in.
type Kind uint8

// Kinds of Action. The Action's doc says which fields each one sets.
const (
	// ProposeUpsertNode: propose registering Node with Addr, Tags and
	// State (MemberAlive for a new node, the registry's state for a known
	// one: the upsert changes only the address and tags).
	ProposeUpsertNode Kind = iota + 1
	// ProposeNodeState: propose recording State for Node.
	ProposeNodeState
	// ProposeBeginReconfig: propose that Ensemble, at Epoch, move to
	// Members, replacing Node.
	ProposeBeginReconfig
	// Reconfigure: ask the local primary of Ensemble, at Epoch, to
	// reconfigure to Members.
	Reconfigure
	// ProposeFinishReconfig: propose that the registry record Ensemble
	// running Epoch with Members.
	ProposeFinishReconfig
	// StartReplica: start a local replica of Ensemble at Epoch with
	// Members, as a joiner if Join, as a brand-new ensemble if Bootstrap.
	StartReplica
	// StopReplica: stop the local replica of Ensemble, and delete its
	// stored state if Delete.
	StopReplica
	// SuspectPrimary: tell the local replica of Ensemble, at Epoch and
	// View, that its primary's node (Node) failed; then record
	// Fence(Epoch, View) in Input.Hinted.
	SuspectPrimary
	// Blocked reports, for status and logs only, why Ensemble cannot be
	// repaired now (Node is the member that needs replacing).
	Blocked
)

// String returns the kind's name, as logs show it.
func (k Kind) String() string {
	switch k {
	case ProposeUpsertNode:
		return "propose-upsert-node"
	case ProposeNodeState:
		return "propose-node-state"
	case ProposeBeginReconfig:
		return "propose-begin-reconfig"
	case Reconfigure:
		return "reconfigure"
	case ProposeFinishReconfig:
		return "propose-finish-reconfig"
	case StartReplica:
		return "start-replica"
	case StopReplica:
		return "stop-replica"
	case SuspectPrimary:
		return "suspect-primary"
	case Blocked:
		return "blocked"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Action is one thing the node should do. Fields a Kind does not use are
// zero.
type Action struct {
	Kind     Kind
	Ensemble hasup.EnsembleName // every kind but ProposeUpsertNode and ProposeNodeState
	// Node: the node upserted or whose state is proposed; the member
	// replaced (ProposeBeginReconfig, Blocked); the failed primary's node
	// (SuspectPrimary).
	Node hasup.NodeID
	// State: ProposeNodeState, ProposeUpsertNode.
	State hasup.MemberState
	// Addr, Tags: ProposeUpsertNode. Tags is a copy.
	Addr string
	Tags map[string]string
	// Epoch: the registry epoch a reconfiguration starts from
	// (ProposeBeginReconfig, Reconfigure); the epoch to record
	// (ProposeFinishReconfig); the epoch to start in (StartReplica); the
	// replica's epoch (SuspectPrimary, Blocked).
	Epoch uint64
	// View: the view whose primary is suspected (SuspectPrimary).
	View uint64
	// Members: the target list (ProposeBeginReconfig, Reconfigure), the
	// list to record (ProposeFinishReconfig) or to start with
	// (StartReplica). A copy.
	Members []hasup.NodeID
	// Join: StartReplica as a new member added by a reconfiguration.
	Join bool
	// Bootstrap: StartReplica of a brand-new ensemble.
	Bootstrap bool
	// Delete: StopReplica also deletes the replica's stored state. Every
	// StopReplica that Decide returns sets it, since it stops a replica
	// only when nobody needs its state; the flag lets a runtime's own
	// stops (at shutdown, say) share the type.
	Delete bool
	// Reason says why, in a sentence for logs and status.
	Reason string
}

// Fence packs an epoch and a view into the one number Input.Hinted keeps:
// it grows with either. It equals ensemble.Fence.
func Fence(epoch, view uint64) uint64 { return epoch<<32 | view&(1<<32-1) }

// Decide returns what the node should do now, sorted by (Kind, Ensemble,
// Node, Reason). It panics, wrapping ErrInvalidInput, if in.Validate
// fails. See the package doc for the rules.
func Decide(in Input) []Action {
	if err := in.Validate(); err != nil {
		panic(err)
	}
	x := newIndex(in)
	var out []Action
	if in.ClusterPrimary {
		out = append(out, x.upsertNodes()...)
		out = append(out, x.nodeStates()...)
		out = append(out, x.repairs()...)
	}
	out = append(out, x.reconfigs()...)
	out = append(out, x.starts()...)
	out = append(out, x.stops()...)
	out = append(out, x.hints()...)
	slices.SortStableFunc(out, func(a, b Action) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Ensemble, b.Ensemble),
			cmp.Compare(a.Node, b.Node), cmp.Compare(a.Reason, b.Reason))
	})
	return out
}

// Validate reports, wrapped in ErrInvalidInput, why in cannot be decided
// on: an empty Self, or an empty or repeated key in Registry.Nodes,
// Registry.Ensembles, Detector or Local.
func (in Input) Validate() error {
	if in.Self == "" {
		return fmt.Errorf("%w: empty Self", ErrInvalidInput)
	}
	checks := []struct {
		what string
		keys []string
	}{
		{"registry node", keys(in.Registry.Nodes, func(n Node) string { return string(n.ID) })},
		{"registry ensemble", keys(in.Registry.Ensembles, func(e Ensemble) string { return string(e.Name) })},
		{"detector node", keys(in.Detector, func(o Observed) string { return string(o.ID) })},
		{"local replica", keys(in.Local, func(r Replica) string { return string(r.Name) })},
	}
	for _, c := range checks {
		slices.Sort(c.keys)
		for i, k := range c.keys {
			if k == "" {
				return fmt.Errorf("%w: %s with an empty name", ErrInvalidInput, c.what)
			}
			if i > 0 && c.keys[i-1] == k {
				return fmt.Errorf("%w: %s %q listed twice", ErrInvalidInput, c.what, k)
			}
		}
	}
	return nil
}

func keys[T any](s []T, key func(T) string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = key(v)
	}
	return out
}
