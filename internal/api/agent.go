package api

import (
	"context"
	"net/http"
)

// AgentControl is an optional capability of a Backend, found by type
// assertion: it mounts the agent's own endpoints, used by `hasup join`,
// `hasup leave` and `hasup force-leave` (they are mutating calls, so the
// token applies):
//
//   - POST /v1/agent/join {"addrs": ["host:port", ...]} → {"joined": N}
//   - POST /v1/agent/leave → 204: the agent leaves the cluster gracefully
//     (workers stopped, then Serf) and exits
//   - POST /v1/agent/force-leave {"node": "NAME"} → 204: a failed node is
//     marked left at once, so the others stop waiting for it
type AgentControl interface {
	Join(addrs []string) (int, error)
	LeaveCluster() error
	ForceLeave(node string) error
}

// JoinRequest is the body of POST /v1/agent/join.
type JoinRequest struct {
	Addrs []string `json:"addrs"`
}

// ForceLeaveRequest is the body of POST /v1/agent/force-leave.
type ForceLeaveRequest struct {
	Node string `json:"node"`
}

func (s *server) mountAgent(ac AgentControl) {
	s.route("POST /v1/agent/join", func(_ context.Context, w http.ResponseWriter, r *http.Request) error {
		var req JoinRequest
		if err := s.decodeBody(w, r, &req); err != nil {
			return err
		}
		if len(req.Addrs) == 0 {
			return badRequest("join needs at least one address")
		}
		n, err := ac.Join(req.Addrs)
		if err != nil && n == 0 {
			return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: err.Error()}
		}
		writeJSON(w, http.StatusOK, map[string]int{"joined": n})
		return nil
	})
	s.route("POST /v1/agent/leave", func(_ context.Context, w http.ResponseWriter, _ *http.Request) error {
		if err := ac.LeaveCluster(); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		if s.opts.OnLeave != nil {
			go s.opts.OnLeave() // after the answer: the agent exits
		}
		return nil
	})
	s.route("POST /v1/agent/force-leave", func(_ context.Context, w http.ResponseWriter, r *http.Request) error {
		var req ForceLeaveRequest
		if err := s.decodeBody(w, r, &req); err != nil {
			return err
		}
		if req.Node == "" {
			return badRequest("force-leave needs a node name")
		}
		if err := ac.ForceLeave(req.Node); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// Join asks the agent to join the cluster through addrs.
func (c *Client) Join(ctx context.Context, addrs []string) (int, error) {
	var out struct {
		Joined int `json:"joined"`
	}
	err := c.call(ctx, http.MethodPost, "/v1/agent/join", nil, JoinRequest{Addrs: addrs}, &out)
	return out.Joined, err
}

// Leave asks the agent to leave the cluster gracefully and exit.
func (c *Client) Leave(ctx context.Context) error {
	return c.call(ctx, http.MethodPost, "/v1/agent/leave", nil, nil, nil)
}

// ForceLeave asks the agent to mark a failed node as left.
func (c *Client) ForceLeave(ctx context.Context, node string) error {
	return c.call(ctx, http.MethodPost, "/v1/agent/force-leave", nil, ForceLeaveRequest{Node: node}, nil)
}
