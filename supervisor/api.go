package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/fsm/registry"
	"github.com/hasup/hasup/supervisor/placement"
)

// Spec describes an ensemble to start.
type Spec struct {
	Name hasup.EnsembleName
	// Type names the FSM: "kv", "lock" or one given in Config.FSMs.
	Type string
	// Replicas: 1, 3 or 5. Default 3.
	Replicas int
	// Nodes, if set, are the members (len == Replicas, the first leads
	// view 0); else placement chooses them among alive nodes.
	Nodes []hasup.NodeID
	// Constraints on the nodes' tags, as "key=value", "key!=value", "key"
	// or "!key" (see placement.ParseConstraint).
	Constraints []string
	// SpreadBy: a tag key whose values the members should differ in.
	SpreadBy string
	// NoQuiesce keeps the ensemble heartbeating while idle, so that its
	// primary holds its lease continuously.
	NoQuiesce bool
}

// Status is an ensemble's state as one of its replicas reports it.
type Status struct {
	Name    hasup.EnsembleName
	Type    string
	Epoch   uint64
	View    uint64
	Primary hasup.NodeID
	Members []hasup.NodeID
	Commit  uint64
	Fence   uint64
}

// Start creates an ensemble and waits until it takes writes or ctx ends.
func (s *Supervisor) Start(ctx context.Context, spec Spec) (*Ensemble, error) {
	if spec.Replicas == 0 {
		spec.Replicas = 3
	}
	if _, err := s.newFSM(spec.Type); err != nil {
		return nil, err
	}
	if spec.Name == ClusterEnsemble {
		return nil, fmt.Errorf("%w: the name %q is the cluster's", ErrInvalid, spec.Name)
	}
	reg, err := s.waitRegistry(ctx)
	if err != nil {
		return nil, err
	}
	if _, ok := reg.Ensemble(spec.Name); ok {
		return nil, fmt.Errorf("start %s: %w", spec.Name, ErrExists)
	}
	members := spec.Nodes
	if len(members) == 0 {
		if members, err = s.place(reg, spec); err != nil {
			return nil, fmt.Errorf("start %s: %w", spec.Name, err)
		}
	}
	rs := registry.Spec{Name: spec.Name, Type: spec.Type, Replicas: spec.Replicas, Constraints: spec.Constraints, NoQuiesce: spec.NoQuiesce}
	if err := s.proposeRegistry(ctx, registry.CreateEnsembleCmd(rs, members)); err != nil {
		if !errors.Is(err, registry.ErrExists) {
			return nil, fmt.Errorf("start %s: %w", spec.Name, err)
		}
		// A retried proposal may find its own first try done: the ensemble
		// exists, but is it this one?
		if !s.createdAs(ctx, rs, members) {
			return nil, fmt.Errorf("start %s: %w", spec.Name, ErrExists)
		}
	}
	e := &Ensemble{s: s, name: spec.Name}
	// Each member's supervisor starts its replica on its next pass; the
	// ensemble is up once its primary answers.
	for {
		if _, err := e.Leader(ctx); err == nil {
			return e, nil
		}
		select {
		case <-ctx.Done():
			return e, fmt.Errorf("start %s: created, but no primary yet: %w", spec.Name, ctx.Err())
		case <-time.After(s.cfg.ReconcileInterval):
		}
	}
}

// createdAs reports whether the registry holds ensemble rs.Name with
// exactly this spec and these members (read from the cluster primary).
func (s *Supervisor) createdAs(ctx context.Context, rs registry.Spec, members []hasup.NodeID) bool {
	b, err := s.toPrimary(ctx, ClusterEnsemble, s.voters(), func(ctx context.Context, to hasup.NodeID) ([]byte, error) {
		return s.node.ForwardRead(ctx, to, ClusterEnsemble, registry.EnsembleQuery(rs.Name), ensemble.ReadLinearizable)
	})
	if err != nil {
		return false
	}
	en, err := registry.DecodeEnsemble(b)
	return err == nil && en.Epoch == 0 && en.Spec.Type == rs.Type && en.Spec.Replicas == rs.Replicas &&
		slices.Equal(en.Members, members) && slices.Equal(en.Spec.Constraints, rs.Constraints)
}

