package ensemble

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hasup/hasup"
)

// Scenario tests for restart from intact storage and for the RECOVERY
// protocol of a replica whose storage was lost (VRR §4.3).

// §4.3: a RECOVERYRESPONSE is accepted only with the nonce of the current
// recovery attempt. Responses to an earlier attempt (captured on the wire)
// are ignored even when they form a quorum that includes the primary.
func TestRecoveryIgnoresResponseWithStaleNonce(t *testing.T) {
	s := scenario(t, 3, nil)
	n2 := s.id(2)
	s.write("a")
	s.write("b")
	var captured []Message
	s.drop = func(m Message) bool {
		if m.Type == MsgRecoveryResponse {
			captured = append(captured, m)
			return true
		}
		return false
	}
	s.wipe(n2)
	nonces := func() []uint64 {
		var out []uint64
		for _, m := range s.sent(n2, MsgRecovery) {
			if !slices.Contains(out, m.Nonce) {
				out = append(out, m.Nonce)
			}
		}
		return out
	}
	if !s.tickUntil(200, func() bool { return len(nonces()) >= 2 }) {
		t.Fatalf("n2 never started a second recovery attempt; nonces %v", nonces())
	}
	first, second := nonces()[0], nonces()[1]
	if first == second {
		t.Fatalf("both attempts use nonce %d", first)
	}
	var stale []Message
	for _, from := range []hasup.NodeID{s.id(0), s.id(1)} {
		for _, m := range captured {
			if m.From == from && m.Nonce == first {
				stale = append(stale, m)
				break
			}
		}
	}
	if len(stale) != 2 {
		t.Fatalf("captured %d responses with the first nonce from n0 and n1, want 2", len(stale))
	}
	for _, m := range stale {
		s.nodes[n2].r.Step(m)
	}
	rd, _ := s.processNode(n2)
	for _, m := range rd.Messages {
		if m.Type == MsgGetState {
			t.Fatalf("n2 acted on responses with a stale nonce: sent %v", m)
		}
	}
	if st := s.nodes[n2].r.Status(); st.Mode != ModeRecovering || st.Transferring {
		t.Fatalf("n2 after stale responses: %+v; want still recovering, not transferring", st)
	}
	s.queue = nil
	s.drop = nil
	s.requireConverged(200)
	if got := s.applied(n2); got != "a,b" {
		t.Errorf("n2 applied %q after recovery, want a,b", got)
	}
}

// §4.3: a replica whose storage is gone rejoins through RECOVERY (f+1
// answers including the primary's) and state transfer, and ends with the
// same applied state and a durable copy of the log.
func TestWipedReplicaRecoversViaRecoveryAndStateTransfer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ckptOps uint64
	}{{"log only", 1024}, {"checkpoint and log", 4}} {
		t.Run(tc.name, func(t *testing.T) {
			s := scenario(t, 3, func(c *cluster) { c.ckptOps, c.chunk = tc.ckptOps, 64 })
			n2 := s.id(2)
			for i := 0; i < 10; i++ {
				s.write(fmt.Sprintf("w%d", i))
			}
			s.tick(1)
			s.wipe(n2)
			if st := s.nodes[n2].r.Status(); st.Mode != ModeRecovering {
				t.Fatalf("wiped replica starts in %v, want recovering", st.Mode)
			}
			if err := s.nodes[n2].r.Propose(Proposal{ID: 1}); !errors.Is(err, ErrRecovering) {
				t.Errorf("Propose while recovering: %v, want ErrRecovering", err)
			}
			if err := s.nodes[n2].r.Read(1, nil); !errors.Is(err, ErrRecovering) {
				t.Errorf("Read while recovering: %v, want ErrRecovering", err)
			}
			s.requireConverged(200)
			if len(s.sent(n2, MsgRecovery)) == 0 {
				t.Error("n2 recovered without the RECOVERY protocol")
			}
			if s.applied(n2) != s.applied(s.id(0)) {
				t.Fatalf("n2 applied %q, primary %q", s.applied(n2), s.applied(s.id(0)))
			}
			if d := s.nodes[n2].disk; diskOp(d) != 10 || d.Hard.Mode != ModeNormal {
				t.Errorf("n2's storage after recovery: op %d %+v; want the whole log durable", diskOp(d), d.Hard)
			}
			s.write("after")
			s.requireConverged(50)
			// The recovered storage is good for a restart.
			s.restart(n2)
			s.requireConverged(50)
			if !strings.HasSuffix(s.applied(n2), ",after") {
				t.Errorf("n2 after restart applied %q", s.applied(n2))
			}
		})
	}
}

