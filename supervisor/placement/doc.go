// Package placement chooses the nodes that host the replicas of a named
// ensemble. It is pure: a decision depends only on its arguments (no clock,
// goroutine, randomness or map order), so the cluster primary can compute
// it, propose it to the registry, and any test or replay can recompute it.
//
// # What it decides
//
// Place picks Request.Replicas members for a new ensemble, in order:
// Members[0] is the intended primary of view 0, Members[v mod n] the primary
// of view v. Replace swaps one failed member for a new node. AddLoad returns
// the node loads with a placement counted in, so that a caller placing many
// ensembles at once (or a test) feeds each decision into the next.
//
// # The algorithm
//
//  1. Validate the request and the node list (Replicas 1, 3 or 5; node IDs
//     non-empty and distinct; loads non-negative). Sort the nodes by ID, so
//     the order of the input never matters.
//  2. A node is eligible when it is alive and every constraint holds on its
//     tags. Too few eligible nodes is ErrNotEnoughNodes, naming each node
//     that was turned down and why.
//  3. Greedily take Replicas nodes, one at a time, each the smallest
//     eligible node not yet taken by the lexicographic key
//     (spread, Replicas, Primaries, -rendezvous, ID):
//     spread is how many members taken so far share the node's SpreadBy
//     value (0 without SpreadBy), so failure domains come first, then load,
//     then primary load, then the rendezvous hash
//     fmix64(FNV-64a(ensemble, 0, node)) (highest wins), then the ID in
//     case two hashes collide.
//  4. Order the members by (Primaries, Replicas, -rendezvous, ID): the one
//     leading fewest ensembles becomes primary of view 0, and every later
//     view passes to the next least burdened member.
//
// The greedy choice is optimal for the one-ensemble problem it solves: with
// no SpreadBy it takes exactly the Replicas least loaded eligible nodes;
// with SpreadBy it first covers min(Replicas, distinct values) failure
// domains, then fills them evenly (water-filling), least loaded first
// within each. Placing ensembles one after another with AddLoad keeps every
// node's replica count within one of the others' (when all are eligible
// and SpreadBy is unset). Primaries are balanced as far as those members
// allow: 20 ensembles of 3 on 5 nodes give every node 4±1; over random
// sequences of 3- and 5-replica ensembles (10,000 seeds) the primary counts
// of a cluster differed by at most 3, by less than 1 on average; this is an
// observation, guarded by TestBalanceProperty, not a theorem.
// Single-replica ensembles are their own primary, so a mix of them with
// larger ones balances primaries less well.
//
// A node without the SpreadBy tag counts as one shared, unnamed domain:
// placement cannot know that two unlabelled nodes fail independently, so it
// assumes they do not.
//
// Replace keeps every surviving member in its slot and puts the new node in
// the failed member's slot, chosen by the same key with the survivors' spread
// values already counted. One exception: a failed Members[0] is not replaced
// in slot 0. In the new epoch Members[0] is the primary of view 0, and a
// joining member takes part in nothing until it has pulled the committed
// state (ensemble/epoch.go), so the ensemble would wait out a view change.
// Instead the list is rotated by one: the old Members[1] (the primary of view
// 1, which took over when Members[0] failed) leads the new epoch, and the
// new node goes last. Rotation keeps the cyclic order in which views pass the
// primary role, with the new node in the failed node's place in that cycle.
//
// # Rejected alternatives
//
//   - Rendezvous (HRW) hashing alone, as in many sharded stores: it ignores
//     load and failure domains, so with tens of ensembles some nodes get
//     twice the mean. Here it only breaks ties.
//   - Breaking ties by node ID or input order: when loads are equal (a new
//     cluster, or many ensembles placed from one snapshot of loads) every
//     ensemble would land on the same nodes, and input order would leak
//     into the result. The rendezvous hash gives each ensemble its own,
//     stable preference order over the nodes.
//   - Drawing from a *rand.Rand: reproducible under a seed, but a decision
//     would then depend on how many draws came before it, so equal input
//     would not give equal output, and one decision could not be replayed
//     alone.
//   - A weighted score (load + α·same-domain): weights need tuning and hide
//     the priority between criteria. A lexicographic key states it: failure
//     domains, then load, then primaries.
//   - Load before spread: three replicas would share a zone whenever that
//     zone holds the least loaded nodes, which defeats spreading.
//   - Global optimisation (placing or moving all ensembles together, as a
//     min-cost matching): every move costs a state transfer and a
//     reconfiguration of a healthy ensemble; per-ensemble greedy decisions
//     fed through AddLoad are balanced enough and O(nodes × replicas).
//   - Filling slot 0 with the replacement in Replace: see above; the new
//     epoch would start with a primary that cannot act.
package placement
