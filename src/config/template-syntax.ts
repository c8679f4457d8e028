/**
 * Syntax check of a path template (the google.api.http grammar):
 *
 *   Template  = "/" | "/" Segments [ ":" Verb ]
 *   Segments  = Segment { "/" Segment }
 *   Segment   = "*" | "**" | Literal | Variable
 *   Variable  = "{" FieldPath [ "=" Segments ] "}"
 *   FieldPath = Ident { "." Ident }
 *
 * `**` may only be the last segment, variables do not nest, each name appears
 * once, and there are at most 64 segments. The verb is the text after the last
 * ":" of the last segment (outside braces); a ":" elsewhere is literal text.
 * These are the router's rules (docs/routing.md): this check exists so that
 * what validates also compiles, without config importing the proxy. The
 * router compiles templates itself, once per config version.
 *
 * Returns undefined when the template is valid, else the reason.
 */
export function checkPathTemplate(template: string): string | undefined {
  if (!template.startsWith('/')) return 'must start with "/"';
  if (template === '/') return undefined;
  let body = template.slice(1);
  const verbAt = verbColon(template);
  if (verbAt >= 0) {
    const verb = template.slice(verbAt + 1);
    if (!VERB_RE.test(verb)) return verb === '' ? 'empty custom verb after ":"' : `invalid verb ":${verb}"`;
    body = template.slice(1, verbAt);
    if (body === '') return 'a verb needs a path before it';
  }
  return new Parser(body).run();
}

export const MAX_TEMPLATE_SEGMENTS = 64;

const VERB_RE = /^[^/{}*=?#\s]+$/;
const FIELD_PATH_RE = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/** Index of the last ":" after the last "/", both outside braces; -1 when there is no verb. */
function verbColon(s: string): number {
  let depth = 0;
  let lastSlash = -1;
  let lastColon = -1;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '{') depth++;
    else if (c === '}') depth--;
    else if (depth === 0 && c === '/') lastSlash = i;
    else if (depth === 0 && c === ':') lastColon = i;
  }
  return lastColon > lastSlash ? lastColon : -1;
}

class Parser {
  private i = 0;
  private sawDoubleStar = false;
  private count = 0;
  private readonly names = new Set<string>();

  constructor(private readonly s: string) {}

  run(): string | undefined {
    const err = this.segments(false);
    if (err) return err;
    if (this.i < this.s.length) return `unexpected "${this.s[this.i]}" at offset ${this.i + 1}`;
    return undefined;
  }

  private segments(inVariable: boolean): string | undefined {
    for (;;) {
      const err = this.segment(inVariable);
      if (err) return err;
      if (this.s[this.i] !== '/') return undefined;
      this.i++;
    }
  }

  private segment(inVariable: boolean): string | undefined {
    const at = this.i + 1; // 0-based offset in the template (body starts after the leading "/")
    if (this.sawDoubleStar) return `"**" must be the last segment`;
    if (++this.count > MAX_TEMPLATE_SEGMENTS) return `more than ${MAX_TEMPLATE_SEGMENTS} segments`;
    const c = this.s[this.i];
    if (c === '{') {
      if (inVariable) return `nested variable at offset ${at}`;
      return this.variable();
    }
    if (c === '*') {
      if (this.s[this.i + 1] === '*') {
        this.i += 2;
        this.sawDoubleStar = true;
      } else {
        this.i++;
      }
      if (this.i < this.s.length && this.s[this.i] !== '/' && this.s[this.i] !== '}') {
        return `"*" must be a whole segment (offset ${at})`;
      }
      return undefined;
    }
    const start = this.i;
    while (this.i < this.s.length && !'/{}*='.includes(this.s[this.i]!)) this.i++;
    const lit = this.s.slice(start, this.i);
    if (lit === '') return c === undefined || c === '/' ? `empty segment at offset ${at}` : `unexpected "${c}" at offset ${at}`;
    if (/[?#\s]/.test(lit)) return `invalid characters in segment "${lit}"`;
    return undefined;
  }

  private variable(): string | undefined {
    const at = this.i + 1;
    this.i++; // "{"
    const start = this.i;
    while (this.i < this.s.length && !'=}'.includes(this.s[this.i]!)) this.i++;
    const name = this.s.slice(start, this.i);
    if (!FIELD_PATH_RE.test(name)) return `invalid variable name "${name}" at offset ${at}`;
    if (this.names.has(name)) return `variable "${name}" appears twice`;
    this.names.add(name);
    if (this.s[this.i] === '=') {
      this.i++;
      this.count--; // the variable's segments are counted, not the variable itself

      const err = this.segments(true);
      if (err) return err;
    }
    if (this.s[this.i] !== '}') return `unclosed variable "{${name}" at offset ${at}`;
    this.i++;
    return undefined;
  }
}
