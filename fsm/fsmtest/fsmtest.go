// Package fsmtest is a conformance suite for fsm.FSM implementations. Run
// checks, with seeded random workloads the FSM's own test supplies, the
// promises of package fsm that every replica relies on:
//
//   - Determinism: two instances given the same commands with the same
//     Contexts return identical results and identical snapshots, even when
//     the caller reuses its command buffers after Apply returns, and a result
//     does not change after Apply has returned it.
//   - SnapshotRoundTrip: restoring a snapshot into a fresh instance gives
//     the same snapshot back, and both instances then answer further commands
//     and queries identically.
//   - RestoreReplacesState: restoring into an instance that has state of its
//     own leaves nothing of that state behind.
//   - QueryDoesNotMutate: queries (and command bytes sent as queries) leave
//     the snapshot unchanged, answer the same twice and on two equal instances.
//   - RestoreRejectsCorruption: Restore returns an error, and does not panic,
//     for every strict prefix of an image, for an image with any single bit
//     flipped, for random bytes and for a failing reader; and a good image
//     restores after all that. Passing needs a self-delimiting image (a length
//     or an end marker) and a checksum.
//
// Every random choice comes from math/rand/v2 sources with fixed seeds, so a
// failure replays exactly.
package fsmtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hasup/hasup/fsm"
)

// Workload is one batch of input for the FSM under test.
type Workload struct {
	// Commands are applied in order. They should mix valid commands with
	// malformed ones, and revisit the same few names often enough that
	// commands interact (conflict, overwrite, expire).
	Commands [][]byte
	// Queries are asked after Commands, valid and malformed alike. May be
	// empty; the suite also sends the command bytes as queries.
	Queries [][]byte
}

// Generator returns a workload drawn from r alone, so that a seed replays it.
// A few hundred commands per call is plenty: Run calls it several times.
type Generator func(r *rand.Rand) Workload

// seeds are the seeds each check runs with. A function rather than a
// package-level variable, so that nothing can change it.
func seeds() []uint64 { return []uint64{1, 2, 3} }

// Run runs the conformance checks as subtests of t, each once per seed.
// newFSM must return a fresh, empty FSM each call; gen supplies workloads.
func Run(t *testing.T, newFSM func() fsm.FSM, gen Generator) {
	t.Helper()
	checks := []struct {
		name  string
		check func(t *testing.T, h *harness)
	}{
		{"Determinism", determinism},
		{"SnapshotRoundTrip", snapshotRoundTrip},
		{"RestoreReplacesState", restoreReplacesState},
		{"QueryDoesNotMutate", queryDoesNotMutate},
		{"RestoreRejectsCorruption", restoreRejectsCorruption},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			for _, seed := range seeds() {
				t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
					c.check(t, newHarness(newFSM, gen, seed))
				})
			}
		})
	}
}

// harness holds what one check draws its input from.
type harness struct {
	newFSM func() fsm.FSM
	gen    Generator
	rng    *rand.Rand
	clock  clock
}

// newHarness returns a harness whose random choices all follow from seed.
func newHarness(newFSM func() fsm.FSM, gen Generator, seed uint64) *harness {
	return &harness{
		newFSM: newFSM,
		gen:    gen,
		rng:    rand.New(rand.NewPCG(seed, 0x6873757074657374)), // "hsuptest"
		clock:  clock{unixNanos: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()},
	}
}

// workload draws the next workload and the Contexts to apply its commands
// with.
func (h *harness) workload() (Workload, []fsm.Context) {
	w := h.gen(h.rng)
	ctxs := make([]fsm.Context, len(w.Commands))
	for i := range ctxs {
		ctxs[i] = h.clock.next(h.rng)
	}
	return w, ctxs
}

// clock hands out Contexts the way an ensemble's primary does: op numbers
// one apart, time that never goes back (often standing still, now and then
// jumping ahead by up to a minute, so that leases expire), and a fence that
// starts at 0 and now and then grows.
type clock struct {
	op        uint64
	unixNanos int64
	fence     uint64
}

// next returns the Context for the next command.
func (c *clock) next(r *rand.Rand) fsm.Context {
	c.op++
	switch r.IntN(10) {
	case 0: // same batch: time stands still
	case 1:
		c.unixNanos += r.Int64N(int64(time.Minute))
	default:
		c.unixNanos += r.Int64N(int64(time.Second))
	}
	if r.IntN(50) == 0 {
		c.fence += 1 + r.Uint64N(3)
	}
	return fsm.NewContext(c.op, c.unixNanos, r.Uint64(), c.fence)
}

