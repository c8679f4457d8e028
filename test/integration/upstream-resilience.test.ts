import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { cluster, listener, prefixRoute, routes } from '../support/config-docs.js';
import { startTestSidecar } from '../support/sidecar-harness.js';
import { FakeClock } from '../support/fake-clock.js';

/** An HTTP backend answering its name with `status`. */
async function backend(name: string, status = 200): Promise<{ port: number; hits: number; status: number; close(): Promise<void> }> {
  const state = { port: 0, hits: 0, status, close: async () => undefined as void };
  const srv = http.createServer((_req, res) => {
    state.hits++;
    res.writeHead(state.status).end(name);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  state.port = (srv.address() as AddressInfo).port;
  state.close = () => {
    srv.closeAllConnections();
    return new Promise<void>((r) => srv.close(() => r()));
  };
  return state;
}

describe('upstream resilience through the sidecar', () => {
  it('ring hash with a header hash policy: one user, one endpoint; users spread over all', async () => {
    const bs = await Promise.all(['a', 'b', 'c'].map((n) => backend(n)));
    const sc = await startTestSidecar([
      listener('main'),
      routes('main', [prefixRoute('/', 'c', { hashPolicy: [{ header: { name: 'x-user' } }] })]),
      cluster('c', bs.map((b) => b.port), 'UPSTREAM_PROTOCOL_HTTP1', { lbPolicy: 'LB_POLICY_MAGLEV' }),
    ]);
    try {
      const get = async (user: string): Promise<string> =>
        (await fetch(`http://127.0.0.1:${sc.port()}/x`, { headers: { 'x-user': user } })).text();
      const seen = new Set<string>();
      for (let u = 0; u < 30; u++) {
        const first = await get(`user-${u}`);
        for (let i = 0; i < 3; i++) expect(await get(`user-${u}`)).to.equal(first);
        seen.add(first);
      }
      expect(seen).to.deep.equal(new Set(['a', 'b', 'c']));
    } finally {
      await sc.close();
      await Promise.all(bs.map((b) => b.close()));
    }
  });

  it('outlier detection ejects an endpoint answering 503 and takes it back after the ejection time', async () => {
    const good = await backend('good');
    const bad = await backend('bad', 503);
    const clock = new FakeClock();
    const sc = await startTestSidecar(
      [
        listener('main'),
        routes('main', [prefixRoute('/', 'c')]),
        cluster('c', [good.port, bad.port], 'UPSTREAM_PROTOCOL_HTTP1', {
          outlierDetection: { consecutive5xx: 2, baseEjectionTime: '30s', maxEjectionPercent: 50 },
        }),
      ],
      { clock },
    );
    const get = async (): Promise<number> => (await fetch(`http://127.0.0.1:${sc.port()}/x`)).status;
    try {
      // Round robin: the bad endpoint gets every other request until its second 503 in a row.
      for (let i = 0; i < 4; i++) await get();
      expect(bad.hits).to.equal(2);
      const detector = sc.sidecar.listeners.outliers.get('c')!;
      expect(detector.isEjected(`127.0.0.1:${bad.port}`)).to.equal(true);
      for (let i = 0; i < 6; i++) expect(await get()).to.equal(200);
      expect(bad.hits).to.equal(2);
      expect(await sc.metrics()).to.include('outrigger_upstream_ejections_total{cluster="c",reason="consecutive_5xx"} 1');
      clock.advance(30_000);
      bad.status = 200;
      for (let i = 0; i < 4; i++) expect(await get()).to.equal(200);
      expect(bad.hits).to.equal(4);
    } finally {
      await sc.close();
      await Promise.all([good.close(), bad.close()]);
    }
  });

  it('a killed endpoint (connect failures, UF) is ejected as a gateway failure and gets no further attempts', async () => {
    const live = await backend('live');
    const dead = await backend('dead');
    const deadPort = dead.port;
    await dead.close(); // connection refused from now on
    const sc = await startTestSidecar([
      listener('main'),
      routes('main', [prefixRoute('/', 'c')]),
      cluster('c', [live.port, deadPort], 'UPSTREAM_PROTOCOL_HTTP1', {
        outlierDetection: { consecutive5xx: 0, consecutiveGatewayFailure: 1, maxEjectionPercent: 50 },
      }),
    ]);
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) statuses.push((await fetch(`http://127.0.0.1:${sc.port()}/x`)).status);
      // Round robin reaches the dead endpoint once (the second request); from then on it is ejected.
      expect(statuses).to.deep.equal([200, 503, 200, 200, 200, 200, 200, 200]);
      expect(sc.access.filter((l) => l.flags === 'UF')).to.have.length(1);
      expect(await sc.metrics()).to.include('outrigger_upstream_ejections_total{cluster="c",reason="consecutive_gateway_failure"} 1');
    } finally {
      await sc.close();
      await live.close();
    }
  });
});
