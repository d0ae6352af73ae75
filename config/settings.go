package config

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Setting is one key that the environment and flags can set: every key of
// Config except the lists of ensembles and workers.
type Setting struct {
	// Key is the key path, as in the file: "http_addr", "tls.cert_file".
	Key string
	// Env is the environment variable: "HASUP_" and the key upper-cased,
	// with dots as underscores: "HASUP_HTTP_ADDR", "HASUP_TLS_CERT_FILE".
	Env string
	// Flag is the suggested flag name, the key with underscores and dots as
	// dashes: "http-addr", "tls-cert-file". Options.Flags accepts it, the key
	// itself, or any mix of the two spellings.
	Flag string
	// Usage is one line for -help.
	Usage string
	// Kind says how a value is written: "string", "int", "duration", "list"
	// (comma-separated) or "map" (comma-separated key=value pairs).
	Kind string
}

// usages gives each settable key's one-line help. A test checks that every
// settable key has one.
var usages = map[string]string{
	"node_name":        "this node's name in the cluster (default: the host name)",
	"data_dir":         "directory for this node's state and worker logs (default ./data/<node_name>)",
	"bind_addr":        "IP address Serf and the consensus transport listen on",
	"advertise_addr":   "IP address other nodes reach this one at (default: bind_addr)",
	"serf_port":        "Serf gossip port, TCP and UDP (0: any free port, for tests)",
	"rpc_port":         "consensus transport TCP port (0: any free port, for tests)",
	"http_addr":        "host:port of the HTTP API, /metrics and /ui/",
	"http_token":       "token required by mutating API calls (default: none)",
	"join":             "comma-separated host:port Serf addresses of nodes to join",
	"bootstrap_expect": "nodes to see before forming the cluster ensemble, 1..7",
	"profile":          "failure-detection timings: lan | local",
	"encrypt":          "Serf gossip key, base64 of 16, 24 or 32 bytes (hasup keygen)",
	"tags":             "this node's tags, comma-separated key=value pairs",
	"log_level":        "log level: debug | info | warn | error",
	"tls.cert_file":    "PEM certificate for mutual TLS (with tls key and CA files)",
	"tls.key_file":     "PEM private key for mutual TLS",
	"tls.ca_file":      "PEM CA bundle that peers' certificates must chain to",
}

// setting is a Setting with the Go type of its field.
type setting struct {
	Setting
	typ reflect.Type
}

// Settings returns the keys that the environment and flags can set, in the
// order of Config's fields, for cmd/hasup to define its flags from.
func Settings() []Setting {
	all := settings()
	out := make([]Setting, len(all))
	for i, s := range all {
		out[i] = s.Setting
	}
	return out
}

// settings derives the settable keys from Config's fields: scalars, string
// lists and string maps, at the top level or inside a struct (tls); not
// lists of structs (ensembles, workers), which have no flat spelling.
func settings() []setting {
	var out []setting
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			key := yamlKey(f)
			if key == "" {
				continue
			}
			key = joinPath(prefix, key)
			kind := kindOf(f.Type)
			switch {
			case kind != "":
				out = append(out, setting{Setting: Setting{
					Key:   key,
					Env:   "HASUP_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_")),
					Flag:  strings.NewReplacer("_", "-", ".", "-").Replace(key),
					Usage: usages[key],
					Kind:  kind,
				}, typ: f.Type})
			case f.Type.Kind() == reflect.Struct:
				walk(f.Type, key)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return out
}

// kindOf returns the Setting.Kind of a field type, or "" if a flat string
// cannot express it.
func kindOf(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Int:
		return "int"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return "list"
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.String:
		return "map"
	}
	return ""
}

// override is one value set by the environment or a flag.
type override struct {
	key    string
	value  any // in the Go type of the field; map[string]string for maps
	source string
}

// overrides returns the values the environment and then the flags set, in
// that order, so that applying them in order lets flags win. Environment
// variables that name no key (HASUP_NODE, HASUP_FENCE, which workers
// receive, or anything else) are ignored, as are empty ones; a flag that
// names no key is a problem, as cmd/hasup defines only known ones.
func overrides(env []string, flags map[string]string) ([]override, problems) {
	all := settings()
	var out []override
	var probs problems
	byEnv := make(map[string]setting, len(all))
	for _, s := range all {
		byEnv[s.Env] = s
	}
	fromEnv := map[string]string{} // the last of duplicates wins
	var names []string
	for _, kv := range env {
		name, val, ok := strings.Cut(kv, "=")
		if _, known := byEnv[name]; !ok || !known || val == "" {
			continue
		}
		if _, dup := fromEnv[name]; !dup {
			names = append(names, name)
		}
		fromEnv[name] = val
	}
	for _, name := range names {
		s := byEnv[name]
		out, probs = parseOverride(out, probs, s, fromEnv[name], name)
	}

	byFlag := make(map[string]setting, len(all))
	for _, s := range all {
		byFlag[flagKey(s.Key)] = s
	}
	flagNames := make([]string, 0, len(flags))
	for name := range flags {
		flagNames = append(flagNames, name)
	}
	slices.Sort(flagNames)
	for _, name := range flagNames {
		source := "flag -" + strings.TrimLeft(name, "-")
		s, ok := byFlag[flagKey(name)]
		if !ok {
			probs = append(probs, &Error{Source: source, Msg: "names no config key"})
			continue
		}
		out, probs = parseOverride(out, probs, s, flags[name], source)
	}
	return out, probs
}

// flagKey normalises a flag or key spelling: "tls-cert-file",
// "tls.cert_file" and "-tls_cert-file" are all "tls_cert_file".
func flagKey(name string) string {
	return strings.NewReplacer("-", "_", ".", "_").Replace(strings.TrimLeft(name, "-"))
}

// parseOverride appends the value text sets for s, or the problem with it.
func parseOverride(out []override, probs problems, s setting, text, source string) ([]override, problems) {
	v, msg := parseText(s.typ, text)
	if msg != "" {
		probs = append(probs, &Error{Source: source, Key: s.Key, Msg: msg})
		return out, probs
	}
	return append(out, override{key: s.Key, value: v, source: source}), probs
}

// parseText converts the text of an environment variable or flag to type
// t, or says why it cannot.
func parseText(t reflect.Type, text string) (any, string) {
	switch kindOf(t) {
	case "duration":
		d, err := time.ParseDuration(strings.TrimSpace(text))
		if err != nil {
			return nil, fmt.Sprintf("%q is not a duration (write e.g. \"1s\", \"250ms\")", text)
		}
		return d, ""
	case "string":
		return text, ""
	case "int":
		i, err := strconv.Atoi(strings.TrimSpace(text))
		if err != nil {
			return nil, fmt.Sprintf("%q is not an integer", text)
		}
		return i, ""
	case "list":
		return splitList(text), ""
	case "map":
		m := map[string]string{}
		for _, pair := range splitList(text) {
			k, v, ok := strings.Cut(pair, "=")
			if !ok {
				return nil, fmt.Sprintf("%q is not a key=value pair (write e.g. \"zone=a,rack=r1\")", pair)
			}
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		return m, ""
	}
	panic(fmt.Sprintf("config: no text form for %s", t))
}

// splitList splits a comma-separated list, trimming spaces and dropping
// empty items, so that "a, b," is [a b].
func splitList(text string) []string {
	out := []string{}
	for item := range strings.SplitSeq(text, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
