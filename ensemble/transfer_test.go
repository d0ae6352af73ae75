package ensemble

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hasup/hasup"
)

// Scenario tests for state transfer and checkpoints (VRR §5), including the
// data-loss trace of VRR-as-written.

// The state-transfer trace of VRR-as-written (Vanlightly's TLA+ model of the
// paper): a replica that learns of a newer view from a PREPARE with a gap
// truncates its log to its commit number (§5.2) and then takes part in a
// view change with its old last-normal-view and the shortened log. With
// n=3:
//
//  1. view 0: X reaches n0 and n2 only; n0 commits it and answers the
//     client. n2 does not know X is committed (its commit number is 0).
//  2. n2 pauses. n0 and n1 fail to start views 1 and 2 and start view 3
//     (primary n0; or 6, ... if timeouts skip one) with X; n1 never gets the
//     STARTVIEW and stays in its view change, without X.
//  3. n2 wakes up and gets a PREPARE of view 3 with a gap (op 2 after its
//     op 1). It must not drop X while it keeps last-normal-view 0.
//  4. n0 crashes. n1 and n2 start a view without it: both DVCs carry
//     last-normal-view 0; n1's log is empty, n2's must still hold X, or the
//     acknowledged X is lost.
func TestReplicaLearningOfNewerViewWithGapKeepsItsSuffixAndLastNormalView(t *testing.T) {
	s := scenario(t, 3, nil)
	n0, n1, n2 := s.id(0), s.id(1), s.id(2)

	// 1.
	s.drop = func(m Message) bool { return m.Type == MsgPrepare && m.To == n1 }
	pidX := s.mustSubmit(n0, 0, 0, "X")
	s.settle()
	if rp, ok := s.reply(n0, pidX); !ok || rp.Err != nil || rp.Op != 1 {
		t.Fatalf("X not acknowledged as op 1: %+v %v", rp, ok)
	}
	if st := s.nd(2).r.Status(); st.Op != 1 || st.Commit != 0 {
		t.Fatalf("step 1: n2 %+v; want X held, not known committed", st)
	}

	// 2.
	s.nd(2).down = true
	s.drop = func(m Message) bool {
		return (m.Type == MsgPrepare && m.To == n1) ||
			(m.Type == MsgDoViewChange && m.To != n0) ||
			(m.Type == MsgStartView && m.To == n1)
	}
	s.nd(1).r.SuspectPrimary()
	s.settle()
	// Only n0's views (3, 6, ...) can start: n1 gets no DVC, n2 is paused.
	if !s.tickUntil(300, func() bool { return s.primaryIs(n0) && s.nd(0).r.Status().View > 0 }) {
		t.Fatalf("step 2: n0 did not start a new view:\n%s", s.dump())
	}
	v := s.nd(0).r.Status().View
	if st := s.nd(1).r.Status(); st.View != v || st.Mode != ModeViewChange || st.LastNormalView != 0 || st.Op != 0 {
		t.Fatalf("step 2: n1 %+v; want in view change %d, last normal 0, no ops", st, v)
	}

	// 3.
	s.nd(2).down = false
	s.drop = func(m Message) bool {
		return m.To == n1 || m.Type == MsgGetState || m.Type == MsgNewState
	}
	s.mustSubmit(n0, 0, 0, "Y") // op 2 of view v: a gap after n2's op 1
	s.settle()
	st := s.nd(2).r.Status()
	if st.View != v {
		t.Fatalf("step 3: n2 did not learn view %d from the PREPARE: %+v", v, st)
	}
	e, ok := s.nd(2).r.LogEntry(1)
	if st.LastNormalView == 0 && (st.Op != 1 || !ok || string(e.Cmd) != "X") {
		t.Fatalf("step 3: n2 %+v dropped its suffix (op 1 = %q %v) while keeping last-normal-view 0", st, e.Cmd, ok)
	}
	if d := s.nd(2).disk; d.Hard.LastNormalView == 0 {
		if de, ok := diskEntry(d, 1); !ok || string(de.Cmd) != "X" {
			t.Fatalf("step 3: n2's durable log lost X under last-normal-view 0: %+v", d)
		}
	}

	// 4.
	s.nd(0).down = true
	s.drop = nil
	if !s.tickUntil(300, func() bool { return s.primaryIs(n1) || s.primaryIs(n2) }) {
		t.Fatalf("step 4: no view formed by n1 and n2:\n%s", s.dump())
	}
	s.requireConverged(200)
	for _, id := range []hasup.NodeID{n1, n2} {
		if got := s.applied(id); !strings.HasPrefix(got, "X") {
			t.Errorf("%s applied %q: the acknowledged X was lost", id, got)
		}
	}
	s.write("Z")
	s.requireConverged(50)
}

