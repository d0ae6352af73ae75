package ensemble

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hasup/hasup"
)

// Regression scenarios for bugs the simulator found in the core, one test
// per fix. Each replays the shape of the failing trace deterministically: a
// message is held back (the drop filter records it instead of delivering
// it) and released late with deliver, where the simulator's network had
// delayed or duplicated it.

// deliver steps m at its addressee, bypassing the drop filter (a message
// the network held back and now releases), and runs the Ready it causes. A
// broken invariant panics in the core; deliver reports that panic as a test
// failure naming the message, so the other tests still run.
func (s *scen) deliver(m Message) {
	s.t.Helper()
	defer func() {
		if p := recover(); p != nil {
			s.t.Fatalf("delivering %v: replica panicked: %v", m, p)
		}
	}()
	s.nodes[m.To].r.Step(m)
	s.processNode(m.To)
}

// reads.go, read rounds (simulator seed 914): round numbers start at a
// random base for every primary incarnation, and a COMMITOK outside the
// incarnation's rounds is ignored. n0, primary of view 0, runs a read round;
// n1's COMMITOK for it is held in the network. n0 crashes; n1 and n2 start
// view 1 without it and commit b; n0 restarts from its storage, primary of
// view 0 in its own eyes and cut off from the others. The held COMMITOK,
// released into n0's new read round, must not confirm it: with n0's own
// vote it would make a quorum, and the read would be answered without b.
func TestCommitOKFromBeforeAPrimaryRestartDoesNotConfirmALaterReadRound(t *testing.T) {
	s := scenario(t, 3, nil)
	n0, n1 := s.id(0), s.id(1)
	s.write("a")
	var held []Message
	s.drop = func(m Message) bool {
		if m.Type == MsgCommitOK && m.From == n1 && m.To == n0 {
			held = append(held, m)
			return true
		}
		return false
	}
	pid, err := s.read(n0)
	if err != nil {
		t.Fatal(err)
	}
	s.settle() // n2's COMMITOK confirms the round
	if rp, ok := s.reply(n0, pid); !ok || rp.Err != nil || string(rp.Result) != "a" {
		t.Fatalf("read before the crash: %+v %v; want a", rp, ok)
	}
	var readRound uint64
	for _, m := range s.sent(n0, MsgCommit) {
		if m.To == n1 {
			readRound = max(readRound, m.Round)
		}
	}
	if len(held) == 0 || held[len(held)-1].Round != readRound || held[len(held)-1].View != 0 {
		t.Fatalf("held COMMITOKs %v: the scenario needs n1's answer to read round %d", held, readRound)
	}
	stale := held[len(held)-1]

	s.nd(0).down = true
	s.drop = func(m Message) bool { return m.From == n0 || m.To == n0 }
	s.nd(1).r.SuspectPrimary()
	s.settle()
	if !s.primaryIs(n1) || s.nd(1).r.Status().View != 1 {
		t.Fatalf("n1 should be primary of view 1:\n%s", s.dump())
	}
	s.write("b")
	s.restart(n0)
	// A restarted primary no longer resumes its view (it starts a view
	// change), which closes this hole structurally; the stale COMMITOK
	// must still confirm nothing.
	if st := s.nd(0).r.Status(); st.IsPrimary {
		t.Fatalf("n0 resumed as primary after its restart: %+v", st)
	}
	if _, err := s.read(n0); err == nil {
		t.Fatal("a restarted former primary took a linearizable read")
	}
	s.deliver(stale)
	s.settle()
	s.tick(20)
	s.drop = nil
	s.requireConverged(100)
	if got := s.applied(n0); !strings.Contains(got, "b") {
		t.Fatalf("n0 applied %q after converging, missing the committed b", got)
	}
}

