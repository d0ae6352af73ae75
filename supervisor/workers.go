package supervisor

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/fsm/registry"
	"github.com/hasup/hasup/supervisor/host"
	"github.com/hasup/hasup/supervisor/placement"
	"github.com/hasup/hasup/supervisor/worker"
)

// Workers (DESIGN.md "Workers").
//
// A worker is an ensemble of its own, named after it, whose FSM is a kv
// store (the worker's replicated KV, reachable through HASUP_API), whose
// primary holds its lease continuously (NoQuiesce), and whose lease is in
// its registry type (see workerEnsembleType). Each node that
// hosts a replica of it runs a worker.Runner and tells it, every
// ReconcileInterval, what it should do:
//
//   - singleton: run while the local replica is the primary of a normal
//     view and holds its lease, with HASUP_FENCE the view's fence, and be
//     dead before the lease can run out (Deadline: the lease's ticks left,
//     less one, counted from now). A new primary holds a lease only once
//     the backups' promises to the old one have run out, and the old one
//     stopped its command before its own lease ran out: two instances
//     never overlap, within the lease's clock-drift bound.
//   - every: run on every member, with its role.
//
// A runner that gives up (its restart policy is exhausted) on the
// primary moves the worker: the node proposes to replace itself in the
// worker's ensemble, and the new epoch's primary, elsewhere, starts it.

// WorkerSpec describes a worker, as the config declares it.
type WorkerSpec struct {
	Name      string
	Mode      worker.Mode
	Replicas  int
	Command   []string
	Env       map[string]string
	Dir       string
	Restart   worker.Restart
	Check     worker.HealthCheck
	StopGrace time.Duration
}

// WorkerStatus is one worker's state on this node.
type WorkerStatus struct {
	worker.Status
	Mode worker.Mode
	Node hasup.NodeID
}

