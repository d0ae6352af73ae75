package sim

import (
	"encoding/binary"
	"flag"
	"fmt"
	"hash/fnv"
	"runtime"
	"strings"
	"sync"
	"testing"
)

var (
	flagSeeds = flag.Int("sim.seeds", 300, "number of seeds to simulate")
	flagSeed  = flag.Uint64("sim.seed", 0, "simulate only this seed (0: seeds base+1 .. base+sim.seeds)")
	flagBase  = flag.Uint64("sim.base", 0, "first seed minus one")
	flagV     = flag.Bool("sim.v", false, "print one line per seed")
	flagDebug = flag.Bool("sim.debug", false, "with -sim.seed: print every delivery and status change")
)

// TestSimulation runs the seeded whole-cluster simulation and ends with one
// SIM summary line. A failing seed prints the command that replays it.
func TestSimulation(t *testing.T) {
	seeds := make([]uint64, 0, *flagSeeds)
	if *flagSeed != 0 {
		seeds = append(seeds, *flagSeed)
	} else {
		for i := 1; i <= *flagSeeds; i++ {
			seeds = append(seeds, *flagBase+uint64(i))
		}
	}
	if *flagDebug && len(seeds) == 1 {
		r := Debug(seeds[0], func(format string, args ...any) { fmt.Printf(format+"\n", args...) })
		t.Logf("seed %d: anomaly=%q liveness=%q", r.Seed, r.Anomaly, r.LivenessFailure)
		return
	}
	results := runSeeds(seeds)
	faults := map[string]int{}
	var ops, acked, nfaults, anomalies, lost, liveFail, missed int
	var converge int64
	var leaseReads, staleReads, reconfigs int
	trace := fnv.New64a()
	for _, r := range results {
		ops += r.Ops
		acked += r.Acked
		for k, v := range r.Faults {
			faults[k] += v
			if k != "recoveries" && k != "corruption_detected" && k != "sessions_expired" && k != "stale_reads_refused" && !strings.HasPrefix(k, "reconfigs_") {
				nfaults += v
			}
		}
		lost += r.Lost
		converge += r.ConvergeTicks
		leaseReads += r.LeaseReads
		reconfigs += r.Reconfigs
		staleReads += r.StaleReads
		_ = binary.Write(trace, binary.LittleEndian, r.Trace)
		if *flagV {
			t.Logf("seed %d: nodes=%d ens=%v rotate=%v ops=%d acked=%d commit=%v steps=%d faults=%v", r.Seed, r.Params.Nodes, r.Params.Ensembles, r.Params.RotateAll, r.Ops, r.Acked, r.CommittedPerEns, r.Steps, r.Faults)
		}
		if r.Anomaly != "" || r.Lost > 0 {
			anomalies++
			t.Errorf("seed %d: anomaly: %s (lost=%d)\n  replay: go test ./sim -run TestSimulation -sim.seed=%d -v", r.Seed, r.Anomaly, r.Lost, r.Seed)
		}
		if r.CommitTargetMissed {
			missed++
			t.Errorf("seed %d: an ensemble committed fewer than 3 checkpoint intervals (%d ops) before the liveness phase: %v\n  replay: go test ./sim -run TestSimulation -sim.seed=%d -v", r.Seed, 3*r.Params.CheckpointOps, r.CommittedPerEns, r.Seed)
		}
		if r.LivenessFailure != "" && r.Anomaly == "" {
			liveFail++
			t.Errorf("seed %d: liveness failure: %s\n  replay: go test ./sim -run TestSimulation -sim.seed=%d -v", r.Seed, r.LivenessFailure, r.Seed)
		}
	}
	var parts []string
	for _, k := range sortedFaults(faults) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, faults[k]))
	}
	t.Logf("faults by type: %s", strings.Join(parts, " "))
	n := float64(len(results))
	t.Logf("per seed: %.1f ops, %.1f acked, %.1f lease reads, %.1f stale reads, %.1f faults, liveness converged in %.1f ticks on average; %d seeds missed the commit target",
		float64(ops)/n, float64(acked)/n, float64(leaseReads)/n, float64(staleReads)/n, float64(nfaults)/n, float64(converge)/n, missed)
	for i, k := range sortedFaults(faults) {
		parts[i] = fmt.Sprintf("%s=%.1f", k, float64(faults[k])/n)
	}
	t.Logf("faults per seed by type: %s", strings.Join(parts, " "))
	fmt.Printf("SIM seeds=%d ops=%d acked=%d faults=%d anomalies=%d lost=%d liveness_failures=%d reconfigs=%d lease_reads=%d trace=%016x\n",
		len(results), ops, acked, nfaults, anomalies, lost, liveFail, reconfigs, leaseReads, trace.Sum64())
}

// runSeeds runs seeds on every core; results come back in seed order, so
// the combined trace does not depend on scheduling.
func runSeeds(seeds []uint64) []Result {
	results := make([]Result, len(seeds))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i] = Run(seeds[i])
			}
		}()
	}
	for i := range seeds {
		next <- i
	}
	close(next)
	wg.Wait()
	return results
}

// regressionSeeds are seeds that once found a bug; each runs in every test
// run. The comment says what it found.
var regressionSeeds = []struct {
	seed uint64
	bug  string
}{
	{4, "a duplicate first checkpoint chunk reset a finished transfer"},
	{5, "a backup one op behind a checkpointed primary never caught up"},
	{366, "the pipeline counted an inherited tail that committed outside maybeCommit, and stalled"},
	{434, "a late STARTVIEW took a transferring replica's log below its commit"},
	{465, "a late STARTVIEW took a transferring replica's log below its commit"},
	{518, "a backup one op behind a checkpointed primary never caught up"},
	{914, "a restarted deposed primary counted a pre-crash COMMITOK and served a stale read"},
	{974, "recovery restarted while its transfer was still making progress"},
	{986, "a torn record left behind a later write made the storage look corrupt"},
	{1613, "an idle primary was always busy with empty storage writes in the simulator"},
	{1936, "a one-replica ensemble lost its bootstrap state to a crash"},
	{453, "the simulator's disk-fault budget took the new epoch's f before the new epoch ran"},
	{53, "a quiescent replica that missed the op removing it was stranded in the old epoch (no refresh)"},
}

func TestRegressionSeeds(t *testing.T) {
	for _, rs := range regressionSeeds {
		r := Run(rs.seed)
		if r.Anomaly != "" || r.Lost > 0 || r.LivenessFailure != "" {
			t.Errorf("seed %d (once: %s): anomaly=%q lost=%d liveness=%q\n  replay: go test ./sim -run TestSimulation -sim.seed=%d -v",
				rs.seed, rs.bug, r.Anomaly, r.Lost, r.LivenessFailure, rs.seed)
		}
	}
}
