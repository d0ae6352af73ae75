package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
)

func fullEntry(op uint64) ensemble.Entry {
	return ensemble.Entry{Op: op, Epoch: 2, View: 300, Kind: ensemble.EntryRegister, Client: 1 << 40,
		Request: 77, Time: -1234567890123, Seed: math.MaxUint64, Cmd: []byte("set x=1")}
}

func fullHardState() ensemble.HardState {
	return ensemble.HardState{Epoch: 3, Members: []hasup.NodeID{"a", "bb", "node-ccc"}, View: 1 << 33,
		Mode: ensemble.ModeViewChange, LastNormalView: 9, Commit: 12345, Amnesiac: true}
}

func fullMessage() ensemble.Message {
	return ensemble.Message{Type: ensemble.MsgNewState, Ensemble: "ens-1", Epoch: 4, From: "n1", To: "n2",
		View: 5, Op: 6, Commit: 7, LastNormalView: 8, LogStart: 9,
		Entries: []ensemble.Entry{fullEntry(9), fullEntry(10), {Op: 11, Kind: ensemble.EntryRequest}},
		Round:   10, Nonce: 11, Stamp: 12, Lag: 13, WantCheckpoint: true, Committed: true, Quiesce: true,
		CheckpointOp: 14, Offset: 15, Total: 16, Data: []byte{0, 1, 2, 0xff}}
}

// requireAllSet fails if a field of v is zero: a field added to an ensemble
// type must be added to the fixtures, and the round trip then tells whether
// the codec carries it.
func requireAllSet(t *testing.T, v any) {
	t.Helper()
	rv := reflect.ValueOf(v)
	for i := range rv.NumField() {
		if rv.Field(i).IsZero() {
			t.Errorf("%T fixture leaves %s zero", v, rv.Type().Field(i).Name)
		}
	}
}

func TestRoundTripFull(t *testing.T) {
	e, h, m := fullEntry(1), fullHardState(), fullMessage()
	requireAllSet(t, e)
	requireAllSet(t, h)
	requireAllSet(t, m)

	gotE, err := DecodeEntry(AppendEntry(nil, e))
	if err != nil || !reflect.DeepEqual(gotE, e) {
		t.Errorf("entry: got %+v, %v; want %+v", gotE, err, e)
	}
	gotH, err := DecodeHardState(AppendHardState(nil, h))
	if err != nil || !reflect.DeepEqual(gotH, h) {
		t.Errorf("hard state: got %+v, %v; want %+v", gotH, err, h)
	}
	gotM, err := DecodeMessage(AppendMessage(nil, m))
	if err != nil || !reflect.DeepEqual(gotM, m) {
		t.Errorf("message: got %+v, %v; want %+v", gotM, err, m)
	}
}

func TestRoundTripZeroAndEmptyDecodeAsNil(t *testing.T) {
	gotE, err := DecodeEntry(AppendEntry(nil, ensemble.Entry{Cmd: []byte{}}))
	if err != nil || !reflect.DeepEqual(gotE, ensemble.Entry{}) {
		t.Errorf("entry: got %+v, %v", gotE, err)
	}
	gotH, err := DecodeHardState(AppendHardState(nil, ensemble.HardState{Members: []hasup.NodeID{}}))
	if err != nil || !reflect.DeepEqual(gotH, ensemble.HardState{}) {
		t.Errorf("hard state: got %+v, %v", gotH, err)
	}
	gotM, err := DecodeMessage(AppendMessage(nil, ensemble.Message{Entries: []ensemble.Entry{}, Data: []byte{}}))
	if err != nil || !reflect.DeepEqual(gotM, ensemble.Message{}) {
		t.Errorf("message: got %+v, %v", gotM, err)
	}
}

