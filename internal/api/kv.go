package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/fsm/kv"
	"github.com/hasup/hasup/fsm/lock"
)

// The data endpoints: kv and lock ensembles.

func (s *server) kvPut(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	key, h, err := s.kvTarget(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	cas, hasCAS, err := uintParam(q, "cas", 64)
	if err != nil {
		return err
	}
	value, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	cmd := kv.PutCmd([]byte(key), value)
	if hasCAS {
		cmd = kv.CASCmd([]byte(key), value, cas)
	}
	b, err := s.propose(ctx, r, h, cmd)
	if err != nil {
		return err
	}
	res, err := kv.DecodeResult(b)
	if errors.Is(err, kv.ErrCASConflict) {
		// The key as it stands: what to retry the CAS with.
		w.Header().Set(headerRevision, strconv.FormatUint(res.ModRevision, 10))
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, revisionReply{Revision: res.ModRevision})
	return nil
}

func (s *server) kvGet(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	key, h, err := s.kvTarget(r)
	if err != nil {
		return err
	}
	mode, err := consistency(r.URL.Query())
	if err != nil {
		return err
	}
	b, err := read(ctx, h, kv.GetQuery([]byte(key)), mode)
	if err != nil {
		return err
	}
	res, err := kv.DecodeResult(b)
	switch {
	case err != nil:
		return err
	case !res.Found:
		return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "no key " + strconv.Quote(key)}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(res.Value)))
	w.Header().Set(headerRevision, strconv.FormatUint(res.ModRevision, 10))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.Value)
	return nil
}

func (s *server) kvDelete(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	key, h, err := s.kvTarget(r)
	if err != nil {
		return err
	}
	b, err := s.propose(ctx, r, h, kv.DeleteCmd([]byte(key)))
	if err != nil {
		return err
	}
	res, err := kv.DecodeResult(b)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, revisionReply{Revision: res.Revision})
	return nil
}

func (s *server) kvList(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	prefix, after := q.Get("prefix"), q.Get("after")
	for _, k := range []string{prefix, after} {
		if len(k) > s.opts.MaxKeyBytes {
			return badKey("prefix or after is %d bytes, limit %d", len(k), s.opts.MaxKeyBytes)
		}
	}
	limit, _, err := uintParam(q, "limit", 32)
	if err != nil {
		return err
	}
	mode, err := consistency(q)
	if err != nil {
		return err
	}
	h, err := s.handle(r.PathValue("ensemble"), "kv")
	if err != nil {
		return err
	}
	b, err := read(ctx, h, kv.ListQuery([]byte(prefix), []byte(after), int(limit)), mode)
	if err != nil {
		return err
	}
	page, err := kv.DecodeList(b)
	if err != nil {
		return err
	}
	out := make([]KV, 0, len(page.Entries))
	for _, e := range page.Entries {
		out = append(out, KV{Key: string(e.Key), Value: e.Value, Revision: e.ModRevision})
	}
	w.Header().Set(headerRevision, strconv.FormatUint(page.Revision, 10))
	if page.More {
		w.Header().Set(headerMore, "true")
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) lockAcquire(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := checkLockName(name); err != nil {
		return err
	}
	h, err := s.handle(r.PathValue("ensemble"), "lock")
	if err != nil {
		return err
	}
	var req lockRequest
	if err := s.decodeBody(w, r, &req); err != nil {
		return err
	}
	if err := checkOwner(req.Owner); err != nil {
		return err
	}
	ttl, err := time.ParseDuration(req.TTL)
	if err != nil || ttl <= 0 || ttl > lock.MaxTTL {
		return badRequest("ttl is %q, want a Go duration more than 0 and at most %v", req.TTL, lock.MaxTTL)
	}
	b, err := s.propose(ctx, r, h, lock.AcquireCmd(name, req.Owner, ttl))
	if err != nil {
		return err
	}
	res, err := lock.DecodeResult(b)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, fenceReply{Fence: res.Fence})
	return nil
}

