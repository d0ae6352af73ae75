// Package host runs a node's local replicas for real: it drives every
// ensemble.Replica on the node from one goroutine, one node-wide ticker and
// the transport, and executes their Readies in the order the protocol needs:
// one store transaction (group commit) for the writes of every replica that
// has any, then the messages, then the answers to waiting callers, then
// Advance. It is the thin runtime around the pure core; all protocol
// decisions stay in package ensemble.
//
// Callers talk to the loop through a bounded request channel; every blocking
// call takes a context and gives up when it ends.
package host

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/fsm"
	"github.com/hasup/hasup/internal/store"
	"github.com/hasup/hasup/internal/transport"
)

// Errors.
var (
	// ErrNotFound: no local replica of that ensemble.
	ErrNotFound = errors.New("host: no local replica of that ensemble")
	// ErrExists: the ensemble already runs here.
	ErrExists = errors.New("host: ensemble already runs on this node")
	// ErrStopped: the node's loop is not running.
	ErrStopped = errors.New("host: node stopped")
)

// Config configures a node.
type Config struct {
	ID        hasup.NodeID
	Store     *store.Store
	Transport transport.Transport
	// TickInterval is the length of a protocol tick. Default 10ms.
	TickInterval time.Duration
	// Replica is the template for every replica's tuning (identity fields
	// are filled in per ensemble). Default ensemble.DefaultConfig() with
	// QuiesceTicks DefaultQuiesceTicks.
	Replica ensemble.Config
	// PingTicks: ticks between the node's heartbeats to each peer node (one
	// per node pair, whatever the number of ensembles). Default 5.
	PingTicks int
	// SilenceTicks: a peer node not heard from (any message) for this many
	// ticks has its quiescent ensembles woken here, so that their ordinary
	// timeouts run. Default 30: several lost heartbeats.
	SilenceTicks int
	// RefreshTicks: a replica quiescent for this long is woken anyway,
	// which bounds how long one that missed a message stays behind
	// (ensemble/quiesce.go). Default 3000 (30 s at 10ms ticks).
	RefreshTicks int
	// BatchMax bounds the events (messages, calls) the loop takes before
	// one group commit. Default 4096.
	BatchMax int
	// Seed is mixed into the node's randomness (view-change timeouts,
	// session IDs, incarnations, recovery nonces), together with fresh
	// entropy at every New: those IDs must differ between two runs of the
	// same node, or a restarted node would reuse its old client session
	// and have new requests answered from the old ones' replies.
	Seed uint64
	// Clock returns Unix nanoseconds, the time a primary gives the FSM.
	// Default time.Now.
	Clock  func() int64
	Logger *slog.Logger
}

// DefaultQuiesceTicks is the idle time, in ticks, after which the host's
// ensembles quiesce unless Config.Replica says otherwise.
const DefaultQuiesceTicks = 10

// Spec says how to start a local replica.
type Spec struct {
	Name    hasup.EnsembleName
	Members []hasup.NodeID
	Epoch   uint64
	FSM     fsm.FSM
	// Bootstrap: a brand-new ensemble (ignored if the store holds state).
	Bootstrap bool
	// Join: a new member added by a reconfiguration (see ensemble.Config).
	Join bool
	// NoQuiesce keeps the ensemble heartbeating while idle, so that its
	// primary holds its lease continuously (singleton workers need that).
	NoQuiesce bool
	// LeaseTicks, DriftMarginTicks and ViewChangeTicks, if not 0, replace
	// the template's (a worker's lease must outlast its stop grace). Every
	// member must use the same values.
	LeaseTicks, DriftMarginTicks, ViewChangeTicks int
}

// Node runs the local replicas of one node.
type Node struct {
	cfg      Config
	rng      *rand.Rand
	reqs     chan func()
	done     chan struct{}
	replicas map[hasup.EnsembleName]*local
	nextID   uint64
	waiters  map[uint64]waiter
	loop     loopState
	fwd      *forwarder
}

// waiter is a caller waiting for a reply of ensemble name.
type waiter struct {
	ch   chan ensemble.Reply
	name hasup.EnsembleName
}

