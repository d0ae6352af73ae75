package ensemble

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hasup/hasup"
)

// Scenario tests for primary leases, lease and stale reads and the fencing
// token (lease.go, reads.go; DESIGN.md "Reads" and "Leases and fencing").
//
// The harness runs without leases, so that the view-change scenarios act at
// once; these tests turn them on with the durations below. The harness ticks
// every replica in lock step, so its clocks agree exactly: a replica's Now
// is the test's time. Clock drift is modelled by ticking some replicas more
// often than others (tickNode).

const (
	testLeaseTicks  = 8
	testMarginTicks = 2
	testVCTicks     = 10
	// testLeaseSpan is how long a primary holds its lease after the stamp a
	// majority echoed: LeaseTicks - DriftMarginTicks.
	testLeaseSpan = testLeaseTicks - testMarginTicks
)

// withLeases turns leases on for every replica, then applies more, if any.
func withLeases(more func(id hasup.NodeID, cfg *Config)) func(c *cluster) {
	return func(c *cluster) {
		c.tune = func(id hasup.NodeID, cfg *Config) {
			cfg.LeaseTicks, cfg.DriftMarginTicks, cfg.ViewChangeTicks = testLeaseTicks, testMarginTicks, testVCTicks
			if more != nil {
				more(id, cfg)
			}
		}
	}
}

// sentAt is a message with the incarnation that sent it and that
// incarnation's Now when the message left.
type sentAt struct {
	r   *Replica
	now uint64
	m   Message
}

// deliveredAt is a message with the addressee's Now when it arrived.
type deliveredAt struct {
	now uint64
	m   Message
}

// leaseScen is a scenario with leases on that also records when each
// message was sent and delivered, in the replicas' own clocks.
type leaseScen struct {
	*scen
	sentLog map[hasup.NodeID][]sentAt
	got     []deliveredAt
}

func leaseScenario(t *testing.T, n int, more func(id hasup.NodeID, cfg *Config)) *leaseScen {
	t.Helper()
	l := &leaseScen{scen: scenario(t, n, withLeases(more)), sentLog: map[hasup.NodeID][]sentAt{}}
	l.observers = append(l.observers, func(id hasup.NodeID, rd Ready) {
		r := l.nodes[id].r
		for _, m := range rd.Messages {
			l.sentLog[id] = append(l.sentLog[id], sentAt{r: r, now: r.Status().Now, m: m})
		}
	})
	l.setDrop(nil)
	return l
}

// setDrop installs a drop filter (nil: drop nothing) that records every
// message it lets through.
func (l *leaseScen) setDrop(dropIf func(m Message) bool) {
	l.drop = func(m Message) bool {
		if dropIf != nil && dropIf(m) {
			return true
		}
		l.got = append(l.got, deliveredAt{now: l.nodes[m.To].r.Status().Now, m: m})
		return false
	}
}

// isolate returns a filter that cuts id off from every peer.
func isolate(id hasup.NodeID) func(m Message) bool {
	return func(m Message) bool { return m.From == id || m.To == id }
}

// dropAcks is a filter that drops every acknowledgement to a primary, so
// no stamp is echoed.
func dropAcks(m Message) bool { return isAny(m, MsgPrepareOK, MsgCommitOK) }

// now returns the Now of replica i.
func (l *leaseScen) now(i int) uint64 { return l.nd(i).r.Status().Now }

// tickNodes ticks the given replicas only, then settles: replicas whose
// clocks run faster than the others'.
func (l *leaseScen) tickNodes(ids ...hasup.NodeID) {
	for _, id := range ids {
		l.nodes[id].r.Tick()
	}
	l.settle()
}

// sentBy returns what id's current incarnation sent of types ts, from the
// mark-th message it ever sent on.
func (l *leaseScen) sentBy(id hasup.NodeID, mark int, ts ...MsgType) []sentAt {
	var out []sentAt
	for _, s := range l.sentLog[id][mark:] {
		if s.r == l.nodes[id].r && isAny(s.m, ts...) {
			out = append(out, s)
		}
	}
	return out
}

// mark returns how many messages id has sent so far, for sentBy.
func (l *leaseScen) mark(id hasup.NodeID) int { return len(l.sentLog[id]) }

// lastAck returns id's last PREPAREOK or COMMITOK that echoed a stamp: its
// lease promise runs until its Now + LeaseTicks.
func (l *leaseScen) lastAck(id hasup.NodeID) sentAt {
	l.t.Helper()
	acks := l.sentBy(id, 0, MsgPrepareOK, MsgCommitOK)
	for i := len(acks) - 1; i >= 0; i-- {
		if acks[i].m.Stamp > 0 {
			return acks[i]
		}
	}
	l.t.Fatalf("%s never echoed a stamp", id)
	return sentAt{}
}

// holders returns the live replicas that believe they hold a lease now.
func (l *leaseScen) holders() []hasup.NodeID {
	var out []hasup.NodeID
	for _, id := range l.live() {
		if l.nodes[id].r.HoldsLease() {
			out = append(out, id)
		}
	}
	return out
}

// readLease reads at id in lease mode and returns the reply if it was
// accepted; the reply must come in the very next Ready.
func (l *leaseScen) readLease(id hasup.NodeID) (Reply, error) {
	l.t.Helper()
	l.nextID++
	pid := l.nextID
	if err := l.nodes[id].r.ReadAt(ReadRequest{ID: pid, Mode: ReadLease}); err != nil {
		return Reply{}, err
	}
	rd, _ := l.processNode(id)
	for _, rp := range rd.Replies {
		if rp.ID == pid {
			return rp, nil
		}
	}
	l.t.Fatalf("lease read at %s accepted but not answered in the next Ready: %+v", id, rd)
	return Reply{}, nil
}

