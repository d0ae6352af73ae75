//go:build linux

package worker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeAgentEnv, when set in the environment, makes the test binary act as
// a fake agent (see TestAgentDeathKillsWorker) instead of running tests.
const fakeAgentEnv = "HASUP_WORKER_TEST_FAKE_AGENT_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(fakeAgentEnv); dir != "" {
		fakeAgent(dir)
		return
	}
	// The test process reaps what its runners leave, as the agent does.
	if err := BecomeSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// sh returns a command that runs script with /bin/sh.
func sh(script string) []string { return []string{"/bin/sh", "-c", script} }

// testConfig returns a configuration with short timings for tests.
func testConfig(t *testing.T, script string) Config {
	cfg := DefaultConfig()
	cfg.Name = "w"
	cfg.Node = "n1"
	cfg.Command = sh(script)
	cfg.LogDir = t.TempDir()
	cfg.StopGrace = 300 * time.Millisecond
	cfg.Restart = Restart{Attempts: 5, Interval: time.Minute, Delay: 50 * time.Millisecond, MaxDelay: time.Second}
	return cfg
}

// start creates a runner and closes it when the test ends, checking that
// Close returns in time.
func start(t *testing.T, cfg Config) (*Runner, *recorder) {
	t.Helper()
	rec := &recorder{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(rec)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			t.Logf("runner events:\n%s", rec)
		}
	})
	return r, rec
}

// waitFor polls cond until it holds or the timeout ends.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitState waits for the runner to report state and returns its status.
func waitState(t *testing.T, r *Runner, state string, timeout time.Duration) Status {
	t.Helper()
	var s Status
	waitFor(t, timeout, "state "+state, func() bool {
		s = r.Status()
		return s.State == state
	})
	return s
}

// readFile returns path's content, or "" if it does not exist yet.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// readPID waits for path to hold a PID and returns it.
func readPID(t *testing.T, path string) int {
	t.Helper()
	var pid int
	waitFor(t, 3*time.Second, "a pid in "+filepath.Base(path), func() bool {
		n, err := strconv.Atoi(strings.TrimSpace(readFile(t, path)))
		pid = n
		return err == nil && n > 0
	})
	return pid
}

// procStat is the part of /proc/PID/stat the tests need.
type procStat struct {
	pid, ppid, pgrp int
	state           byte
}

func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(s[i+1:]) // state ppid pgrp ...
	if len(f) < 3 {
		return procStat{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	pgrp, _ := strconv.Atoi(f[2])
	return procStat{pid: pid, ppid: ppid, pgrp: pgrp, state: f[0][0]}, true
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	st, ok := readStat(pid)
	return ok && st.state != 'Z' && st.state != 'X'
}

// groupMembers lists the processes (zombies too) in process group pgid.
func groupMembers(pgid int) []procStat {
	ents, _ := os.ReadDir("/proc")
	var out []procStat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok && st.pgrp == pgid {
			out = append(out, st)
		}
	}
	return out
}

// reapZombieChildren reaps zombies that are children of the test process
// (orphans re-parented to it as a subreaper) and returns how many. Call it
// only when no runner of this process is live, lest it steal their exits.
func reapZombieChildren() int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok && st.ppid == os.Getpid() && st.state == 'Z' {
			var ws syscall.WaitStatus
			if p, _ := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); p == pid {
				n++
			}
		}
	}
	return n
}

// recorder is a slog.Handler that keeps every record, for assertions on
// when the runner acted.
type recorder struct {
	mu   sync.Mutex
	recs []record
}

type record struct {
	at    time.Time
	msg   string
	txt   string
	attrs map[string]slog.Value
}

func (h *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *recorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recorder) WithGroup(string) slog.Handler            { return h }

func (h *recorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	attrs := map[string]slog.Value{}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		attrs[a.Key] = a.Value
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, record{at: r.Time, msg: r.Message, txt: b.String(), attrs: attrs})
	return nil
}

// first returns the time of the first record with message msg.
func (h *recorder) first(msg string) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.recs {
		if r.msg == msg {
			return r.at, true
		}
	}
	return time.Time{}, false
}

// all returns the records with message msg.
func (h *recorder) all(msg string) []record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []record
	for _, r := range h.recs {
		if r.msg == msg {
			out = append(out, r)
		}
	}
	return out
}

func (h *recorder) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, r := range h.recs {
		fmt.Fprintf(&b, "%s %s%s\n", r.at.Format("15:04:05.000"), r.msg, r.txt)
	}
	return b.String()
}
