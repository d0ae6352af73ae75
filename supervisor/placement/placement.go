package placement

import (
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/hasup/hasup"
)

// Errors of Place and Replace, always wrapped with the ensemble and the
// detail; test them with errors.Is.
var (
	// ErrNotEnoughNodes: fewer nodes are eligible than the ensemble needs.
	// The message names every node turned down (up to rejectionsMax) and
	// why, so an operator sees which tag or which dead node is missing.
	ErrNotEnoughNodes = errors.New("placement: not enough eligible nodes")
	// ErrInvalidRequest: the request or the node list cannot be placed at
	// all (wrong replica count, bad constraint, duplicate node ID, negative
	// load, a member list that does not fit the request). Retrying with
	// the same input fails the same way.
	ErrInvalidRequest = errors.New("placement: invalid request")
)

// rejectionsMax bounds how many turned-down nodes an ErrNotEnoughNodes
// message names; the rest are counted, so a large cluster gives a readable
// error.
const rejectionsMax = 8

// Node is one cluster node as placement sees it: its labels, whether it may
// take replicas, and its load.
type Node struct {
	ID   hasup.NodeID
	Tags map[string]string // operator labels; constraints and SpreadBy read them
	// Alive is false for a node failure detection holds suspect, failed
	// or left: only alive nodes are eligible.
	Alive bool
	// Replicas is how many replicas the node hosts now, in all ensembles.
	Replicas int
	// Primaries is how many of those replicas are their ensemble's
	// Members[0], the intended primary of view 0 (0 <= Primaries <=
	// Replicas).
	Primaries int
}

// Request is what placement needs to know of an ensemble's spec.
type Request struct {
	Ensemble hasup.EnsembleName // non-empty; seeds the tie-breaking hash
	// Replicas is the ensemble's size: 3 or 5 (1 for development). Even
	// sizes are refused, as package ensemble refuses them.
	Replicas int
	// Constraints must all hold on a node's tags for it to be eligible.
	Constraints []Constraint
	// SpreadBy, if set, is a tag key (such as "zone") whose values name
	// failure domains: members are spread over as many distinct values as
	// the eligible nodes offer, as evenly as they allow.
	SpreadBy string
}

// Validate reports, wrapped in ErrInvalidRequest, why r cannot be placed on
// any set of nodes.
func (r Request) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("ensemble %q: %w: %s", r.Ensemble, ErrInvalidRequest, fmt.Sprintf(format, args...))
	}
	if r.Ensemble == "" {
		return bad("empty ensemble name")
	}
	switch r.Replicas {
	case 1, 3, 5:
	default:
		return bad("%d replicas, want 1, 3 or 5", r.Replicas)
	}
	for i, c := range r.Constraints {
		if err := c.Validate(); err != nil {
			return fmt.Errorf("ensemble %q: %w: constraint %d: %w", r.Ensemble, ErrInvalidRequest, i, err)
		}
	}
	if r.SpreadBy != "" {
		if err := checkWord("spread key", r.SpreadBy); err != nil {
			return bad("%v", err)
		}
	}
	return nil
}

// Place chooses req.Replicas distinct eligible nodes for a new ensemble and
// returns their IDs in order: Members[0] is the intended primary of view 0.
// The result depends only on req and the set of nodes, never on their order.
// See the package doc for the algorithm.
func Place(req Request, nodes []Node) ([]hasup.NodeID, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	sorted, err := sortNodes(req, nodes)
	if err != nil {
		return nil, err
	}
	cands, rejected := eligible(req, sorted, nil, "")
	if len(cands) < req.Replicas {
		noun := "nodes"
		if req.Replicas == 1 {
			noun = "node"
		}
		return nil, fmt.Errorf("place ensemble %s: %w: need %d %s%s; %d of %d eligible%s",
			req.Ensemble, ErrNotEnoughNodes, req.Replicas, noun, matching(req), len(cands), len(sorted), formatRejected(rejected))
	}
	chosen := pick(req, cands, map[string]int{}, req.Replicas)
	slices.SortFunc(chosen, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(a.node.Primaries, b.node.Primaries), cmp.Compare(a.node.Replicas, b.node.Replicas), byHash(a, b))
	})
	out := make([]hasup.NodeID, len(chosen))
	for i, c := range chosen {
		out[i] = c.node.ID
	}
	return out, nil
}

