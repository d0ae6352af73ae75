package ensemble

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hasup/hasup"
)

// scen is a cluster with the checkers every scenario test runs under:
//   - durability: every message in a Ready is backed by the state the same
//     Ready (or an earlier one) made durable, and a replica's durable view
//     and commit number never go back;
//   - safety: no two replicas ever apply different entries at one op, and a
//     replica applies ops in increasing order;
//   - acknowledgements: every op answered to a client is remembered, so a
//     test can assert none is lost.
//
// It also keeps every Ready, per node, for tests that inspect messages.
type scen struct {
	*cluster
	nextID  uint64
	global  map[uint64]Entry // op -> the entry applied at op, anywhere
	acked   map[uint64]Entry // op -> the entry whose execution was answered to a client
	last    map[*Replica]uint64
	hard    map[hasup.NodeID]HardState // latest durable hard state per node (reset by wipe)
	diskOps map[hasup.NodeID]uint64    // latest durable op per node (reset by wipe)
	readies map[hasup.NodeID][]Ready
	errorf  func(format string, args ...any) // t.Errorf; replaced to test the checkers
	execs   map[execKey]int
	readsOK int // reads answered without error (random runs count them)
}

// execKey names one client request executed by one replica incarnation.
type execKey struct {
	r               *Replica
	client, request uint64
}

// scenario builds a cluster of n, lets setup adjust it (tune, ckptOps,
// chunk), installs the checkers and boots it.
func scenario(t *testing.T, n int, setup func(c *cluster)) *scen {
	t.Helper()
	c := newCluster(t, n)
	if setup != nil {
		setup(c)
	}
	s := newScen(c)
	c.boot()
	return s
}

// newScen installs the checkers on a cluster that is not booted yet.
func newScen(c *cluster) *scen {
	s := &scen{
		cluster: c, nextID: 1 << 20,
		global: map[uint64]Entry{}, acked: map[uint64]Entry{}, last: map[*Replica]uint64{},
		execs: map[execKey]int{},
		hard:  map[hasup.NodeID]HardState{}, diskOps: map[hasup.NodeID]uint64{}, readies: map[hasup.NodeID][]Ready{},
	}
	s.errorf = c.t.Errorf
	c.observers = append(c.observers, s.observe)
	return s
}

func (s *scen) id(i int) hasup.NodeID { return s.ids[i] }
func (s *scen) nd(i int) *node        { return s.nodes[s.ids[i]] }

// observe is the checkers' hook: it runs after each Ready is persisted.
func (s *scen) observe(id hasup.NodeID, rd Ready) {
	s.t.Helper()
	nd := s.nodes[id]
	s.readies[id] = append(s.readies[id], rd)
	s.checkHardMonotonic(id, nd)
	s.checkVouched(id, nd, rd)
	for _, a := range rd.Applied {
		e := a.Entry
		if g, ok := s.global[e.Op]; ok && !entryEqual(g, e) {
			s.errorf("SAFETY: %s applied op %d = %+v, another replica applied %+v", id, e.Op, e, g)
		}
		s.global[e.Op] = e
		if last, ok := s.last[nd.r]; ok && e.Op <= last {
			s.errorf("SAFETY: %s applied op %d after op %d", id, e.Op, last)
		}
		s.last[nd.r] = e.Op
		if a.Executed && e.Client != 0 && e.Kind == EntryRequest {
			k := execKey{nd.r, e.Client, e.Request}
			if s.execs[k]++; s.execs[k] > 1 {
				s.errorf("AT-MOST-ONCE: %s executed client %d request %d %d times", id, e.Client, e.Request, s.execs[k])
			}
		}
	}
	for _, rp := range rd.Replies {
		if rp.Err == nil && rp.Op > 0 {
			e, ok := s.global[rp.Op]
			if !ok {
				s.errorf("%s answered op %d before anyone applied it", id, rp.Op)
			}
			s.acked[rp.Op] = e
		}
	}
}

