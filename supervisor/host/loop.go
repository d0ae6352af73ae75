package host

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/internal/store"
)

// The loop (Run) owns every replica. Its work per iteration:
//
//  1. Wait for one event (a tick, a message, a caller's request), then
//     take every other event already waiting, up to BatchMax: while the
//     last group commit was syncing, the next batch gathered.
//  2. Group commit: the answers to callers and the primaries' early
//     PREPAREs (see ensemble.Ready), then one store transaction for the
//     writes of every replica the batch touched, then their other messages
//     and Advance, in rounds until none has more.
//
// Idle ensembles quiesce (ensemble/quiesce.go). A quiet replica leaves the
// active list: the tick costs nothing for it, and its clock catches up
// (Elapse) the moment anything touches it. Failure detection for quiet
// ensembles is one heartbeat per node pair every PingTicks (an empty
// Ensemble marks it; any message counts as one); a peer silent for
// SilenceTicks gets the quiet replicas it is a member of woken, and every
// replica quiet for RefreshTicks is woken anyway.
//
// Rejected alternative: one goroutine per replica. It needs a lock or a
// channel per replica and still one fsync per replica; the single loop
// gives group commit for free and keeps the runtime as deterministic in
// structure as the simulator's.

// loopState is the loop's bookkeeping; only the loop goroutine touches it.
type loopState struct {
	tick       uint64
	active     []*local // replicas ticked every tick
	touched    []*local // replicas that may have a Ready
	quiet      []quietEntry
	heard      map[hasup.NodeID]uint64 // tick of the last message from each peer node
	silent     map[hasup.NodeID]bool   // peers silent for SilenceTicks (their quiet replicas were woken)
	peers      []hasup.NodeID          // heartbeat targets, sorted
	peersDirty bool
	start      time.Time // tick k is due at start + k*TickInterval
}

// quietEntry queues a replica that went quiet at tick at, for its refresh.
type quietEntry struct {
	l  *local
	at uint64
}

// flushRounds bounds the Ready rounds of one iteration; what is left waits
// for the next event (at the latest, the next tick).
const flushRounds = 8

// Run drives the node until ctx ends. It returns nil then, or the storage
// error that stopped it.
func (n *Node) Run(ctx context.Context) error {
	defer close(n.done)
	n.loop.start = time.Now()
	tick := time.NewTicker(n.cfg.TickInterval)
	defer tick.Stop()
	recv := n.cfg.Transport.Receive()
	for {
		select {
		case <-ctx.Done():
			n.failAll(ErrStopped)
			return nil
		case <-tick.C:
			n.catchUpTicks()
		case m, ok := <-recv:
			if !ok {
				n.failAll(ErrStopped)
				return nil
			}
			n.catchUpTicks()
			n.onMessage(m)
		case f := <-n.reqs:
			n.catchUpTicks()
			f()
		}
	batch:
		for i := 1; i < n.cfg.BatchMax; i++ {
			select {
			case m, ok := <-recv:
				if !ok {
					break batch
				}
				n.catchUpTicks()
				n.onMessage(m)
			case f := <-n.reqs:
				n.catchUpTicks()
				f()
			default:
				break batch
			}
		}
		if err := n.flush(); err != nil {
			// Storage failed: nothing unsynced may be acknowledged, so the
			// node stops rather than go on.
			n.cfg.Logger.Error("storage commit failed; stopping the node", "node", n.cfg.ID, "err", err)
			n.failAll(err)
			return err
		}
	}
}

// catchUpTicksMax bounds the ticks one catch-up runs (100 s at 10 ms):
// after a longer stall the clock still moves past any lease (LeaseTicks is
// far smaller), and a stalled primary does not queue a heartbeat per
// missed tick.
const catchUpTicksMax = 10000

