package kv_test

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/hasup/hasup/fsm"
	"github.com/hasup/hasup/fsm/fsmtest"
	"github.com/hasup/hasup/fsm/kv"
)

func TestConformance(t *testing.T) {
	fsmtest.Run(t, func() fsm.FSM { return kv.New() }, workload)
}

// workloadKeys are few and share prefixes, so that commands collide and
// List prefixes select something.
func workloadKeys() []string {
	return []string{"a", "ab", "abc", "b", "ba", "c", "\x00\xff"}
}

// workload returns a mix of valid and malformed kv commands and queries.
func workload(r *rand.Rand) fsmtest.Workload {
	keys := workloadKeys()
	key := func() []byte { return []byte(keys[r.IntN(len(keys))]) }
	value := func() []byte {
		v := make([]byte, r.IntN(9))
		for i := range v {
			v[i] = byte('a' + r.IntN(26))
		}
		return v
	}
	var w fsmtest.Workload
	for i := range 200 {
		var cmd []byte
		switch n := r.IntN(100); {
		case n < 25:
			cmd = kv.PutCmd(key(), value())
		case n < 40:
			cmd = kv.DeleteCmd(key())
		case n < 60:
			cmd = kv.CASCmd(key(), value(), r.Uint64N(uint64(i)+2)) // 0 often enough
		case n < 85:
			cmd = kv.AppendCmd(key(), value())
		default:
			cmd = malformed(r, kv.PutCmd(key(), value()))
		}
		w.Commands = append(w.Commands, cmd)
	}
	for range 40 {
		switch n := r.IntN(10); {
		case n < 4:
			w.Queries = append(w.Queries, kv.GetQuery(key()))
		case n < 8:
			prefix := []byte(keys[r.IntN(len(keys))][:r.IntN(2)])
			w.Queries = append(w.Queries, kv.ListQuery(prefix, key()[:r.IntN(2)], r.IntN(4)))
		default:
			w.Queries = append(w.Queries, malformed(r, kv.GetQuery(key())))
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
		return []byte{byte(r.IntN(256)), 1, byte(r.IntN(256))} // unknown op, or fields cut short
	case 4:
		return kv.PutCmd(nil, []byte("v")) // empty key
	case 5:
		return kv.DeleteCmd(bytes.Repeat([]byte("k"), kv.MaxKeyBytes+1))
	}
	return kv.GetQuery([]byte("a")) // a query sent as a command, or the reverse
}

// step is one command of a scenario and what it must return.
type step struct {
	cmd     []byte
	want    kv.Result
	wantErr error
}

func TestApply(t *testing.T) {
	k, v := []byte("k"), []byte("v")
	bigKey := bytes.Repeat([]byte("k"), kv.MaxKeyBytes+1)
	tests := []struct {
		name  string
		steps []step
	}{
		{"put creates a key at the next revision", []step{
			{kv.PutCmd(k, v), kv.Result{Revision: 1, Found: true, CreateRevision: 1, ModRevision: 1}, nil},
			{kv.PutCmd([]byte("other"), v), kv.Result{Revision: 2, Found: true, CreateRevision: 2, ModRevision: 2}, nil},
		}},
		{"put over a key keeps its create revision", []step{
			{kv.PutCmd(k, v), kv.Result{Revision: 1, Found: true, CreateRevision: 1, ModRevision: 1}, nil},
			{kv.PutCmd(k, v), kv.Result{Revision: 2, Found: true, CreateRevision: 1, ModRevision: 2}, nil},
		}},
		{"delete of a missing key fails and keeps the revision", []step{
			{kv.PutCmd([]byte("x"), v), kv.Result{Revision: 1, Found: true, CreateRevision: 1, ModRevision: 1}, nil},
			{kv.DeleteCmd(k), kv.Result{Revision: 1}, kv.ErrNotFound},
		}},
		{"delete then put gives a new create revision", []step{
			{kv.PutCmd(k, v), kv.Result{Revision: 1, Found: true, CreateRevision: 1, ModRevision: 1}, nil},
			{kv.DeleteCmd(k), kv.Result{Revision: 2}, nil},
			{kv.DeleteCmd(k), kv.Result{Revision: 2}, kv.ErrNotFound},
			{kv.PutCmd(k, v), kv.Result{Revision: 3, Found: true, CreateRevision: 3, ModRevision: 3}, nil},
		}},
		{"cas 0 succeeds only while the key is absent", []step{
			{kv.CASCmd(k, v, 0), kv.Result{Revision: 1, Found: true, CreateRevision: 1, ModRevision: 1}, nil},
			{kv.CASCmd(k, v, 0), kv.Result{Revision: 1, Found: true, CreateRevision: 1, ModRevision: 1}, kv.ErrCASConflict},
		}},
		{"cas at the mod revision succeeds", []step{
			{kv.PutCmd(k, v), kv.Result{Revision: 1, Found: true, CreateRevision: 1, ModRevision: 1}, nil},
			{kv.PutCmd([]byte("x"), v), kv.Result{Revision: 2, Found: true, CreateRevision: 2, ModRevision: 2}, nil},
			{kv.CASCmd(k, v, 1), kv.Result{Revision: 3, Found: true, CreateRevision: 1, ModRevision: 3}, nil},
		}},
		{"cas conflict carries the current revisions", []step{
			{kv.PutCmd(k, v), kv.Result{Revision: 1, Found: true, CreateRevision: 1, ModRevision: 1}, nil},
			{kv.PutCmd(k, v), kv.Result{Revision: 2, Found: true, CreateRevision: 1, ModRevision: 2}, nil},
			{kv.CASCmd(k, v, 1), kv.Result{Revision: 2, Found: true, CreateRevision: 1, ModRevision: 2}, kv.ErrCASConflict},
		}},
		{"cas on an absent key with a revision conflicts", []step{
			{kv.CASCmd(k, v, 7), kv.Result{}, kv.ErrCASConflict},
		}},
		{"append creates then extends", []step{
			{kv.AppendCmd(k, v), kv.Result{Revision: 1, Found: true, CreateRevision: 1, ModRevision: 1}, nil},
			{kv.AppendCmd(k, v), kv.Result{Revision: 2, Found: true, CreateRevision: 1, ModRevision: 2}, nil},
		}},
		{"append past the value limit fails", []step{
			{kv.PutCmd(k, make([]byte, kv.MaxValueBytes)), kv.Result{Revision: 1, Found: true, CreateRevision: 1, ModRevision: 1}, nil},
			{kv.AppendCmd(k, []byte("x")), kv.Result{Revision: 1, Found: true, CreateRevision: 1, ModRevision: 1}, kv.ErrValueTooLarge},
			{kv.AppendCmd(k, nil), kv.Result{Revision: 2, Found: true, CreateRevision: 1, ModRevision: 2}, nil},
		}},
		{"oversized key and value are refused", []step{
			{kv.PutCmd(bigKey, v), kv.Result{}, kv.ErrKeyTooLarge},
			{kv.PutCmd(k, make([]byte, kv.MaxValueBytes+1)), kv.Result{}, kv.ErrValueTooLarge},
			{kv.PutCmd(k, make([]byte, kv.MaxValueBytes)), kv.Result{Revision: 1, Found: true, CreateRevision: 1, ModRevision: 1}, nil},
		}},
		{"malformed commands change nothing", []step{
			{kv.PutCmd(k, v), kv.Result{Revision: 1, Found: true, CreateRevision: 1, ModRevision: 1}, nil},
			{nil, kv.Result{Revision: 1}, kv.ErrBadCommand},
			{kv.PutCmd(nil, v), kv.Result{Revision: 1}, kv.ErrBadCommand},
			{kv.PutCmd(k, v)[:5], kv.Result{Revision: 1}, kv.ErrBadCommand},
			{append(kv.PutCmd(k, v), 0), kv.Result{Revision: 1}, kv.ErrBadCommand},
			{kv.GetQuery(k), kv.Result{Revision: 1}, kv.ErrBadCommand},
			{[]byte{99, 1}, kv.Result{Revision: 1}, kv.ErrBadCommand},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := kv.New()
			for i, st := range tt.steps {
				got, err := kv.DecodeResult(s.Apply(fsm.Context{}, st.cmd))
				if !errors.Is(err, st.wantErr) || (err == nil) != (st.wantErr == nil) {
					t.Fatalf("step %d: error %v, want %v", i, err, st.wantErr)
				}
				if !equalResult(got, st.want) {
					t.Fatalf("step %d: result %+v, want %+v", i, got, st.want)
				}
			}
		})
	}
}

func TestErrorsNameTheProblem(t *testing.T) {
	s := kv.New()
	tests := []struct {
		cmd  []byte
		want error
		says string
	}{
		{nil, kv.ErrBadCommand, "truncated op"},
		{[]byte{1, 9}, kv.ErrBadCommand, "unsupported version 9"},
		{[]byte{42, 1}, kv.ErrBadCommand, "unknown op(42)"},
		{kv.PutCmd([]byte("k"), []byte("value"))[:12], kv.ErrBadCommand, "truncated value"},
		{append(kv.DeleteCmd([]byte("k")), 1, 2), kv.ErrBadCommand, "2 trailing bytes"},
		{kv.PutCmd(nil, nil), kv.ErrBadCommand, "put: empty key"},
		{kv.ListQuery(nil, nil, 0), kv.ErrBadCommand, "list is a query"},
		{kv.PutCmd(make([]byte, kv.MaxKeyBytes+1), nil), kv.ErrKeyTooLarge, "4097 bytes, limit 4096"},
		{kv.CASCmd([]byte("k"), nil, 3), kv.ErrCASConflict, `key "k" is at revision 0, expected 3`},
		{kv.DeleteCmd([]byte("gone")), kv.ErrNotFound, `key "gone"`},
	}
	for _, tt := range tests {
		_, err := kv.DecodeResult(s.Apply(fsm.Context{}, tt.cmd))
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("command %x: error %q, want %v saying %q", tt.cmd, err, tt.want, tt.says)
		}
	}
}

