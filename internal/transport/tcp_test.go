package transport

import (
	"errors"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/internal/wire"
)

// testConfig is a config for a node on an ephemeral loopback port, with
// short backoff so that reconnect tests run fast.
func testConfig(id hasup.NodeID) Config {
	c := DefaultConfig()
	c.ID = id
	c.Listen = "127.0.0.1:0"
	c.Seed = 1
	c.BackoffMin = 2 * time.Millisecond
	c.BackoffMax = 50 * time.Millisecond
	return c
}

func listen(t *testing.T, cfg Config) *TCP {
	t.Helper()
	tr, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// freeAddr returns a loopback address nothing listens on (for now).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestTCPThreeNodesExchangeInOrder(t *testing.T) {
	checkNoLeaks(t)
	ids := []hasup.NodeID{"a", "b", "c"}
	nodes := map[hasup.NodeID]*TCP{}
	for _, id := range ids {
		nodes[id] = listen(t, testConfig(id))
	}
	for _, id := range ids {
		for _, peer := range ids {
			if peer != id {
				nodes[id].SetPeer(peer, nodes[peer].Addr())
			}
		}
	}
	const count = 200 // per ordered pair; below QueueLen, so nothing drops
	done := make(chan struct{})
	for _, from := range ids {
		go func() {
			defer func() { done <- struct{}{} }()
			for op := uint64(1); op <= count; op++ {
				for _, to := range ids {
					if to != from {
						nodes[from].Send(msg(from, to, op))
					}
				}
			}
		}()
	}
	for range ids {
		<-done
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, id := range ids {
				t.Logf("%s: %+v", id, nodes[id].Stats())
			}
		}
	})
	for _, to := range ids {
		next := map[hasup.NodeID]uint64{}
		for _, got := range receive(t, nodes[to].Receive(), 2*count) {
			next[got.From]++
			if want := msg(got.From, to, next[got.From]); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s got %v (%d entries, %d data bytes), want %v", to, got, len(got.Entries), len(got.Data), want)
			}
		}
	}
	for _, id := range ids {
		waitFor(t, "Sent to be counted", func() bool { return nodes[id].Stats().Sent == 2*count })
		if s := nodes[id].Stats(); s != (Stats{Sent: 2 * count, Received: 2 * count}) {
			t.Errorf("%s stats %+v", id, s)
		}
	}
}

func TestTCPPeerDownAtFirstGetsQueuedMessages(t *testing.T) {
	checkNoLeaks(t)
	addrB := freeAddr(t)
	cfgA := testConfig("a")
	cfgA.Peers = map[hasup.NodeID]string{"b": addrB}
	a := listen(t, cfgA)
	const count = 50
	for op := uint64(1); op <= count; op++ {
		a.Send(msg("a", "b", op))
	}
	cfgB := testConfig("b")
	cfgB.Listen = addrB
	b := listen(t, cfgB)
	for i, got := range receive(t, b.Receive(), count) {
		if got.Op != uint64(i+1) {
			t.Fatalf("message %d has op %d", i, got.Op)
		}
	}
}

func TestTCPRestartedPeerReconnects(t *testing.T) {
	checkNoLeaks(t)
	a := listen(t, testConfig("a"))
	b := listen(t, testConfig("b"))
	a.SetPeer("b", b.Addr())
	b.SetPeer("a", a.Addr())
	a.Send(msg("a", "b", 1))
	receive(t, b.Receive(), 1)

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig("b")
	cfg.Listen = b.Addr()
	cfg.Peers = map[hasup.NodeID]string{"a": a.Addr()}
	b2 := listen(t, cfg)

	// Messages written before a notices the old connection died are lost,
	// so a sends, as the protocol would retransmit, until one arrives.
	op := uint64(1)
	waitFor(t, "a message from a to reach the restarted b", func() bool {
		op++
		a.Send(msg("a", "b", op))
		select {
		case <-b2.Receive():
			return true
		default:
			return false
		}
	})
	b2.Send(msg("b", "a", 1))
	if got := receive(t, a.Receive(), 1)[0]; got.From != "b" || got.Op != 1 {
		t.Fatalf("a got %v from the restarted b", got)
	}
}

