// Package sim is hasup's deterministic whole-cluster simulator. It runs the
// real ensemble.Replica code of several ensembles on several simulated nodes
// in one goroutine, on a virtual clock, over a simulated network and
// simulated disks, and injects faults drawn per seed: message loss,
// duplication, reordering, delay and corruption; symmetric, one-way and
// bridge partitions; crashes that lose the write in flight (or tear it);
// whole-cluster cold restarts; a wiped disk; bit flips on at most f replicas
// of an ensemble; wall-clock jumps; and false "primary suspected" hints.
//
// Clients run a put/get/CAS/append workload against the built-in kv FSM with
// sessions and retries. Checkers run after every step (agreement of
// committed prefixes, one primary committing per view, commit <= op, durable
// view never decreasing, recovering replicas never voting, every acknowledged
// op in every later primary's log, at-most-once execution), porcupine checks
// the client history for linearizability at the end, and a liveness phase
// heals a quorum of every ensemble and requires convergence within a bound.
//
// Everything derives from the seed: the same seed gives the same run and
// the same trace hash. Only tests import this package.
//
// # Fault model
//
// The disk of a replica is a list of records, one per Ready, as the bbolt
// store writes one transaction per Ready: a record is durable once its
// Ready's sync returned, and a crash loses the record being written or
// leaves it torn (detected by its checksum and discarded, which is safe
// because nothing it held was acknowledged). A bit flip corrupts a durable
// record; the replica then finds its storage corrupt at restart and, as a new
// incarnation, recovers from its peers. Corrupted messages are modelled as
// failing the transport's checksum: they are counted and dropped.
package sim
