package worker

import (
	"maps"
	"strconv"
	"time"
)

// machine is the runner's state, owned by the loop goroutine alone.
type machine struct {
	state        string
	since        time.Time
	inst         *instance // the running (or stopping) process, or nil
	policy       policy
	backoffUntil time.Time
	restarts     int
	lastExit     string
	closing      bool // Close was called
	killNow      bool // Close's context ended: SIGKILL without grace
}

// instance is one run of the command.
type instance struct {
	g        *group
	fence    uint64
	role     string
	env      map[string]string // Desired.Env it was started with
	deadline time.Time         // the last Desired.Deadline given with Run true
	checker  *checker          // nil without a check
	stopping stopReason
	termAt   time.Time // when SIGTERM was sent
	killed   bool      // SIGKILL was sent
	healthy  bool      // the last check passed
	failures int       // consecutive failed checks
	failMsg  string    // the last failed check's reason
}

// stopReason says why the runner stops a process; it decides whether the
// exit counts as a failure.
type stopReason int

const (
	stopNone      stopReason = iota
	stopDesired              // Run became false
	stopDeadline             // the deadline is near
	stopRestart              // Fence, Role (singleton) or Env changed
	stopUnhealthy            // the check failed Failures times: a failure
	stopClose                // Close
)

var stopNames = [...]string{"none", "desired", "deadline", "restart", "unhealthy", "close"}

func (s stopReason) String() string { return stopNames[s] }

func (m *machine) setState(s string, now time.Time) {
	if s != m.state {
		m.state, m.since = s, now
	}
}

func (m *machine) status(name string, d Desired, checked bool) Status {
	s := Status{
		Name:     name,
		State:    m.state,
		Fence:    d.Fence,
		Role:     d.Role,
		Restarts: m.restarts,
		LastExit: m.lastExit,
		Since:    m.since,
	}
	if in := m.inst; in != nil {
		s.PID, s.Fence, s.Role = in.g.pid, in.fence, in.role
		s.Healthy = in.stopping == stopNone && (!checked || in.healthy)
	}
	return s
}

// run is the runner's goroutine: it steps the machine on every event and
// sleeps until the next one or the next time it must act.
func (r *Runner) run() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	closing, killNow := r.closing, r.killNow
	for {
		d := r.desired()
		wake := r.step(d, r.clock())
		r.publish(d)
		if r.m.closing && r.m.inst == nil {
			break
		}
		if wake.IsZero() {
			timer.Stop()
		} else {
			timer.Reset(max(wake.Sub(r.clock()), 0))
		}
		var exited <-chan exitInfo
		var checked <-chan checkResult
		if in := r.m.inst; in != nil {
			exited = in.g.exited
			if in.checker != nil {
				checked = in.checker.results
			}
		}
		select {
		case <-r.wake:
		case <-timer.C:
		case <-closing:
			r.m.closing, closing = true, nil
		case <-killNow:
			r.m.killNow, killNow = true, nil
		case e := <-exited:
			r.onExit(e, r.clock())
		case res := <-checked:
			r.onCheck(res, r.clock())
		}
	}
	timer.Stop()
	r.finish()
}

// step acts on the desired state and returns when it must next be called
// if nothing else happens (zero: not before an event).
func (r *Runner) step(d Desired, now time.Time) time.Time {
	if in := r.m.inst; in != nil {
		return r.stepProcess(in, d, now)
	}
	m := &r.m
	switch {
	case m.closing:
		m.setState(StateStopped, now)
		return time.Time{}
	case m.state == StateFailed:
		if !d.Run {
			m.policy.reset()
			m.setState(StateStopped, now)
		}
		return time.Time{}
	case !d.Run:
		m.setState(StateStopped, now)
		return time.Time{}
	case m.state == StateBackoff && now.Before(m.backoffUntil):
		return m.backoffUntil
	case !d.Deadline.IsZero() && !now.Before(r.stopAt(d.Deadline)):
		m.setState(StateStopped, now) // too late to start; wait for a renewal
		return time.Time{}
	}
	if in := r.start(d, now); in != nil {
		return r.stepProcess(in, d, now)
	}
	return m.backoffUntil // the start failed: backoff (or failed, then ignored)
}

// stepProcess handles a live process: begins a stop when one is due,
// signals a role change in ModeEvery, and escalates a stop to SIGKILL.
//
// The deadline that binds the process is the last one given with Run true:
// a Desired with Run false (which may carry no deadline) does not lift it.
func (r *Runner) stepProcess(in *instance, d Desired, now time.Time) time.Time {
	if d.Run {
		in.deadline = d.Deadline
	}
	if in.stopping == stopNone {
		why := r.stopWanted(in, d, now)
		if why == stopNone {
			if d.Role != in.role || d.Fence != in.fence {
				r.notifyRole(in, d) // only ModeEvery gets here
			}
			if in.deadline.IsZero() {
				return time.Time{}
			}
			return r.stopAt(in.deadline)
		}
		r.beginStop(in, why, now)
	}
	killAt := in.termAt.Add(r.cfg.StopGrace)
	if !in.deadline.IsZero() {
		killAt = minTime(killAt, in.deadline.Add(-r.cfg.DeadlineMargin))
	}
	if r.m.killNow {
		killAt = now
	}
	if in.killed {
		return time.Time{}
	}
	if now.Before(killAt) {
		return killAt
	}
	in.killed = true
	in.g.kill()
	r.log.Warn("stop grace over: killed process group", "pid", in.g.pid, "reason", in.stopping.String())
	return time.Time{}
}