func TestAppendKeepsPrefixAndDecodeDoesNotAlias(t *testing.T) {
	b := AppendEntry([]byte("prefix"), fullEntry(1))
	if !bytes.HasPrefix(b, []byte("prefix")) {
		t.Fatalf("AppendEntry dropped the prefix: %q", b)
	}
	enc := b[len("prefix"):]
	e, err := DecodeEntry(enc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range enc {
		enc[i] = 0xAA
	}
	if string(e.Cmd) != "set x=1" {
		t.Errorf("decoded Cmd aliases the input: %q", e.Cmd)
	}
}

type decodeFunc func([]byte) error

var decoders = map[string]struct {
	decode decodeFunc
	valid  []byte
}{
	"entry": {func(b []byte) error { _, err := DecodeEntry(b); return err }, AppendEntry(nil, fullEntry(1))},
	"hard state": {func(b []byte) error { _, err := DecodeHardState(b); return err },
		AppendHardState(nil, fullHardState())},
	"message": {func(b []byte) error { _, err := DecodeMessage(b); return err }, AppendMessage(nil, fullMessage())},
}

func TestDecodeRejectsEveryTruncation(t *testing.T) {
	for name, d := range decoders {
		for n := range len(d.valid) {
			err := d.decode(d.valid[:n])
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%s truncated to %d of %d bytes: err %v, want ErrMalformed", name, n, len(d.valid), err)
			}
		}
	}
}

func TestDecodeRejectsBadVersionAndTrailingBytes(t *testing.T) {
	for name, d := range decoders {
		bad := bytes.Clone(d.valid)
		bad[0] = Version + 1
		if err := d.decode(bad); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "version 2, want 1") {
			t.Errorf("%s with version 2: err %v", name, err)
		}
		long := append(bytes.Clone(d.valid), 0)
		if err := d.decode(long); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "1 trailing bytes") {
			t.Errorf("%s with a trailing byte: err %v", name, err)
		}
	}
}

// uv appends uvarints.
func uv(b []byte, vs ...uint64) []byte {
	for _, v := range vs {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

// messageUpToEntries encodes a message header whose entry count is n.
func messageUpToEntries(n uint64) []byte {
	b := []byte{Version, byte(ensemble.MsgPrepare)}
	b = appendString(b, "e")
	b = uv(b, 1)
	b = appendString(b, "a")
	b = appendString(b, "b")
	return uv(b, 1, 2, 3, 4, 5, n)
}

func TestDecodeMalformedTable(t *testing.T) {
	entryPrefix := []byte{Version, 1, 1, 1, byte(ensemble.EntryRequest), 0, 0, 0, 0} // up to the cmd length
	badEntry3 := messageUpToEntries(4)
	for i := range 3 {
		badEntry3 = appendEntryBody(badEntry3, fullEntry(uint64(i)))
	}
	badEntry3 = append(uv(append(badEntry3, entryPrefix[1:]...), 900), make([]byte, 12)...)

	tests := []struct {
		name   string
		decode decodeFunc
		in     []byte
		want   string
	}{
		{"empty entry", decoders["entry"].decode, nil, "entry: version: truncated"},
		{"entry cmd too long", decoders["entry"].decode, append(uv(bytes.Clone(entryPrefix), 900), make([]byte, 12)...),
			"wire: malformed: entry: cmd length 900 exceeds 12 bytes left"},
		{"entry cmd length overflows", decoders["entry"].decode, uv(bytes.Clone(entryPrefix), math.MaxUint64),
			"cmd length 18446744073709551615 exceeds 0 bytes left"},
		{"varint over 64 bits", decoders["entry"].decode,
			[]byte{Version, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, "op: varint overflows 64 bits"},
		{"non-minimal varint", decoders["entry"].decode, []byte{Version, 0x80, 0x00}, "op: non-minimal varint"},
		{"message entry 3 cmd too long", decoders["message"].decode, badEntry3,
			"wire: malformed: message: entry 3: cmd length 900 exceeds 12 bytes left"},
		{"message entry count huge", decoders["message"].decode, append(messageUpToEntries(1<<60), make([]byte, 50)...),
			"message: entries count 1152921504606846976 exceeds what 50 bytes left can hold"},
		{"message entry count just too big", decoders["message"].decode, append(messageUpToEntries(6), make([]byte, 59)...),
			"entries count 6 exceeds what 59 bytes left can hold"},
		{"message ensemble too long", decoders["message"].decode, append(uv([]byte{Version, 1}, 5), 'a', 'b'),
			"message: ensemble length 5 exceeds 2 bytes left"},
		{"message unknown flags", decoders["message"].decode, append(uv(messageUpToEntries(0), 1, 2, 3, 4), 0x08),
			"message: flags: unknown bits 0x8"},
		{"message data too long", decoders["message"].decode, uv(append(uv(messageUpToEntries(0), 1, 2, 3, 4), 0), 1, 2, 3, 7, 0),
			"message: data length 7 exceeds 1 bytes left"},
		{"hard state member count huge", decoders["hard state"].decode, uv([]byte{Version}, 1, 1000, 0, 0),
			"hard state: members count 1000 exceeds what 2 bytes left can hold"},
		{"hard state member too long", decoders["hard state"].decode, uv([]byte{Version}, 1, 2, 1, 'a', 9, 'b'),
			"hard state: member 1 length 9 exceeds 1 bytes left"},
		{"hard state bad bool", decoders["hard state"].decode, append(uv([]byte{Version}, 1, 0, 1), 1, 0, 0, 2),
			"hard state: amnesiac: bool byte 2, want 0 or 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.decode(tt.in)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want ErrMalformed containing %q", err, tt.want)
			}
		})
	}
}

