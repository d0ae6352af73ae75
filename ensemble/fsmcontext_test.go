package ensemble

import (
	"fmt"
	"slices"
	"testing"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/fsm"
)

// ctxRecord is what an FSM saw in the Context of one Apply.
type ctxRecord struct {
	op    uint64
	nanos int64
	rand  [2]uint64
	fence uint64
}

// ctxFSM is a logFSM that records the Context of every Apply.
type ctxFSM struct {
	*logFSM
	seen []ctxRecord
}

func (f *ctxFSM) Apply(ctx fsm.Context, cmd []byte) []byte {
	rec := ctxRecord{op: ctx.Op(), nanos: ctx.Time().UnixNano(), fence: ctx.Fence()}
	rec.rand = [2]uint64{ctx.Rand().Uint64(), ctx.Rand().Uint64()}
	if rec.nanos != ctx.UnixNanos() {
		panic("Time and UnixNanos disagree")
	}
	f.seen = append(f.seen, rec)
	return f.logFSM.Apply(ctx, cmd)
}

// The primary chooses one time and one seed per batch and ships them in
// the PREPARE (the design's "primary prediction"): every replica applies
// each op with the same Time(), Rand() stream and Fence(), whatever its own
// clock says; time never goes back along the log; the fence grows with the
// view.
func TestEveryReplicaAppliesAnOpWithTheSameContext(t *testing.T) {
	fsms := map[hasup.NodeID]*ctxFSM{}
	s := scenario(t, 3, func(c *cluster) {
		c.tune = func(id hasup.NodeID, cfg *Config) {
			f := &ctxFSM{logFSM: cfg.FSM.(*logFSM)}
			cfg.FSM = f
			fsms[id] = f
			// Clocks that disagree across nodes, and one that runs backwards.
			idx := int64(slices.Index(c.ids, id))
			var calls int64
			cfg.Clock = func() int64 {
				calls++
				if idx == 1 {
					return 5e18 - calls*1e9
				}
				return 1e18 + idx*1e15 + calls*1e9
			}
		}
	})
	for b := 0; b < 3; b++ {
		for i := 0; i < 3; i++ {
			s.mustSubmit(s.primary().r.cfg.ID, 0, 0, fmt.Sprintf("v0b%di%d", b, i))
		}
		s.settle()
	}
	s.nd(2).r.SuspectPrimary() // view 1: n1, with the backwards clock
	s.settle()
	for b := 0; b < 3; b++ {
		for i := 0; i < 2; i++ {
			s.mustSubmit(s.primary().r.cfg.ID, 0, 0, fmt.Sprintf("v1b%di%d", b, i))
		}
		s.settle()
	}
	s.requireConverged(20)
	ref := fsms[s.id(0)].seen
	if len(ref) != 15 {
		t.Fatalf("n0 applied %d ops, want 15", len(ref))
	}
	for _, id := range s.ids[1:] {
		if got := fsms[id].seen; !slices.Equal(got, ref) {
			t.Errorf("%s saw contexts\n%v\nn0 saw\n%v", id, got, ref)
		}
	}
	for i, rec := range ref {
		if rec.op != uint64(i+1) {
			t.Errorf("apply %d had Op %d", i, rec.op)
		}
		if i == 0 {
			continue
		}
		prev := ref[i-1]
		if rec.nanos < prev.nanos {
			t.Errorf("op %d time %d before op %d's %d", rec.op, rec.nanos, prev.op, prev.nanos)
		}
		if rec.fence < prev.fence {
			t.Errorf("op %d fence %d below op %d's %d", rec.op, rec.fence, prev.op, prev.fence)
		}
		if rec.rand == prev.rand {
			t.Errorf("ops %d and %d drew the same random numbers", prev.op, rec.op)
		}
	}
	// Ops of one batch share the batch's time; batches get the clock's.
	if ref[0].nanos != ref[2].nanos || ref[2].nanos == ref[3].nanos {
		t.Errorf("batch times %d %d %d: want one per batch", ref[0].nanos, ref[2].nanos, ref[3].nanos)
	}
	if ref[9].fence <= ref[8].fence {
		t.Errorf("fence %d in view 1 not above view 0's %d", ref[9].fence, ref[8].fence)
	}
}

// fsm.Context: Time "never decreases along the log", whatever the clocks
// say. Here n0's clock is ahead of n1's. n0 orders X (time 1000) and
// crashes before X commits; n1 starts view 1 with X in its log, crashes too
// before X commits, and restarts from storage as primary of view 1. Its next
// batch must not get an earlier time than X, which precedes it in the log.
func TestFSMTimeNeverGoesBackAlongTheLogAcrossPrimaryRestart(t *testing.T) {
	fsms := map[hasup.NodeID]*ctxFSM{}
	s := scenario(t, 3, func(c *cluster) {
		c.tune = func(id hasup.NodeID, cfg *Config) {
			f := &ctxFSM{logFSM: cfg.FSM.(*logFSM)}
			cfg.FSM = f
			fsms[id] = f
			clock := int64(500)
			if id == c.ids[0] {
				clock = 1000
			}
			cfg.Clock = func() int64 { return clock }
		}
	})
	n0, n1 := s.id(0), s.id(1)
	s.drop = func(m Message) bool { return m.Type == MsgPrepareOK }
	s.mustSubmit(n0, 0, 0, "X")
	s.settle()
	if e, ok := s.nd(1).r.LogEntry(1); !ok || e.Time != 1000 {
		t.Fatalf("n1 should hold X with time 1000: %+v %v", e, ok)
	}
	s.nd(0).down = true
	s.nd(1).r.SuspectPrimary()
	s.settle()
	if !s.primaryIs(n1) || s.nd(1).r.Status().Commit != 0 {
		t.Fatalf("n1 should be primary of view 1 with X uncommitted: %+v", s.nd(1).r.Status())
	}
	s.restart(n1)
	if s.primaryIs(n1) {
		t.Fatalf("a restarted primary resumed its view (it may lack ops it sent before its write): %+v", s.nd(1).r.Status())
	}
	// n1 and n2 change view; n2 (clock 500) leads view 2 and must not
	// time Y before X.
	n2 := s.id(2)
	if !s.tickUntil(60, func() bool { return s.primaryIs(n2) }) {
		t.Fatalf("no primary after the restart:\n%s", s.dump())
	}
	s.mustSubmit(n2, 0, 0, "Y")
	s.settle()
	s.drop = nil
	if !s.tickUntil(20, func() bool { return s.nd(1).r.Status().Applied == 2 }) {
		t.Fatalf("X and Y never committed:\n%s", s.dump())
	}
	seen := fsms[n1].seen
	if len(seen) != 2 {
		t.Fatalf("n1 applied %d ops, want X and Y; %q\n%s", len(seen), s.applied(n1), s.dump())
	}
	if seen[1].nanos < seen[0].nanos {
		t.Fatalf("op 2 applied with time %d after op 1's %d: FSM time went back across a primary restart", seen[1].nanos, seen[0].nanos)
	}
}
