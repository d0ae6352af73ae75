//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hasup/hasup/internal/api"
)

// The end-to-end test: the real binary, three `hasup agent` processes on
// 127.0.0.1-3 with config files, a singleton worker that logs (fence,
// time) to a shared file, and kill -9 of the node that runs it.

// e2eNode is one agent process.
type e2eNode struct {
	name, ip           string
	serf, rpc, httpPrt int
	cfgPath, dataDir   string
	cmd                *exec.Cmd
}

func (n *e2eNode) httpAddr() string { return fmt.Sprintf("%s:%d", n.ip, n.httpPrt) }

// freePort returns a port free on ip now.
func freePort(t *testing.T, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Skipf("cannot listen on %s (loopback aliases?): %v", ip, err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// workerScript logs "start FENCE NODE NANOS" once and "tick FENCE NODE
// NANOS" every 20ms to the shared file, from the worker's environment.
const workerScript = `echo "start $HASUP_FENCE $HASUP_NODE $(date +%s%N)" >> "$E2E_LOG"; while true; do echo "tick $HASUP_FENCE $HASUP_NODE $(date +%s%N)" >> "$E2E_LOG"; sleep 0.02; done`

func writeConfig(t *testing.T, n *e2eNode, join, logFile string) {
	t.Helper()
	cfg := fmt.Sprintf(`node_name: %s
data_dir: %s
bind_addr: %s
serf_port: %d
rpc_port: %d
http_addr: %s
join: [%s]
bootstrap_expect: 3
profile: local
log_level: info
ensembles:
  - {name: orders, type: kv, replicas: 3}
workers:
  - name: fenced
    mode: singleton
    replicas: 3
    command: ["/bin/sh", "-c", %q]
    env: {E2E_LOG: %q}
    stop_grace: 500ms
`, n.name, n.dataDir, n.ip, n.serf, n.rpc, n.httpAddr(), join, workerScript, logFile)
	if err := os.WriteFile(n.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hasup")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func (n *e2eNode) start(t *testing.T, bin string) {
	t.Helper()
	n.cmd = exec.Command(bin, "agent", "-config", n.cfgPath)
	logf, err := os.OpenFile(filepath.Join(filepath.Dir(n.cfgPath), n.name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = logf.Close() })
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// The config file alone: the test's own HASUP_HTTP_ADDR (for the CLI)
	// would override the agent's http_addr.
	n.cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "HASUP_") })
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

func (n *e2eNode) kill() {
	if n.cmd != nil && n.cmd.Process != nil {
		_ = n.cmd.Process.Kill()
		_ = n.cmd.Wait()
	}
	n.cmd = nil
}

type workerLine struct {
	kind  string
	fence uint64
	node  string
	at    time.Time
}

func readWorkerLog(t *testing.T, path string) []workerLine {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []workerLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 4 {
			continue // a line cut short by a kill
		}
		fence, err1 := strconv.ParseUint(fs[1], 10, 64)
		ns, err2 := strconv.ParseInt(fs[3], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, workerLine{kind: fs[0], fence: fence, node: fs[2], at: time.Unix(0, ns)})
	}
	return out
}

// instances groups the log by (node, fence): one run of the command each.
type instance struct {
	node        string
	fence       uint64
	first, last time.Time
}

func instancesOf(lines []workerLine) []instance {
	var out []instance
	for _, l := range lines {
		i := slices.IndexFunc(out, func(in instance) bool { return in.node == l.node && in.fence == l.fence })
		if i < 0 {
			out = append(out, instance{node: l.node, fence: l.fence, first: l.at, last: l.at})
			continue
		}
		out[i].last = l.at
	}
	slices.SortFunc(out, func(a, b instance) int { return a.first.Compare(b.first) })
	return out
}

func TestAgentsEndToEndKVAndSingletonFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs three agent processes")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	if d := os.Getenv("HASUP_E2E_DIR"); d != "" {
		dir = d // keep the logs
	}
	logFile := filepath.Join(dir, "worker.log")
	var nodes []*e2eNode
	for i := 1; i <= 3; i++ {
		ip := fmt.Sprintf("127.0.0.%d", i)
		n := &e2eNode{name: fmt.Sprintf("n%d", i), ip: ip, cfgPath: filepath.Join(dir, fmt.Sprintf("n%d.yaml", i)),
			dataDir: filepath.Join(dir, fmt.Sprintf("n%d", i))}
		n.serf, n.rpc, n.httpPrt = freePort(t, ip), freePort(t, ip), freePort(t, ip)
		nodes = append(nodes, n)
	}
	var joins []string
	for _, n := range nodes {
		joins = append(joins, fmt.Sprintf("%q", fmt.Sprintf("%s:%d", n.ip, n.serf)))
	}
	join := strings.Join(joins, ", ")
	for _, n := range nodes {
		writeConfig(t, n, join, logFile)
		n.start(t, bin)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.kill()
			if t.Failed() {
				b, _ := os.ReadFile(filepath.Join(dir, n.name+".log"))
				lines := strings.Split(string(b), "\n")
				t.Logf("last lines of %s's log:\n%s", n.name, strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
		}
	})

	// KV through the API and the CLI.
	c := &api.Client{Addr: nodes[1].httpAddr(), HTTP: &http.Client{Timeout: 5 * time.Second}}
	poll(t, 60*time.Second, "the orders ensemble takes a write", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := c.KVPut(ctx, "orders", "k1", []byte("v1"), nil)
		return err
	})
	t.Setenv("HASUP_HTTP_ADDR", nodes[2].httpAddr())
	if code, o, e := cli(t, "kv", "put", "orders", "k2", "v2"); code != exitOK {
		t.Fatalf("kv put: %d %q %q", code, o, e)
	}
	if code, o, _ := cli(t, "kv", "get", "orders", "k1"); code != exitOK || o != "v1\n" {
		t.Fatalf("kv get: %d %q", code, o)
	}

	// Singleton failover, five times: kill -9 the node running the worker.
	var failovers []time.Duration
	for trial := 0; trial < 5; trial++ {
		var running instance
		poll(t, 60*time.Second, "the worker runs", func() error {
			ins := instancesOf(readWorkerLog(t, logFile))
			if len(ins) == 0 || time.Since(ins[len(ins)-1].last) > time.Second {
				return fmt.Errorf("no instance ticking")
			}
			running = ins[len(ins)-1]
			return nil
		})
		victim := nodes[slices.IndexFunc(nodes, func(n *e2eNode) bool { return n.name == running.node })]
		killedAt := time.Now()
		victim.kill()
		var next instance
		poll(t, 30*time.Second, "the worker runs elsewhere", func() error {
			for _, in := range instancesOf(readWorkerLog(t, logFile)) {
				if in.first.After(killedAt) {
					next = in
					return nil
				}
			}
			return fmt.Errorf("no new instance since the kill of %s", victim.name)
		})
		if next.node == victim.name || next.fence <= running.fence {
			t.Fatalf("trial %d: after killing %s (fence %d) the worker runs on %s with fence %d", trial, victim.name, running.fence, next.node, next.fence)
		}
		failovers = append(failovers, next.first.Sub(killedAt))
		t.Logf("FAILOVER trial %d: %s (fence %d) killed; %s took over with fence %d after %v", trial, victim.name, running.fence, next.node, next.fence, failovers[trial].Round(time.Millisecond))
		victim.start(t, bin) // back, for the next trial
		poll(t, 60*time.Second, victim.name+" back", func() error {
			for _, n := range nodes {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				ms, err := (&api.Client{Addr: n.httpAddr()}).Members(ctx)
				cancel()
				if err != nil {
					return err
				}
				alive := 0
				for _, m := range ms {
					if m.Status == "alive" {
						alive++
					}
				}
				if alive != len(nodes) {
					return fmt.Errorf("%s sees %d alive", n.name, alive)
				}
			}
			// and its replica of the worker's ensemble runs again
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			ws, err := (&api.Client{Addr: victim.httpAddr()}).Workers(ctx)
			if err != nil || len(ws) == 0 {
				return fmt.Errorf("%s runs no worker yet: %v", victim.name, err)
			}
			return nil
		})
	}

	// Never two instances at once: each instance's first line comes after
	// the previous one's last.
	ins := instancesOf(readWorkerLog(t, logFile))
	for i := 1; i < len(ins); i++ {
		if !ins[i].first.After(ins[i-1].last) {
			t.Fatalf("instances overlap: %+v and %+v", ins[i-1], ins[i])
		}
		if ins[i].fence <= ins[i-1].fence {
			t.Fatalf("fence did not grow: %+v then %+v", ins[i-1], ins[i])
		}
	}
	slices.Sort(failovers)
	t.Logf("FAILOVER p50 %v over %d trials (all: %v)", failovers[len(failovers)/2].Round(time.Millisecond), len(failovers), failovers)
	if code, o, _ := cli(t, "kv", "get", "orders", "k2"); code != exitOK || o != "v2\n" {
		t.Fatalf("kv get after the failovers: %d %q", code, o)
	}

	// hasup leave: the agent leaves gracefully and exits 0.
	last := nodes[2]
	t.Setenv("HASUP_HTTP_ADDR", last.httpAddr())
	if code, o, e := cli(t, "leave"); code != exitOK {
		t.Fatalf("leave: %d %q %q", code, o, e)
	}
	exited := make(chan error, 1)
	go func() { exited <- last.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("the agent that left exited with %v", err)
		}
		last.cmd = nil
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not exit after leaving")
	}
	t.Setenv("HASUP_HTTP_ADDR", nodes[0].httpAddr())
	poll(t, 10*time.Second, "the others see it left", func() error {
		code, o, _ := cli(t, "members")
		if code != exitOK || !strings.Contains(o, "left") {
			return fmt.Errorf("members: %d %q", code, o)
		}
		return nil
	})
}

func poll(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
	t.Fatalf("%s: %v", what, err)
}
