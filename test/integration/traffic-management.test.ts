import { expect } from 'chai';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { request } from 'undici';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport } from '@connectrpc/connect-node';
import { startH1Echo, startH2Echo, type Started } from '../support/backends.js';
import { h2Request } from '../support/traffic-backend.js';
import { cluster, listener, routes, type Doc } from '../support/config-docs.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';
import { RecordingBackend } from '../support/traffic-backend.js';
import { waitFor } from '../support/wait.js';
import { BOOKSTORE_DESCRIPTOR, requestJson } from '../support/transcode-harness.js';
import { startBookstore, type BookstoreServer } from '../../examples/bookstore/server.js';
import { BookstoreService } from '../../src/gen/outrigger/examples/bookstore/v1/bookstore_pb.js';
import { seededRandom } from '../../src/core/random.js';

/** A static HTTP/1.1 cluster whose endpoints carry metadata labels (as discovery gives them). */
function labelled(name: string, eps: { port: number; labels: Record<string, string> }[], protocol: 'UPSTREAM_PROTOCOL_HTTP1' | 'UPSTREAM_PROTOCOL_HTTP2' = 'UPSTREAM_PROTOCOL_HTTP1'): Doc {
  return cluster(name, [], protocol, { endpoints: eps.map((e) => ({ address: { host: '127.0.0.1', port: e.port }, metadata: e.labels })) });
}

