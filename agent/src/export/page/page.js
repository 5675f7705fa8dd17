// The edge page: reads api/v1/edges (relative, so a path prefix in front
// of the agent works), draws the table and the graph, refreshes every 5 s.
// Every name comes from the network or Kubernetes: it reaches the DOM as
// text (textContent), never as markup.
"use strict";

const TOKEN_KEY = "plainsight-token";
const REFRESH_MS = 5000;
const SVG = "http://www.w3.org/2000/svg";
const POLICY_RANK = { violation: 0, allowed: 1, ok: 2 };
const WEAK_TLS = new Set(["ssl3", "1.0", "1.1"]);

let edges = [];
let timer = null;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children) {
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Names in natural order: 10.0.0.9 before 10.0.0.10. */
const byName = (a, b) => a.localeCompare(b, undefined, { numeric: true });

/** Kubernetes names are namespace/workload; others are CIDR names or addresses. */
function namespaceOf(name) {
  const i = name.indexOf("/");
  if (i > 0) return name.slice(0, i);
  if (/^[0-9.]+$/.test(name) || name.includes(":")) return "(addresses)";
  return "(named)";
}

function credentials(e) {
  return (e.reasons && e.reasons.cleartext_credentials > 0) || false;
}

/** Violations first, credentials first within a policy, then most flows. */
function order(a, b) {
  return (POLICY_RANK[a.policy] ?? 3) - (POLICY_RANK[b.policy] ?? 3)
    || Number(credentials(b)) - Number(credentials(a))
    || b.flows - a.flows
    || byName(a.client, b.client) || byName(a.server, b.server)
    || a.server_port - b.server_port;
}

function edgeClass(e) {
  if (credentials(e) && e.encryption === "plaintext") return "credentials";
  return e.policy;
}

function ago(rfc3339) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(rfc3339)) / 1000));
  if (!Number.isFinite(s)) return rfc3339;
  if (s < 120) return s + " s ago";
  if (s < 7200) return Math.round(s / 60) + " min ago";
  if (s < 172800) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
}

function pills(map, weak) {
  const span = el("span");
  for (const [k, n] of Object.entries(map || {}).sort((a, b) => b[1] - a[1])) {
    span.append(el("span", { class: "pill" + (weak && weak(k) ? " weak" : ""), title: n + " flows" }, k + " ×" + n));
  }
  return span;
}

// ---- fetching -------------------------------------------------------------

async function load() {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  let r;
  try {
    r = await fetch("api/v1/edges", { headers, cache: "no-store" });
  } catch (err) {
    status("cannot reach the agent: " + err.message, true);
    return;
  }
  if (r.status === 401) {
    $("token-form").hidden = false;
    status(token ? "the token was refused" : "this agent requires a token", true);
    stop();
    return;
  }
  if (!r.ok) {
    status("api/v1/edges answered " + r.status + ": " + (await r.text()).trim(), true);
    return;
  }
  $("token-form").hidden = true;
  const list = await r.json();
  edges = (list.edges || []).slice().sort(order);
  const a = list.agent;
  status(
    (a ? "agent up " + a.uptime_secs + " s, " + a.flows_classified + " flows classified" +
      (a.include_loopback ? "" : " (loopback excluded)") + "; " : "") +
    (list.dropped_flows ? list.dropped_flows + " flows beyond edges.max folded into \"other\"; " : "") +
    "updated " + new Date().toLocaleTimeString(),
    false,
  );
  fillChoices();
  render();
}

function status(text, bad) {
  const s = $("status");
  s.textContent = text;
  s.className = bad ? "error" : "";
}

function start() {
  stop();
  if ($("live").checked) timer = setInterval(load, REFRESH_MS);
}

function stop() {
  if (timer) clearInterval(timer);
  timer = null;
}

// ---- filters --------------------------------------------------------------

function filters() {
  return {
    policy: $("f-policy").value,
    protocol: $("f-protocol").value,
    namespace: $("f-namespace").value,
    text: $("f-text").value.trim().toLowerCase(),
  };
}

function keep(e, f) {
  if (f.policy && e.policy !== f.policy) return false;
  if (f.protocol && e.protocol !== f.protocol) return false;
  if (f.namespace && namespaceOf(e.client) !== f.namespace && namespaceOf(e.server) !== f.namespace) return false;
  if (f.text) {
    const hay = [e.client, e.server, String(e.server_port), e.protocol, ...(e.client_addrs || []),
      ...(e.server_addrs || []), ...(e.sni || [])].join(" ").toLowerCase();
    if (!hay.includes(f.text)) return false;
  }
  return true;
}

