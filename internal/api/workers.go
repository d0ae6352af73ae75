package api

import (
	"cmp"
	"context"
	"net/http"
	"slices"
)

// Workers are not implemented in the supervisor yet. WorkerLister is the
// hook they will plug into: a Backend that has it answers GET /v1/workers;
// one without it (FromSupervisor's, for now) answers 404 there, which the
// status page shows as "not reported". /metrics has no worker series yet.

// WorkerLister is an optional capability of a Backend, found by type
// assertion: the workers of the cluster, one entry per worker and node it
// runs on (or should). It may be called from many goroutines at once.
type WorkerLister interface {
	Workers(ctx context.Context) ([]Worker, error)
}

// Worker is one worker on one node, an element of GET /v1/workers. The
// shape is provisional until the supervisor runs workers: it may gain
// fields, but these keep their meaning.
type Worker struct {
	// Name is the worker's name from the config.
	Name string `json:"name"`
	// Node is the node name the worker runs on (or should).
	Node string `json:"node"`
	// Mode is "singleton" or "every".
	Mode string `json:"mode"`
	// State is the runner's state on that node ("running", "stopped",
	// "backoff", ...).
	State string `json:"state"`
	// Role is "primary" or "backup": HASUP_ROLE.
	Role string `json:"role"`
	// Restarts counts the restarts the restart policy made on that node.
	Restarts int `json:"restarts"`
	// Fence is the fencing token the command was given: HASUP_FENCE.
	Fence uint64 `json:"fence"`
	// Healthy is true while the process runs and its last check passed.
	Healthy bool `json:"healthy"`
}

// listWorkers answers GET /v1/workers from wl, sorted by name, then node.
func listWorkers(wl WorkerLister) handlerFunc {
	return func(ctx context.Context, w http.ResponseWriter, _ *http.Request) error {
		ws, err := wl.Workers(ctx)
		if err != nil {
			return err
		}
		out := slices.Clone(ws)
		if out == nil {
			out = []Worker{}
		}
		slices.SortFunc(out, func(a, b Worker) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Node, b.Node)) })
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}