// determinism applies one workload to two instances and compares every
// result and, now and then, the snapshots. Instance a gets each command in a
// scratch buffer that is overwritten after Apply, as fsm allows; b gets its
// own copy, so an FSM that keeps the caller's bytes diverges.
func determinism(t *testing.T, h *harness) {
	const snapshotEvery = 25
	a, b := h.newFSM(), h.newFSM()
	var results, copies [][]byte
	for range 3 {
		w, ctxs := h.workload()
		var scratch []byte
		for i, cmd := range w.Commands {
			scratch = append(scratch[:0], cmd...)
			ra := apply(t, a, ctxs[i], scratch)
			for j := range scratch {
				scratch[j] = ^scratch[j]
			}
			rb := apply(t, b, ctxs[i], bytes.Clone(cmd))
			if !bytes.Equal(ra, rb) {
				t.Fatalf("command %d %s: results differ at byte %d:\n a: %s\n b: %s\n%s",
					i, show(cmd), diffAt(ra, rb), show(ra), show(rb), retentionHint)
			}
			results, copies = append(results, ra), append(copies, bytes.Clone(ra))
			if i%snapshotEvery == 0 {
				sameSnapshots(t, a, b, fmt.Sprintf("after command %d (%s)", i, retentionHint))
			}
		}
		sameSnapshots(t, a, b, "after the workload ("+retentionHint+")")
	}
	if s1, s2 := snapshot(t, a), snapshot(t, a); !bytes.Equal(s1, s2) {
		t.Fatalf("two snapshots of one instance differ")
	}
	for i := range results {
		if !bytes.Equal(results[i], copies[i]) {
			t.Fatalf("result %d changed after Apply returned it: was %s, now %s", i, show(copies[i]), show(results[i]))
		}
	}
}

// retentionHint points at the one way the determinism check's two
// instances are treated differently.
const retentionHint = "a gets each command in a buffer the caller overwrites after Apply returns; an FSM that keeps cmd without copying fails here"

// snapshotRoundTrip restores a's snapshot into a fresh b, then drives both
// on.
func snapshotRoundTrip(t *testing.T, h *harness) {
	empty := snapshot(t, h.newFSM())
	fresh := h.newFSM()
	restore(t, fresh, empty)
	sameSnapshots(t, fresh, h.newFSM(), "after restoring an empty snapshot")

	a := h.newFSM()
	w, ctxs := h.workload()
	applyAll(t, a, w.Commands, ctxs)
	image := snapshot(t, a)
	b := h.newFSM()
	restore(t, b, image)
	if got := snapshot(t, b); !bytes.Equal(got, image) {
		t.Fatalf("snapshot after restore differs from the image:\n image: %s\n got:   %s", show(image), show(got))
	}
	driveBoth(t, h, a, b)
}

// restoreReplacesState restores a's snapshot into b, which has applied other
// commands, and checks b ends up as a.
func restoreReplacesState(t *testing.T, h *harness) {
	a, b := h.newFSM(), h.newFSM()
	w, ctxs := h.workload()
	applyAll(t, a, w.Commands, ctxs)
	w, ctxs = h.workload()
	applyAll(t, b, w.Commands, ctxs)
	image := snapshot(t, a)
	restore(t, b, image)
	if got := snapshot(t, b); !bytes.Equal(got, image) {
		t.Fatalf("restored instance differs from the source:\n source:   %s\n restored: %s", show(image), show(got))
	}
	restore(t, b, image)
	driveBoth(t, h, a, b)
}

