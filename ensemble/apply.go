package ensemble

import (
	"fmt"

	"github.com/hasup/hasup/fsm"
)

// applyCommitted applies every committed op the log holds, in order, and
// checkpoints every CheckpointOps ops.
func (r *Replica) applyCommitted() {
	for r.applied < r.commit && r.applied < r.op {
		e := r.log[r.applied-r.ckpt.Op]
		if e.Op != r.applied+1 {
			panic(fmt.Sprintf("ensemble %s on %s: log holds op %d where %d belongs", r.cfg.Ensemble, r.self, e.Op, r.applied+1))
		}
		r.apply(e)
		r.applied = e.Op
		if r.applied%r.cfg.CheckpointOps == 0 {
			r.newCkpt = &Checkpoint{Op: r.applied, Data: r.encodeCheckpoint()}
			r.installCheckpointLocally(*r.newCkpt)
		}
	}
}

// installCheckpointLocally makes ck the replica's checkpoint and drops the
// log it covers. The Ready that carries ck makes the same change on disk.
func (r *Replica) installCheckpointLocally(ck Checkpoint) {
	if ck.Op > r.applied {
		panic(fmt.Sprintf("ensemble %s on %s: checkpoint %d beyond applied %d", r.cfg.Ensemble, r.self, ck.Op, r.applied))
	}
	if ck.Op <= r.ckpt.Op {
		return
	}
	drop := ck.Op - r.ckpt.Op
	r.log = append([]Entry(nil), r.log[drop:]...)
	r.ckpt = ck
	if r.logFrom != 0 && r.logFrom <= ck.Op {
		r.logFrom = ck.Op + 1 // the checkpoint drops what lies below
	}
}

// apply executes one committed entry through the client table and the FSM,
// and answers the local caller waiting for it.
func (r *Replica) apply(e Entry) {
	r.lastTime = max(r.lastTime, e.Time)
	var result []byte
	var err error
	executed := false
	switch e.Kind {
	case EntryRegister:
		r.clients.register(e.Client, e.Op, decodeFloor(e.Cmd))
		executed = true
	case EntryReconfigure:
		epoch, members, derr := decodeReconfig(e.Cmd)
		if derr != nil {
			panic(r.violation("committed reconfiguration op %d: %v", e.Op, derr))
		}
		r.stateEpoch, r.stateMembers = epoch, members
		executed = true
	case EntryRequest:
		if e.Client == 0 {
			result, executed = r.fsm.Apply(r.fsmContext(e), e.Cmd), true
			break
		}
		var dup bool
		result, dup, err = r.clients.admit(e.Client, e.Request)
		if err == nil && !dup {
			result, executed = r.fsm.Apply(r.fsmContext(e), e.Cmd), true
			r.clients.record(e.Client, e.Request, e.Op, result)
		}
	default:
		panic(fmt.Sprintf("ensemble %s on %s: op %d has unknown kind %d", r.cfg.Ensemble, r.self, e.Op, e.Kind))
	}
	r.appliedQ = append(r.appliedQ, Applied{Entry: e, Executed: executed})
	for _, id := range r.primary.waiters[e.Op] {
		r.replies = append(r.replies, Reply{ID: id, Op: e.Op, Result: result, Err: err})
	}
	delete(r.primary.waiters, e.Op)
}

func (r *Replica) fsmContext(e Entry) fsm.Context {
	return fsm.NewContext(e.Op, e.Time, e.Seed, Fence(e.Epoch, e.View))
}
