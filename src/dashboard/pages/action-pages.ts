import type { TaskAction } from "../actions.js";
import { csrfField, href, html, number, type Html, type PageEnv } from "./html.js";
import { layout, type Notice } from "./layout.js";
import { ACTION_LABELS } from "./task-list.js";

/** What one bulk action did: ids acted on, and those refused with the reason. */
export interface BulkOutcome {
  action: TaskAction;
  done: string[];
  refused: { id: string; message: string }[];
}

const PAST: Record<TaskAction, string> = {
  retry: "retried",
  cancel: "cancelled",
  "run-now": "made due now",
  delete: "deleted",
};

/** "3 retried, 1 refused" */
export function bulkSummary(o: BulkOutcome): string {
  return `${number(o.done.length)} ${PAST[o.action]}${o.refused.length ? `, ${number(o.refused.length)} refused` : ""}`;
}

/** What one action on one task did, for the notice on the task's page (a fixed text per action). */
export const DONE_NOTICES: Record<string, string> = {
  retry: "Retried: the task is pending again and due now.",
  cancel: "Cancel requested: a pending task is cancelled at once; a running one when its handler stops.",
  "run-now": "The task is due now.",
  delete: "The task was deleted.",
  pause: "The schedule is paused.",
  resume: "The schedule is resumed.",
  trigger: "The schedule's task was enqueued.",
};

/** The step before a bulk action: what it will do, with a button that posts it again confirmed. */
export function bulkConfirmPage(env: PageEnv, action: TaskAction, ids: string[], back: string, expect = ""): Html {
  const body = html`<h1>${ACTION_LABELS[action]} ${number(ids.length)} task${ids.length === 1 ? "" : "s"}?</h1>
    <p class="about">
      Each task is ${PAST[action]} only if it is still in a state that allows it; the others are refused and listed.
    </p>
    <form method="post" action="${href(env, "/tasks/bulk")}" class="confirm">
      ${csrfField(env)}
      <input type="hidden" name="action" value="${action}" />
      <input type="hidden" name="confirm" value="yes" />
      <input type="hidden" name="back" value="${back}" />
      ${expect ? html`<input type="hidden" name="expect" value="${expect}" />` : ""}
      ${ids.map((id) => html`<input type="hidden" name="id" value="${id}" />`)}
      <p class="ids mono">
        ${ids.slice(0, 50).join(", ")}${ids.length > 50 ? ` … and ${number(ids.length - 50)} more` : ""}
      </p>
      <button type="submit" class="${action === "delete" ? "danger" : "primary"}">
        ${ACTION_LABELS[action]} ${number(ids.length)}
      </button>
      <a href="${back}">Back</a>
    </form>`;
  return layout(env, { title: "Confirm", nav: "none", body });
}

export function bulkResultPage(env: PageEnv, o: BulkOutcome, back: string): Html {
  const notices: Notice[] = [{ kind: o.refused.length ? "error" : "ok", text: bulkSummary(o) }];
  const body = html`<h1>${ACTION_LABELS[o.action]}: done</h1>
    ${
      o.refused.length === 0
        ? ""
        : html`<h2>Refused</h2>
            <ul class="refused">
              ${o.refused.map((r) => html`<li><a class="mono" href="${href(env, `/task/${r.id}`)}">${r.id}</a>: ${r.message}</li>`)}
            </ul>`
    }
    <p><a href="${back}">Back to the list</a></p>`;
  return layout(env, { title: "Done", nav: "none", notices, body });
}

export interface PurgeForm {
  olderThanDays: string;
  statuses: string[];
}

const PURGEABLE = ["COMPLETED", "FAILED", "CANCELLED"] as const;

export function purgePage(env: PageEnv, form: PurgeForm, notices: Notice[] = [], dryRun?: number): Html {
  const boxes = PURGEABLE.map(
    (s) =>
      html`<label class="check"
        ><input type="checkbox" name="status" value="${s}" ${form.statuses.includes(s) ? html`checked` : ""} />
        ${s}</label
      >`,
  );
  const fields = html`${csrfField(env)}
    <label
      >Finished more than <input name="olderThanDays" value="${form.olderThanDays}" size="5" inputmode="decimal" /> days
      ago</label
    >
    <fieldset>
      <legend>Statuses</legend>
      ${boxes}
    </fieldset>`;
  const body = html`<h1>Purge finished tasks</h1>
    <p class="about">
      Deletes finished tasks older than the age given, in short batches. Pending and running tasks are never touched.
      The first step only counts what would be deleted.
    </p>
    ${
      dryRun === undefined
        ? html`<form method="post" action="${href(env, "/purge")}" class="stack">
            ${fields}<button type="submit" class="primary">Count (dry run)</button>
          </form>`
        : html`<form method="post" action="${href(env, "/purge")}" class="stack">
            ${fields}
            <input type="hidden" name="confirm" value="yes" />
            <p class="notice ${dryRun > 0 ? "error" : "ok"}">
              ${number(dryRun)} task${dryRun === 1 ? "" : "s"} would be deleted.
            </p>
            ${dryRun > 0 ? html`<button type="submit" class="danger">Delete ${number(dryRun)} tasks</button>` : ""}
            <a href="${href(env, "/purge")}">Start over</a>
          </form>`
    }`;
  return layout(env, { title: "Purge", nav: "purge", notices, body });
}

export function loginPage(env: PageEnv, next: string, error: string | null): Html {
  const body = html`<div class="login">
    <h1>Sign in</h1>
    <p class="about">
      Enter the dashboard's token (the one given to <span class="mono">skiplock dashboard --token</span> or
      createDashboard). The browser then keeps a session cookie for 12 hours.
    </p>
    <form method="post" action="${href(env, "/login")}" class="stack">
      <input type="hidden" name="next" value="${next}" />
      <label>Token <input type="password" name="token" autocomplete="current-password" required autofocus /></label>
      <button type="submit" class="primary">Sign in</button>
    </form>
  </div>`;
  return layout(
    { ...env, signedIn: false },
    { title: "Sign in", nav: "none", notices: error ? [{ kind: "error", text: error }] : [], body },
  );
}

export function errorPage(env: PageEnv, status: number, message: string): Html {
  const body = html`<h1>${status === 404 ? "Not found" : status === 409 ? "Refused" : "Error"}</h1>
    <p class="notice error" role="alert">${message}</p>
    <p><a href="${env.base || "/"}">Overview</a></p>`;
  return layout(env, { title: "Error", nav: "none", body });
}
