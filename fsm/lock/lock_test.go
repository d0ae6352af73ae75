package lock_test

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/hasup/hasup/fsm"
	"github.com/hasup/hasup/fsm/fsmtest"
	"github.com/hasup/hasup/fsm/lock"
)

func TestConformance(t *testing.T) {
	fsmtest.Run(t, func() fsm.FSM { return lock.New() }, workload)
}

// workload returns a mix of valid and malformed lock commands and queries
// over few names and owners, with leases from a millisecond to a minute, so
// that the suite's clock sees grants, refusals, renewals and expiries.
func workload(r *rand.Rand) fsmtest.Workload {
	names, owners := []string{"a", "b", "c"}, []string{"o1", "o2", "o3"}
	name := func() string { return names[r.IntN(len(names))] }
	owner := func() string { return owners[r.IntN(len(owners))] }
	var w fsmtest.Workload
	for range 200 {
		var cmd []byte
		switch n := r.IntN(10); {
		case n < 5:
			cmd = lock.AcquireCmd(name(), owner(), time.Millisecond+time.Duration(r.Int64N(int64(time.Minute))))
		case n < 8:
			cmd = lock.ReleaseCmd(name(), owner())
		default:
			cmd = malformed(r, lock.AcquireCmd(name(), owner(), time.Second))
		}
		w.Commands = append(w.Commands, cmd)
	}
	for range 30 {
		if r.IntN(4) == 0 {
			w.Queries = append(w.Queries, malformed(r, lock.HolderQuery(name())))
		} else {
			w.Queries = append(w.Queries, lock.HolderQuery(name()))
		}
	}
	return w
}

// malformed returns a broken variant of the valid request good.
func malformed(r *rand.Rand, good []byte) []byte {
	switch r.IntN(7) {
	case 0:
		return good[:r.IntN(len(good))] // truncated
	case 1:
		return append(bytes.Clone(good), 0) // trailing byte
	case 2:
		bad := bytes.Clone(good)
		bad[1] = 2 // unknown version
		return bad
	case 3:
		return lock.AcquireCmd("a", "o1", -time.Second) // ttl out of range
	case 4:
		return lock.AcquireCmd("", "o1", time.Second) // empty name
	case 5:
		return lock.ReleaseCmd("a", strings.Repeat("o", lock.MaxOwnerBytes+1))
	}
	return lock.HolderQuery("a") // a query sent as a command, or the reverse
}

// base is the time the scenarios start at.
func base() time.Time { return time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC) }

// step is one command of a scenario: applied at base+at with the ensemble's
// fence, and what it must return.
type step struct {
	at      time.Duration
	fence   uint64
	cmd     []byte
	want    lock.Result
	wantErr error
}

// held is the Result of a lease of owner with fence, running out at
// base+until.
func held(owner string, fence uint64, until time.Duration) lock.Result {
	return lock.Result{Owner: owner, Fence: fence, Expiry: base().Add(until)}
}

