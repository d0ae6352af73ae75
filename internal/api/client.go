package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Consistency is how fresh a kv read must be; "" means Linearizable.
type Consistency string

// The read consistencies of ?consistency=.
const (
	// Linearizable: the primary confirms its view with a quorum first.
	Linearizable Consistency = "linearizable"
	// Lease: the primary answers from its state while it holds its lease.
	Lease Consistency = "lease"
	// Stale: a replica answers from its own state, possibly behind.
	Stale Consistency = "stale"
)

// errorBodyMax bounds how much of an error answer the Client reads.
const errorBodyMax = 64 << 10

// Client calls an agent's HTTP API. The zero value is not usable: set Addr.
// A Client is safe for concurrent use. Every answer that is not a success
// is returned as an *Error, which errors.Is matches against ErrNotFound,
// ErrConflict, ErrUnauthorized and ErrUnavailable.
type Client struct {
	// Addr is the agent's API address: "host:port" (http) or a URL
	// "http://host:port", "https://host:port".
	Addr string
	// Token is sent with every request when set.
	Token string
	// HTTP makes the requests; nil means http.DefaultClient. Deadlines come
	// from each call's context.
	HTTP *http.Client
}

// Health returns the agent's health.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	return h, c.call(ctx, http.MethodGet, "/v1/health", nil, nil, &h)
}

// Members returns the cluster's members as the agent's failure detection
// sees them.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	var ms []Member
	return ms, c.call(ctx, http.MethodGet, "/v1/members", nil, nil, &ms)
}

// Ensembles returns every ensemble, sorted by name.
func (c *Client) Ensembles(ctx context.Context) ([]Ensemble, error) {
	var es []Ensemble
	return es, c.call(ctx, http.MethodGet, "/v1/ensembles", nil, nil, &es)
}

// Ensemble returns one ensemble.
func (c *Client) Ensemble(ctx context.Context, name string) (Ensemble, error) {
	var e Ensemble
	return e, c.call(ctx, http.MethodGet, "/v1/ensembles/"+segment(name), nil, nil, &e)
}

// CreateEnsemble creates an ensemble and returns it once it has a primary.
func (c *Client) CreateEnsemble(ctx context.Context, spec EnsembleSpec) (Ensemble, error) {
	var e Ensemble
	return e, c.call(ctx, http.MethodPost, "/v1/ensembles", nil, spec, &e)
}

// DeleteEnsemble deletes an ensemble and its state.
func (c *Client) DeleteEnsemble(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodDelete, "/v1/ensembles/"+segment(name), nil, nil, nil)
}

// KVGet returns key's value and revision; an absent key is ErrNotFound.
func (c *Client) KVGet(ctx context.Context, ens, key string, cons Consistency) ([]byte, uint64, error) {
	q := url.Values{}
	if cons != "" {
		q.Set("consistency", string(cons))
	}
	resp, err := c.do(ctx, http.MethodGet, kvPath(ens, key), q, nil, "")
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	value, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, 0, err
	}
	rev, err := strconv.ParseUint(resp.Header.Get(headerRevision), 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("api: bad %s header: %w", headerRevision, err)
	}
	return value, rev, nil
}

// KVPut sets key to value and returns the key's new revision. With cas set,
// only if the key's revision is *cas (0: only if absent); a mismatch is
// ErrConflict.
func (c *Client) KVPut(ctx context.Context, ens, key string, value []byte, cas *uint64) (uint64, error) {
	q := url.Values{}
	if cas != nil {
		q.Set("cas", strconv.FormatUint(*cas, 10))
	}
	resp, err := c.do(ctx, http.MethodPut, kvPath(ens, key), q, bytes.NewReader(value), "application/octet-stream")
	if err != nil {
		return 0, err
	}
	var r revisionReply
	return r.Revision, decodeJSON(resp, &r)
}

// KVDelete deletes key; an absent key is ErrNotFound.
func (c *Client) KVDelete(ctx context.Context, ens, key string) error {
	return c.call(ctx, http.MethodDelete, kvPath(ens, key), nil, nil, nil)
}

