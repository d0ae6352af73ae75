package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/hasup/hasup/fsm"
)

// seedRequests are valid and nearly valid requests of every kind, the
// starting corpus of the request fuzzers.
func seedRequests() [][]byte {
	k, v := []byte("key"), []byte("value")
	return [][]byte{
		PutCmd(k, v), PutCmd(k, nil), DeleteCmd(k), CASCmd(k, v, 0), CASCmd(k, v, 2),
		AppendCmd(k, v), GetQuery(k), ListQuery(nil, nil, 0), ListQuery([]byte("k"), []byte("a"), 3),
		nil, {1}, {1, 1}, {7, 1}, PutCmd(nil, v), PutCmd(k, v)[:7],
	}
}

// fuzzStore returns a store with a little state, so that fuzzed commands
// meet existing keys.
func fuzzStore() *Store {
	s := New()
	s.Apply(fsm.Context{}, PutCmd([]byte("key"), []byte("value")))
	s.Apply(fsm.Context{}, PutCmd([]byte("k2"), nil))
	s.Apply(fsm.Context{}, AppendCmd([]byte("key"), []byte("+")))
	return s
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
			if err.Code.Sentinel() == nil || err.Detail == "" {
				t.Fatalf("decode error without a sentinel or detail: %#v", err)
			}
			return
		}
		if again := encodeRequest(req); !bytes.Equal(again, b) {
			t.Fatalf("decoded %+v, which encodes as %x, not %x", req, again, b)
		}
	})
}

// FuzzApply checks that Apply never panics, always returns a decodable
// result, bumps the revision by one exactly when it succeeds, and changes
// nothing when it fails.
func FuzzApply(f *testing.F) {
	for _, b := range seedRequests() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := fuzzStore()
		before := snapshotBytes(t, s)
		res, err := DecodeResult(s.Apply(fsm.Context{}, b))
		if errors.Is(err, ErrBadResult) {
			t.Fatalf("Apply returned an undecodable result: %v", err)
		}
		after := snapshotBytes(t, s)
		switch {
		case err != nil && !bytes.Equal(before, after):
			t.Fatalf("failed command %x (%v) changed the state", b, err)
		case err == nil && res.Revision != 4:
			t.Fatalf("successful command %x left revision %d, want 4", b, res.Revision)
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
		s := fuzzStore()
		before := snapshotBytes(t, s)
		answer, err := s.Query(b)
		if !bytes.Equal(before, snapshotBytes(t, s)) {
			t.Fatalf("query %x changed the state", b)
		}
		if err != nil {
			if !errors.Is(err, ErrBadQuery) && !errors.Is(err, ErrKeyTooLarge) {
				t.Fatalf("query %x: unexpected error %v", b, err)
			}
			return
		}
		if op(b[0]) == opList {
			_, err = DecodeList(answer)
		} else {
			_, err = DecodeResult(answer)
		}
		if err != nil {
			t.Fatalf("query %x: answer %x does not decode: %v", b, answer, err)
		}
	})
}

// FuzzDecodeResult checks that DecodeResult never panics and that what it
// accepts has exactly one encoding.
func FuzzDecodeResult(f *testing.F) {
	s := fuzzStore()
	f.Add(s.Apply(fsm.Context{}, PutCmd([]byte("k"), []byte("v"))))
	f.Add(s.Apply(fsm.Context{}, CASCmd([]byte("k"), []byte("v"), 1)))
	f.Add(s.Apply(fsm.Context{}, []byte{1}))
	get, _ := s.Query(GetQuery([]byte("key")))
	f.Add(get)
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

// FuzzDecodeList checks that DecodeList never panics and that what it
// accepts has exactly one encoding.
func FuzzDecodeList(f *testing.F) {
	s := fuzzStore()
	for _, q := range [][]byte{ListQuery(nil, nil, 0), ListQuery([]byte("k"), nil, 1), ListQuery([]byte("z"), nil, 0)} {
		answer, _ := s.Query(q)
		f.Add(answer)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := DecodeList(b)
		if err != nil {
			if !errors.Is(err, ErrBadResult) {
				t.Fatalf("DecodeList error %v is not ErrBadResult", err)
			}
			return
		}
		if again := encodeList(res); !bytes.Equal(again, b) {
			t.Fatalf("decoded %+v, which encodes as %x, not %x", res, again, b)
		}
	})
}

// FuzzRestore checks that Restore never panics, and that an image it accepts
// is exactly what Snapshot writes for the restored state.
func FuzzRestore(f *testing.F) {
	f.Add(snapshotBytes(f, New()))
	f.Add(snapshotBytes(f, fuzzStore()))
	f.Add([]byte("HSKV\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := fuzzStore()
		err := s.Restore(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("Restore error %v is not ErrBadSnapshot", err)
			}
			return
		}
		if image := snapshotBytes(t, s); !bytes.HasPrefix(b, image) {
			t.Fatalf("restored %x, which snapshots as %x", b, image)
		}
	})
}

// FuzzRestoreBody wraps the fuzzed bytes in a valid header and checksum, so
// that the fuzzer reaches the body's parser, which guards against images a
// buggy writer checksummed: it must never panic, and what it accepts must
// snapshot back to the same image.
func FuzzRestoreBody(f *testing.F) {
	for _, s := range []*Store{New(), fuzzStore()} {
		image := snapshotBytes(f, s)
		f.Add(image[imageFormat().HeaderBytes() : len(image)-4])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		image := wrapBody(body)
		s := New()
		if err := s.Restore(bytes.NewReader(image)); err != nil {
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("Restore error %v is not ErrBadSnapshot", err)
			}
			return
		}
		if again := snapshotBytes(t, s); !bytes.Equal(again, image) {
			t.Fatalf("restored %x, which snapshots as %x", image, again)
		}
	})
}

// wrapBody returns an image with body and a valid header and checksum.
func wrapBody(body []byte) []byte {
	return imageFormat().Finish(append(imageFormat().Begin(len(body)), body...))
}

// encodeRequest encodes req with the exported encoders.
func encodeRequest(req request) []byte {
	switch req.op {
	case opPut:
		return PutCmd(req.key, req.value)
	case opDelete:
		return DeleteCmd(req.key)
	case opCAS:
		return CASCmd(req.key, req.value, req.revision)
	case opAppend:
		return AppendCmd(req.key, req.value)
	case opGet:
		return GetQuery(req.key)
	case opList:
		return ListQuery(req.key, req.after, int(req.limit))
	}
	panic("unknown op " + req.op.String())
}

// encodeList encodes a List answer the way Store.appendPage does.
func encodeList(l ListResult) []byte {
	b := append([]byte{wireVersion}, make([]byte, 8)...)
	binary.BigEndian.PutUint64(b[1:], l.Revision)
	b = append(b, boolByte(l.More))
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.Entries)))
	for _, e := range l.Entries {
		b = appendEntry(b, string(e.Key), &entry{value: e.Value, createRevision: e.CreateRevision, modRevision: e.ModRevision})
	}
	return b
}

func snapshotBytes(tb testing.TB, s *Store) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := s.Snapshot(&buf); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
