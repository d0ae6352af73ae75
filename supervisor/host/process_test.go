//go:build linux

package host

// Crash tests with real processes. The test binary runs itself again as a
// node (the re-exec pattern): TestMain sees HASUP_HOST_TEST_NODE=1 and, in
// place of the tests, runs one node with a bbolt file in its data dir, the
// TCP transport on a port the parent reserved, the kv ensemble and a small
// HTTP control API. The parent kills nodes with SIGKILL, so nothing gets a
// chance to flush or say goodbye: what survives is exactly what the store
// fsynced.
//
// Ports: the consensus ports must stay the same across restarts (the peers
// know them), so the parent picks them below the kernel's ephemeral range,
// where no outgoing connection can take one while its node is down. The
// control API listens on port 0 and its address is the child's first line
// of stdout.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/fsm/kv"
	"github.com/hasup/hasup/internal/store"
	"github.com/hasup/hasup/internal/transport"
)

// The environment a node process reads.
const (
	envNode      = "HASUP_HOST_TEST_NODE"      // "1": run a node, not the tests
	envID        = "HASUP_HOST_TEST_ID"        // this node's ID
	envDir       = "HASUP_HOST_TEST_DIR"       // its data dir
	envPeers     = "HASUP_HOST_TEST_PEERS"     // id=host:port,... for every member, in member order
	envBootstrap = "HASUP_HOST_TEST_BOOTSTRAP" // "1": a brand-new ensemble
	envSeed      = "HASUP_HOST_TEST_SEED"      // host.Config.Seed
	envTestSeed  = "HASUP_PROCESS_TEST_SEED"   // replays a test's random choices
)

// procEnsemble is the one ensemble every node process runs.
const procEnsemble hasup.EnsembleName = "kv"

