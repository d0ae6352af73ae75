package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/internal/wire"
)

// ErrInvalidConfig is wrapped by every error Validate and Listen return for
// a bad Config.
var ErrInvalidConfig = errors.New("transport: invalid config")

// Config configures a TCP transport. A zero numeric field (and a nil
// Logger) means its default, as given by DefaultConfig.
type Config struct {
	// ID is this node's ID, sent in the hello frame of every outgoing
	// connection so that the receiver can attribute it. Required.
	ID hasup.NodeID
	// Listen is the host:port to accept connections on, e.g.
	// "127.0.0.1:0" for an ephemeral port. Required.
	Listen string
	// Peers maps peer IDs to their host:port. Send drops messages to a peer
	// not listed here; SetPeer adds or moves a peer later. Listen copies
	// the map.
	Peers map[hasup.NodeID]string
	// QueueLen is the length, in messages, of each peer's send queue and of
	// the Receive channel. Default 1024: enough for a burst of PREPAREs to
	// many ensembles; beyond that the protocol's retransmission is cheaper
	// than unbounded memory.
	QueueLen int
	// MaxFrameBytes caps a frame's payload, in bytes, both ways: a larger
	// incoming frame is malformed and a larger outgoing message is dropped.
	// At most, and by default, wire.MaxFrameBytes (64 MiB). Every node
	// should use the same value.
	MaxFrameBytes int
	// Seed seeds the reconnect backoff jitter (each peer draws from its own
	// source, derived from Seed and the peer ID), so that runs replay.
	Seed uint64
	// Logger receives connection events. Default: discard.
	Logger *slog.Logger
	// DialTimeout bounds one dial and, with TLS, the handshake that
	// follows it; on an incoming connection it bounds the handshake and
	// the hello frame together. Default 1s: far above a LAN round trip and
	// a TLS 1.3 handshake, short enough that a dead address is retried
	// soon and a silent client does not hold a connection.
	DialTimeout time.Duration
	// BackoffMin and BackoffMax bound the wait between reconnect attempts
	// to a peer; it doubles per failure from BackoffMin up to BackoffMax,
	// and a random half of it is jitter so that nodes do not redial in
	// step. Defaults 10ms (a restarted peer is found fast) and 1s (a dead
	// peer costs about one dial a second).
	BackoffMin, BackoffMax time.Duration
	// TLS turns on mutual TLS 1.3 when set; nil, the default, is plain
	// TCP (for a trusted network, and for tests). Every node of a cluster
	// must agree: a plain node and a TLS node refuse each other.
	//
	// With TLS each end verifies the other's certificate against
	// TLS.CAFile, and certificates are bound to node IDs: the dialer
	// accepts the server only if a DNS SAN of its certificate equals the
	// peer ID it dialed, and the acceptor accepts the hello's node ID only
	// if a DNS SAN of the client certificate equals it (exactly; the
	// CommonName is ignored). A refused handshake or identity is counted
	// in Stats.Rejected and logged at warn.
	TLS *TLSConfig
}

// DefaultConfig returns a Config with every default filled in; ID and Listen
// are left for the caller.
func DefaultConfig() Config {
	return Config{
		QueueLen:      defaultQueueLen,
		MaxFrameBytes: wire.MaxFrameBytes,
		Logger:        slog.New(slog.DiscardHandler),
		DialTimeout:   time.Second,
		BackoffMin:    10 * time.Millisecond,
		BackoffMax:    time.Second,
	}
}

// Validate reports whether c, with defaults in its zero fields, is usable.
// With TLS set it also reads the certificate, key and CA files and checks
// them as Listen does.
func (c Config) Validate() error {
	c, err := c.resolve()
	if err != nil {
		return err
	}
	_, err = c.TLS.load(c.ID)
	return err
}

// resolve returns a copy of c with defaults filled in, or the first problem.
func (c Config) resolve() (Config, error) {
	d := DefaultConfig()
	if c.QueueLen == 0 {
		c.QueueLen = d.QueueLen
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = d.MaxFrameBytes
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = d.DialTimeout
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = d.BackoffMin
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = max(d.BackoffMax, c.BackoffMin)
	}
	c.Peers = maps.Clone(c.Peers)
	var problem string
	switch {
	case c.ID == "":
		problem = "empty ID"
	case c.Listen == "":
		problem = "empty Listen address"
	case c.QueueLen < 0:
		problem = fmt.Sprintf("QueueLen %d < 0", c.QueueLen)
	case c.MaxFrameBytes < 0 || c.MaxFrameBytes > wire.MaxFrameBytes:
		problem = fmt.Sprintf("MaxFrameBytes %d outside [1, %d]", c.MaxFrameBytes, wire.MaxFrameBytes)
	case c.DialTimeout < 0:
		problem = fmt.Sprintf("DialTimeout %v < 0", c.DialTimeout)
	case c.BackoffMin < 0 || c.BackoffMax < c.BackoffMin:
		problem = fmt.Sprintf("backoff [%v, %v] is not a range of positive durations", c.BackoffMin, c.BackoffMax)
	}
	for id, addr := range c.Peers {
		if problem == "" && (id == "" || addr == "") {
			problem = fmt.Sprintf("peer %q at %q: empty ID or address", id, addr)
		}
	}
	if problem != "" {
		return Config{}, fmt.Errorf("%w: %s", ErrInvalidConfig, problem)
	}
	return c, nil
}
