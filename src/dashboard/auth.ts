import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/*
 * The dashboard's credentials. One secret, the token: an API call presents it as `Authorization: Bearer <token>`; a
 * browser presents it once (POST api/session) and then carries a session cookie. The cookie is signed with a key
 * derived from the token, so no session is stored anywhere and changing the token signs every browser out. Each
 * session has a CSRF token, an HMAC of the cookie, that the page sends back in a header on every state-changing
 * request: a foreign site can make the browser send the cookie, but cannot read the CSRF token.
 */

export const SESSION_COOKIE = "skiplock_session";
/** Seconds a session lasts. */
export const SESSION_SECONDS = 12 * 3600;
export const CSRF_HEADER = "x-csrf-token";

const b64 = (b: Buffer): string => b.toString("base64url");

/** Equal strings, in time that does not depend on where they differ (both are hashed to one length first). */
export function sameSecret(given: string, expected: string): boolean {
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

export interface Session {
  /** The cookie's value. */
  cookie: string;
  csrfToken: string;
  expiresAt: Date;
}

export class Credentials {
  readonly #token: string;
  readonly #key: Buffer;

  constructor(token: string) {
    this.#token = token;
    this.#key = createHmac("sha256", token).update("skiplock dashboard session key").digest();
  }

  #mac(what: string): string {
    return b64(createHmac("sha256", this.#key).update(what).digest());
  }

  tokenMatches(given: string): boolean {
    return sameSecret(given, this.#token);
  }

  /** Whether an Authorization header carries the token as a bearer token. */
  bearerMatches(header: string): boolean {
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    return m !== null && this.tokenMatches(m[1]!);
  }

  /** A new session: `v1.<expires, unix seconds>.<nonce>.<mac>`. */
  issue(now = Date.now()): Session {
    const expires = Math.floor(now / 1000) + SESSION_SECONDS;
    const body = `v1.${expires}.${b64(randomBytes(16))}`;
    const cookie = `${body}.${this.#mac(body)}`;
    return { cookie, csrfToken: this.csrfFor(cookie), expiresAt: new Date(expires * 1000) };
  }

  /** Whether a cookie value is a session this token signed that has not expired. */
  verify(cookie: string, now = Date.now()): boolean {
    const parts = cookie.split(".");
    if (parts.length !== 4 || parts[0] !== "v1") return false;
    const expires = Number(parts[1]);
    if (!Number.isSafeInteger(expires) || expires * 1000 <= now) return false;
    return sameSecret(parts[3]!, this.#mac(parts.slice(0, 3).join(".")));
  }

  csrfFor(cookie: string): string {
    return this.#mac(`csrf.${cookie}`);
  }
}
