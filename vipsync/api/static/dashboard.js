// The ops dashboard: every figure comes from the read API (/v1/...), which reads the
// ops_* views. The token stays in this tab's sessionStorage and goes only to this app.
"use strict";

const DAYS = 30;
const charts = {};

function token() { return sessionStorage.getItem("vipsync-token") || ""; }

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { "Authorization": "Bearer " + token(), "Content-Type": "application/json", ...(options.headers || {}) },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) { throw new Error(body.detail || response.statusText); }
  return body;
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) { td.className = cls; }
  return td;
}

function fill(tableId, rows, render) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren(...rows.map((row) => { const tr = document.createElement("tr"); render(tr, row); return tr; }));
}

function chart(id, labels, values) {
  if (charts[id]) { charts[id].destroy(); }
  charts[id] = new Chart(document.getElementById(id), {
    type: "bar",
    data: { labels, datasets: [{ label: "units", data: values, backgroundColor: "#3b6ea8" }] },
    options: { animation: false, plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } },
  });
}

async function loadCounts(dimension) {
  const data = await api(`/v1/units/counts?by=${dimension}`);
  const rows = data.counts.map((r) => ({ key: r[dimension] === null ? "none" : String(r[dimension]), units: r.units }));
  fill(`counts-${dimension}`, rows, (tr, r) => {
    tr.dataset.key = r.key;
    tr.append(cell(r.key), cell(r.units, "num"));
  });
  chart(`chart-${dimension}`, rows.map((r) => r.key), rows.map((r) => r.units));
  return data.total;
}

function lag(seconds) {
  if (seconds === null || seconds === undefined) { return "never"; }
  if (seconds < 120) { return `${seconds} s`; }
  if (seconds < 7200) { return `${Math.round(seconds / 60)} min`; }
  return `${(seconds / 3600).toFixed(1)} h`;
}

async function classify(row, select, button) {
  button.disabled = true;
  const body = row.sku ? { sku: row.sku, category: select.value } : { title: row.title, category: select.value };
  body.note = "classified from the dashboard";
  try {
    const result = await api("/v1/ops/catalog/classify", { method: "POST", body: JSON.stringify(body) });
    setStatus(`${result.decision}: ${result.affected_units} unit(s) re-tagged`);
    await loadAll();
  } catch (err) {
    setStatus(`classify failed: ${err.message}`, true);
    button.disabled = false;
  }
}

const CATEGORIES = ["kvm_switch", "matrix", "hdmi_splitter", "kvm_extender", "accessory", "other"];

async function loadAll() {
  const total = await loadCounts("benefit_status");
  document.getElementById("total").textContent = `(${total} units)`;
  await loadCounts("store");
  await loadCounts("country");

  const windows = await api(`/v1/windows/closing?days=${DAYS}&limit=50`);
  document.getElementById("window-days").textContent = String(windows.days);
  fill("windows-by-kind", Object.entries(windows.by_window), (tr, [kind, units]) => {
    tr.dataset.key = kind;
    tr.append(cell(kind), cell(units, "num"));
  });
  fill("windows", windows.rows, (tr, r) => {
    tr.append(cell(r.unit_id), cell(r.store), cell(r.sku), cell(r.country), cell(r.window_kind), cell(r.closes_on), cell(r.days_left, "num"));
  });

  const registrations = await api(`/v1/registrations/upcoming?days=${DAYS}&limit=50`);
  document.getElementById("registrations-total").textContent = String(registrations.units);
  fill("registrations", registrations.rows, (tr, r) => {
    tr.append(cell(r.unit_id), cell(r.store), cell(r.sku), cell(r.country), cell(r.purchase_date), cell(r.registration_deadline), cell(r.days_left, "num"));
  });

  const health = await api("/v1/sync-health");
  fill("sync-health", health.stores, (tr, r) => {
    tr.dataset.key = r.store;
    tr.append(cell(r.store), cell(r.last_success_at), cell(lag(r.lag_s)), cell(r.errors_since_success, "num"),
      cell(r.last_error), cell(r.rate_limit_wait_s, "num"));
  });

  const unclassified = await api("/v1/unclassified");
  fill("unclassified", unclassified.items, (tr, r) => {
    tr.dataset.key = r.sku || `title:${r.title}`;
    const select = document.createElement("select");
    select.append(...CATEGORIES.map((c) => { const o = document.createElement("option"); o.value = c; o.textContent = c; return o; }));
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Classify";
    button.className = "classify";
    button.addEventListener("click", () => classify(r, select, button));
    const action = document.createElement("td");
    action.append(select, button);
    tr.append(cell(r.sku || "(no SKU)"), cell(r.title), cell(r.orders, "num"), cell(r.units, "num"), action);
  });
  document.body.dataset.loaded = String(Date.now());
}

function setStatus(text, error = false) {
  const el = document.getElementById("status");
  el.textContent = text;
  el.className = error ? "error" : "";
}

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  sessionStorage.setItem("vipsync-token", document.getElementById("token").value.trim());
  document.getElementById("panels").hidden = false;
  try {
    await loadAll();
    setStatus("loaded");
  } catch (err) {
    setStatus(`could not load: ${err.message}`, true);
  }
});
