package kv_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"testing"
	"testing/iotest"

	"github.com/hasup/hasup/fsm"
	"github.com/hasup/hasup/fsm/kv"
)

// The golden bytes below were written by the store as it was before its
// decoder and snapshot framing moved to fsm/internal/codec. Commands sit in
// replicas' logs and images on their disks across upgrades, so every one of
// them must keep decoding to what it meant, and the encoders must keep
// writing exactly these bytes: a replica that wrote other bytes for the same
// state would make snapshots of equal states differ.

// goldenHistory is a command history, each command with its recorded bytes,
// the recorded result of applying it in order to a new store, and what that
// result decodes to.
var goldenHistory = []struct {
	name      string
	cmd       []byte
	cmdHex    string
	resultHex string
	want      kv.Result
	wantErr   string
}{
	{
		"put", kv.PutCmd([]byte("a"), []byte("1")),
		"010100000001610000000131",
		"0100000000000000000101000000000000000100000000000000010000000000000000",
		kv.Result{Revision: 1, Found: true, CreateRevision: 1, ModRevision: 1}, "",
	},
	{
		"put another", kv.PutCmd([]byte("b/x"), []byte("two")),
		"010100000003622f780000000374776f",
		"0100000000000000000201000000000000000200000000000000020000000000000000",
		kv.Result{Revision: 2, Found: true, CreateRevision: 2, ModRevision: 2}, "",
	},
	{
		"put an empty value", kv.PutCmd([]byte("b/y"), nil),
		"010100000003622f7900000000",
		"0100000000000000000301000000000000000300000000000000030000000000000000",
		kv.Result{Revision: 3, Found: true, CreateRevision: 3, ModRevision: 3}, "",
	},
	{
		"cas conflict", kv.CASCmd([]byte("a"), []byte("9"), 7),
		"0301000000016100000001390000000000000007",
		"01020000000000000003010000000000000001000000000000000100000000000000246b657920226122206973206174207265766973696f6e20312c2065787065637465642037",
		kv.Result{Revision: 3, Found: true, CreateRevision: 1, ModRevision: 1},
		`kv: compare-and-swap conflict: key "a" is at revision 1, expected 7`,
	},
	{
		"cas", kv.CASCmd([]byte("a"), []byte("3"), 1),
		"0301000000016100000001330000000000000001",
		"0100000000000000000401000000000000000100000000000000040000000000000000",
		kv.Result{Revision: 4, Found: true, CreateRevision: 1, ModRevision: 4}, "",
	},
	{
		"cas that creates", kv.CASCmd([]byte("c"), []byte("new"), 0),
		"03010000000163000000036e65770000000000000000",
		"0100000000000000000501000000000000000500000000000000050000000000000000",
		kv.Result{Revision: 5, Found: true, CreateRevision: 5, ModRevision: 5}, "",
	},
	{
		"append", kv.AppendCmd([]byte("b/x"), []byte("+")),
		"040100000003622f78000000012b",
		"0100000000000000000601000000000000000200000000000000060000000000000000",
		kv.Result{Revision: 6, Found: true, CreateRevision: 2, ModRevision: 6}, "",
	},
	{
		"delete of a missing key", kv.DeleteCmd([]byte("zz")),
		"0201000000027a7a",
		"01030000000000000006000000000000000000000000000000000000000000000000086b657920227a7a22",
		kv.Result{Revision: 6}, `kv: key not found: key "zz"`,
	},
	{
		"delete", kv.DeleteCmd([]byte("c")),
		"02010000000163",
		"0100000000000000000700000000000000000000000000000000000000000000000000",
		kv.Result{Revision: 7}, "",
	},
	{
		"query sent as a command", kv.GetQuery([]byte("a")),
		"05010000000161",
		"01010000000000000007000000000000000000000000000000000000000000000000206f702067657420697320612071756572792c206e6f74206120636f6d6d616e64",
		kv.Result{Revision: 7}, "kv: bad command: op get is a query, not a command",
	},
	{
		"truncated command", kv.PutCmd([]byte("a"), []byte("1"))[:7],
		"01010000000161",
		"010100000000000000070000000000000000000000000000000000000000000000002c7472756e63617465642076616c7565206c656e6774683a206e65656420342062797465732c20686176652030",
		kv.Result{Revision: 7}, "kv: bad command: truncated value length: need 4 bytes, have 0",
	},
}