func TestMain(m *testing.M) {
	if os.Getenv(envNode) == "1" {
		if err := runTestNode(); err != nil {
			fmt.Fprintln(os.Stderr, "test node:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestProcessKilledWithSIGKILLRestartsFromItsDataDirAndCatchesUp(t *testing.T) {
	c := newProcCluster(t, 3)
	for i := 0; i < 20; i++ {
		c.putAcked(fmt.Sprintf("a%02d", i), "1")
		c.putAcked("counter", strconv.Itoa(i))
	}
	p := c.waitPrimary()
	b := (p + 1) % 3
	c.kill(b)
	for i := 20; i < 60; i++ { // the backup misses all of these
		c.putAcked(fmt.Sprintf("a%02d", i), "1")
		c.putAcked("counter", strconv.Itoa(i))
	}
	primaryCommit := c.mustStatus(c.waitPrimary()).Commit
	c.start(b, false) // from its data dir
	c.eventually("restarted backup catches up", 15*time.Second, func() error {
		st, err := c.status(b)
		if err != nil {
			return err
		}
		if st.Mode != ensemble.ModeNormal.String() || st.Commit < primaryCommit {
			return fmt.Errorf("%s: %+v, primary's commit %d", c.ids[b], st, primaryCommit)
		}
		if v, found, err := c.get(b, "counter", "stale"); err != nil || !found || v != "59" {
			return fmt.Errorf("stale counter on %s = %q (found %v, err %v), want 59", c.ids[b], v, found, err)
		}
		return nil
	})
	for i := 0; i < 60; i++ {
		key := fmt.Sprintf("a%02d", i)
		if v, found, err := c.get(b, key, "stale"); err != nil || !found || v != "1" {
			t.Errorf("stale %s on the restarted %s = %q (found %v, err %v)", key, c.ids[b], v, found, err)
		}
	}
}

func TestWholeClusterSIGKILLLosesNoAcknowledgedWrite(t *testing.T) {
	c := newProcCluster(t, 3)
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	killAfterAcks := 30 + rng.IntN(300)
	c.waitPrimary()

	w := startWriters(c, 4)
	c.eventually("writers get acknowledgements", 15*time.Second, func() error {
		if n := w.count(); n < killAfterAcks {
			return fmt.Errorf("%d of %d acknowledged", n, killAfterAcks)
		}
		return nil
	})
	order := rng.Perm(3)
	c.killAll(order) // while the writers are still writing
	acked := w.stop()
	t.Logf("seed %d: killed %v after %d acknowledged writes (%d when the kill began)", seed, order, len(acked), killAfterAcks)

	for i := range c.nodes {
		c.start(i, false)
	}
	p := c.waitPrimary()
	for key, want := range acked {
		got, found := c.getAcked(key)
		if !found || got != want {
			t.Errorf("acknowledged %s=%s reads back as %q (found %v) from %s", key, want, got, found, c.ids[p])
		}
	}
}

func TestPrimaryProcessSIGKILLedAnotherTakesOver(t *testing.T) {
	c := newProcCluster(t, 3)
	acked := map[string]string{}
	for i := 0; i < 20; i++ {
		key := fmt.Sprintf("c%02d", i)
		c.putAcked(key, "before")
		acked[key] = "before"
	}
	old := c.waitPrimary()
	oldView := c.mustStatus(old).View
	c.kill(old)

	var p int
	c.eventually("a new primary accepts writes", 15*time.Second, func() error {
		var err error
		if p, err = c.primaryNow(); err != nil {
			return err
		}
		st, err := c.status(p)
		if err != nil {
			return err
		}
		if p == old || st.View <= oldView {
			return fmt.Errorf("primary %s in view %d, old primary %s in view %d", c.ids[p], st.View, c.ids[old], oldView)
		}
		return c.put(p, "takeover", "yes")
	})
	acked["takeover"] = "yes"
	for i := 20; i < 40; i++ {
		key := fmt.Sprintf("c%02d", i)
		c.putAcked(key, "after")
		acked[key] = "after"
	}
	for key, want := range acked {
		if got, found := c.getAcked(key); !found || got != want {
			t.Errorf("%s = %q (found %v) on the new primary, want %q", key, got, found, want)
		}
	}

	c.start(old, false)
	c.putAcked("rejoined", "yes")
	c.eventually("the old primary rejoins", 15*time.Second, func() error {
		cur, err := c.primaryNow()
		if err != nil {
			return err
		}
		pst, err := c.status(cur)
		if err != nil {
			return err
		}
		st, err := c.status(old)
		if err != nil {
			return err
		}
		// A restarted former primary changes view when it comes back (it
		// may have sent PREPAREs it never made durable), and that view
		// may be its own again: it rejoins, as a backup or as the primary.
		if st.Mode != ensemble.ModeNormal.String() || st.View != pst.View || st.Commit < pst.Commit {
			return fmt.Errorf("old primary %s: %+v; primary %s: %+v", c.ids[old], st, c.ids[cur], pst)
		}
		if v, found, err := c.get(old, "rejoined", "stale"); err != nil || !found || v != "yes" {
			return fmt.Errorf("stale read of rejoined on %s: %q %v %v", c.ids[old], v, found, err)
		}
		return nil
	})
}

// TestProcessRestartedAsPrimaryAppliesEveryWriteItAcknowledges: after a
// whole-cluster SIGKILL the node that was primary usually is primary again.
// Restarted with the same Seed, it draws the same client-session ID as its
// previous incarnation, whose session (and last request number) is still in
// the replicated client table; each write it acknowledges must still have
// executed and be readable.
func TestProcessRestartedAsPrimaryAppliesEveryWriteItAcknowledges(t *testing.T) {
	c := newProcCluster(t, 3)
	for i := 0; i < 5; i++ {
		c.putAcked(fmt.Sprintf("pre%d", i), "1")
	}
	before := c.waitPrimary()
	c.killAll(c.all())
	for i := range c.nodes {
		c.start(i, false)
	}
	after := c.waitPrimary()
	t.Logf("primary before the kill %s, after the restart %s", c.ids[before], c.ids[after])
	for i := 0; i < 5; i++ {
		c.putAcked(fmt.Sprintf("post%d", i), "2")
	}
	for i := 0; i < 5; i++ {
		key := fmt.Sprintf("post%d", i)
		if v, found := c.getAcked(key); !found || v != "2" {
			t.Errorf("acknowledged %s=2 reads back as %q (found %v)", key, v, found)
		}
	}
}

// ---- the node process ----

// runTestNode runs one node until its stdin closes (the parent is gone) or
// it is killed.
func runTestNode() error {
	id := hasup.NodeID(os.Getenv(envID))
	members, addrs, err := parsePeers(os.Getenv(envPeers))
	if err != nil {
		return err
	}
	seed, err := strconv.ParseUint(os.Getenv(envSeed), 10, 64)
	if err != nil {
		return fmt.Errorf("%s: %w", envSeed, err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", id)
	st, err := store.Open(filepath.Join(os.Getenv(envDir), "hasup.db"), store.DefaultOpenTimeout)
	if err != nil {
		return err
	}
	defer st.Close()
	tr, err := listenTransport(id, addrs, seed, logger)
	if err != nil {
		return err
	}
	defer tr.Close()
	node, err := New(Config{ID: id, Store: st, Transport: tr, TickInterval: 10 * time.Millisecond, Seed: seed, Logger: logger})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- node.Run(ctx) }()
	spec := Spec{Name: procEnsemble, Members: members, FSM: kv.New(), Bootstrap: os.Getenv(envBootstrap) == "1"}
	if err := node.Start(ctx, spec); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: controlAPI(node), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Println(ln.Addr().String())
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }() // EOF: the parent is gone
	return <-ran
}

func parsePeers(s string) ([]hasup.NodeID, map[hasup.NodeID]string, error) {
	var members []hasup.NodeID
	addrs := map[hasup.NodeID]string{}
	for _, kv := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, nil, fmt.Errorf("%s: bad entry %q", envPeers, kv)
		}
		members = append(members, hasup.NodeID(id))
		addrs[hasup.NodeID(id)] = addr
	}
	return members, addrs, nil
}

// listenTransport listens on this node's fixed port, retrying for a while:
// the parent reserved the port, but closed it so that this process could
// take it.
func listenTransport(id hasup.NodeID, addrs map[hasup.NodeID]string, seed uint64, logger *slog.Logger) (*transport.TCP, error) {
	cfg := transport.DefaultConfig()
	cfg.ID, cfg.Listen, cfg.Seed, cfg.Logger = id, addrs[id], seed, logger
	cfg.Peers = map[hasup.NodeID]string{}
	for peer, addr := range addrs {
		if peer != id {
			cfg.Peers[peer] = addr
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		tr, err := transport.Listen(cfg)
		if err == nil || time.Now().After(deadline) {
			return tr, err
		}
		time.Sleep(20 * time.Millisecond) // polling for the port, bounded by the deadline
	}
}

// procStatus is the control API's view of ensemble.Status.
type procStatus struct {
	View      uint64 `json:"view"`
	Mode      string `json:"mode"`
	Primary   string `json:"primary"`
	IsPrimary bool   `json:"is_primary"`
	Op        uint64 `json:"op"`
	Commit    uint64 `json:"commit"`
}

// controlAPI serves PUT and GET /kv/{key} (GET takes ?mode=stale, else it
// is linearizable) and GET /status. Any failure to order or read is a 503:
// the caller may retry, and a write that got no 200 is not acknowledged.
func controlAPI(node *Node) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		val, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		res, err := node.Propose(ctx, procEnsemble, kv.PutCmd([]byte(r.PathValue("key")), val))
		if err == nil {
			_, err = kv.DecodeResult(res)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("GET /kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		mode := ensemble.ReadLinearizable
		if r.URL.Query().Get("mode") == "stale" {
			mode = ensemble.ReadStale
		}
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		res, err := node.Read(ctx, procEnsemble, kv.GetQuery([]byte(r.PathValue("key"))), mode)
		var out kv.Result
		if err == nil {
			out, err = kv.DecodeResult(res)
		}
		switch {
		case err != nil:
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		case !out.Found:
			http.Error(w, "not found", http.StatusNotFound)
		default:
			_, _ = w.Write(out.Value)
		}
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		st, err := node.Status(r.Context(), procEnsemble)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(procStatus{View: st.View, Mode: st.Mode.String(), Primary: string(st.Primary),
			IsPrimary: st.IsPrimary, Op: st.Op, Commit: st.Commit})
	})
	return mux
}

// ---- the parent's side ----

// procCluster is n node processes on loopback, each with its data dir.
type procCluster struct {
	t      *testing.T
	ids    []hasup.NodeID
	peers  string // the envPeers value
	nodes  []*procNode
	client *http.Client
}

// procNode is one node process; cmd is nil while it is down.
type procNode struct {
	dir, logPath string
	cmd          *exec.Cmd
	stdin        io.WriteCloser // its stdin: EOF tells it the parent is gone
	exited       chan struct{}
	api          string // host:port of its control API
}

func newProcCluster(t *testing.T, n int) *procCluster {
	if testing.Short() {
		t.Skip("starts node processes")
	}
	c := &procCluster{t: t, client: &http.Client{Timeout: 5 * time.Second}}
	var peers []string
	for i, port := range reservePorts(t, n) {
		id := hasup.NodeID(fmt.Sprintf("p%d", i))
		c.ids = append(c.ids, id)
		peers = append(peers, fmt.Sprintf("%s=127.0.0.1:%d", id, port))
		dir := t.TempDir()
		c.nodes = append(c.nodes, &procNode{dir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "node.log")})
	}
	c.peers = strings.Join(peers, ",")
	t.Cleanup(func() { // runs before the TempDirs are removed
		c.killAll(c.all())
		if t.Failed() {
			for i, p := range c.nodes {
				out, _ := os.ReadFile(p.logPath)
				t.Logf("log of %s:\n%s", c.ids[i], tail(string(out), 40))
			}
		}
	})
	for i := range c.nodes {
		c.start(i, true)
	}
	return c
}

