import { refuse } from "../responses.js";

/** Largest form body a page posts (a bulk form of 1,000 ids is about 25 KiB). */
export const MAX_FORM_BYTES = 256 * 1024;

/**
 * The body of an HTML form post (application/x-www-form-urlencoded), read up to MAX_FORM_BYTES. Any other body is
 * refused: the pages' forms send only this type.
 */
export async function readForm(req: Request): Promise<URLSearchParams> {
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > MAX_FORM_BYTES) throw tooLarge();
  if (!req.body) return new URLSearchParams();
  const type = (req.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = req.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_FORM_BYTES) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  if (size === 0) return new URLSearchParams();
  if (type !== "application/x-www-form-urlencoded") {
    throw refuse(415, "UNSUPPORTED_MEDIA_TYPE", "send the form as application/x-www-form-urlencoded");
  }
  return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}

const tooLarge = () => refuse(413, "BODY_TOO_LARGE", `the form is larger than ${MAX_FORM_BYTES} bytes`);
