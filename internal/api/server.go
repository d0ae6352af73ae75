package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/fsm/kv"
	"github.com/hasup/hasup/fsm/registry"
	"github.com/hasup/hasup/supervisor"
)

// Backend is the part of the supervisor's Go API the server uses. A
// *supervisor.Supervisor serves through FromSupervisor; tests use a fake.
// Every method may be called from many goroutines at once.
type Backend interface {
	// ID returns this node's ID.
	ID() hasup.NodeID
	// Members returns failure detection's view of the cluster.
	Members() []hasup.Member
	// Registry returns the registry as this node last read it, and false
	// if it never has. The server only reads the result.
	Registry() (registry.State, bool)
	// Start creates an ensemble and waits until it takes writes or ctx
	// ends.
	Start(ctx context.Context, spec supervisor.Spec) (EnsembleHandle, error)
	// Stop deletes an ensemble.
	Stop(ctx context.Context, name hasup.EnsembleName) error
	// Lookup returns a handle on an existing ensemble, or an error wrapping
	// supervisor.ErrNotFound or supervisor.ErrNoRegistry.
	Lookup(name hasup.EnsembleName) (EnsembleHandle, error)
}

// EnsembleHandle is the part of *supervisor.Ensemble the server uses.
type EnsembleHandle interface {
	// Propose orders cmd in the ensemble and returns the FSM's result.
	Propose(ctx context.Context, cmd []byte) ([]byte, error)
	// Read queries the FSM in the given mode.
	Read(ctx context.Context, q []byte, mode ensemble.ReadMode) ([]byte, error)
	// Status returns the ensemble's status from its primary, or failing
	// that from any member.
	Status(ctx context.Context) (supervisor.Status, error)
}

// StatusTimeout bounds how long the server waits for one ensemble's status
// when it describes the ensemble: a member that is down must not hold up a
// listing until the request times out.
const StatusTimeout = 2 * time.Second

// statusParallelism bounds the statuses GET /v1/ensembles asks at once.
const statusParallelism = 16

// Options configures a server. The zero value of each field means its
// default.
type Options struct {
	// Token, if set, is required by every mutating call (PUT, POST,
	// DELETE), as "Authorization: Bearer TOKEN" or "X-Hasup-Token: TOKEN".
	// Default "": no token, which suits a listener on loopback only.
	Token string
	// MaxBodyBytes bounds a request body; a larger one is refused with 413.
	// Default 1 MiB, the kv FSM's largest value.
	MaxBodyBytes int64
	// MaxKeyBytes bounds a kv key; a longer one is refused with 400. 1 to
	// kv.MaxKeyBytes (4 KiB). Default 1024: keys travel in URLs, which
	// proxies and logs cut at a few KiB.
	MaxKeyBytes int
	// RequestTimeout bounds each request, waits for a primary included; a
	// request that runs out answers 503 "timeout". Default 10s: as long as
	// a node works on a forwarded request (host.ForwardTimeout), and far
	// longer than a view change.
	RequestTimeout time.Duration
	// Logger receives a record per failed request (warn for 5xx, debug
	// otherwise). Default: discard.
	Logger *slog.Logger
	// OnLeave, if set, is called after POST /v1/agent/leave succeeded
	// and was answered: the agent exits.
	OnLeave func()
}

// DefaultOptions returns the options with every default filled in.
func DefaultOptions() Options {
	return Options{MaxBodyBytes: 1 << 20, MaxKeyBytes: 1024, RequestTimeout: 10 * time.Second,
		Logger: slog.New(slog.DiscardHandler)}
}

// Validate reports whether o is usable; zero fields count as their
// defaults.
func (o Options) Validate() error {
	switch {
	case o.MaxBodyBytes < 0:
		return fmt.Errorf("api: MaxBodyBytes %d is negative", o.MaxBodyBytes)
	case o.MaxKeyBytes < 0 || o.MaxKeyBytes > kv.MaxKeyBytes:
		return fmt.Errorf("api: MaxKeyBytes %d, want 1 to %d", o.MaxKeyBytes, kv.MaxKeyBytes)
	case o.RequestTimeout < 0:
		return fmt.Errorf("api: RequestTimeout %v is negative", o.RequestTimeout)
	}
	return nil
}

