/**
 * Decoding of path-variable values (ANCHORS.md "Path var unescaping", the
 * http.proto reference semantics and Envoy's url_unescape_spec):
 * - `except_reserved` (default): %XX is decoded unless it encodes an RFC 6570
 *   reserved character, so "%2F" in a single-segment variable stays "%2F" and
 *   a value can round-trip through the path unchanged.
 * - `except_slash`: everything but %2F.
 * - `all`: everything.
 * Returns undefined for malformed escapes (a 400, not a guess).
 */
export type UnescapeMode = 'except_reserved' | 'except_slash' | 'all';

const RESERVED = new Set(":/?#[]@!$&'()*+,;=".split('').map((c) => c.charCodeAt(0)));

export function unescapePathValue(raw: string, mode: UnescapeMode): string | undefined {
  if (!raw.includes('%')) return raw;
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c !== 37 /* % */) {
      // Non-ASCII in a raw path is unusual but harmless: keep its UTF-8 bytes.
      for (const b of Buffer.from(raw[i]!, 'utf8')) bytes.push(b);
      continue;
    }
    const hex = raw.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined;
    const b = parseInt(hex, 16);
    const keep = (mode === 'except_reserved' && RESERVED.has(b)) || (mode === 'except_slash' && b === 47);
    if (keep) for (const k of raw.slice(i, i + 3)) bytes.push(k.charCodeAt(0));
    else bytes.push(b);
    i += 2;
  }
  const text = Buffer.from(bytes).toString('utf8');
  // Invalid UTF-8 becomes U+FFFD; refuse it rather than pass a mangled value.
  return text.includes('\uFFFD') && !raw.includes('\uFFFD') ? undefined : text;
}
