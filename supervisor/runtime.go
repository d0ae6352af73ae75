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
	"github.com/hasup/hasup/supervisor/host"
	"github.com/hasup/hasup/supervisor/reconcile"
)

// errNoCluster: every node asked answered that it runs no replica of the
// cluster ensemble.
var errNoCluster = fmt.Errorf("%w: no node runs the cluster ensemble", ErrNoRegistry)

// formingError: a node runs a cluster replica of epoch 0 that names this
// node among its voters, and cannot answer a registry read yet.
type formingError struct{ members []hasup.NodeID }

func (e *formingError) Error() string {
	return fmt.Sprintf("supervisor: the cluster ensemble is forming with voters %v", e.members)
}

// registryTimeout bounds one registry read or proposal made by the loop.
const registryTimeout = time.Second

// lostDiskSlack: an ensemble created more than this before a node with a
// new data dir started cannot have been bootstrapped by that data dir (the
// registry's times come from the cluster primary's clock: the slack covers
// clock skew between nodes).
const lostDiskSlack = 30 * time.Second

// reconcile is one pass of the loop: learn, decide, act.
func (s *Supervisor) reconcile(ctx context.Context) {
	now := time.Now()
	members := s.det.Members()
	s.learnMembers(members, now)
	local, err := s.node.Statuses(ctx)
	if err != nil {
		return
	}
	reg, err := s.readRegistry(ctx, local)
	var forming *formingError
	switch _, formed := reg.Ensemble(ClusterEnsemble); {
	case errors.As(err, &forming):
		s.maybeBootstrap(ctx, members, local, forming.members)
	case errors.Is(err, errNoCluster), err == nil && !formed:
		// No node runs a registry, or one is still forming (its voters
		// have not all started yet, and it lists nothing until a majority
		// has). A timeout or a lagging voter proves neither.
		s.maybeBootstrap(ctx, members, local, nil)
	}
	if err != nil {
		return
	}
	s.mu.Lock()
	if s.regOK && reg.Version < s.reg.Version {
		// A lagging voter (or this node's own replica, just restarted)
		// answered: acting on an older registry than one already acted on
		// could undo what that one did (stop a replica just started).
		s.mu.Unlock()
		return
	}
	s.reg, s.regOK = reg, true
	if _, formed := reg.Ensemble(ClusterEnsemble); formed {
		s.clusterSeen = true
	}
	if !s.firstRead {
		s.firstRead = true
		if s.freshStore {
			// Ensembles created well before this process started existed
			// before this data dir did: it cannot hold their beginning.
			for _, e := range reg.Ensembles {
				if e.Created < s.started.Add(-lostDiskSlack).UnixNano() {
					s.noBootstrap[e.Spec.Name] = true
				}
			}
			if len(s.noBootstrap) > 0 {
				s.log.Warn("this node's data dir is new but older ensembles list it: they recover from their peers", "ensembles", len(s.noBootstrap))
			}
		}
	}
	s.mu.Unlock()
	in := s.input(reg, local, now)
	if in.ClusterPrimary {
		s.registerCluster(ctx, reg, local)
	}
	for _, a := range reconcile.Decide(in) {
		if err := s.act(ctx, reg, a); err != nil {
			s.log.Debug("reconcile action failed", "action", a.Kind.String(), "ensemble", a.Ensemble, "err", err)
		}
	}
	asOf := time.Now() // before the statuses: a lease counted from then is never stretched
	if local, err := s.node.Statuses(ctx); err == nil {
		s.manageWorkers(ctx, reg, local, asOf)
	}
}

// learnMembers points the transport at every member's address and keeps
// how long each has been in its state.
func (s *Supervisor) learnMembers(members []hasup.Member, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range members {
		if m.ID != s.cfg.NodeName && m.Addr != "" && m.State == hasup.MemberAlive {
			s.tr.SetPeer(m.ID, m.Addr)
		}
		if o, ok := s.observed[m.ID]; !ok || o.state != m.State {
			s.observed[m.ID] = observed{state: m.State, since: now}
		}
	}
}

