// The reactive todo app (README.md) as an iii worker, Node SDK.
// Runs unchanged with iii-sdk 0.22.x and 0.11.x:
//   npm install && III_URL=ws://127.0.0.1:49134 node worker.mjs
import { randomUUID } from "node:crypto";
import { registerWorker, TriggerAction } from "iii-sdk";

const SCOPE = "todos";
const METRICS = { scope: "todo-metrics", key: "global" };
const url = process.env.III_URL ?? "ws://127.0.0.1:49134";
const iii = registerWorker(url, { workerName: "reactive-backend-node" });

const now = () => new Date().toISOString();
const json = (status_code, body) => ({ status_code, body });
const error = (status, code, message) => json(status, { error: { code, message } });
const state = (fn, payload) => iii.trigger({ function_id: `state::${fn}`, payload });

// [id, todo], or the error answer: 400 without an id, 404 for an unknown one.
async function find(req) {
  const id = req.body?.id;
  if (typeof id !== "string" || !id) return [null, error(400, "BAD_REQUEST", "`id` is required")];
  const current = await state("get", { scope: SCOPE, key: id });
  if (current == null) return [null, error(404, "NOT_FOUND", `Todo ${id} not found`)];
  return [id, current];
}

function classify(event) {
  if (event.event_type === "state:deleted" || event.new_value == null) return "deleted";
  if (event.old_value == null) return "created";
  return "updated";
}

// The counter changes one todo change implies.
function metricOps(event) {
  const action = classify(event);
  const was = Boolean(event.old_value?.completed);
  const is = Boolean(event.new_value?.completed);
  if (action === "created") {
    return [{ type: "increment", path: "total", by: 1 },
      ...(is ? [{ type: "increment", path: "completed", by: 1 }] : [])];
  }
  if (action === "deleted") {
    if (event.old_value == null) return [];
    return [{ type: "decrement", path: "total", by: 1 },
      ...(was ? [{ type: "decrement", path: "completed", by: 1 }] : [])];
  }
  if (was === is) return [];
  return [{ type: is ? "increment" : "decrement", path: "completed", by: 1 }];
}

const routes = [
  ["todos::create", "todos", "POST", async (req) => {
    const title = req.body?.title;
    if (typeof title !== "string" || !title.trim()) {
      return json(400, { error: { code: "BAD_REQUEST", message: "`title` is required" } });
    }
    const id = `todo-${Date.now()}-${randomUUID().slice(0, 6)}`;
    const todo = { _key: id, id, title: title.trim(), completed: false, created_at: now() };
    try {
      await state("set", { scope: SCOPE, key: id, value: todo });
    } catch (e) {
      // The engine's max_value_bytes: the client's error, not a crash.
      if (e?.code === "VALUE_TOO_LARGE") return error(413, e.code, e.message);
      throw e;
    }
    return json(201, todo);
  }],
  ["todos::list", "todos", "GET", async () => json(200, await state("list", { scope: SCOPE }))],
  ["todos::toggle", "todos/toggle", "POST", async (req) => {
    const [id, current] = await find(req);
    if (id == null) return current;
    const completed = !current.completed;
    await state("update", {
      scope: SCOPE, key: id,
      ops: [{ type: "set", path: "completed", value: completed },
        { type: "set", path: "updated_at", value: now() }],
    });
    return json(200, { id, completed });
  }],
  ["todos::delete", "todos/delete", "POST", async (req) => {
    const [id, found] = await find(req);
    if (id == null) return found;
    const old = await state("delete", { scope: SCOPE, key: id });
    // Deleted meanwhile by another request.
    if (old == null) return error(404, "NOT_FOUND", `Todo ${id} not found`);
    return json(200, { deleted: id });
  }],
  ["todos::get-metrics", "todos/metrics", "GET", async () =>
    json(200, (await state("get", METRICS)) ?? { total: 0, completed: 0 })],
];

for (const [id, path, method, handler] of routes) {
  iii.registerFunction(id, handler);
  iii.registerTrigger({ type: "http", function_id: id, config: { api_path: path, http_method: method } });
}

iii.registerFunction("todos::on-change", async (event) => {
  const action = classify(event);
  console.log(`todo ${event.key}: ${action}`);
  iii.trigger({
    function_id: "stream::send",
    payload: {
      stream_name: "todos-live", group_id: "all", type: "todo_changed",
      // offset: the state change's log position (iiilog), for exact handover
      data: { action, key: event.key, todo: event.new_value, offset: event.offset },
    },
    action: TriggerAction.Void(),
  });
  return null;
});
iii.registerFunction("todos::update-metrics", async (event) => {
  const ops = metricOps(event);
  if (ops.length) await state("update", { ...METRICS, ops });
  return null;
});
for (const id of ["todos::on-change", "todos::update-metrics"]) {
  iii.registerTrigger({ type: "state", function_id: id, config: { scope: SCOPE } });
}
console.log(`todo worker (node) connected to ${url}`);

const stop = async () => {
  await iii.shutdown();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
