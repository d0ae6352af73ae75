package config

import (
	"errors"
	"log/slog"
	"os"
	"strings"
	"time"
)

// ErrInvalid is wrapped by every error Load, Check and Validate return for a
// configuration they refuse: bad YAML, an unknown key, a value of the wrong
// type, a value out of range. A file that cannot be read at all is reported
// with the error from the file system instead, so that a caller can tell "fix
// the file" from "fix the path".
var ErrInvalid = errors.New("config: invalid")

// Config is the whole configuration of one hasup agent, as read from the YAML
// file, the environment and flags (see Load). The YAML key of each field is in
// its struct tag. The zero value is not usable: start from Default, or Load.
//
// Design note: the struct is plain data with no behaviour beyond Validate, so
// that cmd/hasup can hand parts of it to the supervisor, detector and
// transport, each of which converts what it needs into its own Config. Keys
// that only development setups use (port 0, replicas 1) are allowed here and
// documented as such, not hidden behind a separate mode.
type Config struct {
	// NodeName names this node in the cluster: it is its Serf node name and
	// its hasup.NodeID, and appears in URLs, logs and worker environments
	// (HASUP_NODE), so it must be a name (see "Names" in the package doc) and
	// stable across restarts. Default: the host name up to its first dot,
	// lower-cased; empty means that default.
	NodeName string `yaml:"node_name"`
	// DataDir is the directory that holds this node's bbolt file and worker
	// logs. It must survive restarts: losing it makes the node a new
	// incarnation that must recover its replicas from the others. Relative
	// paths are relative to the agent's working directory. Default
	// "./data/<node_name>", so several agents of a local cluster started from
	// one directory do not share it; empty means that default.
	DataDir string `yaml:"data_dir"`
	// BindAddr is the IP address that Serf (serf_port) and the consensus
	// transport (rpc_port) listen on. "0.0.0.0" listens on every interface
	// and then requires advertise_addr. Default "127.0.0.1": a node that is
	// not configured for a network is reachable only from its own host.
	BindAddr string `yaml:"bind_addr"`
	// AdvertiseAddr is the IP address other nodes use to reach this one. It
	// must not be an unspecified address (0.0.0.0 or ::). Default: bind_addr;
	// empty means that default.
	AdvertiseAddr string `yaml:"advertise_addr"`
	// SerfPort is the TCP and UDP port of Serf gossip and failure detection.
	// Range 0..65535; 0 picks a free port and is meant for tests only, as
	// other nodes cannot know it in advance. Default 7946, Serf's own.
	SerfPort int `yaml:"serf_port"`
	// RPCPort is the TCP port of node-to-node consensus messages. Range
	// 0..65535 (0 as for serf_port), and different from serf_port. Default
	// 7947.
	RPCPort int `yaml:"rpc_port"`
	// HTTPAddr is the host:port of the HTTP API, /metrics and /ui/. An empty
	// host listens on every interface; port 0 picks a free port (tests).
	// Default "127.0.0.1:7900": the API changes cluster state, so it is
	// local-only until the operator decides otherwise.
	HTTPAddr string `yaml:"http_addr"`
	// HTTPToken, when non-empty, is the bearer token that mutating API calls
	// must present. It may hold no white space or control characters, as it
	// travels in an HTTP header. Default "": no token. Prefer the
	// environment (HASUP_HTTP_TOKEN) to the file, which is often readable.
	HTTPToken string `yaml:"http_token"`
	// Join lists host:port addresses of Serf on other nodes, any live one of
	// which lets this node join; they are retried with backoff. Each port is
	// 1..65535. Default empty: the node waits for others to join it.
	Join []string `yaml:"join"`
	// BootstrapExpect is how many nodes must see each other in Serf before
	// the first of them form the cluster ensemble. Range 1..7: 3 or more for
	// production; 1 or 2 for development, when the cluster ensemble has no
	// fault tolerance. Every node of a new cluster should use the same value.
	// Default 1, so that a single agent works out of the box.
	BootstrapExpect int `yaml:"bootstrap_expect"`
	// Profile selects the failure-detection timings: "lan" (Serf's LAN
	// defaults, for nodes on a network) or "local" (tight timings, for
	// several agents on one host, as hasup demo runs). Default "lan".
	Profile Profile `yaml:"profile"`
	// Encrypt is the Serf gossip encryption key, base64 (standard encoding)
	// of 16, 24 or 32 bytes, as hasup keygen prints. Every node must use the
	// same key. Default "": gossip is not encrypted.
	Encrypt string `yaml:"encrypt"`
	// Tags are this node's labels, gossiped by Serf and matched by ensemble
	// constraints (zone=a). Keys and values are non-empty and use ASCII
	// letters, digits and . _ - / :; keys are case-sensitive and may not
	// start with "hasup.", which hasup keeps for its own tags. Keys and
	// values together take at most 256 bytes, leaving room in Serf's 512-byte
	// node metadata for hasup's own. Default: none.
	Tags map[string]string `yaml:"tags"`
	// LogLevel is the agent's minimum log level: debug, info, warn or error.
	// Default "info".
	LogLevel string `yaml:"log_level"`
	// TLS turns on mutual TLS for the consensus transport and the HTTP API.
	// Default: off.
	TLS TLS `yaml:"tls"`
	// Ensembles are named replicated FSMs this node asks the cluster to run.
	// Names are unique among ensembles and workers. Default: none.
	Ensembles []Ensemble `yaml:"ensembles"`
	// Workers are commands that must run highly available. Names are unique
	// among workers and ensembles, since a worker is an ensemble of its own.
	// Default: none.
	Workers []Worker `yaml:"workers"`
}

