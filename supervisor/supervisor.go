// Package supervisor is hasup's per-node logic and its public Go API: it
// joins the node to the cluster (package detector, Serf), keeps the
// cluster ensemble whose FSM is the registry (fsm/registry), starts and
// stops the node's replicas as the registry assigns them, and repairs
// ensembles whose members fail.
//
// # Structure
//
// A Supervisor owns a detector, a TCP transport, a bbolt store and a
// replica host (supervisor/host). Every ReconcileInterval its loop reads
// the registry, the detector's view and the local replicas, asks the pure
// decision core (supervisor/reconcile) what to do, and does it: propose to
// the registry, start or stop local replicas, reconfigure an ensemble this
// node leads, hint a view change when a primary's node failed. The loop is
// level-triggered: a missed event costs latency, never correctness.
//
// # The cluster ensemble
//
// The registry lives in the ensemble named ClusterEnsemble, of FSM type
// "registry", and is itself listed in the registry, so it is repaired like
// any other ensemble. It forms once BootstrapExpect nodes see each other:
// its voters are the lowest node IDs among the alive nodes (1 voter below 3
// nodes, 3 below 5, else 5). A node that finds an existing registry (any
// alive node answers a registry read) never forms a new one. Like Consul's
// bootstrap_expect, this assumes the first BootstrapExpect nodes start
// together; a node whose view differs at that moment can form a second
// cluster, which the operator sees in `hasup members`.
//
// Nodes that are not voters read the registry from a voter (a stale read,
// which reports its lag) and send their proposals to the cluster primary.
//
// # Requests
//
// An Ensemble's Propose and Read go to its primary: locally when this node
// runs it, else forwarded over the node transport (host.ForwardPropose).
// A node that is not the primary answers ensemble.ErrNotPrimary, and the
// caller tries the next member, until its context ends.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/detector"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/fsm"
	"github.com/hasup/hasup/fsm/kv"
	"github.com/hasup/hasup/fsm/lock"
	"github.com/hasup/hasup/fsm/registry"
	"github.com/hasup/hasup/internal/store"
	"github.com/hasup/hasup/internal/transport"
	"github.com/hasup/hasup/supervisor/host"
	"github.com/hasup/hasup/supervisor/worker"
)

// Errors.
var (
	// ErrNotFound: no ensemble of that name.
	ErrNotFound = errors.New("supervisor: no such ensemble")
	// ErrExists: an ensemble of that name exists.
	ErrExists = errors.New("supervisor: ensemble exists")
	// ErrNoQuorum: the request could not reach a primary in time; a write
	// may or may not have happened.
	ErrNoQuorum = errors.New("supervisor: no primary answered (no quorum?)")
	// ErrSessionExpired: the ensemble evicted this node's client session.
	ErrSessionExpired = ensemble.ErrSessionExpired
	// ErrUnknownType: no FSM of that type is registered.
	ErrUnknownType = errors.New("supervisor: unknown FSM type")
	// ErrNoRegistry: the cluster ensemble has not formed or cannot be read.
	ErrNoRegistry = errors.New("supervisor: the cluster registry is not available")
	// ErrInvalid: a request's arguments are wrong.
	ErrInvalid = errors.New("supervisor: invalid request")
)

// ClusterEnsemble names the cluster ensemble, whose FSM is the registry.
const ClusterEnsemble hasup.EnsembleName = "hasup"

// Config configures a node's supervisor.
type Config struct {
	// NodeName is this node's ID, unique in the cluster. Required.
	NodeName hasup.NodeID
	// DataDir holds the bbolt file. Required.
	DataDir string
	// BindAddr is the IP that Serf and the consensus transport bind to.
	// Default 127.0.0.1.
	BindAddr string
	// SerfPort and RPCPort: Serf's and the consensus transport's ports.
	// 0 picks free ports (tests).
	SerfPort, RPCPort int
	// Join lists Serf addresses of nodes to join (retried with backoff).
	Join []string
	// BootstrapExpect: the cluster ensemble forms once this many nodes
	// see each other. Default 1.
	BootstrapExpect int
	// Profile: failure-detection timings, detector.ProfileLAN (default)
	// or detector.ProfileLocal.
	Profile detector.Profile
	// EncryptKey: Serf's gossip key (16, 24 or 32 bytes), or nil.
	EncryptKey []byte
	// TLS: mutual TLS on the consensus transport, or nil.
	TLS *transport.TLSConfig
	// Tags label the node for placement constraints.
	Tags map[string]string
	// FSMs adds FSM types to the built-ins ("kv", "lock"); each function
	// returns a new, empty FSM.
	FSMs map[string]func() fsm.FSM
	// TickInterval is the consensus tick. Default 10ms.
	TickInterval time.Duration
	// ReconcileInterval: how often the supervisor compares the registry
	// with what runs. Default 50ms.
	ReconcileInterval time.Duration
	// Damping: how long a failure verdict must hold before the node is
	// declared failed and its replicas replaced. Default 10s with the lan
	// profile (a flapping node is not replaced), 500ms with local.
	Damping time.Duration
	// Workers are the commands this cluster runs HA (see workers.go);
	// SetWorkers changes them later.
	Workers []WorkerSpec
	// APIAddr is this node's HTTP API address, given to workers as
	// HASUP_API.
	APIAddr string
	// Logger receives operational logs. Default: discard.
	Logger *slog.Logger
}

