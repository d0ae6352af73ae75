package codec_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/hasup/hasup/fsm/internal/codec"
)

// FuzzDecoder reads the input by a fuzzed layout (each byte of layout picks
// the next field's kind: u8, u32, u64 or byte string) and checks the
// Decoder against a naive model of the format: it never panics, it accounts
// for every byte, an input it accepts is exactly the re-encoding of what it
// read, and an input it refuses has a problem the model can name.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3}, encodeLayout(layout{a: 1, b: 2, c: 3, s: []byte("x")}))
	f.Add([]byte{3, 3}, []byte{0, 0, 0, 1, 'a', 0, 0, 0, 0})
	f.Add([]byte{3}, []byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{2}, []byte{1, 2, 3})
	f.Add([]byte{0}, []byte{1, 2})
	f.Add([]byte{}, []byte{})
	f.Add([]byte{1, 1, 1}, bytes.Repeat([]byte{9}, 12))
	f.Fuzz(func(t *testing.T, layout, in []byte) {
		d := codec.NewDecoder(in)
		var again []byte
		for _, kind := range layout {
			before := d.Len()
			again = appendRead(again, d, kind%4)
			if d.Err() == nil && before-d.Len() != fieldSize(kind%4, in[len(in)-before:]) {
				t.Fatalf("field of kind %d consumed %d bytes", kind%4, before-d.Len())
			}
		}
		d.Finish()
		te, truncated := errors.AsType[*codec.TruncatedError](d.Err())
		switch {
		case !bytes.HasPrefix(in, again):
			t.Fatalf("read %x, which is not where %x starts", again, in)
		case d.Err() == nil && len(again) != len(in):
			t.Fatalf("accepted %x, which re-encodes as %x", in, again)
		case truncated && (te.Need <= uint64(te.Have) || te.Have != d.Len()):
			t.Fatalf("truncation %+v with %d bytes left", te, d.Len())
		case d.Err() != nil && !truncated && (d.Len() == 0 || len(again)+d.Len() != len(in)):
			t.Fatalf("error %v with %d bytes left after %d read of %d", d.Err(), d.Len(), len(again), len(in))
		}
	})
}

// appendRead reads one field of the given kind from d and appends its
// encoding, by hand, to b.
func appendRead(b []byte, d *codec.Decoder, kind byte) []byte {
	switch kind {
	case 0:
		v := d.U8("u8")
		if d.Err() == nil {
			b = append(b, v)
		}
	case 1:
		v := d.U32("u32")
		if d.Err() == nil {
			b = binary.BigEndian.AppendUint32(b, v)
		}
	case 2:
		v := d.U64("u64")
		if d.Err() == nil {
			b = binary.BigEndian.AppendUint64(b, v)
		}
	default:
		p := d.Field("field")
		if d.Err() == nil {
			b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
			b = append(b, p...)
		}
	}
	return b
}

// fieldSize is the naive model's size of a field of the given kind at the
// start of rest, which holds at least the field.
func fieldSize(kind byte, rest []byte) int {
	switch kind {
	case 0:
		return 1
	case 1:
		return 4
	case 2:
		return 8
	}
	return 4 + int(binary.BigEndian.Uint32(rest))
}
