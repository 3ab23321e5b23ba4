// The dashboard in a real browser (Chromium through playwright-core): sign in with the token, find a failed task in
// the failed list, open it, retry it, and watch a real Worker complete it while the page updates itself from the
// event stream, without a reload. Markup in a task's fields must run nothing (no dialog), and the page must break no
// rule of its Content-Security-Policy. With JavaScript off, the same work is done by plain forms. Screenshots of the
// overview go to test-artifacts/; with SKIPLOCK_SCREENSHOTS=1 the overview and the task page are also written to
// docs/images/ (the README's pictures).
import { mkdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDashboard, taskContext } from "../src/index.js";
import { TOKEN } from "./dashboard-fixture.js";
import { quiet, ROOT } from "./helpers.js";
import { missingTools } from "./system-tools.js";
import { workerFixture } from "./worker-fixture.js";

const env = workerFixture({
  label: "dashboard_browser",
  workerDefaults: { heartbeatInterval: 0.5, staleAfter: 600, pollInterval: 0.5 },
});

const ARTIFACTS = join(ROOT, "test-artifacts");
const DOC_IMAGES = join(ROOT, "docs/images");
const forDocs = process.env.SKIPLOCK_SCREENSHOTS === "1";

/** A promise and the function that settles it: the test holds a handler until it lets go. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

/**
 * An hour of history as a busy app leaves it, written straight into the table: tasks finished across the last hour
 * on several queues, a few of them failed, so the overview's chart and counts have something to show.
 */
async function writeHistory(): Promise<void> {
  await env.pool.query(
    `INSERT INTO "${env.schema}".tasks (name, args, queue, status, attempt, max_retries, started_at, finished_at,
                                         duration, result, error, run_at, created_at, updated_at, worker_id)
     SELECT h.name, '[]', h.queue, h.status, 1, 2, h.f - h.d * interval '1 second', h.f, h.d,
            CASE WHEN h.status = 'COMPLETED' THEN '{"ok":true}'::jsonb END,
            CASE WHEN h.status = 'FAILED' THEN 'Error: card declined (code 402)' END,
            h.f - (h.d + 0.2) * interval '1 second', h.f - (h.d + 0.2) * interval '1 second', h.f, 'web-1:4242:5f1c9a2e'
       FROM (SELECT g, now() - (59 * 60 * random()) * interval '1 second' AS f,
                    0.05 + random() * random() * 3 AS d,
                    (ARRAY['email.send', 'email.send', 'image.resize', 'billing.charge', 'report.build'])[1 + g % 5] AS name,
                    (ARRAY['email', 'email', 'default', 'billing', 'reports'])[1 + g % 5] AS queue,
                    CASE WHEN g % 5 = 3 AND random() < 0.04 THEN 'FAILED' ELSE 'COMPLETED' END AS status
               FROM generate_series(1, 2400) g) h`,
  );
}

