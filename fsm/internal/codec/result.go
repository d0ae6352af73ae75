package codec

import "fmt"

// Code is an FSM's operation error code, as a result carries it: 0 for
// success, and every other value naming one of the FSM's sentinel errors.
type Code interface {
	~uint8
	// Sentinel returns the exported error the code names, nil for 0 and
	// for codes the FSM does not know.
	Sentinel() error
}

// OpError is an operation's error as a result carries it: a code that names
// a sentinel, and a detail for people. Apply cannot fail, so an FSM encodes
// it into its result and its result decoder returns it; errors.Is matches
// the sentinel.
type OpError[C Code] struct {
	Code   C      // never 0
	Detail string // what happened, in words; may be empty
}

// NewOpError returns the error with code c and a detail formatted as by
// fmt.Sprintf.
func NewOpError[C Code](c C, format string, args ...any) *OpError[C] {
	return &OpError[C]{Code: c, Detail: fmt.Sprintf(format, args...)}
}

// Error returns the sentinel's message followed by the detail.
func (e *OpError[C]) Error() string {
	if e.Detail == "" {
		return e.Code.Sentinel().Error()
	}
	return e.Code.Sentinel().Error() + ": " + e.Detail
}

// Unwrap returns the sentinel, for errors.Is.
func (e *OpError[C]) Unwrap() error { return e.Code.Sentinel() }

// Status returns the code and detail that a result carries for err: 0 and
// "" for success (a nil err).
func Status[C Code](err *OpError[C]) (C, string) {
	if err == nil {
		return 0, ""
	}
	return err.Code, err.Detail
}

// CheckStatus records a problem if the status fields of a structurally
// sound result say what no FSM says: a version other than want, a code that
// names no sentinel, or a success that carries an error detail.
func CheckStatus[C Code](d *Decoder, version, want byte, c C, detailBytes int) {
	switch {
	case d.err != nil:
	case version != want:
		d.Failf("unsupported version %d, want %d", version, want)
	case c != 0 && c.Sentinel() == nil:
		d.Failf("unknown error code %d", c)
	case c == 0 && detailBytes > 0:
		d.Failf("success carries an error detail")
	}
}

// ResultError returns the error a result with code c and detail carries:
// nil for success, an *OpError otherwise. The detail is copied.
func ResultError[C Code](c C, detail []byte) error {
	if c == 0 {
		return nil
	}
	return &OpError[C]{Code: c, Detail: string(detail)}
}
