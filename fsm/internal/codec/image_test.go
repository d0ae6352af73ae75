package codec_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/hasup/hasup/fsm/internal/codec"
)

// testFormat is the framing the image tests use.
var testFormat = codec.ImageFormat{Magic: "TEST", Version: 3}

// handImage frames body by hand, without the code under test.
func handImage(magic string, version byte, body []byte) []byte {
	b := append([]byte(magic), version)
	b = binary.BigEndian.AppendUint64(b, uint64(len(body)))
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, crc(b))
}

// crc is the CRC32-C of b.
func crc(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

// image frames body with Begin and Finish.
func image(f codec.ImageFormat, body []byte) []byte {
	return f.Finish(append(f.Begin(len(body)), body...))
}

func TestImageRoundTrip(t *testing.T) {
	for _, body := range [][]byte{nil, {0}, []byte("a body"), bytes.Repeat([]byte{0xa5}, 70000)} {
		img := image(testFormat, body)
		if want := handImage("TEST", 3, body); !bytes.Equal(img, want) {
			t.Fatalf("image of %d bytes = %x, want %x", len(body), img[:min(len(img), 40)], want[:min(len(want), 40)])
		}
		if cap(img) != len(img) {
			t.Errorf("image of %d bytes has capacity %d: Begin sized it wrong", len(body), cap(img))
		}
		got, err := testFormat.Read(bytes.NewReader(img))
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("Read of the image of %d bytes = %d bytes, %v", len(body), len(got), err)
		}
	}
	if n := testFormat.HeaderBytes(); n != 13 {
		t.Errorf("HeaderBytes = %d, want 13", n)
	}
}

func TestImageReadsOnlyTheImage(t *testing.T) {
	r := strings.NewReader(string(image(testFormat, []byte("body"))) + "next")
	if _, err := testFormat.Read(r); err != nil {
		t.Fatal(err)
	}
	if rest, _ := io.ReadAll(r); string(rest) != "next" {
		t.Fatalf("Read left %q, want \"next\"", rest)
	}
}

func TestImageReadRefusesBadImages(t *testing.T) {
	img := image(testFormat, []byte("body"))
	flip := func(i int) []byte { b := bytes.Clone(img); b[i] ^= 1; return b }
	stored := binary.BigEndian.Uint32(img[17:])
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "truncated header"},
		{"cut header", img[:12], "truncated header"},
		{"another FSM's image", handImage("ELSE", 3, []byte("body")), `magic "ELSE", want "TEST"`},
		{"another version", handImage("TEST", 4, []byte("body")), "unsupported version 4, want 3"},
		{"impossible length", append([]byte("TEST\x03\xff\xff\xff\xff\xff\xff\xff\xfc"), 0), "body length 18446744073709551612 is impossible"},
		{"largest possible length", []byte("TEST\x03\x7f\xff\xff\xff\xff\xff\xff\xfb"), "truncated: body and checksum need 9223372036854775807 bytes, have 0"},
		{"cut body", img[:15], "truncated: body and checksum need 8 bytes, have 2"},
		{"cut checksum", img[:len(img)-1], "truncated: body and checksum need 8 bytes, have 7"},
		{"flipped header bit", flip(12), "truncated: body and checksum need 9 bytes, have 8"},
		{"flipped body bit", flip(14), fmt.Sprintf("checksum %08x, stored %08x", crc(flip(14)[:17]), stored)},
		{"flipped checksum bit", flip(len(img) - 1), fmt.Sprintf("checksum %08x, stored %08x", stored, stored^1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := testFormat.Read(bytes.NewReader(tt.in))
			if body != nil || err == nil || err.Error() != tt.want {
				t.Fatalf("Read = %x, %v; want an error saying %q", body, err, tt.want)
			}
			if errors.As(err, new(*codec.ReadError)) {
				t.Fatalf("bad image reported as a failing reader: %v", err)
			}
		})
	}
}

func TestImageReadReportsTheReadersError(t *testing.T) {
	boom := errors.New("disk on fire")
	img := image(testFormat, []byte("body"))
	tests := []struct {
		name string
		r    io.Reader
		part string
		err  error
	}{
		{"in the header", iotest.ErrReader(boom), "header", boom},
		{"in the body", io.MultiReader(bytes.NewReader(img[:13]), iotest.ErrReader(boom)), "body", boom},
		{"a timeout", iotest.TimeoutReader(bytes.NewReader(img)), "body", iotest.ErrTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := testFormat.Read(tt.r)
			re, ok := errors.AsType[*codec.ReadError](err)
			if !ok || re.Part != tt.part || !errors.Is(err, tt.err) {
				t.Fatalf("Read = %v, want a ReadError in the %s wrapping %v", err, tt.part, tt.err)
			}
			if want := "read snapshot " + tt.part + ": " + tt.err.Error(); err.Error() != want {
				t.Errorf("error %q, want %q", err, want)
			}
		})
	}
}

func TestRestoreError(t *testing.T) {
	errBad := errors.New("fsm: bad snapshot")
	boom := errors.New("disk on fire")
	tests := []struct {
		name     string
		err      error
		want     string
		isBad    bool
		isReader bool
	}{
		{"bad image", errors.New("truncated header"), "fsm: bad snapshot: truncated header", true, false},
		{"bad body", &codec.TruncatedError{Field: "key", Need: 3, Have: 1}, "fsm: bad snapshot: truncated key: need 3 bytes, have 1", true, false},
		{"failing reader", &codec.ReadError{Part: "body", Err: boom}, "fsm: read snapshot body: disk on fire", false, true},
	}
	for _, tt := range tests {
		err := codec.RestoreError("fsm", errBad, tt.err)
		if err.Error() != tt.want || errors.Is(err, errBad) != tt.isBad || errors.Is(err, boom) != tt.isReader {
			t.Errorf("%s: RestoreError = %q (bad %v, reader's %v), want %q (%v, %v)",
				tt.name, err, errors.Is(err, errBad), errors.Is(err, boom), tt.want, tt.isBad, tt.isReader)
		}
	}
}

func TestImageFinishPanicsOnAWrongLength(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
	}{
		{"short body", append(testFormat.Begin(4), "abc"...)},
		{"long body", append(testFormat.Begin(4), "abcde"...)},
		{"no header", []byte("TES")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if r := recover(); r == nil {
					t.Fatal("Finish did not panic")
				}
			}()
			testFormat.Finish(tt.b)
		})
	}
}
