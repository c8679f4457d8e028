const CIDR4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;
const CIDR6 = /^[0-9a-fA-F:]+\/(\d{1,3})$/;

/**
 * Checks "a.b.c.d/n" and IPv6 "x::/n". Shared by the annotation reader (inject.ts) and the redirect rules,
 * which inject.ts reaches through templates.ts: a module of its own keeps that chain from closing a cycle.
 * Callers decide where `*` is allowed (include ranges).
 */
export function isCidr(s: string): boolean {
  const m4 = CIDR4.exec(s);
  if (m4) return m4.slice(1, 5).every((o) => Number(o) <= 255) && Number(m4[5]) <= 32;
  const m6 = CIDR6.exec(s);
  return m6 !== null && s.includes(':') && Number(m6[1]) <= 128;
}
