package ensemble

import (
	"testing"

	"github.com/hasup/hasup"
)

// quietCluster is a 3-replica cluster whose ensemble quiesces after q idle
// ticks.
func quietCluster(t *testing.T, q int) *cluster {
	c := newCluster(t, 3)
	c.tune = func(_ hasup.NodeID, cfg *Config) { cfg.QuiesceTicks = q }
	return c.boot()
}

func (c *cluster) allQuiescent() bool {
	for _, id := range c.ids {
		if nd := c.nodes[id]; !nd.down && !nd.r.Quiescent() {
			return false
		}
	}
	return true
}

// countMessages ticks n times and counts the messages sent meanwhile.
func (c *cluster) countMessages(n int) int {
	sent := 0
	c.observers = append(c.observers, func(_ hasup.NodeID, rd Ready) { sent += len(rd.Messages) })
	defer func() { c.observers = c.observers[:len(c.observers)-1] }()
	c.tick(n)
	return sent
}

func TestIdleEnsembleQuiescesAndThenSendsNothing(t *testing.T) {
	c := quietCluster(t, 3)
	c.propose(0, 0, "a")
	c.tick(10)
	if !c.allQuiescent() {
		t.Fatal("an idle ensemble did not quiesce")
	}
	if n := c.countMessages(100); n != 0 {
		t.Fatalf("a quiescent ensemble sent %d messages in 100 ticks", n)
	}
	for _, id := range c.ids {
		if st := c.nodes[id].r.Status(); st.Mode != ModeNormal || st.View != 0 || !st.Quiescent {
			t.Fatalf("%s: %+v", id, st)
		}
	}
}

func TestQuiescenceOffByDefaultKeepsHeartbeating(t *testing.T) {
	c := newCluster(t, 3).boot()
	c.tick(20)
	if c.allQuiescent() {
		t.Fatal("quiesced with QuiesceTicks 0")
	}
	if n := c.countMessages(10); n == 0 {
		t.Fatal("no heartbeats")
	}
}

func TestProposalWakesAQuiescentEnsembleAndItQuiescesAgain(t *testing.T) {
	c := quietCluster(t, 3)
	c.tick(10)
	if !c.allQuiescent() {
		t.Fatal("did not quiesce")
	}
	if rp := c.propose(0, 0, "b"); rp.Err != nil {
		t.Fatal(rp.Err)
	}
	for _, id := range c.ids {
		if c.nodes[id].r.Quiescent() && c.nodes[id].r.Status().Commit < 1 {
			t.Fatalf("%s still quiescent before it holds the new op", id)
		}
	}
	c.tick(10)
	if !c.allQuiescent() {
		t.Fatal("did not quiesce again")
	}
	for _, id := range c.ids {
		if got := c.applied(id); got != "b" {
			t.Errorf("%s applied %q", id, got)
		}
	}
}

func TestBackupWokenWithALivePrimaryCausesNoViewChange(t *testing.T) {
	c := quietCluster(t, 3)
	c.tick(10)
	c.nodes["n1"].r.Wake() // the runtime lost touch with a node for a moment
	c.settle()
	c.tick(60) // many view-change timeouts
	for _, id := range c.ids {
		if st := c.nodes[id].r.Status(); st.View != 0 {
			t.Fatalf("%s moved to view %d: the poke did not resume the primary's heartbeats", id, st.View)
		}
	}
	if !c.allQuiescent() {
		t.Fatal("did not quiesce again after the wake")
	}
}

func TestWokenBackupsReplaceADeadQuiescentPrimary(t *testing.T) {
	c := quietCluster(t, 3)
	c.propose(0, 0, "a")
	c.tick(10)
	c.nodes["n0"].down = true
	c.tick(60)
	if st := c.nodes["n1"].r.Status(); st.View != 0 {
		t.Fatalf("quiescent backups changed view without being woken: %+v", st)
	}
	// The runtime stops hearing n0's node and wakes its ensembles.
	c.nodes["n1"].r.Wake()
	c.nodes["n2"].r.Wake()
	c.settle()
	c.tick(60)
	p := c.primary()
	if p == nil || p.r.Status().View == 0 {
		t.Fatal("no new primary after the wake")
	}
	if rp := c.propose(0, 0, "b"); rp.Err != nil {
		t.Fatal(rp.Err)
	}
	c.tick(3)
	for _, id := range []hasup.NodeID{"n1", "n2"} {
		if got := c.applied(id); got != "a,b" {
			t.Errorf("%s applied %q", id, got)
		}
	}
}

