// Package bench measures hasup's node runtime against the physical floor
// of the machine it runs on: a single bbolt commit and a loopback round
// trip, measured in the same run as the cases, so that results compare as
// ratios rather than as absolute figures from different machines.
//
// Every case runs three nodes in one process over real TCP on loopback and
// real, fsynced bbolt files: the path a deployment takes, minus the wire
// between machines. Load comes from goroutines that each issue one durable
// 64-byte write at a time to the primary of their ensemble (closed loop),
// so latency percentiles are per write and throughput is what the clients
// achieved. CPU is the process's user+system time per wall second (all
// three nodes and the clients together); memory is the live heap after a
// collection.
//
// The cases are those of the node-runtime issue; cmd/hasup-bench prints
// one line per case and the benchmarks in bench_test.go run them under
// `go test -bench`.
package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/fsm/kv"
	"github.com/hasup/hasup/internal/store"
	"github.com/hasup/hasup/internal/transport"
	"github.com/hasup/hasup/supervisor/host"
)

// Case is one measurement.
type Case struct {
	Name      string
	Ensembles int
	// Clients is the number of concurrent writers, spread round-robin over
	// the ensembles. 0 measures the idle cost instead.
	Clients  int
	Duration time.Duration
}

// Cases are the node-runtime issue's cases, each run for d.
func Cases(d time.Duration) []Case {
	return []Case{
		{Name: "1 ensemble x 1 client", Ensembles: 1, Clients: 1, Duration: d},
		{Name: "1 ensemble x 256 clients", Ensembles: 1, Clients: 256, Duration: d},
		{Name: "16 ensembles x 256 clients", Ensembles: 16, Clients: 256, Duration: d},
		{Name: "1000 idle ensembles", Ensembles: 1000, Duration: d},
	}
}

// Result is what one case measured.
type Result struct {
	Case
	Ops      int
	Errors   int
	OpsPerS  float64
	P50, P99 time.Duration
	// CPUPerS is process CPU time per wall second, over all three nodes.
	CPUPerS time.Duration
	// HeapBytes is the live heap after a collection, at the end.
	HeapBytes uint64
	// For the idle case: CPU per wall second per ensemble (its three
	// replicas together) and live heap per replica.
	CPUPerEnsemble  time.Duration
	BytesPerReplica uint64
}

// String is the case's one-line report.
func (r Result) String() string {
	if r.Clients == 0 {
		return fmt.Sprintf("%-28s cpu/s/ensemble=%-9v mem/replica=%.1fKiB cpu/s=%v heap=%.1fMiB",
			r.Name, r.CPUPerEnsemble.Round(100*time.Nanosecond), float64(r.BytesPerReplica)/1024, r.CPUPerS.Round(time.Microsecond), float64(r.HeapBytes)/(1<<20))
	}
	return fmt.Sprintf("%-28s ops/s=%-8.0f p50=%-9v p99=%-9v cpu/s=%-9v heap=%.1fMiB errors=%d (failed tries, as after a view change)",
		r.Name, r.OpsPerS, r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.CPUPerS.Round(time.Millisecond), float64(r.HeapBytes)/(1<<20), r.Errors)
}

// Floor is the machine's physical floor, measured in the run.
type Floor struct {
	CommitP50, CommitP99 time.Duration // one bbolt transaction with fsync: a 64-byte entry and a hard state
	RTTP50, RTTP99       time.Duration // a 64-byte ping-pong over a loopback TCP connection
}

// String is the floor's one-line report.
func (f Floor) String() string {
	return fmt.Sprintf("floor: bbolt commit p50=%v p99=%v; loopback RTT p50=%v p99=%v; target 1-client p50 <= 2*(commit+RTT) = %v",
		f.CommitP50.Round(time.Microsecond), f.CommitP99.Round(time.Microsecond), f.RTTP50.Round(time.Microsecond), f.RTTP99.Round(time.Microsecond),
		(2 * (f.CommitP50 + f.RTTP50)).Round(time.Microsecond))
}

