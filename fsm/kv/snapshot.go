package kv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
)

// The snapshot image:
//
//	magic "HSKV" | version:u8 | bodyLength:u64 | body | crc32c:u32
//	body = revision:u64 count:u64 count*(key value createRevision:u64 modRevision:u64)
//
// Keys are in strictly ascending byte order, so equal states give equal
// images. The CRC32-C (Castagnoli) covers everything before it, header
// included, so a flipped bit anywhere is caught. The body length makes the
// image self-delimiting and tells truncation apart from corruption.
//
// Snapshot builds the image in memory and Restore reads it whole before
// parsing; streaming would halve the peak memory but would have to parse
// before the checksum is known good. Restore allocates only as the bytes
// actually arrive (io.ReadAll grows with the input), never what a length
// field claims.
const (
	snapshotMagic       = "HSKV"
	snapshotVersion     = 1
	snapshotHeaderBytes = len(snapshotMagic) + 1 + 8
)

// Snapshot writes an image of the whole store to w.
func (s *Store) Snapshot(w io.Writer) error {
	bodyBytes := 8 + 8
	for _, k := range s.keys {
		bodyBytes += entryBytes(len(k), len(s.entries[k].value))
	}
	b := make([]byte, 0, snapshotHeaderBytes+bodyBytes+4)
	b = append(b, snapshotMagic...)
	b = append(b, snapshotVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(bodyBytes))
	b = binary.BigEndian.AppendUint64(b, s.revision)
	b = binary.BigEndian.AppendUint64(b, uint64(len(s.keys)))
	for _, k := range s.keys {
		b = appendEntry(b, k, s.entries[k])
	}
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
	if _, err := w.Write(b); err != nil {
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
	body, err := readImage(r)
	if err != nil {
		return err
	}
	restored, err := parseBody(body)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	*s = *restored
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
	return fmt.Errorf("kv: read snapshot %s: %w", part, err)
}

// parseBody builds a store from an image's body, checking every invariant a
// Store keeps, so that an image that passed the checksum but was written by a
// buggy writer is still refused.
func parseBody(body []byte) (*Store, error) {
	d := decoder{b: body}
	s := New()
	s.revision = d.u64("revision")
	count := d.u64("key count")
	s.keys = readEntries(&d, count, s.revision, func(key, value []byte, e Entry) string {
		k := string(key)
		s.entries[k] = &entry{value: append([]byte(nil), value...), createRevision: e.CreateRevision, modRevision: e.ModRevision}
		return k
	})
	d.finish()
	return s, d.err
}