// viewchange.go onStartView: a STARTVIEW of the replica's own view that
// arrives late, after the replica went on in that view and started fetching
// ops it missed, is ignored. The late copy carries the view's log as it was
// at the start; installing it would take the log back below the commit
// number (a panic) or shorten it under the same last-normal-view.
func TestLateStartViewAtABackupTransferringInTheSameViewIsIgnored(t *testing.T) {
	s := scenario(t, 3, nil)
	n1, n2 := s.id(1), s.id(2)
	s.write("a")
	s.tick(1) // backups learn commit 1
	var sv []Message
	s.drop = func(m Message) bool {
		if m.Type == MsgStartView && m.To == n2 {
			sv = append(sv, m)
		}
		return false
	}
	s.nd(2).r.SuspectPrimary() // view 1, primary n1
	s.settle()
	if !s.primaryIs(n1) || len(sv) != 1 || sv[0].View != 1 {
		t.Fatalf("STARTVIEWs to n2 %v: the scenario needs one of view 1 by n1:\n%s", sv, s.dump())
	}
	s.drop = nil
	s.write("b")
	s.write("c")
	s.tick(1) // n2 learns commit 3
	// n2 misses op 4; op 5's PREPARE shows it the gap and it starts a
	// transfer in view 1, which the network keeps from finishing.
	s.drop = func(m Message) bool { return m.Type == MsgPrepare && m.To == n2 }
	s.mustSubmit(n1, 0, 0, "d")
	s.settle()
	s.drop = func(m Message) bool { return isAny(m, MsgGetState, MsgNewState) }
	s.mustSubmit(n1, 0, 0, "e")
	s.settle()
	before := s.nd(2).r.Status()
	if !before.Transferring || before.View != 1 || before.LastNormalView != 1 || before.Op != 3 || before.Commit != 3 {
		t.Fatalf("n2 %+v; the scenario needs it transferring in view 1 with ops 1-3 committed", before)
	}
	if sv[0].Op >= before.Commit {
		t.Fatalf("captured STARTVIEW ends at op %d: the scenario needs it to end below n2's commit %d", sv[0].Op, before.Commit)
	}

	s.deliver(sv[0])
	after := s.nd(2).r.Status()
	if after.Op < before.Op || after.Commit < before.Commit || after.View != 1 || after.LastNormalView != 1 {
		t.Fatalf("late STARTVIEW took n2 from %+v to %+v", before, after)
	}
	if !after.Transferring {
		t.Errorf("late STARTVIEW ended n2's transfer: %+v", after)
	}
	s.drop = nil
	s.requireConverged(100)
	if got := s.applied(n2); got != "a,b,c,d,e" {
		t.Errorf("n2 applied %q, want a,b,c,d,e", got)
	}
}

// transfer.go onNewState: every transfer carries a fresh ID, echoed in the
// NEWSTATE nonce, and answers to an earlier transfer are ignored. n2 catches
// up once through the primary's checkpoint at op 8 (sent when the primary's
// op was 8, so it completes a transfer alone), goes on to op 10, falls
// behind again and starts a second transfer. The first transfer's
// checkpoint, delivered late, must not be taken as the answer: installed, it
// would end n2's log at 8, below its commit number 10.
func TestLateNewStateOfAnEarlierTransferIsIgnored(t *testing.T) {
	s := scenario(t, 3, func(c *cluster) { c.ckptOps = 4 })
	n0, n2 := s.id(0), s.id(2)
	s.nd(2).down = true
	var want []string
	write := func(cmd string) { s.write(cmd); want = append(want, cmd) }
	for i := 0; i < 8; i++ {
		write(fmt.Sprintf("w%d", i))
	}
	s.nd(2).down = false
	if !s.tickUntil(50, func() bool { st := s.nd(2).r.Status(); return st.Op == 8 && !st.Transferring }) {
		t.Fatalf("n2 did not catch up:\n%s", s.dump())
	}
	var old []Message
	for _, m := range s.sent(n0, MsgNewState) {
		if m.To == n2 && m.CheckpointOp == 8 && m.Offset == 0 && m.Op == 8 && m.Total == uint64(len(m.Data)) {
			old = append(old, m)
		}
	}
	if len(old) == 0 {
		t.Fatalf("NEWSTATEs %v: the scenario needs a whole checkpoint 8 sent at op 8", s.sent(n0, MsgNewState))
	}
	write("w8")
	write("w9")
	s.tick(1) // n2 learns commit 10
	s.drop = func(m Message) bool { return m.Type == MsgPrepare && m.To == n2 }
	s.mustSubmit(n0, 0, 0, "w10")
	want = append(want, "w10")
	s.settle()
	s.drop = func(m Message) bool { return isAny(m, MsgGetState, MsgNewState) }
	s.mustSubmit(n0, 0, 0, "w11")
	want = append(want, "w11")
	s.settle()
	before := s.nd(2).r.Status()
	if !before.Transferring || before.Op != 10 || before.Commit != 10 {
		t.Fatalf("n2 %+v; the scenario needs a second transfer from op 10, commit 10", before)
	}

	s.deliver(old[0])
	after := s.nd(2).r.Status()
	if after.Op < before.Op || after.Commit < before.Commit {
		t.Fatalf("late NEWSTATE took n2 from %+v to %+v", before, after)
	}
	if !after.Transferring {
		t.Errorf("late NEWSTATE of an earlier transfer ended the current one: %+v", after)
	}
	s.drop = nil
	s.requireConverged(100)
	if got := s.applied(n2); got != strings.Join(want, ",") {
		t.Errorf("n2 applied %q, want %q", got, strings.Join(want, ","))
	}
}

