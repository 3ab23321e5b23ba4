import { readBoundedBody } from "../body.js";
import { refuse } from "../responses.js";

/** Largest form body a page posts (a bulk form of 1,000 ids is about 25 KiB). */
export const MAX_FORM_BYTES = 256 * 1024;

/**
 * The body of an HTML form post (application/x-www-form-urlencoded), read up to MAX_FORM_BYTES. Any other body is
 * refused: the pages' forms send only this type.
 */
export async function readForm(req: Request): Promise<URLSearchParams> {
  const body = await readBoundedBody(req, MAX_FORM_BYTES, "form");
  if (body === null) return new URLSearchParams();
  if (body.type !== "application/x-www-form-urlencoded") {
    throw refuse(415, "UNSUPPORTED_MEDIA_TYPE", "send the form as application/x-www-form-urlencoded");
  }
  return new URLSearchParams(body.text);
}
