import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { cluster, listener, prefixRoute, routes } from '../support/config-docs.js';
import { startTestSidecar } from '../support/sidecar-harness.js';
import { waitFor } from '../support/wait.js';

/** A backend that holds every request until `release()`. */
async function stallingBackend(): Promise<{ port: number; held: number; release(): void; close(): Promise<void> }> {
  const waiting: http.ServerResponse[] = [];
  const srv = http.createServer((_req, res) => waiting.push(res));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as AddressInfo).port,
    get held() {
      return waiting.length;
    },
    release: () => waiting.splice(0).forEach((res) => res.end('done')),
    close: () => {
      srv.closeAllConnections();
      return new Promise<void>((r) => srv.close(() => r()));
    },
  };
}

describe('circuit breakers', () => {
  for (const [limit, breakers] of [
    ['max_requests', { maxRequests: 2 }],
    ['max_connections', { maxConnections: 2, maxRequests: 100 }],
  ] as const) {
    it(`over ${limit}: a local 503 with flag UO and x-outrigger-overloaded, counted; admitted again once below`, async () => {
      const be = await stallingBackend();
      const sc = await startTestSidecar([
        listener('main'),
        routes('main', [prefixRoute('/', 'c')]),
        cluster('c', [be.port], 'UPSTREAM_PROTOCOL_HTTP1', { circuitBreakers: breakers }),
      ]);
      const url = `http://127.0.0.1:${sc.port()}/x`;
      try {
        const first = [fetch(url), fetch(url)];
        await waitFor(() => be.held === 2, 'two requests at the backend');
        const refused = await fetch(url);
        expect(refused.status).to.equal(503);
        expect(refused.headers.get('x-outrigger-local-reply')).to.equal('UO');
        expect(refused.headers.get('x-outrigger-overloaded')).to.equal('true');
        expect(await refused.text()).to.equal(`upstream overflow: c: ${limit}\n`);
        be.release();
        for (const r of await Promise.all(first)) expect(await r.text()).to.equal('done');
        await waitFor(() => sc.access.length >= 3, 'access log');
        const again = fetch(url);
        await waitFor(() => be.held === 1, 'the next request at the backend');
        be.release();
        expect((await again).status).to.equal(200);
        expect(await sc.metrics()).to.include(`outrigger_upstream_overflow_total{cluster="c",limit="${limit}"} 1`);
        expect(sc.access.some((l) => l.flags === 'UO' && l.status === 503)).to.equal(true);
      } finally {
        be.release();
        await sc.close();
        await be.close();
      }
    });
  }
});
