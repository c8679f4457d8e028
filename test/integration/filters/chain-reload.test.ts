import { expect } from 'chai';
import { createHash } from 'node:crypto';
import type http from 'node:http';
import { Agent, request } from 'undici';
import { startH1Echo, type Started } from '../../support/backends.js';
import { cluster, listener, routes, type Doc } from '../../support/config-docs.js';
import { startTestSidecar, type TestSidecar } from '../../support/sidecar-harness.js';
import { waitFor } from '../../support/wait.js';

const sha = (k: string) => createHash('sha256').update(k).digest('hex');

/** The filter chain is swapped atomically on reload: continuous traffic sees no failure, and each version's chain applies. */
describe('filters: chain hot reload', function () {
  this.timeout(60000);
  let echo: Started<http.Server>;
  let sc: TestSidecar;

  // Odd versions also accept bob's key and add an rbac and a (never limiting) rate limit.
  const docsFor = (n: number): Doc[] => {
    const keys = [{ name: 'alice', sha256: sha('alice') }, ...(n % 2 ? [{ name: 'bob', sha256: sha('bob') }] : [])];
    const extra = n % 2
      ? [
          { rbac: { policies: { all: { permissions: [{ any: true }], principals: [{ authenticated: {} }] } } } },
          { localRateLimit: { limits: [{ key: { principal: {} }, tokenBucket: { maxTokens: 1000000, fillInterval: '1s' } }] } },
        ]
      : [];
    return [
      listener('main', { httpFilters: [{ apiKeys: { keys } }, ...extra] }),
      routes('main', [
        { match: { path: `/marker-${n}` }, directResponse: { status: 200, body: String(n) } },
        { match: { prefix: '/' }, route: { cluster: 'echo' } },
      ]),
      cluster('echo', [echo.port], 'UPSTREAM_PROTOCOL_HTTP1'),
    ];
  };

  before(async () => {
    echo = await startH1Echo('echo');
    sc = await startTestSidecar(docsFor(0));
  });
  after(async () => {
    await sc?.close();
    await echo?.close();
  });

  it('swaps the chain 10 times under continuous authenticated traffic with zero failed requests', async () => {
    const port = sc.port();
    const agent = new Agent({ connections: 8 });
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const loop = async (): Promise<void> => {
      const deadline = Date.now() + 40000;
      while (!stop && Date.now() < deadline) {
        try {
          const res = await request(`http://127.0.0.1:${port}/x`, { dispatcher: agent, headers: { 'x-api-key': 'alice' } });
          await res.body.text();
          if (res.statusCode !== 200) failures.push(`status ${res.statusCode}`);
          else ok++;
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    };
    const loops = [loop(), loop(), loop(), loop()];
    for (let n = 1; n <= 10; n++) {
      await sc.writeConfig(docsFor(n));
      await waitFor(async () => {
        const r = await request(`http://127.0.0.1:${port}/marker-${n}`, { dispatcher: agent, headers: { 'x-api-key': 'alice' } });
        return (await r.body.text()) === String(n);
      }, `swap ${n}`);
      const bob = await request(`http://127.0.0.1:${port}/x`, { dispatcher: agent, headers: { 'x-api-key': 'bob' } });
      await bob.body.text();
      expect(bob.statusCode, `version ${n}`).to.equal(n % 2 ? 200 : 401);
    }
    stop = true;
    await Promise.all(loops);
    await agent.close();
    expect(failures).to.deep.equal([]);
    expect(ok).to.be.greaterThan(50);
  });
});
