package sim

import (
	"math/rand/v2"
	"slices"
)

// Params are the shape and fault rates of one run, drawn from its seed
// ("swarm testing": every seed explores its own mix of faults).
type Params struct {
	Nodes          int
	Ensembles      []int // replicas per ensemble: 3 or 5 (1 sometimes)
	ClientsPer     int
	Keys           int
	CheckpointOps  uint64
	ChunkBytes     int
	ClientsMax     int
	PipelineMax    int
	BatchOps       int
	TickSteps      int     // simulation steps per replica tick, at the fastest node
	DriftMax       float64 // a node's tick period is TickSteps*(1+d) for d in [0, DriftMax]
	ViewChangeTick int

	// Network, per message.
	DropPct, DupPct, CorruptPct float64
	DelayMin, DelayMax          int // steps
	SpikePct                    float64
	// Partitions, per step.
	PartitionPct, HealPct float64
	// Nodes, per step.
	CrashPct      float64
	RestartMin    int
	RestartMax    int
	TearPct       float64 // a crash tears the record in flight instead of losing it
	ColdRestart   bool    // crash every node at once, once
	WipeOne       bool    // wipe one replica's disk, once
	BitFlips      int     // bit flips, each on a replica within the f budget
	ClockJumpPct  float64 // per step, per node
	SuspectPct    float64 // false "primary suspected" hints, per step
	DiskDelayMax  int     // steps a Ready's sync takes
	ReadPct       float64 // share of gets in the workload
	Reconfigs     int     // reconfigurations attempted during the safety phase
	LeaseTicks    int     // 0: leases off (lease reads fall back to linearizable)
	RotateAll     bool    // the reconfigurations replace every member of ensemble 0, one after another
	QuiesceTicks  int     // 0: ensembles never quiesce; else idle ticks before they do
	PingTicks     int     // with quiescence: ticks between node-pair heartbeats
	NodeSilence   int     // with quiescence: ticks without a node's heartbeat before its ensembles wake
	RefreshTicks  int     // with quiescence: ticks between the runtime's routine wakes of its quiescent replicas
	IdlePct       float64 // chance that a client pauses for a long while after an op
	SafetySteps   int     // minimum length of the safety phase
	LivenessTicks int     // bound for the liveness phase, in ticks

	// Supervised: reconfigurations are not drawn (Reconfigs is 0) but
	// decided by simulated supervisors running reconcile.Decide on every
	// up node, against a simulated registry and simulated failure
	// detectors (supervisor.go). The fields below are zero otherwise.
	Supervised     bool
	ReconcileTicks int     // ticks between a node's supervisor passes (the runtime's ReconcileInterval)
	DampingSteps   int     // reconcile.Input.Damping, in steps
	DetectMin      int     // steps before a detector sees a crash or a cut: from DetectMin
	DetectMax      int     // to DetectMax to suspect, as long again to failed
	AliveDelayMax  int     // steps before a detector sees a node alive again
	FalsePct       float64 // per step: a false failure verdict on a live node, by some or all observers
	FlapPct        float64 // per step: a live node flaps (failed/alive, each failed phase shorter than the damping)
	LongCrashPct   float64 // share of crashes that outlast detection and damping, so that repairs happen
	RegDelayMax    int     // steps a registry proposal takes to commit
	RegLossPct     float64 // share of registry proposals lost (the cluster ensemble changed primary, say)
	RegLagPct      float64 // chance that a supervisor pass reads no newer registry than its last
	Zones          int     // 0: no tags; else nodes are tagged zone=z<i mod Zones> and ensembles spread by zone
}

