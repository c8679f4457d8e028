/**
 * The load-balancing benchmark's rig (bench/lb.ts, bench/lb-trace.ts): the
 * three lb endpoints (bench/backends/lb.ts, the last one sick) and one
 * sidecar with a listener + route table + cluster per target, on the server
 * CPU. Children are registered with proc.ts (stopAll stops them).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { drainOutput, freePort, spawnManaged, waitForLine, waitForPort, type Managed } from './proc.js';

/** A sidecar listener of the rig: its policy and which endpoints (indexes into the three, the sick one is 2). */
export interface LbListener {
  name: string;
  lbPolicy: string;
  endpoints: readonly number[];
}

export const LB_LISTENERS: readonly LbListener[] = [
  { name: 'rr', lbPolicy: 'LB_POLICY_ROUND_ROBIN', endpoints: [0, 1, 2] },
  { name: 'lr', lbPolicy: 'LB_POLICY_LEAST_REQUEST', endpoints: [0, 1, 2] },
  { name: 'ewma', lbPolicy: 'LB_POLICY_PEAK_EWMA', endpoints: [0, 1, 2] },
  { name: 'healthy', lbPolicy: 'LB_POLICY_ROUND_ROBIN', endpoints: [0, 1] },
];

export interface LbRigOptions {
  root: string;
  listeners: readonly LbListener[];
  accessLog: boolean;
  /**
   * Listener trustedHops: 1 keeps the client's x-request-id in the access
   * log (to match a client's requests against it); 0 (the benchmark) has the
   * sidecar make its own, as in production.
   */
  trustedHops: number;
  fromDist: boolean;
  serverCpus: string | undefined;
}

export interface LbRig {
  /** The three endpoints' ports, the sick one last. */
  ports: number[];
  /** Listener name → port. */
  listen: Record<string, number>;
  adminPort: number;
  sidecar: Managed;
  tmp: string;
  sidecarLog: string;
}

function sidecarConfig(o: LbRigOptions, listen: Record<string, number>, ports: number[]): string {
  const docs: object[] = [];
  for (const l of o.listeners) {
    docs.push(
      {
        apiVersion: 'outrigger.io/v1',
        kind: 'Listener',
        metadata: { name: l.name },
        spec: { address: { host: '127.0.0.1', port: listen[l.name] }, routeConfig: l.name, ...(o.trustedHops > 0 ? { trustedHops: o.trustedHops } : {}), ...(o.accessLog ? {} : { accessLog: { disabled: true } }) },
      },
      {
        apiVersion: 'outrigger.io/v1',
        kind: 'RouteConfiguration',
        metadata: { name: l.name },
        spec: { virtualHosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: l.name } }] }] },
      },
      {
        apiVersion: 'outrigger.io/v1',
        kind: 'Cluster',
        metadata: { name: l.name },
        spec: { type: 'DISCOVERY_TYPE_STATIC', protocol: 'UPSTREAM_PROTOCOL_HTTP1', lbPolicy: l.lbPolicy, endpoints: l.endpoints.map((i) => ({ address: { host: '127.0.0.1', port: ports[i] } })) },
      },
    );
  }
  return docs.map((d) => stringify(d)).join('---\n');
}

/** Starts the endpoints and the sidecar; resolves once every listener accepts connections. */
export async function startLbRig(o: LbRigOptions): Promise<LbRig> {
  const tmp = mkdtempSync(join(tmpdir(), 'outrigger-bench-lb-'));
  const backend = spawnManaged('lb-backends', process.execPath, ['--import', 'tsx', join(o.root, 'bench/backends/lb.ts')], { cpus: o.serverCpus, cwd: o.root });
  const m = await waitForLine(backend, /LISTENING ([\d,]+)/, 30_000);
  drainOutput(backend);
  const ports = m[1]!.split(',').map(Number);
  const listen: Record<string, number> = {};
  for (const l of o.listeners) listen[l.name] = await freePort();
  const conf = join(tmp, 'lb.yaml');
  writeFileSync(conf, sidecarConfig(o, listen, ports));
  const adminPort = await freePort();
  const sidecarLog = join(tmp, 'sidecar.log');
  const sidecar = spawnManaged('sidecar', process.execPath, [join(o.root, 'bin/outrigger.js'), 'sidecar', '--config', conf, '--admin-port', String(adminPort)], {
    cpus: o.serverCpus,
    cwd: o.root,
    env: { ...process.env, OUTRIGGER_FROM_SOURCE: o.fromDist ? '' : '1' },
    logFile: sidecarLog,
  });
  for (const p of Object.values(listen)) {
    if (!(await waitForPort(p, 30_000, () => sidecar.exitCode() === undefined))) throw new Error(`sidecar listener :${p} never opened (see ${sidecarLog})`);
  }
  return { ports, listen, adminPort, sidecar, tmp, sidecarLog };
}
