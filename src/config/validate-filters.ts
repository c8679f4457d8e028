import type { Duration } from '@bufbuild/protobuf/wkt';
import type { FilterOverride, HttpFilter } from '../gen/outrigger/config/v1/filters_pb.js';
import type { ApiKeys } from '../gen/outrigger/filters/api_keys/v1/api_keys_pb.js';
import type { GlobalRateLimit } from '../gen/outrigger/filters/global_rate_limit/v1/global_rate_limit_pb.js';
import type { JwtAuthn } from '../gen/outrigger/filters/jwt_authn/v1/jwt_authn_pb.js';
import type { LocalRateLimit, RateLimit } from '../gen/outrigger/filters/local_rate_limit/v1/local_rate_limit_pb.js';
import type { Permission, Principal, Rbac } from '../gen/outrigger/filters/rbac/v1/rbac_pb.js';
import { compileCondition } from './cel-condition.js';
import { parseCidr } from './net-names.js';
import { checkCache, checkCompression, checkCors, checkHeaderMutation, checkSecurityHeaders } from './validate-traffic-filters.js';
/** Reports one problem at a path (validate-routes.ts' Report; not imported, as that module imports this one). */
type Report = (path: string, message: string) => void;

/**
 * Load-time checks of filter configs (docs/filters.md), with field paths: a
 * listener's `httpFilters` and the typed overrides of virtual hosts and
 * routes. What needs the filesystem or the network (a JWKS file, a key file)
 * is checked when the data path compiles the config, which rejects the
 * version the same way.
 */
export function checkHttpFilters(filters: readonly HttpFilter[], at: string, report: Report): void {
  const names = new Map<string, number>();
  filters.forEach((f, i) => {
    const p = `${at}[${i}]`;
    if (f.config.case === undefined) return report(p, 'set one filter config (jwtAuthn, apiKeys, rbac, localRateLimit, globalRateLimit, cors, headerMutation, compression, securityHeaders, plugin)');
    const name = f.name || f.config.case;
    const first = names.get(name);
    if (first !== undefined) report(f.name ? `${p}.name` : p, `filter name "${name}" is already used by ${at}[${first}]; give one of them a name`);
    else names.set(name, i);
    checkFilterConfig(f.config, `${p}.${f.config.case}`, report);
  });
}

/** A virtual host's or route's `filters` map. */
export function checkFilterOverrides(overrides: Record<string, FilterOverride>, at: string, report: Report): void {
  for (const [name, o] of Object.entries(overrides)) {
    const p = `${at}.${name}`;
    const ov = o.override;
    if (ov.case === undefined) report(p, 'set disabled: true or a config of the filter');
    else if (ov.case === 'disabled') {
      if (!ov.value) report(`${p}.disabled`, 'only disabled: true means something; remove the override instead');
    } else checkFilterConfig(ov, `${p}.${ov.case}`, report);
  }
}

type AnyConfig = Exclude<HttpFilter['config'] | FilterOverride['override'], { case: undefined } | { case: 'disabled' }>;

function checkFilterConfig(c: AnyConfig, at: string, report: Report): void {
  switch (c.case) {
    case 'jwtAuthn':
      return checkJwtAuthn(c.value, at, report);
    case 'apiKeys':
      return checkApiKeys(c.value, at, report);
    case 'localRateLimit':
      return checkLocalRateLimit(c.value, at, report);
    case 'rbac':
      return checkRbac(c.value, at, report);
    case 'globalRateLimit':
      return checkGlobalRateLimit(c.value, at, report);
    case 'cors':
      return checkCors(c.value, at, report);
    case 'headerMutation':
      return checkHeaderMutation(c.value, at, report);
    case 'compression':
      return checkCompression(c.value, at, report);
    case 'securityHeaders':
      return checkSecurityHeaders(c.value, at, report);
    case 'cache':
      return checkCache(c.value, at, report);
    case 'plugin':
      // The module is imported, and its config checked by the module's validate, when the data path applies the config (docs/plugins.md).
      if (c.value.module === '') report(`${at}.module`, 'required: a path relative to the config file, or a package name');
      return;
  }
}

