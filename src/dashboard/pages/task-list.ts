import { listFilter, readTaskPage, type TaskPage } from "../../admin.js";
import { clientInternals, type SkiplockClient } from "../../client.js";
import type { ListFilter } from "../../sql/admin-list.js";
import type { Task, TaskStatus } from "../../task.js";
import type { TaskAction } from "../actions.js";
import { csrfField, href, html, preview, seconds, when, type Html, type PageEnv } from "./html.js";
import { layout, type NavKey, type Notice } from "./layout.js";
import { navCounts, STALE_AFTER_SECONDS, type PageData } from "./page-data.js";

/** The task lists: each a status and, for some, a condition on run_at or the heartbeat. */
export interface ListView {
  title: string;
  status: TaskStatus;
  runAt?: "due" | "future";
  stale?: boolean;
  /** The bulk actions that apply to every task the list holds. */
  actions: readonly TaskAction[];
  columns: readonly Column[];
  /** Said above the table. */
  about: string;
}

type Column =
  | "attempts"
  | "finished"
  | "error"
  | "worker"
  | "started"
  | "heartbeat"
  | "progress"
  | "priority"
  | "runAt"
  | "created"
  | "duration"
  | "result";

export const LIST_VIEWS = {
  failed: {
    title: "Failed",
    status: "FAILED",
    actions: ["retry", "delete"],
    columns: ["attempts", "finished", "error"],
    about: "Tasks whose last attempt failed with no retries left, newest first.",
  },
  stale: {
    title: "Stale",
    status: "PROGRESS",
    stale: true,
    actions: ["cancel"],
    columns: ["worker", "started", "heartbeat", "progress"],
    about: `Running tasks whose worker has not sent a heartbeat for over ${STALE_AFTER_SECONDS} s: its worker may be lost; a worker's sweeper gives them back to the queue (or fails them) once its staleAfter passes.`,
  },
  running: {
    title: "Running",
    status: "PROGRESS",
    actions: ["cancel"],
    columns: ["worker", "started", "heartbeat", "progress"],
    about: "Tasks a worker is running now, newest first.",
  },
  due: {
    title: "Due now",
    status: "PENDING",
    runAt: "due",
    actions: ["cancel"],
    columns: ["priority", "runAt", "attempts", "created"],
    about: "Pending tasks whose time has come, waiting for a worker, newest first.",
  },
  scheduled: {
    title: "Scheduled",
    status: "PENDING",
    runAt: "future",
    actions: ["run-now", "cancel"],
    columns: ["priority", "runAt", "attempts", "created"],
    about: "Pending tasks due later (delayed, scheduled, or waiting out a retry backoff), newest first.",
  },
  completed: {
    title: "Completed",
    status: "COMPLETED",
    actions: ["delete"],
    columns: ["finished", "duration", "result"],
    about: "Tasks that completed, newest first.",
  },
  cancelled: {
    title: "Cancelled",
    status: "CANCELLED",
    actions: ["retry", "delete"],
    columns: ["finished", "error"],
    about: "Tasks that were cancelled, newest first.",
  },
} as const satisfies Record<string, ListView>;

export type ListViewName = keyof typeof LIST_VIEWS;
export const isListView = (v: string): v is ListViewName => Object.hasOwn(LIST_VIEWS, v);

/** Tasks per page, and the most a `limit` may ask for. */
export const LIST_PAGE_SIZE = 50;
export const MAX_LIST_PAGE_SIZE = 200;

export const ACTION_LABELS: Record<TaskAction, string> = {
  retry: "Retry",
  cancel: "Cancel",
  "run-now": "Run now",
  delete: "Delete",
};

export interface ListQuery {
  queue: string;
  name: string;
  after: string;
  limit: number;
}

/** One page of a list view (keyset: `after` is the last id of the previous page). */
export async function readListPage(client: SkiplockClient, view: ListView, q: ListQuery): Promise<TaskPage> {
  const { pageSize, ...checked } = listFilter({
    status: view.status,
    limit: q.limit,
    ...(q.queue ? { queue: q.queue } : {}),
    ...(q.name ? { name: q.name } : {}),
    ...(q.after ? { after: q.after } : {}),
  });
  const filter: ListFilter = {
    ...checked,
    ...(view.runAt ? { runAt: view.runAt } : {}),
    ...(view.stale ? { heartbeatOlderThan: STALE_AFTER_SECONDS } : {}),
  };
  const { store } = clientInternals(client);
  return readTaskPage(store.pool, store.tasks, filter, pageSize);
}