// readStale reads at id in stale mode within the bounds; like readLease.
func (l *leaseScen) readStale(id hasup.NodeID, maxLagOps, maxLagTicks uint64) (Reply, error) {
	l.t.Helper()
	l.nextID++
	pid := l.nextID
	err := l.nodes[id].r.ReadAt(ReadRequest{ID: pid, Mode: ReadStale, MaxLagOps: maxLagOps, MaxLagTicks: maxLagTicks})
	if err != nil {
		return Reply{}, err
	}
	rd, _ := l.processNode(id)
	for _, rp := range rd.Replies {
		if rp.ID == pid {
			return rp, nil
		}
	}
	l.t.Fatalf("stale read at %s accepted but not answered in the next Ready: %+v", id, rd)
	return Reply{}, nil
}

// 1. Holding and losing the lease.

// A primary holds a lease only once a majority (itself and f backups) has
// echoed a stamp of its PREPAREs or COMMITs: not at boot, before any echo;
// from the first heartbeat echoed on. Backups never hold one.
func TestPrimaryHoldsLeaseOnceAMajorityEchoedItsStamp(t *testing.T) {
	l := leaseScenario(t, 3, nil)
	p := l.nd(0).r
	if st := p.Status(); !st.IsPrimary || st.HoldsLease || p.HoldsLease() {
		t.Fatalf("primary before any echo: %+v; want primary without a lease", st)
	}
	l.tick(1)
	echoes := 0
	for _, d := range l.got {
		if d.m.To == l.id(0) && isAny(d.m, MsgPrepareOK, MsgCommitOK) && d.m.Stamp > 0 {
			echoes++
		}
	}
	if echoes == 0 {
		t.Fatal("no backup echoed the first heartbeat's stamp; the scenario needs one")
	}
	if st := p.Status(); !st.HoldsLease || !p.HoldsLease() {
		t.Fatalf("primary after its heartbeat's stamp was echoed: %+v; want HoldsLease", st)
	}
	for _, i := range []int{1, 2} {
		if st := l.nd(i).r.Status(); st.HoldsLease {
			t.Errorf("backup %s holds a lease: %+v", l.id(i), st)
		}
	}
}

// With five replicas the echoes of one backup are no majority: the primary
// holds no lease however often n1 echoes, and holds one as soon as a
// second backup echoes too.
func TestPrimaryLeaseNeedsEchoesFromAMajorityNotOneBackup(t *testing.T) {
	l := leaseScenario(t, 5, nil)
	p := l.nd(0).r
	echoing := map[hasup.NodeID]bool{l.id(1): true}
	l.setDrop(func(m Message) bool { return dropAcks(m) && !echoing[m.From] })
	for range 2 * testLeaseTicks {
		l.tick(1)
		if p.HoldsLease() {
			t.Fatalf("primary holds a lease at Now %d with echoes from n1 only (2 of 5)", p.Status().Now)
		}
	}
	echoing[l.id(2)] = true
	l.tick(1)
	if !p.HoldsLease() {
		t.Fatalf("primary holds no lease with echoes from n1 and n2 (3 of 5): %+v", p.Status())
	}
}

// With the echoes stopped, the primary keeps its lease until s + LeaseTicks
// - DriftMarginTicks (exclusive), where s is the last stamp a majority
// echoed, by its own clock, and then loses it although it is still the
// primary. While one backup of three still echoes, the lease keeps being
// renewed; once echoes resume, it is regained.
func TestPrimaryLosesLeaseLeaseTicksMinusMarginAfterTheLastEchoedStamp(t *testing.T) {
	l := leaseScenario(t, 3, nil)
	p := l.nd(0).r
	l.tick(2)
	l.setDrop(func(m Message) bool { return dropAcks(m) && m.From == l.id(2) })
	for range 2 * testLeaseTicks {
		l.tick(1)
		if !p.HoldsLease() {
			t.Fatalf("primary lost its lease at Now %d while n1 (with it, a majority) still echoes", p.Status().Now)
		}
	}
	s := p.Status().Now // n1 echoed this tick's heartbeat stamp
	if a := l.lastAck(l.id(1)); a.m.Stamp != s {
		t.Fatalf("n1's last echo %v has stamp %d, want %d", a.m, a.m.Stamp, s)
	}
	l.setDrop(dropAcks)
	for now := s + 1; now <= s+testLeaseTicks+2; now++ {
		l.tick(1)
		st := p.Status()
		if st.Now != now || !st.IsPrimary {
			t.Fatalf("primary %+v at time %d: want still primary (the backups keep promising)", st, now)
		}
		want := now < s+testLeaseSpan
		if st.HoldsLease != want || p.HoldsLease() != want {
			t.Fatalf("at Now %d (last echoed stamp %d): HoldsLease %v/%v, want %v until %d", now, s, st.HoldsLease, p.HoldsLease(), want, s+testLeaseSpan)
		}
	}
	l.setDrop(nil)
	l.tick(1)
	if !p.HoldsLease() {
		t.Fatalf("primary did not regain its lease once echoes resumed: %+v", p.Status())
	}
}

// The stamps carry the primary's incarnation: echoes of stamps sent before a
// restart do not give the restarted primary a lease, even once its new clock
// has passed the old stamp's value; an echo of its own incarnation does.
func TestRestartedPrimaryIgnoresEchoesOfStampsFromBeforeItsRestart(t *testing.T) {
	l := leaseScenario(t, 3, nil)
	n0 := l.id(0)
	l.tick(4)
	var old []Message
	l.setDrop(func(m Message) bool {
		if m.To == n0 && dropAcks(m) {
			old = append(old, m)
			return true
		}
		return false
	})
	l.tick(1)
	if len(old) == 0 || old[len(old)-1].Stamp == 0 {
		t.Fatalf("held echoes %v: the scenario needs stamped ones", old)
	}
	l.restart(n0)
	l.setDrop(func(m Message) bool { return m.To == n0 && dropAcks(m) }) // no fresh echo
	p := l.nd(0).r
	stampMax := uint64(0)
	for _, m := range old {
		stampMax = max(stampMax, m.Stamp)
	}
	for p.Status().Now <= stampMax+1 {
		l.tick(1)
	}
	// A restarted primary does not resume its view: it changes view, and
	// the echoes of its previous incarnation give it no lease.
	if st := p.Status(); st.IsPrimary || st.HoldsLease {
		t.Fatalf("restarted primary: %+v; want a view change, no lease", st)
	}
	for _, m := range old {
		l.deliver(m)
	}
	if p.HoldsLease() {
		t.Fatalf("restarted replica holds a lease from echoes of stamps %v sent by its previous incarnation", old)
	}
}

