import { fromJson } from '@bufbuild/protobuf';
import { expect } from 'chai';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startBookstore, type BookstoreServer } from '../../examples/bookstore/server.js';
import { ModuleLoader } from '../../src/core/module-loader.js';
import { seededRandom } from '../../src/core/random.js';
import { ClusterSchema, type Cluster } from '../../src/gen/outrigger/config/v1/cluster_pb.js';
import { ClusterRuntime } from '../../src/proxy/upstream/cluster.js';
import { HealthCheckers } from '../../src/proxy/upstream/health/health-checkers.js';
import { FakeClock } from '../support/fake-clock.js';
import { waitFor } from '../support/wait.js';

const CHECK = resolve(fileURLToPath(new URL('../../examples/plugins/redact-field/bookstore-check.mjs', import.meta.url)));

function clusterOf(ports: number[], custom: unknown): Cluster {
  return fromJson(ClusterSchema, {
    name: 'c',
    type: 'DISCOVERY_TYPE_STATIC',
    endpoints: ports.map((port) => ({ address: { host: '127.0.0.1', port } })),
    healthCheck: { interval: '1s', noTrafficInterval: '1s', timeout: '1s', unhealthyThreshold: 2, healthyThreshold: 1, custom },
  } as never);
}

/**
 * Cluster.healthCheck.custom: a module's check run by the cluster's health
 * checker on its interval (the injected clock), thresholds and timeout,
 * against real servers — the example's ListShelves check ejecting a
 * Bookstore that went away and restoring it when it is back.
 */
describe('active health checks: custom (plugin modules)', () => {
  let dir: string;
  before(async () => (dir = await mkdtemp(join(tmpdir(), 'outrigger-hc-'))));
  after(() => rm(dir, { recursive: true, force: true }));

  function harness(c: Cluster, modules: ModuleLoader) {
    const clock = new FakeClock();
    const runtime = ClusterRuntime.build(c, undefined, { clock, random: seededRandom(1) });
    const checkers = new HealthCheckers(clock, seededRandom(2), undefined, modules);
    checkers.sync(new Map([['c', c]]), new Map([['c', runtime]]));
    const done = (): number => checkers.get('c')!.checksDone;
    return {
      clock,
      runtime,
      checkers,
      picks: (n: number) => new Set(Array.from({ length: n }, () => runtime.pick({}).ep?.key ?? 'none')),
      tick: async (ms: number, n: number) => {
        const target = done() + n;
        clock.advance(ms);
        await waitFor(() => done() >= target, `${n} health checks`);
      },
    };
  }

  it('the example check ejects a Bookstore that stopped answering and restores it when it is back', async () => {
    const a = await startBookstore();
    let b: BookstoreServer = await startBookstore();
    const bPort = b.port;
    const modules = new ModuleLoader();
    await modules.prepare([CHECK]);
    const h = harness(clusterOf([a.port, bPort], { module: CHECK, config: { degradedAfterMs: 5000 } }), modules);
    const ka = `127.0.0.1:${a.port}`;
    const kb = `127.0.0.1:${bPort}`;
    try {
      await h.tick(0, 2);
      expect(h.runtime.healthLabelOf(ka)).to.equal('healthy');
      expect(h.runtime.healthLabelOf(kb)).to.equal('healthy');
      await b.close();
      await h.tick(1000, 2);
      expect(h.picks(6), 'one failure is below unhealthyThreshold').to.deep.equal(new Set([ka, kb]));
      await h.tick(1000, 2);
      expect(h.runtime.healthLabelOf(kb)).to.equal('failed_active_hc');
      expect(h.picks(6)).to.deep.equal(new Set([ka]));
      b = await startBookstore({ port: bPort });
      await h.tick(1000, 2);
      expect(h.picks(6), 'restored after healthyThreshold (1) pass').to.deep.equal(new Set([ka, kb]));
    } finally {
      h.checkers.close();
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("'degraded', throws, timeouts and a module re-imported after a change (looked up on each check)", async () => {
    const a = await startBookstore();
    const file = join(dir, 'verdict.mjs');
    const write = (body: string) => writeFile(file, `export async function check(ep, { signal, config }) { ${body} }`);
    await write(`return config.verdict;`);
    const modules = new ModuleLoader();
    await modules.prepare([file]);
    const h = harness(clusterOf([a.port], { module: file, config: { verdict: 'degraded' } }), modules);
    const ka = `127.0.0.1:${a.port}`;
    try {
      await h.tick(0, 1);
      expect(h.runtime.healthLabelOf(ka)).to.equal('degraded');
      // A check that throws fails (twice: unhealthyThreshold).
      await write(`throw new Error('no');`);
      await modules.prepare([file]);
      await h.tick(1000, 1);
      await h.tick(1000, 1);
      expect(h.runtime.healthLabelOf(ka)).to.equal('failed_active_hc');
      await write(`return 'healthy';`);
      await modules.prepare([file]);
      await h.tick(1000, 1);
      expect(h.runtime.healthLabelOf(ka)).to.equal('healthy');
      // A check that never settles fails at the timeout, and its signal aborts.
      await write(`globalThis.__aborted = 0; return new Promise((r) => signal.addEventListener('abort', () => { globalThis.__aborted++; r('healthy'); }));`);
      await modules.prepare([file]);
      const g = globalThis as { __aborted?: number };
      for (let i = 0; i < 2; i++) {
        h.clock.advance(1000);
        await waitFor(() => g.__aborted !== undefined, 'the check started');
        await h.tick(1000, 1);
      }
      expect(g.__aborted).to.be.greaterThan(0);
      expect(h.runtime.healthLabelOf(ka)).to.equal('failed_active_hc');
    } finally {
      h.checkers.close();
      await a.close();
    }
  });
});
