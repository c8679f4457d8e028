import { create, fromJson, type DescField, type DescMessage, type Message, type Registry } from '@bufbuild/protobuf';
import { reflect } from '@bufbuild/protobuf/reflect';
import type { Binding } from './http-rule.js';
import { isWellKnown, resolveFieldPath } from './http-rule.js';
import { canonicalize, getAt, isObject, leafPaths, setAt, type Violation } from './json-shape.js';
import { unescapePathValue, type UnescapeMode } from './path-unescape.js';
import type { QueryParam } from './query.js';
import { elementOf, textToJson, type JsonValue } from './text-value.js';

export interface BuildOptions {
  readonly unescape: UnescapeMode;
  readonly ignoreUnknownQuery: boolean;
  readonly ignoreUnknownJson: boolean;
  /** Body wins over a path binding of the same field (Envoy's default) instead of a 400. */
  readonly bodyWins: boolean;
  readonly registry: Registry;
}

/** The `update_mask` a PATCH did not set, and the paths it takes from the body. */
export interface ImpliedMask {
  readonly field: DescField;
  readonly paths: readonly string[];
}

export type Built = { ok: true; message: Message } | { ok: false; violations: Violation[] };

/**
 * The request JSON for one call from the three field classes of http.proto:
 * path variables (a), the body (b) and query parameters (c, only fields not in
 * a or b). Everything is merged into one proto-named JSON object and decoded
 * by one fromJson, so path, query and body share the same type rules.
 * `body` is the parsed JSON of the body part (undefined: no body sent).
 */
export function buildRequestJson(
  b: Binding,
  segments: readonly string[],
  query: readonly QueryParam[],
  body: JsonValue | undefined,
  opts: BuildOptions,
): { json: { [k: string]: JsonValue }; violations: Violation[]; impliedMask: ImpliedMask | undefined } {
  const v: Violation[] = [];
  const input = b.method.input;
  let root: { [k: string]: JsonValue } = {};
  const pathBound = new Set<string>();
  const maskField = impliedMaskField(b);
  let maskPaths: string[] = [];

  // (b) the body first, canonical so conflicts are plain lookups.
  if (b.body === 'none') {
    if (body !== undefined) v.push({ field: '', description: `${b.label} takes no request body` });
  } else if (body !== undefined) {
    if (b.body === '*') {
      const c = canonicalize(input, body, '', opts.ignoreUnknownJson, v);
      if (isObject(c)) root = c;
      else v.push({ field: '', description: `the body must be a JSON object (${input.typeName})` });
    } else {
      const f = b.body;
      const el = elementOf(f);
      const c = el.kind === 'message' && f.fieldKind === 'message' ? canonicalize(el.message, body, f.name, opts.ignoreUnknownJson, v) : body;
      root[f.name] = c;
      // Taken now, before path and query values are merged into the same object:
      // the mask lists what the client sent in the body, nothing else.
      if (maskField && f.fieldKind === 'message') maskPaths = leafPaths(f.message, c);
    }
  }

  // (a) path variables.
  for (const pv of b.pathVars) {
    const names = pv.fields.map((f) => f.name);
    const key = names.join('.');
    pathBound.add(key);
    // `**` is always last, so a variable ending in it takes every remaining segment.
    const endsInMulti = b.template.segments[pv.end - 1]?.kind === 'multi';
    const raw = (endsInMulti ? segments.slice(pv.start) : segments.slice(pv.start, pv.end)).join('/');
    const text = unescapePathValue(raw, opts.unescape);
    if (text === undefined) {
      v.push({ field: key, description: `malformed percent-encoding in path segment "${raw}"` });
      continue;
    }
    const val = textToJson(elementOf(pv.fields[pv.fields.length - 1]!), text);
    if (val instanceof Error) {
      v.push({ field: key, description: val.message });
      continue;
    }
    if (getAt(root, names) !== undefined) {
      if (opts.bodyWins) continue;
      v.push({ field: key, description: `"${key}" is bound by the path and must not be in the body` });
      continue;
    }
    setAt(root, names, val);
  }

  // (c) query parameters, only for fields not bound by path or body.
  for (const q of query) {
    const fields = resolveFieldPath(input, q.path.split('.'));
    const unknown = (why: string): void => {
      if (!opts.ignoreUnknownQuery) v.push({ field: q.raw, description: why });
    };
    if (!fields) {
      unknown(`unknown query parameter "${q.raw}"`);
      continue;
    }
    const names = fields.map((f) => f.name);
    const key = names.join('.');
    if (b.body === '*') {
      unknown(`query parameter "${q.raw}" is not allowed: ${b.label} takes every field from the body`);
      continue;
    }
    if (b.body !== 'none' && names[0] === b.body.name) {
      unknown(`query parameter "${q.raw}" is covered by the body field "${b.body.name}"`);
      continue;
    }
    if ([...pathBound].some((p) => p === key || p.startsWith(`${key}.`) || key.startsWith(`${p}.`))) {
      unknown(`query parameter "${q.raw}" is bound by the path`);
      continue;
    }
    const leaf = fields[fields.length - 1]!;
    if (q.mapKey !== undefined) {
      if (leaf.fieldKind !== 'map') {
        v.push({ field: q.raw, description: `"${q.path}" is not a map field` });
        continue;
      }
      const val = textToJson(elementOf(leaf), q.value);
      if (val instanceof Error) v.push({ field: q.raw, description: val.message });
      else {
        const m = getAt(root, names);
        if (isObject(m)) m[q.mapKey] = val;
        else setAt(root, names, { [q.mapKey]: val });
      }
      continue;
    }
    if (leaf.fieldKind === 'map') {
      v.push({ field: q.raw, description: `map field "${q.path}" is set as ${q.path}[key]=value` });
      continue;
    }
    const val = textToJson(elementOf(leaf), q.value);
    if (val instanceof Error) {
      v.push({ field: q.raw, description: val.message });
      continue;
    }
    if (leaf.fieldKind === 'list') {
      const cur = getAt(root, names);
      if (Array.isArray(cur)) cur.push(val);
      else setAt(root, names, [val]);
    } else if (getAt(root, names) !== undefined) {
      v.push({ field: q.raw, description: `"${q.raw}" is not repeated but given more than once` });
    } else setAt(root, names, val);
  }

  // An explicit mask (query) wins over the implied one.
  const impliedMask = maskField && root[maskField.name] === undefined && maskPaths.length > 0 ? { field: maskField, paths: maskPaths } : undefined;
  return { json: root, violations: v, impliedMask };
}

