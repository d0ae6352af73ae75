package ensemble

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hasup/hasup"
)

// Scenario tests for epoch reconfiguration (VRR §7, epoch.go). The checkers
// of scen run under every one of them, with two more (rscen.observeConfig):
// every replica that takes part in an epoch has the one member list of that
// epoch, and no op of an epoch follows its reconfiguration op.

// rscen is a scenario whose cluster holds spare nodes beyond the initial
// member list: they stay down until a test starts them as joiners.
type rscen struct {
	*scen
	// conf is what the registry says about each node: how a (re)start
	// configures it (cfg.Epoch, cfg.Members, cfg.Join).
	conf map[hasup.NodeID]nodeConf
	// configs is the member list seen per epoch, at any replica taking part.
	configs map[uint64][]hasup.NodeID
}

type nodeConf struct {
	epoch   uint64
	members []hasup.NodeID
	join    bool
}

// reconfigScenario builds a cluster of total nodes of which the first k are
// the members of epoch 0; the rest are spare (down). setup may set tune,
// ckptOps and chunk, as for scenario.
func reconfigScenario(t *testing.T, total, k int, setup func(c *cluster)) *rscen {
	t.Helper()
	c := newCluster(t, total)
	if setup != nil {
		setup(c)
	}
	rs := &rscen{conf: map[hasup.NodeID]nodeConf{}, configs: map[uint64][]hasup.NodeID{}}
	initial := slices.Clone(c.ids[:k])
	for _, id := range c.ids {
		if slices.Contains(initial, id) {
			rs.conf[id] = nodeConf{members: initial}
		} else {
			// A placeholder until join: a joiner of a list of its own, down.
			rs.conf[id] = nodeConf{epoch: 1, members: []hasup.NodeID{id}, join: true}
		}
	}
	userTune := c.tune
	c.tune = func(id hasup.NodeID, cfg *Config) {
		nc := rs.conf[id]
		cfg.Epoch, cfg.Members, cfg.Join = nc.epoch, slices.Clone(nc.members), nc.join
		if userTune != nil {
			userTune(id, cfg)
		}
	}
	rs.scen = newScen(c)
	c.observers = append(c.observers, rs.observeConfig)
	for _, id := range c.ids {
		f := &logFSM{}
		cfg := c.config(id, f)
		cfg.Bootstrap = !rs.conf[id].join
		c.start(id, cfg, f)
		c.nodes[id].down = rs.conf[id].join
	}
	c.settle()
	return rs
}

// observeConfig checks, after every Ready, that a replica taking part in
// an epoch (or retired by it) has the epoch's one member list.
func (rs *rscen) observeConfig(id hasup.NodeID, _ Ready) {
	st := rs.nodes[id].r.Status()
	if st.Mode == ModeJoining || st.Mode == ModeRecovering {
		return
	}
	if prev, ok := rs.configs[st.Epoch]; ok {
		if !slices.Equal(prev, st.Members) {
			rs.errorf("CONFIG: %s runs epoch %d with %v, another replica with %v", id, st.Epoch, st.Members, prev)
		}
		return
	}
	rs.configs[st.Epoch] = slices.Clone(st.Members)
}

// join starts id as a new member of epoch with members (Config.Join), as an
// operator does after asking for the reconfiguration.
func (rs *rscen) join(id hasup.NodeID, epoch uint64, members []hasup.NodeID) {
	rs.conf[id] = nodeConf{epoch: epoch, members: slices.Clone(members), join: true}
	rs.scen.wipe(id) // empty storage, configured by conf
}

// reboot crashes id and starts it from its disk; a node that never made
// anything durable starts as its registry entry says (a joiner joins again).
func (rs *rscen) reboot(id hasup.NodeID) {
	if rs.nodes[id].disk.Hard.Mode == 0 {
		rs.scen.wipe(id)
		return
	}
	rs.restart(id)
}

// tickOnly ticks only the given replicas n times, settling after each.
func (rs *rscen) tickOnly(ids []hasup.NodeID, n int) {
	for i := 0; i < n; i++ {
		for _, id := range ids {
			if !rs.nodes[id].down {
				rs.nodes[id].r.Tick()
			}
		}
		rs.settle()
	}
}

// latestPrimary returns the live primary of the latest epoch and view, if any.
func (rs *rscen) latestPrimary() (hasup.NodeID, bool) {
	var best hasup.NodeID
	var fence uint64
	found := false
	for _, id := range rs.live() {
		st := rs.nodes[id].r.Status()
		if st.IsPrimary && (!found || st.Fence > fence) {
			best, fence, found = id, st.Fence, true
		}
	}
	return best, found
}

// commitCmd proposes cmd at the primary of the latest epoch until it
// commits, retrying across view and epoch changes.
func (rs *rscen) commitCmd(cmd string) Reply {
	rs.t.Helper()
	for attempt := 0; attempt < 20; attempt++ {
		var p hasup.NodeID
		if !rs.tickUntil(300, func() bool {
			var ok bool
			p, ok = rs.latestPrimary()
			return ok
		}) {
			rs.t.Fatalf("commit %q: no primary:\n%s", cmd, rs.dump())
		}
		pid, err := rs.submit(p, 0, 0, cmd)
		if err != nil {
			rs.tick(1)
			continue
		}
		rs.settle()
		var rp Reply
		if rs.tickUntil(100, func() bool {
			var got bool
			rp, got = rs.reply(p, pid)
			return got
		}) && rp.Err == nil {
			return rp
		}
	}
	rs.t.Fatalf("commit %q: never committed:\n%s", cmd, rs.dump())
	return Reply{}
}

