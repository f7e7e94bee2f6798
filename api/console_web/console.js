// The iiilog operator console: reads /_iiilog/api/* on this origin and renders
// it. Plain DOM (no framework, no build step); every value from the engine is
// set as text, never parsed as HTML, because workers choose their own names.

const API = "/_iiilog/api";
const POLL_MS = 1000;

const $ = (selector) => document.querySelector(selector);

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "onclick") node.addEventListener("click", value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const cell = (col, ...content) => h("td", { "data-col": col }, ...content);
const json = (value) => (value === undefined ? "" : JSON.stringify(value));
const time = (ms) => (ms ? new Date(ms).toLocaleString() : "");
const status = (text) => { $("#status").textContent = text; };

async function getJSON(path) {
  const response = await fetch(path, { headers: { accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) throw new Error(body?.error?.message ?? `HTTP ${response.status}`);
  return body;
}

function fill(tbody, rows, empty) {
  tbody.replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 20 }, empty))]));
}

// -- the overview (polled) ------------------------------------------------------------

const samples = []; // [ms, head]: records/s over the last few polls

function renderOverview(o) {
  $("#head").textContent = o.head;
  $("#node").textContent = o.node_id;
  $("#worker-count").textContent = o.workers.length;
  $("#client-count").textContent = o.stream_clients.length;
  samples.push([o.now_ms, o.head]);
  while (samples.length > 6) samples.shift();
  if (samples.length > 1) {
    const [t0, h0] = samples[0];
    const [t1, h1] = samples[samples.length - 1];
    $("#rate").textContent = t1 > t0 ? ((h1 - h0) * 1000 / (t1 - t0)).toFixed(1) : "–";
  }

  fill($("#workers tbody"), o.workers.map((w) => h("tr", { "data-worker": w.name ?? w.id },
    cell("name", w.name ?? w.id), cell("runtime", w.runtime ?? ""), cell("sdk", w.sdk_version ?? ""),
    cell("namespace", w.namespace), cell("since", time(w.connected_at_ms)),
    cell("functions", w.functions.length), cell("in-flight", w.in_flight), cell("ip", w.ip ?? ""),
  )), "No worker is connected.");

  const builtin = $("#show-builtin").checked;
  fill($("#functions tbody"), o.functions.filter((f) => builtin || !f.builtin).map((f) => h("tr", { "data-function": f.function_id },
    cell("function", f.function_id), cell("worker", f.builtin ? "(engine)" : f.worker), cell("namespace", f.namespace),
    cell("triggers", f.triggers.map((t) => h("div", {}, `${t.type} ${json(t.config)}${t.active ? "" : " (waiting for its type)"}`))),
  )), "No function.");

  fill($("#subscriptions tbody"), o.subscriptions.map((s) => h("tr", { "data-function": s.function_id, "data-key": s.key },
    cell("function", s.function_id), cell("trigger", s.trigger_type), cell("config", json(s.config)),
    cell("position", s.position), cell("lag", s.lag), cell("parked", s.parked),
    cell("delivered", s.delivered ?? ""), cell("failures", s.failures ?? ""),
    cell("state", s.delivering ? "delivering" : s.active ? "active (another node delivers)" : "no worker bound",
      s.last_error ? h("div", { class: "error" }, s.last_error) : null),
    cell("action", h("button", {
      type: "button", disabled: s.parked === 0 || !s.active,
      "aria-label": `Redeliver parked records of ${s.function_id}`,
      onclick: () => redeliver(s.key),
    }, "Redeliver")),
  )), "No durable subscription.");

  fill($("#projections tbody"), o.projections.map((p) => h("tr", { "data-projection": p.name },
    cell("name", p.name), cell("position", p.position), cell("lag", p.lag),
    cell("start", p.start ? `${p.start.snapshot === null ? "no snapshot" : `snapshot at ${p.start.snapshot}`}, `
      + `folded ${p.start.folded} records to ${p.start.head}` : ""),
  )), "No projection.");

  const subs = o.stream_clients.flatMap((c) => (c.subscriptions.length ? c.subscriptions : [null]).map((s) => [c, s]));
  fill($("#streams tbody"), subs.map(([c, s]) => h("tr", {},
    cell("client", c.remote ?? ""), cell("since", time(c.connected_at_ms)),
    cell("subscription", s ? s.id : "(no join)"),
    cell("address", s ? [s.stream, s.group, s.item].filter(Boolean).join(" / ") : ""),
    cell("position", s ? s.position : ""),
  )), "No stream client.");
}

async function redeliver(key) {
  try {
    const response = await fetch(`${API}/redeliver`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ key }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body?.error?.message ?? `HTTP ${response.status}`);
    status(`Redelivered ${body.redelivered}; still parked ${body.still_parked}.`);
  } catch (e) {
    status(`Redelivery failed: ${e.message}`);
  }
  poll();
}

let polling = false;
async function poll() {
  if (polling) return;
  polling = true;
  try {
    renderOverview(await getJSON(`${API}/overview`));
    status("");
  } catch (e) {
    status(`The engine does not answer: ${e.message}`);
  } finally {
    polling = false;
  }
}

