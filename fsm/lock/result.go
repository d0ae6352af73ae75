package lock

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hasup/hasup/fsm/internal/codec"
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

// Sentinel returns the exported error that c names, nil for codeOK or an
// unknown code.
func (c code) Sentinel() error {
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
type opError = codec.OpError[code]

// appendResult appends the encoding of res with the error err (nil for
// success).
func appendResult(b []byte, res Result, err *opError) []byte {
	c, detail := codec.Status(err)
	var expiry int64
	if res.Owner != "" {
		expiry = res.Expiry.UnixNano()
	}
	b = append(b, wireVersion, byte(c))
	b = binary.BigEndian.AppendUint64(b, res.Fence)
	b = binary.BigEndian.AppendUint64(b, uint64(expiry))
	b = codec.AppendField(b, res.Owner)
	return codec.AppendField(b, detail)
}

// DecodeResult decodes the result of a command or HolderQuery. It returns
// the operation's error, if any, wrapping ErrBadCommand, ErrHeld,
// ErrNotHolder or ErrFencesExhausted; the Result is still filled in then.
// Bytes that no Table produced yield ErrBadResult.
func DecodeResult(b []byte) (Result, error) {
	d := codec.NewDecoder(b)
	version, c := d.U8("version"), code(d.U8("code"))
	fence, expiry := d.U64("fence"), int64(d.U64("expiry"))
	owner, detail := d.Field("owner"), d.Field("detail")
	d.Finish()
	codec.CheckStatus(d, version, wireVersion, c, len(detail))
	checkResult(d, fence, expiry, len(owner))
	if d.Err() != nil {
		return Result{}, fmt.Errorf("%w: %v", ErrBadResult, d.Err())
	}
	var res Result
	if len(owner) > 0 {
		res = Result{Owner: string(owner), Fence: fence, Expiry: time.Unix(0, expiry).UTC()}
	}
	return res, codec.ResultError(c, detail)
}

// checkResult records a problem if a result whose structure and status are
// sound says something about its lock that no Table says.
func checkResult(d *codec.Decoder, fence uint64, expiry int64, ownerBytes int) {
	switch {
	case d.Err() != nil:
	case ownerBytes == 0 && (fence != 0 || expiry != 0):
		d.Failf("lock without an owner has fence %d and expiry %d", fence, expiry)
	case ownerBytes > MaxOwnerBytes:
		d.Failf("owner of %d bytes, limit %d", ownerBytes, MaxOwnerBytes)
	case ownerBytes > 0 && fence == 0:
		d.Failf("lease without a fence")
	}
}