// reconfigure asks the primary of the latest epoch for members and returns
// the reply once the reconfiguration op commits.
func (rs *rscen) reconfigure(members []hasup.NodeID) Reply {
	rs.t.Helper()
	p, ok := rs.latestPrimary()
	if !ok {
		rs.t.Fatalf("reconfigure: no primary:\n%s", rs.dump())
	}
	rs.nextID++
	pid := rs.nextID
	if err := rs.nodes[p].r.Reconfigure(pid, members); err != nil {
		rs.t.Fatalf("reconfigure %v at %s: %v", members, p, err)
	}
	var rp Reply
	if !rs.tickUntil(100, func() bool {
		var got bool
		rp, got = rs.reply(p, pid)
		return got
	}) || rp.Err != nil {
		rs.t.Fatalf("reconfigure %v at %s: reply %+v:\n%s", members, p, rp, rs.dump())
	}
	return rp
}

// inEpoch reports whether every live member of members is normal in epoch
// with that list, in one view with the view's log, has applied all it
// committed, and agrees with the others on the commit number and the state.
func (rs *rscen) inEpoch(epoch uint64, members []hasup.NodeID) bool {
	var ref Status
	var refApplied string
	first := true
	for _, id := range members {
		if rs.nodes[id].down {
			continue
		}
		st := rs.nodes[id].r.Status()
		if st.Epoch != epoch || !slices.Equal(st.Members, members) || st.Mode != ModeNormal ||
			st.LastNormalView != st.View || st.Transferring || st.Applied != st.Commit {
			return false
		}
		if first {
			ref, refApplied, first = st, rs.applied(id), false
			continue
		}
		if st.View != ref.View || st.Commit != ref.Commit || rs.applied(id) != refApplied {
			return false
		}
	}
	return !first
}

// requireEpoch ticks until the live members run epoch with members and
// checks that each has applied exactly want.
func (rs *rscen) requireEpoch(epoch uint64, members []hasup.NodeID, want []string, maxTicks int) {
	rs.t.Helper()
	if !rs.tickUntil(maxTicks, func() bool { return rs.inEpoch(epoch, members) }) {
		rs.t.Fatalf("members %v did not converge in epoch %d:\n%s", members, epoch, rs.dump())
	}
	for _, id := range members {
		if rs.nodes[id].down {
			continue
		}
		if got := rs.applied(id); got != strings.Join(want, ",") {
			rs.t.Errorf("%s applied %q, want %q", id, got, strings.Join(want, ","))
		}
	}
	rs.requireAckedKeptBy(members)
	rs.requireSealed()
}

// requireAckedKeptBy is requireAckedKept for the live members of an epoch:
// a retired replica, or one that has not yet heard of the epoch, holds only
// a prefix.
func (rs *rscen) requireAckedKeptBy(members []hasup.NodeID) {
	rs.t.Helper()
	for op, e := range rs.acked {
		if g := rs.global[op]; !entryEqual(g, e) {
			rs.errorf("acknowledged op %d was %+v, later applied as %+v", op, e, g)
		}
		for _, id := range members {
			if st := rs.nodes[id].r.Status(); !rs.nodes[id].down && st.Commit < op {
				rs.errorf("acknowledged op %d (%q) is not committed at %s: %+v", op, e.Cmd, id, st)
			}
		}
	}
}

// requireStopped ticks until id is retired in epoch with members and has
// stopped (f'+1 new members told it they run the epoch).
func (rs *rscen) requireStopped(id hasup.NodeID, epoch uint64, members []hasup.NodeID, maxTicks int) {
	rs.t.Helper()
	if !rs.tickUntil(maxTicks, func() bool { return rs.nodes[id].r.Status().Stopped }) {
		rs.t.Fatalf("%s did not stop:\n%s", id, rs.dump())
	}
	st := rs.nodes[id].r.Status()
	if st.Mode != ModeRetired || st.Epoch != epoch || !slices.Equal(st.Members, members) || st.IsPrimary {
		rs.t.Errorf("%s stopped as %+v; want retired in epoch %d with %v", id, st, epoch, members)
	}
}

// requireSealed checks the sealing rule over every op applied anywhere:
// no op ordered in epoch e follows the reconfiguration op that ends e.
func (rs *rscen) requireSealed() {
	rs.t.Helper()
	for op, e := range rs.global {
		if e.Kind != EntryReconfigure {
			continue
		}
		for op2, e2 := range rs.global {
			if op2 > op && e2.Epoch <= e.Epoch {
				rs.errorf("SEALING: op %d of epoch %d (%q) follows the reconfiguration op %d of epoch %d", op2, e2.Epoch, e2.Cmd, op, e.Epoch)
			}
		}
	}
}

// reconfigOp returns the op of the committed reconfiguration that started
// epoch, from the ops applied anywhere.
func (rs *rscen) reconfigOp(epoch uint64) (uint64, bool) {
	for op, e := range rs.global {
		if e.Kind == EntryReconfigure {
			if ep, _, err := decodeReconfig(e.Cmd); err == nil && ep == epoch {
				return op, true
			}
		}
	}
	return 0, false
}

func nodeIDs(ids ...string) []hasup.NodeID {
	out := make([]hasup.NodeID, len(ids))
	for i, id := range ids {
		out[i] = hasup.NodeID(id)
	}
	return out
}

