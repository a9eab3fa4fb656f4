// The casesync web UI: plain DOM, no framework, and no inline script (the
// page's CSP allows only files of this node). Every call goes to the JSON API
// as the person logged in; the node checks what they may see and records it.
// The CSRF token from the login is kept for this tab only (sessionStorage).
"use strict";

const $ = (id) => document.getElementById(id);
const TYPES = {
  person: ["name"], organisation: ["name"], vehicle: ["registration"], phone: ["number"],
  bank_account: ["iban"], crypto_wallet: ["address", "currency"], location: ["address"],
  event: ["title", "when"], link: ["from", "to", "link_type"], note: ["text"], evidence: ["file"],
};
const PAGE = 50;
const CHART_CAP = 150;

let csrf = sessionStorage.getItem("csrf") || "";
let me = null;
let route = { view: "cases" };
let pageOffset = 0;
let chart = null;
let caseInfo = null;
let trustTwoAdmins = false;
// What the records table shows now: a live update that finds the same page
// leaves the table alone (no flicker, and a click in flight lands).
let shownPage = "";
let events = null;

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function row(cells) {
  const tr = el("tr");
  for (const c of cells) {
    const td = el("td");
    if (c instanceof Node) td.appendChild(c); else td.textContent = c === null || c === undefined ? "" : String(c);
    tr.appendChild(td);
  }
  return tr;
}

function say(text) { $("message").textContent = text || ""; }

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  const why = $("justification").value.trim();
  if (why) headers["X-Justification"] = why;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({}));
  if (res.status === 401) {
    me = null;
    showView("login-view");
    throw new Error(data.error ? data.error.message : "log in");
  }
  if (!res.ok) throw new Error(data.error ? data.error.message : res.statusText);
  return data;
}

function showView(id) {
  for (const v of ["login-view", "cases-view", "case-view", "record-view", "chart-view", "audit-view", "admin-view", "search-view", "approvals-view", "review-view", "erasure-view"]) {
    $(v).hidden = v !== id;
  }
  const logged = id !== "login-view";
  $("logout").hidden = !logged;
  $("nav").hidden = !logged;
  $("search-form").hidden = !logged;
  if (!logged) { $("who").textContent = ""; stopEvents(); }
}

function summary(r) {
  const f = r.fields || {};
  for (const k of ["name", "title", "number", "iban", "address", "registration", "text", "file", "link_type"]) {
    if (f[k] !== undefined) return String(f[k]).slice(0, 60);
  }
  return r.type;
}

// Routes: #/cases, #/case/ID, #/record/ID, #/chart/CASE/RECORD, #/audit
function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  switch (parts[0]) {
    case "case": return { view: "case", id: parts[1] };
    case "record": return { view: "record", id: parts[1] };
    case "chart": return { view: "chart", caseId: parts[1], from: parts[2] };
    case "audit": return { view: "audit" };
    case "admin": return { view: "admin" };
    case "approvals": return { view: "approvals" };
    case "review": return { view: "review" };
    case "erasure": return { view: "erasure", id: parts[1] };
    case "search": return { view: "search", q: parts.slice(1).join("/") };
    default: return { view: "cases" };
  }
}

async function render() {
  say("");
  if (!me) {
    try { me = await api("GET", "/api/me"); } catch (e) { showView("login-view"); return; }
    $("who").textContent = me.name + " (" + me.role + ")";
    $("nav-admin").hidden = me.role !== "admin";
    $("nav-approvals").hidden = me.role === "analyst";
    $("nav-review").hidden = me.role === "analyst";
    startEvents();
  }
  const next = parseRoute();
  if (next.view !== route.view || next.id !== route.id) pageOffset = 0;
  route = next;
  try {
    if (route.view === "case") await renderCase(route.id);
    else if (route.view === "record") await renderRecord(route.id);
    else if (route.view === "chart") await renderChart(route.caseId, route.from);
    else if (route.view === "audit") await renderAudit();
    else if (route.view === "admin") await renderAdmin();
    else if (route.view === "approvals") await renderApprovals();
    else if (route.view === "review") await renderReview();
    else if (route.view === "erasure") await renderErasure(route.id);
    else if (route.view === "search") await renderSearch(route.q);
    else await renderCases();
  } catch (e) { say(e.message); }
}

async function renderCases() {
  const list = await api("GET", "/api/cases");
  const body = $("case-table").tBodies[0];
  body.replaceChildren();
  for (const c of list) {
    const a = el("a", c.title, { href: "#/case/" + encodeURIComponent(c.id) });
    body.appendChild(row([a, c.records, c.role || "", c.require_justification ? "required" : ""]));
  }
  if (!list.length) body.appendChild(row([me.role === "analyst" ? "No case is assigned to you yet." : "No case yet.", "", "", ""]));
  $("new-case").hidden = me.role !== "supervisor";
  if (route.view !== "cases") return;
  showView("cases-view");
}

