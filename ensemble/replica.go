package ensemble

import (
	"fmt"
	"slices"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble/quorum"
	"github.com/hasup/hasup/fsm"
)

// Replica is one replica of one ensemble running Viewstamped Replication
// Revisited (Liskov & Cowling, MIT-CSAIL-TR-2012-021) with durable storage.
//
// It is a pure, deterministic state machine: inputs are Tick, Step, Propose
// and Read; outputs are collected into a Ready that the runtime executes
// (persist, then send, then answer) before calling Advance. It performs no
// I/O, reads no clock but the injected one, starts no goroutines and is not
// safe for concurrent use: one goroutine drives it.
//
// Design notes, by paper section:
//   - §4.1 normal operation: the primary batches proposals into PREPAREs and
//     pipelines up to PipelineMax of them. Backups append in order and
//     acknowledge cumulatively (PREPAREOK carries "I hold every op <= Op
//     durably"). Every message leaves only after the Ready that produced
//     it is durable, so every acknowledgement, and the primary counting
//     itself, vouches only for durable state.
//   - §4.2 view change: SVC quorum, then DVC to the new primary, which picks
//     the log with the largest last-normal-view, then the largest op. Logs
//     carry only the suffix after each sender's checkpoint; the new log keeps
//     the new primary's own committed prefix and takes the rest from the
//     chosen log (see merge).
//   - A log is never shortened while its last-normal-view is kept: a replica
//     that lacks the log of its view fetches it whole and installs it
//     atomically together with the new last-normal-view (see transfer.go).
//     This closes the data-loss trace of VRR-as-written found by TLA+.
//   - §4.3 recovery is run only by a replica whose storage is gone; an
//     intact one resumes from disk.
//   - §5 checkpoints every CheckpointOps ops; state transfer pulls a
//     checkpoint in ChunkBytes chunks, then the log suffix.
type Replica struct {
	cfg     Config
	self    hasup.NodeID
	members []hasup.NodeID
	n, f    int
	fsm     fsm.FSM
	clients *clientTable

	// Durable protocol state (HardState) and the log.
	epoch, view, lastNormal uint64
	mode                    Mode
	op, commit, applied     uint64
	log                     []Entry // ops ckpt.Op+1 .. op
	ckpt                    Checkpoint
	lastTime                int64 // largest batch time applied or prepared

	// Timers, in ticks.
	now           uint64 // ticks since this incarnation started, from 1
	incarnation   uint64 // random, new at every New: tells this run's lease stamps apart
	promiseUntil  uint64 // lease promise to the primary holds while now < promiseUntil
	suspected     bool   // told the primary is suspected: acknowledge nothing, change view
	heardCommit   uint64 // largest commit number heard from the view's primary
	heardAt       uint64 // now when the view's primary was last heard
	heardLag      uint64 // the lag that primary reported then
	ticks         int    // ticks since the last event that resets the current timer
	timeout       int    // current randomised view-change timeout
	heartbeatTick int
	quiescent     bool      // see quiesce.go
	syncedHard    HardState // the hard state of the last Ready (durable once it is advanced)

	primary primaryState
	vc      viewChangeState
	xfer    transfer
	rec     recoveryState

	// Output collected for the next Ready.
	hardDirty bool
	logFrom   uint64 // lowest op changed in the log since the last Ready (0: none)
	newCkpt   *Checkpoint
	msgs      []Message
	replies   []Reply
	appliedQ  []Applied
	inReady   bool
	readyOp   uint64 // op made durable by the Ready being executed
	readyView uint64
	rejected  uint64 // malformed messages dropped
	whyReject string // the last reason

	// Reconfiguration (epoch.go). stateEpoch and stateMembers are
	// replicated state: the epoch and member list as of the applied op.
	stateEpoch   uint64
	stateMembers []hasup.NodeID
	oldMembers   []hasup.NodeID        // the previous epoch's members
	epochStarted map[hasup.NodeID]bool // at a retired replica: who runs the new epoch
	stopped      bool
	amnesiac     bool // lost its storage: must recover in whatever epoch it ends up in
	// Where a committed transfer's sender stood, for entering its epoch.
	enterEpochAt, enterView uint64
	enterFrom               hasup.NodeID
}

