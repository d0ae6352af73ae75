package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Limits on what the file reader accepts, so that a hostile or broken file
// (an alias bomb, a log file named by mistake) costs bounded memory and time.
const (
	// maxFileBytes bounds the file: a config with a thousand workers is a
	// few hundred KiB.
	maxFileBytes = 4 << 20
	// maxNodes bounds the YAML nodes visited, counting each expansion of an
	// alias anew.
	maxNodes = 100_000
)

// fileLayer is what the file says, checked against the schema of Config.
type fileLayer struct {
	// tree holds every key the file sets except case-sensitive maps, in the
	// Go types of Config's fields (time.Duration, int, string, []string),
	// as nested map[string]any and []any. It is what viper layers.
	tree map[string]any
	// maps holds the case-sensitive string maps ("tags", "workers[0].env")
	// by key path. viper lower-cases map keys and splits them at dots, so
	// these never pass through it.
	maps map[string]map[string]string
	// lines holds the line of every key the file sets, by key path.
	lines map[string]int
}

// readFile reads the file at path, refusing one larger than maxFileBytes.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	return data, nil
}

// parseFile checks data, the text of a config file, against the schema of
// Config and returns what it sets, or every problem found. Keys are
// case-sensitive, as in YAML; a null value (key: ~ or key:) is the same as
// leaving the key out.
func parseFile(data []byte) (fileLayer, problems) {
	layer := fileLayer{maps: map[string]map[string]string{}, lines: map[string]int{}}
	var probs problems
	if len(data) > maxFileBytes {
		probs.add("", "file is larger than %d MiB", maxFileBytes>>20)
		return layer, probs
	}
	root, err := parseYAML(data)
	if err != nil {
		probs.add("", "invalid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		return layer, probs
	}
	if root == nil || isNull(root) {
		layer.tree = map[string]any{}
		return layer, nil
	}
	if root.Kind != yaml.MappingNode {
		probs.add("", "the file must be a mapping of keys (node_name: n1, ...), not %s", describe(root)).Line = root.Line
		return layer, probs
	}
	w := walker{layer: &layer}
	tree, _ := w.value(root, reflect.TypeFor[Config](), "")
	layer.tree, _ = tree.(map[string]any)
	return layer, w.probs
}

// parseYAML returns the root node of the one document in data, or nil for
// an empty document. The parser is third-party code run on untrusted input
// at every reload: a panic in it becomes an error rather than a crash of the
// agent.
func parseYAML(data []byte) (root *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("the YAML parser failed: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, err
	default:
		return nil, fmt.Errorf("line %d: a second document: the file must hold one", next.Line)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

// walker converts YAML nodes to the Go types of Config's fields, recording
// problems rather than stopping at the first.
type walker struct {
	layer  *fileLayer
	probs  problems
	nodes  int  // nodes visited, bounded by maxNodes
	tooBig bool // maxNodes was reached and reported
}

var durationType = reflect.TypeFor[time.Duration]()

// value converts n to type t, the type of the field at key path. It reports
// false when n sets nothing: it is null, it is wrong (a problem is recorded),
// or it is a case-sensitive map (kept in layer.maps instead).
func (w *walker) value(n *yaml.Node, t reflect.Type, path string) (any, bool) {
	n = w.visit(n)
	if n == nil || isNull(n) {
		return nil, false
	}
	switch {
	case t == durationType:
		return w.duration(n, path)
	case t.Kind() == reflect.String:
		return w.str(n, path)
	case t.Kind() == reflect.Int:
		return w.integer(n, path)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return w.stringList(n, path)
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.String:
		w.stringMap(n, path)
		return nil, false
	case t.Kind() == reflect.Struct:
		return w.mapping(n, t, path)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		return w.list(n, t.Elem(), path)
	}
	panic(fmt.Sprintf("config: no YAML decoding for %s at %s", t, path))
}

// visit counts n and resolves an alias to its anchored node; it returns nil
// once the node budget is spent.
func (w *walker) visit(n *yaml.Node) *yaml.Node {
	if n = resolve(n); n == nil {
		return nil
	}
	w.nodes++
	if w.nodes > maxNodes {
		if !w.tooBig {
			w.tooBig = true
			w.probs.add("", "the file has more than %d YAML nodes (counting alias expansions)", maxNodes)
		}
		return nil
	}
	return n
}

// fail records a problem with the value n at path.
func (w *walker) fail(n *yaml.Node, path, format string, args ...any) {
	w.probs.add(path, format, args...).Line = n.Line
}

func (w *walker) duration(n *yaml.Node, path string) (any, bool) {
	if n.Kind != yaml.ScalarNode {
		w.fail(n, path, "must be a duration such as \"1s\", not %s", describe(n))
		return nil, false
	}
	d, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		if _, nerr := strconv.ParseFloat(strings.TrimSpace(n.Value), 64); nerr == nil {
			w.fail(n, path, "%q is not a duration: give a unit, as in \"%ss\" or \"%sms\"", n.Value, n.Value, n.Value)
		} else {
			w.fail(n, path, "%q is not a duration (write e.g. \"1s\", \"250ms\", \"1m30s\")", n.Value)
		}
		return nil, false
	}
	return d, true
}

// str accepts any scalar as its text as written, so that command: [sleep,
// 10] and env: {PORT: 8080} mean what they say.
func (w *walker) str(n *yaml.Node, path string) (any, bool) {
	if n.Kind != yaml.ScalarNode {
		w.fail(n, path, "must be a string, not %s", describe(n))
		return nil, false
	}
	return n.Value, true
}

func (w *walker) integer(n *yaml.Node, path string) (any, bool) {
	if n.Kind != yaml.ScalarNode {
		w.fail(n, path, "must be an integer, not %s", describe(n))
		return nil, false
	}
	var i int
	var err error
	switch n.ShortTag() {
	case "!!int":
		err = n.Decode(&i)
	case "!!str":
		i, err = strconv.Atoi(strings.TrimSpace(n.Value))
	default:
		err = errors.New("not an integer")
	}
	if err != nil {
		w.fail(n, path, "%s is not an integer", describe(n))
		return nil, false
	}
	return i, true
}

func (w *walker) stringList(n *yaml.Node, path string) (any, bool) {
	if n.Kind != yaml.SequenceNode {
		w.fail(n, path, "must be a list of strings, such as [\"a\", \"b\"], not %s", describe(n))
		return nil, false
	}
	out := make([]string, 0, len(n.Content))
	ok := true
	for i, e := range n.Content {
		at := fmt.Sprintf("%s[%d]", path, i)
		if e = w.visit(e); e == nil {
			return nil, false
		}
		if e.Kind != yaml.ScalarNode || isNull(e) {
			w.fail(e, at, "must be a string, not %s", describe(e))
			ok = false
			continue
		}
		out = append(out, e.Value)
	}
	return out, ok
}

// stringMap records a case-sensitive map of strings in layer.maps. A null
// value is the empty string.
func (w *walker) stringMap(n *yaml.Node, path string) {
	if n.Kind != yaml.MappingNode {
		w.fail(n, path, "must be a mapping of strings, such as {zone: a}, not %s", describe(n))
		return
	}
	m := make(map[string]string, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := w.visit(n.Content[i]), w.visit(n.Content[i+1])
		if k == nil || v == nil {
			return
		}
		if k.Kind != yaml.ScalarNode || isNull(k) || k.ShortTag() == "!!merge" {
			w.fail(k, path, "a key must be a string, not %s", describe(k))
			continue
		}
		at := mapKeyPath(path, k.Value)
		if _, dup := m[k.Value]; dup {
			w.fail(k, at, "is set twice")
			continue
		}
		w.layer.lines[at] = k.Line
		switch {
		case isNull(v):
			m[k.Value] = ""
		case v.Kind == yaml.ScalarNode:
			m[k.Value] = v.Value
		default:
			w.fail(v, at, "must be a string, not %s", describe(v))
		}
	}
	w.layer.maps[path] = m
}

// mapping converts a mapping node to map[string]any by the yaml tags of
// struct type t, reporting unknown and repeated keys.
func (w *walker) mapping(n *yaml.Node, t reflect.Type, path string) (any, bool) {
	if n.Kind != yaml.MappingNode {
		w.fail(n, path, "must be a mapping of keys (%s), not %s", strings.Join(keysOf(t), ", "), describe(n))
		return nil, false
	}
	out := make(map[string]any, len(n.Content)/2)
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := w.visit(n.Content[i])
		if k == nil {
			return nil, false
		}
		if k.Kind != yaml.ScalarNode || isNull(k) {
			w.fail(k, path, "a key must be a string, not %s", describe(k))
			continue
		}
		at := joinPath(path, k.Value)
		f, ok := fieldByKey(t, k.Value)
		if !ok {
			e := w.probs.add(at, "unknown key")
			e.unknownKey, e.Line, e.Hint = true, k.Line, suggest(k.Value, keysOf(t))
			if k.ShortTag() == "!!merge" {
				e.Hint = "YAML merge keys are not supported"
			}
			continue
		}
		if first, dup := seen[k.Value]; dup {
			w.probs.add(at, "is set twice (first on line %d)", first).Line = k.Line
			continue
		}
		seen[k.Value] = k.Line
		w.layer.lines[at] = k.Line
		if v, ok := w.value(n.Content[i+1], f.Type, at); ok {
			out[k.Value] = v
		}
	}
	return out, true
}

// list converts a sequence of mappings to []any of map[string]any.
func (w *walker) list(n *yaml.Node, elem reflect.Type, path string) (any, bool) {
	if n.Kind != yaml.SequenceNode {
		w.fail(n, path, "must be a list, not %s", describe(n))
		return nil, false
	}
	out := make([]any, 0, len(n.Content))
	for i, e := range n.Content {
		at := fmt.Sprintf("%s[%d]", path, i)
		w.layer.lines[at] = e.Line
		if r := resolve(e); r != nil && isNull(r) {
			w.fail(r, at, "must be a mapping of keys (%s), not null", strings.Join(keysOf(elem), ", "))
		}
		v, ok := w.value(e, elem, at)
		if !ok {
			v = map[string]any{} // keeps the indexes of later elements
		}
		out = append(out, v)
	}
	return out, true
}

// resolve follows an alias to its anchored node; nil if there is none.
func resolve(n *yaml.Node) *yaml.Node {
	for hops := 0; n != nil && n.Kind == yaml.AliasNode && hops < 8; hops++ {
		n = n.Alias
	}
	if n == nil || n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

// isNull reports whether n is a null scalar.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what n is, for an error message.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return strconv.Quote(v)
	}
	return "an alias"
}

// fieldByKey returns the field of struct type t whose yaml tag is key.
func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if yamlKey(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// keysOf returns the yaml keys of struct type t, in field order.
func keysOf(t reflect.Type) []string {
	keys := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		if k := yamlKey(t.Field(i)); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// yamlKey returns the key of field f: the name in its yaml tag.
func yamlKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	return name
}

// joinPath returns the path of key under path.
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// mapKeyPath returns the path of a user-chosen map key: path.key when the
// key is a plain word, path["key"] when it holds anything that would make
// the path ambiguous (a dot, a bracket, a space).
func mapKeyPath(path, key string) string {
	for _, r := range key {
		if !(r == '_' || r == '-' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			return fmt.Sprintf("%s[%q]", path, key)
		}
	}
	if key == "" {
		return path + `[""]`
	}
	return path + "." + key
}

// suggest returns a "did you mean" hint for an unknown key: the known key
// that differs by case only, or by at most two edits.
func suggest(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if strings.EqualFold(k, key) {
			return fmt.Sprintf("did you mean %q? keys are case-sensitive", k)
		}
		if d := editDistance(key, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("did you mean %q?", best)
}

// editDistance returns the Levenshtein distance between a and b, or a large
// number for long strings, which never deserve a suggestion.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
