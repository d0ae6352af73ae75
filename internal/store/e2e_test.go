package store_test

// End to end through the whole node: a replica whose bbolt file fails its
// checksums must be reported as ErrCorrupt, deleted by host.Start, and
// rebuilt from its peers by the VRR recovery protocol, after which it must
// hold every committed key and take part in the quorum again.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/fsm/kv"
	"github.com/hasup/hasup/internal/store"
	"github.com/hasup/hasup/internal/transport"
	"github.com/hasup/hasup/supervisor/host"
	bolt "go.etcd.io/bbolt"
)

const e2eEnsemble hasup.EnsembleName = "kv"

func TestCorruptRecordIsDetectedAndTheReplicaRecoversFromItsPeers(t *testing.T) {
	for _, tc := range []struct {
		name          string
		checkpointOps uint64 // small enough for the backup to checkpoint, or not
		corrupt       func(ens *bolt.Bucket) (record string, err error)
	}{
		{"log entry", 1024, corruptMiddleLogEntry},
		{"hard state", 1024, corruptRecord("hard", "hard state")},
		{"checkpoint", 8, corruptRecord("ckpt", "checkpoint")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rcfg := ensemble.DefaultConfig()
			rcfg.CheckpointOps = tc.checkpointOps
			c := newE2ECluster(t, 3, rcfg)
			const n = 40
			for i := 0; i < n; i++ {
				c.put(fmt.Sprintf("k%02d", i), fmt.Sprintf("v%d", i))
			}
			p := c.primary()
			b, other := (p+1)%3, (p+2)%3
			commit := c.status(p).Commit
			c.eventually(string(c.ids[b])+" applies everything", func() error {
				st := c.status(b)
				if st.Applied < commit || (tc.checkpointOps < n && st.CheckpointOp == 0) {
					return fmt.Errorf("%+v, want applied %d and a checkpoint", st, commit)
				}
				return nil
			})

			c.stop(b)
			record := corruptOnDisk(t, c.nodes[b].path, tc.corrupt)
			reopened, err := store.Open(c.nodes[b].path, store.DefaultOpenTimeout)
			if err != nil {
				t.Fatal(err)
			}
			_, err = reopened.Load(e2eEnsemble)
			if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), "ensemble "+string(e2eEnsemble)) || !strings.Contains(err.Error(), record) {
				t.Fatalf("Load after flipping a byte of the %s: %v; want ErrCorrupt naming ensemble %s and %q", tc.name, err, e2eEnsemble, record)
			}

			c.startWith(b, reopened)
			c.startEnsemble(b, false)
			c.eventually(string(c.ids[b])+" recovers from its peers", func() error {
				if st := c.status(b); st.Mode != ensemble.ModeNormal || st.Commit < commit || st.Applied < commit {
					return fmt.Errorf("%+v, want normal with commit %d", st, commit)
				}
				if _, err := reopened.Load(e2eEnsemble); err != nil {
					return fmt.Errorf("its storage still fails to load: %w", err)
				}
				return nil
			})
			for i := 0; i < n; i++ {
				key, want := fmt.Sprintf("k%02d", i), fmt.Sprintf("v%d", i)
				if got := c.read(b, key, ensemble.ReadStale); got != want {
					t.Errorf("stale %s on the recovered %s = %q, want %q", key, c.ids[b], got, want)
				}
				if got := c.read(p, key, ensemble.ReadLinearizable); got != want {
					t.Errorf("%s on the primary = %q, want %q", key, got, want)
				}
			}

			c.stop(other) // from now on no write commits without the recovered replica
			for i := n; i < n+10; i++ {
				c.put(fmt.Sprintf("k%02d", i), fmt.Sprintf("v%d", i))
			}
			c.eventually("new writes reach "+string(c.ids[b]), func() error {
				if got := c.read(b, fmt.Sprintf("k%02d", n+9), ensemble.ReadStale); got != fmt.Sprintf("v%d", n+9) {
					return fmt.Errorf("stale k%02d = %q", n+9, got)
				}
				return nil
			})
		})
	}
}

// corruptMiddleLogEntry flips the last byte of the log entry in the middle
// of the log.
func corruptMiddleLogEntry(ens *bolt.Bucket) (string, error) {
	log := ens.Bucket([]byte("log"))
	if log == nil {
		return "", errors.New("no log bucket")
	}
	var keys [][]byte
	_ = log.ForEach(func(k, _ []byte) error {
		keys = append(keys, bytes.Clone(k))
		return nil
	})
	if len(keys) < 3 {
		return "", fmt.Errorf("only %d log entries", len(keys))
	}
	k := keys[len(keys)/2]
	return fmt.Sprintf("log op %d", binary.BigEndian.Uint64(k)), flipLastByte(log, k)
}

// corruptRecord flips the last byte of the record at key; Load names it
// record.
func corruptRecord(key, record string) func(*bolt.Bucket) (string, error) {
	return func(ens *bolt.Bucket) (string, error) { return record, flipLastByte(ens, []byte(key)) }
}

func flipLastByte(b *bolt.Bucket, key []byte) error {
	v := bytes.Clone(b.Get(key))
	if len(v) == 0 {
		return fmt.Errorf("no record %q", key)
	}
	v[len(v)-1] ^= 0xff
	return b.Put(key, v)
}

