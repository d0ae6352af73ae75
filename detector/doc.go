// Package detector finds the nodes of a hasup cluster and tells which are
// alive. It wraps HashiCorp Serf (gossip membership over memberlist's SWIM
// failure detector with the Lifeguard extensions) and is the only hasup
// package that imports Serf or memberlist.
//
// # What it guarantees, and what it does not
//
// Every node runs one Detector. Each reports every member it knows, itself
// included, as a hasup.Member: the node's ID (the Serf node name), the
// address of its consensus transport (Config.RPCAddr, gossiped in the
// reserved tag "hasup.rpc"), its user tags and a state:
//
//   - MemberAlive: the node answers probes, directly or through peers.
//   - MemberSuspect: this node's own probe of the member failed (direct,
//     indirect and TCP) and the member is not declared failed yet. It goes
//     back to MemberAlive when a ping answers again (Run pings suspects
//     every probe interval), or on to MemberFailed.
//   - MemberFailed: the suspicion timed out without refutation.
//   - MemberLeft: the node announced a graceful leave (Serf's "leaving" and
//     "left" both map here), or an operator force-left a failed node.
//
// Serf reports no suspicion, and memberlist offers no API for it: the
// Node.State that memberlist's Members returns is never updated
// (hashicorp/memberlist#266, still so in v0.7.0). The detector therefore
// reads memberlist's log line "Suspect NAME has failed, no acks received",
// which memberlist writes when this node's probe fails; a test fails if an
// upgrade changes that line. Suspicions that other nodes gossip are not
// reported until this node's own probe fails too. Each node probes every
// member about once per (members - 1) probe intervals, which in small
// clusters is within the suspicion timeout, so most nodes report a dead
// member MemberSuspect before MemberFailed; a consumer must not rely on
// seeing MemberSuspect first.
//
// A verdict is a hint, never proof. A node declared failed may be alive
// behind a partition, paused, or overloaded; a node reported alive may have
// died a moment ago; two nodes may disagree for a while. Gossip makes the
// views converge when the network lets it, but nothing here is consensus.
// hasup uses verdicts only to trigger decisions (a view change, a repair)
// that the consensus protocol makes safe on its own.
//
// # Timing profiles
//
// Profile "lan" is memberlist's DefaultLANConfig with Serf's defaults, for
// nodes on a real network: probe interval 1 s, probe timeout 500 ms, 3
// indirect probes, suspicion multiplier 4 (max 6x while awaiting
// confirmations), gossip every 200 ms, push/pull every 30 s, TCP timeout
// 10 s; Serf reaps every 15 s, retries failed members every 30 s and forgets
// failed and left members after 24 h. In clusters under 10 nodes a killed
// node is suspected within 1-2 s and declared failed about 4 s later:
// expect 5-6 s (5.8 s measured by the opt-in TestLANProfileDetectionTime).
// Leave usually takes about 1 s (Serf's leave propagation delay), at most
// about 11 s when broadcasts time out.
//
// Profile "local" is for several nodes on one host (hasup demo, tests):
// probe interval 100 ms, probe timeout 50 ms, 2 indirect probes, suspicion
// multiplier 3 (max 4x), Lifeguard stretch at most 4x, gossip every 30 ms,
// push/pull every 5 s, TCP timeout 500 ms, a dead node's name reusable from
// a new address after 1 s; Serf reaps and retries every 1 s and forgets
// failed and left members after 1 min. A killed node is declared failed in
// about 0.5 s (measured in a 3-node test: 0.46-0.6 s; the test logs it and
// fails above 2 s); an overloaded host stretches this, up to 4x. These
// timings would raise false verdicts on a real network.
//
// # Events and the overflow policy
//
// Serf must never block: it sends its events while holding its member lock.
// A goroutine drains them at once into a pending set with at most one entry
// per member; another forwards that set to the bounded Events channel.
// When the consumer falls behind, a member's newer state replaces its older
// pending one (latest state wins): intermediate states may be skipped, a
// member's final state never is, and memory is bounded by the member count.
// Order is first-pending first, members of one Serf event by ID. A member
// whose tags change is re-emitted with its current state. Consumers should
// treat events as triggers and read Members for the truth (level-triggered).
//
// # Threading and lifecycle
//
// New starts Serf and two goroutines (drain, publish); Run, on the caller's
// goroutine, adds the join retry loop (one more goroutine while it retries)
// and the re-check of suspects (at most 16 concurrent pings, each bounded by
// the probe timeout). Shutdown, Leave, or the end of Run's context stop
// Serf and every goroutine and close Events; a test checks that none leaks.
// All methods are safe for concurrent use. The detector takes its own mutex
// only around its bookkeeping, never while calling Serf, so it cannot
// deadlock with Serf's locks.
package detector
