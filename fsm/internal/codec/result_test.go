package codec_test

import (
	"errors"
	"testing"

	"github.com/hasup/hasup/fsm/internal/codec"
)

// testCode is an FSM's operation error code, for the tests.
type testCode byte

const (
	codeOK testCode = iota
	codeConflict
	codeMissing
)

var (
	errConflict = errors.New("test: conflict")
	errMissing  = errors.New("test: missing")
)

func (c testCode) Sentinel() error {
	switch c {
	case codeConflict:
		return errConflict
	case codeMissing:
		return errMissing
	}
	return nil
}

func TestOpError(t *testing.T) {
	tests := []struct {
		err  *codec.OpError[testCode]
		is   error
		want string
	}{
		{codec.NewOpError(codeConflict, "key %q at %d", "k", 3), errConflict, `test: conflict: key "k" at 3`},
		{codec.NewOpError(codeMissing, ""), errMissing, "test: missing"},
		{&codec.OpError[testCode]{Code: codeMissing, Detail: "gone"}, errMissing, "test: missing: gone"},
	}
	for _, tt := range tests {
		if tt.err.Error() != tt.want || !errors.Is(tt.err, tt.is) {
			t.Errorf("%#v: %q, Is %v: %v; want %q", tt.err, tt.err, tt.is, errors.Is(tt.err, tt.is), tt.want)
		}
	}
}

func TestStatusAndResultErrorRoundTrip(t *testing.T) {
	for _, err := range []*codec.OpError[testCode]{nil, codec.NewOpError(codeConflict, "detail"), codec.NewOpError(codeMissing, "")} {
		c, detail := codec.Status(err)
		got := codec.ResultError(c, []byte(detail))
		if err == nil {
			if c != codeOK || detail != "" || got != nil {
				t.Errorf("Status(nil) = %d, %q and ResultError = %v; want 0, \"\" and a nil error", c, detail, got)
			}
			continue
		}
		if oe, ok := errors.AsType[*codec.OpError[testCode]](got); !ok || *oe != *err {
			t.Errorf("ResultError(Status(%#v)) = %#v", err, got)
		}
	}
}

func TestCheckStatus(t *testing.T) {
	tests := []struct {
		name        string
		version     byte
		code        testCode
		detailBytes int
		want        string
	}{
		{"success", 1, codeOK, 0, ""},
		{"error with a detail", 1, codeConflict, 5, ""},
		{"error without a detail", 1, codeMissing, 0, ""},
		{"another version", 2, codeOK, 0, "unsupported version 2, want 1"},
		{"unknown code", 1, 9, 5, "unknown error code 9"},
		{"success with a detail", 1, codeOK, 1, "success carries an error detail"},
		{"version checked first", 0, 9, 0, "unsupported version 0, want 1"},
	}
	for _, tt := range tests {
		d := codec.NewDecoder(nil)
		codec.CheckStatus(d, tt.version, 1, tt.code, tt.detailBytes)
		if got := errString(d.Err()); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	d := codec.NewDecoder(nil)
	d.Failf("earlier")
	if codec.CheckStatus(d, 2, 1, codeOK, 0); d.Err().Error() != "earlier" {
		t.Errorf("CheckStatus replaced an earlier problem with %v", d.Err())
	}
}