// catchUpTicks runs the ticks that real time owes before any event is
// handled. Ticks follow the monotonic clock, not the ticker (which drops
// the ticks of a stalled loop), and every event, not only the ticker's,
// catches up: a primary whose ticks fell behind real time would believe
// its lease lasts longer than its backups' promises do. The owed ticks
// run as one burst (onTick), so that a stall does not fire view-change
// timeouts ahead of the heartbeats queued behind it.
func (n *Node) catchUpTicks() {
	lp := &n.loop
	due := uint64(time.Since(lp.start) / n.cfg.TickInterval)
	if due > lp.tick+catchUpTicksMax {
		lp.start = lp.start.Add(time.Duration(due-lp.tick-catchUpTicksMax) * n.cfg.TickInterval)
		due = lp.tick + catchUpTicksMax
	}
	if lp.tick < due {
		n.onTick(due - lp.tick)
	}
}

func (n *Node) onMessage(m ensemble.Message) {
	lp := &n.loop
	lp.heard[m.From] = lp.tick
	delete(lp.silent, m.From)
	switch {
	case m.Ensemble == "":
		return // a node heartbeat
	case m.Type == msgForward || m.Type == msgForwardReply:
		n.onForward(m)
		return
	}
	if l := n.replicas[m.Ensemble]; l != nil {
		n.activate(l)
		n.touch(l)
		l.r.Step(m)
	}
}

// onTick runs k ticks (more than one after a stall): replicas' clocks move
// by k and their timers by one (ensemble.Replica.TickN), and the node's
// own periodic work runs once.
func (n *Node) onTick(k uint64) {
	lp := &n.loop
	before := lp.tick
	lp.tick += k
	for _, l := range lp.active {
		l.r.TickN(k)
		n.touch(l)
	}
	if lp.tick/uint64(n.cfg.PingTicks) != before/uint64(n.cfg.PingTicks) {
		n.heartbeat()
	}
	for len(lp.quiet) > 0 && lp.quiet[0].at+uint64(n.cfg.RefreshTicks) <= lp.tick {
		e := lp.quiet[0]
		lp.quiet = lp.quiet[1:]
		if e.l.active < 0 && e.l.quietAt == e.at && n.replicas[e.l.name] == e.l {
			n.wake(e.l)
		}
	}
}

// heartbeat sends one heartbeat to every peer node and wakes the quiet
// replicas of the peers that have gone silent.
func (n *Node) heartbeat() {
	lp := &n.loop
	if lp.peersDirty {
		n.refreshPeers()
	}
	for _, p := range lp.peers {
		n.cfg.Transport.Send(ensemble.Message{Type: ensemble.MsgCommit, From: n.cfg.ID, To: p})
		if lp.tick-lp.heard[p] <= uint64(n.cfg.SilenceTicks) || lp.silent[p] {
			continue
		}
		lp.silent[p] = true
		n.cfg.Logger.Debug("peer node silent; waking its quiescent ensembles", "node", n.cfg.ID, "peer", p)
		for _, name := range n.sortedNames() {
			if l := n.replicas[name]; l.active < 0 && slices.Contains(l.members, p) {
				n.wake(l)
			}
		}
	}
}

// refreshPeers recomputes the heartbeat targets: every other member of a
// local ensemble. A new peer starts with a full silence allowance.
func (n *Node) refreshPeers() {
	lp := &n.loop
	lp.peersDirty = false
	var peers []hasup.NodeID
	for _, l := range n.replicas {
		for _, m := range l.members {
			if m != n.cfg.ID && !slices.Contains(peers, m) {
				peers = append(peers, m)
			}
		}
	}
	slices.Sort(peers)
	for _, p := range peers {
		if _, ok := lp.heard[p]; !ok {
			lp.heard[p] = lp.tick
		}
	}
	lp.peers = peers
}

