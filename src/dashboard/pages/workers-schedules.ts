import type { ScheduleInfo } from "../../sql/schedule-admin.js";
import type { WorkerInfo } from "../../sql/workers.js";
import { actionButton, href, html, preview, seconds, utc, when, type Html, type PageEnv } from "./html.js";
import { layout, type Notice } from "./layout.js";
import { navCounts, type PageData } from "./page-data.js";

export function workersPage(env: PageEnv, workers: WorkerInfo[], data: PageData): Html {
  const rows = workers.map(
    (w) =>
      html`<tr class="${w.status}">
        <td>
          <span class="status-badge ${w.status === "live" ? "completed" : w.status === "lost" ? "failed" : "cancelled"}"
            >${w.status}</span
          >
        </td>
        <td class="mono">${w.id}</td>
        <td>${w.host}</td>
        <td class="num">${w.pid}</td>
        <td>
          ${w.queues.map((q, i) => html`${i > 0 ? ", " : ""}<a href="${href(env, "/tasks/running", { queue: q })}">${q}</a>`)}
        </td>
        <td class="num">${w.running} / ${w.concurrency}</td>
        <td>${when(env, w.lastSeenAt)} <span class="muted">every ${seconds(w.heartbeatInterval)}</span></td>
        <td>${when(env, w.startedAt)}</td>
        <td class="muted">${w.version}${w.schedules.length ? html`<br />schedules: ${w.schedules.join(", ")}` : ""}</td>
      </tr>`,
  );
  const body = html`<h1>Workers</h1>
    <p class="about">
      Every worker started in the last day, live first. A worker is lost once it has not been seen for longer than its
      staleAfter.
    </p>
    ${
      workers.length === 0
        ? html`<p class="empty">No worker has registered yet.</p>`
        : html`<table class="grid">
            <thead>
              <tr>
                <th>Status</th>
                <th>Worker</th>
                <th>Host</th>
                <th class="num">PID</th>
                <th>Queues</th>
                <th class="num">Running</th>
                <th>Last heartbeat</th>
                <th>Started</th>
                <th>Version</th>
              </tr>
            </thead>
            <tbody>
              ${rows}
            </tbody>
          </table>`
    }`;
  return layout(env, { title: "Workers", nav: "workers", counts: navCounts(data), live: true, body });
}

export function schedulesPage(env: PageEnv, list: ScheduleInfo[], data: PageData, notices: Notice[] = []): Html {
  const rows = list.map((s) => {
    const state = s.removedAt ? "removed" : s.paused ? "paused" : "active";
    const path = `/schedules/${encodeURIComponent(s.name)}`;
    return html`<tr>
      <td><strong>${s.name}</strong></td>
      <td class="mono">${s.cron}${s.timezone !== "UTC" ? html` <span class="muted">${s.timezone}</span>` : ""}</td>
      <td class="mono">${s.task}${s.args.length ? html` <span class="muted">${preview(s.args, 40)}</span>` : ""}</td>
      <td>${s.queue}</td>
      <td>
        ${s.lastTick === null ? html`<span class="muted">never</span>` : html`${when(env, s.lastTick)}${s.lastTaskId ? html` · <a href="${href(env, `/task/${s.lastTaskId}`)}">task ${s.lastTaskId}</a>` : ""}`}
      </td>
      <td>
        ${s.nextTick === null ? html`<span class="muted">—</span>` : html`<span title="${utc(s.nextTick)}">${when(env, s.nextTick)}</span>`}
      </td>
      <td>
        <span class="status-badge ${state === "active" ? "completed" : state === "paused" ? "pending" : "cancelled"}"
          >${state}</span
        >
      </td>
      <td class="row-actions">
        ${s.paused ? actionButton(env, `${path}/resume`, "Resume") : actionButton(env, `${path}/pause`, "Pause")}
        ${actionButton(env, `${path}/trigger`, "Trigger now")}
      </td>
    </tr>`;
  });
  const body = html`<h1>Schedules</h1>
    ${
      list.length === 0
        ? html`<p class="empty">No schedule is stored: workers store the schedules they declare when they start.</p>`
        : html`<table class="grid">
            <thead>
              <tr>
                <th>Name</th>
                <th>Cron</th>
                <th>Task</th>
                <th>Queue</th>
                <th>Last tick</th>
                <th>Next tick</th>
                <th>State</th>
                <th>${env.readOnly ? "" : "Actions"}</th>
              </tr>
            </thead>
            <tbody>
              ${rows}
            </tbody>
          </table>`
    }`;
  return layout(env, { title: "Schedules", nav: "schedules", counts: navCounts(data), live: true, notices, body });
}