async function renderCase(id) {
  const c = await api("GET", "/api/cases/" + encodeURIComponent(id));
  caseInfo = c;
  $("case-title").textContent = c.title;
  showCaseMeta();
  const mb = $("member-table").tBodies[0];
  mb.replaceChildren();
  for (const m of c.members) mb.appendChild(row([m.name, m.org, m.country, m.role]));
  const pol = c.policy || { four_eyes: [], originator_erases: false };
  $("case-policy").textContent = "Case policy: two people at every member node for " +
    (pol.four_eyes.length ? pol.four_eyes.join(", ") : "nothing") + "; originators " +
    (pol.originator_erases ? "may" : "may not") + " ask for their records' erasure.";
  for (const name of ["member-add", "bundle-export", "erase"]) $("policy-" + name).checked = pol.four_eyes.includes(name);
  $("policy-originator-erases").checked = pol.originator_erases;
  $("assign-form").hidden = me.role !== "supervisor";
  $("member-forms").hidden = me.role !== "supervisor";
  $("case-audit-link").href = "#/audit";
  $("case-audit-link").dataset.case = c.id;
  $("case-audit-export").href = "/api/cases/" + encodeURIComponent(c.id) + "/audit.jsonl";
  $("case-audit-export").hidden = me.role !== "supervisor";
  $("case-closing").hidden = me.role !== "supervisor";
  $("case-state").textContent = c.closed
    ? "Closed " + c.closed + (c.archived ? "; archived on this node " + c.archived + "." : ".")
    : "Open.";
  $("case-close").disabled = !!c.closed;
  $("case-archive").disabled = !c.closed;
  $("case-archive").textContent = c.archived ? "Put back in the working lists" : "Archive here";
  await loadRecords();
  if (route.view !== "case" || route.id !== id) return;
  showView("case-view");
}

function showCaseMeta() {
  const c = caseInfo;
  $("case-meta").textContent = c.records + " records, " + c.members.length + " member node(s)" +
    (c.require_justification ? ". Every action on this case needs a justification." : ".");
}

async function loadRecords() {
  const q = new URLSearchParams({
    offset: String(pageOffset), limit: String(PAGE), sort: $("sort").value,
    desc: $("desc").checked ? "true" : "false",
  });
  if ($("type-filter").value) q.set("type", $("type-filter").value);
  if ($("text-filter").value.trim()) q.set("q", $("text-filter").value.trim());
  const page = await api("GET", "/api/cases/" + encodeURIComponent(route.id) + "/records?" + q);
  const key = route.id + " " + JSON.stringify(page);
  if (key === shownPage) return;
  shownPage = key;
  const body = $("records").tBodies[0];
  body.replaceChildren();
  for (const r of page.records) {
    const link = el("a", summary(r), { href: "#/record/" + encodeURIComponent(r.id) });
    const chartLink = el("a", "chart", { href: "#/chart/" + encodeURIComponent(route.id) + "/" + encodeURIComponent(r.id), "aria-label": "chart from " + summary(r) });
    body.appendChild(row([r.type, link, r.grading || "", handlingCode(r), (r.releasable_to || []).join(", ") || "all members", r.updated, chartLink]));
  }
  if (caseInfo && !$("type-filter").value && !$("text-filter").value.trim()) {
    caseInfo.records = page.total;
    showCaseMeta();
  }
  const last = Math.min(page.offset + page.records.length, page.total);
  $("page-info").textContent = page.total ? (page.offset + 1) + "–" + last + " of " + page.total : "no records";
  $("prev").disabled = page.offset === 0;
  $("next").disabled = last >= page.total;
}

// Handling codes (Europol's SIENA codes): H0 when a record names none.
const HANDLING = {
  H0: "law-enforcement use only",
  H1: "not for judicial use without the originator's permission",
  H2: "no further dissemination without the originator's permission",
  H3: "other restrictions apply",
};
function handlingCode(r) { return (r.handling || "H0").slice(0, 2); }
function handlingText(r) {
  const code = handlingCode(r);
  const conditions = (r.handling || "").slice(3);
  return code + ": " + (HANDLING[code] || "") + (conditions ? " (" + conditions + ")" : "");
}

