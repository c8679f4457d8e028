import { ScalarType, type DescEnum, type DescField, type DescMessage, type DescOneof } from '@bufbuild/protobuf';

/** A problem at a path inside a document (`spec.virtualHosts[0].domains`). */
export interface PathIssue {
  readonly path: string;
  readonly message: string;
}

/**
 * Walks a JSON value against a message descriptor and reports every unknown
 * field and wrong type, with paths in json (lowerCamel) names.
 *
 * Why not just `fromJson`: it throws at the first problem with a message that
 * names the field but not where it is, and a config author wants all mistakes
 * of a file at once, each with its full path. The rules mirror the proto3 JSON
 * mapping so anything accepted here is accepted by `fromJson` afterwards.
 */
export function checkMessageJson(desc: DescMessage, value: unknown, path: string, out: PathIssue[]): void {
  const wkt = WKT_CHECKS[desc.typeName];
  if (wkt) return wkt(desc, value, path, out);
  if (!isPlainObject(value)) {
    out.push({ path, message: `expected object, got ${jsonType(value)}` });
    return;
  }
  const given = new Map<DescField, string>();
  const oneofs = new Map<DescOneof, DescField>();
  for (const [key, v] of Object.entries(value)) {
    // proto3 JSON parsers accept both the json_name and the proto field name.
    const field = desc.fields.find((f) => f.jsonName === key || f.name === key);
    if (!field) {
      out.push({ path: join(path, key), message: `unknown field; known fields: ${desc.fields.map((f) => f.jsonName).join(', ')}` });
      continue;
    }
    const fpath = join(path, field.jsonName);
    const earlier = given.get(field);
    if (earlier !== undefined) {
      out.push({ path: fpath, message: `field given twice (as "${earlier}" and "${key}")` });
      continue;
    }
    given.set(field, key);
    if (field.oneof && v !== null) {
      const other = oneofs.get(field.oneof);
      if (other) {
        const names = field.oneof.fields.map((f) => f.jsonName).join(', ');
        out.push({ path: fpath, message: `${other.jsonName} is already set; set only one of ${names}` });
        continue;
      }
      oneofs.set(field.oneof, field);
    }
    checkField(field, v, fpath, out);
  }
}

function checkField(field: DescField, v: unknown, path: string, out: PathIssue[]): void {
  // null means "unset" for every field kind except google.protobuf.Value.
  if (v === null && !(field.fieldKind === 'message' && field.message.typeName === 'google.protobuf.Value')) return;
  switch (field.fieldKind) {
    case 'scalar':
      return checkScalar(field.scalar, v, path, out);
    case 'enum':
      return checkEnum(field.enum, v, path, out);
    case 'message':
      return checkMessageJson(field.message, v, path, out);
    case 'list': {
      if (!Array.isArray(v)) {
        out.push({ path, message: `expected array, got ${jsonType(v)}` });
        return;
      }
      v.forEach((item, i) => {
        const ipath = `${path}[${i}]`;
        if (item === null) out.push({ path: ipath, message: 'null is not allowed in a list' });
        else if (field.listKind === 'scalar') checkScalar(field.scalar, item, ipath, out);
        else if (field.listKind === 'enum') checkEnum(field.enum, item, ipath, out);
        else checkMessageJson(field.message, item, ipath, out);
      });
      return;
    }
    case 'map': {
      if (!isPlainObject(v)) {
        out.push({ path, message: `expected object, got ${jsonType(v)}` });
        return;
      }
      for (const [key, item] of Object.entries(v)) {
        const kpath = join(path, key);
        checkMapKey(field.mapKey, key, kpath, out);
        if (item === null) out.push({ path: kpath, message: 'null is not allowed as a map value' });
        else if (field.mapKind === 'scalar') checkScalar(field.scalar, item, kpath, out);
        else if (field.mapKind === 'enum') checkEnum(field.enum, item, kpath, out);
        else checkMessageJson(field.message, item, kpath, out);
      }
      return;
    }
  }
}

const INT_RANGES: Partial<Record<ScalarType, readonly [bigint, bigint]>> = {
  [ScalarType.INT32]: [-(2n ** 31n), 2n ** 31n - 1n],
  [ScalarType.SINT32]: [-(2n ** 31n), 2n ** 31n - 1n],
  [ScalarType.SFIXED32]: [-(2n ** 31n), 2n ** 31n - 1n],
  [ScalarType.UINT32]: [0n, 2n ** 32n - 1n],
  [ScalarType.FIXED32]: [0n, 2n ** 32n - 1n],
  [ScalarType.INT64]: [-(2n ** 63n), 2n ** 63n - 1n],
  [ScalarType.SINT64]: [-(2n ** 63n), 2n ** 63n - 1n],
  [ScalarType.SFIXED64]: [-(2n ** 63n), 2n ** 63n - 1n],
  [ScalarType.UINT64]: [0n, 2n ** 64n - 1n],
  [ScalarType.FIXED64]: [0n, 2n ** 64n - 1n],
};

