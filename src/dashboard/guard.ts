import { CSRF_HEADER, sameSecret, SESSION_COOKIE, type Credentials } from "./auth.js";
import { refuse } from "./responses.js";

/*
 * Who may make a request (see the README, "Running it safely in production"):
 * - with a token: an `Authorization: Bearer` header with the token, or a session cookie; a state-changing request
 *   signed in by cookie must also come from an allowed Origin and carry the session's CSRF token;
 * - without a token: only requests addressed to a loopback host (which also defeats DNS rebinding: a foreign site's
 *   name that resolves to 127.0.0.1 still arrives with its own name in Host), and a state-changing request that
 *   names an Origin must name an allowed one. Host is the client's to write, so through the Node listener the
 *   connection's own address must be loopback too (markPeer); the web-standard handler cannot see the connection,
 *   and off loopback it needs a token.
 */

export type AuthedBy = "none" | "bearer" | "cookie";

export interface GuardOptions {
  credentials: Credentials | null;
  readOnly: boolean;
  /** Origins besides the request's own that may send state-changing requests (a TLS proxy's public origin). */
  allowedOrigins: readonly string[];
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_HOSTS.has(hostname.toLowerCase()) || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/** A socket's remote address on this machine: 127.0.0.0/8, ::1, or 127.x mapped into IPv6. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.toLowerCase().replace(/^::ffff:/, "");
  return v4 === "::1" || /^127(\.\d{1,3}){3}$/.test(v4);
}

/*
 * Whether each request the Node listener received came from a loopback address, keyed by the Request object it
 * built: nothing a client sends can set it. A request absent from the map came through the web-standard handler.
 */
const peers = new WeakMap<Request, { loopback: boolean }>();

/** Records where the connection a request came over is from (the Node listener's socket). */
export function markPeer(req: Request, remoteAddress: string | undefined): void {
  peers.set(req, { loopback: isLoopbackAddress(remoteAddress) });
}

/** A cookie's value from the Cookie header, or null. */
export function cookieOf(req: Request, name: string): string | null {
  for (const part of (req.headers.get("cookie") ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

/** Whether `origin` (a request's Origin header) is the dashboard's own or one of the allowed ones. */
export function originAllowed(req: Request, o: GuardOptions, origin: string): boolean {
  return origin === new URL(req.url).origin || o.allowedOrigins.includes(origin);
}

/** The hidden field an HTML form (the pages, without JavaScript) carries the CSRF token in. */
export const CSRF_FIELD = "_csrf";

/**
 * Checks a request to the API or a page and tells how it was authenticated; throws a DashboardRequestError (401, 403)
 * when it may not go on. `session` is for the sign-in and sign-out routes, which need no credentials but do check the
 * Origin. `formCsrf` is the CSRF_FIELD of a form post, taken when the request has no CSRF header: a page's form
 * signed in by cookie carries the same session-bound token the header would, and its Origin is checked all the same.
 */
export function guard(
  req: Request,
  o: GuardOptions,
  route: "api" | "session",
  formCsrf: string | null = null,
): AuthedBy {
  const url = new URL(req.url);
  const changing = !SAFE_METHODS.has(req.method);
  const origin = req.headers.get("origin");
  const allowed = (given: string) => originAllowed(req, o, given);
  const foreign = () =>
    refuse(403, "FOREIGN_ORIGIN", "this request comes from another site (its Origin is not the dashboard's)");
  let by: AuthedBy = "none";
  if (o.credentials === null) {
    if (!isLoopbackHost(url.hostname)) {
      throw refuse(403, "LOOPBACK_ONLY", "this dashboard has no token: it answers only on localhost, 127.0.0.1 or ::1");
    }
    if (peers.get(req)?.loopback === false) {
      throw refuse(403, "LOOPBACK_ONLY", "this dashboard has no token: it answers only connections from this machine");
    }
    if (changing && origin !== null && !allowed(origin)) throw foreign();
  } else if (route === "session") {
    if (origin !== null && !allowed(origin)) throw foreign();
  } else {
    const authorization = req.headers.get("authorization");
    if (authorization !== null) {
      if (!o.credentials.bearerMatches(authorization)) {
        throw refuse(401, "UNAUTHORIZED", "wrong token: send Authorization: Bearer <token>");
      }
      by = "bearer";
    } else {
      const cookie = cookieOf(req, SESSION_COOKIE);
      if (cookie === null || !o.credentials.verify(cookie)) {
        throw refuse(401, "UNAUTHORIZED", "sign in (POST api/session) or send Authorization: Bearer <token>");
      }
      if (changing) {
        if (origin === null || !allowed(origin)) throw foreign();
        const csrf = req.headers.get(CSRF_HEADER) ?? formCsrf;
        if (csrf === null || !sameSecret(csrf, o.credentials.csrfFor(cookie))) {
          throw refuse(
            403,
            "CSRF_TOKEN",
            `missing or wrong CSRF token: the ${CSRF_HEADER} header (GET api/session gives it) or a form's ${CSRF_FIELD} field; reload the page and try again`,
          );
        }
      }
      by = "cookie";
    }
  }
  if (o.readOnly && changing && route === "api") {
    throw refuse(403, "READ_ONLY", "this dashboard is read-only: actions are refused");
  }
  return by;
}
