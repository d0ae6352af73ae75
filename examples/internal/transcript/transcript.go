// Package transcript checks an example's printed output in its test: line
// by line, against regular expressions, since node names, revisions and
// counts of races vary from run to run while the shape does not.
package transcript

import (
	"regexp"
	"strings"
	"testing"
)

// Match fails t unless out has exactly one line per pattern, each matching
// its pattern in full (the patterns are anchored here). It returns each
// line's submatches, the whole line first.
func Match(t testing.TB, out string, patterns []string) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(patterns) {
		t.Fatalf("%d lines, want %d; output:\n%s", len(lines), len(patterns), out)
	}
	groups := make([][]string, len(lines))
	for i, p := range patterns {
		m := regexp.MustCompile(`^(?:` + p + `)$`).FindStringSubmatch(lines[i])
		if m == nil {
			t.Fatalf("line %d is %q, want it to match %s; output:\n%s", i+1, lines[i], p, out)
		}
		groups[i] = m
	}
	return groups
}
