import { expect } from 'chai';
import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { cluster, listener, prefixRoute, routes, toYaml } from '../../support/config-docs.js';
import { metricValue } from '../../support/prom-text.js';
import { spawnSidecar } from '../../support/sidecar-process.js';
import { waitFor } from '../../support/wait.js';

/** On `x-bg`, fails outside the request: a rejected promise nobody awaits and a throw in a timer. */
const STRAY_PLUGIN = `
export function compile() {
  return {
    onRequestHeaders(ds) {
      if (ds.headers['x-bg'] === undefined) return;
      Promise.reject(new Error('a rejection nobody awaits'));
      setTimeout(() => { throw new Error('a throw in a timer'); }, 1);
    },
  };
}
`;

/**
 * A plugin's stray errors escape every request, so the per-request catch
 * cannot see them; Node's default would end the sidecar (and every
 * connection of the pod) for them. The CLI's process keeps running.
 */
describe('plugins: a stray error outside any request (real process)', function () {
  this.timeout(40000);
  let dir = '';
  let backend: http.Server;
  let child: ChildProcess | undefined;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'outrigger-plugin-guard-'));
    backend = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', () => r()));
  });
  after(async () => {
    child?.kill('SIGKILL');
    backend.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('is logged and counted, and the sidecar keeps serving', async () => {
    await writeFile(join(dir, 'stray.mjs'), STRAY_PLUGIN);
    const port = (backend.address() as AddressInfo).port;
    const config = join(dir, 'sidecar.yaml');
    await writeFile(
      config,
      toYaml([
        listener('main', { address: { host: '127.0.0.1', port: 0 }, httpFilters: [{ name: 'stray', plugin: { module: './stray.mjs' } }] }),
        routes('main', [prefixRoute('/', 'app')]),
        cluster('app', [port], 'UPSTREAM_PROTOCOL_HTTP1'),
      ]),
    );
    const sc = await spawnSidecar(config);
    child = sc.proc;
    let exited: number | null | undefined;
    void sc.exit.then((c) => (exited = c));
    const get = async (headers: Record<string, string> = {}) => {
      const r = await request(`http://127.0.0.1:${sc.port}/`, { headers });
      return { status: r.statusCode, text: await r.body.text() };
    };
    expect(await get({ 'x-bg': '1' })).to.deep.equal({ status: 200, text: 'ok' });
    // The config file's loader made the module path absolute (config/plugin-paths.ts).
    const module = join(dir, 'stray.mjs');
    const metrics = async () => (await request(`http://127.0.0.1:${sc.admin}/metrics`)).body.text();
    await waitFor(async () => (metricValue(await metrics(), 'outrigger_plugin_errors_total', { plugin: module, phase: 'background' }) ?? 0) === 2, 'both stray errors counted');
    expect(await get()).to.deep.equal({ status: 200, text: 'ok' });
    expect(exited, 'the sidecar is still running').to.equal(undefined);
    const logged = sc.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['msg'] === 'plugin error outside any request; the sidecar keeps running');
    expect(logged.map((l) => [l['module'], l['kind'], l['err']]).sort()).to.deep.equal([
      [module, 'uncaughtException', 'a throw in a timer'],
      [module, 'unhandledRejection', 'a rejection nobody awaits'],
    ]);
  });
});