describe.skipIf(missingTools("chromium"))("the dashboard in Chromium", () => {
  let server: Server | undefined;
  let browser: Browser | undefined;
  let origin = "";
  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const dashboard = createDashboard({ client: env.client, token: TOKEN, logger: quiet });
    server = createServer(dashboard.listener);
    await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      headless: true,
      args: ["--no-sandbox", "--disable-background-networking"],
    });
  });
  afterAll(async () => {
    await browser?.close();
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  });

  it("signs in, retries a failed task from its page and shows it completing live, running no injected markup", async () => {
    await writeHistory();
    const finishRetry = gate();
    const releaseMail = gate();
    let attempts = 0;
    await env.startWorker({
      workerId: `app-1:${process.pid}:5f1c9a2e`,
      concurrency: 4,
      queues: ["default", "email", "reports"],
      tasks: {
        "report.build": async (month: string) => {
          attempts += 1;
          if (attempts === 1) {
            // The stack an application's own code would leave (the test's paths say nothing to a reader).
            const err = new Error(`upstream timed out after 30 s while exporting ${month}`);
            err.stack = `Error: ${err.message}\n    at exportMonth (/srv/app/dist/reports/export.js:41:11)\n    at async buildReport (/srv/app/dist/reports/build.js:18:5)`;
            throw err;
          }
          await taskContext().progress(0.4, "rendering");
          await finishRetry.wait;
          return { rows: 1204, file: `reports/${month}.csv` };
        },
        "email.send": async () => {
          await taskContext().progress(0.6, "sent 600 of 1,000");
          await releaseMail.wait;
          return { sent: 1000 };
        },
      },
    });
    try {
      const report = await env.client.createTask("report.build", ["2026-11"], { queue: "reports", maxRetries: 0 });
      expect((await env.finished(report)).status).toBe("FAILED");
      const evil = await env.client.createTask(
        "job",
        ['<script>alert("args")</script>', '"><img src=x onerror=alert(1)>'],
        {
          meta: { link: "javascript:alert(2)" },
        },
      );
      await env.pool.query(
        `UPDATE "${env.schema}".tasks SET name = $2, status = 'FAILED', attempt = 1, finished_at = now() - interval '5 minutes',
           error = $3, result = $4::jsonb WHERE id = $1`,
        [evil.id, "<img src=x onerror=alert(3)>", "Error: <script>alert(4)</script>", '"<svg onload=alert(5)>"'],
      );
      const mail = await env.client.createTask("email.send", ["digest", 1000], { queue: "email" });
      for (let i = 0; i < 3; i++)
        await env.client.createTask("billing.charge", [`cus_${1000 + i}`], { queue: "billing" });
      await env.client.createTask("billing.invoice", ["2026-12"], { queue: "billing", delay: 3 * 3600 });
      // The mail task is running once its progress is stored.
      await new Promise<void>((resolve) => {
        const off = env.client.onProgress(mail.id, () => (off(), resolve()));
      });

      const page = await browser!.newPage({ viewport: { width: 1280, height: 860 } });
      const dialogs: string[] = [];
      const problems: string[] = [];
      page.on("dialog", (d) => {
        dialogs.push(d.message());
        void d.dismiss();
      });
      page.on("response", (r) => {
        if (r.status() >= 400) problems.push(`${r.status()} for ${r.url()}`);
      });
      page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
      page.on("console", (m) => {
        if (m.type() === "error") problems.push(`console: ${m.text()}`);
      });

      // Not signed in: the sign-in page, then back to the overview.
      await page.goto(`${origin}/`);
      expect(new URL(page.url()).pathname).toBe("/login");
      await page.fill('input[name="token"]', TOKEN);
      await Promise.all([page.waitForURL(`${origin}/`), page.click('button[type="submit"]:has-text("Sign in")')]);
      await page.waitForSelector("h1:has-text('Overview')");
      await page.waitForSelector("#live-status:not([hidden])");
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-overview.png"), fullPage: true });
      if (forDocs) await page.screenshot({ path: join(DOC_IMAGES, "dashboard-overview.png") });

      // The failed list holds the report; its page shows the error.
      await page.click('header nav a:has-text("Failed")');
      await page.waitForSelector(`a[href="/task/${report.id}"]`);
      expect(await page.textContent("main")).toContain("upstream timed out after 30 s");
      await page.click(`a[href="/task/${evil.id}"]`);
      await page.waitForSelector("h1:has-text('Task')");
      expect(await page.textContent("main")).toContain("<script>alert(4)</script>"); // shown as text
      await page.goBack();
      await page.click(`a[href="/task/${report.id}"]`);
      await page.waitForSelector("h1 .status-badge.failed");
      if (forDocs) await page.screenshot({ path: join(DOC_IMAGES, "dashboard-task.png"), fullPage: true });

      // Retry: the form posts and lands back on the task, pending (or already running, held by the gate).
      await Promise.all([
        page.waitForURL(`${origin}/task/${report.id}?done=retry`),
        page.click('form[action$="/retry"] button'),
      ]);
      expect(await page.textContent(".notice.ok")).toContain("Retried");
      expect(await page.textContent("h1 .status-badge")).toMatch(/PENDING|PROGRESS/);
      // From here on the page must not load again: a mark set on this document must survive the completion.
      await page.evaluate(() => ((globalThis as { stillHere?: boolean }).stillHere = true));
      finishRetry.open();
      await page.waitForSelector("h1 .status-badge.completed", { timeout: 20_000 });
      expect(await page.evaluate(() => (globalThis as { stillHere?: boolean }).stillHere)).toBe(true);
      expect(await page.textContent("main")).toContain("reports/2026-11.csv");
      expect((await env.client.getTask(report.id))?.status).toBe("COMPLETED");

      // A hidden tab closes its stream; shown again, it reopens it.
      const setVisibility = (state: string) =>
        page.evaluate((s) => {
          const doc = (globalThis as any).document;
          Object.defineProperty(doc, "visibilityState", { value: s, configurable: true });
          doc.dispatchEvent(new Event("visibilitychange"));
        }, state);
      await setVisibility("hidden");
      await page.waitForSelector("#live-status.paused");
      expect(await page.textContent("#live-status")).toBe("paused");
      await setVisibility("visible");
      await page.waitForSelector("#live-status:not(.paused)");

      // A bulk action from the list: tick two, confirm on the next page, read what was done.
      await page.goto(`${origin}/tasks/running`);
      await page.waitForSelector(`a[href="/task/${mail.id}"]`);
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-running.png"), fullPage: true });
      await page.click(`a[href="/task/${mail.id}"]`);
      await page.waitForSelector("h1 .status-badge.progress");
      expect(await page.textContent("main")).toContain("sent 600 of 1,000");
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-running-task.png"), fullPage: true });
      await page.goto(`${origin}/tasks/failed`);
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-failed.png"), fullPage: true });
      const history = await page.getAttribute(
        `tbody tr:not(:has(a[href="/task/${evil.id}"])) input[name="id"]`,
        "value",
      );
      await page.check(`input[name="id"][value="${evil.id}"]`);
      await page.check(`input[name="id"][value="${history}"]`);
      await page.click('.bulk button[value="delete"]');
      await page.waitForSelector("h1:has-text('Delete 2 tasks?')");
      await page.click('form.confirm button[type="submit"]');
      await page.waitForSelector(".notice.ok");
      expect(await page.textContent(".notice.ok")).toBe("2 deleted");
      expect(await env.client.getTask(evil.id)).toBeNull();

      expect(dialogs).toEqual([]);
      expect(problems).toEqual([]);
    } finally {
      finishRetry.open();
      releaseMail.open();
    }
  });
  it("works with JavaScript off: sign in, tick a failed task, confirm a bulk retry, read the result", async () => {
    const t = await env.client.createTask("report.build", ["2026-10"], { queue: "reports" });
    await env.pool.query(
      `UPDATE "${env.schema}".tasks SET status = 'FAILED', attempt = 1, finished_at = now(), error = 'Error: no' WHERE id = $1`,
      [t.id],
    );
    const context = await browser!.newContext({ javaScriptEnabled: false });
    try {
      const page = await context.newPage();
      await page.goto(`${origin}/tasks/failed`);
      expect(new URL(page.url()).pathname).toBe("/login");
      await page.fill('input[name="token"]', TOKEN);
      await Promise.all([page.waitForURL(`${origin}/tasks/failed`), page.click('button:has-text("Sign in")')]);
      expect(await page.isHidden("input[data-select-all]")).toBe(true); // needs the script: not offered without it
      await page.check(`input[name="id"][value="${t.id}"]`);
      await page.click('.bulk button[value="retry"]');
      await page.waitForSelector("h1:has-text('Retry 1 task?')");
      await page.click('form.confirm button[type="submit"]');
      await page.waitForSelector(".notice.ok");
      expect(await page.textContent(".notice.ok")).toBe("1 retried");
      expect((await env.client.getTask(t.id))?.status).toBe("PENDING");
      await page.click(`a[href="/tasks/failed"]`);
      await page.click('button:has-text("Sign out")');
      await page.waitForURL(`${origin}/login`);
    } finally {
      await context.close();
    }
  });
});
