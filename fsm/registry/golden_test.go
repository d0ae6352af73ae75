package registry_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"testing"
	"testing/iotest"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/fsm/registry"
)

// The golden bytes below were recorded when the registry's formats were
// first written. Commands sit in replicas' logs and images on their disks
// across upgrades, so every one of them must keep decoding to what it meant,
// and the encoders must keep writing exactly these bytes: a replica that
// wrote other bytes for the same state would make snapshots of equal states
// differ. A change that breaks this test is a format change: give it a new
// version (see the package doc) instead of new golden bytes.

// goldenHistory is a command history, step i applied with the context at(i),
// each command with its recorded bytes, the recorded result of applying it
// in order to a new registry, and what that result decodes to.
var goldenHistory = []struct {
	name      string
	cmd       []byte
	cmdHex    string
	resultHex string
	want      registry.Result
}{
	{
		"upsert with tags", registry.UpsertNodeCmd(node("n1", "zone", "a", "ssd", "")),
		"0101000000026e31000000076e313a3739343701000000020000000373736400000000000000047a6f6e650000000161",
		"0100000000000000000100000000", registry.Result{Version: 1},
	},
	{
		"upsert", registry.UpsertNodeCmd(node("n2", "zone", "b")),
		"0101000000026e32000000076e323a373934370100000001000000047a6f6e650000000162",
		"0100000000000000000200000000", registry.Result{Version: 2},
	},
	{
		"upsert without tags", registry.UpsertNodeCmd(node("n3")),
		"0101000000026e33000000076e333a373934370100000000",
		"0100000000000000000300000000", registry.Result{Version: 3},
	},
	{
		"create", registry.CreateEnsembleCmd(registry.Spec{Name: "orders", Type: "kv", Replicas: 3, Constraints: []string{"zone!=c"}}, ids("n1", "n2", "n3")),
		"0401000000066f7264657273000000026b76030000000001000000077a6f6e65213d6300000003000000026e31000000026e32000000026e33",
		"0100000000000000000400000000", registry.Result{Version: 4},
	},
	{
		"create of a taken name", registry.CreateEnsembleCmd(spec("orders", 1), ids("n1")),
		"0401000000066f7264657273000000026b7601000000000000000001000000026e31",
		"0102000000000000000400000011656e73656d626c6520226f726465727322",
		registry.Result{Err: registry.CodeExists, Msg: `ensemble "orders"`, Version: 4},
	},
	{
		"set node state", registry.SetNodeStateCmd("n3", hasup.MemberSuspect),
		"0201000000026e3302",
		"0100000000000000000600000000", registry.Result{Version: 6},
	},
	{
		"upsert another", registry.UpsertNodeCmd(node("n4")),
		"0101000000026e34000000076e343a373934370100000000",
		"0100000000000000000700000000", registry.Result{Version: 7},
	},
	{
		"begin reconfig", registry.BeginReconfigCmd("orders", 0, ids("n1", "n2", "n4")),
		"0601000000066f7264657273000000000000000000000003000000026e31000000026e32000000026e34",
		"0100000000000000000800000000", registry.Result{Version: 8},
	},
	{
		"begin reconfig retried", registry.BeginReconfigCmd("orders", 0, ids("n1", "n2", "n4")),
		"0601000000066f7264657273000000000000000000000003000000026e31000000026e32000000026e34",
		"0100000000000000000800000000", registry.Result{Version: 8},
	},
	{
		"begin reconfig while busy", registry.BeginReconfigCmd("orders", 0, ids("n4", "n2", "n1")),
		"0601000000066f7264657273000000000000000000000003000000026e34000000026e32000000026e31",
		"010400000000000000080000002f656e73656d626c6520226f726465727322206973206d6f76696e6720746f205b226e312220226e322220226e34225d",
		registry.Result{Err: registry.CodeBusy, Msg: `ensemble "orders" is moving to ["n1" "n2" "n4"]`, Version: 8},
	},
	{
		"remove of a target", registry.RemoveNodeCmd("n4"),
		"0301000000026e34",
		"010500000000000000080000003a6e6f646520226e34222069732061207265636f6e66696775726174696f6e20746172676574206f6620656e73656d626c6520226f726465727322",
		registry.Result{Err: registry.CodeInUse, Msg: `node "n4" is a reconfiguration target of ensemble "orders"`, Version: 8},
	},
	{
		"finish reconfig", registry.FinishReconfigCmd("orders", 1, ids("n1", "n2", "n4")),
		"0701000000066f7264657273000000000000000100000003000000026e31000000026e32000000026e34",
		"0100000000000000000c00000000", registry.Result{Version: 12},
	},
	{
		"finish reconfig again", registry.FinishReconfigCmd("orders", 1, ids("n1", "n2", "n4")),
		"0701000000066f7264657273000000000000000100000003000000026e31000000026e32000000026e34",
		"0103000000000000000c0000003e656e73656d626c6520226f7264657273222069732061742065706f636820312c2077686963682065706f6368203120646f6573206e6f7420666f6c6c6f77",
		registry.Result{Err: registry.CodeStale, Msg: `ensemble "orders" is at epoch 1, which epoch 1 does not follow`, Version: 12},
	},
	{
		"remove", registry.RemoveNodeCmd("n3"),
		"0301000000026e33",
		"0100000000000000000e00000000", registry.Result{Version: 14},
	},
	{
		"create without quiescence", registry.CreateEnsembleCmd(registry.Spec{Name: "locks", Type: "lock", Replicas: 1, NoQuiesce: true}, ids("n4")),
		"0401000000056c6f636b73000000046c6f636b01010000000000000001000000026e34",
		"0100000000000000000f00000000", registry.Result{Version: 15},
	},
	{
		"delete of a missing ensemble", registry.DeleteEnsembleCmd("nope"),
		"0501000000046e6f7065",
		"0101000000000000000f0000000f656e73656d626c6520226e6f706522",
		registry.Result{Err: registry.CodeNotFound, Msg: `ensemble "nope"`, Version: 15},
	},
	{
		"abort without a reconfiguration", registry.AbortReconfigCmd("orders"),
		"0801000000066f7264657273",
		"0100000000000000000f00000000", registry.Result{Version: 15},
	},
	{
		"truncated command", registry.RemoveNodeCmd("n1")[:7],
		"0301000000026e",
		"0106000000000000000f000000227472756e63617465642069643a206e65656420322062797465732c20686176652031",
		registry.Result{Err: registry.CodeInvalid, Msg: "truncated id: need 2 bytes, have 1", Version: 15},
	},
	{
		"query sent as a command", registry.StateQuery(),
		"0901",
		"0106000000000000000f000000226f7020737461746520697320612071756572792c206e6f74206120636f6d6d616e64",
		registry.Result{Err: registry.CodeInvalid, Msg: "op state is a query, not a command", Version: 15},
	},
}

