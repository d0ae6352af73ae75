package api

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strconv"
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

// WorkerLogger is an optional capability of a Backend: the last bytes of a
// worker's output on this node (GET /v1/workers/{name}/logs?bytes=N,
// default 64 KiB, at most 1 MiB).
type WorkerLogger interface {
	WorkerLogs(name string, n int) ([]byte, error)
}

// getWorker answers GET /v1/workers/{name}: the worker on this node.
func getWorker(wl WorkerLister) handlerFunc {
	return func(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
		ws, err := wl.Workers(ctx)
		if err != nil {
			return err
		}
		name := r.PathValue("name")
		for _, wk := range ws {
			if wk.Name == name {
				writeJSON(w, http.StatusOK, wk)
				return nil
			}
		}
		return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "no worker " + strconv.Quote(name) + " on this node"}
	}
}

// workerLogs answers GET /v1/workers/{name}/logs as text/plain.
func workerLogs(wl WorkerLogger) handlerFunc {
	return func(_ context.Context, w http.ResponseWriter, r *http.Request) error {
		n := 64 << 10
		if q := r.URL.Query().Get("bytes"); q != "" {
			v, err := strconv.Atoi(q)
			if err != nil || v < 1 || v > 1<<20 {
				return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: "bytes must be 1 to 1048576"}
			}
			n = v
		}
		b, err := wl.WorkerLogs(r.PathValue("name"), n)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, err = w.Write(b)
		return err
	}
}
