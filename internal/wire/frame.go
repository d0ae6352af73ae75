package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// A frame is:
//
//	version  1 byte   Version
//	type     1 byte   chosen by the caller
//	length   4 bytes  big-endian payload length, at most MaxFrameBytes
//	crc      4 bytes  big-endian CRC32C (Castagnoli) of type and payload
//	payload  length bytes
const frameHeaderBytes = 10

// readChunkBytes is the first buffer ReadFrame allocates for a payload; it
// doubles as bytes arrive, so a peer that declares a large frame and sends
// little makes the reader allocate little.
const readChunkBytes = 64 << 10

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// AppendFrame appends a frame of type typ carrying payload to b. It panics
// if payload is longer than MaxFrameBytes: no reader would accept the frame,
// so the caller has broken its own size bound.
func AppendFrame(b []byte, typ byte, payload []byte) []byte {
	if len(payload) > MaxFrameBytes {
		panic(fmt.Sprintf("wire: frame payload of %d bytes exceeds MaxFrameBytes %d", len(payload), MaxFrameBytes))
	}
	b = append(b, Version, typ)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	b = binary.BigEndian.AppendUint32(b, frameCRC(typ, payload))
	return append(b, payload...)
}

// ReadFrame reads one frame from r and returns its type and payload (nil
// when empty). It refuses a declared length above max (max <= 0 or above
// MaxFrameBytes means MaxFrameBytes) before reading the payload, and never
// allocates more than the declared length. At a clean end of stream, before
// any byte of a frame, it returns io.EOF. A bad version, an oversized
// length, a CRC mismatch or a stream that ends inside a frame is an error
// wrapping ErrMalformed (a short read also wraps io.ErrUnexpectedEOF);
// other read errors are returned wrapped.
func ReadFrame(r io.Reader, max int) (typ byte, payload []byte, err error) {
	if max <= 0 || max > MaxFrameBytes {
		max = MaxFrameBytes
	}
	var hdr [frameHeaderBytes]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			return 0, nil, io.EOF
		}
		return 0, nil, readError("header", n, frameHeaderBytes, err)
	}
	if hdr[0] != Version {
		return 0, nil, fmt.Errorf("%w: frame: version %d, want %d", ErrMalformed, hdr[0], Version)
	}
	typ = hdr[1]
	length := binary.BigEndian.Uint32(hdr[2:6])
	sum := binary.BigEndian.Uint32(hdr[6:10])
	if uint64(length) > uint64(max) {
		return 0, nil, fmt.Errorf("%w: frame: length %d exceeds max %d", ErrMalformed, length, max)
	}
	payload, err = readPayload(r, int(length))
	if err != nil {
		return 0, nil, err
	}
	if got := frameCRC(typ, payload); got != sum {
		return 0, nil, fmt.Errorf("%w: frame: crc %#08x, header says %#08x", ErrMalformed, got, sum)
	}
	return typ, payload, nil
}

// readPayload reads n bytes, growing its buffer as they arrive.
func readPayload(r io.Reader, n int) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	buf := make([]byte, 0, min(n, readChunkBytes))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(n, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		k, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		if err != nil {
			return nil, readError("payload", len(buf), n, err)
		}
	}
	return buf, nil
}

func readError(part string, got, want int, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: frame %s: short read, %d of %d bytes: %w", ErrMalformed, part, got, want, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("wire: read frame %s: %w", part, err)
}

func frameCRC(typ byte, payload []byte) uint32 {
	c := crc32.Update(0, castagnoli, []byte{typ})
	return crc32.Update(c, castagnoli, payload)
}
