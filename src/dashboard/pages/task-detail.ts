import type { Task } from "../../task.js";
import type { TaskAction } from "../actions.js";
import { actionButton, cut, html, href, jsonBlock, seconds, utc, when, type Html, type PageEnv } from "./html.js";
import { layout, type Notice } from "./layout.js";
import { navCounts, type PageData } from "./page-data.js";
import { ACTION_LABELS } from "./task-list.js";

/** The actions a task in this state takes (the database has the last word: each is a compare-and-set). */
export function actionsFor(t: Task, now: number): TaskAction[] {
  switch (t.status) {
    case "PENDING":
      return t.runAt.getTime() > now ? ["run-now", "cancel"] : ["cancel"];
    case "PROGRESS":
      return t.cancelRequested ? [] : ["cancel"];
    case "FAILED":
    case "CANCELLED":
      return ["retry", "delete"];
    case "COMPLETED":
      return ["delete"];
  }
}

/** The list a task in this state is found in. */
export function listOf(t: Pick<Task, "status" | "runAt">, now: number): string {
  switch (t.status) {
    case "PENDING":
      return t.runAt.getTime() > now ? "scheduled" : "due";
    case "PROGRESS":
      return "running";
    default:
      return t.status.toLowerCase();
  }
}

const STATUS_CLASS: Record<Task["status"], string> = {
  PENDING: "pending",
  PROGRESS: "progress",
  COMPLETED: "completed",
  FAILED: "failed",
  CANCELLED: "cancelled",
};

export const statusBadge = (status: Task["status"]): Html =>
  html`<span class="status-badge ${STATUS_CLASS[status]}">${status}</span>`;

function row(label: string, value: Html | string | number): Html {
  return html`<tr>
    <th>${label}</th>
    <td>${value}</td>
  </tr>`;
}

function time(env: PageEnv, d: Date | null): Html {
  return d === null ? html`<span class="muted">—</span>` : html`${utc(d)} <span class="muted">(${when(env, d)})</span>`;
}

export function taskPage(env: PageEnv, t: Task, data: PageData, notices: Notice[], live = true): Html {
  const actions = actionsFor(t, env.now).map((a) =>
    actionButton(env, `/task/${t.id}/${a}`, ACTION_LABELS[a], {
      danger: a === "delete",
      // What the page shows: a task that changed since is refused rather than acted on as it is now.
      fields: { expect: t.status, expectAttempt: String(t.attempt) },
    }),
  );
  const progress =
    t.progress === null
      ? html`<span class="muted">—</span>`
      : html`<progress max="1" value="${t.progress.fraction}"></progress> ${Math.round(t.progress.fraction * 100)}%
          ${t.progress.message ?? ""} <span class="muted">(${when(env, t.progress.at)})</span>`;
  const errors = t.errors.map(
    (e) =>
      html`<details class="attempt-error">
        <summary>
          Attempt ${e.attempt}: <strong>${e.type}</strong> ${cut(e.message, 300)}
          <span class="muted">${utc(e.at)}${e.workerId ? ` on ${e.workerId}` : ""}</span>
        </summary>
        <pre>${cut(e.stack ?? e.message)}</pre>
      </details>`,
  );
  const list = listOf(t, env.now);
  const body = html`<p class="crumbs"><a href="${href(env, `/tasks/${list}`)}">${list} tasks</a> ›</p>
    <h1>Task <span class="mono">${t.id}</span> ${statusBadge(t.status)}</h1>
    <p class="subtitle">
      <strong class="mono">${t.name}</strong> on queue
      <strong>${t.queue}</strong>
      ${t.cancelRequested && t.status === "PROGRESS" ? html` · <span class="warn">cancel requested</span>` : ""}
    </p>
    ${env.readOnly || actions.length === 0 ? "" : html`<div class="actions">${actions}</div>`}
    <div class="columns">
      <section>
        <h2>Details</h2>
        <table class="fields">
          ${row("Status", statusBadge(t.status))}
          ${row("Attempts", html`${t.attempt} started · ${t.retryCount} retried · ${t.maxRetries === null ? "retries: the worker's default" : `${t.maxRetries} retries allowed`}`)}
          ${row("Priority", t.priority)} ${row("Timeout", seconds(t.timeout))}
          ${row("Worker", t.workerId === null ? html`<span class="muted">—</span>` : html`<span class="mono">${t.workerId}</span>`)}
          ${row("Progress", progress)}
          ${row("Unique key", t.uniqueKey === null ? html`<span class="muted">—</span>` : html`<span class="mono">${t.uniqueKey}</span>`)}
          ${row("Schedule", t.schedule === null ? html`<span class="muted">—</span>` : html`${t.schedule.name}, tick ${utc(t.schedule.tick)}`)}
          ${row("Duration", t.duration === null ? html`<span class="muted">—</span>` : seconds(t.duration))}
        </table>
      </section>
      <section>
        <h2>Times <span class="muted">(UTC)</span></h2>
        <table class="fields">
          ${row("Created", time(env, t.createdAt))} ${row("Due", time(env, t.runAt))}
          ${row("Started", time(env, t.startedAt))} ${row("Heartbeat", time(env, t.heartbeatAt))}
          ${row("Finished", time(env, t.finishedAt))} ${row("Updated", time(env, t.updatedAt))}
        </table>
      </section>
    </div>
    <section>
      <h2>Arguments</h2>
      ${jsonBlock(t.args)}
    </section>
    ${
      t.status === "COMPLETED" || t.result !== null
        ? html`<section>
            <h2>Result</h2>
            ${jsonBlock(t.result)}
          </section>`
        : ""
    }
    ${
      t.error === null
        ? ""
        : html`<section>
            <h2>Error</h2>
            <pre class="error-text">${cut(t.error)}</pre>
          </section>`
    }
    ${
      errors.length === 0
        ? ""
        : html`<section>
            <h2>Failed attempts</h2>
            ${errors}
          </section>`
    }
    <section>
      <h2>Meta</h2>
      ${jsonBlock(t.meta)}
    </section>`;
  return layout(env, {
    title: `Task ${t.id}`,
    nav: list as never,
    counts: navCounts(data),
    live,
    taskId: t.id,
    notices,
    body,
  });
}
