migrate((app) => {
  const todos = new Collection({
    type: "base", name: "todos",
    listRule: "", viewRule: "", createRule: "", updateRule: "", deleteRule: "",
    fields: [{ name: "title", type: "text" }, { name: "completed", type: "bool" }],
  });
  app.save(todos);
  const metrics = new Collection({
    type: "base", name: "metrics", listRule: "", viewRule: "",
    fields: [{ name: "total", type: "number" }, { name: "completed", type: "number" }],
  });
  app.save(metrics);
  const global = new Record(metrics);
  global.set("id", "globalmetrics00");
  global.set("total", 0);
  global.set("completed", 0);
  app.save(global);
}, (app) => {});
