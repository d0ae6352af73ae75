package lock

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hasup/hasup/fsm/internal/codec"
)

// The wire format of commands and queries, the same discipline as package
// kv's, and the same decoder and framing (package codec): an op byte, a
// version byte that belongs to that op's layout, then the op's fields in a
// fixed order, byte strings as a big-endian uint32 length and the bytes,
// numbers as big-endian fixed-width integers, so that every request has
// exactly one encoding.
//
//	acquire  op=1 ver=1 name owner ttlNanos:i64
//	release  op=2 ver=1 name owner
//	holder   op=3 ver=1 name
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
	b := begin(opAcquire, codec.FieldBytes(name)+codec.FieldBytes(owner)+8)
	b = codec.AppendField(codec.AppendField(b, name), owner)
	return binary.BigEndian.AppendUint64(b, uint64(ttl))
}

// ReleaseCmd returns the command that ends owner's lease on name.
func ReleaseCmd(name, owner string) []byte {
	b := begin(opRelease, codec.FieldBytes(name)+codec.FieldBytes(owner))
	return codec.AppendField(codec.AppendField(b, name), owner)
}

// HolderQuery returns the query for name's current or last lease; read the
// answer with DecodeResult.
func HolderQuery(name string) []byte {
	return codec.AppendField(begin(opHolder, codec.FieldBytes(name)), name)
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
	d := codec.NewDecoder(b)
	req := request{op: codec.ReadOp[op](d, wireVersion)}
	switch req.op {
	case opAcquire:
		req.name, req.owner = d.Field("name"), d.Field("owner")
		req.ttl = time.Duration(d.U64("ttl"))
	case opRelease:
		req.name, req.owner = d.Field("name"), d.Field("owner")
	case opHolder:
		req.name = d.Field("name")
	default:
		d.Failf("unknown %s", req.op)
	}
	d.Finish()
	if d.Err() != nil {
		return request{}, codec.NewOpError(codeBadCommand, "%v", d.Err())
	}
	return req, req.validate()
}

// validate checks the limits on a structurally sound request.
func (r request) validate() *opError {
	hasOwner := r.op != opHolder
	switch {
	case len(r.name) == 0 || len(r.name) > MaxNameBytes:
		return codec.NewOpError(codeBadCommand, "%s: name is %d bytes, want 1 to %d", r.op, len(r.name), MaxNameBytes)
	case hasOwner && (len(r.owner) == 0 || len(r.owner) > MaxOwnerBytes):
		return codec.NewOpError(codeBadCommand, "%s: owner is %d bytes, want 1 to %d", r.op, len(r.owner), MaxOwnerBytes)
	case r.op == opAcquire && (r.ttl <= 0 || r.ttl > MaxTTL):
		return codec.NewOpError(codeBadCommand, "%s: ttl %v, want more than 0 and at most %v", r.op, r.ttl, MaxTTL)
	}
	return nil
}

// begin starts an encoded request with room for n more bytes.
func begin(o op, n int) []byte { return codec.BeginRequest(o, wireVersion, n) }
