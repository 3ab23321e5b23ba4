// The dashboard mounted under /admin in a plain Node http server, beside the app's own routes.
// Run: DATABASE_URL=… SKIPLOCK_DASHBOARD_TOKEN=$(openssl rand -hex 24) node examples/dashboard-http.js
// then: curl -H "Authorization: Bearer $SKIPLOCK_DASHBOARD_TOKEN" http://127.0.0.1:3000/admin/api/stats
import { createServer } from "node:http";
import { createDashboard } from "skiplock";

const dashboard = createDashboard({
  token: process.env.SKIPLOCK_DASHBOARD_TOKEN, // without one, it answers on 127.0.0.1 only
  basePath: "/admin",
});

const server = createServer((req, res) => {
  if (req.url === "/admin" || req.url?.startsWith("/admin/")) return dashboard.listener(req, res);
  res.end("the app\n");
});

const port = Number(process.env.PORT ?? 3000);
server.listen(port, "127.0.0.1", () =>
  console.log(
    `listening on http://127.0.0.1:${/** @type {import("node:net").AddressInfo} */ (server.address()).port}/admin/`,
  ),
);

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => {
    server.close();
    server.closeAllConnections();
    void dashboard.close(); // closes the client it made from DATABASE_URL
  });
}
