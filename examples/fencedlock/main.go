// Command fencedlock shows hasup's built-in lock FSM guarding a resource
// with fencing tokens, on a three-node cluster inside this one process.
//
// Two workers, on two nodes, compete for one lock. The winner gets a lease
// (its length counted on the ensemble's clock: the time the primary gave
// the acquire command, the FSM's ctx.Time) and a fencing token, and writes
// to a storage that remembers the highest token it has seen and refuses
// any write that carries a lower one. Then the holder stalls, as a process
// does in a long GC pause or a stopped VM, and its lease runs out; the
// other worker acquires the lock with a higher token. When the first one
// wakes up and writes, still believing it holds the lock, the storage
// refuses it: the lease alone cannot stop a stalled holder, the token can.
// Last, a release hands the lock back.
//
//	go run ./examples/fencedlock
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/examples/internal/localcluster"
	"github.com/hasup/hasup/fsm/lock"
	"github.com/hasup/hasup/supervisor"
)

const (
	// name is the lock ensemble's name, lockName the lock in it.
	name     hasup.EnsembleName = "locks"
	lockName                    = "report"
	// ttl is each lease's length. Short, so that the demo's lease runs out
	// soon; a real one is long enough to cover the holder's work between
	// renewals, with room for pauses.
	ttl = time.Second
	// retryMin is the least wait before acquiring again after a refusal.
	retryMin = 10 * time.Millisecond
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fencedlock:", err)
		os.Exit(1)
	}
}

