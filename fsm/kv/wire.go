package kv

import (
	"encoding/binary"
	"fmt"
	"math"
)

// The wire format of commands and queries. Every request starts with an op
// byte and a version byte; the version belongs to that op's layout, so one op
// can change without touching the others. Then come the op's fields in a fixed
// order: byte strings as a big-endian uint32 length and the bytes, numbers as
// big-endian fixed-width integers. Fixed widths (rather than varints) make
// every request have exactly one encoding, which the fuzz tests check by
// re-encoding whatever decodes.
//
//	put     op=1 ver=1 key value
//	delete  op=2 ver=1 key
//	cas     op=3 ver=1 key value expectRevision:u64
//	append  op=4 ver=1 key suffix
//	get     op=5 ver=1 key
//	list    op=6 ver=1 prefix after limit:u32
const wireVersion = 1

// op names a request kind on the wire.
type op byte

// The request kinds; 0 is left unused so that zeroed bytes never decode.
const (
	opPut op = iota + 1
	opDelete
	opCAS
	opAppend
	opGet
	opList
)

// String returns the op's name for error messages.
func (o op) String() string {
	switch o {
	case opPut:
		return "put"
	case opDelete:
		return "delete"
	case opCAS:
		return "cas"
	case opAppend:
		return "append"
	case opGet:
		return "get"
	case opList:
		return "list"
	}
	return fmt.Sprintf("op(%d)", byte(o))
}

// PutCmd returns the command that sets key to value.
func PutCmd(key, value []byte) []byte {
	b := begin(opPut, fieldBytes(key)+fieldBytes(value))
	return appendField(appendField(b, key), value)
}

// DeleteCmd returns the command that removes key. Deleting an absent key
// fails with ErrNotFound.
func DeleteCmd(key []byte) []byte {
	return appendField(begin(opDelete, fieldBytes(key)), key)
}

// CASCmd returns the command that sets key to value only if the key's
// ModRevision is expectRevision. An expectRevision of 0 means "only if the key
// is absent". A failed expectation yields ErrCASConflict.
func CASCmd(key, value []byte, expectRevision uint64) []byte {
	b := begin(opCAS, fieldBytes(key)+fieldBytes(value)+8)
	b = appendField(appendField(b, key), value)
	return binary.BigEndian.AppendUint64(b, expectRevision)
}

// AppendCmd returns the command that appends suffix to key's value, creating
// the key with value suffix if it is absent.
func AppendCmd(key, suffix []byte) []byte {
	b := begin(opAppend, fieldBytes(key)+fieldBytes(suffix))
	return appendField(appendField(b, key), suffix)
}

// GetQuery returns the query for key's value and revisions; read the answer
// with DecodeResult. A missing key is not an error: the Result says !Found.
func GetQuery(key []byte) []byte {
	return appendField(begin(opGet, fieldBytes(key)), key)
}

// ListQuery returns the query for the keys that start with prefix (all keys
// if it is empty), in byte order, starting after the key after (from the
// first if it is empty), at most limit of them (no count limit if limit <= 0;
// a limit above math.MaxUint32 counts as math.MaxUint32). Read the answer
// with DecodeList; to page, pass the last key of one page as the next after.
func ListQuery(prefix, after []byte, limit int) []byte {
	n := uint32(min(uint64(max(limit, 0)), math.MaxUint32))
	b := begin(opList, fieldBytes(prefix)+fieldBytes(after)+4)
	b = appendField(appendField(b, prefix), after)
	return binary.BigEndian.AppendUint32(b, n)
}

// request is a decoded command or query. Its byte slices alias the bytes it
// was decoded from, which belong to the caller: copy what is kept.
type request struct {
	op       op
	key      []byte // the key, or a List's prefix
	value    []byte // a Put's or CAS's value, an Append's suffix
	after    []byte // a List's resume point
	revision uint64 // a CAS's expected revision
	limit    uint32 // a List's count limit, 0 for none
}

// decodeRequest decodes any command or query, checking its structure and its
// size limits but not whether its op is allowed where it was sent.
func decodeRequest(b []byte) (request, *opError) {
	d := decoder{b: b}
	req := request{op: op(d.u8("op"))}
	if v := d.u8("version"); d.err == nil && v != wireVersion {
		d.failf("op %s: unsupported version %d, want %d", req.op, v, wireVersion)
	}
	switch req.op {
	case opPut, opAppend:
		req.key, req.value = d.field("key"), d.field("value")
	case opCAS:
		req.key, req.value = d.field("key"), d.field("value")
		req.revision = d.u64("expected revision")
	case opDelete, opGet:
		req.key = d.field("key")
	case opList:
		req.key, req.after = d.field("prefix"), d.field("after")
		req.limit = d.u32("limit")
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
	switch {
	case r.op != opList && len(r.key) == 0:
		return newOpError(codeBadCommand, "%s: empty key", r.op)
	case len(r.key) > MaxKeyBytes:
		return newOpError(codeKeyTooLarge, "%s: key is %d bytes, limit %d", r.op, len(r.key), MaxKeyBytes)
	case len(r.after) > MaxKeyBytes:
		return newOpError(codeKeyTooLarge, "%s: after key is %d bytes, limit %d", r.op, len(r.after), MaxKeyBytes)
	case len(r.value) > MaxValueBytes:
		return newOpError(codeValueTooLarge, "%s: value is %d bytes, limit %d", r.op, len(r.value), MaxValueBytes)
	}
	return nil
}

// begin starts an encoded request with room for n more bytes.
func begin(o op, n int) []byte {
	return append(make([]byte, 0, 2+n), byte(o), wireVersion)
}

// fieldBytes is the encoded size of the byte string p.
func fieldBytes(p []byte) int { return 4 + len(p) }

// appendField appends p as a length-prefixed byte string. A string longer
// than a uint32 can count is a caller's bug far past every limit, and
// encoding it would silently corrupt the request, so it panics.
func appendField(b, p []byte) []byte {
	if uint64(len(p)) > math.MaxUint32 {
		panic(fmt.Sprintf("kv: cannot encode a %d-byte field", len(p)))
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
	return append(b, p...)
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

// u32 reads a big-endian uint32.
func (d *decoder) u32(what string) uint32 {
	if p := d.take(4, what); p != nil {
		return binary.BigEndian.Uint32(p)
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
	n := d.u32(what + " length")
	return d.take(uint64(n), what)
}

// finish records a problem if bytes are left over: a request has exactly one
// encoding, so trailing bytes mean the sender and receiver disagree.
func (d *decoder) finish() {
	if d.err == nil && len(d.b) > 0 {
		d.failf("%d trailing bytes", len(d.b))
	}
}
