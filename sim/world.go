package sim

import (
	"container/heap"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/fnv"
	"math/rand/v2"
	"runtime/debug"
	"slices"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/fsm/kv"
	"github.com/hasup/hasup/supervisor/reconcile"
)

// Result summarises one seed's run.
type Result struct {
	Seed             uint64
	Params           Params
	Ops              int // client operations completed (including indeterminate ones)
	Acked            int // writes acknowledged to clients
	Faults           map[string]int
	Anomaly          string // first safety violation, "" if none
	Lost             int    // acknowledged writes missing from the final state
	LivenessFailure  string // why the liveness phase failed, "" if it passed
	Trace            uint64 // hash of the run's event trace
	Steps            int64
	CommittedPerEns  []uint64
	LinearizedChecks int
	ConvergeTicks    int64 // ticks the liveness phase took to converge
	// CommitTargetMissed: some ensemble committed fewer than three
	// checkpoint intervals in the safety phase, so compaction and state
	// transfer may not have run.
	CommitTargetMissed bool
	LeaseReads         int // lease reads answered (and checked as linearizable)
	Reconfigs          int // reconfigurations whose new epoch started
	StaleReads         int // stale reads answered (and checked against their bounds)
}

// extraTicks: after the liveness bound passes, the run goes on this long to
// tell "slow" from "stuck" in the report.
const extraTicks = 2000

// world is one run: nodes, ensembles, network, clients and checkers.
type world struct {
	seed       uint64
	rng        *rand.Rand
	p          Params
	now        int64
	nodes      []*simNode
	ens        []*simEnsemble
	events     eventQueue
	seq        uint64
	blocked    map[[2]int]bool // directed node pairs that cannot talk
	clients    []*client
	calls      map[uint64]*call // outstanding client attempts by reply ID
	nextID     uint64
	trace      hash.Hash64
	res        Result
	live       bool         // in the liveness phase: no new faults
	reconfigAt []int64      // steps at which to try a reconfiguration
	reg        *simRegistry // supervised runs: the cluster registry
	debug      func(format string, args ...any)
}

// Debug runs one seed printing its events through logf, for replaying a
// failure by hand.
func Debug(seed uint64, logf func(format string, args ...any)) Result {
	return run(seed, modeDrawn, logf)
}

// mode says whether a run is supervised: as drawn for its seed, or forced
// (for regression seeds found before supervised runs existed, and for
// replaying a seed the other way).
type mode uint8

const (
	modeDrawn mode = iota
	modeClassic
	modeSupervised
)

type simNode struct {
	idx         int
	id          hasup.NodeID
	up          bool
	restartAt   int64
	clockOffset int64
	period      float64       // steps between this node's ticks: its clock rate
	nextTick    float64       // step of its next tick
	reps        []*simReplica // by ensemble index; nil where not a member
	heard       []int64       // by node index: step of the last node heartbeat from it
	ticks       int           // ticks since the start, for node heartbeats

	// Supervised runs: the node's supervisor (supervisor.go).
	tags      map[string]string
	det       []*detEntry // by node index: its failure detector's view
	reg       reconcile.Registry
	hinted    map[hasup.EnsembleName]uint64
	supTicks  int
	supBusy   bool   // its last pass decided something (beyond Blocked)
	lostStore []bool // by ensemble index: its replica's storage was lost, and not deleted since
}

type simReplica struct {
	w       *world
	e       *simEnsemble
	node    *simNode
	r       *ensemble.Replica
	store   *kv.Store
	disk    *disk
	busy    bool
	doneAt  int64
	pending ensemble.Ready
	inbox   []func()
	last    ensemble.Status
	faulted bool      // had a disk fault (wipe or bit flip) in this run
	highest uint64    // highest fence (epoch, view) made durable
	join    *reconfig // the reconfiguration that added this replica
	joined  bool      // it has persisted state since
	gone    bool      // deleted: removed from the ensemble with no storage left
}

