package ensemble

import (
	"fmt"

	"github.com/hasup/hasup/ensemble/quorum"
)

// readState batches linearizable reads at a primary. A read needs no log
// write: the primary notes its commit number when the read arrives, then
// confirms with a quorum round (COMMIT with a round number, answered by
// COMMITOK) that no newer view had started by then, then answers once it has
// applied that commit number and everything ordered before its view began.
// One round serves every read that arrived before the round started.
//
// Round numbers start at a random base for every primary incarnation: a
// COMMITOK still in flight from before a restart in the same view must not
// confirm a round started after it (simulator seed 914: a deposed primary
// restarted, counted a pre-crash COMMITOK and served a stale read).
type readState struct {
	base      uint64 // random first round of this primary incarnation
	round     uint64 // last round started
	confirmed uint64 // last round a quorum confirmed
	inFlight  bool
	oks       []uint64 // per member index: highest round confirmed
	pending   []pendingRead
}

type pendingRead struct {
	id     uint64
	query  []byte
	commit uint64 // commit number when the read arrived
	round  uint64 // the round that must be confirmed
}

// ReadMode says how fresh a read must be, and so what it costs.
type ReadMode uint8

// Read modes.
const (
	// ReadLinearizable: the primary confirms with a quorum round that its
	// view is current, then answers from state that includes every write
	// acknowledged before the read. No log write; rounds are batched.
	ReadLinearizable ReadMode = iota
	// ReadLease: the primary answers at once from its state if it holds its
	// lease (see HoldsLease); linearizable within the clock-drift bound.
	// Without a lease it fails with ErrNoLease, and the caller may retry
	// as linearizable.
	ReadLease
	// ReadStale: any replica answers at once from its own state, with how
	// far it is behind (Reply.LagOps, Reply.LagTicks), and refuses with
	// ErrTooStale beyond the request's bounds.
	ReadStale
)

// ReadRequest is a read of the FSM's state.
type ReadRequest struct {
	ID    uint64 // the caller's tag, echoed in the Reply
	Query []byte
	Mode  ReadMode
	// For ReadStale: the most ops and ticks the answer may be behind the
	// latest commit this replica has heard of and the last time it heard
	// from its primary.
	MaxLagOps   uint64
	MaxLagTicks uint64
}

// Read asks the primary for a linearizable answer to query from the FSM:
// ReadAt with ReadLinearizable.
func (r *Replica) Read(id uint64, query []byte) error {
	return r.ReadAt(ReadRequest{ID: id, Query: query})
}

// ReadAt reads the FSM's state in the request's mode. It fails at once if
// this replica cannot serve that mode now, or if the read queue is full;
// otherwise a Reply with the request's ID follows in a later Ready.
func (r *Replica) ReadAt(q ReadRequest) error {
	r.checkNotInReady()
	switch {
	case r.mode == ModeRecovering:
		return ErrRecovering
	case q.Mode == ReadStale:
		return r.readStale(q)
	case q.Mode > ReadStale:
		return fmt.Errorf("ensemble: unknown read mode %d", q.Mode)
	case !r.isPrimary():
		return ErrNotPrimary
	case r.quiescent:
		// Its lease ran out while it was quiescent; a confirmed read starts
		// heartbeats again, and a lease with them.
		r.wake()
	}
	switch {
	case q.Mode == ReadLease:
		return r.readLease(q)
	case len(r.primary.reads.pending) >= r.cfg.ReadsMax:
		return ErrBusy
	}
	rs := &r.primary.reads
	rs.pending = append(rs.pending, pendingRead{id: q.ID, query: q.Query, commit: r.commit, round: rs.round + 1})
	r.maybeStartRound()
	r.serveReads()
	return nil
}

// readLease answers at once while the lease holds and every op ordered
// before the view began has committed (an acknowledged write may sit there).
func (r *Replica) readLease(q ReadRequest) error {
	if !r.HoldsLease() || r.commit < r.primary.startOp || r.applied < r.commit {
		return ErrNoLease
	}
	res, err := r.fsm.Query(q.Query)
	r.replies = append(r.replies, Reply{ID: q.ID, Result: res, Err: err})
	return nil
}