// §4.3: until it has recovered, a replica sends no PREPAREOK,
// STARTVIEWCHANGE or DOVIEWCHANGE and persists nothing: it has forgotten
// what it promised, so its vote could undo a commit. Here n2 is kept
// recovering while the ensemble writes and n0 crashes: n1 alone must not be
// able to start a view with n2's help.
func TestRecoveringReplicaNeverAcknowledgesOrVotes(t *testing.T) {
	s := scenario(t, 3, nil)
	n0, n2 := s.id(0), s.id(2)
	s.write("a")
	recovering := 0
	s.observers = append(s.observers, func(id hasup.NodeID, rd Ready) {
		if id != n2 || s.nodes[id].r.Status().Mode != ModeRecovering {
			return
		}
		recovering++
		if rd.HardState != nil || len(rd.Entries) > 0 || rd.Checkpoint != nil {
			t.Errorf("recovering n2 persisted state: %+v", rd)
		}
		for _, m := range rd.Messages {
			if !isAny(m, MsgRecovery, MsgGetState) {
				t.Errorf("recovering n2 sent %v", m)
			}
		}
	})
	s.drop = func(m Message) bool { return m.Type == MsgRecoveryResponse }
	s.wipe(n2)
	s.write("b") // PREPAREs reach recovering n2
	s.nd(0).down = true
	s.nd(1).r.SuspectPrimary() // STARTVIEWCHANGEs reach recovering n2
	s.tick(60)
	if p := s.primary(); p != nil {
		t.Fatalf("%s became primary with n0 down and n2 recovering:\n%s", p.r.cfg.ID, s.dump())
	}
	if st := s.nodes[n2].r.Status(); st.Mode != ModeRecovering {
		t.Fatalf("n2 left recovery without responses: %+v", st)
	}
	if recovering == 0 {
		t.Fatal("observed no Ready of recovering n2")
	}
	s.restart(n0) // intact storage: a quorum again
	s.drop = nil
	s.requireConverged(300)
	if got := s.applied(n2); got != "a,b" {
		t.Errorf("n2 applied %q", got)
	}
}

// A replica whose storage is intact resumes from it, with no RECOVERY: a
// restart is a long pause. A whole-cluster cold restart, with no live
// quorum in between, keeps every committed op and commits new ones.
func TestWholeClusterColdRestartKeepsCommittedOpsAndCommitsNewOnes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ckptOps uint64
	}{{"log only", 1024}, {"checkpoints", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			s := scenario(t, 3, func(c *cluster) { c.ckptOps = tc.ckptOps })
			var want []string
			for i := 0; i < 5; i++ {
				want = append(want, fmt.Sprintf("w%d", i))
				s.write(want[i])
			}
			for i := range s.ids {
				s.nd(i).down = true
			}
			s.tick(10) // nobody runs
			for _, id := range s.ids {
				s.restart(id)
			}
			s.requireConverged(100)
			for _, id := range s.ids {
				if n := len(s.sent(id, MsgRecovery)); n != 0 {
					t.Errorf("%s ran RECOVERY %d times with intact storage", id, n)
				}
			}
			want = append(want, "after")
			s.write("after")
			s.requireConverged(50)
			for _, id := range s.ids {
				if got := s.applied(id); got != strings.Join(want, ",") {
					t.Errorf("%s applied %q, want %q", id, got, strings.Join(want, ","))
				}
			}
		})
	}
}

// A replica that crashes in the middle of a view change resumes the view
// change from storage (its durable mode is view-change): a cold restart of
// the whole cluster during a stuck view change completes it.
func TestColdRestartDuringViewChangeResumesIt(t *testing.T) {
	s := scenario(t, 3, nil)
	s.write("a")
	s.write("b")
	s.drop = func(m Message) bool { return m.Type == MsgDoViewChange }
	s.nd(1).r.SuspectPrimary()
	s.settle()
	for i := range s.ids {
		if st := s.nd(i).r.Status(); st.Mode != ModeViewChange || st.View != 1 {
			t.Fatalf("%s: %+v; want stuck in view change 1", s.id(i), st)
		}
		s.nd(i).down = true
	}
	s.drop = nil
	for _, id := range s.ids {
		s.restart(id)
		if st := s.nodes[id].r.Status(); st.Mode != ModeViewChange || st.View != 1 {
			t.Fatalf("%s restarted in %+v; want view change 1 from its storage", id, st)
		}
	}
	s.requireConverged(100)
	if v := s.nd(0).r.Status().View; v < 1 {
		t.Fatalf("view went back to %d after restart", v)
	}
	s.write("c")
	s.requireConverged(50)
	if got := s.applied(s.id(0)); got != "a,b,c" {
		t.Errorf("applied %q", got)
	}
}
