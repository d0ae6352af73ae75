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
	"context"
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
	// are filled in per ensemble). Default ensemble.DefaultConfig().
	Replica ensemble.Config
	// Seed seeds the node's randomness (view-change timeouts, nonces).
	Seed uint64
	// Clock returns Unix nanoseconds, the time a primary gives the FSM.
	// Default time.Now.
	Clock  func() int64
	Logger *slog.Logger
}

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
}

// Node runs the local replicas of one node.
type Node struct {
	cfg      Config
	rng      *rand.Rand
	reqs     chan func()
	done     chan struct{}
	replicas map[hasup.EnsembleName]*local
	names    []hasup.EnsembleName // sorted: the loop visits replicas in a fixed order
	nextID   uint64
	waiters  map[uint64]chan ensemble.Reply
}

type local struct {
	r       *ensemble.Replica
	session uint64 // this node's client session in the ensemble (0: none yet)
	request uint64
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
	}
	if cfg.Clock == nil {
		cfg.Clock = func() int64 { return time.Now().UnixNano() }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Node{
		cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(len(cfg.ID)))),
		reqs: make(chan func(), 1024), done: make(chan struct{}),
		replicas: map[hasup.EnsembleName]*local{}, waiters: map[uint64]chan ensemble.Reply{},
	}, nil
}

// Run drives the node until ctx ends. It returns nil then.
func (n *Node) Run(ctx context.Context) error {
	defer close(n.done)
	tick := time.NewTicker(n.cfg.TickInterval)
	defer tick.Stop()
	recv := n.cfg.Transport.Receive()
	for {
		select {
		case <-ctx.Done():
			n.failAll(ErrStopped)
			return nil
		case <-tick.C:
			for _, name := range n.names {
				n.replicas[name].r.Tick()
			}
		case m, ok := <-recv:
			if !ok {
				n.failAll(ErrStopped)
				return nil
			}
			if l := n.replicas[m.Ensemble]; l != nil {
				l.r.Step(m)
			}
		case f := <-n.reqs:
			f()
		}
		if err := n.flush(); err != nil {
			// Storage failed: nothing unsynced may be acknowledged, so the
			// node stops rather than go on.
			n.cfg.Logger.Error("storage commit failed; stopping the node", "node", n.cfg.ID, "err", err)
			n.failAll(err)
			return err
		}
	}
}

// flush executes every pending Ready: one store commit for all of them,
// then messages, answers and Advance.
func (n *Node) flush() error {
	var rds []ensemble.Ready
	var owners []*local
	var writes []store.Write
	for _, name := range n.names {
		l := n.replicas[name]
		if !l.r.HasReady() {
			continue
		}
		rd := l.r.Ready()
		rds, owners = append(rds, rd), append(owners, l)
		if w := store.WriteOf(name, rd); !w.Empty() {
			writes = append(writes, w)
		}
	}
	if len(rds) == 0 {
		return nil
	}
	if len(writes) > 0 {
		if err := n.cfg.Store.Commit(writes); err != nil {
			return err
		}
	}
	for i, rd := range rds {
		for _, m := range rd.Messages {
			n.cfg.Transport.Send(m)
		}
		for _, rp := range rd.Replies {
			if ch, ok := n.waiters[rp.ID]; ok {
				delete(n.waiters, rp.ID)
				ch <- rp
			}
		}
		owners[i].r.Advance()
	}
	return nil
}

func (n *Node) failAll(err error) {
	for id, ch := range n.waiters {
		delete(n.waiters, id)
		ch <- ensemble.Reply{ID: id, Err: err}
	}
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
// fails its checksums is deleted and the replica recovers.
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
		if err := n.cfg.Store.Delete(spec.Name); err != nil {
			return err
		}
	case err != nil:
		return err
	case d != nil:
		cfg.Durable = d
	default:
		cfg.Bootstrap, cfg.Join = spec.Bootstrap, spec.Join
	}
	r, err := ensemble.New(cfg)
	if err != nil {
		return fmt.Errorf("start %s: %w", spec.Name, err)
	}
	n.replicas[spec.Name] = &local{r: r}
	n.names = append(n.names, spec.Name)
	slices.Sort(n.names)
	return nil
}

// Stop stops a local replica (its durable state stays in the store).
func (n *Node) Stop(ctx context.Context, name hasup.EnsembleName) error {
	return n.do(ctx, func() {
		delete(n.replicas, name)
		n.names = slices.DeleteFunc(n.names, func(x hasup.EnsembleName) bool { return x == name })
	})
}

// Status returns a local replica's status.
func (n *Node) Status(ctx context.Context, name hasup.EnsembleName) (ensemble.Status, error) {
	var st ensemble.Status
	err := ErrNotFound
	if e := n.do(ctx, func() {
		if l := n.replicas[name]; l != nil {
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
			l.session = n.rng.Uint64() | 1
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

func (n *Node) resetSession(ctx context.Context, name hasup.EnsembleName) {
	_ = n.do(ctx, func() {
		if l := n.replicas[name]; l != nil {
			l.session = 0
		}
	})
}

// Read reads the FSM in the given mode (see ensemble.ReadMode).
func (n *Node) Read(ctx context.Context, name hasup.EnsembleName, q []byte, mode ensemble.ReadMode) ([]byte, error) {
	rp, err := n.call(ctx, name, func(l *local, id uint64) error {
		return l.r.ReadAt(ensemble.ReadRequest{ID: id, Query: q, Mode: mode, MaxLagOps: ^uint64(0) >> 1, MaxLagTicks: ^uint64(0) >> 1})
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
		serr = submit(l, id)
		if serr == nil || errors.Is(serr, errRegistering) {
			n.waiters[id] = ch
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
