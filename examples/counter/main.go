// Command counter runs a replicated FSM of its own, a counter (see
// counter.go), on a three-node hasup cluster inside this one process.
//
// It registers the FSM type through supervisor.Config.FSMs, starts an
// ensemble of three replicas, and adds to the counter from several
// goroutines through every node's handle at once: whichever node a Propose
// is sent from, the ensemble's primary orders it, so no add is lost. Then it
// stops the leader's node; Propose finds the new primary by itself, the
// survivors add some more, and the count is still exact. The stopped node
// restarts from its data, and Watch and Leader report the new view.
//
//	go run ./examples/counter
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/examples/internal/localcluster"
	"github.com/hasup/hasup/fsm"
	"github.com/hasup/hasup/supervisor"
)

const (
	// name is the ensemble's name, fsmType the FSM type it runs.
	name    hasup.EnsembleName = "counter"
	fsmType                    = "counter"
	// writersPerNode goroutines on every node each add 1, addsEach times.
	writersPerNode = 2
	addsEach       = 20
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "counter:", err)
		os.Exit(1)
	}
}

// run is the whole program; ctx bounds it.
func run(ctx context.Context, out io.Writer) (err error) {
	fsms := map[string]func() fsm.FSM{fsmType: func() fsm.FSM { return NewCounter() }}
	c, err := localcluster.Start(ctx, 3, fsms)
	if err != nil {
		return fmt.Errorf("start the cluster: %w", err)
	}
	defer func() { err = errors.Join(err, c.Close()) }()
	fmt.Fprintf(out, "cluster formed: %s\n", localcluster.IDs(c.Nodes))

	e, err := c.StartEnsemble(ctx, 0, supervisor.Spec{Name: name, Type: fsmType, Replicas: 3})
	if err != nil {
		return err
	}
	leader, err := e.Leader(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "ensemble %q (type %s) on %v, leader %s\n", name, fsmType, e.Members(), leader)

	// A handle from every node: Propose and Read work from any of them.
	handles := make([]*supervisor.Ensemble, len(c.Nodes))
	for i := range c.Nodes {
		if handles[i], err = c.Lookup(ctx, i, name); err != nil {
			return err
		}
	}

	// Watch from a node that will stay up. Watch sends the current status
	// at once, then each change of view, primary or members.
	watcher := slices.IndexFunc(c.Nodes, func(s *supervisor.Supervisor) bool { return s.ID() != leader })
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	anyStatus := func(supervisor.Status) bool { return true }
	if err := printNextStatus(watchCtx, out, c.Nodes[watcher].ID(), handles[watcher].Watch(watchCtx), anyStatus); err != nil {
		return err
	}

	want, err := addFromAll(ctx, out, c.Nodes, handles, 0)
	if err != nil {
		return err
	}

	// Fail over: stop the leader's node. The others see it leave, the
	// ensemble changes view, and a backup becomes primary with every
	// acknowledged add; Propose finds it by itself.
	//
	// The watch ends first: while a member's node is down, Watch (and
	// Status, and Leader) wait on that member instead of asking the next
	// one. See "Known problem" in README.md.
	stopWatch()
	fmt.Fprintf(out, "stopping %s, the leader\n", leader)
	li := c.Index(leader)
	if err := c.StopNode(li); err != nil {
		return fmt.Errorf("stop %s: %w", leader, err)
	}
	survivors := slices.Delete(slices.Clone(c.Nodes), li, li+1)
	if want, err = addFromAll(ctx, out, survivors, slices.Delete(slices.Clone(handles), li, li+1), want); err != nil {
		return err
	}

	// The stopped node comes back from its data dir (a restart is a long
	// pause) and catches up as a backup in the new view.
	fmt.Fprintf(out, "restarting %s\n", leader)
	if err := c.RestartNode(ctx, li); err != nil {
		return fmt.Errorf("restart %s: %w", leader, err)
	}
	if handles[li], err = c.Lookup(ctx, li, name); err != nil {
		return err
	}
	// Until the restarted node hears of the new view, it still believes it
	// leads the old one, and a Status that asks it first may say so: wait
	// for a status with another primary.
	watchCtx, stopWatch = context.WithCancel(ctx)
	defer stopWatch()
	notOld := func(st supervisor.Status) bool { return st.Primary != "" && st.Primary != leader }
	if err := printNextStatus(watchCtx, out, c.Nodes[watcher].ID(), handles[watcher].Watch(watchCtx), notOld); err != nil {
		return err
	}
	old := leader
	err = localcluster.Poll(ctx, func() error {
		var err error
		if leader, err = handles[li].Leader(ctx); err == nil && leader == old {
			err = fmt.Errorf("%s still reports itself primary", old)
		}
		return err
	})
	if err != nil {
		return err
	}
	n, err := count(ctx, handles[li])
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "leader %s, count %d (asked through %s)\n", leader, n, c.Nodes[li].ID())
	if n != want {
		return fmt.Errorf("count %d after the restart, want %d", n, want)
	}
	return nil
}

// addFromAll runs writersPerNode goroutines on each node, each adding 1
// addsEach times through that node's handle, then reads the count and
// checks that it is want plus every add. It returns the new count.
func addFromAll(ctx context.Context, out io.Writer, nodes []*supervisor.Supervisor, handles []*supervisor.Ensemble, want int64) (int64, error) {
	var wg sync.WaitGroup
	errs := make(chan error, len(handles)*writersPerNode)
	for _, h := range handles {
		for range writersPerNode {
			wg.Go(func() {
				for range addsEach {
					res, err := h.Propose(ctx, AddCmd(1))
					if err == nil {
						_, err = DecodeResult(res)
					}
					if err != nil {
						// After ErrNoQuorum an add may or may not have run:
						// a counter cannot retry it blindly, so it stops.
						errs <- fmt.Errorf("add: %w", err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	fmt.Fprintf(out, "%d writers on %s added 1, %d times each\n", len(handles)*writersPerNode, localcluster.IDs(nodes), addsEach)
	want += int64(len(handles) * writersPerNode * addsEach)
	n, err := count(ctx, handles[len(handles)-1])
	if err != nil {
		return 0, err
	}
	fmt.Fprintf(out, "count %d\n", n)
	if n != want {
		return 0, fmt.Errorf("count %d, want %d", n, want)
	}
	return n, nil
}

// count reads the counter linearizably: the answer includes every add
// acknowledged before the read began.
func count(ctx context.Context, h *supervisor.Ensemble) (int64, error) {
	res, err := h.Read(ctx, GetCmd(), ensemble.ReadLinearizable)
	if err != nil {
		return 0, err
	}
	return DecodeResult(res)
}

// printNextStatus prints the first status from watch that ok accepts.
func printNextStatus(ctx context.Context, out io.Writer, from hasup.NodeID, watch <-chan supervisor.Status, ok func(supervisor.Status) bool) error {
	for {
		select {
		case st, open := <-watch:
			if !open {
				return errors.New("watch ended")
			}
			if ok(st) {
				fmt.Fprintf(out, "watch on %s: epoch %d view %d primary %s members %v\n", from, st.Epoch, st.View, st.Primary, st.Members)
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("watch: %w", ctx.Err())
		}
	}
}
