// Package hasup holds the vocabulary every other hasup package shares: node IDs,
// ensemble names and membership events. It holds no logic, so that the pure
// consensus core (package ensemble), the supervisor and the detector can all
// speak of nodes without importing one another.
package hasup

import "fmt"

// NodeID names one node of the cluster. It is the Serf node name, stable across
// restarts of the daemon on that node. The zero value names no node.
type NodeID string

// EnsembleName names one replicated FSM ensemble, unique within a cluster.
type EnsembleName string

// MemberState is what failure detection believes about a node.
type MemberState uint8

// Member states, in the order a node usually passes through them.
const (
	// MemberAlive: the node answers probes.
	MemberAlive MemberState = iota + 1
	// MemberSuspect: probes failed recently; the node may be slow or gone.
	MemberSuspect
	// MemberFailed: failure detection gave up on the node. This is a
	// verdict of a failure detector, never proof: it may be wrong.
	MemberFailed
	// MemberLeft: the node left the cluster on purpose.
	MemberLeft
)

// String returns the lower-case name of the state, as shown by the CLI and API.
func (s MemberState) String() string {
	switch s {
	case MemberAlive:
		return "alive"
	case MemberSuspect:
		return "suspect"
	case MemberFailed:
		return "failed"
	case MemberLeft:
		return "left"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Member is one node as failure detection sees it.
type Member struct {
	ID    NodeID
	Addr  string            // host:port of the node's consensus transport
	State MemberState       // the detector's current belief
	Tags  map[string]string // operator-given labels, used by placement
}

// MemberEvent reports that a member's state changed. Events are hints that
// trigger decisions (a view change, a repair); no decision rests on one alone.
type MemberEvent struct {
	Member Member
}
