import type { JsonObject, JsonValue } from '../../config/snapshot.js';

/**
 * Fields that carry secret material inline (not file paths): their values
 * never leave the control plane through get/list/watch/history or logs.
 * `keyFile` and other `*File` fields are paths and stay visible.
 */
const SECRET_FIELD = /^(?!.*File$).*(secret|password|token|privateKey|inlineKey|inlineBytes)/i;
export const REDACTED = '[redacted]';

export function redact<T extends JsonValue>(v: T): T {
  if (Array.isArray(v)) return v.map((x) => redact(x)) as T;
  if (v !== null && typeof v === 'object') {
    const out: JsonObject = {};
    for (const [k, x] of Object.entries(v)) out[k] = SECRET_FIELD.test(k) && typeof x === 'string' ? REDACTED : redact(x);
    return out as T;
  }
  return v;
}
