package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/hasup/hasup/internal/api"
)

// lockCmd runs `hasup lock NAME -- COMMAND...`: the command runs while this
// process holds the fenced lock NAME (in the lock ensemble -ensemble,
// created if missing), with HASUP_FENCE in its environment. The lock is
// renewed every TTL/3; if a renewal fails for longer than the TTL allows,
// the command's process group gets SIGTERM, then SIGKILL after -grace, so
// it is dead before the lock can pass to someone else. The exit code is
// the command's (or 6 if the lock was lost).
func lockCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lock", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ens := fs.String("ensemble", "locks", "the lock ensemble (type lock), created with 3 replicas if missing")
	ttl := fs.Duration("ttl", 15*time.Second, "the lock's time to live; renewed every ttl/3")
	grace := fs.Duration("grace", 2*time.Second, "time between SIGTERM and SIGKILL when the lock is lost")
	owner := fs.String("owner", "", "owner name (default: hostname:pid)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	rest := fs.Args()
	if len(rest) < 2 {
		fmt.Fprintln(stderr, "usage: hasup lock [-ensemble E] [-ttl D] NAME -- COMMAND [ARGS...]")
		return exitUsage
	}
	name, command := rest[0], rest[1:]
	if command[0] == "--" {
		command = command[1:]
	}
	if len(command) == 0 || *ttl < time.Second || *grace <= 0 || *grace >= *ttl/2 {
		fmt.Fprintln(stderr, "hasup lock: need a command, -ttl of at least 1s and -grace below ttl/2")
		return exitUsage
	}
	if *owner == "" {
		host, _ := os.Hostname()
		*owner = host + ":" + strconv.Itoa(os.Getpid())
	}
	c, err := newClient()
	if err != nil {
		fmt.Fprintln(stderr, "hasup lock:", err)
		return exitConfig
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fence, err := acquire(ctx, c, *ens, name, *owner, *ttl)
	if err != nil {
		fmt.Fprintln(stderr, "hasup lock:", err)
		return exitUnavailable
	}
	fmt.Fprintf(stderr, "hasup lock: holding %s/%s with fence %d\n", *ens, name, fence)
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdout, cmd.Stderr, cmd.Stdin = stdout, stderr, os.Stdin
	cmd.Env = append(os.Environ(), "HASUP_FENCE="+strconv.FormatUint(fence, 10), "HASUP_LOCK="+name)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(stderr, "hasup lock:", err)
		release(c, *ens, name, *owner)
		return exitFailure
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	code := hold(ctx, c, cmd, done, *ens, name, *owner, *ttl, *grace, stderr)
	release(c, *ens, name, *owner)
	return code
}

// acquire takes the lock, waiting while another owner holds it.
func acquire(ctx context.Context, c *api.Client, ens, name, owner string, ttl time.Duration) (uint64, error) {
	created := false
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fence, err := c.LockAcquire(actx, ens, name, owner, ttl)
		cancel()
		switch {
		case err == nil:
			return fence, nil
		case errors.Is(err, api.ErrNotFound) && !created:
			created = true
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, cerr := c.CreateEnsemble(cctx, api.EnsembleSpec{Name: ens, Type: "lock", Replicas: 3})
			cancel()
			if cerr != nil && !errors.Is(cerr, api.ErrConflict) {
				return 0, fmt.Errorf("create lock ensemble %s: %w", ens, cerr)
			}
			continue
		case errors.Is(err, api.ErrConflict), errors.Is(err, api.ErrUnavailable):
			// held by someone else, or no quorum yet: wait
		default:
			return 0, err
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// hold renews the lock while the command runs, and stops the command's
// group when the lock is lost or this process is told to stop.
func hold(ctx context.Context, c *api.Client, cmd *exec.Cmd, done chan error, ens, name, owner string, ttl, grace time.Duration, stderr io.Writer) int {
	renewed := time.Now()
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return ee.ExitCode()
			}
			if err != nil {
				return exitFailure
			}
			return exitOK
		case <-ctx.Done():
			stopGroup(cmd, done, grace)
			return exitFailure
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, ttl/3)
			_, err := c.LockAcquire(rctx, ens, name, owner, ttl)
			cancel()
			if err == nil {
				renewed = time.Now()
				continue
			}
			// The lock may expire at renewed+ttl: stop the command so that
			// SIGKILL lands before then.
			if errors.Is(err, api.ErrConflict) || time.Since(renewed) > ttl-grace-ttl/3 {
				fmt.Fprintf(stderr, "hasup lock: lost %s/%s (%v); stopping the command\n", ens, name, err)
				stopGroup(cmd, done, grace)
				return exitUnavailable
			}
		}
	}
}

// stopGroup sends SIGTERM to the command's process group, then SIGKILL
// after grace, and waits for it.
func stopGroup(cmd *exec.Cmd, done chan error, grace time.Duration) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

func release(c *api.Client, ens, name, owner string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.LockRelease(ctx, ens, name, owner)
}
