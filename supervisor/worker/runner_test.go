//go:build linux

package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestStartStop(t *testing.T) {
	t.Parallel()
	r, _ := start(t, testConfig(t, "exec sleep 100"))
	if s := r.Status(); s.State != StateStopped || s.PID != 0 {
		t.Fatalf("before Set: %+v, want stopped without a pid", s)
	}
	r.Set(Desired{Run: true, Role: RolePrimary, Fence: 7})
	s := waitState(t, r, StateRunning, 3*time.Second)
	if s.PID == 0 || !alive(s.PID) || !s.Healthy || s.Fence != 7 || s.Role != RolePrimary {
		t.Fatalf("running: %+v (alive %v)", s, alive(s.PID))
	}
	if st, _ := readStat(s.PID); st.pgrp != s.PID {
		t.Fatalf("process group %d, want its own (%d)", st.pgrp, s.PID)
	}
	r.Set(Desired{Run: false})
	stopped := waitState(t, r, StateStopped, 3*time.Second)
	if stopped.PID != 0 || stopped.LastExit != "signal: terminated" || stopped.Restarts != 0 {
		t.Fatalf("stopped: %+v", stopped)
	}
	if _, ok := readStat(s.PID); ok {
		t.Fatalf("pid %d still exists after stop (zombie or alive)", s.PID)
	}
}

func TestChildEnvironment(t *testing.T) {
	// Not parallel: it sets the agent's environment.
	t.Setenv("HASUP_TEST_SECRET", "must-not-leak")
	t.Setenv("TZ", "Europe/Paris")
	t.Setenv("LANG", "C.UTF-8")
	dir := t.TempDir()
	out := filepath.Join(dir, "env")
	cfg := testConfig(t, `env > "$0.tmp" && mv "$0.tmp" "$0"; exec sleep 100`)
	cfg.Command = append(cfg.Command, out)
	cfg.Env = map[string]string{"FROM_CONFIG": "c", "SHARED": "config"}
	r, _ := start(t, cfg)
	r.Set(Desired{Run: true, Role: RoleBackup, Fence: 42, Env: map[string]string{
		"HASUP_API": "127.0.0.1:7900", "SHARED": "desired", "HASUP_FENCE": "spoofed",
	}})
	waitFor(t, 3*time.Second, "the env file", func() bool { return readFile(t, out) != "" })
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(readFile(t, out)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		env[k] = v
	}
	want := map[string]string{
		"HASUP_WORKER":     "w",
		"HASUP_NODE":       "n1",
		"HASUP_ROLE":       "backup",
		"HASUP_FENCE":      "42",
		"HASUP_API":        "127.0.0.1:7900",
		"HASUP_ROLE_FILE":  filepath.Join(cfg.LogDir, "w.role"),
		"HASUP_FENCE_FILE": filepath.Join(cfg.LogDir, "w.fence"),
		"FROM_CONFIG":      "c",
		"SHARED":           "desired",
		"TZ":               "Europe/Paris",
		"LANG":             "C.UTF-8",
		"PATH":             os.Getenv("PATH"),
	}
	if h, ok := os.LookupEnv("HOME"); ok {
		want["HOME"] = h
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s=%q, want %q", k, env[k], v)
		}
	}
	shellOwn := map[string]bool{"PWD": true, "OLDPWD": true, "SHLVL": true, "_": true}
	for k := range env {
		if _, ok := want[k]; !ok && !shellOwn[k] {
			t.Errorf("unexpected variable %s=%q in the child's environment", k, env[k])
		}
	}
	if got := readFile(t, env["HASUP_ROLE_FILE"]); got != "backup\n" {
		t.Errorf("role file %q, want \"backup\\n\"", got)
	}
	if got := readFile(t, env["HASUP_FENCE_FILE"]); got != "42\n" {
		t.Errorf("fence file %q, want \"42\\n\"", got)
	}
}

