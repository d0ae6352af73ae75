package api

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/fsm"
	"github.com/hasup/hasup/fsm/kv"
	"github.com/hasup/hasup/fsm/lock"
	"github.com/hasup/hasup/fsm/registry"
	"github.com/hasup/hasup/supervisor"
)

// fakeBackend is a Backend in memory: each ensemble runs the real FSM of
// its type, applied in the caller's goroutine under a lock.
type fakeBackend struct {
	mu         sync.Mutex
	id         hasup.NodeID
	members    []hasup.Member
	noRegistry bool
	ensembles  map[hasup.EnsembleName]*fakeEnsemble
}

var _ Backend = (*fakeBackend)(nil)

func newFakeBackend() *fakeBackend {
	return &fakeBackend{id: "n1", ensembles: map[hasup.EnsembleName]*fakeEnsemble{},
		members: []hasup.Member{
			{ID: "n2", Addr: "10.0.0.2:7947", State: hasup.MemberSuspect, Tags: map[string]string{"zone": "b"}},
			{ID: "n1", Addr: "10.0.0.1:7947", State: hasup.MemberAlive},
		}}
}

func (b *fakeBackend) ID() hasup.NodeID { return b.id }

func (b *fakeBackend) Members() []hasup.Member { return slices.Clone(b.members) }

func (b *fakeBackend) Registry() (registry.State, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.noRegistry {
		return registry.State{}, false
	}
	var st registry.State
	for _, e := range b.ensembles {
		st.Ensembles = append(st.Ensembles, registry.Ensemble{Spec: e.spec, Epoch: 1, Members: []hasup.NodeID{"n1", "n2", "n3"}})
	}
	slices.SortFunc(st.Ensembles, func(a, b registry.Ensemble) int { return cmp.Compare(a.Spec.Name, b.Spec.Name) })
	return st, true
}

func (b *fakeBackend) Start(ctx context.Context, spec supervisor.Spec) (EnsembleHandle, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.noRegistry {
		return nil, supervisor.ErrNoRegistry
	}
	var f fsm.FSM
	switch spec.Type {
	case "kv":
		f = kv.New()
	case "lock":
		f = lock.New()
	default:
		return nil, fmt.Errorf("%w %q", supervisor.ErrUnknownType, spec.Type)
	}
	if _, ok := b.ensembles[spec.Name]; ok {
		return nil, fmt.Errorf("start %s: %w", spec.Name, supervisor.ErrExists)
	}
	if spec.Replicas == 0 {
		spec.Replicas = 3
	}
	e := &fakeEnsemble{spec: registry.Spec{Name: spec.Name, Type: spec.Type, Replicas: spec.Replicas, Constraints: spec.Constraints}, fsm: f}
	b.ensembles[spec.Name] = e
	return e, nil
}

func (b *fakeBackend) Stop(ctx context.Context, name hasup.EnsembleName) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if name == supervisor.ClusterEnsemble {
		return fmt.Errorf("%w: the cluster ensemble cannot be stopped", supervisor.ErrInvalid)
	}
	if _, ok := b.ensembles[name]; !ok {
		return fmt.Errorf("stop %s: %w", name, supervisor.ErrNotFound)
	}
	delete(b.ensembles, name)
	return nil
}

func (b *fakeBackend) Lookup(name hasup.EnsembleName) (EnsembleHandle, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.noRegistry {
		return nil, supervisor.ErrNoRegistry
	}
	e, ok := b.ensembles[name]
	if !ok {
		return nil, fmt.Errorf("lookup %s: %w", name, supervisor.ErrNotFound)
	}
	return e, nil
}

func (b *fakeBackend) setNoRegistry(v bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.noRegistry = v
}

// ens returns the ensemble name, which the test created.
func (b *fakeBackend) ens(name hasup.EnsembleName) *fakeEnsemble {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ensembles[name]
}

// fakeEnsemble is one ensemble of a fakeBackend.
type fakeEnsemble struct {
	mu   sync.Mutex
	spec registry.Spec
	fsm  fsm.FSM
	op   uint64
	// err, if set, fails every Propose and Read; block makes them wait for
	// their context to end, as a supervisor without a quorum does.
	err       error
	block     bool
	statusErr error
	// noLease makes lease reads fail with ErrNoLease; modes records the
	// read modes asked.
	noLease bool
	modes   []ensemble.ReadMode
	// sessions: client -> last request and its reply (ProposeSession).
	sessions map[uint64]fakeSession
}

type fakeSession struct {
	request uint64
	reply   []byte
}

// ProposeSession dedups like the ensemble's client table.
func (e *fakeEnsemble) ProposeSession(ctx context.Context, client, request uint64, cmd []byte) ([]byte, error) {
	e.mu.Lock()
	if e.sessions == nil {
		e.sessions = map[uint64]fakeSession{}
	}
	s, ok := e.sessions[client]
	switch {
	case request == 0:
		if !ok {
			e.sessions[client] = fakeSession{}
		}
		e.mu.Unlock()
		return nil, nil
	case !ok:
		e.mu.Unlock()
		return nil, ensemble.ErrSessionExpired
	case request == s.request:
		e.mu.Unlock()
		return s.reply, nil
	case request < s.request:
		e.mu.Unlock()
		return nil, ensemble.ErrStaleRequest
	}
	e.mu.Unlock()
	res, err := e.Propose(ctx, cmd)
	if err == nil {
		e.mu.Lock()
		e.sessions[client] = fakeSession{request: request, reply: res}
		e.mu.Unlock()
	}
	return res, err
}

var _ EnsembleHandle = (*fakeEnsemble)(nil)

func (e *fakeEnsemble) Propose(ctx context.Context, cmd []byte) ([]byte, error) {
	if err := e.fault(ctx); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.op++
	return e.fsm.Apply(fsm.NewContext(e.op, time.Now().UnixNano(), e.op, 1), cmd), nil
}

func (e *fakeEnsemble) Read(ctx context.Context, q []byte, mode ensemble.ReadMode) ([]byte, error) {
	if err := e.fault(ctx); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.modes = append(e.modes, mode)
	if mode == ensemble.ReadLease && e.noLease {
		return nil, fmt.Errorf("ensemble %s on n1: %w", e.spec.Name, ensemble.ErrNoLease)
	}
	return e.fsm.Query(q)
}

func (e *fakeEnsemble) Status(ctx context.Context) (supervisor.Status, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.statusErr != nil {
		return supervisor.Status{}, e.statusErr
	}
	return supervisor.Status{Name: e.spec.Name, Type: e.spec.Type, Epoch: 1, View: 4, Primary: "n2",
		Members: []hasup.NodeID{"n1", "n2", "n3"}, Commit: e.op}, nil
}

// fault returns the injected failure, if any.
func (e *fakeEnsemble) fault(ctx context.Context) error {
	e.mu.Lock()
	err, block := e.err, e.block
	e.mu.Unlock()
	if block {
		<-ctx.Done()
		return fmt.Errorf("ensemble %s: %w (last: %v)", e.spec.Name, supervisor.ErrNoQuorum, ctx.Err())
	}
	return err
}

func (e *fakeEnsemble) set(f func(e *fakeEnsemble)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(e)
}
