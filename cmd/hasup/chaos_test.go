//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hasup/hasup/internal/api"
	"github.com/hasup/hasup/sim"
)

// The chaos test: three agent processes, writers that retry each write in
// an X-Hasup-Client session until it is acknowledged, and a disturber that
// kill -9s, restarts, pauses (SIGSTOP) and resumes one node at a time.
// Afterwards every acknowledged write must read back with its value, and
// no write may have executed twice (each key is written once, with CAS
// "only if absent", so a second execution would fail its CAS or be seen).
// HASUP_CHAOS_SECONDS sets how long the chaos lasts (default 10).

// sessionPut writes key=val as request req of client, with ?cas=0 (only if
// absent) when once: a retry answered from the session's kept reply
// succeeds, a second execution would fail the CAS. It returns the new
// revision.
func sessionPut(ctx context.Context, addr string, client, req uint64, key, val string, once bool) (uint64, error) {
	u := "http://" + addr + "/v1/kv/orders/" + key
	if once {
		u += "?cas=0"
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPut, u, strings.NewReader(val))
	if err != nil {
		return 0, err
	}
	r.Header.Set("X-Hasup-Client", strconv.FormatUint(client, 10))
	r.Header.Set("X-Hasup-Request", strconv.FormatUint(req, 10))
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	var out struct {
		Revision uint64 `json:"revision"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return 0, fmt.Errorf("answer %s: %w", b, err)
	}
	return out.Revision, nil
}

func TestChaosAgentsLoseNoAcknowledgedWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three agent processes under kills and pauses")
	}
	seconds := 10
	if v, err := strconv.Atoi(os.Getenv("HASUP_CHAOS_SECONDS")); err == nil && v > 0 {
		seconds = v
	}
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("HASUP_CHAOS_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("chaos seed %d (HASUP_CHAOS_SEED replays the disturber's choices)", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	bin := buildBinary(t)
	dir := t.TempDir()
	var nodes []*e2eNode
	for i := 1; i <= 3; i++ {
		ip := fmt.Sprintf("127.0.0.%d", i)
		n := &e2eNode{name: fmt.Sprintf("n%d", i), ip: ip, cfgPath: filepath.Join(dir, fmt.Sprintf("n%d.yaml", i)),
			dataDir: filepath.Join(dir, fmt.Sprintf("n%d", i))}
		n.serf, n.rpc, n.httpPrt = freePort(t, ip), freePort(t, ip), freePort(t, ip)
		nodes = append(nodes, n)
	}
	var joins []string
	for _, n := range nodes {
		joins = append(joins, fmt.Sprintf("%q", fmt.Sprintf("%s:%d", n.ip, n.serf)))
	}
	for _, n := range nodes {
		writeConfig(t, n, strings.Join(joins, ", "), filepath.Join(dir, "unused.log"))
		n.start(t, bin)
	}
	var mu sync.Mutex // guards the nodes' processes between the disturber and cleanup
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range nodes {
			if n.cmd != nil {
				_ = n.cmd.Process.Signal(syscall.SIGCONT)
			}
			n.kill()
		}
	})
	c := &api.Client{Addr: nodes[0].httpAddr(), HTTP: &http.Client{Timeout: 5 * time.Second}}
	poll(t, 60*time.Second, "the orders ensemble takes a write", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := c.KVPut(ctx, "orders", "warm", []byte("up"), nil)
		return err
	})

	chaosCtx, stopChaos := context.WithTimeout(context.Background(), time.Duration(seconds)*time.Second)
	defer stopChaos()
	var wg sync.WaitGroup
	// The disturber: one node at a time, so a majority stays up.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for chaosCtx.Err() == nil {
			time.Sleep(time.Duration(300+rng.IntN(700)) * time.Millisecond) // the chaos schedule itself
			mu.Lock()
			n := nodes[rng.IntN(len(nodes))]
			kill := rng.IntN(2) == 0
			if kill {
				n.kill()
			} else if n.cmd != nil {
				_ = n.cmd.Process.Signal(syscall.SIGSTOP)
			}
			mu.Unlock()
			time.Sleep(time.Duration(300+rng.IntN(1500)) * time.Millisecond)
			mu.Lock()
			if kill {
				n.start(t, bin)
			} else if n.cmd != nil {
				_ = n.cmd.Process.Signal(syscall.SIGCONT)
			}
			mu.Unlock()
		}
	}()
	// Writers: each key once, retried in its session until acknowledged.
	var amu sync.Mutex
	acked := map[string]string{}
	attempts := 0
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := rand.Uint64() | 1
			for req := uint64(1); chaosCtx.Err() == nil; req++ {
				key, val := fmt.Sprintf("w%d-%d", w, req), fmt.Sprintf("v%d-%d", w, req)
				for chaosCtx.Err() == nil {
					addr := nodes[rand.IntN(len(nodes))].httpAddr()
					ctx, cancel := context.WithTimeout(chaosCtx, 3*time.Second)
					_, err := sessionPut(ctx, addr, client, req, key, val, true)
					cancel()
					amu.Lock()
					attempts++
					if err == nil {
						acked[key] = val
					}
					amu.Unlock()
					if err == nil {
						break
					}
					if strings.Contains(err.Error(), " 409 ") || strings.HasPrefix(err.Error(), "409") {
						t.Errorf("write %s in its session: %v (a CAS failure means it executed twice)", key, err)
						return
					}
				}
			}
		}()
	}
	// Registers: shared keys written in sessions and read linearizably,
	// checked for linearizability at the end (the simulator's model).
	var hmu sync.Mutex
	var history []sim.KVOp
	record := func(op sim.KVOp) {
		hmu.Lock()
		history = append(history, op)
		hmu.Unlock()
	}
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := rand.Uint64() | 1
			for req := uint64(1); chaosCtx.Err() == nil; req++ {
				key, val := fmt.Sprintf("r%d", rand.IntN(2)), fmt.Sprintf("p%d-%d", w, req)
				op := sim.KVOp{Client: w, Key: key, Value: val, Call: time.Now(), Unknown: true}
				for chaosCtx.Err() == nil {
					ctx, cancel := context.WithTimeout(chaosCtx, 3*time.Second)
					rev, err := sessionPut(ctx, nodes[rand.IntN(len(nodes))].httpAddr(), client, req, key, val, false)
					cancel()
					if err == nil {
						op.Rev, op.Unknown, op.Return = rev, false, time.Now()
						break
					}
				}
				record(op)
			}
		}()
	}
	for rd := 0; rd < 2; rd++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for chaosCtx.Err() == nil {
				key := fmt.Sprintf("r%d", rand.IntN(2))
				call := time.Now()
				ctx, cancel := context.WithTimeout(chaosCtx, 3*time.Second)
				v, rev, err := (&api.Client{Addr: nodes[rand.IntN(len(nodes))].httpAddr()}).KVGet(ctx, "orders", key, api.Linearizable)
				cancel()
				switch {
				case err == nil:
					record(sim.KVOp{Client: 10 + rd, Get: true, Key: key, Value: string(v), Found: true, Rev: rev, Call: call, Return: time.Now()})
				case errors.Is(err, api.ErrNotFound):
					record(sim.KVOp{Client: 10 + rd, Get: true, Key: key, Call: call, Return: time.Now()})
				}
			}
		}()
	}
	wg.Wait()
	ok, undecided := sim.CheckKV(history, time.Minute)
	t.Logf("CHAOS registers: %d operations, linearizable=%v (undecided=%v)", len(history), ok, undecided)
	if !ok && !undecided {
		t.Fatalf("the register history under chaos is not linearizable (%d operations)", len(history))
	}

	// Everyone back; every acknowledged write is there.
	mu.Lock()
	for _, n := range nodes {
		if n.cmd == nil {
			n.start(t, bin)
		} else {
			_ = n.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	mu.Unlock()
	t.Logf("CHAOS %ds: %d writes acknowledged of %d attempts", seconds, len(acked), attempts)
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged: the chaos left no majority, or the writers never got through")
	}
	for key, want := range acked {
		poll(t, 60*time.Second, "read "+key, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			v, _, err := (&api.Client{Addr: nodes[rand.IntN(len(nodes))].httpAddr()}).KVGet(ctx, "orders", key, api.Linearizable)
			if err != nil {
				return err
			}
			if string(v) != want {
				t.Fatalf("%s = %q, acknowledged as %q", key, v, want)
			}
			return nil
		})
	}
}
