package ensemble

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// clientTable is VRR's client table: for each client session, the number of
// its last executed request and that request's reply. It is replicated state:
// every replica updates it only when applying committed ops, so every
// replica evicts the same sessions at the same op, and it is part of every
// checkpoint.
type clientTable struct {
	max      int
	replyMax int
	sessions map[uint64]*session
}

type session struct {
	request uint64 // last executed request number (0: session opened, nothing executed)
	reply   []byte // reply of that request
	dropped bool   // the reply exceeded replyMax and was not kept
	lastOp  uint64 // op of the last activity, for least-recently-active eviction
}

func newClientTable(max, replyMax int) *clientTable {
	return &clientTable{max: max, replyMax: replyMax, sessions: map[uint64]*session{}}
}

// register opens a session for client at op, evicting the least recently
// active session if the table is full; requests numbered floor or below are
// refused. Registering an open session only refreshes it.
func (t *clientTable) register(client, op, floor uint64) {
	if s, ok := t.sessions[client]; ok {
		s.lastOp = op
		return
	}
	if len(t.sessions) >= t.max {
		t.evictOldest()
	}
	t.sessions[client] = &session{lastOp: op, request: floor, dropped: floor > 0}
}

// RegisterFloor encodes the Cmd of a session-opening proposal (Request 0):
// floor is the largest request number the client has used so far, so that
// none of its earlier requests can execute in the new session.
func RegisterFloor(floor uint64) []byte { return binary.AppendUvarint([]byte{floorTag}, floor) }

// floorTag marks a register Cmd that carries a floor; any other Cmd means 0.
const floorTag = 0xF1

func decodeFloor(cmd []byte) uint64 {
	if len(cmd) < 2 || cmd[0] != floorTag {
		return 0
	}
	floor, k := binary.Uvarint(cmd[1:])
	if k <= 0 {
		return 0
	}
	return floor
}

func (t *clientTable) evictOldest() {
	var victim uint64
	var oldest *session
	for id, s := range t.sessions {
		if oldest == nil || s.lastOp < oldest.lastOp || (s.lastOp == oldest.lastOp && id < victim) {
			victim, oldest = id, s
		}
	}
	delete(t.sessions, victim)
}

// admit decides what applying request req of client means: execute it
// (nil, false), answer it from the table without executing (reply, true),
// or refuse it with an error.
func (t *clientTable) admit(client, req uint64) (cached []byte, dup bool, err error) {
	s, ok := t.sessions[client]
	switch {
	case !ok:
		return nil, false, ErrSessionExpired
	case req == s.request && s.dropped:
		return nil, true, ErrReplyNotKept
	case req == s.request:
		return s.reply, true, nil
	case req < s.request:
		return nil, false, ErrStaleRequest
	}
	return nil, false, nil
}

func (t *clientTable) record(client, req, op uint64, reply []byte) {
	s := t.sessions[client]
	s.request, s.lastOp = req, op
	s.reply, s.dropped = reply, len(reply) > t.replyMax
	if s.dropped {
		s.reply = nil
	}
}

const checkpointVersion = 3

// encodeCheckpoint writes the client table, the last batch time and the FSM
// snapshot as one checkpoint image.
func (r *Replica) encodeCheckpoint() []byte {
	var b bytes.Buffer
	b.WriteByte(checkpointVersion)
	ids := make([]uint64, 0, len(r.clients.sessions))
	for id := range r.clients.sessions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	b.Write(binary.AppendUvarint(nil, uint64(r.lastTime)))
	// The epoch and member list as of this op are replicated state too.
	b.Write(encodeReconfig(r.stateEpoch, r.stateMembers))
	b.Write(binary.AppendUvarint(nil, uint64(len(ids))))
	for _, id := range ids {
		s := r.clients.sessions[id]
		var h []byte
		h = binary.AppendUvarint(h, id)
		h = binary.AppendUvarint(h, s.request)
		h = binary.AppendUvarint(h, s.lastOp)
		switch {
		case s.dropped:
			h = binary.AppendUvarint(h, 1)
		case s.reply == nil:
			h = binary.AppendUvarint(h, 0)
		default:
			h = binary.AppendUvarint(h, uint64(len(s.reply))+2)
			h = append(h, s.reply...)
		}
		b.Write(h)
	}
	if err := r.fsm.Snapshot(&b); err != nil {
		// A snapshot of in-memory state cannot fail unless the FSM is
		// broken; continuing would write a checkpoint that cannot restore.
		panic(fmt.Sprintf("ensemble %s: FSM snapshot at op %d: %v", r.cfg.Ensemble, r.applied, err))
	}
	return b.Bytes()
}

var errBadCheckpoint = errors.New("ensemble: malformed checkpoint")

// restoreCheckpoint replaces the FSM and the client table with the image.
func (r *Replica) restoreCheckpoint(data []byte) error {
	rd := bytes.NewReader(data)
	v, err := rd.ReadByte()
	if err != nil || v != checkpointVersion {
		return fmt.Errorf("%w: version %d", errBadCheckpoint, v)
	}
	last, err := binary.ReadUvarint(rd)
	if err != nil {
		return fmt.Errorf("%w: time: %v", errBadCheckpoint, err)
	}
	epoch, members, err := readReconfig(rd)
	if err != nil {
		return fmt.Errorf("%w: configuration: %v", errBadCheckpoint, err)
	}
	n, err := binary.ReadUvarint(rd)
	if err != nil || n > uint64(rd.Len()) {
		return fmt.Errorf("%w: client count", errBadCheckpoint)
	}
	t := newClientTable(r.cfg.ClientsMax, r.cfg.ReplyBytesMax)
	for i := uint64(0); i < n; i++ {
		var f [4]uint64
		for j := range f {
			if f[j], err = binary.ReadUvarint(rd); err != nil {
				return fmt.Errorf("%w: client %d: %v", errBadCheckpoint, i, err)
			}
		}
		s := &session{request: f[1], lastOp: f[2], dropped: f[3] == 1}
		if f[3] > 1 {
			if f[3]-2 > uint64(rd.Len()) {
				return fmt.Errorf("%w: client %d reply length", errBadCheckpoint, i)
			}
			s.reply = make([]byte, f[3]-2)
			_, _ = rd.Read(s.reply)
		}
		t.sessions[f[0]] = s
	}
	if err := r.fsm.Restore(rd); err != nil {
		return fmt.Errorf("ensemble: restore FSM: %w", err)
	}
	r.clients = t
	r.lastTime = int64(last)
	r.stateEpoch, r.stateMembers = epoch, members
	return nil
}