async function renderRecord(id) {
  const r = await api("GET", "/api/records/" + encodeURIComponent(id));
  $("record-title").textContent = r.type + ": " + summary(r);
  $("record-case-link").href = "#/case/" + encodeURIComponent(r.case);
  $("record-chart-link").href = "#/chart/" + encodeURIComponent(r.case) + "/" + encodeURIComponent(r.id);
  const dl = $("record-handling");
  dl.replaceChildren();
  const facts = [
    ["Grading", r.grading || "not graded"],
    ["Handling", handlingText(r)],
    ["Releasable to", (r.releasable_to || []).length ? r.releasable_to.join(", ") : "every member of the case"],
    ["Originator", r.originator], ["Created", r.created], ["Updated", r.updated], ["Id", r.id],
  ];
  for (const [k, v] of facts) { dl.appendChild(el("dt", k)); dl.appendChild(el("dd", v)); }
  const fb = $("record-fields").tBodies[0];
  fb.replaceChildren();
  for (const [k, v] of Object.entries(r.fields)) fb.appendChild(row([k, v]));
  showFile(r);
  await showAlsoIn(r);
  await showProvenance(r);
  $("record-erase-box").hidden = me.role !== "supervisor";
  const hist = await api("GET", "/api/records/" + encodeURIComponent(id) + "/history");
  const hb = $("history").tBodies[0];
  hb.replaceChildren();
  for (const h of hist.slice().reverse()) {
    const parts = [];
    for (const [k, v] of Object.entries(h.set)) parts.push(k + " = " + v);
    for (const k of h.unset) parts.push("removed " + k);
    if (h.grading) parts.push("grading " + h.grading);
    if (h.handling) parts.push("handling " + h.handling);
    if (h.releasable_to) parts.push("releasable to " + (h.releasable_to.join(", ") || "every member"));
    const who = h.name ? h.name + " (" + h.org + ")" : h.node;
    hb.appendChild(row([h.time, who, (h.created ? "created: " : "") + parts.join("; ")]));
  }
  // A render started by a live update may finish after the person went
  // elsewhere: it must not bring this page back over theirs.
  if (route.view !== "record" || route.id !== id) return;
  showView("record-view");
}

// An evidence record's file: a download, and images shown in the page (a
// PDF opens in its own tab). Each is audited on the node as the file opened.
const PREVIEW_IMAGES = ["image/jpeg", "image/png", "image/gif", "image/webp"];
function showFile(r) {
  const box = $("record-file");
  box.replaceChildren();
  if (r.type !== "evidence" || !r.fields.content) return;
  const url = "/api/records/" + encodeURIComponent(r.id) + "/file";
  box.appendChild(el("a", "Download " + r.fields.file, { href: url, download: String(r.fields.file), id: "file-download" }));
  const media = String(r.fields.media_type || "");
  if (media === "application/pdf") {
    box.appendChild(document.createTextNode(" "));
    box.appendChild(el("a", "Open the PDF", { href: url + "?inline=true", target: "_blank", rel: "noopener" }));
  } else if (PREVIEW_IMAGES.includes(media)) {
    box.appendChild(el("img", null, { src: url + "?inline=true", alt: "Preview of " + r.fields.file, id: "file-preview" }));
  }
}

// "Also in case X": the record's selector searched across the cases this
// person may see (the search is audited like any other).
const SELECTOR_FIELD = { phone: ["number", "phone"], bank_account: ["iban", "iban"], vehicle: ["registration", "vehicle"], person: ["name", "name"], organisation: ["name", "name"] };
async function showAlsoIn(r) {
  $("record-also").replaceChildren();
  const sf = SELECTOR_FIELD[r.type];
  let field = sf && r.fields[sf[0]], kind = sf && sf[1];
  if (r.type === "crypto_wallet") { field = r.fields.address; kind = String(r.fields.currency || "").toLowerCase(); }
  if (!field || !kind) return;
  let hits = [];
  try { hits = await api("GET", "/api/search?" + new URLSearchParams({ q: String(field), type: kind })); } catch (e) { return; }
  const others = new Map();
  for (const h of hits) if (h.case !== r.case) others.set(h.case, h.case_title);
  if (!others.size) return;
  $("record-also").appendChild(document.createTextNode("Also in: "));
  for (const [id, title] of others) {
    $("record-also").appendChild(el("a", "case " + title, { href: "#/case/" + encodeURIComponent(id) }));
    $("record-also").appendChild(document.createTextNode(" "));
  }
}

// The chart: started from one record, expanded on demand (double-click or
// tap a node, or its button in the list), never more than CHART_CAP records
// at once, laid out by fcose.
async function renderChart(caseId, from) {
  $("chart-case-link").href = "#/case/" + encodeURIComponent(caseId);
  showView("chart-view");
  if (typeof cytoscape === "function" && typeof cytoscapeFcose === "function" && !renderChart.registered) {
    cytoscape.use(cytoscapeFcose);
    renderChart.registered = true;
  }
  if (chart) chart.destroy();
  chart = cytoscape({
    container: $("chart"),
    minZoom: 0.2,
    maxZoom: 1.5,
    style: [
      { selector: "node", style: { "label": "data(label)", "font-size": 11, "width": 28, "height": 28, "background-color": "#457b9d", "text-wrap": "ellipsis", "text-max-width": 140, "text-valign": "bottom", "text-margin-y": 4 } },
      { selector: "node[type = 'person']", style: { "background-color": "#e63946" } },
      { selector: "node[type = 'phone']", style: { "background-color": "#2a9d8f", "shape": "round-rectangle" } },
      { selector: "node[type = 'crypto_wallet'], node[type = 'bank_account']", style: { "background-color": "#f4a261", "shape": "diamond" } },
      { selector: "node[type = 'organisation']", style: { "background-color": "#1d3557", "shape": "hexagon" } },
      { selector: "edge", style: { "label": "data(label)", "font-size": 9, "width": 1.5, "line-color": "#8d99ae", "target-arrow-color": "#8d99ae", "curve-style": "bezier", "target-arrow-shape": "triangle" } },
      { selector: "edge[status = 'unconfirmed']", style: { "line-style": "dashed" } },
      { selector: "node.path", style: { "background-color": "#e76f51", "border-width": 3, "border-color": "#9d0208" } },
      { selector: "edge.path", style: { "line-color": "#e76f51", "target-arrow-color": "#e76f51", "width": 4 } },
    ],
  });
  chart.on("tap", "node", (ev) => expand(caseId, ev.target.id()).catch((e) => say(e.message)));
  await expand(caseId, from);
}

