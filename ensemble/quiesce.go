package ensemble

// Quiescence (DESIGN.md "Many ensembles per node": idle ensembles cost no
// CPU), after CockroachDB's quiesced ranges.
//
// A primary heartbeats every HeartbeatTicks so that its backups can tell it
// is alive; with a thousand ensembles on a node that is most of the node's
// work while nothing happens. So an ensemble that has nothing to do stops:
//
//  1. The primary of a normal view counts idle ticks: nothing queued, in
//     flight or uncommitted, no read waiting, no transfer or
//     reconfiguration, every backup has acknowledged its whole log and was
//     heard within the last ViewChangeTicks. After
//     QuiesceTicks of them its heartbeats carry Quiesce.
//  2. A backup that gets such a COMMIT and holds exactly the primary's log,
//     all of it committed, becomes quiescent and says so in its COMMITOK
//     (Quiesce, Op).
//  3. When every backup has said so at the primary's current op, the
//     primary becomes quiescent too and stops heartbeating.
//
// A quiescent replica does no timer work: Tick only advances its clock
// (lease promises and lag keep their meaning), and a runtime may skip it
// and call Elapse when it needs the replica again. Anything wakes it: any
// message for it, Propose, a read other than a stale one, Reconfigure,
// SuspectPrimary, and Wake. Waking restarts the view-change timer (the
// backup heard from the primary when it quiesced); a backup woken by Wake
// also pokes its primary so that the primary resumes heartbeating.
//
// Failure detection while quiescent is the runtime's: it must call Wake on
// every quiescent replica one of whose members' nodes it has not heard from
// for a while (the host exchanges one heartbeat per node pair, whatever
// the number of ensembles). Once awake, the ordinary timeouts find a dead
// primary; a live one resumes heartbeats when poked. The runtime must also
// wake every quiescent replica now and then (a refresh): a backup that
// missed the messages of a wake-up, then quiesced again, is otherwise
// stranded when nobody is left to retransmit to it (the op that removed it
// from the ensemble, say: the new epoch's members no longer talk to it).
// The simulator found that case.
//
// Quiescence is a liveness matter only: no safety argument rests on it. A
// lost Quiesce COMMIT or COMMITOK costs another round; a backup that missed
// the quiescence times out and starts a view change, which wakes the rest.
// A primary's lease runs out while it is quiescent, since it sends no
// stamps; an ensemble that needs a lease held continuously (a singleton
// worker) sets QuiesceTicks to 0.
//
// Rejected alternative: keep ticking idle ensembles but coalesce their
// heartbeats into one message per node pair (CockroachDB's first design).
// It still costs work per ensemble per heartbeat at both ends.

// Quiescent reports whether the replica is quiescent (see above).
func (r *Replica) Quiescent() bool { return r.quiescent }

// Elapse advances a quiescent replica's clock by k ticks: the same as k
// calls of Tick, which do nothing else while it is quiescent. It panics if
// the replica is not quiescent.
func (r *Replica) Elapse(k uint64) {
	r.checkNotInReady()
	if !r.quiescent {
		panic(r.violation("Elapse on a replica that is not quiescent"))
	}
	r.now += k
	r.ticks += int(min(k, 1<<30))
}

// Wake ends quiescence: the runtime lost touch with a member's node, or
// wants the replica's timers running for any other reason. A woken backup
// pokes its primary. Waking a replica that is not quiescent does nothing.
func (r *Replica) Wake() {
	r.checkNotInReady()
	if !r.quiescent {
		return
	}
	r.wake()
	if r.mode == ModeNormal && !r.isPrimary() && !r.suspected {
		r.send(Message{Type: MsgPrepareOK, To: r.primaryOf(r.view), View: r.view, Op: r.op})
	}
}

// wake ends quiescence without a poke.
func (r *Replica) wake() {
	if !r.quiescent {
		return
	}
	r.quiescent = false
	r.ticks = 0 // the timer restarts; the timeout drawn stays
	if r.isPrimary() {
		r.primary.idleTicks, r.primary.wokeAt, r.heartbeatTick = 0, r.now, 0
		clear(r.primary.quiesceAt)
	}
}

// idle reports whether this primary has nothing to do.
func (r *Replica) idle() bool {
	p := &r.primary
	if r.cfg.QuiesceTicks == 0 || len(p.queue) > 0 || len(p.inflight) > 0 || r.commit != r.op ||
		r.applied != r.commit || r.commit < p.startOp || len(p.reads.pending) > 0 || p.reads.inFlight ||
		r.xfer.active || r.sealed() || r.queuedReconfig() {
		return false
	}
	for i, id := range r.members {
		// A backup not heard from lately may be down: an ensemble short of
		// a member keeps heartbeating, so that its live backups do not
		// quiesce only to be woken again by the runtime, which misses the
		// dead member's node too.
		if id != r.self && (p.acks[i] < r.op || r.now-p.heard[i] > uint64(r.cfg.ViewChangeTicks)) {
			return false
		}
	}
	return true
}

// tickQuiesce runs at each primary tick: it counts idle ticks and says
// whether this tick's heartbeats ask the backups to quiesce.
func (r *Replica) tickQuiesce() bool {
	if !r.idle() {
		r.primary.idleTicks = 0
		clear(r.primary.quiesceAt)
		return false
	}
	r.primary.idleTicks++
	return r.primary.idleTicks >= r.cfg.QuiesceTicks
}

// onQuiesceAck counts a backup's COMMITOK that says it is quiescent at op
// m.Op, and quiesces the primary once every backup is.
func (r *Replica) onQuiesceAck(m Message) {
	p := &r.primary
	if m.Op != r.op || !r.idle() || p.idleTicks < r.cfg.QuiesceTicks {
		return
	}
	if p.quiesceAt == nil {
		p.quiesceAt = make([]uint64, r.n)
	}
	p.quiesceAt[r.indexOf(m.From)] = r.op + 1
	for i, id := range r.members {
		if id != r.self && p.quiesceAt[i] != r.op+1 {
			return
		}
	}
	r.quiescent = true
}

// maybeQuiesceBackup quiesces a backup on the primary's Quiesce COMMIT m
// if it holds exactly the primary's log, all committed.
func (r *Replica) maybeQuiesceBackup(m Message) bool {
	if !m.Quiesce || r.mode != ModeNormal || r.suspected || r.xfer.active || !r.isCurrent() ||
		r.op != m.Commit || r.commit != r.op || r.applied != r.commit {
		return false
	}
	r.quiescent = true
	return true
}
