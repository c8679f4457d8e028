/**
 * Diagnostic for the load-balancing benchmark's tail (docs/benchmarks.md#load-balancing):
 * the lb backends and one sidecar (peak EWMA over the three, round robin over
 * the two healthy), then rounds of wrk and of the recording client
 * (bench/lib/recording-load.ts) on each, and every slow request of the
 * recording client matched by x-request-id against the sidecar's access log:
 * which endpoint served it and how much of its time the sidecar saw.
 *   node --import tsx bench/lb-trace.ts   (LBT_ROUNDS 2, LBT_SECONDS 5, LBT_CONNECTIONS 16, LBT_SLOW_MS 10)
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { runWrk } from './lib/load.js';
import { drainOutput, freePort, installCleanupHandlers, runTool, spawnManaged, stopAll, waitForLine, waitForPort } from './lib/proc.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const num = (n: string, d: number): number => (process.env[n] ? Number(process.env[n]) : d);
const ROUNDS = num('LBT_ROUNDS', 2);
const SECONDS = num('LBT_SECONDS', 5);
const CONNS = num('LBT_CONNECTIONS', 16);
const SLOW_MS = num('LBT_SLOW_MS', 10);
const log = (m: string): void => void process.stderr.write(`lb-trace: ${m}\n`);

installCleanupHandlers();
const tmp = mkdtempSync(join(tmpdir(), 'outrigger-lb-trace-'));
const backend = spawnManaged('lb-backends', process.execPath, ['--import', 'tsx', join(ROOT, 'bench/backends/lb.ts')], { cpus: '0', cwd: ROOT });
const ports = (await waitForLine(backend, /LISTENING ([\d,]+)/, 30_000))[1]!.split(',').map(Number);
drainOutput(backend);
const listen = { ewma: await freePort(), healthy: await freePort() };
const docs: object[] = [];
for (const [name, lbPolicy, eps] of [
  ['ewma', 'LB_POLICY_PEAK_EWMA', ports],
  ['healthy', 'LB_POLICY_ROUND_ROBIN', ports.slice(0, 2)],
] as const) {
  docs.push(
    { apiVersion: 'outrigger.io/v1', kind: 'Listener', metadata: { name }, spec: { address: { host: '127.0.0.1', port: listen[name] }, routeConfig: name, trustedHops: 1 } },
    { apiVersion: 'outrigger.io/v1', kind: 'RouteConfiguration', metadata: { name }, spec: { virtualHosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: name } }] }] } },
    { apiVersion: 'outrigger.io/v1', kind: 'Cluster', metadata: { name }, spec: { type: 'DISCOVERY_TYPE_STATIC', protocol: 'UPSTREAM_PROTOCOL_HTTP1', lbPolicy, endpoints: eps.map((port) => ({ address: { host: '127.0.0.1', port } })) } },
  );
}
writeFileSync(join(tmp, 'lb.yaml'), docs.map((d) => stringify(d)).join('---\n'));
const sidecarLog = join(tmp, 'sidecar.log');
const adminPort = await freePort();
const sidecar = spawnManaged('sidecar', process.execPath, [join(ROOT, 'bin/outrigger.js'), 'sidecar', '--config', join(tmp, 'lb.yaml'), '--admin-port', String(adminPort)], {
  cpus: '0',
  cwd: ROOT,
  env: { ...process.env, OUTRIGGER_FROM_SOURCE: process.env.OUTRIGGER_FROM_SOURCE ?? '' },
  logFile: sidecarLog,
});
for (const p of Object.values(listen)) if (!(await waitForPort(p, 30_000, () => sidecar.exitCode() === undefined))) throw new Error('sidecar did not start');
log(`tmp ${tmp}; sick :${ports[2]}; sidecar pid ${sidecar.pid}; load ${loadavg()[0]!.toFixed(1)}`);

interface Row { id: string; conn: number; sent: number; first: number; done: number; reads: number }
const pct = (a: number[], p: number): number => {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN;
};

for (let round = 0; round < ROUNDS; round++) {
  for (const name of ['ewma', 'healthy'] as const) {
    const url = `http://127.0.0.1:${listen[name]}/`;
    await runWrk({ url, seconds: 1, connections: CONNS, cpus: '1' });
    const w = await runWrk({ url, seconds: SECONDS, connections: CONNS, cpus: '1' });
    const prefix = `r${round}${name}`;
    const out = join(tmp, `${prefix}.tsv`);
    const r = await runTool('rec', 'taskset', ['-c', '1', process.execPath, '--import', 'tsx', join(ROOT, 'bench/lib/recording-load.ts'), '--port', String(listen[name]), '--connections', String(CONNS), '--seconds', String(SECONDS), '--id-prefix', prefix, '--out', out], { timeoutMs: (SECONDS + 30) * 1000 });
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as { requests: number; p50Ms: number; p99Ms: number; wrkStyleP99Ms: number };
    log(`round ${round} ${name.padEnd(7)} load ${loadavg()[0]!.toFixed(1)}  wrk p50 ${w.p50Ms} p99 ${w.p99Ms} (${w.succeeded})  rec p50 ${summary.p50Ms.toFixed(2)} p99 ${summary.p99Ms.toFixed(2)} corrected as wrk does ${summary.wrkStyleP99Ms.toFixed(2)} (${summary.requests})`);
  }
}
await new Promise((r) => setTimeout(r, 500));
// Access log by request id.
const access = new Map<string, { d: number; up: string; t: number }>();
for (const line of readFileSync(sidecarLog, 'utf8').split('\n')) {
  if (!line.includes('"access"')) continue;
  const j = JSON.parse(line) as { request_id?: string; duration_ms: number; upstream: string; time: string };
  if (j.request_id?.startsWith('r')) access.set(j.request_id, { d: j.duration_ms, up: j.upstream, t: Date.parse(j.time) });
}
for (let round = 0; round < ROUNDS; round++) {
  for (const name of ['ewma', 'healthy'] as const) {
    const rows: Row[] = readFileSync(join(tmp, `r${round}${name}.tsv`), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => {
        const [id, conn, sent, first, done, , reads] = l.split('\t');
        return { id: id!, conn: Number(conn), sent: Number(sent), first: Number(first), done: Number(done), reads: Number(reads) };
      });
    const lat = rows.map((r) => (r.done - r.sent) / 1000);
    const slow = rows.filter((r) => (r.done - r.sent) / 1000 > SLOW_MS);
    let sick = 0, sidecarSlow = 0, outside = 0, multiRead = 0, missing = 0;
    const gaps: number[] = [];
    for (const s of slow) {
      const a = access.get(s.id);
      if (!a) { missing++; continue; }
      if (a.up.endsWith(`:${ports[2]}`)) sick++;
      if (a.d > SLOW_MS) sidecarSlow++;
      else outside++;
      if (s.reads > 1) multiRead++;
      gaps.push((s.done - s.sent) / 1000 - a.d);
    }
    log(
      `${name} r${round}: ${rows.length} req, p99 ${pct(lat, 99).toFixed(2)} ms, ${slow.length} > ${SLOW_MS} ms (${((slow.length / rows.length) * 100).toFixed(2)} %): ` +
        `to the sick endpoint ${sick}, slow inside the sidecar ${sidecarSlow}, slow outside it ${outside}, response in >1 read ${multiRead}, not in the log ${missing}; ` +
        `client − sidecar gap of slow ones p50 ${pct(gaps, 50).toFixed(1)} p90 ${pct(gaps, 90).toFixed(1)} ms`,
    );
    const sample = slow.slice(0, 12).map((s) => {
      const a = access.get(s.id);
      return `${s.id} conn ${s.conn} lat ${((s.done - s.sent) / 1000).toFixed(1)} ttfb ${((s.first - s.sent) / 1000).toFixed(1)} reads ${s.reads} | sidecar ${a?.d ?? '-'} ms up ${a?.up ?? '-'}`;
    });
    for (const l of sample) log(`   ${l}`);
  }
}
await stopAll();
log(`kept ${tmp}`);
