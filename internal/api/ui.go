package api

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"time"
)

// GET /ui/: the status page. Plain HTML, CSS and JavaScript under ui/,
// embedded in the binary: no build step, no external resources, nothing to
// install. The page polls the JSON API every 2 s (GET /v1/health,
// /v1/members, /v1/ensembles, /v1/workers) and /metrics for the local
// replicas' lag, and renders the tables itself; see ui/app.js.
//
// Every asset is answered with an explicit Content-Type (not the system's
// MIME table, which varies), an ETag for revalidation, and a
// Content-Security-Policy that allows nothing but this origin: the page
// cannot load anything from elsewhere, and data it shows cannot run.

// uiFiles holds the page's files. It is package state, but immutable: it
// is the binary's own content.
//
//go:embed ui
var uiFiles embed.FS

// uiContentTypes maps the extensions under ui/ to their Content-Type.
var uiContentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
}

// uiCSP is the pages' Content-Security-Policy.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// uiAsset is one file of the page, ready to serve.
type uiAsset struct {
	body        []byte
	contentType string
	etag        string
}

// uiHandler serves the status page's files.
type uiHandler struct {
	assets map[string]uiAsset // by name under ui/; "" is index.html
}

// newUIHandler reads the embedded files. It panics on a file without a
// known Content-Type: that is a file added to ui/ without its type here.
func newUIHandler() *uiHandler {
	u := &uiHandler{assets: map[string]uiAsset{}}
	err := fs.WalkDir(uiFiles, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := uiFiles.ReadFile(p)
		if err != nil {
			return err
		}
		ct, ok := uiContentTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("api: ui file %s has no Content-Type", p)
		}
		sum := sha256.Sum256(body)
		u.assets[p[len("ui/"):]] = uiAsset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic(err)
	}
	u.assets[""] = u.assets["index.html"]
	return u
}

// serve answers GET /ui/{file...}; an unknown file is the API's JSON 404.
func (u *uiHandler) serve(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	a, ok := u.assets[name]
	if !ok {
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no such path: %s", r.URL.Path))
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("ETag", a.etag)
	h.Set("Cache-Control", "no-cache") // revalidate: a new binary may bring a new page
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("Referrer-Policy", "no-referrer")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
}

// redirect answers GET /ui with a redirect to /ui/, relative so that it
// also works behind a proxy that mounts the API under a prefix.
// (http.Redirect would make it absolute).
func (u *uiHandler) redirect(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Location", "ui/")
	w.WriteHeader(http.StatusMovedPermanently)
}
