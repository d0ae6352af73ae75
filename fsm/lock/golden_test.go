package lock_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"testing"
	"testing/iotest"
	"time"

	"github.com/hasup/hasup/fsm"
	"github.com/hasup/hasup/fsm/lock"
)

// The golden bytes below were written by the table as it was before its
// decoder and snapshot framing moved to fsm/internal/codec. Commands sit in
// replicas' logs and images on their disks across upgrades, so every one of
// them must keep decoding to what it meant, and the encoders must keep
// writing exactly these bytes: a replica that wrote other bytes for the same
// state would make snapshots of equal states differ.

// goldenHistory is a command history, each command applied at base+at with
// the ensemble's fence, with its recorded bytes, the recorded result of
// applying it in order to a new table, and what that result decodes to.
var goldenHistory = []struct {
	name      string
	at        time.Duration
	fence     uint64
	cmd       []byte
	cmdHex    string
	resultHex string
	want      lock.Result
	wantErr   string
}{
	{
		"acquire", 0, 0, lock.AcquireCmd("L", "node-a", 10*time.Second),
		"0101000000014c000000066e6f64652d6100000002540be400",
		"010000000000000000011844e96d12a36400000000066e6f64652d6100000000",
		held("node-a", 1, 10*time.Second), "",
	},
	{
		"acquire at the ensemble's fence", time.Second, 40, lock.AcquireCmd("backup", "node-b", time.Minute),
		"0101000000066261636b7570000000066e6f64652d620000000df8475800",
		"010000000000000000281844e978f279a200000000066e6f64652d6200000000",
		held("node-b", 40, 61*time.Second), "",
	},
	{
		"acquire of a held lock", 2 * time.Second, 0, lock.AcquireCmd("L", "node-c", time.Second),
		"0101000000014c000000066e6f64652d63000000003b9aca00",
		"010200000000000000011844e96d12a36400000000066e6f64652d61000000376c6f636b20224c222069732068656c6420627920226e6f64652d612220756e74696c20323032352d30362d30315431323a30303a31305a",
		held("node-a", 1, 10*time.Second), `lock: held by another owner: lock "L" is held by "node-a" until 2025-06-01T12:00:10Z`,
	},
	{
		"renew", 3 * time.Second, 0, lock.AcquireCmd("L", "node-a", 20*time.Second),
		"0101000000014c000000066e6f64652d6100000004a817c800",
		"010000000000000000011844e970197fa600000000066e6f64652d6100000000",
		held("node-a", 1, 23*time.Second), "",
	},
	{
		"release by another owner", 4 * time.Second, 0, lock.ReleaseCmd("L", "node-b"),
		"0201000000014c000000066e6f64652d62",
		"010300000000000000011844e970197fa600000000066e6f64652d610000002a6c6f636b20224c222069732068656c6420627920226e6f64652d61222c206e6f7420226e6f64652d6222",
		held("node-a", 1, 23*time.Second), `lock: not the holder: lock "L" is held by "node-a", not "node-b"`,
	},
	{
		"release of a free lock", 4 * time.Second, 0, lock.ReleaseCmd("free", "node-b"),
		"02010000000466726565000000066e6f64652d62",
		"01030000000000000000000000000000000000000000000000136c6f636b202266726565222069732066726565",
		lock.Result{}, `lock: not the holder: lock "free" is free`,
	},
	{
		"release", 5 * time.Second, 0, lock.ReleaseCmd("backup", "node-b"),
		"0201000000066261636b7570000000066e6f64652d62",
		"0100000000000000000000000000000000000000000000000000",
		lock.Result{}, "",
	},
	{
		"acquire an hour later", time.Hour, 0, lock.AcquireCmd("old", "x", time.Second),
		"0101000000036f6c640000000178000000003b9aca00",
		"010000000000000000291844ecb12aeaea00000000017800000000",
		held("x", 41, time.Hour+time.Second), "",
	},
	{
		"query sent as a command", time.Hour, 0, lock.HolderQuery("L"),
		"0301000000014c",
		"01010000000000000000000000000000000000000000000000236f7020686f6c64657220697320612071756572792c206e6f74206120636f6d6d616e64",
		lock.Result{}, "lock: bad command: op holder is a query, not a command",
	},
	{
		"acquire for no time", time.Hour, 0, lock.AcquireCmd("L", "o", 0),
		"0101000000014c000000016f0000000000000000",
		"0101000000000000000000000000000000000000000000000035616371756972653a2074746c2030732c2077616e74206d6f7265207468616e203020616e64206174206d6f737420323468306d3073",
		lock.Result{}, "lock: bad command: acquire: ttl 0s, want more than 0 and at most 24h0m0s",
	},
	{
		"truncated command", time.Hour, 0, lock.ReleaseCmd("L", "o")[:7],
		"0201000000014c",
		"010100000000000000000000000000000000000000000000002c7472756e6361746564206f776e6572206c656e6774683a206e65656420342062797465732c20686176652030",
		lock.Result{}, "lock: bad command: truncated owner length: need 4 bytes, have 0",
	},
}

