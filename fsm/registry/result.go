package registry

import (
	"encoding/binary"
	"fmt"

	"github.com/hasup/hasup/fsm/internal/codec"
)

// The wire format of answers, each after a version byte:
//
//	result    ver=1 code:u8 version:u64 detail
//	state     ver=1 state
//	ensemble  ver=1 ensemble
//	node      ver=1 node
//
// A result's code names the operation's error (0 for success, then
// not_found, exists, stale, busy, in_use and invalid as 1 to 6) and detail
// says what happened in words; state, ensemble and node are encoded as in
// state.go. Query answers hold no error: a failed query returns its error
// directly.
const answerVersion = 1

// Code names an operation's error in a Result: "" for success, otherwise
// one of the codes below, each naming a sentinel error. The names are
// stable: the HTTP API and the CLI show them.
type Code string

// The operation error codes.
const (
	// CodeNotFound names ErrNotFound.
	CodeNotFound Code = "not_found"
	// CodeExists names ErrExists.
	CodeExists Code = "exists"
	// CodeStale names ErrStale.
	CodeStale Code = "stale"
	// CodeBusy names ErrBusy.
	CodeBusy Code = "busy"
	// CodeInUse names ErrInUse.
	CodeInUse Code = "in_use"
	// CodeInvalid names ErrInvalid.
	CodeInvalid Code = "invalid"
)

// Result is the outcome of a command.
type Result struct {
	// Err is the operation's error code, "" on success.
	Err Code
	// Msg says what went wrong in words, "" on success.
	Msg string
	// Version is the registry's Version after the command: the command's
	// op if it changed anything, the Version as it stood otherwise.
	Version uint64
}

// Error returns nil on success, and otherwise the sentinel error Err names
// (ErrNotFound, ErrExists, ErrStale, ErrBusy, ErrInUse or ErrInvalid),
// wrapped with Msg, for errors.Is. A code the package does not know gives
// an error that wraps none of them.
func (r Result) Error() error {
	if r.Err == "" {
		return nil
	}
	sentinel := r.Err.sentinel()
	switch {
	case sentinel == nil:
		return fmt.Errorf("registry: unknown error code %q: %s", string(r.Err), r.Msg)
	case r.Msg == "":
		return sentinel
	}
	return wrapf(sentinel, "%s", r.Msg)
}

// DecodeResult decodes the result of a command. For a result a Registry
// produced, it returns the Result and, like the other built-in FSMs'
// decoders, the operation's error (r.Error()), so that a caller may test
// the one error with errors.Is. Bytes that no Registry produced yield
// ErrBadResult.
func DecodeResult(b []byte) (Result, error) {
	d := codec.NewDecoder(b)
	version, c := d.U8("version"), wireCode(d.U8("code"))
	res := Result{Version: d.U64("registry version")}
	detail := d.Field("detail")
	d.Finish()
	codec.CheckStatus(d, version, answerVersion, c, len(detail))
	if d.Err() != nil {
		return Result{}, wrapf(ErrBadResult, "%v", d.Err())
	}
	res.Err, res.Msg = c.code(), string(detail)
	return res, res.Error()
}

// DecodeState decodes the answer to a StateQuery, checking every invariant
// a Registry keeps. Bytes that no Registry produced yield ErrBadResult.
func DecodeState(b []byte) (State, error) {
	return decodeAnswer(b, readState)
}

// DecodeEnsemble decodes the answer to an EnsembleQuery. Bytes that no
// Registry produced yield ErrBadResult.
func DecodeEnsemble(b []byte) (Ensemble, error) {
	return decodeAnswer(b, readEnsemble)
}

// DecodeNode decodes the answer to a NodeQuery. Bytes that no Registry
// produced yield ErrBadResult.
func DecodeNode(b []byte) (Node, error) {
	return decodeAnswer(b, readNode)
}

// decodeAnswer decodes a query answer: a version byte and what read reads,
// and nothing after it.
func decodeAnswer[T any](b []byte, read func(*codec.Decoder) T) (T, error) {
	d := codec.NewDecoder(b)
	if v := d.U8("version"); d.Err() == nil && v != answerVersion {
		d.Failf("unsupported version %d, want %d", v, answerVersion)
	}
	v := read(d)
	d.Finish()
	if d.Err() != nil {
		var zero T
		return zero, wrapf(ErrBadResult, "%v", d.Err())
	}
	return v, nil
}

// resultBytes is the size of a result without its detail.
const resultBytes = 1 + 1 + 8 + 4

// appendResult appends the encoding of res, whose Err must be a Code of
// this package.
func appendResult(b []byte, res Result) []byte {
	b = append(b, answerVersion, byte(wireCodeOf(res.Err)))
	b = binary.BigEndian.AppendUint64(b, res.Version)
	return codec.AppendField(b, res.Msg)
}

// opError is an operation's error inside the registry: a code and a
// message, which Apply puts into the result.
type opError struct {
	code Code
	msg  string
}

// fail returns the error with code c and a message formatted as by
// fmt.Sprintf.
func fail(c Code, format string, args ...any) *opError {
	return &opError{code: c, msg: fmt.Sprintf(format, args...)}
}

// wrapf returns sentinel wrapped with a message formatted as by
// fmt.Sprintf: "registry: not found: ensemble \"orders\"".
func wrapf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
}

// sentinel returns the exported error that c names, nil for "" or a code
// the package does not know.
func (c Code) sentinel() error {
	switch c {
	case CodeNotFound:
		return ErrNotFound
	case CodeExists:
		return ErrExists
	case CodeStale:
		return ErrStale
	case CodeBusy:
		return ErrBusy
	case CodeInUse:
		return ErrInUse
	case CodeInvalid:
		return ErrInvalid
	}
	return nil
}

// wireCode is a Code as a result carries it: one byte, 0 for success.
type wireCode byte

// wireCodeOf returns c's byte. A Code the package does not know is a bug
// of the registry's own, which must not write a result that every decoder
// refuses, so it panics.
func wireCodeOf(c Code) wireCode {
	switch c {
	case "":
		return 0
	case CodeNotFound:
		return 1
	case CodeExists:
		return 2
	case CodeStale:
		return 3
	case CodeBusy:
		return 4
	case CodeInUse:
		return 5
	case CodeInvalid:
		return 6
	}
	panic(fmt.Sprintf("registry: result with unknown code %q", string(c)))
}

// code returns the Code that w names, "" for 0 or an unknown byte.
func (w wireCode) code() Code {
	switch w {
	case 1:
		return CodeNotFound
	case 2:
		return CodeExists
	case 3:
		return CodeStale
	case 4:
		return CodeBusy
	case 5:
		return CodeInUse
	case 6:
		return CodeInvalid
	}
	return ""
}

// Sentinel returns the exported error w names, nil for success or an
// unknown byte; it lets codec.CheckStatus judge a result's code.
func (w wireCode) Sentinel() error { return w.code().sentinel() }