async function expand(caseId, from) {
  const room = Math.max(1, CHART_CAP - chart.nodes().length);
  const q = new URLSearchParams({ from, depth: "1", cap: String(Math.min(room + 1, CHART_CAP)) });
  const c = await api("GET", "/api/cases/" + encodeURIComponent(caseId) + "/chart?" + q);
  addToChart(c);
  $("chart-note").textContent = chart.nodes().length + " records on the chart" +
    (c.truncated || chart.nodes().length >= CHART_CAP ? " (capped: expand from a record to see more around it)" : "") +
    ". Tap a record to expand it.";
}

function addToChart(c) {
  const add = [];
  for (const n of c.nodes) if (!chart.getElementById(n.id).length) add.push({ group: "nodes", data: { id: n.id, label: n.label, type: n.type } });
  for (const e of c.edges) {
    const id = e.link || (e.from + ">" + e.label + ">" + e.to);
    if (!chart.getElementById(id).length) add.push({ group: "edges", data: { id, source: e.from, target: e.to, label: e.label, status: e.status || "" } });
  }
  chart.add(add);
  // A large chart is laid out in fcose's draft quality: under a second for
  // a thousand records, where the default takes two.
  const quality = chart.nodes().length > 300 ? "draft" : "default";
  chart.layout({ name: renderChart.registered ? "fcose" : "cose", animate: false, randomize: false, quality }).run();
  const list = $("chart-list");
  list.replaceChildren();
  const from = $("path-from"), to = $("path-to");
  const keepFrom = from.value, keepTo = to.value;
  from.replaceChildren(); to.replaceChildren();
  chart.nodes().forEach((n) => {
    const li = el("li");
    li.appendChild(el("a", n.data("label") + " (" + n.data("type") + ")", { href: "#/record/" + encodeURIComponent(n.id()) }));
    const b = el("button", "expand", { type: "button", "aria-label": "expand " + n.data("label") });
    b.addEventListener("click", () => expand(route.caseId, n.id()).catch((e) => say(e.message)));
    li.appendChild(document.createTextNode(" "));
    li.appendChild(b);
    list.appendChild(li);
    from.appendChild(el("option", n.data("label"), { value: n.id() }));
    to.appendChild(el("option", n.data("label"), { value: n.id() }));
  });
  if (keepFrom) from.value = keepFrom;
  if (keepTo) to.value = keepTo;
}

async function findPath(ev) {
  ev.preventDefault();
  const q = new URLSearchParams({ from: $("path-from").value, to: $("path-to").value });
  const r = await api("GET", "/api/cases/" + encodeURIComponent(route.caseId) + "/path?" + q);
  chart.elements().removeClass("path");
  if (!r.path) { $("chart-note").textContent = "No path of links between those two records."; return; }
  addToChart(r.path);
  for (const n of r.path.nodes) chart.getElementById(n.id).addClass("path");
  for (const e of r.path.edges) chart.getElementById(e.link || (e.from + ">" + e.label + ">" + e.to)).addClass("path");
  $("chart-note").textContent = "Path: " + r.path.nodes.map((n) => n.label).join(" → ");
}

async function renderAudit() {
  const q = new URLSearchParams();
  for (const [k, id] of [["case", "audit-case"], ["action", "audit-action"], ["by", "audit-by"], ["since", "audit-since"]]) {
    if ($(id).value.trim()) q.set(k, $(id).value.trim());
  }
  const entries = await api("GET", "/api/audit?" + q);
  const body = $("audit-table").tBodies[0];
  body.replaceChildren();
  for (const e of entries.slice(-500).reverse()) {
    body.appendChild(row([e.seq, e.time, e.operator, e.action, e.outcome, e.case || "", e.justification || "", e.detail || ""]));
  }
  showView("audit-view");
}

