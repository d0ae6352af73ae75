package detector

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hasup/hasup"
)

func TestThreeNodesSeeEachOtherAlive(t *testing.T) {
	nodes := cluster(t, 3, ProfileLocal)
	for _, n := range nodes {
		ms := n.Members()
		if len(ms) != 3 {
			t.Fatalf("%s: Members() = %v, want 3", n.cfg.NodeName, ms)
		}
		for i, m := range ms {
			want := nodes[i].cfg // Members is sorted by ID: n1, n2, n3
			if m.ID != want.NodeName || m.State != hasup.MemberAlive || m.Addr != want.RPCAddr ||
				!maps.Equal(m.Tags, want.Tags) {
				t.Errorf("%s sees %+v, want %s alive at %s with tags %v",
					n.cfg.NodeName, m, want.NodeName, want.RPCAddr, want.Tags)
			}
		}
		if got := n.LocalMember(); got.ID != n.cfg.NodeName || got.Addr != n.cfg.RPCAddr {
			t.Errorf("LocalMember() = %+v", got)
		}
		for _, peer := range nodes {
			id := peer.cfg.NodeName
			eventually(t, waitBound, string(n.cfg.NodeName)+" got an alive event for "+string(id), func() bool {
				_, ok := n.rec.first(id, hasup.MemberAlive)
				return ok
			})
		}
	}
}

func TestTagUpdatePropagates(t *testing.T) {
	nodes := cluster(t, 3, ProfileLocal)
	newTags := map[string]string{"zone": "moved", "disk": "ssd"}
	if err := nodes[1].SetTags(newTags); err != nil {
		t.Fatal(err)
	}
	newTags["zone"] = "caller mutates its map afterwards"
	want := map[string]string{"zone": "moved", "disk": "ssd"}
	id := nodes[1].cfg.NodeName
	for _, n := range []*node{nodes[0], nodes[2]} {
		eventually(t, waitBound, string(n.cfg.NodeName)+" re-emits "+string(id)+" with new tags", func() bool {
			m, ok := n.rec.latest(id)
			return ok && m.State == hasup.MemberAlive && maps.Equal(m.Tags, want) && m.Addr == nodes[1].cfg.RPCAddr
		})
		i := slices.IndexFunc(n.Members(), func(m hasup.Member) bool { return m.ID == id })
		if m := n.Members()[i]; !maps.Equal(m.Tags, want) {
			t.Errorf("%s: Members() shows %s with tags %v, want %v", n.cfg.NodeName, id, m.Tags, want)
		}
	}
	if err := nodes[1].SetTags(map[string]string{"hasup.rpc": "evil:1"}); !errors.Is(err, ErrReservedTag) {
		t.Errorf("SetTags with a reserved key: err = %v, want ErrReservedTag", err)
	}
}

// TestKilledNodeIsReportedFailed measures the local profile's detection
// time: from Shutdown without Leave to the last survivor's MemberFailed.
func TestKilledNodeIsReportedFailed(t *testing.T) {
	nodes := cluster(t, 3, ProfileLocal)
	killAndMeasure(t, nodes, detectBound)

	// An operator removes the failed node for good: it is then left.
	id := nodes[2].cfg.NodeName
	if err := nodes[0].ForceLeave(id); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[:2] {
		eventually(t, waitBound, string(n.cfg.NodeName)+" reports "+string(id)+" left after force-leave", func() bool {
			m, ok := n.rec.latest(id)
			return ok && m.State == hasup.MemberLeft
		})
	}
}

// TestLANProfileDetectionTime measures the lan profile the same way. It
// takes about 6 s, so it runs only when HASUP_SLOW_TESTS is set.
func TestLANProfileDetectionTime(t *testing.T) {
	if os.Getenv("HASUP_SLOW_TESTS") == "" {
		t.Skip("set HASUP_SLOW_TESTS=1 to measure the lan profile (about 6 s)")
	}
	killAndMeasure(t, cluster(t, 3, ProfileLAN), 10*time.Second)
}

