import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import { request } from 'undici';
import { startBookstore, type BookstoreServer } from '../../examples/bookstore/server.js';
import { bookstoreClient } from '../support/bookstore-client.js';
import { cluster, listener, routes, toYaml } from '../support/config-docs.js';
import { spawnSidecar } from '../support/sidecar-process.js';

const SVC = 'outrigger.examples.bookstore.v1.BookstoreService';

describe('graceful shutdown on SIGTERM (real process)', function () {
  this.timeout(40000);
  let backend: BookstoreServer;
  let slowH1: http.Server;
  let dir: string;

  before(async () => {
    backend = await startBookstore();
    // An HTTP/1.1 backend that answers after 600 ms, so a response is in flight during the drain.
    slowH1 = http.createServer((_req, res) => setTimeout(() => res.end('slow'), 600));
    await new Promise<void>((r) => slowH1.listen(0, '127.0.0.1', () => r()));
    dir = await mkdtemp(join(tmpdir(), 'outrigger-drain-'));
  });
  after(async () => {
    await backend.close();
    slowH1.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('turns /ready 503 at once, finishes in-flight unary and streaming calls, then exits 0', async () => {
    const configPath = join(dir, 'config.yaml');
    await writeFile(
      configPath,
      toYaml([
        listener('main'),
        routes('main', [
          { name: 'bookstore', match: { grpc: { service: SVC } }, route: { cluster: 'bookstore' } },
          { name: 'slow', match: { prefix: '/slow' }, route: { cluster: 'slow' } },
        ]),
        cluster('bookstore', [backend.port], 'UPSTREAM_PROTOCOL_HTTP2'),
        cluster('slow', [(slowH1.address() as { port: number }).port], 'UPSTREAM_PROTOCOL_HTTP1'),
      ]),
    );
    const sc = await spawnSidecar(configPath);
    const client = bookstoreClient(`127.0.0.1:${sc.port}`);
    expect((await request(`http://127.0.0.1:${sc.admin}/ready`)).statusCode).to.equal(200);

    // In flight when the signal comes: 10 slow unary calls and a client stream mid-call.
    const md = new grpc.Metadata();
    md.set('x-delay-ms', '800');
    const slow = Array.from({ length: 10 }, () => client.unary('getShelf', { shelf: 1n }, { metadata: md }));
    const { call, result } = client.clientStream('bulkCreateBooks');
    call.write({ $typeName: 'outrigger.examples.bookstore.v1.CreateBookRequest', shelf: 1n, book: { $typeName: 'outrigger.examples.bookstore.v1.Book', id: 0n, author: 'x', title: 'before' } } as never);
    // And an HTTP/1.1 keep-alive request whose response comes after the signal.
    const agent = new http.Agent({ keepAlive: true });
    const h1 = new Promise<{ status: number; connection: string | undefined; body: string }>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: sc.port, path: '/slow', agent }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body }));
        })
        .on('error', reject);
    });
    await new Promise((r) => setTimeout(r, 200));

    sc.proc.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 100));
    const ready = await request(`http://127.0.0.1:${sc.admin}/ready`);
    expect(ready.statusCode).to.equal(503);
    await ready.body.text();

    // The client stream keeps going after the signal and completes normally.
    call.write({ $typeName: 'outrigger.examples.bookstore.v1.CreateBookRequest', shelf: 1n, book: { $typeName: 'outrigger.examples.bookstore.v1.Book', id: 0n, author: 'x', title: 'after' } } as never);
    call.end();
    const results = await Promise.allSettled([...slow, result]);
    const failed = results.filter((r) => r.status === 'rejected');
    expect(failed.map((f) => String((f as PromiseRejectedResult).reason))).to.deep.equal([]);
    expect(((await result).response as { created: bigint }).created).to.equal(2n);
    // The HTTP/1.1 response in flight completes and tells the client to close.
    expect(await h1).to.deep.equal({ status: 200, connection: 'close', body: 'slow' });
    agent.destroy();
    client.close();
    expect(await sc.exit).to.equal(0);
  });
});
