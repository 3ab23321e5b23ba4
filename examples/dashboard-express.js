// The dashboard mounted under /ops in an Express app. Mount it before any body parser (express.json()): it reads
// its own request bodies. Requests outside /ops go on to the app's routes.
// Run: npm i express; DATABASE_URL=… SKIPLOCK_DASHBOARD_TOKEN=… node examples/dashboard-express.js
import express from "express";
import { createDashboard } from "skiplock";

const dashboard = createDashboard({ token: process.env.SKIPLOCK_DASHBOARD_TOKEN, basePath: "/ops" });

const app = express();
app.use("/ops", dashboard.listener);
app.use(express.json());
app.get("/", (_req, res) => res.send("the app\n"));

const port = Number(process.env.PORT ?? 3000);
const server = app.listen(port, "127.0.0.1", () =>
  console.log(
    `listening on http://127.0.0.1:${/** @type {import("node:net").AddressInfo} */ (server.address()).port}/ops/`,
  ),
);

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => {
    server.close();
    server.closeAllConnections();
    void dashboard.close();
  });
}
