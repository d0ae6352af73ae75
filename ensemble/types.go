package ensemble

import (
	"errors"
	"fmt"

	"github.com/hasup/hasup"
)

// Errors returned to callers of Propose and Read, directly or in a Reply.
var (
	// ErrNotPrimary: this replica is not the primary of a normal view. The
	// caller should find the primary (Status().Primary) and retry there.
	ErrNotPrimary = errors.New("ensemble: not primary")
	// ErrViewChanged: the view changed before the request committed. The
	// request may or may not execute; a retry with the same client and
	// request number executes it at most once.
	ErrViewChanged = errors.New("ensemble: view changed before the request committed; it may or may not execute")
	// ErrBusy: a bounded queue (proposals or reads) is full. Retry later.
	ErrBusy = errors.New("ensemble: too many requests waiting")
	// ErrTooLarge: the command is larger than one PREPARE batch may carry.
	ErrTooLarge = errors.New("ensemble: command too large")
	// ErrSessionExpired: the client's session was evicted from the bounded
	// client table (or never opened). This attempt did not execute, but an
	// earlier attempt of the same request may have, before the eviction: the
	// outcome is unknown. Open a new session to continue.
	ErrSessionExpired = errors.New("ensemble: client session expired")
	// ErrReplyNotKept: the request executed, but its reply was larger than
	// ReplyBytesMax and the client table kept only the fact of execution.
	ErrReplyNotKept = errors.New("ensemble: request executed; its reply was too large to keep for a retry")
	// ErrStaleRequest: the request number is older than the client's last
	// executed request, whose reply is no longer kept.
	ErrStaleRequest = errors.New("ensemble: request number older than the client's last")
	// ErrRecovering: the replica is recovering its state and serves nothing.
	ErrRecovering = errors.New("ensemble: replica is recovering")
	// ErrReconfiguring: a reconfiguration is in the log; the epoch takes no
	// more requests. Retry at the new epoch's primary.
	ErrReconfiguring = errors.New("ensemble: reconfiguring; retry in the new epoch")
	// ErrNoLease: a lease read reached a primary that does not hold its
	// lease now (or has not committed what its view inherited). Retry as a
	// linearizable read.
	ErrNoLease = errors.New("ensemble: primary holds no lease")
	// ErrTooStale: a stale read reached a replica further behind than the
	// request allows, or one that is changing views.
	ErrTooStale = errors.New("ensemble: replica too far behind for this read")
)

// Mode is the VRR paper's "status" of a replica.
type Mode uint8

// Modes.
const (
	// ModeNormal: the replica takes part in view View. If its
	// LastNormalView is below View, it is still fetching the view's log
	// (state transfer) and acknowledges nothing until it has it.
	ModeNormal Mode = iota + 1
	// ModeViewChange: the replica is moving to view View.
	ModeViewChange
	// ModeRecovering: the replica lost its storage and is rebuilding it from
	// its peers (VRR §4.3). It never acknowledges, votes or serves.
	ModeRecovering
	// ModeJoining: a new member of its epoch fetching the committed state
	// (VRR §7). It never acknowledges, votes or serves until it has it.
	ModeJoining
	// ModeRetired: removed by a reconfiguration. It only serves state
	// transfers; Status().Stopped says when the new epoch runs and it may
	// be deleted.
	ModeRetired
)

