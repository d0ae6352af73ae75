package ensemble

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hasup/hasup"
)

// Scenario tests for the client table (VRR §4 "client table", with
// sessions as in the Raft dissertation §6.3).

// call proposes (client, req, cmd) to the current primary, settles and
// returns the reply.
func (s *scen) call(client, req uint64, cmd string) Reply {
	s.t.Helper()
	p := s.primary()
	if p == nil {
		s.t.Fatal("no primary")
	}
	pid := s.mustSubmit(p.r.cfg.ID, client, req, cmd)
	s.settle()
	rp, ok := s.reply(p.r.cfg.ID, pid)
	if !ok {
		s.t.Fatalf("request %d/%d %q: no reply", client, req, cmd)
	}
	return rp
}

// executions counts, per replica, the times client's request req was
// applied and executed (not answered from the table).
func (s *scen) executions(client, req uint64) map[hasup.NodeID]int {
	out := map[hasup.NodeID]int{}
	for id, rds := range s.readies {
		for _, rd := range rds {
			for _, a := range rd.Applied {
				if a.Entry.Client == client && a.Entry.Request == req && a.Executed {
					out[id]++
				}
			}
		}
	}
	return out
}

// VRR §4.1 step 1-2 and §6.3: a retried request (same client, same request
// number) executes once; the retry gets the cached reply. That holds for a
// retry after the first committed, and for a retry sent to the primary of a
// later view.
func TestRetriedRequestExecutesOnceAndGetsCachedReply(t *testing.T) {
	s := scenario(t, 3, nil)
	if rp := s.call(1, 0, ""); rp.Err != nil {
		t.Fatalf("register: %v", rp.Err)
	}
	first := s.call(1, 1, "x")
	if first.Err != nil {
		t.Fatalf("first: %v", first.Err)
	}
	retry := s.call(1, 1, "x")
	if retry.Err != nil || !bytes.Equal(retry.Result, first.Result) {
		t.Fatalf("retry: %+v; want the cached result %v", retry, first.Result)
	}
	s.nd(1).r.SuspectPrimary()
	s.settle()
	again := s.call(1, 1, "x")
	if again.Err != nil || !bytes.Equal(again.Result, first.Result) {
		t.Fatalf("retry at the new primary: %+v; want the cached result %v", again, first.Result)
	}
	s.requireConverged(20)
	for i := range s.ids {
		if got := s.applied(s.id(i)); got != "x" {
			t.Errorf("%s applied %q, want x once", s.id(i), got)
		}
		if n := s.executions(1, 1)[s.id(i)]; n != 1 {
			t.Errorf("%s executed request 1/1 %d times", s.id(i), n)
		}
	}
}

// Propose's contract: after a nil error, a Reply with the proposal's ID
// follows. A retry of a request that is still uncommitted in the log joins
// it; both callers must be answered, and it executes once.
func TestRetryOfUncommittedRequestAnswersEveryCaller(t *testing.T) {
	s := scenario(t, 3, nil)
	p := s.id(0)
	s.call(1, 0, "")
	s.drop = func(m Message) bool { return m.Type == MsgPrepareOK }
	pid1 := s.mustSubmit(p, 1, 1, "x")
	s.settle()
	pid2 := s.mustSubmit(p, 1, 1, "x") // the client retries before the commit
	s.settle()
	s.drop = nil
	s.tick(3)
	rp2, ok2 := s.reply(p, pid2)
	if !ok2 || rp2.Err != nil {
		t.Fatalf("retry: %+v %v", rp2, ok2)
	}
	if n := s.executions(1, 1)[p]; n != 1 {
		t.Fatalf("request executed %d times", n)
	}
	if _, ok1 := s.reply(p, pid1); !ok1 {
		t.Fatal("the first caller of a request that a retry joined never got a Reply")
	}
}

// §6.3: request number 0 opens a session (an EntryRegister op that executes
// nothing in the FSM) on every replica; requests of the session follow.
func TestRequestZeroRegistersSession(t *testing.T) {
	s := scenario(t, 3, nil)
	rp := s.call(7, 0, "")
	if rp.Err != nil || rp.Op == 0 {
		t.Fatalf("register: %+v", rp)
	}
	s.tick(1)
	for i := range s.ids {
		var reg []Applied
		for _, rd := range s.readies[s.id(i)] {
			for _, a := range rd.Applied {
				if a.Entry.Client == 7 {
					reg = append(reg, a)
				}
			}
		}
		if len(reg) != 1 || reg[0].Entry.Kind != EntryRegister || !reg[0].Executed || reg[0].Entry.Op != rp.Op {
			t.Errorf("%s applied %+v; want one executed EntryRegister at op %d", s.id(i), reg, rp.Op)
		}
		if got := s.applied(s.id(i)); got != "" {
			t.Errorf("%s FSM applied %q for a registration", s.id(i), got)
		}
	}
	if rp := s.call(7, 1, "y"); rp.Err != nil {
		t.Fatalf("first request of the session: %v", rp.Err)
	}
}

