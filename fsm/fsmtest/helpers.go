package fsmtest

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/hasup/hasup/fsm"
)

// apply calls f.Apply, turning a panic into a test failure that names the
// command.
func apply(t *testing.T, f fsm.FSM, ctx fsm.Context, cmd []byte) (result []byte) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("Apply panicked on command %s (op %d): %v", show(cmd), ctx.Op(), p)
		}
	}()
	return f.Apply(ctx, cmd)
}

// applyAll applies cmds to f, cmds[i] with ctxs[i].
func applyAll(t *testing.T, f fsm.FSM, cmds [][]byte, ctxs []fsm.Context) {
	t.Helper()
	for i, cmd := range cmds {
		apply(t, f, ctxs[i], cmd)
	}
}

// query calls f.Query, turning a panic into a test failure that names the
// query.
func query(t *testing.T, f fsm.FSM, q []byte) (answer []byte, err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("Query panicked on %s: %v", show(q), p)
		}
	}()
	return f.Query(q)
}

// snapshot returns f's image.
func snapshot(t *testing.T, f fsm.FSM) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := f.Snapshot(&buf); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return buf.Bytes()
}

// restore restores image into f, which must succeed.
func restore(t *testing.T, f fsm.FSM, image []byte) {
	t.Helper()
	if err := restoreErr(t, f, bytes.NewReader(image), "a good image"); err != nil {
		t.Fatalf("Restore of a good image of %d bytes: %v", len(image), err)
	}
}

// restoreErr calls f.Restore, turning a panic into a test failure that says
// what the reader held.
func restoreErr(t *testing.T, f fsm.FSM, r io.Reader, what string) (err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("Restore panicked on %s: %v", what, p)
		}
	}()
	return f.Restore(r)
}

// sameSnapshots fails the test unless a and b have identical images.
func sameSnapshots(t *testing.T, a, b fsm.FSM, when string) {
	t.Helper()
	if sa, sb := snapshot(t, a), snapshot(t, b); !bytes.Equal(sa, sb) {
		t.Fatalf("snapshots differ at byte %d %s:\n a: %s\n b: %s", diffAt(sa, sb), when, show(sa), show(sb))
	}
}

// sameAnswer reports whether two Query outcomes agree: equal bytes and
// errors with equal text (the error values themselves may be distinct
// allocations).
func sameAnswer(r1 []byte, err1 error, r2 []byte, err2 error) bool {
	if (err1 == nil) != (err2 == nil) {
		return false
	}
	if err1 != nil && err1.Error() != err2.Error() {
		return false
	}
	return bytes.Equal(r1, r2)
}

// show renders bytes for a failure message, shortened so that a large image
// does not bury the message.
func show(b []byte) string {
	const maxShown = 96
	if len(b) > maxShown {
		return fmt.Sprintf("%x... (%d bytes)", b[:maxShown], len(b))
	}
	return fmt.Sprintf("%x (%d bytes)", b, len(b))
}

// diffAt returns the offset of the first byte where a and b differ, or the
// shorter length if one is a prefix of the other.
func diffAt(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
