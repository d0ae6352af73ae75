package sim

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/anishathalye/porcupine"
	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/fsm/kv"
)

type opKind uint8

const (
	opRegister opKind = iota + 1
	opPut
	opGet
	opCAS
	opAppend
	opStaleGet // a stale read: checked against its bounds, not for linearizability
)

// opInput and opOutput are the porcupine history's records.
type opInput struct {
	kind   opKind
	key    string
	value  string
	expect uint64
	lease  bool // a get tried as a lease read first
}

type opOutput struct {
	unknown  bool // the outcome is not known: the op may or may not have executed
	found    bool
	value    string
	rev      uint64
	conflict bool
}

// client is one workload client of one ensemble: it opens a session, then
// issues one operation at a time, retrying it (with the same request number)
// until it gets a definite answer.
type client struct {
	w        *world
	e        *simEnsemble
	idx      int
	session  uint64
	nextReq  uint64
	target   int
	op       *clientOp
	sentAt   int64
	nextAt   int64
	revs     map[string]uint64
	count    int
	probe    bool // issues the liveness probe of its ensemble
	tokens   map[string][]string
	timeoutS int64
}

type clientOp struct {
	in      opInput
	call    int64
	request uint64
	sent    bool
}

type call struct {
	c  *client
	op *clientOp
}

func newClient(w *world, e *simEnsemble, idx int) *client {
	c := &client{w: w, e: e, idx: idx, revs: map[string]uint64{}, tokens: map[string][]string{},
		probe: idx%w.p.ClientsPer == 0, timeoutS: int64(3 * w.p.ViewChangeTick * w.p.TickSteps)}
	c.target = w.rng.IntN(len(e.members))
	return c
}

func (c *client) step() {
	w := c.w
	if w.now < c.nextAt {
		return
	}
	if c.op == nil {
		if w.live && !(c.probe && !c.e.probed) {
			return
		}
		c.op = c.nextOp()
	}
	if !c.op.sent || w.now-c.sentAt > c.timeoutS {
		if c.op.sent {
			c.target = (c.target + 1) % len(c.e.members) // timed out: try another node
		}
		c.sendAttempt()
	}
}

func (c *client) nextOp() *clientOp {
	w := c.w
	op := &clientOp{call: w.now}
	if c.session == 0 {
		w.nextID++
		c.session = w.nextID
		c.nextReq = 1
		op.in = opInput{kind: opRegister}
		return op
	}
	c.count++
	key := fmt.Sprintf("k%d", w.rng.IntN(w.p.Keys))
	val := fmt.Sprintf("c%d.%d", c.idx, c.count)
	r := w.rng.Float64()
	switch {
	case w.live:
		op.in = opInput{kind: opPut, key: key, value: val}
	case r < w.p.ReadPct:
		if w.rng.IntN(3) == 0 {
			key = fmt.Sprintf("a%d", w.rng.IntN(2))
		}
		switch x := w.rng.Float64(); {
		case x < 0.4:
			op.in = opInput{kind: opGet, key: key}
		case x < 0.75:
			op.in = opInput{kind: opGet, key: key, lease: true}
		default:
			op.in = opInput{kind: opStaleGet, key: key}
		}
	case r < w.p.ReadPct+(1-w.p.ReadPct)/3:
		op.in = opInput{kind: opPut, key: key, value: val}
	case r < w.p.ReadPct+2*(1-w.p.ReadPct)/3:
		op.in = opInput{kind: opCAS, key: key, value: val, expect: c.revs[key]}
	default:
		op.in = opInput{kind: opAppend, key: fmt.Sprintf("a%d", w.rng.IntN(2)), value: "|" + val}
	}
	if op.in.kind != opGet && op.in.kind != opStaleGet {
		op.request = c.nextReq
		c.nextReq++
	}
	return op
}

func (c *client) command() []byte {
	in := c.op.in
	switch in.kind {
	case opPut:
		return kv.PutCmd([]byte(in.key), []byte(in.value))
	case opCAS:
		return kv.CASCmd([]byte(in.key), []byte(in.value), in.expect)
	case opAppend:
		return kv.AppendCmd([]byte(in.key), []byte(in.value))
	}
	return nil
}