// reservePorts finds n free ports on 127.0.0.1 below the ephemeral range.
func reservePorts(t *testing.T, n int) []int {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil && v > 12000 {
				lo = v
			}
		}
	}
	// Not the test seed: concurrent runs of this test must not collide.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	var ports []int
	for tries := 0; len(ports) < n && tries < 1000; tries++ {
		port := 10000 + rng.IntN(lo-10000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		_ = ln.Close()
		ports = append(ports, port)
	}
	if len(ports) < n {
		t.Fatalf("found only %d free ports", len(ports))
	}
	return ports
}

// start runs node i's process and waits for its control API address.
func (c *procCluster) start(i int, bootstrap bool) {
	c.t.Helper()
	p := c.nodes[i]
	exe, err := os.Executable()
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envNode+"=1", envID+"="+string(c.ids[i]), envDir+"="+p.dir,
		envPeers+"="+c.peers, envBootstrap+"="+boolEnv(bootstrap), envSeed+"="+strconv.Itoa(i+1))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	p.cmd, p.stdin, p.exited = cmd, stdin, make(chan struct{})
	first := make(chan string, 1)
	go func(exited chan struct{}) {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		first <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, r) // Wait must come after the last read
		_ = cmd.Wait()
		close(exited)
	}(p.exited)
	select {
	case p.api = <-first:
		if p.api == "" {
			c.t.Fatalf("%s exited before serving: see its log", c.ids[i])
		}
	case <-time.After(15 * time.Second):
		c.t.Fatalf("%s printed no address within 15s", c.ids[i])
	}
}