func (s *scen) checkHardMonotonic(id hasup.NodeID, nd *node) {
	h, prev := nd.disk.Hard, s.hard[id]
	// Views count within an epoch; a later epoch starts again at view 0.
	if h.Epoch < prev.Epoch || (h.Epoch == prev.Epoch &&
		(h.View < prev.View || (h.View == prev.View && h.LastNormalView < prev.LastNormalView))) {
		s.errorf("DURABILITY: %s durable view went back: %+v after %+v", id, h, prev)
	}
	if h.Commit < prev.Commit {
		s.errorf("DURABILITY: %s durable commit went back: %d after %d", id, h.Commit, prev.Commit)
	}
	// No path may shorten a log while keeping its last-normal-view (the
	// data-loss trace of VRR-as-written).
	if op, had := s.diskOps[id]; had && h.Epoch == prev.Epoch && h.LastNormalView == prev.LastNormalView && diskOp(nd.disk) < op {
		s.errorf("SAFETY: %s shortened its durable log %d -> %d keeping last-normal-view %d", id, op, diskOp(nd.disk), h.LastNormalView)
	}
	s.hard[id], s.diskOps[id] = h, diskOp(nd.disk)
}

// diskEntry returns op's entry from a node's durable log.
func diskEntry(d Durable, op uint64) (Entry, bool) {
	if op <= d.Checkpoint.Op || op > d.Checkpoint.Op+uint64(len(d.Entries)) {
		return Entry{}, false
	}
	return d.Entries[op-d.Checkpoint.Op-1], true
}

func diskOp(d Durable) uint64 { return d.Checkpoint.Op + uint64(len(d.Entries)) }

// checkVouched checks the durability rule: each message leaves only when the
// state it vouches for is on disk. Messages of a view the replica has left
// within the same Ready are skipped: the later state superseded them.
func (s *scen) checkVouched(id hasup.NodeID, nd *node, rd Ready) {
	d := nd.disk
	h := d.Hard
	fail := func(m Message, format string, args ...any) {
		s.errorf("DURABILITY: %s sent %v but its disk has %+v op %d: %s", id, m, h, diskOp(d), fmt.Sprintf(format, args...))
	}
	entriesOnDisk := func(m Message, es []Entry) {
		for _, e := range es {
			if e.Op <= d.Checkpoint.Op {
				continue
			}
			if de, ok := diskEntry(d, e.Op); !ok || !entryEqual(de, e) {
				fail(m, "entry %d not durable", e.Op)
				return
			}
		}
	}
	for _, m := range rd.Messages {
		if m.Epoch < h.Epoch {
			continue // a later epoch superseded it within this Ready
		}
		// STARTEPOCH only points the receiver at the sender's committed
		// state, which the receiver fetches and checks itself: a replica
		// that lost its storage sends it on entering an epoch, before it
		// has recovered there and made anything durable.
		if (m.Epoch > h.Epoch || m.View > h.View) && m.Type != MsgRecovery && m.Type != MsgGetState && m.Type != MsgStartEpoch {
			fail(m, "message of a view not yet durable")
			continue
		}
		if m.View < h.View {
			continue
		}
		switch m.Type {
		case MsgPrepareOK:
			if h.Mode != ModeNormal || h.LastNormalView != m.View || diskOp(d) < m.Op {
				fail(m, "PREPAREOK beyond the durable log of the view")
			}
		case MsgPrepare:
			if h.Mode != ModeNormal || h.LastNormalView != m.View {
				fail(m, "PREPARE without the view's log durable")
			}
			entriesOnDisk(m, m.Entries)
		case MsgStartView:
			if h.Mode != ModeNormal || h.LastNormalView != m.View || diskOp(d) < m.Op {
				fail(m, "STARTVIEW before the new log is durable")
			}
			entriesOnDisk(m, m.Entries)
		case MsgDoViewChange:
			if h.Mode == ModeViewChange {
				if h.LastNormalView != m.LastNormalView || diskOp(d) != m.Op {
					fail(m, "DOVIEWCHANGE log differs from the durable one")
				}
				entriesOnDisk(m, m.Entries)
			}
		case MsgCommit:
			if h.LastNormalView == m.View && diskOp(d) < m.Commit {
				fail(m, "COMMIT number beyond the durable log")
			}
		case MsgNewState:
			if m.CheckpointOp == 0 && h.LastNormalView == m.View {
				entriesOnDisk(m, m.Entries)
			}
		}
	}
	for _, rp := range rd.Replies {
		if rp.Err == nil && rp.Op > 0 && rp.Op > diskOp(d) {
			s.errorf("DURABILITY: %s answered op %d but holds only %d durably", id, rp.Op, diskOp(d))
		}
	}
}