// goldenSnapshot is the recorded image of the store after goldenHistory.
const goldenSnapshot = "48534b560100000000000000640000000000000007000000000000000300000001610000000133000000000000000100000000000000" +
	"0400000003622f780000000474776f2b0000000000000002000000000000000600000003622f790000000000000000000000030000000000000003" +
	"70717a02"

// goldenQueries are queries with their recorded bytes and the recorded
// answers of the store after goldenHistory.
var goldenQueries = []struct {
	name      string
	query     []byte
	queryHex  string
	answerHex string
}{
	{"get", kv.GetQuery([]byte("a")), "05010000000161", "010000000000000000070100000000000000010000000000000004000000013300000000"},
	{"get of a missing key", kv.GetQuery([]byte("nope")), "0501000000046e6f7065", "0100000000000000000700000000000000000000000000000000000000000000000000"},
	{
		"list of everything", kv.ListQuery(nil, nil, 0), "0601000000000000000000000000",
		"0100000000000000070000000003000000016100000001330000000000000001000000000000000400000003622f780000000474776f2b" +
			"0000000000000002000000000000000600000003622f790000000000000000000000030000000000000003",
	},
	{
		"list cut by its limit", kv.ListQuery([]byte("b/"), nil, 1), "060100000002622f0000000000000001",
		"010000000000000007010000000100000003622f780000000474776f2b00000000000000020000000000000006",
	},
	{
		"list after a key", kv.ListQuery([]byte("b/"), []byte("b/x"), 0), "060100000002622f00000003622f7800000000",
		"010000000000000007000000000100000003622f790000000000000000000000030000000000000003",
	},
}

// TestGoldenEncodings checks that the encoders still write the recorded
// bytes for every command, query, result, answer and snapshot.
func TestGoldenEncodings(t *testing.T) {
	s := kv.New()
	for _, g := range goldenHistory {
		if got := hex.EncodeToString(g.cmd); got != g.cmdHex {
			t.Errorf("%s: command encodes as %s, recorded %s", g.name, got, g.cmdHex)
		}
		if got := hex.EncodeToString(s.Apply(fsm.Context{}, g.cmd)); got != g.resultHex {
			t.Errorf("%s: result encodes as %s, recorded %s", g.name, got, g.resultHex)
		}
	}
	for _, g := range goldenQueries {
		if got := hex.EncodeToString(g.query); got != g.queryHex {
			t.Errorf("%s: query encodes as %s, recorded %s", g.name, got, g.queryHex)
		}
		answer, err := s.Query(g.query)
		if got := hex.EncodeToString(answer); err != nil || got != g.answerHex {
			t.Errorf("%s: answer encodes as %s, %v; recorded %s", g.name, got, err, g.answerHex)
		}
	}
	if got := hex.EncodeToString(snapshot(t, s)); got != goldenSnapshot {
		t.Errorf("snapshot encodes as %s, recorded %s", got, goldenSnapshot)
	}
}

// TestGoldenDecodings checks that recorded bytes still decode to what they
// meant: recorded commands applied to a new store give the recorded
// results, recorded results decode to their values and errors, and the
// recorded image restores a store that answers as the recorded one did.
func TestGoldenDecodings(t *testing.T) {
	s := kv.New()
	for _, g := range goldenHistory {
		if got := hex.EncodeToString(s.Apply(fsm.Context{}, unhex(t, g.cmdHex))); got != g.resultHex {
			t.Errorf("%s: recorded command gives result %s, recorded %s", g.name, got, g.resultHex)
		}
		res, err := kv.DecodeResult(unhex(t, g.resultHex))
		if !equalResult(res, g.want) || errorString(err) != g.wantErr {
			t.Errorf("%s: recorded result decodes as %+v, %q; want %+v, %q", g.name, res, errorString(err), g.want, g.wantErr)
		}
	}
	restored := kv.New()
	if err := restored.Restore(bytes.NewReader(unhex(t, goldenSnapshot))); err != nil {
		t.Fatalf("Restore of the recorded image: %v", err)
	}
	for _, g := range goldenQueries {
		answer, err := restored.Query(unhex(t, g.queryHex))
		if got := hex.EncodeToString(answer); err != nil || got != g.answerHex {
			t.Errorf("%s on the restored store: answer %s, %v; recorded %s", g.name, got, err, g.answerHex)
		}
	}
	list, err := kv.DecodeList(unhex(t, goldenQueries[3].answerHex))
	if err != nil || list.Revision != 7 || !list.More || len(list.Entries) != 1 {
		t.Fatalf("recorded list answer decodes as %+v, %v", list, err)
	}
	if e := list.Entries[0]; string(e.Key) != "b/x" || string(e.Value) != "two+" || e.CreateRevision != 2 || e.ModRevision != 6 {
		t.Errorf("recorded list entry decodes as %+v", e)
	}
}