// §6.3: a request from a client with no session executes nothing and fails
// with ErrSessionExpired, on every replica alike.
func TestRequestFromUnregisteredClientFailsWithErrSessionExpired(t *testing.T) {
	s := scenario(t, 3, nil)
	rp := s.call(9, 1, "z")
	if !errors.Is(rp.Err, ErrSessionExpired) {
		t.Fatalf("unregistered client: %+v, want ErrSessionExpired", rp)
	}
	s.tick(1)
	for i := range s.ids {
		if got := s.applied(s.id(i)); got != "" {
			t.Errorf("%s executed %q for an unregistered client", s.id(i), got)
		}
	}
}

// The client table is bounded: opening a session beyond ClientsMax evicts
// the least recently active session (not the oldest registered), as a
// replicated decision, so every replica evicts the same one and any later
// primary answers the evicted client with ErrSessionExpired. With
// CheckpointOps 1 the replicated state (client table included) is
// checkpointed at every op and must be byte-identical on all replicas.
func TestClientTableEvictsLeastRecentlyActiveIdenticallyOnAllReplicas(t *testing.T) {
	s := scenario(t, 3, func(c *cluster) {
		c.ckptOps = 1
		c.tune = func(_ hasup.NodeID, cfg *Config) { cfg.ClientsMax = 2 }
	})
	for _, step := range []struct {
		client, req uint64
		cmd         string
	}{{1, 0, ""}, {2, 0, ""}, {1, 1, "c1r1"}, {3, 0, ""}} { // client 1 is active after 2 registered
		if rp := s.call(step.client, step.req, step.cmd); rp.Err != nil {
			t.Fatalf("client %d request %d: %v", step.client, step.req, rp.Err)
		}
	}
	check := func(when string) {
		t.Helper()
		if rp := s.call(2, 1, "c2r1"); !errors.Is(rp.Err, ErrSessionExpired) {
			t.Errorf("%s: evicted client 2: %+v, want ErrSessionExpired", when, rp)
		}
		s.requireConverged(20)
		ref := s.nd(0).r.Checkpoint()
		for i := 1; i < len(s.ids); i++ {
			if ck := s.nd(i).r.Checkpoint(); ck.Op != ref.Op || !bytes.Equal(ck.Data, ref.Data) {
				t.Errorf("%s: %s's checkpoint %d differs from n0's %d", when, s.id(i), ck.Op, ref.Op)
			}
		}
	}
	check("view 0")
	if rp := s.call(1, 2, "c1r2"); rp.Err != nil {
		t.Errorf("client 1, still active: %v", rp.Err)
	}
	if rp := s.call(3, 1, "c3r1"); rp.Err != nil {
		t.Errorf("client 3, just registered: %v", rp.Err)
	}
	// n2 loses its storage and rebuilds the table from a checkpoint.
	s.wipe(s.id(2))
	s.requireConverged(100)
	// Every replica evicted the same session: so says each later primary,
	// the recovered n2 last.
	for _, b := range []int{1, 2} {
		s.nd(b).r.SuspectPrimary()
		s.settle()
		check("after a view change")
	}
	if !s.primaryIs(s.id(2)) {
		t.Fatalf("n2 should be primary:\n%s", s.dump())
	}
	// A new session now evicts client 1 (last active at c1r2), not 3.
	if rp := s.call(4, 0, ""); rp.Err != nil {
		t.Fatalf("register 4: %v", rp.Err)
	}
	if rp := s.call(1, 3, "c1r3"); !errors.Is(rp.Err, ErrSessionExpired) {
		t.Errorf("client 1 after client 4 registered: %+v, want ErrSessionExpired", rp)
	}
	if rp := s.call(3, 2, "c3r2"); rp.Err != nil {
		t.Errorf("client 3: %v", rp.Err)
	}
	check("after the second eviction")
	for i := range s.ids {
		if got := s.applied(s.id(i)); got != "c1r1,c1r2,c3r1,c3r2" {
			t.Errorf("%s applied %q", s.id(i), got)
		}
	}
}