// New returns a replica configured by cfg; see Config.Durable for the three
// ways to start. It fails if cfg is invalid or the durable state is
// malformed.
func New(cfg Config) (*Replica, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Replica{
		cfg:     cfg,
		self:    cfg.ID,
		members: slices.Clone(cfg.Members),
		n:       len(cfg.Members),
		f:       quorum.F(len(cfg.Members)),
		fsm:     cfg.FSM,
		clients: newClientTable(cfg.ClientsMax, cfg.ReplyBytesMax),
		epoch:   cfg.Epoch,
		now:     1,
	}
	r.incarnation = cfg.Rand.Uint64() | 1
	// It may have promised its primary just before a crash.
	r.promiseUntil = r.now + uint64(cfg.LeaseTicks)
	r.resetTimeout()
	r.stateEpoch, r.stateMembers = cfg.Epoch, slices.Clone(cfg.Members)
	switch {
	case cfg.Durable != nil:
		if err := r.restart(cfg.Durable); err != nil {
			return nil, fmt.Errorf("restart %s on %s: %w", cfg.Ensemble, cfg.ID, err)
		}
	case cfg.Bootstrap:
		r.mode = ModeNormal
		r.hardDirty = true
		r.becomeNormal()
	case cfg.Join:
		r.mode = ModeJoining
		r.stateEpoch, r.stateMembers = 0, nil // known once the state arrives
	default:
		// It lost its storage, so it may have voted in a later epoch than the
		// one it was told: until it recovers into a log that no
		// reconfiguration seals, entering any epoch means recovering again.
		r.amnesiac = true
		r.startRecovery()
	}
	return r, nil
}

// restart resumes from durable state: a restart is a long pause.
func (r *Replica) restart(d *Durable) error {
	h := d.Hard
	if h.Mode != ModeNormal && h.Mode != ModeViewChange && h.Mode != ModeRetired && h.Mode != ModeJoining {
		return fmt.Errorf("durable mode %v cannot be resumed", h.Mode)
	}
	if len(h.Members) > 0 {
		// The durable epoch and members are the latest this replica knew;
		// the config's may be older.
		if err := checkMembers(h.Members); err != nil {
			return fmt.Errorf("durable members: %w", err)
		}
		r.epoch = h.Epoch
		r.setMembers(h.Members)
		r.stateEpoch, r.stateMembers = h.Epoch, slices.Clone(h.Members)
	}
	r.view, r.mode, r.lastNormal, r.amnesiac = h.View, h.Mode, h.LastNormalView, h.Amnesiac
	r.syncedHard = h
	r.ckpt = d.Checkpoint
	r.op, r.applied = d.Checkpoint.Op, d.Checkpoint.Op
	if d.Checkpoint.Op > 0 {
		if err := r.restoreCheckpoint(d.Checkpoint.Data); err != nil {
			return err
		}
	}
	for i, e := range d.Entries {
		if e.Op != d.Checkpoint.Op+uint64(i)+1 {
			return fmt.Errorf("durable log not dense: entry %d has op %d after checkpoint %d", i, e.Op, d.Checkpoint.Op)
		}
	}
	r.log = slices.Clone(d.Entries)
	for _, e := range r.log {
		r.lastTime = max(r.lastTime, e.Time) // FSM time never goes back, even across a restart
	}
	r.op = d.Checkpoint.Op + uint64(len(d.Entries))
	r.commit = max(min(h.Commit, r.op), r.ckpt.Op)
	r.applyCommitted()
	switch {
	case r.mode == ModeRetired:
		r.epochStarted = map[hasup.NodeID]bool{}
	case r.mode == ModeJoining:
		// It fetched part of the committed state before a crash; it goes on.
	case r.mode == ModeViewChange:
		r.vc.reset(r.view)
		r.sendStartViewChange()
	case r.lastNormal < r.view:
		r.startTransfer(r.primaryOf(r.view), false)
	default:
		r.becomeNormal()
		if r.isPrimary() {
			r.primary.selfDurable = r.op // everything on disk is durable
			if r.n > 1 {
				// It may have sent PREPAREs it never made durable (Ready's
				// Unsynced): backups may hold ops of this view that its log
				// lacks, so it must not order new ones here. A view change
				// gathers what they hold.
				r.startViewChange(r.view + 1)
			} else {
				r.maybeCommit() // with one replica, that is a quorum
			}
		}
	}
	return nil
}