// Supervisor is one node's supervisor.
type Supervisor struct {
	cfg   Config
	log   *slog.Logger
	det   *detector.Detector
	tr    *transport.TCP
	st    *store.Store
	node  *host.Node
	types map[string]func() fsm.FSM

	mu       sync.Mutex
	reg      registry.State // the registry as last read
	regOK    bool
	leaders  map[hasup.EnsembleName]hasup.NodeID
	observed map[hasup.NodeID]observed
	hinted   map[hasup.EnsembleName]uint64
	// freshStore: the store file did not exist when this process opened
	// it. Ensembles created well before that (lostDiskSlack) cannot have
	// started from this data dir: if they list the node, its disk was
	// lost, and they must not be bootstrapped here (an empty replica
	// claiming to be the start of the log would split it) but recovered
	// from their peers. noBootstrap holds them.
	freshStore  bool
	started     time.Time
	firstRead   bool
	clusterSeen bool // a registry listing the cluster ensemble was read

	wmu         sync.Mutex // guards the worker fields
	workerSpecs []WorkerSpec
	runners     map[string]*worker.Runner
	declared    map[string]time.Time // when a worker's ensemble was last declared
	leaving     bool
	noBootstrap map[hasup.EnsembleName]bool
}

type observed struct {
	state hasup.MemberState
	since time.Time
}