// 2. The backup's promise.

// A backup told that its primary is suspected acknowledges nothing more (so
// it promises nothing more) and starts the view change only when its last
// promise runs out, LeaseTicks after its last acknowledgement, not before,
// though the primary keeps sending it PREPAREs and COMMITs.
func TestSuspectingBackupAcknowledgesNothingAndStartsTheViewChangeWhenItsPromiseRunsOut(t *testing.T) {
	l := leaseScenario(t, 3, nil)
	n0, n1 := l.id(0), l.id(1)
	l.tick(3)
	promiseEnd := l.lastAck(n1).now + testLeaseTicks
	l.nd(1).r.SuspectPrimary()
	l.settle()
	mark := l.mark(n1)
	l.mustSubmit(n0, 0, 0, "x") // prepared to n1 too, which must not acknowledge it
	l.settle()
	if st := l.nd(0).r.Status(); st.Commit != 1 {
		t.Fatalf("x should commit with n2's acknowledgement: %+v", st)
	}
	if st := l.nd(1).r.Status(); st.Op != 1 {
		t.Fatalf("n1 should hold x: %+v", st)
	}
	for l.now(1)+1 < promiseEnd {
		l.tick(1)
		if sent := l.sentBy(n1, mark, MsgStartViewChange, MsgDoViewChange, MsgPrepareOK, MsgCommitOK); len(sent) > 0 {
			t.Fatalf("suspecting n1 sent %v at Now %d, before its promise ran out at %d", sent[0].m, sent[0].now, promiseEnd)
		}
		if st := l.nd(1).r.Status(); st.Mode != ModeNormal || st.View != 0 {
			t.Fatalf("n1 left view 0 at Now %d, before its promise ran out at %d: %+v", st.Now, promiseEnd, st)
		}
	}
	l.tick(1)
	svc := l.sentBy(n1, mark, MsgStartViewChange)
	if len(svc) == 0 || svc[0].now != promiseEnd {
		t.Fatalf("n1's STARTVIEWCHANGEs %v: want the first at Now %d, when its promise ran out", svc, promiseEnd)
	}
	if acks := l.sentBy(n1, mark, MsgPrepareOK, MsgCommitOK); len(acks) > 0 {
		t.Fatalf("suspecting n1 acknowledged %v", acks[0].m)
	}
	// The primary promised nothing and joins; the view change completes.
	if !l.tickUntil(2*testVCTicks, func() bool { return l.primaryIs(n1) }) {
		t.Fatalf("n1 never became primary of view 1:\n%s", l.dump())
	}
	l.write("y")
	l.requireConverged(50)
}

// A backup whose promise holds ignores a peer's STARTVIEWCHANGE for a
// higher view (and sends none of its own); once it stops hearing from its
// primary, it joins the next one it receives after its promise ran out.
func TestPromisingBackupIgnoresStartViewChangeForAHigherView(t *testing.T) {
	l := leaseScenario(t, 3, nil)
	n0, n1, n2 := l.id(0), l.id(1), l.id(2)
	l.tick(3)
	// n1's STARTVIEWCHANGEs reach n2 only: the primary, which promises
	// nothing, would join one and end the view itself.
	n1ToN0 := func(m Message) bool { return m.From == n1 && m.To == n0 }
	l.setDrop(n1ToN0)
	l.nd(1).r.SuspectPrimary()
	l.settle()
	mark2, markGot := l.mark(n2), len(l.got)
	l.tick(testLeaseTicks + 2*l.nd(1).r.cfg.RetryTicks)
	var svcs []deliveredAt
	for _, d := range l.got[markGot:] {
		if d.m.To == n2 && d.m.Type == MsgStartViewChange && d.m.View > 0 {
			svcs = append(svcs, d)
		}
	}
	if len(svcs) < 2 {
		t.Fatalf("n2 received STARTVIEWCHANGEs %v: the scenario needs n1's first and a retry", svcs)
	}
	if st := l.nd(2).r.Status(); st.Mode != ModeNormal || st.View != 0 {
		t.Fatalf("promising n2 joined a view change: %+v", st)
	}
	if sent := l.sentBy(n2, mark2, MsgStartViewChange, MsgDoViewChange); len(sent) > 0 {
		t.Fatalf("promising n2 sent %v at Now %d", sent[0].m, sent[0].now)
	}
	if rp := l.write("x"); rp.Err != nil || !l.primaryIs(n0) {
		t.Fatalf("n0 should still commit with n2: %+v\n%s", rp, l.dump())
	}

	l.setDrop(func(m Message) bool { return n1ToN0(m) || isolate(n0)(m) })
	promiseEnd := l.lastAck(n2).now + testLeaseTicks
	if !l.tickUntil(4*testVCTicks, func() bool { return l.primaryIs(n1) || l.primaryIs(n2) }) {
		t.Fatalf("no new primary once n0 was cut off:\n%s", l.dump())
	}
	joined := l.sentBy(n2, mark2, MsgStartViewChange, MsgDoViewChange)
	if len(joined) == 0 || joined[0].now < promiseEnd {
		t.Fatalf("n2 joined with %v, before its promise ran out at %d", joined, promiseEnd)
	}
}

