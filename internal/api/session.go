package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/hasup/hasup/ensemble"
)

// SessionProposer is an optional capability of an EnsembleHandle, found by
// type assertion: it proposes a command as request number request of a
// client's session, at most once however often it is retried (see
// supervisor.Ensemble.ProposeSession, which *supervisor.Ensemble has).
type SessionProposer interface {
	ProposeSession(ctx context.Context, client, request uint64, cmd []byte) ([]byte, error)
}

var errNoSessions = &Error{Status: http.StatusNotImplemented, Code: CodeInternal,
	Message: "this agent's ensembles do not take X-Hasup-Client sessions"}

// propose runs a write: as is, or, with X-Hasup-Client and
// X-Hasup-Request, as that request of that client's session, so that a
// retry after a lost answer or a 503 executes at most once.
//
// A client picks a random non-zero client number and numbers its writes
// from 1, reusing a number only to retry. Request 1 of an unknown session
// opens it first; any later request of a session the ensemble does not
// know (evicted: the table is bounded) gets 409 session_expired, and the
// client must start a new session under a new number. The one gap: if a
// session is evicted between request 1's first try and its retry, the
// retry reopens the session and executes again.
func (s *server) propose(ctx context.Context, r *http.Request, h EnsembleHandle, cmd []byte) ([]byte, error) {
	cs, rs := r.Header.Get("X-Hasup-Client"), r.Header.Get("X-Hasup-Request")
	if cs == "" && rs == "" {
		return h.Propose(ctx, cmd)
	}
	client, err1 := strconv.ParseUint(cs, 10, 64)
	request, err2 := strconv.ParseUint(rs, 10, 64)
	if err1 != nil || err2 != nil || client == 0 || request == 0 {
		return nil, badRequest("X-Hasup-Client and X-Hasup-Request go together, each a number from 1 to 2^64-1")
	}
	sp, ok := h.(SessionProposer)
	if !ok {
		return nil, errNoSessions
	}
	res, err := sp.ProposeSession(ctx, client, request, cmd)
	if request == 1 && errors.Is(err, ensemble.ErrSessionExpired) {
		if _, err := sp.ProposeSession(ctx, client, 0, nil); err != nil {
			return nil, err
		}
		res, err = sp.ProposeSession(ctx, client, request, cmd)
	}
	return res, err
}
