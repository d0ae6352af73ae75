package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/supervisor"
)

// testEnv is a server on a fake backend with a kv ensemble "orders" and a
// lock ensemble "locks", and a Client for it.
type testEnv struct {
	t   *testing.T
	b   *fakeBackend
	srv *httptest.Server
	c   *Client
}

func newEnv(t *testing.T, opts Options) *testEnv {
	t.Helper()
	b, srv := newFakeServer(opts)
	t.Cleanup(srv.Close)
	return &testEnv{t: t, b: b, srv: srv, c: &Client{Addr: srv.URL, Token: opts.Token, HTTP: srv.Client()}}
}

// newFakeServer returns a fake backend with the ensembles "orders" (kv) and
// "locks" (lock), and a server on it.
func newFakeServer(opts Options) (*fakeBackend, *httptest.Server) {
	b := newFakeBackend()
	for _, s := range []supervisor.Spec{{Name: "orders", Type: "kv"}, {Name: "locks", Type: "lock"}} {
		if _, err := b.Start(context.Background(), s); err != nil {
			panic(err)
		}
	}
	return b, httptest.NewServer(NewServer(b, opts))
}

// do sends a raw request; header pairs follow the body.
func (e *testEnv) do(method, path, body string, header ...string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, b
}

// wantError checks that an answer is the contract's error, with exactly the
// fields "error" (not empty) and "code".
func wantError(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	var m map[string]string
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("error body %s: %v", body, err)
	}
	if len(m) != 2 || m["code"] != code || m["error"] == "" {
		t.Fatalf("error body %s, want {error, code: %q}", body, code)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestHealthAndMembers(t *testing.T) {
	e := newEnv(t, Options{})
	h, err := e.c.Health(ctxT(t))
	if err != nil || h != (Health{Status: "ok", Node: "n1", Registry: true}) {
		t.Fatalf("health %+v, %v", h, err)
	}
	ms, err := e.c.Members(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []Member{{Name: "n1", Addr: "10.0.0.1:7947", Status: "alive", Tags: map[string]string{}},
		{Name: "n2", Addr: "10.0.0.2:7947", Status: "suspect", Tags: map[string]string{"zone": "b"}}}
	if fmt.Sprint(ms) != fmt.Sprint(want) {
		t.Fatalf("members %+v, want %+v", ms, want)
	}
	_, body := e.do("GET", "/v1/members", "")
	if !bytes.Contains(body, []byte(`"tags":{}`)) {
		t.Fatalf("a node without tags shows null tags: %s", body)
	}
	e.b.setNoRegistry(true)
	if h, err := e.c.Health(ctxT(t)); err != nil || h.Registry {
		t.Fatalf("health without a registry: %+v, %v", h, err)
	}
}

func TestEnsembles(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := ctxT(t)
	created, err := e.c.CreateEnsemble(ctx, EnsembleSpec{Name: "carts", Type: "kv", Replicas: 5, Constraints: []string{"zone=a"}})
	if err != nil {
		t.Fatal(err)
	}
	want := Ensemble{Name: "carts", Type: "kv", Replicas: 5, Epoch: 1, View: 4, Primary: "n2", Members: []string{"n1", "n2", "n3"}}
	if fmt.Sprint(created) != fmt.Sprint(want) {
		t.Fatalf("created %+v, want %+v", created, want)
	}
	if got := e.b.ens("carts").spec.Constraints; !slices.Equal(got, []string{"zone=a"}) {
		t.Fatalf("constraints reached the backend as %v", got)
	}
	got, err := e.c.Ensemble(ctx, "carts")
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("get %+v, %v", got, err)
	}
	list, err := e.c.Ensembles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range list {
		names = append(names, en.Name)
	}
	if !slices.Equal(names, []string{"carts", "locks", "orders"}) {
		t.Fatalf("list %v", names)
	}
	resp, body := e.do("GET", "/v1/ensembles/carts", "")
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil || resp.StatusCode != 200 {
		t.Fatal(resp.Status, err)
	}
	for _, k := range []string{"name", "type", "replicas", "epoch", "view", "primary", "members", "commit"} {
		if _, ok := m[k]; !ok || len(m) != 8 {
			t.Fatalf("ensemble JSON %s lacks %q or has extra fields", body, k)
		}
	}
	resp, _ = e.do("POST", "/v1/ensembles", `{"name":"raw","type":"lock"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST status %d, want 201", resp.StatusCode)
	}

	// Status fails: the registry's fields still answer.
	e.b.ens("carts").set(func(f *fakeEnsemble) { f.statusErr = supervisor.ErrNoQuorum })
	got, err = e.c.Ensemble(ctx, "carts")
	if err != nil || got.Primary != "" || got.View != 0 || got.Name != "carts" || len(got.Members) != 3 {
		t.Fatalf("without status: %+v, %v", got, err)
	}

	if err := e.c.DeleteEnsemble(ctx, "carts"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Ensemble(ctx, "carts"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted ensemble: %v", err)
	}
	if err := e.c.DeleteEnsemble(ctx, "carts"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if _, err := e.c.CreateEnsemble(ctx, EnsembleSpec{Name: "orders", Type: "kv"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("create existing: %v", err)
	}
}

func TestEnsembleErrors(t *testing.T) {
	e := newEnv(t, Options{})
	for _, tc := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"GET", "/v1/ensembles/nope", "", 404, CodeNotFound},
		{"DELETE", "/v1/ensembles/nope", "", 404, CodeNotFound},
		{"DELETE", "/v1/ensembles/hasup", "", 400, CodeBadRequest},
		{"POST", "/v1/ensembles", `{"name":"x","type":"nosuch"}`, 400, CodeBadRequest},
		{"POST", "/v1/ensembles", `{"name":"x","type":"kv","replicas":4}`, 400, CodeBadRequest},
		{"POST", "/v1/ensembles", `{"name":"","type":"kv"}`, 400, CodeBadRequest},
		{"POST", "/v1/ensembles", `{"name":"x"}`, 400, CodeBadRequest},
		{"POST", "/v1/ensembles", `{"name":"x","type":"kv","replica":3}`, 400, CodeBadRequest},
		{"POST", "/v1/ensembles", `{"name":"x",`, 400, CodeBadRequest},
		{"POST", "/v1/ensembles", `{"name":"x","type":"kv"} {}`, 400, CodeBadRequest},
		{"POST", "/v1/ensembles", `{"name":"orders","type":"kv"}`, 409, CodeConflict},
	} {
		t.Run(tc.method+tc.path+tc.body, func(t *testing.T) {
			resp, body := e.do(tc.method, tc.path, tc.body)
			wantError(t, resp, body, tc.status, tc.code)
		})
	}
	e.b.setNoRegistry(true)
	for _, p := range []string{"/v1/ensembles", "/v1/ensembles/orders", "/v1/kv/orders/k", "/v1/kv/orders"} {
		resp, body := e.do("GET", p, "")
		wantError(t, resp, body, 503, CodeUnavailable)
	}
}

func TestKV(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := ctxT(t)
	rev, err := e.c.KVPut(ctx, "orders", "a/1", []byte("one"), nil)
	if err != nil || rev != 1 {
		t.Fatalf("put: %d, %v", rev, err)
	}
	for _, cons := range []Consistency{"", Linearizable, Lease, Stale} {
		v, r, err := e.c.KVGet(ctx, "orders", "a/1", cons)
		if err != nil || string(v) != "one" || r != 1 {
			t.Fatalf("get %q: %q %d %v", cons, v, r, err)
		}
	}
	if got := e.b.ens("orders").modes; !slices.Equal(got, []ensemble.ReadMode{ensemble.ReadLinearizable,
		ensemble.ReadLinearizable, ensemble.ReadLease, ensemble.ReadStale}) {
		t.Fatalf("read modes asked: %v", got)
	}

	// CAS: 0 only if absent; the current revision wins; a stale one is a
	// conflict that says the current revision.
	zero, one := uint64(0), uint64(1)
	if _, err := e.c.KVPut(ctx, "orders", "a/1", []byte("x"), &zero); !errors.Is(err, ErrConflict) {
		t.Fatalf("cas 0 on a present key: %v", err)
	}
	if rev, err = e.c.KVPut(ctx, "orders", "a/2", []byte("two"), &zero); err != nil || rev != 2 {
		t.Fatalf("cas 0 on an absent key: %d, %v", rev, err)
	}
	if rev, err = e.c.KVPut(ctx, "orders", "a/1", []byte("uno"), &one); err != nil || rev != 3 {
		t.Fatalf("cas 1: %d, %v", rev, err)
	}
	resp, body := e.do("PUT", "/v1/kv/orders/a/1?cas=1", "late")
	wantError(t, resp, body, 409, CodeConflict)
	if got := resp.Header.Get("X-Hasup-Revision"); got != "3" {
		t.Fatalf("a conflict says revision %q, want 3", got)
	}

	// Binary values survive a get and a list (base64 in JSON).
	bin := []byte{0, 0xff, '\n', 0x80}
	if _, err := e.c.KVPut(ctx, "orders", "b", bin, nil); err != nil {
		t.Fatal(err)
	}
	if v, _, err := e.c.KVGet(ctx, "orders", "b", ""); err != nil || !bytes.Equal(v, bin) {
		t.Fatalf("binary get %q %v", v, err)
	}
	list, err := e.c.KVList(ctx, "orders", "")
	if err != nil {
		t.Fatal(err)
	}
	want := []KV{{"a/1", []byte("uno"), 3}, {"a/2", []byte("two"), 2}, {"b", bin, 4}}
	if fmt.Sprint(list) != fmt.Sprint(want) {
		t.Fatalf("list %v, want %v", list, want)
	}
	if list, err = e.c.KVList(ctx, "orders", "a/"); err != nil || len(list) != 2 {
		t.Fatalf("list a/: %v %v", list, err)
	}
	_, body = e.do("GET", "/v1/kv/orders?prefix=b", "")
	if string(body) != `[{"key":"b","value":"AP8KgA==","revision":4}]`+"\n" {
		t.Fatalf("list JSON %s", body)
	}

	if err := e.c.KVDelete(ctx, "orders", "a/1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.c.KVGet(ctx, "orders", "a/1", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	if err := e.c.KVDelete(ctx, "orders", "a/1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete absent: %v", err)
	}
}

func TestKVListPages(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := ctxT(t)
	for i := range 5 {
		if _, err := e.c.KVPut(ctx, "orders", fmt.Sprintf("k%d", i), []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
	}
	resp, body := e.do("GET", "/v1/kv/orders?limit=2&after=k0", "")
	if resp.Header.Get("X-Hasup-More") != "true" || resp.Header.Get("X-Hasup-Revision") != "5" {
		t.Fatalf("headers %v", resp.Header)
	}
	var page []KV
	if err := json.Unmarshal(body, &page); err != nil || len(page) != 2 || page[0].Key != "k1" {
		t.Fatalf("page %s %v", body, err)
	}
	resp, _ = e.do("GET", "/v1/kv/orders?after=k3", "")
	if resp.Header.Get("X-Hasup-More") != "" {
		t.Fatal("the last page says more")
	}
	_, body = e.do("GET", "/v1/kv/orders?prefix=zzz", "")
	if string(body) != "[]\n" {
		t.Fatalf("an empty list is %s, want []", body)
	}
}

// TestKVKeys: keys the path cannot carry as they are travel escaped, and
// come back the same.
func TestKVKeys(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := ctxT(t)
	keys := []string{"/leading", "a//b", ".", "..", "a/../b", "trailing/", "sp ace", "q?x=1#f", "per%cent", "ünï", "dot.s"}
	for i, k := range keys {
		if _, err := e.c.KVPut(ctx, "orders", k, []byte{byte(i)}, nil); err != nil {
			t.Fatalf("put %q: %v", k, err)
		}
	}
	for i, k := range keys {
		v, _, err := e.c.KVGet(ctx, "orders", k, "")
		if err != nil || !bytes.Equal(v, []byte{byte(i)}) {
			t.Fatalf("get %q: %v %v", k, v, err)
		}
	}
	list, err := e.c.KVList(ctx, "orders", "")
	if err != nil || len(list) != len(keys) {
		t.Fatalf("list %v %v", list, err)
	}
	got := map[string]bool{}
	for _, kv := range list {
		got[kv.Key] = true
	}
	for _, k := range keys {
		if !got[k] {
			t.Fatalf("list lacks %q", k)
		}
	}
	// Unescaped, a path with slashes in the key works too.
	resp, body := e.do("GET", "/v1/kv/orders/a%2F%2Fb", "")
	if resp.StatusCode != 200 || !bytes.Equal(body, []byte{1}) {
		t.Fatalf("escaped get: %d %q", resp.StatusCode, body)
	}
}

func TestKVErrors(t *testing.T) {
	e := newEnv(t, Options{MaxKeyBytes: 8, MaxBodyBytes: 16})
	for _, tc := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"GET", "/v1/kv/nope/k", "", 404, CodeNotFound},
		{"PUT", "/v1/kv/nope/k", "v", 404, CodeNotFound},
		{"GET", "/v1/kv/nope", "", 404, CodeNotFound},
		{"GET", "/v1/kv/orders/absent", "", 404, CodeNotFound},
		{"DELETE", "/v1/kv/orders/absent", "", 404, CodeNotFound},
		{"GET", "/v1/kv/locks/k", "", 400, CodeBadRequest},
		{"PUT", "/v1/kv/orders/", "v", 400, CodeBadKey},
		{"PUT", "/v1/kv/orders/123456789", "v", 400, CodeBadKey},
		{"PUT", "/v1/kv/orders/a%00b", "v", 400, CodeBadKey},
		{"PUT", "/v1/kv/orders/%ff", "v", 400, CodeBadKey},
		{"GET", "/v1/kv/orders/a//b", "", 400, CodeBadKey},
		{"PUT", "/v1/kv/orders/a/../b", "v", 400, CodeBadKey},
		{"GET", "/v1/kv/orders?prefix=123456789", "", 400, CodeBadKey},
		{"PUT", "/v1/kv/orders/k", strings.Repeat("x", 17), 413, CodeTooLarge},
		{"PUT", "/v1/kv/orders/k?cas=x", "v", 400, CodeBadRequest},
		{"PUT", "/v1/kv/orders/k?cas=-1", "v", 400, CodeBadRequest},
		{"PUT", "/v1/kv/orders/k?cas=1&cas=2", "v", 400, CodeBadRequest},
		{"GET", "/v1/kv/orders/k?consistency=strong", "", 400, CodeBadRequest},
		{"GET", "/v1/kv/orders?consistency=", "", 200, ""},
		{"GET", "/v1/kv/orders?limit=x", "", 400, CodeBadRequest},
	} {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			resp, body := e.do(tc.method, tc.path, tc.body)
			if tc.status == 200 {
				if resp.StatusCode != 200 {
					t.Fatalf("status %d %s", resp.StatusCode, body)
				}
				return
			}
			wantError(t, resp, body, tc.status, tc.code)
		})
	}
	// A body without a Content-Length is cut at the limit too.
	req, _ := http.NewRequest("PUT", e.srv.URL+"/v1/kv/orders/k", io.MultiReader(strings.NewReader(strings.Repeat("x", 17))))
	req.ContentLength = -1
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	wantError(t, resp, body, 413, CodeTooLarge)
}

func TestLeaseReadWithoutLeaseFallsBack(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := ctxT(t)
	if _, err := e.c.KVPut(ctx, "orders", "k", []byte("v"), nil); err != nil {
		t.Fatal(err)
	}
	e.b.ens("orders").set(func(f *fakeEnsemble) { f.noLease = true })
	if v, _, err := e.c.KVGet(ctx, "orders", "k", Lease); err != nil || string(v) != "v" {
		t.Fatalf("lease get without a lease: %q %v", v, err)
	}
	if got := e.b.ens("orders").modes; !slices.Equal(got, []ensemble.ReadMode{ensemble.ReadLease, ensemble.ReadLinearizable}) {
		t.Fatalf("modes %v, want lease then linearizable", got)
	}
}

func TestLock(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := ctxT(t)
	f1, err := e.c.LockAcquire(ctx, "locks", "db", "alice", time.Minute)
	if err != nil || f1 == 0 {
		t.Fatalf("acquire: %d %v", f1, err)
	}
	if f, err := e.c.LockAcquire(ctx, "locks", "db", "alice", time.Minute); err != nil || f != f1 {
		t.Fatalf("renew: fence %d (want %d) %v", f, f1, err)
	}
	if _, err := e.c.LockAcquire(ctx, "locks", "db", "bob", time.Minute); !errors.Is(err, ErrConflict) {
		t.Fatalf("acquire held: %v", err)
	}
	if err := e.c.LockRelease(ctx, "locks", "db", "bob"); !errors.Is(err, ErrConflict) {
		t.Fatalf("release by a non-holder: %v", err)
	}
	if err := e.c.LockRelease(ctx, "locks", "db", "alice"); err != nil {
		t.Fatal(err)
	}
	if f2, err := e.c.LockAcquire(ctx, "locks", "db", "bob", time.Minute); err != nil || f2 <= f1 {
		t.Fatalf("acquire after release: fence %d after %d, %v", f2, f1, err)
	}
	_, body := e.do("POST", "/v1/lock/locks/other", `{"owner":"c","ttl":"1s"}`)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil || len(m) != 1 || m["fence"] == nil {
		t.Fatalf("acquire JSON %s", body)
	}

	for _, tc := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/v1/lock/nope/db", `{"owner":"a","ttl":"1s"}`, 404, CodeNotFound},
		{"POST", "/v1/lock/orders/db", `{"owner":"a","ttl":"1s"}`, 400, CodeBadRequest},
		{"POST", "/v1/lock/locks/db", `{"owner":"","ttl":"1s"}`, 400, CodeBadRequest},
		{"POST", "/v1/lock/locks/db", `{"owner":"a","ttl":"0s"}`, 400, CodeBadRequest},
		{"POST", "/v1/lock/locks/db", `{"owner":"a","ttl":"25h"}`, 400, CodeBadRequest},
		{"POST", "/v1/lock/locks/db", `{"owner":"a","ttl":"soon"}`, 400, CodeBadRequest},
		{"POST", "/v1/lock/locks/db", `{"owner":"a","ttl":"1s","x":1}`, 400, CodeBadRequest},
		{"POST", "/v1/lock/locks/db", `{"owner":"a","ttl":"1s"}`, 409, CodeConflict},
		{"DELETE", "/v1/lock/locks/db", "", 400, CodeBadRequest},
		{"DELETE", "/v1/lock/locks/db?owner=a", "", 409, CodeConflict},
	} {
		t.Run(tc.method+tc.path+tc.body, func(t *testing.T) {
			resp, body := e.do(tc.method, tc.path, tc.body)
			wantError(t, resp, body, tc.status, tc.code)
		})
	}
}

func TestToken(t *testing.T) {
	e := newEnv(t, Options{Token: "s3cret"})
	for _, tc := range []struct {
		method, path, body string
		header             []string
		status             int
	}{
		{"PUT", "/v1/kv/orders/k", "v", nil, 401},
		{"PUT", "/v1/kv/orders/k", "v", []string{"Authorization", "Bearer wrong"}, 401},
		{"PUT", "/v1/kv/orders/k", "v", []string{"Authorization", "s3cret"}, 401},
		{"PUT", "/v1/kv/orders/k", "v", []string{"X-Hasup-Token", "s3cre"}, 401},
		{"DELETE", "/v1/kv/orders/k", "", nil, 401},
		{"POST", "/v1/ensembles", `{"name":"x","type":"kv"}`, nil, 401},
		{"DELETE", "/v1/ensembles/orders", "", nil, 401},
		{"POST", "/v1/lock/locks/db", `{"owner":"a","ttl":"1s"}`, nil, 401},
		{"DELETE", "/v1/lock/locks/db?owner=a", "", nil, 401},
		{"PUT", "/v1/kv/orders/k", "v", []string{"Authorization", "Bearer s3cret"}, 200},
		{"PUT", "/v1/kv/orders/k", "v", []string{"Authorization", "bearer s3cret"}, 200},
		{"PUT", "/v1/kv/orders/k", "v", []string{"X-Hasup-Token", "s3cret"}, 200},
		{"GET", "/v1/kv/orders/k", "", nil, 200},
		{"GET", "/v1/ensembles", "", nil, 200},
	} {
		resp, body := e.do(tc.method, tc.path, tc.body, tc.header...)
		if tc.status == 401 {
			wantError(t, resp, body, 401, CodeUnauthorized)
		} else if resp.StatusCode != tc.status {
			t.Fatalf("%s %s %v: %d %s", tc.method, tc.path, tc.header, resp.StatusCode, body)
		}
	}
	if err := e.c.KVDelete(ctxT(t), "orders", "k"); err != nil {
		t.Fatalf("client with the token: %v", err)
	}
	bad := *e.c
	bad.Token = "nope"
	if _, err := bad.KVPut(ctxT(t), "orders", "k", nil, nil); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("client with a wrong token: %v", err)
	}
}

func TestRouting(t *testing.T) {
	e := newEnv(t, Options{})
	for _, tc := range []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{"GET", "/", 404, CodeNotFound, ""},
		{"GET", "/v1/nope", 404, CodeNotFound, ""},
		{"GET", "/v1/ensembles/", 404, CodeNotFound, ""},
		{"PATCH", "/v1/health", 405, CodeMethodNotAllowed, "GET, HEAD"},
		{"DELETE", "/v1/ensembles", 405, CodeMethodNotAllowed, "GET, HEAD, POST"},
		{"PUT", "/v1/ensembles/orders", 405, CodeMethodNotAllowed, "DELETE, GET, HEAD"},
		{"POST", "/v1/kv/orders/k", 405, CodeMethodNotAllowed, "DELETE, GET, HEAD, PUT"},
		{"PUT", "/v1/kv/orders", 405, CodeMethodNotAllowed, "GET, HEAD"},
		{"GET", "/v1/lock/locks/db", 405, CodeMethodNotAllowed, "DELETE, POST"},
		{"GET", "/v1//health", 400, CodeBadRequest, ""},
		{"GET", "/v1/./health", 400, CodeBadRequest, ""},
	} {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			resp, body := e.do(tc.method, tc.path, "")
			wantError(t, resp, body, tc.status, tc.code)
			if got := resp.Header.Get("Allow"); got != tc.allow {
				t.Fatalf("Allow %q, want %q", got, tc.allow)
			}
		})
	}
}

func TestSessionHeaders(t *testing.T) {
	e := newEnv(t, Options{})
	for _, tc := range []struct {
		header []string
		status int
	}{
		{[]string{"X-Hasup-Client", "7", "X-Hasup-Request", "18446744073709551615"}, 409}, // well formed, but no such session
		{[]string{"X-Hasup-Request", "abc"}, 400},
		{[]string{"X-Hasup-Request", "-1"}, 400},
		{[]string{"X-Hasup-Request", "18446744073709551616"}, 400},
		{[]string{"X-Hasup-Client", ""}, 400},
		{[]string{"X-Hasup-Client", "1", "X-Hasup-Client", "2"}, 400},
		{[]string{"X-Hasup-Client", "7"}, 400},
		{[]string{"X-Hasup-Client", "0", "X-Hasup-Request", "1"}, 400},
	} {
		resp, body := e.do("PUT", "/v1/kv/orders/k", "v", tc.header...)
		if tc.status == 400 {
			wantError(t, resp, body, 400, CodeBadRequest)
		} else if resp.StatusCode != tc.status {
			t.Fatalf("%v: %d %s", tc.header, resp.StatusCode, body)
		}
	}
}

func TestSessionWriteRetriedExecutesOnce(t *testing.T) {
	e := newEnv(t, Options{})
	put := func(val, req string) (int, string) {
		resp, body := e.do("PUT", "/v1/kv/orders/s", val, "X-Hasup-Client", "42", "X-Hasup-Request", req)
		return resp.StatusCode, string(body)
	}
	c1, b1 := put("a", "1")
	c2, b2 := put("a", "1") // a retry: the same answer, not a second write
	if c1 != 200 || c2 != 200 || b1 != b2 {
		t.Fatalf("first %d %s, retry %d %s", c1, b1, c2, b2)
	}
	c3, b3 := put("b", "2")
	if c3 != 200 || b3 == b1 {
		t.Fatalf("the next request: %d %s", c3, b3)
	}
	resp, body := e.do("PUT", "/v1/kv/orders/s", "c", "X-Hasup-Client", "42", "X-Hasup-Request", "1")
	wantError(t, resp, body, 409, CodeStaleRequest)
	resp, body = e.do("PUT", "/v1/kv/orders/s", "c", "X-Hasup-Client", "43", "X-Hasup-Request", "5")
	wantError(t, resp, body, 409, CodeSessionExpired)
}

func TestUnavailable(t *testing.T) {
	e := newEnv(t, Options{RequestTimeout: 50 * time.Millisecond})
	orders := e.b.ens("orders")

	orders.set(func(f *fakeEnsemble) { f.block = true })
	resp, body := e.do("PUT", "/v1/kv/orders/k", "v")
	wantError(t, resp, body, 503, CodeTimeout)
	if !bytes.Contains(body, []byte("may or may not have happened")) {
		t.Fatalf("a write timeout does not say the write may have happened: %s", body)
	}
	resp, body = e.do("GET", "/v1/kv/orders/k", "")
	wantError(t, resp, body, 503, CodeTimeout)
	if _, _, err := e.c.KVGet(ctxT(t), "orders", "k", ""); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("client on a timeout: %v", err)
	}

	orders.set(func(f *fakeEnsemble) {
		f.block, f.err = false, fmt.Errorf("ensemble orders: %w (last: x)", supervisor.ErrNoQuorum)
	})
	resp, body = e.do("DELETE", "/v1/kv/orders/k", "")
	wantError(t, resp, body, 503, CodeUnavailable)
	if !bytes.Contains(body, []byte("may or may not have happened")) {
		t.Fatalf("a write 503 does not say the write may have happened: %s", body)
	}
	orders.set(func(f *fakeEnsemble) { f.err = fmt.Errorf("ensemble orders on n2: %w", ensemble.ErrViewChanged) })
	resp, body = e.do("PUT", "/v1/kv/orders/k", "v")
	wantError(t, resp, body, 503, CodeUnavailable)
	orders.set(func(f *fakeEnsemble) { f.err = errors.New("disk on fire") })
	resp, body = e.do("PUT", "/v1/kv/orders/k", "v")
	wantError(t, resp, body, 500, CodeInternal)
}

func TestClientErrorOfAnotherServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad gateway", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	c := &Client{Addr: strings.TrimPrefix(srv.URL, "http://")}
	_, err := c.Health(ctxT(t))
	var e *Error
	if !errors.As(err, &e) || e.Status != 503 || e.Code != "" || e.Message != "bad gateway" || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("%#v", err)
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
		t.Fatal("a 503 matches other sentinels")
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := (Options{}).Validate(); err != nil {
		t.Fatal(err)
	}
	if err := DefaultOptions().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, o := range []Options{{MaxBodyBytes: -1}, {MaxKeyBytes: -1}, {MaxKeyBytes: 5000}, {RequestTimeout: -time.Second}} {
		if o.Validate() == nil {
			t.Fatalf("%+v validates", o)
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("NewServer took bad options")
		}
	}()
	NewServer(newFakeBackend(), Options{MaxKeyBytes: -1})
}