// KVList returns the keys that start with prefix, in byte order, following
// the server's pages; each page is read at its own revision, so a list
// longer than a page is not one snapshot.
func (c *Client) KVList(ctx context.Context, ens, prefix string) ([]KV, error) {
	var all []KV
	after := ""
	for {
		q := url.Values{"prefix": {prefix}}
		if after != "" {
			q.Set("after", after)
		}
		resp, err := c.do(ctx, http.MethodGet, "/v1/kv/"+segment(ens), q, nil, "")
		if err != nil {
			return nil, err
		}
		more := resp.Header.Get(headerMore) == "true"
		var page []KV
		if err := decodeJSON(resp, &page); err != nil {
			return nil, err
		}
		all = append(all, page...)
		if !more {
			return all, nil
		}
		if len(page) == 0 || page[len(page)-1].Key <= after {
			return nil, errors.New("api: the server says more keys follow but sent none")
		}
		after = page[len(page)-1].Key
	}
}

// LockAcquire acquires (or, for its holder, renews) the lock name for ttl
// and returns its fencing token; a lock held by another owner is
// ErrConflict.
func (c *Client) LockAcquire(ctx context.Context, ens, name, owner string, ttl time.Duration) (uint64, error) {
	var r fenceReply
	err := c.call(ctx, http.MethodPost, lockPath(ens, name), nil, lockRequest{Owner: owner, TTL: ttl.String()}, &r)
	return r.Fence, err
}

// LockRelease releases owner's lease on the lock name; if owner does not
// hold it, ErrConflict.
func (c *Client) LockRelease(ctx context.Context, ens, name, owner string) error {
	return c.call(ctx, http.MethodDelete, lockPath(ens, name), url.Values{"owner": {owner}}, nil, nil)
}

// call sends in as JSON (if not nil) and decodes the answer into out (if
// not nil).
func (c *Client) call(ctx context.Context, method, path string, q url.Values, in, out any) error {
	var body io.Reader
	ctype := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("api: encode request: %w", err)
		}
		body, ctype = bytes.NewReader(b), "application/json"
	}
	resp, err := c.do(ctx, method, path, q, body, ctype)
	if err != nil {
		return err
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, errorBodyMax))
		return resp.Body.Close()
	}
	return decodeJSON(resp, out)
}

// do sends a request and returns a successful answer, or an *Error.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body io.Reader, ctype string) (*http.Response, error) {
	u := c.base() + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer func() { _ = resp.Body.Close() }()
	return nil, readError(resp)
}

// base returns the URL the paths are appended to.
func (c *Client) base() string {
	a := strings.TrimSuffix(c.Addr, "/")
	if !strings.Contains(a, "://") {
		a = "http://" + a
	}
	return a
}

// readError turns an answer that is not a success into an *Error.
func readError(resp *http.Response) *Error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyMax))
	var eb errorBody
	if err := json.Unmarshal(b, &eb); err == nil && eb.Code != "" {
		return &Error{Status: resp.StatusCode, Code: eb.Code, Message: eb.Error}
	}
	msg := strings.TrimSpace(string(b))
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &Error{Status: resp.StatusCode, Message: msg}
}

// decodeJSON decodes a successful answer's body and closes it.
func decodeJSON(resp *http.Response, out any) error {
	defer func() { _ = resp.Body.Close() }()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("api: decode answer: %w", err)
	}
	return nil
}

func kvPath(ens, key string) string { return "/v1/kv/" + segment(ens) + "/" + segment(key) }

func lockPath(ens, name string) string { return "/v1/lock/" + segment(ens) + "/" + segment(name) }

// segment escapes s as one path segment: "/" as %2F, and a whole "." or
// ".." as %2E, so that the server's canonical-path check passes whatever s
// holds.
func segment(s string) string {
	if s == "." || s == ".." {
		return strings.Repeat("%2E", len(s))
	}
	return url.PathEscape(s)
}

// Workers lists the workers of the agent's node (GET /v1/workers).
func (c *Client) Workers(ctx context.Context) ([]Worker, error) {
	var out []Worker
	err := c.call(ctx, http.MethodGet, "/v1/workers", nil, nil, &out)
	return out, err
}

// WorkerLogs returns the last n bytes of a worker's output on the agent's
// node (GET /v1/workers/{name}/logs).
func (c *Client) WorkerLogs(ctx context.Context, name string, n int) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/workers/"+url.PathEscape(name)+"/logs", url.Values{"bytes": {fmt.Sprint(n)}}, nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20+1))
}