// sendAttempt sends the current op to the target node; the request or its
// answer may be lost, which the client learns only by timing out.
func (c *client) sendAttempt() {
	w := c.w
	op := c.op
	op.sent = true
	c.sentAt = w.now
	w.nextID++
	id := w.nextID
	w.calls[id] = &call{c: c, op: op}
	c.target %= len(c.e.members) // the members may have changed
	node := w.node(c.e.members[c.target])
	if w.rng.Float64() < w.p.DropPct {
		return
	}
	session, cmd := c.session, c.command()
	if w.debug != nil {
		w.debug("%d client %d %s sends %+v to %s (call %d)", w.now, c.idx, c.e.name, op.in, node.id, id)
	}
	w.schedule(w.delay(), func() {
		rep := node.reps[c.e.idx]
		if !node.up || rep == nil {
			return
		}
		rep.input(func() {
			var err error
			switch op.in.kind {
			case opGet:
				mode := ensemble.ReadLinearizable
				if op.in.lease {
					mode = ensemble.ReadLease
				}
				err = rep.r.ReadAt(ensemble.ReadRequest{ID: id, Query: kv.GetQuery([]byte(op.in.key)), Mode: mode})
			case opStaleGet:
				err = rep.r.ReadAt(ensemble.ReadRequest{ID: id, Query: kv.GetQuery([]byte(op.in.key)), Mode: ensemble.ReadStale,
					MaxLagOps: staleMaxOps, MaxLagTicks: staleMaxTicks})
			case opRegister:
				err = rep.r.Propose(ensemble.Proposal{ID: id, Client: session})
			default:
				err = rep.r.Propose(ensemble.Proposal{ID: id, Client: session, Request: op.request, Cmd: cmd})
			}
			if err != nil {
				delete(w.calls, id)
				hint := rep.r.Status().Primary
				w.schedule(w.delay(), func() { c.onError(op, err, hint) })
			}
		})
	})
}

// reply routes a replica's answer back to its client.
func (w *world) reply(rep *simReplica, rp ensemble.Reply) {
	cl, ok := w.calls[rp.ID]
	if !ok {
		return
	}
	delete(w.calls, rp.ID)
	if w.rng.Float64() < w.p.DropPct {
		return
	}
	hint := rep.r.Status().Primary
	w.schedule(w.delay(), func() {
		if rp.Err != nil && !isKVError(rp.Err) {
			cl.c.onError(cl.op, rp.Err, hint)
			return
		}
		cl.c.onReply(cl.op, rp)
	})
}

func isKVError(err error) bool {
	return errors.Is(err, kv.ErrNotFound) || errors.Is(err, kv.ErrCASConflict)
}

func (c *client) onError(op *clientOp, err error, hint hasup.NodeID) {
	w := c.w
	if c.op != op {
		return
	}
	w.traceEvent('e', uint64(c.idx))
	if w.debug != nil {
		w.debug("%d client %d %s error %v (hint %s)", w.now, c.idx, c.e.name, err, hint)
	}
	switch {
	case errors.Is(err, ensemble.ErrNoLease):
		op.in.lease = false // fall back to a linearizable read, here
		op.sent = false
		c.nextAt = w.now + 1
		return
	case errors.Is(err, ensemble.ErrTooStale):
		w.res.Faults["stale_reads_refused"]++
		c.op = nil // a refused stale read is a complete answer
		return
	case errors.Is(err, ensemble.ErrSessionExpired):
		// An earlier attempt may have executed before the session was
		// evicted: the outcome is unknown.
		c.finishOp(opOutput{unknown: true}, 0, true)
		c.session = 0
		w.res.Faults["sessions_expired"]++
		return
	case errors.Is(err, ensemble.ErrStaleRequest):
		w.fail("ensemble %s: client %d request %d refused as stale", c.e.name, c.session, op.request)
	}
	moved := false
	for i, m := range c.e.members {
		if m == hint && i != c.target {
			c.target, moved = i, true
		}
	}
	if !moved {
		c.target = (c.target + 1) % len(c.e.members)
	}
	if errors.Is(err, ensemble.ErrReconfiguring) {
		c.nextAt = w.now + 20 // the new epoch is on its way
		op.sent = false
		return
	}
	op.sent = false
	c.nextAt = w.now + 3
}

