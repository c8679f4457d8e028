import { stringify } from 'yaml';

/** Builders for resource documents in tests; they return plain objects. */
export type Doc = { apiVersion: 'outrigger.io/v1'; kind: string; metadata: { name: string }; spec: Record<string, unknown> };

export function listener(name: string, spec: Record<string, unknown> = {}): Doc {
  return {
    apiVersion: 'outrigger.io/v1',
    kind: 'Listener',
    metadata: { name },
    spec: { address: { host: '127.0.0.1', port: 0 }, routeConfig: 'main', ...spec },
  };
}

export function routes(name: string, routeList: unknown[], domains: string[] = ['*']): Doc {
  return {
    apiVersion: 'outrigger.io/v1',
    kind: 'RouteConfiguration',
    metadata: { name },
    spec: { virtualHosts: [{ name: 'default', domains, routes: routeList }] },
  };
}

export function cluster(
  name: string,
  ports: number[],
  protocol: 'UPSTREAM_PROTOCOL_HTTP1' | 'UPSTREAM_PROTOCOL_HTTP2' | 'UPSTREAM_PROTOCOL_UNSPECIFIED' = 'UPSTREAM_PROTOCOL_UNSPECIFIED',
  extra: Record<string, unknown> = {},
): Doc {
  return {
    apiVersion: 'outrigger.io/v1',
    kind: 'Cluster',
    metadata: { name },
    spec: {
      type: 'DISCOVERY_TYPE_STATIC',
      protocol,
      endpoints: ports.map((port) => ({ address: { host: '127.0.0.1', port } })),
      ...extra,
    },
  };
}

/** A route sending a prefix to a cluster. */
export function prefixRoute(prefix: string, clusterName: string, extra: Record<string, unknown> = {}): unknown {
  return { name: `${clusterName}${prefix.replace(/\//g, '-')}`, match: { prefix }, route: { cluster: clusterName, ...extra } };
}

export function toYaml(docs: Doc[]): string {
  return docs.map((d) => stringify(d)).join('---\n');
}
