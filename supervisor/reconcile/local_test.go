package reconcile

import (
	"testing"

	"github.com/hasup/hasup"
)

// Rules (d) to (h): what a node does with its own replicas. The cases run
// at a node that is not the cluster primary: none of them needs it.
func TestLocal(t *testing.T) {
	retired := func(r Replica, stopped bool) Replica {
		r.Mode, r.IsPrimary, r.Stopped = ModeRetired, false, stopped
		return r
	}
	mode := func(r Replica, m string) Replica {
		r.Mode = m
		if m != ModeNormal {
			r.IsPrimary = false
		}
		return r
	}
	noPrimary := func(r Replica) Replica {
		r.Primary, r.IsPrimary = "", false
		return r
	}
	tests := []struct {
		name      string
		self      string
		detector  []string // default: n1..n5 alive
		ensembles []Ensemble
		local     []Replica
		hinted    map[hasup.EnsembleName]uint64
		unread    bool // Registry.Version 0: never read
		cluster   hasup.EnsembleName
		want      []Action
	}{
		// (d) Reconfigure.
		{
			name:      "the primary in the registry's epoch reconfigures to the Target",
			self:      "n1",
			ensembles: []Ensemble{withTarget(ens("e", 3, "n1", "n2", "n3"), "n1", "n2", "n4")},
			local:     []Replica{replica("n1", "e", 3, 0, "n1", "n2", "n3")},
			want:      []Action{{Kind: Reconfigure, Ensemble: "e", Epoch: 3, Members: ids("n1", "n2", "n4")}},
		},
		{
			name:      "a backup does not reconfigure",
			self:      "n2",
			ensembles: []Ensemble{withTarget(ens("e", 3, "n1", "n2", "n3"), "n1", "n2", "n4")},
			local:     []Replica{replica("n2", "e", 3, 0, "n1", "n2", "n3")},
		},
		{
			name:      "a replica changing views does not reconfigure",
			self:      "n1",
			ensembles: []Ensemble{withTarget(ens("e", 3, "n1", "n2", "n3"), "n1", "n2", "n4")},
			local:     []Replica{mode(replica("n1", "e", 3, 0, "n1", "n2", "n3"), ModeViewChange)},
		},
		{
			name:      "a primary of an older epoch than the registry's does not reconfigure",
			self:      "n1",
			ensembles: []Ensemble{withTarget(ens("e", 3, "n1", "n2", "n3"), "n1", "n2", "n4")},
			local:     []Replica{replica("n1", "e", 2, 0, "n1", "n2", "n3")},
		},
		{
			name:      "no Target: nothing to do",
			self:      "n1",
			ensembles: []Ensemble{ens("e", 3, "n1", "n2", "n3")},
			local:     []Replica{replica("n1", "e", 3, 0, "n1", "n2", "n3")},
		},
		// (e) ProposeFinishReconfig.
		{
			name:      "the primary of a later epoch proposes that the registry record it",
			self:      "n1",
			ensembles: []Ensemble{withTarget(ens("e", 3, "n1", "n2", "n3"), "n1", "n2", "n4")},
			local:     []Replica{replica("n1", "e", 4, 0, "n1", "n2", "n4")},
			want:      []Action{{Kind: ProposeFinishReconfig, Ensemble: "e", Epoch: 4, Members: ids("n1", "n2", "n4")}},
		},
		{
			name:      "a backup of the later epoch leaves it to the primary",
			self:      "n2",
			ensembles: []Ensemble{withTarget(ens("e", 3, "n1", "n2", "n3"), "n1", "n2", "n4")},
			local:     []Replica{replica("n2", "e", 4, 0, "n1", "n2", "n4")},
		},
		{
			name:      "no known primary: the lowest member proposes",
			self:      "n1",
			ensembles: []Ensemble{withTarget(ens("e", 3, "n2", "n1", "n3"), "n2", "n1", "n4")},
			local:     []Replica{noPrimary(replica("n1", "e", 4, 0, "n2", "n1", "n4"))},
			want:      []Action{{Kind: ProposeFinishReconfig, Ensemble: "e", Epoch: 4, Members: ids("n2", "n1", "n4")}},
		},
		{
			name:      "no known primary: the others do not",
			self:      "n4",
			ensembles: []Ensemble{withTarget(ens("e", 3, "n2", "n1", "n3"), "n2", "n1", "n4")},
			local:     []Replica{noPrimary(replica("n4", "e", 4, 0, "n2", "n1", "n4"))},
		},
		{
			name:      "the registry already records the epoch",
			self:      "n1",
			ensembles: []Ensemble{ens("e", 4, "n1", "n2", "n4")},
			local:     []Replica{replica("n1", "e", 4, 0, "n1", "n2", "n4")},
		},
		// (f) StartReplica.
		{
			name:      "a member of a new ensemble bootstraps it",
			self:      "n2",
			ensembles: []Ensemble{ens("e", 0, "n1", "n2", "n3")},
			want:      []Action{{Kind: StartReplica, Ensemble: "e", Epoch: 0, Members: ids("n1", "n2", "n3"), Bootstrap: true}},
		},
		{
			name:      "bootstrap only at epoch 0: later, a member without a replica joins (its storage, if any, wins)",
			self:      "n2",
			ensembles: []Ensemble{ens("e", 5, "n1", "n2", "n3")},
			want:      []Action{{Kind: StartReplica, Ensemble: "e", Epoch: 5, Members: ids("n1", "n2", "n3"), Join: true}},
		},
		{
			name:      "no bootstrap at epoch 0 while a reconfiguration is in progress",
			self:      "n2",
			ensembles: []Ensemble{withTarget(ens("e", 0, "n1", "n2", "n3"), "n1", "n2", "n4")},
			want:      []Action{{Kind: StartReplica, Ensemble: "e", Epoch: 0, Members: ids("n1", "n2", "n3")}},
		},
		{
			name:      "a node in the Target only joins the next epoch",
			self:      "n4",
			ensembles: []Ensemble{withTarget(ens("e", 0, "n1", "n2", "n3"), "n1", "n2", "n4")},
			want:      []Action{{Kind: StartReplica, Ensemble: "e", Epoch: 1, Members: ids("n1", "n2", "n4"), Join: true}},
		},
		{
			name:      "a replica that runs is not started again",
			self:      "n4",
			ensembles: []Ensemble{withTarget(ens("e", 0, "n1", "n2", "n3"), "n1", "n2", "n4")},
			local:     []Replica{mode(replica("n4", "e", 1, 0, "n1", "n2", "n4"), ModeJoining)},
		},
		{
			name:      "an ensemble that does not name this node is not started",
			self:      "n5",
			ensembles: []Ensemble{withTarget(ens("e", 0, "n1", "n2", "n3"), "n1", "n2", "n4")},
		},
		// (g) StopReplica.
		{
			name:      "a deleted ensemble's replica is deleted",
			self:      "n1",
			cluster:   "cluster",
			ensembles: []Ensemble{ens("other", 0, "n2", "n3", "n4")},
			local:     []Replica{replica("n1", "gone", 2, 0, "n1", "n2", "n3")},
			want:      []Action{{Kind: StopReplica, Ensemble: "gone", Delete: true}},
		},
		{
			name:    "nothing is deleted for absence before the registry was read",
			self:    "n1",
			cluster: "cluster",
			unread:  true,
			local:   []Replica{replica("n1", "gone", 2, 0, "n1", "n2", "n3")},
		},
		{
			name:      "the cluster ensemble runs before it is registered",
			self:      "n1",
			cluster:   "cluster",
			ensembles: []Ensemble{ens("other", 0, "n2", "n3", "n4")},
			local:     []Replica{replica("n1", "cluster", 0, 0, "n1", "n2", "n3")},
		},
		{
			name:      "without the cluster ensemble's name nothing is deleted for absence",
			self:      "n1",
			cluster:   "",
			ensembles: []Ensemble{ens("other", 0, "n2", "n3", "n4")},
			local:     []Replica{replica("n1", "gone", 2, 0, "n1", "n2", "n3")},
		},
		{
			name:      "replaced while away: the registry records a later epoch without this node",
			self:      "n3",
			ensembles: []Ensemble{ens("e", 3, "n1", "n2", "n4")},
			local:     []Replica{replica("n3", "e", 2, 0, "n1", "n2", "n3")},
			want:      []Action{{Kind: StopReplica, Ensemble: "e", Delete: true}},
		},
		{
			name:      "replaced while away, and restarted recovering: deleted too",
			self:      "n3",
			ensembles: []Ensemble{ens("e", 3, "n1", "n2", "n4")},
			local:     []Replica{mode(replica("n3", "e", 2, 0, "n1", "n2", "n3"), ModeRecovering)},
			want:      []Action{{Kind: StopReplica, Ensemble: "e", Delete: true}},
		},
		{
			name:      "a member being replaced keeps running until the new epoch is recorded",
			self:      "n3",
			ensembles: []Ensemble{withTarget(ens("e", 2, "n1", "n2", "n3"), "n1", "n2", "n4")},
			local:     []Replica{replica("n3", "e", 2, 0, "n1", "n2", "n3")},
		},
		{
			name:      "a retiring replica serves the state until it stops, even once the registry records the epoch",
			self:      "n3",
			ensembles: []Ensemble{ens("e", 3, "n1", "n2", "n4")},
			local:     []Replica{retired(replica("n3", "e", 3, 0, "n1", "n2", "n4"), false)},
		},
		{
			name:      "a retiring replica before the registry records the epoch",
			self:      "n3",
			ensembles: []Ensemble{withTarget(ens("e", 2, "n1", "n2", "n3"), "n1", "n2", "n4")},
			local:     []Replica{retired(replica("n3", "e", 3, 0, "n1", "n2", "n4"), false)},
		},
		{
			name:      "a retired replica that stopped is deleted",
			self:      "n3",
			ensembles: []Ensemble{ens("e", 3, "n1", "n2", "n4")},
			local:     []Replica{retired(replica("n3", "e", 3, 0, "n1", "n2", "n4"), true)},
			want:      []Action{{Kind: StopReplica, Ensemble: "e", Delete: true}},
		},
		{
			name:      "a retiring replica whose epoch was superseded is deleted",
			self:      "n3",
			ensembles: []Ensemble{ens("e", 4, "n1", "n2", "n5")},
			local:     []Replica{retired(replica("n3", "e", 3, 0, "n1", "n2", "n4"), false)},
			want:      []Action{{Kind: StopReplica, Ensemble: "e", Delete: true}},
		},
		{
			name:      "a stopped replica that the lagging registry still names waits, rather than restart",
			self:      "n3",
			ensembles: []Ensemble{withTarget(ens("e", 2, "n1", "n2", "n3"), "n1", "n2", "n4")},
			local:     []Replica{retired(replica("n3", "e", 3, 0, "n1", "n2", "n4"), true)},
		},
		{
			name:      "a stopped replica of a node added back is deleted, to start afresh",
			self:      "n3",
			ensembles: []Ensemble{withTarget(ens("e", 3, "n1", "n2", "n4"), "n1", "n2", "n3")},
			local:     []Replica{retired(replica("n3", "e", 3, 0, "n1", "n2", "n4"), true)},
			want:      []Action{{Kind: StopReplica, Ensemble: "e", Delete: true}},
		},
		{
			name:      "a joiner of an aborted reconfiguration is deleted once the epoch it joins is recorded without it",
			self:      "n4",
			ensembles: []Ensemble{ens("e", 1, "n1", "n2", "n5")},
			local:     []Replica{mode(replica("n4", "e", 1, 0, "n1", "n2", "n4"), ModeJoining)},
			want:      []Action{{Kind: StopReplica, Ensemble: "e", Delete: true}},
		},
		{
			name:      "a joiner ahead of the registry is kept: the epoch it joins may run",
			self:      "n4",
			ensembles: []Ensemble{ens("e", 0, "n1", "n2", "n3")},
			local:     []Replica{mode(replica("n4", "e", 1, 0, "n1", "n2", "n4"), ModeJoining)},
		},
		{
			name:      "a member in step with the registry is kept",
			self:      "n2",
			ensembles: []Ensemble{ens("e", 3, "n1", "n2", "n4")},
			local:     []Replica{replica("n2", "e", 3, 1, "n1", "n2", "n4")},
		},
		// (h) SuspectPrimary.
		{
			name:      "a backup whose primary's node failed is hinted",
			self:      "n2",
			detector:  []string{"n1:failed@0", "n2", "n3"},
			ensembles: []Ensemble{ens("e", 3, "n1", "n2", "n3")},
			local:     []Replica{replica("n2", "e", 3, 0, "n1", "n2", "n3")},
			want:      []Action{{Kind: SuspectPrimary, Ensemble: "e", Node: "n1", Epoch: 3, View: 0}},
		},
		{
			name:      "a primary's node that left is hinted too",
			self:      "n2",
			detector:  []string{"n1", "n2", "n3:left@0"},
			ensembles: []Ensemble{ens("e", 3, "n1", "n2", "n3")},
			local:     []Replica{replica("n2", "e", 3, 2, "n1", "n2", "n3")},
			want:      []Action{{Kind: SuspectPrimary, Ensemble: "e", Node: "n3", Epoch: 3, View: 2}},
		},
		{
			name:      "once per view",
			self:      "n2",
			detector:  []string{"n1:failed", "n2", "n3"},
			ensembles: []Ensemble{ens("e", 3, "n1", "n2", "n3")},
			local:     []Replica{replica("n2", "e", 3, 3, "n1", "n2", "n3")},
			hinted:    map[hasup.EnsembleName]uint64{"e": Fence(3, 3)},
		},
		{
			name:      "a later view is hinted again",
			self:      "n2",
			detector:  []string{"n1:failed", "n2", "n3"},
			ensembles: []Ensemble{ens("e", 3, "n1", "n2", "n3")},
			local:     []Replica{replica("n2", "e", 3, 3, "n1", "n2", "n3")},
			hinted:    map[hasup.EnsembleName]uint64{"e": Fence(3, 0)},
			want:      []Action{{Kind: SuspectPrimary, Ensemble: "e", Node: "n1", Epoch: 3, View: 3}},
		},
		{
			name:      "views restart at 0 in a new epoch: a hint of an old epoch's later view does not suppress it",
			self:      "n2",
			detector:  []string{"n1:failed", "n2", "n3"},
			ensembles: []Ensemble{ens("e", 4, "n1", "n2", "n3")},
			local:     []Replica{replica("n2", "e", 4, 0, "n1", "n2", "n3")},
			hinted:    map[hasup.EnsembleName]uint64{"e": Fence(3, 9)},
			want:      []Action{{Kind: SuspectPrimary, Ensemble: "e", Node: "n1", Epoch: 4, View: 0}},
		},
		{
			name:      "suspect is not enough",
			self:      "n2",
			detector:  []string{"n1:suspect", "n2", "n3"},
			ensembles: []Ensemble{ens("e", 3, "n1", "n2", "n3")},
			local:     []Replica{replica("n2", "e", 3, 0, "n1", "n2", "n3")},
		},
		{
			name:      "a replica already changing views needs no hint",
			self:      "n2",
			detector:  []string{"n1:failed", "n2", "n3"},
			ensembles: []Ensemble{ens("e", 3, "n1", "n2", "n3")},
			local:     []Replica{mode(replica("n2", "e", 3, 0, "n1", "n2", "n3"), ModeViewChange)},
		},
		{
			name:      "the primary is not hinted about itself",
			self:      "n1",
			detector:  []string{"n1:failed", "n2", "n3"},
			ensembles: []Ensemble{ens("e", 3, "n1", "n2", "n3")},
			local:     []Replica{replica("n1", "e", 3, 0, "n1", "n2", "n3")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			det := tt.detector
			if det == nil {
				det = []string{"n1", "n2", "n3", "n4", "n5"}
			}
			version := uint64(7)
			if tt.unread {
				version = 0
			}
			in := Input{Self: hasup.NodeID(tt.self), Now: now, Damping: damping, ClusterEnsemble: tt.cluster,
				Registry: Registry{Version: version, Nodes: regNodes("n1", "n2", "n3", "n4", "n5"), Ensembles: tt.ensembles},
				Detector: seen(det...), Local: tt.local, Hinted: tt.hinted}
			checkActions(t, decided(t, in), tt.want)
		})
	}
}

