package ensemble

import "github.com/hasup/hasup"

// recoveryState is the RECOVERY protocol of a replica whose storage was lost
// (VRR §4.3). It persists nothing until it has the state of the latest view,
// and until then it sends no PREPAREOK, STARTVIEWCHANGE or DOVIEWCHANGE.
type recoveryState struct {
	nonce     uint64
	responses map[hasup.NodeID]Message
}

func (r *Replica) startRecovery() {
	r.mode = ModeRecovering
	r.xfer = transfer{}
	r.rec = recoveryState{nonce: r.cfg.Rand.Uint64() | 1, responses: map[hasup.NodeID]Message{}}
	r.ticks = 0
	r.broadcast(Message{Type: MsgRecovery, Nonce: r.rec.nonce})
}

func (r *Replica) tickRecovery() {
	if r.xfer.active {
		r.tickTransfer()
	}
	stuck := r.ticks >= 4*r.cfg.ViewChangeTicks
	if r.xfer.active {
		stuck = r.xfer.stalled >= 4*r.cfg.ViewChangeTicks
	}
	switch {
	case stuck:
		r.startRecovery() // no progress: start over with a fresh nonce
	case !r.xfer.active && r.ticks%r.cfg.RetryTicks == 0:
		r.broadcast(Message{Type: MsgRecovery, Nonce: r.rec.nonce})
	}
}

// onRecovery answers a recovering peer; only a replica that is normal in
// its view with the view's log may answer.
func (r *Replica) onRecovery(m Message) {
	if !r.isCurrent() {
		return
	}
	resp := Message{Type: MsgRecoveryResponse, To: m.From, View: r.view, Nonce: m.Nonce}
	if r.isPrimary() {
		resp.Op, resp.Commit = r.op, r.commit
	}
	r.send(resp)
}

// onRecoveryResponse collects f+1 answers carrying this recovery's nonce,
// one of them from the primary of the largest view among them, and then
// fetches that primary's state.
func (r *Replica) onRecoveryResponse(m Message) {
	if r.mode != ModeRecovering || m.Nonce != r.rec.nonce || r.xfer.active {
		return // a stale nonce answers an earlier recovery
	}
	r.rec.responses[m.From] = m
	if len(r.rec.responses) < r.f+1 {
		return
	}
	var top uint64
	for _, resp := range r.rec.responses {
		top = max(top, resp.View)
	}
	p, ok := r.rec.responses[r.primaryOf(top)]
	if !ok || p.View != top {
		return
	}
	r.view = top
	r.ticks = 0
	r.xfer = transfer{active: true, id: r.cfg.Rand.Uint64() | 1, from: p.From, view: top}
	r.sendGetState()
}