func (m Mode) String() string {
	switch m {
	case ModeNormal:
		return "normal"
	case ModeViewChange:
		return "view-change"
	case ModeRecovering:
		return "recovering"
	case ModeJoining:
		return "joining"
	case ModeRetired:
		return "retired"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// EntryKind says what a log entry does.
type EntryKind uint8

// Entry kinds.
const (
	// EntryRequest carries a client command for the FSM.
	EntryRequest EntryKind = iota + 1
	// EntryRegister opens a client session in the client table (VRR's
	// client table, made explicit as in the Raft dissertation §6.3 so that an
	// evicted session can never be mistaken for a new one).
	EntryRegister
	// EntryReconfigure ends its epoch and names the next epoch's members
	// (Cmd: the epoch and the member list). Nothing follows it in its epoch.
	EntryReconfigure
)

// Entry is one operation in the log. Op numbers are dense from 1.
type Entry struct {
	Op      uint64
	Epoch   uint64 // the epoch in which a primary first ordered it
	View    uint64 // the view (of Epoch) in which a primary first ordered it
	Kind    EntryKind
	Client  uint64 // 0: no session (no at-most-once guarantee)
	Request uint64 // the client's request number
	Time    int64  // Unix nanoseconds chosen by the primary for the batch
	Seed    uint64 // random seed chosen by the primary for the batch
	Cmd     []byte
}

func entryEqual(a, b Entry) bool {
	return a.Op == b.Op && a.Epoch == b.Epoch && a.View == b.View && a.Kind == b.Kind && a.Client == b.Client &&
		a.Request == b.Request && a.Time == b.Time && a.Seed == b.Seed && string(a.Cmd) == string(b.Cmd)
}

func (e Entry) size() int { return len(e.Cmd) + 64 }

// HardState is the part of a replica's state that must be durable before
// any message that depends on it is sent.
type HardState struct {
	Epoch          uint64
	Members        []hasup.NodeID // the epoch's member list
	View           uint64
	Mode           Mode
	LastNormalView uint64
	Commit         uint64
	// Amnesiac: the replica recovered from lost storage into a log that a
	// reconfiguration seals; it must recover again in the next epoch.
	Amnesiac bool
}

// Checkpoint is a durable image of the replicated state (the FSM and the
// client table) after applying every op up to Op. Data is opaque to the
// runtime.
type Checkpoint struct {
	Op   uint64
	Data []byte
}

// Durable is everything a replica has persisted: what the runtime hands to
// New after a restart. Entries are the log after Checkpoint.Op, dense.
type Durable struct {
	Hard       HardState
	Checkpoint Checkpoint
	Entries    []Entry
}

// Reply answers a Propose or Read call, matched by the caller's ID.
type Reply struct {
	ID     uint64
	Op     uint64 // the op that executed the request (for a stale read: the op applied)
	Result []byte
	Err    error
	// For a stale read: how many committed ops the answer is behind the
	// latest commit the replica heard of, and how many ticks ago it heard
	// from its primary.
	LagOps   uint64
	LagTicks uint64
}

// Applied reports one op applied to the FSM, for observers such as the
// simulator's checkers. Executed is false for an op that the client table
// recognised as a duplicate or an expired session.
type Applied struct {
	Entry    Entry
	Executed bool
}

// Ready is the work a replica asks its runtime to do, in this order:
//  1. make HardState, Checkpoint and Entries durable, atomically;
//  2. send Messages (none may leave before step 1 is durable, but for
//     the first Early, which may leave as soon as Ready returns);
//  3. hand Replies to the callers waiting on them;
//  4. call Advance.
//
// Replies alone may be handed over before step 1, as soon as Ready
// returns: every reply vouches only for committed state (held durably by a
// majority before it committed) or says that nothing is known, never for
// this Ready's writes. The runtime gains a storage sync of latency per
// request by it; the simulator delivers replies early to check the claim.
//
// Entries replace every stored entry with Op >= LogFrom (so a shorter log
// than the stored one deletes the stored tail); LogFrom is 0 when the log is
// unchanged. A Checkpoint replaces the stored one, and every stored entry
// with Op <= Checkpoint.Op may be dropped.
type Ready struct {
	HardState  *HardState
	Checkpoint *Checkpoint
	LogFrom    uint64
	Entries    []Entry
	Messages   []Message
	// Early: Messages[:Early] are a primary's PREPAREs and COMMITs, which
	// may leave before step 1, in parallel with its own write: the primary
	// counts its own copy of an op only once Advance says it is durable,
	// and a primary restarted from storage never resumes its view (it
	// starts a view change, which gathers what the backups hold). Early is
	// 0 when this Ready changes the view, mode, epoch or members.
	Early   int
	Replies []Reply
	Applied []Applied
}

// Status describes a replica for monitoring and tests.
type Status struct {
	ID             hasup.NodeID
	Ensemble       hasup.EnsembleName
	Epoch          uint64
	View           uint64
	Mode           Mode
	LastNormalView uint64
	Op             uint64
	Commit         uint64
	Applied        uint64
	CheckpointOp   uint64
	Primary        hasup.NodeID // primary of View
	IsPrimary      bool         // this replica is primary of a normal view
	Transferring   bool         // fetching state from a peer
	Rejected       uint64       // malformed or impossible peer messages dropped so far
	LastRejection  string       // why the last one was dropped
	Fence          uint64       // Fence(Epoch, View): grows with every view and epoch
	Now            uint64       // the replica's tick count in this incarnation
	HoldsLease     bool         // primary with a valid lease (see HoldsLease)
	LeaseLeft      uint64       // ticks the lease still holds (0 without one); a worker must be stopped before they run out
	Members        []hasup.NodeID
	Stopped        bool // retired, and the new epoch runs: the replica may be deleted
	Quiescent      bool // idle: no heartbeats, no timers (quiesce.go)
}

// Fence packs an epoch and a view into one fencing token that grows with
// either. Views are assumed below 2^32 within an epoch.
func Fence(epoch, view uint64) uint64 { return epoch<<32 | view&(1<<32-1) }