// wipe crashes id with its storage lost; the checkers forget its history.
func (s *scen) wipe(id hasup.NodeID) {
	s.cluster.wipe(id)
	delete(s.hard, id)
	delete(s.diskOps, id)
}

// submit hands a proposal to id without settling and returns its ID.
func (s *scen) submit(id hasup.NodeID, client, req uint64, cmd string) (uint64, error) {
	s.nextID++
	err := s.nodes[id].r.Propose(Proposal{ID: s.nextID, Client: client, Request: req, Cmd: []byte(cmd)})
	return s.nextID, err
}

// mustSubmit is submit that fails the test on an error.
func (s *scen) mustSubmit(id hasup.NodeID, client, req uint64, cmd string) uint64 {
	s.t.Helper()
	pid, err := s.submit(id, client, req, cmd)
	if err != nil {
		s.t.Fatalf("propose %q at %s: %v", cmd, id, err)
	}
	return pid
}

// read hands a read to id without settling and returns its ID.
func (s *scen) read(id hasup.NodeID) (uint64, error) {
	s.nextID++
	return s.nextID, s.nodes[id].r.Read(s.nextID, nil)
}

// reply finds the reply with pid among those id's runtime received.
func (s *scen) reply(id hasup.NodeID, pid uint64) (Reply, bool) {
	for _, rp := range s.nodes[id].replies {
		if rp.ID == pid {
			return rp, true
		}
	}
	return Reply{}, false
}

// tickUntil ticks (settling after each) until cond holds, at most max
// times, and reports whether it held.
func (s *scen) tickUntil(max int, cond func() bool) bool {
	for i := 0; i < max; i++ {
		if cond() {
			return true
		}
		s.tick(1)
	}
	return cond()
}

// primaryIs reports whether id is primary of a normal view.
func (s *scen) primaryIs(id hasup.NodeID) bool { return s.nodes[id].r.Status().IsPrimary }

// write proposes cmd (client 0) to the current primary, ticking until a
// primary exists and the op is answered; it retries after view changes.
func (s *scen) write(cmd string) Reply {
	s.t.Helper()
	for attempt := 0; attempt < 20; attempt++ {
		if !s.tickUntil(200, func() bool { return s.primary() != nil }) {
			s.t.Fatalf("write %q: no primary", cmd)
		}
		p := s.primary()
		pid := s.mustSubmit(p.r.cfg.ID, 0, 0, cmd)
		s.settle()
		var rp Reply
		ok := s.tickUntil(100, func() bool {
			var got bool
			rp, got = s.reply(p.r.cfg.ID, pid)
			return got
		})
		if ok && rp.Err == nil {
			return rp
		}
	}
	s.t.Fatalf("write %q: never committed", cmd)
	return Reply{}
}

// sent returns every message of type t that id sent, in order.
func (s *scen) sent(id hasup.NodeID, t MsgType) []Message {
	var out []Message
	for _, rd := range s.readies[id] {
		for _, m := range rd.Messages {
			if m.Type == t {
				out = append(out, m)
			}
		}
	}
	return out
}

// live returns the IDs of the nodes that are up.
func (s *scen) live() []hasup.NodeID {
	var out []hasup.NodeID
	for _, id := range s.ids {
		if !s.nodes[id].down {
			out = append(out, id)
		}
	}
	return out
}

// converged reports whether every live replica is normal in one view with
// that view's log, has applied everything committed, and agrees on the
// commit number and the applied state.
func (s *scen) converged() bool {
	var ref Status
	var refApplied string
	for i, id := range s.live() {
		st := s.nodes[id].r.Status()
		if st.Mode != ModeNormal || st.LastNormalView != st.View || st.Transferring || st.Applied != st.Commit {
			return false
		}
		if i == 0 {
			ref, refApplied = st, s.applied(id)
			continue
		}
		if st.View != ref.View || st.Commit != ref.Commit || s.applied(id) != refApplied {
			return false
		}
	}
	return true
}

