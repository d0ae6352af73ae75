package sim

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/fsm/kv"
)

// regState is the model of one key: its value and modification revision.
// known is false after a write whose revision was never observed.
type regState struct {
	val     string
	rev     uint64
	known   bool
	present bool
}

// kvModel is the porcupine model of the workload, one partition per key.
// Indeterminate operations (unknown outputs) branch over their possible
// effects; porcupine may also place them after every other operation, which
// stands for "never executed".
var kvModel = porcupine.NondeterministicModel{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(opInput).key
			if _, ok := by[k]; !ok {
				keys = append(keys, k)
			}
			by[k] = append(by[k], op)
		}
		slices.Sort(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() []any { return []any{regState{known: true}} },
	Step: func(state, input, output any) []any {
		return modelStep(state.(regState), input.(opInput), output.(opOutput))
	},
	Equal: func(a, b any) bool { return a.(regState) == b.(regState) },
	DescribeOperation: func(in, out any) string {
		return fmt.Sprintf("%+v -> %+v", in, out)
	},
}

func modelStep(s regState, in opInput, out opOutput) []any {
	grown := func(rev uint64) bool { return !s.known || rev > s.rev }
	switch in.kind {
	case opPut, opAppend:
		v := in.value
		if in.kind == opAppend {
			v = s.val + in.value
		}
		if out.unknown {
			return []any{regState{val: v, present: true}}
		}
		if !grown(out.rev) {
			return nil
		}
		return []any{regState{val: v, rev: out.rev, known: true, present: true}}
	case opGet:
		if out.found != s.present || (s.present && out.value != s.val) || (s.known && out.rev != s.rev) {
			return nil
		}
		return []any{regState{val: s.val, rev: out.rev, known: true, present: s.present}}
	case opCAS:
		mayWin := (in.expect == 0 && !s.present) || (in.expect > 0 && s.present && (!s.known || s.rev == in.expect))
		mustWin := mayWin && s.known
		won := regState{val: in.value, rev: out.rev, known: true, present: true}
		switch {
		case out.unknown && mayWin:
			return []any{s, regState{val: in.value, present: true}}
		case out.unknown:
			return []any{s}
		case out.conflict:
			if mustWin || out.found != s.present || (s.known && out.rev != s.rev) {
				return nil
			}
			return []any{regState{val: s.val, rev: out.rev, known: true, present: s.present}}
		case mayWin && grown(out.rev):
			return []any{won}
		}
		return nil
	}
	return nil
}

// finish runs the end-of-run checks: linearizability of each ensemble's
// history and the presence of every acknowledged append.
func (w *world) finish() {
	w.openOps()
	for _, e := range w.ens {
		for _, rep := range e.replicas {
			if rep.r != nil {
				w.res.CommittedPerEns = append(w.res.CommittedPerEns, rep.r.Status().Commit)
				break
			}
		}
		if w.res.Anomaly != "" {
			continue
		}
		w.res.LinearizedChecks++
		res, info := porcupine.CheckOperationsVerbose(kvModel.ToModel(), e.history, 20*time.Second)
		switch res {
		case porcupine.Illegal:
			w.res.Anomaly = fmt.Sprintf("ensemble %s: history is not linearizable (%d ops)%s", e.name, len(e.history), w.illegalKeys(e))
			_ = info
		case porcupine.Unknown:
			w.res.Anomaly = fmt.Sprintf("ensemble %s: linearizability check timed out (%d ops)", e.name, len(e.history))
		}
		w.res.Lost += w.lostAppends(e)
	}
}

// illegalKeys names the keys whose histories are not linearizable, and in
// debug mode prints each one's operations.
func (w *world) illegalKeys(e *simEnsemble) string {
	var b strings.Builder
	for _, part := range kvModel.Partition(e.history) {
		if porcupine.CheckOperations(kvModel.ToModel(), part) {
			continue
		}
		key := part[0].Input.(opInput).key
		fmt.Fprintf(&b, " [key %s]", key)
		if w.debug != nil {
			sorted := slices.Clone(part)
			slices.SortFunc(sorted, func(a, b porcupine.Operation) int { return int(a.Call - b.Call) })
			for _, op := range sorted {
				w.debug("history %s %s: client %d call %d return %d %+v -> %+v", e.name, key, op.ClientId, op.Call, op.Return, op.Input, op.Output)
			}
		}
	}
	return b.String()
}

// lostAppends counts acknowledged append tokens missing from (or repeated
// in) the final state of the most advanced live replica.
func (w *world) lostAppends(e *simEnsemble) int {
	var best *simReplica
	for _, rep := range e.replicas {
		if rep.node.up && rep.r.Status().Mode == ensemble.ModeNormal && (best == nil || rep.r.Status().Applied > best.r.Status().Applied) {
			best = rep
		}
	}
	if best == nil {
		return 0
	}
	lost := 0
	for key, tokens := range w.ackedTokens(e) {
		b, qerr := best.store.Query(kv.GetQuery([]byte(key)))
		val := ""
		if qerr == nil {
			res, err := kv.DecodeResult(b)
			if err != nil && !errors.Is(err, kv.ErrNotFound) {
				w.res.Anomaly = fmt.Sprintf("ensemble %s: final read of %s: %v", e.name, key, err)
			}
			val = string(res.Value)
		}
		for _, t := range tokens {
			if n := strings.Count(val+"|", t+"|"); n != 1 {
				lost++
				if w.res.Anomaly == "" && n > 1 {
					w.res.Anomaly = fmt.Sprintf("ensemble %s: append %s appears %d times in %s", e.name, t, n, key)
				}
			}
		}
	}
	return lost
}

// statesAgree: the live replicas of every ensemble hold identical FSM state.
func (w *world) statesAgree() bool {
	for _, e := range w.ens {
		if !e.stateAgrees() {
			return false
		}
	}
	return true
}

func (e *simEnsemble) stateAgrees() bool {
	var ref []byte
	for _, rep := range e.current() {
		if !rep.node.up {
			continue
		}
		var b bytes.Buffer
		if err := rep.store.Snapshot(&b); err != nil {
			e.w.fail("snapshot %s/%s: %v", e.name, rep.node.id, err)
		}
		if ref == nil {
			ref = b.Bytes()
		} else if !bytes.Equal(ref, b.Bytes()) {
			return false
		}
	}
	return true
}

// livenessReport says which ensemble failed to converge, and how.
func (w *world) livenessReport() string {
	var b strings.Builder
	for _, e := range w.ens {
		fmt.Fprintf(&b, "%s(probed=%v states_agree=%v):", e.name, e.probed, e.stateAgrees())
		for _, rep := range e.replicas {
			if !rep.node.up {
				fmt.Fprintf(&b, " %s=down", rep.node.id)
				continue
			}
			st := rep.r.Status()
			fmt.Fprintf(&b, " %s=%v/e%d/v%d/lnv%d/op%d/k%d/a%d/x%v", rep.node.id, st.Mode, st.Epoch, st.View, st.LastNormalView, st.Op, st.Commit, st.Applied, st.Transferring)
		}
		b.WriteString("; ")
	}
	for _, c := range w.clients {
		if c.op != nil {
			fmt.Fprintf(&b, "client %d of %s waits on %v; ", c.idx, c.e.name, c.op.in.kind)
		}
	}
	return b.String()
}
