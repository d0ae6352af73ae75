package detector

import (
	"bytes"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hasup/hasup"
)

func member(id string, state hasup.MemberState) hasup.Member {
	return hasup.Member{ID: hasup.NodeID(id), State: state}
}

func popAll(q *pendingQueue) []hasup.Member {
	var out []hasup.Member
	for m, ok := q.pop(); ok; m, ok = q.pop() {
		out = append(out, m)
	}
	return out
}

func TestPendingQueueCoalesces(t *testing.T) {
	alive, suspect, failed, left := hasup.MemberAlive, hasup.MemberSuspect, hasup.MemberFailed, hasup.MemberLeft
	tests := []struct {
		name    string
		batches [][]hasup.Member
		want    []hasup.Member
	}{
		{"empty", nil, nil},
		{"one member, latest state wins",
			[][]hasup.Member{{member("a", alive)}, {member("a", suspect)}, {member("a", failed)}},
			[]hasup.Member{member("a", failed)}},
		{"first pending leaves first, even when updated later",
			[][]hasup.Member{{member("b", alive)}, {member("a", alive)}, {member("b", left)}},
			[]hasup.Member{member("b", left), member("a", alive)}},
		{"one batch leaves in ID order",
			[][]hasup.Member{{member("c", alive), member("a", alive), member("b", alive)}},
			[]hasup.Member{member("a", alive), member("b", alive), member("c", alive)}},
		{"a later state in the same batch wins",
			[][]hasup.Member{{member("a", alive), member("b", alive), member("a", failed)}},
			[]hasup.Member{member("a", failed), member("b", alive)}},
		{"batches keep their order, IDs order within each",
			[][]hasup.Member{{member("z", alive)}, {member("y", failed), member("x", failed)}, {member("z", failed)}},
			[]hasup.Member{member("z", failed), member("x", failed), member("y", failed)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newPendingQueue()
			for _, b := range tt.batches {
				q.put(b...)
			}
			if got := popAll(q); !slices.EqualFunc(got, tt.want, func(a, b hasup.Member) bool {
				return a.ID == b.ID && a.State == b.State
			}) {
				t.Errorf("popped %v, want %v", got, tt.want)
			}
			if q.len() != 0 {
				t.Errorf("len() = %d after popping everything", q.len())
			}
		})
	}
}

// TestPendingQueueIsBoundedByMembers: a consumer that never reads cannot
// make the queue grow beyond one entry per member, and the final state of
// each member survives.
func TestPendingQueueIsBoundedByMembers(t *testing.T) {
	q := newPendingQueue()
	ids := []string{"n1", "n2", "n3", "n4"}
	states := []hasup.MemberState{hasup.MemberAlive, hasup.MemberSuspect, hasup.MemberFailed, hasup.MemberLeft}
	rng := rand.New(rand.NewPCG(1, 2))
	final := map[hasup.NodeID]hasup.MemberState{}
	for range 10_000 {
		m := member(ids[rng.IntN(len(ids))], states[rng.IntN(len(states))])
		q.put(m)
		final[m.ID] = m.State
		if q.len() > len(ids) {
			t.Fatalf("len() = %d with %d members", q.len(), len(ids))
		}
	}
	for _, m := range popAll(q) {
		if final[m.ID] != m.State {
			t.Errorf("%s popped %v, want its final state %v", m.ID, m.State, final[m.ID])
		}
		delete(final, m.ID)
	}
	if len(final) != 0 {
		t.Errorf("members lost: %v", final)
	}
}

func TestBackoffIsCappedAndJittered(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	lo, hi := 100*time.Millisecond, 1*time.Second
	for attempt, ceiling := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		ceiling *= time.Millisecond
		for range 100 {
			d := backoff(attempt, lo, hi, rng)
			if d < ceiling/2 || d > ceiling {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", attempt, d, ceiling/2, ceiling)
			}
		}
	}
	if d := backoff(1_000_000, lo, hi, rng); d < hi/2 || d > hi {
		t.Errorf("backoff after a million attempts = %v, want in [%v, %v]", d, hi/2, hi)
	}
	a, b := rand.New(rand.NewPCG(3, 4)), rand.New(rand.NewPCG(3, 4))
	for attempt := range 10 {
		if x, y := backoff(attempt, lo, hi, a), backoff(attempt, lo, hi, b); x != y {
			t.Fatalf("same seed, attempt %d: %v != %v", attempt, x, y)
		}
	}
}