// readRegistry reads the registry: from the local replica of the cluster
// ensemble if this node is a voter, else from a voter.
func (s *Supervisor) readRegistry(ctx context.Context, local []ensemble.Status) (registry.State, error) {
	ctx, cancel := context.WithTimeout(ctx, registryTimeout)
	defer cancel()
	var b []byte
	var err error
	if slices.ContainsFunc(local, func(st ensemble.Status) bool { return st.Ensemble == ClusterEnsemble && st.Mode == ensemble.ModeNormal }) {
		b, err = s.node.Read(ctx, ClusterEnsemble, registry.StateQuery(), ensemble.ReadStale)
	} else {
		// errNoCluster only if every other candidate says it runs no
		// replica of the cluster ensemble (or there is none to ask).
		err = errNoCluster
		for _, v := range s.voters() {
			if v == s.cfg.NodeName {
				continue
			}
			vctx, vcancel := context.WithTimeout(ctx, registryTimeout/4) // one silent node must not use up the pass
			var e error
			b, e = s.node.ForwardRead(vctx, v, ClusterEnsemble, registry.StateQuery(), ensemble.ReadStale)
			if e == nil {
				vcancel()
				err = nil
				break
			}
			if !errors.Is(e, host.ErrNotFound) {
				// v runs a cluster replica it cannot read from yet: one
				// being formed names its voters, and a voter it names
				// that has not started must start (else a minority of
				// started voters waits for ever for the others).
				if st, serr := s.node.ForwardStatus(vctx, v, ClusterEnsemble); serr == nil && st.Epoch == 0 && slices.Contains(st.Members, s.cfg.NodeName) {
					e = &formingError{members: st.Members}
				}
				if !errors.As(err, new(*formingError)) {
					err = e // an answer that proves nothing: no bootstrap on it
				}
			}
			vcancel()
		}
	}
	if err != nil {
		return registry.State{}, err
	}
	return registry.DecodeState(b)
}

// maybeBootstrap forms the cluster ensemble when enough nodes see each
// other and none of them has a registry.
//
// With voters (a forming cluster replica named them), this node starts its
// replica with exactly those voters, if they include it.
func (s *Supervisor) maybeBootstrap(ctx context.Context, members []hasup.Member, local []ensemble.Status, forming []hasup.NodeID) {
	if slices.ContainsFunc(local, func(st ensemble.Status) bool { return st.Ensemble == ClusterEnsemble }) {
		return // it runs (and is, say, changing view)
	}
	var alive []hasup.NodeID
	for _, m := range members {
		if m.State == hasup.MemberAlive {
			alive = append(alive, m.ID)
		}
	}
	if len(alive) < s.cfg.BootstrapExpect {
		return
	}
	// Only a first run forms a new cluster; a node that ran before either
	// holds the cluster ensemble's state (and resumes it) or waits to read
	// the registry from the voters, whoever they are now.
	stored, err := s.st.Ensembles()
	if err != nil {
		return
	}
	if !s.freshStore && !slices.Contains(stored, ClusterEnsemble) {
		return
	}
	slices.Sort(alive)
	voters := alive[:votersFor(s.cfg.BootstrapExpect)]
	if forming != nil {
		voters = forming
	}
	resume := slices.Contains(stored, ClusterEnsemble) // its stored state and members win
	s.mu.Lock()
	seen := s.clusterSeen // a formed registry exists: never form another
	s.mu.Unlock()
	if !resume && (seen || !slices.Contains(voters, s.cfg.NodeName)) {
		return
	}
	s.log.Info("forming or resuming the cluster ensemble", "voters", voters, "resume", resume)
	err = s.node.Start(ctx, host.Spec{Name: ClusterEnsemble, Members: voters, FSM: registry.New(), Bootstrap: !resume})
	if err != nil && !errors.Is(err, host.ErrExists) {
		s.log.Warn("cannot start the cluster ensemble", "err", err)
	}
}

// votersFor is the cluster ensemble's size for a cluster of n nodes.
func votersFor(n int) int {
	switch {
	case n >= 5:
		return 5
	case n >= 3:
		return 3
	}
	return 1
}

// registerCluster, at the cluster primary, lists the cluster ensemble in
// the registry once its voters are registered nodes.
func (s *Supervisor) registerCluster(ctx context.Context, reg registry.State, local []ensemble.Status) {
	if _, ok := reg.Ensemble(ClusterEnsemble); ok {
		return
	}
	i := slices.IndexFunc(local, func(st ensemble.Status) bool { return st.Ensemble == ClusterEnsemble })
	if i < 0 {
		return
	}
	st := local[i]
	for _, m := range st.Members {
		if _, ok := reg.Node(m); !ok {
			return // the reconcile rules register it first
		}
	}
	spec := registry.Spec{Name: ClusterEnsemble, Type: "registry", Replicas: len(st.Members), NoQuiesce: true}
	ctx, cancel := context.WithTimeout(ctx, registryTimeout)
	defer cancel()
	_ = s.proposeRegistry(ctx, registry.CreateEnsembleCmd(spec, st.Members))
}

