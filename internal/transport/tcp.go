package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/internal/wire"
)

// Frame types. Every connection starts with one hello frame, whose payload
// is the dialing node's ID, then carries message frames, each payload one
// wire.AppendMessage encoding. Connections are one-way: the dialer writes,
// the acceptor reads.
const (
	frameHello   byte = 1
	frameMessage byte = 2
)

const (
	// batchMax bounds the messages written between two flushes, so that a
	// busy queue still reaches the socket regularly.
	batchMax = 64
	// ioBufferBytes sizes each connection's bufio reader and writer.
	ioBufferBytes = 64 << 10
	// keepBufferBytes: an encode buffer that grew beyond this for one large
	// message is released rather than kept for the connection's life.
	keepBufferBytes = 1 << 20
)

// TCP is the production Transport: one outgoing connection per peer, which
// carries every ensemble's messages, and any number of incoming ones.
//
// Goroutines, all counted in wg and all stopped by Close: one accept loop;
// one reader per incoming connection; one sender per peer (it dials,
// redials with capped, jittered exponential backoff, and writes its bounded
// queue); one watcher per outgoing connection, which reads it only to learn
// promptly that the peer closed it.
//
// Rejected alternative: sending on the peer's own incoming connection (one
// connection per pair rather than two). It saves a socket but makes the two
// ends race to decide which connection survives a simultaneous dial.
type TCP struct {
	cfg   Config
	tls   *tlsState // nil: plain TCP
	log   *slog.Logger
	ln    net.Listener
	recv  chan ensemble.Message
	stats counters
	wg    sync.WaitGroup
	// ctx is the transport's lifetime, cancelled by Close. It is kept here,
	// against the habit, only to abort dials and backoff waits inside the
	// transport's own goroutines; no caller's context is stored.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.RWMutex
	closed bool // set by Close; no goroutine or connection is added after
	peers  map[hasup.NodeID]*peer
	conns  map[net.Conn]struct{} // every open connection, closed by Close

	closeOnce sync.Once
}

// peer is the sending side toward one node.
type peer struct {
	id    hasup.NodeID
	queue chan ensemble.Message
	addr  string   // guarded by TCP.mu
	conn  net.Conn // current outgoing connection or nil; guarded by TCP.mu
}

var _ Transport = (*TCP)(nil)

// Listen validates cfg, listens on cfg.Listen and returns the running
// transport. It does not dial until there is something to send.
func Listen(cfg Config) (*TCP, error) {
	cfg, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	secure, err := cfg.TLS.load(cfg.ID)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("transport: listen on %s: %w", cfg.Listen, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &TCP{
		cfg:    cfg,
		tls:    secure,
		log:    cfg.Logger.With("node", cfg.ID),
		ln:     ln,
		recv:   make(chan ensemble.Message, cfg.QueueLen),
		ctx:    ctx,
		cancel: cancel,
		peers:  map[hasup.NodeID]*peer{},
		conns:  map[net.Conn]struct{}{},
	}
	for id, addr := range cfg.Peers {
		t.SetPeer(id, addr)
	}
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// Addr returns the address the transport listens on, with the port the
// system chose when Listen asked for port 0.
func (t *TCP) Addr() string { return t.ln.Addr().String() }

// SetPeer adds peer id at addr, or moves it there: the current connection
// to it, if any, is closed and the next message dials addr. Ignored after
// Close.
func (t *TCP) SetPeer(id hasup.NodeID, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	if p := t.peers[id]; p != nil {
		if p.addr != addr {
			p.addr = addr
			if p.conn != nil {
				p.conn.Close() // the sender sees a write error and redials
			}
		}
		return
	}
	p := &peer{id: id, addr: addr, queue: make(chan ensemble.Message, t.cfg.QueueLen)}
	t.peers[id] = p
	t.wg.Add(1)
	go t.runPeer(p)
}

// Send queues m for m.To without blocking. It drops and counts m if m.To is
// not a known peer, its queue is full, or the transport is closed.
func (t *TCP) Send(m ensemble.Message) {
	t.mu.RLock()
	p := t.peers[m.To]
	closed := t.closed
	t.mu.RUnlock()
	if p == nil || closed {
		t.stats.droppedSend.Add(1)
		return
	}
	select {
	case p.queue <- m:
	default:
		t.stats.droppedSend.Add(1)
	}
}

// Receive returns the channel of incoming messages; Close closes it once
// every goroutine has stopped.
func (t *TCP) Receive() <-chan ensemble.Message { return t.recv }

// Stats returns the transport's counters.
func (t *TCP) Stats() Stats { return t.stats.snapshot() }

// Close stops listening, closes every connection, waits for every goroutine
// to stop and closes the Receive channel. Queued messages are dropped.
// Later calls return nil.
func (t *TCP) Close() error {
	var err error
	t.closeOnce.Do(func() {
		t.cancel()
		if e := t.ln.Close(); e != nil {
			err = fmt.Errorf("transport: close listener: %w", e)
		}
		t.mu.Lock()
		t.closed = true
		for c := range t.conns {
			c.Close()
		}
		t.mu.Unlock()
		t.wg.Wait()
		close(t.recv)
	})
	return err
}

// track registers a new connection so that Close will close it, and counts
// the goroutine about to serve it. After Close it closes c and returns
// false.
func (t *TCP) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		c.Close()
		return false
	}
	t.conns[c] = struct{}{}
	t.wg.Add(1)
	return true
}

