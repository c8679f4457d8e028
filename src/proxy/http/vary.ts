import type { OutgoingHttpHeaders } from 'node:http2';

/**
 * Adds `token` to a response's `Vary` (kept as one comma-separated value),
 * unless it is already listed or the response varies on everything (`*`).
 * Shared by CORS (`Origin`), compression (`Accept-Encoding`) and the cache.
 */
export function addVary(headers: OutgoingHttpHeaders, token: string): void {
  const cur = headers['vary'];
  if (cur === undefined || cur === '') {
    headers['vary'] = token;
    return;
  }
  const s = Array.isArray(cur) ? cur.join(', ') : String(cur);
  const lower = token.toLowerCase();
  for (const part of s.split(',')) {
    const p = part.trim().toLowerCase();
    if (p === lower || p === '*') return;
  }
  headers['vary'] = `${s}, ${token}`;
}
