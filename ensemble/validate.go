package ensemble

import (
	"errors"
	"fmt"
)

// errMalformed wraps every reason validate gives.
var errMalformed = errors.New("ensemble: malformed message")

// validate checks the structure of a peer's message before any handler
// reads it, so that no field can index outside the log or make a handler
// allocate without bound: entries are dense and agree with the op numbers
// that frame them, kinds are known, chunks lie within their checkpoint.
// A message that fails is dropped and counted (Status().Rejected). Whether
// its content agrees with this replica's state is the handlers' business.
func validate(m Message) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %v from %s: %s", errMalformed, m.Type, m.From, fmt.Sprintf(format, args...))
	}
	if m.View >= 1<<32 || m.Epoch >= 1<<31 || m.LastNormalView >= 1<<32 {
		return bad("view %d or epoch %d out of range (Fence packs them in 64 bits)", m.View, m.Epoch)
	}
	switch m.Type {
	case MsgPrepare:
		if len(m.Entries) > 0 && m.Entries[0].Op == 0 {
			return bad("entry with op 0")
		}
	case MsgDoViewChange, MsgStartView:
		if m.LogStart == 0 || m.LogStart+uint64(len(m.Entries)) != m.Op+1 {
			return bad("log from %d with %d entries does not end at op %d", m.LogStart, len(m.Entries), m.Op)
		}
		if m.LastNormalView > m.View || (m.Type == MsgDoViewChange && m.LastNormalView == m.View) {
			return bad("last normal view %d not below view %d", m.LastNormalView, m.View)
		}
	case MsgNewState:
		if m.CheckpointOp > 0 {
			if m.Total == 0 || m.Offset > m.Total || uint64(len(m.Data)) > m.Total-m.Offset || len(m.Entries) > 0 {
				return bad("checkpoint chunk at %d+%d outside %d bytes", m.Offset, len(m.Data), m.Total)
			}
			return nil
		}
		if m.LogStart == 0 || m.LogStart+uint64(len(m.Entries)) > m.Op+1 {
			return bad("entries from %d beyond the sender's op %d", m.LogStart, m.Op)
		}
	case MsgPrepareOK, MsgCommit, MsgCommitOK, MsgStartViewChange, MsgRecovery, MsgRecoveryResponse, MsgGetState, MsgStartEpoch, MsgEpochStarted:
	default:
		return bad("unknown type")
	}
	if m.Commit > m.Op && (m.Type == MsgDoViewChange || m.Type == MsgStartView || m.Type == MsgNewState) {
		return bad("commit %d beyond op %d", m.Commit, m.Op)
	}
	for i, e := range m.Entries {
		if i > 0 && e.Op != m.Entries[i-1].Op+1 {
			return bad("entries not dense at %d", i)
		}
		if (m.Type == MsgDoViewChange || m.Type == MsgStartView || m.Type == MsgNewState) && e.Op != m.LogStart+uint64(i) {
			return bad("entry %d has op %d, want %d", i, e.Op, m.LogStart+uint64(i))
		}
		if e.Kind != EntryRequest && e.Kind != EntryRegister && e.Kind != EntryReconfigure {
			return bad("entry op %d has unknown kind %d", e.Op, e.Kind)
		}
		if e.Kind == EntryReconfigure {
			if _, _, err := decodeReconfig(e.Cmd); err != nil {
				return bad("entry op %d: %v", e.Op, err)
			}
		}
	}
	return nil
}