func (s *Supervisor) place(reg registry.State, spec Spec) ([]hasup.NodeID, error) {
	req := placement.Request{Ensemble: spec.Name, Replicas: spec.Replicas, SpreadBy: spec.SpreadBy}
	for _, c := range spec.Constraints {
		pc, err := placement.ParseConstraint(c)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		req.Constraints = append(req.Constraints, pc)
	}
	load := reg.Load()
	var nodes []placement.Node
	for _, n := range reg.Nodes {
		l := load[n.ID]
		nodes = append(nodes, placement.Node{ID: n.ID, Tags: n.Tags, Alive: n.State == hasup.MemberAlive, Replicas: l.Replicas, Primaries: l.Primaries})
	}
	return placement.Place(req, nodes)
}

// waitRegistry returns the registry once this node has read it.
func (s *Supervisor) waitRegistry(ctx context.Context) (registry.State, error) {
	for {
		if reg, ok := s.registryState(); ok {
			return reg, nil
		}
		select {
		case <-ctx.Done():
			return registry.State{}, fmt.Errorf("%w: %v", ErrNoRegistry, ctx.Err())
		case <-time.After(s.cfg.ReconcileInterval):
		}
	}
}

// Stop deletes an ensemble: its replicas stop and drop their state.
func (s *Supervisor) Stop(ctx context.Context, name hasup.EnsembleName) error {
	if name == ClusterEnsemble {
		return fmt.Errorf("%w: the cluster ensemble cannot be stopped", ErrInvalid)
	}
	if err := s.proposeRegistry(ctx, registry.DeleteEnsembleCmd(name)); err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			return fmt.Errorf("stop %s: %w", name, ErrNotFound)
		}
		return err
	}
	return nil
}

// Lookup returns a handle on an existing ensemble.
func (s *Supervisor) Lookup(name hasup.EnsembleName) (*Ensemble, error) {
	reg, ok := s.registryState()
	if !ok {
		return nil, ErrNoRegistry
	}
	if _, ok := reg.Ensemble(name); !ok {
		return nil, fmt.Errorf("lookup %s: %w", name, ErrNotFound)
	}
	return &Ensemble{s: s, name: name}, nil
}

// List returns every ensemble in the registry, sorted by name.
func (s *Supervisor) List() ([]registry.Ensemble, error) {
	reg, ok := s.registryState()
	if !ok {
		return nil, ErrNoRegistry
	}
	return slices.Clone(reg.Ensembles), nil
}

// Registry returns the registry as this node last read it.
func (s *Supervisor) Registry() (registry.State, bool) { return s.registryState() }

// Ensemble is a handle on a named ensemble, usable from any node.
type Ensemble struct {
	s    *Supervisor
	name hasup.EnsembleName
}

// Name returns the ensemble's name.
func (e *Ensemble) Name() hasup.EnsembleName { return e.name }

// Members returns the ensemble's members as the registry says.
func (e *Ensemble) Members() []hasup.NodeID {
	reg, _ := e.s.registryState()
	en, _ := reg.Ensemble(e.name)
	return slices.Clone(en.Members)
}

// Propose orders cmd in the ensemble and returns the FSM's result. After
// an error wrapping ErrNoQuorum or ensemble.ErrViewChanged the command may
// or may not have run.
func (e *Ensemble) Propose(ctx context.Context, cmd []byte) ([]byte, error) {
	return e.s.toPrimaryOnce(ctx, e.name, e.Members(), func(ctx context.Context, to hasup.NodeID) ([]byte, error) {
		return e.s.node.ForwardPropose(ctx, to, e.name, cmd)
	})
}