// TestDeadlineStopsBeforeDeadline runs a command that ignores SIGTERM, so
// only the SIGKILL ends it, and checks that it is dead before the deadline
// and that the stop did not begin earlier than it must.
//
// The margin is larger than the default: the test hosts are shared and
// loaded, and a runner that is not scheduled cannot send a signal on time
// (on a load average of 6 on 2 cores, timers fired up to ~200ms late).
// That is the caller's lease safety margin's job; here it would only make
// the test flaky.
func TestDeadlineStopsBeforeDeadline(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, `trap '' TERM; while :; do sleep 1; done`)
	cfg.DeadlineMargin = 300 * time.Millisecond
	r, rec := start(t, cfg)

	r.Set(Desired{Run: true, Fence: 1, Deadline: time.Now().Add(cfg.StopGrace + cfg.DeadlineMargin)})
	time.Sleep(100 * time.Millisecond) // a start would have happened by now; nothing to poll for
	if s := r.Status(); s.State != StateStopped || s.PID != 0 {
		t.Fatalf("started with a deadline closer than grace + margin: %+v", s)
	}

	deadline := time.Now().Add(1200 * time.Millisecond)
	r.Set(Desired{Run: true, Fence: 1, Deadline: deadline})
	running := waitState(t, r, StateRunning, 2*time.Second)
	stopped := waitState(t, r, StateStopped, 3*time.Second)
	killedAt, ok := rec.first("stop grace over: killed process group")
	termAt, _ := rec.first("stopping")
	if !ok {
		t.Fatalf("no SIGKILL was sent; last exit %q", stopped.LastExit)
	}
	if stopped.LastExit != "signal: killed" {
		t.Errorf("last exit %q, want signal: killed", stopped.LastExit)
	}
	t.Logf("SIGTERM %v, SIGKILL %v, reaped %v before the deadline (grace %v, margin %v)",
		deadline.Sub(termAt), deadline.Sub(killedAt), deadline.Sub(stopped.Since), cfg.StopGrace, cfg.DeadlineMargin)
	if !stopped.Since.Before(deadline) {
		t.Fatalf("process reaped %v after the deadline", stopped.Since.Sub(deadline))
	}
	if wantTerm := deadline.Add(-cfg.StopGrace - cfg.DeadlineMargin); termAt.Before(wantTerm) {
		t.Errorf("SIGTERM %v before the deadline, earlier than grace + margin", deadline.Sub(termAt))
	}
	if _, ok := readStat(running.PID); ok {
		t.Errorf("pid %d still exists", running.PID)
	}
}

func TestStopKillsWholeGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	gcFile := filepath.Join(dir, "gc")
	cfg := testConfig(t, `sleep 100 & echo $! > "$0"; sleep 100`)
	cfg.Command = append(cfg.Command, gcFile)
	r, _ := start(t, cfg)
	r.Set(Desired{Run: true})
	s := waitState(t, r, StateRunning, 3*time.Second)
	gc := readPID(t, gcFile)
	if st, ok := readStat(gc); !ok || st.pgrp != s.PID {
		t.Fatalf("grandchild %d: %+v, want in group %d", gc, st, s.PID)
	}
	if n := len(groupMembers(s.PID)); n != 3 {
		t.Fatalf("group %d has %d members, want 3 (sh and two sleeps)", s.PID, n)
	}
	r.Set(Desired{Run: false})
	waitState(t, r, StateStopped, 3*time.Second)
	waitFor(t, 2*time.Second, "the group to be gone", func() bool { return len(groupMembers(s.PID)) == 0 })
	if _, ok := readStat(gc); ok {
		t.Fatalf("grandchild %d survived the stop", gc)
	}
}

// TestLeftoversKilledWhenMainExits: a command whose main process exits
// while a child it forked lives on gets that child killed.
func TestLeftoversKilledWhenMainExits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	gcFile := filepath.Join(dir, "gc")
	cfg := testConfig(t, `sleep 100 & echo $! > "$0"; sleep 0.3; exit 5`)
	cfg.Command = append(cfg.Command, gcFile)
	cfg.Restart.Delay = 10 * time.Second // no second run during the test
	cfg.Restart.MaxDelay = 10 * time.Second
	r, _ := start(t, cfg)
	r.Set(Desired{Run: true})
	s := waitState(t, r, StateRunning, 3*time.Second)
	gc := readPID(t, gcFile)
	b := waitState(t, r, StateBackoff, 3*time.Second)
	if b.LastExit != "exit status 5" || b.Restarts != 1 {
		t.Fatalf("after exit: %+v", b)
	}
	waitFor(t, 2*time.Second, "the group to be gone", func() bool { return len(groupMembers(s.PID)) == 0 })
	if _, ok := readStat(gc); ok {
		t.Fatalf("child %d of the exited command survived", gc)
	}
}

