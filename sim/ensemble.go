package sim

import (
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/anishathalye/porcupine"
	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/ensemble/quorum"
)

// simEnsemble is one ensemble and what the checkers know about it.
type simEnsemble struct {
	w          *world
	idx        int
	name       hasup.EnsembleName
	members    []hasup.NodeID
	f          int
	replicas   []*simReplica
	committed  map[uint64]applied      // op -> what was applied there
	executed   map[[2]uint64]uint64    // (client, request) -> op that executed it
	primaries  map[uint64]hasup.NodeID // fence (epoch, view) -> the node that committed as its primary
	acked      map[uint64]ackedOp      // op -> the acknowledged write there
	maxCommit  uint64
	diskFaults int
	history    []porcupine.Operation
	probed     bool           // a write was acknowledged in the liveness phase
	epoch      uint64         // the latest epoch some replica runs
	original   []hasup.NodeID // the members at creation
	replaced   []hasup.NodeID // original members some reconfiguration has removed
	topPrimary uint64         // highest fence (epoch, view) any replica was primary in
	reconfig   *reconfig
	configs    map[uint64][]hasup.NodeID // epoch -> its members, as replicas reported them
	leaseFence uint64                    // highest fencing token a lease holder has had
	fences     map[uint64]uint64         // op -> fencing token the FSM saw for it
}

type applied struct {
	hash     uint64
	executed bool
}

type ackedOp struct {
	client, request uint64
}

func newSimEnsemble(w *world, idx, size int) *simEnsemble {
	e := &simEnsemble{
		w: w, idx: idx, name: hasup.EnsembleName(fmt.Sprintf("e%d", idx)), f: quorum.F(size),
		committed: map[uint64]applied{}, executed: map[[2]uint64]uint64{},
		primaries: map[uint64]hasup.NodeID{}, acked: map[uint64]ackedOp{}, fences: map[uint64]uint64{},
		configs: map[uint64][]hasup.NodeID{},
	}
	perm := w.rng.Perm(w.p.Nodes)
	for _, i := range perm[:size] {
		e.members = append(e.members, w.nodes[i].id)
	}
	e.original = slices.Clone(e.members)
	return e
}

func entryHash(en ensemble.Entry) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%d/%d/%d/%d/%d/%d/%d/", en.Op, en.Epoch, en.View, en.Kind, en.Client, en.Request, en.Time, en.Seed)
	_, _ = h.Write(en.Cmd)
	return h.Sum64()
}

// onApplied checks that every replica applies the same op at each position
// with the same outcome, and that no (client, request) executes twice.
func (e *simEnsemble) onApplied(rep *simReplica, a ensemble.Applied) {
	op := a.Entry.Op
	got := applied{hash: entryHash(a.Entry), executed: a.Executed}
	if prev, ok := e.committed[op]; ok {
		if prev != got {
			e.w.fail("ensemble %s: replica %s applied a different op %d (%+v) than another replica (%+v)", e.name, rep.node.id, op, got, prev)
		}
		return
	}
	e.committed[op] = got
	if op > e.maxCommit {
		e.maxCommit = op
	}
	// The fencing token an op carries never decreases along the log.
	f := ensemble.Fence(a.Entry.Epoch, a.Entry.View)
	e.fences[op] = f
	if prev, ok := e.fences[op-1]; ok && f < prev {
		e.w.fail("ensemble %s: op %d carries fence %d below op %d's %d", e.name, op, f, op-1, prev)
	}
	if next, ok := e.fences[op+1]; ok && next < f {
		e.w.fail("ensemble %s: op %d carries fence %d below op %d's %d", e.name, op+1, next, op, f)
	}
	if a.Executed && a.Entry.Kind == ensemble.EntryRequest && a.Entry.Client != 0 {
		key := [2]uint64{a.Entry.Client, a.Entry.Request}
		if other, ok := e.executed[key]; ok && other != op {
			e.w.fail("ensemble %s: client %d request %d executed twice, at ops %d and %d", e.name, key[0], key[1], other, op)
		}
		e.executed[key] = op
	}
}

// checkReady checks the messages and writes of a Ready against the
// protocol's rules before they take effect.
func (rep *simReplica) checkReady(before ensemble.Status, rd ensemble.Ready) {
	w := rep.w
	if before.Mode == ensemble.ModeRecovering || before.Mode == ensemble.ModeJoining {
		for _, m := range rd.Messages {
			switch m.Type {
			case ensemble.MsgPrepareOK, ensemble.MsgStartViewChange, ensemble.MsgDoViewChange:
				w.fail("recovering replica %s/%s sends %v", rep.e.name, rep.node.id, m)
			}
		}
	}
}

