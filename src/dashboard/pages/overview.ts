import type { MinuteCounts } from "../../sql/stats.js";
import type { WorkerInfo } from "../../sql/workers.js";
import { TASK_STATUSES } from "../../task.js";
import { href, html, number, seconds, utc, when, type Html, type PageEnv } from "./html.js";
import { layout } from "./layout.js";
import { navCounts, type PageData } from "./page-data.js";

/** Per minute of the last hour, completed (dark) and failed (red) stacked: an SVG drawn here, no script. */
function throughputChart(minutes: readonly MinuteCounts[]): Html {
  const W = 720;
  const H = 90;
  const step = W / Math.max(minutes.length, 1);
  const peak = Math.max(1, ...minutes.map((m) => m.completed + m.failed));
  const bars = minutes.map((m, i) => {
    const x = (i * step + 1).toFixed(1);
    const w = Math.max(step - 2, 1).toFixed(1);
    const ok = (m.completed / peak) * (H - 4);
    const bad = (m.failed / peak) * (H - 4);
    const label = `${utc(m.at).slice(11, 16)} UTC: ${m.completed} completed, ${m.failed} failed`;
    return html`<g>
      <title>${label}</title>
      <rect class="bar-hit" x="${x}" y="0" width="${w}" height="${H}"></rect>
      <rect class="bar-ok" x="${x}" y="${(H - ok).toFixed(1)}" width="${w}" height="${ok.toFixed(1)}"></rect>
      <rect class="bar-bad" x="${x}" y="${(H - ok - bad).toFixed(1)}" width="${w}" height="${bad.toFixed(1)}"></rect>
    </g>`;
  });
  return html`<svg
    class="chart"
    viewBox="0 0 ${W} ${H}"
    preserveAspectRatio="none"
    role="img"
    aria-label="Tasks finished per minute over the last hour"
  >
    ${bars}
  </svg>`;
}

function liveWorkerTable(env: PageEnv, workers: readonly WorkerInfo[]): Html {
  const live = workers.filter((w) => w.status === "live");
  if (live.length === 0) return html`<p class="empty">No live worker: nothing is being run.</p>`;
  const rows = live.map(
    (w) =>
      html`<tr>
        <td class="mono">${w.id}</td>
        <td>${w.host}</td>
        <td class="num">${w.pid}</td>
        <td>${w.queues.join(", ")}</td>
        <td class="num">${w.running} / ${w.concurrency}</td>
        <td>${when(env, w.lastSeenAt)}</td>
      </tr>`,
  );
  return html`<table class="grid">
    <thead>
      <tr>
        <th>Worker</th>
        <th>Host</th>
        <th class="num">PID</th>
        <th>Queues</th>
        <th class="num">Running</th>
        <th>Last heartbeat</th>
      </tr>
    </thead>
    <tbody>
      ${rows}
    </tbody>
  </table>`;
}

export function overviewPage(env: PageEnv, d: PageData, workers: readonly WorkerInfo[]): Html {
  const { counts, perMinute, oldestDue, liveWorkers } = d.stats;
  const est = (s: string) => (counts.estimated.includes(s as never) ? "~" : "");
  const hour = perMinute.reduce((a, m) => ({ ok: a.ok + m.completed, bad: a.bad + m.failed }), { ok: 0, bad: 0 });
  const lastFive = perMinute.slice(-6, -1);
  const rate = lastFive.reduce((a, m) => a + m.completed + m.failed, 0) / Math.max(lastFive.length, 1);
  const queues = Object.keys(counts.queues).sort();
  const cards = [
    ["Due now", d.split.due >= 10_000 ? "10,000+" : number(d.split.due), href(env, "/tasks/due"), ""],
    ["Running", number(counts.totals.PROGRESS), href(env, "/tasks/running"), ""],
    ["Stale", number(d.split.stale), href(env, "/tasks/stale"), d.split.stale > 0 ? "warn" : ""],
    [
      "Failed",
      `${est("FAILED")}${number(counts.totals.FAILED)}`,
      href(env, "/tasks/failed"),
      counts.totals.FAILED > 0 ? "bad" : "",
    ],
    ["Finished / min", rate.toFixed(rate < 10 ? 1 : 0), href(env, "/tasks/completed"), ""],
    ["Live workers", number(liveWorkers), href(env, "/workers"), liveWorkers === 0 ? "warn" : ""],
  ].map(
    ([label, value, link, tone]) =>
      html`<a class="card ${tone}" href="${link}"
        ><span class="value">${value}</span><span class="label">${label}</span></a
      >`,
  );
  const rows = queues.map((q) => {
    const c = counts.queues[q]!;
    const cell = (status: (typeof TASK_STATUSES)[number], view: string) =>
      html`<td class="num">
        <a href="${href(env, `/tasks/${view}`, { queue: q })}">${est(status)}${number(c[status])}</a>
      </td>`;
    const age = oldestDue[q];
    return html`<tr>
      <td><a href="${href(env, "/tasks/due", { queue: q })}">${q}</a></td>
      ${cell("PENDING", "due")}${cell("PROGRESS", "running")}${cell("FAILED", "failed")}${cell("CANCELLED", "cancelled")}${cell("COMPLETED", "completed")}
      <td class="num ${age !== undefined && age > 60 ? "warn" : ""}">${age === undefined ? "—" : seconds(age)}</td>
    </tr>`;
  });
  const body = html`<h1>Overview</h1>
    <section class="cards">${cards}</section>
    <section>
      <h2>Last hour <span class="muted">${number(hour.ok)} completed, ${number(hour.bad)} failed</span></h2>
      ${throughputChart(perMinute)}
      <p class="legend">
        <span class="key ok"></span> completed <span class="key bad"></span> failed, per minute; the rightmost bar is
        the current minute.
      </p>
    </section>
    <section>
      <h2>Queues</h2>
      ${
        queues.length === 0
          ? html`<p class="empty">No tasks yet.</p>`
          : html`<table class="grid">
              <thead>
                <tr>
                  <th>Queue</th>
                  <th class="num">Pending</th>
                  <th class="num">Running</th>
                  <th class="num">Failed</th>
                  <th class="num">Cancelled</th>
                  <th class="num">Completed</th>
                  <th class="num">Oldest due waits</th>
                </tr>
              </thead>
              <tbody>
                ${rows}
              </tbody>
            </table>`
      }
      ${
        counts.exact
          ? ""
          : html`<p class="muted small">
              ~ estimated from the table's statistics (${counts.estimated.join(", ")}): past their exact limit, finished
              tasks are not counted one by one.
            </p>`
      }
    </section>
    <section>
      <h2>Live workers</h2>
      ${liveWorkerTable(env, workers)}
    </section>`;
  return layout(env, { title: "Overview", nav: "overview", counts: navCounts(d), live: true, body });
}