function route(prefix: string, action: Record<string, unknown>): unknown {
  return { name: prefix.replace(/\//g, ''), match: { prefix }, route: action };
}

async function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; backend: string | undefined; text: string }> {
  const r = await request(`http://127.0.0.1:${port}${path}`, { headers });
  const text = await r.body.text();
  let backend: string | undefined;
  try {
    backend = (JSON.parse(text) as { backend?: string }).backend;
  } catch {
    backend = undefined;
  }
  return { status: r.statusCode, backend, text };
}

/** A port nothing listens on (bound, then closed). */
async function deadPort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** A server that reads requests and never answers (a mirror slower than any caller's timeout). */
async function startSilent(): Promise<Started<http.Server> & { seen: number }> {
  const out = { seen: 0 } as Started<http.Server> & { seen: number };
  const server = http.createServer(() => void out.seen++);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  out.server = server;
  out.port = (server.address() as AddressInfo).port;
  out.close = async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  };
  return out;
}

describe('Traffic management on routes: subsets, weighted splits, mirroring, faults (HTTP)', function () {
  let a: Started<unknown>;
  let b: Started<unknown>;
  let c: Started<unknown>;
  let canary: Started<unknown>;
  let rec: RecordingBackend;
  let silent: Started<http.Server> & { seen: number };
  let sc: TestSidecar;
  let port: number;

  before(async () => {
    a = await startH1Echo('a');
    b = await startH1Echo('b');
    c = await startH1Echo('c');
    canary = await startH1Echo('canary');
    rec = await new RecordingBackend().start();
    silent = await startSilent();
    const dead = await deadPort();
    sc = await startTestSidecar(
      [
        listener('main', { trustedHops: 1 }),
        routes('main', [
          route('/v1/', { cluster: 'svc', endpointSelector: { matchLabels: { version: 'v1' } } }),
          route('/v2/', { cluster: 'svc', endpointSelector: { matchLabels: { version: 'v2' } } }),
          route('/v3/', { cluster: 'svc', endpointSelector: { matchLabels: { version: 'v3' } } }),
          route('/all/', { cluster: 'svc' }),
          route('/split/', {
            weightedClusters: [
              { cluster: 'svc', weight: 80, endpointSelector: { matchLabels: { version: 'v1' } } },
              { cluster: 'canary', weight: 20 },
            ],
          }),
          route('/mirror/', { cluster: 'svc', endpointSelector: { matchLabels: { version: 'v2' } }, mirror: { cluster: 'rec' } }),
          route('/mirror-down/', { cluster: 'svc', endpointSelector: { matchLabels: { version: 'v2' } }, mirror: { cluster: 'dead' } }),
          route('/mirror-slow/', { cluster: 'svc', timeout: '0.3s', endpointSelector: { matchLabels: { version: 'v2' } }, mirror: { cluster: 'silent' } }),
          route('/mirror-none/', { cluster: 'svc', mirror: { cluster: 'rec', percent: 0 } }),
          route('/abort/', { cluster: 'svc', fault: { abort: { httpStatus: 418 } } }),
          route('/delay/', { cluster: 'svc', endpointSelector: { matchLabels: { version: 'v2' } }, fault: { delay: { fixedDelay: '0.15s' } } }),
          route('/delay-timeout/', { cluster: 'svc', timeout: '0.1s', fault: { delay: { fixedDelay: '30s' } } }),
          route('/delay-abort/', { cluster: 'svc', fault: { delay: { fixedDelay: '0.05s' }, abort: { grpcStatus: 14 } } }),
        ]),
        labelled('svc', [
          { port: a.port, labels: { version: 'v1', zone: 'a' } },
          { port: b.port, labels: { version: 'v1', zone: 'b' } },
          { port: c.port, labels: { version: 'v2', zone: 'a' } },
        ]),
        cluster('canary', [canary.port], 'UPSTREAM_PROTOCOL_HTTP1'),
        cluster('rec', [rec.port], 'UPSTREAM_PROTOCOL_HTTP1'),
        cluster('dead', [dead], 'UPSTREAM_PROTOCOL_HTTP1'),
        cluster('silent', [silent.port], 'UPSTREAM_PROTOCOL_HTTP1'),
      ],
      { random: seededRandom(7) },
    );
    port = sc.port('main');
  });
  after(async () => {
    await sc?.close();
    for (const s of [a, b, c, canary, silent]) await s?.close();
    await rec?.close();
  });

  const accessOf = (path: string): Record<string, unknown>[] => sc.access.filter((l) => l['path'] === path);

  describe('subsets (endpointSelector)', () => {
    it('sends a subset route only to the endpoints whose labels match, balanced among them', async () => {
      const seen = new Set<string | undefined>();
      for (let i = 0; i < 12; i++) seen.add((await get(port, '/v1/x')).backend);
      expect([...seen].sort()).to.deep.equal(['a', 'b']);
      for (let i = 0; i < 6; i++) expect((await get(port, '/v2/x')).backend).to.equal('c');
      // HTTP/2 clients take the same route to the same subset.
      const h2 = await h2Request(port, { ':method': 'GET', ':path': '/v2/h2' });
      expect((JSON.parse(h2.body.toString()) as { backend: string }).backend).to.equal('c');
      const all = new Set<string | undefined>();
      for (let i = 0; i < 12; i++) all.add((await get(port, '/all/x')).backend);
      expect([...all].sort()).to.deep.equal(['a', 'b', 'c']);
    });

    it('answers 503 UH naming the subset when no endpoint matches', async () => {
      const r = await get(port, '/v3/x');
      expect(r.status).to.equal(503);
      expect(r.text).to.match(/no healthy upstream: cluster "svc" has no endpoint in subset version=v3/);
      await waitFor(() => accessOf('/v3/x').length === 1, 'access line');
      expect(accessOf('/v3/x')[0]!['flags']).to.equal('UH');
    });
  });

  describe('weighted splits', () => {
    it('splits 80/20 across a subset and another cluster; the access log names the chosen cluster', async () => {
      const n = 500;
      const counts: Record<string, number> = {};
      for (let i = 0; i < n; i++) {
        const r = await get(port, `/split/${i}`);
        counts[r.backend!] = (counts[r.backend!] ?? 0) + 1;
      }
      expect(Object.keys(counts).sort()).to.deep.equal(['a', 'b', 'canary']);
      expect(counts['canary']! / n).to.be.within(0.15, 0.25);
      await waitFor(() => sc.access.filter((l) => String(l['path']).startsWith('/split/')).length === n, 'access lines');
      const lines = sc.access.filter((l) => String(l['path']).startsWith('/split/'));
      expect(lines.filter((l) => l['cluster'] === 'canary').length).to.equal(counts['canary']);
      expect(lines.filter((l) => l['cluster'] === 'svc').length).to.equal(counts['a']! + counts['b']!);
    });
  });

  describe('mirroring', () => {
    it('sends a copy (Host -shadow, the same body, x-forwarded-for under trustedHops) and discards its answer', async () => {
      rec.seen.length = 0;
      const body = 'm'.repeat(100_000);
      const r = await request(`http://127.0.0.1:${port}/mirror/post?q=1`, {
        method: 'POST',
        body,
        headers: { host: 'api.local:8080', 'x-forwarded-for': '203.0.113.9, 198.51.100.1', 'content-type': 'text/plain' },
      });
      const answer = (await r.body.json()) as { backend: string; bodyBytes: number; headers: Record<string, string> };
      expect(answer.backend).to.equal('c');
      expect(answer.bodyBytes).to.equal(body.length);
      await waitFor(() => rec.seen.length === 1, 'the mirrored copy');
      const copy = rec.seen[0]!;
      expect(copy.method).to.equal('POST');
      expect(copy.url).to.equal('/mirror/post?q=1');
      expect(copy.headers.host).to.equal('api.local-shadow:8080');
      expect(copy.body.toString()).to.equal(body);
      // The same forwarding rules as the real request: the client's hops kept, the peer appended.
      expect(copy.headers['x-forwarded-for']).to.equal(answer.headers['x-forwarded-for']);
      expect(copy.headers['x-request-id']).to.equal(answer.headers['x-request-id']);
      await waitFor(async () => /outrigger_mirror_requests_total\{cluster="rec",result="answered"\} 1/.test(await sc.metrics()), 'mirror metric');
    });

    it('a mirror cluster that is down never reaches the caller', async () => {
      for (let i = 0; i < 3; i++) {
        const r = await get(port, '/mirror-down/x');
        expect(r.status).to.equal(200);
        expect(r.backend).to.equal('c');
      }
      await waitFor(async () => /outrigger_mirror_requests_total\{cluster="dead",result="failed"\} 3/.test(await sc.metrics()), 'mirror failures counted');
      const lines = accessOf('/mirror-down/x');
      expect(lines.every((l) => l['flags'] === undefined && l['cluster'] === 'svc')).to.equal(true);
    });

    it('a mirror slower than the route timeout neither delays nor fails the caller, and is cut at that timeout', async () => {
      const r = await get(port, '/mirror-slow/x');
      expect(r.status).to.equal(200);
      expect(r.backend).to.equal('c');
      await waitFor(() => silent.seen === 1, 'the slow mirror got its copy');
      await waitFor(async () => /outrigger_mirror_requests_total\{cluster="silent",result="timed_out"\} 1/.test(await sc.metrics()), 'mirror timeout counted');
    });

    it('percent 0 mirrors nothing', async () => {
      rec.seen.length = 0;
      for (let i = 0; i < 5; i++) expect((await get(port, '/mirror-none/x')).status).to.equal(200);
      await waitFor(() => accessOf('/mirror-none/x').length === 5, 'access lines');
      expect(rec.seen.length).to.equal(0);
    });
  });

  describe('fault injection', () => {
    it('abort: the configured status, flag FI, the upstream never asked', async () => {
      const r = await get(port, '/abort/x');
      expect(r.status).to.equal(418);
      expect(r.text).to.equal('fault filter abort\n');
      await waitFor(() => accessOf('/abort/x').length === 1, 'access line');
      const line = accessOf('/abort/x')[0]!;
      expect(line['flags']).to.equal('FI');
      expect(line['upstream']).to.equal(undefined);
    });

    it('delay: the request waits fixedDelay, then goes upstream; flag DI', async () => {
      const t0 = performance.now();
      const r = await get(port, '/delay/x');
      expect(performance.now() - t0).to.be.at.least(140);
      expect(r.backend).to.equal('c');
      await waitFor(() => accessOf('/delay/x').length === 1, 'access line');
      expect(accessOf('/delay/x')[0]!['flags']).to.equal('DI');
    });

    it('a deadline passing during the delay answers 504 and keeps both flags (DI,UT)', async () => {
      const r = await get(port, '/delay-timeout/x');
      expect(r.status).to.equal(504);
      await waitFor(() => accessOf('/delay-timeout/x').length === 1, 'access line');
      const line = accessOf('/delay-timeout/x')[0]!;
      expect(line['flags']).to.equal('DI,UT');
      expect(line['upstream']).to.equal(undefined);
    });

    it('a client leaving during the delay cancels it (DI,DC), and nothing goes upstream', async () => {
      const err = await request(`http://127.0.0.1:${port}/delay-timeout/gone`, { signal: AbortSignal.timeout(30) }).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err).to.be.instanceOf(Error);
      await waitFor(() => accessOf('/delay-timeout/gone').length === 1, 'access line');
      const line = accessOf('/delay-timeout/gone')[0]!;
      expect(line['flags']).to.equal('DI,DC');
      expect(line['upstream']).to.equal(undefined);
    });

    it('delay then abort: both flags, the gRPC status mapped to HTTP for an HTTP caller', async () => {
      const r = await get(port, '/delay-abort/x');
      expect(r.status).to.equal(503);
      await waitFor(() => accessOf('/delay-abort/x').length === 1, 'access line');
      expect(accessOf('/delay-abort/x')[0]!['flags']).to.equal('DI,FI');
    });
  });
});