// kill sends SIGKILL to node i and waits until it is gone.
func (c *procCluster) kill(i int) { c.killAll([]int{i}) }

// killAll sends SIGKILL to the nodes in order, all before waiting for any.
func (c *procCluster) killAll(order []int) {
	for _, i := range order {
		if p := c.nodes[i]; p.cmd != nil {
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	for _, i := range order {
		p := c.nodes[i]
		if p.cmd == nil {
			continue
		}
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			c.t.Errorf("%s still runs 10s after SIGKILL", c.ids[i])
		}
		p.cmd = nil
	}
}

func (c *procCluster) all() []int {
	out := make([]int, len(c.nodes))
	for i := range out {
		out[i] = i
	}
	return out
}

// eventually polls f until it returns nil, failing the test after timeout.
func (c *procCluster) eventually(what string, timeout time.Duration, f func() error) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
}

func (c *procCluster) status(i int) (procStatus, error) {
	var st procStatus
	resp, err := c.client.Get("http://" + c.nodes[i].api + "/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return st, fmt.Errorf("status of %s: %s: %s", c.ids[i], resp.Status, b)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func (c *procCluster) mustStatus(i int) procStatus {
	c.t.Helper()
	st, err := c.status(i)
	if err != nil {
		c.t.Fatal(err)
	}
	return st
}

// primaryNow returns the running node that says it is the primary of a
// normal view, the one in the highest view if several do.
func (c *procCluster) primaryNow() (int, error) {
	best, view := -1, uint64(0)
	for i, p := range c.nodes {
		if p.cmd == nil {
			continue
		}
		if st, err := c.status(i); err == nil && st.IsPrimary && (best < 0 || st.View > view) {
			best, view = i, st.View
		}
	}
	if best < 0 {
		return -1, errors.New("no primary")
	}
	return best, nil
}

func (c *procCluster) waitPrimary() int {
	c.t.Helper()
	var p int
	c.eventually("a primary", 15*time.Second, func() (err error) {
		p, err = c.primaryNow()
		return err
	})
	return p
}

// put writes key=val through node i; nil means acknowledged (HTTP 200).
func (c *procCluster) put(i int, key, val string) error {
	return putTo(c.client, c.nodes[i].api, key, val)
}

func putTo(client *http.Client, api, key, val string) error {
	req, err := http.NewRequest(http.MethodPut, "http://"+api+"/kv/"+key, strings.NewReader(val))
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("put %s: %s: %s", key, resp.Status, b)
	}
	return nil
}

