package host

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/fsm/kv"
)

// newQuietCluster is a 3-node cluster whose ensembles quiesce after 5 idle
// ticks, with 8 ensembles written once each.
func newQuietCluster(t *testing.T) (*testCluster, []hasup.EnsembleName) {
	c := newTestClusterWith(t, 3, 5)
	var names []hasup.EnsembleName
	for e := 0; e < 8; e++ {
		name := hasup.EnsembleName(fmt.Sprintf("e%d", e))
		names = append(names, name)
		for i := range c.nodes {
			c.startEnsemble(i, name, true)
		}
		c.put(name, "k", string(name))
	}
	return c, names
}

func (c *testCluster) allQuiescent(names []hasup.EnsembleName) error {
	for _, tn := range c.nodes {
		if tn.cancel == nil {
			continue
		}
		for _, name := range names {
			st, err := tn.node.Status(ctxT(c.t), name)
			if err != nil {
				return err
			}
			if !st.Quiescent {
				return fmt.Errorf("%s on %s is not quiescent (view %d, commit %d)", name, tn.id, st.View, st.Commit)
			}
		}
	}
	return nil
}

func TestIdleEnsemblesQuiesceAndOnlyNodeHeartbeatsRemain(t *testing.T) {
	c, names := newQuietCluster(t)
	eventually(t, "all quiescent", func() error { return c.allQuiescent(names) })
	before := c.nodes[0].tr.Stats().Sent
	start := time.Now()
	// Let 100 ticks (2ms each) pass: a poll with a deadline would end at
	// once, since nothing is awaited; the window is what is measured.
	time.Sleep(200 * time.Millisecond)
	ticks := float64(time.Since(start)) / float64(2*time.Millisecond)
	sent := float64(c.nodes[0].tr.Stats().Sent - before)
	// Awake, 8 ensembles would send 8*2 heartbeats per tick from their
	// primaries alone; quiet, the node sends one heartbeat per peer every
	// 5 ticks.
	if perTick := sent / ticks; perTick > 1 {
		t.Fatalf("node n0 sent %.0f messages in %.0f ticks (%.2f per tick) while every ensemble was quiescent", sent, ticks, perTick)
	}
	for _, name := range names {
		if got := c.get(name, "k"); got != string(name) {
			t.Fatalf("%s: k = %q", name, got)
		}
	}
}

func TestQuiescentEnsemblesFailOverWhenAPrimaryNodeStops(t *testing.T) {
	c, names := newQuietCluster(t)
	eventually(t, "all quiescent", func() error { return c.allQuiescent(names) })
	st, err := c.nodes[0].node.Status(ctxT(t), names[0])
	if err != nil {
		t.Fatal(err)
	}
	victim := 0
	for i, id := range c.ids {
		if id == st.Primary {
			victim = i
		}
	}
	c.stopNode(victim)
	// Only look (Status touches no replica): the survivors' heartbeats
	// must notice the silence and wake the ensembles by themselves.
	eventually(t, "a new primary for every ensemble", func() error {
		for _, name := range names {
			for _, tn := range c.nodes {
				if tn.cancel == nil {
					continue
				}
				st, err := tn.node.Status(ctxT(t), name)
				if err != nil {
					return err
				}
				if st.Primary == c.ids[victim] || st.Mode != ensemble.ModeNormal {
					return fmt.Errorf("%s on %s: view %d, primary %s, mode %v", name, tn.id, st.View, st.Primary, st.Mode)
				}
			}
		}
		return nil
	})
	for _, name := range names {
		c.put(name, "after", "x") // needs a primary on a live node
		if got := c.get(name, "k"); got != string(name) {
			t.Fatalf("%s: k = %q after the failover", name, got)
		}
	}
}

func TestForwardedProposeAndReadReachThePrimaryOnAnotherNode(t *testing.T) {
	c := newTestCluster(t, 3)
	for i := range c.nodes {
		c.startEnsemble(i, "orders", true)
	}
	c.put("orders", "warm", "up")
	st, err := c.nodes[0].node.Status(ctxT(t), "orders")
	if err != nil {
		t.Fatal(err)
	}
	from := c.nodes[0]
	if st.Primary == from.id {
		from = c.nodes[1]
	}
	if _, err := from.node.ForwardPropose(ctxT(t), st.Primary, "orders", kv.PutCmd([]byte("k"), []byte("v"))); err != nil {
		t.Fatal(err)
	}
	res, err := from.node.ForwardRead(ctxT(t), st.Primary, "orders", kv.GetQuery([]byte("k")), ensemble.ReadLinearizable)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := kv.DecodeResult(res); err != nil || string(r.Value) != "v" {
		t.Fatalf("forwarded read: %+v %v", r, err)
	}
	// At a backup, the error comes back as the sentinel it is.
	_, err = c.nodes[0].node.ForwardPropose(ctxT(t), from.id, "orders", kv.PutCmd([]byte("k"), []byte("w")))
	if from.id != st.Primary && !errors.Is(err, ensemble.ErrNotPrimary) {
		t.Fatalf("forward to a backup: %v, want ErrNotPrimary", err)
	}
	if _, err := from.node.ForwardRead(ctxT(t), st.Primary, "nope", nil, ensemble.ReadLinearizable); !errors.Is(err, ErrNotFound) {
		t.Fatalf("forward for an unknown ensemble: %v, want ErrNotFound", err)
	}
}

func TestCallersWaitingOnAStoppedReplicaAreAnswered(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startEnsemble(0, "lonely", true) // its peers never start: no quorum
	errc := make(chan error, 1)
	go func() {
		_, err := c.nodes[0].node.Propose(ctxT(t), "lonely", kv.PutCmd([]byte("k"), []byte("v")))
		errc <- err
	}()
	eventually(t, "the proposal waits on the loop", func() error {
		var n int
		_ = c.nodes[0].node.do(ctxT(t), func() { n = len(c.nodes[0].node.waiters) })
		if n == 0 {
			return errors.New("no waiter yet")
		}
		return nil
	})
	if err := c.nodes[0].node.Stop(ctxT(t), "lonely"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("a caller of a stopped replica got %v, want ErrNotFound", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the caller of a stopped replica was not answered")
	}
}
