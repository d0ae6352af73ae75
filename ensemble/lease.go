package ensemble

import "github.com/hasup/hasup/ensemble/quorum"

// Leases (DESIGN.md "Leases and fencing").
//
// A backup that acknowledges a PREPARE or COMMIT of its view's primary
// promises not to start or join a view change for LeaseTicks of its own
// ticks after sending the acknowledgement. The primary stamps each PREPARE
// and COMMIT with its tick counter at sending (and its incarnation, so that
// an echo from before a restart is not mistaken for a fresh one), and the
// acknowledgement echoes the stamp. The primary holds its lease until
// s + LeaseTicks - DriftMarginTicks, where s is the stamp that f backups
// (with itself, a majority) have echoed: since any view change needs a
// majority, one of them takes part, and it does so only after its promise
// ran out, which is no earlier than LeaseTicks of its ticks after s.
//
// The guarantee needs the tick rates of any two replicas to differ by less
// than DriftMarginTicks over LeaseTicks (a tick is also up to one tick long
// at each end, which the margin must cover too). Beyond that bound two
// replicas can believe they hold the lease at once; no other fault can make
// them.
//
// A "primary suspected" hint makes a backup stop acknowledging at once, so
// it promises nothing more, and it starts the view change when its last
// promise runs out. A restarted replica may have promised just before it
// crashed, so it keeps a promise for LeaseTicks from its start.

// promising reports whether this replica's promise still holds.
func (r *Replica) promising() bool {
	return r.cfg.LeaseTicks > 0 && r.now < r.promiseUntil
}

// promise records that this replica just acknowledged its primary.
func (r *Replica) promise() {
	if r.cfg.LeaseTicks > 0 {
		r.promiseUntil = max(r.promiseUntil, r.now+uint64(r.cfg.LeaseTicks))
	}
}

// stampFromPrimary marks a PREPARE or COMMIT for the lease.
func (r *Replica) stamp(m *Message) {
	m.Stamp, m.Nonce, m.Lag = r.now, r.incarnation, r.primaryLag()
}

// ackPrimary sends a PREPAREOK or COMMITOK that echoes the stamp of the
// primary's message m, and promises. A replica that was told its primary is
// suspected acknowledges nothing.
func (r *Replica) ackPrimary(m Message, ack Message) {
	if r.suspected {
		return
	}
	ack.To, ack.View, ack.Stamp, ack.Nonce = m.From, r.view, m.Stamp, m.Nonce
	r.send(ack)
	if m.Stamp > 0 {
		r.promise()
	}
}

// onLeaseEcho counts a backup's echoed stamp at the primary.
func (r *Replica) onLeaseEcho(m Message) {
	if m.Stamp == 0 || m.Nonce != r.incarnation || m.View != r.view || m.Stamp > r.now {
		return
	}
	i := r.indexOf(m.From)
	r.primary.leaseFrom[i] = max(r.primary.leaseFrom[i], m.Stamp)
}

// leaseExpiry returns the tick until which this primary holds its lease
// (exclusive), or 0 if it holds none.
func (r *Replica) leaseExpiry() uint64 {
	if !r.isPrimary() || r.cfg.LeaseTicks == 0 || r.commit < r.primary.startOp {
		// A view is established once what it inherited has committed;
		// before that its primary holds no lease (in particular across a
		// reconfiguration, whose op it would first have to commit).
		return 0
	}
	stamps := make([]uint64, r.n)
	copy(stamps, r.primary.leaseFrom)
	stamps[r.indexOf(r.self)] = r.now
	s := quorum.Committed(stamps, r.n)
	if s == 0 {
		return 0
	}
	return s + uint64(r.cfg.LeaseTicks-r.cfg.DriftMarginTicks)
}

// HoldsLease reports whether this replica is the primary and holds a valid
// lease now: no other replica can be primary of a newer view before it runs
// out, within the drift bound.
func (r *Replica) HoldsLease() bool { return r.now < r.leaseExpiry() }

// leaseLeft returns how many ticks the lease still holds (0 without one).
func (r *Replica) leaseLeft() uint64 {
	if e := r.leaseExpiry(); r.now < e {
		return e - r.now
	}
	return 0
}
