package registry

import (
	"fmt"
	"io"

	"github.com/hasup/hasup/fsm/internal/codec"
)

// The snapshot image, framed as codec.ImageFormat describes (magic,
// version, body length, body, CRC32-C over everything before it):
//
//	magic "HSRG" | version:u8 | bodyLength:u64 | body | crc32c:u32
//	body = state (see state.go)
//
// The body is exactly the state a StateQuery answer carries, so equal
// registries give equal images. As in package kv, the image is built and
// read whole, and Restore allocates only as bytes arrive.
const (
	snapshotMagic   = "HSRG"
	snapshotVersion = 1
)

// Snapshot writes an image of the whole registry to w.
func (r *Registry) Snapshot(w io.Writer) error {
	b := imageFormat().Begin(stateBytes(r.state))
	b = appendState(b, r.state)
	if _, err := w.Write(imageFormat().Finish(b)); err != nil {
		return fmt.Errorf("registry: write snapshot: %w", err)
	}
	return nil
}

// Restore replaces the whole registry with the image read from r, as
// written by Snapshot. It reads exactly the image and nothing after it. A
// truncated, corrupted or unsupported image, or one whose state breaks an
// invariant of the registry, yields an error wrapping ErrBadSnapshot, and a
// failing reader its own error; either way the registry keeps the state it
// had, which is more than fsm.FSM asks.
func (r *Registry) Restore(rd io.Reader) error {
	body, err := imageFormat().Read(rd)
	var s State
	if err == nil {
		d := codec.NewDecoder(body)
		s = readState(d)
		d.Finish()
		err = d.Err()
	}
	if err != nil {
		return codec.RestoreError("registry", ErrBadSnapshot, err)
	}
	r.state = s
	return nil
}

// imageFormat is the framing of the registry's snapshot image.
func imageFormat() codec.ImageFormat {
	return codec.ImageFormat{Magic: snapshotMagic, Version: snapshotVersion}
}