func TestApply(t *testing.T) {
	sec := time.Second
	acquire := func(owner string, ttl time.Duration) []byte { return lock.AcquireCmd("L", owner, ttl) }
	release := func(owner string) []byte { return lock.ReleaseCmd("L", owner) }
	tests := []struct {
		name  string
		steps []step
	}{
		{"a free lock is granted with fence 1", []step{
			{0, 0, acquire("o1", 10*sec), held("o1", 1, 10*sec), nil},
		}},
		{"a held lock is refused, naming the holder", []step{
			{0, 0, acquire("o1", 10*sec), held("o1", 1, 10*sec), nil},
			{9 * sec, 0, acquire("o2", 10*sec), held("o1", 1, 10*sec), lock.ErrHeld},
		}},
		{"the holder renews and keeps its fence", []step{
			{0, 0, acquire("o1", 10*sec), held("o1", 1, 10*sec), nil},
			{5 * sec, 0, acquire("o1", 10*sec), held("o1", 1, 15*sec), nil},
			{14 * sec, 0, acquire("o2", sec), held("o1", 1, 15*sec), lock.ErrHeld},
		}},
		{"a lease runs out at its expiry by command time", []step{
			{0, 0, acquire("o1", 10*sec), held("o1", 1, 10*sec), nil},
			{10*sec - 1, 0, acquire("o2", sec), held("o1", 1, 10*sec), lock.ErrHeld},
			{10 * sec, 0, acquire("o2", sec), held("o2", 2, 11*sec), nil},
		}},
		{"an expired lease gives its old owner a new fence", []step{
			{0, 0, acquire("o1", sec), held("o1", 1, sec), nil},
			{2 * sec, 0, acquire("o1", sec), held("o1", 2, 3*sec), nil},
		}},
		{"time standing still keeps the lease", []step{
			{0, 0, acquire("o1", sec), held("o1", 1, sec), nil},
			{0, 0, acquire("o2", sec), held("o1", 1, sec), lock.ErrHeld},
		}},
		{"release by the holder frees the lock", []step{
			{0, 0, acquire("o1", 10*sec), held("o1", 1, 10*sec), nil},
			{sec, 0, release("o1"), lock.Result{}, nil},
			{sec, 0, acquire("o2", sec), held("o2", 2, 2*sec), nil},
		}},
		{"release by another owner fails and changes nothing", []step{
			{0, 0, acquire("o1", 10*sec), held("o1", 1, 10*sec), nil},
			{sec, 0, release("o2"), held("o1", 1, 10*sec), lock.ErrNotHolder},
			{sec, 0, acquire("o1", 10*sec), held("o1", 1, 11*sec), nil},
		}},
		{"release of a free lock fails", []step{
			{0, 0, release("o1"), lock.Result{}, lock.ErrNotHolder},
		}},
		{"release after expiry fails", []step{
			{0, 0, acquire("o1", sec), held("o1", 1, sec), nil},
			{sec, 0, release("o1"), held("o1", 1, sec), lock.ErrNotHolder},
		}},
		{"fences strictly increase across grants", []step{
			{0, 0, acquire("o1", sec), held("o1", 1, sec), nil},
			{0, 0, release("o1"), lock.Result{}, nil},
			{0, 0, acquire("o2", sec), held("o2", 2, sec), nil},
			{2 * sec, 0, acquire("o3", sec), held("o3", 3, 3*sec), nil},
			{2 * sec, 0, lock.AcquireCmd("other", "o1", sec), held("o1", 4, 3*sec), nil},
		}},
		{"a grant's fence is at least the ensemble's", []step{
			{0, 100, acquire("o1", sec), held("o1", 100, sec), nil},
			{sec, 100, acquire("o2", sec), held("o2", 101, 2*sec), nil},
			{2 * sec, 7, acquire("o3", sec), held("o3", 102, 3*sec), nil}, // a smaller ensemble fence never lowers it
			{3 * sec, 500, acquire("o1", sec), held("o1", 500, 4*sec), nil},
		}},
		{"renewal keeps the fence even after the ensemble's grows", []step{
			{0, 3, acquire("o1", 10*sec), held("o1", 3, 10*sec), nil},
			{sec, 9, acquire("o1", 10*sec), held("o1", 3, 11*sec), nil},
		}},
		{"no grant after the largest fence, but renewal goes on", []step{
			{0, math.MaxUint64, acquire("o1", sec), held("o1", math.MaxUint64, sec), nil},
			{0, math.MaxUint64, lock.AcquireCmd("other", "o1", sec), lock.Result{}, lock.ErrFencesExhausted},
			{0, math.MaxUint64, acquire("o1", 2*sec), held("o1", math.MaxUint64, 2*sec), nil},
		}},
		{"malformed commands change nothing", []step{
			{0, 0, acquire("o1", sec), held("o1", 1, sec), nil},
			{0, 0, acquire("o2", 0), lock.Result{}, lock.ErrBadCommand},
			{0, 0, acquire("o2", lock.MaxTTL+1), lock.Result{}, lock.ErrBadCommand},
			{0, 0, acquire("", sec), lock.Result{}, lock.ErrBadCommand},
			{0, 0, lock.AcquireCmd("", "o2", sec), lock.Result{}, lock.ErrBadCommand},
			{0, 0, lock.ReleaseCmd("L", ""), lock.Result{}, lock.ErrBadCommand},
			{0, 0, lock.HolderQuery("L"), lock.Result{}, lock.ErrBadCommand},
			{0, 0, release("o1")[:9], lock.Result{}, lock.ErrBadCommand},
			{0, 0, acquire("o2", sec), held("o1", 1, sec), lock.ErrHeld},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runSteps(t, lock.New(), tt.steps)
		})
	}
}

func runSteps(t *testing.T, tab *lock.Table, steps []step) {
	t.Helper()
	for i, st := range steps {
		ctx := fsm.NewContext(uint64(i+1), base().Add(st.at).UnixNano(), 0, st.fence)
		got, err := lock.DecodeResult(tab.Apply(ctx, st.cmd))
		if !errors.Is(err, st.wantErr) || (err == nil) != (st.wantErr == nil) {
			t.Fatalf("step %d: error %v, want %v", i, err, st.wantErr)
		}
		if !equalResult(got, st.want) {
			t.Fatalf("step %d: result %+v, want %+v", i, got, st.want)
		}
	}
}

