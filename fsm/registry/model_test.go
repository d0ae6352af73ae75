package registry_test

import (
	"bytes"
	"cmp"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/fsm"
	"github.com/hasup/hasup/fsm/fsmtest"
	"github.com/hasup/hasup/fsm/registry"
)

// TestModel drives the registry and a naive model, written from the package
// doc with maps, through the same random commands, and checks every result
// code and Version and, after every command, the whole state. Every 97
// commands it carries on with a registry restored from a snapshot of the
// one before, so that a snapshot that loses anything shows up in the
// comparisons that follow.
func TestModel(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		r := rand.New(rand.NewPCG(seed, 0x7265676973747279)) // "registry"
		reg, m := registry.New(), newModel()
		codes := map[registry.Code]int{}
		for i := range 2500 {
			c := randomCommand(r, m)
			ctx := fsm.NewContext(uint64(i+1), base().Add(time.Duration(i)*time.Millisecond).UnixNano(), r.Uint64(), 0)
			want := m.apply(ctx, c)
			codes[want]++
			res, err := registry.DecodeResult(reg.Apply(ctx, c.encode()))
			if res.Err != want || res.Version != m.version {
				t.Fatalf("seed %d step %d %+v: result %+v (%v); model says code %q, version %d", seed, i, c, res, err, want, m.version)
			}
			if got, want := state(t, reg), m.state(); !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d step %d %+v: state\n %+v\nmodel says\n %+v", seed, i, c, got, want)
			}
			if i%97 == 96 {
				reg = roundTrip(t, reg)
			}
		}
		for _, c := range []registry.Code{"", registry.CodeNotFound, registry.CodeExists, registry.CodeStale, registry.CodeBusy, registry.CodeInUse, registry.CodeInvalid} {
			if codes[c] < 10 {
				t.Errorf("seed %d: code %q came %d times: the workload does not exercise it (%v)", seed, c, codes[c], codes)
			}
		}
	}
}

