/**
 * Header value templates of the headerMutation filter (docs/filters.md#headermutation):
 * literal text with `%VARIABLE%` or `%VARIABLE(arg)%` references and `%%` for a
 * literal `%`. Parsed here, in core, because both the config validator (which
 * never imports the proxy) and the filter's compiler read them.
 */
export type TemplatePart = string | { readonly variable: TemplateVariable; readonly arg?: string };

export const TEMPLATE_VARIABLES = ['DOWNSTREAM_REMOTE_ADDRESS', 'REQ', 'ROUTE', 'CLUSTER', 'START_TIME', 'REQUEST_ID', 'UPSTREAM_HOST', 'PROTOCOL', 'HOSTNAME'] as const;
export type TemplateVariable = (typeof TEMPLATE_VARIABLES)[number];

/** Variables that take an argument (`%REQ(x-user)%`); the others take none. */
const WITH_ARG: ReadonlySet<string> = new Set(['REQ']);
const KNOWN: ReadonlySet<string> = new Set(TEMPLATE_VARIABLES);

/** Parses a template; throws with a message naming the problem (an unknown variable, a missing `%`). */
export function parseHeaderTemplate(s: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let lit = '';
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c !== '%') {
      lit += c;
      i++;
      continue;
    }
    if (s[i + 1] === '%') {
      lit += '%';
      i += 2;
      continue;
    }
    const end = s.indexOf('%', i + 1);
    if (end < 0) throw new Error(`unterminated variable at ${i}: write %% for a literal %`);
    const body = s.slice(i + 1, end);
    const m = /^([A-Z_]+)(?:\(([^()]*)\))?$/.exec(body);
    if (!m || !KNOWN.has(m[1]!)) throw new Error(`unknown variable %${body}% (known: ${TEMPLATE_VARIABLES.join(', ')})`);
    const name = m[1] as TemplateVariable;
    const arg = m[2];
    if (WITH_ARG.has(name) && (arg === undefined || arg.trim() === '')) throw new Error(`%${name}(name)% needs a header name`);
    if (!WITH_ARG.has(name) && arg !== undefined) throw new Error(`%${name}% takes no argument`);
    if (lit !== '') parts.push(lit);
    lit = '';
    parts.push(arg === undefined ? { variable: name } : { variable: name, arg: arg.trim().toLowerCase() });
    i = end + 1;
  }
  if (lit !== '' || parts.length === 0) parts.push(lit);
  return parts;
}
