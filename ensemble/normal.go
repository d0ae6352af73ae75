package ensemble

import (
	"slices"

	"github.com/hasup/hasup/ensemble/quorum"
)

// Proposal is a request for the primary to order.
type Proposal struct {
	// ID is the caller's tag, echoed in the Reply.
	ID uint64
	// Client and Request give at-most-once execution: request numbers of a
	// client increase, and a retry reuses its number. Client 0 opts out of
	// the client table. Request 0 opens (or refreshes) the client's session
	// and executes nothing; its Cmd may hold RegisterFloor(n), the largest
	// request number the client ever used, so that a session reopened after
	// an eviction refuses every old request (their retries would otherwise
	// execute a second time).
	Client  uint64
	Request uint64
	Cmd     []byte

	reconfig bool // queued by Reconfigure
}

// primaryState is what only a primary keeps, reset at every new view.
type primaryState struct {
	acks        []uint64 // per member index: highest op acknowledged in this view
	leaseFrom   []uint64 // per member index: largest own stamp it echoed in this view
	heard       []uint64 // per member index: now when it last acknowledged in this view
	startedAt   uint64   // now when this replica became primary of the view
	selfDurable uint64   // highest op of this primary's log that is durable
	startOp     uint64   // op number when the view started: reads wait for it to commit
	queue       []Proposal
	inflight    []uint64            // last op of each batch prepared but not committed
	waiters     map[uint64][]uint64 // op -> caller IDs (a retry may join a waiting caller)
	reads       readState
	idleTicks   int      // primary ticks in a row with nothing to do (quiesce.go)
	wokeAt      uint64   // now when it last woke from quiescence
	quiesceAt   []uint64 // per member index: 1 + the op at which it agreed to quiesce
}

// becomeNormal (re)initialises the per-view state of a replica that is
// normal in its view with the view's log.
func (r *Replica) becomeNormal() {
	r.mode = ModeNormal
	r.lastNormal = r.view
	r.suspected = false
	r.xfer = transfer{}
	r.vc = viewChangeState{}
	r.resetTimeout()
	r.failWaiters(ErrViewChanged)
	r.primary = primaryState{waiters: map[uint64][]uint64{}}
	if r.primaryOf(r.view) == r.self {
		r.primary.acks = make([]uint64, r.n)
		r.primary.leaseFrom = make([]uint64, r.n)
		r.primary.heard = make([]uint64, r.n)
		r.primary.startedAt = r.now
		r.primary.startOp = r.op
		base := r.cfg.Rand.Uint64() >> 2 // headroom: rounds only grow from here
		r.primary.reads = readState{base: base, round: base, confirmed: base}
		r.heartbeatTick = 0
		if r.op > r.commit {
			// The inherited uncommitted tail counts against the pipeline.
			r.primary.inflight = []uint64{r.op}
		}
	}
}

