import { expect } from 'chai';
import { Agent, request } from 'undici';
import { startH1Echo, type Started } from '../support/backends.js';
import { cluster, listener, prefixRoute, routes, toYaml } from '../support/config-docs.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';
import { waitFor } from '../support/wait.js';

describe('hot reload', function () {
  this.timeout(60000);
  let a: Started<unknown>;
  let b: Started<unknown>;
  let sc: TestSidecar;
  const docsFor = (backend: 'a' | 'b', port: number, n: number) => [
    listener('main', { address: { host: '127.0.0.1', port } }),
    routes('main', [prefixRoute('/', backend), { name: `marker-${n}`, match: { path: `/marker-${n}` }, directResponse: { status: 200, body: String(n) } }]),
    cluster('a', [a.port], 'UPSTREAM_PROTOCOL_HTTP1'),
    cluster('b', [b.port], 'UPSTREAM_PROTOCOL_HTTP1'),
  ];

  before(async () => {
    a = await startH1Echo('a');
    b = await startH1Echo('b');
    sc = await startTestSidecar([listener('main'), routes('main', [prefixRoute('/', 'a')]), cluster('a', [a.port], 'UPSTREAM_PROTOCOL_HTTP1'), cluster('b', [b.port], 'UPSTREAM_PROTOCOL_HTTP1')]);
  });
  after(async () => {
    await sc.close();
    await a.close();
    await b.close();
  });

  it('swaps config 20+ times under continuous traffic with zero failed requests, keeping the listener socket', async () => {
    const port = sc.port();
    const agent = new Agent({ connections: 8 });
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const seen = new Set<string>();
    const loop = async (): Promise<void> => {
      // Bounded: stops when the swaps are done, or after 40 s at most.
      const deadline = Date.now() + 40000;
      while (!stop && Date.now() < deadline) {
        try {
          const res = await request(`http://127.0.0.1:${port}/x`, { dispatcher: agent });
          const body = (await res.body.json()) as { backend: string };
          if (res.statusCode !== 200) failures.push(`status ${res.statusCode}`);
          else {
            ok++;
            seen.add(body.backend);
          }
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    };
    const loops = [loop(), loop(), loop(), loop()];
    for (let n = 1; n <= 22; n++) {
      await sc.writeConfig(docsFor(n % 2 ? 'b' : 'a', port, n));
      await waitFor(async () => {
        const r = await request(`http://127.0.0.1:${port}/marker-${n}`, { dispatcher: agent });
        return (await r.body.text()) === String(n);
      }, `swap ${n}`);
    }
    stop = true;
    await Promise.all(loops);
    await agent.close();
    expect(failures).to.deep.equal([]);
    expect(ok).to.be.greaterThan(100);
    expect([...seen].sort()).to.deep.equal(['a', 'b']);
    expect(sc.port()).to.equal(port);
    expect(await sc.metrics()).to.match(/outrigger_config_reloads_total\{result="applied"\} (2[2-9]|[3-9]\d)/);
  });

  it('rejects an invalid file, keeps serving the old config, and counts the rejection', async () => {
    const before = sc.sidecar.store.current()!.version;
    const good = await request(`http://127.0.0.1:${sc.port()}/y`);
    expect(good.statusCode).to.equal(200);
    await good.body.text();
    await sc.writeConfig(
      toYaml([listener('main', { address: { host: '127.0.0.1', port: sc.port() } }), routes('main', [prefixRoute('/', 'bookz')]), cluster('a', [a.port])]),
    );
    await waitFor(async () => /outrigger_config_reloads_total\{result="rejected"\} [1-9]/.test(await sc.metrics()), 'rejection');
    expect(sc.sidecar.store.current()!.version).to.equal(before);
    const still = await request(`http://127.0.0.1:${sc.port()}/y`);
    expect(still.statusCode).to.equal(200);
    await still.body.text();
    const line = sc.logs.find((l) => Array.isArray(l.errors));
    expect(JSON.stringify(line)).to.include('unknown cluster \\"bookz\\"');
  });
});
