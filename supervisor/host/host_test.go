package host

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/fsm/kv"
	"github.com/hasup/hasup/internal/store"
	"github.com/hasup/hasup/internal/transport"
)

// testNode is one node of an in-process cluster: real bbolt files, the
// in-memory transport, a real ticker.
type testNode struct {
	id     hasup.NodeID
	dir    string
	st     *store.Store
	tr     *transport.Mem
	node   *Node
	cancel context.CancelFunc
	done   chan error
}

type testCluster struct {
	t       *testing.T
	quiesce int // QuiesceTicks of its replicas (0: never)
	net     *transport.MemNetwork
	nodes   []*testNode
	ids     []hasup.NodeID
}

func newTestCluster(t *testing.T, n int) *testCluster { return newTestClusterWith(t, n, 0) }

// newTestClusterWith is newTestCluster with replicas that quiesce after
// quiesce idle ticks (0: never).
func newTestClusterWith(t *testing.T, n, quiesce int) *testCluster {
	c := &testCluster{t: t, net: transport.NewMemNetwork(), quiesce: quiesce}
	for i := 0; i < n; i++ {
		id := hasup.NodeID(fmt.Sprintf("n%d", i))
		c.ids = append(c.ids, id)
		c.nodes = append(c.nodes, &testNode{id: id, dir: t.TempDir()})
	}
	for i := range c.nodes {
		c.startNode(i)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stopNode(i)
		}
	})
	return c
}

func (c *testCluster) startNode(i int) {
	tn := c.nodes[i]
	st, err := store.Open(filepath.Join(tn.dir, "hasup.db"), store.DefaultOpenTimeout)
	if err != nil {
		c.t.Fatal(err)
	}
	tn.tr = c.net.Join(tn.id, 4096)
	cfg := Config{ID: tn.id, Store: st, Transport: tn.tr, TickInterval: 2 * time.Millisecond, Seed: uint64(i + 1)}
	cfg.Replica = ensemble.DefaultConfig()
	cfg.Replica.CheckpointOps = 16
	cfg.Replica.QuiesceTicks = c.quiesce
	// No routine refresh: a quiescent ensemble fails over only because
	// the node heartbeats noticed the silence (what the tests check).
	cfg.RefreshTicks = 1 << 40
	node, err := New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn.st, tn.node, tn.cancel, tn.done = st, node, cancel, make(chan error, 1)
	go func() { tn.done <- node.Run(ctx) }()
}

// stopNode stops a node without any goodbye: its loop ends, its store closes.
func (c *testCluster) stopNode(i int) {
	tn := c.nodes[i]
	if tn.cancel == nil {
		return
	}
	tn.cancel()
	<-tn.done
	_ = tn.tr.Close()
	_ = tn.st.Close()
	tn.cancel = nil
}

func (c *testCluster) startEnsemble(i int, name hasup.EnsembleName, bootstrap bool) {
	if err := c.nodes[i].node.Start(ctxT(c.t), Spec{Name: name, Members: c.ids, FSM: kv.New(), Bootstrap: bootstrap}); err != nil {
		c.t.Fatal(err)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually retries f until it succeeds or 20 s pass.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline, not waiting for an event
	}
	t.Fatalf("%s: %v", what, err)
}

// put writes through whichever node is primary now.
func (c *testCluster) put(name hasup.EnsembleName, key, val string) {
	c.t.Helper()
	eventually(c.t, "put "+key, func() error {
		for _, tn := range c.nodes {
			if tn.cancel == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			res, err := tn.node.Propose(ctx, name, kv.PutCmd([]byte(key), []byte(val)))
			cancel()
			if err == nil {
				_, err = kv.DecodeResult(res)
				return err
			}
		}
		return errors.New("no primary took it")
	})
}

func (c *testCluster) get(name hasup.EnsembleName, key string) string {
	c.t.Helper()
	var out string
	eventually(c.t, "get "+key, func() error {
		for _, tn := range c.nodes {
			if tn.cancel == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			res, err := tn.node.Read(ctx, name, kv.GetQuery([]byte(key)), ensemble.ReadLinearizable)
			cancel()
			if err == nil {
				r, err := kv.DecodeResult(res)
				out = string(r.Value)
				return err
			}
		}
		return errors.New("no primary answered")
	})
	return out
}

func TestThreeNodesCommitAndReadOverRealStorage(t *testing.T) {
	c := newTestCluster(t, 3)
	for i := range c.nodes {
		c.startEnsemble(i, "orders", true)
	}
	for i := 0; i < 40; i++ {
		c.put("orders", fmt.Sprintf("k%d", i%5), fmt.Sprintf("v%d", i))
	}
	if got := c.get("orders", "k4"); got != "v39" {
		t.Fatalf("k4 = %q, want v39", got)
	}
}

func TestNodeKilledAndRestartedFromItsDataDirRejoins(t *testing.T) {
	c := newTestCluster(t, 3)
	for i := range c.nodes {
		c.startEnsemble(i, "orders", true)
	}
	c.put("orders", "a", "1")
	c.stopNode(0) // no clean shutdown of the protocol
	c.put("orders", "b", "2")
	c.startNode(0)
	c.startEnsemble(0, "orders", false) // from its data dir
	c.put("orders", "c", "3")
	c.stopNode(1)
	c.stopNode(2)
	c.startNode(1) // n0 and n1 must now carry the ensemble: n0 caught up
	c.startEnsemble(1, "orders", false)
	for key, want := range map[string]string{"a": "1", "b": "2", "c": "3"} {
		if got := c.get("orders", key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
}

func TestWholeClusterRestartLosesNoAcknowledgedWrite(t *testing.T) {
	c := newTestCluster(t, 3)
	for i := range c.nodes {
		c.startEnsemble(i, "orders", true)
	}
	for i := 0; i < 30; i++ {
		c.put("orders", fmt.Sprintf("k%d", i), "x")
	}
	for i := range c.nodes {
		c.stopNode(i)
	}
	for i := range c.nodes {
		c.startNode(i)
		c.startEnsemble(i, "orders", false)
	}
	for i := 0; i < 30; i++ {
		if got := c.get("orders", fmt.Sprintf("k%d", i)); got != "x" {
			t.Fatalf("k%d = %q after a whole-cluster restart", i, got)
		}
	}
}

func TestNodeRestartedWithAnEmptyDataDirRecoversFromItsPeers(t *testing.T) {
	c := newTestCluster(t, 3)
	for i := range c.nodes {
		c.startEnsemble(i, "orders", true)
	}
	for i := 0; i < 40; i++ { // past a checkpoint (CheckpointOps 16)
		c.put("orders", fmt.Sprintf("k%d", i), "x")
	}
	c.stopNode(2)
	c.nodes[2].dir = t.TempDir() // its disk is gone
	c.startNode(2)
	c.startEnsemble(2, "orders", false) // no state, no bootstrap: recovery
	eventually(t, "n2 recovers", func() error {
		st, err := c.nodes[2].node.Status(ctxT(t), "orders")
		if err != nil || st.Mode != ensemble.ModeNormal || st.Commit < 40 {
			return fmt.Errorf("n2: %+v %v", st, err)
		}
		return nil
	})
	c.stopNode(0) // the recovered n2 is needed for the quorum now
	if got := c.get("orders", "k39"); got != "x" {
		t.Fatalf("k39 = %q", got)
	}
}
