package ensemble

import (
	"errors"
	"strings"
	"testing"
)

// Scenario tests for linearizable reads: the primary answers only after a
// quorum round (COMMIT with a round number, answered by COMMITOK) confirms
// that no newer view had started when the read arrived.

// Reads go to the primary of a normal view; a backup refuses them.
func TestReadOnBackupFailsWithErrNotPrimary(t *testing.T) {
	s := scenario(t, 3, nil)
	for _, b := range []int{1, 2} {
		if err := s.nd(b).r.Read(1, nil); !errors.Is(err, ErrNotPrimary) {
			t.Errorf("Read on backup %s: %v, want ErrNotPrimary", s.id(b), err)
		}
	}
	s.nd(1).r.SuspectPrimary()
	s.settle()
	if err := s.nd(0).r.Read(1, nil); !errors.Is(err, ErrNotPrimary) {
		t.Errorf("Read on the old primary after a view change: %v, want ErrNotPrimary", err)
	}
}

// A read is answered only once a quorum (the primary and f backups) has
// confirmed the round it belongs to: with every COMMITOK lost it waits
// forever, however often the primary heartbeats; one backup's COMMITOK
// releases it, with every write committed before it.
func TestReadIsAnsweredOnlyAfterAQuorumConfirmsTheView(t *testing.T) {
	s := scenario(t, 3, nil)
	p := s.id(0)
	s.write("a")
	s.write("b")
	s.drop = func(m Message) bool { return m.Type == MsgCommitOK }
	pid, err := s.read(p)
	if err != nil {
		t.Fatal(err)
	}
	rd, _ := s.processNode(p)
	if len(rd.Replies) != 0 {
		t.Fatalf("read answered in the Ready that starts its round: %+v", rd.Replies)
	}
	rounds := 0
	for _, m := range rd.Messages {
		if m.Type == MsgCommit && m.Round > 0 {
			rounds++
		}
	}
	if rounds != 2 {
		t.Fatalf("Ready after Read sent %v: want a COMMIT with a round to each backup", rd.Messages)
	}
	s.settle()
	s.tick(10)
	if rp, ok := s.reply(p, pid); ok {
		t.Fatalf("read answered %+v without any COMMITOK", rp)
	}
	s.drop = func(m Message) bool { return m.Type == MsgCommitOK && m.From != s.id(1) }
	s.tick(1)
	rp, ok := s.reply(p, pid)
	if !ok || rp.Err != nil || string(rp.Result) != "a,b" {
		t.Fatalf("read after n1's COMMITOK: %+v %v; want a,b", rp, ok)
	}
}

// A primary cut off from the others keeps believing it is primary while the
// others elect a new one and commit a write. A read sent to the old primary
// must never be answered with the state before that write: it stays
// unanswered while the partition lasts and, once healed, fails or sees the
// write.
func TestDeposedPrimaryNeverAnswersAReadWithStaleData(t *testing.T) {
	s := scenario(t, 3, nil)
	n0 := s.id(0)
	s.write("a")
	s.drop = func(m Message) bool { return m.From == n0 || m.To == n0 }
	if !s.tickUntil(100, func() bool { return s.primaryIs(s.id(1)) || s.primaryIs(s.id(2)) }) {
		t.Fatalf("no new primary:\n%s", s.dump())
	}
	s.write("b")
	if !s.primaryIs(n0) {
		t.Fatalf("the scenario needs n0 to still believe it is primary: %+v", s.nd(0).r.Status())
	}
	pid, err := s.read(n0)
	if err != nil {
		t.Fatalf("read at the deposed primary: %v", err)
	}
	s.tick(50)
	// It may give up (CheckQuorum makes it step down: ErrNotPrimary), but
	// it must not answer with data.
	if rp, ok := s.reply(n0, pid); ok && rp.Err == nil {
		t.Fatalf("deposed primary answered %+v during the partition", rp)
	}
	s.drop = nil
	s.requireConverged(100)
	if rp, ok := s.reply(n0, pid); ok && rp.Err == nil && !strings.Contains(string(rp.Result), "b") {
		t.Fatalf("deposed primary answered a stale %q, missing the committed b", rp.Result)
	}
}

