package api

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
)

// GET /metrics: this node's metrics in Prometheus's text format.
//
// Each server has its own prometheus.Registry, never the global one, so that
// several agents in one process (tests, hasup demo) do not collide. It holds:
//
//	hasup_ensemble_view{ensemble}               gauge    the replica's view number (views restart at 0 in each epoch)
//	hasup_ensemble_epoch{ensemble}              gauge    the replica's epoch
//	hasup_ensemble_fence{ensemble}              gauge    the fencing token, ensemble.Fence(epoch, view)
//	hasup_ensemble_view_changes_total{ensemble} counter  views the replica moved through (see below)
//	hasup_ensemble_commit{ensemble}             gauge    the commit number, an op number
//	hasup_ensemble_commits_total{ensemble}      counter  ops committed (see below)
//	hasup_ensemble_lag_ops{ensemble}            gauge    ops committed but not yet applied here (commit − applied)
//	hasup_ensemble_is_primary{ensemble}         gauge    1 if the replica is primary of a normal view, else 0
//	hasup_ensemble_holds_lease{ensemble}        gauge    1 if the replica is primary with a valid lease, else 0
//	hasup_ensemble_quiescent{ensemble}          gauge    1 if the replica is idle (no heartbeats, no timers), else 0
//	hasup_ensemble_mode{ensemble,mode}          gauge    1 for the replica's mode (normal, view-change, recovering,
//	                                                     joining, retired), 0 for the others
//	hasup_ensemble_status_up                    gauge    1 if this node's replicas answered for this scrape, else 0
//	hasup_members{state}                        gauge    nodes in each failure-detection state (alive, suspect,
//	                                                     failed, left), as this node's Serf sees them
//	hasup_request_duration_seconds{ensemble,op} histogram seconds the API's handlers waited on an ensemble's
//	                                                     Propose or Read; op is put, get, delete, list or lock
//
// plus the Go runtime's go_* and the process's process_* metrics and
// promhttp's own promhttp_metric_handler_errors_total.
//
// The hasup_ensemble_* series cover the replicas this node hosts (the
// Backend's optional StatusLister; none without it), sampled when Prometheus
// scrapes: a sampler of our own would cost a goroutine and a timer per
// server and be no fresher than the scrapes that read it. The two counters
// are derived from those samples, because the replica keeps no counters of
// its own:
//   - hasup_ensemble_commits_total grows by the commit number's increase
//     between scrapes, so no commit is missed.
//   - hasup_ensemble_view_changes_total grows by the view number's increase
//     between scrapes within one epoch, so several view changes between two
//     scrapes all count (a failed view change moves the view too, and counts).
//     Views restart at 0 in a new epoch: a scrape that sees a newer epoch adds
//     the new epoch's view, and the old epoch's view changes after the
//     previous scrape are missed.
//
// Both start at 0 the first time a scrape sees the replica, and a replica
// that goes away (stopped, retired and deleted) loses its series; one that
// comes back starts again from 0, which Prometheus's rate() reads as a
// counter reset. A commit or view number that goes backwards in the same
// epoch (the replica was deleted and recreated between scrapes) is taken as
// the new baseline and adds nothing.
//
// Workers are not implemented yet and have no metrics. When they are, a
// WorkerLister backend is the hook: its Workers answer GET /v1/workers
// today, and the metrics (hasup_worker_restarts_total, ...) belong here.

// StatusLister is an optional capability of a Backend, found by type
// assertion: the status of every replica this node hosts, sorted by
// ensemble name. *supervisor.Supervisor has it (LocalStatuses), so
// FromSupervisor's Backend does; without it /metrics has no hasup_ensemble_*
// series. It may be called from many goroutines at once.
type StatusLister interface {
	LocalStatuses(ctx context.Context) ([]ensemble.Status, error)
}

// The op label values of hasup_request_duration_seconds.
const (
	opPut    = "put"
	opGet    = "get"
	opDelete = "delete"
	opList   = "list"
	opLock   = "lock" // acquire and release
)

// requestBuckets are the bounds of hasup_request_duration_seconds in
// seconds: from a lease read on loopback (under a millisecond) to the
// default RequestTimeout (10 s).
var requestBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// newMetricsHandler returns the /metrics handler on a registry of its own,
// and the request metrics the handlers observe.
func newMetricsHandler(b Backend, log *slog.Logger) (http.Handler, *requestMetrics) {
	reg := prometheus.NewRegistry()
	requests := newRequestMetrics(b)
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		memberCollector{b: b},
		requests,
	)
	if sl, ok := b.(StatusLister); ok {
		reg.MustRegister(newEnsembleCollector(sl, log))
	}
	if wl, ok := b.(WorkerLister); ok {
		reg.MustRegister(workerCollector{wl: wl})
	}
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      reg,
		// A scrape runs LocalStatuses on the node's event loop: more than
		// a few at once only queue there.
		MaxRequestsInFlight: 4,
		Timeout:             StatusTimeout + StatusTimeout/2,
	})
	return h, requests
}