func seq(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

// §7: replacing one member moves every member of the new list to epoch 1
// with every committed op; the new member joins through a committed-state
// transfer; the removed member retires and stops once f'+1 new members run
// the epoch.
func TestReconfigurationReplacingAMemberKeepsEveryCommittedOpAndRetiresTheRemovedOne(t *testing.T) {
	rs := reconfigScenario(t, 4, 3, nil)
	n2, n3 := rs.id(2), rs.id(3)
	next := nodeIDs("n0", "n1", "n3")
	before := seq("a", 1, 5)
	for _, cmd := range before {
		rs.commitCmd(cmd)
	}
	rs.join(n3, 1, next)
	rs.reconfigure(next)
	after := seq("b", 1, 5)
	for _, cmd := range after {
		rs.commitCmd(cmd)
	}
	want := append(slices.Clone(before), after...)
	rs.requireEpoch(1, next, want, 300)
	rs.requireStopped(n2, 1, next, 300)
	for _, id := range next {
		st := rs.nodes[id].r.Status()
		if st.Epoch != 1 || !slices.Equal(st.Members, next) {
			t.Errorf("%s: epoch %d members %v, want 1 %v", id, st.Epoch, st.Members, next)
		}
	}
	// The new member holds the ops of epoch 0 because it fetched them.
	if !slices.ContainsFunc(rs.sent(n3, MsgGetState), func(m Message) bool { return m.Committed }) {
		t.Errorf("%s joined without a committed-state transfer", n3)
	}
	// The retired replica holds the committed history through epoch 0 (and
	// perhaps more, from the committed transfer that retired it).
	if got := rs.applied(n2); !strings.HasPrefix(strings.Join(want, ","), got) || !strings.HasPrefix(got, strings.Join(before, ",")) {
		t.Errorf("retired %s applied %q, want a prefix of %q through %q", n2, got, strings.Join(want, ","), strings.Join(before, ","))
	}
	if p, _ := rs.latestPrimary(); p != next[0] {
		t.Errorf("primary of epoch 1 is %s, want the list's first node %s", p, next[0])
	}
}

// §7: growing 3 -> 5 and then shrinking 5 -> 3 keep every committed op, and
// each new epoch commits.
func TestReconfigurationGrowsThreeToFiveAndShrinksFiveToThreeKeepingCommittedOps(t *testing.T) {
	rs := reconfigScenario(t, 5, 3, nil)
	five := nodeIDs("n0", "n1", "n2", "n3", "n4")
	three := nodeIDs("n2", "n3", "n4")
	want := seq("a", 1, 3)
	for _, cmd := range want {
		rs.commitCmd(cmd)
	}
	rs.join(rs.id(3), 1, five)
	rs.join(rs.id(4), 1, five)
	rs.reconfigure(five)
	for _, cmd := range seq("b", 1, 3) {
		rs.commitCmd(cmd)
		want = append(want, cmd)
	}
	rs.requireEpoch(1, five, want, 300)
	if st := rs.nd(0).r.Status(); !st.IsPrimary {
		t.Errorf("n0 is not primary of epoch 1: %+v", st)
	}

	rs.reconfigure(three)
	for _, cmd := range seq("c", 1, 3) {
		rs.commitCmd(cmd)
		want = append(want, cmd)
	}
	rs.requireEpoch(2, three, want, 300)
	rs.requireStopped(rs.id(0), 2, three, 300)
	rs.requireStopped(rs.id(1), 2, three, 300)
	if p, _ := rs.latestPrimary(); p != three[0] {
		t.Errorf("primary of epoch 2 is %s, want %s", p, three[0])
	}
}

// §7 with a failure: a member whose node is gone can be replaced, the
// reconfiguration committing with the remaining majority of the old list
// (and of the new one). When the node comes back it retires.
func TestReconfigurationReplacesAMemberWhoseNodeIsDown(t *testing.T) {
	for _, tc := range []struct {
		name string
		gone int
		next []hasup.NodeID
	}{
		{"backup", 2, nodeIDs("n0", "n1", "n3")},
		{"primary", 0, nodeIDs("n1", "n2", "n3")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := reconfigScenario(t, 4, 3, nil)
			gone := rs.id(tc.gone)
			want := seq("a", 1, 3)
			for _, cmd := range want {
				rs.commitCmd(cmd)
			}
			rs.nodes[gone].down = true
			rs.commitCmd("a4") // after a view change, if the primary is gone
			want = append(want, "a4")
			rs.join(rs.id(3), 1, tc.next)
			rs.reconfigure(tc.next)
			for _, cmd := range seq("b", 1, 3) {
				rs.commitCmd(cmd)
				want = append(want, cmd)
			}
			rs.requireEpoch(1, tc.next, want, 300)

			rs.nodes[gone].down = false
			rs.restart(gone)
			rs.requireStopped(gone, 1, tc.next, 400)
			rs.commitCmd("c1")
			want = append(want, "c1")
			rs.requireEpoch(1, tc.next, want, 300)
		})
	}
}

