import { expect } from 'chai';
import { request } from 'undici';
import { runStat } from '../../src/cli/stat-command.js';
import { runTap } from '../../src/cli/tap-command.js';
import { runTop } from '../../src/cli/top-command.js';
import type { LiveIo } from '../../src/cli/sidecar-admin.js';
import { advertisedAdmin } from '../../sidecar/main.js';
import type { LiveRow } from '../../src/observability/live-stats.js';
import type { TapEvent } from '../../src/observability/tap.js';
import { startH1Echo, type Started } from '../support/backends.js';
import { cluster, listener, prefixRoute, routes } from '../support/config-docs.js';
import { client, removeDir, startCpSidecar, startTestControlPlane, tempDir, writeToken, type TestCpSidecar } from '../support/control-harness.js';
import type { JsonObject } from '../../src/config/snapshot.js';

const WINDOW = { live: { windowMs: 600_000, bucketMs: 60_000 } };

function captured(): LiveIo & { text(): string; errors(): string } {
  let out = '';
  let err = '';
  return { out: (s) => void (out += s), err: (s) => void (err += s), text: () => out, errors: () => err };
}

async function send(port: number, path: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await request(`http://127.0.0.1:${port}${path}`);
    await r.body.text();
    expect(r.statusCode).to.equal(200);
  }
}

/**
 * `outrigger stat / top / tap --control-plane`: the live view of every
 * sidecar connected to a control plane, at the admin address each one
 * advertises in its node metadata (Status lists it).
 */
describe('live view across the mesh: stat / top / tap --control-plane', function () {
  let echo: Started<unknown>;
  let cp: Awaited<ReturnType<typeof startTestControlPlane>>;
  let a: TestCpSidecar, b: TestCpSidecar;
  let dir: string;
  let target: string[];

  before(async () => {
    echo = await startH1Echo('echo');
    cp = await startTestControlPlane();
    dir = await tempDir();
    target = ['--control-plane', cp.address, '--token-file', await writeToken(dir)];
    await client(cp.address).apply({
      documents: [listener('main'), routes('main', [prefixRoute('/', 'web')]), cluster('web', [echo.port], 'UPSTREAM_PROTOCOL_HTTP1')].map((d) => d as unknown as JsonObject),
    });
    a = await startCpSidecar({ address: cp.address, nodeId: 'sidecar-a' }, { telemetry: WINDOW });
    b = await startCpSidecar({ address: cp.address, nodeId: 'sidecar-b' }, { telemetry: WINDOW });
    await send(a.port(), '/a/1', 6);
    await send(b.port(), '/b/1', 4);
    await send(b.port(), '/a/1', 2);
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await cp?.close();
    await echo?.close();
    await removeDir(dir);
  });

  it('Status lists each sidecar with the admin address it advertises', async () => {
    const st = await client(cp.address).status({});
    const byNode = Object.fromEntries(st.sidecars.map((s) => [s.nodeId, s.adminAddress]));
    expect(byNode).to.deep.equal({
      'sidecar-a': `127.0.0.1:${a.sidecar.adminPort}`,
      'sidecar-b': `127.0.0.1:${b.sidecar.adminPort}`,
    });
  });

  it('stat and top merge every connected sidecar', async () => {
    const io = captured();
    expect(await runStat([...target, '--by', 'cluster', '--json'], io), io.errors()).to.equal(0);
    const rows = (JSON.parse(io.text()) as { rows: LiveRow[] }).rows;
    expect(rows.map((r) => [r.key, r.requests, r.success_rate])).to.deep.equal([['web', 12, 1]]);
    const top = captured();
    expect(await runTop([...target, '--json'], top), top.errors()).to.equal(0);
    expect((JSON.parse(top.text()) as { rows: LiveRow[] }).rows.map((r) => [r.key, r.requests])).to.deep.equal([
      ['/a/1', 8],
      ['/b/1', 4],
    ]);
  });

  it('tap streams requests from every connected sidecar', async () => {
    const io = captured();
    let opened!: () => void;
    const open = new Promise<void>((r) => (opened = r));
    const tap = runTap([...target, '--path-prefix', '/t/', '--max', '4', '--json'], io, opened);
    await open;
    await send(a.port(), '/t/a', 2);
    await send(b.port(), '/t/b', 2);
    expect(await tap, io.errors()).to.equal(0);
    const paths = io.text().trim().split('\n').map((l) => (JSON.parse(l) as TapEvent).path).sort();
    expect(paths).to.deep.equal(['/t/a', '/t/a', '/t/b', '/t/b']);
  });

  it('a control plane with no sidecar advertising an admin address is an error, exit 1', async () => {
    const empty = await startTestControlPlane();
    try {
      const io = captured();
      expect(await runStat(['--control-plane', empty.address, '--token-file', target[3]!], io)).to.equal(1);
      expect(io.errors()).to.include('no connected sidecar advertises an admin address');
      const bad = captured();
      expect(await runStat(['--control-plane', cp.address], bad), 'no token: refused').to.equal(1);
      expect(bad.errors()).to.match(/outrigger stat: .*(unauthenticated|token)/i);
    } finally {
      await empty.close();
    }
  });

  it('a wildcard admin bind advertises $POD_IP', () => {
    expect(advertisedAdmin('127.0.0.1', 15000, {})).to.equal('127.0.0.1:15000');
    expect(advertisedAdmin('0.0.0.0', 15000, { POD_IP: '10.1.2.3' })).to.equal('10.1.2.3:15000');
    expect(advertisedAdmin('::', 15000, { POD_IP: 'fd00::7' })).to.equal('[fd00::7]:15000');
    expect(advertisedAdmin('::1', 15001, {})).to.equal('[::1]:15001');
  });
});
