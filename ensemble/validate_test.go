package ensemble

import (
	"errors"
	"reflect"
	"testing"
)

func TestMalformedPeerMessagesAreDroppedAndCounted(t *testing.T) {
	e := func(op uint64) Entry { return Entry{Op: op, Kind: EntryRequest} }
	for _, tc := range []struct {
		name string
		m    Message
	}{
		{"prepare entry op 0", Message{Type: MsgPrepare, Entries: []Entry{e(0)}}},
		{"prepare entries not dense", Message{Type: MsgPrepare, Entries: []Entry{e(1), e(3)}}},
		{"prepare entry of unknown kind", Message{Type: MsgPrepare, Entries: []Entry{{Op: 1, Kind: 9}}}},
		{"doviewchange from its own view", Message{Type: MsgDoViewChange, View: 3, LastNormalView: 3, LogStart: 1}},
		{"view beyond 2^32", Message{Type: MsgCommit, View: 1 << 32}},
		{"checkpoint chunk of an empty checkpoint", Message{Type: MsgNewState, CheckpointOp: 4, Total: 0}},
		{"startview log not ending at op", Message{Type: MsgStartView, View: 3, LogStart: 1, Op: 5, Entries: []Entry{e(1)}}},
		{"startview log start 0", Message{Type: MsgStartView, View: 3, LogStart: 0, Op: 0}},
		{"doviewchange entries off their ops", Message{Type: MsgDoViewChange, View: 3, LogStart: 2, Op: 3, Entries: []Entry{e(3), e(4)}}},
		{"doviewchange commit beyond op", Message{Type: MsgDoViewChange, View: 3, LogStart: 1, Op: 0, Commit: 4}},
		{"doviewchange normal view beyond view", Message{Type: MsgDoViewChange, View: 3, LastNormalView: 4, LogStart: 1}},
		{"newstate chunk beyond total", Message{Type: MsgNewState, CheckpointOp: 4, Offset: 10, Total: 12, Data: make([]byte, 3)}},
		{"newstate offset beyond total", Message{Type: MsgNewState, CheckpointOp: 4, Offset: 13, Total: 12}},
		{"newstate entries beyond sender op", Message{Type: MsgNewState, LogStart: 1, Op: 1, Entries: []Entry{e(1), e(2)}}},
		{"unknown type", Message{Type: 99}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := validate(tc.m); !errors.Is(err, errMalformed) {
				t.Fatalf("validate = %v, want a malformed-message error", err)
			}
			c := newCluster(t, 3).boot()
			r := c.nodes["n1"].r
			before := r.Status()
			m := tc.m
			m.Ensemble, m.From, m.To = "e", "n0", "n1"
			r.Step(m)
			after := r.Status()
			if after.Rejected != before.Rejected+1 {
				t.Fatalf("Rejected %d -> %d, want one more", before.Rejected, after.Rejected)
			}
			after.Rejected, after.LastRejection = before.Rejected, before.LastRejection
			if !reflect.DeepEqual(after, before) {
				t.Fatalf("a malformed message changed the replica: %+v -> %+v", before, after)
			}
		})
	}
}

func TestWellFormedMessagesPassValidation(t *testing.T) {
	e := func(op uint64) Entry { return Entry{Op: op, Kind: EntryRequest, View: 1} }
	for _, m := range []Message{
		{Type: MsgPrepare, View: 1, Entries: []Entry{e(4), e(5)}},
		{Type: MsgStartView, View: 2, LogStart: 4, Op: 5, Commit: 5, Entries: []Entry{e(4), e(5)}},
		{Type: MsgDoViewChange, View: 2, LastNormalView: 1, LogStart: 6, Op: 5},
		{Type: MsgNewState, View: 1, LogStart: 4, Op: 9, Entries: []Entry{e(4), e(5)}},
		{Type: MsgNewState, CheckpointOp: 8, Offset: 4, Total: 8, Data: make([]byte, 4)},
	} {
		if err := validate(m); err != nil {
			t.Errorf("validate(%v) = %v", m, err)
		}
	}
}
