/**
 * Path templates in the google.api.http syntax (the same one the transcoder
 * uses), parsed once per config version:
 *
 *   Template = "/" | "/" Segment { "/" Segment } [ ":" Verb ]
 *   Segment  = "*" | "**" | LITERAL | "{" FieldPath [ "=" Sub { "/" Sub } ] "}"
 *   Sub      = "*" | "**" | LITERAL          (no nested variables)
 *
 * `**` matches zero or more trailing segments, so it may only be the last
 * segment of the whole template. The verb is the text after the last ":" of
 * the last segment (outside braces); a ":" in an earlier segment is literal.
 */

export type TemplateSegment =
  | { readonly kind: 'literal'; readonly value: string }
  /** `*`, `{name}` or one `*` of a sub-template: exactly one non-empty segment. */
  | { readonly kind: 'single' }
  /** `**`: zero or more segments; always the last one. */
  | { readonly kind: 'multi' };

/** A variable covers template segments [start, end); `end` is exclusive. */
export interface TemplateCapture {
  readonly name: string;
  readonly start: number;
  readonly end: number;
}

export interface ParsedTemplate {
  readonly source: string;
  readonly segments: readonly TemplateSegment[];
  readonly captures: readonly TemplateCapture[];
  /** Custom verb without its ":", or undefined. */
  readonly verb: string | undefined;
}

/** Deeper templates are almost certainly a mistake, and the depth bounds the matcher's recursion. */
export const MAX_TEMPLATE_SEGMENTS = 64;

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Characters that are syntax in a template (or cannot occur in a raw path) and so never literal. */
const NOT_LITERAL = /[{}*=?#\s]/;

class TemplateSyntaxError extends Error {}

function fail(message: string): never {
  throw new TemplateSyntaxError(message);
}

/** Parses a template; returns an error message instead of throwing. */
export function parseRouteTemplate(source: string): ParsedTemplate | string {
  try {
    return parse(source);
  } catch (e) {
    if (e instanceof TemplateSyntaxError) return e.message;
    throw e;
  }
}

/** For the config validator: an error message, or undefined when the template is valid. */
export function validateRouteTemplate(t: string): string | undefined {
  const r = parseRouteTemplate(t);
  return typeof r === 'string' ? r : undefined;
}

function parse(source: string): ParsedTemplate {
  if (!source.startsWith('/')) fail('template must start with "/"');
  // "/" is the root: the path "/" is one empty segment, so it is an empty literal.
  if (source === '/') return { source, segments: [{ kind: 'literal', value: '' }], captures: [], verb: undefined };
  const { body, verb } = splitVerb(source);
  const raw = splitSegments(body.slice(1));
  const segments: TemplateSegment[] = [];
  const captures: TemplateCapture[] = [];
  const names = new Set<string>();
  for (const seg of raw) {
    if (seg.startsWith('{')) {
      if (!seg.endsWith('}')) fail(`segment "${seg}" mixes a variable with literal text`);
      const inner = seg.slice(1, -1);
      const eq = inner.indexOf('=');
      const name = eq < 0 ? inner : inner.slice(0, eq);
      checkFieldPath(name);
      if (names.has(name)) fail(`variable "${name}" appears twice`);
      names.add(name);
      const start = segments.length;
      if (eq < 0) segments.push({ kind: 'single' });
      else {
        const sub = inner.slice(eq + 1);
        if (sub === '') fail(`variable "${name}" has an empty sub-template`);
        for (const part of sub.split('/')) segments.push(plainSegment(part, `variable "${name}"`));
      }
      captures.push({ name, start, end: segments.length });
    } else {
      segments.push(plainSegment(seg, 'template'));
    }
  }
  if (segments.length > MAX_TEMPLATE_SEGMENTS) fail(`more than ${MAX_TEMPLATE_SEGMENTS} segments`);
  for (let i = 0; i < segments.length - 1; i++) {
    if (segments[i]!.kind === 'multi') fail('"**" must be the last segment');
  }
  return { source, segments, captures, verb };
}

/** The verb is after the last ":" that follows the last "/" outside braces. */
function splitVerb(source: string): { body: string; verb: string | undefined } {
  let depth = 0;
  let lastSlash = -1;
  let lastColon = -1;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '{') depth++;
    else if (c === '}') depth--;
    else if (depth === 0 && c === '/') lastSlash = i;
    else if (depth === 0 && c === ':') lastColon = i;
  }
  if (lastColon < lastSlash) return { body: source, verb: undefined };
  const verb = source.slice(lastColon + 1);
  if (verb === '') fail('empty custom verb after ":"');
  if (NOT_LITERAL.test(verb) || verb.includes('/')) fail(`invalid custom verb "${verb}"`);
  return { body: source.slice(0, lastColon), verb };
}

/** Splits on "/" outside braces, checking brace balance on the way. */
function splitSegments(body: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i <= body.length; i++) {
    const c = body[i];
    if (c === '{') {
      if (depth > 0) fail('nested variables are not allowed');
      depth++;
    } else if (c === '}') {
      if (depth === 0) fail('unmatched "}"');
      depth--;
    } else if (i === body.length || (c === '/' && depth === 0)) {
      if (i === body.length && depth > 0) fail('unclosed "{"');
      const seg = body.slice(start, i);
      if (seg === '') fail(out.length === 0 && i === body.length ? 'template needs at least one segment' : 'empty segment ("//" or trailing "/")');
      out.push(seg);
      start = i + 1;
    }
  }
  return out;
}

function plainSegment(seg: string, where: string): TemplateSegment {
  if (seg === '*') return { kind: 'single' };
  if (seg === '**') return { kind: 'multi' };
  if (seg === '') fail(`empty segment in ${where}`);
  if (seg.includes('*')) fail(`"*" must be a whole segment (in "${seg}")`);
  if (NOT_LITERAL.test(seg)) fail(`invalid character in literal segment "${seg}"`);
  return { kind: 'literal', value: seg };
}

function checkFieldPath(name: string): void {
  if (name === '') fail('variable without a name');
  for (const part of name.split('.')) {
    if (!IDENT.test(part)) fail(`invalid variable name "${name}"`);
  }
  // Params are returned in a plain object; this one key would set its prototype.
  if (name === '__proto__') fail('variable name "__proto__" is reserved');
}
