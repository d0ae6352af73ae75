package registry

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/fsm"
)

// fuzzNode returns an alive node with an address and, given a zone, a tag.
func fuzzNode(id hasup.NodeID, zone string) Node {
	n := Node{ID: id, Addr: string(id) + ":7947", State: hasup.MemberAlive}
	if zone != "" {
		n.Tags = map[string]string{"zone": zone, "ssd": ""}
	}
	return n
}

// seedRequests are valid and nearly valid requests of every kind, the
// starting corpus of the request fuzzers.
func seedRequests() [][]byte {
	members := []hasup.NodeID{"n1", "n2", "n3"}
	spec := Spec{Name: "e", Type: "kv", Replicas: 3, Constraints: []string{"zone=a"}, NoQuiesce: true}
	return [][]byte{
		UpsertNodeCmd(fuzzNode("n1", "a")), UpsertNodeCmd(fuzzNode("n9", "")), UpsertNodeCmd(Node{ID: "n2", Addr: "x:1", State: hasup.MemberFailed}),
		SetNodeStateCmd("n1", hasup.MemberSuspect), SetNodeStateCmd("n1", 0), RemoveNodeCmd("n4"), RemoveNodeCmd("n1"),
		CreateEnsembleCmd(spec, members), CreateEnsembleCmd(Spec{Name: "g", Type: "lock", Replicas: 1}, []hasup.NodeID{"n4"}),
		DeleteEnsembleCmd("e"), DeleteEnsembleCmd("f"),
		BeginReconfigCmd("e", 0, []hasup.NodeID{"n1", "n2", "n4"}), BeginReconfigCmd("f", 0, []hasup.NodeID{"n2"}),
		FinishReconfigCmd("e", 1, []hasup.NodeID{"n1", "n2", "n4"}), FinishReconfigCmd("f", 0, []hasup.NodeID{"n2"}),
		AbortReconfigCmd("e"), StateQuery(), EnsembleQuery("e"), NodeQuery("n1"),
		nil, {1}, {1, 1}, {12, 1}, RemoveNodeCmd("n1")[:5], append(StateQuery(), 0),
	}
}

// fuzzRegistry returns a registry at Version 7 with a little of every kind
// of state: four nodes, ensemble "e" on n1, n2, n3 moving to n1, n2, n4,
// and ensemble "f" on n4 alone.
func fuzzRegistry() *Registry {
	r := New()
	cmds := [][]byte{
		UpsertNodeCmd(fuzzNode("n1", "a")), UpsertNodeCmd(fuzzNode("n2", "b")), UpsertNodeCmd(fuzzNode("n3", "")), UpsertNodeCmd(fuzzNode("n4", "")),
		CreateEnsembleCmd(Spec{Name: "e", Type: "kv", Replicas: 3}, []hasup.NodeID{"n1", "n2", "n3"}),
		BeginReconfigCmd("e", 0, []hasup.NodeID{"n1", "n2", "n4"}),
		CreateEnsembleCmd(Spec{Name: "f", Type: "lock", Replicas: 1, NoQuiesce: true}, []hasup.NodeID{"n4"}),
	}
	for i, cmd := range cmds {
		r.Apply(fsm.NewContext(uint64(i+1), int64(i), 0, 0), cmd)
	}
	return r
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
			if err.code != CodeInvalid || err.msg == "" {
				t.Fatalf("decode error %#v is not invalid with a message", err)
			}
			return
		}
		if again := encodeRequest(req); !bytes.Equal(again, b) {
			t.Fatalf("decoded %+v, which encodes as %x, not %x", req, again, b)
		}
	})
}

// FuzzApply checks that Apply never panics, always returns a decodable
// result, changes nothing when it fails, and on success either changes
// nothing or sets the Version to the command's op.
func FuzzApply(f *testing.F) {
	for _, b := range seedRequests() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := fuzzRegistry()
		before := snapshotBytes(t, r)
		res, err := DecodeResult(r.Apply(fsm.NewContext(100, 100, 0, 0), b))
		if errors.Is(err, ErrBadResult) {
			t.Fatalf("Apply returned an undecodable result: %v", err)
		}
		changed := !bytes.Equal(before, snapshotBytes(t, r))
		switch {
		case err != nil && changed:
			t.Fatalf("failed command %x (%v) changed the state", b, err)
		case changed != (res.Version == 100) || (!changed && res.Version != 7):
			t.Fatalf("command %x: changed %v, version %d", b, changed, res.Version)
		}
		if _, err := DecodeState(mustQuery(t, r, StateQuery())); err != nil {
			t.Fatalf("command %x left a state that does not decode: %v", b, err)
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
		r := fuzzRegistry()
		before := snapshotBytes(t, r)
		answer, err := r.Query(b)
		if !bytes.Equal(before, snapshotBytes(t, r)) {
			t.Fatalf("query %x changed the state", b)
		}
		if err != nil {
			if !errors.Is(err, ErrBadQuery) && !errors.Is(err, ErrNotFound) {
				t.Fatalf("query %x: unexpected error %v", b, err)
			}
			return
		}
		switch op(b[0]) {
		case opState:
			_, err = DecodeState(answer)
		case opEnsemble:
			_, err = DecodeEnsemble(answer)
		default:
			_, err = DecodeNode(answer)
		}
		if err != nil {
			t.Fatalf("query %x: answer %x does not decode: %v", b, answer, err)
		}
	})
}

