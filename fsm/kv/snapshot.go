package kv

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/hasup/hasup/fsm/internal/codec"
)

// The snapshot image, framed as codec.ImageFormat describes (magic,
// version, body length, body, CRC32-C over everything before it):
//
//	magic "HSKV" | version:u8 | bodyLength:u64 | body | crc32c:u32
//	body = revision:u64 count:u64 count*(key value createRevision:u64 modRevision:u64)
//
// Keys are in strictly ascending byte order, so equal states give equal
// images. Snapshot builds the image in memory and Restore reads it whole
// before parsing, allocating only as the bytes actually arrive.
const (
	snapshotMagic   = "HSKV"
	snapshotVersion = 1
)

// Snapshot writes an image of the whole store to w.
func (s *Store) Snapshot(w io.Writer) error {
	bodyBytes := 8 + 8
	for _, k := range s.keys {
		bodyBytes += entryBytes(len(k), len(s.entries[k].value))
	}
	b := imageFormat().Begin(bodyBytes)
	b = binary.BigEndian.AppendUint64(b, s.revision)
	b = binary.BigEndian.AppendUint64(b, uint64(len(s.keys)))
	for _, k := range s.keys {
		b = appendEntry(b, k, s.entries[k])
	}
	if _, err := w.Write(imageFormat().Finish(b)); err != nil {
		return fmt.Errorf("kv: write snapshot: %w", err)
	}
	return nil
}

// Restore replaces the whole store with the image read from r, as written by
// Snapshot. It reads exactly the image and nothing after it. A truncated,
// corrupted or unsupported image yields an error wrapping ErrBadSnapshot,
// and a failing reader its own error; either way the store keeps the state
// it had, which is more than fsm.FSM asks.
func (s *Store) Restore(r io.Reader) error {
	body, err := imageFormat().Read(r)
	var restored *Store
	if err == nil {
		restored, err = parseBody(body)
	}
	if err != nil {
		return codec.RestoreError("kv", ErrBadSnapshot, err)
	}
	*s = *restored
	return nil
}

// imageFormat is the framing of the store's snapshot image.
func imageFormat() codec.ImageFormat {
	return codec.ImageFormat{Magic: snapshotMagic, Version: snapshotVersion}
}

// parseBody builds a store from an image's body, checking every invariant a
// Store keeps, so that an image that passed the checksum but was written by a
// buggy writer is still refused.
func parseBody(body []byte) (*Store, error) {
	d := codec.NewDecoder(body)
	s := New()
	s.revision = d.U64("revision")
	count := d.U64("key count")
	s.keys = readEntries(d, count, s.revision, func(key, value []byte, e Entry) string {
		k := string(key)
		s.entries[k] = &entry{value: append([]byte(nil), value...), createRevision: e.CreateRevision, modRevision: e.ModRevision}
		return k
	})
	d.Finish()
	return s, d.Err()
}