// A backup whose promise holds ignores a DOVIEWCHANGE for a higher view of
// which it would be the primary; after its promise ran out it joins that
// view change. n1, alone in its view change, has moved on to view 2, whose
// primary is n2.
func TestPromisingBackupIgnoresDoViewChangeForAHigherView(t *testing.T) {
	l := leaseScenario(t, 3, nil)
	n0, n1, n2 := l.id(0), l.id(1), l.id(2)
	l.tick(3)
	n1Out := func(m Message) bool { return m.From == n1 }
	l.setDrop(n1Out)
	l.nd(1).r.SuspectPrimary()
	if !l.tickUntil(4*testVCTicks, func() bool { return l.nd(1).r.Status().View >= 2 }) {
		t.Fatalf("n1 never moved on to view 2:\n%s", l.dump())
	}
	st1 := l.nd(1).r.Status()
	if st1.View != 2 || st1.Mode != ModeViewChange {
		t.Fatalf("the scenario needs n1 changing to view 2 (primary n2): %+v", st1)
	}
	dvc := Message{Type: MsgDoViewChange, Ensemble: "e", From: n1, To: n2, View: 2, LastNormalView: st1.LastNormalView,
		Op: st1.Op, Commit: st1.Commit, LogStart: 1, Entries: logOf(l.nd(1).r)}
	l.deliver(dvc)
	if st := l.nd(2).r.Status(); st.Mode != ModeNormal || st.View != 0 {
		t.Fatalf("promising n2 joined view 2 on a DOVIEWCHANGE: %+v", st)
	}
	// Cut n0 off too, and keep n1's retries away, until n2's promise ran out.
	l.setDrop(func(m Message) bool { return n1Out(m) || isolate(n0)(m) })
	promiseEnd := l.lastAck(n2).now + testLeaseTicks
	for l.now(2) < promiseEnd {
		l.tick(1)
	}
	if st := l.nd(2).r.Status(); st.Mode != ModeNormal || st.View != 0 {
		t.Fatalf("n2 left view 0 on its own before its timeout: %+v", st)
	}
	l.deliver(dvc)
	if st := l.nd(2).r.Status(); st.View != 2 || st.Mode != ModeViewChange {
		t.Fatalf("n2, its promise over, did not join view 2 on n1's DOVIEWCHANGE: %+v", st)
	}
}

// 3. No two lease holders at once.

// With the clocks in lock step, the primary cut off from both backups keeps
// believing it holds the lease until LeaseTicks - DriftMarginTicks after
// the last stamp they echoed (serving lease reads), then stops; the new
// primary appears only after the backups' promises ran out, later still. At
// no point (checked after every Ready) do two replicas hold a lease. With
// the "primary suspected" hint the view change starts the tick the promises
// run out; without, at the backups' timeout.
func TestNoTwoReplicasHoldALeaseAtOnceWhenThePrimaryIsCutOff(t *testing.T) {
	for _, hint := range []bool{false, true} {
		t.Run(fmt.Sprint("hint=", hint), func(t *testing.T) {
			l := leaseScenario(t, 3, nil)
			n0, n1, n2 := l.id(0), l.id(1), l.id(2)
			l.observers = append(l.observers, func(id hasup.NodeID, _ Ready) {
				if h := l.holders(); len(h) > 1 {
					t.Errorf("after a Ready of %s, %v all hold a lease:\n%s", id, h, l.dump())
				}
			})
			l.write("a")
			l.tick(2)
			old := l.nd(0).r
			s := old.Status().Now // both backups echoed this tick's stamp
			if !old.HoldsLease() {
				t.Fatal("the scenario needs n0 to hold the lease")
			}
			l.setDrop(isolate(n0))
			if hint {
				l.nd(1).r.SuspectPrimary()
				l.nd(2).r.SuspectPrimary()
				l.settle()
			}
			var newAt uint64 // when a new primary appeared
			for i := 0; i < 4*testVCTicks && newAt == 0; i++ {
				l.tick(1)
				now := old.Status().Now
				if !old.Status().IsPrimary {
					t.Fatalf("cut-off n0 stopped believing it is primary at %d", now)
				}
				holds := now < s+testLeaseSpan
				if old.HoldsLease() != holds {
					t.Fatalf("n0 HoldsLease %v at %d, want %v (last echoed stamp %d)", old.HoldsLease(), now, holds, s)
				}
				rp, err := l.readLease(n0)
				if holds && (err != nil || string(rp.Result) != "a") {
					t.Fatalf("n0 refused a lease read at %d while holding the lease: %+v %v", now, rp, err)
				}
				if !holds && !errors.Is(err, ErrNoLease) {
					t.Fatalf("n0 answered a lease read at %d after its lease ran out: %+v %v", now, rp, err)
				}
				if l.primaryIs(n1) || l.primaryIs(n2) {
					newAt = now
				}
			}
			if newAt == 0 {
				t.Fatalf("no new primary:\n%s", l.dump())
			}
			if newAt < s+testLeaseTicks {
				t.Fatalf("new primary at %d, before the backups' promises (from %d) ran out at %d", newAt, s, s+testLeaseTicks)
			}
			if hint && newAt != s+testLeaseTicks {
				t.Errorf("with the hint the new primary came at %d, want %d, when the promises ran out", newAt, s+testLeaseTicks)
			}
			if !hint && newAt < s+testVCTicks {
				t.Errorf("without the hint the new primary came at %d, before the backups' timeout %d", newAt, s+testVCTicks)
			}
			if !l.tickUntil(5, func() bool { return len(l.holders()) == 1 && !old.HoldsLease() }) {
				t.Fatalf("the new primary never held a lease:\n%s", l.dump())
			}
			l.write("b")
			l.setDrop(nil)
			l.requireConverged(50)
			if old.Status().IsPrimary {
				t.Fatalf("n0 still believes it is primary after the partition healed: %+v", old.Status())
			}
		})
	}
}