// Run runs one seed and returns its result. It never panics: a panic in the
// code under test is reported as an anomaly.
func Run(seed uint64) (res Result) { return run(seed, modeDrawn, nil) }

func run(seed uint64, m mode, logf func(format string, args ...any)) (res Result) {
	w := newWorld(seed, m)
	w.debug = logf
	defer func() {
		if v := recover(); v != nil {
			if f, ok := v.(failure); ok {
				w.res.Anomaly = string(f)
			} else {
				w.res.Anomaly = fmt.Sprintf("panic at step %d: %v", w.now, v)
				if w.debug != nil {
					w.debug("%s", debug.Stack())
				}
			}
		}
		w.res.Trace = w.trace.Sum64()
		w.res.Steps = w.now
		res = w.res
	}()
	w.run()
	return w.res
}

type failure string

// fail stops the run with a safety violation.
func (w *world) fail(format string, args ...any) {
	panic(failure(fmt.Sprintf("step %d: ", w.now) + fmt.Sprintf(format, args...)))
}

func newWorld(seed uint64, m mode) *world {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	w := &world{seed: seed, rng: rng, p: drawParams(rng), blocked: map[[2]int]bool{}, calls: map[uint64]*call{}, trace: fnv.New64a()}
	if m == modeSupervised || (m == modeDrawn && supervisedSeed(seed)) {
		drawSupervised(rng, &w.p)
	}
	w.res = Result{Seed: seed, Params: w.p, Faults: map[string]int{}}
	for i := 0; i < w.p.Nodes; i++ {
		period := float64(w.p.TickSteps) * (1 + rng.Float64()*w.p.DriftMax)
		n := &simNode{idx: i, id: hasup.NodeID(fmt.Sprintf("n%d", i)), up: true, period: period, nextTick: rng.Float64() * period}
		if w.p.Zones > 0 {
			n.tags = map[string]string{"zone": fmt.Sprintf("z%d", i%w.p.Zones)}
		}
		w.nodes = append(w.nodes, n)
	}
	for i, size := range w.p.Ensembles {
		e := newSimEnsemble(w, i, size)
		w.ens = append(w.ens, e)
		for c := 0; c < w.p.ClientsPer; c++ {
			w.clients = append(w.clients, newClient(w, e, len(w.clients)))
		}
	}
	for _, n := range w.nodes {
		n.reps = make([]*simReplica, len(w.ens))
		n.heard = make([]int64, len(w.nodes))
	}
	for i := 0; i < w.p.Reconfigs; i++ {
		w.reconfigAt = append(w.reconfigAt, int64(200+rng.IntN(w.p.SafetySteps)))
	}
	slices.Sort(w.reconfigAt)
	for _, e := range w.ens {
		for _, id := range e.members {
			n := w.node(id)
			rep := &simReplica{w: w, e: e, node: n, disk: &disk{}}
			n.reps[e.idx] = rep
			e.replicas = append(e.replicas, rep)
			rep.start(true)
			// Creating an ensemble makes its first state durable before
			// anything else happens, as the runtime does.
			rep.pump()
			if rep.busy {
				rep.complete()
			}
		}
	}
	if w.p.Supervised {
		w.reg = newRegistry(w)
		w.res.Faults["supervised_runs"]++
		for _, n := range w.nodes {
			w.resetSupervisor(n)
			n.reg = w.reg.read()
		}
	}
	return w
}

// resetSupervisor is a node's supervisor as it starts: its detector
// learns the cluster afresh, and it has read no registry and hinted
// nothing yet.
func (w *world) resetSupervisor(n *simNode) {
	w.resetDetector(n)
	n.reg = reconcile.Registry{}
	n.hinted = map[hasup.EnsembleName]uint64{}
	n.supBusy = true
	if n.lostStore == nil {
		n.lostStore = make([]bool, len(w.ens))
	}
}

