import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import { fromBinary } from '@bufbuild/protobuf';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import { startBookstore, type BookstoreServer } from '../../examples/bookstore/server.js';
import { StatusSchema } from '../../src/gen/google/rpc/status_pb.js';
import { ResourceInfoSchema } from '../../src/gen/google/rpc/error_details_pb.js';
import { bookstoreClient, type BookstoreClient } from '../support/bookstore-client.js';
import { cluster, listener, routes } from '../support/config-docs.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';
import { waitFor, waitForStill } from '../support/wait.js';
import { resetStream } from '../../src/proxy/http/h2-reset.js';

const SVC = 'outrigger.examples.bookstore.v1.BookstoreService';

/** A raw h2c backend for behaviours grpc-js servers will not produce on demand. */
async function rawBackend(onStream: (s: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders) => void) {
  const server = http2.createServer();
  server.on('stream', (s, h) => {
    s.on('error', () => {});
    onStream(s, h);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as { port: number }).port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

function rawCall(port: number, path: string, headers: http2.OutgoingHttpHeaders = {}) {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers });
  req.on('error', () => {});
  const out = { headers: {} as http2.IncomingHttpHeaders, trailers: {} as http2.IncomingHttpHeaders, flags: 0, bytes: 0 };
  req.on('response', (h, f) => {
    out.headers = h;
    out.flags = f;
  });
  req.on('trailers', (t) => (out.trailers = t));
  req.on('data', (c: Buffer) => (out.bytes += c.length));
  const done = new Promise<typeof out & { rstCode: number }>((resolve) =>
    req.on('close', () => {
      session.close();
      resolve({ ...out, rstCode: req.rstCode ?? 0 });
    }),
  );
  return { session, req, done };
}