// TickN advances the replica's clock by k ticks at once, as a runtime
// does after its loop stalled: leases and promises, which count in the
// clock, see all k; the timers (view change, heartbeats, retries) see one
// tick, since the messages that arrived during the stall have not been
// stepped yet and would have reset them. Delaying a timer is always safe;
// stretching a lease is not, which is why the clock takes the whole k.
func (r *Replica) TickN(k uint64) {
	if k == 0 {
		return
	}
	r.checkNotInReady()
	r.now += k - 1
	r.Tick()
}

// Tick advances the replica's logical clock by one tick.
func (r *Replica) Tick() {
	r.checkNotInReady()
	r.ticks++
	r.now++
	if r.quiescent {
		return // no timer work (quiesce.go)
	}
	defer r.maybeEnterEpoch()
	switch {
	case r.mode == ModeRetired:
		r.tickRetired()
	case r.mode == ModeJoining:
		if r.xfer.active {
			r.tickTransfer()
		}
	case r.xfer.active && r.xfer.committed:
		r.tickTransfer()
	case r.mode == ModeRecovering:
		r.tickRecovery()
	case r.mode == ModeViewChange:
		r.tickViewChange()
	case r.isPrimary():
		r.tickPrimary()
	default:
		r.tickBackup()
	}
}

// Step feeds the replica one message from a peer. Messages for another
// ensemble or addressed to another node are dropped, malformed ones are
// counted (Status().Rejected). A message from an older epoch is answered
// with the news of this one; one from a later epoch makes this replica
// fetch the committed state that takes it there (epoch.go).
func (r *Replica) Step(m Message) {
	r.checkNotInReady()
	if m.Ensemble != r.cfg.Ensemble || m.To != r.self || m.From == "" || m.From == r.self {
		return
	}
	if err := validate(m); err != nil {
		r.rejectWhy(err.Error())
		return
	}
	if r.quiescent {
		if r.isPrimary() && m.Type == MsgCommitOK && m.Quiesce {
			return // a late or duplicate agreement to the quiescence in place
		}
		r.wake()
	}
	if r.primary.quiesceAt != nil && !(m.Type == MsgCommitOK && m.Quiesce) {
		if i := r.indexOf(m.From); i >= 0 {
			r.primary.quiesceAt[i] = 0 // it has said something since agreeing
		}
	}
	defer r.maybeEnterEpoch()
	// Messages that cross epochs first (epoch.go), then the epoch's own.
	switch {
	case m.Type == MsgGetState:
		r.onGetState(m)
		return
	case m.Type == MsgNewState:
		r.onNewState(m)
		return
	case m.Type == MsgEpochStarted:
		r.onEpochStarted(m)
		return
	case r.mode == ModeRetired:
		if m.Epoch > r.epoch {
			// A later epoch than the one that retired it runs, so that one
			// started long ago: nobody needs this replica's state.
			r.stopped = true
		}
		r.answerOlderEpoch(m)
		return
	case r.mode == ModeJoining:
		if m.Epoch >= r.epoch {
			r.onLaterEpoch(m)
		}
		return
	case m.Epoch > r.epoch:
		r.onLaterEpoch(m)
		return
	case m.Epoch < r.epoch:
		r.answerOlderEpoch(m)
		return
	case m.Type == MsgStartEpoch:
		r.onStartEpoch(m)
		return
	case r.indexOf(m.From) < 0 || (r.xfer.active && r.xfer.committed):
		return
	}
	switch m.Type {
	case MsgPrepare:
		r.onPrepare(m)
	case MsgPrepareOK:
		r.onPrepareOK(m)
	case MsgCommit:
		r.onCommit(m)
	case MsgCommitOK:
		r.onCommitOK(m)
	case MsgStartViewChange:
		r.onStartViewChange(m)
	case MsgDoViewChange:
		r.onDoViewChange(m)
	case MsgStartView:
		r.onStartView(m)
	case MsgRecovery:
		r.onRecovery(m)
	case MsgRecoveryResponse:
		r.onRecoveryResponse(m)
	}
}