// rawConn dials tr as a raw TCP client and writes b.
func rawConn(t *testing.T, tr *TCP, b []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", tr.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	return c
}

// expectClosedByPeer fails unless the transport closes c.
func expectClosedByPeer(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	_, err := c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after %v", waitTimeout)
	}
	if err == nil {
		t.Fatal("the transport wrote on an incoming connection")
	}
}

func hello(id hasup.NodeID) []byte { return wire.AppendFrame(nil, frameHello, []byte(id)) }

func msgFrame(m ensemble.Message) []byte {
	return wire.AppendFrame(nil, frameMessage, wire.AppendMessage(nil, m))
}

func concat(bs ...[]byte) (out []byte) {
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

func TestTCPMalformedInputIsCountedAndDropped(t *testing.T) {
	checkNoLeaks(t)
	cfg := testConfig("a")
	cfg.MaxFrameBytes = 4096
	a := listen(t, cfg)
	good := ensemble.Message{Type: ensemble.MsgCommit, From: "x", To: "a", Op: 1}
	bigger := good
	bigger.Data = make([]byte, cfg.MaxFrameBytes)
	for _, tc := range []struct {
		name  string
		input []byte
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n")},
		{"bad crc", func() []byte { b := hello("x"); b[len(b)-1]++; return b }()},
		{"message before hello", msgFrame(good)},
		{"empty hello", wire.AppendFrame(nil, frameHello, nil)},
		{"undecodable message", concat(hello("x"), wire.AppendFrame(nil, frameMessage, []byte{wire.Version, 1, 0xff}))},
		{"unknown frame type", concat(hello("x"), wire.AppendFrame(nil, 9, nil))},
		{"from is not the hello ID", concat(hello("y"), msgFrame(good))},
		{"to is not this node", concat(hello("x"), msgFrame(ensemble.Message{From: "x", To: "b"}))},
		{"frame above the cap", concat(hello("x"), msgFrame(bigger))},
		{"declared length above the cap", concat(hello("x"), []byte{wire.Version, frameMessage, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := a.Stats()
			c := rawConn(t, a, tc.input)
			expectClosedByPeer(t, c)
			waitFor(t, "Malformed to grow", func() bool { return a.Stats().Malformed == before.Malformed+1 })
			if s := a.Stats(); s.Received != before.Received {
				t.Errorf("Received went from %d to %d", before.Received, s.Received)
			}
		})
	}

	// A well-formed raw client is still served, first message included.
	c := rawConn(t, a, concat(hello("x"), msgFrame(good)))
	if got := receive(t, a.Receive(), 1)[0]; !reflect.DeepEqual(got, good) {
		t.Fatalf("got %v, want %v", got, good)
	}
	c.Close()
	if s := a.Stats(); s.Malformed != 10 || s.Received != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestTCPDropsOutgoingMessageAboveCap(t *testing.T) {
	checkNoLeaks(t)
	b := listen(t, testConfig("b"))
	cfg := testConfig("a")
	cfg.MaxFrameBytes = 4096
	cfg.Peers = map[hasup.NodeID]string{"b": b.Addr()}
	a := listen(t, cfg)
	big := msg("a", "b", 1)
	big.Data = make([]byte, 5000)
	a.Send(big)
	a.Send(msg("a", "b", 2))
	if got := receive(t, b.Receive(), 1)[0]; got.Op != 2 {
		t.Fatalf("got op %d, want 2 (op 1 is above the cap)", got.Op)
	}
	waitFor(t, "Sent to be counted", func() bool { return a.Stats().Sent == 1 })
	if s := a.Stats(); s.DroppedSend != 1 {
		t.Errorf("stats %+v, want DroppedSend 1", s)
	}
}

func TestTCPSendDropsWhenQueueFullOrPeerUnknown(t *testing.T) {
	checkNoLeaks(t)
	cfg := testConfig("a")
	cfg.QueueLen = 4
	cfg.Peers = map[hasup.NodeID]string{"b": freeAddr(t)} // down: the sender holds one message and the queue fills
	a := listen(t, cfg)
	for op := uint64(1); op <= 20; op++ {
		a.Send(msg("a", "b", op))
	}
	a.Send(msg("a", "nobody", 1))
	// At most QueueLen+1 messages to b are held (QueueLen queued, one in the
	// sender's hand), so at least 15 drop, plus the one to an unknown peer.
	if s := a.Stats(); s.DroppedSend < 16 || s.DroppedSend > 17 || s.Sent != 0 {
		t.Errorf("stats %+v, want 16 or 17 dropped and none sent", s)
	}
}

func TestTCPReceiveDropsWhenChannelFull(t *testing.T) {
	checkNoLeaks(t)
	cfg := testConfig("b")
	cfg.QueueLen = 3
	b := listen(t, cfg)
	a := listen(t, testConfig("a"))
	a.SetPeer("b", b.Addr())
	for op := uint64(1); op <= 10; op++ {
		a.Send(msg("a", "b", op))
	}
	waitFor(t, "every message to arrive", func() bool { s := b.Stats(); return s.Received+s.DroppedRecv == 10 })
	if s := b.Stats(); s.Received != 3 || s.DroppedRecv != 7 {
		t.Errorf("stats %+v, want 3 received and 7 dropped", s)
	}
	for i, got := range receive(t, b.Receive(), 3) {
		if got.Op != uint64(i+1) {
			t.Errorf("message %d has op %d", i, got.Op)
		}
	}
}

func TestTCPCloseIsPromptAndStopsEverything(t *testing.T) {
	checkNoLeaks(t)
	b := listen(t, testConfig("b"))
	cfg := testConfig("a")
	cfg.BackoffMin, cfg.BackoffMax = time.Second, 10*time.Second // a down peer will be deep in a backoff wait
	cfg.Peers = map[hasup.NodeID]string{"b": b.Addr(), "down": freeAddr(t)}
	a := listen(t, cfg)
	a.Send(msg("a", "down", 1))
	for op := uint64(1); op <= 20; op++ {
		a.Send(msg("a", "b", op))
	}
	b.SetPeer("a", a.Addr())
	b.Send(msg("b", "a", 1))
	receive(t, a.Receive(), 1)
	receive(t, b.Receive(), 20)
	idle := rawConn(t, a, hello("x")[:3]) // an incoming connection stuck mid-hello

	start := time.Now()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Close took %v", d)
	}
	expectClosedByPeer(t, idle)
	if _, ok := <-a.Receive(); ok {
		t.Error("Receive channel open after Close")
	}
	a.Send(msg("a", "b", 21)) // must not panic
	a.SetPeer("c", b.Addr())  // must not start anything
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := net.Dial("tcp", a.Addr()); err == nil {
		t.Error("still listening after Close")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestListenRejectsBadConfig(t *testing.T) {
	for _, mutate := range []func(*Config){
		func(c *Config) { c.ID = "" },
		func(c *Config) { c.Listen = "" },
		func(c *Config) { c.QueueLen = -1 },
		func(c *Config) { c.MaxFrameBytes = wire.MaxFrameBytes + 1 },
		func(c *Config) { c.BackoffMin, c.BackoffMax = time.Second, time.Millisecond },
		func(c *Config) { c.Peers = map[hasup.NodeID]string{"b": ""} },
	} {
		cfg := testConfig("a")
		mutate(&cfg)
		if _, err := Listen(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Listen(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
	if err := testConfig("a").Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}
