/**
 * Percent-decodes a captured param. Matching runs on the raw path, so a
 * malformed escape ("%zz", a lone "%E2") is not a reason to fail the request:
 * the raw text is returned instead, and nothing here throws.
 */
export function decodeParam(raw: string): string {
  if (raw.indexOf('%') < 0) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}
