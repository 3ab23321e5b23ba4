import type { Hono } from "hono";
import type { PurgeTasksOptions } from "../../client.js";
import { validateTaskId } from "../../task.js";
import { expectationFrom, MAX_BULK_IDS, TASK_ACTIONS, type TaskAction } from "../actions.js";
import type { ApiContext } from "../api.js";
import { errorStatus, refuse } from "../responses.js";
import { redirect, send, withDone, type PageAccess } from "./access.js";
import { runTaskAction } from "../actions.js";
import { bulkConfirmPage, bulkResultPage, purgePage, type BulkOutcome, type PurgeForm } from "./action-pages.js";
import type { PageDataCache } from "./page-data.js";
import { listOf, taskPage } from "./task-detail.js";
import { schedulesPage } from "./workers-schedules.js";

/**
 * The forms that change something. Each answers with a redirect to the page that shows the outcome (POST, redirect,
 * GET, so a reload repeats nothing), or with a page that says why nothing was done: a task that changed state since
 * it was shown is shown as it is now (409) with the reason.
 */
export function actionRoutes(pages: Hono, ctx: ApiContext, access: PageAccess, data: PageDataCache): void {
  const { client } = ctx;

  pages.post("/task/:id/:action", async (c) => {
    const { env, form } = await access.poster(c);
    const id = validateTaskId(c.req.param("id"));
    const action = c.req.param("action") as TaskAction;
    if (!TASK_ACTIONS.includes(action)) throw refuse(404, "NOT_FOUND", `no task action named ${action}`);
    // The status and attempt the page showed: a task that changed since is refused, not acted on as it is now.
    const expect = expectationFrom(form.get("expect"), form.get("expectAttempt"));
    try {
      const task = await runTaskAction(client, action, id, expect);
      if (action === "delete") return redirect(withDone(`${env.base}/tasks/${listOf(task, env.now)}`, "delete"));
      return redirect(withDone(`${env.base}/task/${id}`, action));
    } catch (err) {
      const e = errorStatus(err);
      if (e.status !== 409) throw err;
      const task = await client.getTask(id);
      if (!task) throw err;
      return send(taskPage(env, task, await data.get(), [{ kind: "error", text: e.message }], false), 409);
    }
  });

  // Without `confirm=yes`, the confirmation page (which posts the same form confirmed); with it, the action on each.
  pages.post("/tasks/bulk", async (c) => {
    const { env, form } = await access.poster(c);
    const back = access.safeBack(form.get("back"), `${env.base}/tasks/failed`);
    const action = form.get("action") as TaskAction;
    if (!TASK_ACTIONS.includes(action)) {
      throw refuse(400, "BAD_REQUEST", `choose an action: ${TASK_ACTIONS.join(", ")}`);
    }
    const ids = [...new Set(form.getAll("id"))];
    if (ids.length === 0) return redirect(withDone(back, "none-selected"));
    if (ids.length > MAX_BULK_IDS) throw refuse(400, "BAD_REQUEST", `at most ${MAX_BULK_IDS} tasks at once`);
    const valid = ids.map((id) => validateTaskId(id));
    // The list's status, which every task it showed was in: one that has left it since is refused.
    const expected = form.get("expect") ?? "";
    if (form.get("confirm") !== "yes") return send(bulkConfirmPage(env, action, valid, back, expected));
    const expect = expectationFrom(expected, undefined);
    const outcome: BulkOutcome = { action, done: [], refused: [] };
    // One at a time: each its own compare-and-set, and a bulk action should not take the whole pool.
    for (const id of valid) {
      try {
        await runTaskAction(client, action, id, expect);
        outcome.done.push(id);
      } catch (err) {
        const e = errorStatus(err);
        if (e.status >= 500) throw err;
        outcome.refused.push({ id, message: e.message });
      }
    }
    return send(bulkResultPage(env, outcome, back));
  });

  pages.post("/schedules/:name/:action", async (c) => {
    const { env } = await access.poster(c);
    const name = c.req.param("name");
    const action = c.req.param("action");
    try {
      if (action === "pause") await client.pauseSchedule(name);
      else if (action === "resume") await client.resumeSchedule(name);
      else if (action === "trigger") {
        const task = await client.triggerSchedule(name);
        return redirect(withDone(`${env.base}/task/${task.id}`, "trigger"));
      } else throw refuse(404, "NOT_FOUND", `no schedule action named ${action}`);
    } catch (err) {
      const e = errorStatus(err);
      if (e.status >= 500 || e.code === "NOT_FOUND") throw err;
      const [list, d] = await Promise.all([client.listSchedules(), data.get()]);
      return send(schedulesPage(env, list, d, [{ kind: "error", text: e.message }]), e.status);
    }
    return redirect(withDone(`${env.base}/schedules`, action));
  });

  // Without `confirm=yes`, a dry run that counts; with it, the purge.
  pages.post("/purge", async (c) => {
    const { env, form } = await access.poster(c);
    const f: PurgeForm = { olderThanDays: (form.get("olderThanDays") ?? "").trim(), statuses: form.getAll("status") };
    // Plain decimal digits only: Number() would also take 0x1f, 1e3 or Infinity.
    const days = Number(f.olderThanDays);
    try {
      if (!/^\d{1,7}(\.\d{1,6})?$/.test(f.olderThanDays)) {
        throw refuse(400, "INVALID_OPTION", "give the age in days, such as 30 or 0.5");
      }
      const confirmed = form.get("confirm") === "yes";
      const r = await client.purgeTasks({
        olderThanDays: days,
        // The client checks them and names a wrong one.
        statuses: f.statuses as PurgeTasksOptions["statuses"],
        dryRun: !confirmed,
      });
      if (!confirmed) return send(purgePage(env, f, [], r.deleted));
      return send(purgePage(env, f, [{ kind: "ok", text: `Deleted ${r.deleted.toLocaleString("en-US")} tasks.` }]));
    } catch (err) {
      const e = errorStatus(err);
      if (e.status !== 400) throw err;
      return send(purgePage(env, f, [{ kind: "error", text: e.message }]), 400);
    }
  });
}
