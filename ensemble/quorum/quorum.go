// Package quorum holds the majority arithmetic of an ensemble of n replicas
// tolerating f = (n-1)/2 failures. It is pure and tiny so that every rule that
// depends on "a majority" is stated in one place.
package quorum

import "slices"

// F returns how many replicas of an ensemble of n may fail: (n-1)/2.
func F(n int) int { return (n - 1) / 2 }

// Majority returns f+1, the size of every quorum of an ensemble of n.
func Majority(n int) int { return n/2 + 1 }

// Committed returns the largest op number that at least a majority of the
// replicas hold, given each replica's highest durable op number. With fewer
// values than a majority it returns 0.
func Committed(acked []uint64, n int) uint64 {
	m := Majority(n)
	if len(acked) < m {
		return 0
	}
	s := slices.Clone(acked)
	slices.Sort(s)
	// The m-th largest value is held by at least m replicas.
	return s[len(s)-m]
}