// corruptOnDisk opens the closed store file with bbolt itself and applies
// corrupt to the ensemble's bucket.
func corruptOnDisk(t *testing.T, path string, corrupt func(*bolt.Bucket) (string, error)) string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var record string
	err = db.Update(func(tx *bolt.Tx) error {
		ens := tx.Bucket([]byte("ensembles")).Bucket([]byte(e2eEnsemble))
		if ens == nil {
			return fmt.Errorf("no bucket for ensemble %s", e2eEnsemble)
		}
		var err error
		record, err = corrupt(ens)
		return err
	})
	if err != nil {
		t.Fatalf("corrupt %s: %v", path, err)
	}
	return record
}

// e2eCluster is n nodes in one process: real bbolt files, the in-memory
// transport, real tickers.
type e2eCluster struct {
	t     *testing.T
	net   *transport.MemNetwork
	rcfg  ensemble.Config
	ids   []hasup.NodeID
	nodes []*e2eNode
}

// e2eNode is one node; cancel is nil while it is stopped.
type e2eNode struct {
	path   string
	st     *store.Store
	tr     *transport.Mem
	node   *host.Node
	cancel context.CancelFunc
	done   chan error
}

func newE2ECluster(t *testing.T, n int, rcfg ensemble.Config) *e2eCluster {
	c := &e2eCluster{t: t, net: transport.NewMemNetwork(), rcfg: rcfg}
	for i := 0; i < n; i++ {
		c.ids = append(c.ids, hasup.NodeID(fmt.Sprintf("n%d", i)))
		c.nodes = append(c.nodes, &e2eNode{path: filepath.Join(t.TempDir(), "hasup.db")})
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stop(i)
		}
	})
	for i := range c.nodes {
		st, err := store.Open(c.nodes[i].path, store.DefaultOpenTimeout)
		if err != nil {
			t.Fatal(err)
		}
		c.startWith(i, st)
		c.startEnsemble(i, true)
	}
	return c
}

// startWith runs node i's loop on the open store st.
func (c *e2eCluster) startWith(i int, st *store.Store) {
	c.t.Helper()
	nd := c.nodes[i]
	nd.tr = c.net.Join(c.ids[i], 4096)
	node, err := host.New(host.Config{ID: c.ids[i], Store: st, Transport: nd.tr, TickInterval: 5 * time.Millisecond, Replica: c.rcfg, Seed: uint64(i + 1)})
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	nd.st, nd.node, nd.cancel, nd.done = st, node, cancel, make(chan error, 1)
	go func() { nd.done <- node.Run(ctx) }()
}

// stop ends node i's loop and closes its transport and store, as a crash
// would leave them (no goodbye to the peers).
func (c *e2eCluster) stop(i int) {
	nd := c.nodes[i]
	if nd.cancel == nil {
		return
	}
	nd.cancel()
	if err := <-nd.done; err != nil {
		c.t.Errorf("node %s: %v", c.ids[i], err)
	}
	_ = nd.tr.Close()
	if err := nd.st.Close(); err != nil {
		c.t.Errorf("close the store of %s: %v", c.ids[i], err)
	}
	nd.cancel = nil
}

func (c *e2eCluster) startEnsemble(i int, bootstrap bool) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	spec := host.Spec{Name: e2eEnsemble, Members: c.ids, FSM: kv.New(), Bootstrap: bootstrap}
	if err := c.nodes[i].node.Start(ctx, spec); err != nil {
		c.t.Fatal(err)
	}
}

func (c *e2eCluster) status(i int) ensemble.Status {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.nodes[i].node.Status(ctx, e2eEnsemble)
	if err != nil {
		c.t.Fatal(err)
	}
	return st
}

// eventually polls f until it returns nil, failing the test after 20 s.
func (c *e2eCluster) eventually(what string, f func() error) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
}

// primary returns the running node that is primary of a normal view.
func (c *e2eCluster) primary() int {
	c.t.Helper()
	p := -1
	c.eventually("a primary", func() error {
		for i, nd := range c.nodes {
			if nd.cancel != nil && c.status(i).IsPrimary {
				p = i
				return nil
			}
		}
		return errors.New("no primary")
	})
	return p
}

// put writes key=val through whichever running node accepts it.
func (c *e2eCluster) put(key, val string) {
	c.t.Helper()
	c.eventually("put "+key, func() error {
		err := errors.New("no node is running")
		for _, nd := range c.nodes {
			if nd.cancel == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			var res []byte
			res, err = nd.node.Propose(ctx, e2eEnsemble, kv.PutCmd([]byte(key), []byte(val)))
			cancel()
			if err == nil {
				_, err = kv.DecodeResult(res)
				return err
			}
		}
		return err
	})
}

// read reads key from node i in mode, retrying while the node cannot
// answer; a missing key reads as "".
func (c *e2eCluster) read(i int, key string, mode ensemble.ReadMode) string {
	c.t.Helper()
	var out string
	c.eventually("read "+key, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		res, err := c.nodes[i].node.Read(ctx, e2eEnsemble, kv.GetQuery([]byte(key)), mode)
		if err != nil {
			return err
		}
		r, err := kv.DecodeResult(res)
		out = string(r.Value)
		return err
	})
	return out
}
