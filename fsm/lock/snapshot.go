package lock

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"slices"

	"github.com/hasup/hasup/fsm/internal/codec"
)

// The snapshot image, framed as codec.ImageFormat describes (magic,
// version, body length, body, CRC32-C over everything before it):
//
//	magic "HSLK" | version:u8 | bodyLength:u64 | body | crc32c:u32
//	body = fence:u64 count:u64 count*(name owner fence:u64 expiryUnixNanos:i64)
//
// Names are in strictly ascending byte order, so equal tables give equal
// images whatever the map's iteration order. As in package kv, the image is
// built and read whole, and Restore allocates only as bytes arrive.
const (
	snapshotMagic   = "HSLK"
	snapshotVersion = 1
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
	b := imageFormat().Begin(bodyBytes)
	b = binary.BigEndian.AppendUint64(b, t.fence)
	b = binary.BigEndian.AppendUint64(b, uint64(len(names)))
	for _, name := range names {
		rec := t.locks[name]
		b = codec.AppendField(codec.AppendField(b, name), rec.owner)
		b = binary.BigEndian.AppendUint64(b, rec.fence)
		b = binary.BigEndian.AppendUint64(b, uint64(rec.expiryUnixNanos))
	}
	if _, err := w.Write(imageFormat().Finish(b)); err != nil {
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
	body, err := imageFormat().Read(r)
	var restored *Table
	if err == nil {
		restored, err = parseBody(body)
	}
	if err != nil {
		return codec.RestoreError("lock", ErrBadSnapshot, err)
	}
	*t = *restored
	return nil
}

// imageFormat is the framing of the table's snapshot image.
func imageFormat() codec.ImageFormat {
	return codec.ImageFormat{Magic: snapshotMagic, Version: snapshotVersion}
}

// parseBody builds a table from an image's body, checking every invariant a
// Table keeps, so that an image that passed the checksum but was written by
// a buggy writer is still refused.
func parseBody(body []byte) (*Table, error) {
	d := codec.NewDecoder(body)
	t := New()
	t.fence = d.U64("fence")
	count := d.U64("lock count")
	d.CheckCount("lock count", count, minRecordBytes)
	var prev []byte
	fences := make(map[uint64]bool)
	for i := uint64(0); i < count && d.Err() == nil; i++ {
		name, owner := d.Field("name"), d.Field("owner")
		rec := record{owner: string(owner), fence: d.U64("fence"), expiryUnixNanos: int64(d.U64("expiry"))}
		checkRecord(d, i, prev, name, rec, t.fence, fences)
		t.locks[string(name)] = rec
		fences[rec.fence] = true
		prev = name
	}
	d.Finish()
	return t, d.Err()
}

// checkRecord records a problem if record i cannot follow the one named prev
// in a table whose last grant was fence, given the fences already seen.
func checkRecord(d *codec.Decoder, i uint64, prev, name []byte, rec record, fence uint64, seen map[uint64]bool) {
	switch {
	case d.Err() != nil:
	case len(name) == 0 || len(name) > MaxNameBytes:
		d.Failf("lock %d: name of %d bytes, want 1 to %d", i, len(name), MaxNameBytes)
	case len(rec.owner) == 0 || len(rec.owner) > MaxOwnerBytes:
		d.Failf("lock %d: owner of %d bytes, want 1 to %d", i, len(rec.owner), MaxOwnerBytes)
	case i > 0 && bytes.Compare(prev, name) >= 0:
		d.Failf("lock %d: name %s does not sort after %s", i, codec.Quote(name), codec.Quote(prev))
	case rec.fence == 0 || rec.fence > fence:
		d.Failf("lock %d: fence %d, want 1 to the last grant's %d", i, rec.fence, fence)
	case seen[rec.fence]:
		d.Failf("lock %d: fence %d granted twice", i, rec.fence)
	}
}
