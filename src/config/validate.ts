import { checkClusterTls, checkListenerIdentity } from './validate-identity.js';
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
  checkListenerIdentity(l, report);
  checkListenerTracing(l, report);
}

/** Listener.tracing: a ratio in [0, 1], and no ratio beside `disabled` (it would be silently ignored). */
function checkListenerTracing(l: Listener, report: Report): void {
  const s = l.tracing?.sampling;
  if (s === undefined) return;
  if (!(s >= 0 && s <= 1)) report('spec.tracing.sampling', `a ratio in [0, 1] expected, got ${s}`);
  else if (l.tracing!.disabled) report('spec.tracing.sampling', 'not used when tracing.disabled is true: remove one of them');
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
  checkClusterTls(c, report);
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
    case Cluster_DiscoveryType.DNS:
    case Cluster_DiscoveryType.KUBERNETES:
    case Cluster_DiscoveryType.CONSUL:
    case Cluster_DiscoveryType.NATS:
      if (c.endpoints.length > 0) {
        report('spec.endpoints', `must be empty for a ${Cluster_DiscoveryType[c.type] ? `DISCOVERY_TYPE_${Cluster_DiscoveryType[c.type]}` : 'discovered'} cluster (discovery finds its endpoints)`);
      }
      checkDiscovery(c, report);
      break;
    default:
      report(
        'spec.type',
        'required: DISCOVERY_TYPE_STATIC, DISCOVERY_TYPE_EDS, DISCOVERY_TYPE_ORIGINAL_DST, DISCOVERY_TYPE_DNS, DISCOVERY_TYPE_KUBERNETES, DISCOVERY_TYPE_CONSUL or DISCOVERY_TYPE_NATS',
      );
  }
  if (c.originalDst && c.type !== Cluster_DiscoveryType.ORIGINAL_DST) {
    report('spec.originalDst', 'only for a DISCOVERY_TYPE_ORIGINAL_DST cluster (the others have their endpoints)');
  }
  for (const [field, type] of DISCOVERY_FIELDS) {
    if (c[field] && c.type !== type) report(`spec.${field}`, `only for a DISCOVERY_TYPE_${Cluster_DiscoveryType[type]} cluster`);
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
  const takes = c !== undefined && (c.type === Cluster_DiscoveryType.EDS || DISCOVERY_FIELDS.some(([, t]) => t === c.type));
  if (!takes && !unresolvedKeys.has(`Cluster/${cla.name}`)) {
    const why = c ? ` (cluster "${cla.name}" has type ${Cluster_DiscoveryType[c.type] ?? c.type}, not EDS)` : '';
    report('', `no EDS cluster "${cla.name}"${why}`);
  }
  checkEndpoints(cla.endpoints, report);
}

const DISCOVERY_FIELDS = [
  ['dns', Cluster_DiscoveryType.DNS],
  ['kubernetes', Cluster_DiscoveryType.KUBERNETES],
  ['consul', Cluster_DiscoveryType.CONSUL],
  ['nats', Cluster_DiscoveryType.NATS],
] as const;

/** A NATS subject token / Consul service name we accept: no dots, spaces or wildcards. */
const SERVICE_TOKEN_RE = /^[A-Za-z0-9_-]{1,128}$/;
/** A DNS name as resolved (SRV names have "_" labels: _http._tcp.api.example.com), or an IP. */
const DNS_NAME_RE = /^(?=.{1,253}$)([A-Za-z0-9_]([-A-Za-z0-9_]{0,61}[A-Za-z0-9_])?)(\.[A-Za-z0-9_]([-A-Za-z0-9_]{0,61}[A-Za-z0-9_])?)*\.?$|^[0-9a-fA-F:.]+$/;
/** A DNS-1123 label (Kubernetes namespace and Service names). */
const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** The sub-message of a discovered cluster (docs/discovery.md). */
function checkDiscovery(c: Cluster, report: Report): void {
  switch (c.type) {
    case Cluster_DiscoveryType.DNS: {
      const d = c.dns;
      if (!d) return report('spec.dns', 'required for a DISCOVERY_TYPE_DNS cluster');
      if (d.name === '') report('spec.dns.name', 'required');
      else if (!DNS_NAME_RE.test(d.name)) report('spec.dns.name', `not a DNS name: ${JSON.stringify(d.name)}`);
      if (d.srv && d.port !== 0) report('spec.dns.port', 'must be unset with srv: the SRV records give the ports');
      if (!d.srv && d.port === 0) report('spec.dns.port', 'required (or srv: true)');
      if (d.port > 65535) report('spec.dns.port', `${d.port} is out of range (1..65535)`);
      checkNonNegative(d.refreshRate, 'spec.dns.refreshRate', report);
      d.resolvers.forEach((r, i) => {
        if (!parseHostPort(r)) report(`spec.dns.resolvers[${i}]`, `expected "host:port" (IPv6 as "[::1]:53"), got ${JSON.stringify(r)}`);
      });
      return;
    }
    case Cluster_DiscoveryType.KUBERNETES: {
      const k = c.kubernetes;
      if (!k) return report('spec.kubernetes', 'required for a DISCOVERY_TYPE_KUBERNETES cluster');
      if (k.service === '') report('spec.kubernetes.service', 'required');
      else if (!DNS_LABEL_RE.test(k.service)) report('spec.kubernetes.service', `not a Service name (DNS-1123 label): ${JSON.stringify(k.service)}`);
      if (k.namespace !== '' && !DNS_LABEL_RE.test(k.namespace)) report('spec.kubernetes.namespace', `not a namespace name (DNS-1123 label): ${JSON.stringify(k.namespace)}`);
      const p = k.port?.kind;
      if (p?.case === 'numberValue' && (!Number.isInteger(p.value) || p.value < 1 || p.value > 65535)) {
        report('spec.kubernetes.port', `a port number 1..65535 or a port name, got ${p.value}`);
      } else if (p?.case === 'stringValue' && !/^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$/.test(p.value)) {
        report('spec.kubernetes.port', `not a port name (IANA_SVC_NAME): ${JSON.stringify(p.value)}`);
      } else if (p && p.case !== 'numberValue' && p.case !== 'stringValue' && p.case !== undefined) {
        report('spec.kubernetes.port', 'a port number or a port name');
      }
      return;
    }
    case Cluster_DiscoveryType.CONSUL: {
      const k = c.consul;
      if (!k) return report('spec.consul', 'required for a DISCOVERY_TYPE_CONSUL cluster');
      if (k.service === '') report('spec.consul.service', 'required');
      else if (!/^[A-Za-z0-9._-]{1,128}$/.test(k.service)) report('spec.consul.service', `not a Consul service name: ${JSON.stringify(k.service)}`);
      return;
    }
    case Cluster_DiscoveryType.NATS: {
      const n = c.nats;
      if (!n) return report('spec.nats', 'required for a DISCOVERY_TYPE_NATS cluster');
      if (n.service === '') report('spec.nats.service', 'required');
      else if (!SERVICE_TOKEN_RE.test(n.service)) report('spec.nats.service', `letters, digits, "_" and "-" only (one NATS subject token): ${JSON.stringify(n.service)}`);
      return;
    }
  }
}

/** "host:port" or "[v6]:port" → parts, or undefined. */
export function parseHostPort(s: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (m[1] ?? m[2])!, port };
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
