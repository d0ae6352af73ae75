package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
)

// ImageFormat is the framing of one FSM's snapshot image:
//
//	magic | version:u8 | bodyLength:u64 | body | crc32c:u32
//
// The magic names the FSM, so that one FSM's image is never restored into
// another. The CRC32-C (Castagnoli) covers everything before it, header
// included, so a flipped bit anywhere is caught. The body length makes the
// image self-delimiting, so images can travel inside a larger stream, and
// tells truncation apart from corruption.
//
// An image is built whole in memory (Begin, the body, Finish) and read whole
// before its body is parsed: streaming would halve the peak memory but
// would have to parse before the checksum is known good. Read allocates
// only as bytes actually arrive, never what a length field claims.
type ImageFormat struct {
	Magic   string // a few bytes naming the FSM, "HSKV"
	Version byte   // the version of the FSM's body layout
}

// HeaderBytes is the size of an image's header: magic, version and body
// length.
func (f ImageFormat) HeaderBytes() int { return len(f.Magic) + 1 + 8 }

// Begin starts an image whose body will be bodyBytes long, with room for
// the body and the checksum. The caller appends the body and calls Finish.
func (f ImageFormat) Begin(bodyBytes int) []byte {
	b := make([]byte, 0, f.HeaderBytes()+bodyBytes+4)
	b = append(b, f.Magic...)
	b = append(b, f.Version)
	return binary.BigEndian.AppendUint64(b, uint64(bodyBytes))
}

// Finish appends the checksum to an image that Begin started and the
// caller filled. A body of another length than Begin was told is a broken
// invariant of the caller, and writing it would make an image that every
// replica refuses, so it panics.
func (f ImageFormat) Finish(b []byte) []byte {
	h := f.HeaderBytes()
	if len(b) < h || binary.BigEndian.Uint64(b[h-8:h]) != uint64(len(b)-h) {
		panic(fmt.Sprintf("codec: %s image of %d bytes does not match its header", f.Magic, len(b)))
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

// ReadError reports that reading an image failed for a reason of the
// reader's own, rather than that the image is bad.
type ReadError struct {
	Part string // the part being read, "header" or "body"
	Err  error  // the reader's error
}

// Error names the part and the reader's error.
func (e *ReadError) Error() string { return "read snapshot " + e.Part + ": " + e.Err.Error() }

// Unwrap returns the reader's error.
func (e *ReadError) Unwrap() error { return e.Err }

// Read reads exactly one image from r, and nothing after it, checks its
// header and checksum, and returns its body. A failing reader yields a
// *ReadError; any other error means the image is truncated, corrupted or of
// another FSM or version.
func (f ImageFormat) Read(r io.Reader) ([]byte, error) {
	header := make([]byte, f.HeaderBytes())
	if _, err := io.ReadFull(r, header); err != nil {
		return nil, readError("header", err)
	}
	if magic := string(header[:len(f.Magic)]); magic != f.Magic {
		return nil, fmt.Errorf("magic %q, want %q", magic, f.Magic)
	}
	if v := header[len(f.Magic)]; v != f.Version {
		return nil, fmt.Errorf("unsupported version %d, want %d", v, f.Version)
	}
	n := binary.BigEndian.Uint64(header[len(f.Magic)+1:])
	if n > math.MaxInt64-4 {
		return nil, fmt.Errorf("body length %d is impossible", n)
	}
	rest, err := io.ReadAll(io.LimitReader(r, int64(n)+4))
	if err != nil {
		return nil, readError("body", err)
	}
	if uint64(len(rest)) < n+4 {
		return nil, fmt.Errorf("truncated: body and checksum need %d bytes, have %d", n+4, len(rest))
	}
	body, stored := rest[:n], binary.BigEndian.Uint32(rest[n:])
	table := crc32.MakeTable(crc32.Castagnoli)
	if sum := crc32.Update(crc32.Checksum(header, table), table, body); sum != stored {
		return nil, fmt.Errorf("checksum %08x, stored %08x", sum, stored)
	}
	return body, nil
}

// RestoreError turns an error from Read, or from parsing the body Read
// returned, into what the Restore of package pkg reports: a failing
// reader's error as "pkg: read snapshot part: err", wrapping the reader's
// error; anything else as bad (the package's sentinel) followed by err's
// message.
func RestoreError(pkg string, bad, err error) error {
	if re, ok := errors.AsType[*ReadError](err); ok {
		return fmt.Errorf("%s: read snapshot %s: %w", pkg, re.Part, re.Err)
	}
	return fmt.Errorf("%w: %v", bad, err)
}

// readError describes a failed read of part of an image: running out of
// bytes is a truncated image, anything else is the reader's own error.
func readError(part string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("truncated %s", part)
	}
	return &ReadError{Part: part, Err: err}
}
