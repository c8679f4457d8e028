/** Content codings this sidecar can produce (zstd only where node:zlib has it: Node >= 22.15 / 23.8). */
export type Coding = 'gzip' | 'br' | 'zstd';

/**
 * Picks the response coding from `Accept-Encoding` (RFC 9110 §12.5.3): the
 * offered coding with the highest q-value (an explicit entry, else `*`'s),
 * ties going to the earlier of `offered` (the server's preference); none with
 * q > 0 → undefined (identity). `x-gzip` counts as gzip.
 */
export function negotiate(acceptEncoding: string | string[] | undefined, offered: readonly Coding[]): Coding | undefined {
  if (acceptEncoding === undefined) return undefined;
  const s = Array.isArray(acceptEncoding) ? acceptEncoding.join(',') : acceptEncoding;
  if (s === '') return undefined;
  let star: number | undefined;
  const q = new Map<string, number>();
  for (const item of s.split(',')) {
    const semi = item.indexOf(';');
    let name = (semi < 0 ? item : item.slice(0, semi)).trim().toLowerCase();
    if (name === '') continue;
    if (name === 'x-gzip') name = 'gzip';
    let value = 1;
    if (semi >= 0) {
      const m = /(?:^|;)\s*q\s*=\s*([0-9.]+)/i.exec(item.slice(semi));
      if (m) {
        value = Number(m[1]);
        if (!(value >= 0 && value <= 1)) value = 0;
      }
    }
    if (name === '*') star = value;
    else q.set(name, Math.max(q.get(name) ?? 0, value));
  }
  let best: Coding | undefined;
  let bestQ = 0;
  for (const c of offered) {
    const v = q.get(c) ?? star ?? 0;
    if (v > bestQ) {
      best = c;
      bestQ = v;
    }
  }
  return best;
}