// failWaiters answers every caller waiting on this replica as a primary.
func (r *Replica) failWaiters(err error) {
	ops := make([]uint64, 0, len(r.primary.waiters))
	for op := range r.primary.waiters {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	for _, op := range ops {
		for _, id := range r.primary.waiters[op] {
			r.replies = append(r.replies, Reply{ID: id, Err: err})
		}
	}
	for _, p := range r.primary.queue {
		r.replies = append(r.replies, Reply{ID: p.ID, Err: ErrNotPrimary})
	}
	for _, rd := range r.primary.reads.pending {
		r.replies = append(r.replies, Reply{ID: rd.id, Err: ErrNotPrimary})
	}
	r.primary.waiters, r.primary.queue, r.primary.reads.pending = nil, nil, nil
}

// Propose asks the primary to order p. It fails at once if this replica is
// not the primary of a normal view, if the queue is full or if the command
// cannot fit a batch; otherwise a Reply with p.ID follows in a later Ready.
func (r *Replica) Propose(p Proposal) error {
	r.checkNotInReady()
	if err := r.canOrder(); err != nil {
		return err
	}
	r.wake()
	switch {
	case len(p.Cmd)+64 > r.cfg.BatchBytes:
		return ErrTooLarge
	case len(r.primary.queue) >= r.cfg.ProposalsMax:
		return ErrBusy
	}
	r.primary.queue = append(r.primary.queue, p)
	return nil
}

// canOrder says whether this replica may take a new op to order now: it
// is the primary of a normal view and no reconfiguration is pending.
func (r *Replica) canOrder() error {
	switch {
	case r.mode == ModeRecovering:
		return ErrRecovering
	case !r.isPrimary():
		return ErrNotPrimary
	case r.sealed() || r.queuedReconfig():
		return ErrReconfiguring
	}
	return nil
}

func (r *Replica) canFlush() bool {
	if !r.isPrimary() || len(r.primary.queue) == 0 || r.sealed() {
		return false
	}
	r.pruneInflight()
	return len(r.primary.inflight) < r.cfg.PipelineMax
}

// pruneInflight forgets the batches that have committed.
func (r *Replica) pruneInflight() {
	for len(r.primary.inflight) > 0 && r.primary.inflight[0] <= r.commit {
		r.primary.inflight = r.primary.inflight[1:]
	}
}

// flushProposals turns queued proposals into PREPARE batches while the
// pipeline has room.
func (r *Replica) flushProposals() {
	for r.canFlush() {
		r.prepareBatch()
	}
}

func (r *Replica) prepareBatch() {
	now := int64(0)
	if r.cfg.Clock != nil {
		now = r.cfg.Clock()
	}
	r.lastTime = max(r.lastTime, now) // FSM time never goes back along the log
	seed := r.cfg.Rand.Uint64()
	first, bytes := r.op+1, 0
	q := r.primary.queue
	i := 0
	for ; i < len(q) && i < r.cfg.BatchOps && !r.sealed(); i++ {
		p := q[i]
		if bytes+len(p.Cmd)+64 > r.cfg.BatchBytes && i > 0 {
			break
		}
		if op, ok := r.findUncommitted(p); ok {
			r.primary.waiters[op] = append(r.primary.waiters[op], p.ID) // a retry of a request already in the log
			continue
		}
		kind := EntryRequest
		switch {
		case p.reconfig:
			kind = EntryReconfigure
		case p.Client != 0 && p.Request == 0:
			kind = EntryRegister
		}
		bytes += len(p.Cmd) + 64
		e := Entry{Op: r.op + 1, Epoch: r.epoch, View: r.view, Kind: kind, Client: p.Client, Request: p.Request, Time: r.lastTime, Seed: seed, Cmd: p.Cmd}
		r.appendEntries([]Entry{e})
		r.primary.waiters[e.Op] = append(r.primary.waiters[e.Op], p.ID)
	}
	r.primary.queue = slices.Delete(q, 0, i)
	if r.op < first {
		return
	}
	r.primary.inflight = append(r.primary.inflight, r.op)
	r.broadcast(Message{Type: MsgPrepare, View: r.view, Commit: r.commit, Entries: r.entriesFrom(first, r.op)})
	r.heartbeatTick = 0
}

// findUncommitted finds p in the uncommitted part of the log, where a
// retry after a view change may already sit.
func (r *Replica) findUncommitted(p Proposal) (uint64, bool) {
	if p.Client == 0 {
		return 0, false
	}
	for op := r.commit + 1; op <= r.op; op++ {
		e := r.log[op-r.ckpt.Op-1]
		if e.Client == p.Client && e.Request == p.Request {
			return op, true
		}
	}
	return 0, false
}

// onPrepare handles a PREPARE at a backup (§4.1 steps 4-5).
func (r *Replica) onPrepare(m Message) {
	if !r.fromPrimaryOf(m) {
		return
	}
	r.resetTimeout()
	if !r.isCurrent() {
		return
	}
	if len(m.Entries) > 0 {
		first := m.Entries[0].Op
		if first > r.op+1 {
			r.startTransfer(m.From, false) // a gap: fetch what is missing
			return
		}
		for _, e := range m.Entries {
			if e.Op <= r.op {
				if e.Op > r.ckpt.Op && !entryEqual(e, r.log[e.Op-r.ckpt.Op-1]) {
					if e.Op <= r.commit {
						// This replica entered the epoch with a committed
						// prefix from a later view: the sender is a stale
						// primary of this view. Its message changes nothing.
						return
					}
					panic(r.violation("PREPARE of view %d rewrites op %d of the same view", m.View, e.Op))
				}
				continue
			}
			r.appendEntries([]Entry{e})
		}
	}
	r.setCommit(m.Commit)
	r.ackPrimary(m, Message{Type: MsgPrepareOK, Op: r.op})
}

// fromPrimaryOf handles the view in a message from a view's primary: a newer
// view means this replica missed a view change and must fetch the new log.
// It returns whether m belongs to the replica's current view.
func (r *Replica) fromPrimaryOf(m Message) bool {
	if r.mode == ModeRecovering || m.View < r.view || m.From != r.primaryOf(m.View) {
		return false
	}
	if m.View > r.view || r.mode == ModeViewChange {
		r.view = m.View
		r.mode = ModeNormal
		r.hardDirty = true
		r.vc = viewChangeState{}
		r.startTransfer(m.From, false)
		r.resetTimeout()
		return false
	}
	r.heardAt, r.heardCommit, r.heardLag = r.now, max(r.heardCommit, m.Commit), min(m.Lag, unknownLag)
	return true
}

// onPrepareOK counts a backup's acknowledgement at the primary (§4.1 step 6).
func (r *Replica) onPrepareOK(m Message) {
	if !r.isPrimary() || m.View != r.view {
		return
	}
	if m.Op > r.op {
		// Only a broken peer acknowledges what this primary never sent.
		r.reject(m)
		return
	}
	i := r.indexOf(m.From)
	r.primary.acks[i] = max(r.primary.acks[i], m.Op)
	r.primary.heard[i] = r.now
	r.onLeaseEcho(m)
	r.maybeCommit()
}

// maybeCommit commits the largest op a majority holds durably.
func (r *Replica) maybeCommit() {
	acks := slices.Clone(r.primary.acks)
	acks[r.indexOf(r.self)] = r.primary.selfDurable
	k := quorum.Committed(acks, r.n)
	if k <= r.commit {
		return
	}
	r.setCommit(k)
	r.pruneInflight()
	r.serveReads()
}

// onCommit handles a COMMIT heartbeat at a backup.
func (r *Replica) onCommit(m Message) {
	if !r.fromPrimaryOf(m) {
		return
	}
	r.resetTimeout()
	if r.isCurrent() {
		switch {
		case m.Commit > r.op && m.LogStart > r.op+1:
			r.startTransfer(m.From, false) // the primary no longer holds what is missing
			return
		case m.Commit > r.op:
			r.ackPrimary(m, Message{Type: MsgPrepareOK, Op: r.op}) // ask for a resend
		}
		r.setCommit(m.Commit)
	}
	// Any replica in the view vouches that the view is current, for reads.
	ack := Message{Type: MsgCommitOK, Round: m.Round}
	if r.maybeQuiesceBackup(m) {
		ack.Quiesce, ack.Op = true, r.op
	}
	r.ackPrimary(m, ack)
}

func (r *Replica) tickPrimary() {
	if r.lostQuorum() {
		// It can send but hears no majority (a one-way partition): its
		// heartbeats would keep the backups from ever replacing it.
		r.startViewChange(r.view + 1)
		return
	}
	quiesce := r.tickQuiesce()
	r.heartbeatTick++
	if r.heartbeatTick < r.cfg.HeartbeatTicks {
		return
	}
	r.heartbeatTick = 0
	for i, id := range r.members {
		if id == r.self {
			continue
		}
		if a := r.primary.acks[i]; a < r.op {
			// Resend what the backup has not acknowledged, one batch at most.
			lo := max(a, r.ckpt.Op) + 1
			hi := min(r.op, lo+uint64(r.cfg.BatchOps)-1)
			if lo <= hi {
				r.send(Message{Type: MsgPrepare, To: id, View: r.view, Commit: r.commit, Entries: r.entriesFrom(lo, hi)})
			}
		}
		r.send(Message{Type: MsgCommit, To: id, View: r.view, Commit: r.commit, LogStart: r.ckpt.Op + 1, Round: r.primary.reads.round, Quiesce: quiesce})
	}
}

// lostQuorum: for a whole view-change timeout, fewer than f backups have
// acknowledged anything (etcd-raft's CheckQuorum).
func (r *Replica) lostQuorum() bool {
	window := uint64(2 * r.cfg.ViewChangeTicks)
	if r.f == 0 || r.now-max(r.primary.startedAt, r.primary.wokeAt) < window {
		return false
	}
	heard := 0
	for i, at := range r.primary.heard {
		if r.members[i] != r.self && r.now-at < window {
			heard++
		}
	}
	return heard < r.f
}

func (r *Replica) tickBackup() {
	if r.xfer.active {
		r.tickTransfer()
	}
	if (r.ticks >= r.timeout || r.suspected) && !r.promising() {
		r.startViewChange(r.view + 1)
	}
}
