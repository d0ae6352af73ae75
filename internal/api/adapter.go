package api

import (
	"context"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/supervisor"
)

// FromSupervisor returns s as a Backend. The adapter only changes the
// result types of Start and Lookup: *supervisor.Ensemble to EnsembleHandle.
func FromSupervisor(s *supervisor.Supervisor) Backend { return supervisorBackend{s} }

// supervisorBackend is a *supervisor.Supervisor seen as a Backend.
type supervisorBackend struct{ *supervisor.Supervisor }

// Start creates an ensemble; see supervisor.Supervisor.Start.
func (b supervisorBackend) Start(ctx context.Context, spec supervisor.Spec) (EnsembleHandle, error) {
	return handleOf(b.Supervisor.Start(ctx, spec))
}

// Lookup returns a handle on an ensemble; see supervisor.Supervisor.Lookup.
func (b supervisorBackend) Lookup(name hasup.EnsembleName) (EnsembleHandle, error) {
	return handleOf(b.Supervisor.Lookup(name))
}

// handleOf keeps a nil *supervisor.Ensemble a nil interface.
func handleOf(e *supervisor.Ensemble, err error) (EnsembleHandle, error) {
	if e == nil {
		return nil, err
	}
	return e, err
}

// Workers lists this node's worker runners; see supervisor.Supervisor.Workers.
func (b supervisorBackend) Workers(context.Context) ([]Worker, error) {
	var out []Worker
	for _, w := range b.Supervisor.Workers() {
		out = append(out, Worker{Name: w.Name, Node: string(w.Node), Mode: string(w.Mode), State: w.State,
			Role: w.Role, Restarts: w.Restarts, Fence: w.Fence, Healthy: w.Healthy})
	}
	return out, nil
}

// Join joins the cluster through addrs; see supervisor.Supervisor.Join.
func (b supervisorBackend) Join(addrs []string) (int, error) { return b.Supervisor.Join(addrs) }

// LeaveCluster leaves gracefully; see supervisor.Supervisor.Leave.
func (b supervisorBackend) LeaveCluster() error { return b.Supervisor.Leave() }

// ForceLeave marks a failed node left; see supervisor.Supervisor.ForceLeave.
func (b supervisorBackend) ForceLeave(node string) error {
	return b.Supervisor.ForceLeave(hasup.NodeID(node))
}
