/**
 * Where the load-balancing benchmark's tail comes from
 * (docs/benchmarks.md#load-balancing): rounds of wrk and of the recording
 * client (bench/lib/recording-load.ts) against the peak-EWMA listener and the
 * healthy pair, then
 *  - every slow request of the recording client matched by x-request-id
 *    against the sidecar's access log: which endpoint served it and whether
 *    the sidecar saw the time (slow inside) or not (slow outside: queued in
 *    the client or the kernel, or the CPU was taken);
 *  - wrk's own requests as the sidecar logged them, through wrk's
 *    coordinated-omission correction, beside the p99 wrk printed;
 *  - wrk and the recording client against one endpoint, no sidecar, where
 *    0.2 % of the responses take 50 ms.
 * Not part of `npm run bench`. Run:
 *   node --import tsx bench/lb-trace.ts   (LBT_ROUNDS 2, LBT_SECONDS 5, LBT_CONNECTIONS 16, LBT_SLOW_MS 10)
 * Servers on CPU 0, clients on CPU 1; the temporary directory (sidecar.log,
 * per-request TSVs) is kept and printed.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLbRig, LB_LISTENERS } from './lib/lb-setup.js';
import { runWrk } from './lib/load.js';
import { drainOutput, installCleanupHandlers, spawnManaged, stop, stopAll, waitForLine } from './lib/proc.js';
import { runRecordingTool, wrkCorrected, type RecordingSummary } from './lib/recording-load.js';
import { pct } from './lib/stats.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const num = (n: string, d: number): number => (process.env[n] ? Number(process.env[n]) : d);
const ROUNDS = num('LBT_ROUNDS', 2);
const SECONDS = num('LBT_SECONDS', 5);
const CONNS = num('LBT_CONNECTIONS', 16);
const SLOW_MS = num('LBT_SLOW_MS', 10);
const log = (m: string): void => void process.stderr.write(`lb-trace: ${m}\n`);
const load = (): string => loadavg()[0]!.toFixed(1);
const f = (v: number | null | undefined): string => (v === null || v === undefined || Number.isNaN(v) ? '-' : v.toFixed(2));

interface AccessRow {
  id: string;
  listener: string;
  durationMs: number;
  upstream: string;
  /** Wall-clock ms the line was written (the exchange's end). */
  at: number;
}

function readAccessLog(file: string): AccessRow[] {
  const rows: AccessRow[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.includes('"msg":"access"')) continue;
    const j = JSON.parse(line) as { request_id: string; listener: string; duration_ms: number; upstream: string; time: string };
    rows.push({ id: j.request_id, listener: j.listener, durationMs: j.duration_ms, upstream: j.upstream, at: Date.parse(j.time) });
  }
  return rows;
}

interface WrkWindow {
  listener: string;
  round: number;
  from: number;
  to: number;
  seconds: number;
  printedP99: number | null;
}

