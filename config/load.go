package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// Options says where Load reads from. The zero value loads the defaults.
type Options struct {
	// File is the path of the YAML file; "" reads none (defaults,
	// environment and flags only). Errors name the file by this path.
	File string
	// Env is the environment in os.Environ form ("K=V"). Only HASUP_<KEY>
	// for a settable key is read (see Settings); others, such as the
	// HASUP_NODE and HASUP_FENCE that workers receive, are ignored, as are
	// empty values. Tests pass their own; the agent passes os.Environ().
	Env []string
	// Flags maps the flags the user set to their text as typed, by key or
	// flag name ("http_addr" or "http-addr"; see Setting.Flag). Only flags
	// the user set belong here: a flag's default would override the file.
	// Flags that are not config keys (-config itself) do not belong here.
	Flags map[string]string
}

// Load returns the configuration that opts describe: the defaults, overridden
// by the file, then the environment, then flags (flags win). A list or map
// set by a later source replaces the earlier one whole; nothing is merged
// element by element.
//
// Every problem is reported at once: an error from Load is either a file
// read error (the file is missing or unreadable) or wraps ErrInvalid and
// joins one *Error per problem, each naming its key path and its source.
// Load checks everything Validate does, and that the TLS files exist.
//
// Load keeps no state: each call builds a fresh viper instance, so that a
// reload (SIGHUP) reads exactly what the file says now.
func Load(opts Options) (Config, error) {
	var layer fileLayer
	if opts.File != "" {
		data, err := readFile(opts.File)
		if err != nil {
			return Config{}, err
		}
		var probs problems
		if layer, probs = parseFile(data); len(probs) > 0 {
			return Config{}, probs.withSource(opts.File).err()
		}
	}
	over, probs := overrides(opts.Env, opts.Flags)
	if len(probs) > 0 {
		return Config{}, probs.err()
	}
	cfg, err := merge(layer, over)
	if err != nil {
		return Config{}, &Error{Source: opts.File, Msg: err.Error()}
	}
	probs = append(cfg.problems(), checkFiles(cfg.TLS)...)
	loc := locator{file: opts.File, lines: layer.lines, over: over}
	if len(probs) > 0 {
		for _, p := range probs {
			loc.locate(p)
		}
		return Config{}, probs.err()
	}
	return cfg, nil
}

// Check loads the file at path alone (no environment, no flags) and returns
// every problem with it, for hasup config check. The node name defaults to
// the host name as it would for the agent on this host.
func Check(path string) error {
	if path == "" {
		return &Error{Msg: "no config file given"}
	}
	_, err := Load(Options{File: path})
	return err
}

// merge layers the defaults, the file and the overrides, and decodes them.
//
// viper holds the layers: the file's tree as its config layer and the
// overrides, environment first, as its override layer (Set), so that its
// precedence rule gives flags > environment > file. The defaults are the
// struct viper decodes into: a key no layer sets keeps its default, and
// each list element starts from DefaultWorker or DefaultEnsemble, so a
// worker that leaves out restart.delay gets 1s. Environment variables are
// given to viper by Set, not read by AutomaticEnv, which would read the
// process environment (Options.Env is the caller's) and, without
// ExperimentalBindStruct, miss keys the file leaves out.
//
// Case-sensitive maps (tags, workers[i].env) bypass viper, which would
// lower-case their keys and split them at dots; the last source that sets
// one wins, as for every other key.
func merge(layer fileLayer, over []override) (Config, error) {
	cfg := Default()
	cfg.DataDir, cfg.AdvertiseAddr = "", "" // derived below, after the layers
	if list, ok := layer.tree["ensembles"].([]any); ok {
		cfg.Ensembles = make([]Ensemble, len(list))
		for i := range cfg.Ensembles {
			cfg.Ensembles[i] = DefaultEnsemble()
		}
	}
	if list, ok := layer.tree["workers"].([]any); ok {
		cfg.Workers = make([]Worker, len(list))
		for i := range cfg.Workers {
			cfg.Workers[i] = DefaultWorker()
		}
	}

	v := viper.New()
	if layer.tree != nil {
		if err := v.MergeConfigMap(layer.tree); err != nil {
			return Config{}, fmt.Errorf("layer the file: %w", err)
		}
	}
	maps := map[string]map[string]string{}
	for k, m := range layer.maps {
		maps[k] = m
	}
	for _, o := range over {
		if m, ok := o.value.(map[string]string); ok {
			maps[o.key] = m
			continue
		}
		v.Set(o.key, o.value)
	}
	err := v.UnmarshalExact(&cfg, func(c *mapstructure.DecoderConfig) {
		c.TagName = "yaml"
		c.WeaklyTypedInput = false
	})
	if err != nil {
		return Config{}, fmt.Errorf("decode: %w", err)
	}

	cfg.Tags = maps["tags"]
	for i := range cfg.Workers {
		cfg.Workers[i].Env = maps[fmt.Sprintf("workers[%d].env", i)]
	}
	if cfg.NodeName == "" {
		cfg.NodeName = hostNodeName()
	}
	if cfg.DataDir == "" {
		cfg.DataDir = defaultDataRoot + cfg.NodeName
	}
	if cfg.AdvertiseAddr == "" {
		cfg.AdvertiseAddr = cfg.BindAddr
	}
	return cfg, nil
}

// checkFiles reports TLS files that cannot be found: better at start-up or
// in hasup config check than at the first connection.
func checkFiles(t TLS) problems {
	var probs problems
	for _, f := range tlsFiles(t) {
		if f.path == "" {
			continue
		}
		switch st, err := os.Stat(f.path); {
		case errors.Is(err, fs.ErrNotExist):
			probs.add(f.key, "file %q does not exist", f.path)
		case err != nil:
			probs.add(f.key, "%v", err)
		case st.IsDir():
			probs.add(f.key, "%q is a directory, not a file", f.path)
		}
	}
	return probs
}

// withSource sets the source of every problem and returns them.
func (p problems) withSource(source string) problems {
	for _, e := range p {
		e.Source = source
	}
	return p
}

// locator says where the value at a key path came from.
type locator struct {
	file  string
	lines map[string]int
	over  []override
}

// locate sets p's Source to the environment variable or flag that set its
// key, or else to the file, with the line of the key or its nearest parent.
func (l locator) locate(p *Error) {
	for i := len(l.over) - 1; i >= 0; i-- { // the last override wins
		if o := l.over[i]; under(p.Key, o.key) {
			p.Source = o.source
			return
		}
	}
	p.Source = l.file
	for key := p.Key; key != ""; key = parentPath(key) {
		if line, ok := l.lines[key]; ok {
			p.Line = line
			return
		}
	}
}

// under reports whether path is key or lies beneath it.
func under(path, key string) bool {
	return path == key || strings.HasPrefix(path, key+".") || strings.HasPrefix(path, key+"[")
}

// parentPath returns the path one step up: "workers[1].env" for
// "workers[1].env.A", "workers" for "workers[1]", "" at the top.
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}