func TestRestartWithBackoff(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	times := filepath.Join(dir, "times")
	cfg := testConfig(t, `date +%s%N >> "$0"; exit 3`)
	cfg.Command = append(cfg.Command, times)
	cfg.Restart = Restart{Attempts: 10, Interval: time.Minute, Delay: 100 * time.Millisecond, MaxDelay: 300 * time.Millisecond}
	r, rec := start(t, cfg)
	r.Set(Desired{Run: true})
	var starts []time.Time
	waitFor(t, 5*time.Second, "five starts", func() bool {
		starts = starts[:0]
		for _, l := range strings.Fields(readFile(t, times)) {
			ns, err := strconv.ParseInt(l, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			starts = append(starts, time.Unix(0, ns))
		}
		return len(starts) >= 5
	})
	r.Set(Desired{Run: false})
	s := waitState(t, r, StateStopped, 3*time.Second)
	if s.Restarts < 4 {
		t.Errorf("status %+v, want >= 4 restarts", s)
	}
	// The chosen delays: 100ms, 200ms, then capped at 300ms, with ±20%
	// jitter (the cap applies after it).
	recs := rec.all("restarting after delay")
	if len(recs) < 4 {
		t.Fatalf("%d restarts logged, want >= 4", len(recs))
	}
	bounds := [][2]time.Duration{{80, 120}, {160, 240}, {240, 300}, {240, 300}}
	for i, b := range bounds {
		d := recs[i].attrs["delay"].Duration()
		if lo, hi := b[0]*time.Millisecond, b[1]*time.Millisecond; d < lo || d > hi {
			t.Errorf("delay %d = %v, want in [%v, %v]", i, d, lo, hi)
		}
		// The command really waited that long (it may wait longer on a
		// loaded host, so no upper bound here).
		if gap := starts[i+1].Sub(starts[i]); gap < d {
			t.Errorf("start %d came %v after the previous one, before its delay %v", i+1, gap, d)
		}
	}
}

func TestGiveUp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		script   string
		attempts int
	}{
		{"crash", "exit 1", 2},
		{"clean exit counts", "exit 0", 1},
		{"attempts 0", "exit 1", 0},
		{"not found", "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			starts := filepath.Join(dir, "starts")
			cfg := testConfig(t, `echo x >> "$0"; `+tc.script)
			cfg.Command = append(cfg.Command, starts)
			if tc.script == "" {
				cfg.Command = []string{"/nonexistent/command"}
			}
			cfg.Restart = Restart{Attempts: tc.attempts, Interval: time.Minute, Delay: 10 * time.Millisecond, MaxDelay: 20 * time.Millisecond}
			r, _ := start(t, cfg)
			r.Set(Desired{Run: true})
			s := waitState(t, r, StateFailed, 3*time.Second)
			if s.Restarts != tc.attempts {
				t.Errorf("restarts %d, want %d", s.Restarts, tc.attempts)
			}
			if tc.script == "" {
				if !strings.HasPrefix(s.LastExit, "start: ") {
					t.Errorf("last exit %q, want a start error", s.LastExit)
				}
				return
			}
			if n := strings.Count(readFile(t, starts), "x"); n != tc.attempts+1 {
				t.Errorf("%d starts, want %d", n, tc.attempts+1)
			}
			// Failed is sticky while Run stays true; Run false clears it.
			r.Set(Desired{Run: true, Fence: 2})
			time.Sleep(50 * time.Millisecond) // nothing to poll for: the state must not change
			if s := r.Status(); s.State != StateFailed {
				t.Fatalf("state %s after Set while failed, want failed", s.State)
			}
			r.Set(Desired{Run: false})
			waitState(t, r, StateStopped, time.Second)
			r.Set(Desired{Run: true})
			waitFor(t, 3*time.Second, "a start after the failure was cleared", func() bool {
				return strings.Count(readFile(t, starts), "x") > tc.attempts+1
			})
		})
	}
}

