// What the dashboard tests share: requests through a dashboard's fetch handler, and rows in any finished state.
import { expect } from "vitest";
import type { Dashboard } from "../src/index.js";
import type { SchemaFixture } from "./schema-fixture.js";

export const TOKEN = "test-token-0123456789abcdef";
export const ORIGIN = "http://127.0.0.1:4680";

export interface Answer {
  status: number;
  headers: Headers;
  body: any;
}

/**
 * Sends a request to `dashboard.fetch` at `ORIGIN` + path (with the bearer token unless `headers` says otherwise);
 * an object body goes as JSON.
 */
export async function call(
  dashboard: Dashboard,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` },
): Promise<Answer> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)["content-type"] ??= "application/json";
  }
  const res = await dashboard.fetch(new Request(`${ORIGIN}${path}`, init));
  const text = await res.text();
  const isJson = (res.headers.get("content-type") ?? "").startsWith("application/json");
  return { status: res.status, headers: res.headers, body: isJson ? JSON.parse(text) : text };
}

/** The answer is the JSON error `{ error: { code, message } }` with this status and code. */
export function expectError(a: Answer, status: number, code: string): void {
  expect({ status: a.status, code: a.body?.error?.code }).toEqual({ status, code });
  expect(typeof a.body.error.message).toBe("string");
  expect(a.headers.get("content-type")).toBe("application/json; charset=utf-8");
}

/** Moves task `id` to a finished status, as a worker would have left it (a factory for the tests' rows). */
export async function finishTask(env: SchemaFixture, id: string, status: "COMPLETED" | "FAILED"): Promise<void> {
  await env.pool.query(
    `UPDATE "${env.schema}".tasks SET status = $2, attempt = 1, started_at = now(), finished_at = now(), duration = 0,
       result = CASE WHEN $2 = 'COMPLETED' THEN '1'::jsonb END, error = CASE WHEN $2 = 'FAILED' THEN 'boom' END
     WHERE id = $1`,
    [id, status],
  );
}
