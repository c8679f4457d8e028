import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import WebSocket from 'ws';
import { serviceDefinitionFor } from '../../examples/bookstore/grpc-service.js';
import { startBookstore, type BookstoreServer } from '../../examples/bookstore/server.js';
import {
  BookSchema,
  BookstoreService,
  BulkCreateBooksResponseSchema,
  CreateBookRequestSchema,
  ShelfSchema,
  WatchShelfResponseSchema,
} from '../../src/gen/outrigger/examples/bookstore/v1/bookstore_pb.js';
import { listener } from '../support/config-docs.js';
import { FakeClock } from '../support/fake-clock.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';
import { BOOKSTORE_DESCRIPTOR, BOOKSTORE_SVC as SVC, ORIGIN, baseUrl, grpcCluster, hosts, startTranscodeSidecar, transcodeHost } from '../support/transcode-harness.js';
import { waitFor, waitForStill } from '../support/wait.js';

/**
 * The WebSocket ↔ gRPC bridge (issue 3 point 7, docs/websocket.md): `ws`
 * clients → the real sidecar → the real Bookstore (and, for backpressure, a
 * grpc-js backend that writes only while its stream takes more).
 */
interface Session {
  ws: WebSocket;
  frames: { text: boolean; data: Buffer }[];
  closed: Promise<{ code: number; reason: string }>;
  next(): Promise<{ text: boolean; data: Buffer }>;
}