type local struct {
	name    hasup.EnsembleName
	r       *ensemble.Replica
	session uint64 // this node's client session in the ensemble (0: none yet)
	request uint64
	// Loop bookkeeping (loop.go).
	touched bool           // listed in loopState.touched
	active  int            // index in loopState.active, or -1 while quiet
	quietAt uint64         // node tick when it went quiet
	clockAt uint64         // node tick its clock has caught up with while quiet
	members []hasup.NodeID // its members when it went quiet
	awake   bool           // it was not quiescent since it last went quiet
}

// New returns a node; Run starts it.
func New(cfg Config) (*Node, error) {
	if cfg.ID == "" || cfg.Store == nil || cfg.Transport == nil {
		return nil, errors.New("host: config needs ID, Store and Transport")
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = 10 * time.Millisecond
	}
	if cfg.Replica.ViewChangeTicks == 0 {
		cfg.Replica = ensemble.DefaultConfig()
		cfg.Replica.QuiesceTicks = DefaultQuiesceTicks
		// One group commit serves many clients: a batch as large as a
		// busy ensemble's backlog saves messages and log records.
		cfg.Replica.BatchOps = 256
	}
	cfg.PingTicks = cmp.Or(cfg.PingTicks, 5)
	cfg.SilenceTicks = cmp.Or(cfg.SilenceTicks, 30)
	cfg.RefreshTicks = cmp.Or(cfg.RefreshTicks, 3000)
	cfg.BatchMax = cmp.Or(cfg.BatchMax, 4096)
	if cfg.PingTicks < 1 || cfg.SilenceTicks <= cfg.PingTicks || cfg.RefreshTicks < 1 || cfg.BatchMax < 1 {
		return nil, fmt.Errorf("host: PingTicks %d, SilenceTicks %d (above PingTicks), RefreshTicks %d and BatchMax %d must be positive",
			cfg.PingTicks, cfg.SilenceTicks, cfg.RefreshTicks, cfg.BatchMax)
	}
	if cfg.Clock == nil {
		cfg.Clock = func() int64 { return time.Now().UnixNano() }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Node{
		cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed^entropy(), entropy())),
		reqs: make(chan func(), 1024), done: make(chan struct{}),
		replicas: map[hasup.EnsembleName]*local{}, waiters: map[uint64]waiter{},
		loop: loopState{heard: map[hasup.NodeID]uint64{}, silent: map[hasup.NodeID]bool{}},
		fwd:  newForwarder(),
	}, nil
}

// entropy returns 64 random bits from the operating system.
func entropy() uint64 {
	var b [8]byte
	if _, err := crand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("host: no entropy: %v", err)) // crypto/rand does not fail on Linux
	}
	return binary.LittleEndian.Uint64(b[:])
}

// do runs f on the loop and waits for it.
func (n *Node) do(ctx context.Context, f func()) error {
	finished := make(chan struct{})
	select {
	case n.reqs <- func() { f(); close(finished) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return ErrStopped
	}
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return ErrStopped
	}
}

// Start starts a local replica of spec.Name: from the store if it holds
// state, else as spec says (bootstrap, join, or, with neither, as a replica
// whose storage was lost, which recovers from its peers). Storage that
// fails its checksums is replaced by a "lost" marker and the replica
// recovers; until it has written state again, later starts recover too.
func (n *Node) Start(ctx context.Context, spec Spec) error {
	var err error
	if e := n.do(ctx, func() { err = n.start(spec) }); e != nil {
		return e
	}
	return err
}

