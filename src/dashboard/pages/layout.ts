import { csrfField, href, html, type Html, type PageEnv } from "./html.js";

export type NavKey =
  | "overview"
  | "failed"
  | "stale"
  | "running"
  | "due"
  | "scheduled"
  | "completed"
  | "cancelled"
  | "workers"
  | "schedules"
  | "purge"
  | "none";

/** A message shown above the page's content: what an action did, or why it was refused. */
export interface Notice {
  kind: "ok" | "error";
  text: string;
}

export interface PageOptions {
  title: string;
  nav: NavKey;
  /** Counts shown beside the list links (already formatted). */
  counts?: Partial<Record<NavKey, string>>;
  /** The page follows the server's events and refreshes its content (see assets/app.js). */
  live?: boolean;
  /** The task a task page shows: its live redraw waits for news of that task (or the timer). */
  taskId?: string;
  notices?: readonly Notice[];
  body: Html;
}

const LINKS: readonly [NavKey, string, string][] = [
  ["overview", "Overview", "/"],
  ["failed", "Failed", "/tasks/failed"],
  ["stale", "Stale", "/tasks/stale"],
  ["running", "Running", "/tasks/running"],
  ["due", "Due now", "/tasks/due"],
  ["scheduled", "Scheduled", "/tasks/scheduled"],
  ["completed", "Completed", "/tasks/completed"],
  ["cancelled", "Cancelled", "/tasks/cancelled"],
  ["workers", "Workers", "/workers"],
  ["schedules", "Schedules", "/schedules"],
  ["purge", "Purge", "/purge"],
];

function link(env: PageEnv, path: string): string {
  return path === "/" ? env.base || "/" : href(env, path);
}

/** The whole document: head (the package's own CSS and JS, nothing else), navigation, notices, content. */
export function layout(env: PageEnv, o: PageOptions): Html {
  const nav = LINKS.filter(([key]) => key !== "purge" || !env.readOnly).map(([key, label, path]) => {
    const count = o.counts?.[key];
    return html`<a href="${link(env, path)}" class="${key === o.nav ? "current" : ""}"
      >${label}${count !== undefined ? html` <span class="count">${count}</span>` : ""}</a
    >`;
  });
  const notices = (o.notices ?? []).map(
    (n) => html`<p class="notice ${n.kind}" role="${n.kind === "error" ? "alert" : "status"}">${n.text}</p>`,
  );
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="same-origin" />
        <link rel="icon" href="data:," />
        <title>${o.title} · skiplock</title>
        <link rel="stylesheet" href="${env.assets.css}" />
        <script src="${env.assets.js}" defer></script>
      </head>
      <body data-base="${env.base}" data-live="${o.live ? "on" : "off"}" data-task="${o.taskId ?? ""}">
        <header>
          <a class="brand" href="${link(env, "/")}">skiplock</a>
          <nav>${nav}</nav>
          <span class="status" id="live-status" hidden></span>
          ${env.readOnly ? html`<span class="badge">read-only</span>` : ""}
          ${
            env.signedIn
              ? html`<form class="inline signout" method="post" action="${href(env, "/logout")}">
                  ${csrfField(env)}<button type="submit" class="link">Sign out</button>
                </form>`
              : ""
          }
        </header>
        <main id="content">${notices}${o.body}</main>
      </body>
    </html>`;
}