// §7 sealing: once the reconfiguration op is in the log, the primary
// orders nothing more in its epoch: Propose and a second Reconfigure fail
// with ErrReconfiguring, and no op of epoch 0 follows the reconfiguration
// op anywhere. The new epoch takes proposals at once.
func TestReconfigurationOpSealsItsEpoch(t *testing.T) {
	rs := reconfigScenario(t, 4, 3, nil)
	n0 := rs.id(0)
	next := nodeIDs("n0", "n1", "n3")
	rs.commitCmd("a1")
	rs.join(rs.id(3), 1, next)

	r := rs.nd(0).r
	rs.nextID++
	rcID := rs.nextID
	if err := r.Reconfigure(rcID, next); err != nil {
		t.Fatal(err)
	}
	// Queued but not yet in the log: a second one is refused already.
	if err := r.Reconfigure(rcID+1, nodeIDs("n0", "n1", "n2", "n3", "n4")); err != ErrReconfiguring {
		t.Errorf("second Reconfigure while one is queued: %v, want ErrReconfiguring", err)
	}
	// A proposal queued behind it must not be ordered after it in epoch 0.
	late, lateErr := rs.submit(n0, 0, 0, "late")
	// Hold back the PREPAREs so that the op stays uncommitted.
	rs.drop = func(m Message) bool { return m.Type == MsgPrepare && m.From == n0 }
	rd, ok := rs.processNode(n0)
	if !ok || len(rd.Entries) == 0 {
		t.Fatal("primary wrote nothing for the reconfiguration")
	}
	if last := rd.Entries[len(rd.Entries)-1]; last.Kind != EntryReconfigure {
		t.Fatalf("the Ready's last entry is %+v, want the reconfiguration", last)
	}
	st := r.Status()
	if e, _ := r.LogEntry(st.Op); e.Kind != EntryReconfigure {
		t.Fatalf("the log ends with %+v, want the reconfiguration", e)
	}
	if _, err := rs.submit(n0, 0, 0, "sealed"); err != ErrReconfiguring {
		t.Errorf("Propose after the reconfiguration op: %v, want ErrReconfiguring", err)
	}
	if err := r.Reconfigure(rcID+2, nodeIDs("n0", "n1", "n4")); err != ErrReconfiguring {
		t.Errorf("Reconfigure after the reconfiguration op: %v, want ErrReconfiguring", err)
	}
	rs.tick(3) // heartbeats go out; nothing may be appended meanwhile
	if got := r.Status(); got.Op != st.Op || got.Epoch != 0 {
		t.Errorf("primary went on from op %d epoch 0 to %+v while sealed", st.Op, got)
	}
	rs.drop = nil
	rs.tickUntil(50, func() bool { return r.Status().Epoch == 1 })
	if lateErr == nil {
		if rp, ok := rs.reply(n0, late); !ok || rp.Err == nil {
			t.Errorf("proposal queued behind the reconfiguration: reply %+v %v, want an error (retry in epoch 1)", rp, ok)
		}
	}
	if rp, ok := rs.reply(n0, rcID); !ok || rp.Err != nil || rp.Op != st.Op {
		t.Errorf("reconfiguration reply %+v %v, want op %d", rp, ok, st.Op)
	}
	// Epoch 1 takes proposals at once, though its log ends with the op
	// that started it.
	pid, err := rs.submit(n0, 0, 0, "b1")
	if err != nil {
		t.Fatalf("Propose at the primary of epoch 1: %v", err)
	}
	rs.settle()
	if rp, ok := rs.reply(n0, pid); !ok || rp.Err != nil {
		t.Errorf("b1 in epoch 1: reply %+v %v", rp, ok)
	}
	rs.requireEpoch(1, next, []string{"a1", "b1"}, 300)
	for _, id := range rs.ids {
		nd := rs.nodes[id]
		for op := uint64(1); op <= nd.r.Status().Op; op++ {
			if e, ok := nd.r.LogEntry(op); ok && op > st.Op && e.Epoch == 0 {
				t.Errorf("%s holds op %d of epoch 0 after the reconfiguration op %d", id, op, st.Op)
			}
		}
	}
}

// §7 with §4.2: the primary that appended the reconfiguration op crashes
// before it commits. The next view of epoch 0 either commits it (a backup
// had it) or drops it (none had it, and a later reconfiguration names
// another list); either way epoch 1 has one member list everywhere,
// including at the crashed primary once it is back, and no acknowledged op
// is lost.
func TestReconfigurationInterruptedByAViewChangeYieldsOneConfigurationPerEpoch(t *testing.T) {
	for _, tc := range []struct {
		name      string
		reachedN1 bool // the PREPARE of the reconfiguration op reached n1
	}{
		{"kept", true},
		{"dropped", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := reconfigScenario(t, 5, 3, nil)
			n0, n1 := rs.id(0), rs.id(1)
			first := nodeIDs("n1", "n2", "n3")
			second := nodeIDs("n1", "n2", "n4")
			want := seq("a", 1, 3)
			for _, cmd := range want {
				rs.commitCmd(cmd)
			}
			rs.join(rs.id(3), 1, first)
			rs.nextID++
			if err := rs.nd(0).r.Reconfigure(rs.nextID, first); err != nil {
				t.Fatal(err)
			}
			rd, _ := rs.processNode(n0)
			if len(rd.Entries) != 1 || rd.Entries[0].Kind != EntryReconfigure {
				t.Fatalf("n0 wrote %+v, want the reconfiguration op", rd.Entries)
			}
			rcOp := rd.Entries[0].Op
			rs.nd(0).down = true // crashed after the PREPAREs left
			rs.drop = func(m Message) bool {
				return m.Type == MsgPrepare && m.From == n0 && (m.To != n1 || !tc.reachedN1)
			}
			rs.settle()
			rs.drop = nil
			next := first
			if !tc.reachedN1 {
				// The op is gone with n0: the new view of epoch 0 runs on;
				// another reconfiguration is asked for.
				rs.commitCmd("x1")
				want = append(want, "x1")
				if st := rs.nd(1).r.Status(); st.Epoch != 0 {
					t.Fatalf("n1 moved to epoch %d with a reconfiguration nobody committed", st.Epoch)
				}
				rs.join(rs.id(4), 1, second)
				rs.reconfigure(second)
				next = second
			}
			for _, cmd := range seq("b", 1, 3) {
				rs.commitCmd(cmd)
				want = append(want, cmd)
			}
			rs.requireEpoch(1, next, want, 400)
			if op, ok := rs.reconfigOp(1); !ok || (tc.reachedN1 && op != rcOp) || (!tc.reachedN1 && op == rcOp) {
				t.Errorf("epoch 1 started at op %d (found %v); n0 had appended its reconfiguration at %d", op, ok, rcOp)
			}

			// n0 comes back with the reconfiguration op in its log, and
			// learns which list epoch 1 has.
			rs.nd(0).down = false
			rs.restart(n0)
			rs.requireStopped(n0, 1, next, 400)
			// Retired, it holds a prefix of the committed history through
			// epoch 0: its own op replaced by what was committed there.
			got, history, epoch0 := rs.applied(n0), strings.Join(want, ","), strings.Join(want[:len(want)-3], ",")
			if !strings.HasPrefix(history, got) || !strings.HasPrefix(got, epoch0) {
				t.Errorf("n0 applied %q; want a prefix of %q through %q", got, history, epoch0)
			}
			if got := rs.configs[1]; !slices.Equal(got, next) {
				t.Errorf("epoch 1 ran with %v, want %v", got, next)
			}
			rs.commitCmd("c1")
			want = append(want, "c1")
			rs.requireEpoch(1, next, want, 300)
		})
	}
}