func TestBackupThatMissedTheQuiesceWakesTheRestByAViewChange(t *testing.T) {
	c := quietCluster(t, 3)
	c.tick(1)
	c.drop = func(m Message) bool { return m.To == "n2" && m.Type == MsgCommit && m.Quiesce }
	c.tick(6)
	if c.nodes["n2"].r.Quiescent() || c.nodes["n0"].r.Quiescent() {
		t.Fatal("the primary quiesced without n2's agreement")
	}
	c.drop = nil
	c.tick(30)
	if !c.allQuiescent() {
		t.Fatal("did not quiesce once the messages got through")
	}
}

func TestLinearizableReadWakesAQuiescentPrimary(t *testing.T) {
	c := quietCluster(t, 3)
	c.propose(0, 0, "a")
	c.tick(10)
	p := c.primary()
	if err := p.r.ReadAt(ReadRequest{ID: 77, Mode: ReadLinearizable}); err != nil {
		t.Fatal(err)
	}
	c.settle()
	c.tick(1)
	found := false
	for _, rp := range p.replies {
		found = found || (rp.ID == 77 && rp.Err == nil)
	}
	if !found {
		t.Fatal("the read was not answered")
	}
}

func TestQuiescentPrimaryHoldsNoLease(t *testing.T) {
	c := newCluster(t, 3)
	c.tune = func(_ hasup.NodeID, cfg *Config) { cfg.QuiesceTicks, cfg.LeaseTicks = 3, 8 }
	c.boot()
	c.tick(30)
	p := c.primary()
	if !p.r.Quiescent() {
		t.Fatal("did not quiesce")
	}
	if p.r.HoldsLease() {
		t.Fatal("a quiescent primary still holds its lease after 30 ticks without stamps")
	}
	if err := p.r.ReadAt(ReadRequest{ID: 1, Mode: ReadLease}); err == nil {
		t.Fatal("lease read served without a lease")
	}
	if p.r.Quiescent() {
		t.Fatal("a lease read did not wake the primary")
	}
	c.tick(2)
	if !p.r.HoldsLease() {
		t.Fatal("no lease after waking")
	}
	if st := p.r.Status(); st.LeaseLeft == 0 || st.LeaseLeft > 8-2 {
		t.Fatalf("LeaseLeft %d with a lease of 8 ticks and a margin of 2", st.LeaseLeft)
	}
	c.nodes["n1"].down, c.nodes["n2"].down = true, true
	for i := 0; i < 10 && p.r.HoldsLease(); i++ {
		c.tick(1)
	}
	if st := p.r.Status(); st.HoldsLease || st.LeaseLeft != 0 {
		t.Fatalf("cut off from its backups, the primary still reports a lease: %+v", st)
	}
}

func TestElapseIsKTicksOfAQuiescentReplica(t *testing.T) {
	a, b := quietCluster(t, 3), quietCluster(t, 3)
	a.tick(10)
	b.tick(10)
	for _, id := range a.ids {
		for i := 0; i < 25; i++ {
			a.nodes[id].r.Tick()
		}
		b.nodes[id].r.Elapse(25)
		if sa, sb := a.nodes[id].r.Status(), b.nodes[id].r.Status(); sa.Now != sb.Now {
			t.Fatalf("%s: Tick x25 reaches %d, Elapse(25) %d", id, sa.Now, sb.Now)
		}
		if a.nodes[id].r.HasReady() || b.nodes[id].r.HasReady() {
			t.Fatal("a quiescent tick produced work")
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Elapse on an awake replica did not panic")
		}
	}()
	newCluster(t, 3).boot().nodes["n0"].r.Elapse(1)
}

func TestTickNMovesTheClockButNotTheTimers(t *testing.T) {
	c := newCluster(t, 3)
	c.tune = func(_ hasup.NodeID, cfg *Config) { cfg.LeaseTicks = 8 }
	c.boot()
	c.tick(3)
	p, b := c.nodes["n0"].r, c.nodes["n1"].r
	if !p.HoldsLease() {
		t.Fatal("no lease to begin with")
	}
	nowB := b.Status().Now
	b.TickN(100) // a stalled backup: its timeout must not fire before it steps what queued
	if st := b.Status(); st.Now != nowB+100 || st.Mode != ModeNormal || st.View != 0 {
		t.Fatalf("after TickN(100): %+v", st)
	}
	p.TickN(100) // a stalled primary: its lease must be seen to have run out
	if p.HoldsLease() {
		t.Fatal("a primary whose clock moved 100 ticks past its stamps still holds its lease")
	}
}