// checkDurable checks a Ready's writes as they become durable.
func (rep *simReplica) checkDurable(rd ensemble.Ready) {
	if h := rd.HardState; h != nil {
		f := ensemble.Fence(h.Epoch, h.View)
		if f < rep.highest {
			rep.w.fail("replica %s/%s persists epoch %d view %d after fence %d", rep.e.name, rep.node.id, h.Epoch, h.View, rep.highest)
		}
		rep.highest = f
	}
}

// observe checks a replica's status after it acted.
func (rep *simReplica) observe() {
	e, w := rep.e, rep.w
	st := rep.r.Status()
	if st.Rejected > 0 {
		// The simulator's peers are honest and its network checksums every
		// message: a rejection means a replica sent something broken.
		w.fail("replica %s/%s rejected a message from a peer: %s", e.name, rep.node.id, st.LastRejection)
	}
	if w.debug != nil && (st.View != rep.last.View || st.Mode != rep.last.Mode || st.LastNormalView != rep.last.LastNormalView || st.Transferring != rep.last.Transferring) {
		w.debug("%d status %s/%s %v v%d lnv%d op%d k%d x%v", w.now, e.name, rep.node.id, st.Mode, st.View, st.LastNormalView, st.Op, st.Commit, st.Transferring)
	}
	if st.Commit > st.Op {
		w.fail("replica %s/%s: commit %d > op %d", e.name, rep.node.id, st.Commit, st.Op)
	}
	if st.IsPrimary && st.Commit > rep.last.Commit {
		if p, ok := e.primaries[st.Fence]; ok && p != rep.node.id {
			w.fail("ensemble %s: two primaries commit in epoch %d view %d: %s and %s", e.name, st.Epoch, st.View, p, rep.node.id)
		}
		e.primaries[st.Fence] = rep.node.id
	}
	rep.checkConfig(st)
	// A primary of a view later than any before must hold every
	// acknowledged op. (A replica can also find itself primary of a stale
	// view, like a deposed primary: it can commit nothing there.)
	if st.IsPrimary && (!rep.last.IsPrimary || rep.last.Fence != st.Fence) && st.Fence >= e.topPrimary {
		e.topPrimary = st.Fence
		rep.checkHasAcked(st)
	}
	rep.last = st
}

// checkLeases checks that at most one replica of the ensemble believes it
// holds a valid lease at this instant, and that a lease holder's fencing
// token is the highest any lease holder has had.
func (e *simEnsemble) checkLeases() {
	var holder *simReplica
	for _, rep := range e.replicas {
		if !rep.node.up || !rep.r.HoldsLease() {
			continue
		}
		if holder != nil {
			e.w.fail("ensemble %s: %s and %s both hold a lease (views %d and %d)", e.name, holder.node.id, rep.node.id, holder.r.Status().View, rep.r.Status().View)
		}
		holder = rep
		f := rep.r.Status().Fence
		if f < e.leaseFence {
			e.w.fail("ensemble %s: lease holder %s has fence %d below an earlier holder's %d", e.name, rep.node.id, f, e.leaseFence)
		}
		e.leaseFence = f
	}
}

// checkQuiescence: a quiescent replica holds its whole log committed and
// applied, and quiescent replicas of one view hold the same log.
func (e *simEnsemble) checkQuiescence() {
	var ref *ensemble.Status
	for _, rep := range e.replicas {
		if !rep.node.up || !rep.r.Quiescent() {
			continue
		}
		st := rep.r.Status()
		if st.Mode != ensemble.ModeNormal || st.Commit != st.Op || st.Applied != st.Op {
			e.w.fail("ensemble %s: %s quiescent in mode %v with op %d commit %d applied %d", e.name, rep.node.id, st.Mode, st.Op, st.Commit, st.Applied)
		}
		if ref != nil && ref.Epoch == st.Epoch && ref.View == st.View && ref.Op != st.Op {
			e.w.fail("ensemble %s: quiescent in e%d v%d at op %d (%s) and op %d (%s)", e.name, st.Epoch, st.View, ref.Op, ref.ID, st.Op, st.ID)
		}
		if ref == nil {
			ref = &st
		}
	}
}

// checkHasAcked checks that a new primary's log holds every acknowledged op.
// It reports the lowest offending op, so a failing seed prints the same text
// every time.
func (rep *simReplica) checkHasAcked(st ensemble.Status) {
	e := rep.e
	bad, why := uint64(0), ""
	for op, a := range e.acked {
		if bad != 0 && op > bad {
			continue
		}
		if op > st.Op {
			bad, why = op, fmt.Sprintf("ends at op %d", st.Op)
		} else if en, ok := rep.r.LogEntry(op); ok && (en.Client != a.client || en.Request != a.request) {
			bad, why = op, fmt.Sprintf("holds client %d request %d there, want client %d request %d", en.Client, en.Request, a.client, a.request)
		}
	}
	if bad != 0 {
		e.w.fail("ensemble %s: new primary %s (view %d) lacks acknowledged op %d: %s", e.name, rep.node.id, st.View, bad, why)
	}
}
