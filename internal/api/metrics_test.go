package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/supervisor"
)

// statusBackend is a fakeBackend that also reports local replica statuses
// (a StatusLister), set by the test.
type statusBackend struct {
	*fakeBackend
	mu       sync.Mutex
	statuses []ensemble.Status
	err      error
}

var _ StatusLister = (*statusBackend)(nil)

func (b *statusBackend) LocalStatuses(ctx context.Context) ([]ensemble.Status, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.statuses), b.err
}

func (b *statusBackend) set(err error, sts ...ensemble.Status) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.statuses, b.err = sts, err
}

// metricsEnv is a server on a statusBackend with the ensembles "orders"
// (kv) and "locks" (lock).
func metricsEnv(t *testing.T) (*statusBackend, *testEnv) {
	t.Helper()
	b := &statusBackend{fakeBackend: newFakeBackend()}
	for _, s := range []supervisor.Spec{{Name: "orders", Type: "kv"}, {Name: "locks", Type: "lock"}} {
		if _, err := b.Start(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(NewServer(b, Options{}))
	t.Cleanup(srv.Close)
	return b, &testEnv{t: t, b: b.fakeBackend, srv: srv, c: &Client{Addr: srv.URL, HTTP: srv.Client()}}
}

// scrape gets /metrics and parses it.
func scrape(t *testing.T, e *testEnv) map[string]*dto.MetricFamily {
	t.Helper()
	return scrapeWith(t, e.srv.Client(), e.srv.URL)
}

// scrapeWith gets base's /metrics with client c and parses it.
func scrapeWith(t *testing.T, c *http.Client, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// sample returns the value of the series name{labels} (a histogram's
// sample count), and whether it is there.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	for _, m := range fams[name].GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		match := len(got) == len(labels)/2
		for i := 0; match && i+1 < len(labels); i += 2 {
			match = got[labels[i]] == labels[i+1]
		}
		if !match {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// want checks the series name{labels} has value v.
func want(t *testing.T, fams map[string]*dto.MetricFamily, v float64, name string, labels ...string) {
	t.Helper()
	got, ok := sample(fams, name, labels...)
	if !ok {
		t.Fatalf("%s%v: missing", name, labels)
	}
	if got != v {
		t.Fatalf("%s%v = %v, want %v", name, labels, got, v)
	}
}

func TestMetricsEnsembleGauges(t *testing.T) {
	b, e := metricsEnv(t)
	b.set(nil,
		ensemble.Status{Ensemble: "locks", Epoch: 1, View: 2, Mode: ensemble.ModeViewChange, Commit: 3, Applied: 3, Quiescent: true},
		ensemble.Status{Ensemble: "orders", Epoch: 2, View: 4, Mode: ensemble.ModeNormal, Commit: 10, Applied: 7,
			IsPrimary: true, HoldsLease: true, Fence: ensemble.Fence(2, 4)},
	)
	f := scrape(t, e)
	want(t, f, 1, "hasup_ensemble_status_up")
	want(t, f, 4, "hasup_ensemble_view", "ensemble", "orders")
	want(t, f, 2, "hasup_ensemble_epoch", "ensemble", "orders")
	want(t, f, float64(ensemble.Fence(2, 4)), "hasup_ensemble_fence", "ensemble", "orders")
	want(t, f, 10, "hasup_ensemble_commit", "ensemble", "orders")
	want(t, f, 3, "hasup_ensemble_lag_ops", "ensemble", "orders")
	want(t, f, 1, "hasup_ensemble_is_primary", "ensemble", "orders")
	want(t, f, 1, "hasup_ensemble_holds_lease", "ensemble", "orders")
	want(t, f, 0, "hasup_ensemble_quiescent", "ensemble", "orders")
	want(t, f, 1, "hasup_ensemble_mode", "ensemble", "orders", "mode", "normal")
	want(t, f, 0, "hasup_ensemble_mode", "ensemble", "orders", "mode", "view-change")
	want(t, f, 0, "hasup_ensemble_is_primary", "ensemble", "locks")
	want(t, f, 1, "hasup_ensemble_quiescent", "ensemble", "locks")
	want(t, f, 0, "hasup_ensemble_lag_ops", "ensemble", "locks")
	want(t, f, 1, "hasup_ensemble_mode", "ensemble", "locks", "mode", "view-change")
	for _, n := range []string{"hasup_ensemble_view_changes_total", "hasup_ensemble_commits_total"} {
		if typ := f[n].GetType(); typ != dto.MetricType_COUNTER {
			t.Fatalf("%s is a %v", n, typ)
		}
		want(t, f, 0, n, "ensemble", "orders") // a counter starts when a scrape first sees the replica
	}
	// Serf's view: the fake has n1 alive and n2 suspect.
	want(t, f, 1, "hasup_members", "state", "alive")
	want(t, f, 1, "hasup_members", "state", "suspect")
	want(t, f, 0, "hasup_members", "state", "failed")
	want(t, f, 0, "hasup_members", "state", "left")
	if _, ok := f["go_goroutines"]; !ok {
		t.Fatal("no Go runtime metrics")
	}
}

// TestMetricsCounters checks the counters grow with the views and commits
// the scrapes see, and only with them.
func TestMetricsCounters(t *testing.T) {
	b, e := metricsEnv(t)
	st := func(epoch, view, commit uint64) ensemble.Status {
		return ensemble.Status{Ensemble: "orders", Epoch: epoch, View: view, Commit: commit, Applied: commit, Mode: ensemble.ModeNormal}
	}
	steps := []struct {
		name              string
		st                ensemble.Status
		views, commits    float64
		viewNow, commitAt float64
	}{
		{"first sight is the baseline", st(1, 3, 100), 0, 0, 3, 100},
		{"commits grow", st(1, 3, 105), 0, 5, 3, 105},
		{"two view changes between scrapes both count", st(1, 5, 107), 2, 7, 5, 107},
		{"nothing moves", st(1, 5, 107), 2, 7, 5, 107},
		{"a new epoch adds its views past view 0", st(2, 1, 110), 3, 10, 1, 110},
		{"numbers going back are a new baseline", st(2, 0, 4), 3, 10, 0, 4},
		{"and count from there", st(2, 2, 6), 5, 12, 2, 6},
	}
	for _, s := range steps {
		b.set(nil, s.st)
		f := scrape(t, e)
		want(t, f, s.views, "hasup_ensemble_view_changes_total", "ensemble", "orders")
		want(t, f, s.commits, "hasup_ensemble_commits_total", "ensemble", "orders")
		want(t, f, s.viewNow, "hasup_ensemble_view", "ensemble", "orders")
		want(t, f, s.commitAt, "hasup_ensemble_commit", "ensemble", "orders")
	}

	// A replica that goes away loses its series; back, it starts from 0.
	b.set(nil)
	f := scrape(t, e)
	if _, ok := sample(f, "hasup_ensemble_commits_total", "ensemble", "orders"); ok {
		t.Fatal("the series of a replica that went away are still there")
	}
	b.set(nil, st(2, 9, 50))
	want(t, scrape(t, e), 0, "hasup_ensemble_commits_total", "ensemble", "orders")

	// No statuses: status_up says so, and no hasup_ensemble_ series.
	b.set(errors.New("host stopped"))
	f = scrape(t, e)
	want(t, f, 0, "hasup_ensemble_status_up")
	if _, ok := f["hasup_ensemble_view"]; ok {
		t.Fatal("ensemble series without statuses")
	}
}

// TestMetricsWithoutStatusLister checks a Backend without LocalStatuses
// still serves /metrics, without ensemble series.
func TestMetricsWithoutStatusLister(t *testing.T) {
	e := newEnv(t, Options{})
	f := scrape(t, e)
	for name := range f {
		if strings.HasPrefix(name, "hasup_ensemble_") {
			t.Fatalf("%s from a backend without statuses", name)
		}
	}
	want(t, f, 1, "hasup_members", "state", "alive")
}

// TestRequestDuration checks the handlers observe each Propose and Read
// under the ensemble and op, and only for ensembles that exist.
func TestRequestDuration(t *testing.T) {
	b, e := metricsEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 3 {
		if _, err := e.c.KVPut(ctx, "orders", "k", []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := e.c.KVGet(ctx, "orders", "k", Linearizable); err != nil {
		t.Fatal(err)
	}
	// A lease read without a lease is retried as linearizable: one get.
	b.ens("orders").set(func(e *fakeEnsemble) { e.noLease = true })
	if _, _, err := e.c.KVGet(ctx, "orders", "k", Lease); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.KVList(ctx, "orders", ""); err != nil {
		t.Fatal(err)
	}
	if err := e.c.KVDelete(ctx, "orders", "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.LockAcquire(ctx, "locks", "db", "alice", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := e.c.LockRelease(ctx, "locks", "db", "alice"); err != nil {
		t.Fatal(err)
	}
	// Failed calls count; requests that never reach an ensemble do not.
	b.ens("orders").set(func(e *fakeEnsemble) { e.err = supervisor.ErrNoQuorum })
	if _, err := e.c.KVPut(ctx, "orders", "k", []byte("v"), nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("put without quorum: %v", err)
	}
	if _, _, err := e.c.KVGet(ctx, "made-up", "k", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get from an unknown ensemble: %v", err)
	}

	f := scrape(t, e)
	const h = "hasup_request_duration_seconds"
	if typ := f[h].GetType(); typ != dto.MetricType_HISTOGRAM {
		t.Fatalf("%s is a %v", h, typ)
	}
	want(t, f, 4, h, "ensemble", "orders", "op", "put")
	want(t, f, 2, h, "ensemble", "orders", "op", "get")
	want(t, f, 1, h, "ensemble", "orders", "op", "list")
	want(t, f, 1, h, "ensemble", "orders", "op", "delete")
	want(t, f, 2, h, "ensemble", "locks", "op", "lock")
	if n := len(f[h].GetMetric()); n != 5 {
		t.Fatalf("%d series of %s, want 5", n, h)
	}

	// A deleted ensemble's series go at the next scrape.
	if err := e.c.DeleteEnsemble(ctx, "locks"); err != nil {
		t.Fatal(err)
	}
	f = scrape(t, e)
	if _, ok := sample(f, h, "ensemble", "locks", "op", "lock"); ok {
		t.Fatal("the series of a deleted ensemble are still there")
	}
	want(t, f, 4, h, "ensemble", "orders", "op", "put")
}

// TestMetricsPerServer checks two servers in one process keep their own
// registries: what one observes, the other does not show.
func TestMetricsPerServer(t *testing.T) {
	_, e1 := metricsEnv(t)
	_, e2 := metricsEnv(t)
	if _, err := e1.c.KVPut(context.Background(), "orders", "k", []byte("v"), nil); err != nil {
		t.Fatal(err)
	}
	want(t, scrape(t, e1), 1, "hasup_request_duration_seconds", "ensemble", "orders", "op", "put")
	if _, ok := scrape(t, e2)["hasup_request_duration_seconds"]; ok {
		t.Fatal("the second server shows the first one's requests")
	}
}

// TestMetricsRealNodes scrapes the nodes of a real 3-node cluster: each
// hosts a replica of a 3-replica ensemble, exactly one of them is its
// primary, and writes show in the commit counters.
func TestMetricsRealNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("three real nodes")
	}
	c := newRealCluster(t, 3)
	c.formed(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.clients[0].CreateEnsemble(ctx, EnsembleSpec{Name: "orders", Type: "kv", Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	scrapeAll := func() (primaries, commits float64, err error) {
		for i, cl := range c.clients {
			f := scrapeWith(t, cl.HTTP, cl.Addr)
			if up, _ := sample(f, "hasup_ensemble_status_up"); up != 1 {
				return 0, 0, fmt.Errorf("node %d: hasup_ensemble_status_up %v", i, up)
			}
			p, ok := sample(f, "hasup_ensemble_is_primary", "ensemble", "orders")
			if !ok {
				return 0, 0, fmt.Errorf("node %d hosts no replica of orders", i)
			}
			n, _ := sample(f, "hasup_ensemble_commits_total", "ensemble", "orders")
			primaries, commits = primaries+p, commits+n
		}
		return primaries, commits, nil
	}
	eventually(t, 10*time.Second, "one primary", func() error {
		p, _, err := scrapeAll()
		if err == nil && p != 1 {
			err = fmt.Errorf("%v nodes say they are orders' primary", p)
		}
		return err
	})
	for i := range 5 {
		if _, err := c.clients[i%3].KVPut(ctx, "orders", fmt.Sprint("k", i), []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "commits counted", func() error {
		_, n, err := scrapeAll()
		if err == nil && n < 5 {
			err = fmt.Errorf("commits_total sums to %v after 5 writes", n)
		}
		return err
	})
	want(t, scrapeWith(t, c.clients[0].HTTP, c.clients[0].Addr), 3, "hasup_members", "state", "alive")
}