// goldenState is the recorded encoding of the state after goldenHistory,
// the body of both the StateQuery answer and the snapshot image.
const goldenState = "000000000000000f00000003" +
	"000000026e31000000076e313a37393437011844e96abe978000000000020000000373736400000000000000047a6f6e650000000161" +
	"000000026e32000000076e323a37393437011844e96afa324a0000000001000000047a6f6e650000000162" +
	"000000026e34000000076e343a37393437011844e96c24383c0000000000" +
	"00000002" +
	"000000056c6f636b73000000046c6f636b01010000000000000000000000001844e96e010e8c0000000001000000026e3400000000" +
	"000000066f7264657273000000026b76030000000001000000077a6f6e65213d6300000000000000011844e96b7167de00" +
	"00000003000000026e31000000026e32000000026e3400000000"

// goldenSnapshot is the recorded image of the registry after goldenHistory.
const goldenSnapshot = "4853524701000000000000010f" + goldenState + "1160ec50"

// goldenQueries are queries with their recorded bytes and the recorded
// answers of the registry after goldenHistory.
var goldenQueries = []struct {
	name      string
	query     []byte
	queryHex  string
	answerHex string
}{
	{"state", registry.StateQuery(), "0901", "01" + goldenState},
	{
		"ensemble", registry.EnsembleQuery("orders"), "0a01000000066f7264657273",
		"01000000066f7264657273000000026b76030000000001000000077a6f6e65213d6300000000000000011844e96b7167de00" +
			"00000003000000026e31000000026e32000000026e3400000000",
	},
	{
		"node", registry.NodeQuery("n1"), "0b01000000026e31",
		"01000000026e31000000076e313a37393437011844e96abe978000000000020000000373736400000000000000047a6f6e650000000161",
	},
}

