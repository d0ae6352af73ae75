package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Errors.
var (
	// ErrInvalidConfig is wrapped by every error New and Config.Validate
	// return for a configuration they refuse.
	ErrInvalidConfig = errors.New("worker: invalid config")
	// ErrUnsupported is returned by New and BecomeSubreaper on a platform
	// other than Linux. It wraps errors.ErrUnsupported.
	ErrUnsupported = fmt.Errorf("worker: process supervision needs Linux: %w", errors.ErrUnsupported)
	// ErrNoLogs is returned by Logs when the runner keeps no log
	// (Config.LogDir is empty).
	ErrNoLogs = errors.New("worker: no log directory configured")
)

// The states a runner reports in Status.State.
const (
	// StateStopped: no process runs, and none is wanted now (Run is false,
	// the deadline is too close to start one, or the runner is closed).
	StateStopped = "stopped"
	// StateStarting: the process runs but its health check has not passed
	// yet. Without a check a started process is running at once.
	StateStarting = "starting"
	// StateRunning: the process runs (and its last check passed, if any).
	StateRunning = "running"
	// StateStopping: the process group has been sent SIGTERM and the runner
	// waits for it to exit, sending SIGKILL when the grace ends.
	StateStopping = "stopping"
	// StateBackoff: the process failed and will be restarted after a delay.
	StateBackoff = "backoff"
	// StateFailed: the restart policy gave up; nothing runs until Run is set
	// to false (which clears the failure) and then true again.
	StateFailed = "failed"
)

// The roles a Desired state names.
const (
	RolePrimary = "primary"
	RoleBackup  = "backup"
)

// Mode says where a worker's command runs; it converts from config.Mode
// with worker.Mode(m).
type Mode string

// The worker modes.
const (
	// ModeSingleton: the command runs on the primary only, under its lease.
	// A change of Fence or Role restarts it.
	ModeSingleton Mode = "singleton"
	// ModeEvery: the command runs on every member. A change of Fence or Role
	// is signalled to the running command (Config.RoleSignal) instead of
	// restarting it.
	ModeEvery Mode = "every"
)

// Restart is the restart policy: up to Attempts restarts within any window
// of Interval, each after a delay that starts at Delay and doubles (±20%
// jitter) up to MaxDelay. One more failure gives up (StateFailed).
//
// It has the fields of config.Restart, in the same order, so that cmd/hasup
// converts with worker.Restart(w.Restart): DESIGN.md lets only cmd import
// package config, so this package does not.
type Restart struct {
	// Attempts is how many restarts are allowed within Interval; 0 gives up
	// on the first failure. Range 0..1000.
	Attempts int
	// Interval is the sliding window Attempts counts in. Must be positive.
	Interval time.Duration
	// Delay is the wait before the first restart of a window. Range
	// 0..MaxDelay.
	Delay time.Duration
	// MaxDelay caps the doubled delay (after jitter). At least Delay.
	MaxDelay time.Duration
}

// HealthCheck is the health check: at most one of HTTP, TCP and Exec.
// Failures consecutive failed checks stop the process, and the stop counts
// as a failure under the restart policy. It has the fields of
// config.HealthCheck, in the same order (convert with
// worker.HealthCheck(w.Check)).
type HealthCheck struct {
	// HTTP is an http:// or https:// URL; a GET answered 2xx within Timeout
	// passes. Proxies from the environment are not used.
	HTTP string
	// TCP is a host:port; a connection accepted within Timeout passes.
	TCP string
	// Exec is a program and its arguments, run without a shell, with the
	// command's environment and directory, in a process group of its own;
	// exit status 0 within Timeout passes (on timeout its group is killed).
	Exec []string
	// Interval is the time between the ends of two checks; the first runs
	// one Interval after the process started. Must be positive.
	Interval time.Duration
	// Timeout bounds one check. Positive and less than Interval.
	Timeout time.Duration
	// Failures is how many consecutive failed checks fail the command.
	// Range 1..100.
	Failures int
}

// Enabled reports whether a check is configured.
func (c HealthCheck) Enabled() bool { return c.HTTP != "" || c.TCP != "" || len(c.Exec) > 0 }

