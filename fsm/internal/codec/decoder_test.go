package codec_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hasup/hasup/fsm/internal/codec"
)

// layout is a record of every kind of field, read in this order: a u8, a
// u32, a u64 and a byte string.
type layout struct {
	a byte
	b uint32
	c uint64
	s []byte
}

// encodeLayout encodes l by hand, without the code under test.
func encodeLayout(l layout) []byte {
	b := []byte{l.a, byte(l.b >> 24), byte(l.b >> 16), byte(l.b >> 8), byte(l.b)}
	for i := 7; i >= 0; i-- {
		b = append(b, byte(l.c>>(8*i)))
	}
	n := len(l.s)
	b = append(b, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	return append(b, l.s...)
}

// readLayout reads a layout and finishes.
func readLayout(d *codec.Decoder) layout {
	l := layout{a: d.U8("a"), b: d.U32("b"), c: d.U64("c"), s: d.Field("s")}
	d.Finish()
	return l
}

func TestDecoderReadsWhatWasWritten(t *testing.T) {
	tests := []layout{
		{},
		{a: 1, b: 2, c: 3, s: []byte("x")},
		{a: 0xff, b: 0xffffffff, c: 0xffffffffffffffff, s: bytes.Repeat([]byte{0}, 300)},
		{a: 0x80, b: 0x01020304, c: 0x0102030405060708, s: []byte("hello, world")},
	}
	for _, want := range tests {
		in := encodeLayout(want)
		d := codec.NewDecoder(in)
		got := readLayout(d)
		if d.Err() != nil {
			t.Fatalf("decode %x: %v", in, d.Err())
		}
		if got.a != want.a || got.b != want.b || got.c != want.c || !bytes.Equal(got.s, want.s) {
			t.Errorf("decode %x = %+v, want %+v", in, got, want)
		}
		if d.Len() != 0 {
			t.Errorf("decode %x left %d bytes", in, d.Len())
		}
	}
}

func TestDecoderErrorsNameTheField(t *testing.T) {
	full := encodeLayout(layout{a: 1, b: 2, c: 3, s: []byte("xyz")})
	tests := []struct {
		name  string
		in    []byte
		field string // the truncated field, "" for another problem
		want  string
	}{
		{"empty", nil, "a", "truncated a: need 1 bytes, have 0"},
		{"cut in the u32", full[:3], "b", "truncated b: need 4 bytes, have 2"},
		{"cut in the u64", full[:12], "c", "truncated c: need 8 bytes, have 7"},
		{"cut in the length", full[:15], "s length", "truncated s length: need 4 bytes, have 2"},
		{"cut in the string", full[:len(full)-1], "s", "truncated s: need 3 bytes, have 2"},
		{"a lying length", append(full[:13:13], 0xff, 0xff, 0xff, 0xff), "s", "truncated s: need 4294967295 bytes, have 0"},
		{"trailing bytes", append(bytes.Clone(full), 0, 0), "", "2 trailing bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := codec.NewDecoder(tt.in)
			if got := readLayout(d); got.s != nil && tt.field != "" {
				t.Errorf("string %q read after a problem, want nil", got.s)
			}
			err := d.Err()
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			te, ok := errors.AsType[*codec.TruncatedError](err)
			if ok != (tt.field != "") || (ok && te.Field != tt.field) {
				t.Fatalf("error %#v, want a TruncatedError naming %q", err, tt.field)
			}
		})
	}
}

func TestDecoderKeepsTheFirstProblem(t *testing.T) {
	d := codec.NewDecoder([]byte{7, 1, 2})
	if v := d.U8("version"); v != 7 {
		t.Fatalf("U8 = %d, want 7", v)
	}
	d.Failf("unsupported version %d", 7)
	left := d.Len()
	if v, f := d.U8("next"), d.Field("field"); v != 0 || f != nil {
		t.Errorf("reads after a problem = %d, %q; want zero values", v, f)
	}
	d.Failf("a later problem")
	d.CheckCount("count", 1<<60, 1)
	d.Finish()
	if d.Len() != left {
		t.Errorf("reads after a problem consumed bytes: %d left, want %d", d.Len(), left)
	}
	if err := d.Err(); err == nil || err.Error() != "unsupported version 7" {
		t.Errorf("error %v, want the first problem", err)
	}
}

func TestDecoderFieldAliasesWithoutSpareCapacity(t *testing.T) {
	in := []byte{0, 0, 0, 2, 'a', 'b', 'c', 'd', 0, 0, 0, 0}
	d := codec.NewDecoder(in[:8])
	s := d.Field("s")
	if string(s) != "ab" || cap(s) != 2 || &s[0] != &in[4] {
		t.Fatalf("Field = %q (cap %d), want \"ab\" aliasing the input with no spare capacity", s, cap(s))
	}
	_ = append(s, 'X')
	if in[6] != 'c' {
		t.Fatal("appending to a field overwrote the input")
	}
	d = codec.NewDecoder(in[8:])
	if e := d.Field("empty"); e == nil || len(e) != 0 || d.Err() != nil {
		t.Fatalf("empty Field = %#v, %v; want empty and not nil", e, d.Err())
	}
}

func TestCheckCount(t *testing.T) {
	tests := []struct {
		count    uint64
		left     int
		itemSize int
		want     string
	}{
		{0, 0, 24, ""},
		{1, 24, 24, ""},
		{2, 48, 24, ""},
		{3, 71, 24, "entry count 3 exceeds what 71 bytes can hold"},
		{1, 0, 24, "entry count 1 exceeds what 0 bytes can hold"},
		{1 << 63, 1 << 10, 1, "entry count 9223372036854775808 exceeds what 1024 bytes can hold"},
	}
	for _, tt := range tests {
		d := codec.NewDecoder(make([]byte, tt.left))
		d.CheckCount("entry count", tt.count, tt.itemSize)
		if got := errString(d.Err()); got != tt.want {
			t.Errorf("CheckCount(%d) with %d bytes of %d-byte items: %q, want %q", tt.count, tt.left, tt.itemSize, got, tt.want)
		}
	}
}

func TestZeroDecoderIsEmpty(t *testing.T) {
	var d codec.Decoder
	d.Finish()
	if d.Err() != nil || d.Len() != 0 {
		t.Fatalf("zero Decoder: %v, %d bytes", d.Err(), d.Len())
	}
	if d.U64("x"); d.Err() == nil {
		t.Fatal("zero Decoder read a u64")
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