// -- the log -------------------------------------------------------------------------

const logView = { params: {}, shown: [] };

async function loadLog(page = {}) {
  const form = new FormData($("#log-filter"));
  const params = new URLSearchParams();
  for (const name of ["space", "scope", "key", "limit"]) {
    const value = String(form.get(name) ?? "").trim();
    if (value) params.set(name, value);
  }
  const after = page.after ?? String(form.get("after") ?? "").trim();
  const until = page.until ?? String(form.get("until") ?? "").trim();
  if (after !== "") params.set("after", after);
  if (until !== "") params.set("until", until);
  params.set("order", page.oldest ? "oldest" : "newest");
  try {
    const body = await getJSON(`${API}/log?${params}`);
    const records = page.oldest ? body.records.reverse() : body.records;
    if (page.oldest && records.length === 0) return; // nothing newer: stay
    logView.shown = records;
    renderLog(records, body.head);
  } catch (e) {
    status(`Log: ${e.message}`);
  }
}

function renderLog(records, head) {
  const range = records.length ? `offsets ${records[records.length - 1].offset}–${records[0].offset} of ${head}` : `nothing (head ${head})`;
  $("#log-range").textContent = range;
  fill($("#log tbody"), records.map((r) => h("tr", { "data-offset": r.offset },
    cell("offset", h("button", {
      type: "button", class: "link", title: "Time travel to this offset",
      onclick: () => timeTravel(r.scope, r.offset),
    }, r.offset)),
    cell("time", time(r.ts)), cell("kind", r.kind), cell("scope", r.scope), cell("group", r.group ?? ""),
    cell("key", r.key ?? ""),
    cell("value", h("code", {}, r.kind.endsWith(".delete") ? `deleted ${json(r.old_value)}` : json(r.new_value))),
    cell("origin", r.origin?.function_id ?? ""),
  )), "No record matches.");
}

// -- time travel ---------------------------------------------------------------------

function timeTravel(scope, offset) {
  const form = $("#tt-form");
  form.elements.scope.value = scope;
  form.elements.key.value = "";
  form.elements.offset.value = offset;
  showState();
  $("#time-travel").scrollIntoView();
}

async function showState() {
  const form = new FormData($("#tt-form"));
  const params = new URLSearchParams();
  for (const name of ["scope", "key", "offset"]) {
    const value = String(form.get(name) ?? "").trim();
    if (value) params.set(name, value);
  }
  try {
    const body = await getJSON(`${API}/state?${params}`);
    $("#scopes").replaceChildren(...body.scopes.map((s) => h("option", { value: s })));
    const when = body.offset === null ? `now (head ${body.head})` : `as of offset ${body.offset} (head ${body.head})`;
    const what = body.key === null ? `scope ${body.scope}` : `${body.scope} / ${body.key}`;
    const items = body.key === null ? body.value : body.value === null ? [] : [body.value];
    $("#tt-caption").textContent = `${what} ${when}: ${items.length} item${items.length === 1 ? "" : "s"}`;
    $("#tt-result").replaceChildren(...items.map((item) => h("li", {}, h("code", {}, json(item)))));
  } catch (e) {
    $("#tt-caption").textContent = `Time travel: ${e.message}`;
    $("#tt-result").replaceChildren();
  }
}

// -- log lines -----------------------------------------------------------------------

async function loadLines() {
  try {
    const body = await getJSON(`${API}/logs?level=${$("#lines-level").value}&limit=200`);
    fill($("#engine-lines"), body.engine.slice().reverse().map((l) => h("tr", {},
      cell("time", time(l.ts_ms)), cell("level", l.level), cell("logger", l.logger), cell("message", h("pre", {}, l.message)),
    )), "No engine log line at this level.");
    fill($("#worker-lines"), body.worker.slice().reverse().map((l) => h("tr", {},
      cell("time", time(Math.floor(l.timestamp_unix_nano / 1e6))), cell("level", l.severity_text),
      cell("function", l.function_id ?? ""), cell("message", h("pre", {}, `${l.body}${l.data == null ? "" : ` ${json(l.data)}`}`)),
    )), "No worker log line at this level.");
  } catch (e) {
    status(`Log lines: ${e.message}`);
  }
}

// -- wiring --------------------------------------------------------------------------

$("#log-filter").addEventListener("submit", (e) => { e.preventDefault(); loadLog(); });
$("#log-latest").addEventListener("click", () => loadLog({ after: "", until: "" }));
$("#log-older").addEventListener("click", () => {
  const oldest = logView.shown[logView.shown.length - 1];
  if (oldest && oldest.offset > 1) loadLog({ until: String(oldest.offset - 1), after: "" });
});
$("#log-newer").addEventListener("click", () => {
  const newest = logView.shown[0];
  if (newest) loadLog({ after: String(newest.offset), until: "", oldest: true });
});
$("#tt-form").addEventListener("submit", (e) => { e.preventDefault(); showState(); });
$("#lines-level").addEventListener("change", loadLines);
$("#show-builtin").addEventListener("change", poll);

poll();
loadLog();
loadLines();
setInterval(poll, POLL_MS);
setInterval(loadLines, 5 * POLL_MS);
