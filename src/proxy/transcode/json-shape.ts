import type { DescMessage } from '@bufbuild/protobuf';
import { isWellKnown } from './http-rule.js';
import type { JsonValue } from './text-value.js';

export interface Violation {
  readonly field: string;
  readonly description: string;
}

/**
 * Rewrites a request JSON object so every key is the proto field name,
 * reporting unknown keys with their dotted path (strict mode) or dropping
 * them (relaxed). Merging path, query and body values then compares names,
 * not spellings, and conflicts are found by a plain lookup. Values of
 * well-known types and scalars are left for fromJson to check.
 */
export function canonicalize(
  desc: DescMessage,
  json: JsonValue,
  path: string,
  ignoreUnknown: boolean,
  out: Violation[],
): JsonValue {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return json; // fromJson reports the type
  const res: { [k: string]: JsonValue } = {};
  for (const key of Object.keys(json)) {
    const f = desc.fields.find((x) => x.name === key || x.jsonName === key);
    const at = path === '' ? key : `${path}.${key}`;
    if (!f) {
      if (!ignoreUnknown) out.push({ field: at, description: `unknown field "${key}" in ${desc.typeName}` });
      continue;
    }
    if (res[f.name] !== undefined) {
      out.push({ field: at, description: `field "${f.name}" is given twice (as "${f.name}" and "${f.jsonName}")` });
      continue;
    }
    const v = json[key]!;
    if (f.fieldKind === 'message' && !isWellKnown(f.message)) res[f.name] = canonicalize(f.message, v, at, ignoreUnknown, out);
    else if (f.fieldKind === 'list' && f.listKind === 'message' && !isWellKnown(f.message) && Array.isArray(v)) {
      res[f.name] = v.map((item, i) => canonicalize(f.message, item, `${at}[${i}]`, ignoreUnknown, out));
    } else if (f.fieldKind === 'map' && f.mapKind === 'message' && !isWellKnown(f.message) && isObject(v)) {
      const m: { [k: string]: JsonValue } = {};
      for (const [mk, mv] of Object.entries(v)) m[mk] = canonicalize(f.message, mv, `${at}[${mk}]`, ignoreUnknown, out);
      res[f.name] = m;
    } else res[f.name] = v;
  }
  return res;
}

export function isObject(v: JsonValue | undefined): v is { [k: string]: JsonValue } {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The value at a proto-name path, or undefined. */
export function getAt(obj: JsonValue, names: readonly string[]): JsonValue | undefined {
  let cur: JsonValue | undefined = obj;
  for (const n of names) {
    if (!isObject(cur)) return undefined;
    cur = cur[n];
  }
  return cur;
}

/** Sets a value at a proto-name path, creating objects on the way. */
export function setAt(obj: { [k: string]: JsonValue }, names: readonly string[], value: JsonValue): void {
  let cur = obj;
  for (let i = 0; i < names.length - 1; i++) {
    const n = names[i]!;
    const next = cur[n];
    if (isObject(next)) cur = next;
    else {
      const created: { [k: string]: JsonValue } = {};
      cur[n] = created;
      cur = created;
    }
  }
  cur[names[names.length - 1]!] = value;
}

/**
 * Leaf field paths present in a (canonical) JSON object, for a PATCH's implied
 * field mask: nested plain messages are descended into; maps, repeated fields,
 * well-known types (Struct, Value, Any, Timestamp, wrappers, …), null and `{}`
 * are leaves, the field itself. grpc-gateway's FieldMaskFromRequestBody does
 * the same except that it also descends into Struct/Value keys, which are not
 * field paths a FieldMask can name.
 */
export function leafPaths(desc: DescMessage, json: JsonValue, prefix = ''): string[] {
  if (!isObject(json)) return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(json)) {
    const f = desc.fields.find((x) => x.name === k);
    const p = prefix === '' ? k : `${prefix}.${k}`;
    if (f && f.fieldKind === 'message' && !isWellKnown(f.message) && isObject(v) && Object.keys(v).length > 0) {
      out.push(...leafPaths(f.message, v, p));
    } else out.push(p);
  }
  return out;
}