// stopAt is when a stop must begin to have the process dead by deadline.
func (r *Runner) stopAt(deadline time.Time) time.Time {
	return deadline.Add(-r.cfg.StopGrace - r.cfg.DeadlineMargin)
}

func (r *Runner) stopWanted(in *instance, d Desired, now time.Time) stopReason {
	switch {
	case r.m.closing:
		return stopClose
	case !d.Run:
		return stopDesired
	case !in.deadline.IsZero() && !now.Before(r.stopAt(in.deadline)):
		return stopDeadline
	case !maps.Equal(d.Env, in.env):
		return stopRestart
	case r.cfg.Mode == ModeSingleton && (d.Fence != in.fence || d.Role != in.role):
		return stopRestart
	}
	return stopNone
}

// start starts the command for d. On failure it records the failure and
// returns nil.
func (r *Runner) start(d Desired, now time.Time) *instance {
	in := &instance{fence: d.Fence, role: d.Role, env: maps.Clone(d.Env)}
	if err := r.writeRoleFiles(d); err != nil {
		r.log.Warn("write role files", "err", err)
	}
	env := r.env(d)
	spec := spawnSpec{argv: r.cfg.Command, env: env, dir: r.cfg.Dir, guard: true}
	g, err := r.spawnLogged(spec)
	if err != nil {
		r.log.Error("start failed", "err", err)
		r.failure("start: "+err.Error(), now)
		return nil
	}
	in.g = g
	r.m.inst = in
	state := StateRunning
	if r.cfg.Check.Enabled() {
		state = StateStarting
		in.checker = r.startChecker(env)
	}
	r.m.setState(state, now)
	r.log.Info("started", "pid", g.pid, "fence", d.Fence, "role", d.Role)
	return in
}

// beginStop sends SIGTERM (and SIGCONT, in case it is stopped) to the
// process group.
func (r *Runner) beginStop(in *instance, why stopReason, now time.Time) {
	in.stopping, in.termAt = why, now
	in.checker.stop()
	in.g.terminate()
	r.m.setState(StateStopping, now)
	r.log.Info("stopping", "pid", in.g.pid, "reason", why.String())
}

// notifyRole tells a ModeEvery command its new role and fence: it rewrites
// the role files, then signals the main process.
func (r *Runner) notifyRole(in *instance, d Desired) {
	if err := r.writeRoleFiles(d); err != nil {
		r.log.Warn("write role files", "err", err)
	}
	in.role, in.fence = d.Role, d.Fence
	in.g.signalMain(r.cfg.RoleSignal)
	r.log.Info("signalled role change", "pid", in.g.pid, "role", d.Role, "fence", d.Fence)
}

// onExit handles the end of the current process's group.
func (r *Runner) onExit(e exitInfo, now time.Time) {
	in := r.m.inst
	r.m.inst = nil
	in.checker.stop()
	r.m.lastExit = e.desc
	r.log.Info("exited", "pid", in.g.pid, "status", e.desc, "reason", in.stopping.String())
	switch in.stopping {
	case stopNone:
		r.failure(e.desc, now)
	case stopUnhealthy:
		r.failure("health check failed: "+in.failMsg, now)
	default:
		r.m.setState(StateStopped, now)
	}
}

// failure applies the restart policy to a failure of the command.
func (r *Runner) failure(desc string, now time.Time) {
	m := &r.m
	m.lastExit = desc
	delay, ok := m.policy.onFailure(now)
	if !ok {
		m.setState(StateFailed, now)
		r.log.Error("restart policy gave up", "last_exit", desc, "attempts", r.cfg.Restart.Attempts, "interval", r.cfg.Restart.Interval)
		return
	}
	m.restarts++
	m.backoffUntil = now.Add(delay)
	m.setState(StateBackoff, now)
	r.log.Warn("restarting after delay", "last_exit", desc, "delay", delay)
}

// onCheck handles a health check's result for the current process.
func (r *Runner) onCheck(res checkResult, now time.Time) {
	in := r.m.inst
	if in == nil || in.stopping != stopNone {
		return
	}
	if res.err == nil {
		in.healthy, in.failures = true, 0
		if r.m.state == StateStarting {
			r.m.setState(StateRunning, now)
		}
		return
	}
	in.healthy = false
	in.failures++
	in.failMsg = res.err.Error()
	r.log.Warn("health check failed", "pid", in.g.pid, "failures", in.failures, "err", res.err)
	if in.failures >= r.cfg.Check.Failures {
		r.beginStop(in, stopUnhealthy, now)
	}
}

// writeRoleFiles writes NAME.role and NAME.fence, each replaced atomically.
func (r *Runner) writeRoleFiles(d Desired) error {
	if err := writeFileAtomic(r.roleFile(), []byte(d.Role+"\n")); err != nil {
		return err
	}
	return writeFileAtomic(r.fenceFile(), []byte(strconv.FormatUint(d.Fence, 10)+"\n"))
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
