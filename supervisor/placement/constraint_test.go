package placement

import (
	"errors"
	"strings"
	"testing"
)

func TestParseConstraint(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Constraint
		wantErr string // substring of the error; "" means success
	}{
		{in: "zone=a", want: Constraint{"zone", Equal, "a"}},
		{in: "zone!=b", want: Constraint{"zone", NotEqual, "b"}},
		{in: "ssd", want: Constraint{"ssd", Exists, ""}},
		{in: "!ssd", want: Constraint{"ssd", NotExists, ""}},
		{in: "topology.kubernetes.io/zone=eu-west-1a", want: Constraint{"topology.kubernetes.io/zone", Equal, "eu-west-1a"}},
		{in: "rack=r1:u42", want: Constraint{"rack", Equal, "r1:u42"}},
		{in: "Disk_Type!=HDD", want: Constraint{"Disk_Type", NotEqual, "HDD"}},

		{in: "", wantErr: "empty text"},
		{in: "=a", wantErr: `"=a": empty key`},
		{in: "!=a", wantErr: `"!=a": empty key`},
		{in: "zone=", wantErr: `"zone=": empty value`},
		{in: "zone!=", wantErr: `"zone!=": empty value`},
		{in: "a=b=c", wantErr: `value "b=c" holds '='`},
		{in: "zone==a", wantErr: `value "=a" holds '='`},
		{in: "a!=b!=c", wantErr: `value "b!=c" holds '!'`},
		{in: "!", wantErr: `"!": empty key`},
		{in: "!!ssd", wantErr: `key "!ssd" holds '!'`},
		{in: "!zone=a", wantErr: `key "!zone" holds '!'`},
		{in: "ss!d", wantErr: `key "ss!d" holds '!'`},
		{in: " zone=a", wantErr: `key " zone" holds ' '`},
		{in: "zone =a", wantErr: `key "zone " holds ' '`},
		{in: "zone= a", wantErr: `value " a" holds ' '`},
		{in: "zone=a ", wantErr: `value "a " holds ' '`},
		{in: "zone=a,b", wantErr: `value "a,b" holds ','`},
		{in: "zone=\"a\"", wantErr: `holds '"'`},
		{in: "zöne=a", wantErr: `key "zöne" holds 'ö'`},
		{in: " ", wantErr: `key " " holds ' '`},
	} {
		got, err := ParseConstraint(tc.in)
		if tc.wantErr == "" {
			if err != nil || got != tc.want {
				t.Errorf("ParseConstraint(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
			if s := got.String(); s != tc.in {
				t.Errorf("ParseConstraint(%q).String() = %q", tc.in, s)
			}
			continue
		}
		if !errors.Is(err, ErrBadConstraint) || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ParseConstraint(%q) error = %v; want ErrBadConstraint containing %q", tc.in, err, tc.wantErr)
		}
		if got != (Constraint{}) {
			t.Errorf("ParseConstraint(%q) returned %+v with its error", tc.in, got)
		}
	}
}

func TestConstraintMatch(t *testing.T) {
	tags := map[string]string{"zone": "a", "ssd": "", "tier": "gold"}
	for _, tc := range []struct {
		c         string
		onTags    bool // matches tags
		onNothing bool // matches a node without tags
	}{
		{"zone=a", true, false},
		{"zone=b", false, false},
		{"zone!=a", false, true},
		{"zone!=b", true, true}, // NotEqual is the complement of Equal: an unlabelled node matches
		{"ssd", true, false},    // a tag with an empty value exists
		{"gpu", false, false},
		{"!ssd", false, true},
		{"!gpu", true, true},
		{"ssd!=x", true, true},
	} {
		c, err := ParseConstraint(tc.c)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Match(tags); got != tc.onTags {
			t.Errorf("%s.Match(%v) = %v", tc.c, tags, got)
		}
		if got := c.Match(nil); got != tc.onNothing {
			t.Errorf("%s.Match(nil) = %v", tc.c, got)
		}
	}
	if (Constraint{Key: "zone", Value: "a"}).Match(tags) {
		t.Error("a constraint without an operator matched")
	}
}

func TestConstraintValidate(t *testing.T) {
	for _, c := range []Constraint{
		{Key: "zone", Value: "a"},               // no operator
		{Key: "zone", Op: Op(9), Value: "a"},    // unknown operator
		{Key: "ssd", Op: Exists, Value: "x"},    // Exists takes no value
		{Key: "ssd", Op: NotExists, Value: "x"}, // NotExists neither
		{Key: "", Op: Equal, Value: "a"},
		{Key: "zone", Op: NotEqual},
	} {
		if err := c.Validate(); !errors.Is(err, ErrBadConstraint) {
			t.Errorf("%+v.Validate() = %v, want ErrBadConstraint", c, err)
		}
	}
}

// FuzzParseConstraint checks that ParseConstraint accepts only the strings
// String produces, and that the two round-trip.
func FuzzParseConstraint(f *testing.F) {
	for _, s := range []string{"zone=a", "zone!=a", "ssd", "!ssd", "=a", "a=b=c", "!", "a!=", " x", "!a!=b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConstraint(s)
		if err != nil {
			return
		}
		if c.Validate() != nil {
			t.Fatalf("ParseConstraint(%q) = %+v, which does not validate", s, c)
		}
		if c.String() != s {
			t.Fatalf("ParseConstraint(%q).String() = %q", s, c.String())
		}
	})
}