func (n *Node) start(spec Spec) error {
	if n.replicas[spec.Name] != nil {
		return fmt.Errorf("start %s: %w", spec.Name, ErrExists)
	}
	cfg := n.cfg.Replica
	cfg.Ensemble, cfg.ID, cfg.Members, cfg.Epoch, cfg.FSM = spec.Name, n.cfg.ID, spec.Members, spec.Epoch, spec.FSM
	cfg.Rand, cfg.Clock = rand.New(rand.NewPCG(n.rng.Uint64(), n.rng.Uint64())), n.cfg.Clock
	d, err := n.cfg.Store.Load(spec.Name)
	switch {
	case errors.Is(err, store.ErrCorrupt):
		n.cfg.Logger.Warn("replica storage corrupt; recovering from peers", "ensemble", spec.Name, "err", err)
		if err := n.cfg.Store.MarkLost(spec.Name); err != nil {
			return err
		}
	case errors.Is(err, store.ErrLost):
		// Lost before and not recovered yet: recover (neither bootstrap
		// nor join: it may have acknowledged ops).
	case err != nil:
		return err
	case d != nil:
		cfg.Durable = d
	default:
		cfg.Bootstrap, cfg.Join = spec.Bootstrap, spec.Join
	}
	if spec.NoQuiesce {
		cfg.QuiesceTicks = 0
	}
	if spec.LeaseTicks > 0 {
		cfg.LeaseTicks, cfg.DriftMarginTicks, cfg.ViewChangeTicks = spec.LeaseTicks, spec.DriftMarginTicks, spec.ViewChangeTicks
	}
	r, err := ensemble.New(cfg)
	if err != nil {
		return fmt.Errorf("start %s: %w", spec.Name, err)
	}
	l := &local{name: spec.Name, r: r, active: len(n.loop.active), members: slices.Clone(spec.Members)}
	n.replicas[spec.Name] = l
	n.loop.active = append(n.loop.active, l)
	n.loop.peersDirty = true
	n.touch(l)
	return nil
}

// Stop stops a local replica (its durable state stays in the store).
func (n *Node) Stop(ctx context.Context, name hasup.EnsembleName) error {
	return n.do(ctx, func() {
		if l := n.replicas[name]; l != nil {
			n.deactivate(l)
			delete(n.replicas, name)
			n.loop.peersDirty = true
			n.failWaitersOf(name)
		}
	})
}

// Status returns a local replica's status.
func (n *Node) Status(ctx context.Context, name hasup.EnsembleName) (ensemble.Status, error) {
	var st ensemble.Status
	err := ErrNotFound
	if e := n.do(ctx, func() {
		if l := n.replicas[name]; l != nil {
			n.catchUp(l)
			st, err = l.r.Status(), nil
		}
	}); e != nil {
		return st, e
	}
	return st, err
}

// Propose orders cmd in the ensemble, at most once (the node keeps a client
// session per ensemble), and returns the FSM's result. The local replica
// must be the primary (ErrNotPrimary otherwise; forwarding is the
// supervisor's job). After ErrViewChanged the command may or may not run.
func (n *Node) Propose(ctx context.Context, name hasup.EnsembleName, cmd []byte) ([]byte, error) {
	rp, err := n.call(ctx, name, func(l *local, id uint64) error {
		if l.session == 0 {
			l.session = n.rng.Uint64()&^externalClient | 1
			if err := l.r.Propose(ensemble.Proposal{ID: id, Client: l.session}); err != nil {
				l.session = 0
				return err
			}
			return errRegistering
		}
		l.request++
		return l.r.Propose(ensemble.Proposal{ID: id, Client: l.session, Request: l.request, Cmd: cmd})
	})
	if errors.Is(err, errRegistering) {
		// The session is open now (or its registration failed): go again.
		if rp.Err != nil {
			n.resetSession(ctx, name)
			return nil, rp.Err
		}
		return n.Propose(ctx, name, cmd)
	}
	if err != nil {
		return nil, err
	}
	if errors.Is(rp.Err, ensemble.ErrSessionExpired) {
		n.resetSession(ctx, name)
	}
	return rp.Result, rp.Err
}

var errRegistering = errors.New("host: opening a session")

// externalClient marks the client IDs of outside clients (ProposeAs), so
// that they never collide with the nodes' own sessions, which have the
// bit clear.
const externalClient = 1 << 63

// ProposeAs orders cmd as request number request of an outside client's
// session (client, any number the client chose), so that a retry of the
// same request executes at most once: the ensemble's client table answers
// it from the reply it kept. Request 0 opens the session; its cmd may hold
// ensemble.RegisterFloor(n). A request of a session the ensemble does not
// know fails with ensemble.ErrSessionExpired.
func (n *Node) ProposeAs(ctx context.Context, name hasup.EnsembleName, client, request uint64, cmd []byte) ([]byte, error) {
	rp, err := n.call(ctx, name, func(l *local, id uint64) error {
		return l.r.Propose(ensemble.Proposal{ID: id, Client: client | externalClient, Request: request, Cmd: cmd})
	})
	if err != nil {
		return nil, err
	}
	return rp.Result, rp.Err
}

