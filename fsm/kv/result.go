package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/hasup/hasup/fsm/internal/codec"
)

// The wire format of answers, after a version byte:
//
//	result  ver=1 code:u8 revision:u64 found:u8 createRevision:u64 modRevision:u64 value detail
//	list    ver=1 revision:u64 more:u8 count:u32 count*(key value createRevision:u64 modRevision:u64)
//
// A result's code names the operation's error (0 for none) and detail says
// what happened in words; a list holds no error because a failed query
// returns its error directly.

// Result is the outcome of a command, or the answer to a Get query.
type Result struct {
	// Revision is the store's revision after the command, or when the
	// query was answered.
	Revision uint64
	// Found reports whether the key exists after the command. After a
	// failed command it describes the key as it stands, so a CAS conflict
	// carries the ModRevision to retry with.
	Found bool
	// CreateRevision is the revision that created the key, 0 if !Found.
	CreateRevision uint64
	// ModRevision is the revision of the key's last change, 0 if !Found.
	ModRevision uint64
	// Value is the key's value, set only by a Get: a command's result leaves
	// it out, because results are kept in the client table.
	Value []byte
}

// Entry is one key of a List answer.
type Entry struct {
	Key            []byte // the key, never empty
	Value          []byte // the key's value
	CreateRevision uint64 // the revision that created the key
	ModRevision    uint64 // the revision of the key's last change
}

// ListResult is the answer to a List query.
type ListResult struct {
	// Revision is the store's revision when the query was answered.
	Revision uint64
	// Entries are the keys found, in byte order.
	Entries []Entry
	// More reports that the limit or MaxListBytes cut the page short:
	// more keys match after the last entry.
	More bool
}

// code names an operation's error in a result.
type code byte

// The operation error codes.
const (
	codeOK code = iota
	codeBadCommand
	codeCASConflict
	codeNotFound
	codeKeyTooLarge
	codeValueTooLarge
)

// Sentinel returns the exported error that c names, nil for codeOK or an
// unknown code.
func (c code) Sentinel() error {
	switch c {
	case codeBadCommand:
		return ErrBadCommand
	case codeCASConflict:
		return ErrCASConflict
	case codeNotFound:
		return ErrNotFound
	case codeKeyTooLarge:
		return ErrKeyTooLarge
	case codeValueTooLarge:
		return ErrValueTooLarge
	}
	return nil
}

// opError is an operation's error as a result carries it: a code that names
// a sentinel, and a detail for people.
type opError = codec.OpError[code]

// queryError turns a request's decoding error into Query's error: a
// malformed query is ErrBadQuery, not ErrBadCommand.
func queryError(e *opError) error {
	if e.Code == codeBadCommand {
		return fmt.Errorf("%w: %s", ErrBadQuery, e.Detail)
	}
	return e
}

// appendResult appends the encoding of res with the error err (nil for
// success).
func appendResult(b []byte, res Result, err *opError) []byte {
	c, detail := codec.Status(err)
	b = append(b, wireVersion, byte(c))
	b = binary.BigEndian.AppendUint64(b, res.Revision)
	b = append(b, boolByte(res.Found))
	b = binary.BigEndian.AppendUint64(b, res.CreateRevision)
	b = binary.BigEndian.AppendUint64(b, res.ModRevision)
	b = codec.AppendField(b, res.Value)
	return codec.AppendField(b, detail)
}

// DecodeResult decodes the result of a command or Get query. It returns the
// operation's error, if any, wrapping one of ErrBadCommand, ErrCASConflict,
// ErrNotFound, ErrKeyTooLarge or ErrValueTooLarge; the Result is still
// filled in then. Bytes that no Store produced yield ErrBadResult. Value is
// a copy: b is not retained.
func DecodeResult(b []byte) (Result, error) {
	d := codec.NewDecoder(b)
	version, c := d.U8("version"), code(d.U8("code"))
	res := Result{Revision: d.U64("revision")}
	found := d.U8("found flag")
	res.CreateRevision, res.ModRevision = d.U64("create revision"), d.U64("mod revision")
	value, detail := d.Field("value"), d.Field("detail")
	d.Finish()
	codec.CheckStatus(d, version, wireVersion, c, len(detail))
	checkResult(d, found, res, len(value))
	if d.Err() != nil {
		return Result{}, fmt.Errorf("%w: %v", ErrBadResult, d.Err())
	}
	res.Found, res.Value = found == 1, bytes.Clone(value)
	return res, codec.ResultError(c, detail)
}

// checkResult records a problem if a result whose structure and status are
// sound says something about its key that no Store says.
func checkResult(d *codec.Decoder, found byte, res Result, valueBytes int) {
	switch {
	case d.Err() != nil:
	case found > 1:
		d.Failf("found flag is %d", found)
	case found == 0 && (res.CreateRevision != 0 || res.ModRevision != 0 || valueBytes != 0):
		d.Failf("absent key has revisions or a value")
	case found == 1 && !revisionsValid(res.CreateRevision, res.ModRevision, res.Revision):
		d.Failf("revisions create=%d mod=%d store=%d out of order", res.CreateRevision, res.ModRevision, res.Revision)
	}
}

