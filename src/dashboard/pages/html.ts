import { html, raw } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import { CSRF_FIELD } from "../guard.js";

/*
 * The pages' building blocks. Every page is a `html` tagged template (hono/html): each interpolated string is
 * escaped (& < > " '), so task names, args, results and errors render as text whatever they hold. `raw` is used only
 * on markup built here from constants and escaped parts. Every attribute is quoted; every URL is built from the base
 * path and encodeURIComponent'd values, so no value can choose a link's scheme (no `javascript:`).
 */

export { html, raw };
export type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

/** What every page needs to know about the request it answers. */
export interface PageEnv {
  /** The base path without its trailing slash: "" or "/admin". */
  base: string;
  /** The session's CSRF token for the forms, or null (signed in by bearer token, or no token configured). */
  csrf: string | null;
  readOnly: boolean;
  /** A token is configured: the page offers to sign out. */
  signedIn: boolean;
  /** The asset URLs (versioned by content). */
  assets: { js: string; css: string };
  now: number;
}

/** A path under the base path, with its query (values encoded; empty ones left out). */
export function href(env: PageEnv, path: string, query: Record<string, string | null | undefined> = {}): string {
  const q = Object.entries(query)
    .filter((e): e is [string, string] => typeof e[1] === "string" && e[1] !== "")
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join("&");
  return `${env.base}${path}${q ? `?${q}` : ""}`;
}

export const csrfField = (env: PageEnv): Html =>
  env.csrf === null ? html`` : html`<input type="hidden" name="${CSRF_FIELD}" value="${env.csrf}" />`;

/** A button that posts to `path` (a form of its own, so it works without JavaScript). */
export function actionButton(
  env: PageEnv,
  path: string,
  label: string,
  options: { danger?: boolean; fields?: Record<string, string> } = {},
): Html {
  if (env.readOnly) return html``;
  const fields = Object.entries(options.fields ?? {}).map(
    ([k, v]) => html`<input type="hidden" name="${k}" value="${v}" />`,
  );
  return html`<form class="inline" method="post" action="${href(env, path)}">
    ${csrfField(env)}${fields}<button type="submit" class="${options.danger ? "danger" : ""}">${label}</button>
  </form>`;
}

const pad = (n: number) => String(n).padStart(2, "0");

/** A UTC timestamp to the second: 2026-11-28 11:37:57Z. */
export function utc(d: Date): string {
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(
    d.getUTCMinutes(),
  )}:${pad(d.getUTCSeconds())}Z`;
}

/** Seconds as people read them: 0.25 s, 42 s, 3 min 20 s, 5 h 2 min, 3 d 4 h. */
export function seconds(s: number): string {
  const a = Math.abs(s);
  if (a < 10) return `${a.toFixed(a < 1 ? 3 : 2).replace(/\.?0+$/, "") || "0"} s`;
  if (a < 60) return `${Math.round(a)} s`;
  if (a < 3600) return `${Math.floor(a / 60)} min ${Math.round(a % 60)} s`;
  if (a < 86400) return `${Math.floor(a / 3600)} h ${Math.floor((a % 3600) / 60)} min`;
  return `${Math.floor(a / 86400)} d ${Math.floor((a % 86400) / 3600)} h`;
}

/** A span as a glance reads it, its largest unit and the next: 42 s, 5 min, 3 h 5 min, 2 d 3 h. */
export function roughly(s: number): string {
  const a = Math.abs(s);
  if (a < 60) return `${Math.round(a)} s`;
  if (a < 3600) return `${Math.floor(a / 60)} min`;
  if (a < 86400) return `${Math.floor(a / 3600)} h ${Math.floor((a % 3600) / 60)} min`;
  return `${Math.floor(a / 86400)} d ${Math.floor((a % 86400) / 3600)} h`;
}

/** "5 min ago" or "in 42 s", relative to the page's time. */
export function relative(env: PageEnv, d: Date): string {
  const s = (env.now - d.getTime()) / 1000;
  if (Math.abs(s) < 1) return "now";
  return s >= 0 ? `${roughly(s)} ago` : `in ${roughly(s)}`;
}

/** A `<time>` showing how long ago (or ahead), with the exact UTC time as its title; "—" for none. */
export function when(env: PageEnv, d: Date | null): Html {
  if (d === null) return html`<span class="muted">—</span>`;
  return html`<time datetime="${d.toISOString()}" title="${utc(d)}">${relative(env, d)}</time>`;
}

/** Most characters of a JSON value or error a page shows; the API gives the whole. */
export const MAX_SHOWN_CHARS = 64 * 1024;

/** Text cut to `max` characters, saying how much was left out. */
export function cut(text: string, max = MAX_SHOWN_CHARS): string {
  if (text.length <= max) return text;
  return `${text.slice(0, max)}\n… ${(text.length - max).toLocaleString("en-US")} more characters (the JSON API has the whole value)`;
}

/** A JSON value, indented, as text in a `<pre>`. */
export function jsonBlock(value: unknown): Html {
  const text = value === undefined ? "—" : (JSON.stringify(value, null, 2) ?? "—");
  return html`<pre class="json">${cut(text)}</pre>`;
}

/** A one-line preview of a JSON value or error, for a table cell. */
export function preview(value: unknown, max = 80): string {
  const text = typeof value === "string" ? value : (JSON.stringify(value) ?? "");
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

export const number = (n: number): string => Math.round(n).toLocaleString("en-US");