// transfer.go onCheckpointChunk: once the checkpoint is assembled, a
// duplicate of its first chunk is ignored rather than taken as the start of
// a new checkpoint. Taken as one, it throws the assembled checkpoint away,
// and the answer with the log after the checkpoint, already on its way, is
// refused: the transfer fetches the checkpoint again, and every further
// duplicate starts it over once more.
func TestDuplicateFirstCheckpointChunkAfterAssemblyDoesNotResetTheTransfer(t *testing.T) {
	s := scenario(t, 3, func(c *cluster) { c.ckptOps, c.chunk = 4, 64 })
	n0, n2 := s.id(0), s.id(2)
	s.nd(2).down = true
	for i := 0; i < 20; i++ {
		s.write(fmt.Sprintf("op-%017d", i))
	}
	s.nd(2).down = false
	var held []Message // the log after the checkpoint, on its way to n2
	s.drop = func(m Message) bool {
		if m.Type == MsgNewState && m.To == n2 && m.CheckpointOp == 0 {
			held = append(held, m)
			return true
		}
		return false
	}
	s.write("last") // op 21; its PREPARE shows n2 the gap
	var first []Message
	chunks := 0
	for _, m := range s.sent(n0, MsgNewState) {
		if m.To == n2 && m.CheckpointOp == 20 {
			chunks++
			if m.Offset == 0 {
				first = append(first, m)
			}
		}
	}
	st := s.nd(2).r.Status()
	if !st.Transferring || chunks < 2 || len(first) != 1 || len(held) != 1 || held[0].LogStart != 21 || held[0].Op != 21 {
		t.Fatalf("n2 %+v, %d chunks of checkpoint 20, held %v: the scenario needs a multi-chunk checkpoint assembled and the log after it on its way", st, chunks, held)
	}

	mark := len(s.readies[n2])
	s.deliver(first[0]) // the duplicate
	s.deliver(held[0])
	if st := s.nd(2).r.Status(); st.Transferring || st.Op != 21 || st.CheckpointOp != 20 {
		t.Fatalf("n2 after a duplicate first chunk and the log after the checkpoint: %+v; want the transfer done at op 21", st)
	}
	for _, rd := range s.readies[n2][mark:] {
		for _, m := range rd.Messages {
			if m.Type == MsgGetState && m.WantCheckpoint {
				t.Errorf("duplicate first chunk made n2 fetch the checkpoint again: %v offset %d", m, m.Offset)
			}
		}
	}
	s.drop = nil
	s.requireConverged(100)
	if s.applied(n2) != s.applied(n0) {
		t.Errorf("n2 applied %q, primary %q", s.applied(n2), s.applied(n0))
	}
}

// normal.go canFlush: a new primary counts the uncommitted tail it inherits
// against PipelineMax, and forgets it once it commits, also when it commits
// at the view's start (another DVC carried a larger commit number) rather
// than through acknowledgements. Here n1 holds op 1 without knowing it is
// committed; n2's DVC tells it. With PipelineMax 1 a tail still counted
// would stall the new primary for good.
func TestNewPrimaryWhoseInheritedTailCommitsAtViewStartKeepsCommitting(t *testing.T) {
	s := scenario(t, 3, func(c *cluster) {
		c.tune = func(_ hasup.NodeID, cfg *Config) { cfg.PipelineMax = 1 }
	})
	n1 := s.id(1)
	s.drop = func(m Message) bool { return m.Type == MsgCommit && m.To == n1 }
	s.write("a")
	s.tick(1) // n2 learns commit 1, n1 does not
	if st1, st2 := s.nd(1).r.Status(), s.nd(2).r.Status(); st1.Op != 1 || st1.Commit != 0 || st2.Commit != 1 {
		t.Fatalf("n1 %+v, n2 %+v; the scenario needs op 1 uncommitted at n1 only", st1, st2)
	}
	s.nd(0).down = true
	s.drop = nil
	s.nd(1).r.SuspectPrimary()
	s.settle()
	if st := s.nd(1).r.Status(); !st.IsPrimary || st.View != 1 || st.Op != 1 || st.Commit != 1 {
		t.Fatalf("n1 %+v; the scenario needs it primary of view 1 with op 1 committed at the view's start", st)
	}
	for i, cmd := range []string{"b", "c", "d"} {
		pid := s.mustSubmit(n1, 0, 0, cmd)
		var rp Reply
		if !s.tickUntil(10, func() bool { var ok bool; rp, ok = s.reply(n1, pid); return ok }) {
			t.Fatalf("new primary never answered %q: its pipeline is stalled: %+v", cmd, s.nd(1).r.Status())
		}
		if rp.Err != nil || rp.Op != uint64(i+2) {
			t.Fatalf("%q answered %+v; want op %d", cmd, rp, i+2)
		}
	}
	s.requireConverged(50)
	if got := s.applied(s.id(2)); got != "a,b,c,d" {
		t.Errorf("n2 applied %q", got)
	}
}