// untrack closes c and forgets it.
func (t *TCP) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	for _, p := range t.peers {
		if p.conn == c {
			p.conn = nil
		}
	}
	t.mu.Unlock()
	c.Close()
}

// wait waits d, or less if the transport closes; it reports whether the
// transport is still open.
func (t *TCP) wait(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-t.ctx.Done():
		return false
	}
}

// --- sending ---

// runPeer is the sender toward p: it takes messages off p's queue, dials
// when it has one to send and no connection, and writes them in batches.
// While it cannot connect it holds the first message and backs off; the
// queue fills and Send drops the overflow.
func (t *TCP) runPeer(p *peer) {
	defer t.wg.Done()
	s := sender{t: t, p: p, rng: rand.New(rand.NewPCG(t.cfg.Seed, idHash(p.id)))}
	defer s.disconnect()
	for {
		var m ensemble.Message
		select {
		case <-t.ctx.Done():
			return
		case m = <-p.queue:
		}
		if !s.connect() {
			return
		}
		if err := s.writeBatch(m); err != nil {
			t.log.Debug("send failed", "peer", p.id, "err", err)
			s.disconnect()
			s.failures++
			continue
		}
		s.failures = 0
	}
}

// sender is runPeer's state.
type sender struct {
	t        *TCP
	p        *peer
	rng      *rand.Rand
	failures int // consecutive failed dials or writes
	conn     net.Conn
	w        *bufio.Writer
	payload  []byte // encode buffers, reused
	frame    []byte
}

// connect dials until it has a connection with the hello frame buffered,
// backing off between attempts; false means the transport closed.
func (s *sender) connect() bool {
	t := s.t
	for s.conn == nil {
		if s.failures > 0 && !t.wait(s.backoff()) {
			return false
		}
		t.mu.RLock()
		addr := s.p.addr
		t.mu.RUnlock()
		c, conn, err := t.dial(s.p.id, addr)
		if err != nil {
			if t.ctx.Err() != nil {
				return false
			}
			s.failures++
			t.log.Debug("dial failed", "peer", s.p.id, "addr", addr, "failures", s.failures, "err", err)
			continue
		}
		if !t.track(c) {
			return false
		}
		t.mu.Lock()
		s.p.conn = c
		t.mu.Unlock()
		go t.watch(c, conn)
		t.log.Debug("connected", "peer", s.p.id, "addr", addr)
		s.conn, s.w = c, bufio.NewWriterSize(conn, ioBufferBytes)
		s.frame = wire.AppendFrame(s.frame[:0], frameHello, []byte(t.cfg.ID))
		s.w.Write(s.frame) // an error sticks in w and surfaces at Flush
	}
	return true
}

// dial connects to peer id at addr and, with TLS, runs the handshake. It
// returns raw, the TCP connection, which is tracked and closed to end the
// connection (closing a TLS connection could block on its close_notify),
// and conn, the one to read and write: raw itself without TLS.
func (t *TCP) dial(id hasup.NodeID, addr string) (raw, conn net.Conn, err error) {
	d := net.Dialer{Timeout: t.cfg.DialTimeout}
	raw, err = d.DialContext(t.ctx, "tcp", addr)
	if err != nil || t.tls == nil {
		return raw, raw, err
	}
	conn, err = t.clientHandshake(raw, id, addr)
	if err != nil {
		raw.Close()
		return nil, nil, err
	}
	return raw, conn, nil
}

func (s *sender) disconnect() {
	if s.conn != nil {
		s.t.untrack(s.conn)
		s.conn, s.w = nil, nil
	}
}

// backoff returns the wait before the next dial: BackoffMin doubled per
// consecutive failure, capped at BackoffMax, of which a random half is
// jitter ("equal jitter").
func (s *sender) backoff() time.Duration {
	c := s.t.cfg
	d := c.BackoffMax
	if shift := s.failures - 1; shift < 30 && c.BackoffMin<<shift < c.BackoffMax {
		d = c.BackoffMin << shift
	}
	return d/2 + time.Duration(s.rng.Int64N(int64(d/2)+1))
}