// queryDoesNotMutate asks every query twice on one instance and once on an
// equal one, and checks that the answers agree and the snapshot stays put.
func queryDoesNotMutate(t *testing.T, h *harness) {
	a, b := h.newFSM(), h.newFSM()
	w, ctxs := h.workload()
	applyAll(t, a, w.Commands, ctxs)
	applyAll(t, b, w.Commands, ctxs)
	before := snapshot(t, a)
	for i, q := range append(w.Queries, w.Commands...) {
		scratch := bytes.Clone(q)
		r1, err1 := query(t, a, scratch)
		kept := bytes.Clone(r1)
		for j := range scratch {
			scratch[j] = ^scratch[j]
		}
		if !bytes.Equal(r1, kept) {
			t.Fatalf("query %d %s: answer changed when the caller reused its query buffer", i, show(q))
		}
		r2, err2 := query(t, a, q)
		r3, err3 := query(t, b, q)
		if !sameAnswer(r1, err1, r2, err2) || !sameAnswer(r1, err1, r3, err3) {
			t.Fatalf("query %d %s: answers differ: %s (%v), again %s (%v), other instance %s (%v)",
				i, show(q), show(r1), err1, show(r2), err2, show(r3), err3)
		}
	}
	if after := snapshot(t, a); !bytes.Equal(before, after) {
		t.Fatalf("queries changed the state:\n before: %s\n after:  %s", show(before), show(after))
	}
}

// restoreRejectsCorruption feeds Restore damaged copies of a real image.
func restoreRejectsCorruption(t *testing.T, h *harness) {
	a, victim := h.newFSM(), h.newFSM()
	w, ctxs := h.workload()
	applyAll(t, a, w.Commands, ctxs)
	image := snapshot(t, a)
	reject := func(what string, r io.Reader) {
		t.Helper()
		if err := restoreErr(t, victim, r, what); err == nil {
			t.Fatalf("Restore accepted %s", what)
		}
	}
	for _, n := range cuts(h.rng, len(image)) {
		reject(fmt.Sprintf("the image cut to %d of %d bytes", n, len(image)), bytes.NewReader(image[:n]))
	}
	for _, i := range cuts(h.rng, len(image)) {
		bad := bytes.Clone(image)
		bit := h.rng.IntN(8)
		bad[i] ^= 1 << bit
		reject(fmt.Sprintf("the image with bit %d of byte %d of %d flipped", bit, i, len(image)), bytes.NewReader(bad))
	}
	for range 64 {
		junk := make([]byte, h.rng.IntN(2*len(image)+1))
		for i := range junk {
			junk[i] = byte(h.rng.Uint32())
		}
		reject(fmt.Sprintf("%d random bytes", len(junk)), bytes.NewReader(junk))
	}
	n := h.rng.IntN(len(image))
	reject(fmt.Sprintf("a reader that fails after %d bytes", n), &failingReader{data: image[:n]})
	restore(t, victim, image)
	sameSnapshots(t, a, victim, "after restoring a good image following bad ones")
}

// driveBoth applies a fresh workload to a and b, which must be equal, and
// checks that they stay equal in results, answers and snapshots.
func driveBoth(t *testing.T, h *harness, a, b fsm.FSM) {
	t.Helper()
	w, ctxs := h.workload()
	for i, cmd := range w.Commands {
		ra, rb := apply(t, a, ctxs[i], cmd), apply(t, b, ctxs[i], cmd)
		if !bytes.Equal(ra, rb) {
			t.Fatalf("command %d %s: results differ at byte %d:\n a: %s\n b: %s", i, show(cmd), diffAt(ra, rb), show(ra), show(rb))
		}
	}
	for i, q := range w.Queries {
		ra, erra := query(t, a, q)
		rb, errb := query(t, b, q)
		if !sameAnswer(ra, erra, rb, errb) {
			t.Fatalf("query %d %s: answers differ:\n a: %s (%v)\n b: %s (%v)", i, show(q), show(ra), erra, show(rb), errb)
		}
	}
	sameSnapshots(t, a, b, "after further commands")
}

// cuts returns the positions at which to cut or damage an image of n bytes:
// all of them for a small image, otherwise both ends and a random sample of
// the middle, which keeps the check near-linear in the image's size.
func cuts(r *rand.Rand, n int) []int {
	const all, ends, middle = 4096, 512, 512
	if n <= all {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	out := make([]int, 0, 2*ends+middle)
	for i := range ends {
		out = append(out, i, n-1-i)
	}
	for range middle {
		out = append(out, ends+r.IntN(n-2*ends))
	}
	return out
}

// failingReader returns data, then an error that is not io.EOF: a disk or
// connection failing halfway through a state transfer.
type failingReader struct {
	data []byte
}

// Read implements io.Reader.
func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, errors.New("fsmtest: reader broke")
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}
