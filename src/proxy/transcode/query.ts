/**
 * Query strings as grpc-gateway reads them (Go's url.ParseQuery): pairs split
 * on "&", key and value percent-decoded with "+" as a space, repeated keys
 * kept in order. A malformed escape is reported, not guessed at. Keys of the
 * map form `m[key]` are split here so the binder sees (field path, map key).
 */
export interface QueryParam {
  /** Dotted field path, decoded. */
  readonly path: string;
  /** For `m[key]=v`: the map key. */
  readonly mapKey?: string;
  readonly value: string;
  /** The key as written, for error messages. */
  readonly raw: string;
}

export type QueryParse = { ok: true; params: QueryParam[] } | { ok: false; key: string; message: string };

/** Bounds work on hostile input: more pairs than this is a 400. */
export const MAX_QUERY_PARAMS = 1000;

export function parseQuery(qs: string): QueryParse {
  const params: QueryParam[] = [];
  if (qs === '') return { ok: true, params };
  const pairs = qs.split('&');
  if (pairs.length > MAX_QUERY_PARAMS) return { ok: false, key: '', message: `more than ${MAX_QUERY_PARAMS} query parameters` };
  for (const pair of pairs) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const rawKey = eq < 0 ? pair : pair.slice(0, eq);
    const key = decode(rawKey);
    const value = decode(eq < 0 ? '' : pair.slice(eq + 1));
    if (key === undefined) return { ok: false, key: rawKey, message: 'malformed percent-encoding in query parameter name' };
    if (value === undefined) return { ok: false, key, message: 'malformed percent-encoding in query parameter value' };
    if (key === '') continue;
    const br = key.indexOf('[');
    if (br > 0 && key.endsWith(']')) {
      params.push({ path: key.slice(0, br), mapKey: key.slice(br + 1, -1), value, raw: key });
    } else {
      params.push({ path: key, value, raw: key });
    }
  }
  return { ok: true, params };
}

function decode(s: string): string | undefined {
  const plus = s.includes('+') ? s.replace(/\+/g, ' ') : s;
  if (!plus.includes('%')) return plus;
  try {
    return decodeURIComponent(plus);
  } catch {
    return undefined;
  }
}
