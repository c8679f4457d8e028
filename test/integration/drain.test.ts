import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import { request } from 'undici';
import { startBookstore, type BookstoreServer } from '../../examples/bookstore/server.js';
import { bookstoreClient } from '../support/bookstore-client.js';
import { cluster, listener, routes, toYaml } from '../support/config-docs.js';
import { FakeClock } from '../support/fake-clock.js';
import { deferred, waitFor } from '../support/wait.js';
import { spawnSidecar } from '../support/sidecar-process.js';

const SVC = 'outrigger.examples.bookstore.v1.BookstoreService';

describe('graceful shutdown on SIGTERM (real process)', function () {
  this.timeout(40000);
  let backend: BookstoreServer;
  // The bookstore's `x-delay-ms` timers run on it: delayed calls answer only when the test advances it.
  const backendClock = new FakeClock();
  let slowH1: http.Server;
  // The HTTP/1.1 backend holds each response until the test releases it, so it is in flight during the drain.
  const h1Arrived = deferred();
  const releaseH1 = deferred();
  let dir: string;

  before(async () => {
    backend = await startBookstore({ clock: backendClock });
    slowH1 = http.createServer((_req, res) => {
      h1Arrived.resolve();
      void releaseH1.promise.then(() => res.end('slow'));
    });
    await new Promise<void>((r) => slowH1.listen(0, '127.0.0.1', () => r()));
    dir = await mkdtemp(join(tmpdir(), 'outrigger-drain-'));
  });
  let child: ChildProcess | undefined;
  afterEach(() => {
    // A failed run must not leave the sidecar process behind (it holds our stderr open).
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    child = undefined;
  });
  after(async () => {
    await backend.close();
    releaseH1.resolve();
    slowH1.close();
    await rm(dir, { recursive: true, force: true });
  });

  const titlesOnShelf1 = (): string[] => {
    const r = backend.store.listBooks(1n);
    return r.ok ? r.value.map((b) => b.title) : [];
  };

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
    child = sc.proc;
    const client = bookstoreClient(`127.0.0.1:${sc.port}`);
    expect((await request(`http://127.0.0.1:${sc.admin}/ready`)).statusCode).to.equal(200);

    // In flight when the signal comes: an HTTP/1.1 keep-alive request whose response comes after it...
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
    await Promise.race([
      h1Arrived.promise,
      h1.then((r) => Promise.reject(new Error(`the HTTP/1.1 request was answered without reaching its backend: ${JSON.stringify(r)}`))),
    ]);
    // ...10 slow unary calls and a client stream mid-call.
    const md = new grpc.Metadata();
    md.set('x-delay-ms', '800');
    const slow = Array.from({ length: 10 }, () => client.unary('getShelf', { shelf: 1n }, { metadata: md }));
    const { call, result } = client.clientStream('bulkCreateBooks');
    call.write({ $typeName: 'outrigger.examples.bookstore.v1.CreateBookRequest', shelf: 1n, book: { $typeName: 'outrigger.examples.bookstore.v1.Book', id: 0n, author: 'x', title: 'before' } } as never);
    // Everything has reached its backend (and is held there) before the signal.
    // (Generous deadlines: the sidecar is a child process on a shared machine.)
    await waitFor(() => backendClock.pending >= 10, 'the 10 delayed calls held by the backend', 15_000);
    await waitFor(() => titlesOnShelf1().includes('before'), 'the first message of the client stream', 15_000);

    sc.proc.kill('SIGTERM');
    // The signal is handled asynchronously in the child; no event reaches us but the readiness answer itself.
    await waitFor(async () => {
      const ready = await request(`http://127.0.0.1:${sc.admin}/ready`);
      await ready.body.text();
      return ready.statusCode === 503;
    }, '/ready to turn 503', 5000);

    // The client stream keeps going after the signal and completes normally.
    call.write({ $typeName: 'outrigger.examples.bookstore.v1.CreateBookRequest', shelf: 1n, book: { $typeName: 'outrigger.examples.bookstore.v1.Book', id: 0n, author: 'x', title: 'after' } } as never);
    call.end();
    // Only now do the held responses go out, during the drain.
    backendClock.advance(800);
    releaseH1.resolve();
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