// ProposeSession orders cmd as request number request of the caller's
// client session client, at most once however often it is retried (after
// ErrNoQuorum, say): the ensemble keeps each session's last reply and
// answers a retry with it. Request numbers of a session must grow; request
// 0 opens the session (cmd empty, or ensemble.RegisterFloor(n) to refuse
// every request numbered n or below). A request of a session the ensemble
// does not know, or evicted (its table is bounded), fails with
// ErrSessionExpired: open a new session under a new client number.
func (e *Ensemble) ProposeSession(ctx context.Context, client, request uint64, cmd []byte) ([]byte, error) {
	return e.s.toPrimary(ctx, e.name, e.Members(), func(ctx context.Context, to hasup.NodeID) ([]byte, error) {
		return e.s.node.ForwardProposeAs(ctx, to, e.name, client, request, cmd)
	})
}

// Read queries the FSM: linearizable and lease reads at the primary, a
// stale read at this node's replica if it has one (else at any member).
func (e *Ensemble) Read(ctx context.Context, q []byte, mode ensemble.ReadMode) ([]byte, error) {
	members := e.Members()
	if mode == ensemble.ReadStale && slices.Contains(members, e.s.cfg.NodeName) {
		if res, err := e.s.node.Read(ctx, e.name, q, mode); err == nil {
			return res, nil // this node's own replica: no network
		}
	}
	return e.s.toPrimary(ctx, e.name, members, func(ctx context.Context, to hasup.NodeID) ([]byte, error) {
		return e.s.node.ForwardRead(ctx, to, e.name, q, mode)
	})
}

// Status returns the ensemble's status from its primary (or, failing
// that, from the member in the highest view, with Primary "").
func (e *Ensemble) Status(ctx context.Context) (Status, error) {
	reg, _ := e.s.registryState()
	en, ok := reg.Ensemble(e.name)
	if !ok {
		return Status{}, fmt.Errorf("%s: %w", e.name, ErrNotFound)
	}
	var last error
	var fallback *ensemble.Status
	for _, m := range e.s.reachable(en.Members) {
		mctx, cancel := context.WithTimeout(ctx, time.Second) // a dead member must not take the caller's whole budget
		st, err := e.s.node.ForwardStatus(mctx, m, e.name)
		cancel()
		if err != nil {
			last = err
			continue
		}
		// A restarted former primary may still claim an old view: the
		// primary of the highest view wins, else the highest view seen.
		better := fallback == nil || st.Fence > fallback.Fence || (st.Fence == fallback.Fence && st.IsPrimary && !fallback.IsPrimary)
		if better {
			fallback = &st
		}
	}
	if fallback != nil {
		st := statusOf(en, *fallback)
		if !fallback.IsPrimary {
			st.Primary = "" // no member says it leads: none is known
		}
		return st, nil
	}
	return Status{}, fmt.Errorf("%s: %w (last: %v)", e.name, ErrNoQuorum, last)
}

func statusOf(en registry.Ensemble, st ensemble.Status) Status {
	return Status{Name: en.Spec.Name, Type: en.Spec.Type, Epoch: st.Epoch, View: st.View, Primary: st.Primary,
		Members: st.Members, Commit: st.Commit, Fence: st.Fence}
}

// Leader returns the ensemble's current primary.
func (e *Ensemble) Leader(ctx context.Context) (hasup.NodeID, error) {
	st, err := e.Status(ctx)
	if err != nil {
		return "", err
	}
	if st.Primary == "" {
		return "", fmt.Errorf("%s: %w: no member leads a normal view now", e.name, ErrNoQuorum)
	}
	return st.Primary, nil
}

// Watch sends the ensemble's status whenever it changes, until ctx ends.
func (e *Ensemble) Watch(ctx context.Context) <-chan Status {
	ch := make(chan Status, 1)
	go func() {
		defer close(ch)
		var last Status
		first := true
		for {
			if st, err := e.Status(ctx); err == nil && (first || st.Epoch != last.Epoch || st.View != last.View || st.Primary != last.Primary || !slices.Equal(st.Members, last.Members)) {
				first, last = false, st
				select {
				case ch <- st:
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(e.s.cfg.ReconcileInterval):
			}
		}
	}()
	return ch
}

// LocalStatuses returns the status of every replica this node runs,
// sorted by ensemble name (for monitoring: commit numbers, views, lag).
func (s *Supervisor) LocalStatuses(ctx context.Context) ([]ensemble.Status, error) {
	return s.node.Statuses(ctx)
}
