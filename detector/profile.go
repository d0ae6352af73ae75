package detector

import (
	"log"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// timings are the knobs a Profile sets. The lan values restate
// memberlist.DefaultLANConfig and serf.DefaultConfig (v0.7.0 and v0.11.0);
// they are written out rather than read from serf.DefaultConfig because
// that function panics when the hostname lookup fails.
type timings struct {
	// memberlist (SWIM with Lifeguard).
	probeInterval    time.Duration // how often a node probes one random peer
	probeTimeout     time.Duration // wait for a direct ack before indirect probes
	indirectChecks   int           // peers asked to probe on our behalf
	suspicionMult    int           // suspicion lasts suspicionMult * log10(n) * probeInterval (at least 1 * ...)
	suspicionMaxMult int           // upper bound, as a multiple of the above, while confirmations are awaited
	awarenessMax     int           // Lifeguard: a degraded node stretches its probes up to this factor
	gossipInterval   time.Duration // how often state changes are gossiped
	gossipToDead     time.Duration // keep gossiping to a dead node this long, so it learns it was declared dead
	retransmitMult   int           // each gossip is retransmitted retransmitMult * log(n+1) times
	pushPullInterval time.Duration // full state sync with one random peer over TCP
	tcpTimeout       time.Duration // TCP dial and I/O: joins, push/pull, fallback pings
	deadReclaim      time.Duration // after this, a dead node's name may rejoin from a new address (0 = never)

	// serf.
	reapInterval        time.Duration // how often failed and left members are reaped
	reconnectInterval   time.Duration // how often Serf tries to reconnect to a failed member
	reconnectTimeout    time.Duration // a failed member is forgotten (reaped) after this
	tombstoneTimeout    time.Duration // a left member is forgotten after this
	broadcastTimeout    time.Duration // wait for leave, force-leave and tag broadcasts to go out
	leavePropagateDelay time.Duration // stay up after a leave so peers hear it from us, not by probing

	// detector.
	joinBackoffMin time.Duration // default Config.JoinBackoffMin
	joinBackoffMax time.Duration // default Config.JoinBackoffMax
}

// lanTimings: a killed node is probed within ~1-2 s, then suspected for
// suspicionMult * max(1, log10 n) * probeInterval = 4 s in clusters under 10
// nodes (its peers cannot confirm faster there): failed after ~5-6 s.
var lanTimings = timings{
	probeInterval:    1 * time.Second,
	probeTimeout:     500 * time.Millisecond,
	indirectChecks:   3,
	suspicionMult:    4,
	suspicionMaxMult: 6,
	awarenessMax:     8,
	gossipInterval:   200 * time.Millisecond,
	gossipToDead:     30 * time.Second,
	retransmitMult:   4,
	pushPullInterval: 30 * time.Second,
	tcpTimeout:       10 * time.Second,
	deadReclaim:      0,

	reapInterval:        15 * time.Second,
	reconnectInterval:   30 * time.Second,
	reconnectTimeout:    24 * time.Hour,
	tombstoneTimeout:    24 * time.Hour,
	broadcastTimeout:    5 * time.Second,
	leavePropagateDelay: 1 * time.Second,

	joinBackoffMin: 1 * time.Second,
	joinBackoffMax: 30 * time.Second,
}

// localTimings: loopback round trips take microseconds, so probes can be
// ten times as frequent and suspicion short. A killed node is probed within
// ~100-200 ms, suspected for 3 * 100 ms, and declared failed after ~0.5-1 s.
// Lifeguard's awareness still stretches probes on an overloaded host (up to
// 4x), trading detection time for fewer false verdicts. Failed and left
// members are forgotten after a minute, so a demo's membership stays short.
var localTimings = timings{
	probeInterval:    100 * time.Millisecond,
	probeTimeout:     50 * time.Millisecond,
	indirectChecks:   2,
	suspicionMult:    3,
	suspicionMaxMult: 4,
	awarenessMax:     4,
	gossipInterval:   30 * time.Millisecond,
	gossipToDead:     5 * time.Second,
	retransmitMult:   4,
	pushPullInterval: 5 * time.Second,
	tcpTimeout:       500 * time.Millisecond,
	deadReclaim:      1 * time.Second, // ports are often ephemeral on one host

	reapInterval:        1 * time.Second,
	reconnectInterval:   1 * time.Second,
	reconnectTimeout:    1 * time.Minute,
	tombstoneTimeout:    1 * time.Minute,
	broadcastTimeout:    1 * time.Second,
	leavePropagateDelay: 100 * time.Millisecond,

	joinBackoffMin: 50 * time.Millisecond,
	joinBackoffMax: 1 * time.Second,
}

// timingsFor returns the timings of a valid, defaulted profile.
func timingsFor(p Profile) timings {
	if p == ProfileLocal {
		return localTimings
	}
	return lanTimings
}

// serfConfig builds a fresh Serf configuration for one node (serf.Create
// mutates the one it is given, so none is ever shared). cfg is defaulted and
// valid; events receives Serf's events; logger is the adapter from
// serfLogger.
func serfConfig(cfg Config, tags map[string]string, events chan<- serf.Event, logger *log.Logger) *serf.Config {
	t := timingsFor(cfg.Profile)

	ml := memberlist.DefaultLANConfig() // reads the hostname but ignores failure
	ml.Name = string(cfg.NodeName)
	ml.BindAddr = cfg.BindAddr
	ml.BindPort = cfg.BindPort
	ml.AdvertiseAddr = cfg.AdvertiseAddr
	ml.AdvertisePort = cfg.AdvertisePort
	if ml.AdvertisePort == 0 {
		ml.AdvertisePort = cfg.BindPort
	}
	ml.SecretKey = cfg.EncryptKey // already a private copy
	ml.Logger = logger
	ml.LogOutput = nil
	ml.ProbeInterval = t.probeInterval
	ml.ProbeTimeout = t.probeTimeout
	ml.IndirectChecks = t.indirectChecks
	ml.SuspicionMult = t.suspicionMult
	ml.SuspicionMaxTimeoutMult = t.suspicionMaxMult
	ml.AwarenessMaxMultiplier = t.awarenessMax
	ml.GossipInterval = t.gossipInterval
	ml.GossipToTheDeadTime = t.gossipToDead
	ml.RetransmitMult = t.retransmitMult
	ml.PushPullInterval = t.pushPullInterval
	ml.TCPTimeout = t.tcpTimeout
	ml.DeadNodeReclaimTime = t.deadReclaim

	// The values below that the profile does not set are serf.DefaultConfig's.
	return &serf.Config{
		NodeName:                     string(cfg.NodeName),
		Tags:                         tags,
		EventCh:                      events,
		ProtocolVersion:              4,
		BroadcastTimeout:             t.broadcastTimeout,
		LeavePropagateDelay:          t.leavePropagateDelay,
		ReapInterval:                 t.reapInterval,
		ReconnectInterval:            t.reconnectInterval,
		ReconnectTimeout:             t.reconnectTimeout,
		TombstoneTimeout:             t.tombstoneTimeout,
		FlapTimeout:                  60 * time.Second,
		QueueCheckInterval:           30 * time.Second,
		QueueDepthWarning:            128,
		MaxQueueDepth:                4096,
		RecentIntentTimeout:          5 * time.Minute,
		EventBuffer:                  512,
		QueryBuffer:                  512,
		QueryTimeoutMult:             16,
		QueryResponseSizeLimit:       1024,
		QuerySizeLimit:               1024,
		UserEventSizeLimit:           512,
		EnableNameConflictResolution: true,
		MemberlistConfig:             ml,
		Logger:                       logger,
	}
}