func TestExpirySaturates(t *testing.T) {
	tab := lock.New()
	ctx := fsm.NewContext(1, math.MaxInt64-5, 0, 0)
	got, err := lock.DecodeResult(tab.Apply(ctx, lock.AcquireCmd("L", "o1", lock.MaxTTL)))
	if err != nil || got.Expiry.UnixNano() != math.MaxInt64 {
		t.Fatalf("acquire near the end of time: %+v, %v; want expiry at MaxInt64", got, err)
	}
}

func TestErrorsNameTheProblem(t *testing.T) {
	tab := lock.New()
	ctx := fsm.NewContext(1, base().UnixNano(), 0, 0)
	tab.Apply(ctx, lock.AcquireCmd("L", "o1", time.Second))
	tests := []struct {
		cmd  []byte
		want error
		says string
	}{
		{nil, lock.ErrBadCommand, "truncated op"},
		{[]byte{1, 3}, lock.ErrBadCommand, "acquire: unsupported version 3"},
		{[]byte{9, 1}, lock.ErrBadCommand, "unknown op(9)"},
		{lock.AcquireCmd("L", "o1", time.Second)[:14], lock.ErrBadCommand, "truncated ttl"},
		{lock.AcquireCmd("L", "o1", 25*time.Hour), lock.ErrBadCommand, "ttl 25h0m0s, want more than 0 and at most 24h0m0s"},
		{lock.AcquireCmd(strings.Repeat("n", 1025), "o1", time.Second), lock.ErrBadCommand, "name is 1025 bytes"},
		{lock.HolderQuery("L"), lock.ErrBadCommand, "holder is a query"},
		{lock.AcquireCmd("L", "o2", time.Second), lock.ErrHeld, `lock "L" is held by "o1" until 2025-06-01T12:00:01Z`},
		{lock.ReleaseCmd("L", "o2"), lock.ErrNotHolder, `lock "L" is held by "o1", not "o2"`},
		{lock.ReleaseCmd("M", "o2"), lock.ErrNotHolder, `lock "M" is free`},
	}
	for _, tt := range tests {
		_, err := lock.DecodeResult(tab.Apply(ctx, tt.cmd))
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("command %x: error %q, want %v saying %q", tt.cmd, err, tt.want, tt.says)
		}
	}
	late := fsm.NewContext(2, base().Add(time.Hour).UnixNano(), 0, 0)
	_, err := lock.DecodeResult(tab.Apply(late, lock.ReleaseCmd("L", "o1")))
	if !errors.Is(err, lock.ErrNotHolder) || !strings.Contains(err.Error(), "expired at 2025-06-01T12:00:01Z") {
		t.Errorf("release after expiry: %v, want ErrNotHolder saying when it expired", err)
	}
}

func TestQuery(t *testing.T) {
	tab := lock.New()
	tab.Apply(fsm.NewContext(1, base().UnixNano(), 0, 5), lock.AcquireCmd("L", "o1", time.Minute))

	got := holder(t, tab, "L")
	if !equalResult(got, held("o1", 5, time.Minute)) {
		t.Fatalf("holder of L = %+v, want o1 with fence 5 until base+1m", got)
	}
	if !got.HeldAt(base().Add(time.Minute-1)) || got.HeldAt(base().Add(time.Minute)) {
		t.Errorf("HeldAt: want held just before expiry and free at it")
	}
	if got := holder(t, tab, "free"); !equalResult(got, lock.Result{}) || got.HeldAt(base()) {
		t.Errorf("holder of a never-granted lock = %+v, want the zero Result, not held", got)
	}

	for _, q := range []struct {
		q    []byte
		says string
	}{
		{nil, "truncated op"},
		{lock.HolderQuery(""), "holder: name is 0 bytes"},
		{lock.ReleaseCmd("L", "o1"), "release is a command"},
		{append(lock.HolderQuery("L"), 0), "1 trailing bytes"},
	} {
		answer, err := tab.Query(q.q)
		if answer != nil || !errors.Is(err, lock.ErrBadQuery) || !strings.Contains(err.Error(), q.says) {
			t.Errorf("query %x: %x, %v; want ErrBadQuery saying %q", q.q, answer, err, q.says)
		}
	}
}

func TestDecodeResultRejectsForeignBytes(t *testing.T) {
	good := lock.New().Apply(fsm.Context{}, lock.AcquireCmd("L", "o", time.Second))
	for _, b := range [][]byte{nil, {1}, good[:len(good)-1], append(bytes.Clone(good), 0), lock.HolderQuery("L")} {
		if _, err := lock.DecodeResult(b); !errors.Is(err, lock.ErrBadResult) {
			t.Errorf("DecodeResult(%x) = %v, want ErrBadResult", b, err)
		}
	}
}

