package detector

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hasup/hasup"
)

// Sentinel errors. Each is wrapped with the identifying context; test with
// errors.Is.
var (
	// ErrInvalidConfig reports a Config that Validate rejects. The wrapping
	// error names the field and the bad value.
	ErrInvalidConfig = errors.New("detector: invalid config")
	// ErrInvalidKey reports a gossip encryption key that is not base64 or
	// not 16, 24 or 32 bytes long.
	ErrInvalidKey = errors.New("detector: invalid encryption key")
	// ErrReservedTag reports a user tag whose key uses the reserved
	// "hasup." prefix.
	ErrReservedTag = errors.New("detector: reserved tag prefix")
	// ErrShutdown reports a call on a detector that has been shut down.
	ErrShutdown = errors.New("detector: shut down")
	// ErrRunning reports a second call of Run on one detector.
	ErrRunning = errors.New("detector: already running")
)

// Profile names a set of failure-detection timings. See the package
// documentation for the figures and the detection times they give.
type Profile string

// The timing profiles.
const (
	// ProfileLAN is memberlist's DefaultLANConfig and Serf's defaults: the
	// production choice for nodes on one LAN. A killed node is declared
	// failed in about 5-6 s.
	ProfileLAN Profile = "lan"
	// ProfileLocal is tight timings for several nodes on one host (the
	// demo, tests): a killed node is declared failed in about 1 s or less.
	// Too tight for a real network, where it would raise false verdicts.
	ProfileLocal Profile = "local"
)

// ReservedTagPrefix starts every tag key the detector itself uses. User tags
// may not use it, and it is stripped from hasup.Member.Tags.
const ReservedTagPrefix = "hasup."

// rpcTag carries a node's consensus transport address (Config.RPCAddr) in
// its Serf tags, so that every member learns every other's hasup.Member.Addr
// from gossip alone.
const rpcTag = ReservedTagPrefix + "rpc"

// Defaults that do not depend on the profile.
const (
	// DefaultBindAddr binds every interface, as Serf does.
	DefaultBindAddr = "0.0.0.0"
	// DefaultBindPort is Serf's well-known port.
	DefaultBindPort = 7946
	// DefaultEventBuffer is the length of the Events channel: enough for
	// every member of a large cluster to change state once without the
	// consumer falling behind, small enough to cost nothing.
	DefaultEventBuffer = 256
	// maxNodeNameBytes bounds NodeName; Serf's own validation uses 128.
	maxNodeNameBytes = 128
)

// Config configures one Detector. Build it with DefaultConfig and set
// NodeName (and usually RPCAddr and Join); New validates it and never
// modifies it. Zero values of the optional fields mean "the default".
type Config struct {
	// NodeName is this node's unique, stable name in the cluster: the Serf
	// node name and hasup.NodeID. Required, at most 128 bytes. There is no
	// hostname default here on purpose: a failing hostname lookup must not
	// panic (as serf.DefaultConfig does); the config package may choose the
	// hostname before it gets here.
	NodeName hasup.NodeID

	// BindAddr is the IP address Serf listens on, TCP and UDP. Empty means
	// DefaultBindAddr (0.0.0.0, every interface).
	BindAddr string

	// BindPort is the port Serf listens on, TCP and UDP, 0-65535. 0 asks
	// the kernel for a free port (tests use it; Addr reports the result).
	// DefaultConfig sets DefaultBindPort, 7946.
	BindPort int

	// AdvertiseAddr is the IP address other nodes reach this one at. Empty
	// means BindAddr, or a private address of this host when BindAddr is
	// 0.0.0.0. Set it behind NAT or with several interfaces.
	AdvertiseAddr string

	// AdvertisePort is the port other nodes reach this one at, 0-65535. 0
	// means the port actually bound. Ignored when BindPort is 0.
	AdvertisePort int

	// RPCAddr is the host:port of this node's consensus transport. It is
	// carried in the reserved Serf tag "hasup.rpc" and reported to every
	// node as hasup.Member.Addr. Empty means none (Member.Addr is empty).
	RPCAddr string

	// Tags are operator-given labels gossiped with the node (placement uses
	// them). Keys may not start with ReservedTagPrefix. Serf limits the
	// encoded tags to 512 bytes; New and SetTags report a larger set.
	Tags map[string]string

	// EncryptKey is the gossip encryption key (AES-GCM): nil means no
	// encryption, otherwise 16, 24 or 32 bytes (AES-128/192/256). Every
	// node of a cluster needs the same key. GenerateKey and DecodeKey make
	// and read the base64 form used in config files.
	EncryptKey []byte

	// Profile selects the failure-detection timings: ProfileLAN (default,
	// also for empty) or ProfileLocal.
	Profile Profile

	// Join lists host:port addresses of existing members. Run joins them,
	// retrying with capped exponential backoff and jitter until at least one
	// join succeeds or its context ends. Empty means start a new cluster
	// (others may join this node).
	Join []string

	// JoinBackoffMin is the first delay between join attempts; each failed
	// attempt doubles it up to JoinBackoffMax. Each wait is jittered to
	// [d/2, d] so that nodes started together do not retry in lock step.
	// 0 means the profile's default: 1 s for lan, 50 ms for local.
	JoinBackoffMin time.Duration

	// JoinBackoffMax caps the delay between join attempts. 0 means the
	// profile's default: 30 s for lan, 1 s for local. Must not be below
	// JoinBackoffMin when both are set.
	JoinBackoffMax time.Duration

	// EventBuffer is the length of the Events channel, >= 0. 0 means
	// DefaultEventBuffer (256). When it is full, events for the same member
	// coalesce (see Detector.Events), so no length loses a final state.
	EventBuffer int

	// Logger receives the detector's logs and those of Serf and memberlist,
	// whose "[LEVEL]" prefixes become slog levels. Nil discards them.
	Logger *slog.Logger

	// Seed seeds the join jitter (with NodeName mixed in, so that nodes
	// sharing a seed still draw differently). Any value; 0 is fine.
	Seed uint64
}