async function renderSearch(q) {
  $("search-q").value = q;
  const hits = await api("GET", "/api/search?" + new URLSearchParams({ q }));
  const body = $("search-table").tBodies[0];
  body.replaceChildren();
  for (const h of hits) {
    const rec = el("a", h.summary || h.type, { href: "#/record/" + encodeURIComponent(h.record) });
    const caseLink = el("a", h.case_title, { href: "#/case/" + encodeURIComponent(h.case) });
    body.appendChild(row([caseLink, h.type, rec, h.also_in.length ? "also in " + h.also_in.length + " other case(s)" : ""]));
  }
  $("search-note").textContent = hits.length + " result(s) for " + JSON.stringify(q);
  showView("search-view");
}

async function renderApprovals() {
  const list = await api("GET", "/api/approvals");
  const body = $("approvals-table").tBodies[0];
  body.replaceChildren();
  for (const a of list) {
    const decide = el("span");
    if (a.state === "pending") {
      const ok = el("button", "approve", { type: "button", "aria-label": "approve request " + a.id });
      ok.addEventListener("click", () => api("POST", "/api/approvals/" + a.id + "/approve", {})
        .then(() => { $("approvals-done").textContent = "Request " + a.id + " approved and carried out."; return renderApprovals(); })
        .catch((e) => say(e.message)));
      const why = el("input", "", { "aria-label": "reason to deny request " + a.id, placeholder: "reason to deny" });
      const no = el("button", "deny", { type: "button", "aria-label": "deny request " + a.id });
      no.addEventListener("click", () => api("POST", "/api/approvals/" + a.id + "/deny", { reason: why.value })
        .then(() => { $("approvals-done").textContent = "Request " + a.id + " denied."; return renderApprovals(); })
        .catch((e) => say(e.message)));
      decide.appendChild(ok); decide.appendChild(document.createTextNode(" "));
      decide.appendChild(why); decide.appendChild(no);
    }
    body.appendChild(row([String(a.id), a.requester, a.what, a.expires, a.state + (a.decided_by ? " by " + a.decided_by : ""), decide]));
  }
  if (!list.length) body.appendChild(row(["", "", "No request waits for you.", "", "", ""]));
  showView("approvals-view");
}

async function showProvenance(r) {
  // Only the record's originator (this node, or not) keeps its provenance
  // and regrades it.
  let p = null;
  if (r.originator === me.node) p = await api("GET", "/api/records/" + encodeURIComponent(r.id) + "/provenance");
  $("record-originator").hidden = !p;
  if (!p) return;
  const body = $("provenance").tBodies[0];
  body.replaceChildren();
  for (const h of p.holders) {
    body.appendChild(row([(h.name || h.node) + (h.org ? " (" + h.org + ")" : ""), h.state, h.since || "",
      h.reads === null || h.reads === undefined ? "" : h.reads + " (" + h.readers + ")", h.report ? h.report + ", " + h.reported : ""]));
  }
}

async function renderReview() {
  const list = await api("GET", "/api/review/due");
  const body = $("review-table").tBodies[0];
  body.replaceChildren();
  for (const d of list) {
    const decide = el("span");
    const named = d.record + "@" + d.case;
    const decideWith = (decision) => {
      const body = { decision, reason: $("review-reason").value };
      if (decision === "retain" && $("review-until").value.trim()) body.until = $("review-until").value.trim();
      return api("POST", "/api/records/" + encodeURIComponent(named) + "/review", body)
        .then((r) => {
          $("review-done").textContent = decision === "retain"
            ? "Retained " + d.summary + " until " + r.next_review + "."
            : "Erased " + d.summary + " from every member (erasure " + (r.erasure || "").slice(0, 12) + ").";
          return renderReview();
        })
        .catch((e) => say(e.message));
    };
    const keep = el("button", "retain", { type: "button", "aria-label": "retain " + d.summary });
    keep.addEventListener("click", () => decideWith("retain"));
    const drop = el("button", "erase", { type: "button", "aria-label": "erase " + d.summary });
    drop.addEventListener("click", () => { if (confirm("Erase " + d.summary + " from every member?")) decideWith("erase"); });
    decide.appendChild(keep); decide.appendChild(document.createTextNode(" ")); decide.appendChild(drop);
    const link = el("a", d.summary, { href: "#/record/" + encodeURIComponent(named) });
    body.appendChild(row([link, d.type, d.case.slice(0, 8), d.due, String(d.group), decide]));
  }
  if (!list.length) body.appendChild(row(["No record is due for review.", "", "", "", "", ""]));
  showView("review-view");
}

