import { BlockList, isIP } from 'node:net';
import type { HeaderMatch, PathMatch, Permission, Principal } from '../../../gen/outrigger/filters/rbac/v1/rbac_pb.js';
import type { Downstream } from '../../downstream/downstream.js';
import { claimAt } from '../jwt-authn/jwt-authn-filter.js';
import { parseCidr } from '../../../config/net-names.js';
import { principalMatcher } from '../../../core/spiffe.js';
import { PERMISSION_FIELDS, PRINCIPAL_FIELDS, exclusiveField } from '../../../config/validate-filters.js';

/** A compiled permission or principal: does the request match? */
export type Matcher = (ds: Downstream, path: string) => boolean;

const ANY: Matcher = () => true;

/** `at`: the field path for errors (a rule needs exactly one field). */
export function compilePermission(p: Permission, at: string): Matcher {
  const set = one(p, PERMISSION_FIELDS, at);
  switch (set) {
    case 'any':
      return ANY;
    case 'path':
      return compilePath(p.path!, `${at}.path`);
    case 'methods': {
      const ms = new Set(p.methods.map((m) => m.toUpperCase()));
      return (ds) => ms.has(ds.method);
    }
    case 'grpc': {
      const g = p.grpc!;
      if (g.service === '') throw new Error(`${at}.grpc.service: required`);
      const exact = g.method !== '' ? `/${g.service}/${g.method}` : undefined;
      const prefix = `/${g.service}/`;
      return (ds, path) => ds.grpc && (exact !== undefined ? path === exact : path.startsWith(prefix));
    }
    case 'header':
      return compileHeader(p.header!, `${at}.header`);
    case 'and': {
      const ms = p.and.map((x, i) => compilePermission(x, `${at}.and[${i}]`));
      return (ds, path) => ms.every((m) => m(ds, path));
    }
    case 'or': {
      const ms = p.or.map((x, i) => compilePermission(x, `${at}.or[${i}]`));
      return (ds, path) => ms.some((m) => m(ds, path));
    }
    default: {
      const m = compilePermission(p.not!, `${at}.not`);
      return (ds, path) => !m(ds, path);
    }
  }
}

export function compilePrincipal(p: Principal, at: string): Matcher {
  const set = one(p, PRINCIPAL_FIELDS, at);
  switch (set) {
    case 'any':
      return ANY;
    case 'jwtClaim': {
      const c = p.jwtClaim!;
      if (c.name === '') throw new Error(`${at}.jwtClaim.name: required`);
      const wanted = new Set(c.value !== '' ? [c.value, ...c.values] : c.values);
      if (wanted.size === 0) throw new Error(`${at}.jwtClaim: set value or values`);
      return (ds) => {
        const claims = ds.auth?.claims;
        if (!claims) return false;
        const v = claimAt(claims, c.name);
        if (Array.isArray(v)) return v.some((x) => wanted.has(String(x)));
        return v !== undefined && v !== null && typeof v !== 'object' && wanted.has(String(v));
      };
    }
    case 'apiKey': {
      const name = p.apiKey!.name;
      return (ds) => ds.auth?.apiKey !== undefined && (name === '' || ds.auth.apiKey === name);
    }
    case 'remoteIp': {
      const list = cidrList(p.remoteIp!.cidr, `${at}.remoteIp.cidr`);
      return (ds) => {
        const a = plainAddress(ds.conn.clientAddress);
        const fam = isIP(a);
        return fam !== 0 && list.check(a, fam === 4 ? 'ipv4' : 'ipv6');
      };
    }
    case 'authenticated': {
      const name = p.authenticated!.principalName;
      // Patterns: exact, or a prefix ending in "*" (`spiffe://td/ns/shop/*`). A SPIFFE pattern is matched
      // against the mesh mTLS peer only, never a JWT or API-key principal (those are not SPIFFE IDs).
      const match = principalMatcher(name);
      if (name.startsWith('spiffe://')) return (ds) => ds.conn.peerPrincipal !== undefined && match(ds.conn.peerPrincipal);
      if (name === '') return (ds) => ds.auth?.principal !== undefined || ds.conn.peerPrincipal !== undefined;
      return (ds) => ds.auth?.principal !== undefined && match(ds.auth.principal);
    }
    case 'and': {
      const ms = p.and.map((x, i) => compilePrincipal(x, `${at}.and[${i}]`));
      return (ds, path) => ms.every((m) => m(ds, path));
    }
    case 'or': {
      const ms = p.or.map((x, i) => compilePrincipal(x, `${at}.or[${i}]`));
      return (ds, path) => ms.some((m) => m(ds, path));
    }
    default: {
      const m = compilePrincipal(p.not!, `${at}.not`);
      return (ds, path) => !m(ds, path);
    }
  }
}