// withDefaults returns o with its zero fields set to the defaults.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = d.MaxBodyBytes
	}
	if o.MaxKeyBytes == 0 {
		o.MaxKeyBytes = d.MaxKeyBytes
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = d.RequestTimeout
	}
	if o.Logger == nil {
		o.Logger = d.Logger
	}
	return o
}

// server serves the API on a Backend.
type server struct {
	// b is the Backend NewServer was given, wrapped so that the handles it
	// returns time their calls (timedBackend): look for its optional
	// interfaces in NewServer, before the wrapping hides them.
	b    Backend
	opts Options
	log  *slog.Logger
	mux  *http.ServeMux
}

// NewServer returns the API's handler on b: the JSON API under /v1/,
// Prometheus metrics at /metrics (metrics.go) and the status page at /ui/
// (ui.go). b's optional interfaces StatusLister and WorkerLister add the
// hasup_ensemble_* metrics and GET /v1/workers. It panics if opts.Validate
// fails: options are the caller's code or its validated configuration, so
// a bad one is a bug.
func NewServer(b Backend, opts Options) http.Handler {
	if err := opts.Validate(); err != nil {
		panic(err)
	}
	opts = opts.withDefaults()
	metrics, requests := newMetricsHandler(b, opts.Logger)
	s := &server{b: timedBackend{Backend: b, m: requests}, opts: opts, log: opts.Logger, mux: http.NewServeMux()}
	s.route("GET /v1/health", s.health)
	s.route("GET /v1/members", s.members)
	s.route("GET /v1/ensembles", s.listEnsembles)
	s.route("POST /v1/ensembles", s.createEnsemble)
	s.route("GET /v1/ensembles/{name}", s.getEnsemble)
	s.route("DELETE /v1/ensembles/{name}", s.deleteEnsemble)
	s.route("GET /v1/kv/{ensemble}", withOp(opList, s.kvList))
	// Without this, a PUT to /v1/kv/E would be redirected to /v1/kv/E/ (a
	// key pattern with an empty key) rather than refused.
	s.mux.HandleFunc("/v1/kv/{ensemble}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s", r.Method, r.URL.Path))
	})
	s.route("GET /v1/kv/{ensemble}/{key...}", withOp(opGet, s.kvGet))
	s.route("PUT /v1/kv/{ensemble}/{key...}", withOp(opPut, s.kvPut))
	s.route("DELETE /v1/kv/{ensemble}/{key...}", withOp(opDelete, s.kvDelete))
	s.route("POST /v1/lock/{ensemble}/{name}", withOp(opLock, s.lockAcquire))
	s.route("DELETE /v1/lock/{ensemble}/{name}", withOp(opLock, s.lockRelease))
	if wl, ok := b.(WorkerLister); ok {
		s.route("GET /v1/workers", listWorkers(wl))
		s.route("GET /v1/workers/{name}", getWorker(wl))
	}
	if ac, ok := b.(AgentControl); ok {
		s.mountAgent(ac)
	}
	if wl, ok := b.(WorkerLogger); ok {
		s.route("GET /v1/workers/{name}/logs", workerLogs(wl))
	}
	s.mux.Handle("GET /metrics", metrics)
	ui := newUIHandler()
	s.mux.HandleFunc("GET /ui", ui.redirect)
	s.mux.HandleFunc("GET /ui/{file...}", ui.serve)
	return s
}

// ServeHTTP answers every request in JSON, the mux's own 404 and 405
// included, and never redirects.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p := r.URL.EscapedPath(); cleanPath(p) != p {
		code := CodeBadRequest
		if strings.HasPrefix(p, "/v1/kv/") {
			code = CodeBadKey
		}
		writeError(w, http.StatusBadRequest, code, fmt.Sprintf("path %q is not canonical (an empty, \".\" or \"..\" segment): escape a key's slashes as %%2F", p))
		return
	}
	h, pattern := s.mux.Handler(r)
	if pattern == "" {
		s.noRoute(w, r, h)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// handlerFunc serves one endpoint under ctx, which carries the request
// timeout, and returns an error for the server to answer.
type handlerFunc func(ctx context.Context, w http.ResponseWriter, r *http.Request) error

// route registers h for pattern, behind the checks every endpoint shares:
// the token for mutating calls, the session headers, the timeout.
func (s *server) route(pattern string, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if mutating(r.Method) && !s.authorized(r) {
			s.fail(r.Context(), w, r, &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized,
				Message: "this call needs the API token (Authorization: Bearer TOKEN or X-Hasup-Token)"})
			return
		}
		if err := checkSessionHeaders(r.Header); err != nil {
			s.fail(r.Context(), w, r, err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
		defer cancel()
		if err := h(ctx, w, r); err != nil {
			s.fail(ctx, w, r, err)
		}
	})
}

