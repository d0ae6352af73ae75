package sim

import (
	"errors"
	"math/rand/v2"
	"slices"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/fsm/kv"
)

// start creates the replica: bootstrap for a new ensemble, else from its
// disk, recovering if the disk is empty or corrupt.
func (rep *simReplica) start(bootstrap bool) {
	w := rep.w
	node := rep.node
	cfg := rep.config(rep.e.epoch, rep.e.members) // what the registry would say now
	cfg.Bootstrap = bootstrap
	if !bootstrap {
		dur, err := rep.disk.load()
		switch {
		case errors.Is(err, errCorrupt):
			w.res.Faults["corruption_detected"]++
			rep.disk.records = nil // a new incarnation; the damaged state is never used
		case err != nil:
			w.fail("replica %s/%s: %v", rep.e.name, node.id, err)
		default:
			cfg.Durable = dur
		}
		rep.disk.dropTornTail()
		if cfg.Durable == nil && rep.join != nil && !rep.joined {
			// A new member that never persisted anything joins again.
			cfg.Join, cfg.Epoch, cfg.Members = true, rep.join.epoch, rep.join.members
		} else if cfg.Durable == nil && !slices.Contains(rep.e.members, rep.node.id) {
			// Removed while it was down and its storage is gone: the
			// runtime deletes it.
			rep.gone = true
			return
		} else if cfg.Durable == nil {
			// A new incarnation: it needs f+1 healthy peers to recover,
			// so it counts as a damaged replica of its ensemble.
			w.res.Faults["recoveries"]++
			rep.highest = 0
			if !rep.faulted {
				rep.faulted = true
				rep.e.diskFaults++
			}
		} else {
			rep.highest = ensemble.Fence(cfg.Durable.Hard.Epoch, cfg.Durable.Hard.View)
		}
	}
	rep.run(cfg)
}

// startEmpty starts a replica that has no storage, as a supervisor's
// StartReplica does: a joiner of epoch with members, or else one that
// recovers its state from its peers (a new incarnation).
func (rep *simReplica) startEmpty(epoch uint64, members []hasup.NodeID, join bool) {
	cfg := rep.config(epoch, members)
	if join {
		cfg.Join = true
		rep.join = &reconfig{kind: "join", epoch: epoch, members: slices.Clone(members)}
	} else {
		rep.w.res.Faults["recoveries"]++
		rep.faulted = true // it needs f+1 healthy peers to recover
		rep.e.diskFaults++
	}
	rep.run(cfg)
}

// config is the replica's configuration, in epoch with members unless
// its storage says otherwise.
func (rep *simReplica) config(epoch uint64, members []hasup.NodeID) ensemble.Config {
	w := rep.w
	rep.store = kv.New()
	cfg := ensemble.DefaultConfig()
	cfg.Ensemble, cfg.ID, cfg.Members, cfg.FSM = rep.e.name, rep.node.id, slices.Clone(members), rep.store
	cfg.Epoch = epoch
	cfg.Rand = rand.New(rand.NewPCG(w.rng.Uint64(), w.rng.Uint64()))
	node := rep.node
	cfg.Clock = func() int64 { return w.now*1_000_000 + node.clockOffset }
	cfg.ViewChangeTicks = w.p.ViewChangeTick
	cfg.CheckpointOps = w.p.CheckpointOps
	cfg.ChunkBytes = w.p.ChunkBytes
	cfg.ClientsMax = w.p.ClientsMax
	cfg.PipelineMax = w.p.PipelineMax
	cfg.BatchOps = w.p.BatchOps
	cfg.LeaseTicks = w.p.LeaseTicks
	cfg.QuiesceTicks = w.p.QuiesceTicks
	return cfg
}

// run creates the replica from cfg.
func (rep *simReplica) run(cfg ensemble.Config) {
	r, err := ensemble.New(cfg)
	if err != nil {
		rep.w.fail("start replica %s/%s: %v", rep.e.name, rep.node.id, err)
	}
	rep.r, rep.busy, rep.inbox = r, false, nil
	rep.last = r.Status()
}

// input runs fn on the replica now, or after its storage write completes.
func (rep *simReplica) input(fn func()) {
	if rep.busy {
		rep.inbox = append(rep.inbox, fn)
		return
	}
	fn()
}

// pump runs the Ready loop: complete a write whose time has come, run the
// inputs that waited for it, and start the next write.
func (rep *simReplica) pump() {
	w := rep.w
	for {
		if rep.busy {
			if w.now < rep.doneAt {
				return
			}
			rep.complete()
			inbox := rep.inbox
			rep.inbox = nil
			for _, fn := range inbox {
				fn()
			}
		}
		if !rep.r.HasReady() {
			rep.observe()
			return
		}
		before := rep.r.Status()
		rd := rep.r.Ready()
		rep.checkReady(before, rd)
		// Replies leave at once, before the write (see ensemble.Ready);
		// the ops applied meanwhile are the checkers' to see first.
		for _, a := range rd.Applied {
			rep.e.onApplied(rep, a)
		}
		for _, rp := range rd.Replies {
			rep.w.reply(rep, rp)
		}
		for _, m := range rd.Messages[:rd.Early] {
			rep.w.send(rep, m)
		}
		rep.pending = rd
		rep.busy = true
		rep.doneAt = w.now
		if w.p.DiskDelayMax > 0 && !recordOf(rd).empty() { // nothing to sync: no wait
			rep.doneAt += int64(w.rng.IntN(w.p.DiskDelayMax + 1))
		}
	}
}

// complete makes the pending Ready durable, sends its messages, answers its
// callers and advances the replica.
func (rep *simReplica) complete() {
	rd := rep.pending
	rep.checkDurable(rd)
	rep.disk.write(recordOf(rd))
	if rd.HardState != nil {
		rep.joined = true
	}
	for _, m := range rd.Messages[rd.Early:] {
		rep.w.send(rep, m)
	}
	rep.pending = ensemble.Ready{}
	rep.busy = false
	rep.r.Advance()
	rep.observe()
}

// crash loses the write in flight, or tears it.
func (rep *simReplica) crash() {
	if rep.busy {
		r := recordOf(rep.pending)
		if !r.empty() && rep.w.rng.Float64() < rep.w.p.TearPct {
			r.torn = true
			rep.disk.records = append(rep.disk.records, r)
			rep.w.res.Faults["torn_writes"]++
		} else if !r.empty() {
			rep.w.res.Faults["lost_writes"]++
		}
	}
	rep.busy, rep.inbox, rep.pending = false, nil, ensemble.Ready{}
}
