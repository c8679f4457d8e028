import { ScalarType, type DescEnum, type DescField, type DescMessage } from '@bufbuild/protobuf';

/**
 * Converts one query-parameter or path-variable string into the proto3 JSON
 * value of a field, so the whole request is decoded by a single fromJson call
 * (one set of type rules for body, path and query). Returns an Error with a
 * reason for the client when the text cannot be that type.
 *
 * The extra forms grpc-gateway accepts in queries are supported: enums by
 * number, Go durations ("1m30s"), snake_case FieldMask paths, bare wrapper
 * values, Struct/Value/ListValue as JSON text.
 */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

export type Element =
  | { kind: 'scalar'; scalar: ScalarType }
  | { kind: 'enum'; enum: DescEnum }
  | { kind: 'message'; message: DescMessage };

/** The element type of a field: itself for singular fields, the item for lists, the value for maps. */
export function elementOf(f: DescField): Element {
  switch (f.fieldKind) {
    case 'scalar':
      return { kind: 'scalar', scalar: f.scalar };
    case 'enum':
      return { kind: 'enum', enum: f.enum };
    case 'message':
      return { kind: 'message', message: f.message };
    case 'list':
      return f.listKind === 'scalar'
        ? { kind: 'scalar', scalar: f.scalar }
        : f.listKind === 'enum'
          ? { kind: 'enum', enum: f.enum }
          : { kind: 'message', message: f.message };
    case 'map':
      return f.mapKind === 'scalar'
        ? { kind: 'scalar', scalar: f.scalar }
        : f.mapKind === 'enum'
          ? { kind: 'enum', enum: f.enum }
          : { kind: 'message', message: f.message };
  }
}

const INT_RE = /^-?\d+$/;
const UINT_RE = /^\d+$/;
const NUM_RE = /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

export function textToJson(el: Element, text: string): JsonValue | Error {
  switch (el.kind) {
    case 'enum': {
      if (INT_RE.test(text)) return Number(text);
      return el.enum.values.some((v) => v.name === text) ? text : new Error(`"${text}" is not a value of ${el.enum.typeName}`);
    }
    case 'scalar':
      return scalarText(el.scalar, text);
    case 'message':
      return messageText(el.message, text);
  }
}

function scalarText(t: ScalarType, text: string): JsonValue | Error {
  switch (t) {
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return text;
    case ScalarType.BOOL:
      if (text === 'true' || text === '1') return true;
      if (text === 'false' || text === '0') return false;
      return new Error(`"${text}" is not a bool (true/false)`);
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return INT_RE.test(text) ? text : new Error(`"${text}" is not an integer`);
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return UINT_RE.test(text) ? text : new Error(`"${text}" is not an unsigned integer`);
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      if (text === 'NaN' || text === 'Infinity' || text === '-Infinity') return text;
      return NUM_RE.test(text) ? text : new Error(`"${text}" is not a number`);
  }
}

const WRAPPERS: Readonly<Record<string, ScalarType>> = {
  'google.protobuf.DoubleValue': ScalarType.DOUBLE,
  'google.protobuf.FloatValue': ScalarType.FLOAT,
  'google.protobuf.Int64Value': ScalarType.INT64,
  'google.protobuf.UInt64Value': ScalarType.UINT64,
  'google.protobuf.Int32Value': ScalarType.INT32,
  'google.protobuf.UInt32Value': ScalarType.UINT32,
  'google.protobuf.BoolValue': ScalarType.BOOL,
  'google.protobuf.StringValue': ScalarType.STRING,
  'google.protobuf.BytesValue': ScalarType.BYTES,
};

function messageText(m: DescMessage, text: string): JsonValue | Error {
  const wrapped = WRAPPERS[m.typeName];
  if (wrapped !== undefined) return scalarText(wrapped, text);
  switch (m.typeName) {
    case 'google.protobuf.Timestamp':
      return text;
    case 'google.protobuf.Duration':
      return durationText(text);
    case 'google.protobuf.FieldMask':
      return text
        .split(',')
        .map((p) => p.trim().replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase()))
        .filter((p) => p !== '')
        .join(',');
    case 'google.protobuf.Value':
      return parseJsonText(text) ?? text;
    case 'google.protobuf.Struct':
    case 'google.protobuf.ListValue': {
      const v = parseJsonText(text);
      return v === undefined ? new Error(`not JSON for ${m.typeName}`) : v;
    }
  }
  return new Error(`${m.typeName} cannot be set from a query parameter; set its fields with dotted names`);
}

function parseJsonText(text: string): JsonValue | undefined {
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    return undefined;
  }
}

const GO_UNITS: Readonly<Record<string, number>> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

/** Proto JSON ("1.5s") as is; Go durations ("1h2m3.5s", "250ms") converted to seconds. */
function durationText(text: string): JsonValue | Error {
  if (/^-?\d+(\.\d+)?s$/.test(text)) return text;
  const m = /^(-?)((?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+)$/.exec(text);
  if (!m) return new Error(`"${text}" is not a duration (e.g. "1.5s" or "1m30s")`);
  let secs = 0;
  for (const part of m[2]!.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) secs += Number(part[1]) * GO_UNITS[part[2]!]!;
  // Nanosecond precision at most, as the JSON form allows.
  const fixed = secs.toFixed(9).replace(/\.?0+$/, '');
  return `${m[1]}${fixed}s`;
}
