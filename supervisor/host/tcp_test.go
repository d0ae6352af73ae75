package host

import (
	"context"
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

// tcpCluster is n nodes in one process over real TCP on loopback and real
// bbolt files: the physical path a deployment takes.
type tcpCluster struct {
	nodes []*Node
	ids   []hasup.NodeID
}

func newTCPCluster(tb testing.TB, n int, tick time.Duration) *tcpCluster {
	c := &tcpCluster{}
	var trs []*transport.TCP
	for i := 0; i < n; i++ {
		c.ids = append(c.ids, hasup.NodeID(fmt.Sprintf("t%d", i)))
	}
	for i := 0; i < n; i++ {
		cfg := transport.DefaultConfig()
		cfg.ID, cfg.Listen, cfg.Seed = c.ids[i], "127.0.0.1:0", uint64(i+1)
		tr, err := transport.Listen(cfg)
		if err != nil {
			tb.Fatal(err)
		}
		trs = append(trs, tr)
	}
	for i, tr := range trs {
		for j, other := range trs {
			if i != j {
				tr.SetPeer(c.ids[j], other.Addr())
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, n)
	for i, tr := range trs {
		st, err := store.Open(filepath.Join(tb.TempDir(), "hasup.db"), store.DefaultOpenTimeout)
		if err != nil {
			tb.Fatal(err)
		}
		node, err := New(Config{ID: c.ids[i], Store: st, Transport: tr, TickInterval: tick, Seed: uint64(i + 1)})
		if err != nil {
			tb.Fatal(err)
		}
		c.nodes = append(c.nodes, node)
		go func() { _ = node.Run(ctx); done <- struct{}{} }()
		tb.Cleanup(func() { _ = st.Close() })
		tb.Cleanup(func() { _ = tr.Close() })
	}
	tb.Cleanup(func() {
		cancel()
		for range trs {
			<-done
		}
	})
	return c
}

// primary starts the ensemble everywhere and returns its primary's index.
func (c *tcpCluster) startAndFindPrimary(tb testing.TB, name hasup.EnsembleName) int {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, nd := range c.nodes {
		if err := nd.Start(ctx, Spec{Name: name, Members: c.ids, FSM: kv.New(), Bootstrap: true}); err != nil {
			tb.Fatal(err)
		}
	}
	for ctx.Err() == nil {
		for i, nd := range c.nodes {
			if st, err := nd.Status(ctx, name); err == nil && st.IsPrimary {
				if _, err := nd.Propose(ctx, name, kv.PutCmd([]byte("warm"), []byte("up"))); err == nil {
					return i
				}
			}
		}
	}
	tb.Fatal("no primary")
	return -1
}

func TestThreeNodesOverTCPCommitAndRead(t *testing.T) {
	c := newTCPCluster(t, 3, 5*time.Millisecond)
	p := c.startAndFindPrimary(t, "orders")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 50; i++ {
		if _, err := c.nodes[p].Propose(ctx, "orders", kv.PutCmd([]byte(fmt.Sprintf("k%d", i)), []byte("v"))); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	res, err := c.nodes[p].Read(ctx, "orders", kv.GetQuery([]byte("k49")), ensemble.ReadLinearizable)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := kv.DecodeResult(res); err != nil || string(r.Value) != "v" {
		t.Fatalf("k49: %+v %v", r, err)
	}
}

// BenchmarkProposeOneClient measures one client's sequential commits on a
// 3-node ensemble over loopback TCP with fsynced bbolt files: the latency
// of a durable write (ns/op).
func BenchmarkProposeOneClient(b *testing.B) {
	c := newTCPCluster(b, 3, 10*time.Millisecond)
	p := c.startAndFindPrimary(b, "bench")
	ctx := context.Background()
	cmd := kv.PutCmd([]byte("key"), make([]byte, 64))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.nodes[p].Propose(ctx, "bench", cmd); err != nil {
			b.Fatal(err)
		}
	}
}
