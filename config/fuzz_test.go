package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad writes arbitrary bytes as the config file: Load must never panic,
// and must either return a config that passes Validate or an error that
// wraps ErrInvalid, every problem of which names the file.
func FuzzLoad(f *testing.F) {
	example, err := os.ReadFile("testdata/hasup.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	for _, seed := range []string{
		"",
		"node_name: n1\n",
		"node_name: [\n",
		"- a\n- b\n",
		"node_name: n1\n---\nnode_name: n2\n",
		"node_name: n1\nworker: []\nserf_port: abc\n",
		"node_name: n1\nworkers: [{name: w, command: [x], restart: {delay: fast}, env: {A: b, hasup_x: y}}]\n",
		"node_name: n1\ntags: {Zone: a, hasup.x: b, \"a b\": c}\nensembles: [{name: e, replicas: 2, constraints: [\"!!x\"]}]\n",
		"a: &a [x, x]\nb: &b [*a, *a]\nnode_name: n1\njoin: *b\n",
		"node_name: n1\nensembles: [{<<: {replicas: 5}, name: a}]\n",
		"node_name: n1\ntls: {cert_file: /nonexistent}\nbind_addr: 0.0.0.0\n",
		"node_name: n1\nserf_port: 99999999999999999999\nrpc_port: 0x10\n",
		"? [a]\n: b\n",
		"node_name: !!binary aGVsbG8=\n",
	} {
		f.Add([]byte(seed))
	}
	// One file per fuzzing process, which runs inputs one at a time: a
	// directory per input would cost more than Load itself.
	path := filepath.Join(f.TempDir(), "hasup.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(Options{File: path, Env: []string{"HASUP_NODE_NAME=n1"}})
		if err == nil {
			if verr := cfg.Validate(); verr != nil {
				t.Fatalf("Load accepted a config that Validate refuses: %v", verr)
			}
			return
		}
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("error does not wrap ErrInvalid: %v", err)
		}
		for _, p := range problemsOf(t, err) {
			if p.Source != path && p.Source != "HASUP_NODE_NAME" {
				t.Fatalf("problem %q does not name the file", p)
			}
		}
	})
}
