// Package codec holds the byte-level mechanics that hasup's built-in FSMs
// (fsm/kv, fsm/lock) share: a bounds-checked decoder for their fixed-width,
// length-prefixed wire formats, the request and result framing around each
// FSM's own fields, and the checksummed snapshot image.
//
// Each FSM keeps its own layouts, limits, sentinel errors and messages; this
// package knows nothing of keys or locks. Its errors carry no package prefix
// so that the FSM can wrap them in its own sentinels ("kv: bad command:
// truncated value length: ...").
//
// # Design
//
// Every format is big-endian and fixed-width: integers as u8, u32 or u64,
// byte strings as a u32 length and the bytes. Fixed widths rather than
// varints give every value exactly one encoding, which the FSMs' fuzz tests
// check by re-encoding whatever decodes. Rejected: encoding/gob or protobuf,
// whose encodings are not canonical and whose decoders allocate what a
// length field claims before the bytes arrive.
package codec

import (
	"encoding/binary"
	"fmt"
)

// Decoder reads fixed-width integers and length-prefixed byte strings from
// a byte slice. The first problem sticks (see Err) and turns later reads
// into no-ops that return zero values, so a caller can read a whole layout
// and check once. It never allocates: byte strings alias the input, and a
// length is checked against what is left before it is used.
type Decoder struct {
	b   []byte
	err error
}

// NewDecoder returns a decoder that reads b. The slices it returns alias b.
func NewDecoder(b []byte) *Decoder {
	return &Decoder{b: b}
}

// TruncatedError reports that the input ended inside a field: the field
// needed Need bytes and only Have were left.
type TruncatedError struct {
	Field string // the field's name as the caller gave it, "value length"
	Need  uint64 // the bytes the field needed
	Have  int    // the bytes that were left
}

// Error says which field was cut short and by how much.
func (e *TruncatedError) Error() string {
	return fmt.Sprintf("truncated %s: need %d bytes, have %d", e.Field, e.Need, e.Have)
}

// Err returns the first problem met: a *TruncatedError, the trailing bytes
// Finish found, or what the caller reported with Failf. It is nil while the
// input has been sound.
func (d *Decoder) Err() error { return d.err }

// Len returns the number of bytes not read yet.
func (d *Decoder) Len() int { return len(d.b) }

// Failf records a problem, formatted as by fmt.Errorf, unless an earlier one
// is already recorded: the first problem is the one worth reporting.
func (d *Decoder) Failf(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

// U8 reads one byte; what names it in an error.
func (d *Decoder) U8(what string) byte {
	if p := d.take(1, what); p != nil {
		return p[0]
	}
	return 0
}

// U32 reads a big-endian uint32; what names it in an error.
func (d *Decoder) U32(what string) uint32 {
	if p := d.take(4, what); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

// U64 reads a big-endian uint64; what names it in an error.
func (d *Decoder) U64(what string) uint64 {
	if p := d.take(8, what); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

// Field reads a byte string written by AppendField: a u32 length (named
// what+" length" in an error) and that many bytes. The result aliases the
// input and has no spare capacity, so appending to it cannot overwrite the
// bytes after it. It is nil after a problem, and empty but not nil for an
// empty string.
func (d *Decoder) Field(what string) []byte {
	n := d.U32(what + " length")
	return d.take(uint64(n), what)
}

// CheckCount records a problem if count items of at least minItemBytes each
// cannot fit in the bytes left. A caller checks a count this way before the
// count sizes an allocation, so that a lying count costs nothing.
func (d *Decoder) CheckCount(what string, count uint64, minItemBytes int) {
	if d.err == nil && count > uint64(len(d.b))/uint64(minItemBytes) {
		d.Failf("%s %d exceeds what %d bytes can hold", what, count, len(d.b))
	}
}

// Finish records a problem if bytes are left over: every value has exactly
// one encoding, so trailing bytes mean the writer and reader disagree.
func (d *Decoder) Finish() {
	if d.err == nil && len(d.b) > 0 {
		d.Failf("%d trailing bytes", len(d.b))
	}
}

// take returns the next n bytes, or nil after a problem.
func (d *Decoder) take(n uint64, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = &TruncatedError{Field: what, Need: n, Have: len(d.b)}
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}