// noRoute answers a request no pattern took: 405 if the path is known for
// other methods, else 404. h is the mux's own answer, run only to learn
// which it is.
func (s *server) noRoute(w http.ResponseWriter, r *http.Request, h http.Handler) {
	rec := &headerRecorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	if rec.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", rec.header.Get("Allow"))
		writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s", r.Method, r.URL.Path))
		return
	}
	writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no such path: %s", r.URL.Path))
}

// headerRecorder keeps a handler's status and headers and drops its body.
type headerRecorder struct {
	header http.Header
	status int
}

func (h *headerRecorder) Header() http.Header { return h.header }

func (h *headerRecorder) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	return len(b), nil
}

func (h *headerRecorder) WriteHeader(status int) {
	if h.status == 0 {
		h.status = status
	}
}

// authorized reports whether r carries the token, or none is needed.
func (s *server) authorized(r *http.Request) bool {
	if s.opts.Token == "" {
		return true
	}
	got := r.Header.Get("X-Hasup-Token")
	if auth := r.Header.Get("Authorization"); got == "" && len(auth) > len("Bearer ") && strings.EqualFold(auth[:len("Bearer ")], "Bearer ") {
		got = auth[len("Bearer "):]
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.Token)) == 1
}

// mutating reports whether method changes state, and so needs the token.
func mutating(method string) bool {
	return method == http.MethodPut || method == http.MethodPost || method == http.MethodDelete
}

// checkSessionHeaders checks X-Hasup-Client and X-Hasup-Request: each, if
// present, is one decimal uint64. They are not acted on yet (see the
// package doc).
func checkSessionHeaders(h http.Header) error {
	for _, name := range []string{"X-Hasup-Client", "X-Hasup-Request"} {
		vs, ok := h[name]
		if !ok {
			continue
		}
		if len(vs) != 1 {
			return badRequest("header %s given %d times", name, len(vs))
		}
		if _, err := strconv.ParseUint(vs[0], 10, 64); err != nil {
			return badRequest("header %s is %q, want a decimal number below 2^64", name, vs[0])
		}
	}
	return nil
}

// fail answers err as the contract says, and logs it.
func (s *server) fail(ctx context.Context, w http.ResponseWriter, r *http.Request, err error) {
	e := s.toError(ctx, r, err)
	level := slog.LevelDebug
	if e.Status >= 500 {
		level = slog.LevelWarn
	}
	s.log.Log(r.Context(), level, "request failed", "method", r.Method, "path", r.URL.Path, "status", e.Status,
		"code", e.Code, "err", err)
	writeError(w, e.Status, e.Code, e.Message)
}

// toError turns a handler's error into the answer: an *Error as it is,
// anything else by classify. A timeout is told apart from other 503s by
// the request's own context, since the supervisor wraps its deadline in
// ErrNoQuorum.
func (s *server) toError(ctx context.Context, r *http.Request, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	status, code := classify(err)
	msg := err.Error()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && r.Context().Err() == nil {
		status, code = http.StatusServiceUnavailable, CodeTimeout
		msg = fmt.Sprintf("timed out after %v: %v", s.opts.RequestTimeout, err)
	}
	if status == http.StatusServiceUnavailable && mutating(r.Method) {
		msg += "; the write may or may not have happened"
	}
	return &Error{Status: status, Code: code, Message: msg}
}

// cleanPath is net/http's canonical form of a path: "." and ".." elements
// and repeated slashes removed, a trailing slash kept.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}
