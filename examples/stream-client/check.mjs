// Drives resume.js against a running engine (used by the test suite):
//   node --experimental-websocket check.mjs <worker_url> <stream_url> <stream>
// Subscribes, receives 5 events, stops, lets 5 more be written, subscribes again
// with the same storage and prints what each session received, as JSON.
import { subscribe } from "./resume.js";

const [workerUrl, streamUrl, stream] = process.argv.slice(2);
const memory = new Map();
const storage = {
  getItem: (k) => (memory.has(k) ? memory.get(k) : null),
  setItem: (k, v) => memory.set(k, v),
};

function worker() {
  return new Promise((resolve) => {
    const ws = new WebSocket(workerUrl);
    ws.onopen = () => resolve(ws);
  });
}

function send(ws, from, to) {
  for (let i = from; i < to; i++) {
    ws.send(JSON.stringify({
      type: "invokefunction", function_id: "stream::send", action: { type: "void" },
      data: { stream_name: stream, group_id: "g", type: "tick", data: { i } },
    }));
  }
}

function session(count, afterSync) {
  return new Promise((resolve) => {
    const got = [];
    const stop = subscribe({
      url: streamUrl, stream, group: "g", storage,
      onMessage: (msg) => {
        got.push(msg);
        if (msg.event.type === "sync") afterSync();
        if (got.filter((m) => m.event.type === "event").length === count) {
          stop();
          resolve(got);
        }
      },
    });
    if (storage.getItem(`iiilog:${stream}/g/`) !== null) afterSync();
  });
}

const ws = await worker();
const first = await session(5, () => send(ws, 0, 5));
send(ws, 5, 10); // written while we are away (or while we rejoin: same result)
const second = await session(5, () => {});
console.log(JSON.stringify({ first, second, stored: [...memory.values()] }));
ws.close();
process.exit(0);