// §5.2 made atomic: a replica that gets a STARTVIEW whose log starts after
// its commit number+1 keeps its own log and last-normal-view until it has
// fetched the view's whole log, then installs both in one Ready.
func TestStartViewWithGapIsInstalledWholeTogetherWithTheNewView(t *testing.T) {
	s := scenario(t, 3, nil)
	n0, n1, n2 := s.id(0), s.id(1), s.id(2)
	s.mustSubmit(n0, 0, 0, "a")
	s.settle() // n2 holds a, commit 0
	s.drop = func(m Message) bool { return m.To == n2 && m.Type != MsgStartView }
	s.write("b")
	s.write("c")
	s.tick(1) // n1 learns commit 3
	s.drop = func(m Message) bool { return (m.To == n2 && m.Type != MsgStartView) || m.Type == MsgGetState }
	s.nd(1).r.SuspectPrimary() // view 1 by n0 and n1, STARTVIEW from commit 3 on
	s.settle()
	sv := s.sent(n1, MsgStartView)
	if len(sv) == 0 || sv[0].LogStart != 4 {
		t.Fatalf("STARTVIEWs %v: the scenario needs one whose log starts at 4", sv)
	}
	st := s.nd(2).r.Status()
	if st.View != 1 || st.LastNormalView != 0 || st.Op != 1 || st.Commit != 0 {
		t.Fatalf("n2 after a STARTVIEW with a gap: %+v; want view 1, last normal 0, its op 1 kept", st)
	}
	if !st.Transferring {
		t.Fatalf("n2 is not fetching the view's log: %+v", st)
	}
	var installs []Ready
	s.observers = append(s.observers, func(id hasup.NodeID, rd Ready) {
		if id == n2 && rd.HardState != nil && rd.HardState.LastNormalView == 1 {
			installs = append(installs, rd)
		}
	})
	s.drop = nil
	s.tick(5)
	if len(installs) == 0 {
		t.Fatalf("n2 never installed view 1:\n%s", s.dump())
	}
	if rd := installs[0]; rd.LogFrom == 0 || rd.LogFrom > 2 || len(rd.Entries) == 0 || rd.Entries[len(rd.Entries)-1].Op != 3 {
		t.Fatalf("the Ready that made last-normal-view 1 durable wrote LogFrom %d entries %v: want the view's log through op 3", rd.LogFrom, cmds(rd.Entries))
	}
	s.requireConverged(20)
	if got := s.applied(n2); got != "a,b,c" {
		t.Errorf("n2 applied %q", got)
	}
}