// revisionsValid reports whether a key's revisions can belong to a store at
// revision rev: a key is created by some mutation, then changed no earlier.
func revisionsValid(create, mod, rev uint64) bool {
	return 1 <= create && create <= mod && mod <= rev
}

// listHeaderBytes is the size of a List answer without its entries.
const listHeaderBytes = 1 + 8 + 1 + 4

// minEntryBytes is the size of an entry with an empty key and value: a count
// larger than the bytes left divided by it is a lie, and must not size an
// allocation.
const minEntryBytes = 4 + 4 + 8 + 8

// entryBytes is the encoded size of an entry.
func entryBytes(keyBytes, valueBytes int) int {
	return minEntryBytes + keyBytes + valueBytes
}

// appendPage appends the encoding of a List answer.
func (s *Store) appendPage(b []byte, page listPage) []byte {
	b = append(b, wireVersion)
	b = binary.BigEndian.AppendUint64(b, page.revision)
	b = append(b, boolByte(page.more))
	b = binary.BigEndian.AppendUint32(b, uint32(len(page.keys)))
	for _, k := range page.keys {
		b = appendEntry(b, k, s.entries[k])
	}
	return b
}

// appendEntry appends one key with its value and revisions.
func appendEntry(b []byte, key string, e *entry) []byte {
	b = codec.AppendField(b, key)
	b = codec.AppendField(b, e.value)
	b = binary.BigEndian.AppendUint64(b, e.createRevision)
	return binary.BigEndian.AppendUint64(b, e.modRevision)
}

// DecodeList decodes the answer to a List query. Bytes that no Store
// produced yield ErrBadResult. Keys and values are copies: b is not
// retained.
func DecodeList(b []byte) (ListResult, error) {
	d := codec.NewDecoder(b)
	if v := d.U8("version"); d.Err() == nil && v != wireVersion {
		d.Failf("unsupported version %d, want %d", v, wireVersion)
	}
	res := ListResult{Revision: d.U64("revision")}
	more := d.U8("more flag")
	if d.Err() == nil && more > 1 {
		d.Failf("more flag is %d", more)
	}
	res.More = more == 1
	res.Entries = readEntries(d, uint64(d.U32("entry count")), res.Revision, func(key, value []byte, e Entry) Entry {
		e.Key, e.Value = bytes.Clone(key), bytes.Clone(value)
		return e
	})
	d.Finish()
	if d.Err() != nil {
		return ListResult{}, fmt.Errorf("%w: %v", ErrBadResult, d.Err())
	}
	return res, nil
}

// readEntries reads count entries of a store at revision rev, checking that
// keys ascend strictly and revisions are in order, and returns what keep
// makes of each: keep receives key and value aliasing the decoder's bytes,
// and the revisions in e. The count is checked against the bytes left
// before it sizes anything.
func readEntries[T any](d *codec.Decoder, count, rev uint64, keep func(key, value []byte, e Entry) T) []T {
	d.CheckCount("entry count", count, minEntryBytes)
	if d.Err() != nil {
		return nil
	}
	out := make([]T, 0, count)
	var prev []byte
	for i := uint64(0); i < count && d.Err() == nil; i++ {
		key, value := d.Field("key"), d.Field("value")
		e := Entry{CreateRevision: d.U64("create revision"), ModRevision: d.U64("mod revision")}
		checkEntry(d, i, prev, key, value, e, rev)
		if d.Err() == nil {
			out = append(out, keep(key, value, e))
		}
		prev = key
	}
	return out
}

// checkEntry records a problem if entry i cannot follow prev in a store at
// revision rev.
func checkEntry(d *codec.Decoder, i uint64, prev, key, value []byte, e Entry, rev uint64) {
	switch {
	case d.Err() != nil:
	case len(key) == 0 || len(key) > MaxKeyBytes:
		d.Failf("entry %d: key of %d bytes, want 1 to %d", i, len(key), MaxKeyBytes)
	case len(value) > MaxValueBytes:
		d.Failf("entry %d: value of %d bytes, limit %d", i, len(value), MaxValueBytes)
	case i > 0 && bytes.Compare(prev, key) >= 0:
		d.Failf("entry %d: key %s does not sort after %s", i, codec.Quote(key), codec.Quote(prev))
	case !revisionsValid(e.CreateRevision, e.ModRevision, rev):
		d.Failf("entry %d: revisions create=%d mod=%d store=%d out of order", i, e.CreateRevision, e.ModRevision, rev)
	}
}

// boolByte encodes a flag as one byte.
func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}
