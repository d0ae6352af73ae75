//go:build !linux

package worker

import "syscall"

const supported = false

// group is a stub: New refuses to run on this platform.
type group struct {
	pid    int
	exited chan exitInfo
}

func (r *Runner) spawn(spawnSpec) (*group, error) { return nil, ErrUnsupported }

func (g *group) terminate()                {}
func (g *group) kill()                     {}
func (g *group) signalMain(syscall.Signal) {}

func becomeSubreaper() error { return ErrUnsupported }
