package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
	bolt "go.etcd.io/bbolt"
)

func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "node", "hasup.db")
	s, err := Open(path, DefaultOpenTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

func entry(op uint64, cmd string) ensemble.Entry {
	return ensemble.Entry{Op: op, Epoch: 1, View: 2, Kind: ensemble.EntryRequest, Client: 7, Request: op, Time: int64(op) * 10, Seed: op * 3, Cmd: []byte(cmd)}
}

func hard(view, commit uint64) *ensemble.HardState {
	return &ensemble.HardState{Epoch: 1, Members: []hasup.NodeID{"a", "b", "c"}, View: view, Mode: ensemble.ModeNormal, LastNormalView: view, Commit: commit}
}

// model folds writes the way ensemble.Ready defines them.
type model struct {
	d   *ensemble.Durable
	has bool
}

func (m *model) apply(w Write) {
	if m.d == nil {
		m.d = &ensemble.Durable{}
	}
	if w.Hard != nil {
		m.d.Hard, m.has = *w.Hard, true
	}
	if c := w.Checkpoint; c != nil {
		var kept []ensemble.Entry
		for _, e := range m.d.Entries {
			if e.Op > c.Op {
				kept = append(kept, e)
			}
		}
		m.d.Entries, m.d.Checkpoint = kept, *c
	}
	if w.LogFrom > 0 {
		var kept []ensemble.Entry
		for _, e := range m.d.Entries {
			if e.Op < w.LogFrom {
				kept = append(kept, e)
			}
		}
		m.d.Entries = append(kept, w.Entries...)
	}
}

func (m *model) durable() *ensemble.Durable {
	if !m.has {
		return nil
	}
	return m.d
}

func TestCommitAndLoadFollowTheReadySemantics(t *testing.T) {
	s, _ := openTemp(t)
	var m model
	writes := []Write{
		{Ensemble: "e", Hard: hard(0, 0)},
		{Ensemble: "e", LogFrom: 1, Entries: []ensemble.Entry{entry(1, "a"), entry(2, "b"), entry(3, "c")}},
		{Ensemble: "e", Hard: hard(1, 2), LogFrom: 3, Entries: []ensemble.Entry{entry(3, "C"), entry(4, "d")}}, // replace the tail
		{Ensemble: "e", Checkpoint: &ensemble.Checkpoint{Op: 2, Data: []byte("state@2")}, LogFrom: 3, Entries: []ensemble.Entry{entry(3, "C"), entry(4, "d")}},
		{Ensemble: "e", LogFrom: 4}, // a shorter log deletes the stored tail
	}
	for i, w := range writes {
		if err := s.Commit([]Write{w}); err != nil {
			t.Fatal(err)
		}
		m.apply(w)
		got, err := s.Load("e")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, m.durable()) {
			t.Fatalf("after write %d:\n got %+v\nwant %+v", i, got, m.durable())
		}
	}
}

func TestRandomWritesMatchTheModel(t *testing.T) {
	s, path := openTemp(t)
	rng := rand.New(rand.NewPCG(1, 2))
	models := map[hasup.EnsembleName]*model{}
	op := map[hasup.EnsembleName]uint64{}
	ckpt := map[hasup.EnsembleName]uint64{}
	for round := 0; round < 300; round++ {
		var batch []Write
		for _, name := range []hasup.EnsembleName{"x", "y", "z"} {
			if rng.IntN(2) == 0 {
				continue
			}
			w := Write{Ensemble: name}
			if rng.IntN(2) == 0 {
				w.Hard = hard(uint64(round), op[name])
			}
			if op[name] > ckpt[name] && rng.IntN(8) == 0 {
				c := ckpt[name] + 1 + uint64(rng.IntN(int(op[name]-ckpt[name])))
				w.Checkpoint = &ensemble.Checkpoint{Op: c, Data: []byte(fmt.Sprintf("%s@%d", name, c))}
				ckpt[name] = c
			}
			if rng.IntN(2) == 0 {
				from := ckpt[name] + 1 + uint64(rng.IntN(int(op[name]-ckpt[name])+1))
				n := rng.IntN(4)
				w.LogFrom = from
				for i := 0; i < n; i++ {
					w.Entries = append(w.Entries, entry(from+uint64(i), fmt.Sprintf("%s%d.%d", name, round, i)))
				}
				op[name] = from + uint64(n) - 1
			}
			batch = append(batch, w)
			if models[name] == nil {
				models[name] = &model{}
			}
			models[name].apply(w)
		}
		if err := s.Commit(batch); err != nil {
			t.Fatal(err)
		}
	}
	// Reopen: what was committed is durable.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, DefaultOpenTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for name, m := range models {
		got, err := s2.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, m.durable()) {
			t.Errorf("ensemble %s:\n got %+v\nwant %+v", name, got, m.durable())
		}
	}
	names, err := s2.Ensembles()
	if err != nil || len(names) != len(models) {
		t.Errorf("Ensembles() = %v, %v; want %d names", names, err, len(models))
	}
}

