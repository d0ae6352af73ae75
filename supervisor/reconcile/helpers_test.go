package reconcile

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/hasup/hasup"
)

// Shorthands for building inputs in tests.

const (
	sec     = int64(1e9)
	damping = 10 * sec
	now     = 100 * sec
)

var (
	alive   = hasup.MemberAlive
	suspect = hasup.MemberSuspect
	failed  = hasup.MemberFailed
	left    = hasup.MemberLeft
)

func ids(s ...string) []hasup.NodeID {
	out := make([]hasup.NodeID, len(s))
	for i, v := range s {
		out[i] = hasup.NodeID(v)
	}
	return out
}

// regNodes returns registered nodes: "n1" alive, "n2:failed" failed, with
// address "ID:7947".
func regNodes(specs ...string) []Node {
	var out []Node
	for _, s := range specs {
		id, state := parseState(s)
		out = append(out, Node{ID: id, Addr: string(id) + ":7947", State: state})
	}
	return out
}

// seen returns detector entries like regNodes, each held since "since"
// nanoseconds before now: "n2:failed@3" has been failed for 3 s; without
// "@" for a long time (100 s).
func seen(specs ...string) []Observed {
	var out []Observed
	for _, s := range specs {
		held := int64(100)
		if i := strings.IndexByte(s, '@'); i >= 0 {
			fmt.Sscan(s[i+1:], &held)
			s = s[:i]
		}
		id, state := parseState(s)
		out = append(out, Observed{ID: id, Addr: string(id) + ":7947", State: state, Since: now - held*sec})
	}
	return out
}

func parseState(s string) (hasup.NodeID, hasup.MemberState) {
	id, st, _ := strings.Cut(s, ":")
	state := alive
	switch st {
	case "suspect":
		state = suspect
	case "failed":
		state = failed
	case "left":
		state = left
	}
	return hasup.NodeID(id), state
}

func ens(name string, epoch uint64, members ...string) Ensemble {
	return Ensemble{Name: hasup.EnsembleName(name), Type: "kv", Replicas: len(members), Epoch: epoch, Members: ids(members...)}
}

func withTarget(e Ensemble, target ...string) Ensemble {
	e.Target = ids(target...)
	return e
}

// cluster returns an input for node self, the cluster primary if primary,
// with nodes registered and seen alive.
func cluster(self string, primary bool, nodes ...string) Input {
	return Input{Self: hasup.NodeID(self), Now: now, Damping: damping, ClusterPrimary: primary, ClusterEnsemble: "cluster",
		Registry: Registry{Version: 7, Nodes: regNodes(nodes...)}, Detector: seen(nodes...)}
}

// replica is a local replica in mode normal whose primary is members[view
// mod n].
func replica(self, name string, epoch, view uint64, members ...string) Replica {
	m := ids(members...)
	p := m[view%uint64(len(m))]
	return Replica{Name: hasup.EnsembleName(name), Epoch: epoch, Members: m, View: view, Mode: ModeNormal,
		Primary: p, IsPrimary: p == hasup.NodeID(self)}
}

// decided runs Decide, checks that every action has a Reason and that the
// output is sorted, and returns the actions with Reasons cleared.
func decided(t *testing.T, in Input) []Action {
	t.Helper()
	out := Decide(in)
	for i, a := range out {
		if a.Reason == "" {
			t.Errorf("action %d (%v) has no Reason", i, a.Kind)
		}
		if i > 0 && actionLess(a, out[i-1]) {
			t.Errorf("actions %d and %d out of order: %v, %v", i-1, i, out[i-1].Kind, a.Kind)
		}
	}
	for i := range out {
		out[i].Reason = ""
	}
	return out
}

func actionLess(a, b Action) bool {
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	if a.Ensemble != b.Ensemble {
		return a.Ensemble < b.Ensemble
	}
	if a.Node != b.Node {
		return a.Node < b.Node
	}
	return a.Reason < b.Reason
}

// only keeps the actions of the given kinds.
func only(as []Action, kinds ...Kind) []Action {
	var out []Action
	for _, a := range as {
		for _, k := range kinds {
			if a.Kind == k {
				out = append(out, a)
			}
		}
	}
	return out
}

func checkActions(t *testing.T, got, want []Action) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", formatActions(got), formatActions(want))
	}
}

func formatActions(as []Action) string {
	var b strings.Builder
	for _, a := range as {
		fmt.Fprintf(&b, "  %+v\n", a)
	}
	if len(as) == 0 {
		b.WriteString("  (none)\n")
	}
	return b.String()
}
