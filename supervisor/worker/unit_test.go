package worker

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hasup/hasup/config"
)

// The types mirror package config's field for field, so that cmd/hasup
// converts them with a plain conversion; this fails to compile if they
// drift apart.
var (
	_ = Restart(config.Restart{})
	_ = HealthCheck(config.HealthCheck{})
	_ = Mode(config.ModeEvery)
)

func TestDefaultsMatchConfig(t *testing.T) {
	w, c := config.DefaultWorker(), DefaultConfig()
	if Restart(w.Restart) != c.Restart || w.StopGrace != c.StopGrace || Mode(w.Mode) != c.Mode {
		t.Errorf("defaults differ from config.DefaultWorker: %+v vs %+v", c, w)
	}
	if hc := HealthCheck(w.Check); hc.Interval != c.Check.Interval || hc.Timeout != c.Check.Timeout || hc.Failures != c.Check.Failures {
		t.Errorf("check defaults differ: %+v vs %+v", c.Check, w.Check)
	}
}

func TestPolicyDelays(t *testing.T) {
	p := policy{cfg: Restart{Attempts: 100, Interval: time.Hour, Delay: time.Second, MaxDelay: 30 * time.Second}, rng: rand.New(rand.NewPCG(1, 2))}
	now := time.Unix(0, 0)
	for k, nominal := range []time.Duration{1, 2, 4, 8, 16, 30, 30, 30} {
		nominal *= time.Second
		d, ok := p.onFailure(now)
		if !ok {
			t.Fatalf("gave up at restart %d", k)
		}
		lo, hi := time.Duration(float64(nominal)*0.8), min(time.Duration(float64(nominal)*1.2), 30*time.Second)
		if d < lo || d > hi {
			t.Errorf("delay %d = %v, want in [%v, %v]", k, d, lo, hi)
		}
		now = now.Add(d)
	}
}

func TestPolicyJitterSpreads(t *testing.T) {
	seen := map[time.Duration]bool{}
	for seed := range uint64(20) {
		p := policy{cfg: Restart{Attempts: 1, Interval: time.Minute, Delay: time.Second, MaxDelay: time.Minute}, rng: rand.New(rand.NewPCG(seed, 0))}
		d, _ := p.onFailure(time.Unix(0, 0))
		seen[d] = true
	}
	if len(seen) < 15 {
		t.Errorf("20 seeds gave %d distinct first delays: the jitter does not spread restarts", len(seen))
	}
}

func TestPolicyWindow(t *testing.T) {
	p := policy{cfg: Restart{Attempts: 2, Interval: time.Minute, Delay: time.Second, MaxDelay: time.Second}, rng: rand.New(rand.NewPCG(1, 1))}
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at   time.Duration
		want bool
	}{
		{0, true},                 // restart 1
		{10 * time.Second, true},  // restart 2
		{20 * time.Second, false}, // a third within a minute: give up
		{61 * time.Second, true},  // the first has left the window
		{65 * time.Second, false}, // 10s, 61s are within a minute
		{200 * time.Second, true}, // all old
	}
	for _, s := range steps {
		if _, ok := p.onFailure(t0.Add(s.at)); ok != s.want {
			t.Errorf("failure at +%v: restart %v, want %v", s.at, ok, s.want)
		}
		if len(p.history) > p.cfg.Attempts {
			t.Fatalf("history holds %d entries, more than attempts", len(p.history))
		}
	}
	p.reset()
	if _, ok := p.onFailure(t0.Add(201 * time.Second)); !ok {
		t.Errorf("no restart after reset")
	}
	zero := policy{cfg: Restart{Attempts: 0, Interval: time.Minute}, rng: rand.New(rand.NewPCG(1, 1))}
	if _, ok := zero.onFailure(t0); ok {
		t.Errorf("attempts 0 restarted")
	}
}

func TestValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Name, ok.Command = "billing", []string{"/bin/true"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, mut := range map[string]func(*Config){
		"no name":          func(c *Config) { c.Name = "" },
		"slash in name":    func(c *Config) { c.Name = "a/b" },
		"dot name":         func(c *Config) { c.Name = ".." },
		"no command":       func(c *Config) { c.Command = nil },
		"empty program":    func(c *Config) { c.Command = []string{""} },
		"bad mode":         func(c *Config) { c.Mode = "some" },
		"negative attempt": func(c *Config) { c.Restart.Attempts = -1 },
		"zero interval":    func(c *Config) { c.Restart.Interval = 0 },
		"delay > max":      func(c *Config) { c.Restart.Delay = time.Hour },
		"negative grace":   func(c *Config) { c.StopGrace = -time.Second },
		"huge grace":       func(c *Config) { c.StopGrace = time.Hour },
		"hasup env":        func(c *Config) { c.Env = map[string]string{"HASUP_FENCE": "1"} },
		"bad env name":     func(c *Config) { c.Env = map[string]string{"A=B": "1"} },
		"two checks":       func(c *Config) { c.Check.HTTP, c.Check.TCP = "http://x", "x:1" },
		"bad check url":    func(c *Config) { c.Check.HTTP = "ftp://x" },
		"timeout >= intvl": func(c *Config) { c.Check.TCP, c.Check.Timeout = "x:1", c.Check.Interval },
		"zero failures":    func(c *Config) { c.Check.TCP, c.Check.Failures = "x:1", 0 },
		"negative log cap": func(c *Config) { c.LogMaxBytes = -1 },
	} {
		c := ok
		c.Env = nil
		mut(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestBuildEnv(t *testing.T) {
	base := agentEnv(func(k string) (string, bool) {
		v, ok := map[string]string{"HOME": "/root", "SECRET": "x"}[k]
		return v, ok
	})
	got := buildEnv(base, map[string]string{"A": "config", "B": "config"}, map[string]string{"B": "desired"}, map[string]string{"HASUP_FENCE": "9"})
	want := []string{"A=config", "B=desired", "HASUP_FENCE=9", "HOME=/root", "PATH=" + defaultPath}
	if !slices.Equal(got, want) {
		t.Errorf("buildEnv = %q, want %q", got, want)
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "tool")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=/nonexistent:" + dir}
	if p, err := lookPath("tool", env); err != nil || p != exe {
		t.Errorf("lookPath(tool) = %q, %v", p, err)
	}
	if _, err := lookPath("data", env); err == nil {
		t.Errorf("found a non-executable file")
	}
	if p, _ := lookPath("./x/y", env); p != "./x/y" {
		t.Errorf("a path with a slash was looked up: %q", p)
	}
}

func TestLogFileRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.log")
	lf, err := openLogFile(path, 10)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Repeat("0123456789", 3) + "abcdefg"
	for _, chunk := range []string{all[:4], all[4:25], all[25:]} { // chunks straddle rotations
		lf.Write([]byte(chunk))
	}
	if err := lf.close(); err != nil {
		t.Fatal(err)
	}
	cur, _ := os.ReadFile(path)
	old, _ := os.ReadFile(path + ".1")
	if string(old) != "0123456789" || string(cur) != "abcdefg" {
		t.Errorf("after rotation: .1 %q, current %q", old, cur)
	}
	for n, want := range map[int]string{3: "efg", 9: "89abcdefg", 0: "0123456789abcdefg", 100: "0123456789abcdefg"} {
		if got, err := lf.tail(n); err != nil || string(got) != want {
			t.Errorf("tail(%d) = %q, %v; want %q", n, got, err, want)
		}
	}
}
