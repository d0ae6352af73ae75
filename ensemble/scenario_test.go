package ensemble

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hasup/hasup"
)

// Scenario tests for normal operation (VRR §4.1 with disk) and for the
// durability rule. Each test is named after the rule it checks; the
// checkers of scen (checkers_test.go) run under every one of them.

func prepares(rd Ready, to hasup.NodeID) []Message {
	var out []Message
	for _, m := range rd.Messages {
		if m.Type == MsgPrepare && m.To == to {
			out = append(out, m)
		}
	}
	return out
}

// §4.1: the primary orders every request that arrived before it writes,
// in one PREPARE, with one time and one seed for the batch.
func TestPrimaryBatchesProposalsMadeBeforeOneReadyIntoOnePrepare(t *testing.T) {
	s := scenario(t, 3, nil)
	p := s.id(0)
	var pids []uint64
	for i := 0; i < 5; i++ {
		pids = append(pids, s.mustSubmit(p, 0, 0, fmt.Sprintf("c%d", i)))
	}
	rd, ok := s.processNode(p)
	if !ok {
		t.Fatal("primary has no Ready after proposals")
	}
	if len(rd.Entries) != 5 || rd.LogFrom != 1 {
		t.Fatalf("Ready persists LogFrom %d and %d entries, want 1 and 5", rd.LogFrom, len(rd.Entries))
	}
	for _, b := range []hasup.NodeID{s.id(1), s.id(2)} {
		ps := prepares(rd, b)
		if len(ps) != 1 {
			t.Fatalf("%d PREPAREs to %s, want 1 batch", len(ps), b)
		}
		es := ps[0].Entries
		if got := strings.Join(cmds(es), ","); got != "c0,c1,c2,c3,c4" {
			t.Fatalf("batch to %s carries %q", b, got)
		}
		for i, e := range es {
			if e.Op != uint64(i+1) || e.Time != es[0].Time || e.Seed != es[0].Seed || e.View != 0 {
				t.Errorf("entry %d = %+v: want op %d, the batch's time and seed, view 0", i, e, i+1)
			}
		}
	}
	s.settle()
	for _, pid := range pids {
		if rp, ok := s.reply(p, pid); !ok || rp.Err != nil {
			t.Errorf("proposal %d: reply %+v, %v", pid, rp, ok)
		}
	}
}

// §4.1 with bounds: one PREPARE carries at most BatchOps entries and
// BatchBytes bytes; a command that cannot fit any batch is refused.
func TestPrepareBatchRespectsBatchOpsAndBatchBytes(t *testing.T) {
	for _, tc := range []struct {
		name       string
		batchOps   int
		batchBytes int
		cmdBytes   int
		wantSizes  []int
	}{
		{"ops", 2, 256 << 10, 10, []int{2, 2, 1}},
		{"bytes", 64, 1024, 300, []int{2, 2, 1}}, // 2*(300+64) fits 1024, 3* does not
		{"both", 3, 1024, 200, []int{3, 2}},      // 3*264 = 792 fits; the 4th would not
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := scenario(t, 3, func(c *cluster) {
				c.tune = func(_ hasup.NodeID, cfg *Config) { cfg.BatchOps, cfg.BatchBytes = tc.batchOps, tc.batchBytes }
			})
			p := s.id(0)
			total := 0
			for _, n := range tc.wantSizes {
				total += n
			}
			for i := 0; i < total; i++ {
				s.mustSubmit(p, 0, 0, fmt.Sprintf("%0*d", tc.cmdBytes, i))
			}
			rd, _ := s.processNode(p)
			ps := prepares(rd, s.id(1))
			var sizes []int
			next := uint64(1)
			for _, m := range ps {
				bytes := 0
				for _, e := range m.Entries {
					bytes += e.size()
					if e.Op != next {
						t.Fatalf("batches not dense: op %d where %d belongs", e.Op, next)
					}
					next++
				}
				if len(m.Entries) > tc.batchOps || bytes > tc.batchBytes {
					t.Errorf("batch of %d entries, %d bytes exceeds %d ops / %d bytes", len(m.Entries), bytes, tc.batchOps, tc.batchBytes)
				}
				sizes = append(sizes, len(m.Entries))
			}
			if fmt.Sprint(sizes) != fmt.Sprint(tc.wantSizes) {
				t.Errorf("batch sizes %v, want %v", sizes, tc.wantSizes)
			}
			s.settle()
			if got := s.nd(0).r.Status().Commit; got != uint64(total) {
				t.Errorf("commit %d, want %d", got, total)
			}
			if err := s.nd(0).r.Propose(Proposal{ID: 1, Cmd: make([]byte, tc.batchBytes-63)}); err != ErrTooLarge {
				t.Errorf("command of BatchBytes-63 bytes: %v, want ErrTooLarge", err)
			}
			if err := s.nd(0).r.Propose(Proposal{ID: 2, Cmd: make([]byte, tc.batchBytes-64)}); err != nil {
				t.Errorf("command of BatchBytes-64 bytes: %v, want accepted", err)
			}
		})
	}
}