// §7: a primary of epoch 0 cut off from the others keeps believing it is
// primary while they change views, reconfigure and run epoch 1. Nothing it
// orders commits in epoch 0 after the reconfiguration op; healed, it hears
// of epoch 1, fetches the committed state and joins epoch 1 (if named) or
// retires, and no replica diverges.
func TestPartitionedOldEpochPrimaryNeverCommitsAfterTheReconfiguration(t *testing.T) {
	for _, tc := range []struct {
		name string
		next []hasup.NodeID
	}{
		{"retires", nodeIDs("n1", "n2", "n3")},
		{"joins", nodeIDs("n1", "n3", "n0")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := reconfigScenario(t, 4, 3, nil)
			n0, n1, n2 := rs.id(0), rs.id(1), rs.id(2)
			want := seq("a", 1, 3)
			for _, cmd := range want {
				rs.commitCmd(cmd)
			}
			cut := func(m Message) bool { return m.From == n0 || m.To == n0 }
			rs.drop = cut
			var stale []uint64
			// More stale ops than the others will have committed when it
			// heals: its log then runs past the committed state it fetches.
			for _, cmd := range seq("p", 1, 6) {
				stale = append(stale, rs.mustSubmit(n0, 0, 0, cmd))
			}
			rs.settle()
			// n0 is not ticked: it stays primary of view 0 of epoch 0.
			others := []hasup.NodeID{n1, n2, rs.id(3)}
			rs.nd(1).r.SuspectPrimary()
			rs.settle()
			if !rs.tickUntilOnly(others, 200, func() bool { return rs.primaryIs(n1) }) {
				t.Fatalf("n1 did not become primary:\n%s", rs.dump())
			}
			rs.commitOnly(others, "a4")
			want = append(want, "a4")
			rs.join(rs.id(3), 1, tc.next)
			rs.nextID++
			rcID := rs.nextID
			if err := rs.nd(1).r.Reconfigure(rcID, tc.next); err != nil {
				t.Fatal(err)
			}
			if !rs.tickUntilOnly(others, 200, func() bool {
				rp, ok := rs.reply(n1, rcID)
				return ok && rp.Err == nil && rs.nd(1).r.Status().Epoch == 1
			}) {
				t.Fatalf("reconfiguration did not commit:\n%s", rs.dump())
			}
			rs.commitOnly(others, "b1")
			want = append(want, "b1")
			// n0 still believes it is primary of epoch 0 and takes a proposal.
			if st := rs.nd(0).r.Status(); !st.IsPrimary || st.Epoch != 0 {
				t.Fatalf("n0 is no longer the epoch-0 primary: %+v", st)
			}
			stale = append(stale, rs.mustSubmit(n0, 0, 0, "p7"))
			rs.settle()

			rs.drop = nil
			if slices.Contains(tc.next, n0) {
				rs.requireEpoch(1, tc.next, want, 400)
			} else {
				rs.requireStopped(n0, 1, tc.next, 400)
				rs.requireEpoch(1, tc.next, want, 400)
			}
			for _, cmd := range seq("c", 1, 3) {
				rs.commitCmd(cmd)
				want = append(want, cmd)
			}
			rs.requireEpoch(1, tc.next, want, 300)
			for _, pid := range stale {
				if rp, ok := rs.reply(n0, pid); ok && rp.Err == nil {
					t.Errorf("stale proposal %d of the cut-off primary answered %+v", pid, rp)
				}
			}
			for _, id := range rs.ids {
				if got := rs.applied(id); strings.Contains(got, "p") {
					t.Errorf("%s applied a proposal of the cut-off primary: %q", id, got)
				}
			}
			if !strings.HasPrefix(strings.Join(want, ","), rs.applied(n0)) {
				t.Errorf("n0 applied %q, not a prefix of %q", rs.applied(n0), strings.Join(want, ","))
			}
		})
	}
}

// tickUntilOnly is tickUntil that ticks only ids.
func (rs *rscen) tickUntilOnly(ids []hasup.NodeID, max int, cond func() bool) bool {
	for i := 0; i < max; i++ {
		if cond() {
			return true
		}
		rs.tickOnly(ids, 1)
	}
	return cond()
}

// commitOnly commits cmd at n1's side of a partition, ticking only ids.
func (rs *rscen) commitOnly(ids []hasup.NodeID, cmd string) {
	rs.t.Helper()
	var p hasup.NodeID
	if !rs.tickUntilOnly(ids, 200, func() bool {
		for _, id := range ids {
			if !rs.nodes[id].down && rs.primaryIs(id) {
				p = id
				return true
			}
		}
		return false
	}) {
		rs.t.Fatalf("commit %q: no primary among %v:\n%s", cmd, ids, rs.dump())
	}
	pid := rs.mustSubmit(p, 0, 0, cmd)
	rs.settle()
	if !rs.tickUntilOnly(ids, 100, func() bool { rp, ok := rs.reply(p, pid); return ok && rp.Err == nil }) {
		rs.t.Fatalf("commit %q at %s: no reply:\n%s", cmd, p, rs.dump())
	}
}