function cell(env: PageEnv, t: Task, c: Column): Html {
  switch (c) {
    case "attempts":
      return html`<td class="num">
        ${t.attempt}${t.maxRetries !== null ? html`<span class="muted">/${t.maxRetries + 1}</span>` : ""}
      </td>`;
    case "finished":
      return html`<td>${when(env, t.finishedAt)}</td>`;
    case "error":
      return html`<td class="preview error-text">${t.error === null ? "" : preview(t.error, 100)}</td>`;
    case "worker":
      return html`<td class="mono">${t.workerId ?? "—"}</td>`;
    case "started":
      return html`<td>${when(env, t.startedAt)}</td>`;
    case "heartbeat":
      return html`<td>${when(env, t.heartbeatAt)}</td>`;
    case "progress":
      return t.progress === null
        ? html`<td class="muted">—</td>`
        : html`<td>
            <progress max="1" value="${t.progress.fraction}"></progress>
            ${Math.round(t.progress.fraction * 100)}%${t.progress.message ? html` <span class="muted">${preview(t.progress.message, 40)}</span>` : ""}
          </td>`;
    case "priority":
      return html`<td class="num">${t.priority}</td>`;
    case "runAt":
      return html`<td>${when(env, t.runAt)}</td>`;
    case "created":
      return html`<td>${when(env, t.createdAt)}</td>`;
    case "duration":
      return html`<td class="num">${t.duration === null ? "—" : seconds(t.duration)}</td>`;
    case "result":
      return html`<td class="preview mono">${preview(t.result, 80)}</td>`;
  }
}

const HEADINGS: Record<Column, string> = {
  attempts: "Attempts",
  finished: "Finished",
  error: "Error",
  worker: "Worker",
  started: "Started",
  heartbeat: "Heartbeat",
  progress: "Progress",
  priority: "Priority",
  runAt: "Due",
  created: "Created",
  duration: "Duration",
  result: "Result",
};

export function listPage(
  env: PageEnv,
  name: ListViewName,
  q: ListQuery,
  page: { tasks: Task[]; next: string | null },
  data: PageData,
  notices: Notice[],
): Html {
  const view: ListView = LIST_VIEWS[name];
  const path = `/tasks/${name}`;
  const here = href(env, path, { queue: q.queue, name: q.name, after: q.after });
  const filters = { queue: q.queue, name: q.name };
  const rows = page.tasks.map(
    (t) =>
      html`<tr>
        ${env.readOnly ? "" : html`<td class="check"><input type="checkbox" name="id" value="${t.id}" aria-label="select task ${t.id}" /></td>`}
        <td class="mono"><a href="${href(env, `/task/${t.id}`)}">${t.id}</a></td>
        <td><a href="${href(env, path, { ...filters, name: t.name })}" title="only ${t.name}">${t.name}</a></td>
        <td>
          <a href="${href(env, path, { ...filters, queue: t.queue })}" title="only queue ${t.queue}">${t.queue}</a>
        </td>
        ${view.columns.map((c) => cell(env, t, c))}
      </tr>`,
  );
  const head = html`<tr>
    ${env.readOnly ? "" : html`<th class="check"><input type="checkbox" data-select-all hidden aria-label="select all" /></th>`}
    <th>ID</th>
    <th>Name</th>
    <th>Queue</th>
    ${view.columns.map((c) => html`<th>${HEADINGS[c]}</th>`)}
  </tr>`;
  const bulk =
    env.readOnly || page.tasks.length === 0
      ? ""
      : html`<div class="bulk">
          <span class="muted">Selected tasks:</span>
          ${view.actions.map(
            (a) =>
              html`<button type="submit" name="action" value="${a}" class="${a === "delete" ? "danger" : ""}">
                ${ACTION_LABELS[a]}
              </button>`,
          )}
        </div>`;
  const table =
    page.tasks.length === 0
      ? html`<p class="empty">
          No ${view.title.toLowerCase()}
          tasks${q.queue || q.name ? " match these filters" : ""}${q.after ? " older than these" : ""}${
            page.next ? " among the newest tasks read; older ones may" : ""
          }.
        </p>`
      : html`<table class="grid tasks">
          <thead>
            ${head}
          </thead>
          <tbody>
            ${rows}
          </tbody>
        </table>`;
  const paging = html`<p class="paging">
    ${q.after ? html`<a href="${href(env, path, filters)}">« Newest</a>` : ""}
    ${page.next ? html`<a href="${href(env, path, { ...filters, after: page.next })}" rel="next">Older »</a>` : ""}
  </p>`;
  const body = html`<h1>${view.title} tasks</h1>
    <p class="about">${view.about}</p>
    <form class="filters" method="get" action="${href(env, path)}">
      <label>Queue <input name="queue" value="${q.queue}" size="14" /></label>
      <label>Task name <input name="name" value="${q.name}" size="18" /></label>
      <label>Task id <input name="id" inputmode="numeric" size="10" /></label>
      <button type="submit">Filter</button>
      ${q.queue || q.name ? html`<a href="${href(env, path)}">Clear</a>` : ""}
    </form>
    ${
      env.readOnly
        ? table
        : html`<form method="post" action="${href(env, "/tasks/bulk")}" data-bulk>
            ${csrfField(env)}<input type="hidden" name="back" value="${here}" />
            <input type="hidden" name="expect" value="${view.status}" />
            ${bulk}${table}
          </form>`
    }
    ${paging}`;
  return layout(env, {
    title: `${view.title} tasks`,
    nav: name as NavKey,
    counts: navCounts(data),
    live: true,
    notices,
    body,
  });
}
