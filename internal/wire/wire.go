// Package wire encodes hasup's consensus types to bytes and back, for the
// TCP transport and the bbolt store.
//
// Design notes:
//
//   - Hand-written with encoding/binary rather than gob, protobuf or JSON: the
//     format is small, stable and reviewable, and the decoder can bound every
//     allocation by the input it has been given.
//   - Integers are uvarints (int64 Entry.Time a zig-zag varint); byte strings
//     and names are a uvarint length then the bytes; lists are a uvarint count
//     then the items; enums (Mode, EntryKind, MsgType) are one byte each;
//     booleans are one byte, 0 or 1.
//   - Each Entry, HardState and Message encoding starts with a Version byte
//     so the format can evolve; entries inside a Message are covered by the
//     Message's version and carry none of their own.
//   - Encodings are canonical: a decoder rejects non-minimal varints, boolean
//     bytes other than 0 and 1, unknown flag bits and trailing bytes, so any
//     input that decodes re-encodes to exactly the same bytes (the fuzz
//     targets check this).
//   - Decoders never panic, and never allocate more than the remaining input
//     could hold: every count and length is checked against the bytes left
//     before a slice is made. Decoded slices are copies and never alias the
//     input (bbolt memory is only valid inside its transaction).
//   - Empty slices decode as nil (Entry.Cmd, HardState.Members,
//     Message.Entries, Message.Data); nil and empty encode the same way.
//   - The codec does not judge values: an unknown MsgType or Mode decodes as
//     is, and the ensemble rejects impossible messages itself.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
)

// Version is the format version written first in every encoding and frame.
// A decoder rejects any other.
const Version = 1

// MaxFrameBytes is the largest frame payload a reader accepts, whatever max
// it is given: a bound on what one peer can make a reader allocate.
const MaxFrameBytes = 64 << 20

// ErrMalformed is wrapped by every decode error, which names the field at
// fault; test for it with errors.Is.
var ErrMalformed = errors.New("wire: malformed")

// minEntryBytes is the smallest encoding of an entry inside a Message: eight
// one-byte varints, the kind byte and a zero cmd length.
const minEntryBytes = 10

// Message flag bits.
const (
	flagWantCheckpoint = 1 << iota
	flagCommitted
	flagQuiesce
	flagsKnown = flagWantCheckpoint | flagCommitted | flagQuiesce
)

// AppendEntry appends the encoding of e to b.
func AppendEntry(b []byte, e ensemble.Entry) []byte {
	b = append(b, Version)
	return appendEntryBody(b, e)
}

// DecodeEntry decodes b, which must hold exactly one AppendEntry encoding.
func DecodeEntry(b []byte) (ensemble.Entry, error) {
	d := decoder{b: b, ctx: "entry: "}
	d.version()
	e := d.entryBody()
	d.end()
	if d.err != nil {
		return ensemble.Entry{}, d.err
	}
	return e, nil
}

// AppendHardState appends the encoding of h to b.
func AppendHardState(b []byte, h ensemble.HardState) []byte {
	b = append(b, Version)
	b = binary.AppendUvarint(b, h.Epoch)
	b = binary.AppendUvarint(b, uint64(len(h.Members)))
	for _, m := range h.Members {
		b = appendString(b, string(m))
	}
	b = binary.AppendUvarint(b, h.View)
	b = append(b, byte(h.Mode))
	b = binary.AppendUvarint(b, h.LastNormalView)
	b = binary.AppendUvarint(b, h.Commit)
	return appendBool(b, h.Amnesiac)
}

// DecodeHardState decodes b, which must hold exactly one AppendHardState
// encoding.
func DecodeHardState(b []byte) (ensemble.HardState, error) {
	d := decoder{b: b, ctx: "hard state: "}
	var h ensemble.HardState
	d.version()
	h.Epoch = d.uvarint("epoch")
	if n := d.count("members", 1); n > 0 {
		h.Members = make([]hasup.NodeID, n)
		for i := range h.Members {
			h.Members[i] = hasup.NodeID(d.string(fmt.Sprintf("member %d", i)))
		}
	}
	h.View = d.uvarint("view")
	h.Mode = ensemble.Mode(d.byte("mode"))
	h.LastNormalView = d.uvarint("last normal view")
	h.Commit = d.uvarint("commit")
	h.Amnesiac = d.bool("amnesiac")
	d.end()
	if d.err != nil {
		return ensemble.HardState{}, d.err
	}
	return h, nil
}