function checkJwtAuthn(j: JwtAuthn, at: string, report: Report): void {
  if (j.providers.length === 0) report(`${at}.providers`, 'at least one provider is required');
  const names = new Set<string>();
  j.providers.forEach((p, i) => {
    const pp = `${at}.providers[${i}]`;
    if (p.name === '') report(`${pp}.name`, 'required');
    else if (names.has(p.name)) report(`${pp}.name`, `duplicate provider "${p.name}"`);
    names.add(p.name);
    switch (p.jwks.case) {
      case 'remoteJwks':
        if (!/^https?:\/\/[^/]/.test(p.jwks.value.uri)) report(`${pp}.remoteJwks.uri`, 'must be an http:// or https:// URL');
        checkPositive(p.jwks.value.cacheDuration, `${pp}.remoteJwks.cacheDuration`, report);
        checkPositive(p.jwks.value.timeout, `${pp}.remoteJwks.timeout`, report);
        break;
      case 'localJwks': {
        const src = p.jwks.value.source;
        if (src.case === undefined) report(`${pp}.localJwks`, 'set inline or file');
        else if (src.case === 'inline') {
          const bad = jwksProblem(src.value);
          if (bad) report(`${pp}.localJwks.inline`, bad);
        } else if (src.value === '') report(`${pp}.localJwks.file`, 'required');
        break;
      }
      default:
        report(pp, 'set remoteJwks or localJwks');
    }
    p.fromHeaders.forEach((h, k) => h.name === '' && report(`${pp}.fromHeaders[${k}].name`, 'required'));
    p.claimToHeaders.forEach((c, k) => {
      if (c.claim === '') report(`${pp}.claimToHeaders[${k}].claim`, 'required');
      if (c.header === '') report(`${pp}.claimToHeaders[${k}].header`, 'required');
    });
    if (p.clockSkew && (p.clockSkew.seconds < 0n || p.clockSkew.nanos < 0)) report(`${pp}.clockSkew`, 'must not be negative');
  });
  const r = j.requires;
  if (!r) return;
  const rp = `${at}.requires`;
  const set = [r.providerName !== '', r.anyOf.length > 0, r.allOf.length > 0].filter(Boolean).length;
  if (set !== 1) report(rp, 'set exactly one of providerName, anyOf, allOf');
  const known = (n: string, p: string) => names.has(n) || report(p, `unknown provider "${n}"; providers: ${[...names].join(', ')}`);
  if (r.providerName !== '') known(r.providerName, `${rp}.providerName`);
  r.anyOf.forEach((n, i) => known(n, `${rp}.anyOf[${i}]`));
  r.allOf.forEach((n, i) => known(n, `${rp}.allOf[${i}]`));
}

function jwksProblem(text: string): string | undefined {
  try {
    const doc = JSON.parse(text) as { keys?: unknown };
    return Array.isArray(doc?.keys) ? undefined : 'not a JWKS document: no "keys" array';
  } catch (err) {
    return `not JSON: ${(err as Error).message}`;
  }
}

