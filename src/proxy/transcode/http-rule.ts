import { getOption, type DescField, type DescMessage, type DescMethod, type DescService } from '@bufbuild/protobuf';
import { http } from '../../gen/google/api/annotations_pb.js';
import type { HttpRule } from '../../gen/google/api/http_pb.js';
import { parseRouteTemplate, type ParsedTemplate } from '../router/route-template.js';

/**
 * One google.api.http binding of one method, compiled: the parsed template
 * (the router's parser, so routing and transcoding share one grammar), the
 * resolved field chains of its path variables, and where the body goes.
 */
export interface Binding {
  readonly method: DescMethod;
  /** Upper-case HTTP method, or "*" for `custom { kind: "*" }`. */
  readonly httpMethod: string;
  readonly template: ParsedTemplate;
  readonly pathVars: readonly PathVar[];
  /** 'none': no body; '*': the whole message; else the top-level field the body fills. */
  readonly body: 'none' | '*' | DescField;
  readonly responseBody: DescField | undefined;
  /** A description for errors and OpenAPI, e.g. "GET /v1/shelves/{shelf}". */
  readonly label: string;
}

export interface PathVar {
  /** The dotted proto field path as written in the template. */
  readonly name: string;
  /** Field chain from the request message to the leaf. */
  readonly fields: readonly DescField[];
  /** Template segments [start, end) the variable covers. */
  readonly start: number;
  readonly end: number;
  /** Covers more than one segment (or `**`): '/' stays in the value. */
  readonly multi: boolean;
}

export class RuleError extends Error {}

/** Every binding (main and additional) of the given services, in declaration order. */
export function compileBindings(services: readonly DescService[]): Binding[] {
  const out: Binding[] = [];
  for (const svc of services) {
    for (const m of svc.methods) {
      const rule = getOption(m, http);
      if (!rule || rule.pattern.case === undefined) continue;
      out.push(compileRule(m, rule));
      // additional_bindings nest one level only (http.proto): deeper ones are an error.
      for (const extra of rule.additionalBindings) {
        if (extra.additionalBindings.length > 0) {
          throw new RuleError(`${m.parent.typeName}.${m.name}: additional_bindings may not nest`);
        }
        out.push(compileRule(m, extra));
      }
    }
  }
  return out;
}

function compileRule(m: DescMethod, rule: HttpRule): Binding {
  const where = `${m.parent.typeName}.${m.name}`;
  const fail = (msg: string): never => {
    throw new RuleError(`${where}: ${msg}`);
  };
  let httpMethod: string;
  let path: string;
  const p = rule.pattern;
  switch (p.case) {
    case 'custom':
      httpMethod = p.value.kind.toUpperCase();
      path = p.value.path;
      break;
    case undefined:
      return fail('no pattern');
    default:
      httpMethod = p.case.toUpperCase();
      path = p.value;
  }
  const template = parseRouteTemplate(path);
  if (typeof template === 'string') return fail(`invalid template "${path}": ${template}`);
  const pathVars = template.captures.map((c): PathVar => {
    const fields = resolveFieldPath(m.input, c.name.split('.'), true) ?? fail(`unknown field "${c.name}" in "${path}"`);
    const leaf = fields[fields.length - 1]!;
    if (leaf.fieldKind !== 'scalar' && leaf.fieldKind !== 'enum' && !isWrapperField(leaf)) {
      fail(`path variable "${c.name}" must be a non-repeated primitive field`);
    }
    const multi = c.end - c.start > 1 || template.segments.slice(c.start, c.end).some((s) => s.kind === 'multi');
    return { name: c.name, fields, start: c.start, end: c.end, multi };
  });
  let body: Binding['body'] = 'none';
  if (rule.body === '*') body = '*';
  else if (rule.body !== '') {
    const f = m.input.fields.find((x) => x.name === rule.body) ?? fail(`body field "${rule.body}" is not a top-level field`);
    body = f;
  }
  if (m.methodKind === 'client_streaming' || m.methodKind === 'bidi_streaming') {
    if (body === 'none') fail('a client-streaming method needs a body');
  }
  let responseBody: DescField | undefined;
  if (rule.responseBody !== '') {
    responseBody =
      m.output.fields.find((x) => x.name === rule.responseBody) ?? fail(`response_body "${rule.responseBody}" is not a top-level field`);
  }
  return { method: m, httpMethod, template, pathVars, body, responseBody, label: `${httpMethod} ${path}` };
}

/**
 * Resolves a dotted field path. Path templates name proto fields; query
 * parameters may use the proto name or the json_name (`allowJson`).
 * Returns undefined when a step does not exist or crosses a non-message.
 */
export function resolveFieldPath(
  msg: DescMessage,
  parts: readonly string[],
  protoOnly = false,
): DescField[] | undefined {
  const chain: DescField[] = [];
  let cur: DescMessage | undefined = msg;
  for (const part of parts) {
    if (!cur) return undefined;
    const f: DescField | undefined = cur.fields.find((x) => x.name === part || (!protoOnly && x.jsonName === part));
    if (!f) return undefined;
    chain.push(f);
    cur = f.fieldKind === 'message' && !isWellKnown(f.message) ? f.message : undefined;
  }
  return chain;
}

export function isWellKnown(m: DescMessage): boolean {
  return m.typeName.startsWith('google.protobuf.');
}

function isWrapperField(f: DescField): boolean {
  return f.fieldKind === 'message' && /^google\.protobuf\.\w+Value$/.test(f.message.typeName) && f.message.typeName !== 'google.protobuf.Value';
}