func TestSecondOpenOfTheSameFileFailsFastWithErrLocked(t *testing.T) {
	_, path := openTemp(t)
	start := time.Now()
	_, err := Open(path, 100*time.Millisecond)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open = %v, want ErrLocked naming %s", err, path)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second Open took %v", d)
	}
}

func TestCorruptRecordIsReportedNamingEnsembleAndRecord(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(b *bolt.Bucket) error
		record string
	}{
		{"hard state", func(b *bolt.Bucket) error { return flip(b, []byte("hard")) }, "hard state"},
		{"checkpoint", func(b *bolt.Bucket) error { return flip(b, []byte("ckpt")) }, "checkpoint"},
		{"log entry", func(b *bolt.Bucket) error { return flip(b.Bucket([]byte("log")), opKey(2)) }, "log op 2"},
		{"log hole", func(b *bolt.Bucket) error { return b.Bucket([]byte("log")).Delete(opKey(2)) }, "op 3 follows 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, path := openTemp(t)
			err := s.Commit([]Write{{Ensemble: "orders", Hard: hard(1, 1), Checkpoint: &ensemble.Checkpoint{Op: 0, Data: nil}},
				{Ensemble: "orders", LogFrom: 1, Entries: []ensemble.Entry{entry(1, "a"), entry(2, "b"), entry(3, "c")}}})
			if err != nil {
				t.Fatal(err)
			}
			err = s.db.Update(func(tx *bolt.Tx) error { return tc.damage(tx.Bucket(bucketEnsembles).Bucket([]byte("orders"))) })
			if err != nil {
				t.Fatal(err)
			}
			d, err := s.Load("orders")
			if !errors.Is(err, ErrCorrupt) || d != nil {
				t.Fatalf("Load = %+v, %v; want ErrCorrupt", d, err)
			}
			for _, want := range []string{"orders", tc.record, path} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
		})
	}
}

// flip changes one bit of a stored value, as a disk's bit rot would.
func flip(b *bolt.Bucket, key []byte) error {
	v := append([]byte(nil), b.Get(key)...)
	if len(v) == 0 {
		return fmt.Errorf("no value at %q", key)
	}
	v[len(v)-1] ^= 0x10
	return b.Put(key, v)
}

func TestStateWithoutAHardStateLoadsAsEmpty(t *testing.T) {
	s, _ := openTemp(t)
	if err := s.Commit([]Write{{Ensemble: "e", LogFrom: 1, Entries: []ensemble.Entry{entry(1, "a")}}}); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Load("e"); d != nil || err != nil {
		t.Fatalf("Load = %+v, %v; want nil, nil (nothing identifies a replica yet)", d, err)
	}
	if d, err := s.Load("never"); d != nil || err != nil {
		t.Fatalf("Load of an unknown ensemble = %+v, %v", d, err)
	}
}

func TestDeleteRemovesAReplicasState(t *testing.T) {
	s, _ := openTemp(t)
	if err := s.Commit([]Write{{Ensemble: "a", Hard: hard(0, 0)}, {Ensemble: "b", Hard: hard(0, 0)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("a"); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.Load("a"); d != nil {
		t.Fatalf("deleted state still loads: %+v", d)
	}
	if names, _ := s.Ensembles(); !reflect.DeepEqual(names, []hasup.EnsembleName{"b"}) {
		t.Fatalf("Ensembles() = %v, want [b]", names)
	}
}

func TestLostMarkerHoldsUntilTheReplicaWritesAgain(t *testing.T) {
	s, _ := openTemp(t)
	if err := s.Commit([]Write{{Ensemble: "e", Hard: hard(3, 1), LogFrom: 1, Entries: []ensemble.Entry{entry(1, "a")}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkLost("e"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // a restart before the replica writes: still lost
		if d, err := s.Load("e"); !errors.Is(err, ErrLost) || d != nil {
			t.Fatalf("after MarkLost: %v %v, want ErrLost", d, err)
		}
	}
	if err := s.Commit([]Write{{Ensemble: "e", Hard: hard(4, 0)}}); err != nil {
		t.Fatal(err)
	}
	d, err := s.Load("e")
	if err != nil || d == nil || d.Hard.View != 4 || len(d.Entries) != 0 {
		t.Fatalf("after the replica wrote again: %+v %v", d, err)
	}
}
