// Command hasup-bench measures the node runtime: the machine's floor (a
// bbolt commit, a loopback round trip) and then each case of the
// node-runtime issue, one line each, all in one run so that the figures
// compare as ratios.
//
//	go run ./cmd/hasup-bench [-duration 5s] [-case N] [-dir DIR]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"time"

	"github.com/hasup/hasup/internal/bench"
)

func main() {
	duration := flag.Duration("duration", 5*time.Second, "how long each case runs")
	only := flag.Int("case", -1, "run only case N (0-based); -1 runs all")
	dir := flag.String("dir", "", "directory for the bbolt files (default: a temporary directory)")
	flag.Parse()
	if *duration <= 0 {
		fmt.Fprintln(os.Stderr, "hasup-bench: -duration must be positive")
		os.Exit(2)
	}
	cases := bench.Cases(*duration)
	if *only >= len(cases) {
		fmt.Fprintf(os.Stderr, "hasup-bench: -case %d: there are %d cases (0 to %d)\n", *only, len(cases), len(cases)-1)
		os.Exit(2)
	}
	if err := run(*dir, cases, *only); err != nil {
		fmt.Fprintln(os.Stderr, "hasup-bench:", err)
		os.Exit(1)
	}
}

func run(dir string, cases []bench.Case, only int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if dir == "" {
		tmp, err := os.MkdirTemp("", "hasup-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	fmt.Printf("hasup-bench: %s/%s, %d CPUs, GOMAXPROCS %d, %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	f, err := bench.MeasureFloor(dir, 1000)
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	fmt.Println(f)
	for i, cs := range cases {
		if only >= 0 && i != only {
			continue
		}
		sub, err := os.MkdirTemp(dir, "case-")
		if err != nil {
			return err
		}
		res, err := bench.Run(ctx, sub, cs)
		if err != nil {
			return fmt.Errorf("%s: %w", cs.Name, err)
		}
		fmt.Println(res)
	}
	return nil
}