// input assembles what the decision core needs.
func (s *Supervisor) input(reg registry.State, local []ensemble.Status, now time.Time) reconcile.Input {
	in := reconcile.Input{Self: s.cfg.NodeName, Now: now.UnixNano(), Damping: int64(s.cfg.Damping), ClusterEnsemble: ClusterEnsemble}
	in.Registry.Version = reg.Version
	for _, n := range reg.Nodes {
		in.Registry.Nodes = append(in.Registry.Nodes, reconcile.Node{ID: n.ID, Addr: n.Addr, Tags: n.Tags, State: n.State})
	}
	for _, e := range reg.Ensembles {
		in.Registry.Ensembles = append(in.Registry.Ensembles, reconcile.Ensemble{Name: e.Spec.Name, Type: e.Spec.Type,
			Replicas: e.Spec.Replicas, Constraints: e.Spec.Constraints, NoQuiesce: e.Spec.NoQuiesce,
			Epoch: e.Epoch, Members: e.Members, Target: e.Target})
	}
	s.mu.Lock()
	for _, m := range s.det.Members() {
		o := s.observed[m.ID]
		in.Detector = append(in.Detector, reconcile.Observed{ID: m.ID, State: m.State, Since: o.since.UnixNano(), Addr: m.Addr, Tags: m.Tags})
	}
	in.Hinted = map[hasup.EnsembleName]uint64{}
	for k, v := range s.hinted {
		in.Hinted[k] = v
	}
	s.mu.Unlock()
	for _, st := range local {
		in.Local = append(in.Local, reconcile.Replica{Name: st.Ensemble, Epoch: st.Epoch, Members: st.Members, View: st.View,
			IsPrimary: st.IsPrimary, Primary: st.Primary, Mode: st.Mode.String(), Stopped: st.Stopped})
		if st.Ensemble == ClusterEnsemble && st.IsPrimary {
			in.ClusterPrimary = true
		}
	}
	return in
}

// act carries out one decision.
func (s *Supervisor) act(ctx context.Context, reg registry.State, a reconcile.Action) error {
	ctx, cancel := context.WithTimeout(ctx, registryTimeout)
	defer cancel()
	switch a.Kind {
	case reconcile.ProposeUpsertNode:
		n := registry.Node{ID: a.Node, State: a.State, Addr: a.Addr, Tags: a.Tags}
		if n.Addr == "" {
			return fmt.Errorf("node %s: no transport address known yet", a.Node)
		}
		return s.proposeRegistry(ctx, registry.UpsertNodeCmd(n))
	case reconcile.ProposeNodeState:
		s.log.Info("recording a node's state", "peer", a.Node, "state", a.State.String(), "why", a.Reason)
		return s.proposeRegistry(ctx, registry.SetNodeStateCmd(a.Node, a.State))
	case reconcile.ProposeBeginReconfig:
		s.log.Info("replacing a member", "ensemble", a.Ensemble, "members", a.Members, "why", a.Reason)
		return s.proposeRegistry(ctx, registry.BeginReconfigCmd(a.Ensemble, a.Epoch, a.Members))
	case reconcile.ProposeFinishReconfig:
		return s.proposeRegistry(ctx, registry.FinishReconfigCmd(a.Ensemble, a.Epoch, a.Members))
	case reconcile.Reconfigure:
		// The reconfiguration commits in the ensemble, then the new epoch
		// starts; the wait is bounded, and a later pass retries.
		return s.node.Reconfigure(ctx, a.Ensemble, a.Members)
	case reconcile.StartReplica:
		e, ok := reg.Ensemble(a.Ensemble)
		if !ok {
			return ErrNotFound
		}
		f, err := s.newFSM(e.Spec.Type)
		if err != nil {
			return err
		}
		s.mu.Lock()
		// A node that lost its disk must recover, neither bootstrap nor
		// join: it may have acknowledged ops.
		lost := s.noBootstrap[a.Ensemble]
		s.mu.Unlock()
		bootstrap, join := a.Bootstrap && !lost, a.Join && !lost
		spec := host.Spec{Name: a.Ensemble, Members: a.Members, Epoch: a.Epoch, FSM: f,
			Bootstrap: bootstrap, Join: join, NoQuiesce: e.Spec.NoQuiesce}
		s.tuneWorkerLease(&spec, e.Spec.Type)
		err = s.node.Start(ctx, spec)
		if errors.Is(err, host.ErrExists) {
			return nil
		}
		return err
	case reconcile.StopReplica:
		s.log.Info("dropping a local replica", "ensemble", a.Ensemble, "why", a.Reason)
		if a.Delete {
			return s.node.Delete(ctx, a.Ensemble)
		}
		return s.node.Stop(ctx, a.Ensemble)
	case reconcile.SuspectPrimary:
		s.mu.Lock()
		s.hinted[a.Ensemble] = reconcile.Fence(a.Epoch, a.View)
		s.mu.Unlock()
		return s.node.SuspectPrimary(ctx, a.Ensemble)
	}
	return nil
}

