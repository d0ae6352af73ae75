package ensemble

import (
	"fmt"
	"slices"

	"github.com/hasup/hasup"
)

// viewChangeState is what a replica in ModeViewChange collects (§4.2).
type viewChangeState struct {
	view    uint64
	svc     map[hasup.NodeID]bool
	sentDVC bool
	dvc     map[hasup.NodeID]Message // at the new primary; its own included
	pending *Message                 // chosen DVC waiting for a checkpoint (see startView)
}

func (v *viewChangeState) reset(view uint64) {
	*v = viewChangeState{view: view, svc: map[hasup.NodeID]bool{}, dvc: map[hasup.NodeID]Message{}}
}

// SuspectPrimary is the supervisor's hint that the primary's node failed.
// It starts a view change at once instead of waiting for the timeout. It is
// only a trigger: the view change still needs a quorum, and a false hint
// costs one view change, never safety.
func (r *Replica) SuspectPrimary() {
	r.checkNotInReady()
	if r.mode == ModeNormal && r.primaryOf(r.view) != r.self {
		r.wake()
		r.suspected = true // acknowledge nothing more: no new promises
		if !r.promising() {
			r.startViewChange(r.view + 1)
		}
	}
}

// startViewChange moves to view v (§4.2 step 1). The new view and mode are
// persisted before the STARTVIEWCHANGE leaves, so a restart never goes back.
func (r *Replica) startViewChange(v uint64) {
	if v <= r.view && r.mode == ModeViewChange {
		return
	}
	if v < r.view {
		panic(r.violation("view change to %d from view %d", v, r.view))
	}
	r.failWaiters(ErrViewChanged)
	r.primary = primaryState{}
	r.xfer = transfer{}
	r.suspected = false
	r.view = v
	r.mode = ModeViewChange
	r.hardDirty = true
	r.vc.reset(v)
	r.resetTimeout()
	r.sendStartViewChange()
}

func (r *Replica) sendStartViewChange() {
	r.broadcast(Message{Type: MsgStartViewChange, View: r.view})
	r.maybeSendDoViewChange()
}

func (r *Replica) tickViewChange() {
	if r.vc.pending != nil && r.xfer.active {
		r.tickTransfer()
	}
	if r.ticks >= r.timeout {
		r.startViewChange(r.view + 1) // this view change is stuck; try the next primary
		return
	}
	if r.ticks%r.cfg.RetryTicks == 0 {
		r.broadcast(Message{Type: MsgStartViewChange, View: r.view})
		if r.vc.sentDVC && r.primaryOf(r.view) != r.self {
			r.send(r.doViewChange())
		}
	}
}

// onStartViewChange joins or counts a view change (§4.2 steps 1-2).
func (r *Replica) onStartViewChange(m Message) {
	if r.mode == ModeRecovering || m.View < r.view || (m.View == r.view && r.mode == ModeNormal) {
		return
	}
	if m.View > r.view && r.mode == ModeNormal && r.promising() {
		return // the lease promise holds; the sender will retry
	}
	if m.View > r.view {
		r.startViewChange(m.View)
	}
	r.vc.svc[m.From] = true
	r.maybeSendDoViewChange()
}

// maybeSendDoViewChange sends the DVC once f other replicas have joined the
// view change (§4.2 step 2). The new primary records its own.
func (r *Replica) maybeSendDoViewChange() {
	if r.vc.sentDVC || len(r.vc.svc) < r.f {
		return
	}
	r.vc.sentDVC = true
	dvc := r.doViewChange()
	if dvc.To == r.self {
		r.onDoViewChangeAtPrimary(dvc)
		return
	}
	r.send(dvc)
}

func (r *Replica) doViewChange() Message {
	return Message{
		Type: MsgDoViewChange, To: r.primaryOf(r.view), From: r.self, View: r.view,
		LastNormalView: r.lastNormal, Op: r.op, Commit: r.commit, LogStart: r.ckpt.Op + 1,
		Entries: r.entriesFrom(r.ckpt.Op+1, r.op),
	}
}

func (r *Replica) onDoViewChange(m Message) {
	if r.mode == ModeRecovering || m.View < r.view || r.primaryOf(m.View) != r.self {
		return
	}
	if m.View == r.view && r.mode == ModeNormal {
		return // the view has started; the sender will hear of it
	}
	if m.View > r.view && r.mode == ModeNormal && r.promising() {
		return // the lease promise holds; the sender will retry
	}
	if m.View > r.view {
		r.startViewChange(m.View)
	}
	r.onDoViewChangeAtPrimary(m)
}

// onDoViewChangeAtPrimary collects DVCs and starts the view with f+1 of them,
// its own included (§4.2 step 3).
func (r *Replica) onDoViewChangeAtPrimary(m Message) {
	if r.vc.pending != nil {
		return
	}
	if m.LogStart+uint64(len(m.Entries)) != m.Op+1 {
		return // malformed: the log does not end at Op
	}
	r.vc.dvc[m.From] = m
	if _, own := r.vc.dvc[r.self]; !own || len(r.vc.dvc) < r.f+1 {
		return
	}
	r.startView()
}