// Replace returns members with failed swapped for the best eligible node
// that is not already a member, chosen as Place would choose a last member
// with the survivors' SpreadBy values counted. Every survivor keeps its
// slot and the new node takes failed's slot, except when failed is
// members[0]: then the list is rotated by one, so that the old members[1]
// leads view 0 of the new epoch and the new node, which must first pull the
// state, is last (see the package doc). failed is never chosen, even if it
// is alive: the caller decided to replace it.
func Replace(req Request, members []hasup.NodeID, failed hasup.NodeID, nodes []Node) ([]hasup.NodeID, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	slot, err := checkMembers(req, members, failed)
	if err != nil {
		return nil, err
	}
	sorted, err := sortNodes(req, nodes)
	if err != nil {
		return nil, err
	}
	cands, rejected := eligible(req, sorted, members, failed)
	if len(cands) == 0 {
		return nil, fmt.Errorf("replace %s in ensemble %s: %w: need 1 node besides the members%s; 0 of %d eligible%s",
			failed, req.Ensemble, ErrNotEnoughNodes, matching(req), len(sorted), formatRejected(rejected))
	}
	used := map[string]int{}
	for _, n := range sorted {
		if n.ID != failed && slices.Contains(members, n.ID) {
			used[spreadValue(req, &n)]++
		}
	}
	repl := pick(req, cands, used, 1)[0].node.ID
	out := slices.Clone(members)
	out[slot] = repl
	if slot == 0 && len(out) > 1 {
		out = append(out[1:], repl)
	}
	return out, nil
}

// AddLoad returns a copy of nodes with a placement's members counted in:
// one replica more on every member, one primary more on members[0]. Members
// not in nodes are ignored. The copy shares the Tags maps of nodes. It lets
// a caller place several ensembles from one snapshot of loads, each seeing
// the ones placed before it.
func AddLoad(nodes []Node, members []hasup.NodeID) []Node {
	out := slices.Clone(nodes)
	for i := range out {
		if j := slices.Index(members, out[i].ID); j >= 0 {
			out[i].Replicas++
			if j == 0 {
				out[i].Primaries++
			}
		}
	}
	return out
}

// candidate is an eligible node with its rendezvous hash for this ensemble.
type candidate struct {
	node *Node
	hash uint64
}

// pick takes k candidates greedily, each the least by (spread, Replicas,
// Primaries, -hash, ID); used counts the members already taken per SpreadBy
// value and is updated. It panics if fewer than k candidates exist: callers
// check first.
func pick(req Request, cands []candidate, used map[string]int, k int) []candidate {
	if k > len(cands) {
		panic(fmt.Sprintf("placement: pick %d of %d candidates", k, len(cands)))
	}
	taken := make([]bool, len(cands))
	chosen := make([]candidate, 0, k)
	for range k {
		best := -1
		for i := range cands {
			if !taken[i] && (best < 0 || less(req, used, cands[i], cands[best])) {
				best = i
			}
		}
		taken[best] = true
		chosen = append(chosen, cands[best])
		used[spreadValue(req, cands[best].node)]++
	}
	return chosen
}

// less orders candidates for pick: fewest members already in the same
// failure domain, then fewest replicas, then fewest primaries, then the
// rendezvous hash.
func less(req Request, used map[string]int, a, b candidate) bool {
	c := cmp.Or(
		cmp.Compare(used[spreadValue(req, a.node)], used[spreadValue(req, b.node)]),
		cmp.Compare(a.node.Replicas, b.node.Replicas),
		cmp.Compare(a.node.Primaries, b.node.Primaries),
		byHash(a, b),
	)
	return c < 0
}

// byHash orders the higher rendezvous hash first, then the smaller ID, so
// that no two distinct nodes compare equal.
func byHash(a, b candidate) int {
	return cmp.Or(cmp.Compare(b.hash, a.hash), cmp.Compare(a.node.ID, b.node.ID))
}

// spreadValue is n's failure domain: its SpreadBy tag, "" when the request
// spreads by nothing or n lacks the tag (all such nodes share a domain).
func spreadValue(req Request, n *Node) string {
	if req.SpreadBy == "" {
		return ""
	}
	return n.Tags[req.SpreadBy]
}

