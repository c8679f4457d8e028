import { expect } from 'chai';
import http from 'node:http';
import http2 from 'node:http2';
import { request } from 'undici';
import { startH1Echo, startH2Echo, type Started } from '../support/backends.js';
import { cluster, listener, prefixRoute, routes } from '../support/config-docs.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';
import { waitFor } from '../support/wait.js';

type Echo = { backend: string; method: string; url: string; headers: Record<string, string>; bodyBytes: number };

function h2Request(port: number, headers: http2.OutgoingHttpHeaders, body?: Buffer): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const c = http2.connect(`http://127.0.0.1:${port}`);
    c.on('error', reject);
    const r = c.request({ ':method': 'GET', ':path': '/', ...headers }, { endStream: !body });
    let data = '';
    let h: http2.IncomingHttpHeaders = {};
    r.on('response', (x) => (h = x));
    r.on('data', (d: Buffer) => (data += d.toString()));
    r.on('end', () => {
      c.close();
      resolve({ status: Number(h[':status']), headers: h, body: data });
    });
    r.on('error', reject);
    if (body) r.end(body);
  });
}

describe('HTTP proxying (h1 and h2, both directions)', function () {
  let h1: Started<unknown>;
  let h2: Started<unknown>;
  let sc: TestSidecar;

  before(async () => {
    h1 = await startH1Echo('h1-backend');
    h2 = await startH2Echo('h2-backend');
    sc = await startTestSidecar([
      listener('main', { accessLog: { logHeaders: ['authorization', 'x-custom'] } }),
      listener('trusted', { routeConfig: 'main', trustedHops: 1 }),
      routes('main', [
        prefixRoute('/h1/', 'h1c'),
        prefixRoute('/h2/', 'h2c'),
        { name: 'rewrite', match: { prefix: '/old/' }, route: { cluster: 'h1c', prefixRewrite: '/new/' } },
        { name: 'teapot', match: { path: '/teapot' }, directResponse: { status: 418, body: 'short and stout' } },
        prefixRoute('/empty/', 'empty'),
        prefixRoute('/dead/', 'dead'),
      ]),
      cluster('h1c', [h1.port], 'UPSTREAM_PROTOCOL_HTTP1'),
      cluster('h2c', [h2.port], 'UPSTREAM_PROTOCOL_HTTP2'),
      cluster('empty', [], 'UPSTREAM_PROTOCOL_HTTP1', { type: 'DISCOVERY_TYPE_EDS', endpoints: [] }),
      { apiVersion: 'outrigger.io/v1', kind: 'ClusterLoadAssignment', metadata: { name: 'empty' }, spec: { endpoints: [] } },
      cluster('dead', [1], 'UPSTREAM_PROTOCOL_HTTP1', { connectTimeout: '0.5s' }),
    ]);
  });
  after(async () => {
    await sc.close();
    await h1.close();
    await h2.close();
  });

  it('h1 client → h1 upstream with keep-alive, hop-by-hop removed, forwarded headers set', async () => {
    // node:http, not undici: undici refuses to send hop-by-hop headers at all.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < 3; i++) {
      const e = await new Promise<Echo>((resolve, reject) => {
        const req = http.request(
          {
            agent,
            host: '127.0.0.1',
            port: sc.port(),
            path: `/h1/x?q=${i}`,
            headers: { 'keep-alive': 'timeout=5', 'x-drop-me': 'secret', connection: 'keep-alive, x-drop-me', 'x-outrigger-internal': 'evil', 'x-request-id': 'client-id', 'x-forwarded-for': '6.6.6.6' },
          },
          (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString()));
            res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body) as Echo) : reject(new Error(`status ${res.statusCode}`))));
          },
        );
        req.on('error', reject);
        req.end();
      });
      expect(e.url).to.equal(`/h1/x?q=${i}`);
      expect(e.headers).to.not.have.property('keep-alive');
      expect(e.headers).to.not.have.property('x-drop-me');
      expect(e.headers).to.not.have.property('x-outrigger-internal');
      // Untrusted listener: client-supplied forwarding headers are replaced.
      expect(e.headers['x-forwarded-for']).to.equal('127.0.0.1');
      expect(e.headers['x-forwarded-proto']).to.equal('http');
      expect(e.headers['x-request-id']).to.match(/^[0-9a-f-]{36}$/);
    }
    agent.destroy();
    // One upstream keep-alive connection served all three requests.
    const clusters = (await (await request(`http://127.0.0.1:${sc.sidecar.adminPort}/clusters`)).body.json()) as {
      clusters: Record<string, { endpoints: { h1: { openSockets: number; idleSockets: number } }[] }>;
    };
    const h1 = clusters.clusters.h1c!.endpoints[0]!.h1;
    expect(h1.openSockets + h1.idleSockets).to.equal(1);
  });

  it('a trusted listener keeps and appends x-forwarded-for and keeps x-request-id', async () => {
    const res = await request(`http://127.0.0.1:${sc.port('trusted')}/h1/t`, {
      headers: { 'x-request-id': 'client-id', 'x-forwarded-for': '6.6.6.6', 'x-forwarded-proto': 'https' },
    });
    const e = (await res.body.json()) as Echo;
    expect(e.headers['x-forwarded-for']).to.equal('6.6.6.6, 127.0.0.1');
    expect(e.headers['x-request-id']).to.equal('client-id');
    expect(e.headers['x-forwarded-proto']).to.equal('https');
  });

  it('a local reply returns the exchange request id, the same one the access log records', async () => {
    const untrusted = await request(`http://127.0.0.1:${sc.port()}/nowhere`, { headers: { 'x-request-id': 'client-id' } });
    await untrusted.body.text();
    expect(untrusted.statusCode).to.equal(404);
    const rid = untrusted.headers['x-request-id'] as string;
    expect(rid).to.match(/^[0-9a-f-]{36}$/);
    await waitFor(() => sc.access.some((l) => l.request_id === rid && l.path === '/nowhere'), 'the access line with the id');
    const trusted = await request(`http://127.0.0.1:${sc.port('trusted')}/empty/x`, { headers: { 'x-request-id': 'client-id-2' } });
    await trusted.body.text();
    expect(trusted.statusCode).to.equal(503);
    expect(trusted.headers['x-request-id']).to.equal('client-id-2');
    const g = await h2Request(sc.port(), { ':path': '/nowhere.Svc/M', 'content-type': 'application/grpc' });
    expect(g.headers['grpc-status']).to.equal('12');
    expect(g.headers['x-request-id']).to.match(/^[0-9a-f-]{36}$/);
  });

  it('h1 client → h2 upstream, with a request body', async () => {
    const res = await request(`http://127.0.0.1:${sc.port()}/h2/post`, { method: 'POST', body: Buffer.alloc(100_000, 1) });
    expect(res.statusCode).to.equal(200);
    const e = (await res.body.json()) as Echo;
    expect(e.backend).to.equal('h2-backend');
    expect(e.method).to.equal('POST');
    expect(e.bodyBytes).to.equal(100_000);
    expect(e.headers[':authority']).to.equal(`127.0.0.1:${sc.port()}`);
  });

  it('h2 client → h1 upstream and h2 client → h2 upstream', async () => {
    const a = await h2Request(sc.port(), { ':path': '/h1/from-h2' });
    expect(a.status).to.equal(200);
    expect((JSON.parse(a.body) as Echo).backend).to.equal('h1-backend');
    expect((JSON.parse(a.body) as Echo).headers.host).to.equal(`127.0.0.1:${sc.port()}`);
    const b = await h2Request(sc.port(), { ':path': '/h2/from-h2', ':method': 'POST' }, Buffer.from('abc'));
    expect(b.status).to.equal(200);
    expect((JSON.parse(b.body) as Echo).bodyBytes).to.equal(3);
  });

  it('serves an Upgrade: h2c request as plain HTTP/1.1 (the upgrade is ignored, RFC 9110 §7.8)', async () => {
    const net = await import('node:net');
    const text = await new Promise<string>((resolve) => {
      const s = net.connect(sc.port(), '127.0.0.1');
      let out = '';
      s.on('data', (c: Buffer) => (out += c.toString()));
      s.on('close', () => resolve(out));
      s.write('GET /h1/upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n');
    });
    expect(text).to.match(/^HTTP\/1\.1 200/);
    // The body is chunked; the echo's JSON sits inside one chunk.
    expect(text).to.include('"url":"/h1/upgrade"');
    expect(text).to.not.include('"upgrade":');
    expect(text).to.not.include('"http2-settings":');
  });

  it('prefix rewrite and direct responses', async () => {
    const res = await request(`http://127.0.0.1:${sc.port()}/old/thing?x=1`);
    expect(((await res.body.json()) as Echo).url).to.equal('/new/thing?x=1');
    const tea = await request(`http://127.0.0.1:${sc.port()}/teapot`);
    expect(tea.statusCode).to.equal(418);
    expect(await tea.body.text()).to.equal('short and stout');
  });

  it('no route → 404, empty cluster → 503, unreachable endpoint → 503 with a short text body', async () => {
    const nr = await request(`http://127.0.0.1:${sc.port()}/nowhere`);
    expect(nr.statusCode).to.equal(404);
    expect(await nr.body.text()).to.equal('no route\n');
    const uh = await request(`http://127.0.0.1:${sc.port()}/empty/x`);
    expect(uh.statusCode).to.equal(503);
    expect(await uh.body.text()).to.match(/no healthy upstream/);
    const uf = await request(`http://127.0.0.1:${sc.port()}/dead/x`);
    expect(uf.statusCode).to.equal(503);
    expect(await uf.body.text()).to.match(/upstream connect error/);
    const h2nr = await h2Request(sc.port(), { ':path': '/nowhere' });
    expect(h2nr.status).to.equal(404);
  });

  it('writes one access-log line per request and never logs sensitive header values', async () => {
    const before = sc.access.length;
    const res = await request(`http://127.0.0.1:${sc.port()}/h1/logged`, {
      headers: { authorization: 'Bearer s3cr3t', 'x-custom': 'visible', cookie: 'session=abc' },
    });
    await res.body.text();
    await waitFor(() => sc.access.length > before, 'access log line');
    const line = sc.access.find((l) => l.path === '/h1/logged')!;
    expect(line).to.include({ method: 'GET', status: 200, protocol: 'http1', route: 'h1c-h1-', cluster: 'h1c', upstream: `127.0.0.1:${h1.port}` });
    expect(line.request_id).to.be.a('string');
    expect(line.bytes_out).to.be.greaterThan(0);
    expect(line.headers).to.deep.equal({ authorization: '[redacted]', 'x-custom': 'visible' });
    expect(JSON.stringify(sc.access)).to.not.include('s3cr3t');
    expect(JSON.stringify(sc.access)).to.not.include('session=abc');
  });

  it('counts requests in metrics by listener, route, cluster and code', async () => {
    const m = await sc.metrics();
    expect(m).to.match(/outrigger_request_duration_seconds_count\{listener="main",route="h1c-h1-",cluster="h1c",code="200",grpc_status="",protocol="http1"\} \d+/);
    expect(m).to.match(/outrigger_local_replies_total\{listener="main",flag="NR"\} [1-9]/);
    expect(m).to.match(/outrigger_protocol_detection_total\{listener="main",outcome="http1"\} [1-9]/);
  });
});