// §7: a new member takes part in nothing before it holds the committed
// state: while joining it sends no PREPAREOK, STARTVIEWCHANGE or
// DOVIEWCHANGE, whatever it hears. One that crashes in the middle of its
// state transfer starts again and ends with the full state.
func TestJoinerCrashedMidTransferJoinsWithTheFullStateAndNeverVotesBefore(t *testing.T) {
	rs := reconfigScenario(t, 4, 3, func(c *cluster) { c.ckptOps, c.chunk = 8, 64 })
	n3 := rs.id(3)
	next := nodeIDs("n0", "n1", "n3")
	// n3 has joined once it is normal holding the reconfiguration op: every
	// message before is one of a replica that takes part in nothing.
	joined := false
	rs.observers = append(rs.observers, func(id hasup.NodeID, rd Ready) {
		if id != n3 {
			return
		}
		rcOp, ok := rs.reconfigOp(1)
		if st := rs.nodes[id].r.Status(); ok && st.Mode == ModeNormal && st.Applied >= rcOp {
			joined = true
		}
		if joined {
			return
		}
		for _, m := range rd.Messages {
			if isAny(m, MsgPrepareOK, MsgStartViewChange, MsgDoViewChange, MsgCommitOK, MsgStartView, MsgRecoveryResponse) {
				t.Errorf("joining %s sent %v", id, m)
			}
		}
	})
	want := seq("a", 1, 20)
	for _, cmd := range want {
		rs.commitCmd(cmd)
	}
	// Let the first few NEWSTATEs through, then none.
	delivered := 0
	rs.drop = func(m Message) bool {
		if m.Type != MsgNewState || m.To != n3 {
			return false
		}
		if delivered >= 3 {
			return true
		}
		delivered++
		return false
	}
	rs.join(n3, 1, next)
	rs.reconfigure(next)
	for _, cmd := range seq("b", 1, 3) {
		rs.commitCmd(cmd)
		want = append(want, cmd)
	}
	// A view change of epoch 1 while n3 is joining: it must not vote.
	rs.nd(1).r.SuspectPrimary()
	rs.settle()
	rs.nodes[n3].r.SuspectPrimary()
	rs.tick(30)
	if st := rs.nodes[n3].r.Status(); st.Mode != ModeJoining || delivered != 3 {
		t.Fatalf("n3 %+v after %d NEWSTATEs; want still joining", st, delivered)
	}
	if rs.nodes[n3].r.Status().Epoch != 1 || rs.nd(1).r.Status().Epoch != 1 {
		t.Fatalf("epoch 1 not running:\n%s", rs.dump())
	}
	// It crashes. It made nothing durable before holding the whole
	// state, so it starts again as a joiner with empty storage.
	if d := rs.nodes[n3].disk; d.Hard.Mode != 0 || len(d.Entries) > 0 || d.Checkpoint.Op > 0 {
		t.Errorf("n3 made %+v durable while joining", d)
	}
	rs.reboot(n3)
	// A fresh joiner, with no transfer yet, hears every kind of
	// message of its epoch that would make a member vote or answer.
	for _, m := range []Message{
		{Type: MsgStartViewChange, View: 7},
		{Type: MsgDoViewChange, View: 8, LastNormalView: 0, LogStart: 1}, // n3 is primary of view 8
		{Type: MsgStartView, View: 9, LogStart: 1},
		{Type: MsgPrepare, View: 0, Entries: []Entry{{Op: 1, Epoch: 1, Kind: EntryRequest, Cmd: []byte("z")}}},
		{Type: MsgCommit, View: 0, LogStart: 1, Round: 1},
		{Type: MsgRecovery, Nonce: 1},
	} {
		m.Ensemble, m.Epoch, m.From, m.To = "e", 1, rs.id(1), n3
		rs.nodes[n3].r.Step(m)
		rs.settle()
	}
	rs.drop = nil
	rs.commitCmd("c1")
	want = append(want, "c1")
	rs.requireEpoch(1, next, want, 400)
	if !joined {
		t.Fatalf("n3 never joined")
	}
	if st := rs.nodes[n3].r.Status(); st.CheckpointOp == 0 {
		t.Errorf("n3 %+v holds no checkpoint: the transfer did not go through one", st)
	}
}

// §7 with §5: the member list is replicated state that checkpoints carry. A
// replica down across the reconfiguration that catches up by installing a
// checkpoint taken after the reconfiguration op (the log that held the op
// is gone) ends in the new epoch with its list, or retired by it.
func TestReplicaCatchingUpFromACheckpointAfterTheReconfigurationEndsInTheNewEpoch(t *testing.T) {
	for _, tc := range []struct {
		name string
		next []hasup.NodeID
	}{
		{"kept", nodeIDs("n0", "n3", "n2")},
		{"removed", nodeIDs("n0", "n1", "n3")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := reconfigScenario(t, 4, 3, func(c *cluster) { c.ckptOps = 4 })
			n2 := rs.id(2)
			want := seq("a", 1, 3)
			for _, cmd := range want {
				rs.commitCmd(cmd)
			}
			rs.nodes[n2].down = true
			rs.join(rs.id(3), 1, tc.next)
			rs.reconfigure(tc.next)
			for _, cmd := range seq("b", 1, 10) {
				rs.commitCmd(cmd)
				want = append(want, cmd)
			}
			rcOp, ok := rs.reconfigOp(1)
			if !ok {
				t.Fatal("no reconfiguration op applied")
			}
			for _, id := range []hasup.NodeID{rs.id(0), rs.id(3)} {
				if ck := rs.nodes[id].r.Checkpoint(); ck.Op <= rcOp {
					t.Fatalf("%s checkpoint at %d, want past the reconfiguration op %d", id, ck.Op, rcOp)
				}
			}
			rs.nodes[n2].down = false
			rs.restart(n2)
			if slices.Contains(tc.next, n2) {
				rs.requireEpoch(1, tc.next, want, 400)
			} else {
				rs.requireStopped(n2, 1, tc.next, 400)
				if got := rs.applied(n2); !strings.HasPrefix(strings.Join(want, ","), got) || rs.nodes[n2].r.Checkpoint().Op <= rcOp {
					t.Errorf("retired n2 applied %q with checkpoint %d; want a checkpoint past %d", got, rs.nodes[n2].r.Checkpoint().Op, rcOp)
				}
			}
			// n2 reached epoch 1 through the checkpoint: it never applied the
			// reconfiguration op itself.
			for _, rd := range rs.readies[n2] {
				for _, a := range rd.Applied {
					if a.Entry.Kind == EntryReconfigure {
						t.Errorf("n2 applied the reconfiguration op %d itself; the test wants it from a checkpoint", a.Entry.Op)
					}
				}
			}
			if st := rs.nodes[n2].r.Status(); st.Epoch != 1 || !slices.Equal(st.Members, tc.next) {
				t.Errorf("n2 ends in epoch %d with %v, want 1 with %v", st.Epoch, st.Members, tc.next)
			}
		})
	}
}