// proposeRegistry proposes cmd to the cluster ensemble's primary.
func (s *Supervisor) proposeRegistry(ctx context.Context, cmd []byte) error {
	res, err := s.propose(ctx, ClusterEnsemble, s.voters(), cmd)
	if err != nil {
		return err
	}
	r, err := registry.DecodeResult(res)
	if err != nil {
		return err
	}
	return r.Error()
}

// propose sends cmd to the ensemble's primary, trying the last known
// leader first and then each member, until one takes it or ctx ends.
func (s *Supervisor) propose(ctx context.Context, name hasup.EnsembleName, members []hasup.NodeID, cmd []byte) ([]byte, error) {
	return s.toPrimary(ctx, name, members, func(ctx context.Context, to hasup.NodeID) ([]byte, error) {
		return s.node.ForwardPropose(ctx, to, name, cmd)
	})
}

// toPrimary runs call against the ensemble's primary (see propose),
// retrying on any error that another member or a later try may not give.
// For idempotent calls only: reads and the registry's commands.
func (s *Supervisor) toPrimary(ctx context.Context, name hasup.EnsembleName, members []hasup.NodeID, call func(context.Context, hasup.NodeID) ([]byte, error)) ([]byte, error) {
	return s.tryMembers(ctx, name, members, call, retryable)
}

// toPrimaryOnce is toPrimary for a call that must not run twice: it
// retries only errors that say the call was not taken (a backup's
// ErrNotPrimary, say), never a timeout or a view change.
func (s *Supervisor) toPrimaryOnce(ctx context.Context, name hasup.EnsembleName, members []hasup.NodeID, call func(context.Context, hasup.NodeID) ([]byte, error)) ([]byte, error) {
	return s.tryMembers(ctx, name, members, call, notTaken)
}

func (s *Supervisor) tryMembers(ctx context.Context, name hasup.EnsembleName, members []hasup.NodeID, call func(context.Context, hasup.NodeID) ([]byte, error), retry func(error) bool) ([]byte, error) {
	if len(members) == 0 {
		return nil, fmt.Errorf("ensemble %s: %w", name, ErrNotFound)
	}
	var last error
	backoff := 5 * time.Millisecond
	for attempt := 0; ; attempt++ {
		order := s.reachable(members)
		s.mu.Lock()
		leader := s.leaders[name]
		s.mu.Unlock()
		if i := slices.Index(order, leader); i > 0 {
			order[0], order[i] = order[i], order[0]
		}
		for _, to := range order {
			actx, cancel := context.WithTimeout(ctx, 2*time.Second)
			res, err := call(actx, to)
			cancel()
			if err == nil {
				s.mu.Lock()
				s.leaders[name] = to
				s.mu.Unlock()
				return res, nil
			}
			last = err
			if !retry(err) {
				if errors.Is(err, context.DeadlineExceeded) {
					return nil, fmt.Errorf("ensemble %s: %w: %w", name, ErrNoQuorum, err)
				}
				return nil, err
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("ensemble %s: %w (last: %w)", name, ErrNoQuorum, last)
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("ensemble %s: %w (last: %w)", name, ErrNoQuorum, last)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// reachable returns the members the detector does not hold failed or
// left (all of them if it holds every one so).
func (s *Supervisor) reachable(members []hasup.NodeID) []hasup.NodeID {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []hasup.NodeID
	for _, m := range members {
		if o, ok := s.observed[m]; m == s.cfg.NodeName || !ok || o.state == hasup.MemberAlive || o.state == hasup.MemberSuspect {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return slices.Clone(members)
	}
	return out
}

// notTaken: the error says the request was refused before it was ordered.
func notTaken(err error) bool {
	for _, e := range []error{ensemble.ErrNotPrimary, host.ErrNotFound, ensemble.ErrRecovering, ensemble.ErrReconfiguring, ensemble.ErrBusy} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// retryable: another member (or a later try) may succeed.
func retryable(err error) bool {
	for _, e := range []error{ensemble.ErrNotPrimary, host.ErrNotFound, ensemble.ErrViewChanged, ensemble.ErrRecovering,
		ensemble.ErrReconfiguring, ensemble.ErrBusy, context.DeadlineExceeded, host.ErrStopped} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
