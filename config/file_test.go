package config

import (
	"errors"
	"strings"
	"testing"
)

// wantProblem loads text and checks that the error holds exactly one problem,
// which reads as want (after the file's path and ": ").
func wantProblem(t *testing.T, text, want string) *Error {
	t.Helper()
	_, path, err := loadText(t, text, nil, nil)
	if err == nil {
		t.Fatalf("%q: no error, want %q", text, want)
	}
	probs := problemsOf(t, err)
	if len(probs) != 1 {
		t.Fatalf("%q: want one problem, got %d:\n%v", text, len(probs), err)
	}
	if got := probs[0].Error(); got != path+": "+want {
		t.Errorf("%q:\n got %s\nwant %s: %s", text, got, path, want)
	}
	return probs[0]
}

func TestUnknownKeys(t *testing.T) {
	for _, tc := range []struct {
		text, key, want string
	}{
		{"node_name: n1\nworker: []\n", "worker",
			`unknown key "worker" (line 2; did you mean "workers"?)`},
		{"node_name: n1\nNode_Name: n2\n", "Node_Name",
			`unknown key "Node_Name" (line 2; did you mean "node_name"? keys are case-sensitive)`},
		{"node_name: n1\ncolour: red\n", "colour",
			`unknown key "colour" (line 2)`},
		{"node_name: n1\ntls: {cert: x}\n", "tls.cert",
			`unknown key "tls.cert" (line 2)`},
		{"node_name: n1\nensembles: [{name: a, replica: 3}]\n", "ensembles[0].replica",
			`unknown key "ensembles[0].replica" (line 2; did you mean "replicas"?)`},
		{"node_name: n1\nworkers:\n  - name: w\n    command: [x]\n  - name: v\n    command: [x]\n    restart: {atempts: 3}\n", "workers[1].restart.atempts",
			`unknown key "workers[1].restart.atempts" (line 7; did you mean "attempts"?)`},
		{"node_name: n1\nworkers: [{name: w, command: [x], check: {htp: x}}]\n", "workers[0].check.htp",
			`unknown key "workers[0].check.htp" (line 2; did you mean "http"?)`},
		{"base: &b {replicas: 3}\nnode_name: n1\n", "base",
			`unknown key "base" (line 1)`},
		{"node_name: n1\nensembles: [{<<: {replicas: 5}, name: a}]\n", "ensembles[0].<<",
			`unknown key "ensembles[0].<<" (line 2; YAML merge keys are not supported)`},
	} {
		e := wantProblem(t, tc.text, tc.want)
		if e.Key != tc.key {
			t.Errorf("%q: Key = %q, want %q", tc.text, e.Key, tc.key)
		}
	}
}

// A value of the wrong type is an error naming the key, in words, not a
// decoder's dump.
func TestWrongTypes(t *testing.T) {
	const w = "node_name: n1\nworkers:\n  - name: w\n    command: [x]\n"
	for _, tc := range []struct{ text, want string }{
		{"node_name: [a]\n", `node_name: must be a string, not a list (line 1)`},
		{"node_name: n1\nserf_port: abc\n", `serf_port: "abc" is not an integer (line 2)`},
		{"node_name: n1\nserf_port: 79.5\n", `serf_port: "79.5" is not an integer (line 2)`},
		{"node_name: n1\nserf_port: true\n", `serf_port: "true" is not an integer (line 2)`},
		{"node_name: n1\nserf_port: 99999999999999999999\n", `serf_port: "99999999999999999999" is not an integer (line 2)`},
		{"node_name: n1\nbootstrap_expect: {n: 3}\n", `bootstrap_expect: must be an integer, not a mapping (line 2)`},
		{"node_name: n1\njoin: 127.0.0.1:7946\n", `join: must be a list of strings, such as ["a", "b"], not "127.0.0.1:7946" (line 2)`},
		{"node_name: n1\njoin: [a:1, [b]]\n", `join[1]: must be a string, not a list (line 2)`},
		{"node_name: n1\njoin: [a:1, ~]\n", `join[1]: must be a string, not null (line 2)`},
		{"node_name: n1\ntags: [zone=a]\n", `tags: must be a mapping of strings, such as {zone: a}, not a list (line 2)`},
		{"node_name: n1\ntags: {zone: [a]}\n", `tags.zone: must be a string, not a list (line 2)`},
		{"node_name: n1\ntags: {[a]: b}\n", `tags: a key must be a string, not a list (line 2)`},
		{"node_name: n1\ntls: yes\n", `tls: must be a mapping of keys (cert_file, key_file, ca_file), not "yes" (line 2)`},
		{"node_name: n1\nensembles: {name: a}\n", `ensembles: must be a list, not a mapping (line 2)`},
		{"node_name: n1\nensembles: [a]\n", `ensembles[0]: must be a mapping of keys (name, type, replicas, constraints), not "a" (line 2)`},
		{"node_name: n1\nensembles: [~]\n", `ensembles[0]: must be a mapping of keys (name, type, replicas, constraints), not null (line 2)`},
		{"node_name: n1\nworkers: [{name: w, command: /bin/true}]\n", `workers[0].command: must be a list of strings, such as ["a", "b"], not "/bin/true" (line 2)`},
		{w + "    env: [A=b]\n", `workers[0].env: must be a mapping of strings, such as {zone: a}, not a list (line 5)`},
		{w + "    restart: {delay: fast}\n", `workers[0].restart.delay: "fast" is not a duration (write e.g. "1s", "250ms", "1m30s") (line 5)`},
		{w + "    restart: {delay: 5}\n", `workers[0].restart.delay: "5" is not a duration: give a unit, as in "5s" or "5ms" (line 5)`},
		{w + "    restart: {interval: [1s]}\n", `workers[0].restart.interval: must be a duration such as "1s", not a list (line 5)`},
		{w + "    restart: 3\n", `workers[0].restart: must be a mapping of keys (attempts, interval, delay, max_delay), not "3" (line 5)`},
		{w + "    replicas: three\n", `workers[0].replicas: "three" is not an integer (line 5)`},
		{w + "    check: {exec: true}\n", `workers[0].check.exec: must be a list of strings, such as ["a", "b"], not "true" (line 5)`},
	} {
		wantProblem(t, tc.text, tc.want)
	}
}

