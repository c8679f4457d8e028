import { PORTS, type Container, type Probe } from './pod-types.js';

/**
 * What the sidecar's status port runs for one rewritten probe: the original
 * check with named ports resolved. Serialised (as a map keyed by path) into the
 * proxy's OUTRIGGER_APP_PROBES env var; src/admin/status-server.ts reads it.
 */
export type AppProbe =
  | { httpGet: { path: string; port: number; scheme: 'HTTP' | 'HTTPS'; httpHeaders?: { name: string; value: string }[] }; timeoutSeconds: number }
  | { tcpSocket: { port: number }; timeoutSeconds: number }
  | { grpc: { port: number; service?: string }; timeoutSeconds: number };

const KINDS = [
  ['readinessProbe', 'readyz'],
  ['livenessProbe', 'livez'],
  ['startupProbe', 'startupz'],
] as const;

/** The status-port path serving one container's probe. */
export function appProbePath(container: string, kind: 'readyz' | 'livez' | 'startupz'): string {
  return `/app-health/${container}/${kind}`;
}

/**
 * Rewrites the HTTP, TCP and gRPC probes of app containers (in place, on the
 * injector's private copy) to GET the status port, and returns the originals.
 * Probes that cannot be proxied are left alone: exec probes, probes with a
 * `host` (they target another address) and named ports the container does not
 * declare. Timing fields (period, thresholds, timeout) are kept as they were.
 */
export function rewriteAppProbes(containers: Container[]): Record<string, AppProbe> {
  const out: Record<string, AppProbe> = {};
  for (const c of containers) {
    for (const [field, kind] of KINDS) {
      const probe = c[field];
      if (!probe) continue;
      const original = toAppProbe(c, probe);
      if (!original) continue;
      const path = appProbePath(c.name, kind);
      out[path] = original;
      const { httpGet: _h, tcpSocket: _t, grpc: _g, ...timing } = probe;
      c[field] = { ...timing, httpGet: { path, port: PORTS.status, scheme: 'HTTP' } };
    }
  }
  return out;
}

function toAppProbe(c: Container, p: Probe): AppProbe | undefined {
  const timeoutSeconds = p.timeoutSeconds ?? 1;
  if (p.httpGet) {
    if (p.httpGet.host) return undefined;
    const port = resolvePort(c, p.httpGet.port);
    if (port === undefined) return undefined;
    const scheme = p.httpGet.scheme === 'HTTPS' ? 'HTTPS' : 'HTTP';
    const httpGet = {
      path: p.httpGet.path ?? '/',
      port,
      scheme,
      ...(p.httpGet.httpHeaders?.length ? { httpHeaders: p.httpGet.httpHeaders } : {}),
    } as const;
    return { httpGet, timeoutSeconds };
  }
  if (p.tcpSocket) {
    if (p.tcpSocket.host) return undefined;
    const port = resolvePort(c, p.tcpSocket.port);
    return port === undefined ? undefined : { tcpSocket: { port }, timeoutSeconds };
  }
  if (p.grpc) {
    return { grpc: { port: p.grpc.port, ...(p.grpc.service ? { service: p.grpc.service } : {}) }, timeoutSeconds };
  }
  return undefined;
}

function resolvePort(c: Container, port: number | string): number | undefined {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  return c.ports?.find((p) => p.name === port)?.containerPort;
}