// HasReady reports whether Ready has work for the runtime.
func (r *Replica) HasReady() bool {
	return r.hardDirty || r.logFrom > 0 || r.newCkpt != nil || len(r.msgs) > 0 || len(r.replies) > 0 ||
		len(r.appliedQ) > 0 || r.canFlush()
}

// Ready returns the work to do; see Ready for the order. The replica must
// not be called again (but for Status) until Advance.
func (r *Replica) Ready() Ready {
	r.checkNotInReady()
	r.flushProposals()
	rd := Ready{Messages: r.msgs, Replies: r.replies, Applied: r.appliedQ, Checkpoint: r.newCkpt}
	sameView := true
	if r.hardDirty {
		h := r.hardState()
		rd.HardState = &h
		sameView = sameViewState(h, r.syncedHard)
		r.syncedHard = h
	}
	if sameView && r.isPrimary() {
		rd.Early = partitionEarly(rd.Messages, r.view)
	}
	if r.logFrom > 0 {
		rd.LogFrom = r.logFrom
		rd.Entries = slices.Clone(r.entriesFrom(r.logFrom, r.op))
	}
	r.msgs, r.replies, r.appliedQ, r.newCkpt = nil, nil, nil, nil
	r.hardDirty, r.logFrom = false, 0
	r.inReady, r.readyOp, r.readyView = true, r.op, r.view
	return rd
}

// sameViewState reports whether two hard states differ at most in their
// commit number: then a primary's messages of the view may leave before
// the newer one is durable.
func sameViewState(a, b HardState) bool {
	return a.Epoch == b.Epoch && a.View == b.View && a.Mode == b.Mode && a.LastNormalView == b.LastNormalView &&
		a.Amnesiac == b.Amnesiac && slices.Equal(a.Members, b.Members)
}

// partitionEarly moves a primary's PREPAREs and COMMITs of view v to the
// front of msgs, keeping the order within each part, and returns how many
// there are.
func partitionEarly(msgs []Message, v uint64) int {
	early := func(m Message) bool { return (m.Type == MsgPrepare || m.Type == MsgCommit) && m.View == v }
	out := make([]Message, 0, len(msgs))
	for _, m := range msgs {
		if early(m) {
			out = append(out, m)
		}
	}
	k := len(out)
	for _, m := range msgs {
		if !early(m) {
			out = append(out, m)
		}
	}
	copy(msgs, out)
	return k
}

// Advance tells the replica that the last Ready was executed: its state is
// durable and its messages sent.
func (r *Replica) Advance() {
	if !r.inReady {
		panic(fmt.Sprintf("ensemble %s on %s: Advance without Ready", r.cfg.Ensemble, r.self))
	}
	r.inReady = false
	if r.isPrimary() && r.view == r.readyView {
		// The primary counts itself only for what is durable (§4.1 with disk).
		r.primary.selfDurable = max(r.primary.selfDurable, r.readyOp)
		r.maybeCommit()
		r.maybeEnterEpoch()
	}
}

// Status returns a description of the replica.
func (r *Replica) Status() Status {
	return Status{
		ID: r.self, Ensemble: r.cfg.Ensemble, Epoch: r.epoch, View: r.view, Mode: r.mode,
		LastNormalView: r.lastNormal, Op: r.op, Commit: r.commit, Applied: r.applied,
		CheckpointOp: r.ckpt.Op, Primary: r.primaryOf(r.view), IsPrimary: r.isPrimary(),
		Transferring: r.xfer.active, Rejected: r.rejected, LastRejection: r.whyReject,
		Fence: Fence(r.epoch, r.view), Now: r.now, HoldsLease: r.HoldsLease(), LeaseLeft: r.leaseLeft(),
		Members: slices.Clone(r.members), Stopped: r.stopped, Quiescent: r.quiescent,
	}
}

// LogEntry returns the entry with op number op if the replica's log holds it.
func (r *Replica) LogEntry(op uint64) (Entry, bool) {
	if op <= r.ckpt.Op || op > r.op {
		return Entry{}, false
	}
	return r.log[op-r.ckpt.Op-1], true
}

// Checkpoint returns the replica's latest checkpoint.
func (r *Replica) Checkpoint() Checkpoint { return r.ckpt }

// reject counts a message that only a broken peer sends.
func (r *Replica) reject(m Message) { r.rejectWhy("unexpected " + m.String()) }