// TestGoldenEncodings checks that the encoders still write the recorded
// bytes for every command, query, result, answer and snapshot.
func TestGoldenEncodings(t *testing.T) {
	reg := registry.New()
	for i, g := range goldenHistory {
		if got := hex.EncodeToString(g.cmd); got != g.cmdHex {
			t.Errorf("%s: command encodes as %s, recorded %s", g.name, got, g.cmdHex)
		}
		if got := hex.EncodeToString(reg.Apply(at(i), g.cmd)); got != g.resultHex {
			t.Errorf("%s: result encodes as %s, recorded %s", g.name, got, g.resultHex)
		}
	}
	for _, g := range goldenQueries {
		if got := hex.EncodeToString(g.query); got != g.queryHex {
			t.Errorf("%s: query encodes as %s, recorded %s", g.name, got, g.queryHex)
		}
		answer, err := reg.Query(g.query)
		if got := hex.EncodeToString(answer); err != nil || got != g.answerHex {
			t.Errorf("%s: answer encodes as %s, %v; recorded %s", g.name, got, err, g.answerHex)
		}
	}
	if got := hex.EncodeToString(snapshot(t, reg)); got != goldenSnapshot {
		t.Errorf("snapshot encodes as %s, recorded %s", got, goldenSnapshot)
	}
}

// TestGoldenDecodings checks that recorded bytes still decode to what they
// meant: recorded commands applied to a new registry give the recorded
// results, recorded results and answers decode to their values, and the
// recorded image restores a registry that answers as the recorded one did.
func TestGoldenDecodings(t *testing.T) {
	reg := registry.New()
	for i, g := range goldenHistory {
		if got := hex.EncodeToString(reg.Apply(at(i), unhex(t, g.cmdHex))); got != g.resultHex {
			t.Errorf("%s: recorded command gives result %s, recorded %s", g.name, got, g.resultHex)
		}
		res, err := registry.DecodeResult(unhex(t, g.resultHex))
		if res != g.want || errorString(err) != errorString(g.want.Error()) {
			t.Errorf("%s: recorded result decodes as %+v, %v; want %+v", g.name, res, err, g.want)
		}
	}
	restored := registry.New()
	if err := restored.Restore(bytes.NewReader(unhex(t, goldenSnapshot))); err != nil {
		t.Fatalf("Restore of the recorded image: %v", err)
	}
	for _, g := range goldenQueries {
		answer, err := restored.Query(unhex(t, g.queryHex))
		if got := hex.EncodeToString(answer); err != nil || got != g.answerHex {
			t.Errorf("%s on the restored registry: answer %s, %v; recorded %s", g.name, got, err, g.answerHex)
		}
	}
	s, err := registry.DecodeState(unhex(t, goldenQueries[0].answerHex))
	if err != nil {
		t.Fatalf("recorded state answer: %v", err)
	}
	want := registry.State{
		Version: 15,
		Nodes: []registry.Node{
			{ID: "n1", Addr: "n1:7947", Tags: map[string]string{"ssd": "", "zone": "a"}, State: hasup.MemberAlive, Since: sec(0)},
			{ID: "n2", Addr: "n2:7947", Tags: map[string]string{"zone": "b"}, State: hasup.MemberAlive, Since: sec(1)},
			{ID: "n4", Addr: "n4:7947", State: hasup.MemberAlive, Since: sec(6)},
		},
		Ensembles: []registry.Ensemble{
			{Spec: registry.Spec{Name: "locks", Type: "lock", Replicas: 1, NoQuiesce: true}, Members: ids("n4"), Created: sec(14)},
			{Spec: registry.Spec{Name: "orders", Type: "kv", Replicas: 3, Constraints: []string{"zone!=c"}}, Epoch: 1, Members: ids("n1", "n2", "n4"), Created: sec(3)},
		},
	}
	if !equalState(s, want) {
		t.Errorf("recorded state decodes as %+v, want %+v", s, want)
	}
}

