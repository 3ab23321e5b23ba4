import type { Context } from "hono";
import type { ApiContext } from "../api.js";
import { SESSION_COOKIE } from "../auth.js";
import { cookieOf, CSRF_FIELD, guard, originAllowed } from "../guard.js";
import { errorStatus, refuse } from "../responses.js";
import { DONE_NOTICES } from "./action-pages.js";
import { asset } from "./assets.js";
import { readForm } from "./form.js";
import type { Html, PageEnv } from "./html.js";
import type { Notice } from "./layout.js";

/*
 * Who may see a page or post a form (the API's rules, guard.ts), and the answers the page routes share: an HTML page,
 * a redirect after a post, the notice a redirect asks for.
 */

/** Messages for `?done=` after a redirect: fixed texts, so a link cannot make the page say anything else. */
const REDIRECT_NOTICES: Record<string, Notice> = {
  ...Object.fromEntries(Object.entries(DONE_NOTICES).map(([k, text]) => [k, { kind: "ok" as const, text }])),
  "none-selected": { kind: "error", text: "Select at least one task first." },
};

export async function send(body: Html, status = 200): Promise<Response> {
  return new Response(String(await body), {
    status,
    headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
  });
}

/** 303 See Other: the browser GETs `to` after a form post. */
export function redirect(to: string): Response {
  return new Response(null, { status: 303, headers: { location: to, "cache-control": "no-store" } });
}

/** `to` (a path from safeBack or the routes) with `?done=<done>` (a key of REDIRECT_NOTICES). */
export function withDone(to: string, done: string): string {
  const u = new URL(to, LOCAL);
  u.searchParams.set("done", done);
  // A path starting with "//" would be read as another host's.
  return u.pathname.replace(/^\/+/, "/") + u.search;
}

/** Paths are resolved against a fixed origin: one that names another host resolves elsewhere and is refused. */
const LOCAL = "http://dashboard.invalid";

export function noticesOf(c: Context): Notice[] {
  const done = c.req.query("done");
  const n = done === undefined ? undefined : REDIRECT_NOTICES[done];
  return n ? [n] : [];
}

export class PageAccess {
  readonly #ctx: ApiContext;
  /** The base path without its trailing slash: "" or "/admin". */
  readonly base: string;

  constructor(ctx: ApiContext) {
    this.#ctx = ctx;
    this.base = ctx.cookiePath === "/" ? "" : ctx.cookiePath;
  }

  /** What a page rendered for this request needs: the base path, the session's CSRF token, the asset URLs. */
  envOf(req: Request): PageEnv {
    const creds = this.#ctx.credentials;
    const cookie = cookieOf(req, SESSION_COOKIE);
    const csrf = creds !== null && cookie !== null && creds.verify(cookie) ? creds.csrfFor(cookie) : null;
    const version = (name: string) => asset(name)!.version;
    return {
      base: this.base,
      csrf,
      readOnly: this.#ctx.guard.readOnly,
      signedIn: creds !== null,
      assets: {
        js: `${this.base}/assets/app.js?v=${version("app.js")}`,
        css: `${this.base}/assets/app.css?v=${version("app.css")}`,
      },
      now: Date.now(),
    };
  }

  /** Checks a page request (guard.ts); one without a session is sent to the sign-in page. */
  viewer(c: Context): PageEnv | Response {
    try {
      guard(c.req.raw, this.#ctx.guard, "api");
    } catch (err) {
      if (errorStatus(err).status !== 401) throw err;
      const u = new URL(c.req.url);
      return redirect(`${this.base}/login?next=${encodeURIComponent(u.pathname + u.search)}`);
    }
    return this.envOf(c.req.raw);
  }

  /**
   * Checks a form post and returns the form. Everything that needs no form is checked before its body is read: a
   * bearer token or the loopback rule (the whole guard), or a session's cookie and Origin; then the CSRF field the
   * form carries.
   */
  async poster(c: Context): Promise<{ env: PageEnv; form: URLSearchParams }> {
    const req = c.req.raw;
    const creds = this.#ctx.credentials;
    const byCookie = creds !== null && req.headers.get("authorization") === null;
    if (!byCookie) {
      guard(req, this.#ctx.guard, "api");
      return { env: this.envOf(req), form: await readForm(req) };
    }
    const cookie = cookieOf(req, SESSION_COOKIE);
    if (cookie === null || !creds.verify(cookie)) {
      throw refuse(401, "UNAUTHORIZED", "your session has ended: sign in again, then repeat the action");
    }
    const origin = req.headers.get("origin");
    if (origin === null || !originAllowed(req, this.#ctx.guard, origin)) {
      throw refuse(403, "FOREIGN_ORIGIN", "this request comes from another site (its Origin is not the dashboard's)");
    }
    const form = await readForm(req);
    guard(req, this.#ctx.guard, "api", form.get(CSRF_FIELD));
    return { env: this.envOf(req), form };
  }

  /**
   * A path to come back to, else `fallback`: resolved as the browser would (`..` and `%2e%2e` removed), it must stay
   * on this origin and under the base path, and never start with `//` (another host) or hold `\` or spaces.
   */
  safeBack(value: string | null | undefined, fallback: string): string {
    if (typeof value !== "string" || value.length > 2000 || !value.startsWith("/") || /[\\\s]/.test(value)) {
      return fallback;
    }
    let u: URL;
    try {
      u = new URL(value, LOCAL);
    } catch {
      return fallback;
    }
    const path = u.pathname;
    const ok = u.origin === LOCAL && !path.startsWith("//") && (path === this.base || path.startsWith(`${this.base}/`));
    return ok ? path + u.search : fallback;
  }

  /** The session cookie's Set-Cookie value (an empty value with Max-Age 0 signs out). */
  sessionCookie(req: Request, value: string, maxAge: number): string {
    const { secureCookie, cookiePath } = this.#ctx;
    const secure = secureCookie === "auto" ? new URL(req.url).protocol === "https:" : secureCookie;
    return `${SESSION_COOKIE}=${value}; Path=${cookiePath}; Max-Age=${maxAge}; HttpOnly; SameSite=Strict${secure ? "; Secure" : ""}`;
  }
}