func TestGet(t *testing.T) {
	s := kv.New()
	mustApply(t, s, kv.PutCmd([]byte("k"), []byte("v1")))
	mustApply(t, s, kv.AppendCmd([]byte("k"), []byte("+v2")))
	mustApply(t, s, kv.PutCmd([]byte("empty"), nil))

	got := get(t, s, "k")
	want := kv.Result{Revision: 3, Found: true, CreateRevision: 1, ModRevision: 2, Value: []byte("v1+v2")}
	if !equalResult(got, want) {
		t.Errorf("get k = %+v, want %+v", got, want)
	}
	if got := get(t, s, "empty"); !got.Found || len(got.Value) != 0 {
		t.Errorf("get empty = %+v, want found with an empty value", got)
	}
	if got := get(t, s, "missing"); !equalResult(got, kv.Result{Revision: 3}) {
		t.Errorf("get missing = %+v, want not found at revision 3", got)
	}
}

func TestList(t *testing.T) {
	s := kv.New()
	for _, k := range []string{"b", "a/2", "a/1", "a", "a/3", "ab", "c"} {
		mustApply(t, s, kv.PutCmd([]byte(k), []byte("v-"+k)))
	}
	tests := []struct {
		name          string
		prefix, after string
		limit         int
		keys          []string
		more          bool
	}{
		{"everything, sorted", "", "", 0, []string{"a", "a/1", "a/2", "a/3", "ab", "b", "c"}, false},
		{"prefix", "a/", "", 0, []string{"a/1", "a/2", "a/3"}, false},
		{"prefix includes the key equal to it", "a", "", 0, []string{"a", "a/1", "a/2", "a/3", "ab"}, false},
		{"limit cuts and says more", "a/", "", 2, []string{"a/1", "a/2"}, true},
		{"limit equal to the matches says no more", "a/", "", 3, []string{"a/1", "a/2", "a/3"}, false},
		{"after resumes a page", "a/", "a/2", 2, []string{"a/3"}, false},
		{"after need not be a key", "", "a/25", 0, []string{"a/3", "ab", "b", "c"}, false},
		{"after before the prefix", "b", "a", 0, []string{"b"}, false},
		{"no match", "z", "", 0, nil, false},
		{"negative limit means none", "", "", -1, []string{"a", "a/1", "a/2", "a/3", "ab", "b", "c"}, false},
		{"a limit past uint32 means none", "", "", math.MaxInt, []string{"a", "a/1", "a/2", "a/3", "ab", "b", "c"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := list(t, s, tt.prefix, tt.after, tt.limit)
			if got.Revision != 7 || got.More != tt.more {
				t.Errorf("revision %d more %v, want 7 and %v", got.Revision, got.More, tt.more)
			}
			if keys := listKeys(got); !slices.Equal(keys, tt.keys) {
				t.Errorf("keys %q, want %q", keys, tt.keys)
			}
			for _, e := range got.Entries {
				if string(e.Value) != "v-"+string(e.Key) || e.CreateRevision == 0 || e.ModRevision != e.CreateRevision {
					t.Errorf("entry %+v has the wrong value or revisions", e)
				}
			}
		})
	}
}