func (c *client) onReply(op *clientOp, rp ensemble.Reply) {
	w := c.w
	if c.op != op {
		return
	}
	if op.in.kind == opRegister {
		c.op = nil
		return
	}
	if op.in.kind == opStaleGet {
		c.checkStaleRead(rp)
		c.op = nil
		c.nextAt = w.now + int64(w.rng.IntN(20))
		return
	}
	if op.in.lease {
		w.res.LeaseReads++
	}
	out := opOutput{}
	if op.in.kind == opGet {
		if rp.Err == nil {
			res, err := kv.DecodeResult(rp.Result)
			switch {
			case errors.Is(err, kv.ErrNotFound):
			case err != nil:
				w.fail("ensemble %s: get %s: %v", c.e.name, op.in.key, err)
			default:
				out.found, out.value, out.rev = res.Found, string(res.Value), res.ModRevision
			}
		}
	} else {
		res, err := kv.DecodeResult(rp.Result)
		switch {
		case errors.Is(err, kv.ErrCASConflict):
			out.conflict, out.found, out.rev = true, res.Found, res.ModRevision
		case err != nil:
			w.fail("ensemble %s: %v result: %v", c.e.name, op.in.kind, err)
		default:
			out.found, out.rev = true, res.ModRevision
		}
	}
	if out.found || op.in.kind == opGet {
		c.revs[op.in.key] = out.rev
	}
	c.finishOp(out, rp.Op, false)
}

// The bounds of the workload's stale reads.
const (
	staleMaxOps   = 20
	staleMaxTicks = 30
)

// checkStaleRead checks a stale read's answer: within its bounds, and
// honest: the op it was answered at plus its lag is a commit some replica
// has reached.
func (c *client) checkStaleRead(rp ensemble.Reply) {
	w, e := c.w, c.e
	w.res.StaleReads++
	if rp.LagOps > staleMaxOps || rp.LagTicks > staleMaxTicks {
		w.fail("ensemble %s: stale read answered %d ops and %d ticks behind, beyond bounds %d and %d", e.name, rp.LagOps, rp.LagTicks, staleMaxOps, staleMaxTicks)
	}
	if rp.Op+rp.LagOps > e.maxCommit {
		w.fail("ensemble %s: stale read at op %d claims %d ops of lag, beyond the highest commit %d", e.name, rp.Op, rp.LagOps, e.maxCommit)
	}
	if rp.Err != nil {
		return
	}
	if _, err := kv.DecodeResult(rp.Result); err != nil && !errors.Is(err, kv.ErrNotFound) {
		w.fail("ensemble %s: stale read result: %v", e.name, err)
	}
}

// finishOp records the op in the history and frees the client.
func (c *client) finishOp(out opOutput, logOp uint64, unknown bool) {
	w := c.w
	op := c.op
	c.op = nil
	c.nextAt = w.now + int64(w.rng.IntN(20))
	if w.p.IdlePct > 0 && w.rng.Float64() < w.p.IdlePct {
		// A pause long enough for the ensemble to quiesce.
		c.nextAt += int64((20 + w.rng.IntN(200)) * w.p.TickSteps)
		w.res.Faults["client_pauses"]++
	}
	ret := w.now
	if unknown {
		ret = math.MaxInt64
	}
	c.e.history = append(c.e.history, porcupine.Operation{ClientId: c.idx, Input: op.in, Output: out, Call: op.call, Return: ret})
	w.res.Ops++
	w.traceEvent('o', uint64(c.idx), uint64(op.in.kind), out.rev, uint64(ret))
	if w.debug != nil {
		w.debug("%d client %d %s op %+v -> %+v (called %d)", w.now, c.idx, c.e.name, op.in, out, op.call)
	}
	if unknown || op.in.kind == opGet || out.conflict {
		return
	}
	w.res.Acked++
	c.e.acked[logOp] = ackedOp{client: c.session, request: op.request}
	if op.in.kind == opAppend {
		c.tokens[op.in.key] = append(c.tokens[op.in.key], op.in.value)
	}
	if w.live {
		c.e.probed = true
	}
}

// openOps records the ops still outstanding at the end as indeterminate.
func (w *world) openOps() {
	for _, c := range w.clients {
		if c.op != nil && c.op.in.kind != opGet && c.op.in.kind != opStaleGet && c.op.in.kind != opRegister {
			c.e.history = append(c.e.history, porcupine.Operation{ClientId: c.idx, Input: c.op.in, Output: opOutput{unknown: true}, Call: c.op.call, Return: math.MaxInt64})
		}
	}
}

// ackedTokens lists the acknowledged appends of an ensemble per key.
func (w *world) ackedTokens(e *simEnsemble) map[string][]string {
	out := map[string][]string{}
	for _, c := range w.clients {
		if c.e != e {
			continue
		}
		for k, ts := range c.tokens {
			out[k] = append(out[k], ts...)
		}
	}
	for k := range out {
		slices.Sort(out[k])
	}
	return out
}