// DefaultConfig returns a Config with every default filled in except
// NodeName, which the caller must set. It has no side effects: no hostname
// lookup, no network access.
func DefaultConfig() Config {
	return Config{
		BindAddr:    DefaultBindAddr,
		BindPort:    DefaultBindPort,
		Profile:     ProfileLAN,
		EventBuffer: DefaultEventBuffer,
	}
}

// Validate reports the first problem with c, as an error wrapping
// ErrInvalidConfig that names the field and its bad value.
func (c Config) Validate() error {
	for _, check := range []func() error{
		c.validateName, c.validateAddrs, c.validateTags, c.validateKey,
		c.validateProfile, c.validateJoin, c.validateBuffer,
	} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func invalid(field string, value any, why string) error {
	return fmt.Errorf("%w: %s %q: %s", ErrInvalidConfig, field, fmt.Sprint(value), why)
}

func (c Config) validateName() error {
	switch {
	case c.NodeName == "":
		return invalid("NodeName", c.NodeName, "required")
	case len(c.NodeName) > maxNodeNameBytes:
		return invalid("NodeName", c.NodeName, "longer than 128 bytes")
	case strings.ContainsFunc(string(c.NodeName), func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return invalid("NodeName", c.NodeName, "contains a space or control character")
	}
	return nil
}

func (c Config) validateAddrs() error {
	if c.BindAddr != "" && net.ParseIP(c.BindAddr) == nil {
		return invalid("BindAddr", c.BindAddr, "not an IP address")
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		return invalid("AdvertiseAddr", c.AdvertiseAddr, "not an IP address")
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		return invalid("BindPort", c.BindPort, "not in 0-65535")
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		return invalid("AdvertisePort", c.AdvertisePort, "not in 0-65535")
	}
	if c.RPCAddr != "" {
		if err := checkHostPort(c.RPCAddr); err != nil {
			return invalid("RPCAddr", c.RPCAddr, err.Error())
		}
	}
	return nil
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("not host:port")
	}
	if host == "" {
		return errors.New("empty host")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return errors.New("port not in 1-65535")
	}
	return nil
}

func (c Config) validateTags() error {
	if err := checkUserTags(c.Tags); err != nil {
		return fmt.Errorf("%w: Tags: %w", ErrInvalidConfig, err)
	}
	return nil
}

// checkUserTags rejects keys that use the reserved prefix, naming the first
// in sorted order so that the error is deterministic.
func checkUserTags(tags map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		if strings.HasPrefix(k, ReservedTagPrefix) {
			return fmt.Errorf("%w: key %q", ErrReservedTag, k)
		}
		if k == "" {
			return errors.New("empty key")
		}
	}
	return nil
}

func (c Config) validateKey() error {
	if err := checkKeyLen(c.EncryptKey); err != nil {
		return fmt.Errorf("%w: EncryptKey: %w", ErrInvalidConfig, err)
	}
	return nil
}

func (c Config) validateProfile() error {
	switch c.Profile {
	case "", ProfileLAN, ProfileLocal:
		return nil
	}
	return invalid("Profile", c.Profile, `want "lan" or "local"`)
}

func (c Config) validateJoin() error {
	for i, a := range c.Join {
		if strings.TrimSpace(a) == "" {
			return invalid(fmt.Sprintf("Join[%d]", i), a, "empty address")
		}
	}
	if c.JoinBackoffMin < 0 {
		return invalid("JoinBackoffMin", c.JoinBackoffMin, "negative")
	}
	if c.JoinBackoffMax < 0 {
		return invalid("JoinBackoffMax", c.JoinBackoffMax, "negative")
	}
	if c.JoinBackoffMin > 0 && c.JoinBackoffMax > 0 && c.JoinBackoffMax < c.JoinBackoffMin {
		return invalid("JoinBackoffMax", c.JoinBackoffMax, "below JoinBackoffMin "+c.JoinBackoffMin.String())
	}
	return nil
}

func (c Config) validateBuffer() error {
	if c.EventBuffer < 0 {
		return invalid("EventBuffer", c.EventBuffer, "negative")
	}
	return nil
}

// withDefaults returns a deep copy of c with every zero optional field set
// to its default, so that the detector never shares the caller's slices or
// maps. c must be valid.
func (c Config) withDefaults() Config {
	out := c
	out.Tags = maps.Clone(c.Tags)
	out.EncryptKey = slices.Clone(c.EncryptKey)
	out.Join = slices.Clone(c.Join)
	if out.BindAddr == "" {
		out.BindAddr = DefaultBindAddr
	}
	if out.Profile == "" {
		out.Profile = ProfileLAN
	}
	t := timingsFor(out.Profile)
	if out.JoinBackoffMin == 0 {
		out.JoinBackoffMin = t.joinBackoffMin
		if out.JoinBackoffMax > 0 {
			out.JoinBackoffMin = min(out.JoinBackoffMin, out.JoinBackoffMax)
		}
	}
	if out.JoinBackoffMax == 0 {
		out.JoinBackoffMax = max(t.joinBackoffMax, out.JoinBackoffMin)
	}
	if out.EventBuffer == 0 {
		out.EventBuffer = DefaultEventBuffer
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return out
}
