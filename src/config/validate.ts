import { Cluster_DiscoveryType, Cluster_LbPolicy, type Cluster, type ClusterLoadAssignment, type Endpoint } from '../gen/outrigger/config/v1/cluster_pb.js';
import type { Listener } from '../gen/outrigger/config/v1/listener_pb.js';
import type { Kind } from './kinds.js';
import type { ConfigError } from './snapshot.js';
import { sourceLabel } from './documents.js';
import type { DecodedResource } from './decode.js';
import { checkHost, checkPort, isWildcardHost } from './net-names.js';
import { checkNonNegative, checkRouteConfiguration, type Report } from './validate-routes.js';
import { checkClusterBalancing, checkEndpointPriority, checkZoneAwareRouting, warnHashWithoutPolicy } from './validate-resilience.js';
import { checkHttpFilters } from './validate-filters.js';

export interface ValidateOptions {
  /** Accept Listener port 0 (the kernel picks a free port). Tests bind that way; production configs must not. */
  readonly allowEphemeralPorts?: boolean;
}

/** A resource known by kind and name only, e.g. one whose document failed to decode. */
export interface ResourceRef {
  readonly kind: Kind;
  readonly name: string;
}

/**
 * Semantic checks over a whole set of decoded resources: names are unique,
 * references resolve, values are in range, patterns compile. Returns every
 * problem found (an empty array means the set can become a snapshot).
 *
 * `unresolved` names resources that exist but could not be decoded (their
 * errors are already reported); references to them are not reported again,
 * so one typo does not cascade into a screen of "unknown cluster".
 */
export function validateResources(
  resources: readonly DecodedResource[],
  opts: ValidateOptions = {},
  unresolved: readonly ResourceRef[] = [],
  /** Where warnings go: problems that do not stop the config (e.g. a hash policy missing). */
  warnings: ConfigError[] = [],
): ConfigError[] {
  const errors: ConfigError[] = [];
  const byKey = new Map<string, DecodedResource>();
  const unique: DecodedResource[] = [];
  for (const r of resources) {
    const key = `${r.kind}/${r.name}`;
    const first = byKey.get(key);
    if (first) {
      const where = first.source.file !== undefined || first.source.index !== undefined ? ` (first defined in ${sourceLabel(first.source)})` : '';
      errors.push({ document: key, path: 'metadata.name', message: `duplicate ${r.kind} "${r.name}"${where}` });
      continue;
    }
    byKey.set(key, r);
    unique.push(r);
  }
  const unresolvedKeys = new Set(unresolved.map((u) => `${u.kind}/${u.name}`));
  const exists = (kind: Kind, name: string): boolean => byKey.has(`${kind}/${name}`) || unresolvedKeys.has(`${kind}/${name}`);
  const clusterOf = (name: string): Cluster | undefined => {
    const r = byKey.get(`Cluster/${name}`);
    return r?.kind === 'Cluster' ? r.message : undefined;
  };

  const boundBy = new Map<number, { host: string; listener: string }[]>();
  for (const r of unique) {
    const report: Report = (path, message) => errors.push({ document: `${r.kind}/${r.name}`, path, message });
    const warn: Report = (path, message) => warnings.push({ document: `${r.kind}/${r.name}`, path, message });
    switch (r.kind) {
      case 'Listener':
        checkListener(r.message, opts, exists, report);
        checkAddressClash(r.message, boundBy, report);
        break;
      case 'RouteConfiguration':
        checkRouteConfiguration(r.message, (name) => exists('Cluster', name), report);
        warnHashWithoutPolicy(r.message, clusterOf, warn);
        break;
      case 'Cluster':
        checkCluster(r.message, exists, report);
        checkZoneAwareRouting(r.message, clusterOf, (name) => unresolvedKeys.has(`Cluster/${name}`), report);
        break;
      case 'ClusterLoadAssignment':
        checkLoadAssignment(r.message, clusterOf, unresolvedKeys, report);
        break;
    }
  }
  return errors;
}

type Exists = (kind: Kind, name: string) => boolean;

function checkListener(l: Listener, opts: ValidateOptions, exists: Exists, report: Report): void {
  if (!l.address) {
    report('spec.address', 'required');
  } else {
    const badHost = checkHost(l.address.host);
    if (badHost) report('spec.address.host', badHost);
    const badPort = checkPort(l.address.port, opts.allowEphemeralPorts ?? false);
    if (badPort) report('spec.address.port', badPort);
  }
  if (l.routeConfig === '' && l.defaultCluster === '') {
    report('spec', 'set routeConfig (HTTP and gRPC routing), defaultCluster (opaque TCP) or both');
  }
  if (l.routeConfig !== '' && !exists('RouteConfiguration', l.routeConfig)) {
    report('spec.routeConfig', `unknown route configuration "${l.routeConfig}"`);
  }
  if (l.defaultCluster !== '' && !exists('Cluster', l.defaultCluster)) {
    report('spec.defaultCluster', `unknown cluster "${l.defaultCluster}"`);
  }
  if (l.opaque && l.defaultCluster === '') report('spec.defaultCluster', 'required when opaque is true');
  if (l.tls) {
    const { certFile, keyFile } = l.tls;
    if (certFile !== '' && keyFile === '') report('spec.tls.keyFile', 'required when certFile is set');
    if (keyFile !== '' && certFile === '') report('spec.tls.certFile', 'required when keyFile is set');
  }
  checkNonNegative(l.detectTimeout, 'spec.detectTimeout', report);
  checkNonNegative(l.idleTimeout, 'spec.idleTimeout', report);
  checkHttpFilters(l.httpFilters, 'spec.httpFilters', report);
  checkNonNegative(l.limits?.requestHeadersTimeout, 'spec.limits.requestHeadersTimeout', report);
}

