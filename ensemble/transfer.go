package ensemble

import (
	"fmt"

	"github.com/hasup/hasup"
)

// transfer is a state transfer in progress (VRR §5.2): a replica that lacks
// part of its view's log pulls it from a peer, first the peer's checkpoint in
// chunks if the peer no longer holds the log it needs, then the log suffix
// in chunks. Nothing is installed until the whole of it has arrived, and
// then all of it is installed at once together with the new last-normal-view:
// a replica never holds a log shortened under a kept last-normal-view.
//
// Three kinds: a backup behind its view's primary (pulls from the primary,
// base = its op if its log is of this view, else its commit number); a
// recovering replica (base 0); and a new primary whose chosen log starts
// beyond its commit number (checkpoint only, from the chosen DVC's sender).
type transfer struct {
	active    bool
	committed bool   // committed state only, across epochs (epoch.go)
	id        uint64 // echoed by the peer, so answers to an earlier transfer are told apart
	from      hasup.NodeID
	view      uint64
	ckptOnly  bool
	start     uint64  // base when the transfer started
	base      uint64  // the own log up to base is kept; buf continues it
	buf       []Entry // entries base+1 .. fetched so far
	ckpt      Checkpoint
	ckptLen   uint64 // total size of the checkpoint being assembled
	ckptDone  bool
	idle      int // ticks since the last GETSTATE
	// For a committed transfer: the sender's epoch and view when it last
	// answered, so a replica entering that epoch joins its current view.
	senderEpoch, senderView uint64
	stalled                 int // ticks since the last accepted chunk
}

func (r *Replica) startTransfer(from hasup.NodeID, ckptOnly bool) {
	base := r.commit
	if r.mode == ModeNormal && r.lastNormal == r.view {
		base = r.op // the own log is a prefix of the view's log
	}
	r.xfer = transfer{active: true, id: r.cfg.Rand.Uint64() | 1, from: from, view: r.view, ckptOnly: ckptOnly, start: base, base: base}
	r.sendGetState()
}

// startCommittedTransfer pulls committed state, whatever the sender's epoch
// or view, from the own commit number on.
func (r *Replica) startCommittedTransfer(from hasup.NodeID) {
	base := r.commit
	r.xfer = transfer{active: true, committed: true, id: r.cfg.Rand.Uint64() | 1, from: from, start: base, base: base}
	r.sendGetState()
}

func (r *Replica) tickTransfer() {
	r.xfer.stalled++
	if r.xfer.committed && r.xfer.stalled >= 2*r.cfg.ViewChangeTicks {
		r.xfer = transfer{} // the sender went away: the next message from a later epoch starts over
		return
	}
	r.xfer.idle++
	if r.xfer.idle >= r.cfg.RetryTicks {
		r.xfer.idle = 0
		r.sendGetState()
	}
}

func (r *Replica) sendGetState() {
	x := &r.xfer
	m := Message{Type: MsgGetState, To: x.from, View: x.view, Nonce: x.id, Committed: x.committed}
	if x.ckptOnly || (x.ckpt.Op > 0 && !x.ckptDone) {
		m.WantCheckpoint, m.CheckpointOp, m.Offset = true, x.ckpt.Op, uint64(len(x.ckpt.Data))
	} else {
		m.Op = x.base + uint64(len(x.buf))
	}
	r.send(m)
}

// onGetState serves a state transfer. A checkpoint is committed state and is
// served in any mode but recovery; log entries only by a replica that holds
// the requested view's log.
func (r *Replica) onGetState(m Message) {
	if r.mode == ModeRecovering || r.mode == ModeJoining {
		return
	}
	reply := Message{Type: MsgNewState, To: m.From, View: r.view, LastNormalView: r.lastNormal, Op: r.op, Commit: r.commit, Nonce: m.Nonce}
	if m.Committed {
		reply.Committed, reply.Op = true, r.commit
	}
	if m.WantCheckpoint {
		r.sendCheckpointChunk(reply, m.CheckpointOp, m.Offset)
		return
	}
	if m.Committed {
		r.serveCommitted(m, reply)
		return
	}
	if m.Epoch != r.epoch || r.mode == ModeJoining || r.mode == ModeRetired {
		return
	}
	if m.View != r.view || r.mode != ModeNormal || r.lastNormal != r.view || r.xfer.active || m.Op > r.op {
		return
	}
	r.sendEntriesAfter(reply, m.Op, r.op)
}