func (w *world) node(id hasup.NodeID) *simNode {
	for _, n := range w.nodes {
		if n.id == id {
			return n
		}
	}
	panic("unknown node " + string(id))
}

// traceEvent folds an event into the run's trace hash.
func (w *world) traceEvent(kind byte, vals ...uint64) {
	if w.debug != nil && kind != 'm' {
		w.debug("%d event %c %v", w.now, kind, vals)
	}
	b := make([]byte, 0, 1+8*(len(vals)+1))
	b = append(b, kind)
	b = binary.LittleEndian.AppendUint64(b, uint64(w.now))
	for _, v := range vals {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	_, _ = w.trace.Write(b)
}

func (w *world) run() {
	safetyEnd := int64(w.p.SafetySteps)
	capSteps := 10 * safetyEnd
	for ; ; w.now++ {
		rotating := w.p.RotateAll && (len(w.reconfigAt) > 0 || w.ens[0].reconfig != nil)
		if !w.live && w.now >= safetyEnd && ((w.commitTargetReached() && !rotating) || w.now >= capSteps) {
			w.res.CommitTargetMissed = !w.commitTargetReached()
			w.startLiveness()
			break
		}
		w.step()
	}
	start := w.now
	deadline := w.now + int64(w.p.LivenessTicks*w.p.TickSteps)
	for ; w.now < deadline+int64(w.p.TickSteps)*extraTicks; w.now++ {
		w.step()
		if w.now%int64(w.p.TickSteps) == 0 && w.converged() {
			w.res.ConvergeTicks = (w.now - start) / int64(w.p.TickSteps)
			if w.now > deadline {
				w.res.LivenessFailure = fmt.Sprintf("converged after %d ticks, beyond the bound of %d", w.res.ConvergeTicks, w.p.LivenessTicks)
			}
			w.finish()
			return
		}
	}
	w.res.LivenessFailure = w.livenessReport()
	w.finish()
}

func (w *world) step() {
	if !w.live {
		w.injectFaults()
		if w.p.Supervised {
			w.injectVerdicts()
		}
	}
	w.maybeReconfigure()
	for _, e := range w.ens {
		e.driveReconfig()
	}
	for _, n := range w.nodes {
		if !n.up && w.now >= n.restartAt && n.restartAt > 0 {
			w.restartNode(n)
		}
	}
	for len(w.events) > 0 && w.events[0].due <= w.now {
		ev := heap.Pop(&w.events).(*event)
		ev.fn()
	}
	if w.p.Supervised {
		w.updateDetectors()
	}
	for _, n := range w.nodes {
		if float64(w.now) < n.nextTick {
			continue
		}
		n.nextTick += n.period
		if !n.up {
			continue
		}
		for _, rep := range n.reps {
			if rep != nil {
				rep.input(rep.r.Tick)
			}
		}
		w.nodeHeartbeats(n)
		if w.p.Supervised {
			if n.supTicks++; n.supTicks%w.p.ReconcileTicks == 0 {
				w.supervise(n)
			}
		}
	}
	for _, c := range w.clients {
		c.step()
	}
	for _, n := range w.nodes {
		if !n.up {
			continue
		}
		for _, rep := range n.reps {
			if rep != nil {
				rep.pump()
			}
		}
	}
	for _, e := range w.ens {
		e.checkLeases()
		e.checkQuiescence()
	}
}

// schedule runs fn after delay steps.
func (w *world) schedule(delay int64, fn func()) {
	w.seq++
	heap.Push(&w.events, &event{due: w.now + delay, seq: w.seq, fn: fn})
}

func (w *world) commitTargetReached() bool {
	for _, e := range w.ens {
		if e.maxCommit < 3*w.p.CheckpointOps {
			return false
		}
	}
	return true
}

type event struct {
	due int64
	seq uint64
	fn  func()
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].due != q[j].due {
		return q[i].due < q[j].due
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// sortedFaults lists fault counts in name order, for printing.
func sortedFaults(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
