// The casesync web UI: plain DOM, no framework, no inline script (the CSP
// allows only this file). Every call goes to the JSON API as the person
// logged in; the CSRF token from the login is kept for this tab only.
"use strict";

const $ = (id) => document.getElementById(id);
let csrf = sessionStorage.getItem("csrf") || "";
let currentCase = null;

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  const why = $("justification").value.trim();
  if (why) headers["X-Justification"] = why;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  const data = await res.json().catch(() => ({}));
  if (res.status === 401) { show("login-view"); throw new Error(data.error ? data.error.message : "log in"); }
  if (!res.ok) throw new Error(data.error ? data.error.message : res.statusText);
  return data;
}

function show(view) {
  for (const v of ["login-view", "cases-view", "case-view"]) $(v).hidden = v !== view;
  $("logout").hidden = view === "login-view";
}

function say(text) { $("message").textContent = text || ""; }

function summary(r) {
  const f = r.fields || {};
  return String(f.name || f.number || f.iban || f.address || f.title || f.text || f.link_type || "");
}

async function openCase(id) {
  currentCase = id;
  const c = await api("GET", "/api/cases/" + encodeURIComponent(id));
  $("case-title").textContent = c.title;
  $("case-meta").textContent = c.records + " records, " + c.members.length + " member node(s)" +
    (c.require_justification ? "; every action needs a justification" : "");
  await loadRecords();
  show("case-view");
}

async function loadRecords() {
  const t = $("type-filter").value;
  const rows = await api("GET", "/api/cases/" + encodeURIComponent(currentCase) + "/records" + (t ? "?type=" + encodeURIComponent(t) : ""));
  const body = $("records").tBodies[0];
  body.replaceChildren();
  for (const r of rows) {
    const tr = document.createElement("tr");
    for (const text of [r.type, summary(r), r.originator, r.updated]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

async function loadCases() {
  const me = await api("GET", "/api/me");
  $("who").textContent = me.name + " (" + me.role + ")";
  const list = await api("GET", "/api/cases");
  const ul = $("case-list");
  ul.replaceChildren();
  for (const c of list) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = "#";
    a.textContent = c.title + " (" + c.records + " records)";
    a.addEventListener("click", (e) => { e.preventDefault(); openCase(c.id).catch((err) => say(err.message)); });
    li.appendChild(a);
    ul.appendChild(li);
  }
  if (!list.length) ul.textContent = "No case is assigned to you yet.";
  show("cases-view");
}

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  say("");
  try {
    const r = await api("POST", "/api/login", { name: $("login-name").value, password: $("login-password").value });
    csrf = r.csrf;
    sessionStorage.setItem("csrf", csrf);
    $("login-password").value = "";
    await loadCases();
  } catch (err) { say(err.message); }
});

$("logout").addEventListener("click", async () => {
  try { await api("POST", "/api/logout"); } catch (err) { say(err.message); }
  sessionStorage.removeItem("csrf");
  show("login-view");
});

$("add-person").addEventListener("submit", async (e) => {
  e.preventDefault();
  say("");
  const fields = { name: $("person-name").value };
  if ($("person-dob").value.trim()) fields.dob = $("person-dob").value.trim();
  try {
    await api("POST", "/api/cases/" + encodeURIComponent(currentCase) + "/records", { type: "person", fields });
    $("person-name").value = ""; $("person-dob").value = "";
    await loadRecords();
  } catch (err) { say(err.message); }
});

$("type-filter").addEventListener("change", () => loadRecords().catch((err) => say(err.message)));
$("back").addEventListener("click", (e) => { e.preventDefault(); loadCases().catch((err) => say(err.message)); });

loadCases().catch(() => show("login-view"));
