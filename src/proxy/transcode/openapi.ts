import type { DescEnum, DescField, DescMessage, DescService } from '@bufbuild/protobuf';
import type { Binding } from './http-rule.js';

/**
 * The OpenAPI 3.1 document of a transcoding route, generated from the
 * compiled bindings and the message descriptors (docs/transcoding.md,
 * point 10): one operation per binding, path parameters from the template,
 * query parameters for the fields bound neither by the path nor by the body,
 * request/response schemas in canonical proto3 JSON (well-known types in
 * their JSON forms), and every error as a google.rpc.Status.
 */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

export interface OpenApiOptions {
  readonly title: string;
  readonly version: string;
  /** Property names as printed in responses: proto names or json names. */
  readonly protoNames: boolean;
  readonly enumsAsInts: boolean;
}

const STATUS = 'google.rpc.Status';
const ANY = 'google.protobuf.Any';
/** Query parameters of nested messages go this deep at most (recursive messages). */
const MAX_QUERY_DEPTH = 4;

export function buildOpenApi(services: readonly DescService[], bindings: readonly Binding[], o: OpenApiOptions): Obj {
  const schemas: Record<string, Obj> = {};
  const pending: (DescMessage | DescEnum)[] = [];
  const ref = (d: DescMessage | DescEnum): Obj => {
    if (!(d.typeName in schemas)) {
      schemas[d.typeName] = {};
      pending.push(d);
    }
    return { $ref: `#/components/schemas/${d.typeName}` };
  };
  const propName = (f: DescField): string => (o.protoNames ? f.name : f.jsonName);

  function scalarSchema(t: number): Obj {
    // ScalarType numbers (descriptor.proto FieldDescriptorProto.Type).
    switch (t) {
      case 1: // double
        return { type: ['number', 'string'], format: 'double' };
      case 2: // float
        return { type: ['number', 'string'], format: 'float' };
      case 3: // int64
      case 16: // sfixed64
      case 18: // sint64
        return { type: 'string', format: 'int64', pattern: '^-?[0-9]+$' };
      case 4: // uint64
      case 6: // fixed64
        return { type: 'string', format: 'uint64', pattern: '^[0-9]+$' };
      case 5: // int32
      case 15: // sfixed32
      case 17: // sint32
        return { type: 'integer', format: 'int32' };
      case 13: // uint32
      case 7: // fixed32
        return { type: 'integer', format: 'uint32', minimum: 0 };
      case 8:
        return { type: 'boolean' };
      case 12: // bytes
        return { type: 'string', format: 'byte', contentEncoding: 'base64' };
      default:
        return { type: 'string' };
    }
  }

  function wktSchema(m: DescMessage): Obj | undefined {
    switch (m.typeName) {
      case 'google.protobuf.Timestamp':
        return { type: 'string', format: 'date-time' };
      case 'google.protobuf.Duration':
        return { type: 'string', pattern: '^-?[0-9]+(\\.[0-9]{1,9})?s$', examples: ['1.5s'] };
      case 'google.protobuf.FieldMask':
        return { type: 'string', description: 'Comma-separated field paths (lowerCamel).' };
      case 'google.protobuf.Struct':
        return { type: 'object', additionalProperties: true };
      case 'google.protobuf.Value':
        return {};
      case 'google.protobuf.ListValue':
        return { type: 'array', items: {} };
      case 'google.protobuf.Empty':
        return { type: 'object', properties: {}, additionalProperties: false };
      case ANY:
        return {
          type: 'object',
          properties: { '@type': { type: 'string', description: 'type.googleapis.com/<fully.qualified.Message>' } },
          required: ['@type'],
          additionalProperties: true,
        };
      case 'google.protobuf.NullValue':
        return { type: 'null' };
    }
    const w = /^google\.protobuf\.(Double|Float|Int64|UInt64|Int32|UInt32|Bool|String|Bytes)Value$/.exec(m.typeName);
    if (w) {
      const inner = scalarSchema(m.fields[0]!.scalar!);
      const t = inner['type'];
      return { ...inner, type: [...(Array.isArray(t) ? t : [t as Json]), 'null'] };
    }
    return undefined;
  }

  function messageSchema(m: DescMessage): Obj {
    return wktSchema(m) ?? ref(m);
  }

  function singleSchema(f: DescField | { fieldKind: 'scalar' | 'enum' | 'message'; scalar?: number; enum?: DescEnum; message?: DescMessage }): Obj {
    if (f.fieldKind === 'enum') return f.enum!.typeName === 'google.protobuf.NullValue' ? { type: 'null' } : ref(f.enum!);
    if (f.fieldKind === 'message') return messageSchema(f.message!);
    return scalarSchema(f.scalar!);
  }

  function fieldSchema(f: DescField): Obj {
    switch (f.fieldKind) {
      case 'list':
        return {
          type: 'array',
          items:
            f.listKind === 'message' ? messageSchema(f.message) : f.listKind === 'enum' ? ref(f.enum) : scalarSchema(f.scalar),
        };
      case 'map':
        return {
          type: 'object',
          additionalProperties:
            f.mapKind === 'message' ? messageSchema(f.message) : f.mapKind === 'enum' ? ref(f.enum) : scalarSchema(f.scalar),
        };
      default:
        return singleSchema(f);
    }
  }

  function defineMessage(m: DescMessage): Obj {
    const properties: Obj = {};
    for (const f of m.fields) {
      const s = fieldSchema(f);
      properties[propName(f)] = f.deprecated ? { ...s, deprecated: true } : s;
    }
    const out: Obj = { type: 'object', title: m.name, properties, additionalProperties: false };
    const oneofs = m.oneofs.filter((x) => !x.fields.every((f) => f.proto.proto3Optional));
    if (oneofs.length > 0) {
      out['description'] = oneofs.map((x) => `At most one of ${x.fields.map(propName).join(', ')} (oneof ${x.name}).`).join(' ');
    }
    return out;
  }

  function defineEnum(e: DescEnum): Obj {
    if (o.enumsAsInts) return { type: 'integer', format: 'int32', title: e.name, enum: e.values.map((v) => v.number) };
    // Requests accept names or numbers; responses print names.
    return { title: e.name, anyOf: [{ type: 'string', enum: e.values.map((v) => v.name) }, { type: 'integer', format: 'int32' }] };
  }

  // --- operations --------------------------------------------------------
  const paths: Record<string, Obj> = {};
  const opIds = new Set<string>();
  for (const b of bindings) {
    const m = b.method;
    const pathParams: Obj[] = [];
    const openPath = templatePath(b, (name, multi, leaf) => {
      const schema: Obj = { ...singleSchema(leaf) };
      pathParams.push({
        name,
        in: 'path',
        required: true,
        schema,
        ...(multi ? { description: 'May contain "/" (a multi-segment variable).' } : {}),
      });
    });
    const bound = new Set(b.pathVars.map((v) => v.name));
    const query: Obj[] = [];
    if (b.body !== '*' && m.methodKind !== 'client_streaming' && m.methodKind !== 'bidi_streaming') {
      collectQuery(m.input, '', 0, new Set([m.input.typeName]));
    }
    function collectQuery(msg: DescMessage, prefix: string, depth: number, seen: Set<string>): void {
      for (const f of msg.fields) {
        const name = prefix + f.name;
        if (bound.has(name)) continue;
        if (depth === 0 && typeof b.body === 'object' && b.body === f) continue;
        // A field with a bound descendant still contributes its other leaves.
        if (f.fieldKind === 'message' && !wktSchema(f.message)) {
          if (depth + 1 < MAX_QUERY_DEPTH && !seen.has(f.message.typeName)) {
            collectQuery(f.message, `${name}.`, depth + 1, new Set([...seen, f.message.typeName]));
          }
          continue;
        }
        if (f.fieldKind === 'map') {
          query.push({ name: `${name}[key]`, in: 'query', description: `Map entry: ${name}[<key>]=<value>.`, schema: fieldSchema(f).additionalProperties as Json });
          continue;
        }
        if (f.fieldKind === 'list' && f.listKind === 'message' && !wktSchema(f.message)) continue;
        const schema = fieldSchema(f);
        query.push({
          name,
          in: 'query',
          required: false,
          schema,
          ...(f.fieldKind === 'list' ? { style: 'form', explode: true } : {}),
        });
      }
    }
    const op: Obj = {
      operationId: uniqueId(opIds, `${m.parent.name}_${m.name}`),
      tags: [m.parent.typeName],
      summary: `${m.parent.typeName}.${m.name}`,
      'x-grpc-method': `/${m.parent.typeName}/${m.name}`,
      parameters: [...pathParams, ...query],
      responses: {
        '200': okResponse(b),
        '400': { $ref: '#/components/responses/BadRequest' },
        default: { $ref: '#/components/responses/Error' },
      },
    };
    const body = requestBody(b);
    if (body) op['requestBody'] = body;
    if (m.deprecated) op['deprecated'] = true;
    const item = (paths[openPath] ??= {});
    const methods = b.httpMethod === '*' ? ['get', 'put', 'post', 'delete', 'patch'] : [b.httpMethod.toLowerCase()];
    for (const hm of methods) {
      if (!['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'].includes(hm)) {
        // OpenAPI has no slot for other custom methods: keep them visible as an extension.
        const ext = ((item[`x-${hm}`] as Obj | undefined) ?? {}) as Obj;
        item[`x-${hm}`] = { ...ext, ...op };
        continue;
      }
      if (!(hm in item)) item[hm] = hm === methods[0] ? op : { ...op, operationId: uniqueId(opIds, `${op['operationId']}_${hm}`) };
    }
  }

  function isHttpBody(m: DescMessage): boolean {
    return m.typeName === 'google.api.HttpBody';
  }

  function requestBody(b: Binding): Obj | undefined {
    if (b.body === 'none') return undefined;
    const m = b.method;
    const streaming = m.methodKind === 'client_streaming' || m.methodKind === 'bidi_streaming';
    let schema: Obj;
    if (b.body === '*') {
      if (isHttpBody(m.input)) return { required: true, content: { '*/*': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } } };
      schema = messageSchema(m.input);
    } else {
      if (b.body.fieldKind === 'message' && isHttpBody(b.body.message)) {
        return { required: true, content: { '*/*': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } } };
      }
      schema = fieldSchema(b.body);
    }
    if (streaming) {
      return {
        required: true,
        description: 'A client stream: a JSON array of messages, or NDJSON (one message per line).',
        content: { 'application/json': { schema: { type: 'array', items: schema } }, 'application/x-ndjson': { schema } },
      };
    }
    return { required: b.body === '*' || b.body.fieldKind === 'message' || b.body.fieldKind === 'list', content: { 'application/json': { schema } } };
  }

  function okResponse(b: Binding): Obj {
    const m = b.method;
    const out = b.responseBody ? b.responseBody : undefined;
    if ((out && out.fieldKind === 'message' && isHttpBody(out.message)) || (!out && isHttpBody(m.output))) {
      return { description: 'The raw body (google.api.HttpBody), with its own content type.', content: { '*/*': { schema: { type: 'string' } } } };
    }
    const schema = out ? fieldSchema(out) : messageSchema(m.output);
    if (m.methodKind === 'server_streaming' || m.methodKind === 'bidi_streaming') {
      return {
        description:
          'A server stream, by Accept: a JSON array (default), NDJSON or SSE. A failure after the first message ends the stream with {"error": Status}.',
        content: {
          'application/json': { schema: { type: 'array', items: { anyOf: [schema, { $ref: '#/components/schemas/StreamError' }] } } },
          'application/x-ndjson': { schema: { anyOf: [schema, { $ref: '#/components/schemas/StreamError' }] } },
          'text/event-stream': { schema: { type: 'string' } },
        },
      };
    }
    return { description: 'OK', content: { 'application/json': { schema } } };
  }

  // Drain schema definitions (refs found while defining add more).
  while (pending.length > 0) {
    const d = pending.shift()!;
    if (d.typeName === STATUS) continue;
    schemas[d.typeName] = d.kind === 'enum' ? defineEnum(d) : defineMessage(d);
  }
  schemas[STATUS] = {
    type: 'object',
    title: 'Status',
    description: 'google.rpc.Status: the error body of every failed call (docs/transcoding.md, Errors).',
    properties: {
      code: { type: 'integer', format: 'int32', description: 'The google.rpc.Code.' },
      message: { type: 'string' },
      details: { type: 'array', items: wktSchema({ typeName: ANY } as DescMessage)! },
    },
    required: ['code', 'message'],
  };
  schemas['StreamError'] = {
    type: 'object',
    description: 'The terminal frame of a stream that failed after its first message.',
    properties: { error: { $ref: `#/components/schemas/${STATUS}` } },
    required: ['error'],
  };

  const tags = services.map((s): Obj => ({ name: s.typeName }));
  return {
    openapi: '3.1.0',
    info: { title: o.title, version: o.version, description: 'Generated by Outrigger from the gRPC descriptors and their google.api.http bindings.' },
    tags,
    paths: sortKeys(paths),
    components: {
      schemas: sortKeys(schemas),
      responses: {
        Error: {
          description: 'A gRPC error, mapped to its HTTP status (404 NOT_FOUND, 409 ALREADY_EXISTS, 503 UNAVAILABLE, 504 DEADLINE_EXCEEDED, …).',
          content: { 'application/json': { schema: { $ref: `#/components/schemas/${STATUS}` } } },
        },
        BadRequest: {
          description: 'INVALID_ARGUMENT: a malformed or unknown field; details hold a google.rpc.BadRequest naming it.',
          content: { 'application/json': { schema: { $ref: `#/components/schemas/${STATUS}` } } },
        },
      },
    },
  };
}

