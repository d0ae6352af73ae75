package lock

import (
	"encoding/binary"
	"fmt"
	"time"
)

// The wire format of a result:
//
//	ver=1 code:u8 fence:u64 expiryUnixNanos:i64 owner detail
//
// code names the operation's error (0 for none) and detail says what
// happened in words. A lock without a record has an empty owner and zero
// fence and expiry.

// Result is the outcome of a command, or the answer to a HolderQuery: the
// lock's record as it stands after the command (or, after a failed one, as
// it stands anyway, so ErrHeld comes with the holder).
type Result struct {
	// Owner is the lease's owner, "" if the lock has no record (never
	// granted, or released). A record may have expired: see HeldAt.
	Owner string
	// Fence is the lease's fencing token, 0 if Owner is "".
	Fence uint64
	// Expiry is when the lease runs out, the zero Time if Owner is "".
	Expiry time.Time
}

// HeldAt reports whether the lease is in force at t: it has an owner and t is
// before its expiry.
func (r Result) HeldAt(t time.Time) bool {
	return r.Owner != "" && t.Before(r.Expiry)
}

// code names an operation's error in a result.
type code byte

// The operation error codes.
const (
	codeOK code = iota
	codeBadCommand
	codeHeld
	codeNotHolder
	codeFencesExhausted
)

// sentinel returns the exported error that c names, nil for codeOK or an
// unknown code.
func (c code) sentinel() error {
	switch c {
	case codeBadCommand:
		return ErrBadCommand
	case codeHeld:
		return ErrHeld
	case codeNotHolder:
		return ErrNotHolder
	case codeFencesExhausted:
		return ErrFencesExhausted
	}
	return nil
}

// opError is an operation's error as a result carries it: a code that names
// a sentinel, and a detail for people.
type opError struct {
	code   code
	detail string
}

// newOpError returns the error with code c and a formatted detail.
func newOpError(c code, format string, args ...any) *opError {
	return &opError{code: c, detail: fmt.Sprintf(format, args...)}
}

// Error returns the sentinel's message followed by the detail.
func (e *opError) Error() string {
	if e.detail == "" {
		return e.code.sentinel().Error()
	}
	return e.code.sentinel().Error() + ": " + e.detail
}

// Unwrap returns the sentinel, for errors.Is.
func (e *opError) Unwrap() error { return e.code.sentinel() }

// appendResult appends the encoding of res with the error err (nil for
// success).
func appendResult(b []byte, res Result, err *opError) []byte {
	c, detail := codeOK, ""
	if err != nil {
		c, detail = err.code, err.detail
	}
	var expiry int64
	if res.Owner != "" {
		expiry = res.Expiry.UnixNano()
	}
	b = append(b, wireVersion, byte(c))
	b = binary.BigEndian.AppendUint64(b, res.Fence)
	b = binary.BigEndian.AppendUint64(b, uint64(expiry))
	b = appendField(b, res.Owner)
	return appendField(b, detail)
}

// DecodeResult decodes the result of a command or HolderQuery. It returns
// the operation's error, if any, wrapping ErrBadCommand, ErrHeld,
// ErrNotHolder or ErrFencesExhausted; the Result is still filled in then.
// Bytes that no Table produced yield ErrBadResult.
func DecodeResult(b []byte) (Result, error) {
	d := decoder{b: b}
	version, c := d.u8("version"), code(d.u8("code"))
	fence, expiry := d.u64("fence"), int64(d.u64("expiry"))
	owner, detail := d.field("owner"), d.field("detail")
	d.finish()
	checkResult(&d, version, c, fence, expiry, len(owner), len(detail))
	if d.err != nil {
		return Result{}, fmt.Errorf("%w: %v", ErrBadResult, d.err)
	}
	var res Result
	if len(owner) > 0 {
		res = Result{Owner: string(owner), Fence: fence, Expiry: time.Unix(0, expiry).UTC()}
	}
	if c != codeOK {
		return res, &opError{code: c, detail: string(detail)}
	}
	return res, nil
}

// checkResult records a problem if a structurally sound result says
// something no Table says.
func checkResult(d *decoder, version byte, c code, fence uint64, expiry int64, ownerBytes, detailBytes int) {
	switch {
	case d.err != nil:
	case version != wireVersion:
		d.failf("unsupported version %d, want %d", version, wireVersion)
	case c != codeOK && c.sentinel() == nil:
		d.failf("unknown error code %d", c)
	case c == codeOK && detailBytes > 0:
		d.failf("success carries an error detail")
	case ownerBytes == 0 && (fence != 0 || expiry != 0):
		d.failf("lock without an owner has fence %d and expiry %d", fence, expiry)
	case ownerBytes > MaxOwnerBytes:
		d.failf("owner of %d bytes, limit %d", ownerBytes, MaxOwnerBytes)
	case ownerBytes > 0 && fence == 0:
		d.failf("lease without a fence")
	}
}