async function main(): Promise<void> {
  installCleanupHandlers();
  const listeners = LB_LISTENERS.filter((l) => l.name === 'ewma' || l.name === 'healthy');
  const rig = await startLbRig({ root: ROOT, listeners, accessLog: true, trustedHops: 1, fromDist: true, serverCpus: '0' });
  const sick = `127.0.0.1:${rig.ports[2]}`;
  log(`kept in ${rig.tmp}; sick endpoint ${sick}; load average ${load()}`);
  const windows: WrkWindow[] = [];
  const recs: { listener: string; round: number; tsv: string; summary: RecordingSummary }[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const l of listeners) {
      const url = `http://127.0.0.1:${rig.listen[l.name]}/`;
      await runWrk({ url, seconds: 1, connections: CONNS, cpus: '1' });
      const from = Date.now();
      const w = await runWrk({ url, seconds: SECONDS, connections: CONNS, cpus: '1' });
      windows.push({ listener: l.name, round, from, to: Date.now(), seconds: w.seconds, printedP99: w.p99Ms });
      const tsv = join(rig.tmp, `r${round}${l.name}.tsv`);
      const name = `r${round}${l.name}`;
      const got = await runRecordingTool({ root: ROOT, targets: [{ name, port: rig.listen[l.name]! }], connections: CONNS, seconds: SECONDS, cpus: '1', out: tsv });
      if ('error' in got) throw new Error(String(got.error));
      const s = got[name]!;
      recs.push({ listener: l.name, round, tsv, summary: s });
      log(
        `round ${round} ${l.name.padEnd(7)} load ${load()}  wrk: p50 ${f(w.p50Ms)} p99 ${f(w.p99Ms)} ms (${w.succeeded} req)  ` +
          `recording client: p50 ${f(s.p50Ms)} p99 ${f(s.p99Ms)} ms, the same samples corrected as wrk does p99 ${f(s.wrkStyleP99Ms)} ms (${s.requests} req)`,
      );
    }
  }
  await stopAll();
  const access = readAccessLog(rig.sidecarLog);
  const byId = new Map(access.map((a) => [a.id, a]));

  log('-- slow requests of the recording client, matched by x-request-id with the access log');
  for (const r of recs) {
    const rows = readFileSync(r.tsv, 'utf8').trim().split('\n').slice(1).map((l) => l.split('\t'));
    let slow = 0, toSick = 0, inside = 0, outside = 0, multiRead = 0, missing = 0;
    const gaps: number[] = [];
    for (const [, id, , sent, , done, , reads] of rows) {
      const ms = (Number(done) - Number(sent)) / 1000;
      if (ms <= SLOW_MS) continue;
      slow++;
      if (Number(reads) > 1) multiRead++;
      const a = byId.get(id!);
      if (!a) {
        missing++;
        continue;
      }
      if (a.upstream === sick) toSick++;
      if (a.durationMs > SLOW_MS) inside++;
      else outside++;
      gaps.push(ms - a.durationMs);
    }
    gaps.sort((x, y) => x - y);
    log(
      `${r.listener} round ${r.round}: ${rows.length} req, ${slow} over ${SLOW_MS} ms (${((slow / rows.length) * 100).toFixed(2)} %): served by the sick endpoint ${toSick}; ` +
        `slow inside the sidecar ${inside}, outside it ${outside}; response over >1 read ${multiRead}; not in the log ${missing}; client − sidecar time of the slow ones p50 ${f(pct(gaps, 50))} p90 ${f(pct(gaps, 90))} ms`,
    );
  }

  log("-- wrk's own requests as the sidecar logged them (duration), through wrk's correction");
  for (const w of windows) {
    const d = access.filter((a) => a.listener === w.listener && a.at >= w.from && a.at <= w.to).map((a) => a.durationMs * 1000);
    const sorted = Float64Array.from(d).sort();
    const corrected = wrkCorrected(sorted, w.seconds * 1e6, CONNS);
    const sickShare = access.filter((a) => a.listener === w.listener && a.at >= w.from && a.at <= w.to && a.upstream === sick).length / Math.max(1, d.length);
    log(
      `${w.listener} round ${w.round}: ${d.length} logged, sick share ${(sickShare * 100).toFixed(2)} %, over ${SLOW_MS} ms ${d.filter((v) => v > SLOW_MS * 1000).length}; ` +
        `sidecar p99 ${f(pct(sorted, 99) / 1000)} ms, corrected as wrk does ${f(pct(corrected, 99) / 1000)} ms (+${corrected.length - sorted.length} synthetic); wrk printed ${f(w.printedP99)} ms`,
    );
  }

  log('-- one endpoint, no sidecar, 0.2 % of responses 50 ms late');
  const be = spawnManaged('lb-backends-rare', process.execPath, ['--import', 'tsx', join(ROOT, 'bench/backends/lb.ts'), '--slow-fraction', '0.002'], { cpus: '0', cwd: ROOT });
  const port = Number((await waitForLine(be, /LISTENING [\d,]+,(\d+)/, 30_000))[1]);
  drainOutput(be);
  for (let round = 0; round < ROUNDS; round++) {
    const w = await runWrk({ url: `http://127.0.0.1:${port}/`, seconds: SECONDS, connections: CONNS, cpus: '1' });
    const got = await runRecordingTool({ root: ROOT, targets: [{ name: 'rare', port }], connections: CONNS, seconds: SECONDS, cpus: '1' });
    if ('error' in got) throw new Error(String(got.error));
    const s = got.rare!;
    log(`round ${round} load ${load()}  wrk: p50 ${f(w.p50Ms)} p99 ${f(w.p99Ms)} ms  recording client: p50 ${f(s.p50Ms)} p99 ${f(s.p99Ms)} ms, corrected as wrk does ${f(s.wrkStyleP99Ms)} ms`);
  }
  await stop(be);
}

main().catch(async (err: unknown) => {
  log(`failed: ${(err as Error).stack ?? String(err)}`);
  await stopAll();
  process.exit(1);
});
