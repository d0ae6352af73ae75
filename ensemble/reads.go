package ensemble

import "github.com/hasup/hasup/ensemble/quorum"

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

// Read asks the primary for a linearizable answer to query from the FSM. It
// fails at once if this replica is not the primary of a normal view or the
// read queue is full; otherwise a Reply with id follows in a later Ready.
func (r *Replica) Read(id uint64, query []byte) error {
	r.checkNotInReady()
	switch {
	case r.mode == ModeRecovering:
		return ErrRecovering
	case !r.isPrimary():
		return ErrNotPrimary
	case len(r.primary.reads.pending) >= r.cfg.ReadsMax:
		return ErrBusy
	}
	rs := &r.primary.reads
	rs.pending = append(rs.pending, pendingRead{id: id, query: query, commit: r.commit, round: rs.round + 1})
	r.maybeStartRound()
	r.serveReads()
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
	if !r.isPrimary() || m.View != r.view || m.Round == 0 {
		return
	}
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