func (n *Node) sortedNames() []hasup.EnsembleName {
	names := make([]hasup.EnsembleName, 0, len(n.replicas))
	for name := range n.replicas {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// touch marks l as possibly having a Ready.
func (n *Node) touch(l *local) {
	if !l.touched {
		l.touched = true
		n.loop.touched = append(n.loop.touched, l)
	}
}

// activate puts a quiet replica back on the active list, its clock caught
// up with the ticks it skipped. It stays quiescent until something wakes it.
func (n *Node) activate(l *local) {
	if l.active >= 0 {
		return
	}
	lp := &n.loop
	n.catchUp(l)
	l.active = len(lp.active)
	lp.active = append(lp.active, l)
}

// catchUp advances a quiet replica's clock to the node's.
func (n *Node) catchUp(l *local) {
	if l.active < 0 {
		l.r.Elapse(n.loop.tick - l.clockAt)
		l.clockAt = n.loop.tick
	}
}

// deactivate takes l off the active list.
func (n *Node) deactivate(l *local) {
	if l.active < 0 {
		return
	}
	lp := &n.loop
	last := lp.active[len(lp.active)-1]
	lp.active[l.active], last.active = last, l.active
	lp.active = lp.active[:len(lp.active)-1]
	l.active = -1
}

func (n *Node) wake(l *local) {
	n.activate(l)
	l.r.Wake()
	n.touch(l)
}

// goQuiet takes a quiescent replica off the active list.
func (n *Node) goQuiet(l *local) {
	lp := &n.loop
	n.deactivate(l)
	l.clockAt = lp.tick
	if !l.awake && l.quietAt > 0 {
		// Touched (a stale read, a status) but never woken: it keeps its
		// place in the refresh queue, or reads could postpone the refresh
		// for ever.
		return
	}
	l.awake = false
	l.quietAt = lp.tick
	if members := l.r.Status().Members; !slices.Equal(members, l.members) {
		l.members = members
		lp.peersDirty = true
	}
	lp.quiet = append(lp.quiet, quietEntry{l: l, at: lp.tick})
	for _, m := range l.members {
		if lp.silent[m] {
			n.wake(l) // it would miss that member's failure
			return
		}
	}
}

// flush executes the pending Readies of the touched replicas: one store
// commit for all of them, then messages, answers and Advance; again while
// Advance left work, up to flushRounds.
func (n *Node) flush() error {
	for round := 0; round < flushRounds && len(n.loop.touched) > 0; round++ {
		touched := n.loop.touched
		n.loop.touched = nil
		var ready []*local
		var rds []ensemble.Ready
		var writes []store.Write
		for _, l := range touched {
			l.touched = false
			if n.replicas[l.name] != l || !l.r.HasReady() {
				continue
			}
			rd := l.r.Ready()
			// Before the sync: replies vouch only for committed state, and
			// a primary's PREPAREs may go ahead of its own write (see
			// ensemble.Ready).
			n.answer(rd.Replies)
			for _, m := range rd.Messages[:rd.Early] {
				n.cfg.Transport.Send(m)
			}
			ready, rds = append(ready, l), append(rds, rd)
			if w := store.WriteOf(l.name, rd); !w.Empty() {
				writes = append(writes, w)
			}
		}
		if len(writes) > 0 {
			if err := n.cfg.Store.Commit(writes); err != nil {
				return err
			}
		}
		for i, rd := range rds {
			for _, m := range rd.Messages[rd.Early:] {
				n.cfg.Transport.Send(m)
			}
			ready[i].r.Advance()
		}
		for _, l := range touched {
			if n.replicas[l.name] != l {
				continue
			}
			if !l.r.Quiescent() {
				l.awake = true
			}
			if l.r.HasReady() {
				n.touch(l)
			} else if l.active >= 0 && l.r.Quiescent() {
				n.goQuiet(l)
			}
		}
	}
	return nil
}

// answer hands replies to their waiting callers.
func (n *Node) answer(replies []ensemble.Reply) {
	for _, rp := range replies {
		if w, ok := n.waiters[rp.ID]; ok {
			delete(n.waiters, rp.ID)
			w.ch <- rp
		}
	}
}

func (n *Node) failAll(err error) {
	for id, w := range n.waiters {
		delete(n.waiters, id)
		w.ch <- ensemble.Reply{ID: id, Err: err}
	}
}

// failWaitersOf answers the callers waiting on a replica that was removed.
func (n *Node) failWaitersOf(name hasup.EnsembleName) {
	for id, w := range n.waiters {
		if w.name == name {
			delete(n.waiters, id)
			w.ch <- ensemble.Reply{ID: id, Err: fmt.Errorf("ensemble %s: %w (the replica was removed)", name, ErrNotFound)}
		}
	}
}
