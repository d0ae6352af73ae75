package codec

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Bytes are the types a byte string field can be encoded from.
type Bytes interface{ ~string | ~[]byte }

// FieldBytes is the encoded size of the byte string p: a u32 length and
// the bytes.
func FieldBytes[T Bytes](p T) int { return 4 + len(p) }

// AppendField appends p as a length-prefixed byte string, for Decoder.Field.
// A string longer than a uint32 can count is a caller's bug far past every
// FSM's limit, and encoding it would silently corrupt what is written, so it
// panics.
func AppendField[T Bytes](b []byte, p T) []byte {
	if uint64(len(p)) > math.MaxUint32 {
		panic(fmt.Sprintf("codec: cannot encode a %d-byte field", len(p)))
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
	return append(b, p...)
}

// Quote renders a key, name or owner for an error detail, shortened to its
// first 64 bytes so that a long one does not make a message several times
// its size.
func Quote[T Bytes](p T) string {
	const maxQuoted = 64
	if len(p) > maxQuoted {
		return fmt.Sprintf("%q... (%d bytes)", p[:maxQuoted], len(p))
	}
	return fmt.Sprintf("%q", p)
}
