package api

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
)

// requestMetrics is hasup_request_duration_seconds: how long the data
// handlers wait on an ensemble's Propose and Read.
//
// Design: the handlers stay as they are. The route of each data endpoint
// puts its op in the request's context (withOp), and the server's Backend
// is wrapped (timedBackend) so that the handles Lookup returns time each
// Propose and Read and observe it under the handle's ensemble and the
// context's op. Only ensembles the registry lists reach Lookup, so a
// request for a made-up name adds no series; ensembles the registry no
// longer lists lose theirs at the next scrape, which bounds the series by
// the registry's ensembles times the five ops.
//
// A lease read that finds no lease (ensemble.ErrNoLease) is not observed:
// the handler retries it at once as a linearizable read, and that read is
// the one observed. Failed calls are observed like successful ones: a
// timeout is latency a client saw.
type requestMetrics struct {
	b    Backend // for the registry, to drop deleted ensembles' series
	hist *prometheus.HistogramVec

	// mu orders observations against pruning, so that a series pruned is
	// never recreated behind seen's back.
	mu   sync.Mutex
	seen map[string]bool // ensembles with series in hist
}

func newRequestMetrics(b Backend) *requestMetrics {
	return &requestMetrics{b: b, seen: map[string]bool{},
		hist: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hasup_request_duration_seconds",
			Help:    "Seconds the API's handlers waited on an ensemble's Propose or Read, by ensemble and op (put, get, delete, list, lock).",
			Buckets: requestBuckets,
		}, []string{"ensemble", "op"})}
}

// Describe sends the histogram's descriptor.
func (m *requestMetrics) Describe(ch chan<- *prometheus.Desc) { m.hist.Describe(ch) }

// Collect drops the series of ensembles the registry no longer lists, then
// sends the rest. Without a registry nothing is dropped: no registry says
// nothing about what exists.
func (m *requestMetrics) Collect(ch chan<- prometheus.Metric) {
	reg, ok := m.b.Registry()
	m.mu.Lock()
	if ok {
		for name := range m.seen {
			if _, exists := reg.Ensemble(hasup.EnsembleName(name)); !exists {
				m.hist.DeletePartialMatch(prometheus.Labels{"ensemble": name})
				delete(m.seen, name)
			}
		}
	}
	m.mu.Unlock()
	m.hist.Collect(ch)
}

// observe records a call to the ensemble name that began at start, under
// the op in ctx; a call without an op (not from a data endpoint) is not
// recorded.
func (m *requestMetrics) observe(ctx context.Context, name hasup.EnsembleName, start time.Time) {
	op, ok := ctx.Value(opKey{}).(string)
	if !ok {
		return
	}
	d := time.Since(start).Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seen[string(name)] = true
	m.hist.WithLabelValues(string(name), op).Observe(d)
}

// opKey is the context key of the op label.
type opKey struct{}

// withOp returns h with op in its context: the op label of the Propose and
// Read calls it makes.
func withOp(op string, h handlerFunc) handlerFunc {
	return func(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
		return h(context.WithValue(ctx, opKey{}, op), w, r)
	}
}

// timedBackend is a Backend whose handles time their Propose and Read.
// It hides the wrapped Backend's optional interfaces (StatusLister,
// WorkerLister): look for those on the Backend NewServer was given.
type timedBackend struct {
	Backend
	m *requestMetrics
}

// Lookup returns the ensemble's handle, timed.
func (b timedBackend) Lookup(name hasup.EnsembleName) (EnsembleHandle, error) {
	h, err := b.Backend.Lookup(name)
	if err != nil || h == nil {
		return h, err
	}
	return timedHandle{EnsembleHandle: h, name: name, m: b.m}, nil
}

// timedHandle is an EnsembleHandle whose Propose and Read are observed.
type timedHandle struct {
	EnsembleHandle
	name hasup.EnsembleName
	m    *requestMetrics
}

// Propose proposes cmd and observes how long it took.
func (h timedHandle) Propose(ctx context.Context, cmd []byte) ([]byte, error) {
	defer h.m.observe(ctx, h.name, time.Now())
	return h.EnsembleHandle.Propose(ctx, cmd)
}

// ProposeSession proposes as a client's request, observed, if the handle
// can (see SessionProposer).
func (h timedHandle) ProposeSession(ctx context.Context, client, request uint64, cmd []byte) ([]byte, error) {
	sp, ok := h.EnsembleHandle.(SessionProposer)
	if !ok {
		return nil, errNoSessions
	}
	defer h.m.observe(ctx, h.name, time.Now())
	return sp.ProposeSession(ctx, client, request, cmd)
}

// Read reads and observes how long it took, unless it is a lease read
// without a lease, which the handler retries (see requestMetrics).
func (h timedHandle) Read(ctx context.Context, q []byte, mode ensemble.ReadMode) ([]byte, error) {
	start := time.Now()
	b, err := h.EnsembleHandle.Read(ctx, q, mode)
	if mode != ensemble.ReadLease || !errors.Is(err, ensemble.ErrNoLease) {
		h.m.observe(ctx, h.name, start)
	}
	return b, err
}
