import type { Duration } from '@bufbuild/protobuf/wkt';
import type { RouteConfiguration, RouteMatch } from '../gen/outrigger/config/v1/route_pb.js';
import { checkDomain } from './net-names.js';
import { checkPathTemplate } from './template-syntax.js';

/** Reports one problem at a path of the document being checked. */
export type Report = (path: string, message: string) => void;

/**
 * Semantic checks of one RouteConfiguration: every reference resolves, every
 * pattern compiles, every route can act. `clusterExists` answers for the
 * whole config set being validated.
 */
export function checkRouteConfiguration(
  rc: RouteConfiguration,
  clusterExists: (name: string) => boolean,
  report: Report,
): void {
  // Domains are matched across all virtual hosts of the table, so a domain
  // listed twice would make one of the hosts unreachable for it.
  const domainOwner = new Map<string, number>();
  rc.virtualHosts.forEach((vh, v) => {
    const vp = `spec.virtualHosts[${v}]`;
    if (vh.domains.length === 0) report(`${vp}.domains`, 'at least one domain is required ("*" matches any host)');
    vh.domains.forEach((domain, d) => {
      const dp = `${vp}.domains[${d}]`;
      const bad = checkDomain(domain);
      if (bad) return report(dp, bad);
      const owner = domainOwner.get(domain);
      if (owner !== undefined) {
        const where = owner === v ? 'this virtual host' : `virtual host ${owner}${nameOf(rc.virtualHosts[owner]!.name)}`;
        report(dp, `domain "${domain}" is already listed by ${where}`);
      } else {
        domainOwner.set(domain, v);
      }
    });

    vh.routes.forEach((route, r) => {
      const rp = `${vp}.routes[${r}]`;
      if (!route.match) report(`${rp}.match`, 'required (use prefix "/" to match every path)');
      else checkMatch(route.match, `${rp}.match`, report);
      const action = route.action;
      switch (action.case) {
        case 'route': {
          const a = action.value;
          const ap = `${rp}.route`;
          if (a.cluster === '') report(`${ap}.cluster`, 'required');
          else if (!clusterExists(a.cluster)) report(`${ap}.cluster`, `unknown cluster "${a.cluster}"`);
          if (a.prefixRewrite !== '' && route.match?.pathSpecifier.case !== 'prefix') {
            report(`${ap}.prefixRewrite`, 'only allowed on a route with a prefix match');
          }
          checkNonNegative(a.timeout, `${ap}.timeout`, report);
          break;
        }
        case 'directResponse': {
          const s = action.value.status;
          if (s < 200 || s > 599) report(`${rp}.directResponse.status`, `must be 200..599, got ${s}`);
          break;
        }
        default:
          report(rp, 'route has no action: set route or directResponse');
      }
    });
  });
}

function checkMatch(m: RouteMatch, mp: string, report: Report): void {
  const ps = m.pathSpecifier;
  switch (ps.case) {
    case 'prefix':
    case 'path':
      if (!ps.value.startsWith('/')) report(`${mp}.${ps.case}`, `must start with "/", got "${ps.value}"`);
      break;
    case 'template': {
      const bad = checkPathTemplate(ps.value);
      if (bad) report(`${mp}.template`, `invalid template "${ps.value}": ${bad}`);
      break;
    }
    case 'regex': {
      const bad = regexError(ps.value);
      if (bad) report(`${mp}.regex`, bad);
      break;
    }
  }
  m.methods.forEach((method, i) => {
    // Methods are case-sensitive (RFC 9110); "get" would silently never match.
    if (!/^[A-Z][A-Z-]*$/.test(method)) report(`${mp}.methods[${i}]`, `invalid method "${method}" (methods are upper case, e.g. GET)`);
  });
  m.headers.forEach((h, i) => {
    const hp = `${mp}.headers[${i}]`;
    if (h.name === '') report(`${hp}.name`, 'required');
    else if (!/^:?[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(h.name)) report(`${hp}.name`, `invalid header name "${h.name}"`);
    if (h.match.case === 'regex') {
      const bad = regexError(h.match.value);
      if (bad) report(`${hp}.regex`, bad);
    }
  });
  if (m.grpc) {
    if (m.grpc.service === '') report(`${mp}.grpc.service`, 'required (a fully qualified service name)');
    else if (!/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(m.grpc.service)) {
      report(`${mp}.grpc.service`, `invalid service name "${m.grpc.service}"`);
    }
    if (m.grpc.method !== '' && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(m.grpc.method)) {
      report(`${mp}.grpc.method`, `invalid method name "${m.grpc.method}"`);
    }
  }
}

/** Compiled the way the router compiles it (plain ECMAScript, no flags). */
function regexError(source: string): string | undefined {
  try {
    new RegExp(source);
    return undefined;
  } catch (err) {
    return `invalid regex: ${(err as Error).message}`;
  }
}

export function checkNonNegative(d: Duration | undefined, path: string, report: Report): void {
  if (d && (d.seconds < 0n || d.nanos < 0)) report(path, 'must not be negative');
}

function nameOf(name: string): string {
  return name ? ` ("${name}")` : '';
}