func (n *Node) resetSession(ctx context.Context, name hasup.EnsembleName) {
	_ = n.do(ctx, func() {
		if l := n.replicas[name]; l != nil {
			l.session = 0
		}
	})
}

// Read reads the FSM in the given mode (see ensemble.ReadMode). A lease
// read at a primary without a lease (say, one whose ensemble was
// quiescent) is served as a linearizable read instead.
func (n *Node) Read(ctx context.Context, name hasup.EnsembleName, q []byte, mode ensemble.ReadMode) ([]byte, error) {
	rp, err := n.call(ctx, name, func(l *local, id uint64) error {
		req := ensemble.ReadRequest{ID: id, Query: q, Mode: mode, MaxLagOps: ^uint64(0) >> 1, MaxLagTicks: ^uint64(0) >> 1}
		err := l.r.ReadAt(req)
		if errors.Is(err, ensemble.ErrNoLease) {
			req.Mode = ensemble.ReadLinearizable
			err = l.r.ReadAt(req)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return rp.Result, rp.Err
}

// call submits a request on the loop and waits for its reply. If submit
// returns errRegistering, the reply is waited for and errRegistering
// returned with it.
func (n *Node) call(ctx context.Context, name hasup.EnsembleName, submit func(*local, uint64) error) (ensemble.Reply, error) {
	ch := make(chan ensemble.Reply, 1)
	var serr error
	var id uint64
	if e := n.do(ctx, func() {
		l := n.replicas[name]
		if l == nil {
			serr = ErrNotFound
			return
		}
		n.nextID++
		id = n.nextID
		n.activate(l)
		n.touch(l)
		serr = submit(l, id)
		if serr == nil || errors.Is(serr, errRegistering) {
			n.waiters[id] = waiter{ch: ch, name: name}
		}
	}); e != nil {
		return ensemble.Reply{}, e
	}
	if serr != nil && !errors.Is(serr, errRegistering) {
		return ensemble.Reply{}, fmt.Errorf("ensemble %s: %w", name, serr)
	}
	select {
	case rp := <-ch:
		return rp, serr
	case <-ctx.Done():
		_ = n.do(context.Background(), func() { delete(n.waiters, id) })
		return ensemble.Reply{}, ctx.Err()
	}
}

// Statuses returns the status of every local replica, sorted by name.
func (n *Node) Statuses(ctx context.Context) ([]ensemble.Status, error) {
	var out []ensemble.Status
	err := n.do(ctx, func() {
		for _, name := range n.sortedNames() {
			l := n.replicas[name]
			n.catchUp(l)
			out = append(out, l.r.Status())
		}
	})
	return out, err
}

// Reconfigure asks the local replica, which must be the primary, to move
// the ensemble to members in its next epoch, and waits until the
// reconfiguration op commits (the new epoch then starts by itself).
func (n *Node) Reconfigure(ctx context.Context, name hasup.EnsembleName, members []hasup.NodeID) error {
	rp, err := n.call(ctx, name, func(l *local, id uint64) error { return l.r.Reconfigure(id, members) })
	if err != nil {
		return err
	}
	return rp.Err
}

// SuspectPrimary hints the local replica that its primary's node failed
// (see ensemble.Replica.SuspectPrimary).
func (n *Node) SuspectPrimary(ctx context.Context, name hasup.EnsembleName) error {
	err := ErrNotFound
	if e := n.do(ctx, func() {
		if l := n.replicas[name]; l != nil {
			n.activate(l)
			n.touch(l)
			l.r.SuspectPrimary()
			err = nil
		}
	}); e != nil {
		return e
	}
	return err
}

// Delete stops the local replica of name, if it runs, and deletes its
// durable state: the node no longer hosts the ensemble.
func (n *Node) Delete(ctx context.Context, name hasup.EnsembleName) error {
	var err error
	if e := n.do(ctx, func() {
		if l := n.replicas[name]; l != nil {
			n.deactivate(l)
			delete(n.replicas, name)
			n.loop.peersDirty = true
			n.failWaitersOf(name)
		}
		err = n.cfg.Store.Delete(name)
	}); e != nil {
		return e
	}
	return err
}
