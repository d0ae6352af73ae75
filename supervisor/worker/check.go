package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// checker runs the health check of one process in its own goroutine and
// reports each result on results (capacity one; the goroutine waits for the
// loop to take a result before checking again, so results never pile up).
type checker struct {
	results chan checkResult
	quit    chan struct{}
	cancel  context.CancelFunc // cancels an in-flight check
	once    sync.Once
}

type checkResult struct{ err error }

// startChecker starts checking the current process; env is the command's
// environment, which an exec check gets too.
func (r *Runner) startChecker(env []string) *checker {
	ctx, cancel := context.WithCancel(context.Background())
	c := &checker{results: make(chan checkResult, 1), quit: make(chan struct{}), cancel: cancel}
	run := r.checkFunc(env)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		c.loop(ctx, r.cfg.Check, run)
	}()
	return c
}

// stop ends the checker; an in-flight check is cancelled. Safe on nil and
// more than once.
func (c *checker) stop() {
	if c != nil {
		c.once.Do(func() {
			close(c.quit)
			c.cancel()
		})
	}
}

func (c *checker) loop(ctx context.Context, hc HealthCheck, run func(context.Context) error) {
	t := time.NewTimer(hc.Interval)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
		}
		cctx, ccancel := context.WithTimeout(ctx, hc.Timeout)
		err := run(cctx)
		ccancel()
		select {
		case <-c.quit:
			return
		case c.results <- checkResult{err: err}:
		}
		t.Reset(hc.Interval)
	}
}

// checkFunc returns the configured check as a function bounded by its
// context.
func (r *Runner) checkFunc(env []string) func(context.Context) error {
	hc := r.cfg.Check
	switch {
	case hc.HTTP != "":
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		return func(ctx context.Context) error { return checkHTTP(ctx, client, hc.HTTP) }
	case hc.TCP != "":
		return func(ctx context.Context) error { return checkTCP(ctx, hc.TCP) }
	default:
		spec := spawnSpec{argv: hc.Exec, env: env, dir: r.cfg.Dir}
		return func(ctx context.Context) error { return r.checkExec(ctx, spec) }
	}
}

func checkHTTP(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("http check: %s", resp.Status)
	}
	return nil
}

func checkTCP(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

var errCheckTimeout = errors.New("exec check: timed out")

// checkExec runs the check program as a process group of its own and
// kills the group if ctx ends first.
func (r *Runner) checkExec(ctx context.Context, spec spawnSpec) error {
	g, err := r.spawn(spec)
	if err != nil {
		return fmt.Errorf("exec check: %w", err)
	}
	select {
	case e := <-g.exited:
		if !e.clean {
			return fmt.Errorf("exec check: %s", e.desc)
		}
		return nil
	case <-ctx.Done():
		g.kill()
		<-g.exited
		return errCheckTimeout
	}
}
