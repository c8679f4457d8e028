/**
 * 32-bit string hash for consistent hashing: FNV-1a over UTF-16 code units,
 * then murmur3's finaliser so nearby keys (`host_1`, `host_2`) spread over
 * the whole range. Envoy uses xxHash64; 32 bits are plenty for rings of at
 * most 8M points and keep the arithmetic in small integers.
 */
export function hash32(s: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

/** A draw in [0, 1) derived from a 32-bit hash and a salt: independent-looking draws from one request hash. */
export function hashDraw(hash: number, salt: number): number {
  return fmix32((hash ^ Math.imul(salt, 0x9e3779b1)) >>> 0) / 4294967296;
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Envoy's combination of several hash policies: rotate the running hash left by one, xor the next. */
export function combineHash(acc: number, next: number): number {
  return (((acc << 1) | (acc >>> 31)) ^ next) >>> 0;
}