// sendEntriesAfter answers a transfer with the entries after op `after` up
// to `upTo`, at most ChunkBytes of them (at least one), or with the first
// checkpoint chunk if the log no longer holds them.
func (r *Replica) sendEntriesAfter(reply Message, after, upTo uint64) {
	if after < r.ckpt.Op {
		r.sendCheckpointChunk(reply, 0, 0)
		return
	}
	lo, hi, size := after+1, after, 0
	for hi < upTo {
		s := r.log[hi-r.ckpt.Op].size()
		if hi >= lo && size+s > r.cfg.ChunkBytes {
			break
		}
		size += s
		hi++
	}
	reply.LogStart, reply.Entries = lo, r.entriesFrom(lo, hi)
	r.send(reply)
}

// serveCommitted answers a committed-state transfer: entries up to the
// commit number only, so the answer is the same whatever view or epoch the
// sender is in; Op is the commit number.
func (r *Replica) serveCommitted(m Message, reply Message) {
	reply.Committed, reply.Op = true, r.commit
	if m.Op > r.commit {
		return // the requester is ahead of this replica
	}
	r.sendEntriesAfter(reply, m.Op, r.commit)
}

func (r *Replica) sendCheckpointChunk(reply Message, ckptOp, offset uint64) {
	if r.ckpt.Op == 0 {
		return
	}
	if ckptOp != r.ckpt.Op {
		offset = 0 // a newer checkpoint: start over
	}
	total := uint64(len(r.ckpt.Data))
	if offset > total {
		return
	}
	end := min(total, offset+uint64(r.cfg.ChunkBytes))
	reply.CheckpointOp, reply.Offset, reply.Total, reply.Data = r.ckpt.Op, offset, total, r.ckpt.Data[offset:end]
	r.send(reply)
}

func (r *Replica) onNewState(m Message) {
	x := &r.xfer
	if !x.active || m.From != x.from || m.Nonce != x.id {
		return // not for the transfer in progress: a late or duplicate answer
	}
	if m.CheckpointOp > 0 {
		r.onCheckpointChunk(m)
		return
	}
	if x.ckptOnly || (x.ckpt.Op > 0 && !x.ckptDone) || m.Committed != x.committed || m.LogStart != x.base+uint64(len(x.buf))+1 {
		return
	}
	if !x.committed && (m.View != x.view || m.LastNormalView != m.View) {
		return
	}
	if m.LogStart+uint64(len(m.Entries)) > m.Op+1 {
		return // malformed: entries beyond the sender's op
	}
	for i, e := range m.Entries {
		if e.Op != m.LogStart+uint64(i) {
			return
		}
	}
	x.buf = append(x.buf, m.Entries...)
	x.idle, x.stalled = 0, 0
	x.notePosition(m)
	switch {
	case x.base+uint64(len(x.buf)) < m.Op:
		r.sendGetState()
	case x.committed:
		r.installCommitted()
	default:
		r.installTransfer(m.Commit)
	}
}

func (r *Replica) onCheckpointChunk(m Message) {
	x := &r.xfer
	switch {
	case m.CheckpointOp == x.ckpt.Op && x.ckptDone:
		return // a duplicate of a checkpoint already assembled
	case m.Offset == 0:
		// A first chunk (perhaps of a newer checkpoint): start over.
		x.ckpt, x.ckptLen, x.ckptDone = Checkpoint{Op: m.CheckpointOp}, m.Total, false
		x.base, x.buf = x.start, nil
	case m.CheckpointOp != x.ckpt.Op || m.Offset != uint64(len(x.ckpt.Data)) || m.Total != x.ckptLen:
		return // a chunk of another checkpoint, or out of order
	}
	if uint64(len(x.ckpt.Data))+uint64(len(m.Data)) > x.ckptLen {
		x.ckpt = Checkpoint{}
		return
	}
	x.ckpt.Data = append(x.ckpt.Data, m.Data...)
	x.idle, x.stalled = 0, 0
	if uint64(len(x.ckpt.Data)) < x.ckptLen {
		r.sendGetState()
		return
	}
	x.ckptDone = true
	if x.ckptOnly {
		ck := x.ckpt
		x.ckpt, x.ckptDone = Checkpoint{}, false
		r.finishPendingView(ck)
		return
	}
	x.base, x.buf = x.ckpt.Op, nil
	x.notePosition(m)
	switch {
	case x.committed && m.Committed && m.Op == x.ckpt.Op:
		r.installCommitted()
	case !x.committed && m.View == x.view && m.LastNormalView == m.View && m.Op == x.ckpt.Op:
		r.installTransfer(m.Commit)
	default:
		r.sendGetState()
	}
}

// notePosition records where a committed transfer's sender stands: its
// epoch, and its view only if that view has started there (a sender still
// changing to a view cannot vouch that the view exists).
func (x *transfer) notePosition(m Message) {
	x.senderEpoch, x.senderView = m.Epoch, 0
	if m.LastNormalView == m.View {
		x.senderView = m.View
	}
}

