package kv

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/hasup/hasup/fsm/internal/codec"
)

// The wire format of commands and queries. Every request starts with an op
// byte and a version byte; the version belongs to that op's layout, so one op
// can change without touching the others. Then come the op's fields in a fixed
// order: byte strings as a big-endian uint32 length and the bytes, numbers as
// big-endian fixed-width integers: package codec's encoding. Fixed widths
// (rather than varints) make every request have exactly one encoding, which
// the fuzz tests check by re-encoding whatever decodes.
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
	b := begin(opPut, codec.FieldBytes(key)+codec.FieldBytes(value))
	return codec.AppendField(codec.AppendField(b, key), value)
}

// DeleteCmd returns the command that removes key. Deleting an absent key
// fails with ErrNotFound.
func DeleteCmd(key []byte) []byte {
	return codec.AppendField(begin(opDelete, codec.FieldBytes(key)), key)
}

// CASCmd returns the command that sets key to value only if the key's
// ModRevision is expectRevision. An expectRevision of 0 means "only if the key
// is absent". A failed expectation yields ErrCASConflict.
func CASCmd(key, value []byte, expectRevision uint64) []byte {
	b := begin(opCAS, codec.FieldBytes(key)+codec.FieldBytes(value)+8)
	b = codec.AppendField(codec.AppendField(b, key), value)
	return binary.BigEndian.AppendUint64(b, expectRevision)
}

// AppendCmd returns the command that appends suffix to key's value, creating
// the key with value suffix if it is absent.
func AppendCmd(key, suffix []byte) []byte {
	b := begin(opAppend, codec.FieldBytes(key)+codec.FieldBytes(suffix))
	return codec.AppendField(codec.AppendField(b, key), suffix)
}

// GetQuery returns the query for key's value and revisions; read the answer
// with DecodeResult. A missing key is not an error: the Result says !Found.
func GetQuery(key []byte) []byte {
	return codec.AppendField(begin(opGet, codec.FieldBytes(key)), key)
}

// ListQuery returns the query for the keys that start with prefix (all keys
// if it is empty), in byte order, starting after the key after (from the
// first if it is empty), at most limit of them (no count limit if limit <= 0;
// a limit above math.MaxUint32 counts as math.MaxUint32). Read the answer
// with DecodeList; to page, pass the last key of one page as the next after.
func ListQuery(prefix, after []byte, limit int) []byte {
	n := uint32(min(uint64(max(limit, 0)), math.MaxUint32))
	b := begin(opList, codec.FieldBytes(prefix)+codec.FieldBytes(after)+4)
	b = codec.AppendField(codec.AppendField(b, prefix), after)
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
	d := codec.NewDecoder(b)
	req := request{op: codec.ReadOp[op](d, wireVersion)}
	switch req.op {
	case opPut, opAppend:
		req.key, req.value = d.Field("key"), d.Field("value")
	case opCAS:
		req.key, req.value = d.Field("key"), d.Field("value")
		req.revision = d.U64("expected revision")
	case opDelete, opGet:
		req.key = d.Field("key")
	case opList:
		req.key, req.after = d.Field("prefix"), d.Field("after")
		req.limit = d.U32("limit")
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
	switch {
	case r.op != opList && len(r.key) == 0:
		return codec.NewOpError(codeBadCommand, "%s: empty key", r.op)
	case len(r.key) > MaxKeyBytes:
		return codec.NewOpError(codeKeyTooLarge, "%s: key is %d bytes, limit %d", r.op, len(r.key), MaxKeyBytes)
	case len(r.after) > MaxKeyBytes:
		return codec.NewOpError(codeKeyTooLarge, "%s: after key is %d bytes, limit %d", r.op, len(r.after), MaxKeyBytes)
	case len(r.value) > MaxValueBytes:
		return codec.NewOpError(codeValueTooLarge, "%s: value is %d bytes, limit %d", r.op, len(r.value), MaxValueBytes)
	}
	return nil
}

// begin starts an encoded request with room for n more bytes.
func begin(o op, n int) []byte { return codec.BeginRequest(o, wireVersion, n) }
