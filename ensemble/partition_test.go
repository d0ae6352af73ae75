package ensemble

import (
	"fmt"
	"testing"

	"github.com/hasup/hasup"
)

// clientLoop plays one client for ticks ticks: whenever it has no request
// outstanding it proposes the next command to the current primary, and it
// counts the requests answered with success. It returns the number of
// successes per window of window ticks.
func (s *scen) clientLoop(ticks, window int, prefix string) []int {
	var perWindow []int
	done := 0
	var (
		pending bool
		at      hasup.NodeID
		pid     uint64
		attempt int
	)
	for i := 0; i < ticks; i++ {
		if pending {
			if rp, ok := s.reply(at, pid); ok {
				pending = false
				if rp.Err == nil {
					done++
				}
			} else if !s.primaryIs(at) && s.nodes[at].r.Status().Mode != ModeNormal {
				pending = false // the view changed under the request: retry elsewhere
			}
		}
		if !pending {
			if p := s.primary(); p != nil {
				attempt++
				id, err := s.submit(p.r.cfg.ID, 0, 0, fmt.Sprintf("%s%d", prefix, attempt))
				if err == nil {
					pending, at, pid = true, p.r.cfg.ID, id
				}
			}
		}
		s.tick(1)
		if (i+1)%window == 0 {
			perWindow = append(perWindow, done)
			done = 0
		}
	}
	return perWindow
}

// A replica that can send but not receive (a one-way partition) keeps
// timing out and starting view changes that the others join, since VRR has
// no pre-vote. The other two must still commit (n=3 needs only them), in
// every stretch of time, without livelock; once healed, the replica catches
// up.
func TestReplicaThatCannotReceiveDoesNotStopTheOthersCommitting(t *testing.T) {
	s := scenario(t, 3, nil)
	deaf := s.id(2)
	s.write("a")
	s.drop = func(m Message) bool { return m.To == deaf }
	deafApplied := s.nodes[deaf].r.Status().Applied
	windows := s.clientLoop(1000, 100, "p")
	total := 0
	for i, n := range windows {
		total += n
		if n == 0 {
			t.Errorf("no request committed in ticks %d-%d with a one-way partition:\n%s", i*100, (i+1)*100, s.dump())
		}
	}
	t.Logf("commits per 100 ticks with %s deaf: %v; views reached: %d", deaf, windows, s.nd(0).r.Status().View)
	if total < 50 {
		t.Errorf("only %d commits in 1000 ticks", total)
	}
	if st := s.nodes[deaf].r.Status(); st.Applied != deafApplied {
		t.Errorf("deaf replica applied ops %d-%d without receiving anything", deafApplied+1, st.Applied)
	}
	s.drop = nil
	s.write("healed")
	s.requireConverged(300)
	if s.applied(deaf) != s.applied(s.id(0)) {
		t.Errorf("deaf replica applied %q after healing, n0 %q", s.applied(deaf), s.applied(s.id(0)))
	}
}
