import { expect } from 'chai';
import http2 from 'node:http2';
import type net from 'node:net';
import { MAX_REFUSALS_PER_WINDOW, MAX_RESETS_PER_WINDOW, REFUSAL_WINDOW_MS, refusalBudget, StreamLimiter } from '../../../src/proxy/listener/stream-limit.js';
import { FakeClock } from '../../support/fake-clock.js';
import { endStreamFrame, FRAME, headersFrame, rawH2, rstFrame, type RawH2 } from '../../support/h2-raw.js';

/**
 * StreamLimiter on a real node:http2 server (which itself has no stream
 * limit) and a raw client; the refusal window runs on a FakeClock.
 */
describe('StreamLimiter', () => {
  let server: http2.Http2Server;
  let clock: FakeClock;
  let counts: { refused: number; floods: number; served: number };
  let resets: string[];
  let floodKinds: string[];
  let r: RawH2;
  let nextId: number;
  let limit: number;

  /** A server whose connections allow `max` streams, and a raw client connected to it. */
  async function start(max: number): Promise<void> {
    limit = max;
    clock = new FakeClock();
    counts = { refused: 0, floods: 0, served: 0 };
    resets = [];
    floodKinds = [];
    nextId = 1;
    server = http2.createServer();
    server.on('session', (session) => {
      const limiter = new StreamLimiter(session, limit, clock, {
        onRefused: () => counts.refused++,
        onReset: (stage) => resets.push(stage),
        onFlood: (kind) => {
          counts.floods++;
          floodKinds.push(kind);
        },
      });
      session.on('stream', (stream) => {
        limiter.admit(stream, () => serve(stream));
      });
      const serve = (stream: http2.ServerHttp2Stream): void => {
        counts.served++;
        stream.on('error', () => {});
        // Answers when the request ends, so a stream stays open as long as the client keeps it open.
        stream.on('end', () => {
          if (stream.closed || stream.destroyed) return; // reset by the client
          stream.respond({ ':status': 200 });
          stream.end();
        });
        stream.resume();
      };
    });
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
    r = rawH2((server.address() as net.AddressInfo).port);
    await r.frame((f) => f.type === FRAME.SETTINGS);
  }
  afterEach(async () => {
    r.sock.destroy();
    await new Promise<void>((res) => server.close(() => res()));
  });

  /** Opens `n` streams (not ended) in one write; returns their ids. */
  function open(n: number): number[] {
    const ids = [...Array(n).keys()].map((i) => nextId + 2 * i);
    nextId += 2 * n;
    r.sock.write(Buffer.concat(ids.map((id) => headersFrame(id))));
    return ids;
  }
  const rstOf = (id: number) => r.frame((f) => f.type === FRAME.RST_STREAM && f.id === id);

  it('admits up to the limit, refuses the rest, and admits again once a stream closed', async () => {
    await start(2);
    const [a, b, c] = open(3);
    expect((await rstOf(c!)).payload.readUInt32BE(0)).to.equal(http2.constants.NGHTTP2_REFUSED_STREAM);
    expect(counts).to.deep.equal({ refused: 1, floods: 0, served: 2 });
    r.sock.write(endStreamFrame(a!));
    await r.frame((f) => f.type === FRAME.HEADERS && f.id === a);
    // The client saw stream a end, so a new stream takes its place at once.
    const [d] = open(1);
    r.sock.write(Buffer.concat([endStreamFrame(b!), endStreamFrame(d!)]));
    await r.frame((f) => f.type === FRAME.HEADERS && f.id === d);
    expect(counts).to.deep.equal({ refused: 1, floods: 0, served: 3 });
  });

  it(`more than ${MAX_REFUSALS_PER_WINDOW} refusals within ${REFUSAL_WINDOW_MS} ms end the connection with GOAWAY(ENHANCE_YOUR_CALM)`, async () => {
    await start(2);
    open(2); // fills the limit; every later stream is refused
    const first = open(60);
    await rstOf(first[59]!);
    clock.advance(REFUSAL_WINDOW_MS + 1); // those 60 leave the window
    const second = open(60);
    await rstOf(second[59]!);
    expect(counts.floods).to.equal(0);
    expect(r.all().some((f) => f.type === FRAME.GOAWAY)).to.equal(false);
    // 60 in the window; 41 more make 101.
    const third = open(40);
    await rstOf(third[39]!);
    expect(counts.floods).to.equal(0);
    open(1);
    const goaway = await r.frame((f) => f.type === FRAME.GOAWAY);
    expect(goaway.payload.readUInt32BE(4)).to.equal(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(counts).to.deep.equal({ refused: 161, floods: 1, served: 2 });
    await r.closed;
  });

  it('with a large limit, a burst of 2 × limit + 10 streams and a retry of its refused ones are refused per stream, without GOAWAY', async () => {
    await start(100);
    expect(refusalBudget(limit)).to.equal(220);
    const burst = open(2 * limit + 10);
    await rstOf(burst[burst.length - 1]!);
    const retry = open(limit + 10);
    await rstOf(retry[retry.length - 1]!);
    expect(counts).to.deep.equal({ refused: 220, floods: 0, served: 100 });
    expect(r.all().some((f) => f.type === FRAME.GOAWAY)).to.equal(false);
    open(1);
    expect((await r.frame((f) => f.type === FRAME.GOAWAY)).payload.readUInt32BE(4)).to.equal(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
  });

  /** Opens `n` streams and resets each in the same write (HEADERS then RST_STREAM CANCEL): the rapid-reset pattern. */
  function openAndReset(n: number): number[] {
    const ids = [...Array(n).keys()].map((i) => nextId + 2 * i);
    nextId += 2 * n;
    r.sock.write(Buffer.concat(ids.flatMap((id) => [headersFrame(id), rstFrame(id, http2.constants.NGHTTP2_CANCEL)])));
    return ids;
  }

  /** Opens a stream that ends at once and waits for its response headers: served, and everything before it was seen. */
  async function ask(): Promise<void> {
    const id = nextId;
    nextId += 2;
    r.sock.write(headersFrame(id, '/', true));
    await r.frame((f) => f.type === FRAME.HEADERS && f.id === id);
  }

  it('streams reset in the read that opened them are never served and spend the same budget as refusals: GOAWAY(ENHANCE_YOUR_CALM) past it', async () => {
    await start(2);
    const [a, b] = open(2);
    const refused = open(60);
    await rstOf(refused[59]!);
    r.sock.write(Buffer.concat([endStreamFrame(a!), endStreamFrame(b!)]));
    await r.frame((f) => f.type === FRAME.HEADERS && f.id === b);
    openAndReset(39);
    await ask();
    expect(resets).to.deep.equal(Array(39).fill('before_dispatch'));
    expect(counts).to.deep.equal({ refused: 60, floods: 0, served: 3 });
    openAndReset(2); // 60 + 39 + 2 = 101
    const goaway = await r.frame((f) => f.type === FRAME.GOAWAY);
    expect(goaway.payload.readUInt32BE(4)).to.equal(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(floodKinds).to.deep.equal(['reset']);
    expect(counts.served).to.equal(3);
    await r.closed;
  });

  it(`a single read of 1000 HEADERS + RST_STREAM pairs serves none of them and ends the connection after ${MAX_RESETS_PER_WINDOW} resets, whatever the limit`, async () => {
    await start(1000);
    openAndReset(1000);
    expect((await r.frame((f) => f.type === FRAME.GOAWAY)).payload.readUInt32BE(4)).to.equal(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    await r.closed;
    expect(counts.served).to.equal(0);
    expect(resets.length).to.equal(MAX_RESETS_PER_WINDOW + 1);
  });

  it('a stream reset after it was served but before its response began counts as before_response; one answered does not', async () => {
    await start(10);
    const [a, b] = open(2);
    r.sock.write(endStreamFrame(a!));
    await r.frame((f) => f.type === FRAME.HEADERS && f.id === a);
    r.sock.write(rstFrame(b!, http2.constants.NGHTTP2_CANCEL));
    // A third stream, answered: by then both closes were handled (same connection, in order).
    const [c] = open(1);
    r.sock.write(endStreamFrame(c!));
    await r.frame((f) => f.type === FRAME.HEADERS && f.id === c);
    await new Promise<void>((res) => setImmediate(res));
    expect(resets).to.deep.equal(['before_response']);
    expect(counts).to.deep.equal({ refused: 0, floods: 0, served: 3 });
  });

  it('a request whose HEADERS and empty END_STREAM DATA arrive in one read is still served to its end', async () => {
    await start(2);
    const id = nextId;
    nextId += 2;
    r.sock.write(Buffer.concat([headersFrame(id), endStreamFrame(id)]));
    await r.frame((f) => f.type === FRAME.HEADERS && f.id === id);
    expect(counts.served).to.equal(1);
  });

  it('resets spread over time stay within the budget: 100 per window, window after window', async () => {
    await start(2);
    for (let round = 0; round < 3; round++) {
      openAndReset(100);
      await ask();
      clock.advance(REFUSAL_WINDOW_MS + 1);
    }
    expect(counts).to.deep.equal({ refused: 0, floods: 0, served: 3 });
    expect(resets).to.have.length(300);
    expect(r.all().some((f) => f.type === FRAME.GOAWAY)).to.equal(false);
  });
});