// A hint at view 0 needs Hinted to hold the ensemble, not just a zero
// value: a missing entry means never hinted.
func TestHintAtViewZeroWithEmptyHinted(t *testing.T) {
	in := Input{Self: "n2", Now: now, Registry: Registry{Version: 1}, Detector: seen("n1:failed"),
		Local: []Replica{replica("n2", "e", 0, 0, "n1", "n2", "n3")}, Hinted: map[hasup.EnsembleName]uint64{}}
	checkActions(t, decided(t, in), []Action{{Kind: SuspectPrimary, Ensemble: "e", Node: "n1"}})
}

func TestValidate(t *testing.T) {
	bad := []Input{
		{},
		{Self: "n1", Registry: Registry{Nodes: regNodes("n1", "n1")}},
		{Self: "n1", Registry: Registry{Ensembles: []Ensemble{ens("e", 0, "n1"), ens("e", 1, "n2")}}},
		{Self: "n1", Detector: seen("n2", "n2:failed")},
		{Self: "n1", Local: []Replica{{Name: ""}}},
	}
	for i, in := range bad {
		if err := in.Validate(); err == nil {
			t.Errorf("input %d: Validate accepted it", i)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("input %d: Decide did not panic", i)
				}
			}()
			Decide(in)
		}()
	}
	if err := cluster("n1", true, "n1", "n2").Validate(); err != nil {
		t.Errorf("a good input: %v", err)
	}
}