func TestListPagesByBytes(t *testing.T) {
	s := kv.New()
	big := make([]byte, kv.MaxValueBytes)
	for _, k := range []string{"k1", "k2", "k3", "k4", "k5"} {
		mustApply(t, s, kv.PutCmd([]byte(k), big))
	}
	first := list(t, s, "k", "", 0)
	if keys := listKeys(first); !slices.Equal(keys, []string{"k1", "k2", "k3"}) || !first.More {
		t.Fatalf("first page %q more=%v, want k1..k3 and more", keys, first.More)
	}
	second := list(t, s, "k", "k3", 0)
	if keys := listKeys(second); !slices.Equal(keys, []string{"k4", "k5"}) || second.More {
		t.Fatalf("second page %q more=%v, want k4, k5 and no more", keys, second.More)
	}
}

func TestQueryErrors(t *testing.T) {
	s := kv.New()
	tests := []struct {
		q    []byte
		want error
		says string
	}{
		{nil, kv.ErrBadQuery, "truncated op"},
		{kv.PutCmd([]byte("k"), nil), kv.ErrBadQuery, "put is a command"},
		{kv.GetQuery(nil), kv.ErrBadQuery, "get: empty key"},
		{kv.GetQuery([]byte("k"))[:4], kv.ErrBadQuery, "truncated key length"},
		{kv.ListQuery(nil, nil, 0)[:12], kv.ErrBadQuery, "truncated limit"},
		{kv.GetQuery(make([]byte, kv.MaxKeyBytes+1)), kv.ErrKeyTooLarge, "get: key is 4097 bytes"},
		{kv.ListQuery(make([]byte, kv.MaxKeyBytes+1), nil, 0), kv.ErrKeyTooLarge, "list: key is 4097 bytes"},
	}
	for _, tt := range tests {
		answer, err := s.Query(tt.q)
		if answer != nil || !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("query %x: %x, %q; want nil and %v saying %q", tt.q, answer, err, tt.want, tt.says)
		}
	}
}