func TestFenceChangeRestarts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fences := filepath.Join(dir, "fences")
	cfg := testConfig(t, `echo "$HASUP_FENCE" >> "$0"; exec sleep 100`)
	cfg.Command = append(cfg.Command, fences)
	r, _ := start(t, cfg)
	r.Set(Desired{Run: true, Role: RolePrimary, Fence: 1})
	s1 := waitState(t, r, StateRunning, 3*time.Second)
	waitFor(t, 2*time.Second, "fence 1", func() bool { return readFile(t, fences) == "1\n" })
	r.Set(Desired{Run: true, Role: RolePrimary, Fence: 2})
	waitFor(t, 3*time.Second, "fence 2", func() bool { return readFile(t, fences) == "1\n2\n" })
	s2 := waitState(t, r, StateRunning, 3*time.Second)
	if s2.PID == s1.PID || s2.Fence != 2 || s2.Restarts != 0 {
		t.Fatalf("after the fence change: %+v (before: pid %d); want a new pid, fence 2, no policy restart", s2, s1.PID)
	}
	if _, ok := readStat(s1.PID); ok {
		t.Fatalf("old process %d still exists", s1.PID)
	}
}

func TestRoleChangeSignalsInModeEvery(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	cfg := testConfig(t, `trap 'echo "hup $(cat "$HASUP_ROLE_FILE") $(cat "$HASUP_FENCE_FILE")" >> "$0"' HUP
echo "start $HASUP_ROLE $HASUP_FENCE" >> "$0"
while :; do sleep 1 & wait $!; done`)
	cfg.Command = append(cfg.Command, out)
	cfg.Mode = ModeEvery
	r, _ := start(t, cfg)
	r.Set(Desired{Run: true, Role: RoleBackup, Fence: 1})
	s1 := waitState(t, r, StateRunning, 3*time.Second)
	waitFor(t, 2*time.Second, "the start line", func() bool { return readFile(t, out) == "start backup 1\n" })
	r.Set(Desired{Run: true, Role: RolePrimary, Fence: 2})
	waitFor(t, 2*time.Second, "the signal", func() bool { return strings.Contains(readFile(t, out), "hup primary 2\n") })
	s2 := r.Status()
	if s2.PID != s1.PID || s2.State != StateRunning || s2.Role != RolePrimary || s2.Fence != 2 {
		t.Fatalf("after the role change: %+v, want the same pid %d running as primary, fence 2", s2, s1.PID)
	}
	if got := readFile(t, out); got != "start backup 1\nhup primary 2\n" {
		t.Fatalf("command saw %q", got)
	}
}

func TestEnvChangeRestarts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	cfg := testConfig(t, `echo "$HASUP_API" >> "$0"; exec sleep 100`)
	cfg.Command = append(cfg.Command, out)
	cfg.Mode = ModeEvery
	r, _ := start(t, cfg)
	r.Set(Desired{Run: true, Env: map[string]string{"HASUP_API": "a"}})
	waitFor(t, 3*time.Second, "first start", func() bool { return readFile(t, out) == "a\n" })
	r.Set(Desired{Run: true, Env: map[string]string{"HASUP_API": "b"}})
	waitFor(t, 3*time.Second, "restart", func() bool { return readFile(t, out) == "a\nb\n" })
}

