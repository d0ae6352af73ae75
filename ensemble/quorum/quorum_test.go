package quorum

import "testing"

func TestMajorityAndF(t *testing.T) {
	for _, tc := range []struct{ n, f, m int }{{1, 0, 1}, {2, 0, 2}, {3, 1, 2}, {4, 1, 3}, {5, 2, 3}} {
		if F(tc.n) != tc.f || Majority(tc.n) != tc.m {
			t.Errorf("n=%d: F=%d Majority=%d, want %d %d", tc.n, F(tc.n), Majority(tc.n), tc.f, tc.m)
		}
	}
}

func TestCommitted(t *testing.T) {
	for _, tc := range []struct {
		acked []uint64
		n     int
		want  uint64
	}{
		{[]uint64{5, 3, 1}, 3, 3},
		{[]uint64{5, 5, 1}, 3, 5},
		{[]uint64{5}, 3, 0},
		{[]uint64{9, 2, 7, 4, 8}, 5, 7},
		{[]uint64{9, 2, 7}, 5, 2},
		{[]uint64{1, 2}, 5, 0},
	} {
		if got := Committed(tc.acked, tc.n); got != tc.want {
			t.Errorf("Committed(%v, %d) = %d, want %d", tc.acked, tc.n, got, tc.want)
		}
	}
}
