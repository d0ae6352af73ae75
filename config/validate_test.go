package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// validConfig returns a config that passes Validate, with one of each list
// element to break.
func validConfig() Config {
	c := Default()
	c.NodeName, c.DataDir = "n1", "./data/n1"
	c.Tags = map[string]string{"zone": "a"}
	c.Ensembles = []Ensemble{{Name: "orders", Type: "kv", Replicas: 3, Constraints: []string{"zone=a"}}}
	w := DefaultWorker()
	w.Name, w.Command = "billing", []string{"/usr/bin/billing"}
	w.Env = map[string]string{"LOG_LEVEL": "info"}
	c.Workers = []Worker{w}
	return c
}

func TestValidate(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("validConfig: %v", err)
	}
	ok := func(c *Config) {}
	long := strings.Repeat("a", 64)
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		key    string // "" if the config is valid
		msg    string // a substring of the message
	}{
		// node_name
		{"name ok", func(c *Config) { c.NodeName = "web-1" }, "", ""},
		{"name 63", func(c *Config) { c.NodeName = long[:63] }, "", ""},
		{"name digits", func(c *Config) { c.NodeName = "1" }, "", ""},
		{"name empty", func(c *Config) { c.NodeName = "" }, "node_name", "must not be empty"},
		{"name 64", func(c *Config) { c.NodeName = long }, "node_name", "longer than 63"},
		{"name upper", func(c *Config) { c.NodeName = "Web" }, "node_name", "is not a name"},
		{"name space", func(c *Config) { c.NodeName = "a b" }, "node_name", "is not a name"},
		{"name dot", func(c *Config) { c.NodeName = "a.b" }, "node_name", "is not a name"},
		{"name dash first", func(c *Config) { c.NodeName = "-a" }, "node_name", "is not a name"},
		{"name dash last", func(c *Config) { c.NodeName = "a-" }, "node_name", "is not a name"},
		{"name underscore", func(c *Config) { c.NodeName = "a_b" }, "node_name", "is not a name"},
		// data_dir
		{"data_dir empty", func(c *Config) { c.DataDir = "" }, "data_dir", "must not be empty"},
		{"data_dir nul", func(c *Config) { c.DataDir = "a\x00b" }, "data_dir", "NUL"},
		// addresses
		{"bind any", func(c *Config) { c.BindAddr, c.AdvertiseAddr = "0.0.0.0", "10.0.0.1" }, "", ""},
		{"bind v6", func(c *Config) { c.BindAddr, c.AdvertiseAddr = "::1", "::1" }, "", ""},
		{"bind host", func(c *Config) { c.BindAddr = "localhost" }, "bind_addr", "not an IP address"},
		{"bind port", func(c *Config) { c.BindAddr = "127.0.0.1:1" }, "bind_addr", "not an IP address"},
		{"advertise bad", func(c *Config) { c.AdvertiseAddr = "x" }, "advertise_addr", "not an IP address"},
		{"advertise any", func(c *Config) { c.AdvertiseAddr = "0.0.0.0" }, "advertise_addr", "cannot be reached"},
		{"advertise from any", func(c *Config) { c.BindAddr, c.AdvertiseAddr = "0.0.0.0", "0.0.0.0" }, "advertise_addr", "must be set when bind_addr is 0.0.0.0"},
		{"advertise v6 any", func(c *Config) { c.BindAddr, c.AdvertiseAddr = "::", "::" }, "advertise_addr", "must be set"},
		// ports
		{"ports zero", func(c *Config) { c.SerfPort, c.RPCPort = 0, 0 }, "", ""},
		{"ports max", func(c *Config) { c.SerfPort, c.RPCPort = 65535, 1 }, "", ""},
		{"serf negative", func(c *Config) { c.SerfPort = -1 }, "serf_port", "out of range 0..65535"},
		{"serf big", func(c *Config) { c.SerfPort = 65536 }, "serf_port", "out of range"},
		{"rpc big", func(c *Config) { c.RPCPort = 70000 }, "rpc_port", "out of range"},
		{"ports equal", func(c *Config) { c.RPCPort = c.SerfPort }, "rpc_port", "also serf_port"},
		// http
		{"http all interfaces", func(c *Config) { c.HTTPAddr = ":7900" }, "", ""},
		{"http name", func(c *Config) { c.HTTPAddr = "localhost:0" }, "", ""},
		{"http v6", func(c *Config) { c.HTTPAddr = "[::1]:80" }, "", ""},
		{"http no port", func(c *Config) { c.HTTPAddr = "127.0.0.1" }, "http_addr", "not host:port"},
		{"http bad port", func(c *Config) { c.HTTPAddr = "127.0.0.1:http" }, "http_addr", "port"},
		{"http big port", func(c *Config) { c.HTTPAddr = "127.0.0.1:65536" }, "http_addr", "port"},
		{"http bad host", func(c *Config) { c.HTTPAddr = "a_b:80" }, "http_addr", "neither an IP address nor a host name"},
		{"token ok", func(c *Config) { c.HTTPToken = "s3cr3t-._~+/=" }, "", ""},
		{"token space", func(c *Config) { c.HTTPToken = "a b" }, "http_token", "white space"},
		{"token newline", func(c *Config) { c.HTTPToken = "a\nb" }, "http_token", "white space"},
		// join
		{"join ok", func(c *Config) { c.Join = []string{"10.0.0.1:7946", "n2.example.com:7946", "[::1]:1"} }, "", ""},
		{"join no port", func(c *Config) { c.Join = []string{"10.0.0.1:7946", "10.0.0.2"} }, "join[1]", "not host:port"},
		{"join no host", func(c *Config) { c.Join = []string{":7946"} }, "join[0]", "has no host"},
		{"join port 0", func(c *Config) { c.Join = []string{"a:0"} }, "join[0]", "1..65535"},
		{"join empty", func(c *Config) { c.Join = []string{""} }, "join[0]", "not host:port"},
		// bootstrap_expect, profile, encrypt, log_level
		{"bootstrap 7", func(c *Config) { c.BootstrapExpect = 7 }, "", ""},
		{"bootstrap 0", func(c *Config) { c.BootstrapExpect = 0 }, "bootstrap_expect", "out of range 1..7"},
		{"bootstrap 8", func(c *Config) { c.BootstrapExpect = 8 }, "bootstrap_expect", "out of range"},
		{"profile local", func(c *Config) { c.Profile = ProfileLocal }, "", ""},
		{"profile wan", func(c *Config) { c.Profile = "wan" }, "profile", `"wan" is not one of lan, local`},
		{"profile empty", func(c *Config) { c.Profile = "" }, "profile", "not one of"},
		{"encrypt 16", func(c *Config) { c.Encrypt = "AAAAAAAAAAAAAAAAAAAAAA==" }, "", ""},
		{"encrypt 32", func(c *Config) { c.Encrypt = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" }, "", ""},
		{"encrypt 8", func(c *Config) { c.Encrypt = "AAAAAAAAAAA=" }, "encrypt", "decodes to 8 bytes"},
		{"encrypt junk", func(c *Config) { c.Encrypt = "not base64!" }, "encrypt", "not base64"},
		{"log debug", func(c *Config) { c.LogLevel = "debug" }, "", ""},
		{"log loud", func(c *Config) { c.LogLevel = "loud" }, "log_level", "not one of debug, info, warn, error"},
		{"log upper", func(c *Config) { c.LogLevel = "INFO" }, "log_level", "not one of"},
		// tls
		{"tls all", func(c *Config) { c.TLS = TLS{CertFile: "c", KeyFile: "k", CAFile: "ca"} }, "", ""},
		{"tls no ca", func(c *Config) { c.TLS = TLS{CertFile: "c", KeyFile: "k"} }, "tls.ca_file", "or none of them"},
		{"tls no key", func(c *Config) { c.TLS = TLS{CertFile: "c", CAFile: "ca"} }, "tls.key_file", "must be set"},
		// tags
		{"tags k8s", func(c *Config) { c.Tags = map[string]string{"topology.kubernetes.io/zone": "eu-1:a"} }, "", ""},
		{"tags none", func(c *Config) { c.Tags = nil }, "", ""},
		{"tag reserved", func(c *Config) { c.Tags = map[string]string{"hasup.rpc": "x"} }, `tags["hasup.rpc"]`, "reserved"},
		{"tag reserved case", func(c *Config) { c.Tags = map[string]string{"HASUP.x": "x"} }, `tags["HASUP.x"]`, "reserved"},
		{"tag empty value", func(c *Config) { c.Tags = map[string]string{"ssd": ""} }, "tags.ssd", "empty value"},
		{"tag empty key", func(c *Config) { c.Tags = map[string]string{"": "x"} }, `tags[""]`, "empty key"},
		{"tag equals", func(c *Config) { c.Tags = map[string]string{"a=b": "x"} }, `tags["a=b"]`, "holds '='"},
		{"tag comma value", func(c *Config) { c.Tags = map[string]string{"a": "b,c"} }, "tags.a", "holds ','"},
		{"tags too big", func(c *Config) { c.Tags = map[string]string{"a": strings.Repeat("x", 256)} }, "tags", "257 bytes"},
		// ensembles
		{"ensemble lock 5", func(c *Config) { c.Ensembles[0].Type, c.Ensembles[0].Replicas = "lock", 5 }, "", ""},
		{"ensemble custom type", func(c *Config) { c.Ensembles[0].Type = "my-fsm2" }, "", ""},
		{"ensemble 1", func(c *Config) { c.Ensembles[0].Replicas = 1 }, "", ""},
		{"ensemble no name", func(c *Config) { c.Ensembles[0].Name = "" }, "ensembles[0].name", "must not be empty"},
		{"ensemble bad name", func(c *Config) { c.Ensembles[0].Name = "Orders" }, "ensembles[0].name", "is not a name"},
		{"ensemble bad type", func(c *Config) { c.Ensembles[0].Type = "K/V" }, "ensembles[0].type", "is not a name"},
		{"ensemble no type", func(c *Config) { c.Ensembles[0].Type = "" }, "ensembles[0].type", "must not be empty"},
		{"ensemble 2", func(c *Config) { c.Ensembles[0].Replicas = 2 }, "ensembles[0].replicas", "2 is not 3 or 5"},
		{"ensemble 0", func(c *Config) { c.Ensembles[0].Replicas = 0 }, "ensembles[0].replicas", "not 3 or 5"},
		{"ensemble 7", func(c *Config) { c.Ensembles[0].Replicas = 7 }, "ensembles[0].replicas", "not 3 or 5"},
		{"ensemble dup", func(c *Config) { c.Ensembles = append(c.Ensembles, c.Ensembles[0]) }, "ensembles[1].name", "already the name of ensembles[0]"},
		{"constraints all forms", func(c *Config) { c.Ensembles[0].Constraints = []string{"zone=a", "zone!=b", "ssd", "!spot"} }, "", ""},
		{"constraint empty", func(c *Config) { c.Ensembles[0].Constraints = []string{""} }, "ensembles[0].constraints[0]", "empty key"},
		{"constraint space", func(c *Config) { c.Ensembles[0].Constraints = []string{"zone = a"} }, "ensembles[0].constraints[0]", "holds ' '"},
		{"constraint no value", func(c *Config) { c.Ensembles[0].Constraints = []string{"zone="} }, "ensembles[0].constraints[0]", "empty value"},
		{"constraint no key", func(c *Config) { c.Ensembles[0].Constraints = []string{"!=a"} }, "ensembles[0].constraints[0]", "empty key"},
		{"constraint double not", func(c *Config) { c.Ensembles[0].Constraints = []string{"!!ssd"} }, "ensembles[0].constraints[0]", "holds '!'"},
		// workers
		{"worker every 5", func(c *Config) { c.Workers[0].Mode, c.Workers[0].Replicas = ModeEvery, 5 }, "", ""},
		{"worker no name", func(c *Config) { c.Workers[0].Name = "" }, "workers[0].name", "must not be empty"},
		{"worker bad name", func(c *Config) { c.Workers[0].Name = "billing_v2" }, "workers[0].name", "is not a name"},
		{"worker dup", func(c *Config) { c.Workers = append(c.Workers, c.Workers[0]) }, "workers[1].name", "already the name of workers[0]"},
		{"worker is ensemble", func(c *Config) { c.Workers[0].Name = "orders" }, "workers[0].name", "already the name of ensembles[0]"},
		{"worker mode", func(c *Config) { c.Workers[0].Mode = "all" }, "workers[0].mode", "not one of singleton, every"},
		{"worker replicas", func(c *Config) { c.Workers[0].Replicas = 4 }, "workers[0].replicas", "not 3 or 5"},
		{"worker no command", func(c *Config) { c.Workers[0].Command = nil }, "workers[0].command", "must name a program"},
		{"worker empty program", func(c *Config) { c.Workers[0].Command = []string{"", "x"} }, "workers[0].command[0]", "must not be empty"},
		{"worker env ok", func(c *Config) { c.Workers[0].Env = map[string]string{"_x": "", "Path2": "a=b"} }, "", ""},
		{"worker env digit", func(c *Config) { c.Workers[0].Env = map[string]string{"2X": "a"} }, "workers[0].env.2X", "not an environment variable name"},
		{"worker env dash", func(c *Config) { c.Workers[0].Env = map[string]string{"A-B": "a"} }, "workers[0].env.A-B", "not an environment variable name"},
		{"worker env hasup", func(c *Config) { c.Workers[0].Env = map[string]string{"HASUP_FENCE": "1"} }, "workers[0].env.HASUP_FENCE", "set by hasup"},
		{"worker env hasup lower", func(c *Config) { c.Workers[0].Env = map[string]string{"hasup_x": "1"} }, "workers[0].env.hasup_x", "set by hasup"},
		{"worker env nul", func(c *Config) { c.Workers[0].Env = map[string]string{"A": "\x00"} }, "workers[0].env.A", "NUL"},
		{"stop grace 0", func(c *Config) { c.Workers[0].StopGrace = 0 }, "", ""},
		{"stop grace 10m", func(c *Config) { c.Workers[0].StopGrace = 10 * time.Minute }, "", ""},
		{"stop grace long", func(c *Config) { c.Workers[0].StopGrace = time.Hour }, "workers[0].stop_grace", "out of range 0s..10m0s"},
		{"stop grace negative", func(c *Config) { c.Workers[0].StopGrace = -1 }, "workers[0].stop_grace", "out of range"},
		// restart
		{"restart attempts 0", func(c *Config) { c.Workers[0].Restart.Attempts = 0 }, "", ""},
		{"restart delay 0", func(c *Config) { c.Workers[0].Restart.Delay, c.Workers[0].Restart.MaxDelay = 0, 0 }, "", ""},
		{"restart attempts -1", func(c *Config) { c.Workers[0].Restart.Attempts = -1 }, "workers[0].restart.attempts", "out of range 0..1000"},
		{"restart attempts big", func(c *Config) { c.Workers[0].Restart.Attempts = 1001 }, "workers[0].restart.attempts", "out of range"},
		{"restart interval 0", func(c *Config) { c.Workers[0].Restart.Interval = 0 }, "workers[0].restart.interval", "must be positive"},
		{"restart delay -1", func(c *Config) { c.Workers[0].Restart.Delay = -time.Second }, "workers[0].restart.delay", "must not be negative"},
		{"restart max < delay", func(c *Config) { c.Workers[0].Restart.MaxDelay = 500 * time.Millisecond }, "workers[0].restart.max_delay", "less than delay 1s"},
		// check
		{"check http", func(c *Config) { c.Workers[0].Check.HTTP = "https://[::1]:8443/health?x=1" }, "", ""},
		{"check tcp", func(c *Config) { c.Workers[0].Check.TCP = "localhost:6379" }, "", ""},
		{"check exec", func(c *Config) { c.Workers[0].Check.Exec = []string{"/bin/check", "-q"} }, "", ""},
		{"check http scheme", func(c *Config) { c.Workers[0].Check.HTTP = "ftp://x/" }, "workers[0].check.http", "not an http:// or https:// URL"},
		{"check http no host", func(c *Config) { c.Workers[0].Check.HTTP = "http:///health" }, "workers[0].check.http", "with a host"},
		{"check http junk", func(c *Config) { c.Workers[0].Check.HTTP = "http://a b:%zz" }, "workers[0].check.http", "not an http"},
		{"check tcp no port", func(c *Config) { c.Workers[0].Check.TCP = "localhost" }, "workers[0].check.tcp", "not host:port"},
		{"check tcp port 0", func(c *Config) { c.Workers[0].Check.TCP = "localhost:0" }, "workers[0].check.tcp", "1..65535"},
		{"check exec empty", func(c *Config) { c.Workers[0].Check.Exec = []string{} }, "workers[0].check.exec", "must name a program"},
		{"check exec blank", func(c *Config) { c.Workers[0].Check.Exec = []string{""} }, "workers[0].check.exec", "must name a program"},
		{"check two probes", func(c *Config) {
			c.Workers[0].Check.HTTP, c.Workers[0].Check.TCP = "http://x/", "x:1"
		}, "workers[0].check", "at most one of http, tcp and exec"},
		{"check interval 0", func(c *Config) { c.Workers[0].Check.Interval = 0 }, "workers[0].check.interval", "must be positive"},
		{"check timeout 0", func(c *Config) { c.Workers[0].Check.Timeout = 0 }, "workers[0].check.timeout", "must be positive"},
		{"check timeout = interval", func(c *Config) { c.Workers[0].Check.Timeout = 10 * time.Second }, "workers[0].check.timeout", "less than interval 10s"},
		{"check failures 0", func(c *Config) { c.Workers[0].Check.Failures = 0 }, "workers[0].check.failures", "out of range 1..100"},
		{"check failures big", func(c *Config) { c.Workers[0].Check.Failures = 101 }, "workers[0].check.failures", "out of range"},
		{"unchanged", ok, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.mutate(&c)
			err := c.Validate()
			if tc.key == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate() = %v, want ErrInvalid", err)
			}
			probs := problemsOf(t, err)
			if len(probs) != 1 {
				t.Fatalf("want one problem, got:\n%v", err)
			}
			if p := probs[0]; p.Key != tc.key || !strings.Contains(p.Msg, tc.msg) || p.Source != "" {
				t.Errorf("got key %q msg %q source %q, want key %q msg containing %q", p.Key, p.Msg, p.Source, tc.key, tc.msg)
			}
		})
	}
}

