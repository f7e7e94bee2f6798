// (PocketBase runs each handler in a context of its own: no shared helpers.)
onRecordAfterCreateSuccess((e) => {
  e.app.db().newQuery("UPDATE metrics SET total = total + 1," +
    " completed = completed + {:c} WHERE id = 'globalmetrics00'")
    .bind({ c: e.record.getBool("completed") ? 1 : 0 }).execute();
  e.next();
}, "todos");
onRecordAfterUpdateSuccess((e) => {
  const change = (e.record.getBool("completed") ? 1 : 0) -
    (e.record.original().getBool("completed") ? 1 : 0);
  if (change !== 0) {
    e.app.db().newQuery("UPDATE metrics SET completed = completed + {:c}" +
      " WHERE id = 'globalmetrics00'").bind({ c: change }).execute();
  }
  e.next();
}, "todos");
onRecordAfterDeleteSuccess((e) => {
  e.app.db().newQuery("UPDATE metrics SET total = total - 1," +
    " completed = completed - {:c} WHERE id = 'globalmetrics00'")
    .bind({ c: e.record.getBool("completed") ? 1 : 0 }).execute();
  e.next();
}, "todos");
