package ensemble

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble/quorum"
)

// Reconfiguration (VRR §7), as epochs.
//
// A new member list is an op of the old epoch e (EntryReconfigure). The
// primary appends nothing after it, so it is the last op of epoch e. A
// replica that applies it (it is committed) enters epoch e+1 at view 0 with
// its log ending at that op: as a member of the new list it is normal at
// once (the new primary is the list's first node), and it tells the new
// members that were not in the old list (STARTEPOCH) and the old members
// that were removed (EPOCHSTARTED); a removed member retires: it serves
// state transfer, and stops once f'+1 members of the new list told it that
// they run the new epoch.
//
// A new member starts in ModeJoining, knowing its epoch and member list.
// It takes part in nothing until it has the committed state up to at least
// the reconfiguration op, which it pulls with a committed-state transfer
// from any replica that has it (the sender of any message of its epoch or a
// later one). A replica of an older epoch that hears from a later one does
// the same: it pulls the committed state, and applying the reconfiguration
// op moves it to the next epoch (or retires it). The member list of each
// epoch is replicated state: checkpoints carry it, so a replica that
// installs a checkpoint from a later epoch moves there too.
//
// Safety rests on two facts: an epoch's member list is decided by one
// committed op of the previous epoch (so there is one list per epoch), and
// no op of epoch e follows the reconfiguration op (so the new epoch's log
// starts from a committed prefix every member of the new epoch holds before
// it takes part). One reconfiguration at a time: a second is refused while
// one is in the log.

// Reconfigure asks the primary to change the member list to members in the
// next epoch. It fails at once if this replica is not the primary of a
// normal view, if a reconfiguration is already in the log, or if the list
// is invalid; otherwise a Reply with id follows once the op commits.
func (r *Replica) Reconfigure(id uint64, members []hasup.NodeID) error {
	r.checkNotInReady()
	if err := r.canOrder(); err != nil {
		return err
	}
	r.wake()
	if err := checkMembers(members); err != nil {
		return err
	}
	if slices.Equal(members, r.members) {
		return fmt.Errorf("ensemble %s: reconfigure to the current member list %v", r.cfg.Ensemble, members)
	}
	r.primary.queue = append(r.primary.queue, Proposal{ID: id, Cmd: encodeReconfig(r.epoch+1, members), reconfig: true})
	return nil
}

func checkMembers(members []hasup.NodeID) error {
	if len(members) < 1 || len(members) > 7 || len(members)%2 == 0 {
		return fmt.Errorf("%w: %d members, want 1, 3, 5 or 7", errBadMembers, len(members))
	}
	for i, m := range members {
		if m == "" || slices.Contains(members[:i], m) {
			return fmt.Errorf("%w: empty or repeated node in %v", errBadMembers, members)
		}
	}
	return nil
}

var errBadMembers = errors.New("ensemble: bad member list")

// encodeReconfig encodes a reconfiguration op: the epoch it starts and the
// epoch's member list.
func encodeReconfig(epoch uint64, members []hasup.NodeID) []byte {
	return append(binary.AppendUvarint(nil, epoch), encodeMembers(members)...)
}

// readReconfig reads an encoded reconfiguration from the front of rd.
func readReconfig(rd *bytes.Reader) (uint64, []hasup.NodeID, error) {
	epoch, err := binary.ReadUvarint(rd)
	if err != nil {
		return 0, nil, err
	}
	n, err := binary.ReadUvarint(rd)
	if err != nil || n > 7 {
		return 0, nil, fmt.Errorf("%w: count", errBadMembers)
	}
	members := make([]hasup.NodeID, 0, n)
	for i := uint64(0); i < n; i++ {
		l, err := binary.ReadUvarint(rd)
		if err != nil || l > uint64(rd.Len()) {
			return 0, nil, fmt.Errorf("%w: member %d", errBadMembers, i)
		}
		b := make([]byte, l)
		_, _ = rd.Read(b)
		members = append(members, hasup.NodeID(b))
	}
	return epoch, members, nil
}

func decodeReconfig(b []byte) (uint64, []hasup.NodeID, error) {
	epoch, k := binary.Uvarint(b)
	if k <= 0 {
		return 0, nil, fmt.Errorf("%w: epoch", errBadMembers)
	}
	members, err := decodeMembers(b[k:])
	return epoch, members, err
}

func encodeMembers(members []hasup.NodeID) []byte {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(members)))
	for _, m := range members {
		b = binary.AppendUvarint(b, uint64(len(m)))
		b = append(b, m...)
	}
	return b
}

func decodeMembers(b []byte) ([]hasup.NodeID, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > 7 {
		return nil, fmt.Errorf("%w: count", errBadMembers)
	}
	b = b[k:]
	out := make([]hasup.NodeID, 0, n)
	for i := uint64(0); i < n; i++ {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, fmt.Errorf("%w: member %d", errBadMembers, i)
		}
		out = append(out, hasup.NodeID(b[k:k+int(l)]))
		b = b[k+int(l):]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes", errBadMembers)
	}
	return out, checkMembers(out)
}

