package detector

import (
	"cmp"
	"slices"

	"github.com/hasup/hasup"
)

// pendingQueue holds the member states not yet handed to the Events
// channel: at most one entry per member, holding its latest state.
//
// Design: Serf's events are drained into it at once, and the publisher
// pops from it into the bounded output channel. While the consumer keeps
// up, each entry is popped as soon as it is put and the queue is empty.
// While the output is full, a second state for a member still pending
// replaces the first in place (latest state wins), so the queue never holds
// more entries than there are members and no member's final state is lost.
// Entries leave in the order they first became pending; members that became
// pending together (one batch) leave in ID order, so the output order is a
// deterministic function of the input. Rejected alternatives: dropping on
// overflow (loses a member's final state) and an unbounded queue (memory
// grows with a slow consumer, not with the cluster).
//
// Not safe for concurrent use; the detector guards it with its mutex.
type pendingQueue struct {
	order  []hasup.NodeID                // pending members, first-pending first
	latest map[hasup.NodeID]hasup.Member // each pending member's latest state
}

func newPendingQueue() *pendingQueue {
	return &pendingQueue{latest: make(map[hasup.NodeID]hasup.Member)}
}

// put records a batch of member states that became known together. Within
// the batch, a later state for the same member wins.
func (q *pendingQueue) put(batch ...hasup.Member) {
	batch = slices.Clone(batch)
	slices.SortStableFunc(batch, func(a, b hasup.Member) int { return cmp.Compare(a.ID, b.ID) })
	for _, m := range batch {
		if _, pending := q.latest[m.ID]; !pending {
			q.order = append(q.order, m.ID)
		}
		q.latest[m.ID] = m
	}
}

// pop removes and returns the member that has been pending longest.
func (q *pendingQueue) pop() (hasup.Member, bool) {
	if len(q.order) == 0 {
		return hasup.Member{}, false
	}
	id := q.order[0]
	q.order = slices.Delete(q.order, 0, 1)
	m, ok := q.latest[id]
	if !ok {
		panic("detector: pending queue order names member " + string(id) + " with no state")
	}
	delete(q.latest, id)
	return m, true
}

// len returns the number of pending members.
func (q *pendingQueue) len() int { return len(q.order) }
