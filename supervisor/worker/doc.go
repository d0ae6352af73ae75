// Package worker supervises the process of one worker on one node: the
// command an operator declared under workers: in hasup.yaml. The supervisor
// decides where and under which lease a worker runs and tells a Runner,
// any number of times, what it wants (Set with a Desired); the Runner
// starts, stops, restarts, signals and health-checks the command to match,
// and reports a Status. It makes no placement decision of its own, except
// to give up (StateFailed) when the restart policy is exhausted, which the
// supervisor takes as the cue to move the worker elsewhere.
//
// Linux only: elsewhere New and BecomeSubreaper return ErrUnsupported.
//
// # Guarantees
//
//   - No child outlives its agent. The command's main process is started
//     with PR_SET_PDEATHSIG = SIGKILL from a goroutine locked to its OS
//     thread for as long as the process lives (the signal fires when the
//     forking thread ends, which the Go runtime then does only when the
//     agent dies). Grandchildren do not inherit that setting, so each
//     command also gets a guard: a /bin/sh that reads a pipe whose other end
//     only the agent holds, sees EOF when the agent dies however it dies
//     (even SIGKILL), and then sends SIGKILL to the command's process group.
//   - The command is dead before Desired.Deadline, unless the kernel does
//     not deliver SIGKILL in time. The stop begins (SIGTERM, then SIGCONT,
//     to the group) at Deadline − StopGrace − DeadlineMargin, and SIGKILL
//     to the group is sent at Deadline − DeadlineMargin at the latest, also
//     when the deadline moves earlier during a stop. No process is started
//     when that stop time has already passed; a later Set with a renewed
//     deadline starts it.
//   - A stop reaches the whole process group: the command runs in a group
//     of its own (Setpgid), signals go to -pgid, and when the main process
//     exits, for any reason, whatever is left of its group is killed with
//     SIGKILL at once: the group lives as long as its main process. A
//     command whose children need the grace period must wait for them
//     before it exits (as a shell's wait does).
//   - Zombies are reaped: the runner waits on the whole group, so with
//     BecomeSubreaper grandchildren re-parented to the agent are reaped too.
//     Signals to the group are sent only while its main process is
//     unreaped, so they cannot reach an unrelated group that reused the ID.
//
// # Environment
//
// A command does not inherit the agent's environment. It gets PATH, HOME,
// LANG and TZ from the agent's environment as read by New (PATH defaults
// to /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin), then
// Config.Env, then Desired.Env (such as HASUP_API), each layer overriding
// the previous, and finally, overriding all:
//
//	HASUP_WORKER      the worker's name
//	HASUP_NODE        this node's name
//	HASUP_ROLE        "primary" or "backup", when the process started
//	HASUP_FENCE       the fencing token, in decimal, when the process started
//	HASUP_ROLE_FILE   a file holding the current role and a newline
//	HASUP_FENCE_FILE  a file holding the current fencing token and a newline
//
// Its stdin is /dev/null; stdout and stderr go to the log (Config.LogDir).
//
// # Modes, roles and fences
//
// In ModeSingleton a change of Fence or Role restarts the command (stop,
// then start at once with the new environment). In ModeEvery the command
// keeps running: the runner rewrites HASUP_ROLE_FILE and HASUP_FENCE_FILE
// (each atomically, by rename) and then sends Config.RoleSignal (SIGHUP by
// default) to the main process only, not its group. A ModeEvery command
// therefore reads its current role and fence from those files, not from
// its environment, and must handle the signal: a command that does not
// dies of it and is restarted under the restart policy. A fence change is
// signalled like a role change in ModeEvery, since both change together on
// every view change and restarting every member then would defeat the
// mode. In both modes a change of Desired.Env restarts the command.
//
// # Restart policy and health checks
//
// A command that exits while it is wanted is restarted after Delay × 2^k
// (k: restarts already made within the last Interval), with ±20% jitter
// (seeded by Config.Seed), capped at MaxDelay. An exit with status 0 counts
// like any other: a worker is meant to run until told to stop. A command
// that cannot be started (not found, not executable) fails the same way.
// When Attempts restarts have been made within Interval, the next failure
// gives up: StateFailed, until Set with Run false clears it. A health check
// that fails Failures times in a row stops the process (SIGTERM, grace,
// SIGKILL) and counts as one failure. Stops the caller asks for (Run false,
// the deadline, a new fence) never count.
//
// # Caveats
//
//   - A process that leaves the command's process group (setsid or setpgid,
//     as a daemonizing double fork does) is not supervised: stops, the
//     deadline and the guard do not reach it. With BecomeSubreaper it is
//     re-parented to the agent when its parent exits, and this package does
//     not reap it (it reaps only members of the groups it started, never an
//     arbitrary child, so as not to steal exit statuses from other code in
//     the agent); it stays a zombie after it ends until the agent exits.
//     Commands should run in the foreground. Only cgroups (systemd's
//     KillMode=control-group) contain such a process; under systemd, run the
//     agent with the default KillMode so that its unit's cgroup is cleaned
//     on every exit.
//   - The guard needs /bin/sh. If it cannot be started the runner logs a
//     warning and runs the command without it: the main process still dies
//     with the agent (Pdeathsig), its grandchildren may not. The guard is a
//     process per running command, and a kill -9 of the guard itself
//     removes that protection for the rest of that process's life.
//   - Pdeathsig fires only for the death of the forking thread; this
//     package keeps that thread for the command's life, but code elsewhere
//     in the agent that calls runtime.UnlockOSThread on a thread it did not
//     lock, or exits the process's main thread early by unusual means, is
//     outside its control.
//   - "Dead before Deadline" assumes the kernel delivers SIGKILL and
//     frees the processes within DeadlineMargin (default 100ms) of the
//     runner's timer firing. A process in uninterruptible sleep (D state,
//     such as a hung NFS mount) dies only when it leaves it; and a host
//     paused as a whole (a VM freeze, SIGSTOP of the agent) fires nothing
//     at all. The supervisor's lease safety margin covers the rest.
//   - A ModeEvery command receives RoleSignal as soon as it starts if its
//     role changes then, possibly before it installed a handler.
//   - The log is written through a pipe: a command that floods its output
//     is slowed by the agent's disk, never the other way round; a failing
//     disk drops output rather than blocking the command.
package worker