func (r *Replica) rejectWhy(why string) {
	r.rejected++
	r.whyReject = why
}

func (r *Replica) checkNotInReady() {
	if r.inReady {
		panic(fmt.Sprintf("ensemble %s on %s: called between Ready and Advance", r.cfg.Ensemble, r.self))
	}
}

func (r *Replica) hardState() HardState {
	return HardState{Epoch: r.epoch, Members: slices.Clone(r.members), View: r.view, Mode: r.mode, LastNormalView: r.lastNormal, Commit: r.commit, Amnesiac: r.amnesiac}
}

func (r *Replica) primaryOf(view uint64) hasup.NodeID { return r.members[view%uint64(r.n)] }

// isPrimary: this replica is the primary of a normal view whose log it has,
// and is not leaving its epoch for a later one.
func (r *Replica) isPrimary() bool {
	return r.mode == ModeNormal && r.lastNormal == r.view && r.primaryOf(r.view) == r.self && !r.leaving()
}

// isCurrent: normal in a view whose log it holds (a backup that can ack).
func (r *Replica) isCurrent() bool {
	return r.mode == ModeNormal && r.lastNormal == r.view && !r.xfer.active
}

// leaving: it heard of a later epoch and fetches the committed state that
// takes it there; it takes no part in its own epoch meanwhile.
func (r *Replica) leaving() bool { return r.xfer.active && r.xfer.committed }

func (r *Replica) indexOf(id hasup.NodeID) int { return slices.Index(r.members, id) }

func (r *Replica) resetTimeout() {
	r.ticks = 0
	r.timeout = r.cfg.ViewChangeTicks + r.cfg.Rand.IntN(r.cfg.ViewChangeTicks)
}

func (r *Replica) send(m Message) {
	m.Ensemble, m.Epoch, m.From = r.cfg.Ensemble, r.epoch, r.self
	if (m.Type == MsgPrepare || m.Type == MsgCommit) && r.isPrimary() {
		r.stamp(&m)
	}
	r.msgs = append(r.msgs, m)
}

func (r *Replica) broadcast(m Message) {
	for _, id := range r.members {
		if id != r.self {
			m.To = id
			r.send(m)
		}
	}
}

// entriesFrom returns the log entries from op lo to hi inclusive; both must
// lie within the log.
func (r *Replica) entriesFrom(lo, hi uint64) []Entry {
	if lo > hi {
		return nil
	}
	if lo <= r.ckpt.Op || hi > r.op {
		panic(fmt.Sprintf("ensemble %s on %s: entries %d..%d outside log %d..%d", r.cfg.Ensemble, r.self, lo, hi, r.ckpt.Op+1, r.op))
	}
	return r.log[lo-r.ckpt.Op-1 : hi-r.ckpt.Op]
}

// markLog records that the log changed from op on, for the next Ready.
func (r *Replica) markLog(from uint64) {
	if r.logFrom == 0 || from < r.logFrom {
		r.logFrom = from
	}
}

// truncateLog keeps the log up to op keep and returns it for appending.
func (r *Replica) truncateLog(keep uint64) {
	if keep < r.commit {
		panic(fmt.Sprintf("ensemble %s on %s: truncating log to %d below commit %d", r.cfg.Ensemble, r.self, keep, r.commit))
	}
	if keep < r.op {
		r.log = r.log[:keep-r.ckpt.Op]
		r.op = keep
		r.markLog(keep + 1)
	}
}

func (r *Replica) appendEntries(es []Entry) {
	for _, e := range es {
		if e.Op != r.op+1 {
			panic(fmt.Sprintf("ensemble %s on %s: appending op %d after %d", r.cfg.Ensemble, r.self, e.Op, r.op))
		}
		r.log = append(r.log, e)
		r.op = e.Op
		r.lastTime = max(r.lastTime, e.Time)
		r.markLog(e.Op)
	}
}

// setCommit raises the commit number (never above op) and applies.
func (r *Replica) setCommit(k uint64) {
	k = min(k, r.op)
	if k > r.commit {
		// Not a reason to write the hard state by itself: a commit number
		// is re-learned after a restart (a lower one only means applying
		// later), and the next write carries it anyway. Writing it alone
		// would cost a primary one storage sync per batch.
		r.commit = k
	}
	r.applyCommitted()
}
