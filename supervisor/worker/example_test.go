//go:build linux

package worker_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/hasup/hasup/supervisor/worker"
)

// A singleton started under a lease: the runner starts the command with
// its fencing token, and would stop it before the deadline unless a later
// Set renewed it.
func Example() {
	logDir, err := os.MkdirTemp("", "worker-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(logDir)

	cfg := worker.DefaultConfig()
	cfg.Name = "hello"
	cfg.Node = "n1"
	cfg.Command = []string{"/bin/sh", "-c", `echo "$HASUP_WORKER on $HASUP_NODE as $HASUP_ROLE, fence $HASUP_FENCE"; exec sleep 60`}
	cfg.LogDir = logDir
	r, err := worker.New(cfg)
	if err != nil {
		panic(err)
	}
	r.Set(worker.Desired{Run: true, Role: worker.RolePrimary, Fence: 7, Deadline: time.Now().Add(time.Minute)})

	var logs []byte
	for end := time.Now().Add(5 * time.Second); !bytes.HasSuffix(logs, []byte("\n")) && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
		logs, _ = r.Logs(0)
	}
	fmt.Print(string(logs))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		panic(err)
	}
	fmt.Println(r.Status().State, r.Status().LastExit)
	// Output:
	// hello on n1 as primary, fence 7
	// stopped signal: terminated
}
