package lock

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// The wire format of commands and queries, the same discipline as package
// kv's: an op byte, a version byte that belongs to that op's layout, then
// the op's fields in a fixed order, byte strings as a big-endian uint32
// length and the bytes, numbers as big-endian fixed-width integers, so that
// every request has exactly one encoding.
//
//	acquire  op=1 ver=1 name owner ttlNanos:i64
//	release  op=2 ver=1 name owner
//	holder   op=3 ver=1 name
//
// The decoder below repeats package kv's. Sharing it would need a package
// both import (fsm/internal/wire); until a third FSM wants it, the copy is
// cheaper than the coupling.
const wireVersion = 1

// op names a request kind on the wire.
type op byte

// The request kinds; 0 is left unused so that zeroed bytes never decode.
const (
	opAcquire op = iota + 1
	opRelease
	opHolder
)

// String returns the op's name for error messages.
func (o op) String() string {
	switch o {
	case opAcquire:
		return "acquire"
	case opRelease:
		return "release"
	case opHolder:
		return "holder"
	}
	return fmt.Sprintf("op(%d)", byte(o))
}

// AcquireCmd returns the command that grants name to owner for ttl, or
// renews owner's lease (see the package doc). ttl must be in (0, MaxTTL].
func AcquireCmd(name, owner string, ttl time.Duration) []byte {
	b := begin(opAcquire, fieldBytes(name)+fieldBytes(owner)+8)
	b = appendField(appendField(b, name), owner)
	return binary.BigEndian.AppendUint64(b, uint64(ttl))
}

// ReleaseCmd returns the command that ends owner's lease on name.
func ReleaseCmd(name, owner string) []byte {
	b := begin(opRelease, fieldBytes(name)+fieldBytes(owner))
	return appendField(appendField(b, name), owner)
}

// HolderQuery returns the query for name's current or last lease; read the
// answer with DecodeResult.
func HolderQuery(name string) []byte {
	return appendField(begin(opHolder, fieldBytes(name)), name)
}

// request is a decoded command or query. Its byte slices alias the bytes it
// was decoded from, which belong to the caller: copy what is kept.
type request struct {
	op    op
	name  []byte
	owner []byte        // acquire and release only
	ttl   time.Duration // acquire only
}

// decodeRequest decodes any command or query, checking its structure and its
// limits but not whether its op is allowed where it was sent.
func decodeRequest(b []byte) (request, *opError) {
	d := decoder{b: b}
	req := request{op: op(d.u8("op"))}
	if v := d.u8("version"); d.err == nil && v != wireVersion {
		d.failf("op %s: unsupported version %d, want %d", req.op, v, wireVersion)
	}
	switch req.op {
	case opAcquire:
		req.name, req.owner = d.field("name"), d.field("owner")
		req.ttl = time.Duration(d.u64("ttl"))
	case opRelease:
		req.name, req.owner = d.field("name"), d.field("owner")
	case opHolder:
		req.name = d.field("name")
	default:
		d.failf("unknown %s", req.op)
	}
	d.finish()
	if d.err != nil {
		return request{}, newOpError(codeBadCommand, "%v", d.err)
	}
	return req, req.validate()
}

// validate checks the limits on a structurally sound request.
func (r request) validate() *opError {
	hasOwner := r.op != opHolder
	switch {
	case len(r.name) == 0 || len(r.name) > MaxNameBytes:
		return newOpError(codeBadCommand, "%s: name is %d bytes, want 1 to %d", r.op, len(r.name), MaxNameBytes)
	case hasOwner && (len(r.owner) == 0 || len(r.owner) > MaxOwnerBytes):
		return newOpError(codeBadCommand, "%s: owner is %d bytes, want 1 to %d", r.op, len(r.owner), MaxOwnerBytes)
	case r.op == opAcquire && (r.ttl <= 0 || r.ttl > MaxTTL):
		return newOpError(codeBadCommand, "%s: ttl %v, want more than 0 and at most %v", r.op, r.ttl, MaxTTL)
	}
	return nil
}

// begin starts an encoded request with room for n more bytes.
func begin(o op, n int) []byte {
	return append(make([]byte, 0, 2+n), byte(o), wireVersion)
}

// fieldBytes is the encoded size of the string s.
func fieldBytes(s string) int { return 4 + len(s) }

// appendField appends s as a length-prefixed byte string. A string longer
// than a uint32 can count is a caller's bug far past every limit, and
// encoding it would silently corrupt the request, so it panics.
func appendField(b []byte, s string) []byte {
	if uint64(len(s)) > math.MaxUint32 {
		panic(fmt.Sprintf("lock: cannot encode a %d-byte field", len(s)))
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// decoder reads fixed-width integers and length-prefixed byte strings from b.
// The first problem sticks in err and turns later reads into no-ops, so a
// caller can read a whole layout and check once. It never allocates: byte
// strings alias b, and a length is checked against what is left before it
// is used.
type decoder struct {
	b   []byte
	err error
}

// failf records a problem unless an earlier one is already recorded.
func (d *decoder) failf(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

// take returns the next n bytes, or nil after a problem.
func (d *decoder) take(n uint64, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.failf("truncated %s: need %d bytes, have %d", what, n, len(d.b))
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

// u8 reads one byte.
func (d *decoder) u8(what string) byte {
	if p := d.take(1, what); p != nil {
		return p[0]
	}
	return 0
}

// u64 reads a big-endian uint64.
func (d *decoder) u64(what string) uint64 {
	if p := d.take(8, what); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

// field reads a length-prefixed byte string.
func (d *decoder) field(what string) []byte {
	p := d.take(4, what+" length")
	if p == nil {
		return nil
	}
	return d.take(uint64(binary.BigEndian.Uint32(p)), what)
}

// finish records a problem if bytes are left over: a request has exactly one
// encoding, so trailing bytes mean the sender and receiver disagree.
func (d *decoder) finish() {
	if d.err == nil && len(d.b) > 0 {
		d.failf("%d trailing bytes", len(d.b))
	}
}
