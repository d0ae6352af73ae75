package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/fsm/kv"
	"github.com/hasup/hasup/fsm/lock"
	"github.com/hasup/hasup/fsm/registry"
	"github.com/hasup/hasup/supervisor"
	"github.com/hasup/hasup/supervisor/host"
	"github.com/hasup/hasup/supervisor/placement"
)

// The error codes of the contract: the "code" of an error answer.
const (
	CodeBadRequest       = "bad_request"
	CodeBadKey           = "bad_key"
	CodeUnauthorized     = "unauthorized"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeConflict         = "conflict"
	CodeTooLarge         = "too_large"
	CodeUnavailable      = "unavailable"
	CodeTimeout          = "timeout"
	CodeInternal         = "internal"
	// CodeSessionExpired: the X-Hasup-Client session is unknown to the
	// ensemble (evicted, or never opened): start a new one, under a new
	// client number. CodeStaleRequest: a request number below the
	// session's last. CodeReplyNotKept: a retry of a request whose reply was
	// too large to keep (it did execute).
	CodeSessionExpired = "session_expired"
	CodeStaleRequest   = "stale_request"
	CodeReplyNotKept   = "reply_not_kept"
)

// Errors a caller tests an *Error against with errors.Is, to map answers to
// exit codes. Each matches by HTTP status, whatever the code.
var (
	// ErrNotFound: 404, an unknown path, ensemble or key.
	ErrNotFound = errors.New("api: not found")
	// ErrConflict: 409, a CAS mismatch, a lock held by another, an
	// ensemble that exists.
	ErrConflict = errors.New("api: conflict")
	// ErrUnauthorized: 401, a mutating call without the right token.
	ErrUnauthorized = errors.New("api: unauthorized")
	// ErrUnavailable: 503, no quorum, no registry or a timeout; a write may
	// or may not have happened.
	ErrUnavailable = errors.New("api: unavailable")
)

// Error is an error answer: the server builds one for every failure, and
// the Client returns one for every answer that is not a success.
type Error struct {
	// Status is the HTTP status.
	Status int
	// Code is the contract's code (CodeNotFound, ...), "" if the answer
	// was not the API's (a proxy's error page, say).
	Code string
	// Message says what went wrong, for people.
	Message string
}

// Error returns "api: STATUS CODE: MESSAGE".
func (e *Error) Error() string {
	return fmt.Sprintf("api: %d %s: %s", e.Status, e.Code, e.Message)
}

// Is reports whether target is the sentinel for e's status.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrConflict:
		return e.Status == http.StatusConflict
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrUnavailable:
		return e.Status == http.StatusServiceUnavailable
	}
	return false
}

// errorBody is an error answer on the wire.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// badRequest returns a 400 bad_request error.
func badRequest(format string, args ...any) error {
	return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: fmt.Sprintf(format, args...)}
}

// badKey returns a 400 bad_key error.
func badKey(format string, args ...any) error {
	return &Error{Status: http.StatusBadRequest, Code: CodeBadKey, Message: fmt.Sprintf(format, args...)}
}

// classes maps the Go API's errors to answers, first match wins.
var classes = []struct {
	status int
	code   string
	errs   []error
}{
	{http.StatusServiceUnavailable, CodeTimeout, []error{context.DeadlineExceeded}},
	{http.StatusNotFound, CodeNotFound, []error{supervisor.ErrNotFound, registry.ErrNotFound, kv.ErrNotFound}},
	{http.StatusConflict, CodeSessionExpired, []error{ensemble.ErrSessionExpired}},
	{http.StatusConflict, CodeStaleRequest, []error{ensemble.ErrStaleRequest}},
	{http.StatusConflict, CodeReplyNotKept, []error{ensemble.ErrReplyNotKept}},
	{http.StatusConflict, CodeConflict, []error{supervisor.ErrExists, registry.ErrExists, kv.ErrCASConflict,
		lock.ErrHeld, lock.ErrNotHolder, placement.ErrNotEnoughNodes}},
	{http.StatusBadRequest, CodeBadKey, []error{kv.ErrKeyTooLarge}},
	{http.StatusBadRequest, CodeBadRequest, []error{supervisor.ErrInvalid, supervisor.ErrUnknownType, registry.ErrInvalid,
		placement.ErrInvalidRequest, placement.ErrBadConstraint, kv.ErrBadCommand, kv.ErrBadQuery, lock.ErrBadCommand,
		lock.ErrBadQuery}},
	{http.StatusRequestEntityTooLarge, CodeTooLarge, []error{kv.ErrValueTooLarge, ensemble.ErrTooLarge}},
	{http.StatusServiceUnavailable, CodeUnavailable, []error{supervisor.ErrNoQuorum, supervisor.ErrNoRegistry,
		ensemble.ErrNotPrimary, ensemble.ErrViewChanged, ensemble.ErrBusy, ensemble.ErrNoLease, ensemble.ErrTooStale,
		ensemble.ErrRecovering, ensemble.ErrReconfiguring, registry.ErrBusy,
		host.ErrStopped, host.ErrNotFound, context.Canceled}},
}

// classify returns the status and code for an error of the Go API; 500
// internal for one it does not know.
func classify(err error) (int, string) {
	for _, c := range classes {
		for _, e := range c.errs {
			if errors.Is(err, e) {
				return c.status, c.code
			}
		}
	}
	return http.StatusInternalServerError, CodeInternal
}

// writeError writes an error answer.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Error: msg, Code: code})
}

// writeJSON writes v as a JSON answer with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("api: encode %T: %v", v, err)) // every answer type encodes
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
