package worker

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// inheritedEnv are the only variables a command takes from the agent's
// environment; everything else comes from the configuration, the
// supervisor and the runner, so that what a worker sees does not depend
// on how the agent happened to be started.
var inheritedEnv = []string{"PATH", "HOME", "LANG", "TZ"}

// defaultPath is the PATH a command gets when the agent has none
// (systemd's default).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// agentEnv returns the inherited variables that lookup finds, and PATH
// always.
func agentEnv(lookup func(string) (string, bool)) map[string]string {
	base := make(map[string]string, len(inheritedEnv))
	for _, k := range inheritedEnv {
		if v, ok := lookup(k); ok {
			base[k] = v
		}
	}
	if base["PATH"] == "" {
		base["PATH"] = defaultPath
	}
	return base
}

// env returns the command's environment for d, sorted.
func (r *Runner) env(d Desired) []string {
	hasup := map[string]string{
		"HASUP_WORKER":     r.cfg.Name,
		"HASUP_NODE":       r.cfg.Node,
		"HASUP_ROLE":       d.Role,
		"HASUP_FENCE":      strconv.FormatUint(d.Fence, 10),
		"HASUP_ROLE_FILE":  r.roleFile(),
		"HASUP_FENCE_FILE": r.fenceFile(),
	}
	return buildEnv(r.base, r.cfg.Env, d.Env, hasup)
}

// buildEnv merges layers, later ones winning, into sorted KEY=VALUE
// strings.
func buildEnv(layers ...map[string]string) []string {
	merged := map[string]string{}
	for _, l := range layers {
		for k, v := range l {
			merged[k] = v
		}
	}
	out := make([]string, 0, len(merged))
	for k, v := range merged {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

func (r *Runner) roleFile() string  { return filepath.Join(r.dir, r.cfg.Name+".role") }
func (r *Runner) fenceFile() string { return filepath.Join(r.dir, r.cfg.Name+".fence") }

// lookPath finds file in the PATH of env (not the agent's), as execvp
// would. A name with a slash is used as it is (relative to the command's
// directory).
func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &fs.PathError{Op: "lookup", Path: file, Err: errNotInPath}
}

var errNotInPath = errors.New("executable file not found in the command's PATH")

// writeFileAtomic replaces path with data: a reader sees the old content
// or the new one, never a mix.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
