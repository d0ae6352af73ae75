package main

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/hasup/hasup/examples/internal/transcript"
)

func TestStorageRefusesOlderFences(t *testing.T) {
	var s Storage
	for _, tc := range []struct {
		fence uint64
		ok    bool
	}{{1, true}, {1, true}, {3, true}, {2, false}, {1, false}, {3, true}, {4, true}} {
		err := s.Write(tc.fence, strconv.FormatUint(tc.fence, 10))
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrStaleFence)) {
			t.Fatalf("write with fence %d: %v, want ok=%v", tc.fence, err, tc.ok)
		}
	}
	if got := len(s.Lines()); got != 5 {
		t.Fatalf("%d lines kept, want 5", got)
	}
}

// TestRun runs the program and checks what it prints: one winner, one
// refusal, fences that grow with each new grant, the stale write refused.
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
	const node, w, n = `n[123]`, `(worker-[ab])`, `(\d+)`
	m := transcript.Match(t, out.String(), []string{
		`cluster formed: n1, n2, n3`,
		`ensemble "locks" \(type lock\) on \[` + node + ` ` + node + ` ` + node + `\], leader ` + node,
		`worker-a \(on n1\) and worker-b \(on n2\) both try to acquire "report" for 1s`,
		`  ` + w + ` holds it with fence ` + n,
		`  ` + w + ` is refused: held by ` + w,
		`  ` + w + ` writes with fence ` + n + `: ok`,
		w + ` renews its lease: fence ` + n,
		w + ` stalls \(a long GC pause, a stopped VM\) and stops renewing`,
		w + ` acquires "report" after the lease ran out, with fence ` + n,
		`  ` + w + ` writes with fence ` + n + `: ok`,
		w + ` wakes up and writes, still believing it holds the lock`,
		`  ` + w + ` writes with fence ` + n + `: rejected \(storage: stale fence: ` + n + ` is below ` + n + `, already seen\)`,
		w + `'s release fails too: it is not the holder`,
		w + ` releases "report"`,
		w + ` acquires it again, with fence ` + n,
		`  ` + w + ` writes with fence ` + n + `: ok`,
		`the storage holds:`,
		`  ` + w + `@` + n + `: line 1`,
		`  ` + w + `@` + n + `: line 2`,
		`  ` + w + `@` + n + `: line 3`,
	})
	first, second := m[3][1], m[4][1]
	if first == second || m[4][2] != first {
		t.Fatalf("holder %s, refused %s (held by %s)", first, second, m[4][2])
	}
	// Who does what: the first holder writes, renews, stalls, wakes, is
	// refused, fails to release, and gets the lock back; the second takes
	// over in between.
	for _, line := range []int{5, 6, 7, 10, 11, 12, 14, 15, 17, 19} {
		if m[line][1] != first {
			t.Errorf("line %d names %s, want %s", line+1, m[line][1], first)
		}
	}
	for _, line := range []int{8, 9, 13, 18} {
		if m[line][1] != second {
			t.Errorf("line %d names %s, want %s", line+1, m[line][1], second)
		}
	}
	fence := func(line, group int) uint64 {
		f, err := strconv.ParseUint(m[line][group], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	f1, f2, f3 := fence(3, 2), fence(8, 2), fence(14, 2)
	if fence(5, 2) != f1 || fence(6, 2) != f1 || fence(11, 2) != f1 || fence(11, 3) != f1 || fence(11, 4) != f2 {
		t.Errorf("the first holder's fence is %d, but later lines say otherwise:\n%s", f1, out.String())
	}
	if !(f1 < f2 && f2 < f3) {
		t.Errorf("fences %d, %d, %d: each new grant must have a higher one", f1, f2, f3)
	}
	if fence(9, 2) != f2 || fence(15, 2) != f3 || fence(17, 2) != f1 || fence(18, 2) != f2 || fence(19, 2) != f3 {
		t.Errorf("writes carry the wrong fences:\n%s", out.String())
	}
}
