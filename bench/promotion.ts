/**
 * What the sidecar promotes per request (`npm run bench:promotion`): bytes
 * that survive the scavenges and reach V8's old space, to be freed only by a
 * mark-compact. An in-process sidecar (test/support/sidecar-harness.ts) on
 * one h2c route to a plain node:http2 backend in a child process; h2load
 * (`BENCH_PROMO_CLIENTS` connections, 1 stream each) sends
 * `BENCH_PROMO_REQUESTS` requests per round; after each round three minor
 * GCs run and the old-space growth per request is printed. With
 * `BENCH_PROMO_PROFILE=file.json` the last round also records V8's
 * sampling heap profile with the objects later collected by a major GC
 * included (HeapProfiler.startSampling, includeObjectsCollectedByMajorGC):
 * after the minor GCs, its samples are the promoted objects and the live
 * ones, by allocation site. Diagnostic, not a gate; bounded by the request
 * counts.
 */
import inspector from 'node:inspector';
import { execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';
import { cluster, listener, prefixRoute, routes } from '../test/support/config-docs.js';
import { startTestSidecar } from '../test/support/sidecar-harness.js';

const REQUESTS = Number(process.env.BENCH_PROMO_REQUESTS ?? 4000);
const CLIENTS = Number(process.env.BENCH_PROMO_CLIENTS ?? 1);
const ROUNDS = Number(process.env.BENCH_PROMO_ROUNDS ?? 3);
const PROFILE = process.env.BENCH_PROMO_PROFILE;

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as (o?: { type: 'minor' | 'major' }) => void;
const BACKEND = `const s = require('node:http2').createServer();
s.on('stream', (st) => { st.on('error', () => {}); st.respond({ ':status': 200 }); st.end('x'); });
s.listen(0, '127.0.0.1', () => console.log(s.address().port));`;

const child = spawn(process.execPath, ['-e', BACKEND], { stdio: ['ignore', 'pipe', 'inherit'] });
try {
  const backendPort = await new Promise<number>((r) => child.stdout!.once('data', (d: Buffer) => r(Number(String(d)))));
  const sc = await startTestSidecar([listener('main', { accessLog: { disabled: true } }), routes('main', [prefixRoute('/', 'up')]), cluster('up', [backendPort], 'UPSTREAM_PROTOCOL_HTTP2')]);
  const load = (n: number): Promise<void> =>
    new Promise((resolve, reject) =>
      execFile('h2load', ['-n', String(n), `-c${CLIENTS}`, '-m1', `http://127.0.0.1:${sc.port()}/`], { timeout: 120_000 }, (err, out) => {
        if (err || !new RegExp(`${n} succeeded`).test(out)) reject(new Error(`h2load: ${err?.message ?? out}`));
        else resolve();
      }),
    );
  const oldSpace = (): number => v8.getHeapSpaceStatistics().find((x) => x.space_name === 'old_space')!.space_used_size;
  const minorGcs = async (): Promise<void> => {
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setImmediate(r));
      gc({ type: 'minor' });
    }
  };
  const session = new inspector.Session();
  session.connect();
  const post = (m: string, p: object = {}): Promise<{ profile?: unknown }> => new Promise((res, rej) => session.post(m, p, (e, r) => (e ? rej(e) : res(r as { profile?: unknown }))));
  await load(Math.min(2000, REQUESTS)); // warm-up: JIT, the pooled upstream session
  await minorGcs();
  for (let round = 1; round <= ROUNDS; round++) {
    const profile = PROFILE !== undefined && round === ROUNDS;
    if (profile) await post('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMajorGC: true });
    const before = oldSpace();
    await load(REQUESTS);
    await minorGcs();
    process.stdout.write(`round ${round}: ${REQUESTS} requests over ${CLIENTS} connection(s), old space +${((oldSpace() - before) / REQUESTS).toFixed(0)} B per request after minor GCs\n`);
    if (profile) {
      writeFileSync(PROFILE, JSON.stringify((await post('HeapProfiler.stopSampling')).profile));
      process.stdout.write(`sampling heap profile: ${PROFILE}\n`);
    }
  }
  session.disconnect();
  await sc.close();
} finally {
  child.kill();
}