// chooseLog picks the DVC with the largest last-normal-view, then the
// largest op; ties go to the lowest member index, so the choice is
// deterministic.
func (r *Replica) chooseLog() Message {
	ids := make([]hasup.NodeID, 0, len(r.vc.dvc))
	for id := range r.vc.dvc {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b hasup.NodeID) int { return r.indexOf(a) - r.indexOf(b) })
	best := r.vc.dvc[ids[0]]
	for _, id := range ids[1:] {
		d := r.vc.dvc[id]
		if d.LastNormalView > best.LastNormalView || (d.LastNormalView == best.LastNormalView && d.Op > best.Op) {
			best = d
		}
	}
	return best
}

// startView installs the chosen log and starts the view (§4.2 steps 4-5).
// The new log keeps this replica's own committed prefix and takes the rest
// from the chosen log. If the chosen log starts beyond this replica's commit
// number, the ops between are committed but missing here: the new primary
// first fetches the chosen sender's checkpoint.
func (r *Replica) startView() {
	best := r.chooseLog()
	k := r.commit
	minCommit := r.commit
	for _, d := range r.vc.dvc {
		k = max(k, d.Commit)
		minCommit = min(minCommit, d.Commit)
	}
	if best.LogStart > r.commit+1 {
		b := best
		b.Commit = k
		r.vc.pending = &b
		r.startTransfer(best.From, true)
		return
	}
	r.mergeLog(best.LogStart, best.Entries, best.Op)
	r.becomeNormal()
	r.hardDirty = true
	r.setCommit(k)
	r.sendStartView(minCommit)
}

// finishPendingView completes startView once the checkpoint arrived.
func (r *Replica) finishPendingView(ck Checkpoint) {
	best := *r.vc.pending
	if ck.Op+1 < best.LogStart || ck.Op > best.Op {
		return // not a checkpoint the chosen log continues; keep trying until the timeout
	}
	r.installCheckpoint(ck)
	r.mergeLog(best.LogStart, best.Entries, best.Op)
	r.becomeNormal()
	r.hardDirty = true
	r.setCommit(best.Commit)
	r.sendStartView(0)
}

func (r *Replica) sendStartView(minCommit uint64) {
	lo := max(r.ckpt.Op, minCommit) + 1
	lo = min(lo, r.op+1)
	r.broadcast(Message{Type: MsgStartView, View: r.view, Op: r.op, Commit: r.commit, LogStart: lo, Entries: r.entriesFrom(lo, r.op)})
	r.primary.selfDurable = 0 // the new log counts once the Ready holding it is durable
}

// mergeLog replaces the log after the commit number with the given log,
// which runs from logStart to op, and must start at or before commit+1.
// Entries at or below the commit number are committed and must agree.
func (r *Replica) mergeLog(logStart uint64, entries []Entry, op uint64) {
	base := r.commit
	if logStart > base+1 {
		panic(r.violation("merging a log from %d after commit %d", logStart, base))
	}
	for _, e := range entries {
		if e.Op <= base && e.Op > r.ckpt.Op && !entryEqual(e, r.log[e.Op-r.ckpt.Op-1]) {
			panic(r.violation("committed op %d differs between logs", e.Op))
		}
	}
	if op < base {
		panic(r.violation("chosen log ends at %d below commit %d", op, base))
	}
	r.truncateLog(base)
	r.markLog(base + 1)
	for _, e := range entries {
		if e.Op > base {
			r.appendEntries([]Entry{e})
		}
	}
	if r.op != op {
		panic(r.violation("merged log ends at %d, want %d", r.op, op))
	}
}

// onStartView installs a new view's log at a backup (§4.2 step 5).
func (r *Replica) onStartView(m Message) {
	if r.mode == ModeRecovering || m.View < r.view || m.From != r.primaryOf(m.View) {
		return
	}
	if m.View == r.view && r.mode == ModeNormal {
		// A duplicate, or a late copy that would take the log back to the
		// view's start: the view's log is here already (or being fetched).
		if r.isCurrent() {
			r.send(Message{Type: MsgPrepareOK, To: m.From, View: r.view, Op: r.op})
		}
		return
	}
	if m.LogStart+uint64(len(m.Entries)) != m.Op+1 {
		return
	}
	if m.Op < r.commit {
		r.reject(m) // a new view's log holds every committed op: a broken peer
		return
	}
	r.view = m.View
	r.hardDirty = true
	if m.LogStart > r.commit+1 {
		// Ops between are committed but missing here: fetch the view's log
		// whole rather than adopt the view with a gap.
		r.mode = ModeNormal
		r.vc = viewChangeState{}
		r.startTransfer(m.From, false)
		r.resetTimeout()
		return
	}
	r.mergeLog(m.LogStart, m.Entries, m.Op)
	r.becomeNormal()
	r.setCommit(m.Commit)
	r.send(Message{Type: MsgPrepareOK, To: m.From, View: r.view, Op: r.op})
}

func (r *Replica) violation(format string, args ...any) string {
	return fmt.Sprintf("ensemble %s on %s (view %d, op %d, commit %d): invariant broken: ", r.cfg.Ensemble, r.self, r.view, r.op, r.commit) +
		fmt.Sprintf(format, args...)
}
