import http from 'node:http';
import net from 'node:net';
import { expect } from 'chai';
import { startBookstore, type BookstoreServer } from '../../examples/bookstore/server.js';
import { appProbePath } from '../../injector/app-probes.js';
import type { AppProbeSpec } from '../../src/admin/status-server.js';
import { cluster, listener, prefixRoute, routes } from '../support/config-docs.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';

function get(port: number, path: string, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get({ host, port, path, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    }).on('error', reject);
  });
}

describe('sidecar status port (/ready and rewritten app probes)', function () {
  this.timeout(15_000);
  let app: http.Server;
  let appPort: number;
  let bookstore: BookstoreServer;
  let closedPort: number;
  let sc: TestSidecar;

  before(async () => {
    app = http.createServer((req, res) => {
      res.statusCode = req.url === '/healthz' && req.headers['x-probe'] === 'kubelet' ? 200 : 500;
      res.end();
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    appPort = (app.address() as net.AddressInfo).port;
    bookstore = await startBookstore();
    const tmp = net.createServer();
    await new Promise<void>((r) => tmp.listen(0, '127.0.0.1', r));
    closedPort = (tmp.address() as net.AddressInfo).port;
    await new Promise((r) => tmp.close(r));

    // The shape the injector writes into OUTRIGGER_APP_PROBES.
    const appProbes: Record<string, AppProbeSpec> = {
      [appProbePath('web', 'readyz')]: { httpGet: { path: '/healthz', port: appPort, scheme: 'HTTP', httpHeaders: [{ name: 'X-Probe', value: 'kubelet' }] }, timeoutSeconds: 1 },
      [appProbePath('web', 'livez')]: { httpGet: { path: '/other', port: appPort, scheme: 'HTTP' }, timeoutSeconds: 1 },
      [appProbePath('api', 'livez')]: { grpc: { port: bookstore.port }, timeoutSeconds: 1 },
      [appProbePath('api', 'readyz')]: { grpc: { port: bookstore.port, service: 'no.such.Service' }, timeoutSeconds: 1 },
      [appProbePath('api', 'startupz')]: { tcpSocket: { port: bookstore.port }, timeoutSeconds: 1 },
      [appProbePath('db', 'startupz')]: { tcpSocket: { port: closedPort }, timeoutSeconds: 1 },
    };
    sc = await startTestSidecar(
      [listener('in'), routes('main', [prefixRoute('/', 'app')]), cluster('app', [appPort])],
      { statusPort: 0, statusHost: '127.0.0.1', appProbes },
    );
  });

  after(async () => {
    await sc?.close();
    await bookstore?.close();
    await new Promise((r) => app?.close(r));
  });

  it('binds dual stack by default: the kubelet reaches /ready over IPv4 and IPv6', async () => {
    const own = await startTestSidecar([listener('in'), routes('main', [prefixRoute('/', 'app')]), cluster('app', [appPort])], { statusPort: 0 });
    try {
      expect(await get(own.sidecar.statusPort!, '/ready', '127.0.0.1')).to.equal(200);
      expect(await get(own.sidecar.statusPort!, '/ready', '::1')).to.equal(200);
    } finally {
      await own.close();
    }
  });

  it('serves /ready like the admin API', async () => {
    expect(await get(sc.sidecar.statusPort!, '/ready')).to.equal(200);
  });

  it('runs HTTP probes with their headers: 200 when the app answers 2xx/3xx, 503 otherwise', async () => {
    expect(await get(sc.sidecar.statusPort!, '/app-health/web/readyz')).to.equal(200);
    expect(await get(sc.sidecar.statusPort!, '/app-health/web/livez')).to.equal(503);
  });

  it('runs gRPC health probes (SERVING passes; an unknown service fails)', async () => {
    expect(await get(sc.sidecar.statusPort!, '/app-health/api/livez')).to.equal(200);
    expect(await get(sc.sidecar.statusPort!, '/app-health/api/readyz')).to.equal(503);
  });

  it('runs TCP probes', async () => {
    expect(await get(sc.sidecar.statusPort!, '/app-health/api/startupz')).to.equal(200);
    expect(await get(sc.sidecar.statusPort!, '/app-health/db/startupz')).to.equal(503);
  });

  it('answers 404 for unknown paths (including prototype keys)', async () => {
    expect(await get(sc.sidecar.statusPort!, '/app-health/nope/readyz')).to.equal(404);
    expect(await get(sc.sidecar.statusPort!, '/constructor')).to.equal(404);
  });

  it('keeps the status port closed unless asked', async () => {
    const plain = await startTestSidecar([listener('in'), routes('main', [prefixRoute('/', 'app')]), cluster('app', [appPort])]);
    try {
      expect(plain.sidecar.statusPort).to.equal(undefined);
    } finally {
      await plain.close();
    }
  });
});
