import { DashboardRequestError, SkiplockError } from "../errors.js";
import type { Logger } from "../logger.js";

const JSON_TYPE = "application/json; charset=utf-8";

/** A JSON response. API responses are never cached: they hold task data and change by the second. */
export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": JSON_TYPE, "cache-control": "no-store", ...headers },
  });
}

/** HTTP statuses of the typed errors a request can meet (the others answer 500). */
const STATUS_OF_CODE: Readonly<Record<string, number>> = {
  INVALID_OPTION: 400,
  INVALID_NAME: 400,
  INVALID_TASK_ID: 400,
  NOT_JSON: 400,
  QUEUE_NOT_ALLOWED: 400,
  TASK_NAME_MISMATCH: 400,
  INVALID_SCHEDULE: 400,
  TASK_NOT_FOUND: 404,
  SCHEDULE_NOT_FOUND: 404,
  TASK_STATE: 409,
  UNIQUE_KEY_CONFLICT: 409,
  NO_HANDLER: 409,
  PAYLOAD_TOO_LARGE: 413,
  DATABASE_UNAVAILABLE: 503,
  SCHEMA_NOT_READY: 503,
};

/** What an error answers: `{ error: { code, message } }` with its status. Unexpected errors are logged, not shown. */
export function errorStatus(err: unknown): { status: number; code: string; message: string } {
  if (err instanceof DashboardRequestError) return { status: err.status, code: err.code, message: err.message };
  if (err instanceof SkiplockError) {
    const status = STATUS_OF_CODE[err.code];
    if (status !== undefined) return { status, code: err.code, message: err.message };
  }
  return { status: 500, code: "INTERNAL", message: "internal error (the server's log has the details)" };
}

export function errorResponse(err: unknown, logger: Logger): Response {
  const e = errorStatus(err);
  if (e.status === 500) {
    logger.error("dashboard request failed", { error: err instanceof Error ? err.message : String(err) });
  }
  const headers: Record<string, string> = e.status === 401 ? { "www-authenticate": 'Bearer realm="skiplock"' } : {};
  return json({ error: { code: e.code, message: e.message } }, e.status, headers);
}

export const refuse = (status: number, code: string, message: string): DashboardRequestError =>
  new DashboardRequestError(status, code, message);
