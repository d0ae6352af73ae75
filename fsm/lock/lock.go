// Package lock is hasup's built-in fenced lock service: an fsm.FSM that
// grants named leases to owners, each grant with a fencing token.
//
// # Leases and time
//
// Acquire(name, owner, ttl) grants the lock if it is free: never granted,
// released, or its lease run out. The lease runs until the command's
// Context time plus ttl, and the lock is held at time t while t is before
// that expiry. The table reads time only from the fsm.Context of the command
// being applied, never from a clock of its own, so every replica agrees on
// when a lease ran out, whatever its own clock says. Acquire by the current
// holder renews the lease: a new expiry, the same fence. An expired lease is
// free even for its last owner, who gets a new fence: past its expiry the
// owner has to assume that someone else may have held the lock meanwhile,
// and a new token makes that visible to the resources it guards.
//
// Release(name, owner) ends the lease if owner holds it, and fails with
// ErrNotHolder otherwise (free, expired or held by another), changing
// nothing. The record of a lease that ran out stays in the table, a few
// dozen bytes, until the name is granted again.
//
// # Fencing tokens
//
// Each grant gets the token
//
//	fence = max(previous grant's fence + 1, ctx.Fence())
//
// The first term makes tokens strictly increase across the grants of one
// table, whatever the ensemble does. The second keeps a grant's token at or
// above the ensemble's own fencing token at the time the grant was ordered,
// so that a resource which sees both kinds (a singleton worker's HASUP_FENCE
// and lock holders' tokens) can keep one "highest token seen" and still take
// the newer one. Rejected: the ensemble's token in the high bits and a grant
// counter in the low bits, because the ensemble's token (epoch and view
// packed) already needs all 64 bits.
//
// # Reading the table
//
// Query has no Context and so no time: HolderQuery returns the lock's record
// as it stands, and Result.HeldAt says whether it is held at the caller's
// time. A caller that must agree exactly with the replicas applies a command
// instead, whose result is judged at the command's Context time.
package lock

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hasup/hasup/fsm"
	"github.com/hasup/hasup/fsm/internal/codec"
)

// Limits on one command. They bound the memory a lock can claim and the
// lease a crashed holder can block others with.
const (
	// MaxNameBytes is the longest lock name the table accepts.
	MaxNameBytes = 1 << 10
	// MaxOwnerBytes is the longest owner the table accepts.
	MaxOwnerBytes = 1 << 10
	// MaxTTL is the longest lease one Acquire grants: a holder that dies
	// blocks the lock for at most this long. Longer holds renew.
	MaxTTL = 24 * time.Hour
)

// Errors of the lock table. Operation errors come back from DecodeResult; the
// others from Query, Restore and the decoders.
var (
	// ErrBadCommand means Apply was given bytes that are not a valid command
	// (including a name or owner that is empty or too long, or a ttl out of
	// range); the error names what was wrong and the state did not change.
	ErrBadCommand = errors.New("lock: bad command")
	// ErrBadQuery means Query was given bytes that are not a valid query.
	ErrBadQuery = errors.New("lock: bad query")
	// ErrHeld means Acquire found the lock held by another owner; the
	// result names the holder, its fence and expiry.
	ErrHeld = errors.New("lock: held by another owner")
	// ErrNotHolder means Release named a lock that the owner does not hold:
	// it is free, its lease ran out, or another owner holds it.
	ErrNotHolder = errors.New("lock: not the holder")
	// ErrFencesExhausted means the last grant used the largest fencing token
	// there is, so no lock can be granted again.
	ErrFencesExhausted = errors.New("lock: fencing tokens exhausted")
	// ErrBadResult means DecodeResult was given bytes that no Table
	// produced.
	ErrBadResult = errors.New("lock: bad result")
	// ErrBadSnapshot means Restore was given a truncated, corrupted or
	// unsupported image.
	ErrBadSnapshot = errors.New("lock: bad snapshot")
)

// Table is a replicated table of fenced locks. The zero value is not usable;
// call New. Like every fsm.FSM it is not safe for concurrent use.
type Table struct {
	fence uint64            // the last token granted, 0 before the first grant
	locks map[string]record // lock name -> its lease, current or expired
}

// record is one lock's last lease.
type record struct {
	owner           string
	fence           uint64
	expiryUnixNanos int64 // held while the command time is before this
}

var _ fsm.FSM = (*Table)(nil)