// TestGoldenErrors pins the messages of the errors that malformed input
// yields, word for word: operators and tests read them.
func TestGoldenErrors(t *testing.T) {
	reg := registry.New()
	mustApply(t, reg, at(0), registry.UpsertNodeCmd(node("n1")))
	image := snapshot(t, reg)
	flip := func(i int) []byte { b := bytes.Clone(image); b[i] ^= 1; return b }
	restore := func(b []byte) error { return registry.New().Restore(bytes.NewReader(b)) }
	decodeResult := func(b []byte) error { _, err := registry.DecodeResult(b); return err }
	decodeState := func(b []byte) error { _, err := registry.DecodeState(b); return err }
	decodeNode := func(b []byte) error { _, err := registry.DecodeNode(b); return err }
	decodeEnsemble := func(b []byte) error { _, err := registry.DecodeEnsemble(b); return err }
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"restore of nothing", restore(nil), "registry: bad snapshot: truncated header"},
		{"restore with a bad magic", restore(flip(0)), `registry: bad snapshot: magic "ISRG", want "HSRG"`},
		{"restore of a newer version", restore(flip(4)), "registry: bad snapshot: unsupported version 0, want 1"},
		{"restore of a cut body", restore(image[:20]), "registry: bad snapshot: truncated: body and checksum need 50 bytes, have 7"},
		{"restore of a flipped body bit", restore(flip(25)), "registry: bad snapshot: checksum 681dd0b1, stored 16e95b60"},
		{"restore of a bad body", restore(frame(make([]byte, 17))), "registry: bad snapshot: 1 trailing bytes"},
		{"restore of an unknown member", restore(frame(unhex(t, "0000000000000001"+"00000000"+"00000001"+
			"0000000161000000026b760100000000000000000000000000000000000000000000000001000000026e3100000000"))),
			`registry: bad snapshot: ensemble "a": node "n1" is not registered`},
		{"restore from a failing reader", registry.New().Restore(iotest.ErrReader(errors.New("disk on fire"))), "registry: read snapshot header: disk on fire"},
		{"restore from a reader failing later", registry.New().Restore(iotest.TimeoutReader(bytes.NewReader(image))), "registry: read snapshot body: timeout"},
		{"result of nothing", decodeResult(nil), "registry: bad result: truncated version: need 1 bytes, have 0"},
		{"result with an unknown code", decodeResult(append([]byte{1, 9}, make([]byte, 12)...)), "registry: bad result: unknown error code 9"},
		{"result of a newer version", decodeResult(append([]byte{2, 0}, make([]byte, 12)...)), "registry: bad result: unsupported version 2, want 1"},
		{"success with a message", decodeResult(append([]byte{1, 0}, unhex(t, "000000000000000100000001"+"78")...)), "registry: bad result: success carries an error detail"},
		{"state of a newer version", decodeState([]byte{2}), "registry: bad result: unsupported version 2, want 1"},
		{"state with a lying count", decodeState(unhex(t, "01"+"0000000000000000"+"ffffffff")), "registry: bad result: 4294967295 nodes, limit 1024"},
		{"state with too few bytes for its count", decodeState(unhex(t, "01"+"0000000000000000"+"00000002")), "registry: bad result: node count 2 exceeds what 0 bytes can hold"},
		{"state with nodes out of order", decodeState(unhex(t, "01"+"0000000000000000"+"00000002"+
			"000000026e32000000016101000000000000000000000000"+"000000026e31000000016101000000000000000000000000"+"00000000")),
			`registry: bad result: node 1: ID "n1" does not sort after "n2"`},
		{"node in a bad state", decodeNode(unhex(t, "01"+"000000026e31000000016107000000000000000000000000")), `registry: bad result: node "n1": state(7) is not a member state`},
		{"node with tags out of order", decodeNode(unhex(t, "01"+"000000026e31000000016101000000000000000000000002"+
			"000000016200000000"+"000000016100000000")), `registry: bad result: tag key "a" does not sort after "b"`},
		{"ensemble with a bad name", decodeEnsemble(unhex(t, "01"+
			"0000000141000000026b760100000000000000000000000000000000000000000000000001000000026e3100000000")),
			`registry: bad result: ensemble "A": name "A" is not a DNS label: use lower-case letters, digits and inner dashes`},
		{"ensemble whose target is its members", decodeEnsemble(unhex(t, "01"+
			"0000000161000000026b760100000000000000000000000000000000000000000000000001000000026e3100000001000000026e31")),
			`registry: bad result: ensemble "a": target ["n1"] is the member list`},
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
	b := append([]byte("HSRG\x01"), binary.BigEndian.AppendUint64(nil, uint64(len(body)))...)
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
