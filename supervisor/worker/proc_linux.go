//go:build linux

package worker

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

const supported = true

// group is a process group started by spawn: the main process, whose PID
// is also the group's ID, and whatever it forks without leaving the group.
//
// Design: one goroutine per group, locked to its OS thread, forks the main
// process and then reaps. The lock matters because PR_SET_PDEATHSIG fires
// when the parent *thread* exits, not the process: without it, the Go
// runtime could retire the forking thread while the agent lives, killing
// the command for nothing. The goroutine keeps the thread until the main
// process is reaped, and the runtime never ends a thread that has a locked
// goroutine, so the signal fires only when the agent itself dies.
//
// Reaping waits on the whole group (waitid P_PGID), so grandchildren that
// were re-parented to a subreaper agent are reaped too. It peeks first
// (WNOWAIT): when the main process has exited, its zombie still holds the
// group ID, so killing the rest of the group (-pgid) before reaping it
// cannot hit a group that reused the ID. Every signal to the group is sent
// under mu and only while the main process is unreaped, for the same
// reason.
type group struct {
	pid    int
	exited chan exitInfo // capacity 1; one value, after the group is reaped
	logR   *os.File

	mu     sync.Mutex
	reaped bool

	guard    *exec.Cmd
	guardW   *os.File // held open: its closing (the agent's death) fires the guard
	guardErr error
}

// guardScript is run by /bin/sh with the group's ID as $1 and a pipe from
// the agent as stdin. The agent never writes to the pipe, so read returns
// only at EOF, when the agent's end is closed: when the agent has died, by
// any cause. The guard then kills the group. When the group ends normally
// the runner kills the guard with SIGKILL, so the kill line never runs.
const guardScript = `trap '' HUP INT QUIT TERM; read -r _; kill -s KILL -- "-$1"`

// spawn starts spec as a new process group and a goroutine that reaps it.
func (r *Runner) spawn(spec spawnSpec) (*group, error) {
	path, err := lookPath(spec.argv[0], spec.env)
	if err != nil {
		return nil, err
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	out := devnull
	if spec.out != nil {
		out = spec.out
	}
	attr := &syscall.ProcAttr{
		Dir:   spec.dir,
		Env:   spec.env,
		Files: []uintptr{devnull.Fd(), out.Fd(), out.Fd()},
		Sys:   &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	}
	g := &group{exited: make(chan exitInfo, 1), logR: spec.logR}
	ready := make(chan error, 1)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		runtime.LockOSThread() // unlocked by reap once the main process is gone
		pid, err := syscall.ForkExec(path, spec.argv, attr)
		if err != nil {
			runtime.UnlockOSThread()
			ready <- err
			return
		}
		g.pid = pid
		if spec.guard {
			g.startGuard()
		}
		ready <- nil
		info := g.reap()
		g.stopGuard()
		if g.logR != nil {
			_ = g.logR.SetReadDeadline(time.Now().Add(logDrain))
		}
		g.exited <- info
	}()
	if err := <-ready; err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	runtime.KeepAlive(out)
	if g.guardErr != nil {
		r.log.Warn("no guard: the process group may outlive the agent", "pid", g.pid, "err", g.guardErr)
	}
	return g, nil
}

// reap reaps every member of the group that is a child of the agent and
// returns how the main process ended. It runs on the locked thread, and
// unlocks it once the main process is reaped.
func (g *group) reap() exitInfo {
	info, mainDone := g.reapGroup()
	if !mainDone {
		// The main process left its group (setpgid) or was reaped
		// elsewhere: wait for it by its PID, then for the rest of the group.
		for {
			if _, err := waitPeek(pPID, g.pid); err != syscall.EINTR {
				break
			}
		}
		info = g.reapMain()
		runtime.UnlockOSThread()
		g.reapGroup()
	}
	return info
}

// reapGroup reaps members of the group until none that is a child of the
// agent is left, and reports whether the main process was among them.
func (g *group) reapGroup() (info exitInfo, mainDone bool) {
	for {
		pid, err := waitPeek(pPGID, g.pid)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return info, mainDone // ECHILD: no child of ours is left in the group
		}
		if pid == g.pid && !mainDone {
			info, mainDone = g.reapMain(), true
			runtime.UnlockOSThread()
			continue
		}
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
	}
}

