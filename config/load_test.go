package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeFile writes text to hasup.yaml in a new temporary directory and
// returns its path.
func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hasup.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// loadText loads text as the file, with the given environment and flags.
func loadText(t *testing.T, text string, env []string, flags map[string]string) (Config, string, error) {
	t.Helper()
	path := writeFile(t, text)
	cfg, err := Load(Options{File: path, Env: env, Flags: flags})
	return cfg, path, err
}

// mustLoad loads text and fails the test on an error.
func mustLoad(t *testing.T, text string, env []string, flags map[string]string) Config {
	t.Helper()
	cfg, _, err := loadText(t, text, env, flags)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

// problemsOf flattens err into its *Error values; it fails the test if err
// holds anything else or does not wrap ErrInvalid.
func problemsOf(t *testing.T, err error) []*Error {
	t.Helper()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("error %v does not wrap ErrInvalid", err)
	}
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range joined.Unwrap() {
				walk(e)
			}
			return
		}
		e, ok := err.(*Error)
		if !ok {
			t.Fatalf("error %T %v is not a *Error", err, err)
		}
		out = append(out, e)
	}
	walk(err)
	return out
}

// The example of DESIGN.md ("Interfaces other programs rely on") loads, with
// every key it leaves out at its default.
func TestLoadDesignExample(t *testing.T) {
	cfg, err := Load(Options{File: "testdata/hasup.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	w := DefaultWorker()
	w.Name = "billing"
	w.Command = []string{"/usr/bin/billing", "--serve"}
	w.Env = map[string]string{"LOG_LEVEL": "info"}
	w.Check.HTTP = "http://127.0.0.1:8080/health"
	w.Check.Interval, w.Check.Timeout = 5*time.Second, time.Second
	want := Config{
		NodeName:        "n1",
		DataDir:         "./data/n1",
		BindAddr:        "127.0.0.1",
		AdvertiseAddr:   "127.0.0.1",
		SerfPort:        7946,
		RPCPort:         7947,
		HTTPAddr:        "127.0.0.1:7900",
		Join:            []string{"127.0.0.1:7946"},
		BootstrapExpect: 3,
		Profile:         ProfileLAN,
		Tags:            map[string]string{"zone": "a"},
		LogLevel:        "info",
		Ensembles:       []Ensemble{{Name: "orders", Type: "kv", Replicas: 3}},
		Workers:         []Worker{w},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load:\n got %+v\nwant %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if err := Check("testdata/hasup.yaml"); err != nil {
		t.Errorf("Check: %v", err)
	}
}

// Without a file, Load returns the defaults, with the derived ones (data_dir,
// advertise_addr) following the keys they derive from.
func TestLoadDefaults(t *testing.T) {
	cfg, err := Load(Options{Env: []string{"HASUP_NODE_NAME=n7", "HASUP_BIND_ADDR=10.0.0.7"}})
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.NodeName, want.DataDir = "n7", "./data/n7"
	want.BindAddr, want.AdvertiseAddr = "10.0.0.7", "10.0.0.7"
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load:\n got %+v\nwant %+v", cfg, want)
	}

	cfg = mustLoad(t, "node_name: n2\nadvertise_addr: 10.0.0.2\ndata_dir: /var/lib/hasup\n", nil, nil)
	if cfg.DataDir != "/var/lib/hasup" || cfg.AdvertiseAddr != "10.0.0.2" || cfg.BindAddr != "127.0.0.1" {
		t.Errorf("explicit keys not kept: %+v", cfg)
	}
	// An empty string and null both mean the default.
	cfg = mustLoad(t, "node_name: n3\ndata_dir: \"\"\nadvertise_addr:\nserf_port: ~\n", nil, nil)
	if cfg.DataDir != "./data/n3" || cfg.AdvertiseAddr != "127.0.0.1" || cfg.SerfPort != 7946 {
		t.Errorf("empty and null keys did not default: %+v", cfg)
	}
}

func TestDefaultValidates(t *testing.T) {
	d := Default()
	d.NodeName, d.DataDir = "n1", "./data/n1" // the host name may not be a name
	if err := d.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
	if d := Default(); d.NodeName != "" && d.DataDir != "./data/"+d.NodeName {
		t.Errorf("Default data_dir %q does not follow node_name %q", d.DataDir, d.NodeName)
	}
}

// Flags win over the environment, which wins over the file, which wins over
// the defaults, for a scalar, a list and a map; a list or map is replaced
// whole.
func TestPrecedence(t *testing.T) {
	const file = "node_name: n1\nhttp_addr: 127.0.0.1:1001\njoin: [f1:7946, f2:7946]\ntags: {zone: file, rack: r1}\n"
	env := []string{"HASUP_HTTP_ADDR=127.0.0.1:1002", "HASUP_JOIN=e1:7946", "HASUP_TAGS=zone=env"}
	flags := map[string]string{"http-addr": "127.0.0.1:1003", "join": "g1:7946, g2:7946,", "tags": "zone=flag"}
	type want struct {
		http string
		join []string
		tags map[string]string
	}
	for _, tc := range []struct {
		name  string
		file  string
		env   []string
		flags map[string]string
		want  want
	}{
		{"defaults", "node_name: n1\n", nil, nil, want{"127.0.0.1:7900", nil, nil}},
		{"file over defaults", file, nil, nil, want{"127.0.0.1:1001", []string{"f1:7946", "f2:7946"}, map[string]string{"zone": "file", "rack": "r1"}}},
		{"env over file", file, env, nil, want{"127.0.0.1:1002", []string{"e1:7946"}, map[string]string{"zone": "env"}}},
		{"flags over env", file, env, flags, want{"127.0.0.1:1003", []string{"g1:7946", "g2:7946"}, map[string]string{"zone": "flag"}}},
		{"env over defaults", "node_name: n1\n", env, nil, want{"127.0.0.1:1002", []string{"e1:7946"}, map[string]string{"zone": "env"}}},
		{"flags over file", file, nil, flags, want{"127.0.0.1:1003", []string{"g1:7946", "g2:7946"}, map[string]string{"zone": "flag"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustLoad(t, tc.file, tc.env, tc.flags)
			got := want{cfg.HTTPAddr, cfg.Join, cfg.Tags}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// Every settable key can be set by its environment variable and its flag,
// in both spellings.
func TestEveryKeySettable(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"c.pem", "k.pem", "ca.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, k, ca := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), filepath.Join(dir, "ca.pem")
	values := map[string]string{
		"node_name": "n9", "data_dir": "/d", "bind_addr": "10.1.1.1", "advertise_addr": "10.1.1.2",
		"serf_port": "8001", "rpc_port": "8002", "http_addr": ":8003", "http_token": "s3cret",
		"join": "a:1,b:2", "bootstrap_expect": "5", "profile": "local",
		"encrypt": "AAAAAAAAAAAAAAAAAAAAAA==", "tags": "Zone=a", "log_level": "debug",
		"tls.cert_file": c, "tls.key_file": k, "tls.ca_file": ca,
	}
	want := Config{
		NodeName: "n9", DataDir: "/d", BindAddr: "10.1.1.1", AdvertiseAddr: "10.1.1.2",
		SerfPort: 8001, RPCPort: 8002, HTTPAddr: ":8003", HTTPToken: "s3cret",
		Join: []string{"a:1", "b:2"}, BootstrapExpect: 5, Profile: ProfileLocal,
		Encrypt: "AAAAAAAAAAAAAAAAAAAAAA==", Tags: map[string]string{"Zone": "a"}, LogLevel: "debug",
		TLS: TLS{CertFile: c, KeyFile: k, CAFile: ca},
	}
	settings := Settings()
	if len(settings) != len(values) {
		t.Fatalf("Settings() has %d keys, the test knows %d", len(settings), len(values))
	}
	var env []string
	flags, keyFlags := map[string]string{}, map[string]string{}
	for _, s := range settings {
		v, ok := values[s.Key]
		if !ok {
			t.Fatalf("no test value for %s", s.Key)
		}
		env = append(env, s.Env+"="+v)
		flags[s.Flag] = v
		keyFlags[s.Key] = v
	}
	for name, opts := range map[string]Options{
		"env":       {Env: env},
		"flags":     {Flags: flags},
		"key flags": {Flags: keyFlags},
	} {
		cfg, err := Load(opts)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(cfg, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, cfg, want)
		}
	}
}

func TestSettings(t *testing.T) {
	byKey := map[string]Setting{}
	for _, s := range Settings() {
		byKey[s.Key] = s
		if s.Usage == "" {
			t.Errorf("%s has no usage line", s.Key)
		}
		if s.Kind == "" {
			t.Errorf("%s has no kind", s.Key)
		}
	}
	for key, env := range map[string]string{
		"http_addr": "HASUP_HTTP_ADDR", "http_token": "HASUP_HTTP_TOKEN", "tls.cert_file": "HASUP_TLS_CERT_FILE", "join": "HASUP_JOIN",
	} {
		if got := byKey[key].Env; got != env {
			t.Errorf("%s: Env = %q, want %q", key, got, env)
		}
	}
	if s := byKey["tls.ca_file"]; s.Flag != "tls-ca-file" || s.Kind != "string" {
		t.Errorf("tls.ca_file = %+v", s)
	}
	for _, k := range []string{"workers", "ensembles", "tls"} {
		if _, ok := byKey[k]; ok {
			t.Errorf("%s is settable, but has no flat spelling", k)
		}
	}
	if len(usages) != len(byKey) {
		t.Errorf("usages has %d entries for %d settings: a stale key?", len(usages), len(byKey))
	}
}

// Only HASUP_<KEY> for a known key is read: the variables hasup gives its
// workers, and empty values, are not.
func TestEnvIgnored(t *testing.T) {
	env := []string{
		"HASUP_NODE=other", "HASUP_FENCE=42", "HASUP_WORKER=w", "HASUP_ROLE=primary", "HASUP_API=x",
		"HASUP_WORKERS=junk", "HASUP_ENSEMBLES=junk", "HASUP_TLS=junk", "HASUP_bind_addr=10.0.0.9",
		"HASUP_HTTP_TOKEN=", "HASUP_SERF_PORT=", "PATH=/bin", "NOEQUALS", "HASUP_LOG_LEVEL=warn",
	}
	cfg := mustLoad(t, "node_name: n1\nhttp_token: filetoken\n", env, nil)
	if cfg.NodeName != "n1" || cfg.HTTPToken != "filetoken" || cfg.SerfPort != 7946 || cfg.BindAddr != "127.0.0.1" {
		t.Errorf("an ignored variable was read: %+v", cfg)
	}
	if cfg.LogLevel != "warn" {
		t.Errorf("HASUP_LOG_LEVEL not read: %q", cfg.LogLevel)
	}
	// The last of duplicate variables wins.
	cfg = mustLoad(t, "node_name: n1\n", []string{"HASUP_RPC_PORT=1", "HASUP_RPC_PORT=2"}, nil)
	if cfg.RPCPort != 2 {
		t.Errorf("rpc_port = %d, want the last value 2", cfg.RPCPort)
	}
}

// Bad environment and flag values are errors naming the variable or flag.
func TestOverrideErrors(t *testing.T) {
	for _, tc := range []struct {
		env   []string
		flags map[string]string
		want  []string
	}{
		{env: []string{"HASUP_SERF_PORT=abc"}, want: []string{`HASUP_SERF_PORT: serf_port: "abc" is not an integer`}},
		{flags: map[string]string{"rpc-port": "x"}, want: []string{`flag -rpc-port: rpc_port: "x" is not an integer`}},
		{flags: map[string]string{"-nonsense": "1"}, want: []string{`flag -nonsense: names no config key`}},
		{flags: map[string]string{"workers": "x"}, want: []string{`flag -workers: names no config key`}},
		{env: []string{"HASUP_TAGS=zone"}, want: []string{`HASUP_TAGS: tags: "zone" is not a key=value pair`}},
		{env: []string{"HASUP_BOOTSTRAP_EXPECT=9"}, want: []string{`HASUP_BOOTSTRAP_EXPECT: bootstrap_expect: 9 is out of range 1..7`}},
		{flags: map[string]string{"join": "a:1,nohost"}, want: []string{`flag -join: join[1]: "nohost" is not host:port`}},
		{env: []string{"HASUP_SERF_PORT=abc", "HASUP_RPC_PORT=-"}, flags: map[string]string{"bootstrap_expect": "many"},
			want: []string{"HASUP_SERF_PORT:", "HASUP_RPC_PORT:", "flag -bootstrap_expect:"}},
	} {
		_, _, err := loadText(t, "node_name: n1\n", tc.env, tc.flags)
		if err == nil {
			t.Errorf("%v %v: no error", tc.env, tc.flags)
			continue
		}
		problemsOf(t, err)
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v %v: error %q does not contain %q", tc.env, tc.flags, err, w)
			}
		}
	}
}

// Tag keys and worker environment names keep their case, and dots in tag
// keys are not nesting, whichever source sets them.
func TestCasePreserved(t *testing.T) {
	const file = `
node_name: n1
tags: {Zone: A, zone: b, topology.kubernetes.io/zone: eu-1a}
workers:
  - name: w
    command: [/usr/bin/Billing, --Serve]
    env: {LOG_LEVEL: Info, myVar: X, PORT: 8080, EMPTY: }
    dir: /srv/Billing
`
	cfg := mustLoad(t, file, nil, nil)
	wantTags := map[string]string{"Zone": "A", "zone": "b", "topology.kubernetes.io/zone": "eu-1a"}
	if !reflect.DeepEqual(cfg.Tags, wantTags) {
		t.Errorf("tags = %v, want %v", cfg.Tags, wantTags)
	}
	w := cfg.Workers[0]
	wantEnv := map[string]string{"LOG_LEVEL": "Info", "myVar": "X", "PORT": "8080", "EMPTY": ""}
	if !reflect.DeepEqual(w.Env, wantEnv) {
		t.Errorf("env = %v, want %v", w.Env, wantEnv)
	}
	if !reflect.DeepEqual(w.Command, []string{"/usr/bin/Billing", "--Serve"}) || w.Dir != "/srv/Billing" {
		t.Errorf("command %v, dir %q: case changed", w.Command, w.Dir)
	}
	cfg = mustLoad(t, file, []string{"HASUP_TAGS=Rack=R1,a.b/c=D"}, nil)
	if want := map[string]string{"Rack": "R1", "a.b/c": "D"}; !reflect.DeepEqual(cfg.Tags, want) {
		t.Errorf("tags from env = %v, want %v", cfg.Tags, want)
	}
	cfg = mustLoad(t, file, nil, map[string]string{"tags": "Rack=R2"})
	if want := map[string]string{"Rack": "R2"}; !reflect.DeepEqual(cfg.Tags, want) {
		t.Errorf("tags from flags = %v, want %v", cfg.Tags, want)
	}
	cfg = mustLoad(t, "node_name: N-1\n", nil, map[string]string{"node_name": "n1", "http_token": "AbC"})
	if cfg.HTTPToken != "AbC" {
		t.Errorf("http_token = %q: case changed", cfg.HTTPToken)
	}
}

// A worker or ensemble starts from its defaults; only the keys it sets
// change, at every depth, and an explicit zero is kept.
func TestListElementDefaults(t *testing.T) {
	cfg := mustLoad(t, `
node_name: n1
ensembles: [{name: a}, {name: b, type: lock, replicas: 5, constraints: [ssd, "!spot"]}]
workers:
  - {name: w1, command: [x]}
  - name: w2
    command: [y]
    mode: every
    restart: {attempts: 0, delay: 0s}
    check: {tcp: "localhost:80", failures: 1}
    stop_grace: 0s
`, nil, nil)
	if want := []Ensemble{{Name: "a", Type: "kv", Replicas: 3}, {Name: "b", Type: "lock", Replicas: 5, Constraints: []string{"ssd", "!spot"}}}; !reflect.DeepEqual(cfg.Ensembles, want) {
		t.Errorf("ensembles = %+v, want %+v", cfg.Ensembles, want)
	}
	w1 := DefaultWorker()
	w1.Name, w1.Command = "w1", []string{"x"}
	w2 := DefaultWorker()
	w2.Name, w2.Command, w2.Mode = "w2", []string{"y"}, ModeEvery
	w2.Restart.Attempts, w2.Restart.Delay = 0, 0
	w2.Check.TCP, w2.Check.Failures = "localhost:80", 1
	w2.StopGrace = 0
	if want := []Worker{w1, w2}; !reflect.DeepEqual(cfg.Workers, want) {
		t.Errorf("workers:\n got %+v\nwant %+v", cfg.Workers, want)
	}
}

// Each Load starts afresh: a reload sees what the file says now and nothing
// of the previous load.
func TestReloadFresh(t *testing.T) {
	path := writeFile(t, "node_name: n1\ntags: {zone: a}\nworkers: [{name: w, command: [x], env: {A: b}}]\n")
	first, err := Load(Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("node_name: n1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	second, err := Load(Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	if second.Tags != nil || second.Workers != nil || len(first.Workers) != 1 {
		t.Errorf("reload kept old state: first %+v, second %+v", first, second)
	}
}

// A file that cannot be read is reported as such, not as ErrInvalid.
func TestReadError(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(Options{File: missing})
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrInvalid) {
		t.Errorf("Load(missing) = %v, want a not-exist error that is not ErrInvalid", err)
	}
	if err := Check(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Check(missing) = %v", err)
	}
	if err := Check(""); !errors.Is(err, ErrInvalid) {
		t.Errorf("Check(\"\") = %v", err)
	}
	big := writeFile(t, "node_name: n1\n"+strings.Repeat("#", maxFileBytes))
	if _, err := Load(Options{File: big}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load(big) = %v", err)
	}
}

// The TLS files must all be given, and exist.
func TestTLSFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"c.pem", "k.pem", "ca.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tlsYAML := func(c, k, ca string) string {
		return "node_name: n1\ntls: {cert_file: " + c + ", key_file: " + k + ", ca_file: " + ca + "}\n"
	}
	j := func(f string) string { return filepath.Join(dir, f) }
	if _, _, err := loadText(t, tlsYAML(j("c.pem"), j("k.pem"), j("ca.pem")), nil, nil); err != nil {
		t.Errorf("existing files: %v", err)
	}
	for _, tc := range []struct{ text, want string }{
		{tlsYAML(j("c.pem"), j("nope.pem"), j("ca.pem")), `tls.key_file: file "` + j("nope.pem") + `" does not exist (line 2)`},
		{tlsYAML(j("c.pem"), j("k.pem"), dir), `tls.ca_file: "` + dir + `" is a directory`},
		{"node_name: n1\ntls: {cert_file: " + j("c.pem") + "}\n", "tls.key_file: must be set"},
	} {
		_, path, err := loadText(t, tc.text, nil, nil)
		if err == nil || !strings.Contains(err.Error(), path+": "+tc.want) {
			t.Errorf("%q: error %v, want %q", tc.text, err, tc.want)
		}
	}
	// Validate alone does not look at the file system.
	c := Default()
	c.NodeName, c.TLS = "n1", TLS{CertFile: "/nope", KeyFile: "/nope", CAFile: "/nope"}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate looked for files: %v", err)
	}
}
