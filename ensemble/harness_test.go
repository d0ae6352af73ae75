package ensemble

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/fsm"
)

// logFSM is a test FSM that records every command it applies, in order.
type logFSM struct{ cmds [][]byte }

func (f *logFSM) Apply(ctx fsm.Context, cmd []byte) []byte {
	f.cmds = append(f.cmds, bytes.Clone(cmd))
	return binary.AppendUvarint(nil, uint64(len(f.cmds)))
}

func (f *logFSM) Query(q []byte) ([]byte, error) {
	return bytes.Join(f.cmds, []byte(",")), nil
}

func (f *logFSM) Snapshot(w io.Writer) error {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(f.cmds)))
	for _, c := range f.cmds {
		b = binary.AppendUvarint(b, uint64(len(c)))
		b = append(b, c...)
	}
	_, err := w.Write(b)
	return err
}

func (f *logFSM) Restore(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	n, k := binary.Uvarint(data)
	if k <= 0 {
		return errors.New("logFSM: bad count")
	}
	data = data[k:]
	f.cmds = nil
	for i := uint64(0); i < n; i++ {
		l, k := binary.Uvarint(data)
		if k <= 0 || uint64(len(data)-k) < l {
			return errors.New("logFSM: bad entry")
		}
		f.cmds = append(f.cmds, bytes.Clone(data[k:k+int(l)]))
		data = data[k+int(l):]
	}
	return nil
}

// node is one replica in a test cluster with its durable state.
type node struct {
	r       *Replica
	fsm     *logFSM
	disk    Durable
	down    bool
	replies []Reply
}

// cluster drives replicas in lock-step over a perfect, controllable network:
// messages queue in order and are delivered by deliver; a filter can drop.
type cluster struct {
	t       *testing.T
	ids     []hasup.NodeID
	nodes   map[hasup.NodeID]*node
	queue   []Message
	drop    func(m Message) bool
	rng     *rand.Rand
	ckptOps uint64
	chunk   int
	// tune, if set, adjusts every replica's config after the defaults
	// above (tests set it before boot).
	tune func(id hasup.NodeID, cfg *Config)
	// observers see every Ready after it is persisted and before its
	// messages are queued (scenario checkers hook in here).
	observers []func(id hasup.NodeID, rd Ready)
}

func newCluster(t *testing.T, n int) *cluster {
	c := &cluster{t: t, nodes: map[hasup.NodeID]*node{}, rng: rand.New(rand.NewPCG(1, 2)), ckptOps: 1024, chunk: 1 << 16}
	for i := 0; i < n; i++ {
		c.ids = append(c.ids, hasup.NodeID(fmt.Sprintf("n%d", i)))
	}
	return c
}

func (c *cluster) config(id hasup.NodeID, f *logFSM) Config {
	cfg := DefaultConfig()
	cfg.Ensemble, cfg.ID, cfg.Members, cfg.FSM = "e", id, c.ids, f
	cfg.Rand = rand.New(rand.NewPCG(c.rng.Uint64(), 7))
	cfg.CheckpointOps, cfg.ChunkBytes = c.ckptOps, c.chunk
	// Scenarios of the view-change rules run without leases, so a hint or a
	// peer's STARTVIEWCHANGE acts at once; lease tests turn them on (tune).
	cfg.LeaseTicks = 0
	if c.tune != nil {
		c.tune(id, &cfg)
	}
	return cfg
}

// boot starts every replica of a brand-new ensemble.
func (c *cluster) boot() *cluster {
	for _, id := range c.ids {
		f := &logFSM{}
		cfg := c.config(id, f)
		cfg.Bootstrap = true
		c.start(id, cfg, f)
	}
	c.settle()
	return c
}

func (c *cluster) start(id hasup.NodeID, cfg Config, f *logFSM) {
	r, err := New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	old := c.nodes[id]
	nd := &node{r: r, fsm: f}
	if old != nil {
		nd.disk = old.disk
	}
	c.nodes[id] = nd
}

// restart crashes id and starts it from its disk (intact storage).
func (c *cluster) restart(id hasup.NodeID) {
	f := &logFSM{}
	cfg := c.config(id, f)
	d := c.nodes[id].disk
	d.Entries = append([]Entry(nil), d.Entries...)
	cfg.Durable = &d
	c.start(id, cfg, f)
}