// 4. A restarted replica's promise.

// A backup restarted from its disk may have promised just before it
// crashed, so it keeps a promise for LeaseTicks from its start: it refuses
// STARTVIEWCHANGEs until then, and a new primary, which needs its vote,
// appears only once that promise ran out. Without the restart (the control)
// the view change completes the tick the backups' promises run out.
func TestRestartedBackupKeepsAPromiseForLeaseTicksFromItsStart(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprint("restart=", restart), func(t *testing.T) {
			l := leaseScenario(t, 3, nil)
			n1, n2 := l.id(1), l.id(2)
			l.tick(3)
			l.nd(0).down = true
			s := l.now(2) // the backups' last echo
			l.tick(4)
			if restart {
				l.restart(n1)
			}
			r1 := l.nd(1).r
			start := r1.Status().Now
			if restart && start != 1 {
				t.Fatalf("restarted n1 has Now %d, want 1", start)
			}
			promiseEnd1 := start + testLeaseTicks // n1's clock; only after a restart
			markGot := len(l.got)
			l.nd(2).r.SuspectPrimary()
			var newAt uint64 // by n2's clock
			for i := 0; i < 4*testVCTicks && newAt == 0; i++ {
				l.tick(1)
				if l.primaryIs(n1) || l.primaryIs(n2) {
					newAt = l.now(2)
				}
			}
			if newAt == 0 {
				t.Fatalf("no new primary:\n%s", l.dump())
			}
			if !restart {
				if newAt != s+testLeaseTicks {
					t.Fatalf("control: new primary at %d, want %d when the promises ran out", newAt, s+testLeaseTicks)
				}
				return
			}
			refused := 0
			for _, d := range l.got[markGot:] {
				if d.m.To == n1 && d.m.Type == MsgStartViewChange && d.now < promiseEnd1 {
					refused++
				}
			}
			if refused == 0 {
				t.Fatal("n2's STARTVIEWCHANGE never reached restarted n1 during its promise; the scenario needs one")
			}
			joined := l.sentBy(n1, 0, MsgStartViewChange, MsgDoViewChange)
			if len(joined) == 0 || joined[0].now < promiseEnd1 {
				t.Fatalf("restarted n1 joined with %v; its promise ran until its Now %d", joined, promiseEnd1)
			}
			if restartedAt := s + 4; newAt < restartedAt+testLeaseTicks {
				t.Fatalf("new primary at %d, before restarted n1's promise (from %d) ran out", newAt, restartedAt)
			}
			l.write("a")
		})
	}
}

// 5. Lease reads.

// A primary holding its lease answers a lease read in the Ready that
// follows the ReadAt, with no COMMIT round, even while no acknowledgement
// reaches it, from state that includes every committed write.
func TestLeaseReadIsAnsweredInTheSameReadyWithoutACommitRound(t *testing.T) {
	l := leaseScenario(t, 3, nil)
	n0 := l.id(0)
	l.write("a")
	l.write("b")
	l.tick(1)
	l.setDrop(dropAcks)
	if !l.nd(0).r.HoldsLease() {
		t.Fatal("the scenario needs n0 to hold the lease")
	}
	l.nextID++
	pid := l.nextID
	if err := l.nd(0).r.ReadAt(ReadRequest{ID: pid, Mode: ReadLease}); err != nil {
		t.Fatalf("lease read at the lease holder: %v", err)
	}
	rd, _ := l.processNode(n0)
	if len(rd.Replies) != 1 || rd.Replies[0].ID != pid || rd.Replies[0].Err != nil || string(rd.Replies[0].Result) != "a,b" {
		t.Fatalf("Ready after the lease read has replies %+v; want the answer a,b", rd.Replies)
	}
	if len(rd.Messages) != 0 {
		t.Fatalf("a lease read sent %v: want no COMMIT round", rd.Messages)
	}
}

// Without a lease a lease read fails at once with ErrNoLease: when the
// echoes stopped long enough, and when leases are off.
func TestLeaseReadWithoutALeaseFailsWithErrNoLease(t *testing.T) {
	t.Run("echoes stopped", func(t *testing.T) {
		l := leaseScenario(t, 3, nil)
		l.write("a")
		l.tick(1)
		l.setDrop(dropAcks)
		l.tick(testLeaseSpan - 1)
		if _, err := l.readLease(l.id(0)); err != nil {
			t.Fatalf("lease read one tick before the lease runs out: %v", err)
		}
		l.tick(1)
		if rp, err := l.readLease(l.id(0)); !errors.Is(err, ErrNoLease) {
			t.Fatalf("lease read after the lease ran out: %+v %v; want ErrNoLease", rp, err)
		}
	})
	t.Run("leases off", func(t *testing.T) {
		s := scenario(t, 3, nil) // LeaseTicks 0
		s.write("a")
		s.tick(3)
		if s.nd(0).r.HoldsLease() {
			t.Fatal("primary holds a lease with LeaseTicks 0")
		}
		if err := s.nd(0).r.ReadAt(ReadRequest{ID: 1, Mode: ReadLease}); !errors.Is(err, ErrNoLease) {
			t.Fatalf("lease read with leases off: %v; want ErrNoLease", err)
		}
	})
}

// A backup refuses a lease read with ErrNotPrimary.
func TestLeaseReadOnABackupFailsWithErrNotPrimary(t *testing.T) {
	l := leaseScenario(t, 3, nil)
	l.write("a")
	l.tick(1)
	for _, i := range []int{1, 2} {
		if err := l.nd(i).r.ReadAt(ReadRequest{ID: 1, Mode: ReadLease}); !errors.Is(err, ErrNotPrimary) {
			t.Errorf("lease read at backup %s: %v; want ErrNotPrimary", l.id(i), err)
		}
	}
}

