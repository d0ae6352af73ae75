// Command blackboard shares one replicated key-value store, hasup's built-in
// kv FSM, between several writers and a display, on a four-node cluster
// inside this one process.
//
// The ensemble has three replicas, on n1 (its first primary), n2 and n4.
// Writers alice, bob and carol work through n1, n2 and n3: n3 holds no
// replica, and its requests are forwarded to the primary like any other.
// Each writer posts notes under its own prefix with compare-and-swap
// against revision 0 ("create, only if absent", so a retried post can never
// post twice or overwrite), and reads everyone's notes with a linearizable
// list by prefix. Two sessions then race to edit one note at the same
// revision: one wins, the other gets a conflict. Last, a display on n4
// reads the board from n4's own replica (a stale read: local and cheap, but
// it may miss the newest notes) while alice posts more and bob checks with
// linearizable reads, which never miss one.
//
//	go run ./examples/blackboard
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/examples/internal/localcluster"
	"github.com/hasup/hasup/fsm/kv"
	"github.com/hasup/hasup/supervisor"
)

const (
	// name is the ensemble's name.
	name hasup.EnsembleName = "blackboard"
	// prefix is where every note lives: prefix + writer + "/" + number.
	prefix = "board/"
	// notesEach is how many notes each writer posts at first.
	notesEach = 3
	// morePosts is how many notes alice posts while the display reads.
	morePosts = 20
	// refreshInterval is how often the readers read the board at most.
	refreshInterval = time.Millisecond
	// pageSize is how many keys one list query returns at most.
	pageSize = 100
)

// The people at the board: writer i works through node i, the display
// through the last node.
var writers = []string{"alice", "bob", "carol"}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "blackboard:", err)
		os.Exit(1)
	}
}

// run is the whole program; ctx bounds it.
func run(ctx context.Context, out io.Writer) (err error) {
	c, err := localcluster.Start(ctx, len(writers)+1, nil)
	if err != nil {
		return fmt.Errorf("start the cluster: %w", err)
	}
	defer func() { err = errors.Join(err, c.Close()) }()
	fmt.Fprintf(out, "cluster formed: %s\n", localcluster.IDs(c.Nodes))
	display := len(c.Nodes) - 1

	// Three replicas: on the first two writers' nodes and the display's.
	members := []hasup.NodeID{c.Nodes[0].ID(), c.Nodes[1].ID(), c.Nodes[display].ID()}
	e, err := c.StartEnsemble(ctx, 0, supervisor.Spec{Name: name, Type: "kv", Replicas: 3, Nodes: members})
	if err != nil {
		return err
	}
	leader, err := e.Leader(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "ensemble %q (type kv) on %v, leader %s\n", name, e.Members(), leader)
	handles := make([]*supervisor.Ensemble, len(c.Nodes))
	for i := range c.Nodes {
		if handles[i], err = c.Lookup(ctx, i, name); err != nil {
			return err
		}
	}

	if err := postAll(ctx, handles); err != nil {
		return err
	}
	for i, w := range writers {
		notes, err := list(ctx, handles[i], ensemble.ReadLinearizable)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s (on %s) posted %d notes and reads %d on the board\n", w, c.Nodes[i].ID(), notesEach, len(notes))
	}
	notes, err := list(ctx, handles[0], ensemble.ReadLinearizable)
	if err != nil {
		return err
	}
	for _, n := range notes {
		fmt.Fprintf(out, "  %-15s %s\n", n.Key, n.Value)
	}

	if err := raceEdits(ctx, out, c, handles); err != nil {
		return err
	}
	return staleReads(ctx, out, c.Nodes[display].ID(), handles[0], handles[1], handles[display])
}