// ensembleCollector is the hasup_ensemble_* metrics: it samples the local
// replicas' statuses at each scrape and derives the counters from the
// previous sample (see the block above).
type ensembleCollector struct {
	sl  StatusLister
	log *slog.Logger

	// mu serialises scrapes, the sampling included, so that samples are
	// applied in the order they were taken and a counter never counts a
	// step twice.
	mu   sync.Mutex
	last map[hasup.EnsembleName]*replicaCounts
}

// replicaCounts is what a collector remembers of one replica between
// scrapes.
type replicaCounts struct {
	epoch, view, commit  uint64 // at the last scrape
	viewChanges, commits uint64 // the counters' values
}

var (
	descView = prometheus.NewDesc("hasup_ensemble_view",
		"View number of this node's replica of the ensemble (restarts at 0 in each epoch).", []string{"ensemble"}, nil)
	descEpoch = prometheus.NewDesc("hasup_ensemble_epoch",
		"Epoch (configuration number) of this node's replica of the ensemble.", []string{"ensemble"}, nil)
	descFence = prometheus.NewDesc("hasup_ensemble_fence",
		"Fencing token of this node's replica: epoch and view packed into one growing integer.", []string{"ensemble"}, nil)
	descViewChanges = prometheus.NewDesc("hasup_ensemble_view_changes_total",
		"Views this node's replica moved through, from the view number's increase between scrapes within an epoch.", []string{"ensemble"}, nil)
	descCommit = prometheus.NewDesc("hasup_ensemble_commit",
		"Commit number (an op number) of this node's replica.", []string{"ensemble"}, nil)
	descCommits = prometheus.NewDesc("hasup_ensemble_commits_total",
		"Ops committed, from the commit number's increase between scrapes.", []string{"ensemble"}, nil)
	descLag = prometheus.NewDesc("hasup_ensemble_lag_ops",
		"Ops committed but not yet applied by this node's replica (commit - applied).", []string{"ensemble"}, nil)
	descIsPrimary = prometheus.NewDesc("hasup_ensemble_is_primary",
		"1 if this node's replica is the primary of a normal view, else 0.", []string{"ensemble"}, nil)
	descHoldsLease = prometheus.NewDesc("hasup_ensemble_holds_lease",
		"1 if this node's replica is the primary and holds a valid lease, else 0.", []string{"ensemble"}, nil)
	descQuiescent = prometheus.NewDesc("hasup_ensemble_quiescent",
		"1 if this node's replica is idle (no heartbeats, no timers), else 0.", []string{"ensemble"}, nil)
	descMode = prometheus.NewDesc("hasup_ensemble_mode",
		"1 for the mode this node's replica is in, 0 for the others.", []string{"ensemble", "mode"}, nil)
	descStatusUp = prometheus.NewDesc("hasup_ensemble_status_up",
		"1 if this node's replicas answered for this scrape, else 0 (and no other hasup_ensemble_* series).", nil, nil)
	descMembers = prometheus.NewDesc("hasup_members",
		"Nodes in each failure-detection state, as this node sees them.", []string{"state"}, nil)
)

func newEnsembleCollector(sl StatusLister, log *slog.Logger) *ensembleCollector {
	return &ensembleCollector{sl: sl, log: log, last: map[hasup.EnsembleName]*replicaCounts{}}
}

// Describe sends the descriptors of every series Collect may send.
func (c *ensembleCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descView, descEpoch, descFence, descViewChanges, descCommit, descCommits,
		descLag, descIsPrimary, descHoldsLease, descQuiescent, descMode, descStatusUp} {
		ch <- d
	}
}

// Collect samples the local replicas and sends their series. The sample is
// bounded by StatusTimeout: the Collector interface carries no context.
func (c *ensembleCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), StatusTimeout)
	defer cancel()
	sts, err := c.sl.LocalStatuses(ctx)
	if err != nil {
		c.log.Warn("metrics: no local statuses", "err", err)
		ch <- prometheus.MustNewConstMetric(descStatusUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descStatusUp, prometheus.GaugeValue, 1)
	seen := make(map[hasup.EnsembleName]bool, len(sts))
	for _, st := range sts {
		if seen[st.Ensemble] {
			continue // one replica per ensemble and node; a second would repeat the series
		}
		seen[st.Ensemble] = true
		rc, ok := c.last[st.Ensemble]
		if !ok {
			rc = &replicaCounts{epoch: st.Epoch, view: st.View, commit: st.Commit}
			c.last[st.Ensemble] = rc
		}
		rc.observe(st)
		collectReplica(ch, st, rc)
	}
	for name := range c.last {
		if !seen[name] {
			delete(c.last, name)
		}
	}
}

