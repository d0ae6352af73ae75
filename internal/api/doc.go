// Package api is hasup's HTTP API: the server every agent runs (NewServer,
// on the supervisor's Go API through the Backend interface) and the client
// the CLI uses (Client). The contract below is DESIGN.md's "HTTP API";
// programs rely on it, so it changes only by addition.
//
// # Endpoints
//
// Any node answers; requests for an ensemble are forwarded to its primary by
// the supervisor. Bodies are JSON unless said otherwise.
//
//	GET    /v1/health                  {"status":"ok","node","registry":bool}; 200 while the agent answers,
//	                                   "registry" says whether this node has read the cluster registry
//	GET    /v1/members                 [{"name","addr","status","tags"}], sorted by name (Serf's view)
//	GET    /v1/ensembles               [Ensemble], sorted by name
//	GET    /v1/ensembles/{name}        Ensemble
//	POST   /v1/ensembles               {"name","type","replicas","constraints"} -> 201 Ensemble, once
//	                                   the new ensemble has a primary
//	DELETE /v1/ensembles/{name}        204
//	PUT    /v1/kv/{ens}/{key}          body = raw value; ?cas=REV (0 = only if absent) -> {"revision":N}
//	GET    /v1/kv/{ens}/{key}          raw value, header X-Hasup-Revision; ?consistency=
//	                                   linearizable (default) | lease | stale
//	DELETE /v1/kv/{ens}/{key}          {"revision":N} (the store's revision after the delete)
//	GET    /v1/kv/{ens}?prefix=P       [{"key","value","revision"}]; also ?after=K, ?limit=N, ?consistency=
//	POST   /v1/lock/{ens}/{name}       {"owner","ttl"} (ttl a Go duration, "30s") -> {"fence":N}
//	DELETE /v1/lock/{ens}/{name}?owner=O  204
//	GET    /v1/workers                 [Worker] of this node (name, node, mode, state, role, restarts, fence, healthy)
//	GET    /v1/workers/{name}          Worker; GET /v1/workers/{name}/logs?bytes=N  text/plain, its last output
//	POST   /v1/agent/join              {"addrs":[...]} -> {"joined":N}
//	POST   /v1/agent/leave             204; the agent stops its workers, leaves Serf and exits
//	POST   /v1/agent/force-leave       {"node"} -> 204
//	GET    /metrics                    Prometheus (metrics.go); GET /ui/: the status page
//
// An Ensemble is {"name","type","replicas","epoch","view","primary",
// "members","commit"}: name, type, replicas, epoch and members (node names)
// come from this node's copy of the registry; view, primary (a node name)
// and commit from the ensemble's status, asked of its members with a bound of
// StatusTimeout. If no member answers in time, view and commit are 0 and
// primary is "".
//
// A revision is the key's ModRevision in the kv FSM (package fsm/kv): the
// store revision of the key's last change, which is what ?cas= compares. A
// CAS conflict answers 409 and puts the key's current revision (0 if absent)
// in X-Hasup-Revision.
//
// # Keys and values
//
// A key is everything after the ensemble in the path, unescaped: it may
// contain "/" as is ("/v1/kv/orders/a/b" is the key "a/b"). A key with an
// empty, "." or ".." segment ("/x", "a//b", "..") must be sent with its
// slashes escaped as %2F (and a key of "." or ".." as %2E): paths that are not
// canonical are refused with 400, never redirected, so that a write cannot
// land on another key than the one sent. Client escapes every key this way.
// Keys are 1 to Options.MaxKeyBytes bytes of UTF-8 without NUL, else 400
// "bad_key"; UTF-8 keeps them exact in JSON. Values are any bytes up to the
// kv FSM's limit (1 MiB) and Options.MaxBodyBytes.
//
// In a list, "value" is the value in standard base64 (RFC 4648 with padding,
// encoding/json's []byte), because values may be binary; "key" is a JSON
// string (a key written through the Go API that is not UTF-8 shows with its
// invalid bytes replaced by U+FFFD). A list answers one page of the kv FSM (at most ?limit entries and
// about 4 MiB); when more keys match, the answer carries X-Hasup-More: true
// and the next page is asked with ?after= the last key. X-Hasup-Revision holds
// the store revision the page was read at. Client.KVList follows the pages;
// pages are read at different revisions, so a long list is not one snapshot.
//
// # Reads
//
// consistency=lease reads at the primary while it holds its lease; an
// ensemble that was idle may have let its lease lapse, so a lease read that
// is refused for want of a lease is retried at once as a linearizable read,
// which is stronger. consistency=stale reads at this node's replica if it has
// one, with no staleness bound.
//
// # Errors
//
// Every error is {"error": "text", "code": "code"}:
//
//	400 bad_request         malformed body, parameter or header; unknown FSM type
//	400 bad_key             key empty, too long, not UTF-8, with NUL, or in a non-canonical path
//	401 unauthorized        a mutating call without the right token
//	404 not_found           unknown path, ensemble or key
//	405 method_not_allowed  known path, wrong method (with an Allow header)
//	409 conflict            CAS mismatch, lock held by another (or released by a non-holder),
//	                        ensemble exists, not enough eligible nodes for placement
//	413 too_large           body larger than MaxBodyBytes, or a value larger than the FSM takes
//	503 unavailable         no quorum, no registry, view change, node stopping
//	503 timeout             RequestTimeout passed
//	500 internal            anything else
//
// A 503 answer to a write means the write may or may not have happened; its
// message says so.
//
// # Security
//
// When Options.Token is set, PUT, POST and DELETE need it, as
// "Authorization: Bearer TOKEN" or "X-Hasup-Token: TOKEN"; reads do not. TLS
// is the listener's business (cmd/hasup), not this package's.
//
// # At-most-once writes
//
// With the headers X-Hasup-Client (a random non-zero number the client
// keeps) and X-Hasup-Request (its write's number: 1, 2, 3, ...; the same
// number again only to retry), a write executes at most once however often
// it is retried: the ensemble's client table answers a retry with the kept
// reply (see session.go for the rules and the one gap). Without them a
// write retried after a 503 or a lost answer may execute twice; ?cas= makes
// a kv write safe to retry too. Errors: 409 session_expired (start a new
// session under a new number), stale_request, reply_not_kept.
//
// # Limits
//
// Every request runs under Options.RequestTimeout; bodies are capped by
// MaxBodyBytes and keys by MaxKeyBytes; GET /v1/ensembles asks at most 16
// statuses at once, each bounded by StatusTimeout.
package api