// postAll has every writer post its notes, all writers at once.
func postAll(ctx context.Context, handles []*supervisor.Ensemble) error {
	var wg sync.WaitGroup
	errs := make([]error, len(writers))
	for i, w := range writers {
		wg.Go(func() {
			for n := 1; n <= notesEach && errs[i] == nil; n++ {
				_, errs[i] = post(ctx, handles[i], noteKey(w, n), noteText(w, n))
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// raceEdits has two sessions, on two nodes, edit one note at once, both
// expecting the revision they read: compare-and-swap lets exactly one win.
func raceEdits(ctx context.Context, out io.Writer, c *localcluster.Cluster, handles []*supervisor.Ensemble) error {
	key := noteKey(writers[0], 1)
	cur, err := get(ctx, handles[0], key)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() {
			value := fmt.Sprintf("%s, edited on %s", cur.Value, c.Nodes[i].ID())
			res, err := handles[i].Propose(ctx, kv.CASCmd([]byte(key), []byte(value), cur.ModRevision))
			if err == nil {
				_, err = kv.DecodeResult(res)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	conflicts := 0
	for _, err := range errs {
		switch {
		case errors.Is(err, kv.ErrCASConflict):
			conflicts++
		case err != nil:
			return err
		}
	}
	after, err := get(ctx, handles[0], key)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s and %s edit %s at once, both at revision %d: %d won, %d got a conflict\n",
		c.Nodes[0].ID(), c.Nodes[1].ID(), key, cur.ModRevision, len(errs)-conflicts, conflicts)
	fmt.Fprintf(out, "  %-15s %s\n", key, after.Value)
	if conflicts != 1 {
		return fmt.Errorf("%d of two racing edits conflicted, want 1", conflicts)
	}
	return nil
}

// staleReads has alice post more notes while the display reads the board
// over and over from its node's own replica (a stale read: no round trip,
// no quorum, but that replica applies a note only once it hears that the
// note committed, with the primary's next message) and bob reads it
// linearizably (the primary confirms its view with a quorum and answers
// with every acknowledged write). A read "misses" a note if the note's post
// was acknowledged before the read began.
func staleReads(ctx context.Context, out io.Writer, displayNode hasup.NodeID, alice, bob, display *supervisor.Ensemble) error {
	before, err := list(ctx, alice, ensemble.ReadLinearizable)
	if err != nil {
		return err
	}
	var acked atomic.Int64 // notes on the board whose post was acknowledged
	acked.Store(int64(len(before)))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stale, fresh readStats
	wg.Go(func() { stale.readUntil(ctx, stop, display, ensemble.ReadStale, &acked) })
	wg.Go(func() { fresh.readUntil(ctx, stop, bob, ensemble.ReadLinearizable, &acked) })
	for n := notesEach + 1; n <= notesEach+morePosts && err == nil; n++ {
		if _, err = post(ctx, alice, noteKey(writers[0], n), noteText(writers[0], n)); err == nil {
			acked.Add(1)
		}
	}
	close(stop)
	wg.Wait()
	if err := errors.Join(err, stale.err, fresh.err); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s posts %d more notes; meanwhile\n", writers[0], morePosts)
	fmt.Fprintf(out, "  the display's stale reads (%s's own replica): %d of %d missed a note (by at most %d)\n",
		displayNode, stale.missed, stale.reads, stale.maxMissed)
	fmt.Fprintf(out, "  %s's linearizable reads: %d of %d missed a note\n", writers[1], fresh.missed, fresh.reads)
	if fresh.missed > 0 {
		return fmt.Errorf("%d linearizable reads missed an acknowledged note", fresh.missed)
	}
	// The display's replica catches up with the primary's next message.
	want := int(acked.Load())
	err = localcluster.Poll(ctx, func() error {
		notes, err := list(ctx, display, ensemble.ReadStale)
		if err == nil && len(notes) != want {
			err = fmt.Errorf("a stale read has %d notes, want %d", len(notes), want)
		}
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  a stale read a little later: all %d notes\n", want)
	return nil
}

// readStats counts reads of the board and the notes they missed.
type readStats struct {
	reads, missed, maxMissed int
	err                      error
}

// readUntil lists the board in mode, at most once per refreshInterval,
// until stop is closed, and counts the reads that missed a note.
func (s *readStats) readUntil(ctx context.Context, stop <-chan struct{}, h *supervisor.Ensemble, mode ensemble.ReadMode, acked *atomic.Int64) {
	refresh := time.NewTicker(refreshInterval)
	defer refresh.Stop()
	for {
		select {
		case <-stop:
			return
		case <-refresh.C:
		}
		want := int(acked.Load())
		notes, err := list(ctx, h, mode)
		if err != nil {
			s.err = err
			return
		}
		s.reads++
		if miss := want - len(notes); miss > 0 {
			s.missed++
			s.maxMissed = max(s.maxMissed, miss)
		}
	}
}

// post creates key with value, once. The CAS against revision 0 fails if
// the key exists, so the retry after an ambiguous failure (no primary
// answered in time: the first try may or may not have run) cannot post
// twice; a conflict on a retry, with our own value in place, means the
// first try did run. It returns the key's revision.
func post(ctx context.Context, h *supervisor.Ensemble, key, value string) (uint64, error) {
	for retry := false; ; retry = true {
		res, err := h.Propose(ctx, kv.CASCmd([]byte(key), []byte(value), 0))
		if (errors.Is(err, supervisor.ErrNoQuorum) || errors.Is(err, ensemble.ErrViewChanged)) && ctx.Err() == nil {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("post %s: %w", key, err)
		}
		r, err := kv.DecodeResult(res)
		if retry && errors.Is(err, kv.ErrCASConflict) {
			if got, gerr := get(ctx, h, key); gerr == nil && string(got.Value) == value {
				return got.ModRevision, nil
			}
		}
		if err != nil {
			return 0, fmt.Errorf("post %s: %w", key, err)
		}
		return r.ModRevision, nil
	}
}

// get reads one key linearizably.
func get(ctx context.Context, h *supervisor.Ensemble, key string) (kv.Result, error) {
	res, err := h.Read(ctx, kv.GetQuery([]byte(key)), ensemble.ReadLinearizable)
	if err != nil {
		return kv.Result{}, fmt.Errorf("get %s: %w", key, err)
	}
	return kv.DecodeResult(res)
}

// list reads every note in the given mode, a page at a time. (Each page is
// a read of its own, so the pages of a long list may be from different
// moments; this board fits in one.)
func list(ctx context.Context, h *supervisor.Ensemble, mode ensemble.ReadMode) ([]kv.Entry, error) {
	var all []kv.Entry
	var after []byte
	for {
		res, err := h.Read(ctx, kv.ListQuery([]byte(prefix), after, pageSize), mode)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		page, err := kv.DecodeList(res)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Entries...)
		if !page.More || len(page.Entries) == 0 {
			return all, nil
		}
		after = page.Entries[len(page.Entries)-1].Key
	}
}

// noteKey is the key of writer's note n, noteText its first text.
func noteKey(writer string, n int) string { return fmt.Sprintf("%s%s/%d", prefix, writer, n) }

func noteText(writer string, n int) string { return fmt.Sprintf("%s's note %d", writer, n) }