// requireConverged ticks until the live replicas converge and checks that
// every op ever answered to a client is committed everywhere.
func (s *scen) requireConverged(maxTicks int) {
	s.t.Helper()
	if !s.tickUntil(maxTicks, s.converged) {
		s.t.Fatalf("replicas did not converge:\n%s", s.dump())
	}
	s.requireAckedKept()
}

// requireAckedKept checks that no op acknowledged to a client is lost:
// every live replica's commit number covers it, and the entry applied at its
// op is the one that was acknowledged.
func (s *scen) requireAckedKept() {
	s.t.Helper()
	for op, e := range s.acked {
		if g := s.global[op]; !entryEqual(g, e) {
			s.errorf("acknowledged op %d was %+v, later applied as %+v", op, e, g)
		}
		for _, id := range s.live() {
			if st := s.nodes[id].r.Status(); st.Commit < op {
				s.errorf("acknowledged op %d (%q) is not committed at %s: %+v", op, e.Cmd, id, st)
			}
		}
	}
}

func (s *scen) dump() string {
	var b strings.Builder
	for _, id := range s.ids {
		nd := s.nodes[id]
		fmt.Fprintf(&b, "  %s down=%v %+v applied=%q\n", id, nd.down, nd.r.Status(), s.applied(id))
	}
	return b.String()
}

// cmds returns the commands of entries, in order, for comparisons.
func cmds(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = string(e.Cmd)
	}
	return out
}

// logOf returns a replica's whole log after its checkpoint.
func logOf(r *Replica) []Entry {
	var out []Entry
	st := r.Status()
	for op := st.CheckpointOp + 1; op <= st.Op; op++ {
		e, ok := r.LogEntry(op)
		if !ok {
			panic(fmt.Sprintf("log entry %d missing", op))
		}
		out = append(out, e)
	}
	return out
}

// isAny reports whether m's type is one of ts.
func isAny(m Message, ts ...MsgType) bool { return slices.Contains(ts, m.Type) }

// The checkers must be able to fail: each case breaks one rule by hand and
// expects a report.
func TestScenarioCheckersCatchViolations(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(s *scen)
	}{
		{"PREPAREOK beyond the durable log", func(s *scen) {
			s.observe(s.id(1), Ready{Messages: []Message{{Type: MsgPrepareOK, From: s.id(1), To: s.id(0), Op: 3}}})
		}},
		{"STARTVIEWCHANGE before its view is durable", func(s *scen) {
			s.observe(s.id(1), Ready{Messages: []Message{{Type: MsgStartViewChange, From: s.id(1), To: s.id(0), View: 1}}})
		}},
		{"PREPARE of entries not on disk", func(s *scen) {
			e := Entry{Op: 2, Kind: EntryRequest, Cmd: []byte("other")}
			s.observe(s.id(0), Ready{Messages: []Message{{Type: MsgPrepare, From: s.id(0), To: s.id(1), Entries: []Entry{e}}}})
		}},
		{"reply for an op not durable", func(s *scen) {
			s.global[5] = Entry{Op: 5}
			s.observe(s.id(0), Ready{Replies: []Reply{{ID: 1, Op: 5}}})
		}},
		{"different entries applied at one op", func(s *scen) {
			s.observe(s.id(2), Ready{Applied: []Applied{{Entry: Entry{Op: 1, Kind: EntryRequest, Cmd: []byte("z")}}}})
		}},
		{"durable view goes back", func(s *scen) {
			s.nd(1).disk.Hard.View = 0
			s.hard[s.id(1)] = HardState{View: 3}
			s.observe(s.id(1), Ready{})
		}},
		{"log shortened under a kept last-normal-view", func(s *scen) {
			s.nd(1).disk.Entries = s.nd(1).disk.Entries[:1]
			s.observe(s.id(1), Ready{})
		}},
		{"acknowledged op not committed", func(s *scen) {
			s.acked[9] = Entry{Op: 9}
			s.global[9] = Entry{Op: 9}
			s.requireAckedKept()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := scenario(t, 3, nil)
			s.write("a")
			s.write("b")
			s.tick(1)
			var reports []string
			s.errorf = func(format string, args ...any) { reports = append(reports, fmt.Sprintf(format, args...)) }
			tc.breakIt(s)
			if len(reports) == 0 {
				t.Errorf("checker did not report %s", tc.name)
			}
		})
	}
}