// roundTrip returns a new registry restored from reg's snapshot, checking
// that it snapshots the same.
func roundTrip(t *testing.T, reg *registry.Registry) *registry.Registry {
	t.Helper()
	image := snapshot(t, reg)
	restored := registry.New()
	if err := restored.Restore(bytes.NewReader(image)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if again := snapshot(t, restored); !bytes.Equal(again, image) {
		t.Fatalf("restored registry snapshots as %x, not %x", again, image)
	}
	return restored
}

// workload returns a mix of random commands (valid, and invalid against
// the state), malformed commands and queries, for fsmtest.
func workload(r *rand.Rand) fsmtest.Workload {
	var w fsmtest.Workload
	m := newModel() // tracks the state the commands build, to aim them
	for i := range 200 {
		if r.IntN(10) == 0 {
			w.Commands = append(w.Commands, malformed(r, randomCommand(r, m).encode()))
			continue
		}
		c := randomCommand(r, m)
		m.apply(fsm.NewContext(uint64(i+1), 0, 0, 0), c)
		w.Commands = append(w.Commands, c.encode())
	}
	for range 30 {
		switch r.IntN(4) {
		case 0:
			w.Queries = append(w.Queries, registry.StateQuery())
		case 1:
			w.Queries = append(w.Queries, registry.EnsembleQuery(pickName(r)))
		case 2:
			w.Queries = append(w.Queries, registry.NodeQuery(pickNode(r)))
		default:
			w.Queries = append(w.Queries, malformed(r, registry.NodeQuery(pickNode(r))))
		}
	}
	return w
}

// malformed returns a broken variant of the valid request good.
func malformed(r *rand.Rand, good []byte) []byte {
	switch r.IntN(4) {
	case 0:
		return good[:r.IntN(len(good))] // truncated
	case 1:
		return append(bytes.Clone(good), 0) // trailing byte
	case 2:
		bad := bytes.Clone(good)
		bad[1] = 2 // unknown version
		return bad
	}
	return []byte{byte(r.IntN(256)), 1, byte(r.IntN(256))} // unknown op, or fields cut short
}

// command is one registry command as the model sees it.
type command struct {
	op      string // upsert, set-state, remove, create, delete, begin, finish, abort
	node    registry.Node
	id      hasup.NodeID
	state   hasup.MemberState
	spec    registry.Spec
	name    hasup.EnsembleName
	epoch   uint64
	members []hasup.NodeID // create's members, begin's target, finish's members
}

// encode returns the command's bytes.
func (c command) encode() []byte {
	switch c.op {
	case "upsert":
		return registry.UpsertNodeCmd(c.node)
	case "set-state":
		return registry.SetNodeStateCmd(c.id, c.state)
	case "remove":
		return registry.RemoveNodeCmd(c.id)
	case "create":
		return registry.CreateEnsembleCmd(c.spec, c.members)
	case "delete":
		return registry.DeleteEnsembleCmd(c.name)
	case "begin":
		return registry.BeginReconfigCmd(c.name, c.epoch, c.members)
	case "finish":
		return registry.FinishReconfigCmd(c.name, c.epoch, c.members)
	case "abort":
		return registry.AbortReconfigCmd(c.name)
	}
	panic("unknown command " + c.op)
}

// The pools commands draw from: few enough that they collide. n7 is never
// registered by the generator, and "B" is no ensemble name.
func pickNode(r *rand.Rand) hasup.NodeID {
	return []hasup.NodeID{"n1", "n2", "n3", "n4", "n5", "n6", "n7"}[r.IntN(7)]
}

func pickName(r *rand.Rand) hasup.EnsembleName {
	if r.IntN(30) == 0 {
		return "B"
	}
	return []hasup.EnsembleName{"a", "b", "c"}[r.IntN(3)]
}

// pickMembers returns n distinct nodes of n1 to n6 in random order, broken
// now and then: a duplicate, an unregistered node, one too few.
func pickMembers(r *rand.Rand, n int) []hasup.NodeID {
	all := []hasup.NodeID{"n1", "n2", "n3", "n4", "n5", "n6"}
	r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	out := slices.Clone(all[:n])
	switch r.IntN(20) {
	case 0:
		out[len(out)-1] = out[0]
	case 1:
		out[r.IntN(n)] = "n7"
	case 2:
		out = out[1:]
	}
	return out
}

func pickSize(r *rand.Rand) int { return []int{1, 3, 3, 5, 5}[r.IntN(5)] }

// randomCommand returns a command aimed at the model's state: mostly
// epochs and targets that fit, now and then ones that do not.
func randomCommand(r *rand.Rand, m *model) command {
	c := command{name: pickName(r)}
	e, exists := m.ensembles[c.name]
	switch n := r.IntN(100); {
	case n < 22:
		c.op = "upsert"
		c.node = registry.Node{ID: pickNode(r), Addr: []string{"h1:1", "h2:2"}[r.IntN(2)], State: hasup.MemberState(1 + r.IntN(4))}
		if c.node.ID == "n7" || r.IntN(40) == 0 {
			c.node.State = hasup.MemberState(r.IntN(2) * 5) // invalid
		}
		c.node.Tags = []map[string]string{nil, {}, {"zone": "a"}, {"zone": "b"}, {"zone": "a", "ssd": ""}}[r.IntN(5)]
	case n < 32:
		c.op, c.id, c.state = "set-state", pickNode(r), hasup.MemberState(1+r.IntN(4))
		if r.IntN(30) == 0 {
			c.state = 0
		}
	case n < 38:
		c.op, c.id = "remove", pickNode(r)
	case n < 52:
		c.op = "create"
		c.spec = registry.Spec{Name: c.name, Type: "kv", Replicas: pickSize(r), NoQuiesce: r.IntN(2) == 0}
		if r.IntN(3) == 0 {
			c.spec.Constraints = []string{"zone=a"}
		}
		if r.IntN(30) == 0 {
			c.spec.Replicas = 2
		}
		c.members = pickMembers(r, min(c.spec.Replicas, 5))
	case n < 56:
		c.op = "delete"
	case n < 78:
		c.op, c.epoch = "begin", e.Epoch
		if !exists || r.IntN(8) == 0 {
			c.epoch = uint64(r.IntN(3))
		}
		switch k := r.IntN(10); {
		case k < 2 && e.Target != nil:
			c.members = slices.Clone(e.Target)
		case k < 3 && exists:
			c.members = slices.Clone(e.Members)
		default:
			c.members = pickMembers(r, pickSize(r))
		}
	case n < 92:
		c.op, c.epoch = "finish", e.Epoch+[]uint64{1, 1, 1, 1, 0, 3}[r.IntN(6)]
		c.members = e.Target
		if c.members == nil || r.IntN(5) == 0 {
			c.members = pickMembers(r, pickSize(r))
		}
	default:
		c.op = "abort"
	}
	return c
}

// model is the obvious registry, written from the package doc with maps.
type model struct {
	version   uint64
	nodes     map[hasup.NodeID]registry.Node
	ensembles map[hasup.EnsembleName]registry.Ensemble
}

func newModel() *model {
	return &model{nodes: map[hasup.NodeID]registry.Node{}, ensembles: map[hasup.EnsembleName]registry.Ensemble{}}
}

// apply executes c and returns its code; a change sets the version.
func (m *model) apply(ctx fsm.Context, c command) registry.Code {
	code, changed := m.exec(ctx.UnixNanos(), c)
	if changed {
		m.version = max(m.version+1, ctx.Op())
	}
	return code
}

func (m *model) exec(now int64, c command) (registry.Code, bool) {
	switch c.op {
	case "upsert":
		return m.upsert(now, c.node)
	case "set-state":
		n, ok := m.nodes[c.id]
		switch {
		case !validState(c.state):
			return registry.CodeInvalid, false
		case !ok:
			return registry.CodeNotFound, false
		case n.State == c.state:
			return "", false
		}
		n.State, n.Since = c.state, now
		m.nodes[c.id] = n
		return "", true
	case "remove":
		if _, ok := m.nodes[c.id]; !ok {
			return registry.CodeNotFound, false
		}
		for _, e := range m.ensembles {
			if slices.Contains(e.Members, c.id) || slices.Contains(e.Target, c.id) {
				return registry.CodeInUse, false
			}
		}
		delete(m.nodes, c.id)
		return "", true
	case "create":
		return m.create(now, c)
	}
	if c.name == "B" || (c.op == "begin" || c.op == "finish") && !validList(c.members) {
		return registry.CodeInvalid, false
	}
	e, ok := m.ensembles[c.name]
	if !ok {
		return registry.CodeNotFound, false
	}
	switch c.op {
	case "delete":
		delete(m.ensembles, c.name)
		return "", true
	case "abort":
		if e.Target == nil {
			return "", false
		}
		e.Target = nil
	case "begin":
		switch {
		case c.epoch != e.Epoch:
			return registry.CodeStale, false
		case e.Target != nil && slices.Equal(e.Target, c.members):
			return "", false
		case e.Target != nil:
			return registry.CodeBusy, false
		case !m.known(c.members) || slices.Equal(e.Members, c.members):
			return registry.CodeInvalid, false
		}
		e.Target = slices.Clone(c.members)
	case "finish":
		switch {
		case c.epoch <= e.Epoch:
			return registry.CodeStale, false
		case !m.known(c.members):
			return registry.CodeInvalid, false
		}
		e.Epoch, e.Members, e.Target = c.epoch, slices.Clone(c.members), nil
	}
	m.ensembles[c.name] = e
	return "", true
}

func (m *model) upsert(now int64, n registry.Node) (registry.Code, bool) {
	if !validState(n.State) {
		return registry.CodeInvalid, false
	}
	if len(n.Tags) == 0 {
		n.Tags = nil
	} else {
		n.Tags = maps.Clone(n.Tags)
	}
	old, ok := m.nodes[n.ID]
	switch {
	case !ok:
		n.Since = now
	case old.Addr == n.Addr && old.State == n.State && maps.Equal(old.Tags, n.Tags):
		return "", false
	case old.State == n.State:
		n.Since = old.Since
	default:
		n.Since = now
	}
	m.nodes[n.ID] = n
	return "", true
}

func (m *model) create(now int64, c command) (registry.Code, bool) {
	switch {
	case c.name == "B" || !validList(c.members) || len(c.members) != c.spec.Replicas:
		return registry.CodeInvalid, false
	case m.ensembles[c.name].Members != nil:
		return registry.CodeExists, false
	case !m.known(c.members):
		return registry.CodeInvalid, false
	}
	m.ensembles[c.name] = registry.Ensemble{Spec: c.spec, Members: slices.Clone(c.members), Created: now}
	return "", true
}

// known reports whether every one of ids is a registered node.
func (m *model) known(ids []hasup.NodeID) bool {
	for _, id := range ids {
		if _, ok := m.nodes[id]; !ok {
			return false
		}
	}
	return true
}

// state returns the model's state as DecodeState would.
func (m *model) state() registry.State {
	s := registry.State{Version: m.version}
	for _, n := range m.nodes {
		s.Nodes = append(s.Nodes, n)
	}
	for _, e := range m.ensembles {
		s.Ensembles = append(s.Ensembles, e)
	}
	slices.SortFunc(s.Nodes, func(a, b registry.Node) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(s.Ensembles, func(a, b registry.Ensemble) int { return cmp.Compare(a.Spec.Name, b.Spec.Name) })
	return s
}

func validState(s hasup.MemberState) bool { return s >= hasup.MemberAlive && s <= hasup.MemberLeft }

// validList reports whether ids could be a member list: 1, 3 or 5 distinct
// non-empty IDs.
func validList(ids []hasup.NodeID) bool {
	if n := len(ids); n != 1 && n != 3 && n != 5 {
		return false
	}
	for i, id := range ids {
		if id == "" || slices.Contains(ids[:i], id) {
			return false
		}
	}
	return true
}