func TestDecodeRejectsForeignBytes(t *testing.T) {
	good := kv.New().Apply(fsm.Context{}, kv.PutCmd([]byte("k"), nil))
	tests := [][]byte{nil, {1}, good[:len(good)-1], append(bytes.Clone(good), 0), kv.PutCmd([]byte("k"), nil)}
	for _, b := range tests {
		if _, err := kv.DecodeResult(b); !errors.Is(err, kv.ErrBadResult) {
			t.Errorf("DecodeResult(%x) = %v, want ErrBadResult", b, err)
		}
		if _, err := kv.DecodeList(b); !errors.Is(err, kv.ErrBadResult) {
			t.Errorf("DecodeList(%x) = %v, want ErrBadResult", b, err)
		}
	}
}

func TestRestoreRejectsBadImages(t *testing.T) {
	src := kv.New()
	mustApply(t, src, kv.PutCmd([]byte("k"), []byte("v")))
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
		{"bad magic", flip(0), "magic"},
		{"bad version", flip(4), "unsupported version 0"},
		{"truncated body", image[:len(image)-5], "truncated: body and checksum need"},
		{"flipped body bit", flip(20), "checksum"},
		{"flipped checksum bit", flip(len(image) - 1), "checksum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := kv.New()
			mustApply(t, dst, kv.PutCmd([]byte("mine"), nil))
			err := dst.Restore(bytes.NewReader(tt.image))
			if !errors.Is(err, kv.ErrBadSnapshot) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("Restore = %v, want ErrBadSnapshot saying %q", err, tt.says)
			}
			if got := get(t, dst, "mine"); !got.Found || got.Revision != 1 {
				t.Fatalf("failed Restore changed the store: get mine = %+v", got)
			}
		})
	}
}