// A new primary holding its lease still refuses lease reads until every op
// its view inherited has committed: the old primary may have answered one
// of them already. Here op 1 (a) was prepared in view 0 and never
// committed; n1 starts view 1 with it, gets its lease from n2's COMMITOKs,
// but cannot commit a while n2's PREPAREOKs are lost.
func TestNewPrimaryRefusesLeaseReadsUntilTheOpsItsViewInheritedCommit(t *testing.T) {
	l := leaseScenario(t, 3, nil)
	n0, n1 := l.id(0), l.id(1)
	l.tick(1)
	l.setDrop(func(m Message) bool { return m.Type == MsgPrepareOK })
	l.mustSubmit(n0, 0, 0, "a")
	l.settle()
	if st := l.nd(1).r.Status(); st.Op != 1 || st.Commit != 0 {
		t.Fatalf("n1 should hold a uncommitted: %+v", st)
	}
	l.nd(0).down = true
	l.nd(1).r.SuspectPrimary()
	if !l.tickUntil(3*testVCTicks, func() bool { return l.primaryIs(n1) }) {
		t.Fatalf("n1 never became primary:\n%s", l.dump())
	}
	l.tick(1) // a heartbeat whose stamp n2 echoes in a COMMITOK
	p := l.nd(1).r
	// Its view is not established until what it inherited commits: no lease
	// yet, though a majority echoed its stamps.
	if st := p.Status(); st.HoldsLease || st.View != 1 || st.Op != 1 || st.Commit != 0 {
		t.Fatalf("the scenario needs n1 primary of view 1, without a lease, op 1 uncommitted: %+v", st)
	}
	if rp, err := l.readLease(n1); !errors.Is(err, ErrNoLease) {
		t.Fatalf("new primary answered a lease read %+v (%v) before committing the op its view inherited", rp, err)
	}
	l.setDrop(nil)
	l.tick(1)
	if st := p.Status(); st.Commit != 1 || !st.HoldsLease {
		t.Fatalf("n1 should have committed a and hold its lease: %+v", st)
	}
	rp, err := l.readLease(n1)
	if err != nil || rp.Err != nil || string(rp.Result) != "a" {
		t.Fatalf("lease read once a committed: %+v %v; want a", rp, err)
	}
}

// 6. Clock drift.

// driftOutcome is what runDrift saw.
type driftOutcome struct {
	overlaps  []string // "n0,n1 at n0's Now 12", each time two replicas held a lease
	staleRead string   // an answer the old primary gave to a lease read after b committed without it
	newAt     uint64   // n0's Now when a new primary appeared
}

// runDrift cuts the primary n0 off from n1 and n2 (which suspect it, so
// they start the view change as soon as their promises allow), and ticks n1
// and n2 num/den times as often as n0. Once the new primary holds its
// lease it commits b; then every tick the old primary is asked for a lease
// read.
func runDrift(t *testing.T, num, den int) driftOutcome {
	l := leaseScenario(t, 3, nil)
	n0, n1, n2 := l.id(0), l.id(1), l.id(2)
	l.write("a")
	l.tick(2)
	if !l.nd(0).r.HoldsLease() {
		t.Fatal("the scenario needs n0 to hold the lease")
	}
	l.setDrop(isolate(n0))
	l.nd(1).r.SuspectPrimary()
	l.nd(2).r.SuspectPrimary()
	l.settle()
	var out driftOutcome
	committedB := false
	check := func() {
		now := l.now(0)
		if h := l.holders(); len(h) > 1 {
			out.overlaps = append(out.overlaps, fmt.Sprintf("%v at n0's Now %d", h, now))
		}
		if out.newAt == 0 && (l.primaryIs(n1) || l.primaryIs(n2)) {
			out.newAt = now
		}
		if np := l.primary(); !committedB && np != nil && np.r.cfg.ID != n0 && np.r.HoldsLease() {
			if rp := l.propose(0, 0, "b"); rp.Err != nil {
				t.Fatalf("new primary could not commit b: %v", rp.Err)
			}
			committedB = true
		}
		if committedB && out.staleRead == "" {
			if rp, err := l.readLease(n0); err == nil && !strings.Contains(string(rp.Result), "b") {
				out.staleRead = fmt.Sprintf("%q at n0's Now %d", rp.Result, now)
			}
		}
	}
	acc := 0
	for range 3 * testVCTicks {
		l.tickNodes(n0)
		check()
		for acc += num; acc >= den; acc -= den {
			l.tickNodes(n1, n2) // in step with each other
			check()
		}
	}
	if !committedB {
		t.Fatalf("no new primary with a lease committed b:\n%s", l.dump())
	}
	return out
}

// The lease guarantee assumes the replicas' clock rates differ by less than
// DriftMarginTicks over LeaseTicks. Beyond that bound it does not hold, and
// this test documents it: with the backups' clocks at twice the primary's
// rate their promises run out after 4 of the primary's ticks, before its
// lease does (after 6), so the old and the new primary both hold a lease,
// and the old one answers a lease read without b, which the new one has
// committed. This is OUTSIDE the guarantee. (In this zero-delay harness the
// overlap needs more than 3/2 times the rate: the new primary holds its
// lease one heartbeat after the view starts.)
func TestDriftBeyondMarginCanOverlapLeasesOutsideTheGuarantee(t *testing.T) {
	out := runDrift(t, 2, 1)
	if len(out.overlaps) == 0 {
		t.Fatalf("no overlap with the backups' clocks at twice the rate (new primary at n0's Now %d)", out.newAt)
	}
	if out.staleRead == "" {
		t.Fatalf("overlaps %v but no stale lease read at the old primary", out.overlaps)
	}
	t.Logf("outside the guarantee, as expected: leases overlap %v; stale lease read %s", out.overlaps, out.staleRead)
}