// TestGoldenErrors pins the messages of the errors that malformed input
// yields, word for word: operators and tests read them.
func TestGoldenErrors(t *testing.T) {
	s := kv.New()
	mustApply(t, s, kv.PutCmd([]byte("k"), []byte("v")))
	image := snapshot(t, s)
	flip := func(i int) []byte { b := bytes.Clone(image); b[i] ^= 1; return b }
	restore := func(b []byte) error { return kv.New().Restore(bytes.NewReader(b)) }
	query := func(q []byte) error { _, err := s.Query(q); return err }
	decodeResult := func(b []byte) error { _, err := kv.DecodeResult(b); return err }
	decodeList := func(b []byte) error { _, err := kv.DecodeList(b); return err }
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"restore of nothing", restore(nil), "kv: bad snapshot: truncated header"},
		{"restore of a cut header", restore(image[:5]), "kv: bad snapshot: truncated header"},
		{"restore with a bad magic", restore(flip(0)), `kv: bad snapshot: magic "ISKV", want "HSKV"`},
		{"restore of a newer version", restore(flip(4)), "kv: bad snapshot: unsupported version 0, want 1"},
		{"restore of an impossible length", restore(append([]byte("HSKV\x01\xff\xff\xff\xff\xff\xff\xff\xff"), 0)), "kv: bad snapshot: body length 18446744073709551615 is impossible"},
		{"restore of a cut body", restore(image[:len(image)-5]), "kv: bad snapshot: truncated: body and checksum need 46 bytes, have 41"},
		{"restore of a flipped body bit", restore(flip(20)), "kv: bad snapshot: checksum 491fe413, stored 68d97230"},
		{"restore of a bad body", restore(frame(make([]byte, 17))), "kv: bad snapshot: 1 trailing bytes"},
		{"restore from a failing reader", kv.New().Restore(iotest.ErrReader(errors.New("disk on fire"))), "kv: read snapshot header: disk on fire"},
		{"restore from a reader failing later", kv.New().Restore(iotest.TimeoutReader(bytes.NewReader(image))), "kv: read snapshot body: timeout"},
		{"query cut short", query([]byte{5, 1}), "kv: bad query: truncated key length: need 4 bytes, have 0"},
		{"query of a newer version", query([]byte{5, 2}), "kv: bad query: op get: unsupported version 2, want 1"},
		{"query of an unknown op", query([]byte{9, 1}), "kv: bad query: unknown op(9)"},
		{"query with trailing bytes", query(append(kv.GetQuery([]byte("a")), 0)), "kv: bad query: 1 trailing bytes"},
		{"query of a command", query(kv.PutCmd([]byte("a"), nil)), "kv: bad query: op put is a command, not a query"},
		{"query of the empty key", query(kv.GetQuery(nil)), "kv: bad query: get: empty key"},
		{"query of a long key", query(kv.GetQuery(make([]byte, 5000))), "kv: key too large: get: key is 5000 bytes, limit 4096"},
		{"result of nothing", decodeResult(nil), "kv: bad result: truncated version: need 1 bytes, have 0"},
		{"result cut short", decodeResult([]byte{1}), "kv: bad result: truncated code: need 1 bytes, have 0"},
		{"result with an unknown code", decodeResult(append([]byte{1, 9}, make([]byte, 33)...)), "kv: bad result: unknown error code 9"},
		{"list of nothing", decodeList(nil), "kv: bad result: truncated version: need 1 bytes, have 0"},
		{"list of a newer version", decodeList([]byte{2, 0}), "kv: bad result: unsupported version 2, want 1"},
		{"list with trailing bytes", decodeList(append([]byte{1, 9}, make([]byte, 33)...)), "kv: bad result: 21 trailing bytes"},
	}
	for _, tt := range tests {
		if got := errorString(tt.err); got != tt.want {
			t.Errorf("%s: error %q, want %q", tt.name, got, tt.want)
		}
	}
}

// frame returns an image of body with a valid header and checksum, framed
// by hand rather than by the code under test.
func frame(body []byte) []byte {
	b := append([]byte("HSKV\x01"), binary.BigEndian.AppendUint64(nil, uint64(len(body)))...)
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

func snapshot(t *testing.T, s *kv.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func errorString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
