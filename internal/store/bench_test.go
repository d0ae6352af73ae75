package store

import (
	"testing"

	"github.com/hasup/hasup/ensemble"
)

// BenchmarkCommitOneEntry is the physical floor of a durable write here: one
// bbolt transaction with fsync holding one 64-byte entry and a hard state.
func BenchmarkCommitOneEntry(b *testing.B) {
	s, _ := openTemp(b)
	h := hard(1, 0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e := ensemble.Entry{Op: uint64(i + 1), Kind: ensemble.EntryRequest, Cmd: make([]byte, 64)}
		if err := s.Commit([]Write{{Ensemble: "bench", Hard: h, LogFrom: e.Op, Entries: []ensemble.Entry{e}}}); err != nil {
			b.Fatal(err)
		}
	}
}
