package fsmtest_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// Example shows what an FSM's test supplies to Run. Its test file holds
//
//	func TestConformance(t *testing.T) {
//		fsmtest.Run(t, func() fsm.FSM { return newCounter("") }, counterWorkload)
//	}
//
// where counterWorkload is a Generator: it draws every choice from the
// *rand.Rand it is given, so the same seed gives the same workload, which is
// what lets a failing seed replay.
func Example() {
	w1 := counterWorkload(rand.New(rand.NewPCG(1, 2)))
	w2 := counterWorkload(rand.New(rand.NewPCG(1, 2)))
	same := slices.EqualFunc(w1.Commands, w2.Commands, func(a, b []byte) bool { return string(a) == string(b) })
	fmt.Println(len(w1.Commands), "commands,", len(w1.Queries), "queries, replayable:", same)
	// Output: 100 commands, 21 queries, replayable: true
}
