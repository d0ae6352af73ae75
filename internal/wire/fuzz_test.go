package wire

import (
	"bytes"
	"testing"

	"github.com/hasup/hasup/ensemble"
)

// Each target checks that decoding never panics and that whatever decodes
// re-encodes to exactly the input: the encoding is canonical.

func garbage(f *testing.F) {
	for _, b := range [][]byte{nil, {0}, {Version}, {Version, 0x80}, {Version, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
		{Version, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, bytes.Repeat([]byte{0xff}, 40)} {
		f.Add(b)
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(AppendEntry(nil, fullEntry(1)))
	f.Add(AppendEntry(nil, ensemble.Entry{}))
	garbage(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if err != nil {
			return
		}
		if again := AppendEntry(nil, e); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %x gives %x", b, again)
		}
	})
}

func FuzzDecodeHardState(f *testing.F) {
	f.Add(AppendHardState(nil, fullHardState()))
	f.Add(AppendHardState(nil, ensemble.HardState{}))
	garbage(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeHardState(b)
		if err != nil {
			return
		}
		if again := AppendHardState(nil, h); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %x gives %x", b, again)
		}
	})
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add(AppendMessage(nil, fullMessage()))
	f.Add(AppendMessage(nil, ensemble.Message{}))
	f.Add(AppendMessage(nil, ensemble.Message{Type: ensemble.MsgPrepare, Entries: []ensemble.Entry{{Op: 1}, {Op: 2}}}))
	garbage(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err != nil {
			return
		}
		if again := AppendMessage(nil, m); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %x gives %x", b, again)
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	f.Add(AppendFrame(nil, 1, nil))
	f.Add(AppendFrame(nil, 2, AppendMessage(nil, fullMessage())))
	f.Add(AppendFrame(AppendFrame(nil, 1, []byte("a")), 2, []byte("bc")))
	f.Add([]byte{Version, 1, 0, 0, 0, 5, 0, 0, 0, 0, 'h'})
	f.Add([]byte{Version, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	garbage(f)
	const max = 1 << 16
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		for {
			start := len(b) - r.Len()
			typ, p, err := ReadFrame(r, max)
			if err != nil {
				return
			}
			if len(p) > max {
				t.Fatalf("payload of %d bytes above max %d", len(p), max)
			}
			end := len(b) - r.Len()
			if again := AppendFrame(nil, typ, p); !bytes.Equal(again, b[start:end]) {
				t.Fatalf("re-encoding %x gives %x", b[start:end], again)
			}
		}
	})
}
