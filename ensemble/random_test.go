package ensemble

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/hasup/hasup"
)

// chaosNet is a hostile network for settleChaos: each message may be lost,
// duplicated, delivered out of order or held back for a later settle.
type chaosNet struct {
	rng              *rand.Rand
	loss, dup, delay float64
	held             []Message
}

// settleChaos is settle over the chaos network.
func (s *scen) settleChaos(net *chaosNet) {
	rng := net.rng
	// Release some held messages.
	keep := net.held[:0]
	for _, m := range net.held {
		if rng.IntN(3) == 0 {
			s.queue = append(s.queue, m)
		} else {
			keep = append(keep, m)
		}
	}
	net.held = keep
	for i := 0; i < 10000; i++ {
		moved := s.process()
		if len(s.queue) == 0 && !moved {
			return
		}
		q := s.queue
		s.queue = nil
		rng.Shuffle(len(q), func(a, b int) { q[a], q[b] = q[b], q[a] })
		for _, m := range q {
			nd := s.nodes[m.To]
			if nd.down || (s.drop != nil && s.drop(m)) || rng.Float64() < net.loss {
				continue
			}
			if rng.Float64() < net.delay && len(net.held) < 64 {
				net.held = append(net.held, m)
				continue
			}
			nd.r.Step(m)
			if rng.Float64() < net.dup {
				s.queue = append(s.queue, m)
			}
		}
	}
	s.t.Fatal("cluster did not settle")
}

// Seeded random runs under the checkers: writes without sessions, three
// session clients that retry, linearizable reads, ticks, a network that
// loses, duplicates, reorders and delays messages, crashes with intact
// storage (at most f at once), disk wipes (one at a time), true and false
// failure hints, and a node cut off in one or both directions. Safety,
// durability and at-most-once execution are checked at every Ready, every
// read answer against the writes acknowledged before it was issued; at the
// end the faults heal and every acknowledged op must be committed
// everywhere. A failure names its seed, which replays it.
func TestRandomFaultsNeverLoseAcknowledgedOps(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		for _, n := range []int{3, 5} {
			t.Run(fmt.Sprintf("seed=%d/n=%d", seed, n), func(t *testing.T) {
				runRandom(t, seed, n)
			})
		}
	}
}

func runRandom(t *testing.T, seed uint64, n int) {
	rng := rand.New(rand.NewPCG(seed, 99))
	s := scenario(t, n, func(c *cluster) {
		c.rng = rand.New(rand.NewPCG(seed, 1))
		c.ckptOps, c.chunk = 8, 128
		c.tune = func(_ hasup.NodeID, cfg *Config) { cfg.BatchOps, cfg.PipelineMax = 3, 2 }
	})
	f := (n - 1) / 2
	wiped := map[hasup.NodeID]bool{} // wiped and not yet recovered
	var cut hasup.NodeID             // partitioned: deaf (oneWay) or isolated
	var oneWay bool
	net := &chaosNet{rng: rng, loss: 0.05, dup: 0.05, delay: 0.05}
	cmd := 0
	clients := []*sessionClient{{id: 1}, {id: 2}, {id: 3}}
	var reads []*randRead
	for step := 0; step < 400; step++ {
		for id := range wiped {
			if st := s.nodes[id].r.Status(); st.Mode == ModeNormal {
				delete(wiped, id)
			}
		}
		down := 0
		for _, id := range s.ids {
			if s.nodes[id].down || wiped[id] {
				down++
			}
		}
		id := s.ids[rng.IntN(n)]
		nd := s.nodes[id]
		switch x := rng.IntN(100); {
		case x < 20:
			cl := clients[rng.IntN(len(clients))]
			if !cl.pending {
				cl.submit(s)
			}
		case x < 24:
			if p := s.primary(); p != nil {
				reads = append(reads, newPendingRead(s, p.r.cfg.ID))
			}
		case x < 35:
			if p := s.primary(); p != nil {
				for k := rng.IntN(4); k >= 0; k-- {
					cmd++
					_, _ = s.submit(p.r.cfg.ID, 0, 0, fmt.Sprintf("c%d", cmd))
				}
			}
		case x < 70:
			for _, id := range s.ids {
				if !s.nodes[id].down {
					s.nodes[id].r.Tick()
				}
			}
		case x < 76:
			if !nd.down && down < f {
				nd.down = true
			}
		case x < 84:
			if nd.down {
				s.restartOrRecover(id, wiped[id])
			}
		case x < 86:
			if !nd.down && down == 0 && !wiped[id] {
				s.wipe(id)
				wiped[id] = true
			}
		case x < 90:
			if !nd.down {
				nd.r.SuspectPrimary()
			}
		case x < 93:
			if cut == "" {
				cut, oneWay = id, rng.IntN(2) == 0
				s.drop = func(m Message) bool { return m.To == cut || (!oneWay && m.From == cut) }
			} else {
				cut, s.drop = "", nil
			}
		case x < 97:
			if p := s.primary(); p != nil && down < f {
				p.down = true
			}
		}
		s.settleChaos(net)
		for _, cl := range clients {
			cl.poll(s, step)
		}
		reads = slices.DeleteFunc(reads, func(rd *randRead) bool { return rd.poll(s) })
	}
	// Heal and let the ensemble converge.
	s.drop = nil
	for _, id := range s.ids {
		if s.nodes[id].down {
			s.restartOrRecover(id, wiped[id])
		}
	}
	s.settle()
	s.write("final")
	s.requireConverged(1000)
	t.Logf("reads answered %d, session requests done %d %d %d", s.readsOK, clients[0].req, clients[1].req, clients[2].req)
	t.Logf("acked %d ops, view %d, commit %d, checkpoint %d", len(s.acked), s.primary().r.Status().View, s.primary().r.Status().Commit, s.primary().r.Status().CheckpointOp)
	if len(s.acked) == 0 {
		t.Errorf("no op was acknowledged in the whole run")
	}
}

