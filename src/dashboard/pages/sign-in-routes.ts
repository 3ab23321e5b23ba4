import type { Hono } from "hono";
import type { ApiContext } from "../api.js";
import { SESSION_SECONDS } from "../auth.js";
import { guard } from "../guard.js";
import { redirect, send, type PageAccess } from "./access.js";
import { loginPage } from "./action-pages.js";
import { readForm } from "./form.js";

/**
 * Signing in with the token (a form: the token is sent once, the browser keeps the session cookie) and out. Neither
 * needs a session; both refuse a foreign Origin (login CSRF). Without a token configured there is nothing to sign in
 * to: the sign-in page sends the browser on.
 */
export function signInRoutes(pages: Hono, ctx: ApiContext, access: PageAccess): void {
  const { credentials } = ctx;
  const home = access.base || "/";

  pages.get("/login", (c) => {
    if (credentials === null) return redirect(home);
    return send(loginPage(access.envOf(c.req.raw), access.safeBack(c.req.query("next"), home), null));
  });

  pages.post("/login", async (c) => {
    const req = c.req.raw;
    guard(req, ctx.guard, "session");
    const form = await readForm(req);
    const next = access.safeBack(form.get("next"), home);
    if (credentials === null) return redirect(next);
    const token = form.get("token");
    if (token === null || !credentials.tokenMatches(token)) {
      return send(loginPage(access.envOf(req), next, "Wrong token."), 401);
    }
    const res = redirect(next);
    res.headers.set("set-cookie", access.sessionCookie(req, credentials.issue().cookie, SESSION_SECONDS));
    return res;
  });

  pages.post("/logout", (c) => {
    const req = c.req.raw;
    guard(req, ctx.guard, "session");
    const res = redirect(`${access.base}/login`);
    res.headers.set("set-cookie", access.sessionCookie(req, "", 0));
    return res;
  });
}
