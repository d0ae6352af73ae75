package main

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/hasup/hasup/examples/internal/transcript"
	"github.com/hasup/hasup/fsm"
	"github.com/hasup/hasup/fsm/fsmtest"
)

// TestCounterConformance runs hasup's FSM conformance suite on Counter:
// determinism, snapshot round trips, restore replacing the state, queries
// not mutating, corrupt images refused.
func TestCounterConformance(t *testing.T) {
	fsmtest.Run(t, func() fsm.FSM { return NewCounter() }, counterWorkload)
}

// counterWorkload mixes adds of small and extreme amounts (so that some
// overflow) with gets and malformed commands.
func counterWorkload(r *rand.Rand) fsmtest.Workload {
	bad := []string{"", "add", "add ", "add x", "add 1.5", "sub 1", "ADD 1", "get ", "add 99999999999999999999"}
	var w fsmtest.Workload
	for range 200 {
		switch r.IntN(10) {
		case 0:
			w.Commands = append(w.Commands, []byte(bad[r.IntN(len(bad))]))
		case 1:
			w.Commands = append(w.Commands, GetCmd())
		case 2:
			w.Commands = append(w.Commands, AddCmd([]int64{math.MaxInt64, math.MinInt64}[r.IntN(2)]))
		default:
			w.Commands = append(w.Commands, AddCmd(r.Int64N(2001)-1000))
		}
	}
	w.Queries = [][]byte{GetCmd(), []byte("add 1"), []byte(bad[r.IntN(len(bad))])}
	return w
}

func TestCounterCommands(t *testing.T) {
	c := NewCounter()
	var ctx fsm.Context
	for _, tc := range []struct {
		cmd     []byte
		want    int64
		wantErr error
	}{
		{AddCmd(5), 5, nil},
		{AddCmd(-7), -2, nil},
		{GetCmd(), -2, nil},
		{[]byte("add x"), 0, ErrRejected},
		{[]byte("mul 2"), 0, ErrRejected},
		{AddCmd(math.MinInt64), 0, ErrRejected}, // -2 + MinInt64 overflows
		{AddCmd(math.MaxInt64), math.MaxInt64 - 2, nil},
		{AddCmd(3), 0, ErrRejected},
		{GetCmd(), math.MaxInt64 - 2, nil},
	} {
		got, err := DecodeResult(c.Apply(ctx, tc.cmd))
		if !errors.Is(err, tc.wantErr) || (err == nil && got != tc.want) {
			t.Fatalf("%q: got %d, %v; want %d, %v", tc.cmd, got, err, tc.want, tc.wantErr)
		}
	}
	if _, err := c.Query([]byte("add 1")); !errors.Is(err, ErrBadQuery) {
		t.Fatalf("Query(add 1): %v, want ErrBadQuery", err)
	}
	var image bytes.Buffer
	if err := c.Snapshot(&image); err != nil {
		t.Fatal(err)
	}
	restored := NewCounter()
	if err := restored.Restore(&image); err != nil {
		t.Fatal(err)
	}
	if got, _ := restored.Query(GetCmd()); string(got) != strconv.FormatInt(math.MaxInt64-2, 10) {
		t.Fatalf("restored count %s", got)
	}
}

// TestRun runs the program (three nodes, adds from every node, a failover
// and a restart) and checks what it prints.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a three-node cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	var out bytes.Buffer
	start := time.Now()
	if err := run(ctx, &out); err != nil {
		t.Fatalf("run: %v\noutput so far:\n%s", err, out.String())
	}
	t.Logf("run took %v; it printed:\n%s", time.Since(start).Round(time.Millisecond), out.String())
	const node = `n[123]`
	const members = `\[` + node + ` ` + node + ` ` + node + `\]`
	m := transcript.Match(t, out.String(), []string{
		`cluster formed: n1, n2, n3`,
		`ensemble "counter" \(type counter\) on ` + members + `, leader (` + node + `)`,
		`watch on ` + node + `: epoch 0 view 0 primary (` + node + `) members ` + members,
		`6 writers on n1, n2, n3 added 1, 20 times each`,
		`count 120`,
		`stopping (` + node + `), the leader`,
		`4 writers on ` + node + `, ` + node + ` added 1, 20 times each`,
		`count 200`,
		`restarting (` + node + `)`,
		`watch on ` + node + `: epoch \d+ view [1-9]\d* primary (` + node + `) members ` + members,
		`leader (` + node + `), count 200 \(asked through (` + node + `)\)`,
	})
	// One node leads, is watched as primary, is stopped and restarts;
	// afterwards another leads, and the count is asked through the first.
	first := m[1][1]
	if m[2][1] != first || m[5][1] != first || m[8][1] != first || m[10][2] != first {
		t.Errorf("leader %s, watched primary %s, stopped %s, restarted %s, asked through %s: want one node",
			first, m[2][1], m[5][1], m[8][1], m[10][2])
	}
	if after := m[10][1]; m[9][1] != after || after == first {
		t.Errorf("after the failover: watched primary %s, leader %s; the old leader was %s", m[9][1], after, first)
	}
}