// restartOrRecover restarts id from its storage, or, if its storage is
// still empty after a wipe, starts it recovering again.
func (s *scen) restartOrRecover(id hasup.NodeID, wiped bool) {
	if wiped {
		s.wipe(id)
		return
	}
	s.restart(id)
}

// sessionClient is a client with a session: it registers, then sends
// requests numbered from 1, retrying a request with the same number after
// an error or a lost reply, and checks that every success for one request
// carries the same result.
type sessionClient struct {
	id      uint64
	req     uint64 // the request in progress; 0 registers
	pending bool
	at      hasup.NodeID
	born    *Replica // the incarnation of at that got the request
	pid     uint64
	since   int
	results map[uint64]string
}

func (c *sessionClient) submit(s *scen) {
	p := s.primary()
	if p == nil {
		return
	}
	pid, err := s.submit(p.r.cfg.ID, c.id, c.req, fmt.Sprintf("s%d-%d", c.id, c.req))
	if err != nil {
		return
	}
	c.pending, c.at, c.born, c.pid, c.since = true, p.r.cfg.ID, p.r, pid, -1
}

func (c *sessionClient) poll(s *scen, step int) {
	if !c.pending {
		return
	}
	if c.since < 0 {
		c.since = step
	}
	if s.nodes[c.at].r != c.born || step-c.since > 40 {
		c.pending = false // the reply is lost with the node, or late: retry
		return
	}
	rp, ok := s.reply(c.at, c.pid)
	if !ok {
		return
	}
	c.pending = false
	switch {
	case rp.Err == nil:
		if c.results == nil {
			c.results = map[uint64]string{}
		}
		if prev, ok := c.results[c.req]; ok && prev != string(rp.Result) {
			s.errorf("AT-MOST-ONCE: client %d request %d answered %x, earlier %x", c.id, c.req, rp.Result, prev)
		}
		c.results[c.req] = string(rp.Result)
		c.req++
	case errors.Is(rp.Err, ErrViewChanged), errors.Is(rp.Err, ErrNotPrimary):
	default:
		s.errorf("client %d request %d: unexpected %v", c.id, c.req, rp.Err)
	}
}

// randRead is a linearizable read in flight: its answer must show every
// command acknowledged before the read was issued.
type randRead struct {
	at   hasup.NodeID
	born *Replica
	pid  uint64
	need []string
}

func newPendingRead(s *scen, at hasup.NodeID) *randRead {
	rd := &randRead{at: at, born: s.nodes[at].r}
	for _, e := range s.acked {
		if e.Kind == EntryRequest {
			rd.need = append(rd.need, string(e.Cmd))
		}
	}
	pid, err := s.read(at)
	if err != nil {
		return &randRead{}
	}
	rd.pid = pid
	return rd
}

// poll checks the read's answer if it came and reports whether the read is
// finished (answered, or lost with its node).
func (rd *randRead) poll(s *scen) bool {
	if rd.pid == 0 || s.nodes[rd.at].r != rd.born {
		return true
	}
	rp, ok := s.reply(rd.at, rd.pid)
	if !ok {
		return false
	}
	if rp.Err != nil {
		return true
	}
	s.readsOK++
	got := map[string]bool{}
	for _, c := range strings.Split(string(rp.Result), ",") {
		got[c] = true
	}
	for _, c := range rd.need {
		if !got[c] {
			s.errorf("LINEARIZABILITY: read at %s missed %q, acknowledged before the read was issued", rd.at, c)
		}
	}
	return true
}