// §4.1 pipelining: the primary keeps at most PipelineMax batches prepared
// but uncommitted; the rest wait in its queue until commits make room.
func TestPrimaryKeepsAtMostPipelineMaxBatchesInFlight(t *testing.T) {
	s := scenario(t, 3, func(c *cluster) {
		c.tune = func(_ hasup.NodeID, cfg *Config) { cfg.PipelineMax, cfg.BatchOps = 2, 1 }
	})
	p := s.id(0)
	maxInFlight := uint64(0)
	s.observers = append(s.observers, func(id hasup.NodeID, rd Ready) {
		if st := s.nodes[id].r.Status(); st.IsPrimary {
			maxInFlight = max(maxInFlight, st.Op-st.Commit)
		}
	})
	s.drop = func(m Message) bool { return m.Type == MsgPrepareOK }
	var pids []uint64
	for i := 0; i < 5; i++ {
		pids = append(pids, s.mustSubmit(p, 0, 0, fmt.Sprintf("c%d", i)))
	}
	s.settle()
	s.tick(5) // heartbeats resend the two batches; nothing new may be prepared
	if st := s.nd(0).r.Status(); st.Op != 2 || st.Commit != 0 {
		t.Fatalf("with no acks, primary at op %d commit %d; want 2 batches of 1 prepared, none committed", st.Op, st.Commit)
	}
	if ps := s.sent(p, MsgPrepare); len(ps) == 0 {
		t.Fatal("no PREPARE sent")
	}
	for _, m := range s.sent(p, MsgPrepare) {
		if m.Entries[len(m.Entries)-1].Op > 2 {
			t.Fatalf("PREPARE of op %d while two batches are uncommitted", m.Entries[len(m.Entries)-1].Op)
		}
	}
	s.drop = nil
	s.tickUntil(20, func() bool { return s.nd(0).r.Status().Commit == 5 })
	for _, pid := range pids {
		if rp, ok := s.reply(p, pid); !ok || rp.Err != nil {
			t.Errorf("proposal %d: %+v %v", pid, rp, ok)
		}
	}
	if maxInFlight > 2 {
		t.Errorf("primary had %d ops (of one-op batches) in flight, PipelineMax is 2", maxInFlight)
	}
}

// §4.1: "if the primary does not receive a new client request in a timely
// way, it sends a COMMIT": idle heartbeats carry the commit number, every
// HeartbeatTicks, and keep backups from starting a view change.
func TestIdlePrimarySendsCommitHeartbeatsThatCarryTheCommitNumber(t *testing.T) {
	s := scenario(t, 3, func(c *cluster) {
		c.tune = func(_ hasup.NodeID, cfg *Config) { cfg.HeartbeatTicks = 3 }
	})
	p := s.id(0)
	s.propose(0, 0, "a")
	for _, b := range []int{1, 2} {
		if st := s.nd(b).r.Status(); st.Commit != 0 || st.Op != 1 {
			t.Fatalf("%s before any heartbeat: %+v; want op 1 held, not known committed", s.id(b), st)
		}
	}
	before := len(s.sent(p, MsgCommit))
	s.tick(2)
	if n := len(s.sent(p, MsgCommit)); n != before {
		t.Fatalf("COMMIT sent after 2 ticks with HeartbeatTicks 3")
	}
	s.tick(1)
	hb := s.sent(p, MsgCommit)[before:]
	if len(hb) != 2 || hb[0].Commit != 1 || hb[1].Commit != 1 {
		t.Fatalf("heartbeats after 3 ticks: %v; want one COMMIT k1 to each backup", hb)
	}
	for _, b := range []int{1, 2} {
		if st := s.nd(b).r.Status(); st.Commit != 1 || s.applied(s.id(b)) != "a" {
			t.Errorf("%s after heartbeat: %+v applied %q; want op 1 committed and applied", s.id(b), st, s.applied(s.id(b)))
		}
	}
	before = len(s.sent(p, MsgCommit))
	s.tick(99)
	if n := len(s.sent(p, MsgCommit)) - before; n != 66 {
		t.Errorf("%d COMMITs in 99 idle ticks, want 33 per backup", n)
	}
	if n := len(s.sent(p, MsgPrepare)); n != 2 {
		t.Errorf("%d PREPAREs in total, want only the first batch to 2 backups", n)
	}
	for i := range s.ids {
		if st := s.nd(i).r.Status(); st.View != 0 || st.Mode != ModeNormal {
			t.Errorf("%s left view 0 while the primary was heartbeating: %+v", s.id(i), st)
		}
	}
}