// New returns an empty table.
func New() *Table {
	return &Table{locks: make(map[string]record)}
}

// Apply executes one command built by AcquireCmd or ReleaseCmd, judging
// leases at ctx's time, and returns a result for DecodeResult.
func (t *Table) Apply(ctx fsm.Context, cmd []byte) []byte {
	req, err := decodeRequest(cmd)
	if err != nil {
		return t.result("", err)
	}
	switch req.op {
	case opAcquire:
		return t.acquire(ctx, string(req.name), string(req.owner), req.ttl)
	case opRelease:
		return t.release(ctx.UnixNanos(), string(req.name), string(req.owner))
	}
	return t.result("", codec.NewOpError(codeBadCommand, "op %s is a query, not a command", req.op))
}

// Query answers a query built by HolderQuery; read it with DecodeResult. A
// malformed query returns an error wrapping ErrBadQuery that names what was
// wrong.
func (t *Table) Query(q []byte) ([]byte, error) {
	req, err := decodeRequest(q)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrBadQuery, err.Detail)
	}
	if req.op != opHolder {
		return nil, fmt.Errorf("%w: op %s is a command, not a query", ErrBadQuery, req.op)
	}
	return t.result(string(req.name), nil), nil
}

// acquire grants, renews or refuses name to owner at the command's time.
func (t *Table) acquire(ctx fsm.Context, name, owner string, ttl time.Duration) []byte {
	now := ctx.UnixNanos()
	rec, ok := t.locks[name]
	held := ok && now < rec.expiryUnixNanos
	switch {
	case held && rec.owner == owner:
		rec.expiryUnixNanos = expiry(now, ttl)
	case held:
		return t.result(name, codec.NewOpError(codeHeld, "lock %s is held by %s until %s",
			codec.Quote(name), codec.Quote(rec.owner), formatTime(rec.expiryUnixNanos)))
	default:
		fence, err := t.nextFence(ctx.Fence())
		if err != nil {
			return t.result(name, err)
		}
		t.fence = fence
		rec = record{owner: owner, fence: fence, expiryUnixNanos: expiry(now, ttl)}
	}
	t.locks[name] = rec
	return t.result(name, nil)
}

// release ends owner's lease on name if it holds it at time now.
func (t *Table) release(now int64, name, owner string) []byte {
	rec, ok := t.locks[name]
	switch {
	case !ok:
		return t.result(name, codec.NewOpError(codeNotHolder, "lock %s is free", codec.Quote(name)))
	case now >= rec.expiryUnixNanos:
		return t.result(name, codec.NewOpError(codeNotHolder, "lease of lock %s by %s expired at %s",
			codec.Quote(name), codec.Quote(rec.owner), formatTime(rec.expiryUnixNanos)))
	case rec.owner != owner:
		return t.result(name, codec.NewOpError(codeNotHolder, "lock %s is held by %s, not %s",
			codec.Quote(name), codec.Quote(rec.owner), codec.Quote(owner)))
	}
	delete(t.locks, name)
	return t.result(name, nil)
}

// nextFence returns the token for a new grant when the ensemble's token is
// ensembleFence (see the package doc).
func (t *Table) nextFence(ensembleFence uint64) (uint64, *opError) {
	if t.fence == math.MaxUint64 {
		return 0, codec.NewOpError(codeFencesExhausted, "last grant used fence %d", t.fence)
	}
	return max(t.fence+1, ensembleFence), nil
}

// result encodes the outcome of an operation on name: the lock's record as
// it stands now (none for an empty name).
func (t *Table) result(name string, err *opError) []byte {
	var res Result
	// The empty name is never stored, so a failed decoding finds nothing.
	if rec, ok := t.locks[name]; ok {
		res = Result{Owner: rec.owner, Fence: rec.fence, Expiry: time.Unix(0, rec.expiryUnixNanos).UTC()}
	}
	return appendResult(nil, res, err)
}

// expiry returns the end of a lease of ttl granted at now, saturating rather
// than wrapping near the end of int64 time (the year 2262).
func expiry(now int64, ttl time.Duration) int64 {
	if now > math.MaxInt64-int64(ttl) {
		return math.MaxInt64
	}
	return now + int64(ttl)
}

// formatTime renders Unix nanoseconds for an error message.
func formatTime(unixNanos int64) string {
	return time.Unix(0, unixNanos).UTC().Format(time.RFC3339Nano)
}