// installCommitted installs a committed-state transfer: every fetched entry
// is committed, so it replaces what the own log holds at its op, and the
// commit number moves to the end. Applying a reconfiguration op on the way
// moves the replica to its epoch (Step and Tick call maybeEnterEpoch).
func (r *Replica) installCommitted() {
	x := r.xfer
	r.xfer = transfer{}
	r.enterView = 0
	if x.senderEpoch >= r.stateEpoch {
		r.enterEpochAt, r.enterView, r.enterFrom = x.senderEpoch, x.senderView, x.from
	}
	if x.ckptDone && x.ckpt.Op > r.applied {
		r.installCheckpoint(x.ckpt)
	}
	last := x.base + uint64(len(x.buf))
	for _, e := range x.buf {
		switch {
		case e.Op <= r.ckpt.Op:
		case e.Op <= r.commit:
			if !entryEqual(e, r.log[e.Op-r.ckpt.Op-1]) {
				panic(r.violation("committed transfer disagrees at committed op %d", e.Op))
			}
		case e.Op <= r.op:
			r.log[e.Op-r.ckpt.Op-1] = e // committed elsewhere: it replaces whatever was here
			r.markLog(e.Op)
		default:
			r.appendEntries([]Entry{e})
		}
	}
	if last > r.commit {
		r.commit = last
		r.hardDirty = true
	}
	r.applyCommitted()
}

// installTransfer installs what the transfer fetched, all at once, and makes
// the replica normal in the transfer's view.
func (r *Replica) installTransfer(senderCommit uint64) {
	x := r.xfer
	oldLNV, oldOp := r.lastNormal, r.op
	if x.ckptDone && x.ckpt.Op > r.applied {
		r.installCheckpoint(x.ckpt)
	}
	// The own log is trusted up to base (see transfer) and up to the commit
	// number; the fetched log replaces the rest.
	keep := max(x.base, r.commit)
	last := x.base + uint64(len(x.buf))
	if keep > last || keep > r.op {
		// The peer's log of this view ends below what this replica knows
		// is committed: only a broken peer sends that. Start over.
		r.rejectWhy("transfer ends below the trusted log")
		r.xfer.buf, r.xfer.base, r.xfer.ckpt, r.xfer.ckptDone = nil, r.xfer.start, Checkpoint{}, false
		return
	}
	// Entries up to keep are the own log's; they must agree with the fetched.
	for _, e := range x.buf {
		if e.Op <= keep && e.Op > r.ckpt.Op && !entryEqual(e, r.log[e.Op-r.ckpt.Op-1]) {
			panic(r.violation("state transfer disagrees at op %d", e.Op))
		}
	}
	if keep < r.op {
		r.log = r.log[:keep-r.ckpt.Op]
		r.op = keep
	}
	r.markLog(keep + 1)
	for _, e := range x.buf {
		if e.Op > r.op {
			r.appendEntries([]Entry{e})
		}
	}
	if r.op != last {
		panic(r.violation("state transfer ends at %d, want %d", r.op, last))
	}
	if oldLNV == x.view && r.op < oldOp && r.mode != ModeRecovering {
		panic(r.violation("state transfer shortens log %d -> %d keeping last-normal-view %d", oldOp, r.op, oldLNV))
	}
	wasRecovering := r.mode == ModeRecovering
	r.becomeNormal()
	r.rec = recoveryState{}
	r.hardDirty = true
	r.setCommit(senderCommit)
	if wasRecovering && !r.sealed() {
		r.amnesiac = false // no later epoch can have started: its votes are all here
	}
	r.send(Message{Type: MsgPrepareOK, To: r.primaryOf(r.view), View: r.view, Op: r.op})
}

// installCheckpoint replaces the replica's state with the checkpoint's.
func (r *Replica) installCheckpoint(ck Checkpoint) {
	if ck.Op <= r.applied {
		panic(r.violation("installing checkpoint %d at applied %d", ck.Op, r.applied))
	}
	if err := r.restoreCheckpoint(ck.Data); err != nil {
		// A checkpoint a peer built and sent intact cannot fail to restore
		// unless the FSM is broken.
		panic(fmt.Sprintf("ensemble %s on %s: install checkpoint %d: %v", r.cfg.Ensemble, r.self, ck.Op, err))
	}
	if r.op > ck.Op {
		r.log = append([]Entry(nil), r.log[ck.Op-r.ckpt.Op:]...)
	} else {
		r.log, r.op = nil, ck.Op
	}
	r.ckpt = ck
	r.applied = ck.Op
	r.commit = max(r.commit, ck.Op)
	r.newCkpt = &ck
	if r.logFrom != 0 && r.logFrom <= ck.Op {
		r.logFrom = ck.Op + 1
	}
	r.hardDirty = true
}