/**
 * `/v1/{name=projects/*}/items/*:verb` → `/v1/{name}/items/{_1}:verb`: every
 * variable is one OpenAPI path parameter (multi-segment ones may hold "/"),
 * an unnamed wildcard gets a positional name.
 */
export function templatePath(
  b: Binding,
  onVar: (name: string, multi: boolean, leaf: DescField) => void,
): string {
  const t = b.template;
  const parts: string[] = [];
  let anon = 0;
  for (let i = 0; i < t.segments.length; i++) {
    const v = b.pathVars.find((x) => x.start === i);
    if (v) {
      parts.push(`{${v.name}}`);
      onVar(v.name, v.multi, v.fields[v.fields.length - 1]!);
      i = Math.max(i, v.end - 1);
      continue;
    }
    const s = t.segments[i]!;
    if (s.kind === 'literal') parts.push(s.value);
    else {
      const name = `_${++anon}`;
      parts.push(`{${name}}`);
      onVar(name, s.kind === 'multi', { fieldKind: 'scalar', scalar: 9 } as DescField);
    }
  }
  return `/${parts.join('/')}${t.verb !== undefined ? `:${t.verb}` : ''}`;
}

function uniqueId(used: Set<string>, id: string): string {
  let out = id;
  for (let n = 2; used.has(out); n++) out = `${id}_${n}`;
  used.add(out);
  return out;
}