/** Options from the data, the current choice kept even when it disappears. */
function fillChoices() {
  const setOptions = (select, values) => {
    const current = select.value;
    const all = new Set(values);
    if (current) all.add(current);
    select.replaceChildren(el("option", { value: "" }, "all"),
      ...[...all].sort().map((v) => el("option", { value: v }, v)));
    select.value = current;
  };
  setOptions($("f-protocol"), edges.map((e) => e.protocol));
  setOptions($("f-namespace"), edges.flatMap((e) => [namespaceOf(e.client), namespaceOf(e.server)]));
}

/** Filters live in the URL fragment, so a filtered view can be shared. */
function saveFilters() {
  const f = filters();
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
  history.replaceState(null, "", q.toString() ? "#" + q.toString() : location.pathname + location.search);
}

function restoreFilters() {
  const q = new URLSearchParams(location.hash.slice(1));
  for (const k of ["policy", "protocol", "namespace", "text"]) {
    const v = q.get(k);
    if (!v) continue;
    const input = $("f-" + k);
    if (input.tagName === "SELECT" && ![...input.options].some((o) => o.value === v)) {
      input.append(el("option", { value: v }, v));
    }
    input.value = v;
  }
}

// ---- rendering ------------------------------------------------------------

function render() {
  const f = filters();
  const shown = edges.filter((e) => keep(e, f));
  $("shown").textContent = shown.length + " of " + edges.length + " edges shown";
  renderSummary();
  renderTable(shown);
  renderGraph(shown);
}

function renderSummary() {
  const flows = edges.reduce((n, e) => n + e.flows, 0);
  const encFlows = edges.filter((e) => e.encryption === "tls" || e.encryption === "encrypted")
    .reduce((n, e) => n + e.flows, 0);
  const card = (label, value, bad) =>
    el("div", { class: "card" + (bad ? " bad" : "") }, el("b", {}, value), label);
  $("summary").replaceChildren(
    card("violations", edges.filter((e) => e.policy === "violation").length, edges.some((e) => e.policy === "violation")),
    card("edges with cleartext credentials", edges.filter(credentials).length, edges.some(credentials)),
    card("plaintext edges", edges.filter((e) => e.encryption === "plaintext").length),
    card("edges", edges.length),
    card("flows encrypted", flows ? Math.round((100 * encFlows) / flows) + " %" : "–"),
  );
}

function renderTable(shown) {
  const rows = shown.map((e) => {
    const rule = e.rule || e.expired_rule;
    const ruleCell = rule
      ? el("span", { title: rule.reason }, (e.expired_rule && !e.rule ? "expired: " : "") + rule.name,
        el("br"), el("span", { class: "muted" }, rule.owner + (rule.expires ? ", until " + rule.expires.slice(0, 10) : "")))
      : "";
    const tr = el("tr", { class: e.policy + (credentials(e) ? " credentials" : "") },
      el("td", {}, e.client),
      el("td", {}, e.server, e.sni && e.sni.length ? el("div", { class: "muted" }, e.sni.join(", ")) : ""),
      el("td", { class: "num" }, e.server_port),
      el("td", {}, e.protocol + (e.inner_protocol ? " (" + e.inner_protocol + ")" : "")),
      el("td", {}, el("span", { class: "pill " + e.encryption }, e.encryption)),
      el("td", {}, el("span", { class: "pill " + e.policy }, e.policy)),
      el("td", { class: "num" }, e.flows),
      el("td", {}, pills(e.reasons, (k) => k === "cleartext_credentials")),
      el("td", {}, pills(e.tls_versions, (k) => WEAK_TLS.has(k)), e.client_auth ? pills(e.client_auth) : ""),
      el("td", {}, pills(e.ciphers)),
      el("td", {}, ruleCell),
      el("td", { title: e.first_seen + " – " + e.last_seen }, ago(e.last_seen)),
    );
    tr.dataset.client = e.client;
    tr.dataset.server = e.server;
    return tr;
  });
  $("edges").tBodies[0].replaceChildren(...rows);
}

