/**
 * The sidecar's footprint (issue 14): spawn to ready, idle RSS with the demo
 * config, and RSS holding 10,000 idle downstream connections with 5,000
 * routes. Each sidecar is its own process (`outrigger sidecar`, dist/ when
 * built, as users run it); the connections come from this process. Bounded:
 * each step has a deadline and the whole run stops after --max-seconds.
 *
 *   npm run bench:footprint [-- --connections 10000 --routes 5000 --max-seconds 120]
 *
 * One worker (`--concurrency 1`): with more, RSS is the primary's plus each worker's.
 * Goals: idle RSS ≤ 60 MB (demo config, one worker), ≤ 250 MB with 10,000
 * idle connections and 5,000 routes, spawn to ready ≤ 500 ms.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { freePort } from './lib/proc.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '10000' },
    routes: { type: 'string', default: '5000' },
    'max-seconds': { type: 'string', default: '120' },
  },
});
const CONNECTIONS = Number(values.connections);
const ROUTES = Number(values.routes);
const watchdog = setTimeout(() => {
  console.error('footprint: over --max-seconds; stopping');
  process.exit(3);
}, Number(values['max-seconds']) * 1000);
watchdog.unref();

const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Spawns `outrigger sidecar ARGS`; resolves with the child, its ready line's listener ports, and ms from spawn to ready. */
function startSidecar(args: string[]): Promise<{ child: ChildProcess; ports: Record<string, number>; readyMs: number }> {
  const t0 = process.hrtime.bigint();
  const child = spawn(process.execPath, [join(ROOT, 'bin/outrigger.js'), 'sidecar', '--admin-port', '0', '--allow-ephemeral-ports', '--concurrency', '1', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`sidecar not ready in 30 s: ${out.slice(-500)}`)), 30_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const line = out.split('\n').find((l) => l.includes('"msg":"sidecar ready"'));
      if (!line) return;
      clearTimeout(timer);
      child.stdout!.removeAllListeners('data');
      child.stdout!.resume(); // access log lines: drained, not kept
      const listeners = (JSON.parse(line) as { listeners: Record<string, { port: number }> }).listeners;
      resolve({ child, ports: Object.fromEntries(Object.entries(listeners).map(([k, v]) => [k, v.port])), readyMs: Number(process.hrtime.bigint() - t0) / 1e6 });
    });
    child.once('exit', (code) => reject(new Error(`sidecar exited ${code}: ${out.slice(-500)}`)));
  });
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** When the settled idle RSS is read: V8's memory reducer runs once allocation has been low for a while (~15 s after ready here) and gives back the young generation's pages. */
const SETTLED_MS = 25_000;

async function idle(): Promise<{ readyMs: number; rss: number; settled: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-footprint-'));
  try {
    // The demo config as shipped, on a free port (the demo's 8080 may be taken).
    const port = await freePort();
    const demo = readFileSync(join(ROOT, 'examples/demo/sidecar.yaml'), 'utf8').replace('port: 8080', `port: ${port}`);
    writeFileSync(join(dir, 'sidecar.yaml'), demo);
    const s = await startSidecar(['--config', join(dir, 'sidecar.yaml')]);
    await settle(2000);
    const rss = rssMiB(s.child.pid!);
    await settle(SETTLED_MS - 2000);
    const settled = rssMiB(s.child.pid!);
    s.child.kill('SIGKILL');
    return { readyMs: s.readyMs, rss, settled };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function loaded(): Promise<{ rssBefore: number; rssAfter: number; opened: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-footprint-'));
  try {
    const backend = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    const routes = Array.from({ length: ROUTES }, (_, i) => ({ name: `r${i}`, match: { prefix: `/svc-${i}/` }, route: { cluster: 'backend' } }));
    const docs = [
      { apiVersion: 'outrigger.io/v1', kind: 'Listener', metadata: { name: 'main' }, spec: { address: { host: '127.0.0.1', port: await freePort() }, routeConfig: 'main', limits: { maxConnections: CONNECTIONS + 100 } } },
      { apiVersion: 'outrigger.io/v1', kind: 'RouteConfiguration', metadata: { name: 'main' }, spec: { virtualHosts: [{ name: 'all', domains: ['*'], routes }] } },
      { apiVersion: 'outrigger.io/v1', kind: 'Cluster', metadata: { name: 'backend' }, spec: { type: 'DISCOVERY_TYPE_STATIC', protocol: 'UPSTREAM_PROTOCOL_HTTP1', endpoints: [{ address: { host: '127.0.0.1', port: (backend.address() as net.AddressInfo).port } }] } },
    ];
    writeFileSync(join(dir, 'sidecar.yaml'), docs.map((d) => stringify(d)).join('---\n'));
    const s = await startSidecar(['--config', join(dir, 'sidecar.yaml')]);
    await settle(1000);
    const rssBefore = rssMiB(s.child.pid!);
    const port = s.ports.main!;
    const sockets: net.Socket[] = [];
    // Opened in batches of 500 so the accept queue keeps up; each connection stays idle (no request:
    // protocol detection waits on the first bytes, as with a client that connected ahead of time).
    for (let i = 0; i < CONNECTIONS; i += 500) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(500, CONNECTIONS - i) }, () =>
          new Promise<net.Socket | undefined>((resolve) => {
            const c = net.connect(port, '127.0.0.1', () => resolve(c));
            c.on('error', () => resolve(undefined));
          }),
        ),
      );
      for (const c of batch) if (c) sockets.push(c);
    }
    await settle(3000);
    const rssAfter = rssMiB(s.child.pid!);
    const opened = sockets.filter((c) => !c.destroyed).length;
    for (const c of sockets) c.destroy();
    s.child.kill('SIGKILL');
    backend.close();
    return { rssBefore, rssAfter, opened };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const built = (() => {
  try {
    readFileSync(join(ROOT, 'dist/src/cli/main.js'));
    return 'dist/';
  } catch {
    return 'sources through tsx (run `npm run build` for the figures users get)';
  }
})();
const load = loadavg()[0]!.toFixed(1);
const a = await idle();
const b = await loaded();
console.log(`## Sidecar footprint (${built}; Node ${process.version}; load average ${load})`);
console.log('');
console.log('| measure | figure | goal |');
console.log('|---|---|---|');
console.log(`| spawn → ready, demo config | ${a.readyMs.toFixed(0)} ms | ≤ 500 ms |`);
console.log(`| idle RSS, demo config, 2 s after ready | ${a.rss.toFixed(1)} MiB | ≤ 60 MB |`);
console.log(`| idle RSS, demo config, ${SETTLED_MS / 1000} s after ready (V8's memory reducer has run) | ${a.settled.toFixed(1)} MiB | ≤ 60 MB |`);
console.log(`| RSS, ${ROUTES} routes, no connection | ${b.rssBefore.toFixed(1)} MiB | |`);
console.log(`| RSS, ${ROUTES} routes, ${b.opened} idle connections | ${b.rssAfter.toFixed(1)} MiB | ≤ 250 MB |`);
process.exit(0);