/**
 * Two listeners on one host:port cannot both bind; a wildcard host (0.0.0.0,
 * ::) clashes with every host on its port. Port 0 never clashes: each bind
 * gets its own ephemeral port.
 */
function checkAddressClash(l: Listener, boundBy: Map<number, { host: string; listener: string }[]>, report: Report): void {
  const a = l.address;
  if (!a || a.port === 0) return;
  const host = a.host.toLowerCase();
  const taken = boundBy.get(a.port) ?? [];
  const clash = taken.find((t) => t.host === host || isWildcardHost(t.host) || isWildcardHost(host));
  if (clash) {
    report('spec.address', `${hostPort(host, a.port)} clashes with listener "${clash.listener}" on ${hostPort(clash.host, a.port)}`);
    return;
  }
  taken.push({ host, listener: l.name });
  boundBy.set(a.port, taken);
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function checkCluster(c: Cluster, exists: Exists, report: Report): void {
  switch (c.type) {
    case Cluster_DiscoveryType.STATIC:
      if (c.endpoints.length === 0) report('spec.endpoints', 'a DISCOVERY_TYPE_STATIC cluster needs at least one endpoint');
      break;
    case Cluster_DiscoveryType.EDS:
      if (c.endpoints.length > 0) {
        report('spec.endpoints', `must be empty for a DISCOVERY_TYPE_EDS cluster (its endpoints come from ClusterLoadAssignment "${c.name}")`);
      }
      if (!exists('ClusterLoadAssignment', c.name)) report('', `no ClusterLoadAssignment "${c.name}" for EDS cluster`);
      break;
    case Cluster_DiscoveryType.ORIGINAL_DST:
      // The destination is per connection (SO_ORIGINAL_DST) or per request (Host / :authority).
      if (c.endpoints.length > 0) {
        report('spec.endpoints', 'must be empty for a DISCOVERY_TYPE_ORIGINAL_DST cluster (each connection goes to its original destination)');
      }
      if (c.lbPolicy !== Cluster_LbPolicy.UNSPECIFIED) {
        report('spec.lbPolicy', 'must be unset for a DISCOVERY_TYPE_ORIGINAL_DST cluster (there is one destination per connection, nothing to balance)');
      }
      break;
    default:
      report('spec.type', 'required: DISCOVERY_TYPE_STATIC, DISCOVERY_TYPE_EDS or DISCOVERY_TYPE_ORIGINAL_DST');
  }
  if (c.originalDst && c.type !== Cluster_DiscoveryType.ORIGINAL_DST) {
    report('spec.originalDst', 'only for a DISCOVERY_TYPE_ORIGINAL_DST cluster (the others have their endpoints)');
  }
  checkEndpoints(c.endpoints, report);
  checkNonNegative(c.connectTimeout, 'spec.connectTimeout', report);
  checkNonNegative(c.idleTimeout, 'spec.idleTimeout', report);
  checkClusterBalancing(c, report);
}

function checkLoadAssignment(
  cla: ClusterLoadAssignment,
  clusterOf: (name: string) => Cluster | undefined,
  unresolvedKeys: ReadonlySet<string>,
  report: Report,
): void {
  const c = clusterOf(cla.name);
  if (c?.type !== Cluster_DiscoveryType.EDS && !unresolvedKeys.has(`Cluster/${cla.name}`)) {
    const why = c ? ` (cluster "${cla.name}" has type ${Cluster_DiscoveryType[c.type] ?? c.type}, not EDS)` : '';
    report('', `no EDS cluster "${cla.name}"${why}`);
  }
  checkEndpoints(cla.endpoints, report);
}

function checkEndpoints(endpoints: readonly Endpoint[], report: Report): void {
  endpoints.forEach((e, i) => {
    const p = `spec.endpoints[${i}]`;
    if (!e.address) return report(`${p}.address`, 'required');
    const badHost = checkHost(e.address.host);
    if (badHost) report(`${p}.address.host`, badHost);
    const badPort = checkPort(e.address.port, false);
    if (badPort) report(`${p}.address.port`, badPort);
    checkEndpointPriority(e, p, report);
  });
}
