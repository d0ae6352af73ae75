package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/oklog/run"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/config"
	"github.com/hasup/hasup/detector"
	"github.com/hasup/hasup/internal/api"
	"github.com/hasup/hasup/internal/transport"
	"github.com/hasup/hasup/supervisor"
	"github.com/hasup/hasup/supervisor/worker"
)

// agentCmd runs `hasup agent`: the daemon of one node.
func agentCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "the YAML config file (optional: defaults, HASUP_* variables and flags suffice)")
	values := map[string]*string{}
	for _, st := range config.Settings() {
		values[st.Flag] = fs.String(st.Flag, "", st.Usage+" (config key "+st.Key+", env "+st.Env+")")
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	flags := map[string]string{}
	fs.Visit(func(f *flag.Flag) {
		if f.Name != "config" {
			flags[f.Name] = *values[f.Name]
		}
	})
	cfg, err := config.Load(config.Options{File: *file, Env: os.Environ(), Flags: flags})
	if err != nil {
		fmt.Fprintln(stderr, "hasup agent:", err)
		return exitConfig
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.SlogLevel()}))
	if err := worker.BecomeSubreaper(); err != nil {
		logger.Warn("cannot become a child subreaper: a forking worker's grandchildren may outlive a kill", "err", err)
	}
	a, err := newAgent(cfg, logger)
	if err == nil {
		a.file, a.flags = *file, flags
		err = a.run(context.Background(), logger)
	}
	if err != nil {
		fmt.Fprintln(stderr, "hasup agent:", err)
		return exitFailure
	}
	return exitOK
}

// agent is one running node: its supervisor and its HTTP API.
type agent struct {
	file  string            // the config file, for SIGHUP
	flags map[string]string // the flags given, for SIGHUP
	cfg   config.Config
	sup   *supervisor.Supervisor
	http  net.Listener
}

// newAgent builds a node from its config.
func newAgent(cfg config.Config, logger *slog.Logger) (*agent, error) {
	key, err := detector.DecodeKey(cfg.Encrypt)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	scfg := supervisor.Config{
		NodeName: hasup.NodeID(cfg.NodeName), DataDir: cfg.DataDir, BindAddr: cfg.BindAddr,
		SerfPort: cfg.SerfPort, RPCPort: cfg.RPCPort, Join: cfg.Join, BootstrapExpect: cfg.BootstrapExpect,
		Profile: detector.Profile(cfg.Profile), EncryptKey: key, Tags: cfg.Tags, Logger: logger,
	}
	if cfg.TLS.Enabled() {
		scfg.TLS = &transport.TLSConfig{CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile, CAFile: cfg.TLS.CAFile}
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("http_addr %s: %w", cfg.HTTPAddr, err)
	}
	scfg.APIAddr, scfg.Workers = ln.Addr().String(), workerSpecs(cfg.Workers)
	sup, err := supervisor.New(scfg)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	return &agent{cfg: cfg, sup: sup, http: ln}, nil
}

// workerSpecs turns the config's workers into the supervisor's.
func workerSpecs(ws []config.Worker) []supervisor.WorkerSpec {
	var out []supervisor.WorkerSpec
	for _, w := range ws {
		out = append(out, supervisor.WorkerSpec{Name: w.Name, Mode: worker.Mode(w.Mode), Replicas: w.Replicas,
			Command: w.Command, Env: w.Env, Dir: w.Dir, Restart: worker.Restart(w.Restart),
			Check: worker.HealthCheck(w.Check), StopGrace: w.StopGrace})
	}
	return out
}