// The same scenario with the drift within the margin, which covers
// 1 + LeaseTicks*rho <= DriftMarginTicks: backup clocks 10/9 (11%) and 9/8
// (12.5%, the edge) as fast never let two replicas hold a lease, and the
// old primary never answers a lease read once b committed.
func TestDriftWithinMarginNeverOverlapsLeases(t *testing.T) {
	for _, rate := range [][2]int{{10, 9}, {9, 8}} {
		t.Run(fmt.Sprintf("rate=%d/%d", rate[0], rate[1]), func(t *testing.T) {
			out := runDrift(t, rate[0], rate[1])
			if len(out.overlaps) > 0 {
				t.Fatalf("drift within the margin let leases overlap: %v", out.overlaps)
			}
			if out.staleRead != "" {
				t.Fatalf("old primary answered a stale lease read %s", out.staleRead)
			}
		})
	}
}

// 7. Stale reads.

// laggingBackup builds a scenario where n2 holds a (op 1) only while b, c
// and d committed (ops 2-4): its PREPAREs were lost, but a COMMIT told it
// commit 4; then it hears nothing for 5 ticks. It is 3 ops and 5 ticks
// behind.
func laggingBackup(t *testing.T) *leaseScen {
	l := leaseScenario(t, 3, nil)
	n2 := l.id(2)
	l.write("a")
	l.tick(1)
	l.setDrop(func(m Message) bool { return m.Type == MsgPrepare && m.To == n2 })
	for _, c := range []string{"b", "c", "d"} {
		l.write(c)
	}
	l.tick(1) // a COMMIT heartbeat carries commit 4 to n2
	l.setDrop(func(m Message) bool { return m.To == n2 })
	l.tick(5)
	if st := l.nd(2).r.Status(); st.Applied != 1 || st.Mode != ModeNormal || l.nd(0).r.Status().Commit != 4 {
		t.Fatalf("the scenario needs n2 normal with a only while 4 ops committed:\n%s", l.dump())
	}
	return l
}

// A stale read at a backup answers at once from its own state, with how
// many committed ops it is behind the latest commit it heard of and how many
// ticks ago it last heard from its primary, plus the staleness the primary
// itself reported then (up to one heartbeat when a majority echoes it); an
// up-to-date backup and the primary report no lag but that heartbeat.
func TestStaleReadReportsHowFarTheReplicaIsBehind(t *testing.T) {
	l := laggingBackup(t)
	rp, err := l.readStale(l.id(2), 3, 6)
	if err != nil || rp.Err != nil {
		t.Fatalf("stale read at n2 within its lag: %+v %v", rp, err)
	}
	if rp.LagOps != 3 || rp.LagTicks < 5 || rp.LagTicks > 6 || rp.Op != 1 || string(rp.Result) != "a" {
		t.Fatalf("stale read at n2: %+v; want a at op 1, 3 ops and 5 ticks (+1 the primary reported) behind", rp)
	}
	for _, i := range []int{0, 1} {
		rp, err := l.readStale(l.id(i), 0, 1)
		if err != nil || rp.LagOps != 0 || rp.LagTicks > 1 || string(rp.Result) != "a,b,c,d" {
			t.Errorf("stale read at %s: %+v %v; want a,b,c,d with no lag but a heartbeat", l.id(i), rp, err)
		}
	}
	l.setDrop(nil)
	l.tick(2)
	if rp, err := l.readStale(l.id(2), 0, 1); err != nil || rp.LagOps != 0 || string(rp.Result) != "a,b,c,d" {
		t.Fatalf("stale read at n2 after it caught up: %+v %v", rp, err)
	}
}

// A stale read beyond either bound fails at once with ErrTooStale.
func TestStaleReadBeyondItsBoundsFailsWithErrTooStale(t *testing.T) {
	l := laggingBackup(t)
	for _, b := range []struct{ ops, ticks uint64 }{{2, 100}, {100, 4}, {0, 0}} {
		if rp, err := l.readStale(l.id(2), b.ops, b.ticks); !errors.Is(err, ErrTooStale) {
			t.Errorf("stale read at n2 (3 ops, 5 ticks behind) with bounds %d ops, %d ticks: %+v %v; want ErrTooStale", b.ops, b.ticks, rp, err)
		}
	}
}

// A replica changing views serves no stale read, whatever the bounds.
func TestStaleReadOnAReplicaChangingViewsFailsWithErrTooStale(t *testing.T) {
	l := leaseScenario(t, 3, nil)
	n2 := l.id(2)
	l.write("a")
	l.tick(1)
	l.setDrop(func(m Message) bool { return m.From == n2 }) // its view change goes nowhere
	l.nd(2).r.SuspectPrimary()
	if !l.tickUntil(2*testLeaseTicks, func() bool { return l.nd(2).r.Status().Mode == ModeViewChange }) {
		t.Fatalf("n2 never started the view change:\n%s", l.dump())
	}
	if rp, err := l.readStale(n2, 1<<60, 1<<60); !errors.Is(err, ErrTooStale) {
		t.Fatalf("stale read at n2 in view-change mode: %+v %v; want ErrTooStale", rp, err)
	}
}

// A backup restarted from its disk has not heard from its primary since
// before it went down, however long ago that was; it must not report itself
// current. Here n2 was down while 10 ops committed; right after its restart
// (hearing nothing yet) a stale read bounded to 1 op and ViewChangeTicks
// ticks must be refused.
func TestStaleReadAtARestartedBackupDoesNotUnderstateItsLag(t *testing.T) {
	l := leaseScenario(t, 3, nil)
	n2 := l.id(2)
	l.write("a")
	l.tick(1)
	l.nd(2).down = true
	for i := range 10 {
		l.write(fmt.Sprint("w", i))
	}
	l.tick(4 * testVCTicks)
	l.restart(n2)
	l.setDrop(func(m Message) bool { return m.To == n2 })
	rp, err := l.readStale(n2, 1, testVCTicks)
	if !errors.Is(err, ErrTooStale) {
		t.Fatalf("restarted n2, 10 ops and %d+ ticks behind, answered %+v (%v) as %d ops and %d ticks behind",
			4*testVCTicks, rp, err, rp.LagOps, rp.LagTicks)
	}
}

