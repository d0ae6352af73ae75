package lock

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/hasup/hasup/fsm"
)

// seedRequests are valid and nearly valid requests of every kind, the
// starting corpus of the request fuzzers.
func seedRequests() [][]byte {
	return [][]byte{
		AcquireCmd("L", "o1", time.Second), AcquireCmd("L", "o2", MaxTTL), AcquireCmd("M", "o1", -1),
		ReleaseCmd("L", "o1"), ReleaseCmd("L", "o2"), HolderQuery("L"),
		nil, {1}, {1, 1}, {9, 1}, AcquireCmd("", "o1", time.Second), ReleaseCmd("L", "o1")[:7],
	}
}

// fuzzTable returns a table whose last fence is 10, with a lock "L" held by
// o1 until an hour past time 0 and a lock "old" whose lease ran out at 1s, so
// that fuzzed commands meet every kind of record.
func fuzzTable() *Table {
	t := New()
	t.Apply(fsm.NewContext(1, 0, 0, 9), AcquireCmd("old", "o1", time.Second))
	t.Apply(fsm.NewContext(2, 0, 0, 9), AcquireCmd("L", "o1", time.Hour))
	return t
}

// FuzzDecodeCommand checks that decoding never panics and that whatever
// decodes has exactly one encoding: the encoders give the input back.
func FuzzDecodeCommand(f *testing.F) {
	for _, b := range seedRequests() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodeRequest(b)
		if err != nil {
			if err.Code != codeBadCommand || err.Detail == "" {
				t.Fatalf("decode error %#v is not a bad command with a detail", err)
			}
			return
		}
		if again := encodeRequest(req); !bytes.Equal(again, b) {
			t.Fatalf("decoded %+v, which encodes as %x, not %x", req, again, b)
		}
	})
}

// FuzzApply checks that Apply never panics at any time and fence, always
// returns a decodable result, changes nothing when it fails, and never
// lowers the table's fence.
func FuzzApply(f *testing.F) {
	for _, b := range seedRequests() {
		f.Add(b, int64(100e9), uint64(10))
		f.Add(b, int64(math.MaxInt64), uint64(math.MaxUint64))
	}
	f.Fuzz(func(t *testing.T, b []byte, now int64, fence uint64) {
		tab := fuzzTable()
		before := snapshotBytes(t, tab)
		res, err := DecodeResult(tab.Apply(fsm.NewContext(3, now, 0, fence), b))
		if errors.Is(err, ErrBadResult) {
			t.Fatalf("Apply returned an undecodable result: %v", err)
		}
		if err != nil && !bytes.Equal(before, snapshotBytes(t, tab)) {
			t.Fatalf("failed command %x (%v) changed the state", b, err)
		}
		if tab.fence < 10 || (res.Fence > 10 && res.Fence < fence) {
			t.Fatalf("command %x at fence %d: table fence %d, result fence %d", b, fence, tab.fence, res.Fence)
		}
	})
}

// FuzzQuery checks that Query never panics or mutates, and that its answers
// decode.
func FuzzQuery(f *testing.F) {
	for _, b := range seedRequests() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tab := fuzzTable()
		before := snapshotBytes(t, tab)
		answer, err := tab.Query(b)
		if !bytes.Equal(before, snapshotBytes(t, tab)) {
			t.Fatalf("query %x changed the state", b)
		}
		if err != nil {
			if !errors.Is(err, ErrBadQuery) {
				t.Fatalf("query %x: unexpected error %v", b, err)
			}
			return
		}
		if _, err := DecodeResult(answer); err != nil {
			t.Fatalf("query %x: answer %x does not decode: %v", b, answer, err)
		}
	})
}

// FuzzDecodeResult checks that DecodeResult never panics and that what it
// accepts has exactly one encoding.
func FuzzDecodeResult(f *testing.F) {
	tab := fuzzTable()
	ctx := fsm.NewContext(3, 100e9, 0, 10)
	for _, b := range seedRequests() {
		f.Add(tab.Apply(ctx, b))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := DecodeResult(b)
		if errors.Is(err, ErrBadResult) {
			return
		}
		var oe *opError
		if err != nil && !errors.As(err, &oe) {
			t.Fatalf("DecodeResult error %v is neither ErrBadResult nor an operation error", err)
		}
		if again := appendResult(nil, res, oe); !bytes.Equal(again, b) {
			t.Fatalf("decoded %+v, %v, which encodes as %x, not %x", res, err, again, b)
		}
	})
}

// FuzzRestore checks that Restore never panics, and that an image it accepts
// is exactly what Snapshot writes for the restored state.
func FuzzRestore(f *testing.F) {
	f.Add(snapshotBytes(f, New()))
	f.Add(snapshotBytes(f, fuzzTable()))
	f.Add([]byte("HSLK\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tab := fuzzTable()
		if err := tab.Restore(bytes.NewReader(b)); err != nil {
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("Restore error %v is not ErrBadSnapshot", err)
			}
			return
		}
		if image := snapshotBytes(t, tab); !bytes.HasPrefix(b, image) {
			t.Fatalf("restored %x, which snapshots as %x", b, image)
		}
	})
}

// FuzzRestoreBody wraps the fuzzed bytes in a valid header and checksum, so
// that the fuzzer reaches the body's parser: it must never panic, and what
// it accepts must snapshot back to the same image.
func FuzzRestoreBody(f *testing.F) {
	for _, tab := range []*Table{New(), fuzzTable()} {
		image := snapshotBytes(f, tab)
		f.Add(image[imageFormat().HeaderBytes() : len(image)-4])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		image := wrapBody(body)
		tab := New()
		if err := tab.Restore(bytes.NewReader(image)); err != nil {
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("Restore error %v is not ErrBadSnapshot", err)
			}
			return
		}
		if again := snapshotBytes(t, tab); !bytes.Equal(again, image) {
			t.Fatalf("restored %x, which snapshots as %x", image, again)
		}
	})
}

// encodeRequest encodes req with the exported encoders.
func encodeRequest(req request) []byte {
	switch req.op {
	case opAcquire:
		return AcquireCmd(string(req.name), string(req.owner), req.ttl)
	case opRelease:
		return ReleaseCmd(string(req.name), string(req.owner))
	case opHolder:
		return HolderQuery(string(req.name))
	}
	panic("unknown op " + req.op.String())
}

// wrapBody returns an image with body and a valid header and checksum.
func wrapBody(body []byte) []byte {
	return imageFormat().Finish(append(imageFormat().Begin(len(body)), body...))
}

func snapshotBytes(tb testing.TB, t *Table) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := t.Snapshot(&buf); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