// writeBatch writes m and whatever else is queued, up to batchMax messages,
// then flushes.
func (s *sender) writeBatch(m ensemble.Message) error {
	written := uint64(0)
	for i := 1; ; i++ {
		if s.write(m) {
			written++
		}
		if i == batchMax {
			break
		}
		var more bool
		select {
		case m = <-s.p.queue:
			more = true
		default:
		}
		if !more {
			break
		}
	}
	if err := s.w.Flush(); err != nil {
		return err
	}
	s.t.stats.sent.Add(written)
	return nil
}

// write buffers one message frame; a message above the frame cap is
// dropped, counted, and reported false.
func (s *sender) write(m ensemble.Message) bool {
	t := s.t
	s.payload = wire.AppendMessage(s.payload[:0], m)
	if len(s.payload) > t.cfg.MaxFrameBytes {
		t.stats.droppedSend.Add(1)
		t.log.Warn("message above frame cap dropped", "peer", s.p.id, "msg", m.String(), "bytes", len(s.payload), "max", t.cfg.MaxFrameBytes)
		return false
	}
	s.frame = wire.AppendFrame(s.frame[:0], frameMessage, s.payload)
	s.w.Write(s.frame) // an error sticks in w and surfaces at Flush
	if cap(s.frame) > keepBufferBytes {
		s.payload, s.frame = nil, nil
	}
	return true
}

// watch reads conn, an outgoing connection on which the peer never writes
// (but a TLS alert), so that its raw connection c is closed as soon as the
// peer closes its end or refuses it; the sender's next write then fails
// fast and it redials.
func (t *TCP) watch(c, conn net.Conn) {
	defer t.wg.Done()
	io.Copy(io.Discard, conn)
	c.Close()
}

func idHash(id hasup.NodeID) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64()
}

// --- receiving ---

func (t *TCP) acceptLoop() {
	defer t.wg.Done()
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Such as running out of file descriptors: wait, then retry.
			t.log.Warn("accept failed", "err", err)
			if !t.wait(t.cfg.BackoffMin) {
				return
			}
			continue
		}
		if !t.track(c) {
			return
		}
		go t.serve(c)
	}
}

// serve reads one incoming connection: the TLS handshake if on, a hello,
// then messages onto the Receive channel, until the connection ends or
// breaks a rule. It runs in the connection's own goroutine, so that a slow
// or silent client never holds up the accept loop.
func (t *TCP) serve(c net.Conn) {
	defer t.wg.Done()
	defer t.untrack(c)
	c.SetDeadline(time.Now().Add(t.cfg.DialTimeout)) // handshake and hello
	conn, cert, ok := t.serverHandshake(c)
	if !ok {
		return
	}
	r := bufio.NewReaderSize(conn, ioBufferBytes)
	from, err := t.readHello(r)
	if err != nil {
		t.connError(c, "", err)
		return
	}
	if !t.checkIdentity(c, cert, from) {
		return
	}
	c.SetDeadline(time.Time{})
	for {
		m, err := t.readMessage(r, from)
		if err != nil {
			t.connError(c, from, err)
			return
		}
		select {
		case t.recv <- m:
			t.stats.received.Add(1)
		default:
			t.stats.droppedRecv.Add(1)
		}
	}
}

func (t *TCP) readHello(r io.Reader) (hasup.NodeID, error) {
	typ, p, err := wire.ReadFrame(r, t.cfg.MaxFrameBytes)
	switch {
	case err != nil:
		return "", err
	case typ != frameHello:
		return "", fmt.Errorf("%w: frame type %d, want hello", wire.ErrMalformed, typ)
	case len(p) == 0:
		return "", fmt.Errorf("%w: hello with empty node ID", wire.ErrMalformed)
	}
	return hasup.NodeID(p), nil
}

func (t *TCP) readMessage(r io.Reader, from hasup.NodeID) (ensemble.Message, error) {
	typ, p, err := wire.ReadFrame(r, t.cfg.MaxFrameBytes)
	if err != nil {
		return ensemble.Message{}, err
	}
	if typ != frameMessage {
		return ensemble.Message{}, fmt.Errorf("%w: frame type %d, want message", wire.ErrMalformed, typ)
	}
	m, err := wire.DecodeMessage(p)
	switch {
	case err != nil:
		return m, err
	case m.From != from:
		return m, fmt.Errorf("%w: message from %s on the connection of %s", wire.ErrMalformed, m.From, from)
	case m.To != t.cfg.ID:
		return m, fmt.Errorf("%w: message to %s arrived at %s", wire.ErrMalformed, m.To, t.cfg.ID)
	}
	return m, nil
}

// connError logs why an incoming connection ends and counts it if the
// peer broke the format. A stream cut inside a frame is a lost connection
// (a peer that crashed mid-write), not a malformed one.
func (t *TCP) connError(c net.Conn, from hasup.NodeID, err error) {
	if errors.Is(err, wire.ErrMalformed) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.stats.malformed.Add(1)
		t.log.Warn("malformed input, connection dropped", "peer", from, "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	t.log.Debug("incoming connection ended", "peer", from, "remote", c.RemoteAddr().String(), "err", err)
}