// sealed: the log ends with a reconfiguration, after which nothing may be
// appended in this epoch.
func (r *Replica) sealed() bool {
	if r.op <= r.ckpt.Op || r.op == 0 {
		return false
	}
	last := r.log[len(r.log)-1]
	if last.Kind != EntryReconfigure {
		return false
	}
	epoch, _, err := decodeReconfig(last.Cmd)
	return err != nil || epoch > r.epoch // a reconfiguration that started this epoch seals nothing
}

func (r *Replica) queuedReconfig() bool {
	for _, p := range r.primary.queue {
		if p.reconfig {
			return true
		}
	}
	return false
}

// setMembers installs a member list and the arithmetic that follows from it.
func (r *Replica) setMembers(members []hasup.NodeID) {
	r.members = slices.Clone(members)
	r.n = len(members)
	r.f = quorum.F(r.n)
}

// maybeEnterEpoch moves the replica to the epoch its applied state is in,
// if that is later than its own.
func (r *Replica) maybeEnterEpoch() {
	if r.stateEpoch <= r.epoch && r.mode != ModeJoining {
		return
	}
	if r.mode == ModeJoining && r.stateEpoch < r.epoch {
		return // the state fetched so far predates the epoch this replica joins
	}
	old := r.members
	r.failWaiters(ErrNotPrimary)
	r.primary = primaryState{}
	r.vc = viewChangeState{}
	r.xfer = transfer{}
	r.epoch, r.view, r.lastNormal = r.stateEpoch, 0, 0
	r.setMembers(r.stateMembers)
	r.truncateLog(r.commit) // nothing of the old epoch follows its reconfiguration op
	r.hardDirty = true
	r.epochStarted = map[hasup.NodeID]bool{}
	r.oldMembers = old
	r.sendStartEpoch()
	if !slices.Contains(r.members, r.self) {
		r.mode = ModeRetired
		return
	}
	if r.amnesiac {
		r.amnesiac = false
		r.hardDirty = false // nothing is durable until recovery completes
		r.startRecovery()
		return
	}
	r.becomeNormal()
	for _, id := range old {
		if !slices.Contains(r.members, id) {
			r.send(Message{Type: MsgEpochStarted, To: id})
		}
	}
	if r.enterEpochAt == r.epoch && r.enterView > 0 {
		// The epoch has moved past view 0: join its current view through a
		// transfer rather than act in a stale view 0.
		r.view = r.enterView
		r.lastNormal = 0
		r.hardDirty = true
		r.startTransfer(r.primaryOf(r.view), false)
	}
	r.enterEpochAt, r.enterView = 0, 0
}

// sendStartEpoch tells the members of the new epoch that were not in the
// old one (and, from a retired replica, every new member that has not said
// it runs the epoch) where to fetch the state.
func (r *Replica) sendStartEpoch() {
	for _, id := range r.members {
		if id == r.self || r.epochStarted[id] || (r.mode != ModeRetired && slices.Contains(r.oldMembers, id)) {
			continue
		}
		r.send(Message{Type: MsgStartEpoch, To: id, Op: r.commit})
	}
}

// tickRetired: a retired replica keeps telling new members where the state
// is until f'+1 of them run the new epoch.
func (r *Replica) tickRetired() {
	if !r.stopped && r.ticks%r.cfg.RetryTicks == 0 {
		r.sendStartEpoch()
	}
}

// onLaterEpoch: a peer runs a later epoch (or, for a joining replica, the
// epoch it joins): fetch the committed state from it.
func (r *Replica) onLaterEpoch(m Message) {
	if r.mode == ModeRetired || (r.xfer.active && r.xfer.committed) || m.Type == MsgRecovery {
		return // (a recovering peer has no state to give)
	}
	if r.mode == ModeRecovering {
		// It lost its storage and may have voted in that later epoch: it
		// fetches the committed state to learn the epoch's members, then
		// recovers there (maybeEnterEpoch).
		r.amnesiac = true
	}
	r.failWaiters(ErrNotPrimary)
	r.primary = primaryState{}
	r.startCommittedTransfer(m.From)
}

// onStartEpoch at a member already running the epoch: say so, so the
// retired sender can stop.
func (r *Replica) onStartEpoch(m Message) {
	if r.mode == ModeNormal || r.mode == ModeViewChange {
		r.send(Message{Type: MsgEpochStarted, To: m.From})
	}
}

// onEpochStarted counts the new members that run the epoch that retired
// this replica; with f'+1 of them it stops for good.
func (r *Replica) onEpochStarted(m Message) {
	if r.mode != ModeRetired || m.Epoch != r.epoch || !slices.Contains(r.members, m.From) {
		return
	}
	r.epochStarted[m.From] = true
	if len(r.epochStarted) >= r.f+1 {
		r.stopped = true
	}
}

// answerOlderEpoch tells a replica of an older epoch that a later one runs,
// so it fetches the committed state.
func (r *Replica) answerOlderEpoch(m Message) {
	if (r.mode == ModeNormal || r.mode == ModeRetired) && m.Type != MsgEpochStarted && !(r.mode == ModeRetired && m.Type == MsgStartEpoch) {
		r.send(Message{Type: MsgStartEpoch, To: m.From, Op: r.commit})
	}
}