// observe advances the counters from the previous sample to st.
func (rc *replicaCounts) observe(st ensemble.Status) {
	switch {
	case st.Epoch == rc.epoch && st.View >= rc.view:
		rc.viewChanges += st.View - rc.view
	case st.Epoch > rc.epoch:
		rc.viewChanges += st.View // the new epoch's views past its view 0
	}
	if st.Commit >= rc.commit {
		rc.commits += st.Commit - rc.commit
	}
	rc.epoch, rc.view, rc.commit = st.Epoch, st.View, st.Commit
}

// collectReplica sends one replica's series.
func collectReplica(ch chan<- prometheus.Metric, st ensemble.Status, rc *replicaCounts) {
	name := string(st.Ensemble)
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name)
	}
	lag := uint64(0)
	if st.Commit > st.Applied {
		lag = st.Commit - st.Applied
	}
	gauge(descView, float64(st.View))
	gauge(descEpoch, float64(st.Epoch))
	gauge(descFence, float64(st.Fence))
	gauge(descCommit, float64(st.Commit))
	gauge(descLag, float64(lag))
	gauge(descIsPrimary, boolValue(st.IsPrimary))
	gauge(descHoldsLease, boolValue(st.HoldsLease))
	gauge(descQuiescent, boolValue(st.Quiescent))
	ch <- prometheus.MustNewConstMetric(descViewChanges, prometheus.CounterValue, float64(rc.viewChanges), name)
	ch <- prometheus.MustNewConstMetric(descCommits, prometheus.CounterValue, float64(rc.commits), name)
	for m := ensemble.ModeNormal; m <= ensemble.ModeRetired; m++ {
		ch <- prometheus.MustNewConstMetric(descMode, prometheus.GaugeValue, boolValue(st.Mode == m), name, m.String())
	}
}

// memberCollector is hasup_members: Members() counted by state at each
// scrape, every state always present.
type memberCollector struct{ b Backend }

// memberStates are the label values of hasup_members, in order.
var memberStates = []hasup.MemberState{hasup.MemberAlive, hasup.MemberSuspect, hasup.MemberFailed, hasup.MemberLeft}

// Describe sends hasup_members's descriptor.
func (c memberCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descMembers }

// Collect counts the members in each state; a state outside memberStates
// is not counted.
func (c memberCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[hasup.MemberState]int{}
	for _, m := range c.b.Members() {
		counts[m.State]++
	}
	for _, s := range memberStates {
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(counts[s]), s.String())
	}
}

// The per-worker metrics (labels worker and node): hasup_worker_restarts_total
// (counter: restarts the restart policy made on this node since the agent
// started), hasup_worker_running (gauge, 0 or 1), hasup_worker_healthy
// (gauge, 0 or 1: running and its last check passed), hasup_worker_fence
// (gauge: the fence its command was given).
var (
	descWorkerRestarts = prometheus.NewDesc("hasup_worker_restarts_total", "Restarts of the worker's command on this node.", []string{"worker", "node"}, nil)
	descWorkerRunning  = prometheus.NewDesc("hasup_worker_running", "1 while the worker's command runs on this node.", []string{"worker", "node"}, nil)
	descWorkerHealthy  = prometheus.NewDesc("hasup_worker_healthy", "1 while the worker's command runs and its last check passed.", []string{"worker", "node"}, nil)
	descWorkerFence    = prometheus.NewDesc("hasup_worker_fence", "The fencing token the worker's command was given (HASUP_FENCE).", []string{"worker", "node"}, nil)
)

// workerCollector samples Workers at each scrape.
type workerCollector struct{ wl WorkerLister }

// Describe sends the worker metrics' descriptors.
func (c workerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWorkerRestarts, descWorkerRunning, descWorkerHealthy, descWorkerFence} {
		ch <- d
	}
}

// Collect reports every worker of this node.
func (c workerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ws, err := c.wl.Workers(ctx)
	if err != nil {
		return
	}
	for _, w := range ws {
		ch <- prometheus.MustNewConstMetric(descWorkerRestarts, prometheus.CounterValue, float64(w.Restarts), w.Name, w.Node)
		ch <- prometheus.MustNewConstMetric(descWorkerRunning, prometheus.GaugeValue, boolValue(w.State == "running"), w.Name, w.Node)
		ch <- prometheus.MustNewConstMetric(descWorkerHealthy, prometheus.GaugeValue, boolValue(w.Healthy), w.Name, w.Node)
		ch <- prometheus.MustNewConstMetric(descWorkerFence, prometheus.GaugeValue, float64(w.Fence), w.Name, w.Node)
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
