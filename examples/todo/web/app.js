// The todo app in the browser: the list, live from stream todos-live/all.
//
// Handover between the list and the stream, exactly: the stream's first
// message (a `sync`) carries the log offset S it reflects; the list is then
// read *as of S* (GET /todos?offset=S, state::list with `offset`). Each pushed
// change names the offset of the state change it reports (`data.offset`), so
// a change at or below S is already in the list and is skipped, and every
// change above S is applied once: nothing missed, nothing doubled, although
// the pushes trail the state changes. Per todo, the last applied offset is
// kept, so a change is never applied twice or out of order.
//
// Resume: every message carries its own stream offset; the view and that
// offset are kept in localStorage. On reconnect (or reload) the page joins
// with {from: offset} and gets exactly the messages after it; a `sync` marked
// `reset` (the position is no longer served) starts the handover over.

const STREAM = "todos-live";
const GROUP = "all";

const $ = (selector) => document.querySelector(selector);

function streamBase() {
  const override = new URLSearchParams(location.search).get("stream");
  if (override) return override;
  const meta = document.querySelector('meta[name="iiilog-stream"]')?.content ?? "";
  if (/^wss?:\/\//.test(meta)) return meta;
  const port = /^\d+$/.test(meta) ? meta : "3112";
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.hostname}:${port}`;
}

const BASE = streamBase();
const STORE_KEY = `iiilog-todos:${BASE}/${STREAM}/${GROUP}`;

// { offset: last stream message handled, floor: offset the list was read at,
//   seen: {todo id: offset of its last applied change}, todos: [...] }
let view = restore();
let socket = null;
let attempt = 0;
let work = Promise.resolve(); // messages are handled one at a time, in order

function restore() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORE_KEY));
    if (saved && Number.isInteger(saved.offset) && Array.isArray(saved.todos)) return saved;
  } catch {
    // unreadable: start over
  }
  return null;
}

function persist() {
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify(view));
  } catch {
    // storage full or disabled: the page still works, a reload starts over
  }
}

function setStatus(text, away) {
  const status = $("#status");
  status.textContent = text;
  status.classList.toggle("away", away);
}

function problem(text) {
  $("#problem").textContent = text;
}

// -- the stream ----------------------------------------------------------------------

function connect() {
  const ws = new WebSocket(`${BASE}/`);
  socket = ws;
  ws.onopen = () => {
    attempt = 0;
    const data = { subscriptionId: "todos", streamName: STREAM, groupId: GROUP };
    if (view) data.from = view.offset; // exactly what came after it
    ws.send(JSON.stringify({ type: "join", data }));
    setStatus(view ? "Live" : "Loading…", false);
  };
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    work = work
      .then(() => (ws === socket ? handle(msg) : undefined))
      .catch((error) => {
        problem(`Could not load the todos: ${error.message}`);
        ws.close(); // join again
      });
  };
  ws.onclose = () => {
    if (ws !== socket) return;
    const delay = Math.min(250 * 2 ** attempt, 5000);
    attempt += 1;
    setStatus(`Reconnecting… (attempt ${attempt})`, true);
    setTimeout(connect, delay);
  };
}

async function handle(msg) {
  if (msg.type === "error") {
    problem(`Stream error: ${msg.error?.message ?? "unknown"}`);
    return;
  }
  if (msg.type !== "stream") return;
  const event = msg.event;
  if (event.type === "sync") {
    // First join, or a reset: read the list as of the offset the sync reflects.
    const todos = await getJSON(`/todos?offset=${msg.offset}`);
    view = { offset: msg.offset, floor: msg.offset, seen: {}, todos };
    setStatus("Live", false);
  } else if (view === null) {
    return; // never before a sync
  } else {
    if (event.type === "event" && event.event?.type === "todo_changed") apply(event.event.data);
    view.offset = msg.offset;
  }
  persist();
  render();
}

function idOf(todo) {
  return todo?.id ?? todo?._key;
}

function apply(change) {
  const { action, key, todo, offset } = change;
  if (Number.isInteger(offset)) {
    const done = Math.max(view.floor, view.seen[key] ?? 0);
    if (offset <= done) return; // already in the list
    view.seen[key] = offset;
  }
  const at = view.todos.findIndex((t) => idOf(t) === key);
  if (action === "deleted") {
    if (at >= 0) view.todos.splice(at, 1);
  } else if (at >= 0) {
    view.todos[at] = todo;
  } else {
    view.todos.push(todo); // the list is in creation order
  }
}

// -- the page ------------------------------------------------------------------------

const items = new Map(); // todo id -> its <li>

function itemFor(todo) {
  const id = idOf(todo);
  let li = items.get(id);
  if (!li) {
    li = document.createElement("li");
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.addEventListener("change", () => act("/todos/toggle", { id }));
    const title = document.createElement("span");
    label.append(box, title);
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Delete";
    remove.addEventListener("click", () => act("/todos/delete", { id }));
    li.append(label, remove);
    items.set(id, li);
  }
  li.dataset.id = id;
  li.classList.toggle("done", Boolean(todo.completed));
  li.querySelector("span").textContent = todo.title;
  li.querySelector("input").checked = Boolean(todo.completed);
  return li;
}

function render() {
  const todos = view ? view.todos : [];
  const shown = todos.map(itemFor);
  const keep = new Set(todos.map(idOf));
  for (const id of items.keys()) if (!keep.has(id)) items.delete(id);
  $("#todos").replaceChildren(...shown);
  const completed = todos.filter((t) => t.completed).length;
  $("#counters").textContent = `${todos.length} total, ${completed} completed`;
}

async function getJSON(path) {
  const response = await fetch(path, { headers: { accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

async function act(path, body) {
  problem("");
  try {
    const response = await fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => null);
    if (!response.ok) throw new Error(answer?.error?.message ?? `HTTP ${response.status}`);
    return answer;
  } catch (error) {
    problem(`Not saved: ${error.message}`);
    render(); // undo what the checkbox showed by itself
    return null;
  }
}

$("#new-todo").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("#title");
  const title = input.value.trim();
  if (!title) return;
  // Cleared only if it still holds what was sent (typing may have gone on).
  if ((await act("/todos", { title })) && input.value.trim() === title) input.value = "";
  input.focus();
});

render();
connect();