// rendezvous is the highest-random-weight score of node for ensemble:
// FNV-64a over the ensemble name, a zero byte and the node ID, then
// MurmurHash3's 64-bit finalizer. The zero byte keeps ("ab", "c") and ("a",
// "bc") apart. The finalizer is needed because FNV's last bytes barely reach
// its high bits: node IDs that differ only at the end (n1, n2, ...) would
// rank nearly the same way for every ensemble (TestTieBreakDiffersPerEnsemble
// caught it: 4 of 10 member sets used, instead of all 10).
func rendezvous(ensemble hasup.EnsembleName, node hasup.NodeID) uint64 {
	h := fnv.New64a()
	h.Write([]byte(ensemble))
	h.Write([]byte{0})
	h.Write([]byte(node))
	return fmix64(h.Sum64())
}

// fmix64 is the finalizer of MurmurHash3: every input bit affects every
// output bit.
func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

// rejection is a node turned down and why.
type rejection struct {
	id     hasup.NodeID
	reason string
}

// eligible splits sorted nodes into candidates and rejections. Members and
// failed (for Replace) are rejected as such.
func eligible(req Request, sorted []Node, members []hasup.NodeID, failed hasup.NodeID) ([]candidate, []rejection) {
	var cands []candidate
	var rejected []rejection
	for i := range sorted {
		n := &sorted[i]
		var why []string
		switch {
		case failed != "" && n.ID == failed:
			why = append(why, "the failed member")
		case slices.Contains(members, n.ID):
			why = append(why, "already a member")
		}
		if !n.Alive {
			why = append(why, "not alive")
		}
		for _, c := range req.Constraints {
			if !c.Match(n.Tags) {
				why = append(why, "fails "+c.String())
			}
		}
		if len(why) > 0 {
			rejected = append(rejected, rejection{n.ID, strings.Join(why, ", ")})
			continue
		}
		cands = append(cands, candidate{node: n, hash: rendezvous(req.Ensemble, n.ID)})
	}
	return cands, rejected
}

// sortNodes returns a copy of nodes sorted by ID, after checking that IDs
// are non-empty and distinct and loads consistent.
func sortNodes(req Request, nodes []Node) ([]Node, error) {
	sorted := slices.Clone(nodes)
	slices.SortFunc(sorted, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	for i, n := range sorted {
		var problem string
		switch {
		case n.ID == "":
			problem = "node with an empty ID"
		case i > 0 && sorted[i-1].ID == n.ID:
			problem = fmt.Sprintf("node %s listed twice", n.ID)
		case n.Replicas < 0 || n.Primaries < 0 || n.Primaries > n.Replicas:
			problem = fmt.Sprintf("node %s: load of %d replicas and %d primaries", n.ID, n.Replicas, n.Primaries)
		}
		if problem != "" {
			return nil, fmt.Errorf("ensemble %q: %w: %s", req.Ensemble, ErrInvalidRequest, problem)
		}
	}
	return sorted, nil
}

// checkMembers checks a member list for Replace and returns failed's slot.
func checkMembers(req Request, members []hasup.NodeID, failed hasup.NodeID) (int, error) {
	bad := func(format string, args ...any) (int, error) {
		return 0, fmt.Errorf("ensemble %q: %w: %s", req.Ensemble, ErrInvalidRequest, fmt.Sprintf(format, args...))
	}
	if len(members) != req.Replicas {
		return bad("%d members %v, want %d", len(members), members, req.Replicas)
	}
	for i, m := range members {
		if m == "" || slices.Contains(members[:i], m) {
			return bad("empty or repeated node in members %v", members)
		}
	}
	slot := slices.Index(members, failed)
	if slot < 0 {
		return bad("failed node %q is not a member of %v", failed, members)
	}
	return slot, nil
}

// matching returns " matching [c1, c2]", or "" without constraints.
func matching(req Request) string {
	if len(req.Constraints) == 0 {
		return ""
	}
	return " matching " + formatConstraints(req.Constraints)
}

// formatRejected returns " (n3: fails zone=a; n4: not alive)", naming at
// most rejectionsMax nodes, or "" if none was rejected.
func formatRejected(rs []rejection) string {
	if len(rs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(" (")
	for i, r := range rs {
		if i == rejectionsMax {
			fmt.Fprintf(&b, "; and %d more", len(rs)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %s", r.id, r.reason)
	}
	b.WriteString(")")
	return b.String()
}
