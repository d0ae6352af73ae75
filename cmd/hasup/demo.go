package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hasup/hasup/config"
	"github.com/hasup/hasup/internal/api"
)

// demoCmd runs `hasup demo`: three agents on loopback in this process.
func demoCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "data directory (default: a new temporary directory, removed at the end)")
	nodes := fs.Int("nodes", 3, "number of nodes (1 to 7)")
	verbose := fs.Bool("v", false, "log what the agents do")
	for_ := fs.Duration("for", 0, "stop after this long (default: run until Ctrl-C)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *nodes < 1 || *nodes > 7 {
		fmt.Fprintln(stderr, "hasup demo: -nodes must be 1 to 7")
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *for_ > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *for_)
		defer cancel()
	}
	level := slog.LevelWarn + 100 // quiet
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := demo(ctx, *dir, *nodes, stdout, logger); err != nil {
		fmt.Fprintln(stderr, "hasup demo:", err)
		return exitFailure
	}
	return exitOK
}

// demo runs the local cluster until ctx ends.
func demo(ctx context.Context, dir string, n int, out io.Writer, logger *slog.Logger) error {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "hasup-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	var agents []*agent
	for i := 1; i <= n; i++ {
		cfg := config.Default()
		cfg.NodeName = fmt.Sprintf("node%d", i)
		cfg.DataDir = filepath.Join(dir, cfg.NodeName)
		cfg.BindAddr, cfg.SerfPort, cfg.RPCPort, cfg.HTTPAddr = "127.0.0.1", 0, 0, "127.0.0.1:0"
		cfg.Profile, cfg.BootstrapExpect = config.ProfileLocal, n
		replicas := min(3, n)
		if n%2 == 0 {
			replicas = min(3, n-1)
		}
		cfg.Ensembles = []config.Ensemble{{Name: "demo", Type: "kv", Replicas: replicas}}
		ticker := config.DefaultWorker()
		ticker.Name, ticker.Mode, ticker.Replicas, ticker.StopGrace = "ticker", config.ModeSingleton, replicas, time.Second
		ticker.Command = []string{"/bin/sh", "-c", `while true; do echo "$(date +%T) $HASUP_WORKER on $HASUP_NODE, fence $HASUP_FENCE"; sleep 2; done`}
		cfg.Workers = []config.Worker{ticker}
		if len(agents) > 0 {
			cfg.Join = []string{agents[0].sup.SerfAddr()}
		}
		a, err := newAgent(cfg, logger.With("node", cfg.NodeName))
		if err != nil {
			return err
		}
		agents = append(agents, a)
	}
	errs := make(chan error, len(agents))
	for _, a := range agents {
		go func() { errs <- a.run(ctx, logger) }()
	}
	addr := agents[0].http.Addr().String()
	fmt.Fprintf(out, "hasup demo: %d nodes on loopback, data in %s\n", n, dir)
	for _, a := range agents {
		fmt.Fprintf(out, "  %-6s API http://%s  serf %s\n", a.cfg.NodeName, a.http.Addr(), a.sup.SerfAddr())
	}
	c := &api.Client{Addr: addr}
	if err := waitDemo(ctx, c); err != nil {
		return errors.Join(err, waitAll(errs, len(agents)))
	}
	en, err := c.Ensemble(ctx, "demo")
	if err == nil {
		fmt.Fprintf(out, "ensemble %q (%s, %d replicas on %s) is up; primary %s\n", en.Name, en.Type, en.Replicas, strings.Join(en.Members, ", "), en.Primary)
	}
	fmt.Fprintf(out, `
try, in another terminal:
  export HASUP_HTTP_ADDR=%s
  go run ./cmd/hasup members
  go run ./cmd/hasup ensembles
  go run ./cmd/hasup kv get demo greeting
  go run ./cmd/hasup kv put demo color blue
  go run ./cmd/hasup workers        (the sample singleton "ticker" runs on one node)
  curl -s http://%s/v1/ensembles/demo
stop a node's agent to see the ensemble fail over: not from here (all nodes
share this process); run three 'hasup agent' processes for that.
Ctrl-C stops the cluster.
`, addr, addr)
	<-ctx.Done()
	fmt.Fprintln(out, "hasup demo: stopping")
	return waitAll(errs, len(agents))
}

// waitDemo waits until the demo ensemble takes a write through the API.
func waitDemo(ctx context.Context, c *api.Client) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := c.KVPut(rctx, "demo", "greeting", []byte("hello from hasup"), nil)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the demo ensemble did not come up in 60s: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func waitAll(errs chan error, n int) error {
	var err error
	for i := 0; i < n; i++ {
		err = errors.Join(err, <-errs)
	}
	return err
}