// §7: a replica retired by epoch 1 that was cut off before f'+1 new members
// told it they run the epoch still stops once it is back, though the
// ensemble has moved on to epoch 2 meanwhile (its members run a later
// epoch, so epoch 1 ran).
func TestRetiredReplicaStopsAfterTheEnsembleMovedToALaterEpoch(t *testing.T) {
	rs := reconfigScenario(t, 5, 3, nil)
	n2 := rs.id(2)
	one := nodeIDs("n0", "n1", "n3")
	two := nodeIDs("n0", "n1", "n4")
	want := seq("a", 1, 2)
	for _, cmd := range want {
		rs.commitCmd(cmd)
	}
	// n2 hears of epoch 1 and retires, but no EPOCHSTARTED reaches it.
	rs.drop = func(m Message) bool { return m.Type == MsgEpochStarted && m.To == n2 }
	rs.join(rs.id(3), 1, one)
	rs.reconfigure(one)
	if !rs.tickUntil(200, func() bool { return rs.nodes[n2].r.Status().Mode == ModeRetired }) {
		t.Fatalf("n2 did not retire:\n%s", rs.dump())
	}
	rs.drop = func(m Message) bool { return m.To == n2 || m.From == n2 }
	rs.commitCmd("b1")
	want = append(want, "b1")
	rs.join(rs.id(4), 2, two)
	rs.reconfigure(two)
	rs.commitCmd("c1")
	want = append(want, "c1")
	rs.requireEpoch(2, two, want, 300)
	rs.requireStopped(rs.id(3), 2, two, 300)
	if st := rs.nodes[n2].r.Status(); st.Stopped || st.Epoch != 1 {
		t.Fatalf("n2 %+v; want retired in epoch 1, not stopped", st)
	}
	rs.drop = nil
	if !rs.tickUntil(400, func() bool { return rs.nodes[n2].r.Status().Stopped }) {
		t.Errorf("n2 retired by epoch 1 never stops once the ensemble runs epoch 2: %+v", rs.nodes[n2].r.Status())
	}
}

// §7 with §4.3: a member of epoch 1 that lost its storage, and whose runtime
// still configures it for epoch 0, hears of epoch 1 while recovering,
// fetches the committed state, and recovers in epoch 1 with the state.
func TestAmnesiacReplicaHearingOfALaterEpochRecoversThere(t *testing.T) {
	rs := reconfigScenario(t, 4, 3, nil)
	n1 := rs.id(1)
	next := nodeIDs("n0", "n1", "n3")
	want := seq("a", 1, 3)
	for _, cmd := range want {
		rs.commitCmd(cmd)
	}
	rs.join(rs.id(3), 1, next)
	rs.reconfigure(next)
	for _, cmd := range seq("b", 1, 3) {
		rs.commitCmd(cmd)
		want = append(want, cmd)
	}
	rs.requireEpoch(1, next, want, 300)
	rs.wipe(n1) // configured as a member of epoch 0 still (rs.conf)
	if st := rs.nodes[n1].r.Status(); st.Mode != ModeRecovering || st.Epoch != 0 {
		t.Fatalf("wiped n1 %+v; want recovering in epoch 0", st)
	}
	rs.requireEpoch(1, next, want, 400)
	rs.commitCmd("c1")
	want = append(want, "c1")
	rs.requireEpoch(1, next, want, 300)
	// It recovered (RECOVERY in epoch 1), not only fetched the committed
	// state: it may have voted in epoch 1 before it lost its storage.
	if !slices.ContainsFunc(rs.sent(n1, MsgRecovery), func(m Message) bool { return m.Epoch == 1 }) {
		t.Errorf("n1 joined epoch 1 without recovering in it")
	}
}

// §7: the new list's first node, the primary of the new epoch's view 0, may
// be a new member: the old members wait for it (or change views) and the
// epoch commits once it has joined.
func TestReconfigurationWhoseNewPrimaryIsANewMemberCommits(t *testing.T) {
	rs := reconfigScenario(t, 4, 3, nil)
	next := nodeIDs("n3", "n0", "n1")
	want := seq("a", 1, 3)
	for _, cmd := range want {
		rs.commitCmd(cmd)
	}
	rs.join(rs.id(3), 1, next)
	rs.reconfigure(next)
	for _, cmd := range seq("b", 1, 3) {
		rs.commitCmd(cmd)
		want = append(want, cmd)
	}
	rs.requireEpoch(1, next, want, 300)
	rs.requireStopped(rs.id(2), 1, next, 300)
	// The old primary n0 is a backup of epoch 1 now.
	if _, err := rs.submit(rs.id(0), 0, 0, "x"); err != ErrNotPrimary {
		t.Errorf("Propose at n0, a backup of epoch 1: %v, want ErrNotPrimary", err)
	}
}