// Scalars stand for what they say where a string or integer is expected.
func TestScalarForms(t *testing.T) {
	cfg := mustLoad(t, `
node_name: "n1"
serf_port: "8000"
rpc_port: 0x1F41
http_token: 0123
workers: [{name: w, command: [sleep, 10, 1.50, true], check: {exec: [x]}, stop_grace: 0}]
`, nil, nil)
	if cfg.SerfPort != 8000 || cfg.RPCPort != 8001 || cfg.HTTPToken != "0123" {
		t.Errorf("scalars: %+v", cfg)
	}
	if got := strings.Join(cfg.Workers[0].Command, " "); got != "sleep 10 1.50 true" {
		t.Errorf("command = %q, want the words as written", got)
	}
	if cfg.Workers[0].StopGrace != 0 {
		t.Errorf("stop_grace = %v, want 0", cfg.Workers[0].StopGrace)
	}
}

func TestYAMLDocument(t *testing.T) {
	for _, text := range []string{"", "\n", "# only a comment\n", "~\n", "---\n"} {
		cfg, _, err := loadText(t, text, []string{"HASUP_NODE_NAME=n1"}, nil)
		if err != nil || cfg.SerfPort != 7946 {
			t.Errorf("%q: %v, %+v; want the defaults", text, err, cfg)
		}
	}
	for _, tc := range []struct{ text, want string }{
		{"node_name: n1\n  bad: indent\n", "invalid YAML: line 2: mapping values are not allowed in this context"},
		{"node_name: [\n", "invalid YAML: line 1: did not find expected node content"},
		{"- node_name: n1\n", "the file must be a mapping of keys (node_name: n1, ...), not a list (line 1)"},
		{"hello\n", `the file must be a mapping of keys (node_name: n1, ...), not "hello" (line 1)`},
		{"node_name: n1\n---\nnode_name: n2\n", "invalid YAML: line 2: a second document: the file must hold one"},
		{"node_name: n1\nserf_port: 1\nserf_port: 2\n", "serf_port: is set twice (first on line 2) (line 3)"},
		{"node_name: n1\ntags: {a: x, a: y}\n", "tags.a: is set twice (line 2)"},
		{"node_name: n1\nworkers: [{name: w, command: [x], env: {\"a b\": x}}]\n", `workers[0].env["a b"]: "a b" is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*) (line 2)`},
	} {
		wantProblem(t, tc.text, tc.want)
	}
}

// Anchors and aliases work, and an alias bomb is refused in bounded time.
func TestAliases(t *testing.T) {
	cfg := mustLoad(t, `
node_name: n1
join: &peers [a:1, b:2]
workers:
  - &w {name: w1, command: [x], restart: &r {attempts: 2}}
  - {name: w2, command: [y], restart: *r}
ensembles: [{name: e, constraints: *peers}]
`, nil, nil)
	if len(cfg.Join) != 2 || cfg.Workers[1].Restart.Attempts != 2 || len(cfg.Ensembles[0].Constraints) != 2 {
		t.Errorf("aliases not followed: %+v", cfg)
	}
	bomb := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	for i, prev := range "abcdef" {
		name := string(rune('b' + i))
		bomb += name + ": &" + name + " [" + strings.Repeat("*"+string(prev)+", ", 9) + "*" + string(prev) + "]\n"
	}
	bomb += "node_name: n1\njoin: *g\n"
	_, _, err := loadText(t, bomb, nil, nil)
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("alias bomb: %v", err)
	}
}

// Every problem of a file is reported at once.
func TestAllProblemsReported(t *testing.T) {
	_, path, err := loadText(t, `
node_name: n1
worker: []
serf_port: abc
workers:
  - name: w
    command: [x]
    restart: {delay: fast, max_delay: slow}
`, nil, nil)
	probs := problemsOf(t, err)
	var keys []string
	for _, p := range probs {
		keys = append(keys, p.Key)
		if p.Source != path || p.Line == 0 {
			t.Errorf("%v: source %q line %d, want %q and a line", p, p.Source, p.Line, path)
		}
	}
	if got := strings.Join(keys, " "); got != "worker serf_port workers[0].restart.delay workers[0].restart.max_delay" {
		t.Errorf("problems at %s", got)
	}

	// Validation problems are all reported too, each with its line.
	_, _, err = loadText(t, `
node_name: N1
bootstrap_expect: 0
workers:
  - {name: w, command: [], replicas: 2}
`, nil, nil)
	probs = problemsOf(t, err)
	want := map[string]int{"node_name": 2, "bootstrap_expect": 3, "workers[0].command": 5, "workers[0].replicas": 5}
	if len(probs) != len(want) {
		t.Errorf("want %d problems, got:\n%v", len(want), err)
	}
	for _, p := range probs {
		if line, ok := want[p.Key]; !ok || p.Line != line {
			t.Errorf("%v: unexpected key or line (want line %d)", p, line)
		}
	}
}