// killAndMeasure shuts the last node down without leaving and waits until
// every other one reports it failed, within bound; it logs the time the
// last one took and checks that suspicion was reported first.
func killAndMeasure(t *testing.T, nodes []*node, bound time.Duration) {
	t.Helper()
	victim, survivors := nodes[len(nodes)-1], nodes[:len(nodes)-1]
	id := victim.cfg.NodeName
	killed := time.Now()
	if err := victim.Shutdown(); err != nil {
		t.Fatal(err)
	}
	var detect time.Duration
	sawSuspect := 0
	for _, n := range survivors {
		eventually(t, bound, string(n.cfg.NodeName)+" reports "+string(id)+" failed", func() bool {
			_, ok := n.rec.first(id, hasup.MemberFailed)
			return ok
		})
		e, _ := n.rec.first(id, hasup.MemberFailed)
		detect = max(detect, e.at.Sub(killed))
		if s, ok := n.rec.first(id, hasup.MemberSuspect); ok && s.at.Before(e.at) {
			sawSuspect++
		}
		if got := n.NumAlive(); got != len(survivors) {
			t.Errorf("%s: NumAlive() = %d after the kill, want %d", n.cfg.NodeName, got, len(survivors))
		}
	}
	t.Logf("%s profile: killed node reported failed by all %d survivors after %v (%d saw it suspect first)",
		survivors[0].cfg.Profile, len(survivors), detect.Round(time.Millisecond), sawSuspect)
	if sawSuspect == 0 {
		t.Errorf("no survivor reported %s suspect before failed: has memberlist's suspicion log line changed?", id)
	}
}

func TestLeaveIsReportedLeft(t *testing.T) {
	nodes := cluster(t, 3, ProfileLocal)
	leaver := nodes[1]
	if err := leaver.Leave(); err != nil {
		t.Fatal(err)
	}
	id := leaver.cfg.NodeName
	for _, n := range []*node{nodes[0], nodes[2]} {
		eventually(t, waitBound, string(n.cfg.NodeName)+" reports "+string(id)+" left", func() bool {
			m, ok := n.rec.latest(id)
			return ok && m.State == hasup.MemberLeft
		})
		if _, ok := n.rec.first(id, hasup.MemberFailed); ok {
			t.Errorf("%s reported the leaver failed", n.cfg.NodeName)
		}
	}
	eventually(t, waitBound, "the leaver's Events closed", leaver.rec.isClosed)
	if err := leaver.Leave(); !errors.Is(err, ErrShutdown) {
		t.Errorf("second Leave: err = %v, want ErrShutdown", err)
	}
	if _, err := leaver.Join([]string{nodes[0].Addr()}); !errors.Is(err, ErrShutdown) {
		t.Errorf("Join after Leave: err = %v, want ErrShutdown", err)
	}
}

func TestEncryptionKeyMustMatch(t *testing.T) {
	key1, key2 := mustKey(t), mustKey(t)
	ca, cb, cc := localConfig(t, "n1"), localConfig(t, "n2"), localConfig(t, "n3")
	ca.EncryptKey, cb.EncryptKey, cc.EncryptKey = key1, key1, key2
	a, b, c := start(t, ca), start(t, cb), start(t, cc)
	if _, err := b.Join([]string{a.Addr()}); err != nil {
		t.Fatalf("same key: %v", err)
	}
	eventually(t, waitBound, "n1 and n2 see each other", func() bool {
		return a.NumAlive() == 2 && b.NumAlive() == 2
	})
	if n, err := c.Join([]string{a.Addr()}); err == nil || n != 0 {
		t.Fatalf("other key: Join = %d, %v; want 0 and an error", n, err)
	}
	for _, n := range []*node{a, b} {
		for _, m := range n.Members() {
			if m.ID == c.cfg.NodeName {
				t.Errorf("%s knows the node with the wrong key: %+v", n.cfg.NodeName, m)
			}
		}
	}
}

