package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/hasup/hasup/fsm"
	"github.com/hasup/hasup/fsm/internal/codec"
)

// TestRestoreChecksInvariants feeds Restore images whose checksum is right
// but whose body breaks an invariant of Store, as a buggy writer might.
func TestRestoreChecksInvariants(t *testing.T) {
	entry := func(key, value string, create, mod uint64) []byte {
		b := codec.AppendField(codec.AppendField(nil, key), value)
		b = binary.BigEndian.AppendUint64(b, create)
		return binary.BigEndian.AppendUint64(b, mod)
	}
	body := func(rev, count uint64, entries ...[]byte) []byte {
		b := binary.BigEndian.AppendUint64(nil, rev)
		b = binary.BigEndian.AppendUint64(b, count)
		return append(b, bytes.Join(entries, nil)...)
	}
	tests := []struct {
		name string
		body []byte
		says string
	}{
		{"keys out of order", body(5, 2, entry("b", "", 1, 1), entry("a", "", 2, 2)), `key "a" does not sort after "b"`},
		{"duplicate key", body(5, 2, entry("a", "", 1, 1), entry("a", "", 2, 2)), "does not sort after"},
		{"empty key", body(5, 1, entry("", "", 1, 1)), "key of 0 bytes"},
		{"key too long", body(5, 1, entry(strings.Repeat("k", MaxKeyBytes+1), "", 1, 1)), "key of 4097 bytes"},
		{"mod revision past the store's", body(5, 1, entry("a", "", 1, 6)), "revisions create=1 mod=6 store=5"},
		{"created after modified", body(5, 1, entry("a", "", 3, 2)), "out of order"},
		{"create revision 0", body(5, 1, entry("a", "", 0, 2)), "out of order"},
		{"count larger than the body", body(5, 1000), "entry count 1000 exceeds what 0 bytes can hold"},
		{"count smaller than the body", body(5, 0, entry("a", "", 1, 1)), "25 trailing bytes"},
		{"body cut inside an entry", body(5, 2, entry("a", "", 1, 1), entry("b", "", 2, 2))[:65], "truncated mod revision"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New().Restore(bytes.NewReader(wrapBody(tt.body)))
			if !errors.Is(err, ErrBadSnapshot) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("Restore = %v, want ErrBadSnapshot saying %q", err, tt.says)
			}
		})
	}
}

// TestRestoreReadsOnlyTheImage checks that Restore leaves what follows the
// image in the reader, so images can travel inside a larger stream.
func TestRestoreReadsOnlyTheImage(t *testing.T) {
	s := New()
	s.Apply(fsm.Context{}, PutCmd([]byte("k"), []byte("v")))
	image := snapshotBytes(t, s)
	r := bytes.NewReader(append(bytes.Clone(image), "next"...))
	if err := New().Restore(r); err != nil {
		t.Fatal(err)
	}
	if r.Len() != len("next") {
		t.Fatalf("Restore left %d bytes, want the 4 after the image", r.Len())
	}
}