describe('gRPC proxying through the sidecar', function () {
  let backend: BookstoreServer;
  let sc: TestSidecar;
  let client: BookstoreClient;
  const raw: { port: number; close(): Promise<void> }[] = [];
  const rawEvents: { path: string; rstCode: number; bytesWritten: number }[] = [];

  before(async () => {
    backend = await startBookstore();
    // /hang: never answers; /reset: headers then RST_STREAM; /firehose: writes as fast as flow control allows.
    const r = await rawBackend((s, h) => {
      const path = String(h[':path']);
      const ev = { path, rstCode: -1, bytesWritten: 0 };
      rawEvents.push(ev);
      s.on('close', () => (ev.rstCode = s.rstCode ?? 0));
      if (path === '/raw.Svc/Reset') {
        s.respond({ ':status': 200, 'content-type': 'application/grpc' });
        // A real RST_STREAM (close() would send END_STREAM first), once the message has been written.
        s.write(Buffer.from([0, 0, 0, 0, 1, 7]), () => resetStream(s, http2.constants.NGHTTP2_REFUSED_STREAM));
      } else if (path === '/raw.Svc/Firehose') {
        s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
        const chunk = Buffer.alloc(64 * 1024, 1);
        const total = 32 * 1024 * 1024;
        const pump = (): void => {
          while (ev.bytesWritten < total) {
            ev.bytesWritten += chunk.length;
            if (!s.write(chunk)) return void s.once('drain', pump);
          }
          s.end();
        };
        pump();
      }
      // /raw.Svc/Hang: nothing at all.
    });
    raw.push(r);
    sc = await startTestSidecar([
      listener('main'),
      routes('main', [
        { name: 'bookstore', match: { grpc: { service: SVC } }, route: { cluster: 'bookstore' } },
        { name: 'raw', match: { grpc: { service: 'raw.Svc' } }, route: { cluster: 'raw' } },
      ]),
      cluster('bookstore', [backend.port], 'UPSTREAM_PROTOCOL_HTTP2'),
      cluster('raw', [r.port], 'UPSTREAM_PROTOCOL_HTTP2'),
    ]);
    client = bookstoreClient(`127.0.0.1:${sc.port()}`);
  });
  after(async () => {
    client.close();
    await sc.close();
    await backend.close();
    for (const r of raw) await r.close();
  });

  it('unary', async () => {
    const { response } = await client.unary('getShelf', { shelf: 1n });
    expect(response.id).to.equal(1n);
    const list = await client.unary('listShelves', {});
    expect(list.response.shelves.length).to.be.greaterThanOrEqual(2);
  });

  it('server streaming sees the initial state and later changes, and client cancel reaches the backend', async () => {
    const call = client.serverStream('watchShelf', { shelf: 1n });
    const got: string[] = [];
    call.on('data', (m: { change: string }) => got.push(m.change));
    call.on('error', () => {});
    await waitFor(() => got.length === 1, 'initial watch message');
    await client.unary('createBook', { shelf: 1n, book: { author: 'A', title: 'Streamed' } });
    await waitFor(() => got.length === 2, 'change message');
    const status = new Promise<grpc.StatusObject>((r) => call.on('status', r));
    call.cancel();
    expect((await status).code).to.equal(grpc.status.CANCELLED);
  });

  it('client streaming', async () => {
    const { call, result } = client.clientStream('bulkCreateBooks');
    for (let i = 0; i < 5; i++) call.write({ $typeName: 'outrigger.examples.bookstore.v1.CreateBookRequest', shelf: 2n, book: { $typeName: 'outrigger.examples.bookstore.v1.Book', id: 0n, author: 'B', title: `t${i}` } } as never);
    call.end();
    expect((await result).response.created).to.equal(5n);
  });

  it('bidi streaming ends when the client half-closes', async () => {
    const call = client.bidiStream('chat');
    const got: string[] = [];
    call.on('data', (m: { text: string }) => got.push(m.text));
    const status = new Promise<grpc.StatusObject>((r) => call.on('status', r));
    for (const t of ['a', 'b', 'c']) call.write({ $typeName: 'outrigger.examples.bookstore.v1.ChatMessage', text: t } as never);
    await waitFor(() => got.length === 3, 'echoes');
    call.end();
    expect((await status).code).to.equal(grpc.status.OK);
    expect(got).to.deep.equal(['a', 'b', 'c']);
  });

  it('errors pass with their details, trailers-only errors stay trailers-only', async () => {
    const err = await client.unary('getShelf', { shelf: 999n }).then(() => undefined, (e: grpc.ServiceError) => e);
    expect(err?.code).to.equal(grpc.status.NOT_FOUND);
    const bin = err!.metadata.get('grpc-status-details-bin')[0] as Buffer;
    const st = fromBinary(StatusSchema, bin);
    expect(st.code).to.equal(5);
    const info = anyUnpack(st.details[0]!, ResourceInfoSchema);
    expect(info?.resourceName).to.equal('shelves/999');
    // A trailers-only reply: status in the HEADERS frame that ends the stream.
    const r = rawCall(sc.port(), `/${SVC}/GetShelf`, { 'x-fail-with': '7' });
    r.req.end(Buffer.from([0, 0, 0, 0, 2, 8, 1]));
    const res = await r.done;
    expect(res.flags & http2.constants.NGHTTP2_FLAG_END_STREAM).to.not.equal(0);
    expect(res.headers['grpc-status']).to.equal('7');
  });

  it('metadata, including -bin keys, reaches the backend and comes back', async () => {
    const md = new grpc.Metadata();
    md.set('x-echo-metadata', '1');
    md.set('x-plain', 'hello');
    md.set('x-blob-bin', Buffer.from([0, 1, 2, 255]));
    const { metadata } = await client.unary('getShelf', { shelf: 1n }, { metadata: md });
    expect(metadata.get('echo-x-plain')).to.deep.equal(['hello']);
    expect(metadata.get('echo-x-blob-bin')[0]).to.deep.equal(Buffer.from([0, 1, 2, 255]));
    expect(metadata.get('echo-x-forwarded-for')).to.deep.equal(['127.0.0.1']);
  });

  it('enforces grpc-timeout itself: DEADLINE_EXCEEDED downstream, RST_STREAM CANCEL upstream', async () => {
    const t0 = Date.now();
    const r = rawCall(sc.port(), '/raw.Svc/Hang', { 'grpc-timeout': '200m' });
    r.req.end(Buffer.from([0, 0, 0, 0, 0]));
    const res = await r.done;
    expect(res.headers['grpc-status'] ?? res.trailers['grpc-status']).to.equal('4');
    expect(Date.now() - t0).to.be.within(150, 2000);
    await waitFor(() => rawEvents.some((e) => e.path === '/raw.Svc/Hang' && e.rstCode === http2.constants.NGHTTP2_CANCEL), 'upstream cancel');
  });

  it('a deadline against a backend that ignores it still ends the call on time (grpc-js client)', async () => {
    const md = new grpc.Metadata();
    md.set('x-delay-ms', '3000');
    const t0 = Date.now();
    const err = await client
      .unary('getShelf', { shelf: 1n }, { metadata: md, deadline: Date.now() + 300 })
      .then(() => undefined, (e: grpc.ServiceError) => e);
    expect(err?.code).to.equal(grpc.status.DEADLINE_EXCEEDED);
    expect(Date.now() - t0).to.be.lessThan(2000);
  });

  it('client cancel propagates upstream as RST_STREAM', async () => {
    const r = rawCall(sc.port(), '/raw.Svc/Hang');
    r.req.write(Buffer.from([0, 0, 0, 0, 0]));
    await waitFor(() => rawEvents.filter((e) => e.path === '/raw.Svc/Hang').length >= 2, 'backend saw the call');
    r.req.close(http2.constants.NGHTTP2_CANCEL);
    await waitFor(() => rawEvents.filter((e) => e.path === '/raw.Svc/Hang').at(-1)!.rstCode === http2.constants.NGHTTP2_CANCEL, 'upstream cancel');
  });

  it('upstream reset mid-stream propagates down as a reset', async () => {
    const r = rawCall(sc.port(), '/raw.Svc/Reset');
    r.req.end(Buffer.from([0, 0, 0, 0, 0]));
    const res = await r.done;
    expect(res.headers[':status']).to.equal(200);
    expect(res.rstCode).to.equal(http2.constants.NGHTTP2_REFUSED_STREAM);
  });

  it('respects flow control: a slow reader holds the upstream back, then gets every byte', async () => {
    const r = rawCall(sc.port(), '/raw.Svc/Firehose');
    r.req.end(Buffer.from([0, 0, 0, 0, 0]));
    r.req.pause();
    await waitFor(() => rawEvents.some((e) => e.path === '/raw.Svc/Firehose'), 'the backend to see the call');
    const ev = rawEvents.find((e) => e.path === '/raw.Svc/Firehose')!;
    // Flow control through real socket buffers has no "writer stopped" event: wait until the backend's
    // count stays still for 150 ms (without backpressure it would run on to all 32 MiB).
    await waitForStill(() => ev.bytesWritten, 'the firehose backend', 150, 3000);
    expect(ev.bytesWritten).to.be.lessThan(8 * 1024 * 1024);
    r.req.resume();
    const res = await r.done;
    expect(res.bytes).to.equal(32 * 1024 * 1024);
    expect(res.trailers['grpc-status']).to.equal('0');
  });

  it('streams 16 MiB messages both ways', async function () {
    this.timeout(30000);
    const title = 'x'.repeat(16 * 1024 * 1024);
    const { response } = await client.unary('createBook', { shelf: 1n, book: { author: 'big', title } });
    expect(response.title.length).to.equal(title.length);
  });

  it('no route → UNIMPLEMENTED; unreachable cluster → UNAVAILABLE with a message', async () => {
    const r = rawCall(sc.port(), '/nope.Svc/Method');
    r.req.end(Buffer.from([0, 0, 0, 0, 0]));
    const res = await r.done;
    expect(res.headers['grpc-status']).to.equal('12');
  });

  it('labels request metrics with grpc-status', async () => {
    const m = await sc.metrics();
    expect(m).to.match(/outrigger_request_duration_seconds_count\{listener="main",route="bookstore",cluster="bookstore",code="200",grpc_status="5",protocol="grpc"\} [1-9]/);
  });
});
