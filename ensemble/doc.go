// Package ensemble is Viewstamped Replication Revisited (Liskov & Cowling,
// MIT-CSAIL-TR-2012-021) for one replica of one ensemble, with disk, as a
// pure deterministic state machine: Tick, Step, Propose, ReadAt and
// Reconfigure take inputs; Ready hands the runtime what to persist, send and
// answer; Advance says it was done. No I/O, clock, goroutine or global
// randomness lives here (a test in the repository root enforces it), so the
// simulator in package sim runs this exact code under seeded faults.
//
// Decisions DESIGN.md leaves open, and how this package takes them:
//
//   - Durability: every message of a Ready leaves only after all of the
//     Ready's writes are durable, the primary's PREPAREs included. A primary
//     restarted from its disk therefore never finds a backup holding an
//     entry it lost, and may resume its view.
//   - View change: a DOVIEWCHANGE carries the sender's log after its
//     checkpoint. The new primary keeps its own log up to its commit number
//     (committed, so identical everywhere) and takes the rest from the chosen
//     log; if the chosen log starts beyond its commit number it first fetches
//     the chosen sender's checkpoint. A backup that cannot join a new view's
//     log without a gap fetches the view's log whole (transfer.go) and
//     installs it atomically with the new last-normal-view: no path shortens
//     a log while keeping its last-normal-view.
//   - Sizes: 1, 3, 5 or 7 replicas. Even sizes are refused, since the
//     view-change and recovery quorums rest on n = 2f+1.
//   - Client sessions are opened explicitly (request 0, as in the Raft
//     dissertation §6.3), with a floor that makes a reopened session refuse
//     every earlier request; the table evicts the least recently active
//     session, deterministically at apply time.
//   - Reads: linearizable reads confirm the view with a quorum round whose
//     numbers start at a random base per primary incarnation; lease reads
//     need a lease and an established view; stale reads report their lag.
//   - Leases (lease.go): backups promise, on each acknowledgement, not to
//     take part in a view change for LeaseTicks; the primary's lease runs
//     from the stamp a majority echoed, less DriftMarginTicks. A primary
//     that hears no majority for two view-change timeouts steps down.
//   - Reconfiguration (epoch.go): epochs, with the member list decided by
//     one committed op of the previous epoch; new members and replicas of
//     older epochs catch up by a committed-state transfer.
//   - Peer messages are validated (validate.go); malformed or impossible
//     ones are dropped and counted in Status().Rejected. Invariants of this
//     replica's own state panic with their context.
//
// Known limits: a DOVIEWCHANGE or STARTVIEW can carry up to a checkpoint
// interval of entries (CheckpointOps x BatchBytes at worst); the transport's
// frame limit must allow that, or these messages must be chunked.
package ensemble
