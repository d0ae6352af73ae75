// Command hasup is the hasup daemon and its command-line client.
//
//	hasup agent -config hasup.yaml     run the daemon of one node
//	hasup demo [-dir DIR]              a local 3-node cluster on loopback
//	hasup members | ensembles          ask the local agent (HASUP_HTTP_ADDR)
//	hasup kv get|put|delete|list ...   the built-in replicated KV
//	hasup workers | logs WORKER [-f]   the node's workers and their output
//	hasup config check FILE            validate a config file
//	hasup keygen | version
//
// Exit codes a script can rely on: 0 success, 1 failure, 2 bad usage,
// 3 bad config, 4 not found, 5 conflict (CAS), 6 unavailable (no quorum or
// timeout: a write may or may not have happened), 7 unauthorized.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/hasup/hasup/config"
	"github.com/hasup/hasup/detector"
)

// Exit codes.
const (
	exitOK           = 0
	exitFailure      = 1
	exitUsage        = 2
	exitConfig       = 3
	exitNotFound     = 4
	exitConflict     = 5
	exitUnavailable  = 6
	exitUnauthorized = 7
)

func main() { os.Exit(runCLI(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `usage: hasup COMMAND [ARGS]

commands:
  agent -config FILE        run the daemon of one node
  demo [-dir DIR]           run a local 3-node cluster on loopback until Ctrl-C
  status [-format json]     the agent's node, cluster and ensembles
  members [-format json]    the cluster's nodes, from the local agent
  join ADDR...              join the cluster through these Serf addresses
  leave                     leave the cluster gracefully; the agent exits
  force-leave NODE          mark a failed node as left
  ensembles [-format json]  the ensembles, from the local agent
  kv get ENSEMBLE KEY [-consistency linearizable|lease|stale]
  kv put ENSEMBLE KEY VALUE [-cas REV]
  kv delete ENSEMBLE KEY
  kv list ENSEMBLE [-prefix P] [-format json]
  workers [-format json]    this node's workers
  lock NAME -- COMMAND...   run COMMAND while holding the fenced lock NAME
  logs WORKER [-f]          a worker's output on this node
  config check FILE         validate a config file
  keygen                    print a new gossip encryption key
  version                   print the version

The client commands talk to the agent at HASUP_HTTP_ADDR (default
127.0.0.1:7900) with the token in HASUP_HTTP_TOKEN.
`

func runCLI(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "agent":
		return agentCmd(args[1:], stdout, stderr)
	case "demo":
		return demoCmd(args[1:], stdout, stderr)
	case "lock":
		return lockCmd(args[1:], stdout, stderr)
	case "members", "ensembles", "kv", "workers", "logs", "join", "leave", "force-leave", "status":
		return clientCmd(args[0], args[1:], stdout, stderr)
	case "config":
		if len(args) != 3 || args[1] != "check" {
			fmt.Fprintln(stderr, "usage: hasup config check FILE")
			return exitUsage
		}
		if err := config.Check(args[2]); err != nil {
			fmt.Fprintln(stderr, err)
			return exitConfig
		}
		fmt.Fprintf(stdout, "%s: ok\n", args[2])
		return exitOK
	case "keygen":
		key, err := detector.GenerateKey()
		if err != nil {
			fmt.Fprintln(stderr, "hasup keygen:", err)
			return exitFailure
		}
		fmt.Fprintln(stdout, key)
		return exitOK
	case "version":
		fmt.Fprintln(stdout, "hasup", version())
		return exitOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "hasup: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
		if bi.Main.Version != "" {
			return bi.Main.Version
		}
	}
	return "dev"
}