// TestModel drives the store and a naive model with the same random valid
// commands and compares every result and, at the end, every key.
func TestModel(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	s, m := kv.New(), newModel()
	keys := workloadKeys()
	for i := range 5000 {
		k := []byte(keys[r.IntN(len(keys))])
		v := []byte{byte('a' + r.IntN(26))}
		var cmd []byte
		var want kv.Result
		var wantErr error
		switch r.IntN(4) {
		case 0:
			cmd = kv.PutCmd(k, v)
			want, wantErr = m.put(k, v)
		case 1:
			cmd = kv.DeleteCmd(k)
			want, wantErr = m.delete(k)
		case 2:
			expect := r.Uint64N(m.rev + 2)
			cmd = kv.CASCmd(k, v, expect)
			want, wantErr = m.cas(k, v, expect)
		default:
			cmd = kv.AppendCmd(k, v)
			want, wantErr = m.append(k, v)
		}
		got, err := kv.DecodeResult(s.Apply(fsm.Context{}, cmd))
		if !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) || !equalResult(got, want) {
			t.Fatalf("step %d %x: got %+v, %v; model says %+v, %v", i, cmd, got, err, want, wantErr)
		}
	}
	all := list(t, s, "", "", 0)
	if len(all.Entries) != len(m.keys) {
		t.Fatalf("store has %d keys, model %d", len(all.Entries), len(m.keys))
	}
	for _, e := range all.Entries {
		me := m.keys[string(e.Key)]
		if string(e.Value) != me.value || e.CreateRevision != me.create || e.ModRevision != me.mod {
			t.Errorf("key %q: store %+v, model %+v", e.Key, e, me)
		}
	}
}

// model is the obvious kv store: a map and a counter.
type model struct {
	rev  uint64
	keys map[string]modelEntry
}

type modelEntry struct {
	value       string
	create, mod uint64
}

func newModel() *model { return &model{keys: map[string]modelEntry{}} }

func (m *model) result(k []byte) kv.Result {
	e, ok := m.keys[string(k)]
	return kv.Result{Revision: m.rev, Found: ok, CreateRevision: e.create, ModRevision: e.mod}
}

func (m *model) put(k, v []byte) (kv.Result, error) {
	m.rev++
	e, ok := m.keys[string(k)]
	if !ok {
		e.create = m.rev
	}
	e.value, e.mod = string(v), m.rev
	m.keys[string(k)] = e
	return m.result(k), nil
}

func (m *model) delete(k []byte) (kv.Result, error) {
	if _, ok := m.keys[string(k)]; !ok {
		return m.result(k), kv.ErrNotFound
	}
	m.rev++
	delete(m.keys, string(k))
	return m.result(k), nil
}

func (m *model) cas(k, v []byte, expect uint64) (kv.Result, error) {
	if m.keys[string(k)].mod != expect {
		return m.result(k), kv.ErrCASConflict
	}
	return m.put(k, v)
}

func (m *model) append(k, v []byte) (kv.Result, error) {
	return m.put(k, append([]byte(m.keys[string(k)].value), v...))
}

func mustApply(t *testing.T, s *kv.Store, cmd []byte) kv.Result {
	t.Helper()
	res, err := kv.DecodeResult(s.Apply(fsm.Context{}, cmd))
	if err != nil {
		t.Fatalf("apply %x: %v", cmd, err)
	}
	return res
}

func get(t *testing.T, s *kv.Store, key string) kv.Result {
	t.Helper()
	answer, err := s.Query(kv.GetQuery([]byte(key)))
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	res, err := kv.DecodeResult(answer)
	if err != nil {
		t.Fatalf("get %q: decode: %v", key, err)
	}
	return res
}

func list(t *testing.T, s *kv.Store, prefix, after string, limit int) kv.ListResult {
	t.Helper()
	answer, err := s.Query(kv.ListQuery([]byte(prefix), []byte(after), limit))
	if err != nil {
		t.Fatalf("list %q: %v", prefix, err)
	}
	res, err := kv.DecodeList(answer)
	if err != nil {
		t.Fatalf("list %q: decode: %v", prefix, err)
	}
	return res
}

func listKeys(l kv.ListResult) []string {
	var keys []string
	for _, e := range l.Entries {
		keys = append(keys, string(e.Key))
	}
	return keys
}

func equalResult(a, b kv.Result) bool {
	return a.Revision == b.Revision && a.Found == b.Found && a.CreateRevision == b.CreateRevision &&
		a.ModRevision == b.ModRevision && bytes.Equal(a.Value, b.Value)
}
