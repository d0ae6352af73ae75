package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/hasup/hasup/ensemble"
)

// decoder reads fields from b in order. The first error sticks: every later
// read returns a zero value, so a decode function reads straight through and
// checks err once at the end.
type decoder struct {
	b   []byte
	ctx string // prefix naming the value being decoded, e.g. "message: entry 3: "
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s%s", ErrMalformed, d.ctx, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) version() {
	if v := d.byte("version"); d.err == nil && v != Version {
		d.fail("version %d, want %d", v, Version)
	}
}

// end rejects trailing bytes.
func (d *decoder) end() {
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
}

func (d *decoder) byte(field string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("%s: truncated", field)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) bool(field string) bool {
	switch v := d.byte(field); v {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail("%s: bool byte %d, want 0 or 1", field, v)
		return false
	}
}

// uvarint reads a minimally encoded uvarint.
func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	switch {
	case n == 0:
		d.fail("%s: truncated", field)
		return 0
	case n < 0:
		d.fail("%s: varint overflows 64 bits", field)
		return 0
	case n > 1 && d.b[n-1] == 0:
		d.fail("%s: non-minimal varint", field)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// varint reads a zig-zag varint, as binary.AppendVarint writes it.
func (d *decoder) varint(field string) int64 {
	u := d.uvarint(field)
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

// count reads a list length and checks that the bytes left can hold that
// many items of at least minBytes each, so the caller may allocate it.
func (d *decoder) count(field string, minBytes int) int {
	n := d.uvarint(field + " count")
	if d.err != nil {
		return 0
	}
	if n > uint64(len(d.b)/minBytes) {
		d.fail("%s count %d exceeds what %d bytes left can hold", field, n, len(d.b))
		return 0
	}
	return int(n)
}

// bytes reads a length-prefixed byte string as a copy; empty is nil.
func (d *decoder) bytes(field string) []byte {
	n := d.uvarint(field + " length")
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("%s length %d exceeds %d bytes left", field, n, len(d.b))
		return nil
	}
	if n == 0 {
		return nil
	}
	v := make([]byte, n)
	copy(v, d.b)
	d.b = d.b[n:]
	return v
}

func (d *decoder) string(field string) string {
	n := d.uvarint(field + " length")
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail("%s length %d exceeds %d bytes left", field, n, len(d.b))
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}

func (d *decoder) entryBody() ensemble.Entry {
	var e ensemble.Entry
	e.Op = d.uvarint("op")
	e.Epoch = d.uvarint("epoch")
	e.View = d.uvarint("view")
	e.Kind = ensemble.EntryKind(d.byte("kind"))
	e.Client = d.uvarint("client")
	e.Request = d.uvarint("request")
	e.Time = d.varint("time")
	e.Seed = d.uvarint("seed")
	e.Cmd = d.bytes("cmd")
	return e
}