// wipe crashes id and starts it with empty storage: it must recover.
func (c *cluster) wipe(id hasup.NodeID) {
	c.nodes[id].disk = Durable{}
	f := &logFSM{}
	c.start(id, c.config(id, f), f)
}

// persist applies a Ready's storage writes to the node's disk.
func (nd *node) persist(rd Ready) {
	if rd.HardState != nil {
		nd.disk.Hard = *rd.HardState
	}
	if rd.Checkpoint != nil {
		drop := rd.Checkpoint.Op - nd.disk.Checkpoint.Op
		if drop >= uint64(len(nd.disk.Entries)) {
			nd.disk.Entries = nil
		} else {
			nd.disk.Entries = append([]Entry(nil), nd.disk.Entries[drop:]...)
		}
		nd.disk.Checkpoint = *rd.Checkpoint
	}
	if rd.LogFrom > 0 {
		keep := rd.LogFrom - 1 - nd.disk.Checkpoint.Op
		if keep < uint64(len(nd.disk.Entries)) {
			nd.disk.Entries = nd.disk.Entries[:keep]
		}
		nd.disk.Entries = append(nd.disk.Entries, rd.Entries...)
	}
}

// process runs every pending Ready once; it reports whether there was any.
func (c *cluster) process() bool {
	any := false
	for _, id := range c.ids {
		if _, ok := c.processNode(id); ok {
			any = true
		}
	}
	return any
}

// processNode runs id's pending Ready, if any, as a runtime would: persist,
// queue the messages, keep the replies, Advance. It returns the Ready.
func (c *cluster) processNode(id hasup.NodeID) (Ready, bool) {
	nd := c.nodes[id]
	if nd.down || !nd.r.HasReady() {
		return Ready{}, false
	}
	rd := nd.r.Ready()
	nd.persist(rd)
	for _, obs := range c.observers {
		obs(id, rd)
	}
	c.queue = append(c.queue, rd.Messages...)
	nd.replies = append(nd.replies, rd.Replies...)
	nd.r.Advance()
	return rd, true
}

// deliver delivers every queued message (and those they cause) until quiet.
func (c *cluster) settle() {
	for i := 0; i < 10000; i++ {
		moved := c.process()
		if len(c.queue) == 0 && !moved {
			return
		}
		q := c.queue
		c.queue = nil
		for _, m := range q {
			nd := c.nodes[m.To]
			if nd.down || (c.drop != nil && c.drop(m)) {
				continue
			}
			nd.r.Step(m)
		}
	}
	c.t.Fatal("cluster did not settle")
}

// tick ticks every live replica n times, settling after each.
func (c *cluster) tick(n int) {
	for i := 0; i < n; i++ {
		for _, id := range c.ids {
			if !c.nodes[id].down {
				c.nodes[id].r.Tick()
			}
		}
		c.settle()
	}
}

func (c *cluster) primary() *node {
	var p *node
	for _, id := range c.ids {
		nd := c.nodes[id]
		if !nd.down && nd.r.Status().IsPrimary {
			if p == nil || nd.r.Status().View > p.r.Status().View {
				p = nd
			}
		}
	}
	return p
}

// propose submits cmd to the current primary and settles.
func (c *cluster) propose(client, req uint64, cmd string) Reply {
	c.t.Helper()
	p := c.primary()
	if p == nil {
		c.t.Fatal("no primary")
	}
	id := uint64(len(p.replies)) + 1000*client + req
	if err := p.r.Propose(Proposal{ID: id, Client: client, Request: req, Cmd: []byte(cmd)}); err != nil {
		c.t.Fatalf("propose %q: %v", cmd, err)
	}
	c.settle()
	for _, rp := range p.replies {
		if rp.ID == id {
			return rp
		}
	}
	c.t.Fatalf("propose %q: no reply", cmd)
	return Reply{}
}

func (c *cluster) applied(id hasup.NodeID) string {
	return string(bytes.Join(c.nodes[id].fsm.cmds, []byte(",")))
}

func TestHarnessSmoke(t *testing.T) {
	c := newCluster(t, 3).boot()
	c.propose(0, 0, "a")
	c.propose(0, 0, "b")
	c.tick(2)
	for _, id := range c.ids {
		if got := c.applied(id); got != "a,b" {
			t.Errorf("%s applied %q", id, got)
		}
	}
}