// §5: with CheckpointOps 4 and 64-byte chunks, a replica that was down for
// several checkpoints catches up by fetching the primary's checkpoint in
// many chunks, then the log after it, and ends with the same state.
func TestLaggingReplicaCatchesUpThroughMultiChunkCheckpointTransfer(t *testing.T) {
	s := scenario(t, 3, func(c *cluster) { c.ckptOps, c.chunk = 4, 64 })
	n2 := s.id(2)
	s.nd(2).down = true
	for i := 0; i < 20; i++ {
		s.write(fmt.Sprintf("op-%017d", i))
	}
	if st := s.nd(0).r.Status(); st.CheckpointOp != 20 {
		t.Fatalf("primary checkpoint %d, want 20", st.CheckpointOp)
	}
	s.nd(2).down = false
	s.write("last") // its PREPARE shows n2 the gap
	s.requireConverged(100)
	var chunks []Message
	for _, id := range []hasup.NodeID{s.id(0), s.id(1)} {
		for _, m := range s.sent(id, MsgNewState) {
			if m.To == n2 && m.CheckpointOp > 0 {
				chunks = append(chunks, m)
			}
		}
	}
	if len(chunks) < 2 {
		t.Fatalf("%d checkpoint chunks sent to n2; want a multi-chunk transfer", len(chunks))
	}
	for _, m := range chunks {
		if len(m.Data) > 64 {
			t.Errorf("chunk of %d bytes exceeds ChunkBytes 64", len(m.Data))
		}
	}
	if chunks[0].Total <= 64 {
		t.Errorf("checkpoint of %d bytes fits one chunk; the test needs more", chunks[0].Total)
	}
	if st := s.nd(2).r.Status(); st.CheckpointOp < 20 || st.Applied != 21 {
		t.Errorf("n2 after transfer: %+v", st)
	}
	if s.applied(n2) != s.applied(s.id(0)) {
		t.Errorf("n2 applied %q, primary %q", s.applied(n2), s.applied(s.id(0)))
	}
	if got := strings.Count(s.applied(n2), ","); got != 20 {
		t.Errorf("n2 applied %d commands, want 21", got+1)
	}
}

// §4.1 step 7 ("a backup that learns of a commit it does not have ... may
// require state transfer"): a backup that missed committed ops catches up
// from the primary's heartbeats alone, without waiting for a new request.
func TestBackupThatMissedCommittedOpsCatchesUpWhileIdle(t *testing.T) {
	for _, ckpt := range []uint64{1024, 4} {
		t.Run(fmt.Sprint("checkpointOps=", ckpt), func(t *testing.T) {
			s := scenario(t, 3, func(c *cluster) { c.ckptOps, c.chunk = ckpt, 64 })
			s.nd(2).down = true
			for i := 0; i < 10; i++ {
				s.write(fmt.Sprintf("w%d", i))
			}
			s.nd(2).down = false
			if !s.tickUntil(100, s.converged) {
				t.Fatalf("a backup behind the commit number did not catch up in an idle ensemble:\n%s", s.dump())
			}
			s.requireAckedKept()
		})
	}
}

// §5 with view changes: a new primary whose commit number is below the
// start of the log it chose (the chosen sender has checkpointed past it)
// first fetches that sender's checkpoint, in chunks, then starts the view.
func TestNewPrimaryBehindChosenLogFetchesCheckpointBeforeStartingView(t *testing.T) {
	s := scenario(t, 3, func(c *cluster) { c.ckptOps, c.chunk = 4, 64 })
	n1, n2 := s.id(1), s.id(2)
	s.nd(2).down = true
	for i := 0; i < 20; i++ {
		s.write(fmt.Sprintf("op-%017d", i))
	}
	s.tick(1)
	s.nd(2).down = false
	s.nd(0).down = true
	// View 1 (primary n1) cannot form; view 2's primary is n2, the one
	// behind.
	s.drop = func(m Message) bool { return m.Type == MsgDoViewChange && m.To == n1 }
	if !s.tickUntil(300, func() bool { return s.primary() != nil }) {
		t.Fatalf("no primary:\n%s", s.dump())
	}
	if !s.primaryIs(n2) {
		t.Fatalf("the scenario needs n2 as the new primary:\n%s", s.dump())
	}
	if st := s.nd(2).r.Status(); st.CheckpointOp != 20 || st.Op != 20 || st.Commit != 20 {
		t.Fatalf("n2 started its view with %+v; want the chosen log's checkpoint 20", st)
	}
	var chunks int
	for _, m := range s.sent(n1, MsgNewState) {
		if m.To == n2 && m.CheckpointOp > 0 {
			chunks++
		}
	}
	if chunks < 2 {
		t.Errorf("%d checkpoint chunks to the new primary; want several", chunks)
	}
	s.drop = nil
	s.write("after")
	s.requireConverged(50)
	if s.applied(n2) != s.applied(n1) || !strings.HasSuffix(s.applied(n2), ",after") {
		t.Errorf("n2 applied %q, n1 %q", s.applied(n2), s.applied(n1))
	}
}