/**
 * The request message of one call: buildRequestJson, decoded, and the implied
 * mask set on the message itself. Set after decoding because the mask's JSON
 * form (lowerCamel paths) does not round-trip every proto name (`field_1`).
 */
export function buildRequest(
  b: Binding,
  segments: readonly string[],
  query: readonly QueryParam[],
  body: JsonValue | undefined,
  opts: BuildOptions,
): Built {
  const built = buildRequestJson(b, segments, query, body, opts);
  if (built.violations.length > 0) return { ok: false, violations: built.violations };
  const d = decodeJson(b.method.input, built.json, opts.registry);
  const im = built.impliedMask;
  if (d.ok && im?.field.fieldKind === 'message') {
    reflect(b.method.input, d.message).set(im.field, reflect(im.field.message, create(im.field.message, { paths: [...im.paths] })));
  }
  return d;
}

/**
 * grpc-gateway's rule for an implicit field mask: a PATCH whose body is one
 * message field, on a request with a `google.protobuf.FieldMask update_mask`.
 */
function impliedMaskField(b: Binding): DescField | undefined {
  if (b.httpMethod !== 'PATCH' || b.body === 'none' || b.body === '*') return undefined;
  if (b.body.fieldKind !== 'message' || isWellKnown(b.body.message) || b.body.message.typeName === 'google.api.HttpBody') return undefined;
  const f = b.method.input.fields.find((x) => x.name === 'update_mask');
  return f?.fieldKind === 'message' && f.message.typeName === 'google.protobuf.FieldMask' ? f : undefined;
}

/** Decodes the merged JSON; a type error names the field bufbuild reports. */
export function decodeJson(schema: DescMessage, json: JsonValue, registry: Registry): Built {
  try {
    return { ok: true, message: fromJson(schema, json, { registry }) };
  } catch (err) {
    const msg = (err as Error).message;
    const m = /cannot decode (?:field|message) ([\w.]+)/.exec(msg);
    const field = m ? fieldFromTypeName(m[1]!) : '';
    return { ok: false, violations: [{ field, description: msg }] };
  }
}

function fieldFromTypeName(name: string): string {
  const i = name.lastIndexOf('.');
  return i < 0 ? name : name.slice(i + 1);
}