func drawParams(rng *rand.Rand) Params {
	p := Params{
		Nodes:          3 + rng.IntN(3),
		ClientsPer:     2 + rng.IntN(4),
		Keys:           2 + rng.IntN(4),
		CheckpointOps:  uint64(8 + rng.IntN(25)),
		ChunkBytes:     256 + rng.IntN(4096),
		PipelineMax:    1 + rng.IntN(4),
		BatchOps:       1 + rng.IntN(8),
		TickSteps:      10,
		DriftMax:       pick(rng, 0, 0.1), // within the lease margin: 1 + LeaseTicks*rho <= DriftMarginTicks
		ViewChangeTick: 10,
		DropPct:        pick(rng, 0, 0.2),
		DupPct:         pick(rng, 0, 0.2),
		CorruptPct:     pick(rng, 0, 0.01),
		DelayMin:       1,
		DelayMax:       2 + rng.IntN(20),
		SpikePct:       pick(rng, 0, 0.02),
		PartitionPct:   pick(rng, 0, 0.005),
		HealPct:        0.002 + rng.Float64()*0.02,
		CrashPct:       pick(rng, 0, 0.0005),
		RestartMin:     10,
		RestartMax:     50 + rng.IntN(500),
		TearPct:        rng.Float64(),
		ColdRestart:    rng.IntN(4) == 0,
		WipeOne:        rng.IntN(3) == 0,
		BitFlips:       rng.IntN(3),
		ClockJumpPct:   pick(rng, 0, 0.001),
		SuspectPct:     pick(rng, 0, 0.002),
		DiskDelayMax:   rng.IntN(4),
		ReadPct:        0.1 + rng.Float64()*0.4,
		SafetySteps:    3000 + rng.IntN(3000),
		Reconfigs:      rng.IntN(5),
		LeaseTicks:     []int{0, 6, 8, 8}[rng.IntN(4)],
		LivenessTicks:  20 * 10 * 2, // 20 view-change timeouts at their longest (2 * ViewChangeTicks)
	}
	for i := 0; i < 1+rng.IntN(3); i++ {
		r := 3
		if p.Nodes >= 5 && rng.IntN(3) == 0 {
			r = 5
		}
		if rng.IntN(12) == 0 {
			r = 1
		}
		p.Ensembles = append(p.Ensembles, r)
	}
	p.ClientsMax = p.ClientsPer + rng.IntN(3) // sometimes small enough to evict
	if rng.IntN(2) == 0 {
		// Quiescence (ensemble/quiesce.go) with the runtime's node-pair
		// heartbeats, and clients that pause long enough for it.
		p.QuiesceTicks = 1 + rng.IntN(8)
		p.PingTicks = 1 + rng.IntN(4)
		p.NodeSilence = 2*p.PingTicks + rng.IntN(3*p.ViewChangeTick)
		p.IdlePct = 0.01 + rng.Float64()*0.1
		p.RefreshTicks = 20 + rng.IntN(100)
	}
	if p.Nodes > p.Ensembles[0] && rng.IntN(4) == 0 {
		p.RotateAll = true
		p.Reconfigs = p.Ensembles[0] + 2 // one per member, and room for a retry
	}
	return p
}

// drawSupervised makes p a supervised run: reconfigurations come from the
// supervisors, so none is drawn, and one node more than the smallest
// ensemble at least, so that a failed member has a spare to move to.
func drawSupervised(rng *rand.Rand, p *Params) {
	p.Supervised = true
	p.Reconfigs, p.RotateAll = 0, false
	p.Nodes = max(p.Nodes, slices.Min(p.Ensembles)+1, slices.Max(p.Ensembles))
	if p.Nodes < 6 && rng.IntN(2) == 0 {
		p.Nodes++ // a second spare
	}
	p.ReconcileTicks = 2 + rng.IntN(5) // the runtime passes every 5 ticks (50 ms of 10 ms ticks)
	p.DampingSteps = 100 + rng.IntN(500)
	p.DetectMin = 10 + rng.IntN(20)
	p.DetectMax = p.DetectMin + 10 + rng.IntN(150)
	p.AliveDelayMax = 5 + rng.IntN(50)
	p.FalsePct = pick(rng, 0, 0.003)
	p.FlapPct = pick(rng, 0, 0.002)
	if p.CrashPct == 0 && rng.IntN(3) > 0 {
		p.CrashPct = 0.0001 + rng.Float64()*0.0004 // repairs need failures; a third run on false verdicts alone
	}
	p.LongCrashPct = 0.2 + rng.Float64()*0.5
	p.RegDelayMax = 1 + rng.IntN(60)
	p.RegLossPct = pick(rng, 0, 0.2)
	p.RegLagPct = pick(rng, 0, 0.5)
	if rng.IntN(3) == 0 {
		p.Zones = 2 + rng.IntN(2)
	}
	// Detection, damping, a proposal or two, the reconfiguration and the
	// joiner's state transfer, for a node kept down in the liveness phase;
	// and damping again for a node the registry holds failed by mistake.
	p.LivenessTicks += (p.DetectMax + 3*p.DampingSteps + 4*p.RegDelayMax) / p.TickSteps
}

// supervisedSeed reports whether a seed runs supervised: half of them, by
// a hash of the seed, so that the draws of the other half (and their
// traces) are what they were before supervised runs existed.
func supervisedSeed(seed uint64) bool {
	z := seed + 0x9e3779b97f4a7c15 // splitmix64's finaliser
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return (z^z>>31)&1 == 1
}

// pick returns 0 a third of the time (a fault-free dimension), else a value
// in [lo, hi).
func pick(rng *rand.Rand, lo, hi float64) float64 {
	if rng.IntN(3) == 0 {
		return 0
	}
	return lo + rng.Float64()*(hi-lo)
}