// §4.1 with disk: the primary commits op n only when f+1 replicas, itself
// included, hold ops <= n durably. With both backups' PREPAREOKs lost
// nothing commits however long the primary waits; one backup's ack is
// enough.
func TestPrimaryCommitsOnlyWhenAMajorityHoldsTheOpDurably(t *testing.T) {
	s := scenario(t, 3, nil)
	p := s.id(0)
	s.drop = func(m Message) bool { return m.Type == MsgPrepareOK }
	pid := s.mustSubmit(p, 0, 0, "a")
	s.settle()
	s.tick(8)
	for i := range s.ids {
		if st := s.nd(i).r.Status(); st.Commit != 0 || s.applied(s.id(i)) != "" {
			t.Fatalf("%s committed without a majority of acks: %+v", s.id(i), st)
		}
		if st := s.nd(i).r.Status(); st.Op != 1 {
			t.Fatalf("%s does not hold op 1: %+v", s.id(i), st)
		}
	}
	if _, ok := s.reply(p, pid); ok {
		t.Fatal("client answered before the op committed")
	}
	s.drop = func(m Message) bool { return m.Type == MsgPrepareOK && m.From != s.id(1) }
	s.tick(1) // the heartbeat resends op 1; n1's ack now arrives
	if st := s.nd(0).r.Status(); st.Commit != 1 {
		t.Fatalf("primary %+v: one backup ack plus its own durable copy is a majority of 3", st)
	}
	if rp, ok := s.reply(p, pid); !ok || rp.Err != nil || rp.Op != 1 {
		t.Fatalf("reply %+v %v, want op 1", rp, ok)
	}
}

// §4.1 with disk: the primary counts itself only for what its runtime made
// durable, i.e. after Advance. A single replica is its own majority, so its
// commit must wait for Advance, and the answer comes in a later Ready than
// the entry.
func TestPrimaryCountsItselfOnlyAfterItsOwnAdvance(t *testing.T) {
	t.Run("n=1", func(t *testing.T) {
		s := scenario(t, 1, nil)
		p := s.nd(0)
		pid := s.mustSubmit(p.r.cfg.ID, 0, 0, "a")
		rd := p.r.Ready()
		if len(rd.Entries) != 1 || len(rd.Replies) != 0 {
			t.Fatalf("first Ready: %d entries, %d replies; want the entry and no answer", len(rd.Entries), len(rd.Replies))
		}
		if st := p.r.Status(); st.Commit != 0 {
			t.Fatalf("committed op %d before its Ready was durable", st.Commit)
		}
		p.persist(rd)
		p.r.Advance()
		if st := p.r.Status(); st.Commit != 1 {
			t.Fatalf("after Advance commit %d, want 1", st.Commit)
		}
		s.settle()
		if rp, ok := s.reply(p.r.cfg.ID, pid); !ok || rp.Op != 1 || rp.Err != nil {
			t.Fatalf("reply %+v %v", rp, ok)
		}
	})
	t.Run("n=3", func(t *testing.T) {
		s := scenario(t, 3, nil)
		p := s.nd(0)
		s.drop = func(m Message) bool { return m.Type == MsgPrepareOK && m.From == s.id(2) }
		s.mustSubmit(p.r.cfg.ID, 0, 0, "a")
		rd := p.r.Ready()
		if st := p.r.Status(); st.Commit != 0 {
			t.Fatalf("committed before anything was durable: %+v", st)
		}
		p.persist(rd)
		s.queue = append(s.queue, rd.Messages...)
		p.r.Advance()
		if st := p.r.Status(); st.Commit != 0 {
			t.Fatalf("primary alone committed op 1 in a group of 3: %+v", st)
		}
		s.settle()
		if st := p.r.Status(); st.Commit != 1 {
			t.Fatalf("after n1's ack commit %d, want 1", st.Commit)
		}
	})
}

