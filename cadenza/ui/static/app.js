// Cadenza web UI: one page whose script routes the URL to a view and reads /api/v1.
// Every value from the server is put on the page as text (never as HTML).
"use strict";

const STATUSES = ["Running", "Completed", "Failed", "Canceled", "Terminated", "ContinuedAsNew", "TimedOut"];
const HISTORY_PAGE = 200;
const main = () => document.getElementById("main");
let viewToken = 0; // bumps on every navigation: loops of an old view (live follow) stop
let navigated = false; // a navigation inside the page has happened (not only the first load)

// -- helpers ---------------------------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class ApiError extends Error {
  constructor(httpStatus, body) {
    super((body && body.message) || `HTTP ${httpStatus}`);
    this.httpStatus = httpStatus;
    this.body = body || {};
  }
}

async function api(path, options) {
  const resp = await fetch("/api/v1" + path, options);
  let body = null;
  try { body = await resp.json(); } catch (e) { body = null; }
  if (!resp.ok) throw new ApiError(resp.status, body && body.error);
  return body;
}

function post(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}) });
}

const enc = encodeURIComponent;

function fmtTime(us) {
  if (!us) return "—";
  return new Date(us / 1000).toISOString().replace("T", " ").replace("Z", " UTC");
}

function fmtDuration(us) {
  if (us < 0) return "—";
  const s = us / 1e6;
  if (s < 1) return `${Math.round(us / 1000)} ms`;
  if (s < 120) return `${s.toFixed(2)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function statusBadge(status) {
  const key = String(status || "").toLowerCase();
  return h("span", { class: `status status-${key}` }, status || "—");
}

// A decoded payload ({encoding, json} or {encoding, base64}) or a list of them, as one value to show.
function payloadValue(p) {
  if (Array.isArray(p)) return p.length === 1 ? payloadValue(p[0]) : p.map(payloadValue);
  if (p && typeof p === "object" && "encoding" in p && ("json" in p || "base64" in p)) {
    return "json" in p ? p.json : { encoding: p.encoding, base64: p.base64 };
  }
  return p;
}

function jsonBlock(value, label) {
  return h("pre", { class: "json", tabindex: "0", "aria-label": label || "JSON" }, JSON.stringify(value, null, 2));
}

function link(href, text, attrs) {
  return h("a", Object.assign({ href, "data-nav": true }, attrs || {}), text);
}

function wfPath(ns, wid, rid) {
  return `/namespaces/${enc(ns)}/workflows/${enc(wid)}` + (rid ? `/${enc(rid)}` : "");
}

function wfApi(ns, wid) {
  return `/namespaces/${enc(ns)}/workflows/${enc(wid)}`;
}

function announce(text) {
  const live = document.getElementById("live");
  live.textContent = "";
  setTimeout(() => { live.textContent = text; }, 50);
}

function render(title, ...content) {
  document.title = `${title} · Cadenza`;
  const m = main();
  m.replaceChildren(...content);
  // After a navigation inside the page, reading starts at the new content (as after a page load);
  // on the first load the keyboard starts at the top, with the skip link.
  if (navigated) m.focus({ preventScroll: true });
}

function errorView(err) {
  if (err instanceof ApiError && err.httpStatus === 404) {
    render("Not found", h("h1", {}, "Not found"), h("p", { class: "error", role: "alert" }, err.message),
      h("p", {}, link("/namespaces", "Back to the namespaces")));
    document.body.dataset.view = "not-found";
    return;
  }
  render("Error", h("h1", {}, "Something went wrong"), h("p", { class: "error", role: "alert" }, String(err.message || err)));
  document.body.dataset.view = "error";
}

// -- the confirmation dialog --------------------------------------------------------------------------------

// Opens the dialog with `body` (nodes) and calls `action()` on confirm; the dialog stays open with the
// server's error when the action fails, and closes when it succeeds. `check()` may refuse before sending.
function confirmAction({ title, body, confirmLabel, action }) {
  const dialog = document.getElementById("confirm");
  const form = document.getElementById("confirm-form");
  const error = document.getElementById("confirm-error");
  const ok = document.getElementById("confirm-ok");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-body").replaceChildren(...body);
  ok.textContent = confirmLabel || "Confirm";
  ok.disabled = false;
  error.hidden = true;
  error.textContent = "";
  const onSubmit = async (ev) => {
    ev.preventDefault();
    ok.disabled = true;
    error.hidden = true;
    try {
      const message = await action();
      form.removeEventListener("submit", onSubmit);
      dialog.close();
      if (message) announce(message);
    } catch (err) {
      error.textContent = err.message || String(err);
      error.hidden = false;
      ok.disabled = false;
    }
  };
  form.addEventListener("submit", onSubmit);
  document.getElementById("confirm-cancel").onclick = () => { form.removeEventListener("submit", onSubmit); dialog.close(); };
  dialog.addEventListener("close", () => form.removeEventListener("submit", onSubmit), { once: true });
  dialog.showModal();
  const first = dialog.querySelector("#confirm-body input, #confirm-body textarea, #confirm-body select");
  (first || ok).focus();
}

// -- routing ------------------------------------------------------------------------------------------------

const routes = [
  [/^\/$/, () => { history.replaceState(null, "", "/namespaces"); return namespacesView(); }],
  [/^\/namespaces\/?$/, namespacesView],
  [/^\/namespaces\/([^/]+)\/?$/, namespaceView],
  [/^\/namespaces\/([^/]+)\/workflows\/?$/, workflowsView],
  [/^\/namespaces\/([^/]+)\/workflows\/([^/]+)(?:\/([^/]+))?\/?$/, workflowView],
  [/^\/namespaces\/([^/]+)\/task-queues\/([^/]+)\/?$/, taskQueueView],
  [/^\/cluster\/?$/, clusterView],
];

function navigate(url, replace) {
  navigated = true;
  if (replace) history.replaceState(null, "", url); else history.pushState(null, "", url);
  route();
}

function route() {
  viewToken += 1;
  const path = location.pathname;
  for (const a of document.querySelectorAll("header nav a")) {
    a.toggleAttribute("aria-current", path.startsWith(new URL(a.href).pathname));
    if (a.hasAttribute("aria-current")) a.setAttribute("aria-current", "page");
  }
  for (const [re, view] of routes) {
    const m = path.match(re);
    if (m) {
      const args = m.slice(1).map((s) => (s === undefined ? undefined : decodeURIComponent(s)));
      document.body.dataset.view = "loading";
      Promise.resolve(view(...args)).catch(errorView);
      return;
    }
  }
  errorView(new ApiError(404, { message: `No page at ${path}` }));
}

document.addEventListener("click", (ev) => {
  const a = ev.target.closest && ev.target.closest("a[data-nav]");
  if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
  ev.preventDefault();
  navigate(a.getAttribute("href"));
});
window.addEventListener("popstate", () => { navigated = true; route(); });
window.addEventListener("DOMContentLoaded", route);

function setNamespace(ns) {
  document.getElementById("nav-workflows").setAttribute("href", `/namespaces/${enc(ns)}/workflows`);
}

// -- namespaces ---------------------------------------------------------------------------------------------

async function namespacesView() {
  const { namespaces } = await api("/namespaces");
  const rows = namespaces.map((n) => h("tr", {},
    h("td", {}, link(`/namespaces/${enc(n.name)}/workflows`, n.name)),
    h("td", {}, n.state), h("td", {}, `${n.retention_days} days`),
    h("td", {}, n.is_global ? "global" : "local"), h("td", {}, n.active_cluster || "—"),
    h("td", {}, link(`/namespaces/${enc(n.name)}`, "details", { "aria-label": `details of ${n.name}` }))));
  render("Namespaces", h("h1", {}, "Namespaces"),
    h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Name", "State", "Retention", "Scope", "Active cluster", ""].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows))));
  document.body.dataset.view = "namespaces";
}

async function namespaceView(ns) {
  const n = await api(`/namespaces/${enc(ns)}`);
  setNamespace(ns);
  const items = [
    ["Name", n.name], ["Id", n.id], ["Description", n.description || "—"], ["Owner", n.owner_email || "—"],
    ["State", n.state], ["Retention", `${n.retention_days} days`], ["Scope", n.is_global ? "global" : "local"],
    ["Clusters", (n.clusters || []).join(", ") || "—"], ["Active cluster", n.active_cluster || "—"],
    ["Failover version", n.failover_version], ["History archival", n.history_archival_state || "—"],
    ["Visibility archival", n.visibility_archival_state || "—"],
  ];
  render(`Namespace ${ns}`, h("div", { class: "crumbs" }, link("/namespaces", "Namespaces"), " / ", ns),
    h("h1", {}, `Namespace ${ns}`),
    h("p", {}, link(`/namespaces/${enc(ns)}/workflows`, "Workflows of this namespace")),
    h("dl", { class: "summary" }, items.map(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))])),
    (n.failover_history || []).length ? [h("h2", {}, "Failovers"), h("ul", {}, n.failover_history.map((f) => h("li", {}, f)))] : []);
  document.body.dataset.view = "namespace";
}

// -- workflows list -----------------------------------------------------------------------------------------

// The list query with a status filter added: ORDER BY stays at the end.
function withStatus(query, status) {
  if (!status) return query;
  const filter = `ExecutionStatus = '${status}'`;
  const m = query.match(/^([\s\S]*?)(\border\s+by\b[\s\S]*)?$/i);
  const where = (m[1] || "").trim();
  const order = m[2] ? " " + m[2] : "";
  return (where ? `(${where}) AND ${filter}` : filter) + order;
}

function withoutOrder(query) {
  return query.replace(/\border\s+by\b[\s\S]*$/i, "").trim();
}

function queryErrorBox(query, err) {
  const box = h("div", { class: "query-error", role: "alert", id: "query-error" },
    h("p", { class: "error" }, err.message));
  if (typeof err.body.position === "number") {
    const pos = err.body.position;
    box.append(h("pre", { class: "mono", "aria-label": `the query, marked at position ${pos}` },
      query + "\n" + " ".repeat(pos) + "^"));
  }
  return box;
}

async function workflowsView(ns) {
  setNamespace(ns);
  const params = new URLSearchParams(location.search);
  const query = params.get("query") || "";
  const status = params.get("status") || "";
  const token = params.get("next_page_token") || "";
  const go = (q, s) => {
    const p = new URLSearchParams();
    if (q) p.set("query", q);
    if (s) p.set("status", s);
    navigate(`/namespaces/${enc(ns)}/workflows` + (p.toString() ? "?" + p : ""));
  };
  const input = h("input", { id: "query", name: "query", type: "search", value: query, autocomplete: "off",
    placeholder: "WorkflowType = 'VideoPipeline' AND StartTime > '2026-01-01T00:00:00Z'", "aria-describedby": "query-help" });
  const form = h("form", { class: "query", role: "search", onsubmit: (ev) => { ev.preventDefault(); go(input.value.trim(), status); } },
    h("label", { for: "query" }, "Query"), input, h("button", { type: "submit", class: "primary" }, "Search"));
  const help = h("p", { id: "query-help", class: "muted" },
    "The language of `cadenza workflow list -q`: = != > >= < <=, AND OR ( ), BETWEEN, IN, STARTS_WITH, ORDER BY.");
  const filters = h("div", { class: "filters", role: "group", "aria-label": "Status filter" });
  const results = h("div", { id: "results" }, h("p", { class: "muted" }, "Loading…"));
  render(`Workflows · ${ns}`, h("div", { class: "crumbs" }, link("/namespaces", "Namespaces"), " / ", link(`/namespaces/${enc(ns)}`, ns)),
    h("h1", {}, `Workflows of ${ns}`), form, help, filters, results);

  const fullQuery = withStatus(query, status);
  const listing = api(`/namespaces/${enc(ns)}/workflows?` + new URLSearchParams(
    Object.assign({ query: fullQuery, page_size: "50" }, token ? { next_page_token: token } : {})));
  const counting = api(`/namespaces/${enc(ns)}/workflow-counts?` + new URLSearchParams({ query: withoutOrder(query) }))
    .catch(() => null);
  let page;
  try {
    page = await listing;
  } catch (err) {
    if (err instanceof ApiError && err.httpStatus === 400) {
      results.replaceChildren(queryErrorBox(fullQuery, err));
      document.body.dataset.view = "workflows";
      return;
    }
    throw err;
  }
  const counts = await counting;
  const groups = (counts && counts.groups) || {};
  const total = counts ? counts.count : null;
  const filterButton = (label, value, n) => h("button", { type: "button", "aria-pressed": String(status === value),
    onclick: () => go(query, value) }, n === null || n === undefined ? label : `${label} (${n})`);
  filters.replaceChildren(filterButton("All", "", total),
    ...STATUSES.map((s) => filterButton(s, s, groups[s] || 0)));

  const rows = page.executions;
  const saKeys = [...new Set(rows.flatMap((r) => Object.keys(r.search_attributes || {})))]
    .filter((k) => !["BinaryChecksums", "BuildIds", "TemporalChangeVersion"].includes(k)).sort().slice(0, 6);
  const head = ["Status", "Workflow ID", "Run ID", "Type", "Start", "Close", ...saKeys];
  const body = rows.map((r) => h("tr", {},
    h("td", {}, statusBadge(r.status)),
    h("td", { class: "wrap" }, link(wfPath(ns, r.workflow_id, r.run_id), r.workflow_id)),
    h("td", { class: "mono" }, r.run_id),
    h("td", {}, r.workflow_type),
    h("td", {}, fmtTime(r.start_time)), h("td", {}, fmtTime(r.close_time)),
    ...saKeys.map((k) => h("td", {}, k in (r.search_attributes || {}) ? JSON.stringify(payloadValue(r.search_attributes[k])) : ""))));
  const pager = h("div", { class: "toolbar" });
  if (token) pager.append(h("button", { type: "button", onclick: () => go(query, status) }, "First page"));
  if (page.next_page_token) {
    const p = new URLSearchParams(location.search);
    p.set("next_page_token", page.next_page_token);
    pager.append(link(`/namespaces/${enc(ns)}/workflows?${p}`, "Next page", { class: "button", id: "next-page" }));
  }
  results.replaceChildren(
    rows.length
      ? h("div", { class: "table-wrap" }, h("table", { id: "workflows" },
        h("caption", { class: "visually-hidden" }, `Workflows of ${ns}`),
        h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, body)))
      : h("p", { class: "muted" }, "No workflow matches."),
    pager);
  document.body.dataset.view = "workflows";
}

// -- one workflow -------------------------------------------------------------------------------------------

function summaryList(items) {
  return h("dl", { class: "summary" }, items.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

async function workflowView(ns, wid, rid) {
  setNamespace(ns);
  const token = viewToken;
  const base = wfApi(ns, wid);
  const runQ = rid ? `?run_id=${enc(rid)}` : "";
  const desc = await api(base + runQ);
  const ex = desc.execution;
  rid = ex.run_id;
  const pinned = `?run_id=${enc(rid)}`;
  if (!location.pathname.endsWith(`/${enc(rid)}`)) history.replaceState(null, "", wfPath(ns, wid, rid));

  // The history table shows pages from the first event (lastEventId: the last of them) and, for an
  // open run, a live tail from liveFrom on (liveNext: the next event to wait for), so new events
  // show at once however much of the history is loaded; the pages stop where the tail begins.
  const state = { ns, wid, rid, base, pinned, token, lastEventId: 0, historyToken: null, allLoaded: false,
    liveFrom: Infinity, liveNext: 0, historyLength: ex.history_length };
  const summary = h("section", { class: "panel", "aria-labelledby": "summary-h", id: "summary" });
  const io = h("section", { class: "panel", "aria-labelledby": "io-h", id: "io" });
  const pending = h("section", { class: "panel", "aria-labelledby": "pending-h", id: "pending" });
  const actions = h("div", { class: "toolbar", id: "actions" });
  const tabs = buildTabs(state);

  const refresh = async () => {
    const d = await api(base + pinned);
    fillSummary(summary, io, d, state);
    fillActions(actions, d, state, refresh);
    const tl = await api(base + "/timeline" + pinned);
    fillPending(pending, d, tl);
    fillTimeline(tabs.timeline, tl);
    fillResetChoices(state, tl);
    return d;
  };
  render(`Workflow ${wid}`,
    h("div", { class: "crumbs" }, link("/namespaces", "Namespaces"), " / ", link(`/namespaces/${enc(ns)}/workflows`, ns), " / ", wid),
    h("h1", {}, wid), actions, h("div", { class: "panels" }, summary, io, pending), tabs.root);
  const d = await refresh();
  if (d.execution.status === "RUNNING") state.liveFrom = state.liveNext = d.execution.history_length + 1;
  await loadHistoryPage(state, tabs.history);
  document.body.dataset.view = "workflow";
  if (d.execution.status === "RUNNING") follow(state, tabs.history, refresh);
}

function fillSummary(summary, io, d, state) {
  const ex = d.execution;
  const { ns, wid } = state;
  summary.replaceChildren(h("h2", { id: "summary-h" }, "Summary"), summaryList([
    ["Status", h("span", { id: "wf-status" }, statusBadge(ex.status))],
    ["Type", ex.workflow_type],
    ["Workflow ID", wid],
    ["Run ID", h("span", { class: "mono" }, ex.run_id)],
    ["Task queue", link(`/namespaces/${enc(ns)}/task-queues/${enc(ex.task_queue)}`, ex.task_queue)],
    ["Start", fmtTime(ex.start_time)],
    ["Close", fmtTime(ex.close_time)],
    ["Duration", ex.close_time ? fmtDuration(ex.close_time - ex.start_time) : "running"],
    ["History", `${ex.history_length} events, ${ex.history_size_bytes} bytes`],
    ["Attempt", String(ex.attempt)],
    ex.parent_workflow_id ? ["Parent", link(wfPath(ns, ex.parent_workflow_id, ex.parent_run_id), ex.parent_workflow_id)] : null,
    d.continued_from_run_id ? ["Continued from", link(wfPath(ns, wid, d.continued_from_run_id), d.continued_from_run_id)] : null,
    d.continued_as_new_run_id ? ["Continued as", link(wfPath(ns, wid, d.continued_as_new_run_id), d.continued_as_new_run_id)] : null,
    Object.keys(ex.search_attributes || {}).length ? ["Search attributes", jsonBlock(payloadValue(Object.fromEntries(
      Object.entries(ex.search_attributes).map(([k, v]) => [k, payloadValue(v)]))), "search attributes")] : null,
    Object.keys(ex.memo || {}).length ? ["Memo", jsonBlock(Object.fromEntries(
      Object.entries(ex.memo).map(([k, v]) => [k, payloadValue(v)])), "memo")] : null,
  ]), h("p", {}, h("a", { href: `/api/v1${state.base}/history.json${state.pinned}`, download: "", id: "download" },
    "Download the history (JSON for the Replayer)")));
  const close = d.close_event;
  const outcome = [];
  if (close) {
    const a = close.attributes || {};
    if (a.result) outcome.push(h("h3", {}, "Result"), jsonBlock(payloadValue(a.result), "result"));
    if (a.failure) outcome.push(h("h3", {}, "Failure"), jsonBlock(a.failure, "failure"));
    if ("reason" in a) outcome.push(h("h3", {}, "Termination reason"), h("p", { id: "terminate-reason" }, a.reason || "—"));
  }
  io.replaceChildren(h("h2", { id: "io-h" }, "Input and result"), h("h3", {}, "Input"),
    jsonBlock(payloadValue(d.input), "input"), ...(close ? outcome : [h("p", { class: "muted" }, "No result yet: the run is open.")]));
}

function fillPending(pending, d, tl) {
  const acts = d.execution.pending_activities || [];
  const list = (items, text) => items.length ? h("ul", {}, items.map((x) => h("li", {}, ...text(x)))) : h("p", { class: "muted" }, "None.");
  pending.replaceChildren(h("h2", { id: "pending-h" }, "Pending"),
    h("h3", {}, `Activities (${acts.length})`),
    list(acts, (a) => [`${a.activity_type} (${a.activity_id}) ${a.state}, attempt ${a.attempt}`,
      a.last_failure ? jsonBlock(a.last_failure, "last failure") : null,
      a.heartbeat_details ? jsonBlock(payloadValue(a.heartbeat_details), "heartbeat details") : null]),
    h("h3", {}, `Children (${tl.pending_children.length})`),
    list(tl.pending_children, (c) => [link(wfPath(c.detail.namespace || "default", c.id, c.run_id), c.id), ` ${c.name} ${c.status}`]),
    h("h3", {}, `Timers (${tl.pending_timers.length})`),
    list(tl.pending_timers, (t) => [`${t.id}: ${t.name}, started ${fmtTime(t.start_time)}`]));
}

function fillActions(actions, d, state, refresh) {
  const running = d.execution.status === "RUNNING";
  const { base, pinned, wid } = state;
  const done = async (message) => { await refresh().catch(() => {}); return message; };
  actions.replaceChildren(
    h("button", { type: "button", id: "action-signal", disabled: !running, onclick: () => {
      const name = h("input", { id: "signal-name", required: true, autocomplete: "off" });
      const input = h("textarea", { id: "signal-input", "aria-describedby": "signal-input-help", spellcheck: "false" });
      confirmAction({ title: "Send a signal", confirmLabel: "Send signal",
        body: [h("p", {}, `The signal is recorded in the history of ${wid} and handed to the workflow.`),
          h("label", { for: "signal-name" }, "Signal name"), name,
          h("label", { for: "signal-input" }, "Input (one JSON value, e.g. \"alice\"; empty for none)"), input,
          h("p", { id: "signal-input-help", class: "muted" }, "Refused before sending unless it parses as JSON.")],
        action: async () => {
          if (!name.value.trim()) throw new Error("The signal name is required.");
          let args = [];
          if (input.value.trim()) {
            try { args = [JSON.parse(input.value)]; } catch (e) { throw new Error(`Input is not valid JSON: ${e.message}. Nothing was sent.`); }
          }
          await post(`${base}/signal${pinned}`, { name: name.value.trim(), input: args });
          return done(`Signal ${name.value.trim()} sent`);
        } });
    } }, "Signal"),
    h("button", { type: "button", id: "action-cancel", disabled: !running, onclick: () => confirmAction({
      title: "Request cancellation", confirmLabel: "Request cancellation",
      body: [h("p", {}, `The workflow code of ${wid} is asked to cancel; it decides how to finish.`)],
      action: async () => { await post(`${base}/cancel${pinned}`); return done("Cancellation requested"); } }) }, "Cancel"),
    h("button", { type: "button", id: "action-terminate", disabled: !running, onclick: () => {
      const reason = h("input", { id: "terminate-reason-input", autocomplete: "off" });
      confirmAction({ title: "Terminate", confirmLabel: "Terminate",
        body: [h("p", {}, `The run of ${wid} ends now, as terminated: no workflow code runs again and pending activities are abandoned.`),
          h("label", { for: "terminate-reason-input" }, "Reason"), reason],
        action: async () => { await post(`${base}/terminate${pinned}`, { reason: reason.value }); return done("Terminated"); } });
    } }, "Terminate"),
    h("button", { type: "button", id: "action-reset", onclick: () => {
      const select = h("select", { id: "reset-event" }, (state.resetChoices || []).map((c) =>
        h("option", { value: c.event_id }, `event ${c.event_id} at ${fmtTime(c.event_time)}`)));
      const reason = h("input", { id: "reset-reason", autocomplete: "off", required: true });
      confirmAction({ title: "Reset", confirmLabel: "Reset",
        body: [h("p", {}, `A new run of ${wid} starts from the chosen completed workflow task; the current run, if open, is terminated. Signals after that point are re-applied.`),
          h("label", { for: "reset-event" }, "Workflow task"), select, h("label", { for: "reset-reason" }, "Reason"), reason],
        action: async () => {
          if (!reason.value.trim()) throw new Error("A reason is required for a reset.");
          const r = await post(`${base}/reset${pinned}`, { event_id: Number(select.value), reason: reason.value.trim() });
          navigate(wfPath(state.ns, wid, r.run_id));
          return `Reset: new run ${r.run_id}`;
        } });
    } }, "Reset"));
}

function fillResetChoices(state, tl) {
  state.resetChoices = tl.workflow_tasks;
}

function buildTabs(state) {
  const names = [["history", "History"], ["timeline", "Timeline"], ["queries", "Queries"]];
  const list = h("div", { class: "tabs", role: "tablist", "aria-label": "Workflow views" });
  const panels = {};
  const buttons = {};
  const select = (key, focus) => {
    for (const [k] of names) {
      buttons[k].setAttribute("aria-selected", String(k === key));
      buttons[k].tabIndex = k === key ? 0 : -1;
      panels[k].hidden = k !== key;
    }
    if (focus) buttons[key].focus();
  };
  names.forEach(([key, label], i) => {
    buttons[key] = h("button", { type: "button", role: "tab", id: `tab-${key}`, "aria-controls": `panel-${key}`,
      onclick: () => select(key),
      onkeydown: (ev) => {
        const dir = ev.key === "ArrowRight" ? 1 : ev.key === "ArrowLeft" ? -1 : 0;
        if (dir) select(names[(i + dir + names.length) % names.length][0], true);
      } }, label);
    panels[key] = h("div", { role: "tabpanel", id: `panel-${key}`, "aria-labelledby": `tab-${key}` });
    list.append(buttons[key]);
  });
  panels.history.append(h("div", { class: "table-wrap" }, h("table", { id: "history" },
    h("caption", { class: "visually-hidden" }, "History events"),
    h("thead", {}, h("tr", {}, ["", "ID", "Time", "Type"].map((c) => h("th", { scope: "col" }, c)),
      h("th", { scope: "col", class: "col-summary" }, "Summary"))),
    h("tbody", { id: "history-pages" }), h("tbody", { id: "history-live" }))),
  h("div", { class: "toolbar", id: "history-more" }));
  panels.queries.append(queryForm(state));
  select("history");
  return { root: h("section", { "aria-label": "History, timeline and queries" }, list, ...Object.values(panels)),
    history: panels.history, timeline: panels.timeline };
}

function eventSummary(e) {
  const a = e.attributes || {};
  const keep = {};
  for (const [k, v] of Object.entries(a)) {
    if (v === null || v === "" || v === 0 || v === false || (Array.isArray(v) && !v.length) ||
      (typeof v === "object" && !Array.isArray(v) && !Object.keys(v).length)) continue;
    if (["header", "identity", "request_id"].includes(k)) continue;
    keep[k] = Array.isArray(v) || (v && typeof v === "object" && "encoding" in v) ? payloadValue(v) : v;
  }
  const text = JSON.stringify(keep);
  return text.length > 140 ? text.slice(0, 139) + "…" : text;
}

function eventRows(e) {
  const detailsId = `event-${e.event_id}-details`;
  const toggle = h("button", { type: "button", class: "expand", "aria-expanded": "false", "aria-controls": detailsId,
    "aria-label": `details of event ${e.event_id}` }, "+");
  const details = h("tr", { class: "details", id: detailsId, hidden: true },
    h("td", { colspan: "5" }, jsonBlock(e, `event ${e.event_id}`)));
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    toggle.textContent = open ? "−" : "+";
    details.hidden = !open;
  });
  return [h("tr", { "data-event-id": e.event_id }, h("td", {}, toggle), h("td", {}, String(e.event_id)),
    h("td", {}, fmtTime(e.event_time)), h("td", {}, e.event_type),
    h("td", { class: "mono wrap col-summary" }, eventSummary(e))), details];
}

function appendEvents(state, panel, events) {
  const tbody = panel.querySelector("#history-pages");
  for (const e of events) {
    if (e.event_id <= state.lastEventId || e.event_id >= state.liveFrom) continue;
    tbody.append(...eventRows(e));
    state.lastEventId = e.event_id;
  }
}

function appendLiveEvents(state, panel, events) {
  const tbody = panel.querySelector("#history-live");
  for (const e of events) {
    if (e.event_id < state.liveNext) continue;
    tbody.append(...eventRows(e));
    state.liveNext = e.event_id + 1;
  }
  state.historyLength = Math.max(state.historyLength, state.liveNext - 1);
}

function historyCount(state, panel) {
  const shown = state.lastEventId + (state.liveFrom === Infinity ? 0 : state.liveNext - state.liveFrom);
  const total = Math.max(state.historyLength, state.lastEventId);
  const text = shown >= total ? `${shown} events shown` : `${shown} of ${total} events shown`;
  panel.querySelector("#history-count").textContent = text;
}

async function loadHistoryPage(state, panel) {
  const q = new URLSearchParams({ run_id: state.rid, page_size: String(HISTORY_PAGE) });
  if (state.historyToken) q.set("next_page_token", state.historyToken);
  const page = await api(`${state.base}/history?${q}`);
  appendEvents(state, panel, page.events);
  state.historyToken = page.next_page_token;
  state.allLoaded = !page.next_page_token || state.lastEventId >= state.liveFrom - 1;
  const more = panel.querySelector("#history-more");
  more.replaceChildren(h("span", { class: "muted", id: "history-count" }));
  historyCount(state, panel);
  if (!state.allLoaded) {
    more.append(h("button", { type: "button", id: "history-load-more", onclick: async (ev) => {
      ev.target.disabled = true;
      await loadHistoryPage(state, panel);
      const next = panel.querySelector("#history-load-more");
      (next || panel.querySelector("#history-count")).focus && (next || ev.target).focus();
    } }, `Load ${HISTORY_PAGE} more`));
  }
}

// Follows an open run: long-polls for the events after the last one shown, adds them to the table's
// live tail (whether or not every page before them is loaded) and refreshes the summary and the
// timeline, until the run closes or the view changes.
async function follow(state, panel, refresh) {
  let failures = 0;
  while (state.token === viewToken) {
    try {
      const q = new URLSearchParams({ run_id: state.rid, wait: "true", page_size: String(HISTORY_PAGE),
        first_event_id: String(state.liveNext) });
      const page = await api(`${state.base}/history?${q}`);
      if (state.token !== viewToken) return;
      failures = 0;
      if (!page.events.length) continue;
      appendLiveEvents(state, panel, page.events);
      historyCount(state, panel);
      const d = await refresh();
      if (d.execution.status !== "RUNNING") {
        await followToTheEnd(state, panel);
        announce(`The run is now ${d.execution.status}`);
        return;
      }
    } catch (err) {
      failures += 1;
      if (failures > 5) return;
      await new Promise((r) => setTimeout(r, 1000 * failures));
    }
  }
}

// The run closed: the events between the last one shown and its close event, without waiting.
async function followToTheEnd(state, panel) {
  for (;;) {
    const q = new URLSearchParams({ run_id: state.rid, page_size: String(HISTORY_PAGE), first_event_id: String(state.liveNext) });
    const page = await api(`${state.base}/history?${q}`);
    if (state.token !== viewToken || !page.events.length) break;
    appendLiveEvents(state, panel, page.events);
    historyCount(state, panel);
    if (!page.next_page_token) break;
  }
}

function fillTimeline(panel, tl) {
  const start = tl.start_time;
  const end = Math.max(tl.last_event_time, ...tl.spans.map((s) => s.end_time || 0), start + 1);
  const now = Date.now() * 1000;
  const spanEnd = (s) => s.end_time || Math.max(end, Math.min(now, end));
  const total = Math.max(...tl.spans.map(spanEnd), end) - start || 1;
  const counts = {};
  for (const s of tl.spans) counts[s.kind] = (counts[s.kind] || 0) + 1;
  const items = tl.spans.map((s) => {
    const left = ((s.start_time - start) / total) * 100;
    const width = Math.max(((spanEnd(s) - s.start_time) / total) * 100, 0.4);
    const label = `${s.kind} ${s.name}${s.kind === "activity" ? ` (${s.id})` : s.kind === "child" ? ` ${s.id}` : ` ${s.id}`}`;
    const dur = s.end_time ? fmtDuration(s.end_time - s.start_time) : "pending";
    const cls = ["bar", `kind-${s.kind}`, s.end_time ? "" : "pending", /Fail|TimedOut|Terminated/.test(s.status) ? "failed" : ""].join(" ");
    return h("li", { "data-kind": s.kind, "data-name": s.name, "data-status": s.status },
      h("span", { class: "label" }, `${label}: ${s.status}, ${dur}`),
      h("span", { class: "track", "aria-hidden": "true" }, h("span", { class: cls, style: null, "data-left": left, "data-width": width })));
  });
  panel.replaceChildren(
    h("p", { class: "muted", id: "timeline-summary" }, `${counts.activity || 0} activities, ${counts.timer || 0} timers, ${counts.child || 0} children`),
    tl.truncated ? h("p", { class: "notice", id: "timeline-truncated", role: "status" },
      `This run has more than ${tl.max_events} events: the timeline shows what the first ${tl.events_folded} say. ` +
      "The history table pages through every event.") : null,
    tl.spans.length ? h("ol", { class: "timeline", id: "timeline" }, items) : h("p", { class: "muted" }, "No activities, timers or children."));
  // Positions are set through the CSSOM: the page's content security policy forbids inline style attributes.
  for (const bar of panel.querySelectorAll(".bar")) {
    bar.style.left = `${bar.dataset.left}%`;
    bar.style.width = `${bar.dataset.width}%`;
  }
}

function queryForm(state) {
  const type = h("input", { id: "query-type", value: "__stack_trace", autocomplete: "off" });
  const args = h("textarea", { id: "query-args", spellcheck: "false", placeholder: "[]" });
  const out = h("div", { id: "query-result", "aria-live": "polite" });
  const form = h("form", { onsubmit: async (ev) => {
    ev.preventDefault();
    let parsed = [];
    if (args.value.trim()) {
      try { parsed = JSON.parse(args.value); } catch (e) { out.replaceChildren(h("p", { class: "error", role: "alert" }, `Arguments are not valid JSON: ${e.message}`)); return; }
      if (!Array.isArray(parsed)) { out.replaceChildren(h("p", { class: "error", role: "alert" }, "Arguments must be a JSON array.")); return; }
    }
    out.replaceChildren(h("p", { class: "muted" }, "Asking the workflow…"));
    try {
      const r = await post(`${state.base}/query${state.pinned}`, { type: type.value.trim(), args: parsed });
      const value = payloadValue(r.result);
      out.replaceChildren(typeof value === "string" ? h("pre", { class: "json", tabindex: "0" }, value) : jsonBlock(value, "query result"));
    } catch (err) {
      out.replaceChildren(h("p", { class: "error", role: "alert" }, err.message));
    }
  } },
  h("label", { for: "query-type" }, "Query"), " ", type, " ",
  h("button", { type: "button", onclick: () => { type.value = "__stack_trace"; } }, "Stack trace"),
  h("label", { for: "query-args", class: "visually-hidden" }, "Arguments (a JSON array)"), h("div", {}, args),
  h("button", { type: "submit", class: "primary", id: "query-run" }, "Run query"));
  return h("div", {}, form, out);
}

// -- task queues and clusters -------------------------------------------------------------------------------

async function taskQueueView(ns, name) {
  setNamespace(ns);
  const tq = await api(`/namespaces/${enc(ns)}/task-queues/${enc(name)}`);
  // DescribeTaskQueue per task type: the pollers matching saw in the last few minutes.
  const section = (kind, info) => {
    const id = `pollers-${kind.toLowerCase()}`;
    const sticky = kind === "Workflow";
    const head = ["Poller identity", "Last access", ...(sticky ? ["Sticky queue"] : [])];
    return [h("h2", {}, `${kind} tasks`),
      summaryList([["Backlog (in memory)", String(info.backlog)], ["Pollers seen", String(info.pollers.length)]]),
      info.pollers.length
        ? h("div", { class: "table-wrap" }, h("table", { id },
          h("caption", { class: "visually-hidden" }, `Pollers of ${kind.toLowerCase()} tasks`),
          h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, info.pollers.map((p) => h("tr", {}, h("td", {}, p.identity || "—"),
            h("td", {}, fmtTime(p.last_access_time)),
            sticky ? h("td", { class: "mono wrap" }, p.sticky_task_queue || "—") : null)))))
        : h("p", { class: "muted", id }, "No poller seen in the last few minutes.")];
  };
  render(`Task queue ${name}`, h("div", { class: "crumbs" }, link(`/namespaces/${enc(ns)}/workflows`, ns), " / task queue"),
    h("h1", {}, `Task queue ${name}`), ...section("Workflow", tq.workflow), ...section("Activity", tq.activity));
  document.body.dataset.view = "task-queue";
}

async function clusterView() {
  const c = await api("/cluster");
  const repl = c.replication || {};
  // Zeros until the cluster replicates: a lone cluster has no sources and no DLQ.
  const lagOf = (name) => {
    const src = (repl.sources || []).find((x) => x.cluster === name);
    if (!src) return "0";
    return `${src.lag_messages} messages` + (src.lag_seconds === null ? "" : `, ${src.lag_seconds} s`);
  };
  const dlqDepth = repl.dlq ? repl.dlq.depth : 0;
  const rows = c.clusters.map((k) => h("tr", {},
    h("td", {}, k.name), h("td", {}, k.name === c.current_cluster ? "yes (this one)" : ""),
    h("td", {}, k.enabled ? "enabled" : "disabled"), h("td", {}, String(k.initial_failover_version)),
    h("td", {}, k.rpc_address || "—"),
    h("td", {}, k.name === c.current_cluster ? "—" : lagOf(k.name)),
    h("td", {}, k.name === c.current_cluster ? String(dlqDepth) : "—")));
  render("Clusters", h("h1", {}, "Clusters"),
    h("p", {}, `This is cluster ${c.current_cluster}; failover version increment ${c.failover_version_increment}.`),
    h("div", { class: "table-wrap" }, h("table", { id: "clusters" }, h("thead", {}, h("tr", {},
      ["Name", "Current", "State", "Initial failover version", "Address", "Replication lag (to here)", "DLQ depth"].map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows))),
    c.namespaces.length ? [h("h2", {}, "Global namespaces"), h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Namespace", "Active cluster", "Failover version", "Clusters"].map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, c.namespaces.map((n) => h("tr", {}, h("td", {}, link(`/namespaces/${enc(n.name)}`, n.name)),
        h("td", {}, n.active_cluster), h("td", {}, String(n.failover_version)), h("td", {}, n.clusters.join(", ")))))))] : [],
    c.replication ? [h("h2", {}, "Replication"), jsonBlock(c.replication, "replication state")] : []);
  document.body.dataset.view = "cluster";
}