// Config configures the runner of one worker on one node. Start from
// DefaultConfig and set Name, Command and Node.
type Config struct {
	// Name names the worker: HASUP_WORKER, and the log file NAME.log. It
	// may not contain '/' or start with '.'. Required.
	Name string
	// Mode is ModeSingleton or ModeEvery. Default (empty) ModeSingleton.
	Mode Mode
	// Command is the program and its arguments, run without a shell. A
	// program without '/' is looked up in the PATH of the command's own
	// environment. Required.
	Command []string
	// Env adds variables to the command's environment (see "Environment"
	// in the package doc). Names match [A-Za-z_][A-Za-z0-9_]* and may not
	// start with HASUP_. Default: none.
	Env map[string]string
	// Dir is the command's working directory. Default "": the agent's.
	Dir string
	// Restart is the restart policy. Default: DefaultConfig's (5 in 1m,
	// 1s doubling to 30s), the same as config.DefaultWorker's.
	Restart Restart
	// Check is the health check. Default: none.
	Check HealthCheck
	// StopGrace is how long a stopping process group has between SIGTERM
	// and SIGKILL. Range 0..10m. A singleton's grace is taken out of its
	// lease (the stop begins StopGrace before Desired.Deadline). Default 5s.
	StopGrace time.Duration
	// DeadlineMargin is how long before Desired.Deadline the SIGKILL is
	// sent at the latest, to absorb timer lateness and the time the kernel
	// takes to deliver it and tear the processes down. Range 0..1m; 0 means
	// the default, 100ms.
	DeadlineMargin time.Duration
	// RoleSignal is the signal sent to the command's main process (not its
	// group) in ModeEvery when its role or fence changes, after
	// HASUP_ROLE_FILE and HASUP_FENCE_FILE are rewritten. Default (0):
	// SIGHUP.
	RoleSignal syscall.Signal
	// LogDir is where the command's stdout and stderr go, to NAME.log,
	// rotated to NAME.log.1 when it would grow past LogMaxBytes; it also
	// holds NAME.role and NAME.fence. It is created if missing. Default "":
	// output is discarded and the role files live in a private temporary
	// directory that Close removes.
	LogDir string
	// LogMaxBytes caps each of NAME.log and NAME.log.1, in bytes. Range
	// 0..1GiB; 0 means the default, 1 MiB.
	LogMaxBytes int64
	// Node is this node's name: HASUP_NODE. Default "".
	Node string
	// Logger receives the runner's events. Default: discard.
	Logger *slog.Logger
	// Clock gives the time. It must advance like real time: the runner
	// waits with real timers for durations computed from it. Desired.Deadline
	// is compared with it, so take both from the same clock (time.Now's
	// monotonic reading makes the deadline immune to wall-clock jumps).
	// Default time.Now.
	Clock func() time.Time
	// Seed seeds the jitter of restart delays; give each node its own so
	// that nodes do not restart in lock-step. Default 0.
	Seed uint64
}

// Defaults used when a field is zero.
const (
	// defaultDeadlineMargin: a Go timer on a loaded host is late by a few
	// milliseconds, and freeing a large process's memory after SIGKILL can
	// take tens of milliseconds more.
	defaultDeadlineMargin = 100 * time.Millisecond
	// defaultLogMaxBytes: enough for the recent history an operator reads
	// with hasup logs, small enough to keep a file per worker.
	defaultLogMaxBytes = 1 << 20
)

// DefaultConfig returns a configuration with every default filled in and no
// name or command. The restart policy and check timings are those of
// config.DefaultWorker.
func DefaultConfig() Config {
	return Config{
		Mode: ModeSingleton,
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
		StopGrace:      5 * time.Second,
		DeadlineMargin: defaultDeadlineMargin,
		RoleSignal:     syscall.SIGHUP,
		LogMaxBytes:    defaultLogMaxBytes,
	}
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate reports the first problem with the configuration, wrapping
// ErrInvalidConfig. Zero values that have a documented default are valid.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: worker %q: %s", ErrInvalidConfig, c.Name, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Name == "" || strings.ContainsAny(c.Name, "/\x00") || strings.HasPrefix(c.Name, "."):
		return bad("name must be non-empty, without '/', and not start with '.'")
	case c.Mode != "" && c.Mode != ModeSingleton && c.Mode != ModeEvery:
		return bad("mode %q: want singleton or every", c.Mode)
	case len(c.Command) == 0 || c.Command[0] == "":
		return bad("command is empty")
	case c.Restart.Attempts < 0 || c.Restart.Attempts > 1000:
		return bad("restart attempts %d out of range 0..1000", c.Restart.Attempts)
	case c.Restart.Interval <= 0:
		return bad("restart interval must be positive")
	case c.Restart.Delay < 0 || c.Restart.MaxDelay < c.Restart.Delay:
		return bad("restart delay %v and max delay %v: want 0 <= delay <= max_delay", c.Restart.Delay, c.Restart.MaxDelay)
	case c.StopGrace < 0 || c.StopGrace > 10*time.Minute:
		return bad("stop grace %v out of range 0..10m", c.StopGrace)
	case c.DeadlineMargin < 0 || c.DeadlineMargin > time.Minute:
		return bad("deadline margin %v out of range 0..1m", c.DeadlineMargin)
	case c.LogMaxBytes < 0 || c.LogMaxBytes > 1<<30:
		return bad("log max bytes %d out of range 0..1GiB", c.LogMaxBytes)
	case c.RoleSignal < 0:
		return bad("role signal %d is not a signal", c.RoleSignal)
	}
	for k := range c.Env {
		if !envName.MatchString(k) || strings.HasPrefix(k, "HASUP_") {
			return bad("env name %q: want [A-Za-z_][A-Za-z0-9_]* not starting with HASUP_", k)
		}
	}
	return c.validateCheck(bad)
}

