import { refuse } from "./responses.js";

/** Largest request body the dashboard reads. */
export const MAX_BODY_BYTES = 1024 * 1024;

/**
 * The request's JSON body, or `{}` when it has none. Only `application/json` is read: a cross-site HTML form cannot
 * send that type without a CORS preflight, which the dashboard never grants. Stops reading past MAX_BODY_BYTES,
 * whatever Content-Length claimed.
 */
export async function readJsonBody(req: Request): Promise<Record<string, unknown>> {
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > MAX_BODY_BYTES) throw tooLarge();
  if (!req.body) return {};
  const type = (req.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = req.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  if (size === 0) return {};
  if (type !== "application/json") {
    throw refuse(415, "UNSUPPORTED_MEDIA_TYPE", "send the body as application/json");
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw refuse(400, "BAD_REQUEST", "the body is not valid JSON");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw refuse(400, "BAD_REQUEST", "the body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

const tooLarge = () => refuse(413, "BODY_TOO_LARGE", `the body is larger than ${MAX_BODY_BYTES} bytes`);
