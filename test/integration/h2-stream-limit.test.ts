import { expect } from 'chai';
import { request } from 'undici';
import { startBookstore, type BookstoreServer } from '../../examples/bookstore/server.js';
import { startH2Echo, type Started } from '../support/backends.js';
import { bookstoreClient, type BookstoreClient } from '../support/bookstore-client.js';
import { cluster, listener, prefixRoute, routes } from '../support/config-docs.js';
import { endStreamFrame, FLAG, FRAME, headersFrame, rawH2, type Frame, type RawH2 } from '../support/h2-raw.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';

const LIMIT = 4;
const REFUSED_STREAM = 0x7;
const ENHANCE_YOUR_CALM = 0xb;
const SVC_PREFIX = '/outrigger.examples.bookstore.v1.BookstoreService/';

/** Client stream ids 1, 3, 5, … for streams number `from` to `to` (1-based). */
function ids(from: number, to: number): number[] {
  const out: number[] = [];
  for (let n = from; n <= to; n++) out.push(2 * n - 1);
  return out;
}

function counter(metrics: string, name: string, labels: string): number {
  const line = metrics.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

/** The response body of stream `id`, once its DATA ended the stream. */
async function body(r: RawH2, id: number): Promise<string> {
  await r.frame((f) => f.type === FRAME.DATA && f.id === id && (f.flags & FLAG.END_STREAM) !== 0);
  return Buffer.concat(r.all().filter((f) => f.type === FRAME.DATA && f.id === id).map((f) => f.payload)).toString();
}

const isSettings = (f: Frame): boolean => f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) === 0;

/**
 * issue 11 point 2: a client that opens more streams than
 * limits.maxConcurrentStreams loses only the excess streams
 * (RST_STREAM REFUSED_STREAM), never its connection, while SETTINGS keeps
 * advertising the configured limit; a flood of refusals ends the connection
 * with GOAWAY(ENHANCE_YOUR_CALM). Real sidecar, real backends, raw frames on
 * the wire where a well-behaved client would not produce them.
 */