// run is the whole program; ctx bounds it.
func run(ctx context.Context, out io.Writer) (err error) {
	c, err := localcluster.Start(ctx, 3, nil)
	if err != nil {
		return fmt.Errorf("start the cluster: %w", err)
	}
	defer func() { err = errors.Join(err, c.Close()) }()
	fmt.Fprintf(out, "cluster formed: %s\n", localcluster.IDs(c.Nodes))

	e, err := c.StartEnsemble(ctx, 0, supervisor.Spec{Name: name, Type: "lock", Replicas: 3})
	if err != nil {
		return err
	}
	leader, err := e.Leader(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "ensemble %q (type lock) on %v, leader %s\n", name, e.Members(), leader)

	workers := make([]*worker, 2)
	for i := range workers {
		h, err := c.Lookup(ctx, i, name)
		if err != nil {
			return err
		}
		workers[i] = &worker{name: fmt.Sprintf("worker-%c", 'a'+i), node: c.Nodes[i].ID(), h: h}
	}
	store := &Storage{}

	// Both try at once; the ensemble orders the two acquires, and the
	// first one ordered wins.
	fmt.Fprintf(out, "%s (on %s) and %s (on %s) both try to acquire %q for %v\n",
		workers[0].name, workers[0].node, workers[1].name, workers[1].node, lockName, ttl)
	first, second, err := compete(ctx, workers)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  %s holds it with fence %d\n", first.name, first.fence)
	fmt.Fprintf(out, "  %s is refused: held by %s\n", second.name, first.name)
	if err := first.write(out, store, "line 1"); err != nil {
		return err
	}
	// A holder renews before its lease runs out: same lease, same fence.
	renewed, err := first.acquire(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s renews its lease: fence %d\n", first.name, renewed.Fence)

	// The holder stalls, and renews no more. The other waits until the
	// lease has run out, then acquires with a new, higher fence.
	fmt.Fprintf(out, "%s stalls (a long GC pause, a stopped VM) and stops renewing\n", first.name)
	if err := second.acquireWhenFree(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s acquires %q after the lease ran out, with fence %d\n", second.name, lockName, second.fence)
	if err := second.write(out, store, "line 2"); err != nil {
		return err
	}

	// The first wakes up and, unaware, writes with its old fence.
	fmt.Fprintf(out, "%s wakes up and writes, still believing it holds the lock\n", first.name)
	if first.write(out, store, "line 2, from the past") == nil {
		return errors.New("the storage took a write with an old fence")
	}
	if err := first.release(ctx); !errors.Is(err, lock.ErrNotHolder) {
		return fmt.Errorf("%s's release after its lease ran out: %v, want lock.ErrNotHolder", first.name, err)
	}
	fmt.Fprintf(out, "%s's release fails too: it is not the holder\n", first.name)

	// A release hands the lock over at once, without waiting for the lease.
	if err := second.release(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s releases %q\n", second.name, lockName)
	if _, err := first.acquire(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s acquires it again, with fence %d\n", first.name, first.fence)
	if err := first.write(out, store, "line 3"); err != nil {
		return err
	}
	if err := first.release(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "the storage holds:\n")
	for _, l := range store.Lines() {
		fmt.Fprintf(out, "  %s\n", l)
	}
	return nil
}

// compete has both workers acquire the lock at once and returns the winner
// first.
func compete(ctx context.Context, workers []*worker) (winner, loser *worker, err error) {
	var wg sync.WaitGroup
	errs := make([]error, len(workers))
	for i, w := range workers {
		wg.Go(func() { _, errs[i] = w.acquire(ctx) })
	}
	wg.Wait()
	switch {
	case errs[0] == nil && errors.Is(errs[1], lock.ErrHeld):
		return workers[0], workers[1], nil
	case errs[1] == nil && errors.Is(errs[0], lock.ErrHeld):
		return workers[1], workers[0], nil
	}
	return nil, nil, fmt.Errorf("want one acquire to win and one to find the lock held: %w", errors.Join(errs...))
}

// worker is a process that needs the lock to write to the storage.
type worker struct {
	name  string
	node  hasup.NodeID
	h     *supervisor.Ensemble
	fence uint64 // the token of the worker's last grant
}

// acquire asks for the lock (or renews it) for ttl. On success it keeps
// the grant's token; if the lock is held by another, the error wraps
// lock.ErrHeld and the result says until when.
func (w *worker) acquire(ctx context.Context) (lock.Result, error) {
	for {
		res, err := w.h.Propose(ctx, lock.AcquireCmd(lockName, w.name, ttl))
		if errors.Is(err, supervisor.ErrNoQuorum) && ctx.Err() == nil {
			// The first try may or may not have run; trying again is
			// safe, because an acquire by the holder renews its lease.
			continue
		}
		if err != nil {
			return lock.Result{}, fmt.Errorf("%s: acquire: %w", w.name, err)
		}
		r, err := lock.DecodeResult(res)
		if err == nil {
			w.fence = r.Fence
		}
		return r, err
	}
}

// acquireWhenFree acquires the lock, waiting out the current lease each
// time it finds the lock held.
func (w *worker) acquireWhenFree(ctx context.Context) error {
	for {
		r, err := w.acquire(ctx)
		if !errors.Is(err, lock.ErrHeld) {
			return err
		}
		// The lease ends at r.Expiry on the primary's clock; on this one
		// host that is ours. (Across hosts, allow for clock skew: an early
		// try costs only a refusal.)
		select {
		case <-time.After(max(time.Until(r.Expiry), retryMin)):
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for the lock: %w", w.name, ctx.Err())
		}
	}
}

// release gives the lock up.
func (w *worker) release(ctx context.Context) error {
	res, err := w.h.Propose(ctx, lock.ReleaseCmd(lockName, w.name))
	if err != nil {
		return fmt.Errorf("%s: release: %w", w.name, err)
	}
	_, err = lock.DecodeResult(res)
	return err
}

// write writes line to the storage with the worker's fence, and prints
// the outcome.
func (w *worker) write(out io.Writer, s *Storage, line string) error {
	err := s.Write(w.fence, fmt.Sprintf("%s@%d: %s", w.name, w.fence, line))
	if err != nil {
		fmt.Fprintf(out, "  %s writes with fence %d: rejected (%v)\n", w.name, w.fence, err)
		return err
	}
	fmt.Fprintf(out, "  %s writes with fence %d: ok\n", w.name, w.fence)
	return nil
}

// ErrStaleFence: a write carried a lower fencing token than one the
// storage has already seen.
var ErrStaleFence = errors.New("storage: stale fence")

// Storage stands for whatever the lock guards: a database, a file store,
// a device. Its one rule: it keeps the highest fencing token any write
// carried, and refuses writes with a lower one. Fencing works only if the
// resource checks; the lock service cannot do it for the resource.
type Storage struct {
	mu      sync.Mutex
	highest uint64
	lines   []string
}

// Write appends line if fence is at least the highest fence seen.
func (s *Storage) Write(fence uint64, line string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fence < s.highest {
		return fmt.Errorf("%w: %d is below %d, already seen", ErrStaleFence, fence, s.highest)
	}
	s.highest = fence
	s.lines = append(s.lines, line)
	return nil
}

// Lines returns what was written.
func (s *Storage) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}