// goldenSnapshot is the recorded image of the table after goldenHistory.
const goldenSnapshot = "48534c4b01000000000000004b00000000000000290000000000000002000000014c000000066e6f64652d61000000000000" +
	"00011844e970197fa600000000036f6c64000000017800000000000000291844ecb12aeaea009708ed46"

// goldenQueries are queries with their recorded bytes and the recorded
// answers of the table after goldenHistory.
var goldenQueries = []struct {
	name      string
	query     []byte
	queryHex  string
	answerHex string
}{
	{"holder of a held lock", lock.HolderQuery("L"), "0301000000014c", "010000000000000000011844e970197fa600000000066e6f64652d6100000000"},
	{"holder of a released lock", lock.HolderQuery("backup"), "0301000000066261636b7570", "0100000000000000000000000000000000000000000000000000"},
	{"holder of a lock granted later", lock.HolderQuery("old"), "0301000000036f6c64", "010000000000000000291844ecb12aeaea00000000017800000000"},
}

// TestGoldenEncodings checks that the encoders still write the recorded
// bytes for every command, query, result and snapshot.
func TestGoldenEncodings(t *testing.T) {
	tab := lock.New()
	for i, g := range goldenHistory {
		if got := hex.EncodeToString(g.cmd); got != g.cmdHex {
			t.Errorf("%s: command encodes as %s, recorded %s", g.name, got, g.cmdHex)
		}
		if got := hex.EncodeToString(tab.Apply(goldenContext(i), g.cmd)); got != g.resultHex {
			t.Errorf("%s: result encodes as %s, recorded %s", g.name, got, g.resultHex)
		}
	}
	for _, g := range goldenQueries {
		if got := hex.EncodeToString(g.query); got != g.queryHex {
			t.Errorf("%s: query encodes as %s, recorded %s", g.name, got, g.queryHex)
		}
		answer, err := tab.Query(g.query)
		if got := hex.EncodeToString(answer); err != nil || got != g.answerHex {
			t.Errorf("%s: answer encodes as %s, %v; recorded %s", g.name, got, err, g.answerHex)
		}
	}
	if got := hex.EncodeToString(snapshot(t, tab)); got != goldenSnapshot {
		t.Errorf("snapshot encodes as %s, recorded %s", got, goldenSnapshot)
	}
}

// TestGoldenDecodings checks that recorded bytes still decode to what they
// meant: recorded commands applied to a new table give the recorded
// results, recorded results decode to their values and errors, and the
// recorded image restores a table that answers as the recorded one did.
func TestGoldenDecodings(t *testing.T) {
	tab := lock.New()
	for i, g := range goldenHistory {
		if got := hex.EncodeToString(tab.Apply(goldenContext(i), unhex(t, g.cmdHex))); got != g.resultHex {
			t.Errorf("%s: recorded command gives result %s, recorded %s", g.name, got, g.resultHex)
		}
		res, err := lock.DecodeResult(unhex(t, g.resultHex))
		if !equalResult(res, g.want) || errorString(err) != g.wantErr {
			t.Errorf("%s: recorded result decodes as %+v, %q; want %+v, %q", g.name, res, errorString(err), g.want, g.wantErr)
		}
	}
	restored := lock.New()
	if err := restored.Restore(bytes.NewReader(unhex(t, goldenSnapshot))); err != nil {
		t.Fatalf("Restore of the recorded image: %v", err)
	}
	for _, g := range goldenQueries {
		answer, err := restored.Query(unhex(t, g.queryHex))
		if got := hex.EncodeToString(answer); err != nil || got != g.answerHex {
			t.Errorf("%s on the restored table: answer %s, %v; recorded %s", g.name, got, err, g.answerHex)
		}
	}
	// The restored table must also grant from the recorded last fence.
	res, err := lock.DecodeResult(restored.Apply(fsm.NewContext(99, base().Add(2*time.Hour).UnixNano(), 0, 0), lock.AcquireCmd("new", "o", time.Second)))
	if err != nil || res.Fence != 42 {
		t.Errorf("grant after restoring the recorded image: %+v, %v; want fence 42", res, err)
	}
}

