package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/detector"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/fsm/kv"
)

// testNode is one real node in this process: real Serf on loopback (local
// profile), real TCP, real bbolt in a temp dir.
type testNode struct {
	sup    *Supervisor
	dir    string
	cancel context.CancelFunc
	done   chan error
}

type testCluster struct {
	t     *testing.T
	nodes []*testNode
	join  string
}

func newTestCluster(t *testing.T, n int) *testCluster {
	c := &testCluster{t: t}
	for i := 0; i < n; i++ {
		c.nodes = append(c.nodes, &testNode{dir: t.TempDir()})
		c.start(i, n)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.kill(i)
		}
	})
	return c
}

// start starts node i (again, from its data dir).
func (c *testCluster) start(i, expect int) {
	tn := c.nodes[i]
	cfg := Config{NodeName: hasup.NodeID(fmt.Sprintf("n%d", i)), DataDir: tn.dir, Profile: detector.ProfileLocal,
		BootstrapExpect: expect}
	if os.Getenv("HASUP_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("n", cfg.NodeName)
	}
	if c.join != "" {
		cfg.Join = []string{c.join}
	}
	s, err := New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.join == "" {
		c.join = s.SerfAddr()
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn.sup, tn.cancel, tn.done = s, cancel, make(chan error, 1)
	go func() { tn.done <- s.Run(ctx) }()
}

// kill stops node i without leaving: the others see it fail.
func (c *testCluster) kill(i int) {
	tn := c.nodes[i]
	if tn.cancel == nil {
		return
	}
	tn.cancel()
	<-tn.done
	tn.cancel = nil
}

func (c *testCluster) alive() []*testNode {
	var out []*testNode
	for _, tn := range c.nodes {
		if tn.cancel != nil {
			out = append(out, tn)
		}
	}
	return out
}

// eventually polls f until it succeeds or d passes.
func eventually(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
	t.Fatalf("%s: %v", what, err)
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// formed waits until every live node reads a registry listing every live
// node alive.
func (c *testCluster) formed() {
	eventually(c.t, 30*time.Second, "cluster formed", func() error {
		for _, tn := range c.alive() {
			reg, ok := tn.sup.Registry()
			if !ok {
				return fmt.Errorf("%s has no registry", tn.sup.ID())
			}
			if _, ok := reg.Ensemble(ClusterEnsemble); !ok {
				return fmt.Errorf("%s: the cluster ensemble is not registered yet", tn.sup.ID())
			}
			for _, other := range c.alive() {
				n, ok := reg.Node(other.sup.ID())
				if !ok || n.State != hasup.MemberAlive {
					return fmt.Errorf("%s does not see %s alive in the registry", tn.sup.ID(), other.sup.ID())
				}
			}
		}
		return nil
	})
}

func put(ctx context.Context, e *Ensemble, key, val string) error {
	res, err := e.Propose(ctx, kv.PutCmd([]byte(key), []byte(val)))
	if err != nil {
		return err
	}
	_, err = kv.DecodeResult(res)
	return err
}

func get(ctx context.Context, e *Ensemble, key string) (string, error) {
	res, err := e.Read(ctx, kv.GetQuery([]byte(key)), ensemble.ReadLinearizable)
	if err != nil {
		return "", err
	}
	r, err := kv.DecodeResult(res)
	return string(r.Value), err
}

// startEnsembles starts n ensembles (3 and 5 replicas alternately) from
// node 0 and writes one key to each.
func (c *testCluster) startEnsembles(n int) []*Ensemble {
	var out []*Ensemble
	for i := 0; i < n; i++ {
		replicas := 3
		if i%2 == 1 {
			replicas = 5
		}
		e, err := c.nodes[0].sup.Start(ctxFor(c.t, 20*time.Second), Spec{Name: hasup.EnsembleName(fmt.Sprintf("e%02d", i)), Type: "kv", Replicas: replicas})
		if err != nil {
			c.t.Fatal(err)
		}
		if err := put(ctxFor(c.t, 10*time.Second), e, "k", string(e.Name())); err != nil {
			c.t.Fatalf("put to %s: %v", e.Name(), err)
		}
		out = append(out, e)
	}
	return out
}

// repaired waits until no ensemble lists a victim and each reads back its
// data, and returns when the registry first showed the last repair.
func (c *testCluster) repaired(from *testNode, ens []*Ensemble, victims []hasup.NodeID, d time.Duration) {
	eventually(c.t, d, "repair", func() error {
		reg, _ := from.sup.Registry()
		for _, e := range ens {
			en, ok := reg.Ensemble(e.Name())
			if !ok {
				return fmt.Errorf("%s missing", e.Name())
			}
			for _, v := range victims {
				if slices.Contains(en.Members, v) || en.Target != nil {
					return fmt.Errorf("%s: members %v target %v (victims %v)", e.Name(), en.Members, en.Target, victims)
				}
			}
		}
		return nil
	})
}

func (c *testCluster) checkData(from *testNode, ens []*Ensemble) {
	for _, e := range ens {
		h, err := from.sup.Lookup(e.Name())
		if err != nil {
			c.t.Fatal(err)
		}
		eventually(c.t, 10*time.Second, "read "+string(e.Name()), func() error {
			v, err := get(ctxFor(c.t, 2*time.Second), h, "k")
			if err == nil && v != string(e.Name()) {
				c.t.Fatalf("%s: k = %q after the repair", e.Name(), v)
			}
			return err
		})
		if err := put(ctxFor(c.t, 10*time.Second), h, "after", "x"); err != nil {
			c.t.Fatalf("write to %s after the repair: %v", e.Name(), err)
		}
	}
}

func TestFiveNodesRepairEnsemblesOfAStoppedNode(t *testing.T) {
	if testing.Short() {
		t.Skip("five real nodes")
	}
	c := newTestCluster(t, 5)
	c.formed()
	ens := c.startEnsembles(20)
	// On five nodes, a 5-replica ensemble that loses a node has no spare
	// to move to: it runs on with 4 of 5 (still a majority, and one more
	// failure to spare) until a node is free. The 3-replica ones move.
	var three []*Ensemble
	for i, e := range ens {
		if i%2 == 0 {
			three = append(three, e)
		}
	}
	victim := c.nodes[4]
	id := victim.sup.ID()
	start := time.Now()
	c.kill(4)
	c.repaired(c.nodes[0], three, []hasup.NodeID{id}, 30*time.Second)
	t.Logf("REPAIR one node stopped: every 3-replica ensemble of %s repaired %v after the stop", id, time.Since(start).Round(time.Millisecond))
	c.checkData(c.nodes[0], ens)

	// The node comes back: it drops the replicas it was replaced in and
	// disturbs nobody.
	c.start(4, 5)
	c.formed()
	time.Sleep(time.Second) // give it a chance to disturb (the check follows)
	reg, _ := c.nodes[0].sup.Registry()
	for _, e := range three {
		en, _ := reg.Ensemble(e.Name())
		if slices.Contains(en.Members, id) {
			t.Fatalf("%s lists the returned node again: %v", e.Name(), en.Members)
		}
	}
	c.checkData(c.nodes[0], ens)
	eventually(t, 10*time.Second, "the returned node drops its stale replicas", func() error {
		local, err := c.nodes[4].sup.node.Statuses(ctxFor(t, time.Second))
		if err != nil {
			return err
		}
		for _, st := range local {
			en, ok := reg.Ensemble(st.Ensemble)
			if ok && !slices.Contains(en.Members, id) {
				return fmt.Errorf("%s still runs %s, which it was replaced in", id, st.Ensemble)
			}
		}
		return nil
	})
}

func TestSevenNodesRepairFiveReplicaEnsemblesAfterTwoNodesStopAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("seven real nodes")
	}
	c := newTestCluster(t, 7)
	c.formed()
	var five []*Ensemble
	for i, e := range c.startEnsembles(8) {
		if i%2 == 1 {
			five = append(five, e)
		}
	}
	victims := []hasup.NodeID{c.nodes[5].sup.ID(), c.nodes[6].sup.ID()}
	start := time.Now()
	c.kill(5)
	c.kill(6)
	// Each 5-replica ensemble that had both victims loses two members at
	// once: it keeps its majority, and is repaired twice in a row.
	c.repaired(c.nodes[0], five, victims, 30*time.Second)
	t.Logf("REPAIR two nodes stopped at once: every 5-replica ensemble repaired %v after the stop", time.Since(start).Round(time.Millisecond))
	c.checkData(c.nodes[0], five)
}