func mustKey(t *testing.T) []byte {
	t.Helper()
	s, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := DecodeKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// countHandler counts log records with one message.
type countHandler struct {
	msg string
	n   *atomic.Int64
}

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

func TestJoinRetriesUntilPeerStarts(t *testing.T) {
	port := freePort(t)
	var failures atomic.Int64
	cb := localConfig(t, "n2")
	cb.Join = []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	cb.JoinBackoffMin, cb.JoinBackoffMax = 10*time.Millisecond, 50*time.Millisecond
	cb.Logger = slog.New(countHandler{msg: "join failed, will retry", n: &failures})
	b := start(t, cb)
	eventually(t, waitBound, "n2 retried its join twice", func() bool { return failures.Load() >= 2 })

	ca := localConfig(t, "n1")
	ca.BindPort = port
	a := start(t, ca)
	for _, n := range []*node{a, b} {
		eventually(t, waitBound, string(n.cfg.NodeName)+" sees both alive", func() bool { return n.NumAlive() == 2 })
	}
	t.Logf("join failed %d times before the peer started", failures.Load())
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

func TestRunShutsDownWithoutLeaking(t *testing.T) {
	baseline := runtime.NumGoroutine()
	var nodes []*node
	for _, name := range []string{"n1", "n2"} {
		cfg := localConfig(t, name)
		if len(nodes) > 0 {
			cfg.Join = []string{nodes[0].Addr()}
		}
		nodes = append(nodes, start(t, cfg))
	}
	eventually(t, waitBound, "both alive", func() bool { return nodes[1].NumAlive() == 2 })
	if running := runtime.NumGoroutine(); running <= baseline {
		t.Fatalf("%d goroutines while running, %d before: the check below would prove nothing", running, baseline)
	}
	for _, n := range nodes {
		n.stop(t)
		eventually(t, waitBound, string(n.cfg.NodeName)+"'s Events closed", n.rec.isClosed)
		if err := n.Run(context.Background()); !errors.Is(err, ErrShutdown) {
			t.Errorf("Run after shutdown: err = %v, want ErrShutdown", err)
		}
		if err := n.Shutdown(); err != nil {
			t.Errorf("second Shutdown: %v", err)
		}
	}
	eventually(t, waitBound, "goroutines back to the baseline", func() bool {
		return runtime.NumGoroutine() <= baseline
	})
}

func TestRunTwiceIsRefused(t *testing.T) {
	n := start(t, localConfig(t, "n1"))
	eventually(t, waitBound, "Run started", func() bool { return n.running.Load() })
	if err := n.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run: err = %v, want ErrRunning", err)
	}
}

func TestNewDoesNotModifyConfig(t *testing.T) {
	cfg := localConfig(t, "n1")
	cfg.Join = []string{"127.0.0.1:1"}
	cfg.EncryptKey = mustKey(t)
	cfg.Profile = ""
	cfg.EventBuffer = 0
	before := cfg
	before.Tags = maps.Clone(cfg.Tags)
	before.Join = slices.Clone(cfg.Join)
	before.EncryptKey = slices.Clone(cfg.EncryptKey)
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown()
	if !reflect.DeepEqual(cfg, before) {
		t.Errorf("New modified its config:\n got %+v\nwant %+v", cfg, before)
	}
	cfg.Tags["zone"] = "changed by the caller"
	if m := d.LocalMember(); m.Tags["zone"] != before.Tags["zone"] {
		t.Errorf("the detector shares the caller's tag map: %v", m.Tags)
	}
	if _, port, _ := net.SplitHostPort(d.Addr()); port == "0" {
		t.Errorf("Addr() = %s, want the bound port", d.Addr())
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	if _, err := New(Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New(Config{}): err = %v, want ErrInvalidConfig", err)
	}
}
