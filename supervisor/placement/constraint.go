package placement

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadConstraint: a constraint is malformed. ParseConstraint returns it
// wrapped with the text it refused and why; Place and Replace return it
// wrapped in ErrInvalidRequest for a Constraint built by hand.
var ErrBadConstraint = errors.New("placement: malformed constraint")

// Op is how a Constraint tests a tag. The zero value is no operator and
// makes a Constraint invalid.
type Op uint8

// Operators, with the text ParseConstraint reads for each.
const (
	// Equal ("zone=a"): the tag is present and has the value.
	Equal Op = iota + 1
	// NotEqual ("zone!=a"): the tag is absent or has another value; it is
	// the complement of Equal, as Kubernetes' NotIn is.
	NotEqual
	// Exists ("ssd"): the tag is present, whatever its value.
	Exists
	// NotExists ("!ssd"): the tag is absent.
	NotExists
)

// String returns the operator's name.
func (o Op) String() string {
	switch o {
	case Equal:
		return "equal"
	case NotEqual:
		return "not-equal"
	case Exists:
		return "exists"
	case NotExists:
		return "not-exists"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Constraint is one condition a node's tags must meet to host a replica.
// Keys and values are non-empty and use only ASCII letters, digits and
// . _ - / : so that the text form is unambiguous; Value is empty for Exists
// and NotExists.
type Constraint struct {
	Key   string
	Op    Op
	Value string
}

// ParseConstraint reads the text form of a constraint: "key=value",
// "key!=value", "key" or "!key". It accepts exactly the strings String
// returns: no spaces, no quoting, no trimming.
func ParseConstraint(s string) (Constraint, error) {
	var c Constraint
	switch {
	case s == "":
		return Constraint{}, fmt.Errorf("%w: empty text", ErrBadConstraint)
	case strings.Contains(s, "!="):
		k, v, _ := strings.Cut(s, "!=")
		c = Constraint{Key: k, Op: NotEqual, Value: v}
	case strings.Contains(s, "="):
		k, v, _ := strings.Cut(s, "=")
		c = Constraint{Key: k, Op: Equal, Value: v}
	case strings.HasPrefix(s, "!"):
		c = Constraint{Key: s[1:], Op: NotExists}
	default:
		c = Constraint{Key: s, Op: Exists}
	}
	if err := c.problem(); err != nil {
		return Constraint{}, fmt.Errorf("%w: %q: %v", ErrBadConstraint, s, err)
	}
	return c, nil
}

// String returns the text form ParseConstraint reads back: "zone=a",
// "zone!=a", "ssd" or "!ssd".
func (c Constraint) String() string {
	switch c.Op {
	case Equal:
		return c.Key + "=" + c.Value
	case NotEqual:
		return c.Key + "!=" + c.Value
	case Exists:
		return c.Key
	case NotExists:
		return "!" + c.Key
	}
	return fmt.Sprintf("%s<%v>%s", c.Key, c.Op, c.Value)
}

// Match reports whether tags meet the constraint. A nil map has no tags. An
// invalid constraint matches nothing.
func (c Constraint) Match(tags map[string]string) bool {
	v, ok := tags[c.Key]
	switch c.Op {
	case Equal:
		return ok && v == c.Value
	case NotEqual:
		return !ok || v != c.Value
	case Exists:
		return ok
	case NotExists:
		return !ok
	}
	return false
}

// Validate reports, wrapped in ErrBadConstraint, why c is not a constraint
// ParseConstraint could have returned.
func (c Constraint) Validate() error {
	if err := c.problem(); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadConstraint, c, err)
	}
	return nil
}

// problem says what is wrong with c, or returns nil.
func (c Constraint) problem() error {
	var err error
	switch c.Op {
	case Equal, NotEqual:
		if err = checkWord("key", c.Key); err == nil {
			err = checkWord("value", c.Value)
		}
	case Exists, NotExists:
		if err = checkWord("key", c.Key); err == nil && c.Value != "" {
			err = fmt.Errorf("operator %v takes no value, got %q", c.Op, c.Value)
		}
	default:
		err = fmt.Errorf("unknown operator %v", c.Op)
	}
	return err
}

// checkWord reports why s cannot be a key or value (what names which).
func checkWord(what, s string) error {
	if s == "" {
		return fmt.Errorf("empty %s", what)
	}
	for _, r := range s {
		if !wordRune(r) {
			return fmt.Errorf("%s %q holds %q; use letters, digits and . _ - / :", what, s, r)
		}
	}
	return nil
}

func wordRune(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return true
	}
	return strings.ContainsRune("._-/:", r)
}

// formatConstraints returns cs as "[zone=a, ssd]".
func formatConstraints(cs []Constraint) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = c.String()
	}
	return "[" + strings.Join(s, ", ") + "]"
}