function one(msg: object, fields: readonly string[], at: string): string {
  const r = exclusiveField(msg, fields);
  if (typeof r === 'string') throw new Error(`${at}: ${r}`);
  return r.field;
}

function compilePath(p: PathMatch, at: string): Matcher {
  const m = p.match;
  switch (m.case) {
    case 'exact':
      return (_ds, path) => path === m.value;
    case 'prefix':
      return (_ds, path) => path.startsWith(m.value);
    case 'template': {
      const re = templateRegex(m.value, `${at}.template`);
      return (_ds, path) => re.test(path);
    }
    default:
      throw new Error(`${at}: set exact, prefix or template`);
  }
}

/** A route template as an anchored regex: `*` and `{var}` one segment, `**` (last) the rest, `{var=a/*}` its pattern. */
export function templateRegex(template: string, at: string): RegExp {
  if (!template.startsWith('/')) throw new Error(`${at}: must start with "/"`);
  const segs = template.slice(1).replace(/\{([^}=]+)=([^}]*)\}/g, (_m, _n, pat: string) => pat).replace(/\{[^}]+\}/g, '*').split('/');
  const out = segs.map((s, i) => {
    if (s === '**') {
      if (i !== segs.length - 1) throw new Error(`${at}: "**" must be the last segment`);
      return '.*';
    }
    if (s === '*') return '[^/]+';
    if (/[{}*]/.test(s)) throw new Error(`${at}: bad segment "${s}"`);
    return s.replace(/[.+?^$()[\]\\|]/g, '\\$&');
  });
  return new RegExp(`^/${out.join('/')}$`.replace(/\/\.\*\$$/, '(?:/.*)?$'));
}

function compileHeader(h: HeaderMatch, at: string): Matcher {
  const name = h.name.toLowerCase();
  if (name === '') throw new Error(`${at}.name: required`);
  const value = (ds: Downstream): string | undefined => {
    const v = ds.headers[name];
    return Array.isArray(v) ? v.join(',') : v;
  };
  const m = h.match;
  switch (m.case) {
    case 'exact':
      return (ds) => value(ds) === m.value;
    case 'prefix':
      return (ds) => value(ds)?.startsWith(m.value) ?? false;
    case 'present':
      return (ds) => (value(ds) !== undefined) === m.value;
    case 'regex': {
      let re: RegExp;
      try {
        re = new RegExp(`^(?:${m.value})$`);
      } catch (err) {
        throw new Error(`${at}.regex: ${(err as Error).message}`);
      }
      return (ds) => {
        const v = value(ds);
        return v !== undefined && re.test(v);
      };
    }
    default:
      return (ds) => value(ds) !== undefined;
  }
}

/** A CIDR (or bare address) as a BlockList; IPv4-mapped IPv6 clients are compared as IPv4. */
export function cidrList(cidr: string, at: string): BlockList {
  const c = parseCidr(cidr);
  if (typeof c === 'string') throw new Error(`${at}: ${c}`);
  const list = new BlockList();
  list.addSubnet(c.address, c.prefix, c.family);
  return list;
}

function plainAddress(a: string): string {
  return a.startsWith('::ffff:') && isIP(a.slice(7)) === 4 ? a.slice(7) : a;
}