// AppendMessage appends the encoding of m to b.
func AppendMessage(b []byte, m ensemble.Message) []byte {
	b = append(b, Version, byte(m.Type))
	b = appendString(b, string(m.Ensemble))
	b = binary.AppendUvarint(b, m.Epoch)
	b = appendString(b, string(m.From))
	b = appendString(b, string(m.To))
	b = binary.AppendUvarint(b, m.View)
	b = binary.AppendUvarint(b, m.Op)
	b = binary.AppendUvarint(b, m.Commit)
	b = binary.AppendUvarint(b, m.LastNormalView)
	b = binary.AppendUvarint(b, m.LogStart)
	b = binary.AppendUvarint(b, uint64(len(m.Entries)))
	for _, e := range m.Entries {
		b = appendEntryBody(b, e)
	}
	b = binary.AppendUvarint(b, m.Round)
	b = binary.AppendUvarint(b, m.Nonce)
	b = binary.AppendUvarint(b, m.Stamp)
	b = binary.AppendUvarint(b, m.Lag)
	var flags byte
	if m.WantCheckpoint {
		flags |= flagWantCheckpoint
	}
	if m.Committed {
		flags |= flagCommitted
	}
	if m.Quiesce {
		flags |= flagQuiesce
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, m.CheckpointOp)
	b = binary.AppendUvarint(b, m.Offset)
	b = binary.AppendUvarint(b, m.Total)
	return appendBytes(b, m.Data)
}

// DecodeMessage decodes b, which must hold exactly one AppendMessage
// encoding.
func DecodeMessage(b []byte) (ensemble.Message, error) {
	d := decoder{b: b, ctx: "message: "}
	var m ensemble.Message
	d.version()
	m.Type = ensemble.MsgType(d.byte("type"))
	m.Ensemble = hasup.EnsembleName(d.string("ensemble"))
	m.Epoch = d.uvarint("epoch")
	m.From = hasup.NodeID(d.string("from"))
	m.To = hasup.NodeID(d.string("to"))
	m.View = d.uvarint("view")
	m.Op = d.uvarint("op")
	m.Commit = d.uvarint("commit")
	m.LastNormalView = d.uvarint("last normal view")
	m.LogStart = d.uvarint("log start")
	if n := d.count("entries", minEntryBytes); n > 0 {
		m.Entries = make([]ensemble.Entry, n)
		for i := range m.Entries {
			d.ctx = fmt.Sprintf("message: entry %d: ", i)
			m.Entries[i] = d.entryBody()
		}
		d.ctx = "message: "
	}
	m.Round = d.uvarint("round")
	m.Nonce = d.uvarint("nonce")
	m.Stamp = d.uvarint("stamp")
	m.Lag = d.uvarint("lag")
	flags := d.byte("flags")
	if flags&^flagsKnown != 0 {
		d.fail("flags: unknown bits %#x", flags&^flagsKnown)
	}
	m.WantCheckpoint = flags&flagWantCheckpoint != 0
	m.Committed = flags&flagCommitted != 0
	m.Quiesce = flags&flagQuiesce != 0
	m.CheckpointOp = d.uvarint("checkpoint op")
	m.Offset = d.uvarint("offset")
	m.Total = d.uvarint("total")
	m.Data = d.bytes("data")
	d.end()
	if d.err != nil {
		return ensemble.Message{}, d.err
	}
	return m, nil
}

func appendEntryBody(b []byte, e ensemble.Entry) []byte {
	b = binary.AppendUvarint(b, e.Op)
	b = binary.AppendUvarint(b, e.Epoch)
	b = binary.AppendUvarint(b, e.View)
	b = append(b, byte(e.Kind))
	b = binary.AppendUvarint(b, e.Client)
	b = binary.AppendUvarint(b, e.Request)
	b = binary.AppendVarint(b, e.Time)
	b = binary.AppendUvarint(b, e.Seed)
	return appendBytes(b, e.Cmd)
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}
