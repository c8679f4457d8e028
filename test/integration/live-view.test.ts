import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { request } from 'undici';
import { runStat } from '../../src/cli/stat-command.js';
import { runTap } from '../../src/cli/tap-command.js';
import { runTop } from '../../src/cli/top-command.js';
import type { LiveIo } from '../../src/cli/sidecar-admin.js';
import type { LiveRow } from '../../src/observability/live-stats.js';
import type { TapEvent } from '../../src/observability/tap.js';
import { startH1Echo, type Started } from '../support/backends.js';
import { cluster, listener, prefixRoute, routes } from '../support/config-docs.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';
import { waitFor } from '../support/wait.js';

const WINDOW = { windowMs: 600_000, bucketMs: 60_000 };

function captured(): LiveIo & { text(): string } {
  let out = '';
  return { out: (s) => void (out += s), err: (s) => void (out += s), text: () => out };
}

/** Sends `n` requests to `path`, at most 8 in flight (a bounded load). */
async function load(port: number, paths: readonly string[], headers: Record<string, string> = {}): Promise<number[]> {
  const codes: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < paths.length) {
        const p = paths[next++]!;
        const r = await request(`http://127.0.0.1:${port}${p}`, { headers });
        await r.body.text();
        codes.push(r.statusCode);
      }
    }),
  );
  return codes;
}

describe('live view: /stats/live, /tap and outrigger stat / tap / top against a live sidecar', function () {
  let h1: Started<unknown>;
  let sc: TestSidecar;
  let admin: string;

  before(async () => {
    h1 = await startH1Echo('h1');
    sc = await startTestSidecar([
      listener('main', { accessLog: { logHeaders: ['authorization', 'x-custom'] } }),
      routes('main', [prefixRoute('/api/', 'h1c'), prefixRoute('/other/', 'h1c'), prefixRoute('/empty/', 'empty')]),
      cluster('h1c', [h1.port], 'UPSTREAM_PROTOCOL_HTTP1'),
      cluster('empty', [], 'UPSTREAM_PROTOCOL_HTTP1', { type: 'DISCOVERY_TYPE_EDS', endpoints: [] }),
      { apiVersion: 'outrigger.io/v1', kind: 'ClusterLoadAssignment', metadata: { name: 'empty' }, spec: { endpoints: [] } },
    ], { telemetry: { live: WINDOW } }); // a 10-minute window: a slow machine cannot roll the load out of it
    admin = `127.0.0.1:${sc.sidecar.adminPort}`;
    const paths = [
      ...Array.from({ length: 40 }, (_, i) => `/api/${i % 4}`),
      ...Array.from({ length: 15 }, () => '/other/x'),
      ...Array.from({ length: 5 }, () => '/empty/x'),
    ];
    const codes = await load(sc.port(), paths);
    expect(codes.filter((c) => c === 200).length).to.equal(55);
    await waitFor(() => sc.access.length === 60, 'sixty access-log lines');
  });
  after(async () => {
    await sc.close();
    await h1.close();
  });

  it('outrigger stat --by route: requests, success rate and latency per route from the rolling window', async () => {
    const io = captured();
    expect(await runStat(['--sidecar', admin, '--json'], io)).to.equal(0);
    const { rows } = JSON.parse(io.text()) as { rows: LiveRow[] };
    expect(rows.map((r) => [r.key, r.requests, r.success_rate])).to.deep.equal([
      ['h1c-api-', 40, 1],
      ['h1c-other-', 15, 1],
      ['empty-empty-', 5, 0],
    ]);
    for (const r of rows) {
      expect(r.rps).to.equal(Math.round((r.requests / 600) * 1000) / 1000);
      expect(r.p50_ms! <= r.p95_ms! && r.p95_ms! <= r.p99_ms!).to.equal(true);
    }
    const byCluster = captured();
    expect(await runStat(['--sidecar', admin, '--sidecar', admin, '--by', 'cluster', '--json'], byCluster)).to.equal(0);
    const merged = (JSON.parse(byCluster.text()) as { rows: LiveRow[] }).rows.map((r) => [r.key, r.requests]);
    expect(merged, 'two sidecars (the same one twice) add up').to.deep.equal([['h1c', 110], ['empty', 10]]);
  });

  it('outrigger top: the busiest paths', async () => {
    const io = captured();
    expect(await runTop(['--sidecar', admin, '--max', '3', '--json'], io)).to.equal(0);
    const { rows } = JSON.parse(io.text()) as { rows: LiveRow[] };
    expect(rows.map((r) => [r.key, r.requests])).to.deep.equal([['/other/x', 15], ['/api/0', 10], ['/api/1', 10]]);
  });

  it('outrigger tap: filtered by path prefix, stops after --max, headers redacted as in the access log', async () => {
    const io = captured();
    let opened!: () => void;
    const open = new Promise<void>((r) => (opened = r));
    const tap = runTap(['--sidecar', admin, '--path-prefix', '/api/', '--max', '5', '--json'], io, opened);
    await open;
    const paths = Array.from({ length: 20 }, (_, i) => (i % 2 ? '/other/y' : `/api/t${i}`));
    const sent = load(sc.port(), paths, { authorization: 'Bearer secret', 'x-custom': 'visible' });
    expect(await tap).to.equal(0);
    await sent;
    const events = io.text().trim().split('\n').map((l) => JSON.parse(l) as TapEvent);
    expect(events).to.have.length(5);
    for (const e of events) {
      expect(e.path.startsWith('/api/t')).to.equal(true);
      expect(e.status).to.equal(200);
      expect(e.route).to.equal('h1c-api-');
      expect(e.upstream).to.equal(`127.0.0.1:${h1.port}`);
      expect(e.request_id).to.match(/^[0-9a-f-]{36}$/);
      expect(e.headers).to.deep.equal({ authorization: '[redacted]', 'x-custom': 'visible' });
    }
    expect(io.text()).to.not.include('secret');
  });

  it('the CLI binary prints the stat table', async () => {
    const child = spawn(process.execPath, ['bin/outrigger.js', 'stat', '--sidecar', admin], { env: { ...process.env, OUTRIGGER_FROM_SOURCE: '1' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(code).to.equal(0);
    const lines = out.trim().split('\n');
    expect(lines[0]).to.match(/^ROUTE\s+SUCCESS\s+RPS\s+REQUESTS\s+LATENCY_P50\s+LATENCY_P95\s+LATENCY_P99$/);
    expect(lines.find((l) => l.startsWith('empty-empty-'))).to.match(/^empty-empty-\s+0\.00%\s+0\.008\s+5\s/);
  });

  it('/stats/live refuses an unknown dimension; /tap an invalid max', async () => {
    const a = await request(`http://${admin}/stats/live?by=nope`);
    expect(a.statusCode).to.equal(400);
    await a.body.text();
    const b = await request(`http://${admin}/tap?max=-1`);
    expect(b.statusCode).to.equal(400);
    await b.body.text();
  });
});
