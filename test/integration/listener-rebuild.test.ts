import { expect } from 'chai';
import http from 'node:http';
import { startH1Echo, type Started } from '../support/backends.js';
import { cluster, listener, prefixRoute, routes, type Doc } from '../support/config-docs.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';
import { waitFor } from '../support/wait.js';

/**
 * A listener whose baked-in limits change builds new inner HTTP servers;
 * the old HTTP/1 server stays while connections it took are open (they keep
 * being served) and is closed after its last one — it used to be kept for
 * good (with the unref'd connection-checking interval 'listening' starts).
 */
describe('listener: superseded HTTP/1 servers are retired', function () {
  this.timeout(20000);
  let backend: Started<unknown>;
  let sc: TestSidecar;
  const docs = (maxHeaderBytes: number): Doc[] => [
    listener('main', { limits: { maxHeaderBytes } }),
    routes('main', [prefixRoute('/', 'web')]),
    cluster('web', [backend.port]),
  ];
  const servers = (): number => sc.sidecar.listeners.http1Servers().get('main')!;
  before(async () => {
    backend = await startH1Echo('web');
    sc = await startTestSidecar(docs(65536));
  });
  after(async () => {
    await sc?.close();
    await backend?.close();
  });

  it('12 limit changes leave no server behind; a kept-alive connection is served until it closes', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const get = (): Promise<number> =>
      new Promise((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port: sc.port(), path: '/x', agent }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          })
          .on('error', reject);
      });
    expect(await get()).to.equal(200); // this connection belongs to the first server
    expect(servers()).to.equal(1);
    for (let i = 1; i <= 12; i++) {
      const prev = sc.sidecar.store.current()!.version;
      await sc.writeConfig(docs(65536 + i * 1024));
      await waitFor(() => sc.sidecar.store.current()!.version !== prev, `config ${i} applied`);
    }
    // The first server (its connection is open) and the current one; the 11 in between are closed.
    expect(servers()).to.equal(2);
    // The old connection is still served (by the server that accepted it).
    expect(await get()).to.equal(200);
    agent.destroy();
    await waitFor(() => servers() === 1, 'the first server retired after its last connection closed');
    // New connections use the newest server and still work.
    expect(await new Promise<number>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: sc.port(), path: '/y', agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', reject);
    })).to.equal(200);
  });
});