func TestRestoreRejectsBadImages(t *testing.T) {
	src := lock.New()
	src.Apply(fsm.Context{}, lock.AcquireCmd("L", "o1", time.Second))
	var buf bytes.Buffer
	if err := src.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	image := buf.Bytes()
	flip := func(i int) []byte { b := bytes.Clone(image); b[i] ^= 1; return b }
	tests := []struct {
		name  string
		image []byte
		says  string
	}{
		{"empty", nil, "truncated header"},
		{"bad magic", flip(1), "magic"},
		{"bad version", flip(4), "unsupported version 0"},
		{"truncated body", image[:20], "truncated: body and checksum need"},
		{"flipped body bit", flip(25), "checksum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := lock.New()
			dst.Apply(fsm.Context{}, lock.AcquireCmd("mine", "me", time.Second))
			err := dst.Restore(bytes.NewReader(tt.image))
			if !errors.Is(err, lock.ErrBadSnapshot) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("Restore = %v, want ErrBadSnapshot saying %q", err, tt.says)
			}
			if got := holder(t, dst, "mine"); got.Owner != "me" {
				t.Fatalf("failed Restore changed the table: holder of mine = %+v", got)
			}
		})
	}
}

// TestModel drives the table and a naive model with the same random valid
// commands and checks every result, that no two owners ever hold a lock at
// once, and that fences strictly increase across grants.
func TestModel(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 11))
	tab, m := lock.New(), model{locks: map[string]lock.Result{}}
	now, fence := base(), uint64(0)
	var lastGrant uint64
	for i := range 5000 {
		now = now.Add(time.Duration(r.Int64N(int64(300 * time.Millisecond))))
		if r.IntN(100) == 0 {
			fence += uint64(r.IntN(1000))
		}
		name, owner := string(rune('a'+r.IntN(3))), string(rune('p'+r.IntN(3)))
		var cmd []byte
		var want lock.Result
		var wantErr error
		grantsBefore := m.grants
		if r.IntN(3) > 0 {
			ttl := time.Millisecond + time.Duration(r.Int64N(int64(2*time.Second)))
			cmd = lock.AcquireCmd(name, owner, ttl)
			want, wantErr = m.acquire(now, fence, name, owner, ttl)
		} else {
			cmd = lock.ReleaseCmd(name, owner)
			want, wantErr = m.release(now, name, owner)
		}
		got, err := lock.DecodeResult(tab.Apply(fsm.NewContext(uint64(i+1), now.UnixNano(), 0, fence), cmd))
		if !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) || !equalResult(got, want) {
			t.Fatalf("step %d %x: got %+v, %v; model says %+v, %v", i, cmd, got, err, want, wantErr)
		}
		if m.grants > grantsBefore {
			if got.Fence <= lastGrant {
				t.Fatalf("step %d: grant with fence %d after a grant with fence %d", i, got.Fence, lastGrant)
			}
			lastGrant = got.Fence
		}
	}
	if m.grants < 500 || m.renewals < 100 || m.refusals < 100 {
		t.Fatalf("%d grants, %d renewals, %d refusals: the workload does not exercise the table",
			m.grants, m.renewals, m.refusals)
	}
}

// model is the obvious lock table, written from the package doc.
type model struct {
	fence                      uint64
	locks                      map[string]lock.Result
	grants, renewals, refusals int
}

func (m *model) acquire(now time.Time, fence uint64, name, owner string, ttl time.Duration) (lock.Result, error) {
	cur := m.locks[name]
	switch {
	case cur.HeldAt(now) && cur.Owner == owner:
		m.renewals++
		cur.Expiry = now.Add(ttl)
	case cur.HeldAt(now):
		m.refusals++
		return cur, lock.ErrHeld
	default:
		m.grants++
		m.fence = max(m.fence+1, fence)
		cur = lock.Result{Owner: owner, Fence: m.fence, Expiry: now.Add(ttl)}
	}
	m.locks[name] = cur
	return cur, nil
}

func (m *model) release(now time.Time, name, owner string) (lock.Result, error) {
	cur := m.locks[name]
	if !cur.HeldAt(now) || cur.Owner != owner {
		return cur, lock.ErrNotHolder
	}
	delete(m.locks, name)
	return lock.Result{}, nil
}

func holder(t *testing.T, tab *lock.Table, name string) lock.Result {
	t.Helper()
	answer, err := tab.Query(lock.HolderQuery(name))
	if err != nil {
		t.Fatalf("holder %q: %v", name, err)
	}
	res, err := lock.DecodeResult(answer)
	if err != nil {
		t.Fatalf("holder %q: decode: %v", name, err)
	}
	return res
}

func equalResult(a, b lock.Result) bool {
	return a.Owner == b.Owner && a.Fence == b.Fence && a.Expiry.Equal(b.Expiry)
}