// TestGoldenErrors pins the messages of the errors that malformed input
// yields, word for word: operators and tests read them.
func TestGoldenErrors(t *testing.T) {
	tab := lock.New()
	tab.Apply(fsm.Context{}, lock.AcquireCmd("L", "o1", time.Second))
	image := snapshot(t, tab)
	flip := func(i int) []byte { b := bytes.Clone(image); b[i] ^= 1; return b }
	restore := func(b []byte) error { return lock.New().Restore(bytes.NewReader(b)) }
	query := func(q []byte) error { _, err := tab.Query(q); return err }
	decodeResult := func(b []byte) error { _, err := lock.DecodeResult(b); return err }
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"restore of nothing", restore(nil), "lock: bad snapshot: truncated header"},
		{"restore with a bad magic", restore(flip(1)), `lock: bad snapshot: magic "HRLK", want "HSLK"`},
		{"restore of a newer version", restore(flip(4)), "lock: bad snapshot: unsupported version 0, want 1"},
		{"restore of an impossible length", restore(append([]byte("HSLK\x01\xff\xff\xff\xff\xff\xff\xff\xff"), 0)), "lock: bad snapshot: body length 18446744073709551615 is impossible"},
		{"restore of a cut body", restore(image[:20]), "lock: bad snapshot: truncated: body and checksum need 47 bytes, have 7"},
		{"restore of a flipped body bit", restore(flip(25)), "lock: bad snapshot: checksum 02dda660, stored 7a7ac6ed"},
		{"restore of a bad body", restore(frame(make([]byte, 15))), "lock: bad snapshot: truncated lock count: need 8 bytes, have 7"},
		{"restore from a failing reader", lock.New().Restore(iotest.ErrReader(errors.New("disk on fire"))), "lock: read snapshot header: disk on fire"},
		{"restore from a reader failing later", lock.New().Restore(iotest.TimeoutReader(bytes.NewReader(image))), "lock: read snapshot body: timeout"},
		{"query cut short", query([]byte{3, 1}), "lock: bad query: truncated name length: need 4 bytes, have 0"},
		{"query of a newer version", query([]byte{3, 2}), "lock: bad query: op holder: unsupported version 2, want 1"},
		{"query of an unknown op", query([]byte{9, 1}), "lock: bad query: unknown op(9)"},
		{"query with trailing bytes", query(append(lock.HolderQuery("L"), 0)), "lock: bad query: 1 trailing bytes"},
		{"query of a command", query(lock.ReleaseCmd("L", "o")), "lock: bad query: op release is a command, not a query"},
		{"query of the empty name", query(lock.HolderQuery("")), "lock: bad query: holder: name is 0 bytes, want 1 to 1024"},
		{"result of nothing", decodeResult(nil), "lock: bad result: truncated version: need 1 bytes, have 0"},
		{"result cut short", decodeResult([]byte{1}), "lock: bad result: truncated code: need 1 bytes, have 0"},
		{"result with an unknown code", decodeResult(append([]byte{1, 9}, make([]byte, 24)...)), "lock: bad result: unknown error code 9"},
		{"result of a newer version", decodeResult(append([]byte{2, 0}, make([]byte, 24)...)), "lock: bad result: unsupported version 2, want 1"},
	}
	for _, tt := range tests {
		if got := errorString(tt.err); got != tt.want {
			t.Errorf("%s: error %q, want %q", tt.name, got, tt.want)
		}
	}
}

// goldenContext is the context that goldenHistory's step i is applied in.
func goldenContext(i int) fsm.Context {
	g := goldenHistory[i]
	return fsm.NewContext(uint64(i+1), base().Add(g.at).UnixNano(), 0, g.fence)
}

// frame returns an image of body with a valid header and checksum, framed
// by hand rather than by the code under test.
func frame(body []byte) []byte {
	b := append([]byte("HSLK\x01"), binary.BigEndian.AppendUint64(nil, uint64(len(body)))...)
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

func snapshot(t *testing.T, tab *lock.Table) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := tab.Snapshot(&buf); err != nil {
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