// TLS names the files of mutual TLS: all three are set, or none. Relative
// paths are relative to the agent's working directory; Load and Check fail
// if a file does not exist.
type TLS struct {
	// CertFile is this node's PEM certificate, presented to peers and API
	// clients. Default "".
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile. Default "".
	KeyFile string `yaml:"key_file"`
	// CAFile is the PEM bundle of CAs that peer and client certificates must
	// chain to. Default "".
	CAFile string `yaml:"ca_file"`
}

// Enabled reports whether TLS is configured (any of its files is set;
// Validate requires all three then).
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" || t.CAFile != "" }

// Ensemble declares a named replicated FSM of a registered type.
type Ensemble struct {
	// Name names the ensemble (see "Names" in the package doc). Required.
	Name string `yaml:"name"`
	// Type names the FSM type: the built-ins are "kv" and "lock"; a Go
	// program embedding the supervisor may register others, so any name is
	// accepted here and the supervisor reports a type it does not know.
	// Default "kv".
	Type string `yaml:"type"`
	// Replicas is how many nodes hold the ensemble: 3 (tolerates one
	// failure) or 5 (two); 1 tolerates none and is for development only.
	// Default 3.
	Replicas int `yaml:"replicas"`
	// Constraints restrict which nodes may hold a replica, by their tags:
	// "key=value", "key!=value" (absent or different), "key" (present) or
	// "!key" (absent); keys and values as in tags. All must hold. Default:
	// none.
	Constraints []string `yaml:"constraints"`
}

// Worker declares a command that hasup runs highly available: a worker is an
// ensemble of Replicas nodes whose FSM holds the worker's state, and the
// command runs on its primary (singleton) or on every member (every).
type Worker struct {
	// Name names the worker and its ensemble (see "Names" in the package
	// doc); it is HASUP_WORKER in the command's environment. Required.
	Name string `yaml:"name"`
	// Mode is where the command runs: "singleton" on the primary only, and
	// only while it holds its lease; "every" on every member, with its role
	// in HASUP_ROLE. Default "singleton".
	Mode Mode `yaml:"mode"`
	// Replicas is the size of the worker's ensemble, as for Ensemble: 3 or 5,
	// or 1 for development. Default 3.
	Replicas int `yaml:"replicas"`
	// Command is the program and its arguments, run without a shell.
	// Required: at least the program, which must be non-empty.
	Command []string `yaml:"command"`
	// Env adds variables to the command's environment, on top of the
	// agent's and hasup's own (HASUP_*). Names are case-sensitive, must be
	// valid environment variable names ([A-Za-z_][A-Za-z0-9_]*) and may not
	// start with "HASUP_", which hasup sets. Default: none.
	Env map[string]string `yaml:"env"`
	// Dir is the command's working directory. Default "": the agent's.
	Dir string `yaml:"dir"`
	// Restart is what to do when the command exits or fails its check.
	Restart Restart `yaml:"restart"`
	// Check is the command's health check. Default: none (only the
	// process's exit counts as a failure).
	Check HealthCheck `yaml:"check"`
	// StopGrace is how long a stopping command has between SIGTERM and
	// SIGKILL to its process group. Range 0..10m: a singleton's grace is
	// taken out of its lease, so a long one delays failover. Default 5s.
	StopGrace time.Duration `yaml:"stop_grace"`
}

