package ensemble

import (
	"strings"
	"testing"

	"github.com/hasup/hasup"
)

// Found by review: a new primary whose inherited tail holds an acknowledged op reports
// 0 lag on a stale read that misses it.
func TestStaleReadAtANewPrimaryRefusesBeforeItsViewIsEstablished(t *testing.T) {
	l := leaseScenario(t, 3, nil)
	n0, n1, n2 := l.id(0), l.id(1), l.id(2)
	l.write("a")
	l.tick(2)
	// n0 commits x with n1's ack; nobody hears that it committed.
	l.setDrop(func(m Message) bool { return m.From == n0 && m.Type == MsgCommit || m.From == n0 && m.To == n2 })
	pid := l.mustSubmit(n0, 0, 0, "x")
	l.settle()
	if rp, ok := l.reply(n0, pid); !ok || rp.Err != nil {
		t.Fatalf("x not acknowledged: %+v %v", rp, ok)
	}
	// n0 is cut off; n2's PREPAREOKs to the new primary are lost.
	l.setDrop(func(m Message) bool { return isolate(n0)(m) || (m.From == n2 && m.Type == MsgPrepareOK) })
	if !l.tickUntil(100, func() bool { return l.primaryIs(n1) }) {
		t.Fatalf("no view 1:\n%s", l.dump())
	}
	l.tick(3)
	rp, err := l.readStale(n1, 0, 1)
	if err == nil && !strings.Contains(string(rp.Result), "x") {
		t.Errorf("STALE: stale read at new primary n1 (%+v) answered %q with LagOps %d LagTicks %d; acknowledged x is missing",
			l.nd(1).r.Status(), rp.Result, rp.LagOps, rp.LagTicks)
	}
}

// Found by review: a backup partitioned together with a deposed primary reports ~0 lag
// while the majority has committed newer writes.
func TestStaleReadAtABackupOfADeposedPrimaryCountsThePrimarysLag(t *testing.T) {
	l := leaseScenario(t, 5, nil)
	n0, n4 := l.id(0), l.id(4)
	l.write("a")
	l.tick(2)
	minority := map[hasup.NodeID]bool{n0: true, n4: true}
	l.setDrop(func(m Message) bool { return minority[m.From] != minority[m.To] })
	majority := []hasup.NodeID{l.id(1), l.id(2), l.id(3)}
	var wcommit uint64
	for i := 0; i < 60; i++ {
		l.tick(1)
		if wcommit == 0 && l.primaryIs(l.id(1)) {
			pid := l.mustSubmit(l.id(1), 0, 0, "w")
			l.settle()
			if rp, ok := l.reply(l.id(1), pid); ok && rp.Err == nil {
				wcommit = l.nd(1).r.Status().Now
				t.Logf("w acknowledged at n1 Now %d", wcommit)
			}
		}
		if wcommit != 0 {
			rp, err := l.readStale(n4, 0, 2)
			if err == nil && !strings.Contains(string(rp.Result), "w") {
				t.Errorf("STALE: n4 answered %q with LagOps %d LagTicks %d, %d ticks after w was acknowledged (n0 %+v)",
					rp.Result, rp.LagOps, rp.LagTicks, l.nd(1).r.Status().Now-wcommit, l.nd(0).r.Status().Mode)
			}
		}
	}
	_ = majority
}

// R3: a member of epoch 1 that acknowledged an op, lost its storage and is
// configured for epoch 0 completes recovery in epoch 0, then enters epoch 1
// as a normal voter without the op: the acknowledged op is lost.
func TestAmnesiacThatRecoveredInAnOldEpochRecoversAgainInTheNext(t *testing.T) {
	rs := reconfigScenario(t, 5, 5, nil)
	n0, n1, n2, n3, n4 := rs.id(0), rs.id(1), rs.id(2), rs.id(3), rs.id(4)
	rs.commitCmd("a1")
	rs.tick(2)
	next := []hasup.NodeID{n0, n1, n2}
	// R reaches n1, n3, n4 but not n2; nobody but n0 hears that it committed,
	// and n0 never reaches n1 again.
	rs.drop = func(m Message) bool {
		if m.From != n0 {
			return false
		}
		return m.To == n1 || (m.To == n2 && m.Epoch == 0) || ((m.To == n3 || m.To == n4) && m.Type == MsgCommit)
	}
	rs.nextID++
	if err := rs.nodes[n0].r.Reconfigure(rs.nextID, next); err != nil {
		t.Fatal(err)
	}
	rs.settle()
	if st := rs.nd(0).r.Status(); st.Epoch != 1 {
		t.Fatalf("n0 %+v; want epoch 1", st)
	}
	// n2 hears of epoch 1 from n0 and enters it; x commits with n0 and n2.
	if !rs.tickUntil(50, func() bool { st := rs.nd(2).r.Status(); return st.Epoch == 1 && st.Mode == ModeNormal }) {
		t.Fatalf("n2 never entered epoch 1:\n%s", rs.dump())
	}
	pid := rs.mustSubmit(n0, 0, 0, "x")
	rs.settle()
	rp, ok := rs.reply(n0, pid)
	if !ok || rp.Err != nil {
		t.Fatalf("x not acknowledged: %+v\n%s", rp, rs.dump())
	}
	t.Logf("x acknowledged at op %d", rp.Op)
	rs.nodes[n0].down = true // n0 crashes
	// n2 loses its storage; the runtime still configures it for epoch 0.
	// n1's PREPAREOKs from n3 and n4 are held back until n2 recovered.
	rs.wipe(n2)
	hold := true
	rs.drop = func(m Message) bool {
		return hold && m.To == n1 && (m.From == n3 || m.From == n4) && m.Type == MsgPrepareOK
	}
	if !rs.tickUntil(300, func() bool { st := rs.nd(2).r.Status(); return st.Mode == ModeNormal }) {
		t.Fatalf("n2 never recovered:\n%s", rs.dump())
	}
	t.Logf("n2 recovered as %+v", rs.nd(2).r.Status())
	hold = false

	t.Logf("n1 %+v\nn2 %+v", rs.nd(1).r.Status(), rs.nd(2).r.Status())
	rs.tick(60)
	rs.nodes[n0].down = false
	rs.restart(n0)
	rs.commitCmd("y")
	rs.tick(5)
	for _, id := range []hasup.NodeID{n0, n1, n2} {
		if got := rs.applied(id); !strings.Contains(got, "x") || !strings.Contains(got, "y") {
			t.Errorf("%s applied %q: the acknowledged x (and then y) must be there", id, got)
		}
	}
	_, _ = n3, n4
}