func (c Config) validateCheck(bad func(string, ...any) error) error {
	k := c.Check
	n := 0
	for _, set := range []bool{k.HTTP != "", k.TCP != "", len(k.Exec) > 0} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		return nil
	case n > 1:
		return bad("check: at most one of http, tcp and exec")
	case k.HTTP != "" && !strings.HasPrefix(k.HTTP, "http://") && !strings.HasPrefix(k.HTTP, "https://"):
		return bad("check: http %q is not an http:// or https:// URL", k.HTTP)
	case len(k.Exec) > 0 && k.Exec[0] == "":
		return bad("check: exec program is empty")
	case k.Interval <= 0:
		return bad("check: interval must be positive")
	case k.Timeout <= 0 || k.Timeout >= k.Interval:
		return bad("check: timeout %v: want 0 < timeout < interval %v", k.Timeout, k.Interval)
	case k.Failures < 1 || k.Failures > 100:
		return bad("check: failures %d out of range 1..100", k.Failures)
	}
	return nil
}

// Desired is what the caller wants of the worker now. Set replaces the
// whole value; the runner converges on the latest one.
type Desired struct {
	// Run says whether the command should run.
	Run bool
	// Role is RolePrimary or RoleBackup: HASUP_ROLE.
	Role string
	// Fence is the fencing token: HASUP_FENCE, in decimal.
	Fence uint64
	// Deadline is when the command must be dead: the lease's end minus a
	// safety margin. The stop begins at Deadline − StopGrace −
	// DeadlineMargin and SIGKILL follows at Deadline − DeadlineMargin at the
	// latest; no process is started when that stop time has already passed.
	// The deadline that binds a running process is the last one Set with
	// Run true: a Set with Run false does not lift it. Zero: no deadline.
	Deadline time.Time
	// Env is extra environment from the supervisor (HASUP_API). A change
	// restarts the command (in either mode). It may name HASUP_ variables,
	// but not override those the runner sets.
	Env map[string]string
}

// Status is a runner's state, as Status reports it.
type Status struct {
	// Name is the worker's name.
	Name string
	// State is one of the State constants.
	State string
	// PID is the main process's ID (also its process group's ID), or 0.
	PID int
	// Fence and Role are those the running command was given (in
	// ModeEvery, the last ones signalled to it); with no process, the
	// desired ones.
	Fence uint64
	Role  string
	// Restarts counts the restarts the restart policy made since New
	// (crashes, exits and failed checks; not stops and restarts the caller
	// asked for).
	Restarts int
	// LastExit describes the last end of the command: "exit status 3",
	// "signal: killed", "start: ...", "health check failed: ...".
	LastExit string
	// Since is when State last changed (by Config.Clock).
	Since time.Time
	// Healthy is true while the process runs and is not stopping and,
	// if a check is configured, its last check passed.
	Healthy bool
}

// Runner runs one worker's command on one node, converging on what Set
// last asked for. Create it with New; Set, Status and Logs are safe from
// any goroutine; Close stops it.
//
// Design: one goroutine (loop.go) owns all state and decides everything;
// Set only stores the latest Desired and pokes it through a channel of
// capacity one, so Set never blocks and a burst of Sets coalesces into one
// pass (the runner is level-triggered, like the supervisor's reconcile).
// Processes, their reapers, log copiers and health checks run in helper
// goroutines that report to the loop over channels of capacity one, each
// written at most once per process or read before the next write.
type Runner struct {
	cfg   Config
	log   *slog.Logger
	clock func() time.Time
	base  map[string]string // the agent's PATH, HOME, LANG, TZ, read by New
	logs  *logFile          // nil without LogDir
	dir   string            // where NAME.role and NAME.fence live
	tmp   bool              // dir is private and removed by Close

	mu      sync.Mutex // guards want and status
	want    Desired
	status  Status
	wake    chan struct{} // capacity 1: "want changed"
	closing chan struct{} // closed by Close
	killNow chan struct{} // closed when Close's context ends
	closed  chan struct{} // closed when everything has stopped
	close1  sync.Once
	kill1   sync.Once

	wg sync.WaitGroup // helper goroutines (reapers, copiers, checks)
	m  machine        // owned by the loop goroutine
}