// primaryLag is how stale a primary may be: the ticks since a majority
// last echoed its stamps (a deposed primary does not know it is deposed).
// Before its view's inherited ops commit, it cannot tell: the maximum.
func (r *Replica) primaryLag() uint64 {
	if r.commit < r.primary.startOp {
		return unknownLag
	}
	stamps := make([]uint64, r.n)
	copy(stamps, r.primary.leaseFrom)
	stamps[r.indexOf(r.self)] = r.now
	return r.now - quorum.Committed(stamps, r.n)
}

// unknownLag stands for "no bound known"; sums with it cannot overflow.
const unknownLag = 1 << 40

// readStale answers from this replica's own state, saying how far behind
// the latest commit it has heard of, and how long ago it heard its primary.
func (r *Replica) readStale(q ReadRequest) error {
	if r.mode != ModeNormal {
		return ErrTooStale
	}
	lagOps, lagTicks := uint64(0), uint64(0)
	if r.isPrimary() {
		if r.commit < r.primary.startOp {
			// What its view inherited may hold acknowledged ops it has not
			// committed (applied) yet: it cannot bound its lag.
			return fmt.Errorf("%w: the view's inherited ops are not committed yet", ErrTooStale)
		}
		lagTicks = r.primaryLag()
	} else {
		if r.heardAt == 0 {
			// Nothing heard from a primary since this replica started: it
			// cannot know how far behind it is (a restart after a long
			// outage looks current).
			return fmt.Errorf("%w: no word from a primary since this replica started", ErrTooStale)
		}
		lagOps = max(r.heardCommit, r.commit) - r.applied
		// Its primary may itself be deposed: add the lag it reported.
		lagTicks = r.now - r.heardAt + r.heardLag
	}
	if lagOps > q.MaxLagOps || lagTicks > q.MaxLagTicks {
		return fmt.Errorf("%w: %d ops and %d ticks behind, bounds %d and %d", ErrTooStale, lagOps, lagTicks, q.MaxLagOps, q.MaxLagTicks)
	}
	res, err := r.fsm.Query(q.Query)
	r.replies = append(r.replies, Reply{ID: q.ID, Op: r.applied, Result: res, Err: err, LagOps: lagOps, LagTicks: lagTicks})
	return nil
}

// maybeStartRound starts a confirmation round if reads wait for one and none
// is in flight. With one replica, the round confirms itself.
func (r *Replica) maybeStartRound() {
	rs := &r.primary.reads
	if rs.inFlight || len(rs.pending) == 0 || rs.pending[len(rs.pending)-1].round <= rs.confirmed {
		return
	}
	rs.round++
	rs.inFlight = true
	if rs.oks == nil {
		rs.oks = make([]uint64, r.n)
	}
	rs.oks[r.indexOf(r.self)] = rs.round
	r.broadcast(Message{Type: MsgCommit, View: r.view, Commit: r.commit, LogStart: r.ckpt.Op + 1, Round: rs.round})
	r.checkRound()
}

// onCommitOK counts a replica's confirmation that the view is current.
func (r *Replica) onCommitOK(m Message) {
	if !r.isPrimary() || m.View != r.view {
		return
	}
	if m.Quiesce {
		defer r.onQuiesceAck(m)
	}
	if m.Round == 0 {
		return
	}
	r.onLeaseEcho(m)
	r.primary.heard[r.indexOf(m.From)] = r.now
	rs := &r.primary.reads
	if rs.oks == nil || m.Round <= rs.base || m.Round > rs.round {
		return // not a round of this incarnation
	}
	i := r.indexOf(m.From)
	rs.oks[i] = max(rs.oks[i], m.Round)
	r.checkRound()
}

func (r *Replica) checkRound() {
	rs := &r.primary.reads
	if !rs.inFlight {
		return
	}
	if c := quorum.Committed(rs.oks, r.n); c >= rs.round {
		rs.confirmed = rs.round
		rs.inFlight = false
		r.serveReads()
		r.maybeStartRound()
	}
}

// serveReads answers every confirmed read whose state has been applied.
func (r *Replica) serveReads() {
	rs := &r.primary.reads
	if r.commit < r.primary.startOp {
		return // ops ordered before this view began may be committed already
	}
	i := 0
	for ; i < len(rs.pending); i++ {
		p := rs.pending[i]
		if p.round > rs.confirmed || r.applied < p.commit {
			break
		}
		res, err := r.fsm.Query(p.query)
		r.replies = append(r.replies, Reply{ID: p.id, Result: res, Err: err})
	}
	rs.pending = rs.pending[i:]
}