// Durability rule: a message leaves only in the Ready that makes the state
// it vouches for durable, or after. The checkers verify it for every
// message of the run; here a backup's PREPAREOK and a STARTVIEWCHANGE are
// checked against their own Ready explicitly.
func TestMessagesLeaveOnlyWithTheStateTheyVouchFor(t *testing.T) {
	s := scenario(t, 3, nil)
	b := s.id(1)
	s.mustSubmit(s.id(0), 0, 0, "a")
	s.mustSubmit(s.id(0), 0, 0, "b")
	s.processNode(s.id(0))
	// Deliver the PREPARE to n1 only, and look at n1's next Ready.
	q := s.queue
	s.queue = nil
	for _, m := range q {
		if m.To == b {
			s.nodes[b].r.Step(m)
		}
	}
	rd, _ := s.processNode(b)
	var ok *Message
	for i, m := range rd.Messages {
		if m.Type == MsgPrepareOK {
			ok = &rd.Messages[i]
		}
	}
	if ok == nil || ok.Op != 2 {
		t.Fatalf("n1's Ready messages %v: want a PREPAREOK for op 2", rd.Messages)
	}
	if rd.LogFrom != 1 || len(rd.Entries) != 2 || rd.Entries[1].Op != 2 {
		t.Fatalf("n1's PREPAREOK op 2 left in a Ready persisting LogFrom %d entries %d: the ops it vouches for are not in it", rd.LogFrom, len(rd.Entries))
	}
	s.queue = nil
	s.settle()

	// A view change: the Ready with the STARTVIEWCHANGE persists the new view.
	s.nodes[b].r.SuspectPrimary()
	rd, _ = s.processNode(b)
	var svc bool
	for _, m := range rd.Messages {
		svc = svc || (m.Type == MsgStartViewChange && m.View == 1)
	}
	if !svc {
		t.Fatalf("no STARTVIEWCHANGE for view 1 in %v", rd.Messages)
	}
	if rd.HardState == nil || rd.HardState.View != 1 || rd.HardState.Mode != ModeViewChange || rd.HardState.LastNormalView != 0 {
		t.Fatalf("STARTVIEWCHANGE left with hard state %+v; want view 1, view-change, last normal 0", rd.HardState)
	}
	s.settle()
	// The rest of the run (a view change with STARTVIEW, a restart, a wipe
	// and recovery, more writes) runs under the checkers.
	s.write("c")
	s.restart(s.id(2))
	s.write("d")
	s.wipe(s.id(0))
	s.write("e")
	s.requireConverged(200)
	if got := s.applied(s.id(0)); got != "a,b,c,d,e" {
		t.Errorf("applied %q", got)
	}
}

// PipelineMax bounds the batches "prepared but not yet committed", and a
// restart does not commit anything: a primary restarted with uncommitted
// batches changes view, and the new primary, which inherits them, must
// count them against the bound.
func TestPipelineBoundCountsUncommittedOpsAfterPrimaryRestart(t *testing.T) {
	s := scenario(t, 3, func(c *cluster) {
		c.tune = func(_ hasup.NodeID, cfg *Config) { cfg.PipelineMax, cfg.BatchOps = 1, 1 }
	})
	p := s.id(0)
	s.drop = func(m Message) bool { return m.Type == MsgPrepareOK }
	s.mustSubmit(p, 0, 0, "a")
	s.mustSubmit(p, 0, 0, "b")
	s.settle()
	if st := s.nd(0).r.Status(); st.Op != 1 {
		t.Fatalf("before restart: %+v; want one batch in flight", st)
	}
	s.restart(p)
	if s.primaryIs(p) {
		t.Fatal("a restarted primary resumed its view")
	}
	np := s.id(1)
	if !s.tickUntil(60, func() bool { return s.primaryIs(np) }) {
		t.Fatalf("no new primary:\n%s", s.dump())
	}
	s.mustSubmit(np, 0, 0, "c")
	s.settle()
	if st := s.nd(1).r.Status(); st.Op > 1 && st.Commit == 0 {
		t.Fatalf("the new primary prepared op %d while the inherited op 1 is uncommitted, beyond PipelineMax 1", st.Op)
	}
}

// Bounded queues: beyond ProposalsMax waiting proposals and ReadsMax waiting
// reads, the primary refuses with ErrBusy rather than grow.
func TestPrimaryRefusesProposalsAndReadsBeyondTheirQueueBounds(t *testing.T) {
	s := scenario(t, 3, func(c *cluster) {
		c.tune = func(_ hasup.NodeID, cfg *Config) { cfg.ProposalsMax, cfg.ReadsMax = 2, 1 }
	})
	p := s.id(0)
	for i := 0; i < 2; i++ {
		if _, err := s.submit(p, 0, 0, "x"); err != nil {
			t.Fatalf("proposal %d: %v", i, err)
		}
	}
	if _, err := s.submit(p, 0, 0, "x"); err != ErrBusy {
		t.Errorf("third queued proposal: %v, want ErrBusy", err)
	}
	s.settle() // the queue drains into a batch
	if _, err := s.submit(p, 0, 0, "y"); err != nil {
		t.Errorf("proposal after the queue drained: %v", err)
	}
	s.drop = func(m Message) bool { return m.Type == MsgCommitOK }
	if _, err := s.read(p); err != nil {
		t.Fatalf("first read: %v", err)
	}
	if _, err := s.read(p); err != ErrBusy {
		t.Errorf("second waiting read: %v, want ErrBusy", err)
	}
}
