package lock

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
)

// The snapshot image:
//
//	magic "HSLK" | version:u8 | bodyLength:u64 | body | crc32c:u32
//	body = fence:u64 count:u64 count*(name owner fence:u64 expiryUnixNanos:i64)
//
// Names are in strictly ascending byte order, so equal tables give equal
// images whatever the map's iteration order. The CRC32-C (Castagnoli) covers
// everything before it, header included; the body length makes the image
// self-delimiting and tells truncation apart from corruption. As in package
// kv, the image is built and read whole, and Restore allocates only as bytes
// arrive.
const (
	snapshotMagic       = "HSLK"
	snapshotVersion     = 1
	snapshotHeaderBytes = len(snapshotMagic) + 1 + 8
	// minRecordBytes is the size of a record with empty name and owner: a
	// count larger than the bytes left divided by it is a lie, and must not
	// size an allocation.
	minRecordBytes = 4 + 4 + 8 + 8
)

// Snapshot writes an image of the whole table to w.
func (t *Table) Snapshot(w io.Writer) error {
	names := make([]string, 0, len(t.locks))
	bodyBytes := 8 + 8
	for name, rec := range t.locks {
		names = append(names, name)
		bodyBytes += minRecordBytes + len(name) + len(rec.owner)
	}
	slices.Sort(names)
	b := make([]byte, 0, snapshotHeaderBytes+bodyBytes+4)
	b = append(b, snapshotMagic...)
	b = append(b, snapshotVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(bodyBytes))
	b = binary.BigEndian.AppendUint64(b, t.fence)
	b = binary.BigEndian.AppendUint64(b, uint64(len(names)))
	for _, name := range names {
		rec := t.locks[name]
		b = appendField(appendField(b, name), rec.owner)
		b = binary.BigEndian.AppendUint64(b, rec.fence)
		b = binary.BigEndian.AppendUint64(b, uint64(rec.expiryUnixNanos))
	}
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("lock: write snapshot: %w", err)
	}
	return nil
}

// Restore replaces the whole table with the image read from r, as written by
// Snapshot. It reads exactly the image and nothing after it. A truncated,
// corrupted or unsupported image yields an error wrapping ErrBadSnapshot,
// and a failing reader its own error; either way the table keeps the state
// it had, which is more than fsm.FSM asks.
func (t *Table) Restore(r io.Reader) error {
	body, err := readImage(r)
	if err != nil {
		return err
	}
	restored, err := parseBody(body)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	*t = *restored
	return nil
}

// readImage reads one image from r, checks its header and checksum, and
// returns its body.
func readImage(r io.Reader) ([]byte, error) {
	var header [snapshotHeaderBytes]byte
	if _, err := io.ReadFull(r, header[:]); err != nil {
		return nil, readError("header", err)
	}
	if magic := string(header[:len(snapshotMagic)]); magic != snapshotMagic {
		return nil, fmt.Errorf("%w: magic %q, want %q", ErrBadSnapshot, magic, snapshotMagic)
	}
	if v := header[len(snapshotMagic)]; v != snapshotVersion {
		return nil, fmt.Errorf("%w: unsupported version %d, want %d", ErrBadSnapshot, v, snapshotVersion)
	}
	n := binary.BigEndian.Uint64(header[len(snapshotMagic)+1:])
	if n > math.MaxInt64-4 {
		return nil, fmt.Errorf("%w: body length %d is impossible", ErrBadSnapshot, n)
	}
	rest, err := io.ReadAll(io.LimitReader(r, int64(n)+4))
	if err != nil {
		return nil, readError("body", err)
	}
	if uint64(len(rest)) < n+4 {
		return nil, fmt.Errorf("%w: truncated: body and checksum need %d bytes, have %d", ErrBadSnapshot, n+4, len(rest))
	}
	body, stored := rest[:n], binary.BigEndian.Uint32(rest[n:])
	table := crc32.MakeTable(crc32.Castagnoli)
	if sum := crc32.Update(crc32.Checksum(header[:], table), table, body); sum != stored {
		return nil, fmt.Errorf("%w: checksum %08x, stored %08x", ErrBadSnapshot, sum, stored)
	}
	return body, nil
}

// readError describes a failed read of part of an image: running out of
// bytes is a truncated image, anything else is the reader's own error.
func readError(part string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated %s", ErrBadSnapshot, part)
	}
	return fmt.Errorf("lock: read snapshot %s: %w", part, err)
}

// parseBody builds a table from an image's body, checking every invariant a
// Table keeps, so that an image that passed the checksum but was written by
// a buggy writer is still refused.
func parseBody(body []byte) (*Table, error) {
	d := decoder{b: body}
	t := New()
	t.fence = d.u64("fence")
	count := d.u64("lock count")
	if d.err == nil && count > uint64(len(d.b))/minRecordBytes {
		d.failf("lock count %d exceeds what %d bytes can hold", count, len(d.b))
	}
	var prev []byte
	fences := make(map[uint64]bool)
	for i := uint64(0); i < count && d.err == nil; i++ {
		name, owner := d.field("name"), d.field("owner")
		rec := record{owner: string(owner), fence: d.u64("fence"), expiryUnixNanos: int64(d.u64("expiry"))}
		checkRecord(&d, i, prev, name, rec, t.fence, fences)
		t.locks[string(name)] = rec
		fences[rec.fence] = true
		prev = name
	}
	d.finish()
	return t, d.err
}

// checkRecord records a problem if record i cannot follow the one named prev
// in a table whose last grant was fence, given the fences already seen.
func checkRecord(d *decoder, i uint64, prev, name []byte, rec record, fence uint64, seen map[uint64]bool) {
	switch {
	case d.err != nil:
	case len(name) == 0 || len(name) > MaxNameBytes:
		d.failf("lock %d: name of %d bytes, want 1 to %d", i, len(name), MaxNameBytes)
	case len(rec.owner) == 0 || len(rec.owner) > MaxOwnerBytes:
		d.failf("lock %d: owner of %d bytes, want 1 to %d", i, len(rec.owner), MaxOwnerBytes)
	case i > 0 && bytes.Compare(prev, name) >= 0:
		d.failf("lock %d: name %s does not sort after %s", i, quote(string(name)), quote(string(prev)))
	case rec.fence == 0 || rec.fence > fence:
		d.failf("lock %d: fence %d, want 1 to the last grant's %d", i, rec.fence, fence)
	case seen[rec.fence]:
		d.failf("lock %d: fence %d granted twice", i, rec.fence)
	}
}