// Restart is a worker's restart policy: up to Attempts restarts on one node
// within any window of Interval, each after a delay that starts at Delay and
// doubles (with jitter) up to MaxDelay. One more failure gives up on the node
// and moves the worker to another.
type Restart struct {
	// Attempts is how many restarts one node may make within Interval.
	// Range 0..1000; 0 never restarts in place: the first failure moves the
	// worker. Default 5.
	Attempts int `yaml:"attempts"`
	// Interval is the sliding window that Attempts counts in. Must be
	// positive. Default 1m.
	Interval time.Duration `yaml:"interval"`
	// Delay is the wait before the first restart. Range 0..MaxDelay.
	// Default 1s.
	Delay time.Duration `yaml:"delay"`
	// MaxDelay caps the doubled delay. At least Delay. Default 30s.
	MaxDelay time.Duration `yaml:"max_delay"`
}

// HealthCheck is a worker's health check: at most one of HTTP, TCP and Exec. A
// check that has not passed Failures times in a row counts as a failure of
// the command under the restart policy.
type HealthCheck struct {
	// HTTP is an http:// or https:// URL; a 2xx answer passes. Default "".
	HTTP string `yaml:"http"`
	// TCP is a host:port; an accepted connection passes. Default "".
	TCP string `yaml:"tcp"`
	// Exec is a program and its arguments, run without a shell; exit status
	// 0 passes. Default: none.
	Exec []string `yaml:"exec"`
	// Interval is the time between checks. Must be positive. Default 10s.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one check. Positive and less than Interval, so checks
	// never overlap. Default 2s.
	Timeout time.Duration `yaml:"timeout"`
	// Failures is how many consecutive failed checks fail the command.
	// Range 1..100. Default 3.
	Failures int `yaml:"failures"`
}

// Enabled reports whether a check is configured.
func (c HealthCheck) Enabled() bool { return c.HTTP != "" || c.TCP != "" || len(c.Exec) > 0 }

// Profile selects failure-detection timings.
type Profile string

// The profiles.
const (
	// ProfileLAN uses Serf's LAN timings, for nodes on a network.
	ProfileLAN Profile = "lan"
	// ProfileLocal uses tight timings for agents on one host.
	ProfileLocal Profile = "local"
)

// Mode says where a worker's command runs.
type Mode string

// The worker modes.
const (
	// ModeSingleton runs the command on the primary only, under its lease.
	ModeSingleton Mode = "singleton"
	// ModeEvery runs the command on every member of the worker's ensemble.
	ModeEvery Mode = "every"
)

// Defaults that more than one function uses.
const (
	defaultBindAddr = "127.0.0.1"
	defaultDataRoot = "./data/"
)

// Default returns the configuration of an agent given no file, environment
// or flags. Its node name comes from the host name (see NodeName); if that is
// not a valid name, Default's result does not Validate and the node name must
// be set.
func Default() Config {
	name := hostNodeName()
	return Config{
		NodeName:        name,
		DataDir:         defaultDataRoot + name,
		BindAddr:        defaultBindAddr,
		AdvertiseAddr:   defaultBindAddr,
		SerfPort:        7946,
		RPCPort:         7947,
		HTTPAddr:        "127.0.0.1:7900",
		BootstrapExpect: 1,
		Profile:         ProfileLAN,
		LogLevel:        "info",
	}
}

// DefaultEnsemble returns an ensemble with every default filled in and no
// name.
func DefaultEnsemble() Ensemble {
	return Ensemble{Type: "kv", Replicas: 3}
}

// DefaultWorker returns a worker with every default filled in, and no name
// or command.
func DefaultWorker() Worker {
	return Worker{
		Mode:     ModeSingleton,
		Replicas: 3,
		Restart: Restart{
			Attempts: 5,
			Interval: time.Minute,
			Delay:    time.Second,
			MaxDelay: 30 * time.Second,
		},
		Check: HealthCheck{
			Interval: 10 * time.Second,
			Timeout:  2 * time.Second,
			Failures: 3,
		},
		StopGrace: 5 * time.Second,
	}
}

// SlogLevel returns LogLevel as a slog.Level; an unknown level is Info.
func (c Config) SlogLevel() slog.Level {
	switch c.LogLevel {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// hostNodeName returns the default node name: the host name up to its first
// dot, lower-cased ("Web-1.example.com" → "web-1"), or "" if there is none.
func hostNodeName() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	h, _, _ = strings.Cut(h, ".")
	return strings.ToLower(h)
}
