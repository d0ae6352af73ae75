package ensemble

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/fsm"
)

// Config configures one replica. Start from DefaultConfig and set the
// identity fields (Ensemble, ID, Members, FSM, Rand).
type Config struct {
	// Ensemble names the ensemble; every message carries it.
	Ensemble hasup.EnsembleName
	// ID is this replica's node. It must be one of Members.
	ID hasup.NodeID
	// Members is the ordered member list; the primary of view v is
	// Members[v mod len(Members)]. 1 to 7 distinct nodes; 3 or 5 in
	// production (1 for development).
	Members []hasup.NodeID
	// Epoch is the configuration's epoch (VRR §7).
	Epoch uint64
	// FSM is the replicated state machine. The replica owns it.
	FSM fsm.FSM
	// Rand is the replica's only randomness: view-change timeouts, recovery
	// nonces and the per-batch seeds a primary ships to the FSM.
	Rand *rand.Rand
	// Clock returns the wall-clock time in Unix nanoseconds. A primary reads
	// it once per batch to give the FSM a time. Nil reads as 0. It is only a
	// timestamp source: no protocol decision depends on it.
	Clock func() int64

	// Durable is the persisted state after a restart. Nil with Bootstrap
	// true starts a brand-new ensemble; nil with Bootstrap false means the
	// storage was lost or failed its checksums, and the replica recovers
	// its state from its peers (VRR §4.3) before taking part.
	Durable   *Durable
	Bootstrap bool
	// Join: the replica is a new member of epoch Epoch with Members, added
	// by a reconfiguration: it fetches the committed state from its peers
	// and takes part only then. Only for a replica that never persisted
	// anything: one that joined and then lost its storage may have
	// acknowledged ops, and must recover (Join false, Durable nil).
	Join bool

	// HeartbeatTicks: ticks between a primary's COMMIT heartbeats (and
	// resends of unacknowledged PREPAREs). Default 1.
	HeartbeatTicks int
	// ViewChangeTicks: a backup that hears nothing from its primary for a
	// random timeout in [ViewChangeTicks, 2*ViewChangeTicks) starts a view
	// change; the randomisation keeps competing view changes from duelling.
	// Must exceed 2*HeartbeatTicks. Default 10.
	ViewChangeTicks int
	// BatchOps and BatchBytes bound one PREPARE batch. Defaults 64 and
	// 256 KiB: large enough to amortise a storage commit, small enough that
	// one batch is one frame.
	BatchOps   int
	BatchBytes int
	// PipelineMax bounds the batches a primary has prepared but not yet
	// committed. Default 8.
	PipelineMax int
	// CheckpointOps: every this many ops the replica checkpoints its state
	// and drops the log before the checkpoint. Default 1024.
	CheckpointOps uint64
	// ChunkBytes bounds one NEWSTATE message (checkpoint chunk or entries).
	// Default 64 KiB.
	ChunkBytes int
	// ClientsMax bounds the client table; opening a session beyond it evicts
	// the least recently active client. Default 4096.
	ClientsMax int
	// ReplyBytesMax bounds a reply kept in the client table; a larger reply
	// is answered once, and a retry of its request gets ErrReplyNotKept.
	// Default 64 KiB.
	ReplyBytesMax int
	// ProposalsMax and ReadsMax bound the requests waiting at a primary;
	// beyond them Propose and Read fail with ErrBusy. Defaults 4096, 4096.
	ProposalsMax int
	ReadsMax     int
	// RetryTicks: ticks without progress before a replica resends a
	// GETSTATE, RECOVERY or view-change message. Default 4.
	RetryTicks int
	// LeaseTicks: how long a backup's acknowledgement promises not to take
	// part in a view change, and so how long a primary's lease lasts after
	// the stamp a majority echoed. 0 turns leases off (and lease reads
	// fail). Must be below ViewChangeTicks, so that a backup's timeout
	// never waits on its own promise. Default 8.
	LeaseTicks int
	// DriftMarginTicks: what the primary subtracts from its lease for
	// clock-rate drift between replicas and for tick granularity. It must
	// cover 1 + LeaseTicks*rho for a relative drift rate rho. Default 2
	// (rho up to 12% with LeaseTicks 8).
	DriftMarginTicks int
	// QuiesceTicks: a primary with nothing to do for this many ticks asks
	// its backups to quiesce, and the ensemble stops heartbeating until
	// something happens (quiesce.go). The runtime must then watch the
	// members' nodes and Wake the replica when one goes quiet. 0, the
	// default, never quiesces: right for the simulator's plain runs and
	// for an ensemble whose primary must hold its lease continuously.
	QuiesceTicks int
}

