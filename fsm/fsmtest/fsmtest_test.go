package fsmtest_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/hasup/hasup/fsm"
	"github.com/hasup/hasup/fsm/fsmtest"
)

// flawEnv names the environment variable that tells TestFlawedCounter which
// flaw to give the counter.
const flawEnv = "FSMTEST_FLAW"

func TestCounterPasses(t *testing.T) {
	fsmtest.Run(t, func() fsm.FSM { return newCounter("") }, counterWorkload)
}

// TestFlawedCounter runs the suite on a counter with the flaw named in
// flawEnv. It only runs as a child of TestSuiteCatchesFlaws, which expects
// it to fail.
func TestFlawedCounter(t *testing.T) {
	flaw := os.Getenv(flawEnv)
	if flaw == "" {
		t.Skip("run by TestSuiteCatchesFlaws")
	}
	fsmtest.Run(t, func() fsm.FSM { return newCounter(flaw) }, counterWorkload)
}

// TestSuiteCatchesFlaws runs the suite, in a child process each, on
// counters that break one promise of package fsm, and checks that the check
// for that promise fails. A child process, because a failing suite fails the
// *testing.T it is given, and a test cannot hand it one that fails quietly.
func TestSuiteCatchesFlaws(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process per flaw")
	}
	tests := []struct {
		flaw  string
		check string
	}{
		{flawMapOrder, "Determinism"},
		{flawRetainsCommand, "Determinism"},
		{flawReusesResult, "Determinism"},
		{flawReadsOutside, "Determinism"},
		{flawRestoreDrops, "SnapshotRoundTrip"},
		{flawRestoreMerges, "RestoreReplacesState"},
		{flawQueryMutates, "QueryDoesNotMutate"},
		{flawNoChecksum, "RestoreRejectsCorruption"},
	}
	for _, tt := range tests {
		t.Run(tt.flaw, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestFlawedCounter$", "-test.v")
			cmd.Env = append(os.Environ(), flawEnv+"="+tt.flaw)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a counter with flaw %s:\n%s", tt.flaw, out)
			}
			if want := "--- FAIL: TestFlawedCounter/" + tt.check + "/"; !strings.Contains(string(out), want) {
				t.Fatalf("flaw %s: no %q in the output:\n%s", tt.flaw, want, out)
			}
		})
	}
}