// run wires the node's actors into one oklog/run group: the supervisor,
// the HTTP API, the ensembles declared in the config, and signals.
func (a *agent) run(ctx context.Context, logger *slog.Logger) error {
	var g run.Group
	supCtx, supCancel := context.WithCancel(context.Background())
	g.Add(func() error { return a.sup.Run(supCtx) }, func(error) { supCancel() })

	left := make(chan struct{})
	var leftOnce sync.Once
	opts := api.DefaultOptions()
	opts.Token, opts.Logger = a.cfg.HTTPToken, logger
	opts.OnLeave = func() { leftOnce.Do(func() { close(left) }) }
	srv := &http.Server{Handler: api.NewServer(api.FromSupervisor(a.sup), opts), ReadHeaderTimeout: 10 * time.Second}
	serve := func() error { return srv.Serve(a.http) }
	if a.cfg.TLS.Enabled() {
		// The API speaks TLS with the node's certificate; a client
		// certificate, if given, must come from the cluster's CA (the token
		// still guards mutating calls, so browsers need none).
		tc, err := apiTLS(a.cfg.TLS)
		if err != nil {
			return err
		}
		srv.TLSConfig = tc
		serve = func() error { return srv.ServeTLS(a.http, a.cfg.TLS.CertFile, a.cfg.TLS.KeyFile) }
	}
	g.Add(func() error {
		if err := serve(); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, func(error) {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})

	declCtx, declCancel := context.WithCancel(ctx)
	g.Add(func() error {
		a.declare(declCtx, logger, a.cfg.Ensembles)
		<-declCtx.Done()
		return nil
	}, func(error) { declCancel() })

	sigCtx, sigCancel := context.WithCancel(ctx)
	g.Add(func() error {
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		defer signal.Stop(sigs)
		for {
			select {
			case <-sigCtx.Done():
				return sigCtx.Err()
			case <-left:
				logger.Info("left the cluster on request; exiting")
				return run.ErrSignal
			case sig := <-sigs:
				if sig == syscall.SIGHUP {
					a.reload(sigCtx, logger)
					continue
				}
				logger.Info("leaving the cluster", "signal", sig.String())
				if err := a.sup.Leave(); err != nil {
					logger.Warn("leave failed", "err", err)
				}
				return run.ErrSignal
			}
		}
	}, func(error) { sigCancel() })

	err := g.Run()
	var sig run.SignalError
	if errors.As(err, &sig) || errors.Is(err, run.ErrSignal) || ctx.Err() != nil {
		return nil // a signal or the caller ended it: a clean exit
	}
	return err
}

// reload reads the config file again (SIGHUP) and applies its ensembles
// and workers; the rest of the config needs a restart.
func (a *agent) reload(ctx context.Context, logger *slog.Logger) {
	if a.file == "" {
		logger.Info("SIGHUP: no config file to reload")
		return
	}
	cfg, err := config.Load(config.Options{File: a.file, Env: os.Environ(), Flags: a.flags})
	if err != nil {
		logger.Error("SIGHUP: config not reloaded", "err", err)
		return
	}
	if err := a.sup.SetWorkers(workerSpecs(cfg.Workers)); err != nil {
		logger.Error("SIGHUP: workers not reloaded", "err", err)
		return
	}
	logger.Info("SIGHUP: reloaded ensembles and workers", "ensembles", len(cfg.Ensembles), "workers", len(cfg.Workers))
	go a.declare(ctx, logger, cfg.Ensembles)
}

// declare creates the config's ensembles that do not exist yet, retrying
// until the registry is reachable or ctx ends.
func (a *agent) declare(ctx context.Context, logger *slog.Logger, ensembles []config.Ensemble) {
	for _, e := range ensembles {
		spec := supervisor.Spec{Name: hasup.EnsembleName(e.Name), Type: e.Type, Replicas: e.Replicas, Constraints: e.Constraints}
		for ctx.Err() == nil {
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := a.sup.Start(sctx, spec)
			cancel()
			if err == nil || errors.Is(err, supervisor.ErrExists) {
				break
			}
			logger.Debug("declaring an ensemble", "ensemble", e.Name, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// apiTLS is the HTTP API's TLS configuration.
func apiTLS(t config.TLS) (*tls.Config, error) {
	ca, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("tls.ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("tls.ca_file %s: no PEM certificate", t.CAFile)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}, nil
}
