// Package reconcile is the supervisor's decision core: a pure function,
// Decide, from what one node knows (the registry as it last read it, its
// failure detector's view, the replicas it runs) to what the node should do
// now (propose a registry change, start, stop or reconfigure a local
// replica, hint a view change). The runtime gathers an Input on every tick,
// calls Decide, and carries out the Actions; it never decides anything
// itself.
//
// # Level-triggered
//
// Decide looks at state, never at events. Every tick it compares what the
// registry says should run with what runs, and what the detector says with
// what the registry says, and asks for whatever closes the gap. An action
// that fails, a proposal the registry refuses, a restart of the daemon, a
// lost Serf event: each costs one more tick of latency, never correctness,
// because the next tick sees the same gap and asks again. So every action
// is safe to repeat: the registry refuses stale proposals (a BeginReconfig
// from an old epoch, a FinishReconfig of an epoch it already has), the host
// refuses to start a replica twice, an ensemble refuses a second
// reconfiguration while one is in its log. DESIGN.md, "The supervisor".
//
// Decide is deterministic: no clock (Input.Now is given), no randomness,
// no goroutines, and no map order leaks out. Its result depends on the
// Input's content, not on the order of its slices, and is sorted by (Kind,
// Ensemble, Node, Reason). It never modifies its Input, and the Actions
// share no memory with it.
//
// # The rules
//
// Registry changes, proposed only by the cluster primary (Input.
// ClusterPrimary), so that one node decides and the others cannot race it:
//
//   - ProposeUpsertNode: a node the detector sees alive that the registry
//     lacks, or whose address or tags differ from the registry's.
//   - ProposeNodeState: the detector has held a node failed (or left) for
//     at least Input.Damping while the registry does not say so: record it.
//     The detector has held a node alive for Damping while the registry
//     says failed or left: record it alive. Suspect never changes the
//     registry, and a node alive again before Damping passes (a flapping
//     node) never reaches it: the damping window is what keeps a slow node
//     from costing every ensemble on it a reconfiguration. Left is not
//     turned into failed: a node that left stays left until it is back.
//   - ProposeBeginReconfig: an ensemble with no reconfiguration in
//     progress (Target nil) and a member the registry records failed or
//     left (or does not know): replace ONE such member, the first in
//     member order, with the node placement.Replace chooses. One
//     reconfiguration per ensemble at a time: a 5-replica ensemble that
//     lost two members gets two successive ones. Candidates are the
//     registry's nodes that the registry records alive and the detector
//     (when it knows them) sees alive; loads count, for every node, the
//     ensembles naming it in Members or Target (Replicas) and those it
//     leads (Members[0], Primaries), and each decision of the tick is
//     counted into the loads of the next (ensembles in name order), so
//     that one failure does not send every replacement to the same node.
//   - Blocked (status only): why an ensemble that needs a replacement gets
//     none: its constraints do not parse, placement found no eligible node
//     (the placement error, which names each node turned down), or more
//     than f of its members are down, so the old epoch cannot commit a
//     reconfiguration and the ensemble waits for them to return rather
//     than be left with a Target it can never reach.
//
// Local actions, decided by every node for the replicas it runs or should:
//
//   - Reconfigure: this node runs the ensemble's primary (IsPrimary, mode
//     normal) in the registry's epoch and the registry has a Target: ask
//     the replica to move to it. The ensemble commits the new member list
//     as the last op of its epoch (ensemble/epoch.go).
//   - ProposeFinishReconfig: this node's replica is normal in an epoch
//     later than the registry's, and it is the primary (or, if it cannot
//     tell who is, the lowest node ID of its members): propose that the
//     registry record the epoch and its members. Several proposers are
//     harmless (the registry refuses a stale one); the rule keeps it to
//     one in the common case.
//   - StartReplica: the registry lists this node in an ensemble's Members
//     or Target and no local replica of it runs. A member starts in the
//     registry's epoch with its members, joining it (Join) if that epoch
//     is later than 0; a node only in Target joins epoch Epoch+1 with the
//     Target as members. Bootstrap is set
//     for a member of an ensemble still at epoch 0 with no reconfiguration
//     in progress: a brand-new ensemble. The host ignores Bootstrap and
//     Join when it holds stored state for the ensemble.
//   - StopReplica (with Delete): a local replica whose state nobody needs
//     any more, because the registry proves it: the ensemble was deleted
//     (never for the cluster ensemble, Input.ClusterEnsemble, which runs
//     before it registers itself); the replica retired and stopped; it
//     retired and the registry records an epoch later than the one that
//     retired it; or this node is in neither Members nor Target and the
//     registry records an epoch later than the replica's (it was replaced
//     while away), or the replica is joining the registry's epoch, whose
//     list does not name it (a reconfiguration that was aborted). A
//     retiring replica (not Stopped) otherwise keeps running: it serves the
//     state to the new members until they run the new epoch. Nothing is
//     deleted on evidence that the registry may simply lag: a stopped
//     replica whose node the lagging registry still names waits, since
//     deleting it would only restart it.
//   - SuspectPrimary: a local backup in mode normal whose primary's node
//     the detector holds failed or left (not merely suspect): hint the
//     replica to start a view change now instead of waiting for its
//     timeout. Once per (epoch, view): Input.Hinted holds the last hinted
//     Fence(epoch, view) per ensemble. A hint is only a trigger; a false
//     one costs a view change, never safety.
//
// # What Decide cannot know
//
// A node that never ran an ensemble and a node whose storage was wiped
// look the same here: no local replica. Bootstrap and Join are right for
// the first and unsafe for the second (a replica that once acknowledged
// ops must recover them, VRR §4.3). The host ignores both when it holds
// stored state, and recovers a replica whose storage fails its checksums;
// a whole store lost without a trace must be detected by the runtime (say,
// a node identity kept beside the data), which must then start its
// replicas with neither flag.
//
// Resizing an ensemble (3 to 5, 5 to 3) and the first placement of a new
// ensemble are not decided here: the API and the registry's CreateEnsemble
// place new ensembles, and Replace keeps the current member count.
//
// # Rejected alternatives
//
//   - Edge-triggered repair (act on each Serf event): a lost event, a
//     restart or a change of cluster primary would strand a repair half
//     done. Comparing state on every tick needs no memory of what
//     happened, beyond the hints (Input.Hinted), which only save work.
//   - Replacing every failed member in one reconfiguration: the registry
//     and the ensemble allow one at a time, and each step keeps a quorum
//     of members that hold the state.
//   - Proposing node states from every node: nodes see failures at
//     different moments and would flood the cluster ensemble with
//     duplicates; the cluster primary's view is as good as any.
package reconcile
