package registry

import (
	"fmt"
	"maps"
	"slices"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/fsm/internal/codec"
)

// The rules a node, a spec and a member list must follow. Commands are
// judged by them before they touch the state, and decoders of answers and
// images check them too, so that nothing a buggy writer checksummed gets in.
// Each returns what is wrong in words, or "" if nothing is.

// nodeIDProblem judges a node ID.
func nodeIDProblem(id hasup.NodeID) string {
	if len(id) == 0 || len(id) > MaxNodeIDBytes {
		return fmt.Sprintf("node ID of %d bytes, want 1 to %d", len(id), MaxNodeIDBytes)
	}
	return ""
}

// nodeProblem judges a node's ID, address, state and tags.
func nodeProblem(n Node) string {
	if p := nodeIDProblem(n.ID); p != "" {
		return p
	}
	switch {
	case len(n.Addr) == 0 || len(n.Addr) > MaxAddrBytes:
		return fmt.Sprintf("node %s: address of %d bytes, want 1 to %d", codec.Quote(n.ID), len(n.Addr), MaxAddrBytes)
	case stateProblem(n.State) != "":
		return fmt.Sprintf("node %s: %s", codec.Quote(n.ID), stateProblem(n.State))
	case len(n.Tags) > MaxTags:
		return fmt.Sprintf("node %s: %d tags, limit %d", codec.Quote(n.ID), len(n.Tags), MaxTags)
	}
	// In key order, so that every replica reports the same bad tag.
	for _, k := range slices.Sorted(maps.Keys(n.Tags)) {
		if p := tagProblem(k, n.Tags[k]); p != "" {
			return fmt.Sprintf("node %s: %s", codec.Quote(n.ID), p)
		}
	}
	return ""
}

// tagProblem judges one tag.
func tagProblem(k, v string) string {
	switch {
	case len(k) == 0 || len(k) > MaxTagKeyBytes:
		return fmt.Sprintf("tag key %s of %d bytes, want 1 to %d", codec.Quote(k), len(k), MaxTagKeyBytes)
	case len(v) > MaxTagValueBytes:
		return fmt.Sprintf("tag %s: value of %d bytes, limit %d", codec.Quote(k), len(v), MaxTagValueBytes)
	}
	return ""
}

// stateProblem judges a member state on its own.
func stateProblem(s hasup.MemberState) string {
	if s < hasup.MemberAlive || s > hasup.MemberLeft {
		return fmt.Sprintf("%s is not a member state", s)
	}
	return ""
}

// nameProblem judges an ensemble name: an RFC 1123 DNS label,
// [a-z0-9]([a-z0-9-]*[a-z0-9])? of at most MaxNameBytes.
func nameProblem(name hasup.EnsembleName) string {
	if len(name) == 0 || len(name) > MaxNameBytes {
		return fmt.Sprintf("name %s of %d bytes, want 1 to %d", codec.Quote(name), len(name), MaxNameBytes)
	}
	for i := range len(name) {
		c := name[i]
		inner := i > 0 && i < len(name)-1
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' && inner) {
			return fmt.Sprintf("name %s is not a DNS label: use lower-case letters, digits and inner dashes", codec.Quote(name))
		}
	}
	return ""
}

// specProblem judges a spec.
func specProblem(s Spec) string {
	if p := nameProblem(s.Name); p != "" {
		return p
	}
	switch {
	case len(s.Type) == 0 || len(s.Type) > MaxTypeBytes:
		return fmt.Sprintf("type of %d bytes, want 1 to %d", len(s.Type), MaxTypeBytes)
	case !sizeOK(s.Replicas):
		return fmt.Sprintf("%d replicas, want 1, 3 or 5", s.Replicas)
	case len(s.Constraints) > MaxConstraints:
		return fmt.Sprintf("%d constraints, limit %d", len(s.Constraints), MaxConstraints)
	}
	for i, c := range s.Constraints {
		if len(c) == 0 || len(c) > MaxConstraintBytes {
			return fmt.Sprintf("constraint %d of %d bytes, want 1 to %d", i, len(c), MaxConstraintBytes)
		}
	}
	return ""
}

// membersProblem judges a member list, named what in the message: 1, 3 or 5
// distinct valid node IDs.
func membersProblem(what string, ids []hasup.NodeID) string {
	if !sizeOK(len(ids)) {
		return fmt.Sprintf("%s %s: %d nodes, want 1, 3 or 5", what, formatIDs(ids), len(ids))
	}
	for i, id := range ids {
		if p := nodeIDProblem(id); p != "" {
			return fmt.Sprintf("%s %d: %s", what, i, p)
		}
		if slices.Contains(ids[:i], id) {
			return fmt.Sprintf("%s %s: node %s appears twice", what, formatIDs(ids), codec.Quote(id))
		}
	}
	return ""
}

// targetProblem judges a reconfiguration target against the members it
// replaces.
func targetProblem(members, target []hasup.NodeID) string {
	if p := membersProblem("target", target); p != "" {
		return p
	}
	if slices.Equal(members, target) {
		return fmt.Sprintf("target %s is the member list", formatIDs(target))
	}
	return ""
}

// sizeOK reports whether n is an ensemble size: 1, 3 or 5.
func sizeOK(n int) bool { return n == 1 || n == 3 || n == 5 }
