package transport

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
)

// waitTimeout bounds every wait in these tests.
const waitTimeout = 5 * time.Second

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		case <-tick.C:
		}
	}
}

// receive takes n messages off ch, failing after waitTimeout.
func receive(t *testing.T, ch <-chan ensemble.Message, n int) []ensemble.Message {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	out := make([]ensemble.Message, 0, n)
	for len(out) < n {
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed after %d of %d messages", len(out), n)
			}
			out = append(out, m)
		case <-deadline.C:
			t.Fatalf("received %d of %d messages in %v", len(out), n, waitTimeout)
		}
	}
	return out
}

// expectNothing fails if ch holds a message now. Messages are delivered
// synchronously on a MemNetwork, so "now" is enough there.
func expectNothing(t *testing.T, ch <-chan ensemble.Message) {
	t.Helper()
	select {
	case m := <-ch:
		t.Fatalf("unexpected message %v", m)
	default:
	}
}

// checkNoLeaks registers a cleanup, run after the test's own cleanups
// (which close the transports), that waits until no goroutine other than a
// test's runs or was started by this package's code.
func checkNoLeaks(t *testing.T) {
	t.Cleanup(func() {
		var leaked []string
		deadline := time.NewTimer(waitTimeout)
		defer deadline.Stop()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			leaked = transportGoroutines()
			if len(leaked) == 0 {
				return
			}
			select {
			case <-deadline.C:
				t.Fatalf("%d goroutines left %v after the test:\n%s", len(leaked), waitTimeout, strings.Join(leaked, "\n\n"))
			case <-tick.C:
			}
		}
	})
}

func transportGoroutines() []string {
	buf := make([]byte, 1<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "hasup/internal/transport.") && !strings.Contains(g, "testing.tRunner") {
			out = append(out, g)
		}
	}
	return out
}

// msg builds a message numbered op from -> to; every fifth carries large
// Entries and every seventh a large Data, so the frames span many reads.
func msg(from, to hasup.NodeID, op uint64) ensemble.Message {
	m := ensemble.Message{Type: ensemble.MsgPrepare, Ensemble: "e1", Epoch: 2, From: from, To: to, View: 3, Op: op, Commit: op / 2, Nonce: op * 7}
	if op%5 == 0 {
		for i := range 40 {
			m.Entries = append(m.Entries, ensemble.Entry{Op: op + uint64(i), Epoch: 2, View: 3, Kind: 1, Client: 9, Request: op,
				Cmd: bytes.Repeat([]byte{byte(i)}, 2000+i)})
		}
	}
	if op%7 == 0 {
		m.Type = ensemble.MsgNewState
		m.Data = bytes.Repeat([]byte(fmt.Sprint(op)), 50_000)
	}
	return m
}
