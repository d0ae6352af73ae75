package transport

import (
	"reflect"
	"testing"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
)

func TestMemDeliversInOrderPerPair(t *testing.T) {
	n := NewMemNetwork()
	ids := []hasup.NodeID{"a", "b", "c"}
	nodes := map[hasup.NodeID]*Mem{}
	for _, id := range ids {
		nodes[id] = n.Join(id, 1024)
		t.Cleanup(func() { nodes[id].Close() })
	}
	const count = 100
	for op := uint64(1); op <= count; op++ {
		for _, from := range ids {
			for _, to := range ids {
				if from != to {
					nodes[from].Send(msg(from, to, op))
				}
			}
		}
	}
	for _, to := range ids {
		next := map[hasup.NodeID]uint64{}
		for _, got := range receive(t, nodes[to].Receive(), 2*count) {
			next[got.From]++
			if want := msg(got.From, to, next[got.From]); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s got %v, want %v", to, got, want)
			}
		}
		if s := nodes[to].Stats(); s.Sent != 2*count || s.Received != 2*count || s.DroppedRecv+s.DroppedSend+s.Malformed != 0 {
			t.Errorf("%s stats %+v", to, s)
		}
	}
}

func TestMemReceiverDoesNotShareSenderMemory(t *testing.T) {
	n := NewMemNetwork()
	a, b := n.Join("a", 1), n.Join("b", 1)
	defer a.Close()
	defer b.Close()
	m := ensemble.Message{From: "a", To: "b", Data: []byte{1}, Entries: []ensemble.Entry{{Cmd: []byte{2}}}}
	a.Send(m)
	m.Data[0], m.Entries[0].Cmd[0] = 9, 9
	got := <-b.Receive()
	if got.Data[0] != 1 || got.Entries[0].Cmd[0] != 2 {
		t.Fatalf("receiver sees the sender's later writes: %+v", got)
	}
}

func TestMemCutIsOneWayUntilHeal(t *testing.T) {
	n := NewMemNetwork()
	a, b := n.Join("a", 8), n.Join("b", 8)
	defer a.Close()
	defer b.Close()

	n.Cut("a", "b")
	a.Send(msg("a", "b", 1))
	expectNothing(t, b.Receive())
	b.Send(msg("b", "a", 1))
	if got := receive(t, a.Receive(), 1)[0]; got.Op != 1 || got.From != "b" {
		t.Fatalf("b->a got %v", got)
	}

	n.Heal()
	a.Send(msg("a", "b", 2))
	if got := receive(t, b.Receive(), 1)[0]; got.Op != 2 {
		t.Fatalf("after Heal a->b got op %d, want 2 (op 1 was lost in the cut)", got.Op)
	}
}

func TestMemCountsDrops(t *testing.T) {
	n := NewMemNetwork()
	a, b := n.Join("a", 4), n.Join("b", 4)
	defer b.Close()
	for op := uint64(1); op <= 10; op++ {
		a.Send(msg("a", "b", op))
	}
	a.Send(msg("a", "nobody", 1))                                          // unknown node
	a.Send(ensemble.Message{Type: ensemble.MsgCommit, From: "c", To: "b"}) // forged From
	for i, got := range receive(t, b.Receive(), 4) {
		if got.Op != uint64(i+1) {
			t.Fatalf("message %d has op %d: the first four should be kept", i, got.Op)
		}
	}
	if s, want := a.Stats(), (Stats{Sent: 11, DroppedSend: 1}); s != want {
		t.Errorf("sender stats %+v, want %+v", s, want)
	}
	if s, want := b.Stats(), (Stats{Received: 4, DroppedRecv: 6, Malformed: 1}); s != want {
		t.Errorf("receiver stats %+v, want %+v", s, want)
	}

	a.Close()
	a.Send(msg("a", "b", 11))
	if s := a.Stats(); s.DroppedSend != 2 {
		t.Errorf("send after Close: DroppedSend %d, want 2", s.DroppedSend)
	}
	if _, ok := <-a.Receive(); ok {
		t.Errorf("Receive channel still open after Close")
	}
	b.Send(msg("b", "a", 1))
	if s := b.Stats(); s.DroppedSend != 1 {
		t.Errorf("send to a closed node: DroppedSend %d, want 1", s.DroppedSend)
	}

	a2 := n.Join("a", 4) // a restarted node joins again
	defer a2.Close()
	b.Send(msg("b", "a", 2))
	if got := receive(t, a2.Receive(), 1)[0]; got.Op != 2 {
		t.Fatalf("rejoined node got %v", got)
	}
}