// A new primary answers reads only once every op ordered before its view
// started is committed: ops it inherited may have been answered by the old
// primary already.
func TestNewPrimaryAnswersReadsOnlyAfterCommittingInheritedOps(t *testing.T) {
	s := scenario(t, 3, nil)
	s.tick(1)
	s.drop = func(m Message) bool { return m.Type == MsgCommit || m.Type == MsgPrepareOK && m.From == s.id(2) }
	s.write("a") // n1 holds it, knows no commit
	if st := s.nd(1).r.Status(); st.Op != 1 || st.Commit != 0 {
		t.Fatalf("n1 %+v", st)
	}
	s.nd(0).down = true
	// View 1 by n1 and n2; hold n2's PREPAREOK for the new view back.
	s.drop = func(m Message) bool { return m.Type == MsgPrepareOK }
	s.nd(1).r.SuspectPrimary()
	s.settle()
	if !s.primaryIs(s.id(1)) || s.nd(1).r.Status().Commit != 0 {
		t.Fatalf("n1 should be primary of view 1 with op 1 uncommitted: %+v", s.nd(1).r.Status())
	}
	pid, err := s.read(s.id(1))
	if err != nil {
		t.Fatal(err)
	}
	s.settle()
	if rp, ok := s.reply(s.id(1), pid); ok {
		t.Fatalf("new primary answered %+v before committing the op it inherited", rp)
	}
	s.drop = nil
	s.tick(2)
	rp, ok := s.reply(s.id(1), pid)
	if !ok || rp.Err != nil || string(rp.Result) != "a" {
		t.Fatalf("read %+v %v; want a", rp, ok)
	}
}

// With n=5 the deposed primary keeps a backup of its old view on its side
// of the partition ({n0,n4} | {n1,n2,n3}); its confirmation round reaches
// that backup, but two of five is no quorum, so the read still waits.
func TestDeposedPrimaryWithAStaleBackupCannotConfirmAReadRound(t *testing.T) {
	s := scenario(t, 5, nil)
	n0, n4 := s.id(0), s.id(4)
	s.write("a")
	minority := func(id any) bool { return id == n0 || id == n4 }
	s.drop = func(m Message) bool { return minority(m.From) != minority(m.To) }
	if !s.tickUntil(100, func() bool { return s.primaryIs(s.id(1)) || s.primaryIs(s.id(2)) || s.primaryIs(s.id(3)) }) {
		t.Fatalf("majority side elected no primary:\n%s", s.dump())
	}
	s.write("b")
	if !s.primaryIs(n0) || s.nodes[n4].r.Status().View != 0 {
		t.Fatalf("the scenario needs n0 primary and n4 in view 0:\n%s", s.dump())
	}
	pid, err := s.read(n0)
	if err != nil {
		t.Fatal(err)
	}
	s.settle()
	oks := 0
	for _, m := range s.sent(n4, MsgCommitOK) {
		if m.To == n0 && m.Round > 0 {
			oks++
		}
	}
	if oks == 0 {
		t.Fatal("n4 never confirmed n0's round; the scenario needs it to")
	}
	s.tick(5) // less than a view-change timeout: n4 stays in view 0
	if rp, ok := s.reply(n0, pid); ok {
		t.Fatalf("deposed primary answered %+v with two of five confirmations", rp)
	}
	s.drop = nil
	s.requireConverged(100)
	if rp, ok := s.reply(n0, pid); ok && rp.Err == nil && !strings.Contains(string(rp.Result), "b") {
		t.Fatalf("deposed primary answered a stale %q", rp.Result)
	}
}