export function checkScalar(type: ScalarType, v: unknown, path: string, out: PathIssue[]): void {
  const name = ScalarType[type].toLowerCase();
  const range = INT_RANGES[type];
  if (range) {
    // proto3 JSON: integers as numbers or as decimal strings (64-bit ones usually are strings).
    let n: bigint | undefined;
    if (typeof v === 'number' && Number.isInteger(v)) n = BigInt(v);
    else if (typeof v === 'string' && /^-?\d+$/.test(v.trim())) n = BigInt(v.trim());
    if (n === undefined) {
      const got = typeof v === 'number' ? `${v}` : typeof v === 'string' ? `string ${JSON.stringify(v)}` : jsonType(v);
      out.push({ path, message: `expected ${name}, got ${got}` });
    } else if (n < range[0] || n > range[1]) {
      out.push({ path, message: `${n} is out of range for ${name} (${range[0]}..${range[1]})` });
    }
    return;
  }
  switch (type) {
    case ScalarType.STRING:
      if (typeof v !== 'string') out.push({ path, message: `expected string, got ${jsonType(v)}` });
      return;
    case ScalarType.BOOL:
      if (typeof v !== 'boolean') out.push({ path, message: `expected boolean, got ${jsonType(v)}` });
      return;
    case ScalarType.BYTES:
      if (typeof v !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(v)) {
        out.push({ path, message: `expected base64 string, got ${jsonType(v)}` });
      }
      return;
    case ScalarType.FLOAT:
    case ScalarType.DOUBLE: {
      const special = v === 'NaN' || v === 'Infinity' || v === '-Infinity';
      const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
      if (!special && !Number.isFinite(n)) out.push({ path, message: `expected ${name}, got ${jsonType(v)}` });
      return;
    }
  }
}

function checkEnum(desc: DescEnum, v: unknown, path: string, out: PathIssue[]): void {
  const allowed = (): string => desc.values.map((x) => x.name).join(', ');
  if (typeof v === 'string') {
    if (!desc.values.some((x) => x.name === v)) {
      out.push({ path, message: `unknown value ${JSON.stringify(v)} for ${desc.name}; allowed: ${allowed()}` });
    }
  } else if (typeof v === 'number') {
    // Open enums would keep unknown numbers, but in config an undefined number is always a mistake.
    if (!desc.values.some((x) => x.number === v)) {
      out.push({ path, message: `unknown value ${v} for ${desc.name}; allowed: ${allowed()}` });
    }
  } else {
    out.push({ path, message: `expected ${desc.name} name (${allowed()}), got ${jsonType(v)}` });
  }
}

function checkMapKey(type: ScalarType, key: string, path: string, out: PathIssue[]): void {
  if (type === ScalarType.STRING) return;
  if (type === ScalarType.BOOL) {
    if (key !== 'true' && key !== 'false') out.push({ path, message: `map key must be "true" or "false"` });
    return;
  }
  const before = out.length;
  checkScalar(type, key, path, out);
  if (out.length > before) out[out.length - 1] = { path, message: `map key: ${out[out.length - 1]!.message}` };
}

type WktCheck = (desc: DescMessage, v: unknown, path: string, out: PathIssue[]) => void;

const MAX_DURATION_SECONDS = 315_576_000_000n;

/** Well-known types have their own JSON forms (a Duration is "1.5s", not an object). */
const WKT_CHECKS: Record<string, WktCheck> = {
  'google.protobuf.Duration': (_d, v, path, out) => {
    if (typeof v !== 'string') {
      out.push({ path, message: `expected duration string like "1.5s", got ${jsonType(v)}` });
      return;
    }
    const m = /^(-?)(\d+)(?:\.(\d{1,9}))?s$/.exec(v);
    if (!m) {
      out.push({ path, message: `invalid duration ${JSON.stringify(v)}; write seconds with an "s" suffix, e.g. "0.25s" or "30s"` });
    } else if (BigInt(m[2]!) > MAX_DURATION_SECONDS) {
      out.push({ path, message: `duration ${JSON.stringify(v)} is out of range` });
    }
  },
  'google.protobuf.Timestamp': (_d, v, path, out) => {
    const ok = typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/.test(v);
    if (!ok) out.push({ path, message: `expected RFC 3339 timestamp string, got ${describe(v)}` });
  },
  'google.protobuf.FieldMask': (_d, v, path, out) => {
    if (typeof v !== 'string') out.push({ path, message: `expected field mask string, got ${jsonType(v)}` });
  },
  'google.protobuf.Struct': (_d, v, path, out) => {
    if (!isPlainObject(v)) out.push({ path, message: `expected object, got ${jsonType(v)}` });
  },
  'google.protobuf.ListValue': (_d, v, path, out) => {
    if (!Array.isArray(v)) out.push({ path, message: `expected array, got ${jsonType(v)}` });
  },
  'google.protobuf.Value': () => undefined,
  'google.protobuf.Any': (_d, v, path, out) => {
    if (!isPlainObject(v) || typeof v['@type'] !== 'string') {
      out.push({ path, message: `expected object with "@type", got ${jsonType(v)}` });
    }
  },
};
for (const w of ['Double', 'Float', 'Int64', 'UInt64', 'Int32', 'UInt32', 'Bool', 'String', 'Bytes']) {
  // Wrappers are written as their bare scalar.
  WKT_CHECKS[`google.protobuf.${w}Value`] = (d, v, path, out) => {
    const f = d.fields[0]!;
    if (f.fieldKind === 'scalar') checkScalar(f.scalar, v, path, out);
  };
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The JSON type of a value, as used in "expected X, got Y". */
export function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v === 'bigint' ? 'number' : typeof v;
}

function describe(v: unknown): string {
  return typeof v === 'string' ? `string ${JSON.stringify(v)}` : jsonType(v);
}

/** Appends a key to a path; keys that are not identifiers are quoted, `labels["app.io/x"]`. */
export function join(path: string, key: string): string {
  if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) return path ? `${path}.${key}` : key;
  return `${path}[${JSON.stringify(key)}]`;
}
