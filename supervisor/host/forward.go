package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
)

// Forwarding: a caller on one node reaches an ensemble's primary on
// another through the node-to-node transport, so that the one connection
// per node pair (and its TLS) carries client traffic too. Two message
// types, outside the range the replicas use, are handled by the host and
// never reach a replica:
//
//   - forward: Ensemble, Nonce (the request's ID at the sender), Round (1:
//     propose, 2: read, 3: status, 4: propose as a client's request, with
//     Op the client and Commit the request number), Op (the read mode),
//     Data (command or query).
//   - forward reply: Nonce (echoed), Op (an error code, 0 for success),
//     Data (the result, or the error's text).
//
// The receiving node runs the request as if called locally (Propose or
// Read, bounded by ForwardTimeout and by ForwardMax requests at once) and
// answers. A reply lost on the way looks like a timeout to the caller: a
// write may then have happened or not, as with any timeout.
const (
	msgForward      ensemble.MsgType = 200
	msgForwardReply ensemble.MsgType = 201

	forwardPropose = 1
	forwardRead    = 2
	forwardStatus  = 3
	forwardAs      = 4 // ProposeAs: Op is the client, Commit the request number

	// ForwardMax bounds the forwarded requests a node runs at once; beyond
	// it a forward is refused with ErrBusy.
	ForwardMax = 1024
	// ForwardTimeout bounds how long a node works on a forwarded request.
	ForwardTimeout = 10 * time.Second
)

// Errors that travel as codes; any other error travels as its text.
var forwardErrors = []error{
	nil, ensemble.ErrNotPrimary, ErrNotFound, ensemble.ErrViewChanged, ensemble.ErrSessionExpired,
	ensemble.ErrBusy, ensemble.ErrNoLease, ensemble.ErrRecovering, ensemble.ErrReconfiguring,
	ensemble.ErrTooLarge, ErrStopped, context.DeadlineExceeded,
	ensemble.ErrStaleRequest, ensemble.ErrReplyNotKept, // appended: codes never change
}

const errOther = 255

func errorCode(err error) uint64 {
	for i, e := range forwardErrors {
		if e != nil && errors.Is(err, e) {
			return uint64(i)
		}
	}
	return errOther
}

// forwarder tracks this node's forwarded requests awaiting replies.
type forwarder struct {
	mu      sync.Mutex
	next    uint64 // from a random start: a reply meant for an earlier run of this node matches nothing
	waiting map[uint64]forwardWait
	running chan struct{} // a slot per forwarded request being served here
}

// forwardWait is a forwarded request awaiting its reply, which must come
// from the node and ensemble it went to.
type forwardWait struct {
	to   hasup.NodeID
	name hasup.EnsembleName
	ch   chan ensemble.Message
}

func newForwarder() *forwarder {
	return &forwarder{next: entropy(), waiting: map[uint64]forwardWait{}, running: make(chan struct{}, ForwardMax)}
}

// ForwardPropose runs Propose for name on node to.
func (n *Node) ForwardPropose(ctx context.Context, to hasup.NodeID, name hasup.EnsembleName, cmd []byte) ([]byte, error) {
	return n.forward(ctx, to, ensemble.Message{Ensemble: name, Round: forwardPropose, Data: cmd})
}

// ForwardStatus returns the status of node to's replica of name.
func (n *Node) ForwardStatus(ctx context.Context, to hasup.NodeID, name hasup.EnsembleName) (ensemble.Status, error) {
	var st ensemble.Status
	b, err := n.forward(ctx, to, ensemble.Message{Ensemble: name, Round: forwardStatus})
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("status of %s on %s: %w", name, to, err)
	}
	return st, nil
}

// ForwardProposeAs runs ProposeAs for name on node to.
func (n *Node) ForwardProposeAs(ctx context.Context, to hasup.NodeID, name hasup.EnsembleName, client, request uint64, cmd []byte) ([]byte, error) {
	return n.forward(ctx, to, ensemble.Message{Ensemble: name, Round: forwardAs, Op: client, Commit: request, Data: cmd})
}

// ForwardRead runs Read for name on node to.
func (n *Node) ForwardRead(ctx context.Context, to hasup.NodeID, name hasup.EnsembleName, q []byte, mode ensemble.ReadMode) ([]byte, error) {
	return n.forward(ctx, to, ensemble.Message{Ensemble: name, Round: forwardRead, Op: uint64(mode), Data: q})
}

func (n *Node) forward(ctx context.Context, to hasup.NodeID, m ensemble.Message) ([]byte, error) {
	if to == n.cfg.ID {
		return n.serveForward(ctx, m)
	}
	f := n.fwd
	ch := make(chan ensemble.Message, 1)
	f.mu.Lock()
	f.next++
	id := f.next
	f.waiting[id] = forwardWait{to: to, name: m.Ensemble, ch: ch}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.waiting, id)
		f.mu.Unlock()
	}()
	m.Type, m.From, m.To, m.Nonce = msgForward, n.cfg.ID, to, id
	n.cfg.Transport.Send(m)
	select {
	case rp := <-ch:
		if rp.Op == 0 {
			return rp.Data, nil
		}
		if rp.Op < uint64(len(forwardErrors)) {
			return nil, fmt.Errorf("ensemble %s on %s: %w", m.Ensemble, to, forwardErrors[rp.Op])
		}
		return nil, fmt.Errorf("ensemble %s on %s: %s", m.Ensemble, to, rp.Data)
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-n.done:
		return nil, ErrStopped
	}
}

// serveForward runs a forwarded request here.
func (n *Node) serveForward(ctx context.Context, m ensemble.Message) ([]byte, error) {
	switch m.Round {
	case forwardPropose:
		return n.Propose(ctx, m.Ensemble, m.Data)
	case forwardRead:
		return n.Read(ctx, m.Ensemble, m.Data, ensemble.ReadMode(m.Op))
	case forwardAs:
		return n.ProposeAs(ctx, m.Ensemble, m.Op, m.Commit, m.Data)
	case forwardStatus:
		st, err := n.Status(ctx, m.Ensemble)
		if err != nil {
			return nil, err
		}
		return json.Marshal(st)
	}
	return nil, fmt.Errorf("host: unknown forwarded request kind %d", m.Round)
}

// onForward handles a forwarding message on the loop: a reply goes to its
// waiter; a request runs in a goroutine of its own (it blocks on the loop).
func (n *Node) onForward(m ensemble.Message) {
	f := n.fwd
	if m.Type == msgForwardReply {
		f.mu.Lock()
		w, ok := f.waiting[m.Nonce]
		f.mu.Unlock()
		if ok && w.to == m.From && w.name == m.Ensemble {
			select {
			case w.ch <- m:
			default: // a duplicate
			}
		}
		return
	}
	reply := ensemble.Message{Type: msgForwardReply, From: n.cfg.ID, To: m.From, Ensemble: m.Ensemble, Nonce: m.Nonce}
	select {
	case f.running <- struct{}{}:
	default:
		reply.Op = errorCode(ensemble.ErrBusy)
		n.cfg.Transport.Send(reply)
		return
	}
	go func() {
		defer func() { <-f.running }()
		ctx, cancel := context.WithTimeout(context.Background(), ForwardTimeout)
		defer cancel()
		res, err := n.serveForward(ctx, m)
		if err != nil {
			reply.Op, reply.Data = errorCode(err), []byte(err.Error())
		} else {
			reply.Data = res
		}
		n.cfg.Transport.Send(reply)
	}()
}