describe('Traffic management on routes: gRPC, Connect and REST transcoding', function () {
  let store: BookstoreServer;
  let shadow: Started<unknown>;
  let sc: TestSidecar;
  let dead: number;

  before(async () => {
    store = await startBookstore();
    shadow = await startH2Echo('shadow');
    dead = await deadPort();
    const transcode = { descriptorBin: BOOKSTORE_DESCRIPTOR };
    sc = await startTestSidecar([
      listener('faults', { routeConfig: 'faults' }),
      listener('subsets', { routeConfig: 'subsets' }),
      listener('mirrored', { routeConfig: 'mirrored' }),
      routes('mirrored', [
        { name: 'grpc', match: { prefix: '/' }, route: { cluster: 'store', endpointSelector: { matchLabels: { version: 'v2' } }, mirror: { cluster: 'shadow' } } },
      ]),
      cluster('shadow', [shadow.port], 'UPSTREAM_PROTOCOL_HTTP2'),
      {
        apiVersion: 'outrigger.io/v1',
        kind: 'RouteConfiguration',
        metadata: { name: 'faults' },
        spec: {
          virtualHosts: [
            {
              name: 'store',
              domains: ['*'],
              routes: [{ name: 'store', match: { prefix: '/' }, route: { cluster: 'store', transcode, fault: { abort: { grpcStatus: 8 } } } }],
            },
          ],
        },
      },
      {
        apiVersion: 'outrigger.io/v1',
        kind: 'RouteConfiguration',
        metadata: { name: 'subsets' },
        spec: {
          virtualHosts: [
            {
              name: 'store',
              domains: ['*'],
              routes: [{ name: 'v2', match: { prefix: '/' }, route: { cluster: 'store', transcode, endpointSelector: { matchLabels: { version: 'v2' } } } }],
            },
          ],
        },
      },
      // v1 is a dead port: a call that leaves the v2 subset fails.
      labelled(
        'store',
        [
          { port: dead, labels: { version: 'v1' } },
          { port: store.port, labels: { version: 'v2' } },
        ],
        'UPSTREAM_PROTOCOL_HTTP2',
      ),
    ]);
  });
  after(async () => {
    await sc?.close();
    await store?.close();
    await shadow?.close();
  });

  const base = (l: string): string => `http://127.0.0.1:${sc.port(l)}`;

  it('gRPC: a subset route reaches only the subset (every call succeeds); an abort is trailers-only with its grpc-status', async () => {
    const client = createClient(BookstoreService, createGrpcTransport({ baseUrl: base('subsets') }));
    for (let i = 0; i < 6; i++) expect((await client.getShelf({ shelf: 1n })).theme).to.equal('Fiction');
    const faulty = createClient(BookstoreService, createGrpcTransport({ baseUrl: base('faults') }));
    const err = await faulty.getShelf({ shelf: 1n }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).to.equal(Code.ResourceExhausted);
    expect(err?.rawMessage).to.equal('fault filter abort');
  });

  it('gRPC and HTTP/2: a mirrored call gets the real answer; the copy goes to the shadow cluster and its answer is dropped', async () => {
    const client = createClient(BookstoreService, createGrpcTransport({ baseUrl: base('mirrored') }));
    for (let i = 0; i < 3; i++) expect((await client.getShelf({ shelf: 1n })).theme).to.equal('Fiction');
    await waitFor(async () => /outrigger_mirror_requests_total\{cluster="shadow",result="answered"\} 3/.test(await sc.metrics()), 'three copies answered');
    // A plain HTTP/2 request with a body: the copy is answered too, the caller sees the real upstream.
    const r = await h2Request(sc.port('mirrored'), { ':method': 'POST', ':path': '/outrigger.examples.bookstore.v1.BookstoreService/GetShelf', 'content-type': 'application/grpc', te: 'trailers' }, Buffer.from([0, 0, 0, 0, 2, 8, 1]));
    expect(r.status).to.equal(200);
    // One gRPC message: the shelf (the real upstream's answer, not the shadow's JSON).
    expect(r.body[0]).to.equal(0);
    expect(r.body.subarray(5).toString()).to.include('Fiction');
    await waitFor(async () => /outrigger_mirror_requests_total\{cluster="shadow",result="answered"\} 4/.test(await sc.metrics()), 'the fourth copy');
  });

  it('REST transcoding: subset reached; an abort is a google.rpc.Status JSON with the mapped HTTP status', async () => {
    for (let i = 0; i < 4; i++) expect((await requestJson(`${base('subsets')}/v1/shelves/1`)).json.theme).to.equal('Fiction');
    const r = await requestJson(`${base('faults')}/v1/shelves/1`);
    expect(r.status).to.equal(429);
    expect(r.json).to.deep.equal({ code: 8, message: 'fault filter abort' });
    await waitFor(() => sc.access.some((l) => l['path'] === '/v1/shelves/1' && l['flags'] === 'FI'), 'FI in the access log');
  });

  it('Connect: an abort is a Connect error', async () => {
    const client = createClient(BookstoreService, createConnectTransport({ baseUrl: base('faults'), httpVersion: '1.1' }));
    const err = await client.getShelf({ shelf: 1n }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).to.equal(Code.ResourceExhausted);
    const ok = createClient(BookstoreService, createConnectTransport({ baseUrl: base('subsets'), httpVersion: '2' }));
    expect((await ok.getShelf({ shelf: 1n })).theme).to.equal('Fiction');
  });
});