// 8. Fencing.

// Fence packs (epoch, view) so that it grows with the view within an epoch
// and with the epoch above any view of the epoch before.
func TestFenceGrowsWithTheViewAndMoreWithTheEpoch(t *testing.T) {
	for _, tc := range []struct {
		lo, hi [2]uint64 // (epoch, view)
	}{
		{[2]uint64{0, 0}, [2]uint64{0, 1}},
		{[2]uint64{3, 7}, [2]uint64{3, 8}},
		{[2]uint64{0, 1<<32 - 1}, [2]uint64{1, 0}},
		{[2]uint64{2, 1000}, [2]uint64{3, 0}},
	} {
		lo, hi := Fence(tc.lo[0], tc.lo[1]), Fence(tc.hi[0], tc.hi[1])
		if lo >= hi {
			t.Errorf("Fence%v = %d is not below Fence%v = %d", tc.lo, lo, tc.hi, hi)
		}
	}
	if f := Fence(3, 5); f != 3<<32|5 {
		t.Errorf("Fence(3, 5) = %#x", f)
	}
}

const testEpoch = 3

// fencedViews runs three views in epoch 3: a and b are prepared and
// committed in view 0 (primary n0), c is prepared in view 0 but commits only
// in view 1 (primary n1), d is prepared in view 1, e in view 2 (primary
// n2). Every Ready, it checks that the replica's Status().Fence is
// Fence(epoch, view) and never goes back, and grows whenever the view does.
// It returns the contexts each replica's FSM saw.
func fencedViews(t *testing.T) (*leaseScen, map[hasup.NodeID]*ctxFSM) {
	fsms := map[hasup.NodeID]*ctxFSM{}
	l := leaseScenario(t, 3, func(id hasup.NodeID, cfg *Config) {
		cfg.Epoch = testEpoch
		f := &ctxFSM{logFSM: cfg.FSM.(*logFSM)}
		cfg.FSM = f
		fsms[id] = f
	})
	type seen struct{ view, fence uint64 }
	last := map[*Replica]seen{}
	l.observers = append(l.observers, func(id hasup.NodeID, _ Ready) {
		r := l.nodes[id].r
		st := r.Status()
		if st.Fence != Fence(testEpoch, st.View) {
			t.Errorf("%s Status().Fence %#x, want Fence(%d, %d) = %#x", id, st.Fence, testEpoch, st.View, Fence(testEpoch, st.View))
		}
		if p, ok := last[r]; ok && (st.Fence < p.fence || st.View > p.view && st.Fence <= p.fence) {
			t.Errorf("%s fence %#x in view %d after %#x in view %d", id, st.Fence, st.View, p.fence, p.view)
		}
		last[r] = seen{st.View, st.Fence}
	})
	n0, n1, n2 := l.id(0), l.id(1), l.id(2)
	l.write("a")
	l.write("b")
	l.tick(1)
	l.setDrop(func(m Message) bool { return m.Type == MsgPrepareOK })
	l.mustSubmit(n0, 0, 0, "c")
	l.settle()
	l.nd(0).down = true
	l.nd(1).r.SuspectPrimary()
	if !l.tickUntil(3*testVCTicks, func() bool { return l.primaryIs(n1) }) {
		t.Fatalf("n1 never became primary of view 1:\n%s", l.dump())
	}
	if e, ok := l.nd(1).r.LogEntry(3); !ok || string(e.Cmd) != "c" || e.View != 0 || l.nd(1).r.Status().Commit >= 3 {
		t.Fatalf("the scenario needs view 1 to inherit c (view 0) uncommitted: %+v %+v", e, l.nd(1).r.Status())
	}
	l.setDrop(nil)
	l.write("d")
	if f := l.nd(1).r.Status().Fence; f != Fence(testEpoch, 1) {
		t.Fatalf("primary of view 1 has fence %#x", f)
	}
	l.nd(0).down = false
	l.requireConverged(50)
	l.nd(0).r.SuspectPrimary()
	l.nd(2).r.SuspectPrimary()
	if !l.tickUntil(3*testVCTicks, func() bool { return l.primaryIs(n2) }) {
		t.Fatalf("n2 never became primary of view 2:\n%s", l.dump())
	}
	l.write("e")
	l.requireConverged(50)
	for _, id := range l.ids {
		if st := l.nodes[id].r.Status(); st.View != 2 || st.Fence != Fence(testEpoch, 2) {
			t.Fatalf("%s ends in %+v; want view 2 with its fence", id, st)
		}
	}
	return l, fsms
}

// Status().Fence is Fence(epoch, view) and grows strictly with every view
// change (checked after every Ready by fencedViews).
func TestStatusFenceGrowsStrictlyAcrossViewChanges(t *testing.T) {
	fencedViews(t)
}

// The FSM sees in its Context the fence of the view in which the op was
// first prepared, not the view in which it committed or is applied (c
// commits in view 1, and n0 applies a, b, c only in view 1 or 2), so the
// fence never decreases along the log.
func TestFSMSeesTheFenceOfTheViewThatFirstPreparedTheOp(t *testing.T) {
	l, fsms := fencedViews(t)
	want := []uint64{Fence(testEpoch, 0), Fence(testEpoch, 0), Fence(testEpoch, 0), Fence(testEpoch, 1), Fence(testEpoch, 2)}
	for _, id := range l.ids {
		var got []uint64
		for _, rec := range fsms[id].seen {
			got = append(got, rec.fence)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s FSM saw fences %#x for a,b,c,d,e; want %#x", id, got, want)
		}
		if !slices.IsSorted(got) {
			t.Errorf("%s FSM saw fences go back along the log: %#x", id, got)
		}
	}
}