// FuzzDecodeResult checks that DecodeResult never panics, that what it
// accepts has exactly one encoding, and that its error is the Result's.
func FuzzDecodeResult(f *testing.F) {
	r := fuzzRegistry()
	for _, b := range seedRequests() {
		f.Add(r.Apply(fsm.NewContext(8, 8, 0, 0), b))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := DecodeResult(b)
		if errors.Is(err, ErrBadResult) {
			return
		}
		if errorString(err) != errorString(res.Error()) || (err == nil) != (res.Err == "") {
			t.Fatalf("DecodeResult = %+v, %v: the error is not the Result's", res, err)
		}
		if again := appendResult(nil, res); !bytes.Equal(again, b) {
			t.Fatalf("decoded %+v, which encodes as %x, not %x", res, again, b)
		}
	})
}

// FuzzDecodeState feeds the same bytes to DecodeState, DecodeEnsemble and
// DecodeNode, and checks that none panics and that what each accepts has
// exactly one encoding.
func FuzzDecodeState(f *testing.F) {
	r := fuzzRegistry()
	for _, q := range [][]byte{StateQuery(), EnsembleQuery("e"), EnsembleQuery("f"), NodeQuery("n1"), NodeQuery("n3")} {
		f.Add(mustQuery(f, r, q))
	}
	f.Add(mustQuery(f, New(), StateQuery()))
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := DecodeState(b); err == nil {
			checkAnswer(t, b, appendState([]byte{answerVersion}, s))
		} else if !errors.Is(err, ErrBadResult) {
			t.Fatalf("DecodeState error %v is not ErrBadResult", err)
		}
		if e, err := DecodeEnsemble(b); err == nil {
			checkAnswer(t, b, appendEnsemble([]byte{answerVersion}, e))
		} else if !errors.Is(err, ErrBadResult) {
			t.Fatalf("DecodeEnsemble error %v is not ErrBadResult", err)
		}
		if n, err := DecodeNode(b); err == nil {
			checkAnswer(t, b, appendNode([]byte{answerVersion}, n))
		} else if !errors.Is(err, ErrBadResult) {
			t.Fatalf("DecodeNode error %v is not ErrBadResult", err)
		}
	})
}

// checkAnswer fails unless an accepted answer re-encodes as itself.
func checkAnswer(t *testing.T, in, again []byte) {
	t.Helper()
	if !bytes.Equal(in, again) {
		t.Fatalf("accepted %x, which encodes as %x", in, again)
	}
}

// FuzzRestore checks that Restore never panics, and that an image it accepts
// is exactly what Snapshot writes for the restored state.
func FuzzRestore(f *testing.F) {
	f.Add(snapshotBytes(f, New()))
	f.Add(snapshotBytes(f, fuzzRegistry()))
	f.Add([]byte("HSRG\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := fuzzRegistry()
		if err := r.Restore(bytes.NewReader(b)); err != nil {
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("Restore error %v is not ErrBadSnapshot", err)
			}
			return
		}
		if image := snapshotBytes(t, r); !bytes.HasPrefix(b, image) {
			t.Fatalf("restored %x, which snapshots as %x", b, image)
		}
	})
}

// FuzzRestoreBody wraps the fuzzed bytes in a valid header and checksum, so
// that the fuzzer reaches the body's parser, which guards against images a
// buggy writer checksummed: it must never panic, and what it accepts must
// snapshot back to the same image.
func FuzzRestoreBody(f *testing.F) {
	for _, r := range []*Registry{New(), fuzzRegistry()} {
		image := snapshotBytes(f, r)
		f.Add(image[imageFormat().HeaderBytes() : len(image)-4])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		image := wrapBody(body)
		r := New()
		if err := r.Restore(bytes.NewReader(image)); err != nil {
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("Restore error %v is not ErrBadSnapshot", err)
			}
			return
		}
		if again := snapshotBytes(t, r); !bytes.Equal(again, image) {
			t.Fatalf("restored %x, which snapshots as %x", image, again)
		}
	})
}

// encodeRequest encodes req with the exported encoders.
func encodeRequest(req request) []byte {
	switch req.op {
	case opUpsertNode:
		return UpsertNodeCmd(req.node)
	case opSetNodeState:
		return SetNodeStateCmd(req.id, req.nodeState)
	case opRemoveNode:
		return RemoveNodeCmd(req.id)
	case opCreateEnsemble:
		return CreateEnsembleCmd(req.spec, req.members)
	case opDeleteEnsemble:
		return DeleteEnsembleCmd(req.name)
	case opBeginReconfig:
		return BeginReconfigCmd(req.name, req.epoch, req.members)
	case opFinishReconfig:
		return FinishReconfigCmd(req.name, req.epoch, req.members)
	case opAbortReconfig:
		return AbortReconfigCmd(req.name)
	case opState:
		return StateQuery()
	case opEnsemble:
		return EnsembleQuery(req.name)
	case opNode:
		return NodeQuery(req.id)
	}
	panic("unknown op " + req.op.String())
}

// wrapBody returns an image with body and a valid header and checksum.
func wrapBody(body []byte) []byte {
	return imageFormat().Finish(append(imageFormat().Begin(len(body)), body...))
}

func mustQuery(tb testing.TB, r *Registry, q []byte) []byte {
	tb.Helper()
	answer, err := r.Query(q)
	if err != nil {
		tb.Fatalf("query %x: %v", q, err)
	}
	return answer
}

func snapshotBytes(tb testing.TB, r *Registry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := r.Snapshot(&buf); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func errorString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
