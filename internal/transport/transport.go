// Package transport moves ensemble.Message values between nodes: an
// in-memory network for tests (MemNetwork) and a TCP transport for
// production (TCP). Both implement Transport.
//
// Design notes:
//
//   - Delivery is best effort, as the VRR protocol assumes: a message may be
//     lost (full queue, broken connection, partition) and the protocol
//     retransmits. So Send never blocks its caller, every queue is bounded,
//     and every drop is counted in Stats rather than reported as an error.
//   - Within one connection messages arrive in the order they were sent;
//     across a reconnect, messages in flight may be lost but are never
//     reordered with later ones.
//   - One connection per peer carries the messages of every ensemble
//     (DESIGN.md, "Many ensembles per node"), framed by package wire.
//   - Optional mutual TLS 1.3 (Config.TLS; off by default) authenticates
//     both ends against one CA bundle and binds certificates to node IDs:
//     the dialer sets ServerName to the peer ID and accepts only a server
//     certificate with that ID as a DNS SAN, so a wrong address cannot
//     impersonate the peer; the acceptor requires a client certificate
//     and drops the connection unless a DNS SAN equals the ID in the
//     hello. Node IDs are not secret, so the hello is kept rather than
//     derived from the certificate; the certificate only vouches for it.
//     Handshakes run in the connection's goroutine, bounded by
//     DialTimeout; refusals are counted in Stats.Rejected, apart from
//     Malformed, since they point at configuration or an attacker rather
//     than a buggy peer. Files are read once, at Listen: a renewed
//     certificate needs a restart (no reload).
package transport

import (
	"sync/atomic"

	"github.com/hasup/hasup/ensemble"
)

// Transport moves messages between nodes. Send never blocks: a message for a
// peer whose bounded queue is full is dropped and counted (the protocol
// retransmits). Receive's channel is bounded too; when full, incoming
// messages are dropped and counted. Close stops everything.
//
// Send and Receive may be called from any goroutine. After Close, Send drops
// every message and the Receive channel is closed.
type Transport interface {
	Send(m ensemble.Message) // routed by m.To
	Receive() <-chan ensemble.Message
	Close() error
}

// Stats are counters for monitoring. Each only grows.
type Stats struct {
	Sent        uint64 // messages handed to the network (written to a connection, or accepted by a MemNetwork)
	Received    uint64 // messages put on the Receive channel
	DroppedSend uint64 // messages Send dropped: peer unknown, queue full, above the frame cap, or sent after Close
	DroppedRecv uint64 // incoming messages dropped because the Receive channel was full
	Malformed   uint64 // incoming frames or messages rejected as malformed (the connection is dropped)
	Rejected    uint64 // connections refused by TLS, at either end: a failed handshake (not one the peer closed before its first byte), or a certificate that does not name the node (the connection is dropped)
}

// counters is the concurrent form of Stats.
type counters struct {
	sent, received, droppedSend, droppedRecv, malformed, rejected atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Sent:        c.sent.Load(),
		Received:    c.received.Load(),
		DroppedSend: c.droppedSend.Load(),
		DroppedRecv: c.droppedRecv.Load(),
		Malformed:   c.malformed.Load(),
		Rejected:    c.rejected.Load(),
	}
}
