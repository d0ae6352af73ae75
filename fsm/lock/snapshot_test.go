package lock

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/hasup/hasup/fsm/internal/codec"
)

// TestRestoreChecksInvariants feeds Restore images whose checksum is right
// but whose body breaks an invariant of Table, as a buggy writer might.
func TestRestoreChecksInvariants(t *testing.T) {
	rec := func(name, owner string, fence uint64, expiry int64) []byte {
		b := codec.AppendField(codec.AppendField(nil, name), owner)
		b = binary.BigEndian.AppendUint64(b, fence)
		return binary.BigEndian.AppendUint64(b, uint64(expiry))
	}
	body := func(fence, count uint64, recs ...[]byte) []byte {
		b := binary.BigEndian.AppendUint64(nil, fence)
		b = binary.BigEndian.AppendUint64(b, count)
		return append(b, bytes.Join(recs, nil)...)
	}
	tests := []struct {
		name string
		body []byte
		says string
	}{
		{"names out of order", body(5, 2, rec("b", "o", 1, 0), rec("a", "o", 2, 0)), `name "a" does not sort after "b"`},
		{"duplicate name", body(5, 2, rec("a", "o", 1, 0), rec("a", "o", 2, 0)), "does not sort after"},
		{"empty name", body(5, 1, rec("", "o", 1, 0)), "name of 0 bytes"},
		{"empty owner", body(5, 1, rec("a", "", 1, 0)), "owner of 0 bytes"},
		{"owner too long", body(5, 1, rec("a", strings.Repeat("o", MaxOwnerBytes+1), 1, 0)), "owner of 1025 bytes"},
		{"fence 0", body(5, 1, rec("a", "o", 0, 0)), "fence 0, want 1 to the last grant's 5"},
		{"fence past the last grant", body(5, 1, rec("a", "o", 6, 0)), "fence 6"},
		{"fence granted twice", body(5, 2, rec("a", "o", 3, 0), rec("b", "o", 3, 0)), "fence 3 granted twice"},
		{"count larger than the body", body(5, 1000), "lock count 1000 exceeds"},
		{"count smaller than the body", body(5, 0, rec("a", "o", 1, 0)), "26 trailing bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New().Restore(bytes.NewReader(wrapBody(tt.body)))
			if !errors.Is(err, ErrBadSnapshot) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("Restore = %v, want ErrBadSnapshot saying %q", err, tt.says)
			}
		})
	}
	if err := New().Restore(bytes.NewReader(wrapBody(body(5, 1, rec("a", "o", 5, -1))))); err != nil {
		t.Fatalf("Restore of a sound hand-made image: %v", err)
	}
}
