package ensemble

import (
	"fmt"

	"github.com/hasup/hasup"
)

// MsgType names a protocol message, after the VRR paper.
type MsgType uint8

// Message types.
const (
	MsgPrepare MsgType = iota + 1
	MsgPrepareOK
	MsgCommit
	MsgCommitOK
	MsgStartViewChange
	MsgDoViewChange
	MsgStartView
	MsgRecovery
	MsgRecoveryResponse
	MsgGetState
	MsgNewState
	MsgStartEpoch
	MsgEpochStarted
)

var msgNames = [...]string{"", "PREPARE", "PREPAREOK", "COMMIT", "COMMITOK", "STARTVIEWCHANGE",
	"DOVIEWCHANGE", "STARTVIEW", "RECOVERY", "RECOVERYRESPONSE", "GETSTATE", "NEWSTATE", "STARTEPOCH", "EPOCHSTARTED"}

func (t MsgType) String() string {
	if int(t) < len(msgNames) && t != 0 {
		return msgNames[t]
	}
	return fmt.Sprintf("msg(%d)", uint8(t))
}

// Message is one protocol message between replicas of an ensemble. One flat
// struct serves every type, as in etcd-raft; each type uses the fields its
// doc names and leaves the others zero.
//
//   - PREPARE: View, Commit, Entries (a batch, dense); Stamp and Nonce (the
//     primary's tick and incarnation, for its lease).
//   - PREPAREOK: View, Op (the sender holds every op <= Op durably); Stamp
//     and Nonce echoed.
//   - COMMIT: View, Commit, LogStart (the first op the primary still holds),
//     Round (heartbeat and read-confirmation round), Stamp, Nonce, Quiesce.
//   - COMMITOK: View, Round; Stamp and Nonce echoed; Quiesce and Op.
//   - STARTVIEWCHANGE: View.
//   - DOVIEWCHANGE: View, LastNormalView, Op, Commit, LogStart, Entries (the
//     sender's log from LogStart to Op).
//   - STARTVIEW: View, Op, Commit, LogStart, Entries (the new log from
//     LogStart to Op).
//   - RECOVERY: Nonce.
//   - RECOVERYRESPONSE: View, Nonce, Op, Commit (Op and Commit only from the
//     primary of View).
//   - GETSTATE: Nonce (the transfer's ID), View, Op (entries wanted after
//     Op), CheckpointOp and Offset (the checkpoint chunk wanted;
//     CheckpointOp 0 = any), WantCheckpoint.
//   - NEWSTATE: Nonce (echoed), View, LastNormalView, Op (the sender's op), Commit, and
//     either Entries (from LogStart) or one checkpoint chunk (CheckpointOp,
//     Offset, Total, Data). With Committed (in GETSTATE and NEWSTATE) the
//     transfer is of committed state only, across epochs, and Op is the
//     sender's commit number.
//   - STARTEPOCH: Epoch (the sender's, later than the receiver's or the one
//     it joins), Op (the sender's commit): fetch the committed state here.
//   - EPOCHSTARTED: Epoch: the sender runs it (to a retired replica).
type Message struct {
	Type     MsgType
	Ensemble hasup.EnsembleName
	Epoch    uint64
	From     hasup.NodeID
	To       hasup.NodeID

	View           uint64
	Op             uint64
	Commit         uint64
	LastNormalView uint64
	LogStart       uint64
	Entries        []Entry
	Round          uint64
	Nonce          uint64
	Stamp          uint64
	Lag            uint64 // PREPARE and COMMIT: the primary's own staleness bound, in ticks

	WantCheckpoint bool
	Committed      bool
	// Quiesce: in a primary's COMMIT, "nothing to do: quiesce"; in a
	// COMMITOK, "quiescent at Op" (quiesce.go).
	Quiesce      bool
	CheckpointOp uint64
	Offset       uint64
	Total        uint64
	Data         []byte
}

func (m Message) String() string {
	return fmt.Sprintf("%s %s %s->%s e%d v%d op%d k%d", m.Ensemble, m.Type, m.From, m.To, m.Epoch, m.View, m.Op, m.Commit)
}