// New validates cfg, opens the log and starts the runner's goroutine. The
// command does not start until Set asks for it.
func New(cfg Config) (*Runner, error) {
	if !supported {
		return nil, ErrUnsupported
	}
	cfg = withDefaults(cfg)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Runner{
		cfg:     cfg,
		log:     cfg.Logger.With("worker", cfg.Name),
		clock:   cfg.Clock,
		base:    agentEnv(os.LookupEnv),
		wake:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		killNow: make(chan struct{}),
		closed:  make(chan struct{}),
	}
	if err := r.openFiles(); err != nil {
		return nil, err
	}
	r.m = machine{
		state:  StateStopped,
		since:  r.clock(),
		policy: policy{cfg: cfg.Restart, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))},
	}
	r.status = r.m.status(cfg.Name, Desired{}, cfg.Check.Enabled())
	go r.run()
	return r, nil
}

// withDefaults fills the zero fields that have a documented default; it
// works on a copy, never on the caller's maps.
func withDefaults(c Config) Config {
	c.Command = append([]string(nil), c.Command...)
	c.Env = maps.Clone(c.Env)
	c.Check.Exec = append([]string(nil), c.Check.Exec...)
	if c.Mode == "" {
		c.Mode = ModeSingleton
	}
	if c.DeadlineMargin == 0 {
		c.DeadlineMargin = defaultDeadlineMargin
	}
	if c.LogMaxBytes == 0 {
		c.LogMaxBytes = defaultLogMaxBytes
	}
	if c.RoleSignal == 0 {
		c.RoleSignal = syscall.SIGHUP
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return c
}

func (r *Runner) openFiles() error {
	if r.cfg.LogDir == "" {
		dir, err := os.MkdirTemp("", "hasup-worker-"+r.cfg.Name+"-")
		if err != nil {
			return fmt.Errorf("worker %s: role directory: %w", r.cfg.Name, err)
		}
		r.dir, r.tmp = dir, true
		return nil
	}
	if err := os.MkdirAll(r.cfg.LogDir, 0o755); err != nil {
		return fmt.Errorf("worker %s: log directory: %w", r.cfg.Name, err)
	}
	lf, err := openLogFile(filepath.Join(r.cfg.LogDir, r.cfg.Name+".log"), r.cfg.LogMaxBytes)
	if err != nil {
		return fmt.Errorf("worker %s: %w", r.cfg.Name, err)
	}
	r.logs, r.dir = lf, r.cfg.LogDir
	return nil
}

// Set tells the runner what is desired now. It never blocks; the runner
// acts on the latest value. After Close it has no effect.
func (r *Runner) Set(d Desired) {
	d.Env = maps.Clone(d.Env)
	r.mu.Lock()
	r.want = d
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default: // a wake-up is already pending; it will read the latest want
	}
}

// Status returns the runner's current state.
func (r *Runner) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Logs returns the last n bytes of the command's output (NAME.log.1 then
// NAME.log); n <= 0 returns all that is kept. It works after Close too.
func (r *Runner) Logs(n int) ([]byte, error) {
	if r.logs == nil {
		return nil, ErrNoLogs
	}
	return r.logs.tail(n)
}

// Close stops the command (SIGTERM to its group, SIGKILL after StopGrace),
// waits for every process and goroutine of the runner to end, and closes
// the log. If ctx ends first, Close sends SIGKILL at once and returns
// ctx's error; the runner then finishes on its own shortly after (unless a
// process cannot die, as in uninterruptible sleep). Close may be called
// more than once.
func (r *Runner) Close(ctx context.Context) error {
	r.close1.Do(func() { close(r.closing) })
	select {
	case <-r.closed:
		return nil
	case <-ctx.Done():
		r.kill1.Do(func() { close(r.killNow) })
		return fmt.Errorf("close worker %s: %w", r.cfg.Name, ctx.Err())
	}
}

// BecomeSubreaper makes the calling process a child subreaper
// (prctl PR_SET_CHILD_SUBREAPER): processes orphaned below it are
// re-parented to it instead of to init, so the grandchildren of a forking
// command stay in reach and are reaped by the runner of their process
// group. It affects the whole process and cannot be undone here; the agent
// calls it once at start-up. See the package doc for what it does not
// cover.
func BecomeSubreaper() error { return becomeSubreaper() }

func (r *Runner) desired() Desired {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.want
}

func (r *Runner) publish(d Desired) {
	s := r.m.status(r.cfg.Name, d, r.cfg.Check.Enabled())
	r.mu.Lock()
	r.status = s
	r.mu.Unlock()
}

// finish runs on the loop goroutine after the last process ended.
func (r *Runner) finish() {
	r.wg.Wait()
	if r.logs != nil {
		if err := r.logs.close(); err != nil {
			r.log.Warn("close log", "err", err)
		}
	}
	if r.tmp {
		if err := os.RemoveAll(r.dir); err != nil {
			r.log.Warn("remove role directory", "dir", r.dir, "err", err)
		}
	}
	close(r.closed)
}