// DefaultConfig returns a Config with every tuning field at its default and
// no identity.
func DefaultConfig() Config {
	return Config{
		HeartbeatTicks:   1,
		ViewChangeTicks:  10,
		BatchOps:         64,
		BatchBytes:       256 << 10,
		PipelineMax:      8,
		CheckpointOps:    1024,
		ChunkBytes:       64 << 10,
		ClientsMax:       4096,
		ReplyBytesMax:    64 << 10,
		ProposalsMax:     4096,
		ReadsMax:         4096,
		RetryTicks:       4,
		LeaseTicks:       8,
		DriftMarginTicks: 2,
	}
}

// Validate reports the first field that is missing or out of range.
func (c *Config) Validate() error {
	switch {
	case c.Ensemble == "":
		return errors.New("ensemble config: Ensemble is empty")
	case c.ID == "":
		return errors.New("ensemble config: ID is empty")
	case len(c.Members) < 1 || len(c.Members) > 7 || len(c.Members)%2 == 0:
		// Even sizes buy no fault tolerance, and the view-change and
		// recovery quorums (f+1 with f = (n-1)/2) rely on n = 2f+1.
		return fmt.Errorf("ensemble config %s: %d members, want 1, 3, 5 or 7", c.Ensemble, len(c.Members))
	case !slices.Contains(c.Members, c.ID) && (c.Durable == nil || len(c.Durable.Hard.Members) == 0):
		// After a restart the durable member list counts: a retired
		// replica, or one that has not yet heard of its removal, restarts.
		return fmt.Errorf("ensemble config %s: ID %s is not a member", c.Ensemble, c.ID)
	case c.FSM == nil:
		return fmt.Errorf("ensemble config %s: FSM is nil", c.Ensemble)
	case c.Rand == nil:
		return fmt.Errorf("ensemble config %s: Rand is nil", c.Ensemble)
	case c.HeartbeatTicks < 1:
		return fmt.Errorf("ensemble config %s: HeartbeatTicks %d < 1", c.Ensemble, c.HeartbeatTicks)
	case c.ViewChangeTicks <= 2*c.HeartbeatTicks:
		return fmt.Errorf("ensemble config %s: ViewChangeTicks %d must exceed 2*HeartbeatTicks", c.Ensemble, c.ViewChangeTicks)
	case c.BatchOps < 1 || c.BatchBytes < 1024 || c.PipelineMax < 1:
		return fmt.Errorf("ensemble config %s: BatchOps, BatchBytes (>=1024) and PipelineMax must be positive", c.Ensemble)
	case c.CheckpointOps < 1:
		return fmt.Errorf("ensemble config %s: CheckpointOps must be positive", c.Ensemble)
	case c.ChunkBytes < 64:
		return fmt.Errorf("ensemble config %s: ChunkBytes %d < 64", c.Ensemble, c.ChunkBytes)
	case c.ClientsMax < 1 || c.ProposalsMax < 1 || c.ReadsMax < 1 || c.RetryTicks < 1 || c.ReplyBytesMax < 0:
		return fmt.Errorf("ensemble config %s: ClientsMax, ProposalsMax, ReadsMax and RetryTicks must be positive", c.Ensemble)
	}
	if c.LeaseTicks < 0 || c.LeaseTicks >= c.ViewChangeTicks || (c.LeaseTicks > 0 && (c.DriftMarginTicks < 1 || c.DriftMarginTicks >= c.LeaseTicks)) {
		return fmt.Errorf("ensemble config %s: LeaseTicks %d must be 0 or in (DriftMarginTicks, ViewChangeTicks), DriftMarginTicks %d at least 1",
			c.Ensemble, c.LeaseTicks, c.DriftMarginTicks)
	}
	if c.QuiesceTicks < 0 {
		return fmt.Errorf("ensemble config %s: QuiesceTicks %d < 0", c.Ensemble, c.QuiesceTicks)
	}
	seen := map[hasup.NodeID]bool{}
	for _, m := range c.Members {
		if m == "" || seen[m] {
			return fmt.Errorf("ensemble config %s: member list %v has an empty or repeated node", c.Ensemble, c.Members)
		}
		seen[m] = true
	}
	return nil
}