function sortKeys<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * Merges the documents of several transcoding routes (one listener's) into
 * one: paths and schemas united (a path two routes bind keeps the first
 * route's operations; schemas are keyed by full message name, so equal names
 * are the same message), tags united.
 */
export function mergeOpenApi(docs: readonly Obj[], title: string, version: string): Obj {
  if (docs.length === 1) return { ...docs[0]!, info: { ...(docs[0]!['info'] as Obj), title } };
  const paths: Record<string, Obj> = {};
  const schemas: Record<string, Obj> = {};
  const tags = new Map<string, Json>();
  let responses: Json = {};
  for (const d of docs) {
    for (const [p, item] of Object.entries(d['paths'] as Record<string, Obj>)) paths[p] ??= item;
    const comp = d['components'] as { schemas: Record<string, Obj>; responses: Json };
    for (const [k, v] of Object.entries(comp.schemas)) schemas[k] ??= v;
    responses = comp.responses;
    for (const t of d['tags'] as Obj[]) tags.set(t['name'] as string, t);
  }
  const first = docs[0]!;
  return {
    openapi: first['openapi'] as Json,
    info: { ...(first['info'] as Obj), title, version },
    tags: [...tags.values()],
    paths: sortKeys(paths),
    components: { schemas: sortKeys(schemas), responses },
  };
}
