package ensemble

import (
	"fmt"
	"strings"
	"testing"
)

// Scenario tests for view changes (VRR §4.2).

// §4.2: a backup that hears nothing from its primary for its randomised
// timeout (in [ViewChangeTicks, 2*ViewChangeTicks)) starts a view change;
// not before.
func TestBackupStartsViewChangeAfterTimeoutWithoutHeartbeats(t *testing.T) {
	s := scenario(t, 3, nil)
	s.write("a")
	s.nd(0).down = true
	vct := s.nd(1).r.cfg.ViewChangeTicks
	s.tick(vct - 1)
	for _, i := range []int{1, 2} {
		if st := s.nd(i).r.Status(); st.View != 0 || st.Mode != ModeNormal {
			t.Fatalf("%s gave up on its primary after %d ticks, before ViewChangeTicks %d: %+v", s.id(i), vct-1, vct, st)
		}
		if n := len(s.sent(s.id(i), MsgStartViewChange)); n != 0 {
			t.Fatalf("%s sent %d STARTVIEWCHANGEs before its timeout", s.id(i), n)
		}
	}
	ticks := vct - 1
	for s.primary() == nil || s.primary() == s.nd(0) {
		if ticks >= 2*vct {
			t.Fatalf("no new primary %d ticks after the primary fell silent:\n%s", ticks, s.dump())
		}
		s.tick(1)
		ticks++
	}
	p := s.primary()
	if st := p.r.Status(); st.View == 0 || st.Primary != p.r.cfg.ID {
		t.Fatalf("new primary %+v", st)
	}
	s.write("b")
	s.requireConverged(50)
	if got := s.applied(s.id(1)); got != "a,b" {
		t.Errorf("applied %q after the view change, want a,b", got)
	}
}

// §4.2 with a failure detector: SuspectPrimary starts the view change at
// once, with no tick; the view change still needs a quorum. A hint on the
// primary itself is ignored, and a false hint costs a view change but no
// committed op.
func TestSuspectPrimaryStartsViewChangeAtOnce(t *testing.T) {
	t.Run("primary down", func(t *testing.T) {
		s := scenario(t, 3, nil)
		s.write("a")
		s.nd(0).down = true
		s.nd(1).r.SuspectPrimary()
		s.settle() // no tick
		if st := s.nd(1).r.Status(); !st.IsPrimary || st.View != 1 {
			t.Fatalf("n1 after SuspectPrimary and one settle: %+v; want primary of view 1", st)
		}
		if st := s.nd(2).r.Status(); st.View != 1 || st.Mode != ModeNormal || st.LastNormalView != 1 {
			t.Fatalf("n2 after the view change: %+v", st)
		}
		s.write("b")
		s.requireConverged(20)
	})
	t.Run("hint on the primary is ignored", func(t *testing.T) {
		s := scenario(t, 3, nil)
		s.nd(0).r.SuspectPrimary()
		s.settle()
		if st := s.nd(0).r.Status(); !st.IsPrimary || st.View != 0 {
			t.Fatalf("primary suspected itself: %+v", st)
		}
	})
	t.Run("false hint", func(t *testing.T) {
		s := scenario(t, 3, nil)
		s.write("a")
		s.nd(2).r.SuspectPrimary() // n0 is alive
		s.settle()
		if st := s.nd(1).r.Status(); !st.IsPrimary || st.View != 1 {
			t.Fatalf("n1: %+v; a false hint still costs one view change", st)
		}
		s.write("b")
		s.requireConverged(20)
		for i := range s.ids {
			if got := s.applied(s.id(i)); got != "a,b" {
				t.Errorf("%s applied %q", s.id(i), got)
			}
		}
	})
}

// §4.2 step 3: the new primary picks the log with the largest
// last-normal-view and, among those, the largest op number. Here all DVCs
// have last-normal-view 0, and the new primary's own log is the shorter one:
// ops 4 and 5 reached only n2 (and were acknowledged to the client thanks to
// n2's PREPAREOK). Taking the first or its own log would lose them.
func TestDoViewChangePicksLargestOpAmongEqualLastNormalView(t *testing.T) {
	s := scenario(t, 3, nil)
	for _, c := range []string{"a", "b", "c"} {
		s.write(c)
	}
	s.tick(1) // backups learn commit 3
	s.drop = func(m Message) bool { return m.Type == MsgPrepare && m.To == s.id(1) }
	for _, c := range []string{"d", "e"} {
		if rp := s.propose(0, 0, c); rp.Err != nil {
			t.Fatalf("propose %s: %v", c, rp.Err)
		}
	}
	if st := s.nd(1).r.Status(); st.Op != 3 {
		t.Fatalf("n1 should lack ops 4-5: %+v", st)
	}
	if st := s.nd(2).r.Status(); st.Op != 5 || st.LastNormalView != 0 {
		t.Fatalf("n2 should hold ops 1-5: %+v", st)
	}
	s.drop = nil
	s.nd(0).down = true
	s.nd(1).r.SuspectPrimary() // view 1: primary n1, DVCs from n1 (op 3) and n2 (op 5)
	s.settle()
	var dvcs []string
	for _, m := range s.sent(s.id(2), MsgDoViewChange) {
		dvcs = append(dvcs, fmt.Sprintf("lnv%d op%d", m.LastNormalView, m.Op))
	}
	if len(dvcs) == 0 || dvcs[0] != "lnv0 op5" {
		t.Fatalf("n2's DVCs %v: the scenario needs lnv0 op5", dvcs)
	}
	st := s.nd(1).r.Status()
	if !st.IsPrimary || st.View != 1 {
		t.Fatalf("n1 not primary of view 1: %+v", st)
	}
	if got := strings.Join(cmds(logOf(s.nd(1).r)), ","); got != "a,b,c,d,e" {
		t.Fatalf("new primary's log %q: the longer log (op 5) must win among equal last-normal-views", got)
	}
	s.requireConverged(20)
	if got := s.applied(s.id(2)); got != "a,b,c,d,e" {
		t.Errorf("applied %q", got)
	}
}