// TestHealthChecks flips each kind of check to failing and expects a
// restart after Failures consecutive failures, then recovery.
func TestHealthChecks(t *testing.T) {
	t.Parallel()
	type probe struct {
		check HealthCheck
		set   func(healthy bool)
	}
	httpProbe := func(t *testing.T) probe {
		var healthy atomic.Bool
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if !healthy.Load() {
				http.Error(w, "down", http.StatusServiceUnavailable)
			}
		}))
		t.Cleanup(srv.Close)
		return probe{HealthCheck{HTTP: srv.URL + "/health"}, healthy.Store}
	}
	tcpProbe := func(t *testing.T) probe {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // closed: connections are refused
		return probe{HealthCheck{TCP: addr}, func(healthy bool) {
			if !healthy {
				ln.Close()
				return
			}
			l, err := net.Listen("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			ln = l
			t.Cleanup(func() { l.Close() })
			go func() { // accept and close, until the listener closes
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		}}
	}
	execProbe := func(t *testing.T) probe {
		flag := filepath.Join(t.TempDir(), "healthy")
		return probe{HealthCheck{Exec: []string{"/bin/sh", "-c", `test -e "$0"`, flag}}, func(healthy bool) {
			if healthy {
				os.WriteFile(flag, nil, 0o644)
			} else {
				os.Remove(flag)
			}
		}}
	}
	for name, mk := range map[string]func(*testing.T) probe{"http": httpProbe, "tcp": tcpProbe, "exec": execProbe} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := mk(t)
			p.set(true)
			cfg := testConfig(t, "exec sleep 100")
			cfg.Check = p.check
			cfg.Check.Interval, cfg.Check.Timeout, cfg.Check.Failures = 200*time.Millisecond, 150*time.Millisecond, 2
			r, rec := start(t, cfg)
			r.Set(Desired{Run: true})
			s1 := waitState(t, r, StateRunning, 3*time.Second)
			if !s1.Healthy {
				t.Fatalf("running but not healthy: %+v", s1)
			}
			p.set(false)
			waitFor(t, 3*time.Second, "a restart", func() bool { return r.Status().Restarts >= 1 })
			s := r.Status()
			if !strings.HasPrefix(s.LastExit, "health check failed: ") || s.Healthy {
				t.Errorf("after the failed checks: %+v", s)
			}
			if n := strings.Count(rec.String(), "health check failed"); n < 2 {
				t.Errorf("%d failed checks logged, want >= 2", n)
			}
			p.set(true)
			waitFor(t, 3*time.Second, "a healthy new process", func() bool {
				s = r.Status()
				return s.State == StateRunning && s.Healthy && s.PID != s1.PID
			})
			if _, ok := readStat(s1.PID); ok {
				t.Errorf("unhealthy process %d still exists", s1.PID)
			}
		})
	}
}

func TestExecCheckTimeoutKillsCheckGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "check")
	cfg := testConfig(t, "exec sleep 100")
	cfg.Check = HealthCheck{Exec: []string{"/bin/sh", "-c", `echo $$ > "$0"; sleep 100`, pidFile},
		Interval: 100 * time.Millisecond, Timeout: 50 * time.Millisecond, Failures: 100}
	r, rec := start(t, cfg)
	r.Set(Desired{Run: true})
	pid := readPID(t, pidFile)
	waitFor(t, 2*time.Second, "a timed-out check", func() bool { return strings.Contains(rec.String(), "timed out") })
	waitFor(t, 2*time.Second, "the check's group to be gone", func() bool { return len(groupMembers(pid)) == 0 })
	if s := r.Status(); s.State != StateStarting || s.Healthy {
		t.Errorf("status %+v, want starting and unhealthy", s)
	}
}

func TestLogRotation(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, `i=0; while [ $i -lt 50 ]; do printf 'line %04d ..............................................\n' $i; i=$((i+1)); done; echo done >&2; exec sleep 100`)
	cfg.LogMaxBytes = 1000
	var want bytes.Buffer
	for i := range 50 {
		fmt.Fprintf(&want, "line %04d ..............................................\n", i)
	}
	want.WriteString("done\n")
	r, _ := start(t, cfg)
	r.Set(Desired{Run: true})
	waitFor(t, 3*time.Second, "the output", func() bool {
		b, err := r.Logs(5)
		return err == nil && string(b) == "done\n"
	})
	cur, err := os.ReadFile(filepath.Join(cfg.LogDir, "w.log"))
	if err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(filepath.Join(cfg.LogDir, "w.log.1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(old) != 1000 || len(cur) > 1000 {
		t.Fatalf("w.log.1 %d bytes, w.log %d bytes; want 1000 and <= 1000", len(old), len(cur))
	}
	kept := append(old, cur...)
	if !bytes.HasSuffix(want.Bytes(), kept) {
		t.Fatalf("kept log is not the tail of the output:\n%s", kept)
	}
	all, err := r.Logs(0)
	if err != nil || !bytes.Equal(all, kept) {
		t.Fatalf("Logs(0) = %d bytes, %v; want the %d kept", len(all), err, len(kept))
	}
	tail, _ := r.Logs(len(cur) + 10)
	if !bytes.Equal(tail, kept[len(kept)-len(cur)-10:]) {
		t.Fatalf("Logs across the rotation: %q", tail)
	}
}