// New opens the node's store and transport and creates its detector; Run
// starts them.
func New(cfg Config) (*Supervisor, error) {
	if cfg.NodeName == "" || cfg.DataDir == "" {
		return nil, fmt.Errorf("%w: config needs NodeName and DataDir", ErrInvalid)
	}
	if cfg.BindAddr == "" {
		cfg.BindAddr = "127.0.0.1"
	}
	if cfg.BootstrapExpect == 0 {
		cfg.BootstrapExpect = 1
	}
	if cfg.Profile == "" {
		cfg.Profile = detector.ProfileLAN
	}
	if cfg.TickInterval == 0 {
		cfg.TickInterval = 10 * time.Millisecond
	}
	if cfg.ReconcileInterval == 0 {
		cfg.ReconcileInterval = 50 * time.Millisecond
	}
	if cfg.Damping == 0 {
		cfg.Damping = 10 * time.Second
		if cfg.Profile == detector.ProfileLocal {
			cfg.Damping = 500 * time.Millisecond
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Supervisor{cfg: cfg, log: cfg.Logger.With("node", cfg.NodeName), leaders: map[hasup.EnsembleName]hasup.NodeID{},
		observed: map[hasup.NodeID]observed{}, hinted: map[hasup.EnsembleName]uint64{},
		types: map[string]func() fsm.FSM{
			"kv":       func() fsm.FSM { return kv.New() },
			"lock":     func() fsm.FSM { return lock.New() },
			"registry": func() fsm.FSM { return registry.New() },
		}}
	s.runners, s.declared = map[string]*worker.Runner{}, map[string]time.Time{}
	if err := s.SetWorkers(cfg.Workers); err != nil {
		return nil, err
	}
	for name, f := range cfg.FSMs {
		if _, ok := s.types[name]; ok || f == nil {
			return nil, fmt.Errorf("%w: FSM type %q is built in or nil", ErrInvalid, name)
		}
		s.types[name] = f
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("supervisor: data dir: %w", err)
	}
	path := filepath.Join(cfg.DataDir, "hasup.db")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		s.freshStore = true
	}
	s.noBootstrap, s.started = map[hasup.EnsembleName]bool{}, time.Now()
	var err error
	if s.st, err = store.Open(path, store.DefaultOpenTimeout); err != nil {
		return nil, err
	}
	tcfg := transport.DefaultConfig()
	tcfg.ID, tcfg.Listen, tcfg.TLS, tcfg.Logger = cfg.NodeName, fmt.Sprintf("%s:%d", cfg.BindAddr, cfg.RPCPort), cfg.TLS, cfg.Logger
	if s.tr, err = transport.Listen(tcfg); err != nil {
		_ = s.st.Close()
		return nil, err
	}
	dcfg := detector.DefaultConfig()
	dcfg.NodeName, dcfg.BindAddr, dcfg.BindPort, dcfg.RPCAddr = cfg.NodeName, cfg.BindAddr, cfg.SerfPort, s.tr.Addr()
	dcfg.Tags, dcfg.EncryptKey, dcfg.Profile, dcfg.Join, dcfg.Logger = cfg.Tags, cfg.EncryptKey, cfg.Profile, cfg.Join, cfg.Logger
	if s.det, err = detector.New(dcfg); err != nil {
		_ = s.tr.Close()
		_ = s.st.Close()
		return nil, err
	}
	if s.node, err = host.New(host.Config{ID: cfg.NodeName, Store: s.st, Transport: s.tr, TickInterval: cfg.TickInterval, Logger: cfg.Logger}); err != nil {
		_ = s.det.Shutdown()
		_ = s.tr.Close()
		_ = s.st.Close()
		return nil, err
	}
	return s, nil
}

// ID returns this node's ID.
func (s *Supervisor) ID() hasup.NodeID { return s.cfg.NodeName }

// SerfAddr returns the address other nodes join.
func (s *Supervisor) SerfAddr() string { return s.det.Addr() }

// Members returns the detector's view of the cluster.
func (s *Supervisor) Members() []hasup.Member { return s.det.Members() }

// Run runs the node until ctx ends, then stops it without leaving (a
// crash, as far as the others can tell: Leave first for a graceful exit).
func (s *Supervisor) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	// If the host or the detector stops (a storage error, say), the whole
	// node stops: a node that cannot persist must not look alive.
	go func() { defer wg.Done(); errs <- s.node.Run(ctx); cancel() }()
	go func() { defer wg.Done(); errs <- s.det.Run(ctx); cancel() }()
	err := s.loop(ctx)
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	s.closeWorkers(wctx) // before the replicas stop: no command outlives its lease
	wcancel()
	cancel()
	wg.Wait()
	close(errs)
	for e := range errs {
		err = errors.Join(err, e)
	}
	_ = s.det.Shutdown()
	_ = s.tr.Close()
	return errors.Join(err, s.st.Close())
}

// Join joins the cluster through any of addrs (Serf addresses) and
// returns how many answered.
func (s *Supervisor) Join(addrs []string) (int, error) { return s.det.Join(addrs) }

// ForceLeave marks a failed node as left, so that the others stop
// waiting for it to come back.
func (s *Supervisor) ForceLeave(id hasup.NodeID) error { return s.det.ForceLeave(id) }

// Leave leaves the cluster gracefully: it stops this node's workers (each
// within its stop grace), then leaves Serf, so the other nodes see "left"
// at once and take over.
func (s *Supervisor) Leave() error {
	s.wmu.Lock()
	s.leaving = true
	s.wmu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.closeWorkers(ctx)
	return s.det.Leave()
}

func (s *Supervisor) loop(ctx context.Context) error {
	t := time.NewTicker(s.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.reconcile(ctx)
		}
	}
}

// newFSM returns a new FSM of the given type.
func (s *Supervisor) newFSM(typ string) (fsm.FSM, error) {
	if _, ok := isWorkerType(typ); ok {
		return kv.New(), nil // a worker's replicated KV
	}
	f, ok := s.types[typ]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownType, typ)
	}
	return f(), nil
}

// registryState returns the registry as last read.
func (s *Supervisor) registryState() (registry.State, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reg, s.regOK
}

// voters returns the cluster ensemble's members, as the registry last
// said, or every alive node if it never did.
func (s *Supervisor) voters() []hasup.NodeID {
	if reg, ok := s.registryState(); ok {
		if e, ok := reg.Ensemble(ClusterEnsemble); ok {
			return slices.Concat(e.Members, e.Target)
		}
	}
	var ids []hasup.NodeID
	for _, m := range s.det.Members() {
		if m.State == hasup.MemberAlive {
			ids = append(ids, m.ID)
		}
	}
	return ids
}