// §4.2 step 3: a larger last-normal-view beats a longer log. n0, cut off,
// keeps ordering d,e,f in view 0 (never committed) while n1 and n2 move to
// view 1 and commit g as op 4. When n2 starts view 2 with n0, n0's log is
// longer but older: taking it would replace the acknowledged g with d.
func TestDoViewChangePicksLargerLastNormalViewOverLongerLog(t *testing.T) {
	s := scenario(t, 3, nil)
	for _, c := range []string{"a", "b", "c"} {
		s.write(c)
	}
	s.tick(1)
	n0, n1, n2 := s.id(0), s.id(1), s.id(2)
	s.drop = func(m Message) bool { return m.From == n0 || m.To == n0 }
	for _, c := range []string{"d", "e", "f"} {
		s.mustSubmit(n0, 0, 0, c)
	}
	s.settle()
	s.nd(1).r.SuspectPrimary()
	s.settle()
	if !s.primaryIs(n1) || s.nd(1).r.Status().View != 1 {
		t.Fatalf("n1 should be primary of view 1:\n%s", s.dump())
	}
	if rp := s.write("g"); rp.Op != 4 {
		t.Fatalf("g committed as op %d, want 4", rp.Op)
	}
	if st := s.nd(0).r.Status(); st.Op != 6 || st.LastNormalView != 0 {
		t.Fatalf("n0 should hold 6 ops of view 0: %+v", st)
	}
	if st := s.nd(2).r.Status(); st.Op != 4 || st.LastNormalView != 1 {
		t.Fatalf("n2 should hold 4 ops of view 1: %+v", st)
	}
	s.nd(1).down = true
	s.drop = nil
	s.nd(2).r.SuspectPrimary() // view 2: primary n2, DVCs from n2 (lnv1 op4) and n0 (lnv0 op6)
	s.settle()
	var dvc []Message
	for _, m := range s.sent(n0, MsgDoViewChange) {
		if m.View == 2 {
			dvc = append(dvc, m)
		}
	}
	if len(dvc) == 0 || dvc[0].LastNormalView != 0 || dvc[0].Op != 6 {
		t.Fatalf("n0's DVC for view 2 %v: the scenario needs lnv0 op6", dvc)
	}
	if !s.primaryIs(n2) {
		t.Fatalf("n2 should be primary of view 2:\n%s", s.dump())
	}
	if got := strings.Join(cmds(logOf(s.nd(2).r)), ","); got != "a,b,c,g" {
		t.Fatalf("new primary's log %q, want a,b,c,g: last-normal-view 1 beats a longer log of view 0", got)
	}
	s.requireConverged(30)
	if got := s.applied(n0); got != "a,b,c,g" {
		t.Errorf("n0 applied %q, want a,b,c,g", got)
	}
}

// §4.2 safety across views: ops committed in any view are in every later
// view's log. Each round writes an op, crashes the primary, lets the others
// elect a new one and restarts the old primary from its storage.
func TestCommittedOpsSurviveSuccessiveViewChanges(t *testing.T) {
	for _, n := range []int{3, 5} {
		t.Run(fmt.Sprint("n=", n), func(t *testing.T) {
			s := scenario(t, n, nil)
			var want []string
			for round := 0; round < 2*n+1; round++ {
				c := fmt.Sprintf("w%d", round)
				s.write(c)
				want = append(want, c)
				p := s.primary()
				old := p.r.cfg.ID
				view := p.r.Status().View
				p.down = true
				if !s.tickUntil(200, func() bool { q := s.primary(); return q != nil && q.r.Status().View > view }) {
					t.Fatalf("round %d: no new primary after %s crashed:\n%s", round, old, s.dump())
				}
				q := s.primary()
				if got := strings.Join(cmds(logOf(q.r)), ","); !strings.HasPrefix(got, strings.Join(want, ",")) {
					t.Fatalf("round %d: new primary %s of view %d has log %q, missing committed %v", round, q.r.cfg.ID, q.r.Status().View, got, want)
				}
				s.restart(old)
			}
			s.requireConverged(200)
			for i := range s.ids {
				if got := s.applied(s.id(i)); got != strings.Join(want, ",") {
					t.Errorf("%s applied %q, want %q", s.id(i), got, strings.Join(want, ","))
				}
			}
		})
	}
}
