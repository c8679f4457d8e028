import type { RouteConfiguration, RouteMatch, Transcode } from '../gen/outrigger/config/v1/route_pb.js';
import { checkDomain } from './net-names.js';
import { checkPathTemplate } from './template-syntax.js';
import { checkNonNegative, type Report } from './report.js';
import { checkHashPolicies, checkRetries } from './validate-resilience.js';
import { checkFilterOverrides } from './validate-filters.js';
import { checkTraffic } from './validate-traffic.js';

export { checkNonNegative, type Report };

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
      // Hosts compare case-insensitively; a repeat inside one virtual host is harmless.
      const key = domain.toLowerCase();
      const owner = domainOwner.get(key);
      if (owner !== undefined && owner !== v) {
        report(dp, `domain "${domain}" is already listed by virtual host ${owner}${nameOf(rc.virtualHosts[owner]!.name)}`);
      } else {
        domainOwner.set(key, v);
      }
    });

    checkFilterOverrides(vh.filters, `${vp}.filters`, report);
    vh.routes.forEach((route, r) => {
      const rp = `${vp}.routes[${r}]`;
      checkFilterOverrides(route.filters, `${rp}.filters`, report);
      if (!route.match) report(`${rp}.match`, 'required (use prefix "/" to match every path)');
      else checkMatch(route.match, `${rp}.match`, report);
      const action = route.action;
      switch (action.case) {
        case 'route': {
          const a = action.value;
          const ap = `${rp}.route`;
          if (a.cluster === '') {
            if (a.weightedClusters.length === 0) report(`${ap}.cluster`, 'required (or weightedClusters)');
          } else if (!clusterExists(a.cluster)) report(`${ap}.cluster`, `unknown cluster "${a.cluster}"`);
          if (a.prefixRewrite !== '' && route.match?.pathSpecifier.case !== 'prefix') {
            report(`${ap}.prefixRewrite`, 'only allowed on a route with a prefix match');
          }
          if (a.regexRewrite !== undefined) {
            if (a.prefixRewrite !== '') report(`${ap}.regexRewrite`, 'set prefixRewrite or regexRewrite, not both');
            try {
              new RegExp(a.regexRewrite.pattern);
            } catch (err) {
              report(`${ap}.regexRewrite.pattern`, (err as Error).message);
            }
            if (a.regexRewrite.pattern === '') report(`${ap}.regexRewrite.pattern`, 'required');
          }
          checkNonNegative(a.timeout, `${ap}.timeout`, report);
          if (a.transcode) checkTranscode(a.transcode, `${ap}.transcode`, report);
          checkHashPolicies(a.hashPolicy, ap, report);
          checkRetries(a, ap, report);
          checkTraffic(a, ap, clusterExists, report);
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

/**
 * What can be checked without reading descriptors: a source is given and names
 * are well formed. Whether the services exist and their http rules compile is
 * checked when the proxy compiles the config (a failure rejects it the same way).
 */
function checkTranscode(t: Transcode, tp: string, report: Report): void {
  const src = t.descriptorSource;
  if (src.case === undefined) report(tp, 'a descriptor source is required: descriptorFile, descriptorBin or reflection');
  else if (src.case === 'descriptorFile' && src.value === '') report(`${tp}.descriptorFile`, 'must not be empty');
  else if (src.case === 'descriptorBin' && src.value.length === 0) report(`${tp}.descriptorBin`, 'must not be empty');
  if (src.case === 'reflection') {
    const ri = src.value.refreshInterval;
    checkNonNegative(ri, `${tp}.reflection.refreshInterval`, report);
    if (ri && (ri.seconds > 0n || ri.nanos > 0) && Number(ri.seconds) * 1000 + ri.nanos / 1e6 < 100) {
      report(`${tp}.reflection.refreshInterval`, 'at least 100ms (0: the default, 30s)');
    }
    src.value.services.forEach((s, i) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(s)) report(`${tp}.reflection.services[${i}]`, `invalid service name "${s}"`);
    });
  }
  t.services.forEach((s, i) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(s)) report(`${tp}.services[${i}]`, `invalid service name "${s}"`);
  });
  const oa = t.openapi?.path ?? '';
  if (oa !== '' && (!oa.startsWith('/') || /[?#\s]/.test(oa))) report(`${tp}.openapi.path`, `must be a path starting with "/", got "${oa}"`);
  if ((t.print?.indent ?? 0) > 8) report(`${tp}.print.indent`, 'at most 8');
  t.forwardHeaders.forEach((h, i) => {
    if (!TOKEN_RE.test(h)) report(`${tp}.forwardHeaders[${i}]`, `invalid header name "${h}"`);
  });
}

function checkMatch(m: RouteMatch, mp: string, report: Report): void {
  const ps = m.pathSpecifier;
  switch (ps.case) {
    case 'prefix':
    case 'path':
      if (!ps.value.startsWith('/')) report(`${mp}.${ps.case}`, `must start with "/", got "${ps.value}"`);
      else if (ps.value.includes('?')) report(`${mp}.${ps.case}`, 'paths are matched without the query string; remove "?…"');
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
    default:
      if (!m.grpc) report(mp, 'needs a path specifier (prefix, path, template or regex) or grpc');
  }
  m.methods.forEach((method, i) => {
    // The router compares methods case-insensitively, so only the token syntax matters.
    if (!TOKEN_RE.test(method)) report(`${mp}.methods[${i}]`, `invalid method "${method}"`);
  });
  m.headers.forEach((h, i) => {
    const hp = `${mp}.headers[${i}]`;
    if (h.name === '') report(`${hp}.name`, 'required');
    else if (!TOKEN_RE.test(h.name.replace(/^:/, ''))) report(`${hp}.name`, `invalid header name "${h.name}"`);
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

/** An HTTP token (RFC 9110 §5.6.2): what method and header names are made of. */
const TOKEN_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Plain ECMAScript, no flags, as the router compiles it; a valid source stays valid when the router anchors it. */
function regexError(source: string): string | undefined {
  try {
    new RegExp(source);
    return undefined;
  } catch (err) {
    return `invalid regex: ${(err as Error).message}`;
  }
}

function nameOf(name: string): string {
  return name ? ` ("${name}")` : '';
}