function checkApiKeys(a: ApiKeys, at: string, report: Report): void {
  if (a.keys.length === 0 && a.file === '') report(at, 'set keys, file or both');
  const names = new Set<string>();
  a.keys.forEach((k, i) => {
    const kp = `${at}.keys[${i}]`;
    if (k.name === '') report(`${kp}.name`, 'required');
    else if (names.has(k.name)) report(`${kp}.name`, `duplicate key name "${k.name}"`);
    names.add(k.name);
    if (!/^[0-9a-fA-F]{64}$/.test(k.sha256)) report(`${kp}.sha256`, 'must be 64 hex digits (the SHA-256 of the key, not the key)');
  });
  if (a.header !== '' && !/^[!#$%&'*+.^_`|~0-9a-zA-Z-]+$/.test(a.header)) report(`${at}.header`, 'not a valid header name');
}

function checkGlobalRateLimit(g: GlobalRateLimit, at: string, report: Report): void {
  if (!g.redis) report(`${at}.redis`, 'required: a global limit needs redis.url (the external rate-limit service is not supported yet)');
  else if (!/^rediss?:\/\/[^/]/.test(g.redis.url)) report(`${at}.redis.url`, 'must be a redis:// or rediss:// URL');
  checkPositive(g.decisionTimeout, `${at}.decisionTimeout`, report);
  checkLimits(g.limits, `${at}.limits`, report);
}

function checkLocalRateLimit(l: LocalRateLimit, at: string, report: Report): void {
  checkLimits(l.limits, `${at}.limits`, report);
}

/** `limits[]` of a rate-limit filter (shared by the local and the global one). */
export function checkLimits(limits: readonly RateLimit[], at: string, report: Report): void {
  if (limits.length === 0) report(at, 'at least one limit is required');
  limits.forEach((l, i) => {
    const lp = `${at}[${i}]`;
    const k = l.key?.key;
    if (k?.case === undefined) report(`${lp}.key`, 'set one of remoteAddress, header, principal, route, constant');
    else if (k.case === 'header' && k.value.name === '') report(`${lp}.key.header.name`, 'required');
    const a = l.algorithm;
    const need = (ok: boolean, p: string) => ok || report(`${lp}.${a.case}.${p}`, 'must be greater than 0');
    switch (a.case) {
      case 'tokenBucket':
        need(a.value.maxTokens > 0, 'maxTokens');
        need(positive(a.value.fillInterval), 'fillInterval');
        break;
      case 'fixedWindow':
      case 'slidingWindow':
        need(a.value.requests > 0, 'requests');
        need(positive(a.value.window), 'window');
        break;
      default:
        report(lp, 'set one of tokenBucket, fixedWindow, slidingWindow');
    }
  });
}

function positive(d: Duration | undefined): boolean {
  return d !== undefined && (d.seconds > 0n || (d.seconds === 0n && d.nanos > 0));
}

function checkPositive(d: Duration | undefined, at: string, report: Report): void {
  if (d !== undefined && !positive(d)) report(at, 'must be greater than 0');
}

function checkRbac(r: Rbac, at: string, report: Report): void {
  for (const [name, p] of Object.entries(r.policies)) {
    const pp = `${at}.policies.${name}`;
    if (p.permissions.length === 0) report(`${pp}.permissions`, 'at least one is required (use {any: true})');
    if (p.principals.length === 0) report(`${pp}.principals`, 'at least one is required (use {any: true})');
    p.permissions.forEach((x, i) => checkPermission(x, `${pp}.permissions[${i}]`, report));
    p.principals.forEach((x, i) => checkPrincipal(x, `${pp}.principals[${i}]`, report));
    if (p.condition !== '') {
      const c = compileCondition(p.condition);
      if (!c.ok) report(`${pp}.condition`, c.error);
    }
  }
}

export const PERMISSION_FIELDS = ['any', 'path', 'methods', 'grpc', 'header', 'and', 'or', 'not'];
export const PRINCIPAL_FIELDS = ['any', 'jwtClaim', 'apiKey', 'remoteIp', 'authenticated', 'and', 'or', 'not'];

/**
 * The one set field of a rule whose fields are exclusive without a proto
 * oneof (lists cannot be in one), or a message saying what is wrong.
 */
export function exclusiveField(msg: object, fields: readonly string[]): { field: string } | string {
  const set = fields.filter((f) => {
    const v = (msg as Record<string, unknown>)[f];
    return Array.isArray(v) ? v.length > 0 : v !== undefined && v !== false && v !== '';
  });
  if (set.length === 1) return { field: set[0]! };
  return `set exactly one of ${fields.join(', ')}${set.length > 1 ? ` (got ${set.join(', ')})` : ''}`;
}

function oneOf(msg: object, fields: readonly string[], at: string, report: Report): string | undefined {
  const r = exclusiveField(msg, fields);
  if (typeof r !== 'string') return r.field;
  report(at, r);
  return undefined;
}

function checkPermission(p: Permission, at: string, report: Report): void {
  switch (oneOf(p, PERMISSION_FIELDS, at, report)) {
    case 'path':
      if (p.path!.match.case === undefined) report(`${at}.path`, 'set exact, prefix or template');
      else if (p.path!.match.case === 'template' && !p.path!.match.value.startsWith('/')) report(`${at}.path.template`, 'must start with "/"');
      break;
    case 'grpc':
      if (p.grpc!.service === '') report(`${at}.grpc.service`, 'required');
      break;
    case 'header':
      if (p.header!.name === '') report(`${at}.header.name`, 'required');
      break;
    case 'and':
      p.and.forEach((x, i) => checkPermission(x, `${at}.and[${i}]`, report));
      break;
    case 'or':
      p.or.forEach((x, i) => checkPermission(x, `${at}.or[${i}]`, report));
      break;
    case 'not':
      checkPermission(p.not!, `${at}.not`, report);
      break;
  }
}

function checkPrincipal(p: Principal, at: string, report: Report): void {
  switch (oneOf(p, PRINCIPAL_FIELDS, at, report)) {
    case 'jwtClaim':
      if (p.jwtClaim!.name === '') report(`${at}.jwtClaim.name`, 'required');
      if (p.jwtClaim!.value === '' && p.jwtClaim!.values.length === 0) report(`${at}.jwtClaim`, 'set value or values');
      break;
    case 'remoteIp': {
      const c = parseCidr(p.remoteIp!.cidr);
      if (typeof c === 'string') report(`${at}.remoteIp.cidr`, c);
      break;
    }
    case 'and':
      p.and.forEach((x, i) => checkPrincipal(x, `${at}.and[${i}]`, report));
      break;
    case 'or':
      p.or.forEach((x, i) => checkPrincipal(x, `${at}.or[${i}]`, report));
      break;
    case 'not':
      checkPrincipal(p.not!, `${at}.not`, report);
      break;
  }
}
