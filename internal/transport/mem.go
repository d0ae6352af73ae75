package transport

import (
	"fmt"
	"sync"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/internal/wire"
)

// defaultQueueLen is the queue length used when none is given.
const defaultQueueLen = 1024

// MemNetwork connects in-memory transports, for tests. Every node joins one
// MemNetwork; Send delivers straight onto the receiver's channel, so
// messages between a pair arrive in the order they were sent. Cut and Heal
// model partitions, including one-way ones.
//
// Each message goes through the wire codec on the way, so a receiver gets
// exactly what TCP would give it (copies, empty slices as nil) and never
// shares memory with the sender.
type MemNetwork struct {
	mu    sync.Mutex
	nodes map[hasup.NodeID]*Mem
	cuts  map[[2]hasup.NodeID]bool // directed pairs whose messages are lost
}

// NewMemNetwork returns an empty network.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{nodes: map[hasup.NodeID]*Mem{}, cuts: map[[2]hasup.NodeID]bool{}}
}

// Join adds node id to the network with a Receive channel of queueLen
// messages (<= 0 means 1024). A node may join again after its Mem is
// closed, as a restarted process would. Joining an id that is already open
// panics: two nodes with one name is a broken test.
func (n *MemNetwork) Join(id hasup.NodeID, queueLen int) *Mem {
	if queueLen <= 0 {
		queueLen = defaultQueueLen
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.nodes[id]; ok {
		panic(fmt.Sprintf("transport: node %s joined the MemNetwork twice", id))
	}
	m := &Mem{id: id, net: n, recv: make(chan ensemble.Message, queueLen)}
	n.nodes[id] = m
	return m
}

// Cut makes the network lose every message from -> to until Heal. The
// reverse direction is unaffected.
func (n *MemNetwork) Cut(from, to hasup.NodeID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cuts[[2]hasup.NodeID{from, to}] = true
}

// Heal removes every cut.
func (n *MemNetwork) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.cuts)
}

// Mem is one node's Transport on a MemNetwork.
type Mem struct {
	id    hasup.NodeID
	net   *MemNetwork
	recv  chan ensemble.Message
	stats counters
	once  sync.Once
}

var _ Transport = (*Mem)(nil)

// Send delivers m to m.To's Receive channel without blocking. A message to
// a node that has not joined (or has closed), or sent after Close, is
// counted in the sender's DroppedSend. A message on a cut pair is lost
// silently, as a network would lose it (it still counts as Sent). A full
// Receive channel counts in the receiver's DroppedRecv, and a message whose
// From is not the sender in the receiver's Malformed, as over TCP.
func (m *Mem) Send(msg ensemble.Message) {
	c, err := wire.DecodeMessage(wire.AppendMessage(nil, msg))
	if err != nil {
		panic(fmt.Sprintf("transport: wire cannot decode its own encoding of %v: %v", msg, err))
	}
	n := m.net
	n.mu.Lock()
	defer n.mu.Unlock()
	to := n.nodes[msg.To]
	if n.nodes[m.id] != m || to == nil {
		m.stats.droppedSend.Add(1)
		return
	}
	m.stats.sent.Add(1)
	switch {
	case n.cuts[[2]hasup.NodeID{m.id, msg.To}]:
	case msg.From != m.id:
		to.stats.malformed.Add(1)
	default:
		select {
		case to.recv <- c:
			to.stats.received.Add(1)
		default:
			to.stats.droppedRecv.Add(1)
		}
	}
}

// Receive returns the channel of incoming messages; it is closed by Close.
func (m *Mem) Receive() <-chan ensemble.Message { return m.recv }

// Close leaves the network and closes the Receive channel. It is
// idempotent and always returns nil.
func (m *Mem) Close() error {
	m.once.Do(func() {
		n := m.net
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.nodes[m.id] == m {
			delete(n.nodes, m.id)
		}
		close(m.recv) // safe: every send to recv happens under n.mu while m is joined
	})
	return nil
}

// Stats returns the node's counters.
func (m *Mem) Stats() Stats { return m.stats.snapshot() }