// §7: the new list's first node may be a new member that starts late: the
// old members, already in epoch 1, move on to a later view without it, and
// it joins that view when it comes.
func TestNewPrimaryThatJoinsLateJoinsTheEpochsCurrentView(t *testing.T) {
	rs := reconfigScenario(t, 4, 3, nil)
	n3 := rs.id(3)
	next := nodeIDs("n3", "n0", "n1")
	want := seq("a", 1, 3)
	for _, cmd := range want {
		rs.commitCmd(cmd)
	}
	rs.reconfigure(next) // n3 is not running yet
	for _, cmd := range seq("b", 1, 3) {
		rs.commitCmd(cmd)
		want = append(want, cmd)
	}
	if st := rs.nd(0).r.Status(); st.Epoch != 1 || st.View == 0 {
		t.Fatalf("n0 %+v; want epoch 1 past view 0", st)
	}
	rs.join(n3, 1, next)
	rs.commitCmd("c1")
	want = append(want, "c1")
	rs.requireEpoch(1, next, want, 300)
}

// A member restarted from its disk after entering epoch 1 resumes in epoch
// 1 with its list, though its runtime still configures it for epoch 0 (or,
// for a new member, as a joiner): the durable hard state names the epoch.
func TestMemberRestartedAfterEnteringAnEpochResumesInIt(t *testing.T) {
	rs := reconfigScenario(t, 4, 3, nil)
	next := nodeIDs("n0", "n1", "n3")
	want := seq("a", 1, 3)
	for _, cmd := range want {
		rs.commitCmd(cmd)
	}
	rs.join(rs.id(3), 1, next)
	rs.reconfigure(next)
	rs.commitCmd("b1")
	want = append(want, "b1")
	rs.requireEpoch(1, next, want, 300)
	for _, id := range next {
		rs.restart(id)
		if st := rs.nodes[id].r.Status(); st.Epoch != 1 || !slices.Equal(st.Members, next) || st.Mode == ModeJoining {
			t.Errorf("%s restarted as %+v; want epoch 1 with %v", id, st, next)
		}
		rs.commitCmd("c" + string(id))
		want = append(want, "c"+string(id))
	}
	rs.restart(rs.id(2))
	if st := rs.nd(2).r.Status(); st.Mode != ModeRetired || st.Epoch != 1 {
		t.Errorf("retired n2 restarted as %+v; want retired in epoch 1", st)
	}
	rs.requireEpoch(1, next, want, 300)
	rs.requireStopped(rs.id(2), 1, next, 300)
}

// §7: a member down across two reconfigurations catches up in one
// committed-state transfer that holds both reconfiguration ops, and ends in
// the latest epoch.
func TestMemberDownAcrossTwoReconfigurationsEndsInTheLatestEpoch(t *testing.T) {
	rs := reconfigScenario(t, 5, 3, nil)
	n1 := rs.id(1)
	one := nodeIDs("n0", "n1", "n3")
	two := nodeIDs("n0", "n1", "n4")
	want := seq("a", 1, 2)
	for _, cmd := range want {
		rs.commitCmd(cmd)
	}
	rs.nodes[n1].down = true
	rs.join(rs.id(3), 1, one)
	rs.reconfigure(one)
	rs.commitCmd("b1")
	want = append(want, "b1")
	rs.join(rs.id(4), 2, two)
	rs.reconfigure(two)
	rs.commitCmd("c1")
	want = append(want, "c1")
	rs.requireEpoch(2, two, want, 300)
	rs.nodes[n1].down = false
	rs.restart(n1)
	rs.commitCmd("c2")
	want = append(want, "c2")
	rs.requireEpoch(2, two, want, 400)
	// n2, removed by epoch 1, retires in whichever epoch it heard of first.
	n2 := rs.id(2)
	if !rs.tickUntil(300, func() bool { return rs.nodes[n2].r.Status().Stopped }) {
		t.Fatalf("n2 did not stop:\n%s", rs.dump())
	}
	if st := rs.nodes[n2].r.Status(); st.Mode != ModeRetired || st.Epoch < 1 || !slices.Equal(st.Members, rs.configs[st.Epoch]) {
		t.Errorf("n2 stopped as %+v; want retired in epoch 1 or 2 with its list", st)
	}
	rs.requireStopped(rs.id(3), 2, two, 300)
}

// §7 with §4.2: a replica that enters epoch 1 through a committed transfer
// from a sender that is changing views there must not act as if that view
// had started: in particular it never fetches the view's log from itself
// (the joiner n3 below is the primary of the view the sender changes to).
func TestReplicaEnteringAnEpochMidViewChangeNeverFetchesStateFromItself(t *testing.T) {
	rs := reconfigScenario(t, 4, 3, nil)
	n3 := rs.id(3)
	next := nodeIDs("n1", "n3", "n0")
	rs.commitCmd("a1")
	rs.reconfigure(next) // n0 commits it, enters epoch 1 as a backup of n1
	// n0 starts a view change of epoch 1 to view 1, whose primary is n3.
	rs.nd(0).r.SuspectPrimary()
	rs.settle()
	if st := rs.nd(0).r.Status(); st.Epoch != 1 || st.View != 1 || st.Mode != ModeViewChange {
		t.Fatalf("n0 %+v; want changing to view 1 of epoch 1", st)
	}
	rs.join(n3, 1, next)
	rs.commitCmd("b1")
	rs.requireEpoch(1, next, []string{"a1", "b1"}, 300)
	for _, id := range rs.ids {
		for _, m := range rs.sent(id, MsgGetState) {
			if m.To == id {
				t.Errorf("%s sent %v to itself", id, m)
				break
			}
		}
	}
}