describe('HTTP/2 streams over limits.maxConcurrentStreams', function () {
  let h2: Started<unknown>;
  let store: BookstoreServer;
  let sc: TestSidecar;
  let client: BookstoreClient;
  const open: RawH2[] = [];

  before(async () => {
    h2 = await startH2Echo();
    store = await startBookstore();
    sc = await startTestSidecar([
      listener('main', { limits: { maxConcurrentStreams: LIMIT } }),
      routes('main', [prefixRoute(SVC_PREFIX, 'store'), prefixRoute('/', 'h2c')]),
      cluster('h2c', [h2.port], 'UPSTREAM_PROTOCOL_HTTP2'),
      cluster('store', [store.port], 'UPSTREAM_PROTOCOL_HTTP2'),
    ]);
    client = bookstoreClient(`127.0.0.1:${sc.port()}`);
  });
  afterEach(() => {
    for (const r of open.splice(0)) r.sock.destroy();
  });
  after(async () => {
    client?.close();
    await sc?.close();
    await h2?.close();
    await store?.close();
  });

  function connect(): RawH2 {
    const r = rawH2(sc.port());
    open.push(r);
    return r;
  }

  it('advertises the configured limit: the server preface carries it and no later SETTINGS changes it', async () => {
    const r = connect();
    // Ours (the preface), then nghttp2's once our ACK was seen.
    await r.frame((f) => isSettings(f) && r.all().filter(isSettings).length >= 2);
    const settings = r.all().filter(isSettings);
    expect(r.all()[0]).to.include({ type: FRAME.SETTINGS, flags: 0, id: 0 });
    expect([...r.all()[0]!.payload]).to.deep.equal([0, 3, 0, 0, 0, LIMIT]);
    const mcs = settings.flatMap((f) => [...Array(f.payload.length / 6).keys()].map((i) => f.payload.readUInt16BE(i * 6))).filter((id) => id === 3);
    expect(mcs).to.have.length(1);
    expect(r.settings().get(3)).to.equal(LIMIT);
    expect(r.settings().get(6)).to.equal(65536); // maxHeaderListSize: the second frame is nghttp2's
    // nghttp2 took the connection: it ACKs the client's SETTINGS and serves a request.
    await r.frame((f) => f.type === FRAME.SETTINGS && f.flags === FLAG.ACK);
    r.sock.write(headersFrame(1, '/after-handshake', true));
    expect(JSON.parse(await body(r, 1)).url).to.equal('/after-handshake');
  });

  it('refuses only the excess streams, up to 2 × limit + 10 at once, and keeps the connection and its other streams', async () => {
    const before = counter(await sc.metrics(), 'outrigger_downstream_streams_refused_total', 'listener="main"');
    const r = connect();
    await r.frame(isSettings);
    const total = 2 * LIMIT + 10;
    // All HEADERS in one write and none ends its stream: the first LIMIT stay open (the backend answers at the end of the request).
    r.sock.write(Buffer.concat(ids(1, total).map((id) => headersFrame(id, `/s${id}`))));
    const excess = ids(LIMIT + 1, total);
    for (const id of excess) {
      const rst = await r.frame((f) => f.type === FRAME.RST_STREAM && f.id === id);
      expect(rst.payload.readUInt32BE(0)).to.equal(REFUSED_STREAM);
    }
    // The refused streams got nothing but their RST_STREAM; the admitted ones no RST_STREAM at all.
    expect(r.all().filter((f) => excess.includes(f.id)).map((f) => f.type)).to.deep.equal(excess.map(() => FRAME.RST_STREAM));
    expect(r.all().some((f) => f.type === FRAME.RST_STREAM && !excess.includes(f.id))).to.equal(false);
    // The admitted streams complete on the same connection…
    const admitted = ids(1, LIMIT);
    r.sock.write(Buffer.concat(admitted.map(endStreamFrame)));
    for (const id of admitted) expect(JSON.parse(await body(r, id)).url).to.equal(`/s${id}`);
    // …and it takes new streams afterwards.
    const next = 2 * total + 1;
    r.sock.write(headersFrame(next, '/next', true));
    expect(JSON.parse(await body(r, next)).url).to.equal('/next');
    expect(r.all().some((f) => f.type === FRAME.GOAWAY)).to.equal(false);
    const after = counter(await sc.metrics(), 'outrigger_downstream_streams_refused_total', 'listener="main"');
    expect(after - before).to.equal(excess.length);
  });

  it('a grpc-js client making more concurrent calls than the limit gets every call through, none refused', async () => {
    const before = counter(await sc.metrics(), 'outrigger_downstream_streams_refused_total', 'listener="main"');
    const shelf = await client.unary('createShelf', { shelf: { theme: 'limits' } });
    const calls = [...Array(10 * LIMIT).keys()].map((i) =>
      i % 4 === 0
        ? client.unary('listShelves', {}).then((r) => r.response.shelves.length > 0)
        : client.unary('getShelf', { shelf: shelf.response.id }).then((r) => r.response.theme === 'limits'),
    );
    expect(await Promise.all(calls)).to.deep.equal(calls.map(() => true));
    // A client that keeps to the advertised limit is never refused.
    const after = counter(await sc.metrics(), 'outrigger_downstream_streams_refused_total', 'listener="main"');
    expect(after - before).to.equal(0);
  });

  it('a client that keeps exceeding it (over 100 refusals in a second) gets GOAWAY(ENHANCE_YOUR_CALM); others are unaffected', async () => {
    const r = connect();
    await r.frame(isSettings);
    r.sock.write(Buffer.concat(ids(1, LIMIT + 150).map((id) => headersFrame(id, '/flood'))));
    const goaway = await r.frame((f) => f.type === FRAME.GOAWAY);
    expect(goaway.payload.readUInt32BE(4)).to.equal(ENHANCE_YOUR_CALM);
    await r.closed;
    expect(r.all().filter((f) => f.type === FRAME.GOAWAY)).to.have.length(1);
    const refused = r.all().filter((f) => f.type === FRAME.RST_STREAM && f.payload.readUInt32BE(0) === REFUSED_STREAM).length;
    expect(refused).to.be.at.most(101);
    expect(counter(await sc.metrics(), 'outrigger_downstream_protocol_errors_total', 'listener="main",kind="h2_refused_flood"')).to.equal(1);
    const ok = await request(`http://127.0.0.1:${sc.port()}/still-fine`);
    expect(ok.statusCode).to.equal(200);
    await ok.body.text();
  });
});
