package ensemble

import "testing"

// A primary's PREPAREs leave before its own write (Ready.Early), and only
// they: a Ready that changes the view sends nothing early.
func TestPrimaryPreparesLeaveEarlyButNotWithANewView(t *testing.T) {
	c := newCluster(t, 3).boot()
	p := c.primary()
	if err := p.r.Propose(Proposal{ID: 1, Cmd: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	rd := p.r.Ready()
	if rd.Early == 0 || rd.Messages[0].Type != MsgPrepare {
		t.Fatalf("primary's Ready: Early %d, messages %v; want its PREPAREs first and early", rd.Early, rd.Messages)
	}
	for _, m := range rd.Messages[rd.Early:] {
		if m.Type == MsgPrepare || m.Type == MsgCommit {
			t.Fatalf("%v left after the write", m)
		}
	}
	p.persist(rd)
	c.queue = append(c.queue, rd.Messages...)
	p.r.Advance()
	c.settle()

	b := c.nodes["n1"]
	b.r.SuspectPrimary()
	rd = b.r.Ready()
	if rd.Early != 0 {
		t.Fatalf("a Ready that changes the view sends %d messages early", rd.Early)
	}
}

// The primary's write of an op is lost in a crash after its early PREPAREs
// reached the backups, which made it durable and acknowledged it. The
// restarted primary must not resume its view (its log lacks the op the
// backups hold in that view): it changes view, and the op survives.
func TestPrimaryCrashBeforeItsOwnWriteKeepsWhatTheBackupsHold(t *testing.T) {
	c := newCluster(t, 3).boot()
	c.propose(0, 0, "a")
	p := c.nodes["n0"]
	if err := p.r.Propose(Proposal{ID: 2, Cmd: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	rd := p.r.Ready()
	c.queue = append(c.queue, rd.Messages[:rd.Early]...) // the PREPAREs leave; the write never completes
	c.restart("n0")
	c.settle()
	if st := c.nodes["n0"].r.Status(); st.IsPrimary && st.View == 0 {
		t.Fatalf("the restarted primary resumed view 0 with log up to op %d", st.Op)
	}
	c.tick(60)
	np := c.primary()
	if np == nil {
		t.Fatal("no primary after the restart")
	}
	c.propose(0, 0, "c")
	c.tick(3)
	for _, id := range c.ids {
		if got := c.applied(id); got != "a,b,c" {
			t.Errorf("%s applied %q; want a,b,c (b was durable on both backups)", id, got)
		}
	}
}
