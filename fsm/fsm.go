// Package fsm defines the contract between hasup and the replicated state
// machines it hosts, and holds the built-in ones (kv, lock) in sub-packages.
//
// # Determinism
//
// Every replica of an ensemble applies the same commands in the same order and
// must reach the same state. So Apply must depend only on the FSM's state, the
// command bytes and the Context it is given: never on the wall clock, global
// randomness, map iteration order, the environment or anything outside the
// FSM. Time and randomness come from the Context, whose values the ensemble's
// primary chose once for the batch and shipped to every replica.
//
// # Threading and lifecycle
//
// hasup calls an FSM from one goroutine at a time: Apply, Query, Snapshot and
// Restore never run concurrently with each other, so an FSM needs no locks of
// its own. An FSM must not start goroutines. Apply and Restore may be called
// at any point of the FSM's life; Restore replaces the state entirely, as if
// the FSM had been created anew and had applied the commands the snapshot
// covers.
//
// # Retention
//
// The cmd slice passed to Apply and the q slice passed to Query belong to the
// caller and may be reused after the call returns: copy what you keep. The
// slices an FSM returns are handed to clients and kept in the client table, so
// they must not be modified afterwards.
package fsm

import (
	"io"
	"math/rand/v2"
	"time"
)

// FSM is a deterministic replicated state machine.
type FSM interface {
	// Apply executes one committed command and returns its result. It must be
	// deterministic (see the package doc). Errors that belong to the command,
	// such as a failed compare-and-swap, are part of the result bytes: Apply
	// cannot fail, because every replica must agree on what it did.
	Apply(ctx Context, cmd []byte) []byte
	// Query answers a read-only question about the state. It must not
	// change the state. Its error is returned to the caller as is.
	Query(q []byte) ([]byte, error)
	// Snapshot writes a consistent image of the whole state to w.
	Snapshot(w io.Writer) error
	// Restore replaces the whole state with the image read from r, as written
	// by Snapshot. A malformed image is an error, and leaves the FSM unusable
	// until a successful Restore.
	Restore(r io.Reader) error
}

// Context carries the values a command may depend on besides its bytes. The
// ensemble's primary chose them when it ordered the command, so every replica
// sees the same values. The zero Context is valid: time zero, op zero and a
// fixed random stream.
type Context struct {
	op        uint64
	unixNanos int64
	seed      uint64
	fence     uint64
	rng       *rand.Rand
}

// NewContext returns the context for the command with operation number op,
// ordered at unixNanos (Unix time in nanoseconds, as the primary's clock read
// it; never decreasing along the log) with the batch's random seed and the
// ensemble's fencing token at that point.
func NewContext(op uint64, unixNanos int64, seed, fence uint64) Context {
	return Context{op: op, unixNanos: unixNanos, seed: seed, fence: fence}
}

// Op returns the command's operation number: its position in the ensemble's
// log, starting at 1. It increases by one from command to command.
func (c Context) Op() uint64 { return c.op }

// Time returns the time the primary assigned to the command. It never
// decreases along the log, but it is a wall-clock reading: it may stand still
// or move faster or slower than real time.
func (c Context) Time() time.Time { return time.Unix(0, c.unixNanos).UTC() }

// UnixNanos returns Time as Unix nanoseconds.
func (c Context) UnixNanos() int64 { return c.unixNanos }

// Fence returns the ensemble's fencing token when the command was ordered: a
// number that never decreases along the log and grows whenever the primary
// or the configuration changes.
func (c Context) Fence() uint64 { return c.fence }

// Rand returns a random source that yields the same sequence on every
// replica for this command. Its state is not carried from one command to the
// next, and it must not be retained after Apply returns.
func (c *Context) Rand() *rand.Rand {
	if c.rng == nil {
		c.rng = rand.New(rand.NewPCG(c.seed, c.op))
	}
	return c.rng
}
