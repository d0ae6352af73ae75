package main

import (
	"bytes"
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/hasup/hasup/examples/internal/transcript"
)

// TestRun runs the program and checks what it prints: every writer reads
// every note, one of two racing edits wins, no linearizable read misses an
// acknowledged note, and the display's replica catches up.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a four-node cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	var out bytes.Buffer
	start := time.Now()
	if err := run(ctx, &out); err != nil {
		t.Fatalf("run: %v\noutput so far:\n%s", err, out.String())
	}
	t.Logf("run took %v; it printed:\n%s", time.Since(start).Round(time.Millisecond), out.String())
	want := []string{
		`cluster formed: n1, n2, n3, n4`,
		`ensemble "blackboard" \(type kv\) on \[n1 n2 n4\], leader n[124]`,
		`alice \(on n1\) posted 3 notes and reads 9 on the board`,
		`bob \(on n2\) posted 3 notes and reads 9 on the board`,
		`carol \(on n3\) posted 3 notes and reads 9 on the board`,
	}
	for _, w := range writers {
		for n := 1; n <= notesEach; n++ {
			want = append(want, `  board/`+w+`/`+strconv.Itoa(n)+` +`+w+`'s note `+strconv.Itoa(n))
		}
	}
	want = append(want,
		`n1 and n2 edit board/alice/1 at once, both at revision \d+: 1 won, 1 got a conflict`,
		`  board/alice/1 +alice's note 1, edited on n[12]`,
		`alice posts 20 more notes; meanwhile`,
		`  the display's stale reads \(n4's own replica\): (\d+) of (\d+) missed a note \(by at most (\d+)\)`,
		`  bob's linearizable reads: 0 of [1-9]\d* missed a note`,
		`  a stale read a little later: all 29 notes`,
	)
	m := transcript.Match(t, out.String(), want)
	stale := m[len(m)-3]
	missed, _ := strconv.Atoi(stale[1])
	reads, _ := strconv.Atoi(stale[2])
	most, _ := strconv.Atoi(stale[3])
	if reads == 0 || missed > reads || (missed > 0) != (most > 0) || most > morePosts {
		t.Errorf("stale reads: %d of %d missed, by at most %d", missed, reads, most)
	}
}