func TestFrameRoundTrip(t *testing.T) {
	payloads := [][]byte{nil, []byte("x"), AppendMessage(nil, fullMessage()), bytes.Repeat([]byte{7}, 3*readChunkBytes+5)}
	var stream []byte
	for i, p := range payloads {
		stream = AppendFrame(stream, byte(i+1), p)
	}
	r := bytes.NewReader(stream)
	for i, p := range payloads {
		typ, got, err := ReadFrame(r, 0)
		if err != nil || typ != byte(i+1) || !bytes.Equal(got, p) {
			t.Fatalf("frame %d: typ %d, %d bytes, err %v; want typ %d, %d bytes", i, typ, len(got), err, i+1, len(p))
		}
	}
	if _, _, err := ReadFrame(r, 0); err != io.EOF {
		t.Errorf("after the last frame: err %v, want io.EOF", err)
	}
}

func TestReadFrameRejects(t *testing.T) {
	valid := AppendFrame(nil, 3, []byte("hello"))
	corrupt := func(i int) []byte { b := bytes.Clone(valid); b[i] ^= 1; return b }
	tests := []struct {
		name string
		in   []byte
		max  int
		want string
	}{
		{"bad version", corrupt(0), 0, "frame: version 0, want 1"},
		{"flipped type", corrupt(1), 0, "frame: crc"},
		{"flipped crc", corrupt(7), 0, "frame: crc"},
		{"flipped payload", corrupt(len(valid) - 1), 0, "frame: crc"},
		{"above max", valid, 4, "frame: length 5 exceeds max 4"},
		{"above MaxFrameBytes", binary.BigEndian.AppendUint32([]byte{Version, 0, 0xff, 0xff, 0xff, 0xff}, 0), 1 << 40,
			"frame: length 4294967295 exceeds max 67108864"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadFrame(bytes.NewReader(tt.in), tt.max)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want ErrMalformed containing %q", err, tt.want)
			}
		})
	}
	if _, _, err := ReadFrame(bytes.NewReader(valid), 5); err != nil {
		t.Errorf("frame of exactly max: %v", err)
	}
}