/**
 * Deterministic two-column layout: clients left, services (server and
 * port) right, each column grouped by namespace (groups and names
 * sorted), one row per name, so parallel edges to one server stay apart. Edges are curves drawn ok → allowed → violation → credentials, so
 * the ones that matter are on top; crossings stay readable at hundreds of
 * edges because rows never move between refreshes.
 */
function renderGraph(shown) {
  const ROW = 16, GROUP_GAP = 22, TOP = 28, LABEL_W = 260, GAP = 340;
  const width = LABEL_W * 2 + GAP;
  const service = (e) => e.server + " :" + e.server_port;
  const column = (names) => {
    const groups = new Map();
    for (const n of new Set(names)) {
      const g = namespaceOf(n.replace(/ :\d+$/, ""));
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g).push(n);
    }
    const rows = new Map();
    const boxes = [];
    let y = TOP;
    for (const g of [...groups.keys()].sort()) {
      const members = groups.get(g).sort(byName);
      boxes.push({ g, y, h: ROW * (members.length + 1) });
      y += ROW;
      for (const n of members) {
        y += ROW;
        rows.set(n, y - 4);
      }
      y += GROUP_GAP;
    }
    return { rows, boxes, height: y };
  };
  const left = column(shown.map((e) => e.client));
  const right = column(shown.map(service));
  const height = Math.max(left.height, right.height, 80);
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": shown.length + " edges" });
  root.append(svg("text", { x: 4, y: 14, class: "group-label" }, "clients"),
    svg("text", { x: width - 4, y: 14, class: "group-label", "text-anchor": "end" }, "servers"));

  const bad = new Set();
  for (const e of shown) if (e.policy === "violation" || credentials(e)) { bad.add("c:" + e.client); bad.add("s:" + service(e)); }

  const drawColumn = (col, side) => {
    const x = side === "c" ? 0 : LABEL_W + GAP;
    for (const b of col.boxes) {
      root.append(svg("rect", { x, y: b.y, width: LABEL_W, height: b.h, class: "group", rx: 4 }));
      root.append(svg("text", { x: x + 6, y: b.y + ROW - 4, class: "group-label" }, b.g));
    }
    for (const [name, y] of col.rows) {
      const t = svg("text", {
        x: side === "c" ? LABEL_W - 6 : x + 6, y,
        "text-anchor": side === "c" ? "end" : "start",
        class: "node" + (bad.has(side + ":" + name) ? " bad" : ""),
        "data-name": name,
      }, name.length > 38 ? name.slice(0, 37) + "…" : name);
      t.append(svg("title", {}, name));
      const search = name.replace(/ :\d+$/, "");
      t.addEventListener("click", () => { $("f-text").value = search; saveFilters(); render(); });
      root.append(t);
    }
  };
  drawColumn(left, "c");
  drawColumn(right, "s");

  const rank = { ok: 0, allowed: 1, violation: 2, credentials: 3 };
  const paths = shown.map((e) => ({ e, cls: edgeClass(e) })).sort((a, b) => (rank[a.cls] ?? 0) - (rank[b.cls] ?? 0));
  for (const { e, cls } of paths) {
    const y1 = left.rows.get(e.client) - 4, y2 = right.rows.get(service(e)) - 4;
    const x1 = LABEL_W + 2, x2 = LABEL_W + GAP - 2;
    const p = svg("path", {
      d: `M${x1},${y1} C${x1 + GAP / 2},${y1} ${x2 - GAP / 2},${y2} ${x2},${y2}`,
      class: "edge " + cls,
      "data-client": e.client, "data-server": e.server, "data-port": e.server_port,
    });
    p.append(svg("title", {}, `${e.client} → ${e.server}:${e.server_port} ${e.protocol} ${e.encryption} ` +
      `(${e.policy}${credentials(e) ? ", cleartext credentials" : ""}), ${e.flows} flows`));
    root.append(p);
  }
  $("graph").replaceChildren(root);
}

// ---- wiring ---------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  restoreFilters();
  for (const id of ["f-policy", "f-protocol", "f-namespace"]) {
    $(id).addEventListener("change", () => { saveFilters(); render(); });
  }
  $("f-text").addEventListener("input", () => { saveFilters(); render(); });
  $("live").addEventListener("change", start);
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token").value.trim();
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    $("token").value = "";
    load().then(start);
  });
  load().then(start);
});
