package api

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestUIServesItsFiles(t *testing.T) {
	e := newEnv(t, Options{})
	for _, tc := range []struct {
		path, contentType, contains string
	}{
		{"/ui/", "text/html; charset=utf-8", `<table id="ensembles">`},
		{"/ui/index.html", "text/html; charset=utf-8", `<caption id="nodes-caption">`},
		{"/ui/app.js", "text/javascript; charset=utf-8", `"../v1/ensembles"`},
		{"/ui/style.css", "text/css; charset=utf-8", "border-collapse"},
	} {
		resp, body := e.do("GET", tc.path, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", tc.path, resp.StatusCode, body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != tc.contentType {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, ct, tc.contentType)
		}
		if !strings.Contains(string(body), tc.contains) {
			t.Errorf("GET %s: no %q in the body", tc.path, tc.contains)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("GET %s: Content-Security-Policy %q", tc.path, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", tc.path)
		}
		etag := resp.Header.Get("ETag")
		if etag == "" {
			t.Fatalf("GET %s: no ETag", tc.path)
		}
		if resp, _ := e.do("GET", tc.path, "", "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %d, want 304", tc.path, resp.StatusCode)
		}
	}
	if resp, body := e.do("HEAD", "/ui/", ""); resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Errorf("HEAD /ui/: %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, body := e.do("GET", "/ui/nope.js", "")
	wantError(t, resp, body, http.StatusNotFound, CodeNotFound)
	resp, body = e.do("POST", "/ui/", "")
	wantError(t, resp, body, http.StatusMethodNotAllowed, CodeMethodNotAllowed)
}

func TestUIRedirect(t *testing.T) {
	e := newEnv(t, Options{})
	c := *e.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(e.srv.URL + "/ui")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "ui/" {
		t.Fatalf("GET /ui: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// And a client that follows it lands on the page.
	resp, err = e.srv.Client().Get(e.srv.URL + "/ui")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/ui/" {
		t.Fatalf("following /ui: %d at %s", resp.StatusCode, resp.Request.URL.Path)
	}
}

// TestUINoExternalResources checks the page's files name nothing outside
// the agent: the machines that show it may have no internet, and the CSP
// would block it anyway.
func TestUINoExternalResources(t *testing.T) {
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import|url\(\s*['"]?(https?:|//)`)
	err := fs.WalkDir(uiFiles, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := uiFiles.ReadFile(p)
		if err != nil {
			return err
		}
		if m := external.Find(b); m != nil {
			t.Errorf("%s names an external resource: %q", p, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestUIAccessibleTables checks every table has a caption and its header
// cells a scope.
func TestUIAccessibleTables(t *testing.T) {
	b, err := uiFiles.ReadFile("ui/index.html")
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, id := range []string{"nodes", "ensembles", "workers"} {
		if !regexp.MustCompile(`<table id="` + id + `">\s*<caption`).MatchString(page) {
			t.Errorf("table %s has no caption first", id)
		}
	}
	if n := strings.Count(page, "<th "); n == 0 || n != strings.Count(page, `<th scope="col"`) {
		t.Errorf("%d header cells, %d with scope", n, strings.Count(page, `<th scope="col"`))
	}
}

// fakeWorkers is a backend with workers.
type fakeWorkers struct {
	*fakeBackend
	workers []Worker
}

func (b fakeWorkers) Workers(context.Context) ([]Worker, error) { return b.workers, nil }

func TestWorkersEndpoint(t *testing.T) {
	e := newEnv(t, Options{})
	resp, body := e.do("GET", "/v1/workers", "")
	wantError(t, resp, body, http.StatusNotFound, CodeNotFound) // no WorkerLister: the page says "not reported"

	b := fakeWorkers{fakeBackend: newFakeBackend(), workers: []Worker{
		{Name: "billing", Node: "n2", Mode: "singleton", State: "stopped", Role: "backup"},
		{Name: "billing", Node: "n1", Mode: "singleton", State: "running", Role: "primary", Restarts: 2, Fence: 1<<32 | 3, Healthy: true},
		{Name: "agent", Node: "n1", Mode: "every", State: "running"},
	}}
	e.srv.Config.Handler = NewServer(b, Options{})
	resp, body = e.do("GET", "/v1/workers", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/workers: %d %s", resp.StatusCode, body)
	}
	var got []Worker
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := []Worker{b.workers[2], b.workers[1], b.workers[0]}
	if !slices.Equal(got, want) {
		t.Fatalf("workers %+v, want %+v", got, want)
	}
	if !strings.Contains(string(body), `"restarts":2,"fence":4294967299,"healthy":true`) {
		t.Fatalf("workers JSON %s", body)
	}
	resp, body = e.do("GET", "/v1/workers/billing", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"name":"billing"`) {
		t.Fatalf("GET /v1/workers/billing: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do("GET", "/v1/workers/nosuch", "")
	wantError(t, resp, body, http.StatusNotFound, CodeNotFound)
	resp, body = e.do("GET", "/metrics", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	for _, line := range []string{`hasup_worker_restarts_total{node="n1",worker="billing"} 2`, `hasup_worker_running{node="n1",worker="billing"} 1`,
		`hasup_worker_fence{node="n1",worker="billing"} 4.294967299e+09`, `hasup_worker_running{node="n2",worker="billing"} 0`} {
		if !strings.Contains(string(body), line) {
			t.Fatalf("/metrics lacks %q:\n%s", line, body)
		}
	}
}
