// Resumable iiilog stream subscription: remembers the offset of the last message
// it handled and, on reconnect, asks for exactly what came after it.
// Works in browsers and in Node (22+, or 20 with --experimental-websocket).
//
//   const stop = subscribe({
//     url: "ws://localhost:3112", stream: "todos-live", group: "all",
//     onMessage: (msg) => render(msg),
//   });
export function subscribe({ url, stream, group, item, onMessage, storage }) {
  const store = storage ?? globalThis.localStorage;
  const key = `iiilog:${stream}/${group}/${item ?? ""}`;
  let ws;
  let stopped = false;
  let attempt = 0;

  const connect = () => {
    ws = new WebSocket(url);
    ws.onopen = () => {
      attempt = 0;
      const last = store.getItem(key);
      const data = { subscriptionId: key, streamName: stream, groupId: group };
      if (item) data.id = item;
      if (last !== null) data.from = Number(last); // resume after this offset
      ws.send(JSON.stringify({ type: "join", data }));
    };
    ws.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      if (msg.type !== "stream") return;
      // A "sync" (first join, or msg.reset when the position is too old)
      // replaces local state; anything else is one change, in log order.
      onMessage(msg);
      if (typeof msg.offset === "number") store.setItem(key, String(msg.offset));
    };
    ws.onclose = () => {
      if (stopped) return;
      const delay = Math.min(1000 * 2 ** attempt++, 30000);
      setTimeout(connect, delay);
    };
  };

  connect();
  return () => {
    stopped = true;
    ws.close();
  };
}