async function renderErasure(id) {
  const st = await api("GET", "/api/records/" + encodeURIComponent(id) + "/erasure");
  $("erasure-summary").textContent = "Record " + st.record + " of case " + st.case + ": erasure " + st.erasure.slice(0, 12) +
    " by " + st.erased_by + (st.reason ? ", reason: " + st.reason : "") + ".";
  const body = $("erasure-table").tBodies[0];
  body.replaceChildren();
  for (const m of st.members) {
    body.appendChild(row([(m.name || m.node) + (m.org ? " (" + m.org + ")" : ""), m.state,
      m.receipt ? m.receipt.operation.slice(0, 12) : ""]));
  }
  const copies = $("erasure-copies");
  copies.replaceChildren();
  for (const c of st.copies_before) copies.appendChild(el("li", c.time + ": " + c.action + " by " + c.operator + (c.detail ? " (" + c.detail + ")" : "")));
  if (!st.copies_before.length) copies.appendChild(el("li", "none in this node's audit log"));
  if (route.view !== "erasure" || route.id !== id) return;
  showView("erasure-view");
}

async function renderAdmin() {
  const users = await api("GET", "/api/users");
  const ub = $("user-table").tBodies[0];
  ub.replaceChildren();
  for (const u of users) {
    const actions = el("span");
    const dis = el("button", "disable", { type: "button", "aria-label": "disable " + u.name });
    dis.disabled = u.disabled;
    dis.addEventListener("click", () => api("POST", "/api/users/" + encodeURIComponent(u.name) + "/disable", {})
      .then(renderAdmin).catch((e) => say(e.message)));
    const pw = el("button", "new password", { type: "button", "aria-label": "new password for " + u.name });
    pw.addEventListener("click", () => api("POST", "/api/users/" + encodeURIComponent(u.name) + "/password", {})
      .then((r) => { $("user-otp").textContent = "One-time password for " + u.name + " (shown once): " + r.one_time_password; })
      .catch((e) => say(e.message)));
    actions.appendChild(dis); actions.appendChild(document.createTextNode(" ")); actions.appendChild(pw);
    ub.appendChild(row([u.name, u.role, u.disabled ? "disabled" : (u.locked_until ? "locked until " + u.locked_until : "active"), actions]));
  }
  try {
    const t = await api("GET", "/api/trust");
    $("trust-name").textContent = "Federation " + t.name + " (" + t.federation.slice(0, 16) + "…)";
    const tb = $("trust-table").tBodies[0];
    tb.replaceChildren();
    for (const n of t.nodes) tb.appendChild(row([n.name, n.org, n.country, n.admin ? "admin" : "", n.status, n.peer_id]));
    trustTwoAdmins = !!t.two_admins;
    $("trust-policy").textContent = t.two_admins
      ? "Enrolling or revoking a node takes two admin nodes: one asks (its request token), another approves below."
      : "One admin node enrolls and revokes.";
    $("trust-policy-toggle").textContent = t.two_admins ? "Let one admin node act (needs a second admin node)" : "Require two admin nodes";
  } catch (e) { $("trust-name").textContent = e.message; }
  showView("admin-view");
}

// Live updates: the node says only that something changed; the page asks
// again for what it shows.
function startEvents() {
  if (events || typeof EventSource !== "function") return;
  events = new EventSource("/api/events");
  events.addEventListener("open", () => { $("live").hidden = false; });
  events.addEventListener("change", () => {
    if (route.view === "case") loadRecords().catch((e) => say(e.message));
    else if (route.view === "record") renderRecord(route.id).catch((e) => say(e.message));
    else if (route.view === "cases") renderCases().catch((e) => say(e.message));
  });
  events.addEventListener("error", () => { $("live").hidden = true; });
}

function stopEvents() {
  if (events) { events.close(); events = null; }
  $("live").hidden = true;
}

function fieldRow(key, required) {
  const div = el("div", null, { class: "field-row" });
  const n = $("add-fields").children.length;
  const k = el("input", null, { "aria-label": "field name " + (n + 1), value: key || "", placeholder: "field" });
  const v = el("input", null, { "aria-label": (key || "field") + " value", placeholder: "value" });
  if (required) { k.readOnly = true; v.required = true; }
  div.appendChild(k); div.appendChild(v);
  $("add-fields").appendChild(div);
}

function resetAddForm() {
  const t = $("add-type").value;
  $("add-fields").replaceChildren();
  for (const k of TYPES[t]) fieldRow(k, true);
  $("add-needs").textContent = "Required: " + TYPES[t].join(", ") + (t === "bank_account" ? " (or number)" : t === "location" ? " (or lat and lon)" : "");
}