describe('transcode: WebSocket ↔ gRPC bridge', function () {
  let store: BookstoreServer;
  let flood: { server: grpc.Server; port: number; written: number; done: boolean };
  let sc: TestSidecar;
  let base: string;

  before(async () => {
    store = await startBookstore();
    // A WatchShelf that streams 16 KiB messages as fast as its stream takes them (respecting write()).
    const server = new grpc.Server();
    flood = { server, port: 0, written: 0, done: false };
    const msg = create(WatchShelfResponseSchema, { change: 'x'.repeat(16 * 1024) });
    server.addService(serviceDefinitionFor(BookstoreService), {
      watchShelf(call: grpc.ServerWritableStream<unknown, unknown>) {
        const total = 1500;
        const pump = (): void => {
          while (flood.written < total) {
            flood.written++;
            if (!call.write(msg)) return void call.once('drain', pump);
          }
          flood.done = true;
          call.end();
        };
        pump();
      },
    });
    flood.port = await new Promise<number>((res, rej) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
    );
    const transcode = { descriptorBin: BOOKSTORE_DESCRIPTOR, allowedOrigins: [ORIGIN], websocket: {} };
    sc = await startTranscodeSidecar(
      hosts('main', [transcodeHost('flood', ['flood'], 'flood', { ...transcode, websocket: {} }), transcodeHost('store', ['*'], 'store', transcode)]),
      grpcCluster('store', store.port),
      grpcCluster('flood', flood.port),
    );
    base = baseUrl(sc, 'ws');
  });
  after(async () => {
    await sc?.close();
    await store?.close();
    flood?.server.forceShutdown();
  });

  function open(method: string, protocols: string[], opts: WebSocket.ClientOptions = {}, at = base): Promise<Session> {
    const ws = new WebSocket(`${at}${SVC}/${method}`, protocols, opts);
    const frames: { text: boolean; data: Buffer }[] = [];
    const waiters: (() => void)[] = [];
    ws.on('message', (data, isBinary) => {
      frames.push({ text: !isBinary, data: data as Buffer });
      waiters.splice(0).forEach((w) => w());
    });
    const closed = new Promise<{ code: number; reason: string }>((res) => ws.once('close', (code, reason) => res({ code, reason: reason.toString() })));
    let read = 0;
    const next = async (): Promise<{ text: boolean; data: Buffer }> => {
      while (frames.length <= read) await new Promise<void>((r) => waiters.push(r));
      return frames[read++]!;
    };
    return new Promise((res, rej) => {
      ws.once('open', () => res({ ws, frames, closed, next }));
      ws.once('unexpected-response', (_req, r) => rej(new Error(`HTTP ${r.statusCode}`)));
      ws.once('error', rej);
    });
  }
  const json = (f: { data: Buffer }): any => JSON.parse(f.data.toString());
  const booksOn = (shelf: bigint): number => {
    const r = store.store.listBooks(shelf);
    return r.ok ? r.value.length : -1;
  };
  /** Resolves on the sidecar's pong: everything it sent on this socket before it is in `frames`. */
  const pingPong = (ws: WebSocket): Promise<void> =>
    new Promise((r) => {
      ws.once('pong', () => r());
      ws.ping();
    });

  it('server streaming (JSON subprotocol): WatchShelf messages as {"result"} frames, then status and close 1000', async () => {
    const shelf = store.store.createShelf(create(ShelfSchema, { theme: 'ws-watch' }));
    if (!shelf.ok) throw new Error('shelf');
    const id = shelf.value.id;
    const s = await open('WatchShelf', ['grpc-ws+json']);
    expect(s.ws.protocol).to.equal('grpc-ws+json');
    s.ws.send(JSON.stringify({ shelf: String(id) }));
    s.ws.send('');
    expect(json(await s.next()).result).to.deep.equal({ shelf: { id: String(id), theme: 'ws-watch' } });
    store.store.createBook(id, create(BookSchema, { author: 'A', title: 'T' }));
    expect(json(await s.next()).result.books).to.have.length(1);
    store.store.deleteShelf(id);
    let f = await s.next();
    while ('result' in json(f)) f = await s.next();
    expect(json(f).code).to.equal(0);
    expect(await s.closed).to.deep.equal({ code: 1000, reason: 'OK' }); // grpc-js says "OK" as grpc-message
  });

  it('client streaming (proto subprotocol): BulkCreateBooks from binary frames; half-close ends the request stream', async () => {
    const s = await open('BulkCreateBooks', ['grpc-ws+proto']);
    expect(s.ws.protocol).to.equal('grpc-ws+proto');
    const before = booksOn(2n);
    for (let i = 0; i < 3; i++) s.ws.send(toBinary(CreateBookRequestSchema, create(CreateBookRequestSchema, { shelf: 2n, book: { author: 'W', title: `ws ${i}` } })));
    // The backend has all three (books are created as they arrive); a ping answered by the sidecar then
    // closes the window in which an early reply (an upstream half-close sent too soon) would show up.
    await waitFor(() => booksOn(2n) === before + 3, 'the backend to create the three books');
    await pingPong(s.ws);
    expect(s.frames).to.have.length(0); // nothing until the client half-closes
    s.ws.send('');
    const reply = await s.next();
    expect(reply.text).to.equal(false);
    expect(fromBinary(BulkCreateBooksResponseSchema, reply.data).created).to.equal(3n);
    const st = await s.next();
    expect(st.text).to.equal(true);
    expect(json(st).code).to.equal(0);
    expect((await s.closed).code).to.equal(1000);
  });

  it('bidi (Chat): echoes arrive before the half-close, the call ends only after it', async () => {
    const s = await open('Chat', ['grpc-ws+json']);
    s.ws.send('{"text":"one"}');
    expect(json(await s.next()).result).to.deep.equal({ text: 'one' });
    s.ws.send('{"text":"two"}');
    expect(json(await s.next()).result).to.deep.equal({ text: 'two' });
    // A third message through the whole path is the marker: a call that had ended would not echo it.
    s.ws.send('{"text":"three"}');
    expect(json(await s.next()).result).to.deep.equal({ text: 'three' });
    expect(s.ws.readyState).to.equal(WebSocket.OPEN);
    s.ws.send('');
    expect(json(await s.next())).to.include({ code: 0 });
    expect((await s.closed).code).to.equal(1000);
  });

  it('error status: WatchShelf 999 → status frame with details, close 4005 with the message', async () => {
    const s = await open('WatchShelf', []);
    expect(s.ws.protocol).to.equal(''); // JSON is the default when no codec is offered
    s.ws.send('{"shelf":"999"}');
    s.ws.send('');
    const st = json(await s.next());
    expect(st.code).to.equal(5);
    expect(st.message).to.equal('shelf 999 not found');
    expect(st.details[0]['@type']).to.equal('type.googleapis.com/google.rpc.ResourceInfo');
    expect(await s.closed).to.deep.equal({ code: 4005, reason: 'shelf 999 not found' });
  });

  it('an invalid message is INVALID_ARGUMENT (close 4003) and cancels the call', async () => {
    const s = await open('Chat', ['grpc-ws+json']);
    s.ws.send('{"bogus":1}');
    const st = json(await s.next());
    expect(st.code).to.equal(3);
    expect((await s.closed).code).to.equal(4003);
    const p = await open('Chat', ['grpc-ws+proto']);
    p.ws.send('not binary');
    expect((await p.closed).code).to.equal(4003);
  });

  it('bearer token via Sec-WebSocket-Protocol or cookie becomes authorization metadata', async () => {
    const s = await open('Chat', ['grpc-ws+json', 'bearer', 'tok-123'], { headers: { 'x-echo-metadata': '1' } });
    expect(s.ws.protocol).to.equal('grpc-ws+json');
    s.ws.send('');
    const st = json(await s.next());
    expect(st.metadata['echo-authorization']).to.deep.equal(['Bearer tok-123']);
    const c = await open('Chat', ['grpc-ws+json'], { headers: { 'x-echo-metadata': '1', cookie: 'a=b; token=cookie-tok' } });
    c.ws.send('');
    expect(json(await c.next()).metadata['echo-authorization']).to.deep.equal(['Bearer cookie-tok']);
    // tmc/grpc-websocket-proxy's form: only "Bearer, <token>", echoing "Bearer".
    const t = await open('Chat', ['Bearer', 'tok-9'], { headers: { 'x-echo-metadata': '1' } });
    expect(t.ws.protocol).to.equal('Bearer');
    t.ws.send('');
    expect(json(await t.next()).metadata['echo-authorization']).to.deep.equal(['Bearer tok-9']);
  });

  it('Origin allow-list: listed and same-origin pass, others are 403', async () => {
    const ok = await open('Chat', ['grpc-ws+json'], { origin: ORIGIN });
    ok.ws.close();
    const same = await open('Chat', ['grpc-ws+json'], { origin: `http://127.0.0.1:${sc.port()}` });
    same.ws.close();
    const err = await open('Chat', ['grpc-ws+json'], { origin: 'https://evil.example' }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).to.equal('HTTP 403');
  });

  describe('keep-alive on the sidecar\'s clock', () => {
    // A sidecar of its own whose ping timer runs on a fake clock: a 30 s interval passes when the test says so.
    const clock = new FakeClock();
    const PING_MS = 30_000;
    let pc: TestSidecar;
    before(async () => {
      const transcode = { descriptorBin: BOOKSTORE_DESCRIPTOR, allowedOrigins: [ORIGIN], websocket: { pingInterval: '30s' } };
      pc = await startTestSidecar([listener('main'), hosts('main', [transcodeHost('store', ['*'], 'store', transcode)]), grpcCluster('store', store.port)], { clock });
    });
    after(async () => {
      const closing = pc?.close();
      clock.advance(60_000); // past the drain timeout
      await closing;
    });
    /** A Chat session whose bridge is set up (an echo came back), so its ping timer is armed. */
    const chat = async (): Promise<Session> => {
      const s = await open('Chat', ['grpc-ws+json'], {}, baseUrl(pc, 'ws'));
      s.ws.send('{"text":"hi"}');
      expect(json(await s.next()).result).to.deep.equal({ text: 'hi' });
      return s;
    };

    it('ping keep-alive from the sidecar; the access log labels the bridge', async () => {
      const s = await chat();
      const n = pc.access.length;
      const pinged = new Promise<void>((r) => s.ws.once('ping', () => r()));
      clock.advance(PING_MS);
      await pinged;
      s.ws.send('');
      await s.closed;
      await waitFor(() => pc.access.slice(n).some((l) => l['protocol'] === 'websocket-bridge'), 'the bridge access-log line');
      const line = pc.access.slice(n).filter((l) => l['protocol'] === 'websocket-bridge').at(-1);
      expect(line).to.include({ status: 101, grpc_status: '0', path: `${SVC}/Chat` });
      expect(await pc.metrics()).to.include('protocol="websocket-bridge"');
    });

    it('a client that stops answering pings is disconnected at the next interval', async () => {
      const s = await chat();
      const n = pc.access.length;
      s.ws.pause(); // reads nothing, so answers no ping
      clock.advance(PING_MS); // the ping goes out
      clock.advance(PING_MS); // no pong came: dropped
      await waitFor(() => pc.access.slice(n).some((l) => l['flags'] === 'PT'), 'the ping-timeout access-log line', 2000);
      s.ws.resume();
      expect(pc.access.slice(n).find((l) => l['flags'] === 'PT')).to.include({ protocol: 'websocket-bridge', grpc_status: '1' });
      await s.closed;
    });
  });

  it('backpressure: a WebSocket client that stops reading pauses the gRPC stream', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${sc.port()}${SVC}/WatchShelf`, ['grpc-ws+proto'], { headers: { host: 'flood' } });
    let received = 0;
    ws.on('message', (_d, isBinary) => isBinary && received++);
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    await new Promise((r) => ws.once('open', r));
    ws.send(Buffer.alloc(0));
    ws.send('');
    await waitFor(() => received > 0, 'the first message through the bridge');
    ws.pause(); // stop reading the socket
    // Flow control through real socket buffers has no "writer stopped" event: wait until the backend's
    // count stays still for 150 ms (it keeps climbing without backpressure), at most 3 s.
    const last = await waitForStill(() => flood.written, 'the flood backend', 150, 3000);
    // The backend is held by flow control: it stopped well short of the 1500 (24 MiB) it wants to write.
    expect(flood.written).to.equal(last);
    expect(flood.done).to.equal(false);
    expect(flood.written).to.be.lessThan(1000);
    ws.resume();
    expect(await closed).to.equal(1000);
    expect(received).to.equal(1500);
    expect(flood.done).to.equal(true);
  });
});
