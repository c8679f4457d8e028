import type { JsonObject, JsonValue } from './snapshot.js';

/**
 * Fields that carry secret material inline: their values never leave the
 * control plane through get/list/watch/history or logs. Paths (`*File`) and
 * names of things (`tokenCookie` is a cookie's name, `forwardHeaders` header
 * names) stay visible.
 */
const SECRET_FIELD = /secret|password|passphrase|token|privateKey|inlineKey|inlineBytes|apiKey|credential/i;
const NOT_SECRET = /(File|Cookie|Header|Headers|Name|Names)$/;
/** Header matchers on these headers compare against credentials: their values are secrets too. */
const SECRET_HEADER = /^(authorization|proxy-authorization|cookie|x-api-key|x-auth-token)$/i;
const MATCH_VALUES = ['exact', 'prefix', 'regex', 'suffix', 'contains'];
export const REDACTED = '[redacted]';

function isSecretField(key: string): boolean {
  return SECRET_FIELD.test(key) && !NOT_SECRET.test(key);
}

export function redact<T extends JsonValue>(v: T): T {
  if (Array.isArray(v)) return v.map((x) => redact(x)) as T;
  if (v !== null && typeof v === 'object') {
    const secretHeader = typeof v.name === 'string' && SECRET_HEADER.test(v.name);
    const out: JsonObject = {};
    for (const [k, x] of Object.entries(v)) {
      const secret = isSecretField(k) || (secretHeader && MATCH_VALUES.includes(k));
      out[k] = secret && typeof x === 'string' ? REDACTED : redact(x);
    }
    return out as T;
  }
  return v;
}

/**
 * The inverse for re-applied `get` output: every REDACTED value takes the
 * stored value at the same path, so `get -o yaml | apply` changes nothing
 * (and never stores the placeholder). A REDACTED with no stored value stays
 * and fails validation or is stored as given.
 */
export function unredact(incoming: JsonValue, stored: JsonValue | undefined): JsonValue {
  if (incoming === REDACTED) return typeof stored === 'string' ? stored : incoming;
  if (Array.isArray(incoming)) return incoming.map((x, i) => unredact(x, Array.isArray(stored) ? stored[i] : undefined));
  if (incoming !== null && typeof incoming === 'object') {
    const s = stored !== null && typeof stored === 'object' && !Array.isArray(stored) ? stored : undefined;
    const out: JsonObject = {};
    for (const [k, x] of Object.entries(incoming)) out[k] = unredact(x, s?.[k]);
    return out;
  }
  return incoming;
}
