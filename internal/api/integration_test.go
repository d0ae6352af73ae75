package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/detector"
	"github.com/hasup/hasup/supervisor"
)

// realCluster is n real nodes in this process, built as the supervisor's
// own tests build them: real Serf on loopback (local profile), real TCP,
// real bbolt in temp dirs; each with an API server.
type realCluster struct {
	sups    []*supervisor.Supervisor
	clients []*Client
}

func newRealCluster(t *testing.T, n int) *realCluster {
	t.Helper()
	c := &realCluster{}
	join := ""
	for i := range n {
		cfg := supervisor.Config{NodeName: hasup.NodeID(fmt.Sprintf("n%d", i)), DataDir: t.TempDir(),
			Profile: detector.ProfileLocal, BootstrapExpect: n}
		if join != "" {
			cfg.Join = []string{join}
		}
		s, err := supervisor.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if join == "" {
			join = s.SerfAddr()
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		srv := httptest.NewServer(NewServer(FromSupervisor(s), Options{Token: "tok"}))
		t.Cleanup(srv.Close)
		c.sups = append(c.sups, s)
		c.clients = append(c.clients, &Client{Addr: srv.URL, Token: "tok", HTTP: srv.Client()})
	}
	return c
}

// formed waits until every node reads a registry listing every node alive.
func (c *realCluster) formed(t *testing.T) {
	t.Helper()
	eventually(t, 15*time.Second, "cluster formed", func() error {
		for _, s := range c.sups {
			reg, ok := s.Registry()
			if !ok {
				return fmt.Errorf("%s has no registry", s.ID())
			}
			for _, other := range c.sups {
				if n, ok := reg.Node(other.ID()); !ok || n.State != hasup.MemberAlive {
					return fmt.Errorf("%s does not see %s alive in the registry", s.ID(), other.ID())
				}
			}
		}
		return nil
	})
}

// eventually polls f until it succeeds or d passes.
func eventually(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
	t.Fatalf("%s: %v", what, err)
}

// TestThreeRealNodes drives the API of a real 3-node cluster: it creates
// ensembles through one node, and reads and writes through a node that is
// not the primary, so that every call is forwarded.
func TestThreeRealNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("three real nodes")
	}
	c := newRealCluster(t, 3)
	c.formed(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c0 := c.clients[0]

	if h, err := c0.Health(ctx); err != nil || !h.Registry || h.Node != "n0" {
		t.Fatalf("health %+v %v", h, err)
	}
	ms, err := c0.Members(ctx)
	if err != nil || len(ms) != 3 || ms[0].Name != "n0" || ms[2].Status != "alive" {
		t.Fatalf("members %+v %v", ms, err)
	}

	created, err := c0.CreateEnsemble(ctx, EnsembleSpec{Name: "orders", Type: "kv", Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if created.Name != "orders" || created.Type != "kv" || created.Replicas != 3 || len(created.Members) != 3 ||
		!slices.Contains(created.Members, created.Primary) {
		t.Fatalf("created %+v", created)
	}
	if _, err := c0.CreateEnsemble(ctx, EnsembleSpec{Name: "orders", Type: "kv"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("create again: %v", err)
	}

	// A node that is not the primary: its calls are forwarded.
	via := c0
	for i, s := range c.sups {
		if string(s.ID()) != created.Primary {
			via = c.clients[i]
			break
		}
	}
	// A write in a client session, retried: it executes once (through the
	// real ensemble's client table, forwarded to the primary).
	sessionPut := func(val string) string {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, strings.TrimSuffix(via.Addr, "/")+"/v1/kv/orders/session-key", strings.NewReader(val))
		req.Header.Set("X-Hasup-Client", "987654321")
		req.Header.Set("X-Hasup-Request", "1")
		req.Header.Set("Authorization", "Bearer "+via.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("session put: %d %s", resp.StatusCode, b)
		}
		return string(b)
	}
	if first, retry := sessionPut("x"), sessionPut("y"); first != retry {
		t.Fatalf("a retried session write answered %s then %s: it ran twice", first, retry)
	}
	if v, _, err := via.KVGet(ctx, "orders", "session-key", Linearizable); err != nil || string(v) != "x" {
		t.Fatalf("session-key = %q %v, want x (the retry must not write y)", v, err)
	}

	rev, err := via.KVPut(ctx, "orders", "config/a", []byte("1"), nil)
	if err != nil || rev == 0 {
		t.Fatalf("put: %d %v", rev, err)
	}
	for _, cons := range []Consistency{Linearizable, Lease} {
		if v, r, err := via.KVGet(ctx, "orders", "config/a", cons); err != nil || string(v) != "1" || r != rev {
			t.Fatalf("get %s: %q %d %v", cons, v, r, err)
		}
	}
	eventually(t, 5*time.Second, "stale read catches up", func() error {
		v, _, err := via.KVGet(ctx, "orders", "config/a", Stale)
		if err == nil && string(v) != "1" {
			err = fmt.Errorf("stale read %q", v)
		}
		return err
	})
	stale := rev
	if _, err := via.KVPut(ctx, "orders", "config/a", []byte("2"), &stale); err != nil {
		t.Fatalf("cas: %v", err)
	}
	if _, err := via.KVPut(ctx, "orders", "config/a", []byte("3"), &stale); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale cas: %v", err)
	}
	if _, err := via.KVPut(ctx, "orders", "config/b", []byte{0, 1, 2}, nil); err != nil {
		t.Fatal(err)
	}
	list, err := via.KVList(ctx, "orders", "config/")
	if err != nil || len(list) != 2 || string(list[0].Value) != "2" || list[1].Key != "config/b" || list[1].Value[2] != 2 {
		t.Fatalf("list %v %v", list, err)
	}
	if err := via.KVDelete(ctx, "orders", "config/a"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := via.KVGet(ctx, "orders", "config/a", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	if _, _, err := via.KVGet(ctx, "nope", "k", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown ensemble: %v", err)
	}

	// A lock ensemble, and its deletion.
	if _, err := c0.CreateEnsemble(ctx, EnsembleSpec{Name: "locks", Type: "lock"}); err != nil {
		t.Fatal(err)
	}
	fence, err := via.LockAcquire(ctx, "locks", "db", "alice", time.Minute)
	if err != nil || fence == 0 {
		t.Fatalf("acquire: %d %v", fence, err)
	}
	if _, err := via.LockAcquire(ctx, "locks", "db", "bob", time.Minute); !errors.Is(err, ErrConflict) {
		t.Fatalf("acquire held: %v", err)
	}
	if err := via.LockRelease(ctx, "locks", "db", "alice"); err != nil {
		t.Fatal(err)
	}
	es, err := via.Ensembles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name)
		if e.Primary == "" {
			t.Errorf("ensemble %s shows no primary: %+v", e.Name, e)
		}
	}
	if !slices.Equal(names, []string{string(supervisor.ClusterEnsemble), "locks", "orders"}) {
		t.Fatalf("ensembles %v", names)
	}
	if err := c0.DeleteEnsemble(ctx, "locks"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the deletion reaches the registry", func() error {
		_, err := c0.Ensemble(ctx, "locks")
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return fmt.Errorf("ensemble locks after delete: %v", err)
	})
}
