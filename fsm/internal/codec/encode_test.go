package codec_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/hasup/hasup/fsm/internal/codec"
)

func TestAppendField(t *testing.T) {
	tests := []struct {
		in   string
		want []byte
	}{
		{"", []byte{0, 0, 0, 0}},
		{"a", []byte{0, 0, 0, 1, 'a'}},
		{strings.Repeat("x", 256), append([]byte{0, 0, 1, 0}, strings.Repeat("x", 256)...)},
	}
	for _, tt := range tests {
		fromString := codec.AppendField([]byte{9}, tt.in)
		fromBytes := codec.AppendField([]byte{9}, []byte(tt.in))
		want := append([]byte{9}, tt.want...)
		if !bytes.Equal(fromString, want) || !bytes.Equal(fromBytes, want) {
			t.Errorf("AppendField(%q) = %x and %x, want %x", tt.in, fromString, fromBytes, want)
		}
		if n := codec.FieldBytes(tt.in); n != len(tt.want) {
			t.Errorf("FieldBytes(%q) = %d, want %d", tt.in, n, len(tt.want))
		}
	}
}

func TestQuote(t *testing.T) {
	long := strings.Repeat("k", 100)
	tests := []struct {
		in   string
		want string
	}{
		{"", `""`},
		{"key", `"key"`},
		{"a\x00\"b", `"a\x00\"b"`},
		{strings.Repeat("k", 64), `"` + strings.Repeat("k", 64) + `"`},
		{long, `"` + strings.Repeat("k", 64) + `"... (100 bytes)`},
	}
	for _, tt := range tests {
		if got, fromBytes := codec.Quote(tt.in), codec.Quote([]byte(tt.in)); got != tt.want || fromBytes != tt.want {
			t.Errorf("Quote(%q) = %s and %s, want %s", tt.in, got, fromBytes, tt.want)
		}
	}
}

// testOp is an FSM's request kind, for the tests.
type testOp byte

func (o testOp) String() string { return fmt.Sprintf("op%d", byte(o)) }

func TestRequestHeader(t *testing.T) {
	b := codec.BeginRequest(testOp(5), 2, 3)
	if !bytes.Equal(b, []byte{5, 2}) || cap(b) != 5 {
		t.Fatalf("BeginRequest = %x (cap %d), want 0502 with room for 3 more", b, cap(b))
	}
	tests := []struct {
		name string
		in   []byte
		op   testOp
		want string
	}{
		{"current version", []byte{5, 2}, 5, ""},
		{"another version", []byte{5, 1}, 5, "op op5: unsupported version 1, want 2"},
		{"no version", []byte{5}, 5, "truncated version: need 1 bytes, have 0"},
		{"nothing", nil, 0, "truncated op: need 1 bytes, have 0"},
	}
	for _, tt := range tests {
		d := codec.NewDecoder(tt.in)
		o := codec.ReadOp[testOp](d, 2)
		if o != tt.op || errString(d.Err()) != tt.want {
			t.Errorf("%s: ReadOp = %d, %v; want %d, %q", tt.name, o, d.Err(), tt.op, tt.want)
		}
	}
}