// putAcked writes through whichever node is primary until one acknowledges.
func (c *procCluster) putAcked(key, val string) {
	c.t.Helper()
	c.eventually("put "+key, 15*time.Second, func() error {
		p, err := c.primaryNow()
		if err != nil {
			return err
		}
		return c.put(p, key, val)
	})
}

// get reads key from node i in the given mode ("stale" or "" for
// linearizable).
func (c *procCluster) get(i int, key, mode string) (val string, found bool, err error) {
	resp, err := c.client.Get("http://" + c.nodes[i].api + "/kv/" + key + "?mode=" + mode)
	if err != nil {
		return "", false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		return "", false, err
	case resp.StatusCode == http.StatusNotFound:
		return "", false, nil
	case resp.StatusCode != http.StatusOK:
		return "", false, fmt.Errorf("get %s: %s: %s", key, resp.Status, b)
	}
	return string(b), true, nil
}

// getAcked reads key linearizably through whichever node is primary.
func (c *procCluster) getAcked(key string) (val string, found bool) {
	c.t.Helper()
	c.eventually("get "+key, 15*time.Second, func() error {
		p, err := c.primaryNow()
		if err != nil {
			return err
		}
		val, found, err = c.get(p, key, "")
		return err
	})
	return val, found
}

// writers write distinct keys through the primary from several goroutines
// and record each write acknowledged with a 200.
type writers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	acked  map[string]string
	n      atomic.Int64
}

func startWriters(c *procCluster, n int) *writers {
	ctx, cancel := context.WithCancel(context.Background())
	w := &writers{cancel: cancel, acked: map[string]string{}}
	apis := make([]string, len(c.nodes)) // fixed while the writers run
	for i, p := range c.nodes {
		apis[i] = p.api
	}
	var primary atomic.Int64
	primary.Store(int64(c.waitPrimary()))
	for g := 0; g < n; g++ {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				key, val := fmt.Sprintf("w%d-%05d", g, i), fmt.Sprintf("v%d-%d", g, i)
				if err := putTo(c.client, apis[primary.Load()], key, val); err != nil {
					primary.Store(findPrimary(c.client, apis, primary.Load()))
					time.Sleep(5 * time.Millisecond) // back off before the next write
					continue
				}
				w.mu.Lock()
				w.acked[key] = val
				w.mu.Unlock()
				w.n.Add(1)
			}
		}()
	}
	return w
}

// findPrimary asks every API for its status; it returns old if none is
// primary (or none answers).
func findPrimary(client *http.Client, apis []string, old int64) int64 {
	for i, api := range apis {
		resp, err := client.Get("http://" + api + "/status")
		if err != nil {
			continue
		}
		var st procStatus
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err == nil && st.IsPrimary {
			return int64(i)
		}
	}
	return old
}

func (w *writers) count() int { return int(w.n.Load()) }

// stop stops the writers and returns every acknowledged write.
func (w *writers) stop() map[string]string {
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acked
}

// testSeed returns the seed of a test's random choices: envTestSeed if set,
// else a new one (logged, so that a failure can be replayed).
func testSeed(t *testing.T) uint64 {
	if s := os.Getenv(envTestSeed); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", envTestSeed, err)
		}
		return v
	}
	return uint64(time.Now().UnixNano())
}

func boolEnv(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}