func TestCloseContextKillsAtOnce(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, `trap '' TERM; while :; do sleep 1; done`)
	cfg.StopGrace = time.Minute
	r, _ := start(t, cfg)
	r.Set(Desired{Run: true})
	s := waitState(t, r, StateRunning, 3*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	begin := time.Now()
	if err := r.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want the context's deadline", err)
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if took := time.Since(begin); took > 2*time.Second {
		t.Fatalf("Close took %v with a minute of grace; want SIGKILL when the context ends", took)
	}
	if st := r.Status(); st.State != StateStopped || st.LastExit != "signal: killed" {
		t.Fatalf("after Close: %+v", st)
	}
	if _, ok := readStat(s.PID); ok {
		t.Fatalf("pid %d still exists", s.PID)
	}
	r.Set(Desired{Run: true}) // no effect after Close
	if st := r.Status(); st.State != StateStopped {
		t.Fatalf("Set after Close: %+v", st)
	}
}

// TestCloseLeavesNoGoroutines runs a worker with a log and an HTTP check
// through a restart, closes it, and checks that the goroutine count
// returns to what it was. Not parallel: it counts every goroutine.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		var fail atomic.Bool
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if fail.Load() {
				w.WriteHeader(http.StatusInternalServerError)
			}
		}))
		defer srv.Close()
		cfg := testConfig(t, `echo hello; sleep 100 & exec sleep 100`)
		cfg.Check = HealthCheck{HTTP: srv.URL, Interval: 50 * time.Millisecond, Timeout: 40 * time.Millisecond, Failures: 1}
		r, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		r.Set(Desired{Run: true})
		waitState(t, r, StateRunning, 3*time.Second)
		fail.Store(true)
		waitFor(t, 3*time.Second, "a restart", func() bool { return r.Status().Restarts >= 1 })
		fail.Store(false)
		waitState(t, r, StateRunning, 3*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}()
	waitFor(t, 3*time.Second, fmt.Sprintf("goroutines back to %d", before), func() bool {
		return runtime.NumGoroutine() <= before
	})
}

// TestAgentDeathKillsWorker re-runs the test binary as a fake agent that
// starts a worker whose command forks a grandchild, SIGKILLs the agent, and
// checks that the command and the grandchild die too. Not parallel: it
// reaps the zombies re-parented to the test process.
func TestAgentDeathKillsWorker(t *testing.T) {
	dir := t.TempDir()
	agent := startFakeAgent(t, dir)
	mainPID := readPID(t, filepath.Join(dir, "pid"))
	gcPID := readPID(t, filepath.Join(dir, "gc"))
	if !alive(mainPID) || !alive(gcPID) {
		t.Fatalf("worker %d or grandchild %d not running", mainPID, gcPID)
	}
	if st, _ := readStat(mainPID); st.ppid != agent.Process.Pid {
		t.Fatalf("worker's parent is %d, want the agent %d", st.ppid, agent.Process.Pid)
	}
	if err := agent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = agent.Wait()
	killed := time.Now()
	waitFor(t, 3*time.Second, "the worker and its grandchild to die", func() bool {
		reapZombieChildren()
		return !alive(mainPID) && !alive(gcPID)
	})
	t.Logf("worker and grandchild dead %v after the agent", time.Since(killed))
	waitFor(t, 2*time.Second, "their process group to be gone", func() bool {
		reapZombieChildren()
		return len(groupMembers(mainPID)) == 0
	})
}

// startFakeAgent starts the test binary as a fake agent with its files in
// dir, and kills it at the end of the test if it still runs.
func startFakeAgent(t *testing.T, dir string) *osexec.Cmd {
	cmd := osexec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fakeAgentEnv+"="+dir)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// fakeAgent is the body of the test binary run as a fake agent: it runs one
// worker until it is killed.
func fakeAgent(dir string) {
	if err := BecomeSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg := DefaultConfig()
	cfg.Name = "victim"
	cfg.LogDir = dir
	cfg.Command = sh(`echo $$ > "$0/pid.tmp"; mv "$0/pid.tmp" "$0/pid"; sleep 100 & echo $! > "$0/gc.tmp"; mv "$0/gc.tmp" "$0/gc"; wait`)
	cfg.Command = append(cfg.Command, dir)
	r, err := New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	r.Set(Desired{Run: true, Role: RolePrimary, Fence: 1})
	for {
		time.Sleep(time.Hour) // until SIGKILL
	}
}
