import { refuse } from "./responses.js";

/** Largest request body the dashboard reads. */
export const MAX_BODY_BYTES = 1024 * 1024;

/**
 * A request body read whole up to `max` bytes, whatever Content-Length claimed (413 past it), with its media type
 * (lowercase, parameters dropped); null when there is none or it is empty.
 */
export async function readBoundedBody(
  req: Request,
  max: number,
  what: string,
): Promise<{ type: string; text: string } | null> {
  const tooLarge = () => refuse(413, "BODY_TOO_LARGE", `the ${what} is larger than ${max} bytes`);
  if (Number(req.headers.get("content-length") ?? "0") > max) throw tooLarge();
  if (!req.body) return null;
  const type = (req.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = req.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  return size === 0 ? null : { type, text: Buffer.concat(chunks).toString("utf8") };
}

/**
 * The request's JSON body, or `{}` when it has none. Only `application/json` is read: a cross-site HTML form cannot
 * send that type without a CORS preflight, which the dashboard never grants.
 */
export async function readJsonBody(req: Request): Promise<Record<string, unknown>> {
  const body = await readBoundedBody(req, MAX_BODY_BYTES, "body");
  if (body === null) return {};
  if (body.type !== "application/json") {
    throw refuse(415, "UNSUPPORTED_MEDIA_TYPE", "send the body as application/json");
  }
  let value: unknown;
  try {
    value = JSON.parse(body.text);
  } catch {
    throw refuse(400, "BAD_REQUEST", "the body is not valid JSON");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw refuse(400, "BAD_REQUEST", "the body must be a JSON object");
  }
  return value as Record<string, unknown>;
}