// SetWorkers replaces the declared workers (a config reload). Runners of
// workers no longer declared are stopped.
func (s *Supervisor) SetWorkers(specs []WorkerSpec) error {
	for _, w := range specs {
		if w.Name == "" || len(w.Command) == 0 {
			return fmt.Errorf("%w: worker %q needs a name and a command", ErrInvalid, w.Name)
		}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.workerSpecs = slices.Clone(specs)
	return nil
}

// Workers returns the state of every worker runner on this node, sorted
// by name.
func (s *Supervisor) Workers() []WorkerStatus {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var out []WorkerStatus
	for _, w := range s.workerSpecs {
		if r := s.runners[w.Name]; r != nil {
			out = append(out, WorkerStatus{Status: r.Status(), Mode: w.Mode, Node: s.cfg.NodeName})
		}
	}
	slices.SortFunc(out, func(a, b WorkerStatus) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// WorkerLogs returns the last n bytes of a worker's output on this node.
func (s *Supervisor) WorkerLogs(name string, n int) ([]byte, error) {
	s.wmu.Lock()
	r := s.runners[name]
	s.wmu.Unlock()
	if r == nil {
		return nil, fmt.Errorf("worker %s: %w", name, ErrNotFound)
	}
	return r.Logs(n)
}

// manageWorkers is one pass over the declared workers.
func (s *Supervisor) manageWorkers(ctx context.Context, reg registry.State, local []ensemble.Status, asOf time.Time) {
	s.wmu.Lock()
	specs := slices.Clone(s.workerSpecs)
	leaving := s.leaving
	s.wmu.Unlock()
	if leaving {
		return
	}
	for _, w := range specs {
		name := hasup.EnsembleName(w.Name)
		if _, ok := reg.Ensemble(name); !ok {
			s.declareWorker(ctx, w)
			continue
		}
		i := slices.IndexFunc(local, func(st ensemble.Status) bool { return st.Ensemble == name })
		r := s.runner(w)
		if r == nil {
			continue
		}
		if i < 0 {
			r.Set(worker.Desired{})
			continue
		}
		st := local[i]
		d := s.desired(w, st, asOf)
		r.Set(d)
		if d.Run && st.IsPrimary && r.Status().State == worker.StateFailed {
			s.moveWorker(ctx, reg, w, st)
		}
	}
	s.stopUndeclared(specs)
}

// desired is what the runner of w should do given its replica's status.
func (s *Supervisor) desired(w WorkerSpec, st ensemble.Status, asOf time.Time) worker.Desired {
	// HASUP_FENCE is the view's fence plus one: it grows with every view
	// and epoch, and is never 0 (which fenced storage often reads as
	// "none").
	d := worker.Desired{Fence: st.Fence + 1, Role: worker.RoleBackup, Env: map[string]string{}}
	if s.cfg.APIAddr != "" {
		d.Env["HASUP_API"] = s.cfg.APIAddr
	}
	if st.IsPrimary {
		d.Role = worker.RolePrimary
	}
	switch w.Mode {
	case worker.ModeEvery:
		d.Run = st.Mode == ensemble.ModeNormal
	default:
		d.Run = st.IsPrimary && st.HoldsLease && st.LeaseLeft > 1
		if d.Run {
			// The lease's ticks left, less one for the part of a tick
			// that already passed since the replica last counted, from
			// a time taken before its status was asked.
			d.Deadline = asOf.Add(time.Duration(st.LeaseLeft-1) * s.cfg.TickInterval)
		}
	}
	return d
}

// runner returns w's runner, creating it.
func (s *Supervisor) runner(w WorkerSpec) *worker.Runner {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if r := s.runners[w.Name]; r != nil {
		return r
	}
	cfg := worker.DefaultConfig()
	cfg.Name, cfg.Mode, cfg.Command, cfg.Env, cfg.Dir = w.Name, w.Mode, w.Command, w.Env, w.Dir
	cfg.Restart, cfg.Check, cfg.Node, cfg.Logger = w.Restart, w.Check, string(s.cfg.NodeName), s.log
	cfg.LogDir = filepath.Join(s.cfg.DataDir, "logs")
	if w.StopGrace > 0 {
		cfg.StopGrace = w.StopGrace
	}
	r, err := worker.New(cfg)
	if err != nil {
		s.log.Error("cannot run worker", "worker", w.Name, "err", err)
		return nil
	}
	s.runners[w.Name] = r
	return r
}

// declareWorker creates w's ensemble (any node may; one wins).
func (s *Supervisor) declareWorker(ctx context.Context, w WorkerSpec) {
	s.wmu.Lock()
	last := s.declared[w.Name]
	if time.Since(last) < time.Second {
		s.wmu.Unlock()
		return
	}
	s.declared[w.Name] = time.Now()
	s.wmu.Unlock()
	go func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		replicas := w.Replicas
		if replicas == 0 {
			replicas = 3
		}
		_, err := s.Start(sctx, Spec{Name: hasup.EnsembleName(w.Name), Type: workerEnsembleType(w), Replicas: replicas, NoQuiesce: true})
		if err != nil && !errors.Is(err, ErrExists) {
			s.log.Debug("declaring a worker's ensemble", "worker", w.Name, "err", err)
		}
	}()
}

// moveWorker proposes to replace this node in w's ensemble after its
// runner gave up here.
func (s *Supervisor) moveWorker(ctx context.Context, reg registry.State, w WorkerSpec, st ensemble.Status) {
	en, ok := reg.Ensemble(hasup.EnsembleName(w.Name))
	if !ok || en.Target != nil || en.Epoch != st.Epoch {
		return
	}
	load := reg.Load()
	var nodes []placement.Node
	for _, n := range reg.Nodes {
		l := load[n.ID]
		nodes = append(nodes, placement.Node{ID: n.ID, Tags: n.Tags, Alive: n.State == hasup.MemberAlive, Replicas: l.Replicas, Primaries: l.Primaries})
	}
	target, err := placement.Replace(placement.Request{Ensemble: en.Spec.Name, Replicas: len(en.Members)}, en.Members, s.cfg.NodeName, nodes)
	if err != nil {
		s.log.Warn("worker failed here and cannot move", "worker", w.Name, "err", err)
		return
	}
	s.log.Warn("worker failed here; moving it", "worker", w.Name, "members", target)
	ctx, cancel := context.WithTimeout(ctx, registryTimeout)
	defer cancel()
	if err := s.proposeRegistry(ctx, registry.BeginReconfigCmd(en.Spec.Name, en.Epoch, target)); err != nil {
		s.log.Debug("moving a worker", "worker", w.Name, "err", err)
	}
}

// A worker's ensemble is of FSM type "worker" (mode every) or
// "worker:lease=Nms" (singleton): a kv store whose lease, for a singleton,
// is N ms. The lease lives in the registry's type, so every member runs the
// ensemble with the same timings whatever its own config says (the lease
// argument needs them equal). It is the worker's stop grace plus a second
// when the worker is declared: the command must be stopped, SIGKILL
// included, within the lease it started under. A node whose config later
// gives a longer stop grace than the lease allows starts nothing (the
// runner refuses a start too close to its deadline) and says so.
const (
	workerType       = "worker"
	workerLeaseType  = "worker:lease="
	workerLeaseSlack = time.Second
)

// workerEnsembleType is the registry type of w's ensemble.
func workerEnsembleType(w WorkerSpec) string {
	if w.Mode == worker.ModeEvery {
		return workerType
	}
	grace := w.StopGrace
	if grace <= 0 {
		grace = worker.DefaultConfig().StopGrace
	}
	return fmt.Sprintf("%s%dms", workerLeaseType, (grace + workerLeaseSlack).Milliseconds())
}

// isWorkerType reports whether typ names a worker's ensemble, and its lease.
func isWorkerType(typ string) (lease time.Duration, ok bool) {
	if typ == workerType {
		return 0, true
	}
	rest, found := strings.CutPrefix(typ, workerLeaseType)
	if !found {
		return 0, false
	}
	d, err := time.ParseDuration(rest)
	if err != nil || d <= 0 {
		return 0, false
	}
	return d, true
}

// tuneWorkerLease gives a singleton worker's ensemble the lease its
// registry type names, and a view-change timeout above it. Failover of a
// singleton therefore takes about its stop grace plus a second.
func (s *Supervisor) tuneWorkerLease(spec *host.Spec, typ string) {
	lease, ok := isWorkerType(typ)
	if !ok || lease == 0 {
		return
	}
	ticks := int(lease / s.cfg.TickInterval)
	spec.LeaseTicks = ticks
	spec.DriftMarginTicks = max(2, ticks/8) // 12% of rate drift between nodes
	spec.ViewChangeTicks = ticks + max(10, ticks/10)
}

// stopUndeclared stops the runners of workers no longer declared.
func (s *Supervisor) stopUndeclared(specs []WorkerSpec) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for name, r := range s.runners {
		if !slices.ContainsFunc(specs, func(w WorkerSpec) bool { return w.Name == name }) {
			go func() { _ = r.Close(context.Background()) }()
			delete(s.runners, name)
		}
	}
}

// closeWorkers stops every runner, waiting at most until ctx ends.
func (s *Supervisor) closeWorkers(ctx context.Context) {
	s.wmu.Lock()
	runners := s.runners
	s.runners = map[string]*worker.Runner{}
	s.wmu.Unlock()
	for _, r := range runners {
		_ = r.Close(ctx)
	}
}
