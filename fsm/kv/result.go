package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"
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

// sentinel returns the exported error that c names, nil for codeOK or an
// unknown code.
func (c code) sentinel() error {
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
type opError struct {
	code   code
	detail string
}

// newOpError returns the error with code c and a formatted detail.
func newOpError(c code, format string, args ...any) *opError {
	return &opError{code: c, detail: fmt.Sprintf(format, args...)}
}

// Error returns the sentinel's message followed by the detail.
func (e *opError) Error() string {
	if e.detail == "" {
		return e.code.sentinel().Error()
	}
	return e.code.sentinel().Error() + ": " + e.detail
}

// Unwrap returns the sentinel, for errors.Is.
func (e *opError) Unwrap() error { return e.code.sentinel() }

// queryError turns a request's decoding error into Query's error: a
// malformed query is ErrBadQuery, not ErrBadCommand.
func queryError(e *opError) error {
	if e.code == codeBadCommand {
		return fmt.Errorf("%w: %s", ErrBadQuery, e.detail)
	}
	return e
}

// resultFixedBytes is the size of a result without its value and detail.
const resultFixedBytes = 2 + 8 + 1 + 8 + 8 + 4 + 4

// appendResult appends the encoding of res with the error err (nil for
// success).
func appendResult(b []byte, res Result, err *opError) []byte {
	c, detail := codeOK, ""
	if err != nil {
		c, detail = err.code, err.detail
	}
	b = append(b, wireVersion, byte(c))
	b = binary.BigEndian.AppendUint64(b, res.Revision)
	b = append(b, boolByte(res.Found))
	b = binary.BigEndian.AppendUint64(b, res.CreateRevision)
	b = binary.BigEndian.AppendUint64(b, res.ModRevision)
	b = appendField(b, res.Value)
	return appendField(b, []byte(detail))
}

// DecodeResult decodes the result of a command or Get query. It returns the
// operation's error, if any, wrapping one of ErrBadCommand, ErrCASConflict,
// ErrNotFound, ErrKeyTooLarge or ErrValueTooLarge; the Result is still
// filled in then. Bytes that no Store produced yield ErrBadResult. Value is
// a copy: b is not retained.
func DecodeResult(b []byte) (Result, error) {
	d := decoder{b: b}
	version, c := d.u8("version"), code(d.u8("code"))
	res := Result{Revision: d.u64("revision")}
	found := d.u8("found flag")
	res.CreateRevision, res.ModRevision = d.u64("create revision"), d.u64("mod revision")
	value, detail := d.field("value"), d.field("detail")
	d.finish()
	checkResult(&d, version, c, found, res, len(value), len(detail))
	if d.err != nil {
		return Result{}, fmt.Errorf("%w: %v", ErrBadResult, d.err)
	}
	res.Found, res.Value = found == 1, bytes.Clone(value)
	if c != codeOK {
		return res, &opError{code: c, detail: string(detail)}
	}
	return res, nil
}

// checkResult records a problem if a structurally sound result says
// something no Store says.
func checkResult(d *decoder, version byte, c code, found byte, res Result, valueBytes, detailBytes int) {
	switch {
	case d.err != nil:
	case version != wireVersion:
		d.failf("unsupported version %d, want %d", version, wireVersion)
	case c != codeOK && c.sentinel() == nil:
		d.failf("unknown error code %d", c)
	case c == codeOK && detailBytes > 0:
		d.failf("success carries an error detail")
	case found > 1:
		d.failf("found flag is %d", found)
	case found == 0 && (res.CreateRevision != 0 || res.ModRevision != 0 || valueBytes != 0):
		d.failf("absent key has revisions or a value")
	case found == 1 && !revisionsValid(res.CreateRevision, res.ModRevision, res.Revision):
		d.failf("revisions create=%d mod=%d store=%d out of order", res.CreateRevision, res.ModRevision, res.Revision)
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
	b = appendField(b, []byte(key))
	b = appendField(b, e.value)
	b = binary.BigEndian.AppendUint64(b, e.createRevision)
	return binary.BigEndian.AppendUint64(b, e.modRevision)
}

// DecodeList decodes the answer to a List query. Bytes that no Store
// produced yield ErrBadResult. Keys and values are copies: b is not
// retained.
func DecodeList(b []byte) (ListResult, error) {
	d := decoder{b: b}
	if v := d.u8("version"); d.err == nil && v != wireVersion {
		d.failf("unsupported version %d, want %d", v, wireVersion)
	}
	res := ListResult{Revision: d.u64("revision")}
	more := d.u8("more flag")
	if d.err == nil && more > 1 {
		d.failf("more flag is %d", more)
	}
	res.More = more == 1
	res.Entries = readEntries(&d, uint64(d.u32("entry count")), res.Revision, func(key, value []byte, e Entry) Entry {
		e.Key, e.Value = bytes.Clone(key), bytes.Clone(value)
		return e
	})
	d.finish()
	if d.err != nil {
		return ListResult{}, fmt.Errorf("%w: %v", ErrBadResult, d.err)
	}
	return res, nil
}

// readEntries reads count entries of a store at revision rev, checking that
// keys ascend strictly and revisions are in order, and returns what keep
// makes of each: keep receives key and value aliasing the decoder's bytes,
// and the revisions in e. The count is checked against the bytes left
// before it sizes anything.
func readEntries[T any](d *decoder, count, rev uint64, keep func(key, value []byte, e Entry) T) []T {
	if d.err == nil && count > uint64(len(d.b))/minEntryBytes {
		d.failf("entry count %d exceeds what %d bytes can hold", count, len(d.b))
	}
	if d.err != nil {
		return nil
	}
	out := make([]T, 0, count)
	var prev []byte
	for i := uint64(0); i < count && d.err == nil; i++ {
		key, value := d.field("key"), d.field("value")
		e := Entry{CreateRevision: d.u64("create revision"), ModRevision: d.u64("mod revision")}
		checkEntry(d, i, prev, key, value, e, rev)
		if d.err == nil {
			out = append(out, keep(key, value, e))
		}
		prev = key
	}
	return out
}

// checkEntry records a problem if entry i cannot follow prev in a store at
// revision rev.
func checkEntry(d *decoder, i uint64, prev, key, value []byte, e Entry, rev uint64) {
	switch {
	case d.err != nil:
	case len(key) == 0 || len(key) > MaxKeyBytes:
		d.failf("entry %d: key of %d bytes, want 1 to %d", i, len(key), MaxKeyBytes)
	case len(value) > MaxValueBytes:
		d.failf("entry %d: value of %d bytes, limit %d", i, len(value), MaxValueBytes)
	case i > 0 && bytes.Compare(prev, key) >= 0:
		d.failf("entry %d: key %s does not sort after %s", i, quote(key), quote(prev))
	case !revisionsValid(e.CreateRevision, e.ModRevision, rev):
		d.failf("entry %d: revisions create=%d mod=%d store=%d out of order", i, e.CreateRevision, e.ModRevision, rev)
	}
}

// boolByte encodes a flag as one byte.
func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}
