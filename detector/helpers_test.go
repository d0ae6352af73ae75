package detector

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hasup/hasup"
)

// Test bounds. Everything a test waits for is polled against a deadline.
const (
	pollEvery   = 10 * time.Millisecond
	waitBound   = 5 * time.Second // generous: a loaded machine must not flake
	detectBound = 2 * time.Second // failure detection, local profile (measured ~1 s or less)
)

// eventually polls cond until it holds or bound passes, then fails the test.
func eventually(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	ticker := time.NewTicker(pollEvery)
	defer ticker.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: still not %s", bound, what)
		}
		<-ticker.C
	}
}

// testLogger discards unless HASUP_TEST_LOG is set, so that a failing run
// can be repeated with Serf's logs.
func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("HASUP_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

// localConfig is a loopback, ephemeral-port, local-profile config.
func localConfig(t *testing.T, name string) Config {
	c := DefaultConfig()
	c.NodeName = hasup.NodeID(name)
	c.BindAddr = "127.0.0.1"
	c.BindPort = 0
	c.Profile = ProfileLocal
	c.RPCAddr = "127.0.0.1:1" + name[len(name)-1:] + "000"
	c.Tags = map[string]string{"zone": "z-" + name}
	c.Logger = testLogger(t)
	return c
}

// recorder keeps every event a detector emitted, with its arrival time.
type recorder struct {
	mu     sync.Mutex
	events []timedEvent
	closed bool
}

type timedEvent struct {
	at time.Time
	hasup.MemberEvent
}

func (r *recorder) consume(ch <-chan hasup.MemberEvent) {
	for e := range ch {
		r.mu.Lock()
		r.events = append(r.events, timedEvent{time.Now(), e})
		r.mu.Unlock()
	}
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
}

// first returns the first event putting id in state.
func (r *recorder) first(id hasup.NodeID, state hasup.MemberState) (timedEvent, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Member.ID == id && e.Member.State == state {
			return e, true
		}
	}
	return timedEvent{}, false
}

// latest returns the last event about id.
func (r *recorder) latest(id hasup.NodeID) (hasup.Member, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.events) - 1; i >= 0; i-- {
		if r.events[i].Member.ID == id {
			return r.events[i].Member, true
		}
	}
	return hasup.Member{}, false
}

func (r *recorder) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// node is a running detector under test: New, an event recorder and Run.
type node struct {
	*Detector
	rec     *recorder
	cancel  context.CancelFunc
	runDone chan error
}

// start creates and runs a detector; the test's cleanup stops it.
func start(t *testing.T, cfg Config) *node {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.NodeName, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{Detector: d, rec: &recorder{}, cancel: cancel, runDone: make(chan error, 1)}
	go n.rec.consume(d.Events())
	go func() { n.runDone <- d.Run(ctx) }()
	t.Cleanup(func() { n.stop(t) })
	return n
}

// stop ends Run and waits, bounded, for it to return.
func (n *node) stop(t *testing.T) {
	t.Helper()
	n.cancel()
	select {
	case err := <-n.runDone:
		if err != nil {
			t.Errorf("Run(%s) returned %v", n.cfg.NodeName, err)
		}
		n.runDone <- err // let a later stop see it too
	case <-time.After(waitBound):
		t.Errorf("Run(%s) did not return within %v", n.cfg.NodeName, waitBound)
	}
}

// cluster starts detectors named n1..nk with the given profile, joins them
// through n1 and waits until every one sees k alive members.
func cluster(t *testing.T, k int, p Profile) []*node {
	t.Helper()
	var nodes []*node
	for i := 1; i <= k; i++ {
		cfg := localConfig(t, "n"+string(rune('0'+i)))
		cfg.Profile = p
		if i > 1 {
			cfg.Join = []string{nodes[0].Addr()}
		}
		nodes = append(nodes, start(t, cfg))
	}
	for _, n := range nodes {
		eventually(t, waitBound, string(n.cfg.NodeName)+" sees all alive", func() bool {
			return n.NumAlive() == k
		})
	}
	return nodes
}
