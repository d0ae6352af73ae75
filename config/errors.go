package config

import (
	"errors"
	"fmt"
	"strings"
)

// Error is one problem with a configuration. Load, Check and Validate return
// a single *Error, or several joined with errors.Join (one per line when
// printed); each unwraps to ErrInvalid. Use errors.As to reach the fields.
type Error struct {
	// Source is where the value came from: the file's path as given to Load,
	// an environment variable ("HASUP_SERF_PORT"), a flag ("flag -serf-port"),
	// or "" for a value from the defaults or given to Validate.
	Source string
	// Key is the key path, e.g. "workers[1].restart.delay"; "" when the
	// problem is with the file as a whole (bad YAML).
	Key string
	// Line is the line in Source of the key, or 0 when unknown.
	Line int
	// Msg says what is wrong with the value.
	Msg string
	// Hint, when non-empty, suggests a fix ("did you mean ...").
	Hint string

	unknownKey bool // Msg is about Key itself, not its value
}

// Error formats the problem as "SOURCE: KEY: MSG (line N; HINT)", or for an
// unknown key as `SOURCE: unknown key "KEY" (line N; HINT)`.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		b.WriteString(": ")
	}
	switch {
	case e.unknownKey:
		fmt.Fprintf(&b, "unknown key %q", e.Key)
	case e.Key != "":
		b.WriteString(e.Key)
		b.WriteString(": ")
		b.WriteString(e.Msg)
	default:
		b.WriteString(e.Msg)
	}
	var notes []string
	if e.Line > 0 {
		notes = append(notes, fmt.Sprintf("line %d", e.Line))
	}
	if e.Hint != "" {
		notes = append(notes, e.Hint)
	}
	if len(notes) > 0 {
		b.WriteString(" (")
		b.WriteString(strings.Join(notes, "; "))
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns ErrInvalid.
func (e *Error) Unwrap() error { return ErrInvalid }

// problems collects the errors of one pass, so that a user sees every
// problem of a file at once rather than one per attempt.
type problems []*Error

// add records a problem with the value at key.
func (p *problems) add(key, format string, args ...any) *Error {
	e := &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
	*p = append(*p, e)
	return e
}

// err returns nil, the one error, or all of them joined.
func (p problems) err() error {
	switch len(p) {
	case 0:
		return nil
	case 1:
		return p[0]
	}
	errs := make([]error, len(p))
	for i, e := range p {
		errs[i] = e
	}
	return errors.Join(errs...)
}
