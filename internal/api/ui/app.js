// hasup status page: polls the agent's JSON API and renders three tables.
//
// Every 2 s (counted from the end of the previous round, so slow answers
// never pile up) it asks, all at once:
//   ../v1/health     the answering node and whether the cluster has formed
//   ../v1/members    the nodes table
//   ../v1/ensembles  the ensembles table (503 until the cluster has formed)
//   ../v1/workers    the workers table (404 while the agent has no workers)
//   ../metrics       hasup_ensemble_lag_ops, the "Lag here" column
// Paths are relative so that the page also works behind a proxy that
// mounts the API under a prefix. Data is only ever put in the page as text
// (textContent, setAttribute), never as HTML.
//
// For tests and scripts: <body data-state> is "loading", "ok" or "error";
// rows carry data-node, data-ensemble or data-worker (and data-worker-node),
// cells data-field, and the members of an ensemble data-member (the
// primary also data-primary).
"use strict";

(function () {
  const POLL_MS = 2000;
  const TIMEOUT_MS = 5000;
  let lastOK = null; // Date of the last answer from the API

  // HTTPError is an answer from the API that is not a success.
  class HTTPError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // get fetches path and returns its body as JSON (or text), or throws an
  // HTTPError for an answer that is not 2xx, or a TypeError/AbortError when
  // the API cannot be reached.
  async function get(path, asText) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    try {
      const resp = await fetch(path, { signal: ctl.signal, cache: "no-store", headers: { Accept: asText ? "text/plain" : "application/json" } });
      const body = await resp.text();
      if (!resp.ok) {
        let msg = resp.status + " " + resp.statusText;
        try {
          const e = JSON.parse(body);
          if (e && e.error) msg = resp.status + " " + e.error;
        } catch (_) { /* not the API's JSON error */ }
        throw new HTTPError(resp.status, msg);
      }
      return asText ? body : JSON.parse(body);
    } finally {
      clearTimeout(timer);
    }
  }

  // el builds an element: attributes (skipped when null, undefined or
  // false) and children (nodes or text).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      e.setAttribute(k, v === true ? "" : String(v));
    }
    e.append(...children.map((c) => (c instanceof Node ? c : String(c))));
    return e;
  }

  function td(field, attrs, ...children) {
    return el("td", Object.assign({ "data-field": field }, attrs), ...children);
  }

  function num(field, value) {
    return td(field, { class: "num" }, value === null || value === undefined ? "—" : String(value));
  }

  // fill replaces the rows of table id, or shows message in one row when
  // there are none.
  function fill(id, rows, message, count) {
    const table = document.getElementById(id);
    const tbody = table.tBodies[0];
    const cols = table.tHead.rows[0].cells.length;
    if (rows.length === 0) {
      tbody.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: cols }, message)));
    } else {
      tbody.replaceChildren(...rows);
    }
    document.getElementById(id + "-count").textContent = count === null ? "" : "(" + count + ")";
  }

  function renderNodes(members) {
    const rows = members.map((m) =>
      el("tr", { "data-node": m.name },
        el("th", { scope: "row", "data-field": "name" }, m.name),
        td("addr", { class: "addr" }, m.addr),
        td("status", { class: "status-" + m.status }, m.status),
        td("tags", {}, ...tagsOf(m.tags)),
      ));
    fill("nodes", rows, "No nodes.", members.length);
  }

  function tagsOf(tags) {
    const keys = Object.keys(tags || {}).sort();
    if (keys.length === 0) return ["—"];
    return keys.map((k) => el("span", { class: "tag", "data-tag": k }, k + "=" + tags[k]));
  }

  function renderEnsembles(ensembles, lags) {
    const rows = ensembles.map((e) => {
      const known = e.primary !== "";
      const members = el("ul", { class: "members" }, ...(e.members || []).map((m) =>
        el("li", { "data-member": m, "data-primary": m === e.primary, class: m === e.primary ? "is-primary" : null }, m)));
      return el("tr", { "data-ensemble": e.name },
        el("th", { scope: "row", "data-field": "name" }, e.name),
        td("type", {}, e.type),
        num("replicas", e.replicas),
        num("epoch", e.epoch),
        num("view", known ? e.view : null),
        td("primary", known ? {} : { class: "unknown", title: "no member answered" }, known ? e.primary : "none"),
        td("members", {}, members),
        num("commit", known ? e.commit : null),
        num("lag", lags.has(e.name) ? lags.get(e.name) : null),
      );
    });
    fill("ensembles", rows, "No ensembles.", ensembles.length);
  }

  function renderWorkers(workers) {
    const rows = workers.map((w) =>
      el("tr", { "data-worker": w.name, "data-worker-node": w.node },
        el("th", { scope: "row", "data-field": "name" }, w.name),
        td("node", {}, w.node),
        td("mode", {}, w.mode),
        td("state", { class: "state-" + w.state }, w.state),
        td("role", {}, w.role || "—"),
        num("restarts", w.restarts),
        num("fence", w.fence),
        td("healthy", { class: w.healthy ? "healthy-yes" : "healthy-no" }, w.healthy ? "yes" : "no"),
      ));
    fill("workers", rows, "No workers.", workers.length);
  }

  // lagsOf reads hasup_ensemble_lag_ops from the metrics text.
  function lagsOf(text) {
    const lags = new Map();
    const re = /^hasup_ensemble_lag_ops\{ensemble="((?:[^"\\]|\\.)*)"\} (\S+)$/gm;
    for (const m of text.matchAll(re)) {
      lags.set(m[1].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c)), Number(m[2]));
    }
    return lags;
  }

  function showError(message) {
    const banner = document.getElementById("error");
    if (message === null) {
      banner.hidden = true;
      banner.textContent = "";
      return;
    }
    const since = lastOK ? " Showing data from " + lastOK.toLocaleTimeString() + "." : "";
    banner.textContent = message + since;
    banner.hidden = false;
  }

  function describe(err) {
    if (err instanceof HTTPError) return err.message;
    if (err && err.name === "AbortError") return "no answer within " + TIMEOUT_MS / 1000 + " s";
    return String(err && err.message ? err.message : err);
  }

  async function refresh() {
    const [health, members, ensembles, workers, metrics] = await Promise.allSettled([
      get("../v1/health"), get("../v1/members"), get("../v1/ensembles"), get("../v1/workers"), get("../metrics", true),
    ]);
    const unreachable = [health, members].find((r) => r.status === "rejected");
    if (unreachable) {
      document.body.dataset.state = "error";
      showError("The hasup API is unreachable: " + describe(unreachable.reason) + ".");
      return;
    }
    lastOK = new Date();
    const h = health.value;
    document.getElementById("node").textContent = h.node;
    document.getElementById("registry").textContent = h.registry ? "formed" : "waiting for the cluster to form";
    document.title = "hasup status: " + h.node;
    renderNodes(members.value);
    if (ensembles.status === "fulfilled") {
      renderEnsembles(ensembles.value, metrics.status === "fulfilled" ? lagsOf(metrics.value) : new Map());
    } else {
      fill("ensembles", [], "Ensembles unavailable: " + describe(ensembles.reason) + ".", null);
    }
    if (workers.status === "fulfilled") {
      renderWorkers(workers.value);
    } else if (workers.reason instanceof HTTPError && workers.reason.status === 404) {
      fill("workers", [], "Workers are not reported by this agent.", null);
    } else {
      fill("workers", [], "Workers unavailable: " + describe(workers.reason) + ".", null);
    }
    const t = document.getElementById("updated");
    t.dateTime = lastOK.toISOString();
    t.textContent = lastOK.toLocaleTimeString();
    document.body.dataset.state = "ok";
    showError(null);
  }

  async function loop() {
    try {
      await refresh();
    } catch (err) {
      document.body.dataset.state = "error";
      showError("The status page failed: " + describe(err) + ".");
    }
    setTimeout(loop, POLL_MS);
  }

  loop();
})();