// reapMain kills what is left of the group while the main process's zombie
// still holds the group ID, then reaps the main process.
func (g *group) reapMain() exitInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	_ = syscall.Kill(-g.pid, syscall.SIGKILL)
	g.reaped = true
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(g.pid, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return exitInfo{desc: "unknown: reaped elsewhere (" + err.Error() + ")"}
		}
		return describe(ws)
	}
}

func describe(ws syscall.WaitStatus) exitInfo {
	switch {
	case ws.Exited():
		return exitInfo{desc: "exit status " + strconv.Itoa(ws.ExitStatus()), clean: ws.ExitStatus() == 0}
	case ws.Signaled():
		d := "signal: " + ws.Signal().String()
		if ws.CoreDump() {
			d += " (core dumped)"
		}
		return exitInfo{desc: d}
	}
	return exitInfo{desc: fmt.Sprintf("wait status %#x", uint32(ws))}
}

// signalGroup sends sig to the group while its main process is unreaped,
// and to the main process too if it has left the group.
func (g *group) signalGroup(sig syscall.Signal) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.reaped {
		return
	}
	_ = syscall.Kill(-g.pid, sig)
	if pg, err := syscall.Getpgid(g.pid); err == nil && pg != g.pid {
		_ = syscall.Kill(g.pid, sig)
	}
}

func (g *group) terminate() {
	g.signalGroup(syscall.SIGTERM)
	g.signalGroup(syscall.SIGCONT) // a stopped process acts on SIGTERM only when continued
}

func (g *group) kill() { g.signalGroup(syscall.SIGKILL) }

// signalMain sends sig to the main process only.
func (g *group) signalMain(sig syscall.Signal) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.reaped {
		_ = syscall.Kill(g.pid, sig)
	}
}

// startGuard starts the guard (see guardScript) in a process group of its
// own, so that neither the worker's stop nor a signal to the agent's group
// reaches it. No Pdeathsig: it must outlive the agent.
func (g *group) startGuard() {
	pr, pw, err := os.Pipe()
	if err != nil {
		g.guardErr = err
		return
	}
	defer pr.Close()
	cmd := exec.Command("/bin/sh", "-c", guardScript, "hasup-guard", strconv.Itoa(g.pid))
	cmd.Stdin = pr
	cmd.Env = []string{}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		pw.Close()
		g.guardErr = err
		return
	}
	g.guard, g.guardW = cmd, pw
}

// stopGuard kills the guard without letting it act, and reaps it.
func (g *group) stopGuard() {
	if g.guard == nil {
		return
	}
	_ = g.guard.Process.Kill()
	_ = g.guard.Wait()
	_ = g.guardW.Close()
}

// waitid(2) arguments the syscall package does not name.
const (
	pPID    = 1
	pPGID   = 2
	wExited = 4
	wNoWait = 0x1000000
	// siPidOffset is si_pid's offset in siginfo_t: after three int32s,
	// aligned to a pointer.
	siPidOffset = 8 + unsafe.Sizeof(uintptr(0))

	prSetChildSubreaper = 36
)

// waitPeek blocks until a child matching (idtype, id) has exited and
// returns its PID, leaving it unreaped.
func waitPeek(idtype, id int) (int, error) {
	var info [16]uint64 // siginfo_t: 128 bytes, aligned
	_, _, e := syscall.Syscall6(syscall.SYS_WAITID, uintptr(idtype), uintptr(id),
		uintptr(unsafe.Pointer(&info)), wExited|wNoWait, 0, 0)
	if e != 0 {
		return 0, e
	}
	b := (*[128]byte)(unsafe.Pointer(&info))
	return int(int32(binary.NativeEndian.Uint32(b[siPidOffset:]))), nil
}

func becomeSubreaper() error {
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		return fmt.Errorf("worker: prctl(PR_SET_CHILD_SUBREAPER): %w", e)
	}
	return nil
}
