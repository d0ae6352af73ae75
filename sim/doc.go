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
// # Supervised runs
//
// Half of the seeds (by a hash of the seed; -sim.mode forces one kind) run
// supervised: no reconfiguration is drawn; instead every up node runs the
// supervisor's loop every few ticks, as supervisor/runtime.go does: it
// reads a simulated registry, asks the real decision core
// (supervisor/reconcile.Decide, with supervisor/placement) what to do, and
// does it: node states, targets and finished epochs are proposed to the
// registry (only node states and targets by the cluster primary, the
// lowest-index up node that talks to a majority), and the node starts,
// deletes, reconfigures and hints its own replicas. The registry follows
// fsm/registry's rules (stale and busy proposals are refused); a
// proposal commits after a random delay or is lost, and a node's read of
// the registry may lag. Each node's failure detector follows the truth with
// delays (a crashed or cut-off node turns suspect, then failed; a node
// back turns alive), and lies: false failure verdicts, seen by one, some or
// all nodes, mostly shorter than the damping window and sometimes longer
// (the registry then holds a live node failed and its ensembles replace
// it), and flapping nodes whose failed phases the damping must absorb.
// Some crashes outlast detection and damping, so that dead members are
// replaced by spare nodes (a supervised run has one node more than its
// smallest ensemble at least).
//
// The checkers above watch these runs too, and more: the registry records
// only epochs an ensemble reached, in order and with the member list its
// replicas ran; a target is begun only from the epoch the ensemble runs;
// no decision deletes the replica of a member of the running epoch; and
// the liveness phase ends only once the registry agrees with what runs,
// every replica that no epoch names any more is deleted and the
// supervisors have nothing left to do. An ensemble may end with other
// members than it started with. The node kept down in the liveness phase
// is chosen only while no ensemble on it is reconfiguring (in the
// registry or in fact) or has a member without state of its own.
//
// A restarted node's host reopens the replicas it has storage for; one
// whose storage is empty or corrupt is started again by the supervisor
// when the registry names the node: as a joiner if the registry's target
// alone names it and it never persisted anything, else with neither flag,
// so that it recovers (the runtime detects a lost store, reconcile's
// "What Decide cannot know"). Bootstrap is honoured only at creation.
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
