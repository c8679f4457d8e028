/**
 * Mesh mTLS cost (issue 17): gRPC unary through a client sidecar → a server
 * sidecar (real `outrigger sidecar` processes, certificates issued by a real
 * `outrigger control`), once over mesh mTLS (cluster tls MESH → STRICT
 * listener) and once plaintext, on the same processes. Reports, for each, the
 * CPU both sidecars spend per request on reused connections (/proc utime +
 * stime over a fixed h2load run), and the cost of one mTLS handshake on the
 * server sidecar (fresh connections with a workload certificate).
 *
 *   npm run bench:mtls -- [--seconds 8] [--handshakes 300] [--deadline 240]
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import tls from 'node:tls';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { stringify } from 'yaml';
import { installCleanupHandlers, spawnManaged, stopAll, treeCpu, cpuDelta, waitForLine, freePort, type Managed } from './lib/proc.js';
import { runH2load } from './lib/load.js';
import { startEchoBackend } from '../test/support/echo-backend.js';
import { IdentityService } from '../src/gen/outrigger/control/v1/identity_pb.js';
import { newKeyAndCsr } from '../src/control/client/csr.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '8' }, handshakes: { type: 'string', default: '300' }, deadline: { type: 'string', default: '240' } } });
const SECONDS = Number(values.seconds);
const HANDSHAKES = Number(values.handshakes);
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const BIN = join(ROOT, 'bin/outrigger.js');
const env = { ...process.env, OUTRIGGER_FROM_SOURCE: '1', OUTRIGGER_LOG_LEVEL: 'warn' };
setTimeout(() => {
  console.error(`bench: deadline of ${values.deadline}s passed`);
  void stopAll().finally(() => process.exit(2));
}, Number(values.deadline) * 1000).unref();
installCleanupHandlers();

const doc = (kind: string, name: string, spec: Record<string, unknown>) => ({ apiVersion: 'outrigger.io/v1', kind, metadata: { name }, spec });
const yaml = (docs: object[]): string => docs.map((d) => stringify(d)).join('---\n');

async function sidecar(name: string, dir: string, docs: object[], cpPort: number, nodeId: string, token: string): Promise<{ m: Managed; ports: Record<string, number> }> {
  const cfg = join(dir, `${name}.yaml`);
  await writeFile(cfg, yaml(docs));
  const tok = join(dir, `${name}.token`);
  await writeFile(tok, token + '\n');
  const m = spawnManaged(name, process.execPath, [BIN, 'sidecar', '--config', cfg, '--admin-port', '0', '--control-plane', `127.0.0.1:${cpPort}`, '--node-id', nodeId, '--bootstrap-token-file', tok, '--allow-ephemeral-ports'], { env });
  const line = await waitForLine(m, /\{"msg":"sidecar ready".*\}/, 60_000);
  const ready = JSON.parse(line[0]) as { listeners: Record<string, { port: number }> };
  return { m, ports: Object.fromEntries(Object.entries(ready.listeners).map(([k, v]) => [k, v.port])) };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'outrigger-bench-mtls-'));
  const echo = await startEchoBackend();
  await writeFile(join(dir, 'workloads'), 'tok-client bench/client\ntok-server bench/server\ntok-probe bench/probe\n');
  await writeFile(join(dir, 'op-token'), 'op-token-0123456789\n');
  const cpPort = await freePort();
  const cp = spawnManaged('control', process.execPath, [BIN, 'control', '--store', `file:${join(dir, 'store')}`, '--host', '127.0.0.1', '--port', String(cpPort), '--metrics-port', '0', '--token-file', join(dir, 'op-token'), '--workload-token-file', join(dir, 'workloads'), '--allow-ephemeral-ports'], { env });
  await waitForLine(cp, /control plane ready/, 60_000);

  const server = await sidecar('server', dir, [
    doc('Listener', 'strict', { address: { host: '127.0.0.1', port: 0 }, routeConfig: 'app', peerAuthentication: 'PEER_AUTHENTICATION_STRICT', accessLog: { disabled: true } }),
    doc('Listener', 'plain', { address: { host: '127.0.0.1', port: 0 }, routeConfig: 'app', accessLog: { disabled: true } }),
    doc('RouteConfiguration', 'app', { virtualHosts: [{ name: 'app', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'app' } }] }] }),
    doc('Cluster', 'app', { type: 'DISCOVERY_TYPE_STATIC', protocol: 'UPSTREAM_PROTOCOL_HTTP2', endpoints: [{ address: { host: '127.0.0.1', port: echo.port } }] }),
  ], cpPort, 'server-0.bench', 'tok-server');
  const client = await sidecar('client', dir, [
    doc('Listener', 'mtls', { address: { host: '127.0.0.1', port: 0 }, routeConfig: 'mtls', accessLog: { disabled: true } }),
    doc('Listener', 'plain', { address: { host: '127.0.0.1', port: 0 }, routeConfig: 'plain', accessLog: { disabled: true } }),
    doc('RouteConfiguration', 'mtls', { virtualHosts: [{ name: 'a', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'mtls' } }] }] }),
    doc('RouteConfiguration', 'plain', { virtualHosts: [{ name: 'a', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'plain' } }] }] }),
    doc('Cluster', 'mtls', {
      type: 'DISCOVERY_TYPE_STATIC',
      protocol: 'UPSTREAM_PROTOCOL_HTTP2',
      endpoints: [{ address: { host: '127.0.0.1', port: server.ports.strict } }],
      tls: { mode: 'TLS_MODE_MESH', subjectAltNames: ['spiffe://cluster.local/ns/bench/sa/server'] },
    }),
    doc('Cluster', 'plain', { type: 'DISCOVERY_TYPE_STATIC', protocol: 'UPSTREAM_PROTOCOL_HTTP2', endpoints: [{ address: { host: '127.0.0.1', port: server.ports.plain } }] }),
  ], cpPort, 'client-0.bench', 'tok-client');

  // One framed Sample{name: "bench"} for EchoService/Get.
  const body = Buffer.from([0x0a, 0x05, ...Buffer.from('bench')]);
  const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, body.length]), body]);
  const dataFile = join(dir, 'req.bin');
  await writeFile(dataFile, frame);
  const results: Record<string, unknown> = {};
  // Warm-up (JIT, pools, sessions) for both paths, unmeasured; then alternate, so drift hits both alike.
  for (const mode of ['plain', 'mtls']) {
    await runH2load({ url: `http://127.0.0.1:${client.ports[mode]}/outrigger.examples.transcoding.v1.EchoService/Get`, seconds: 3, clients: 4, streams: 8, dataFile, headers: ['content-type: application/grpc', 'te: trailers'] });
  }
  for (const mode of ['plain', 'mtls', 'plain', 'mtls']) {
    const before = new Map([...treeCpu(client.m.pid), ...treeCpu(server.m.pid)]);
    const r = await runH2load({
      url: `http://127.0.0.1:${client.ports[mode]}/outrigger.examples.transcoding.v1.EchoService/Get`,
      seconds: SECONDS,
      clients: 4,
      streams: 8,
      dataFile,
      headers: ['content-type: application/grpc', 'te: trailers'],
    });
    const after = new Map([...treeCpu(client.m.pid), ...treeCpu(server.m.pid)]);
    const cpu = cpuDelta(before, after);
    results[mode] = { succeeded: r.succeeded, failed: r.failed, rps: Math.round(r.rps), p50Ms: r.p50Ms, p99Ms: r.p99Ms, sidecarsCpuUsPerRequest: Math.round((cpu / Math.max(1, r.succeeded)) * 1e6) };
    console.log(JSON.stringify({ mode, ...(results[mode] as object) }));
  }

  // Handshakes: fresh mTLS connections straight to the server sidecar with a workload certificate.
  const idc = createClient(IdentityService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${cpPort}` }));
  const { keyPem, csrPem } = await newKeyAndCsr();
  const cert = await idc.createCertificate({ csr: csrPem, nodeId: 'probe-0.bench' }, { headers: { authorization: 'Bearer tok-probe' } });
  const before = treeCpu(server.m.pid);
  const t0 = performance.now();
  for (let i = 0; i < HANDSHAKES; i++) {
    await new Promise<void>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: server.ports.strict!, cert: cert.certChain.join(''), key: keyPem, ca: cert.trustBundle, checkServerIdentity: () => undefined, ALPNProtocols: ['h2'] }, () => {
        s.end();
        resolve();
      });
      s.on('error', reject);
    });
  }
  const wallMs = performance.now() - t0;
  const serverCpu = cpuDelta(before, treeCpu(server.m.pid));
  console.log(JSON.stringify({ handshakes: HANDSHAKES, serverSidecarCpuUsPerHandshake: Math.round((serverCpu / HANDSHAKES) * 1e6), wallMsPerHandshake: +(wallMs / HANDSHAKES).toFixed(2) }));
  await stopAll();
  await echo.close();
  await rm(dir, { recursive: true, force: true });
}

main().catch(async (err) => {
  console.error(err);
  await stopAll();
  process.exit(1);
});