func TestReadFrameShortReads(t *testing.T) {
	valid := AppendFrame(nil, 3, []byte("hello"))
	for n := 1; n < len(valid); n++ {
		_, _, err := ReadFrame(bytes.NewReader(valid[:n]), 0)
		if !errors.Is(err, ErrMalformed) || !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "short read") {
			t.Errorf("frame cut at %d of %d bytes: err %v", n, len(valid), err)
		}
	}
	// A peer that declares MaxFrameBytes and sends a few bytes gets a short
	// read, after the reader allocated only its first chunk.
	hdr := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32([]byte{Version, 1}, MaxFrameBytes), 0)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, _, err := ReadFrame(bytes.NewReader(append(hdr, 1, 2, 3)), 0); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err %v", err)
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 4*readChunkBytes {
		t.Errorf("allocated %d bytes for a frame that declared %d and sent 3", n, MaxFrameBytes)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestReadFramePassesReaderErrors(t *testing.T) {
	boom := errors.New("boom")
	_, _, err := ReadFrame(errReader{boom}, 0)
	if !errors.Is(err, boom) || errors.Is(err, ErrMalformed) {
		t.Errorf("err %v, want boom and not ErrMalformed", err)
	}
}

func TestAppendFramePanicsAboveMax(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic for a payload above MaxFrameBytes")
		}
	}()
	AppendFrame(nil, 1, make([]byte, MaxFrameBytes+1))
}

// TestRandomMessagesRoundTrip: random messages (empty slices as nil, as the
// decoder returns them) survive encoding, framing and decoding unchanged.
func TestRandomMessagesRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var stream []byte
	var want []ensemble.Message
	for range 2000 {
		m := randomMessage(rng)
		want = append(want, m)
		stream = AppendFrame(stream, byte(m.Type), AppendMessage(nil, m))
	}
	r := bytes.NewReader(stream)
	for i, w := range want {
		typ, p, err := ReadFrame(r, 0)
		if err != nil || typ != byte(w.Type) {
			t.Fatalf("message %d: frame typ %d, err %v", i, typ, err)
		}
		got, err := DecodeMessage(p)
		if err != nil || !reflect.DeepEqual(got, w) {
			t.Fatalf("message %d: got %+v, %v; want %+v", i, got, err, w)
		}
	}
}

func randomMessage(rng *rand.Rand) ensemble.Message {
	return ensemble.Message{Type: ensemble.MsgType(rng.IntN(256)), Ensemble: hasup.EnsembleName(randomString(rng)),
		Epoch: randomUint(rng), From: hasup.NodeID(randomString(rng)), To: hasup.NodeID(randomString(rng)),
		View: randomUint(rng), Op: randomUint(rng), Commit: randomUint(rng), LastNormalView: randomUint(rng),
		LogStart: randomUint(rng), Entries: randomEntries(rng), Round: randomUint(rng), Nonce: randomUint(rng),
		Stamp: randomUint(rng), Lag: randomUint(rng), WantCheckpoint: rng.IntN(2) == 0, Committed: rng.IntN(2) == 0, Quiesce: rng.IntN(2) == 0,
		CheckpointOp: randomUint(rng), Offset: randomUint(rng), Total: randomUint(rng), Data: randomBytes(rng)}
}

func randomEntries(rng *rand.Rand) []ensemble.Entry {
	n := rng.IntN(5)
	if n == 0 {
		return nil
	}
	es := make([]ensemble.Entry, n)
	for i := range es {
		es[i] = ensemble.Entry{Op: randomUint(rng), Epoch: randomUint(rng), View: randomUint(rng),
			Kind: ensemble.EntryKind(rng.IntN(256)), Client: randomUint(rng), Request: randomUint(rng),
			Time: int64(randomUint(rng)), Seed: randomUint(rng), Cmd: randomBytes(rng)}
	}
	return es
}

// randomUint spreads values over every varint length, including 0 and max.
func randomUint(rng *rand.Rand) uint64 {
	switch rng.IntN(4) {
	case 0:
		return 0
	case 1:
		return math.MaxUint64
	}
	return rng.Uint64() >> rng.IntN(64)
}

func randomBytes(rng *rand.Rand) []byte {
	n := rng.IntN(40)
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.IntN(256))
	}
	return b
}

func randomString(rng *rand.Rand) string { return string(randomBytes(rng)) }
