package worker

import (
	"errors"
	"io"
	"os"
	"time"
)

// spawnSpec says how to start a process group.
type spawnSpec struct {
	argv  []string
	env   []string
	dir   string
	out   *os.File // stdout and stderr; nil: /dev/null
	logR  *os.File // the read end of out's pipe, drained by a copier
	guard bool     // start a guard that kills the group if the agent dies
}

// exitInfo is how a process group's main process ended.
type exitInfo struct {
	desc  string // "exit status 3", "signal: killed"
	clean bool   // exit status 0
}

// logDrain is how long a log copier keeps reading after the process group
// ended, for output still buffered in the pipe, before giving up on
// processes that escaped the group and hold the pipe open.
const logDrain = 200 * time.Millisecond

// spawnLogged starts the command with its output going to the log, if
// any, through a pipe that a copier goroutine drains.
func (r *Runner) spawnLogged(spec spawnSpec) (*group, error) {
	if r.logs == nil {
		return r.spawn(spec)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	spec.out, spec.logR = pw, pr
	g, err := r.spawn(spec)
	pw.Close() // the child has its copy; EOF comes when the group's are closed
	if err != nil {
		pr.Close()
		return nil, err
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer pr.Close()
		_, err := io.Copy(r.logs, pr)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			r.log.Warn("copy output", "err", err)
		}
	}()
	return g, nil
}