// A validation problem in the file names the file, the key and its line; one
// from the environment names the variable.
func TestValidationSources(t *testing.T) {
	_, path, err := loadText(t, "node_name: n1\nworkers:\n  - name: w\n    command: [x]\n    restart:\n      attempts: 5000\n", nil, nil)
	want := path + ": workers[0].restart.attempts: 5000 is out of range 0..1000 (line 6)"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	_, _, err = loadText(t, "node_name: n1\nlog_level: info\n", []string{"HASUP_LOG_LEVEL=loud"}, nil)
	want = `HASUP_LOG_LEVEL: log_level: "loud" is not one of debug, info, warn, error`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	_, _, err = loadText(t, "node_name: n1\n", []string{"HASUP_LOG_LEVEL=loud"}, map[string]string{"log-level": "louder"})
	want = `flag -log-level: log_level: "louder" is not one of debug, info, warn, error`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	_, _, err = loadText(t, "node_name: n1\ntags: {ok: x}\n", []string{"HASUP_TAGS=hasup.x=1"}, nil)
	want = `HASUP_TAGS: tags["hasup.x"]: keys starting with "hasup." are reserved for hasup`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestSlogLevel(t *testing.T) {
	for level, want := range map[string]string{"debug": "DEBUG", "info": "INFO", "warn": "WARN", "error": "ERROR", "": "INFO"} {
		if got := (Config{LogLevel: level}).SlogLevel().String(); got != want {
			t.Errorf("SlogLevel(%q) = %s, want %s", level, got, want)
		}
	}
}
