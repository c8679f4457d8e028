import { create, toBinary, fromBinary } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient, type Client, type Transport } from '@connectrpc/connect';
import { compressionGzip, createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import { expect } from 'chai';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { request } from 'undici';
import { startBookstore, type BookstoreServer } from '../../examples/bookstore/server.js';
import { ResourceInfoSchema } from '../../src/gen/google/rpc/error_details_pb.js';
import {
  BookSchema,
  BookstoreService,
  ChatMessageSchema,
  CreateBookRequestSchema,
  GetShelfRequestSchema,
  ShelfSchema,
} from '../../src/gen/outrigger/examples/bookstore/v1/bookstore_pb.js';
import type { TestSidecar } from '../support/sidecar-harness.js';
import { BOOKSTORE_DESCRIPTOR, BOOKSTORE_SVC as SVC, ORIGIN, baseUrl, grpcCluster, hosts, startTranscodeSidecar, transcodeHost } from '../support/transcode-harness.js';
import { waitFor } from '../support/wait.js';

/**
 * gRPC-Web and Connect (issue 3 point 8): real connect-node clients (both
 * transports, HTTP/1.1 and HTTP/2) → the real sidecar → the real grpc-js
 * Bookstore, on the one port that also serves gRPC and REST; raw undici for
 * grpc-web-text, CORS and the wire details the clients hide.
 */
describe('transcode: gRPC-Web and Connect → gRPC', function () {
  let store: BookstoreServer;
  let sc: TestSidecar;
  let base: string;

  before(async () => {
    store = await startBookstore();
    sc = await startTranscodeSidecar(
      hosts('main', [transcodeHost('store', ['*'], 'store', { descriptorBin: BOOKSTORE_DESCRIPTOR, allowedOrigins: [ORIGIN] })]),
      grpcCluster('store', store.port),
    );
    base = baseUrl(sc);
  });
  after(async () => {
    await sc?.close();
    await store?.close();
  });

  const transports: [string, () => Transport][] = [
    ['gRPC-Web h1', () => createGrpcWebTransport({ baseUrl: base, httpVersion: '1.1' })],
    ['gRPC-Web h2', () => createGrpcWebTransport({ baseUrl: base, httpVersion: '2' })],
    ['Connect h1', () => createConnectTransport({ baseUrl: base, httpVersion: '1.1' })],
    ['Connect h2', () => createConnectTransport({ baseUrl: base, httpVersion: '2' })],
    ['Connect h1 proto', () => createConnectTransport({ baseUrl: base, httpVersion: '1.1', useBinaryFormat: true })],
  ];

  for (const [name, mk] of transports) {
    describe(name, () => {
      let client: Client<typeof BookstoreService>;
      before(() => (client = createClient(BookstoreService, mk())));

      it('unary: GetShelf', async () => {
        const s = await client.getShelf({ shelf: 1n });
        expect(s.theme).to.equal('Fiction');
        expect(s.id).to.equal(1n);
      });

      it('error with details: GetShelf 999 → not_found + ResourceInfo', async () => {
        const err = await client.getShelf({ shelf: 999n }).then(
          () => undefined,
          (e: unknown) => ConnectError.from(e),
        );
        expect(err?.code).to.equal(Code.NotFound);
        expect(err?.rawMessage).to.equal('shelf 999 not found');
        const [info] = err!.findDetails(ResourceInfoSchema);
        expect(info?.resourceName).to.match(/999/);
      });

      it('server streaming: WatchShelf sees the initial state, a change, and the end', async () => {
        const shelf = store.store.createShelf(create(ShelfSchema, { theme: `watch-${name}` }));
        if (!shelf.ok) throw new Error('shelf');
        const id = shelf.value.id;
        const seen: string[] = [];
        for await (const ev of client.watchShelf({ shelf: id })) {
          seen.push(ev.change || `initial:${ev.books.length}`);
          if (seen.length === 1) store.store.createBook(id, create(BookSchema, { author: 'W', title: 'Watched' }));
          if (seen.length === 2) store.store.deleteShelf(id);
        }
        expect(seen[0]).to.equal('initial:0');
        expect(seen.length).to.be.greaterThanOrEqual(3);
      });

      it('server streaming error before the first message: WatchShelf 999', async () => {
        const err = await (async () => {
          for await (const _ of client.watchShelf({ shelf: 999n })) void _;
        })().then(
          () => undefined,
          (e: unknown) => ConnectError.from(e),
        );
        expect(err?.code).to.equal(Code.NotFound);
        expect(err!.findDetails(ResourceInfoSchema)).to.have.length(1);
      });

      it('the backend deadline is enforced (client timeout → deadline_exceeded)', async () => {
        const err = await client.getShelf({ shelf: 1n }, { timeoutMs: 150, headers: { 'x-delay-ms': '2000' } }).then(
          () => undefined,
          (e: unknown) => ConnectError.from(e),
        );
        expect(err?.code).to.equal(Code.DeadlineExceeded);
      });
    });
  }

  describe('Connect specifics', () => {
    it('GET for NO_SIDE_EFFECTS methods (useHttpGet) and a POST for others', async () => {
      const client = createClient(BookstoreService, createConnectTransport({ baseUrl: base, httpVersion: '1.1', useHttpGet: true }));
      const n = sc.access.length;
      const r = await client.listShelves({});
      expect(r.shelves.map((s) => s.theme)).to.include('Fantasy');
      // The access-log line is written when the exchange finishes, which may be just after the client has its reply.
      await waitFor(() => sc.access.slice(n).some((l) => String(l['path']).includes('ListShelves')), 'the ListShelves access-log line');
      const line = sc.access.slice(n).find((l) => String(l['path']).includes('ListShelves'));
      expect(line?.['method']).to.equal('GET');
      expect(line?.['protocol']).to.equal('connect');
    });

    it('raw GET with the message in the query; GET on a side-effecting method is 405', async () => {
      const msg = encodeURIComponent(JSON.stringify({ shelf: '2' }));
      const r = await request(`${base}${SVC}/GetShelf?connect=v1&encoding=json&message=${msg}`);
      expect(r.statusCode).to.equal(200);
      expect(await r.body.json()).to.deep.equal({ id: '2', theme: 'Fantasy' });
      const pb = Buffer.from(toBinary(GetShelfRequestSchema, create(GetShelfRequestSchema, { shelf: 1n }))).toString('base64url');
      const r2 = await request(`${base}${SVC}/GetShelf?connect=v1&encoding=proto&base64=1&message=${pb}`);
      expect(r2.statusCode).to.equal(200);
      expect(fromBinary(ShelfSchema, Buffer.from(await r2.body.arrayBuffer())).theme).to.equal('Fiction');
      const r3 = await request(`${base}${SVC}/DeleteShelf?connect=v1&encoding=json&message=${msg}`);
      expect(r3.statusCode).to.equal(405);
      expect(r3.headers['allow']).to.equal('POST');
      expect(((await r3.body.json()) as any).code).to.equal('unimplemented');
    });

    it('unary POST JSON: real HTTP status codes and the Connect error JSON', async () => {
      const r = await request(`${base}${SVC}/GetShelf`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'connect-protocol-version': '1' },
        body: JSON.stringify({ shelf: '999' }),
      });
      expect(r.statusCode).to.equal(404);
      expect(r.headers['content-type']).to.equal('application/json');
      const body = (await r.body.json()) as any;
      expect(body.code).to.equal('not_found');
      expect(body.message).to.equal('shelf 999 not found');
      expect(body.details[0].type).to.equal('google.rpc.ResourceInfo');
      expect(body.details[0].value).to.not.match(/=$/);
      expect(fromBinary(ResourceInfoSchema, Buffer.from(body.details[0].value, 'base64')).resourceName).to.match(/999/);
      expect(body.details[0].debug.resourceName).to.match(/999/);
      const bad = await request(`${base}${SVC}/GetShelf`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"bogus":1}' });
      expect(bad.statusCode).to.equal(400);
      expect(((await bad.body.json()) as any).code).to.equal('invalid_argument');
    });

    it('Connect-Timeout-Ms is the upstream deadline: 504 deadline_exceeded from the sidecar', async () => {
      const r = await request(`${base}${SVC}/GetShelf`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'connect-timeout-ms': '100', 'x-delay-ms': '2000' },
        body: '{"shelf":"1"}',
      });
      expect(r.statusCode).to.equal(504);
      expect(((await r.body.json()) as any).code).to.equal('deadline_exceeded');
      const bad = await request(`${base}${SVC}/GetShelf`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'connect-timeout-ms': '12345678901' },
        body: '{"shelf":"1"}',
      });
      expect(bad.statusCode).to.equal(400);
      await bad.body.dump();
    });

    it('gzip both ways: compressed request, compressed response when accepted and large', async () => {
      for (let i = 0; i < 40; i++) store.store.createShelf(create(ShelfSchema, { theme: `gzip padding shelf number ${i}` }));
      const client = createClient(
        BookstoreService,
        createConnectTransport({ baseUrl: base, httpVersion: '1.1', sendCompression: compressionGzip, acceptCompression: [compressionGzip], compressMinBytes: 0 }),
      );
      expect((await client.getShelf({ shelf: 1n })).theme).to.equal('Fiction');
      expect((await client.listShelves({})).shelves.length).to.be.greaterThan(40);
      const r = await request(`${base}${SVC}/GetShelf`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
        body: gzipSync('{"shelf":"2"}'),
      });
      expect(await r.body.json()).to.deep.equal({ id: '2', theme: 'Fantasy' });
      const big = await request(`${base}${SVC}/ListShelves`, { method: 'POST', headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip' }, body: '{}' });
      expect(big.headers['content-encoding']).to.equal('gzip');
      const json = JSON.parse(gunzipSync(Buffer.from(await big.body.arrayBuffer())).toString()) as { shelves: unknown[] };
      expect(json.shelves.length).to.be.greaterThan(40);
      const bad = await request(`${base}${SVC}/GetShelf`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'snappy' }, body: '{}' });
      expect(bad.statusCode).to.equal(501);
      expect(((await bad.body.json()) as any).code).to.equal('unimplemented');
    });

    it('client streaming (BulkCreateBooks) and bidi (Chat) over HTTP/2, gzip on', async () => {
      const client = createClient(
        BookstoreService,
        createConnectTransport({ baseUrl: base, httpVersion: '2', sendCompression: compressionGzip, acceptCompression: [compressionGzip], compressMinBytes: 0 }),
      );
      async function* books() {
        for (let i = 0; i < 5; i++) yield create(CreateBookRequestSchema, { shelf: 2n, book: { author: 'A', title: `T${i}` } });
      }
      const r = await client.bulkCreateBooks(books());
      expect(r.created).to.equal(5n);
      async function* lines() {
        for (const text of ['hello', 'world', 'x'.repeat(3000)]) yield create(ChatMessageSchema, { text });
      }
      const got: string[] = [];
      for await (const m of client.chat(lines())) got.push(m.text);
      expect(got).to.deep.equal(['hello', 'world', 'x'.repeat(3000)]);
    });

    it('client streaming over HTTP/1.1; a failure part-way is the end-stream error', async () => {
      const client = createClient(BookstoreService, createConnectTransport({ baseUrl: base, httpVersion: '1.1' }));
      async function* books() {
        yield create(CreateBookRequestSchema, { shelf: 2n, book: { author: 'B', title: 'ok' } });
        yield create(CreateBookRequestSchema, { shelf: 999n, book: { author: 'B', title: 'lost' } });
      }
      const err = await client.bulkCreateBooks(books()).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code).to.equal(Code.NotFound);
    });

    it('raw streaming wire: envelopes, 200 status and the 0x02 end-stream frame with the error', async () => {
      const msg = Buffer.from('{"shelf":"999"}');
      const env = Buffer.concat([Buffer.from([0, 0, 0, 0, msg.length]), msg]);
      const r = await request(`${base}${SVC}/WatchShelf`, { method: 'POST', headers: { 'content-type': 'application/connect+json' }, body: env });
      expect(r.statusCode).to.equal(200);
      const body = Buffer.from(await r.body.arrayBuffer());
      expect(body[0]).to.equal(0x02);
      const end = JSON.parse(body.subarray(5, 5 + body.readUInt32BE(1)).toString());
      expect(end.error.code).to.equal('not_found');
      expect(end.error.details[0].type).to.equal('google.rpc.ResourceInfo');
      const bad = await request(`${base}${SVC}/WatchShelf`, { method: 'POST', headers: { 'content-type': 'application/connect+xml' }, body: env });
      expect(bad.statusCode).to.equal(415);
      await bad.body.dump();
    });
  });

  describe('gRPC-Web specifics', () => {
    function frame(flags: number, data: Uint8Array): Buffer {
      const b = Buffer.alloc(5 + data.length);
      b[0] = flags;
      b.writeUInt32BE(data.length, 1);
      Buffer.from(data).copy(b, 5);
      return b;
    }
    function frames(buf: Buffer): { flags: number; data: Buffer }[] {
      const out = [];
      while (buf.length >= 5) {
        const len = buf.readUInt32BE(1);
        out.push({ flags: buf[0]!, data: buf.subarray(5, 5 + len) });
        buf = buf.subarray(5 + len);
      }
      return out;
    }
    const getShelf = (n: bigint) => frame(0, toBinary(GetShelfRequestSchema, create(GetShelfRequestSchema, { shelf: n })));

    it('binary: message frame then the 0x80 trailer frame', async () => {
      const r = await request(`${base}${SVC}/GetShelf`, { method: 'POST', headers: { 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1' }, body: getShelf(2n) });
      expect(r.statusCode).to.equal(200);
      expect(r.headers['content-type']).to.equal('application/grpc-web+proto');
      const f = frames(Buffer.from(await r.body.arrayBuffer()));
      expect(f.map((x) => x.flags)).to.deep.equal([0x00, 0x80]);
      expect(fromBinary(ShelfSchema, f[0]!.data).theme).to.equal('Fantasy');
      expect(f[1]!.data.toString()).to.match(/^grpc-status: 0\r\n/);
    });

    it('grpc-web-text: base64 request split at odd places (with mid-stream padding), base64 response', async () => {
      // Two base64 runs, each padded, as a browser flushing twice would send.
      const raw = getShelf(1n);
      const text = raw.subarray(0, 4).toString('base64') + raw.subarray(4).toString('base64');
      const chunks = [text.slice(0, 3), text.slice(3, 9), text.slice(9)];
      const r = await request(`${base}${SVC}/GetShelf`, {
        method: 'POST',
        headers: { 'content-type': 'application/grpc-web-text', accept: 'application/grpc-web-text' },
        body: Readable.from(chunks.map((c) => Buffer.from(c))),
      });
      expect(r.headers['content-type']).to.equal('application/grpc-web-text+proto');
      const resText = await r.body.text();
      // Each frame is its own base64 run: decode run by run.
      const runs = resText.match(/[^=]+=*/g)!;
      const f = frames(Buffer.concat(runs.map((s) => Buffer.from(s, 'base64'))));
      expect(fromBinary(ShelfSchema, f[0]!.data).theme).to.equal('Fiction');
      expect(f[1]!.flags).to.equal(0x80);
    });

    it('an error before any message is trailers-only (status in headers)', async () => {
      const r = await request(`${base}${SVC}/GetShelf`, { method: 'POST', headers: { 'content-type': 'application/grpc-web+proto' }, body: getShelf(999n) });
      expect(r.statusCode).to.equal(200);
      expect(r.headers['grpc-status']).to.equal('5');
      expect(r.headers['grpc-status-details-bin']).to.be.a('string');
      expect((await r.body.arrayBuffer()).byteLength).to.equal(0);
    });

    it('CORS: preflight for an allowed origin, 403 for others, headers on the actual response', async () => {
      const pre = await request(`${base}${SVC}/GetShelf`, {
        method: 'OPTIONS',
        headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-grpc-web,x-user-agent' },
      });
      expect(pre.statusCode).to.equal(204);
      expect(pre.headers['access-control-allow-origin']).to.equal(ORIGIN);
      expect(pre.headers['access-control-allow-methods']).to.include('POST');
      expect(pre.headers['access-control-allow-headers']).to.equal('content-type,x-grpc-web,x-user-agent');
      await pre.body.dump();
      const no = await request(`${base}${SVC}/GetShelf`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
      expect(no.statusCode).to.equal(403);
      expect(no.headers['access-control-allow-origin']).to.equal(undefined);
      await no.body.dump();
      const r = await request(`${base}${SVC}/GetShelf`, { method: 'POST', headers: { origin: ORIGIN, 'content-type': 'application/grpc-web+proto' }, body: getShelf(1n) });
      expect(r.headers['access-control-allow-origin']).to.equal(ORIGIN);
      expect(String(r.headers['access-control-expose-headers'])).to.include('grpc-status');
      await r.body.dump();
    });

    it('unknown method → UNIMPLEMENTED trailers-only', async () => {
      const r = await request(`${base}${SVC}/Nope`, { method: 'POST', headers: { 'content-type': 'application/grpc-web+proto' }, body: getShelf(1n) });
      expect(r.headers['grpc-status']).to.equal('12');
      await r.body.dump();
    });
  });

  describe('dispatch on one port', () => {
    it('gRPC, gRPC-Web, Connect and REST on the same route, labelled in the access log and metrics', async () => {
      const n = sc.access.length;
      const grpc = createClient(BookstoreService, createGrpcTransport({ baseUrl: base }));
      expect((await grpc.getShelf({ shelf: 1n })).theme).to.equal('Fiction');
      const web = createClient(BookstoreService, createGrpcWebTransport({ baseUrl: base, httpVersion: '1.1' }));
      expect((await web.getShelf({ shelf: 1n })).theme).to.equal('Fiction');
      const connect = createClient(BookstoreService, createConnectTransport({ baseUrl: base, httpVersion: '1.1' }));
      expect((await connect.getShelf({ shelf: 1n })).theme).to.equal('Fiction');
      const rest = await request(`${base}/v1/shelves/1`);
      expect(await rest.body.json()).to.deep.equal({ id: '1', theme: 'Fiction' });
      // application/json to a path that is not /<Service>/<Method> is REST, not Connect.
      const restPost = await request(`${base}/v1/shelves`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"theme":"via rest"}' });
      expect(restPost.statusCode).to.equal(200);
      await restPost.body.dump();
      await waitFor(() => sc.access.length >= n + 5, 'five access-log lines');
      const protos = sc.access.slice(n).map((l) => l['protocol']);
      expect(protos).to.deep.equal(['grpc', 'grpc-web', 'connect', 'rest', 'rest']);
      const metrics = await sc.metrics();
      for (const p of ['grpc', 'grpc-web', 'connect', 'rest']) expect(metrics).to.include(`protocol="${p}"`);
    });
  });
});
