package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chromium returns the Chromium binary the browser tests run:
// $HASUP_CHROMIUM if set, else /usr/bin/chromium (Debian's package
// "chromium"); or "" and why not, when that file does not exist.
func chromium() (string, string) {
	p := os.Getenv("HASUP_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		return "", fmt.Sprintf("no Chromium at %s: install Debian's chromium or set HASUP_CHROMIUM to its binary", p)
	}
	return p, ""
}

// TestUIInBrowser loads the status page of a real 3-node cluster in
// headless Chromium and checks that the page, as the browser rendered it
// from the JSON API, shows every node and the ensemble with the primary and
// members the API reports.
func TestUIInBrowser(t *testing.T) {
	bin, why := chromium()
	if bin == "" {
		t.Skip(why)
	}
	if testing.Short() {
		t.Skip("three real nodes and a browser")
	}
	c := newRealCluster(t, 3)
	c.formed(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c0 := c.clients[0]
	if _, err := c0.CreateEnsemble(ctx, EnsembleSpec{Name: "demo", Type: "kv", Replicas: 3}); err != nil {
		t.Fatal(err)
	}

	// A view change between the page's fetch and ours would make them
	// differ, so a mismatch is tried once more before it fails the test.
	var err error
	for attempt := 1; attempt <= 2; attempt++ {
		start := time.Now()
		var dom string
		dom, err = dumpDOM(ctx, t, bin, c0.Addr+"/ui/")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("chromium rendered the page in %v", time.Since(start).Round(time.Millisecond))
		if err = checkPage(ctx, c0, dom); err == nil {
			return
		}
		t.Logf("attempt %d: %v", attempt, err)
	}
	t.Fatal(err)
}

// TestUIInBrowserAPIDown checks the page says so when the API does not
// answer: a server that serves the page but drops every /v1/ request.
func TestUIInBrowserAPIDown(t *testing.T) {
	bin, why := chromium()
	if bin == "" {
		t.Skip(why)
	}
	api := NewServer(newFakeBackend(), Options{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/") {
			api.ServeHTTP(w, r)
			return
		}
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dom, err := dumpDOM(ctx, t, bin, srv.URL+"/ui/")
	if err != nil {
		t.Fatal(err)
	}
	banner := regexp.MustCompile(`<div id="error"[^>]*>[^<]*</div>`).FindString(dom)
	if !strings.Contains(dom, `data-state="error"`) || strings.Contains(banner, "hidden") ||
		!strings.Contains(banner, "The hasup API is unreachable") {
		t.Fatalf("no error banner: %q\n%s", banner, tail(dom, 4000))
	}
}

// dumpDOM runs headless Chromium on url and returns the DOM it dumps once
// the page has had 5 s of virtual time: its first poll and two more.
func dumpDOM(ctx context.Context, t *testing.T, bin, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=5000", "--dump-dom", url)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("chromium: %v\nstderr:\n%s", err, tail(stderr.String(), 4000))
	}
	if stdout.Len() == 0 {
		return "", fmt.Errorf("chromium dumped nothing\nstderr:\n%s", tail(stderr.String(), 4000))
	}
	return stdout.String(), nil
}

// checkPage compares the rendered page with what the API answers now.
func checkPage(ctx context.Context, c *Client, dom string) error {
	if !strings.Contains(dom, `data-state="ok"`) {
		return fmt.Errorf("the page is not in state ok:\n%s", tail(dom, 6000))
	}
	if m := regexp.MustCompile(`<div id="error"[^>]*>`).FindString(dom); !strings.Contains(m, "hidden") {
		return fmt.Errorf("the error banner shows: %s", tail(dom, 6000))
	}
	if strings.Contains(dom, `<time id="updated">never</time>`) {
		return errors.New("the page never updated")
	}
	members, err := c.Members(ctx)
	if err != nil {
		return err
	}
	if len(members) != 3 {
		return fmt.Errorf("the API lists %d members", len(members))
	}
	for _, m := range members {
		row, ok := rowOf(dom, "data-node", m.Name)
		if !ok {
			return fmt.Errorf("no row for node %s", m.Name)
		}
		if got := field(row, "addr"); got != m.Addr {
			return fmt.Errorf("node %s: addr %q, the API says %q", m.Name, got, m.Addr)
		}
		if got := field(row, "status"); got != m.Status {
			return fmt.Errorf("node %s: status %q, the API says %q", m.Name, got, m.Status)
		}
	}
	ens, err := c.Ensemble(ctx, "demo")
	if err != nil {
		return err
	}
	row, ok := rowOf(dom, "data-ensemble", "demo")
	if !ok {
		return fmt.Errorf("no row for the ensemble demo:\n%s", tail(dom, 6000))
	}
	if ens.Primary == "" || !slices.Contains(ens.Members, ens.Primary) {
		return fmt.Errorf("the API shows demo without a primary: %+v", ens)
	}
	for f, want := range map[string]string{"primary": ens.Primary, "type": ens.Type, "replicas": strconv.Itoa(ens.Replicas),
		"epoch": strconv.FormatUint(ens.Epoch, 10), "name": "demo"} {
		if got := field(row, f); got != want {
			return fmt.Errorf("demo: %s %q, the API says %q", f, got, want)
		}
	}
	var shown []string
	for _, m := range regexp.MustCompile(`data-member="([^"]*)"`).FindAllStringSubmatch(row, -1) {
		shown = append(shown, html.UnescapeString(m[1]))
	}
	if !slices.Equal(shown, ens.Members) {
		return fmt.Errorf("demo: members %v, the API says %v", shown, ens.Members)
	}
	if primary := regexp.MustCompile(`data-member="([^"]*)" data-primary=""`).FindAllStringSubmatch(row, -1); len(primary) != 1 || primary[0][1] != ens.Primary {
		return fmt.Errorf("demo: the members list marks %v as primary, the API says %s", primary, ens.Primary)
	}
	// This node hosts a replica of demo (3 of 3 nodes), so /metrics has its lag.
	if lag := field(row, "lag"); lag == "" || strings.Trim(lag, "0123456789") != "" {
		return fmt.Errorf("demo: lag %q, want a number", lag)
	}
	if !strings.Contains(dom, "No workers.") {
		return errors.New("the workers table does not say the node runs none")
	}
	return nil
}

// rowOf returns the markup of the table row with attr="value".
func rowOf(dom, attr, value string) (string, bool) {
	m := regexp.MustCompile(`(?s)<tr ` + regexp.QuoteMeta(attr) + `="` + regexp.QuoteMeta(html.EscapeString(value)) + `"[^>]*>.*?</tr>`).FindString(dom)
	return m, m != ""
}

// field returns the text of the row's cell with data-field="name".
func field(row, name string) string {
	m := regexp.MustCompile(`data-field="` + regexp.QuoteMeta(name) + `"[^>]*>([^<]*)<`).FindStringSubmatch(row)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