func (s *server) lockRelease(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	name, owner := r.PathValue("name"), r.URL.Query().Get("owner")
	if err := checkLockName(name); err != nil {
		return err
	}
	if err := checkOwner(owner); err != nil {
		return err
	}
	h, err := s.handle(r.PathValue("ensemble"), "lock")
	if err != nil {
		return err
	}
	b, err := s.propose(ctx, r, h, lock.ReleaseCmd(name, owner))
	if err != nil {
		return err
	}
	if _, err := lock.DecodeResult(b); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// kvTarget checks the request's key and returns it with the handle of its
// kv ensemble.
func (s *server) kvTarget(r *http.Request) (string, EnsembleHandle, error) {
	key := r.PathValue("key")
	if err := s.checkKey(key); err != nil {
		return "", nil, err
	}
	h, err := s.handle(r.PathValue("ensemble"), "kv")
	return key, h, err
}

// handle returns a handle on the ensemble name, which must host the FSM
// type typ: another FSM would take the command as malformed.
func (s *server) handle(name, typ string) (EnsembleHandle, error) {
	en, err := s.registryEnsemble(name)
	if err != nil {
		return nil, err
	}
	if en.Spec.Type != typ {
		return nil, badRequest("ensemble %q hosts %q, not %q", name, en.Spec.Type, typ)
	}
	return s.b.Lookup(en.Spec.Name)
}

// checkKey checks a kv key against the contract.
func (s *server) checkKey(key string) error {
	switch {
	case key == "":
		return badKey("the key is empty")
	case len(key) > s.opts.MaxKeyBytes:
		return badKey("the key is %d bytes, limit %d", len(key), s.opts.MaxKeyBytes)
	case strings.IndexByte(key, 0) >= 0:
		return badKey("the key contains a NUL byte")
	case !utf8.ValidString(key):
		return badKey("the key is not UTF-8")
	}
	return nil
}

func checkLockName(name string) error {
	if name == "" || len(name) > lock.MaxNameBytes {
		return badRequest("the lock name is %d bytes, want 1 to %d", len(name), lock.MaxNameBytes)
	}
	return nil
}

func checkOwner(owner string) error {
	if owner == "" || len(owner) > lock.MaxOwnerBytes {
		return badRequest("the owner is %d bytes, want 1 to %d", len(owner), lock.MaxOwnerBytes)
	}
	return nil
}

// consistency returns the read mode ?consistency= asks for.
func consistency(q url.Values) (ensemble.ReadMode, error) {
	switch c := q.Get("consistency"); c {
	case "", string(Linearizable):
		return ensemble.ReadLinearizable, nil
	case string(Lease):
		return ensemble.ReadLease, nil
	case string(Stale):
		return ensemble.ReadStale, nil
	default:
		return 0, badRequest("consistency is %q, want linearizable, lease or stale", c)
	}
}

// read reads in mode, retrying a lease read that found no lease as a
// linearizable one: an idle ensemble lets its lease lapse, and the stronger
// read is what the caller asked for and more.
func read(ctx context.Context, h EnsembleHandle, q []byte, mode ensemble.ReadMode) ([]byte, error) {
	b, err := h.Read(ctx, q, mode)
	if mode == ensemble.ReadLease && errors.Is(err, ensemble.ErrNoLease) {
		return h.Read(ctx, q, ensemble.ReadLinearizable)
	}
	return b, err
}

// uintParam parses the query parameter name as a decimal number of the
// given bits, and reports whether it was there.
func uintParam(q url.Values, name string, bits int) (uint64, bool, error) {
	vs, ok := q[name]
	if !ok {
		return 0, false, nil
	}
	if len(vs) != 1 {
		return 0, false, badRequest("?%s given %d times", name, len(vs))
	}
	n, err := strconv.ParseUint(vs[0], 10, bits)
	if err != nil {
		return 0, false, badRequest("?%s is %q, want a decimal number below 2^%d", name, vs[0], bits)
	}
	return n, true, nil
}