// MeasureFloor measures n bbolt commits in dir and n loopback round trips.
func MeasureFloor(dir string, n int) (Floor, error) {
	var f Floor
	st, err := store.Open(filepath.Join(dir, "floor.db"), store.DefaultOpenTimeout)
	if err != nil {
		return f, err
	}
	defer st.Close()
	lat := make([]time.Duration, 0, n)
	h := &ensemble.HardState{View: 1, Members: []hasup.NodeID{"a"}}
	for i := 0; i < n; i++ {
		e := ensemble.Entry{Op: uint64(i + 1), Kind: ensemble.EntryRequest, Cmd: make([]byte, 64)}
		start := time.Now()
		if err := st.Commit([]store.Write{{Ensemble: "floor", Hard: h, LogFrom: e.Op, Entries: []ensemble.Entry{e}}}); err != nil {
			return f, err
		}
		lat = append(lat, time.Since(start))
	}
	f.CommitP50, f.CommitP99 = percentile(lat, 50), percentile(lat, 99)
	lat, err = loopbackRTT(n)
	if err != nil {
		return f, err
	}
	f.RTTP50, f.RTTP99 = percentile(lat, 50), percentile(lat, 99)
	return f, nil
}

func loopbackRTT(n int) ([]time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		for {
			if _, err := readFull(c, buf); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	buf := make([]byte, 64)
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		if _, err := c.Write(buf); err != nil {
			return nil, err
		}
		if _, err := readFull(c, buf); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(start))
	}
	return lat, nil
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := c.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// cluster is three nodes over loopback TCP with bbolt files under dir.
type cluster struct {
	ids    []hasup.NodeID
	nodes  []*host.Node
	stores []*store.Store
	trs    []*transport.TCP
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newCluster(dir string) (*cluster, error) {
	c := &cluster{ids: []hasup.NodeID{"b0", "b1", "b2"}}
	for _, id := range c.ids {
		cfg := transport.DefaultConfig()
		cfg.ID, cfg.Listen, cfg.QueueLen = id, "127.0.0.1:0", 16384
		tr, err := transport.Listen(cfg)
		if err != nil {
			c.close()
			return nil, err
		}
		c.trs = append(c.trs, tr)
	}
	for i, tr := range c.trs {
		for j, other := range c.trs {
			if i != j {
				tr.SetPeer(c.ids[j], other.Addr())
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	for i, id := range c.ids {
		st, err := store.Open(filepath.Join(dir, string(id)+".db"), store.DefaultOpenTimeout)
		if err != nil {
			c.close()
			return nil, err
		}
		c.stores = append(c.stores, st)
		nd, err := host.New(host.Config{ID: id, Store: st, Transport: c.trs[i], Seed: uint64(i + 1)})
		if err != nil {
			c.close()
			return nil, err
		}
		c.nodes = append(c.nodes, nd)
		c.wg.Add(1)
		go func() { defer c.wg.Done(); _ = nd.Run(ctx) }()
	}
	return c, nil
}

func (c *cluster) close() {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	for _, tr := range c.trs {
		_ = tr.Close()
	}
	for _, st := range c.stores {
		_ = st.Close()
	}
}

// start starts ensemble name on every node, primaries spread by rotating
// the member list, and returns the primary's index once it commits.
func (c *cluster) start(ctx context.Context, k int, name hasup.EnsembleName) (int, error) {
	members := slices.Clone(c.ids)
	for i := 0; i < k%len(members); i++ {
		members = append(members[1:], members[0])
	}
	for _, nd := range c.nodes {
		if err := nd.Start(ctx, host.Spec{Name: name, Members: members, FSM: kv.New(), Bootstrap: true}); err != nil {
			return 0, err
		}
	}
	for ctx.Err() == nil {
		for i, nd := range c.nodes {
			st, err := nd.Status(ctx, name)
			if err != nil || !st.IsPrimary {
				continue
			}
			if _, err := nd.Propose(ctx, name, kv.PutCmd([]byte("warm"), []byte("up"))); err == nil {
				return i, nil
			}
		}
		time.Sleep(time.Millisecond) // polling for the first primary, bounded by ctx
	}
	return 0, fmt.Errorf("ensemble %s: no primary: %w", name, ctx.Err())
}

// Run measures one case with its cluster's files under dir.
func Run(ctx context.Context, dir string, cs Case) (Result, error) {
	res := Result{Case: cs}
	runtime.GC()
	heapBefore := heapLive()
	c, err := newCluster(dir)
	if err != nil {
		return res, err
	}
	defer c.close()
	names := make([]hasup.EnsembleName, cs.Ensembles)
	primaries := make([]int, cs.Ensembles)
	setup, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for k := range names {
		names[k] = hasup.EnsembleName(fmt.Sprintf("bench%d", k))
		if primaries[k], err = c.start(setup, k, names[k]); err != nil {
			return res, err
		}
	}
	if cs.Clients == 0 {
		return c.idle(setup, res, names, heapBefore)
	}
	return c.load(ctx, res, names, primaries)
}

// load runs the closed-loop writers for the case's duration.
func (c *cluster) load(ctx context.Context, res Result, names []hasup.EnsembleName, primaries []int) (Result, error) {
	cs := res.Case
	var mu sync.Mutex
	var all []time.Duration
	errs := 0
	ctx, cancel := context.WithTimeout(ctx, cs.Duration)
	defer cancel()
	cpu0, wall0 := cpuTime(), time.Now()
	var wg sync.WaitGroup
	for w := 0; w < cs.Clients; w++ {
		k := w % len(names)
		wg.Add(1)
		go func() {
			defer wg.Done()
			at := primaries[k]
			key := []byte(fmt.Sprintf("client-%06d-key", w)) // 16 bytes
			cmd := kv.PutCmd(key, make([]byte, 64-len(key)))
			lat := make([]time.Duration, 0, 4096)
			bad := 0
			for ctx.Err() == nil {
				start := time.Now()
				if _, err := c.nodes[at].Propose(ctx, names[k], cmd); err != nil {
					if ctx.Err() == nil {
						bad++
						// The primary moved (a view change under load): follow
						// it, as a real client does, after a short pause.
						at = (at + 1) % len(c.nodes)
						time.Sleep(time.Millisecond)
					}
					continue
				}
				lat = append(lat, time.Since(start))
			}
			mu.Lock()
			all, errs = append(all, lat...), errs+bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	wall := time.Since(wall0)
	res.CPUPerS = time.Duration(float64(cpuTime()-cpu0) / wall.Seconds())
	res.Ops, res.Errors = len(all), errs
	res.OpsPerS = float64(len(all)) / wall.Seconds()
	res.P50, res.P99 = percentile(all, 50), percentile(all, 99)
	runtime.GC()
	res.HeapBytes = heapLive()
	if res.Ops == 0 {
		return res, errors.New("no write completed")
	}
	return res, nil
}

// idle waits until every ensemble is quiescent, then measures the CPU the
// idle cluster burns and the memory its replicas hold.
func (c *cluster) idle(ctx context.Context, res Result, names []hasup.EnsembleName, heapBefore uint64) (Result, error) {
	for {
		quiet := 0
		for _, nd := range c.nodes {
			for _, name := range names {
				if st, err := nd.Status(ctx, name); err == nil && st.Quiescent {
					quiet++
				}
			}
		}
		if quiet == len(names)*len(c.nodes) {
			break
		}
		if ctx.Err() != nil {
			return res, fmt.Errorf("%d of %d replicas quiescent: %w", quiet, len(names)*len(c.nodes), ctx.Err())
		}
		time.Sleep(50 * time.Millisecond) // polling for quiescence, bounded by ctx
	}
	runtime.GC()
	res.HeapBytes = heapLive()
	res.BytesPerReplica = (res.HeapBytes - min(heapBefore, res.HeapBytes)) / uint64(len(names)*len(c.nodes))
	cpu0, wall0 := cpuTime(), time.Now()
	select {
	case <-time.After(res.Duration): // the measurement window itself
	case <-ctx.Done():
		return res, ctx.Err()
	}
	wall := time.Since(wall0)
	res.CPUPerS = time.Duration(float64(cpuTime()-cpu0) / wall.Seconds())
	res.CPUPerEnsemble = res.CPUPerS / time.Duration(len(names))
	return res, nil
}

func heapLive() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}
