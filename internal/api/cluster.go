package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/fsm/registry"
	"github.com/hasup/hasup/supervisor"
)

// The cluster endpoints: health, members, ensembles.

func (s *server) health(_ context.Context, w http.ResponseWriter, _ *http.Request) error {
	_, ok := s.b.Registry()
	writeJSON(w, http.StatusOK, Health{Status: "ok", Node: string(s.b.ID()), Registry: ok})
	return nil
}

func (s *server) members(_ context.Context, w http.ResponseWriter, _ *http.Request) error {
	ms := s.b.Members()
	out := make([]Member, 0, len(ms))
	for _, m := range ms {
		tags := m.Tags
		if tags == nil {
			tags = map[string]string{}
		}
		out = append(out, Member{Name: string(m.ID), Addr: m.Addr, Status: m.State.String(), Tags: tags})
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) listEnsembles(ctx context.Context, w http.ResponseWriter, _ *http.Request) error {
	reg, ok := s.b.Registry()
	if !ok {
		return supervisor.ErrNoRegistry
	}
	out := make([]Ensemble, len(reg.Ensembles))
	sem := make(chan struct{}, statusParallelism)
	var wg sync.WaitGroup
	for i, en := range reg.Ensembles {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i] = s.describe(ctx, en)
		}()
	}
	wg.Wait()
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) getEnsemble(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	en, err := s.registryEnsemble(r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.describe(ctx, en))
	return nil
}

func (s *server) createEnsemble(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	var spec EnsembleSpec
	if err := s.decodeBody(w, r, &spec); err != nil {
		return err
	}
	switch {
	case spec.Name == "":
		return badRequest("the ensemble needs a name")
	case spec.Type == "":
		return badRequest("the ensemble needs a type (kv, lock, or one the agent registers)")
	case spec.Replicas != 0 && spec.Replicas != 1 && spec.Replicas != 3 && spec.Replicas != 5:
		return badRequest("replicas is %d, want 1, 3 or 5", spec.Replicas)
	}
	name := hasup.EnsembleName(spec.Name)
	if _, err := s.b.Start(ctx, supervisor.Spec{Name: name, Type: spec.Type, Replicas: spec.Replicas,
		Constraints: spec.Constraints}); err != nil {
		return err
	}
	// Start returns once the ensemble answers, and it asks through this
	// node's registry, so the registry lists it now.
	en, err := s.registryEnsemble(spec.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, s.describe(ctx, en))
	return nil
}

func (s *server) deleteEnsemble(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	if err := s.b.Stop(ctx, hasup.EnsembleName(r.PathValue("name"))); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// registryEnsemble returns the registry's record of the ensemble name.
func (s *server) registryEnsemble(name string) (registry.Ensemble, error) {
	reg, ok := s.b.Registry()
	if !ok {
		return registry.Ensemble{}, supervisor.ErrNoRegistry
	}
	en, ok := reg.Ensemble(hasup.EnsembleName(name))
	if !ok {
		return registry.Ensemble{}, fmt.Errorf("ensemble %q: %w", name, supervisor.ErrNotFound)
	}
	return en, nil
}

// describe returns the ensemble as the API shows it: the registry's record
// and, if a member answers within StatusTimeout, its status.
func (s *server) describe(ctx context.Context, en registry.Ensemble) Ensemble {
	out := Ensemble{Name: string(en.Spec.Name), Type: en.Spec.Type, Replicas: en.Spec.Replicas, Epoch: en.Epoch,
		Members: make([]string, 0, len(en.Members))}
	for _, m := range en.Members {
		out.Members = append(out.Members, string(m))
	}
	h, err := s.b.Lookup(en.Spec.Name)
	if err != nil {
		s.log.Debug("no status", "ensemble", en.Spec.Name, "err", err)
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, StatusTimeout)
	defer cancel()
	st, err := h.Status(ctx)
	if err != nil {
		s.log.Debug("no status", "ensemble", en.Spec.Name, "err", err)
		return out
	}
	out.View, out.Primary, out.Commit = st.View, string(st.Primary), st.Commit
	return out
}

// decodeBody decodes r's JSON body into v: one object, no unknown fields,
// at most MaxBodyBytes.
func (s *server) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("body: more than one JSON value")
	}
	return nil
}

// readBody reads r's body, refusing one larger than MaxBodyBytes with 413.
func (s *server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	tooLarge := &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge,
		Message: fmt.Sprintf("the body is larger than %d bytes", s.opts.MaxBodyBytes)}
	if r.ContentLength > s.opts.MaxBodyBytes {
		return nil, tooLarge
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, tooLarge
	case err != nil:
		return nil, badRequest("reading the body: %v", err)
	}
	return b, nil
}
