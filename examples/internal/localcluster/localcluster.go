// Package localcluster runs a small hasup cluster inside one process, for
// the examples: real nodes with real Serf on loopback (the local
// failure-detection profile), real TCP between them and real bbolt files in
// a temporary directory. It is what supervisor's own tests do, written out
// once so that each example's main.go can be about its subject.
//
// A production program runs one Supervisor per process and per machine;
// nothing here is needed there but the supervisor.Config it builds.
package localcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/detector"
	"github.com/hasup/hasup/fsm"
	"github.com/hasup/hasup/supervisor"
)

// pollInterval is how often the waits below look again at a condition.
const pollInterval = 20 * time.Millisecond

// Cluster is a set of nodes running in this process. Close stops them and
// removes their data.
type Cluster struct {
	// Nodes are the supervisors, named n1, n2, ... in order.
	Nodes []*supervisor.Supervisor
	dir   string
	cfgs  []supervisor.Config
	runs  []*run
}

// run is one node's Run call.
type run struct {
	cancel context.CancelFunc
	done   chan error // receives Run's result, once
	err    error      // Run's result, after stopped
	stop   bool       // stopped already
}

// Start starts n nodes that form one cluster (every node joins the first,
// and the cluster ensemble forms once all n see each other), registering
// the FSM types in fsms on each, and waits until every node reads a
// registry that lists all n nodes alive, or ctx ends. The nodes run until
// Close; ctx only bounds the wait.
func Start(ctx context.Context, n int, fsms map[string]func() fsm.FSM) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "hasup-example-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, Nodes: make([]*supervisor.Supervisor, n), runs: make([]*run, n)}
	for i := range n {
		c.cfgs = append(c.cfgs, supervisor.Config{
			NodeName:        hasup.NodeID(fmt.Sprintf("n%d", i+1)),
			DataDir:         filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			Profile:         detector.ProfileLocal, // tight timings: every node is on this host
			BootstrapExpect: n,
			FSMs:            fsms,
			// SerfPort and RPCPort 0: free ports, so examples can run side by side.
		})
		if err := c.startNode(i); err != nil {
			return nil, errors.Join(err, c.Close())
		}
	}
	if err := c.waitFormed(ctx); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	return c, nil
}

// startNode starts node i from its data dir, joining the first other node
// that runs.
func (c *Cluster) startNode(i int) error {
	cfg := c.cfgs[i]
	for j, r := range c.runs {
		if j != i && r != nil && !r.stop {
			cfg.Join = []string{c.Nodes[j].SerfAddr()}
			break
		}
	}
	s, err := supervisor.New(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	c.Nodes[i], c.runs[i] = s, r
	return nil
}

// RestartNode starts node i again, from the data its last run left, and
// waits until every running node reads a registry that lists it alive, or
// ctx ends. Node i must have been stopped.
func (c *Cluster) RestartNode(ctx context.Context, i int) error {
	if !c.runs[i].stop {
		return fmt.Errorf("localcluster: %s is running", c.Nodes[i].ID())
	}
	if err := c.startNode(i); err != nil {
		return err
	}
	return c.waitFormed(ctx)
}

// waitFormed waits until every running node reads a registry that lists
// the cluster ensemble and every running node alive.
func (c *Cluster) waitFormed(ctx context.Context) error {
	return Poll(ctx, func() error {
		for _, s := range c.running() {
			reg, ok := s.Registry()
			if !ok {
				return fmt.Errorf("%s has not read the registry", s.ID())
			}
			if _, ok := reg.Ensemble(supervisor.ClusterEnsemble); !ok {
				return fmt.Errorf("%s: the cluster ensemble is not registered", s.ID())
			}
			for _, other := range c.running() {
				if n, ok := reg.Node(other.ID()); !ok || n.State != hasup.MemberAlive {
					return fmt.Errorf("%s does not list %s alive", s.ID(), other.ID())
				}
			}
		}
		return nil
	})
}

// running returns the nodes that run.
func (c *Cluster) running() []*supervisor.Supervisor {
	var out []*supervisor.Supervisor
	for i, r := range c.runs {
		if r != nil && !r.stop {
			out = append(out, c.Nodes[i])
		}
	}
	return out
}

// Lookup returns node i's handle on the ensemble name, waiting until node
// i has read a registry that lists it (each node reads the registry on its
// own schedule, so a node other than the creator may lag a little).
func (c *Cluster) Lookup(ctx context.Context, i int, name hasup.EnsembleName) (*supervisor.Ensemble, error) {
	var e *supervisor.Ensemble
	err := Poll(ctx, func() error {
		var err error
		e, err = c.Nodes[i].Lookup(name)
		return err
	})
	return e, err
}

// StartEnsemble starts an ensemble from node i (supervisor.Start) and
// returns node i's handle once the ensemble has a primary.
//
// Start has been seen to answer ErrExists, now and then, for an ensemble
// that its own call created (see ../../README.md). In the examples' fresh
// clusters nobody else creates ensembles, so ErrExists can only mean that,
// and StartEnsemble goes on with a handle from Lookup.
func (c *Cluster) StartEnsemble(ctx context.Context, i int, spec supervisor.Spec) (*supervisor.Ensemble, error) {
	e, err := c.Nodes[i].Start(ctx, spec)
	if !errors.Is(err, supervisor.ErrExists) {
		return e, err
	}
	if e, err = c.Lookup(ctx, i, spec.Name); err != nil {
		return nil, err
	}
	return e, Poll(ctx, func() error { _, err := e.Leader(ctx); return err })
}

// Index returns the index in Nodes of the node id, or -1.
func (c *Cluster) Index(id hasup.NodeID) int {
	for i, s := range c.Nodes {
		if s.ID() == id {
			return i
		}
	}
	return -1
}

// StopNode stops node i gracefully: it leaves the cluster (the others see
// it leave at once, rather than declare it failed after probing), then its
// Run ends. It returns Run's error.
func (c *Cluster) StopNode(i int) error {
	r := c.runs[i]
	if r.stop {
		return r.err
	}
	leaveErr := c.Nodes[i].Leave()
	r.cancel()
	r.err, r.stop = <-r.done, true
	return errors.Join(leaveErr, r.err)
}

// Close stops every node still running, gracefully and one at a time, and
// removes the nodes' data. It returns every problem it met.
func (c *Cluster) Close() error {
	var errs []error
	for i, r := range c.runs {
		if r != nil && !r.stop {
			errs = append(errs, c.StopNode(i))
		}
	}
	errs = append(errs, os.RemoveAll(c.dir))
	return errors.Join(errs...)
}

// Poll calls f until it returns nil, or ctx ends, in which case it returns
// f's last error with ctx's.
func Poll(ctx context.Context, f func() error) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// IDs lists the nodes' IDs, comma-separated.
func IDs(nodes []*supervisor.Supervisor) string {
	var ids []string
	for _, n := range nodes {
		ids = append(ids, string(n.ID()))
	}
	return strings.Join(ids, ", ")
}