func TestSerfLoggerMapsLevels(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var seen []string
	logger := serfLogger(l, func(msg string) { seen = append(seen, msg) })
	logger.Printf("[DEBUG] memberlist: chatty")
	logger.Printf("[WARN] memberlist: Refuting a suspect message (from: n2)")
	logger.Printf("[ERR] serf: broken")
	logger.Printf("no prefix")
	out := buf.String()
	for _, want := range []string{
		`level=WARN msg="memberlist: Refuting a suspect message (from: n2)"`,
		`level=ERROR msg="serf: broken"`,
		`level=INFO msg="no prefix"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "chatty") {
		t.Errorf("a debug line passed an info-level handler:\n%s", out)
	}
	if len(seen) != 4 || seen[0] != "memberlist: chatty" {
		t.Errorf("observer saw %q, want all four lines without prefixes", seen)
	}
}

func TestParseSuspectLine(t *testing.T) {
	for _, tt := range []struct {
		msg  string
		want string
		ok   bool
	}{
		{"memberlist: Suspect n3 has failed, no acks received", "n3", true},
		{"memberlist: Suspect  has failed, no acks received", "", false},
		{"memberlist: Marking n3 as failed, suspect timeout reached (1 peer confirmations)", "", false},
		{"memberlist: Suspect n3 has failed", "", false},
	} {
		got, ok := parseSuspectLine(tt.msg)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseSuspectLine(%q) = %q, %v; want %q, %v", tt.msg, got, ok, tt.want, tt.ok)
		}
	}
}

func TestValidate(t *testing.T) {
	valid := DefaultConfig()
	valid.NodeName = "n1"
	if err := valid.Validate(); err != nil {
		t.Fatalf("DefaultConfig with a name: %v", err)
	}
	if err := DefaultConfig().Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "NodeName") {
		t.Errorf("DefaultConfig without a name: err = %v, want ErrInvalidConfig naming NodeName", err)
	}
	tests := []struct {
		name   string
		modify func(*Config)
		field  string // the error must name it
		also   error  // and wrap it, if not nil
	}{
		{"empty name", func(c *Config) { c.NodeName = "" }, "NodeName", nil},
		{"name with a space", func(c *Config) { c.NodeName = "n 1" }, "NodeName", nil},
		{"name too long", func(c *Config) { c.NodeName = hasup.NodeID(strings.Repeat("n", 129)) }, "NodeName", nil},
		{"bind address not an IP", func(c *Config) { c.BindAddr = "localhost" }, "BindAddr", nil},
		{"advertise address not an IP", func(c *Config) { c.AdvertiseAddr = "example.com" }, "AdvertiseAddr", nil},
		{"negative port", func(c *Config) { c.BindPort = -1 }, "BindPort", nil},
		{"port too large", func(c *Config) { c.AdvertisePort = 65536 }, "AdvertisePort", nil},
		{"rpc address without port", func(c *Config) { c.RPCAddr = "127.0.0.1" }, "RPCAddr", nil},
		{"rpc address with port 0", func(c *Config) { c.RPCAddr = "127.0.0.1:0" }, "RPCAddr", nil},
		{"reserved tag prefix", func(c *Config) { c.Tags = map[string]string{"zone": "a", "hasup.rpc": "x:1"} }, "hasup.rpc", ErrReservedTag},
		{"key of 15 bytes", func(c *Config) { c.EncryptKey = make([]byte, 15) }, "EncryptKey", ErrInvalidKey},
		{"key of 33 bytes", func(c *Config) { c.EncryptKey = make([]byte, 33) }, "EncryptKey", ErrInvalidKey},
		{"unknown profile", func(c *Config) { c.Profile = "wan" }, "Profile", nil},
		{"empty join address", func(c *Config) { c.Join = []string{"127.0.0.1:7946", " "} }, "Join[1]", nil},
		{"negative backoff", func(c *Config) { c.JoinBackoffMin = -time.Second }, "JoinBackoffMin", nil},
		{"backoff max below min", func(c *Config) { c.JoinBackoffMin, c.JoinBackoffMax = 2*time.Second, time.Second }, "JoinBackoffMax", nil},
		{"negative buffer", func(c *Config) { c.EventBuffer = -1 }, "EventBuffer", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			tt.modify(&c)
			err := c.Validate()
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("err = %v, want it to name %s", err, tt.field)
			}
			if tt.also != nil && !errors.Is(err, tt.also) {
				t.Errorf("err = %v, want it to wrap %v", err, tt.also)
			}
		})
	}
	for _, ok := range []func(*Config){
		func(c *Config) { c.Profile = "" },
		func(c *Config) { c.Profile = ProfileLocal },
		func(c *Config) { c.EncryptKey = make([]byte, 24) },
		func(c *Config) { c.BindPort, c.EventBuffer = 0, 0 },
		func(c *Config) { c.RPCAddr = "[::1]:7947" },
	} {
		c := valid
		ok(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("valid config rejected: %v", err)
		}
	}
}

func TestWithDefaults(t *testing.T) {
	c := Config{NodeName: "n1", Profile: ProfileLocal}.withDefaults()
	if c.JoinBackoffMin != localTimings.joinBackoffMin || c.JoinBackoffMax != localTimings.joinBackoffMax ||
		c.EventBuffer != DefaultEventBuffer || c.BindAddr != DefaultBindAddr || c.Logger == nil {
		t.Errorf("withDefaults() = %+v", c)
	}
	c = Config{NodeName: "n1", JoinBackoffMax: 10 * time.Millisecond}.withDefaults()
	if c.Profile != ProfileLAN || c.JoinBackoffMin != 10*time.Millisecond || c.JoinBackoffMax != 10*time.Millisecond {
		t.Errorf("a small JoinBackoffMax with the lan default minimum: %v..%v", c.JoinBackoffMin, c.JoinBackoffMax)
	}
}

func TestKeys(t *testing.T) {
	s, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := DecodeKey(s)
	if err != nil || len(k) != 32 {
		t.Fatalf("DecodeKey(GenerateKey()) = %d bytes, %v", len(k), err)
	}
	if s2, _ := GenerateKey(); s2 == s {
		t.Error("two generated keys are equal")
	}
	if k2, err := DecodeKey(" " + s + "\n"); err != nil || !bytes.Equal(k, k2) {
		t.Errorf("surrounding space: %v", err)
	}
	if k, err := DecodeKey(""); err != nil || k != nil {
		t.Errorf(`DecodeKey("") = %v, %v; want nil, nil (no encryption)`, k, err)
	}
	for _, bad := range []string{"not base64!", "AAAA", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"} {
		if _, err := DecodeKey(bad); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("DecodeKey(%q): err = %v, want ErrInvalidKey", bad, err)
		}
	}
}

// TestRefutedSuspicionReturnsToAlive feeds the detector memberlist's
// suspicion line for a member that is in fact alive: the member is reported
// suspect, then Run's ping finds it and reports it alive again.
func TestRefutedSuspicionReturnsToAlive(t *testing.T) {
	nodes := cluster(t, 2, ProfileLocal)
	a, id := nodes[0], nodes[1].cfg.NodeName
	a.observeLog(suspectLinePrefix + string(id) + suspectLineSuffix)
	if got := stateOf(a.Members(), id); got != hasup.MemberSuspect {
		t.Errorf("Members() shows %s %v right after the suspicion, want suspect", id, got)
	}
	eventually(t, waitBound, "suspect then alive again", func() bool {
		_, ok := a.rec.first(id, hasup.MemberSuspect)
		m, _ := a.rec.latest(id)
		return ok && m.State == hasup.MemberAlive
	})
	if got := stateOf(a.Members(), id); got != hasup.MemberAlive {
		t.Errorf("Members() shows %s %v, want alive", id, got)
	}
	a.observeLog(suspectLinePrefix + "nobody" + suspectLineSuffix) // unknown: ignored
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.suspect["nobody"] || a.pending.len() > 0 && a.pending.latest["nobody"].ID != "" {
		t.Error("a suspicion of an unknown member was recorded")
	}
}

func stateOf(ms []hasup.Member, id hasup.NodeID) hasup.MemberState {
	for _, m := range ms {
		if m.ID == id {
			return m.State
		}
	}
	return 0
}