function setup() {
  for (const t of Object.keys(TYPES)) {
    $("type-filter").appendChild(el("option", t, { value: t }));
    $("add-type").appendChild(el("option", t, { value: t }));
  }
  resetAddForm();
  $("add-type").addEventListener("change", resetAddForm);
  $("add-field").addEventListener("click", () => fieldRow("", false));

  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    say("");
    try {
      const r = await api("POST", "/api/login", { name: $("login-name").value, password: $("login-password").value });
      csrf = r.csrf;
      sessionStorage.setItem("csrf", csrf);
      $("login-password").value = "";
      me = null;
      await render();
    } catch (err) { say(err.message); }
  });
  $("logout").addEventListener("click", async () => {
    try { await api("POST", "/api/logout"); } catch (err) { say(err.message); }
    sessionStorage.removeItem("csrf");
    me = null;
    showView("login-view");
  });
  $("new-case").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const r = await api("POST", "/api/cases", { title: $("new-case-title").value, require_justification: $("new-case-justify").checked });
      $("new-case-title").value = "";
      location.hash = "#/case/" + encodeURIComponent(r.id);
    } catch (err) { say(err.message); }
  });
  $("record-filter").addEventListener("submit", (e) => { e.preventDefault(); pageOffset = 0; loadRecords().catch((err) => say(err.message)); });
  $("prev").addEventListener("click", () => { pageOffset = Math.max(0, pageOffset - PAGE); loadRecords().catch((err) => say(err.message)); });
  $("next").addEventListener("click", () => { pageOffset += PAGE; loadRecords().catch((err) => say(err.message)); });
  $("add-record").addEventListener("submit", async (e) => {
    e.preventDefault();
    say("");
    const fields = {};
    for (const r of $("add-fields").children) {
      const [k, v] = r.querySelectorAll("input");
      if (k.value.trim() && v.value.trim()) fields[k.value.trim()] = v.value.trim();
    }
    const body = { type: $("add-type").value, fields };
    if ($("add-grading").value.trim()) body.grading = $("add-grading").value.trim();
    if ($("add-handling").value.trim()) body.handling = $("add-handling").value.trim();
    const rel = $("add-releasable").value.split(",").map((s) => s.trim()).filter(Boolean);
    if (rel.length) body.releasable_to = rel;
    try {
      await api("POST", "/api/cases/" + encodeURIComponent(route.id) + "/records", body);
      resetAddForm();
      $("add-grading").value = ""; $("add-handling").value = ""; $("add-releasable").value = "";
      say("Record added.");
      await loadRecords();
    } catch (err) { say(err.message); }
  });
  $("assign-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api("PUT", "/api/cases/" + encodeURIComponent(route.id) + "/assignments/" + encodeURIComponent($("assign-user").value.trim()), {});
      say("Assigned " + $("assign-user").value.trim() + ".");
      $("assign-user").value = "";
    } catch (err) { say(err.message); }
  });
  $("edit-record").addEventListener("submit", async (e) => {
    e.preventDefault();
    const k = $("edit-key").value.trim(), v = $("edit-value").value.trim();
    const body = v ? { set: { [k]: v } } : { unset: [k] };
    try {
      await api("PATCH", "/api/records/" + encodeURIComponent(route.id), body);
      $("edit-key").value = ""; $("edit-value").value = "";
      await renderRecord(route.id);
    } catch (err) { say(err.message); }
  });
  $("regrade").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api("POST", "/api/records/" + encodeURIComponent(route.id) + "/regrade", {
        grading: $("regrade-grading").value.trim() || null,
        handling: $("regrade-handling").value.trim() || null,
        reason: $("regrade-reason").value,
      });
      $("regrade-grading").value = ""; $("regrade-handling").value = ""; $("regrade-reason").value = "";
      await renderRecord(route.id);
    } catch (err) { say(err.message); }
  });
  $("policy-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const four_eyes = ["member-add", "bundle-export", "erase"].filter((n) => $("policy-" + n).checked);
    try {
      await api("PUT", "/api/cases/" + encodeURIComponent(route.id) + "/policy", { four_eyes, originator_erases: $("policy-originator-erases").checked });
      say("Case policy set.");
      await renderCase(route.id);
    } catch (err) { say(err.message); }
  });
  $("case-close").addEventListener("click", async () => {
    try {
      await api("POST", "/api/cases/" + encodeURIComponent(route.id) + "/close", {});
      say("Case closed: read-only for every member as the closing reaches it.");
      await renderCase(route.id);
    } catch (err) { say(err.message); }
  });
  $("case-archive").addEventListener("click", async () => {
    try {
      const r = await api("POST", "/api/cases/" + encodeURIComponent(route.id) + "/archive", { archive: !caseInfo.archived });
      say(r.archived ? "Archived on this node: out of the working lists." : "Back in this node's working lists.");
      await renderCase(route.id);
    } catch (err) { say(err.message); }
  });
  $("case-erase").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!confirm("Erase every record of this case from every member? This cannot be undone.")) return;
    try {
      await api("POST", "/api/cases/" + encodeURIComponent(route.id) + "/erase", { reason: $("case-erase-reason").value });
      $("case-erase-reason").value = "";
      say("The case is erased here; each member erases it as the erasure reaches it and signs a receipt.");
      await renderCase(route.id);
    } catch (err) { say(err.message); }
  });
  $("record-erase").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!confirm("Erase this record from every member? This cannot be undone.")) return;
    try {
      const r = await api("POST", "/api/records/" + encodeURIComponent(route.id) + "/erase", { reason: $("record-erase-reason").value });
      $("record-erase-reason").value = "";
      if (r.requested) {
        say("Asked, as its originator, for the record's erasure: a lead's node erases it when the request reaches it.");
      } else {
        location.hash = "#/erasure/" + encodeURIComponent(r.record + "@" + r.case);
      }
    } catch (err) { say(err.message); }
  });
  $("consent-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const r = await api("POST", "/api/cases/" + encodeURIComponent(route.id) + "/consents", { peer: $("consent-peer").value.trim(), reason: $("consent-reason").value });
      $("consent-peer").value = ""; $("consent-reason").value = "";
      say("Consented: this node's " + r.h2_records + " record(s) under H2 may go to " + r.name + " (" + r.org + ").");
    } catch (err) { say(err.message); }
  });
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = "#/search/" + encodeURIComponent($("search-q").value.trim());
  });
  $("member-add").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const r = await api("POST", "/api/cases/" + encodeURIComponent(route.id) + "/members", { member: $("member-id").value.trim(), role: $("member-role").value });
      say("Added " + r.name + " as " + r.role + ".");
      $("member-id").value = "";
      await renderCase(route.id);
    } catch (err) { say(err.message); }
  });
  $("member-remove").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const r = await api("POST", "/api/cases/" + encodeURIComponent(route.id) + "/members/" + encodeURIComponent($("member-remove-id").value.trim()) + "/remove", { reason: $("member-remove-reason").value });
      say("Removed " + r.name + ".");
      $("member-remove-id").value = ""; $("member-remove-reason").value = "";
      await renderCase(route.id);
    } catch (err) { say(err.message); }
  });
  $("import-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const file = $("import-file").files[0];
    if (!file) return;
    const format = /\.csv$/i.test(file.name) ? "csv" : "jsonl";
    const headers = { "X-CSRF-Token": csrf, "Content-Type": "text/plain", "Accept": "application/json" };
    const why = $("justification").value.trim();
    if (why) headers["X-Justification"] = why;
    try {
      const res = await fetch("/api/cases/" + encodeURIComponent(route.id) + "/import?format=" + format, { method: "POST", headers, body: await file.text(), credentials: "same-origin" });
      const data = await res.json().catch(() => ({}));
      if (!res.ok) throw new Error(data.error ? data.error.message : res.statusText);
      say("Imported " + data.records + " records.");
      await loadRecords();
    } catch (err) { say(err.message); }
  });
  $("user-add").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const r = await api("POST", "/api/users", { name: $("user-name").value.trim(), role: $("user-role").value });
      $("user-otp").textContent = "One-time password for " + r.name + " (shown once): " + r.one_time_password;
      $("user-name").value = "";
      await renderAdmin();
    } catch (err) { say(err.message); }
  });
  $("trust-invite").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const r = await api("POST", "/api/trust/invite", { card: $("invite-card").value.trim(), admin: $("invite-admin").checked });
      $("invite-token").textContent = "Join token for " + r.name + " (give it to that node's operator; valid 7 days): " + r.token;
      $("invite-card").value = "";
      await renderAdmin();
    } catch (err) { say(err.message); }
  });
  $("trust-policy-toggle").addEventListener("click", async () => {
    try {
      const r = await api("POST", "/api/trust/policy", { two_admins: !trustTwoAdmins });
      say(r.two_admins ? "Two admin nodes now enroll and revoke." : "One admin node enrolls and revokes.");
      await renderAdmin();
    } catch (err) { say(err.message); }
  });
  $("trust-second").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const r = await api("POST", "/api/trust/second", { token: $("second-token").value.trim() });
      $("second-token").value = "";
      $("second-done").textContent = r.done === "enrolled"
        ? "Approved: " + r.peer + " is enrolled as sync brings the statement. Its join token (valid 7 days): " + r.token
        : r.done === "revoked" ? "Approved: " + r.peer + " revoked." : "Approved: two admins " + (r.two_admins ? "on" : "off") + ".";
      await renderAdmin();
    } catch (err) { say(err.message); }
  });
  $("trust-revoke").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api("POST", "/api/trust/revoke", { peer_id: $("revoke-peer").value.trim(), reason: $("revoke-reason").value });
      $("revoke-peer").value = ""; $("revoke-reason").value = "";
      await renderAdmin();
    } catch (err) { say(err.message); }
  });
  $("case-audit-link").addEventListener("click", (e) => { $("audit-case").value = e.target.dataset.case || ""; });
  $("path-form").addEventListener("submit", (e) => findPath(e).catch((err) => say(err.message)));
  $("audit-filter").addEventListener("submit", (e) => { e.preventDefault(); renderAudit().catch((err) => say(err.message)); });
  window.addEventListener("hashchange", render);
  render();
}

setup();
