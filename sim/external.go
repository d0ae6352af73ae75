package sim

import (
	"math"
	"time"

	"github.com/anishathalye/porcupine"
)

// KVOp is one operation of a history recorded outside the simulator (the
// real-process tests), for CheckKV: a put or a get of one key of a kv
// ensemble, with its call and return times.
type KVOp struct {
	Client int
	Get    bool   // a linearizable get; else a put
	Key    string // the key
	Value  string // put: the value written; get: the value read
	Found  bool   // get: the key existed
	Rev    uint64 // the revision the answer gave (put: the new revision; get: the key's)
	// Unknown: a put whose outcome was never learned (it may or may not
	// have executed); Return is then ignored.
	Unknown      bool
	Call, Return time.Time
}

// CheckKV reports whether a history of puts and linearizable gets on a kv
// ensemble is linearizable, with the simulator's model (one partition per
// key, revisions checked), within timeout.
func CheckKV(ops []KVOp, timeout time.Duration) (ok bool, undecided bool) {
	h := make([]porcupine.Operation, 0, len(ops))
	for _, o := range ops {
		in := opInput{kind: opPut, key: o.Key, value: o.Value}
		out := opOutput{found: o.Found, value: o.Value, rev: o.Rev, unknown: o.Unknown}
		if o.Get {
			in = opInput{kind: opGet, key: o.Key}
		}
		ret := o.Return.UnixNano()
		if o.Unknown {
			ret = math.MaxInt64
		}
		h = append(h, porcupine.Operation{ClientId: o.Client, Input: in, Output: out, Call: o.Call.UnixNano(), Return: ret})
	}
	res := porcupine.CheckOperationsTimeout(kvModel.ToModel(), h, timeout)
	return res == porcupine.Ok, res == porcupine.Unknown
}
