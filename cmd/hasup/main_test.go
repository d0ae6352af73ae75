package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for one writer and polling readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runCLI(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestDemoServesTheCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-node cluster")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- demo(ctx, t.TempDir(), 3, &out, slog.New(slog.DiscardHandler)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo: %v", err)
		}
	}()
	addrRE := regexp.MustCompile(`HASUP_HTTP_ADDR=(\S+)`)
	deadline := time.Now().Add(60 * time.Second)
	for !addrRE.MatchString(out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("demo did not come up:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond) // polling the demo's output with a deadline
	}
	t.Setenv("HASUP_HTTP_ADDR", addrRE.FindStringSubmatch(out.String())[1])
	if code, o, e := cli(t, "kv", "put", "demo", "color", "blue"); code != exitOK || !strings.Contains(o, "revision") {
		t.Fatalf("kv put: %d %q %q", code, o, e)
	}
	if code, o, _ := cli(t, "kv", "get", "demo", "color"); code != exitOK || o != "blue\n" {
		t.Fatalf("kv get: %d %q", code, o)
	}
	if code, _, _ := cli(t, "kv", "get", "demo", "absent"); code != exitNotFound {
		t.Fatalf("kv get of an absent key: exit %d, want %d", code, exitNotFound)
	}
	if code, _, e := cli(t, "kv", "get", "nosuch", "k"); code != exitNotFound || !strings.Contains(e, "nosuch") {
		t.Fatalf("kv get on an unknown ensemble: exit %d %q", code, e)
	}
	if code, _, _ := cli(t, "kv", "put", "demo", "color", "red", "-cas", "99"); code != exitConflict {
		t.Fatalf("kv put with a wrong CAS revision: exit %d, want %d", code, exitConflict)
	}
	if code, o, _ := cli(t, "members", "-format", "json"); code != exitOK || strings.Count(o, `"alive"`) != 3 {
		t.Fatalf("members: %d %q", code, o)
	}
	if code, o, _ := cli(t, "ensembles"); code != exitOK || !strings.Contains(o, "demo") || !strings.Contains(o, "hasup") {
		t.Fatalf("ensembles: %d %q", code, o)
	}
	var fences []int
	for i := 0; i < 2; i++ {
		code, o, e := cli(t, "lock", "-ttl", "2s", "-grace", "500ms", "job", "--", "/bin/sh", "-c", "echo fence=$HASUP_FENCE")
		var f int
		if _, err := fmt.Sscanf(strings.TrimSpace(o), "fence=%d", &f); code != exitOK || err != nil {
			t.Fatalf("lock: %d %q %q", code, o, e)
		}
		fences = append(fences, f)
	}
	t.Logf("lock fences %v", fences)
	if fences[1] <= fences[0] {
		t.Fatalf("lock fences %v: the second holder's fence must be higher", fences)
	}
	if code, _, _ := cli(t, "lock", "job", "--", "/bin/sh", "-c", "exit 3"); code != 3 {
		t.Fatalf("lock passes the command's exit code: got %d, want 3", code)
	}
	if code, o, _ := cli(t, "status"); code != exitOK || !strings.Contains(o, "cluster formed: true") || !strings.Contains(o, "ensemble demo") {
		t.Fatalf("status: %d %q", code, o)
	}
	if code, _, e := cli(t, "logs", "nosuch"); code != exitNotFound || !strings.Contains(e, "nosuch") {
		t.Fatalf("logs of an unknown worker: %d %q", code, e)
	}
	// The sample worker's ensemble is declared after the demo's KV: poll.
	for deadline := time.Now().Add(30 * time.Second); ; {
		code, o, _ := cli(t, "workers", "-format", "json")
		if code == exitOK && strings.Contains(o, `"ticker"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers: %d %q", code, o)
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
	if code, _, e := cli(t, "force-leave"); code != exitUsage {
		t.Fatalf("force-leave without a node: %d %q", code, e)
	}
	if code, _, _ := cli(t, "kv", "put", "demo"); code != exitUsage {
		t.Fatalf("kv put without a value: exit %d, want %d", code, exitUsage)
	}
}

func TestConfigCheckNamesTheBadKey(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("node_name: n1\nserf_prot: 7946\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, e := cli(t, "config", "check", bad)
	if code != exitConfig || !strings.Contains(e, "serf_prot") {
		t.Fatalf("config check of a typo: exit %d %q", code, e)
	}
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("node_name: n1\nprofile: local\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, o, e := cli(t, "config", "check", good); code != exitOK {
		t.Fatalf("config check of a good file: %d %q %q", code, o, e)
	}
}

func TestUsageErrorsExitWithTwo(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"config"}, {"demo", "-nodes", "9"}} {
		if code, _, _ := cli(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	if code, o, _ := cli(t, "keygen"); code != exitOK || len(strings.TrimSpace(o)) < 40 {
		t.Errorf("keygen: %d %q", code, o)
	}
}

func TestShippedConfigIsValid(t *testing.T) {
	if code, o, e := cli(t, "config", "check", "../../dist/hasup.yaml"); code != exitOK {
		t.Fatalf("dist/hasup.yaml: %d %q %q", code, o, e)
	}
}
